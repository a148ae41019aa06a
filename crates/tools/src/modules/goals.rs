//! goals (`goals`/`goals`): targets the user works towards, with logged progress.
//!
//! Goal fields: title, description?, target?, unit?, period?, dueDate?, progress (sum of
//! logged amounts), lastProgressAt?, lastProgressLogId?, achievedAt? (first time progress
//! reached target), createdAt, updatedAt. Progress is a running total; `period` describes
//! the goal and does not reset progress.
//!
//! Each `goals_log_progress` call also writes a `goals`/`goalProgress` record {goalId, amount,
//! createdAt, updatedAt}, written before the goal is patched and named in the goal's
//! `lastProgressLogId`. With an id seed (an approved mission step run again) the log's id is
//! the same, so a re-run whose log exists and is already the goal's last one adds nothing.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{default_limit, text_search};
use crate::error::ToolError;
use crate::handler::{
    Collection, Ids, ListPlan, NewRecord, RecordPatch, ToolDef, get_existing, insert_new,
    not_blank, parse, patch_existing, record_json, timestamp,
};
use crate::registry::{CallContext, Policy};
use crate::store::{ListQuery, RecordStore};

pub(crate) static GOALS: Collection = Collection {
    module: "goals",
    app: "goals",
    table: "goals",
    noun: "goal",
    list_tool: "goals_list",
    stamps: true,
    proposable: true,
};

pub(crate) static PROGRESS: Collection = Collection {
    module: "goals",
    app: "goals",
    table: "goalProgress",
    noun: "goal progress entry",
    list_tool: "goals_get",
    stamps: true,
    proposable: true,
};

pub(crate) fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::create::<Create>(
            "goals_create",
            &GOALS,
            "Create a goal for the user, optionally with a numeric target (e.g. target 50, unit \"km\"). \
             Returns the new goal with its id and progress 0.",
        ),
        ToolDef::update::<Update>(
            "goals_update",
            &GOALS,
            "Change fields of an existing goal; only the fields you pass change. Use goals_log_progress \
             to record progress.",
        ),
        ToolDef::custom::<LogProgress>(
            "goals_log_progress",
            &GOALS,
            Policy::Write,
            "Add an amount to a goal's progress (negative amounts correct mistakes). Returns the goal \
             with its new progress.",
            |args, store, ctx, ids| Box::pin(log_progress(args, store, ctx, ids)),
        ),
        ToolDef::list::<List>(
            "goals_list",
            &GOALS,
            "List the user's goals, newest first, optionally filtered by text in title or description.",
            list,
        ),
        ToolDef::get(
            "goals_get",
            &GOALS,
            "Read one goal by id, with its progress.",
        ),
    ]
}

/// The time frame a goal's target refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Period {
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Total,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Create {
    /// What the user wants to achieve.
    #[schemars(length(min = 1, max = 500))]
    title: String,
    /// Why, or how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    description: Option<String>,
    /// Numeric target, e.g. 50.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_number"
    )]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    target: Option<f64>,
    /// Unit of the target, e.g. "km", "books".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    unit: Option<String>,
    /// Time frame of the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period: Option<Period>,
    /// Deadline (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_date: Option<NaiveDate>,
}

impl NewRecord for Create {
    fn finish(&self, _ctx: &CallContext, data: &mut Map<String, Value>) -> Result<(), ToolError> {
        not_blank("title", &self.title)?;
        data.insert("progress".to_owned(), Value::from(0));
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Update {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 500))]
    title: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    description: Option<String>,
    /// New numeric target.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_number"
    )]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    target: Option<f64>,
    /// New unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    unit: Option<String>,
    /// New time frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period: Option<Period>,
    /// New deadline (YYYY-MM-DD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_date: Option<NaiveDate>,
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
struct LogProgress {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
    /// Amount to add to the progress, in the goal's unit.
    #[schemars(range(min = -1_000_000_000, max = 1_000_000_000))]
    amount: f64,
}

pub(crate) async fn log_progress<S: RecordStore>(
    args: Value,
    store: &S,
    ctx: &CallContext,
    ids: &Ids<'_>,
) -> Result<Value, ToolError> {
    let LogProgress { id, amount } = parse(args)?;
    let goal = get_existing(store, &GOALS, &id).await?;
    let before = goal
        .data
        .get("progress")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let progress = before + amount;
    if !progress.is_finite() {
        return Err(ToolError::InvalidInput(
            "/amount: the progress would not be a finite number".to_owned(),
        ));
    }
    let log = Map::from_iter([
        ("goalId".to_owned(), Value::String(id.clone())),
        ("amount".to_owned(), number(amount)),
    ]);
    let log = insert_new(store, &PROGRESS, log, ctx, ids).await?;
    let log_id = Value::String(log.record.id.clone());
    if log.replayed && goal.data.get("lastProgressLogId") == Some(&log_id) {
        return Ok(record_json(&goal));
    }
    let mut patch = Map::new();
    patch.insert("progress".to_owned(), number(progress));
    patch.insert("lastProgressAt".to_owned(), timestamp(ctx.now));
    patch.insert("lastProgressLogId".to_owned(), log_id);
    let target = goal.data.get("target").and_then(Value::as_f64);
    let achieved_before = goal.data.get("achievedAt").is_some_and(|v| !v.is_null());
    if target.is_some_and(|t| progress >= t) && !achieved_before {
        patch.insert("achievedAt".to_owned(), timestamp(ctx.now));
    }
    let record = patch_existing(store, &GOALS, &id, patch, ctx).await?;
    Ok(record_json(&record))
}

/// Writes an optional number as [`number`] does.
fn ser_number<S: serde::Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => number(*v).serialize(s),
        None => s.serialize_none(),
    }
}

/// An integral value as a JSON integer (3, not 3.0), anything else as a float.
fn number(value: f64) -> Value {
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact in f64
    if value.fract() == 0.0 && value.abs() < MAX_EXACT {
        // Integral and below 2^53 in magnitude, so the cast is exact.
        Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct List {
    /// Case-insensitive text to find in title or description.
    #[serde(default)]
    #[schemars(length(max = 500))]
    query: Option<String>,
    /// Maximum number of goals to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

fn list(args: Value, _ctx: &CallContext) -> Result<ListPlan, ToolError> {
    let args: List = parse(args)?;
    Ok(ListPlan::new(ListQuery {
        search: text_search(args.query, &["title", "description"]),
        limit: args.limit,
        ..ListQuery::default()
    }))
}
