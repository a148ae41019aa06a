//! Reports over persona runs, actions and feedback (`/api/v1/internal/reports/*`).
//!
//! Rules:
//! - Periods are half-open `[from, to)`; the defaults are `to` = now, `from` = `to` − 7 days.
//! - Ratings are 1–5. `__parse` rows (rating `null`) are counted apart, never averaged.
//! - `ci95` is the 95 % Student-t interval of the mean (`mean ± t(0.975, n−1)·s/√n`),
//!   clamped to `[1, 5]`; with `n = 1` it is the whole scale `[1, 5]` (one rating says
//!   nothing about spread); with `n = 0` it is `null`, as is `mean`.
//! - "Low" ratings are those ≤ [`LOW_RATING_MAX`].
//! - Buckets are UTC: `day` starts at 00:00, `week` on Monday 00:00.
//! - Tokens are [`TokenUsage`] (`{input, output, cacheRead, cacheWrite}`) everywhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::tick::TokenUsage;

/// Ratings at or below this are "low" (their notes are shown in `lowNotes`).
pub const LOW_RATING_MAX: i16 = 2;
/// Low notes shown per module.
pub const LOW_NOTES_PER_MODULE: usize = 3;

/// Bucket width of trend and token reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    #[default]
    Day,
    Week,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            _ => None,
        }
    }
}

/// Count and mean of a period's ratings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PeriodStats {
    pub n: u64,
    /// `null` when `n = 0`.
    pub mean: Option<f64>,
}

/// A recent low rating with its note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LowNote {
    /// The run (`<tickId>.<personaId>`) the rating belongs to.
    pub run_id: String,
    pub rating: i16,
    pub notes: Option<String>,
    pub at: DateTime<Utc>,
}

/// One row of the modules scoreboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModuleScore {
    pub module: String,
    pub n: u64,
    pub mean: Option<f64>,
    /// `[low, high]`; see the module docs for the interval.
    pub ci95: Option<[f64; 2]>,
    /// The period of the same length just before `from`.
    pub previous: PeriodStats,
    /// `mean − previous.mean`; `null` when either is.
    pub delta: Option<f64>,
    /// Share of this module's tool calls in the period that errored; `null` without calls.
    pub error_share: Option<f64>,
    /// Tool calls of this module in the period.
    pub tool_calls: u64,
    /// The three most recent low-rated notes of the period, newest first.
    pub low_notes: Vec<LowNote>,
}

/// `GET /api/v1/internal/reports/modules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModulesReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The app version filter, if one was given.
    pub app_version: Option<String>,
    /// Worst first: lowest mean first, modules without ratings in the period last.
    pub modules: Vec<ModuleScore>,
    /// `__parse` rows of the period (ratings that could not be parsed).
    pub parse_failures: u64,
}

/// Ratings of one bucket (or one persona) with their interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrendBucket {
    pub start: DateTime<Utc>,
    pub n: u64,
    pub mean: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

/// One persona's ratings of the module over the whole period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PersonaBreakdown {
    pub persona_id: Uuid,
    pub slug: String,
    pub n: u64,
    pub mean: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

/// `GET /api/v1/internal/reports/modules/{module}/trend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModuleTrend {
    pub module: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket: Bucket,
    /// Oldest first; only buckets with at least one rating.
    pub buckets: Vec<TrendBucket>,
    /// Worst first (lowest mean), then by slug.
    pub personas: Vec<PersonaBreakdown>,
}

/// The newest run of a failure group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FailureExample {
    pub run_id: String,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// Failed (and simulator-failed) runs of one error class and persona.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FailureGroup {
    /// `unknown` when the run carried no class.
    pub error_class: String,
    pub persona_id: Uuid,
    pub slug: String,
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub example: FailureExample,
}

/// `GET /api/v1/internal/reports/failures`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FailuresReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Most failures first, then newest.
    pub groups: Vec<FailureGroup>,
    /// Runs in the groups.
    pub total: u64,
}

/// Tokens of one bucket, provider and model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokenRow {
    pub start: DateTime<Utc>,
    pub provider: String,
    pub model: String,
    pub runs: u64,
    pub tokens: TokenUsage,
}

/// `GET /api/v1/internal/reports/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TokensReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bucket: Bucket,
    /// Oldest bucket first, then provider, then model.
    pub rows: Vec<TokenRow>,
    /// Sum over all rows.
    pub total: TokenUsage,
}
