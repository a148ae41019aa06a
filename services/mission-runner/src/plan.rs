//! Plans one claimed mission: budget check → prompt → LLM → validated steps → iteration.
//!
//! Rules:
//! - The user's daily token budget is checked before any LLM call; over budget means no
//!   call and a release until the next UTC day.
//! - The iteration id is uuid v5 of (user, mission, scheduled slot): planning the same slot
//!   again (a retried write-back, a lease lost mid-way) yields the same id, so auth-internal
//!   writes it once. Step ids are `<iterationId>-<i>`.
//! - Outcomes ([`PlanOutcome`]): valid steps → `awaiting-review`; an explicit empty plan
//!   (`"steps": []`, nothing dropped) → `approved` with the model's reason as summary (there
//!   is nothing to review, and it must not sit in the review inbox); a non-empty answer
//!   with no valid step, an unparsable answer, or an empty answer → a `failed` iteration
//!   whose `error` says why (a parse failure: written back so the user sees it and the
//!   schedule advances); an LLM error before any answer → no iteration, release with the
//!   workspace's failure backoff ([`Backoff::spread`]: `MISSION_LLM_RETRY_SECS` ±25 %, the
//!   same rule auth-internal applies to a failed persona day).
//! - Nothing is executed: the planner only proposes.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, Utc};
use llm::{ChatRequest, Llm, Purpose, RequestMeta, StopReason};
use service_kit::Clock;
use tools::{Registry, ToolSpec};
use types::missions::{
    ClaimedMission, IterationSource, IterationStatus, MissionIteration, PlanStep, StepIntent,
    StepStatus,
};
use types::tick::TokenUsage;
use uuid::Uuid;

use crate::parse::{
    LoopFailure, StepValidator, Validated, offered_tools, parse_plan, run_tool_loop, tool_defs,
    validate_steps,
};
use types::backoff::Backoff;
use types::text::{one_line, truncate_chars};

use crate::config::{PlanModeSetting, PlannerSettings};
use crate::prompts::{self, PlanMode};

/// Namespace of iteration ids (uuid v5).
pub const ITERATION_NAMESPACE: Uuid = Uuid::from_u128(0x8a1c_5e0b_7f3d_4c2a_9b61_2d4e_6f80_a1b3);

/// Longest plan summary kept.
pub const MAX_SUMMARY_CHARS: usize = 1_000;
/// Longest excerpt of an unparsable answer kept in the iteration's error.
pub const MAX_RAW_EXCERPT_CHARS: usize = 300;

/// What planning one mission came to.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanOutcome {
    /// A plan (`awaiting-review`, or `approved` when empty): write it back. Counts as a
    /// plan produced.
    Planned {
        /// The iteration to write.
        iteration: MissionIteration,
        /// Tokens spent.
        tokens: TokenUsage,
    },
    /// A `failed` iteration (no valid step, unparsable or empty answer): write it back.
    /// Counts as a parse failure.
    ParseFailed {
        /// The iteration to write.
        iteration: MissionIteration,
        /// Tokens spent.
        tokens: TokenUsage,
    },
    /// No tool may be proposed for this mission, so no LLM call: a `failed` iteration
    /// saying so is written back. Counted in no bucket.
    Unplannable {
        /// The iteration to write.
        iteration: MissionIteration,
    },
    /// The LLM failed before answering: release the lease, due again after
    /// `retry_after_seconds`. Counts as an LLM failure.
    LlmFailed {
        /// Why.
        error: String,
        /// When the mission should be due again.
        retry_after_seconds: u32,
        /// Tokens spent (zero: the first call failed; a failure in a later round of the
        /// tool loop keeps the calls made so far and is a plan instead).
        tokens: TokenUsage,
    },
    /// The user's missions used their daily budget: no LLM call, release until the next
    /// UTC day. Counted in no bucket.
    OverBudget {
        /// Tokens used today (claim figure + this tick's spending).
        used: u64,
        /// The budget.
        budget: u64,
        /// Seconds until 00:00 UTC.
        retry_after_seconds: u32,
    },
}

impl PlanOutcome {
    /// Tokens spent.
    pub fn tokens(&self) -> TokenUsage {
        match self {
            Self::Planned { tokens, .. }
            | Self::ParseFailed { tokens, .. }
            | Self::LlmFailed { tokens, .. } => *tokens,
            Self::Unplannable { .. } | Self::OverBudget { .. } => TokenUsage::default(),
        }
    }

    /// The iteration to write back, if any.
    pub fn iteration(&self) -> Option<&MissionIteration> {
        match self {
            Self::Planned { iteration, .. }
            | Self::ParseFailed { iteration, .. }
            | Self::Unplannable { iteration } => Some(iteration),
            Self::LlmFailed { .. } | Self::OverBudget { .. } => None,
        }
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Planned { .. } => "planned",
            Self::ParseFailed { .. } => "parse_failed",
            Self::Unplannable { .. } => "unplannable",
            Self::LlmFailed { .. } => "llm_failed",
            Self::OverBudget { .. } => "over_budget",
        }
    }
}

/// The deterministic id of the iteration planned for `claimed`'s slot.
pub fn iteration_id(claimed: &ClaimedMission) -> Uuid {
    let key = format!(
        "{}:{}:{}",
        claimed.user_id,
        claimed.mission.id,
        claimed.scheduled_for.timestamp_millis()
    );
    Uuid::new_v5(&ITERATION_NAMESPACE, key.as_bytes())
}

/// Seconds from `now` until the next 00:00 UTC (at least 1).
pub fn seconds_until_next_utc_day(now: DateTime<Utc>) -> u32 {
    let next = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    next.map_or(86_400, |next| {
        u32::try_from((next - now).num_seconds()).unwrap_or(86_400)
    })
    .max(1)
}

/// What the model's answer came to, before it becomes an iteration.
enum Answer {
    Plan {
        summary: Option<String>,
        validated: Validated,
    },
    Unparsable {
        reason: String,
        excerpt: String,
    },
    Empty,
}

/// Plans missions with one LLM.
#[derive(Debug, Clone)]
pub struct Planner {
    llm: Llm,
    settings: PlannerSettings,
    clock: Clock,
}

impl Planner {
    /// A planner over `llm`.
    pub fn new(llm: Llm, settings: PlannerSettings, clock: Clock) -> Self {
        Self {
            llm,
            settings,
            clock,
        }
    }

    /// The LLM in use.
    pub fn llm(&self) -> &Llm {
        &self.llm
    }

    /// The settings in force.
    pub fn settings(&self) -> &PlannerSettings {
        &self.settings
    }

    /// The planning path this planner takes.
    pub fn mode(&self) -> PlanMode {
        match self.settings.mode {
            PlanModeSetting::Json => PlanMode::Json,
            PlanModeSetting::Tools => PlanMode::Tools,
            PlanModeSetting::Auto if self.llm.supports_tools() => PlanMode::Tools,
            PlanModeSetting::Auto => PlanMode::Json,
        }
    }

    /// Plans `claimed`. `spent_this_tick` is what this user's other missions spent in the
    /// current tick (the claim's `tokensUsedToday` does not include it yet).
    pub async fn plan(&self, claimed: &ClaimedMission, spent_this_tick: u64) -> PlanOutcome {
        let started_at = self.clock.now();
        let budget = self.settings.daily_token_budget;
        let used = claimed.tokens_used_today.saturating_add(spent_this_tick);
        if budget > 0 && used >= budget {
            return PlanOutcome::OverBudget {
                used,
                budget,
                retry_after_seconds: seconds_until_next_utc_day(started_at),
            };
        }
        let registry = Registry::global();
        let offered = offered_tools(registry, &claimed.proposable_tools);
        if offered.is_empty() {
            let iteration = self.iteration(
                claimed,
                started_at,
                Vec::new(),
                None,
                IterationStatus::Failed,
                Vec::new(),
                Some("no tool may be proposed for this mission, so nothing was planned".into()),
            );
            return PlanOutcome::Unplannable { iteration };
        }
        let mode = self.mode();
        let request = self.request(claimed, &offered, mode, started_at);
        let budget_left = (budget > 0).then(|| budget - used);

        let (answer, tokens, stop) = match mode {
            PlanMode::Tools => {
                let mut request = request;
                request.tools = tool_defs(&offered);
                let validator = StepValidator::new(registry, &offered);
                match run_tool_loop(
                    &self.llm,
                    request,
                    validator,
                    self.settings.max_rounds,
                    budget_left,
                )
                .await
                {
                    Err(LoopFailure { error }) => return self.llm_failed(claimed, &error),
                    Ok(out) => {
                        if let Some(e) = &out.late_error {
                            tracing::warn!(
                                mission.id = %claimed.mission.id,
                                rounds = out.rounds,
                                error = %e,
                                "LLM failed after {} round(s) of mission {}; keeping the calls made so far",
                                out.rounds,
                                claimed.mission.id
                            );
                        }
                        let answer = if out.calls == 0 {
                            // A model without native tools answers in text: read it as the
                            // JSON contract.
                            answer_from_text(out.final_text.as_deref(), registry, &offered)
                        } else {
                            Answer::Plan {
                                summary: out
                                    .final_text
                                    .as_deref()
                                    .map(|t| truncate_chars(t.trim(), MAX_SUMMARY_CHARS)),
                                validated: out.validated,
                            }
                        };
                        (answer, out.usage, out.last_stop)
                    }
                }
            }
            PlanMode::Json => match self.llm.chat(&request).await {
                Err(error) => return self.llm_failed(claimed, &error),
                Ok(response) => (
                    answer_from_text(response.text.as_deref(), registry, &offered),
                    response.usage,
                    Some(response.stop),
                ),
            },
        };
        self.outcome(claimed, started_at, answer, tokens, stop)
    }

    fn request(
        &self,
        claimed: &ClaimedMission,
        offered: &[&ToolSpec],
        mode: PlanMode,
        now: DateTime<Utc>,
    ) -> ChatRequest {
        let prompt = prompts::build(claimed, offered, mode, now);
        let mut request = ChatRequest::new(prompt.system, prompt.user, self.settings.max_tokens);
        request.temperature = self.settings.temperature;
        let id = iteration_id(claimed);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&id.as_bytes()[..8]);
        let tool_modules: BTreeMap<String, String> = offered
            .iter()
            .map(|t| (t.name.to_string(), t.module.to_string()))
            .collect();
        let tool_schemas = match mode {
            PlanMode::Json => offered
                .iter()
                .map(|t| (t.name.to_string(), t.input_schema.clone()))
                .collect(),
            PlanMode::Tools => BTreeMap::new(),
        };
        request.meta = RequestMeta {
            seed: u64::from_le_bytes(seed),
            purpose: Purpose::Plan,
            tool_modules,
            tool_schemas,
            locale: "en".into(),
            now: Some(now),
            ..RequestMeta::default()
        };
        request
    }

    fn llm_failed(&self, claimed: &ClaimedMission, error: &llm::LlmError) -> PlanOutcome {
        let base = self
            .settings
            .llm_retry_after
            .max(std::time::Duration::from_secs(1));
        // Spread so missions that failed together do not return together. A mission keeps
        // no failure count, so every LLM failure is a first one.
        let secs = Backoff::new(base, base.saturating_mul(2))
            .spread(1, rand::random())
            .as_secs();
        tracing::warn!(
            mission.id = %claimed.mission.id,
            error = %error,
            retry_after_seconds = secs,
            "LLM failed for mission {}",
            claimed.mission.id
        );
        PlanOutcome::LlmFailed {
            error: truncate_chars(&error.to_string(), 500),
            retry_after_seconds: u32::try_from(secs.max(1)).unwrap_or(u32::MAX),
            tokens: TokenUsage::default(),
        }
    }

    fn outcome(
        &self,
        claimed: &ClaimedMission,
        started_at: DateTime<Utc>,
        answer: Answer,
        tokens: TokenUsage,
        stop: Option<StopReason>,
    ) -> PlanOutcome {
        let cut_off = if stop == Some(StopReason::MaxTokens) {
            " (the answer was cut off at the max_tokens limit)"
        } else {
            ""
        };
        match answer {
            Answer::Plan { summary, validated } => {
                let Validated { steps, dropped } = validated;
                if steps.is_empty() && !dropped.is_empty() {
                    let first = dropped.first().map_or("", |d| d.reason.as_str());
                    let error = format!(
                        "every proposed step was invalid ({} dropped; first: {first})",
                        dropped.len()
                    );
                    let iteration = self.iteration(
                        claimed,
                        started_at,
                        Vec::new(),
                        summary,
                        IterationStatus::Failed,
                        dropped,
                        Some(error),
                    );
                    return PlanOutcome::ParseFailed { iteration, tokens };
                }
                let status = if steps.is_empty() {
                    IterationStatus::Approved
                } else {
                    IterationStatus::AwaitingReview
                };
                let summary = summary.or_else(|| {
                    steps
                        .is_empty()
                        .then(|| "Nothing to do in this iteration.".to_string())
                });
                let iteration =
                    self.iteration(claimed, started_at, steps, summary, status, dropped, None);
                PlanOutcome::Planned { iteration, tokens }
            }
            Answer::Unparsable { reason, excerpt } => {
                let error = format!(
                    "the plan could not be read: {reason}{cut_off}; the answer began: {excerpt}"
                );
                let iteration = self.iteration(
                    claimed,
                    started_at,
                    Vec::new(),
                    None,
                    IterationStatus::Failed,
                    Vec::new(),
                    Some(error),
                );
                PlanOutcome::ParseFailed { iteration, tokens }
            }
            Answer::Empty => {
                let iteration = self.iteration(
                    claimed,
                    started_at,
                    Vec::new(),
                    None,
                    IterationStatus::Failed,
                    Vec::new(),
                    Some(format!(
                        "the model returned an empty answer and proposed no step{cut_off}"
                    )),
                );
                PlanOutcome::ParseFailed { iteration, tokens }
            }
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one private constructor of the iteration"
    )]
    fn iteration(
        &self,
        claimed: &ClaimedMission,
        started_at: DateTime<Utc>,
        steps: Vec<crate::parse::ValidStep>,
        summary: Option<String>,
        overall_status: IterationStatus,
        dropped_steps: Vec<types::missions::DroppedStep>,
        error: Option<String>,
    ) -> MissionIteration {
        let id = iteration_id(claimed).to_string();
        let plan = steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| PlanStep {
                id: format!("{id}-{i}"),
                summary: s.summary,
                intent: StepIntent::ToolCall {
                    tool_name: s.tool_name,
                    params: s.params,
                },
                status: StepStatus::Planned,
                rationale: s.rationale,
                outcome: None,
                feedback: None,
                decided_at: None,
            })
            .collect();
        MissionIteration {
            id,
            started_at,
            finished_at: Some(self.clock.now()),
            plan,
            summary: summary.filter(|s| !s.is_empty()),
            user_feedback: None,
            overall_status,
            source: Some(IterationSource::Server),
            dropped_steps,
            error,
            scheduled_for: Some(claimed.scheduled_for),
        }
    }
}

fn answer_from_text(text: Option<&str>, registry: &Registry, offered: &[&ToolSpec]) -> Answer {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Answer::Empty;
    };
    match parse_plan(text) {
        Ok(plan) => Answer::Plan {
            summary: plan.summary,
            validated: validate_steps(registry, offered, &plan.steps),
        },
        Err(e) => Answer::Unparsable {
            reason: e.to_string(),
            excerpt: format!("\"{}\"", one_line(text, MAX_RAW_EXCERPT_CHARS)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_utc_day() {
        let t = Utc.with_ymd_and_hms(2026, 2, 28, 23, 59, 30).unwrap();
        assert_eq!(seconds_until_next_utc_day(t), 30);
        let t = Utc.with_ymd_and_hms(2028, 2, 28, 0, 0, 0).unwrap();
        assert_eq!(seconds_until_next_utc_day(t), 86_400);
    }
}
