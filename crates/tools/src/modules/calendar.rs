//! calendar (`calendar`/`events`): events with a start and an optional end.
//!
//! Record fields: title, startsAt, endsAt? (RFC 3339 UTC), allDay, location?, notes?,
//! isCancelled, cancelledAt?, createdAt, updatedAt.
//! `calendar_list_events` answers events overlapping `[from, to]`, ordered by start; without
//! `from` and `to` it lists events from the start of today (UTC) on.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{data_time, default_limit, ser_time, ser_time_opt, text_search};
use crate::error::ToolError;
use crate::handler::{
    Collection, ListPlan, NewRecord, RecordPatch, ToolDef, not_blank, parse, timestamp,
};
use crate::registry::CallContext;
use crate::store::{ListQuery, StoredRecord};

pub(crate) static EVENTS: Collection = Collection {
    module: "calendar",
    app: "calendar",
    table: "events",
    noun: "calendar event",
    list_tool: "calendar_list_events",
    stamps: true,
    proposable: true,
};

pub(crate) fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::create::<Create>(
            "calendar_create_event",
            &EVENTS,
            "Create a calendar event for the user. Times are RFC 3339 date-times with an offset, \
             e.g. 2026-03-01T09:30:00+01:00. Returns the new event with its id.",
        ),
        ToolDef::update::<Update>(
            "calendar_update_event",
            &EVENTS,
            "Change fields of an existing calendar event (e.g. move it); only the fields you pass change.",
        ),
        ToolDef::list::<List>(
            "calendar_list_events",
            &EVENTS,
            "List the user's calendar events that overlap the from/to range, ordered by start time. \
             Without from and to, lists events from the start of today (UTC) on. Cancelled events \
             only with includeCancelled.",
            list,
        ),
        ToolDef::get(
            "calendar_get_event",
            &EVENTS,
            "Read one calendar event by id.",
        ),
        ToolDef::patch::<Cancel>(
            "calendar_cancel_event",
            &EVENTS,
            "Cancel a calendar event (it stays readable, marked isCancelled).",
            cancel,
        ),
    ]
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Create {
    /// What the event is.
    #[schemars(length(min = 1, max = 500))]
    title: String,
    /// When it starts (RFC 3339 date-time with offset).
    #[serde(serialize_with = "ser_time")]
    starts_at: DateTime<Utc>,
    /// When it ends (RFC 3339 date-time, not before startsAt).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_time_opt"
    )]
    ends_at: Option<DateTime<Utc>>,
    /// A whole-day event (times only mark the day).
    #[serde(default)]
    all_day: bool,
    /// Where it happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    location: Option<String>,
    /// Agenda, links, anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    notes: Option<String>,
}

impl NewRecord for Create {
    fn finish(&self, _ctx: &CallContext, data: &mut Map<String, Value>) -> Result<(), ToolError> {
        not_blank("title", &self.title)?;
        check_order(Some(self.starts_at), self.ends_at)?;
        data.insert("isCancelled".to_owned(), Value::Bool(false));
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
    /// New start (RFC 3339 date-time with offset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_time_opt"
    )]
    starts_at: Option<DateTime<Utc>>,
    /// New end (RFC 3339 date-time with offset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_time_opt"
    )]
    ends_at: Option<DateTime<Utc>>,
    /// Whole-day or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    all_day: Option<bool>,
    /// New place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    location: Option<String>,
    /// New notes (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10000))]
    notes: Option<String>,
}

impl RecordPatch for Update {
    fn id(&self) -> &str {
        &self.id
    }

    fn finish(&self, _ctx: &CallContext, _patch: &mut Map<String, Value>) -> Result<(), ToolError> {
        if let Some(title) = &self.title {
            not_blank("title", title)?;
        }
        check_order(self.starts_at, self.ends_at)
    }
}

fn check_order(
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
) -> Result<(), ToolError> {
    match (starts_at, ends_at) {
        (Some(start), Some(end)) if end < start => Err(ToolError::InvalidInput(
            "/endsAt: must not be before startsAt".to_owned(),
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct List {
    /// Only events that end at or after this time (RFC 3339 date-time).
    #[serde(default)]
    from: Option<DateTime<Utc>>,
    /// Only events that start at or before this time (RFC 3339 date-time).
    #[serde(default)]
    to: Option<DateTime<Utc>>,
    /// Case-insensitive text to find in title, location or notes.
    #[serde(default)]
    #[schemars(length(max = 500))]
    query: Option<String>,
    /// Include cancelled events.
    #[serde(default)]
    include_cancelled: bool,
    /// Maximum number of events to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

fn list(args: Value, ctx: &CallContext) -> Result<ListPlan, ToolError> {
    let args: List = parse(args)?;
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(ToolError::InvalidInput(
            "/from: must not be after `to`".to_owned(),
        ));
    }
    let mut query = ListQuery {
        search: text_search(args.query, &["title", "location", "notes"]),
        limit: args.limit,
        ..ListQuery::default()
    };
    if !args.include_cancelled {
        query
            .not_contains
            .insert("isCancelled".to_owned(), Value::Bool(true));
    }
    let (from, to) = match (args.from, args.to) {
        (None, None) => (
            ctx.now
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc()),
            None,
        ),
        range => range,
    };
    let mut plan = ListPlan::new(query);
    plan.keep = Some(Box::new(move |record| {
        let Some(start) = data_time(&record.data, "startsAt") else {
            return false;
        };
        let end = data_time(&record.data, "endsAt").unwrap_or(start);
        from.is_none_or(|f| end >= f) && to.is_none_or(|t| start <= t)
    }));
    plan.order = Some(by_start);
    Ok(plan)
}

fn by_start(a: &StoredRecord, b: &StoredRecord) -> Ordering {
    data_time(&a.data, "startsAt")
        .cmp(&data_time(&b.data, "startsAt"))
        .then_with(|| a.id.cmp(&b.id))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Cancel {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
}

fn cancel(args: Value, ctx: &CallContext) -> Result<(String, Map<String, Value>), ToolError> {
    let Cancel { id } = parse(args)?;
    let mut patch = Map::new();
    patch.insert("isCancelled".to_owned(), Value::Bool(true));
    patch.insert("cancelledAt".to_owned(), timestamp(ctx.now));
    Ok((id, patch))
}
