//! Missions: user-defined AI missions, stored as records in app `ai`, table `aiMissions`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// App id and table of mission records.
pub const MISSIONS_APP: &str = "ai";
pub const MISSIONS_TABLE: &str = "aiMissions";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MissionState {
    Active,
    Paused,
    Done,
    Archived,
}

/// When a mission runs. `timezone` is an IANA name (default UTC) for the
/// wall-clock kinds (daily, weekly, cron).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MissionCadence {
    Manual,
    #[serde(rename_all = "camelCase")]
    Interval {
        every_minutes: u32,
    },
    #[serde(rename_all = "camelCase")]
    Daily {
        at_hour: u8,
        at_minute: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// `day_of_week`: 0 = Sunday … 6 = Saturday.
    #[serde(rename_all = "camelCase")]
    Weekly {
        day_of_week: u8,
        at_hour: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Cron {
        expression: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
}

/// A record a mission reads before planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MissionInputRef {
    pub module: String,
    pub table: String,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Planned,
    Staged,
    Approved,
    Rejected,
    Skipped,
    Failed,
}

/// What a plan step proposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum StepIntent {
    #[serde(rename_all = "camelCase")]
    ToolCall {
        tool_name: String,
        params: serde_json::Value,
    },
    Note {
        body: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    pub id: String,
    pub summary: String,
    pub intent: StepIntent,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// The tool's result after approval, or the error after a failed execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<serde_json::Value>,
    /// The user's note when rejecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum IterationStatus {
    Running,
    AwaitingReview,
    Approved,
    Rejected,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum IterationSource {
    Browser,
    Server,
}

/// A step the planner proposed that validation dropped, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DroppedStep {
    pub tool_name: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MissionIteration {
    pub id: String,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub plan: Vec<PlanStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_feedback: Option<String>,
    pub overall_status: IterationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IterationSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_steps: Vec<DroppedStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The slot this iteration was planned for (`nextRunAt` at claim time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// A mission as stored in its record (`data`), with the record id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Mission {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub objective: String,
    #[serde(default)]
    pub concept_markdown: String,
    pub state: MissionState,
    pub cadence: MissionCadence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub inputs: Vec<MissionInputRef>,
    #[serde(default)]
    pub iterations: Vec<MissionIteration>,
}

/// Body of `POST /api/v1/internal/missions/claim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MissionClaimRequest {
    pub worker: String,
    pub limit: u32,
    pub lease_seconds: u32,
}

/// One input of a mission, read from the user's records (size-bounded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResolvedInput {
    pub module: String,
    pub table: String,
    pub id: String,
    /// `false` when the referenced record does not exist (or was deleted).
    pub found: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The record's text (content, description, notes …), truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Whether `content` was cut.
    #[serde(default)]
    pub truncated: bool,
}

/// A due mission, leased to the claimer, with everything the planner needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimedMission {
    pub user_id: uuid::Uuid,
    pub mission: Mission,
    /// The slot being planned (the mission's `nextRunAt` at claim time).
    pub scheduled_for: DateTime<Utc>,
    pub lease_token: uuid::Uuid,
    pub lease_expires_at: DateTime<Utc>,
    pub resolved_inputs: Vec<ResolvedInput>,
    /// The last iterations (newest last), with the user's verdicts and feedback.
    pub recent_iterations: Vec<MissionIteration>,
    /// Names of the tools a plan may propose (the registry's proposable set).
    pub proposable_tools: Vec<String>,
    /// LLM tokens this user's missions used since 00:00 UTC today.
    pub tokens_used_today: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MissionClaimResponse {
    pub missions: Vec<ClaimedMission>,
    pub server_time: DateTime<Utc>,
}

/// Body of `POST /api/v1/internal/missions/{id}/iterations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteIterationRequest {
    pub lease_token: uuid::Uuid,
    pub iteration: MissionIteration,
    /// LLM tokens spent planning it (counted against the user's daily budget).
    #[serde(default)]
    pub tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WriteIterationResponse {
    /// `false` when an iteration with this id was already written (a retry).
    pub written: bool,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Body of `POST /api/v1/internal/missions/{id}/release`: give the lease back
/// without an iteration (e.g. the LLM was unreachable); the mission is due
/// again after `retryAfterSeconds` (default: at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MissionReleaseRequest {
    pub lease_token: uuid::Uuid,
    #[serde(default)]
    pub retry_after_seconds: Option<u32>,
}

/// Body of the user's `…/steps/{stepId}/reject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RejectStepRequest {
    #[serde(default)]
    pub feedback: Option<String>,
}
