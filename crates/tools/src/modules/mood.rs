//! mood (`mood`/`moodEntries`): how the user feels, on a 1–10 scale with an emotion.
//!
//! Record fields: level (1–10), emotion, secondaryEmotions, notes?, tags, date (YYYY-MM-DD,
//! default today UTC), time? (HH:MM), createdAt, updatedAt.

use chrono::{Days, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{default_limit, today};
use crate::error::ToolError;
use crate::handler::{Collection, ListPlan, NewRecord, RecordPatch, ToolDef, parse};
use crate::registry::CallContext;
use crate::store::ListQuery;

pub(crate) static ENTRIES: Collection = Collection {
    module: "mood",
    app: "mood",
    table: "moodEntries",
    noun: "mood entry",
    list_tool: "mood_recent",
    stamps: true,
    proposable: true,
};

pub(crate) fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::create::<Log>(
            "mood_log",
            &ENTRIES,
            "Log how the user feels: a level from 1 (awful) to 10 (great) and the main emotion. \
             Dated today unless date is given.",
        ),
        ToolDef::update::<Update>(
            "mood_update",
            &ENTRIES,
            "Change fields of an existing mood entry; only the fields you pass change.",
        ),
        ToolDef::list::<Recent>(
            "mood_recent",
            &ENTRIES,
            "List the user's mood entries of the last `days` days (today included), newest first.",
            recent,
        ),
        ToolDef::get("mood_get", &ENTRIES, "Read one mood entry by id."),
    ]
}

/// An emotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Emotion {
    Happy,
    Excited,
    Grateful,
    Calm,
    Content,
    Proud,
    Loved,
    Neutral,
    Tired,
    Bored,
    Sad,
    Lonely,
    Anxious,
    Stressed,
    Angry,
    Overwhelmed,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Log {
    /// 1 (awful) to 10 (great).
    #[schemars(range(min = 1, max = 10))]
    level: u8,
    /// The main emotion.
    emotion: Emotion,
    /// Other emotions that are present too.
    #[serde(default)]
    #[schemars(length(max = 5))]
    secondary_emotions: Vec<Emotion>,
    /// What is going on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5000))]
    notes: Option<String>,
    /// Labels, e.g. ["work", "sleep"].
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 60)))]
    tags: Vec<String>,
    /// Day of the mood (YYYY-MM-DD); default today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    date: Option<NaiveDate>,
    /// Time of day (HH:MM, 24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    time: Option<String>,
}

impl NewRecord for Log {
    fn finish(&self, ctx: &CallContext, data: &mut Map<String, Value>) -> Result<(), ToolError> {
        if self.date.is_none() {
            data.insert("date".to_owned(), Value::String(today(ctx).to_string()));
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
    /// New level, 1 (awful) to 10 (great).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    level: Option<u8>,
    /// New main emotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    emotion: Option<Emotion>,
    /// New secondary emotions (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5))]
    secondary_emotions: Option<Vec<Emotion>>,
    /// New notes (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5000))]
    notes: Option<String>,
    /// New labels (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20), inner(length(min = 1, max = 60)))]
    tags: Option<Vec<String>>,
}

impl RecordPatch for Update {
    fn id(&self) -> &str {
        &self.id
    }
}

fn default_days() -> u32 {
    7
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Recent {
    /// How many days back to look, today included.
    #[serde(default = "default_days")]
    #[schemars(range(min = 1, max = 90))]
    days: u32,
    /// Maximum number of entries to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

fn recent(args: Value, ctx: &CallContext) -> Result<ListPlan, ToolError> {
    let Recent { days, limit } = parse(args)?;
    let since = today(ctx)
        .checked_sub_days(Days::new(u64::from(days.saturating_sub(1))))
        .unwrap_or(NaiveDate::MIN);
    let mut plan = ListPlan::new(ListQuery {
        limit,
        ..ListQuery::default()
    });
    plan.keep = Some(Box::new(move |record| {
        record
            .data
            .get("date")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<NaiveDate>().ok())
            .is_some_and(|d| d >= since)
    }));
    Ok(plan)
}
