//! habits (`habits`/`habits`, logs in `habits`/`habitLogs`): recurring habits and the days
//! they were done.
//!
//! Habit fields: title, icon, color (#rrggbb), targetPerDay?, isArchived, archivedAt?,
//! createdAt, updatedAt. Log fields: habitId, date (YYYY-MM-DD), note?, createdAt, updatedAt.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{default_limit, text_search, today};
use crate::error::ToolError;
use crate::handler::{
    Collection, Ids, ListPlan, NewRecord, RecordPatch, SCAN_LIMIT, ToolDef, get_existing,
    insert_new, not_blank, parse, record_json, store_error,
};
use crate::registry::{CallContext, Policy};
use crate::store::{ListQuery, RecordStore};

pub(crate) static HABITS: Collection = Collection {
    module: "habits",
    app: "habits",
    table: "habits",
    noun: "habit",
    list_tool: "habits_list",
    stamps: true,
    proposable: true,
};

pub(crate) static LOGS: Collection = Collection {
    module: "habits",
    app: "habits",
    table: "habitLogs",
    noun: "habit log",
    list_tool: "habits_list",
    stamps: true,
    proposable: true,
};

pub(crate) fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::create::<Create>(
            "habits_create",
            &HABITS,
            "Create a habit the user wants to track (e.g. \"Drink water\", targetPerDay 8). Returns the \
             new habit with its id.",
        ),
        ToolDef::update::<Update>(
            "habits_update",
            &HABITS,
            "Change fields of an existing habit; only the fields you pass change.",
        ),
        ToolDef::custom::<Log>(
            "habits_log",
            &HABITS,
            Policy::Write,
            "Record that the user did a habit (today unless date is given). Returns the log entry and \
             how often the habit was logged on that day.",
            |args, store, ctx, ids| Box::pin(log(args, store, ctx, ids)),
        ),
        ToolDef::list::<List>(
            "habits_list",
            &HABITS,
            "List the user's habits, newest first. Archived habits only with includeArchived.",
            list,
        ),
        ToolDef::get("habits_get", &HABITS, "Read one habit by id."),
        ToolDef::archive(
            "habits_archive",
            &HABITS,
            "Archive a habit (stop tracking it), or with archived=false restore it.",
        ),
    ]
}

fn default_icon() -> String {
    "star".to_owned()
}

fn default_color() -> String {
    "#6366f1".to_owned()
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Create {
    /// Name of the habit.
    #[schemars(length(min = 1, max = 120))]
    title: String,
    /// Icon name.
    #[serde(default = "default_icon")]
    #[schemars(length(min = 1, max = 40))]
    icon: String,
    /// Colour as #rrggbb.
    #[serde(default = "default_color")]
    #[schemars(regex(pattern = r"^#[0-9a-fA-F]{6}$"))]
    color: String,
    /// How many times a day the user aims to do it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    target_per_day: Option<u32>,
}

impl NewRecord for Create {
    fn finish(&self, _ctx: &CallContext, data: &mut Map<String, Value>) -> Result<(), ToolError> {
        not_blank("title", &self.title)?;
        data.insert("isArchived".to_owned(), Value::Bool(false));
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Update {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 120))]
    title: Option<String>,
    /// New icon name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    icon: Option<String>,
    /// New colour as #rrggbb.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^#[0-9a-fA-F]{6}$"))]
    color: Option<String>,
    /// New daily target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    target_per_day: Option<u32>,
}

impl RecordPatch for Update {
    fn id(&self) -> &str {
        &self.id
    }

    fn finish(&self, _ctx: &CallContext, _patch: &mut Map<String, Value>) -> Result<(), ToolError> {
        self.title
            .as_deref()
            .map_or(Ok(()), |t| not_blank("title", t))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Log {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
    /// Day the habit was done (YYYY-MM-DD); default today.
    #[serde(default)]
    date: Option<NaiveDate>,
    /// A short remark.
    #[serde(default)]
    #[schemars(length(max = 1000))]
    note: Option<String>,
}

pub(crate) async fn log<S: RecordStore>(
    args: Value,
    store: &S,
    ctx: &CallContext,
    ids: &Ids<'_>,
) -> Result<Value, ToolError> {
    let Log { id, date, note } = parse(args)?;
    let habit = get_existing(store, &HABITS, &id).await?;
    if habit.data.get("isArchived") == Some(&Value::Bool(true)) {
        return Err(ToolError::InvalidInput(format!(
            "habit {id} is archived; restore it with habits_archive (archived=false) before logging"
        )));
    }
    let date = date.unwrap_or_else(|| today(ctx)).to_string();
    let mut data = Map::new();
    data.insert("habitId".to_owned(), Value::String(id.clone()));
    data.insert("date".to_owned(), Value::String(date.clone()));
    if let Some(note) = note {
        data.insert("note".to_owned(), Value::String(note));
    }
    let entry = insert_new(store, &LOGS, data, ctx, ids).await?.record;
    let same_day = ListQuery {
        contains: Map::from_iter([
            ("habitId".to_owned(), Value::String(id.clone())),
            ("date".to_owned(), Value::String(date)),
        ]),
        limit: SCAN_LIMIT,
        ..ListQuery::default()
    };
    let count = store
        .list(LOGS.app, LOGS.table, &same_day)
        .await
        .map_err(|e| store_error(e, &LOGS, &id))?
        .len();
    Ok(json!({
        "log": record_json(&entry),
        "habit": { "id": habit.id, "title": habit.data.get("title"), "targetPerDay": habit.data.get("targetPerDay") },
        "countOnDate": count,
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct List {
    /// Include archived habits.
    #[serde(default)]
    include_archived: bool,
    /// Case-insensitive text to find in the title.
    #[serde(default)]
    #[schemars(length(max = 500))]
    query: Option<String>,
    /// Maximum number of habits to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

fn list(args: Value, _ctx: &CallContext) -> Result<ListPlan, ToolError> {
    let args: List = parse(args)?;
    let mut query = ListQuery {
        search: text_search(args.query, &["title"]),
        limit: args.limit,
        ..ListQuery::default()
    };
    if !args.include_archived {
        query
            .not_contains
            .insert("isArchived".to_owned(), Value::Bool(true));
    }
    Ok(ListPlan::new(query))
}
