//! The modules and their tools.
//!
//! Rules:
//! - One file per module; each exposes `tools()`, its tools as data: generic handler kinds,
//!   or for read-modify-write tools its own `async fn`s registered as `CustomFn`s. Adding a
//!   module is one file and one line in [`all`]; nothing else names a module.
//! - Arguments and record fields are camelCase; every argument struct denies unknown fields
//!   (the schema says `additionalProperties: false`, serde agrees).
//! - List tools take `limit` 1–100 (default 20) and answer `{items, count}`, newest first
//!   unless the tool says otherwise.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serializer;
use serde_json::{Map, Value};

use crate::handler::ToolDef;
use crate::registry::CallContext;

pub(crate) mod calendar;
pub(crate) mod contacts;
pub(crate) mod goals;
pub(crate) mod habits;
pub(crate) mod journal;
pub(crate) mod missions;
pub(crate) mod mood;
pub(crate) mod notes;
pub(crate) mod todo;

/// Every tool of every module.
pub(crate) fn all() -> Vec<ToolDef> {
    [
        todo::tools(),
        notes::tools(),
        journal::tools(),
        calendar::tools(),
        contacts::tools(),
        goals::tools(),
        habits::tools(),
        mood::tools(),
        missions::tools(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Default of every list tool's `limit`.
pub(crate) fn default_limit() -> u32 {
    20
}

pub(crate) fn default_true() -> bool {
    true
}

/// The caller's "today" (UTC).
pub(crate) fn today(ctx: &CallContext) -> NaiveDate {
    ctx.now.date_naive()
}

/// Serializes a date-time the way handlers write timestamps (RFC 3339 UTC, milliseconds).
pub(crate) fn ser_time<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// [`ser_time`] for an optional field (skipped when `None`).
pub(crate) fn ser_time_opt<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => ser_time(at, s),
        None => s.serialize_none(),
    }
}

/// Parses a date-time field of a stored record.
pub(crate) fn data_time(data: &Map<String, Value>, field: &str) -> Option<DateTime<Utc>> {
    data.get(field)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `{field: [tag]}` for a containment filter on a tags array.
pub(crate) fn tag_filter(contains: &mut Map<String, Value>, tag: Option<String>) {
    if let Some(tag) = tag {
        contains.insert("tags".to_owned(), Value::Array(vec![Value::String(tag)]));
    }
}

/// A search over `fields` when `query` is present and not blank.
pub(crate) fn text_search(query: Option<String>, fields: &[&str]) -> Option<crate::store::Search> {
    query
        .filter(|q| !q.trim().is_empty())
        .map(|q| crate::store::Search {
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            text: q.trim().to_owned(),
        })
}
