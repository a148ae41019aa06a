//! missions (`ai`/`aiMissions`): the user's AI missions, as records whose data is a
//! [`types::missions::Mission`] serialized without `id` (the record id is the mission id).
//!
//! Rules:
//! - No missions_* tool writes `iterations` (only the mission runner appends them) or sets
//!   `state` other than through pause/resume; argument structs deny unknown fields, so an
//!   `iterations` argument is rejected, and patches name their fields explicitly.
//! - `nextRunAt` comes from the `cadence` crate: at create from `ctx.now`, on resume from
//!   `ctx.now`, and on a cadence change of an active mission from `ctx.now`. Manual cadence
//!   has no next run (`null`).
//! - No missions_* tool is proposable: a mission never plans changes to missions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use types::missions::{
    MISSIONS_APP, MISSIONS_TABLE, Mission, MissionCadence, MissionInputRef, MissionState,
};

use super::default_limit;
use crate::error::ToolError;
use crate::handler::{
    Collection, Ids, ListPlan, ToolDef, get_existing, insert_new, not_blank, parse, patch_existing,
    record_json, to_map,
};
use crate::registry::{CallContext, Policy};
use crate::store::{ListQuery, RecordStore, StoredRecord};

/// The module name of mission tools.
pub(crate) const MODULE: &str = "missions";

/// `missions_get` answers at most this many of the latest iterations.
const GET_ITERATIONS: usize = 10;

pub(crate) static MISSIONS: Collection = Collection {
    module: MODULE,
    app: MISSIONS_APP,
    table: MISSIONS_TABLE,
    noun: "mission",
    list_tool: "missions_list",
    // The record data is exactly a serialized `Mission`, which has no timestamps.
    stamps: false,
    // Missions plan other modules' writes, never their own.
    proposable: false,
};

pub(crate) fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::custom::<Create>(
            "missions_create",
            &MISSIONS,
            Policy::Write,
            "Create an AI mission: a standing objective the assistant works on at the given cadence, \
             proposing steps for the user to approve. Returns the mission with its id and nextRunAt.",
            |args, store, ctx, ids| Box::pin(create(args, store, ctx, ids)),
        ),
        ToolDef::custom::<Update>(
            "missions_update",
            &MISSIONS,
            Policy::Write,
            "Change a mission's title, objective, concept, cadence or inputs; only the fields you pass \
             change. A new cadence reschedules an active mission from now.",
            |args, store, ctx, _| Box::pin(update(args, store, ctx)),
        ),
        ToolDef::list::<List>(
            "missions_list",
            &MISSIONS,
            "List the user's missions, newest first, without their iterations (see iterationCount); \
             optionally only those in one state.",
            list,
        ),
        ToolDef::get_with(
            "missions_get",
            &MISSIONS,
            "Read one mission by id, with its latest iterations (at most 10; iterationCount tells how \
             many there are).",
            detail_view,
        ),
        ToolDef::custom::<IdOnly>(
            "missions_pause",
            &MISSIONS,
            Policy::Write,
            "Pause an active mission: it stops running until resumed.",
            |args, store, ctx, _| Box::pin(pause(args, store, ctx)),
        ),
        ToolDef::custom::<IdOnly>(
            "missions_resume",
            &MISSIONS,
            Policy::Write,
            "Resume a paused mission; its next run is scheduled from now.",
            |args, store, ctx, _| Box::pin(resume(args, store, ctx)),
        ),
    ]
}

/// When a mission runs; the wire shape of [`MissionCadence`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum Cadence {
    /// Only when the user starts it.
    Manual,
    /// Every everyMinutes minutes.
    #[serde(rename_all = "camelCase")]
    Interval {
        /// Minutes between runs.
        #[schemars(range(min = 1, max = 527_040))]
        every_minutes: u32,
    },
    /// Every day at atHour:atMinute on the timezone's wall clock.
    #[serde(rename_all = "camelCase")]
    Daily {
        /// Hour, 0–23.
        #[schemars(range(min = 0, max = 23))]
        at_hour: u8,
        /// Minute, 0–59.
        #[schemars(range(min = 0, max = 59))]
        at_minute: u8,
        /// IANA timezone name, e.g. "Europe/Berlin"; default UTC.
        #[serde(default)]
        #[schemars(length(min = 1, max = 64))]
        timezone: Option<String>,
    },
    /// Every week on dayOfWeek at atHour:00 on the timezone's wall clock.
    #[serde(rename_all = "camelCase")]
    Weekly {
        /// 0 = Sunday … 6 = Saturday.
        #[schemars(range(min = 0, max = 6))]
        day_of_week: u8,
        /// Hour, 0–23.
        #[schemars(range(min = 0, max = 23))]
        at_hour: u8,
        /// IANA timezone name, e.g. "Europe/Berlin"; default UTC.
        #[serde(default)]
        #[schemars(length(min = 1, max = 64))]
        timezone: Option<String>,
    },
    /// A 5-field cron expression (minute hour day-of-month month day-of-week).
    #[serde(rename_all = "camelCase")]
    Cron {
        /// E.g. "0 8 * * 1-5" for 08:00 on weekdays.
        #[schemars(length(min = 1, max = 200))]
        expression: String,
        /// IANA timezone name, e.g. "Europe/Berlin"; default UTC.
        #[serde(default)]
        #[schemars(length(min = 1, max = 64))]
        timezone: Option<String>,
    },
}

impl From<Cadence> for MissionCadence {
    fn from(c: Cadence) -> Self {
        match c {
            Cadence::Manual => Self::Manual,
            Cadence::Interval { every_minutes } => Self::Interval { every_minutes },
            Cadence::Daily {
                at_hour,
                at_minute,
                timezone,
            } => Self::Daily {
                at_hour,
                at_minute,
                timezone,
            },
            Cadence::Weekly {
                day_of_week,
                at_hour,
                timezone,
            } => Self::Weekly {
                day_of_week,
                at_hour,
                timezone,
            },
            Cadence::Cron {
                expression,
                timezone,
            } => Self::Cron {
                expression,
                timezone,
            },
        }
    }
}

/// A record the mission reads before planning.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InputRef {
    /// Module of the record, e.g. "notes".
    #[schemars(length(min = 1, max = 64))]
    module: String,
    /// Table of the record, e.g. "notes".
    #[schemars(length(min = 1, max = 64))]
    table: String,
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
}

impl From<InputRef> for MissionInputRef {
    fn from(r: InputRef) -> Self {
        Self {
            module: r.module,
            table: r.table,
            id: r.id,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Create {
    /// Short name of the mission.
    #[schemars(length(min = 1, max = 200))]
    title: String,
    /// What the mission should achieve, in a sentence or two.
    #[schemars(length(min = 1, max = 5000))]
    objective: String,
    /// Longer background, rules and ideas (Markdown).
    #[serde(default)]
    #[schemars(length(max = 50000))]
    concept_markdown: Option<String>,
    /// When the mission runs.
    cadence: Cadence,
    /// Records the mission reads before each run.
    #[serde(default)]
    #[schemars(length(max = 20))]
    inputs: Vec<InputRef>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Update {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
    /// New name.
    #[serde(default)]
    #[schemars(length(min = 1, max = 200))]
    title: Option<String>,
    /// New objective.
    #[serde(default)]
    #[schemars(length(min = 1, max = 5000))]
    objective: Option<String>,
    /// New background (replaces the old one).
    #[serde(default)]
    #[schemars(length(max = 50000))]
    concept_markdown: Option<String>,
    /// New cadence.
    #[serde(default)]
    cadence: Option<Cadence>,
    /// New inputs (replace the old ones).
    #[serde(default)]
    #[schemars(length(max = 20))]
    inputs: Option<Vec<InputRef>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdOnly {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    id: String,
}

/// A mission's state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum State {
    Active,
    Paused,
    Done,
    Archived,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct List {
    /// Only missions in this state.
    #[serde(default)]
    state: Option<State>,
    /// Maximum number of missions to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))]
    limit: u32,
}

fn json<T: Serialize>(value: &T) -> Result<Value, ToolError> {
    serde_json::to_value(value).map_err(|e| ToolError::InvalidInput(e.to_string()))
}

/// Validates a cadence and computes its next run after `now`.
fn schedule(
    cadence: &MissionCadence,
    ctx: &CallContext,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ToolError> {
    cadence::validate(cadence).map_err(|e| ToolError::InvalidInput(format!("/cadence: {e}")))?;
    cadence::next_after(cadence, ctx.now)
        .map_err(|e| ToolError::InvalidInput(format!("/cadence: {e}")))
}

fn state_of(record: &StoredRecord) -> Option<MissionState> {
    record
        .data
        .get("state")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
}

fn state_name(state: Option<MissionState>) -> &'static str {
    match state {
        Some(MissionState::Active) => "active",
        Some(MissionState::Paused) => "paused",
        Some(MissionState::Done) => "done",
        Some(MissionState::Archived) => "archived",
        None => "in an unknown state",
    }
}

pub(crate) async fn create<S: RecordStore>(
    args: Value,
    store: &S,
    ctx: &CallContext,
    ids: &Ids<'_>,
) -> Result<Value, ToolError> {
    let args: Create = parse(args)?;
    not_blank("title", &args.title)?;
    not_blank("objective", &args.objective)?;
    let cadence = MissionCadence::from(args.cadence);
    let next_run_at = schedule(&cadence, ctx)?;
    let mission = Mission {
        id: String::new(),
        title: args.title,
        objective: args.objective,
        concept_markdown: args.concept_markdown.unwrap_or_default(),
        state: MissionState::Active,
        cadence,
        next_run_at,
        inputs: args.inputs.into_iter().map(MissionInputRef::from).collect(),
        iterations: Vec::new(),
    };
    let mut data = to_map(&mission)?;
    // The record id is the mission id.
    data.remove("id");
    let record = insert_new(store, &MISSIONS, data, ctx, ids).await?.record;
    Ok(detail_view(&record))
}

pub(crate) async fn update<S: RecordStore>(
    args: Value,
    store: &S,
    ctx: &CallContext,
) -> Result<Value, ToolError> {
    let args: Update = parse(args)?;
    let mut patch = Map::new();
    if let Some(title) = args.title {
        not_blank("title", &title)?;
        patch.insert("title".to_owned(), Value::String(title));
    }
    if let Some(objective) = args.objective {
        not_blank("objective", &objective)?;
        patch.insert("objective".to_owned(), Value::String(objective));
    }
    if let Some(concept) = args.concept_markdown {
        patch.insert("conceptMarkdown".to_owned(), Value::String(concept));
    }
    if let Some(inputs) = args.inputs {
        let inputs: Vec<MissionInputRef> = inputs.into_iter().map(MissionInputRef::from).collect();
        patch.insert("inputs".to_owned(), json(&inputs)?);
    }
    let cadence = args.cadence.map(MissionCadence::from);
    if patch.is_empty() && cadence.is_none() {
        return Err(ToolError::InvalidInput(
            "nothing to change: pass at least one field besides `id`".to_owned(),
        ));
    }
    let current = get_existing(store, &MISSIONS, &args.id).await?;
    if let Some(cadence) = cadence {
        let next_run_at = schedule(&cadence, ctx)?;
        patch.insert("cadence".to_owned(), json(&cadence)?);
        if state_of(&current) == Some(MissionState::Active) {
            patch.insert("nextRunAt".to_owned(), json(&next_run_at)?);
        }
    }
    let record = patch_existing(store, &MISSIONS, &args.id, patch, ctx).await?;
    Ok(detail_view(&record))
}

pub(crate) async fn pause<S: RecordStore>(
    args: Value,
    store: &S,
    ctx: &CallContext,
) -> Result<Value, ToolError> {
    let IdOnly { id } = parse(args)?;
    let current = get_existing(store, &MISSIONS, &id).await?;
    match state_of(&current) {
        Some(MissionState::Paused) => Ok(detail_view(&current)),
        Some(MissionState::Active) => {
            let patch = Map::from_iter([("state".to_owned(), json(&MissionState::Paused)?)]);
            Ok(detail_view(
                &patch_existing(store, &MISSIONS, &id, patch, ctx).await?,
            ))
        }
        other => Err(ToolError::InvalidInput(format!(
            "mission {id} is {}; only an active mission can be paused",
            state_name(other)
        ))),
    }
}

pub(crate) async fn resume<S: RecordStore>(
    args: Value,
    store: &S,
    ctx: &CallContext,
) -> Result<Value, ToolError> {
    let IdOnly { id } = parse(args)?;
    let current = get_existing(store, &MISSIONS, &id).await?;
    let state = state_of(&current);
    if !matches!(state, Some(MissionState::Active | MissionState::Paused)) {
        return Err(ToolError::InvalidInput(format!(
            "mission {id} is {}; only a paused mission can be resumed",
            state_name(state)
        )));
    }
    let cadence: MissionCadence = current
        .data
        .get("cadence")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .ok_or_else(|| {
            ToolError::InvalidInput(format!(
                "mission {id} has no valid cadence; set one with missions_update first"
            ))
        })?;
    let next_run_at = schedule(&cadence, ctx)?;
    let patch = Map::from_iter([
        ("state".to_owned(), json(&MissionState::Active)?),
        ("nextRunAt".to_owned(), json(&next_run_at)?),
    ]);
    Ok(detail_view(
        &patch_existing(store, &MISSIONS, &id, patch, ctx).await?,
    ))
}

fn list(args: Value, _ctx: &CallContext) -> Result<ListPlan, ToolError> {
    let args: List = parse(args)?;
    let mut query = ListQuery {
        limit: args.limit,
        ..ListQuery::default()
    };
    if let Some(state) = args.state {
        query.contains.insert("state".to_owned(), json(&state)?);
    }
    let mut plan = ListPlan::new(query);
    plan.view = summary_view;
    Ok(plan)
}

fn iteration_count(record: &StoredRecord) -> usize {
    record
        .data
        .get("iterations")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// A mission without iterations, with `iterationCount`.
fn summary_view(record: &StoredRecord) -> Value {
    let count = iteration_count(record);
    let mut view = record_json(record);
    if let Value::Object(map) = &mut view {
        map.remove("iterations");
        map.insert("iterationCount".to_owned(), Value::from(count));
    }
    view
}

/// A mission with its latest [`GET_ITERATIONS`] iterations and `iterationCount`.
fn detail_view(record: &StoredRecord) -> Value {
    let count = iteration_count(record);
    let mut view = record_json(record);
    if let Value::Object(map) = &mut view {
        if let Some(Value::Array(iterations)) = map.get_mut("iterations") {
            let skip = iterations.len().saturating_sub(GET_ITERATIONS);
            iterations.drain(..skip);
        }
        map.insert("iterationCount".to_owned(), Value::from(count));
    }
    view
}
