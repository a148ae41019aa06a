//! Personas: the catalogue, the due/claim answers, audit rows (actions) and ratings (feedback).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How often a persona lives a simulated day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TickCadence {
    Hourly,
    Daily,
    Weekdays,
}

impl TickCadence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekdays => "weekdays",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hourly" => Some(Self::Hourly),
            "daily" => Some(Self::Daily),
            "weekdays" => Some(Self::Weekdays),
            _ => None,
        }
    }
}

/// One entry of `PUT /api/v1/internal/personas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonaSpec {
    pub slug: String,
    pub name: String,
    pub archetype: String,
    pub system_prompt: String,
    pub module_mix: BTreeMap<String, f64>,
    pub tick_cadence: TickCadence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpsertPersonasRequest {
    pub personas: Vec<PersonaSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UpsertPersonasResponse {
    pub created: u32,
    pub updated: u32,
}

/// A persona that is due (answer of `GET …/personas/due`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DuePersona {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub archetype: String,
    pub system_prompt: String,
    pub module_mix: BTreeMap<String, f64>,
    pub tick_cadence: TickCadence,
    pub locale: String,
    pub last_active_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DuePersonasResponse {
    pub personas: Vec<DuePersona>,
    pub server_time: DateTime<Utc>,
}

/// Body of `POST …/personas/claim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    pub worker: String,
    pub limit: u32,
    pub lease_seconds: u32,
}

/// A due persona with the lease this claimer now holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimedPersona {
    #[serde(flatten)]
    pub persona: DuePersona,
    pub lease_token: Uuid,
    pub lease_expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimPersonasResponse {
    pub personas: Vec<ClaimedPersona>,
    pub server_time: DateTime<Utc>,
}

/// `ok` or `error`: how one tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ActionResult {
    Ok,
    Error,
}

impl ActionResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// One tool call a persona made (one audit row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionRow {
    pub tool_name: String,
    pub module: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_hash: Option<String>,
    pub result: ActionResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionsBatch {
    pub tick_id: String,
    pub actions: Vec<ActionRow>,
    /// Index of the first row in its batch (default 0): row `i` of `actions` gets the id
    /// `{tickId}-{firstIndex + i}-{tool}`, so a runner sends only the rows that are new
    /// since its last write. `firstIndex + actions.len()` is at most 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_index: Option<u32>,
}

/// The tick id of action batch `k` of run `run_id`: the run id for the first batch,
/// `{runId}~{k}` after it (each batch numbers its rows from 0, so ids stay unique).
pub fn batch_tick_id(run_id: &str, k: usize) -> String {
    if k == 0 {
        run_id.to_owned()
    } else {
        format!("{run_id}~{k}")
    }
}

/// Whether `tick_id` is the tick id of one of `run_id`'s action batches
/// ([`batch_tick_id`]).
pub fn is_batch_tick_of(tick_id: &str, run_id: &str) -> bool {
    tick_id == run_id
        || tick_id
            .strip_prefix(run_id)
            .and_then(|rest| rest.strip_prefix('~'))
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// One rating of one module by a persona. `rating` is 1–5; `None` only for module `__parse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedbackRow {
    pub module: String,
    pub rating: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// The module name of the visible "the rating could not be parsed" row.
pub const PARSE_FAILURE_MODULE: &str = "__parse";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedbackBatch {
    pub tick_id: String,
    pub feedback: Vec<FeedbackRow>,
}

/// Answer of the actions and feedback endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct InsertedResponse {
    pub inserted: u32,
    pub duplicates: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReleaseOutcome {
    /// The day ran: the persona moves to its next cadence slot.
    Done,
    /// The day failed: the persona is due again after a capped, jittered backoff.
    Failed,
    /// Claimed but never started (the runner is stopping): the lease is cleared with
    /// no backoff and no failure counted, so the persona is claimable at once.
    Abandoned,
}

/// Body of `POST /api/v1/internal/personas/{id}/heartbeat`: extend a held lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The token of the claim; a stale one answers 409 `lease_lost`.
    pub lease_token: Uuid,
    /// The lease runs this long from now (1 to `personas.max_lease_secs`).
    pub lease_seconds: u32,
}

/// Answer of the heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// The new expiry of the lease.
    pub lease_expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseRequest {
    pub lease_token: Uuid,
    pub outcome: ReleaseOutcome,
    /// Why the run failed (kept for operators); ignored on `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReleaseResponse {
    pub released: bool,
    pub last_active_at: Option<DateTime<Utc>>,
    /// When a failed persona becomes due again at the earliest.
    pub retry_after: Option<DateTime<Utc>>,
}

/// The lease a persona is under, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LeaseInfo {
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

/// `GET …/personas/{id}`: the profile for operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PersonaProfile {
    #[serde(flatten)]
    pub persona: DuePersona,
    pub slug: String,
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    pub lease: Option<LeaseInfo>,
    pub consecutive_failures: i32,
    pub retry_after: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub actions_total: i64,
    pub last_tick_id: Option<String>,
}

/// One recent rating with its note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RatingNote {
    pub tick_id: String,
    pub rating: Option<i64>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Ratings of one module by one persona.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModuleRatings {
    pub module: String,
    pub count: i64,
    pub average: Option<f64>,
    pub last: Vec<RatingNote>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PersonaRatingsResponse {
    pub persona_id: Uuid,
    pub modules: Vec<ModuleRatings>,
}

/// One of a persona's recent tool calls (`GET …/personas/{id}/actions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RecentAction {
    pub id: String,
    pub tick_id: String,
    pub tool_name: String,
    pub module: String,
    pub result: ActionResult,
    pub error_message: Option<String>,
    pub latency_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RecentActionsResponse {
    pub persona_id: Uuid,
    /// Newest first.
    pub actions: Vec<RecentAction>,
}

#[cfg(test)]
mod batch_tick_tests {
    use super::*;

    #[test]
    fn a_runs_batch_ticks_are_its_own_and_no_others() {
        for k in 0..3 {
            assert!(is_batch_tick_of(&batch_tick_id("t.p", k), "t.p"));
        }
        assert_eq!(batch_tick_id("t.p", 2), "t.p~2");
        for other in ["t.p~", "t.p~x", "t.p~1~2", "t.p2", "t.q", "t.p-1"] {
            assert!(!is_batch_tick_of(other, "t.p"), "{other}");
        }
    }
}
