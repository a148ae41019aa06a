//! journal (`journal`/`journalEntries`): dated diary entries.
//!
//! Record fields: content, title?, entryDate (YYYY-MM-DD, default today UTC), mood?, tags,
//! createdAt, updatedAt.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{default_limit, tag_filter, text_search, today};
use crate::error::ToolError;
use crate::handler::{Collection, ListPlan, NewRecord, RecordPatch, ToolDef, not_blank, parse};
use crate::registry::CallContext;
use crate::store::ListQuery;

pub(crate) static ENTRIES: Collection = Collection {
    module: "journal",
    app: "journal",
    table: "journalEntries",
    noun: "journal entry",
    list_tool: "journal_list",
    stamps: true,
    proposable: true,
};

pub(crate) fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::create::<Add>(
            "journal_add",
            &ENTRIES,
            "Add a journal (diary) entry for the user, dated today unless entryDate is given.",
        ),
        ToolDef::update::<Update>(
            "journal_update",
            &ENTRIES,
            "Change fields of an existing journal entry; only the fields you pass change.",
        ),
        ToolDef::list::<List>(
            "journal_list",
            &ENTRIES,
            "List the user's journal entries, newest first, optionally filtered by text, tag, mood \
             or an entryDate range (from/to, inclusive).",
            list,
        ),
        ToolDef::get("journal_get", &ENTRIES, "Read one journal entry by id."),
    ]
}

/// How the user felt when writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Mood {
    Grateful,
    Happy,
    Content,
    Neutral,
    Thoughtful,
    Sad,
    Stressed,
    Angry,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Add {
    /// The entry's text (Markdown allowed).
    #[schemars(length(min = 1, max = 200000))]
    content: String,
    /// Optional headline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    title: Option<String>,
    /// Day the entry is about (YYYY-MM-DD); default today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry_date: Option<NaiveDate>,
    /// How the user felt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mood: Option<Mood>,
    /// Labels for grouping.
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 60)))]
    tags: Vec<String>,
}

impl NewRecord for Add {
    fn finish(&self, ctx: &CallContext, data: &mut Map<String, Value>) -> Result<(), ToolError> {
        not_blank("content", &self.content)?;
        if self.entry_date.is_none() {
            data.insert(
                "entryDate".to_owned(),
                Value::String(today(ctx).to_string()),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Update {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
    /// New text (replaces the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200000))]
    content: Option<String>,
    /// New headline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    title: Option<String>,
    /// New day (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry_date: Option<NaiveDate>,
    /// New mood.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mood: Option<Mood>,
    /// New labels (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20), inner(length(min = 1, max = 60)))]
    tags: Option<Vec<String>>,
}

impl RecordPatch for Update {
    fn id(&self) -> &str {
        &self.id
    }

    fn finish(&self, _ctx: &CallContext, _patch: &mut Map<String, Value>) -> Result<(), ToolError> {
        self.content
            .as_deref()
            .map_or(Ok(()), |c| not_blank("content", c))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct List {
    /// Case-insensitive text to find in title, content or tags.
    #[serde(default)]
    #[schemars(length(max = 500))]
    query: Option<String>,
    /// Only entries with this tag.
    #[serde(default)]
    #[schemars(length(min = 1, max = 60))]
    tag: Option<String>,
    /// Only entries with this mood.
    #[serde(default)]
    mood: Option<Mood>,
    /// Only entries dated on or after this day (YYYY-MM-DD).
    #[serde(default)]
    from: Option<NaiveDate>,
    /// Only entries dated on or before this day (YYYY-MM-DD).
    #[serde(default)]
    to: Option<NaiveDate>,
    /// Maximum number of entries to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

fn list(args: Value, _ctx: &CallContext) -> Result<ListPlan, ToolError> {
    let args: List = parse(args)?;
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(ToolError::InvalidInput(
            "/from: must not be after `to`".to_owned(),
        ));
    }
    let mut query = ListQuery {
        search: text_search(args.query, &["title", "content", "tags"]),
        limit: args.limit,
        ..ListQuery::default()
    };
    tag_filter(&mut query.contains, args.tag);
    if let Some(mood) = args.mood {
        query.contains.insert(
            "mood".to_owned(),
            serde_json::to_value(mood).map_err(|e| ToolError::InvalidInput(e.to_string()))?,
        );
    }
    let mut plan = ListPlan::new(query);
    if args.from.is_some() || args.to.is_some() {
        let (from, to) = (args.from, args.to);
        plan.keep = Some(Box::new(move |record| {
            let date = record
                .data
                .get("entryDate")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<NaiveDate>().ok());
            date.is_some_and(|d| from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t))
        }));
    }
    Ok(plan)
}
