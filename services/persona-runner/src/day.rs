//! One persona's simulated day: log in → MCP session → main turn with tools → rating
//! turn → write actions and feedback → release the lease.
//!
//! Rules:
//! - Every tool call goes through MCP and becomes exactly one [`ActionRow`], paired with
//!   its result by tool-call id; `isError` (or a failed call) marks that action `error`.
//! - The main turn runs under the persona's deadline, the runner's cancellation and a
//!   token budget; whatever happened before a stop is still written. The budget counts
//!   billed-equivalent tokens ([`TokenUsage::billed_equivalent`]: a cache read 0.1×, a
//!   cache write 1.25×), so caching stretches it instead of tripping it.
//! - The model is offered the persona's tools only (see [`crate::offer`]).
//! - Outcomes and releases:
//!   - success (≥ 1 tool call, rated or a `__parse` row) → `done`;
//!   - *simulator failure* (no tool call at all; refusal or broken character) → `done`,
//!     counted in `simulatorFailures`, not in `failed`: the product did nothing wrong, and
//!     `done` moves the persona to its next cadence slot instead of retrying every tick;
//!   - anything else (login, MCP, LLM, deadline, budget, write-back, shutdown) → `failed`
//!     with the error, which auth-internal turns into a capped, jittered backoff.
//! - The run id (tick id of the rows) is `{tickId}.{personaId}`: unique per persona and
//!   tick, identical on every retry of a write.
//! - The run row (`persona_runs`) is written by [`write_run`] alone: a snapshot after every
//!   model turn of the day (best effort) and the final one, with the last actions and the
//!   feedback, before the release. Each snapshot carries a higher `revision`, so a retried older one
//!   never overwrites a newer one. The transcript is built as the day goes: system prompt,
//!   day prompt, every model turn with its tool calls, every tool result as the model saw
//!   it, then the rating prompt and the raw rating reply.
//! - Nothing executed is lost: each tool call carries its action row id in MCP `_meta`,
//!   so auth-internal records the row with the tool's effect; the runner's rows (result
//!   and latency as the model saw them) complete the server's rows. They travel with the
//!   run-row snapshot after every turn (only the rows not yet acknowledged, by
//!   `firstIndex`: one request, one transaction per turn), and the final snapshot carries
//!   what is left with the feedback.
//! - An auth-internal restart is ridden out: calls retry for `AUTH_INTERNAL_RETRY_SECS`
//!   (the client's budget); a lost MCP session is reopened (logging in again) and the
//!   call re-sent under the same action id, which the server never runs twice.
//! - While the day runs its lease is extended by a heartbeat every third of the lease,
//!   fenced by the lease token, so a finished day's rows are never abandoned to
//!   another worker while this one still holds the persona.
//! - A day is one trace (`invoke_agent`), each tool call one `execute_tool` span whose
//!   context travels in the MCP request's `_meta` ([`crate::otel`]).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use llm::{ChatRequest, Llm, LlmError, Message, Purpose, RequestMeta, ToolResult};
use rand::seq::SliceRandom;
use runner_kit::{ClientError, Shutdown};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tracing::Instrument;
use types::{
    names::sanitize_name as safe_tool_name,
    personas::{ActionResult, ActionRow, ClaimedPersona, FeedbackRow, ReleaseOutcome},
    runs::{
        RunOutcome, RunRecord, TRANSCRIPT_CAP_BYTES, Transcript, TranscriptMessage,
        TranscriptToolCall, error_class,
    },
    text::truncate_chars,
    tick::TokenUsage,
};
use uuid::Uuid;

use crate::{
    api::{PersonaApi, action_batch, action_row_id, batch_start, feedback_batch},
    mcp::{McpError, McpSession, UNKNOWN_MODULE},
    offer::{self, ToolScope},
    otel,
    prompts::{self, Lang},
    rating,
};

/// Longest error message kept per action.
const MAX_ACTION_ERROR: usize = 500;
/// Longest wait for the after-each-turn write of the turn's rows and run row.
const PROGRESS_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a day needs besides the persona.
#[derive(Clone)]
pub struct DayConfig {
    /// `{AUTH_INTERNAL_URL}/mcp`.
    pub mcp_url: String,
    /// Model turns of the main conversation.
    pub max_turns: u32,
    /// Wall-clock limit.
    pub deadline: Duration,
    /// Token limit of the day (main + rating).
    pub token_budget: u64,
    /// `max_tokens` per request.
    pub max_tokens: u32,
    /// Which tools the persona is offered (`PERSONA_TOOLS`).
    pub tools: ToolScope,
    /// This runner's worker id (the claim's `worker`), stored on the run row.
    pub worker: String,
    /// The app release under test (`PERSONA_APP_VERSION`), stored on the run row.
    pub app_version: String,
    /// Length of the lease the heartbeat renews (the claim's `leaseSeconds`).
    pub lease_seconds: u32,
}

/// Why a day failed (a product/infrastructure failure, not the simulated user).
#[derive(Debug, thiserror::Error)]
pub enum DayError {
    /// Logging in as the persona failed.
    #[error("login failed: {0}")]
    Login(ClientError),
    /// The MCP session could not be opened.
    #[error(transparent)]
    Mcp(#[from] McpError),
    /// The model failed.
    #[error("LLM failed: {0}")]
    Llm(#[from] LlmError),
    /// The deadline passed.
    #[error("deadline of {0:?} exceeded")]
    Deadline(Duration),
    /// The token budget was used up.
    #[error("token budget of {budget} exceeded ({used} used)")]
    Budget {
        /// The budget.
        budget: u64,
        /// Tokens used when stopped.
        used: u64,
    },
    /// The runner is shutting down.
    #[error("interrupted: the runner is shutting down")]
    Cancelled,
    /// Writing rows back failed.
    #[error("write-back failed: {0}")]
    WriteBack(ClientError),
}

impl DayError {
    /// The run row's `errorClass` (see `types::runs::error_class`): `context_length`
    /// when the model's context window was exceeded (the LLM's own class), `llm` for any
    /// other model failure (its finer class stays in the error text).
    pub fn class(&self) -> &'static str {
        match self {
            Self::Login(_) => error_class::LOGIN,
            Self::Mcp(_) => error_class::MCP,
            Self::Llm(e) if e.class() == llm::ErrorClass::ContextLength => {
                error_class::CONTEXT_LENGTH
            }
            Self::Llm(_) => error_class::LLM,
            Self::Deadline(_) => error_class::DEADLINE,
            Self::Budget { .. } => error_class::BUDGET,
            Self::Cancelled => error_class::SHUTDOWN,
            Self::WriteBack(_) => error_class::WRITE_BACK,
        }
    }
}

/// How one persona's run ended.
#[derive(Debug)]
pub struct PersonaRun {
    /// The persona.
    pub persona_id: Uuid,
    /// `Ok(())` on success; the simulated user's failure is `simulator_failure`.
    pub result: Result<(), String>,
    /// Why the simulated user failed, if it did.
    pub simulator_failure: Option<String>,
    /// Tokens used, in four kinds.
    pub tokens: TokenUsage,
    /// The prompt tokens the provider reported for the day's first request (fresh input
    /// + cache read + cache write), if one was answered.
    pub first_prompt_tokens: Option<u64>,
    /// [`DayError::class`] of a failed run (the release error of a run that failed only
    /// at release is `release`).
    pub error_class: Option<&'static str>,
    /// Actions recorded.
    pub actions: Vec<ActionRow>,
    /// Feedback rows written.
    pub feedback: Vec<FeedbackRow>,
    /// Claimed but never started (the runner was stopping): released `abandoned`.
    pub abandoned: bool,
}

/// What the day collected, kept outside the day's future so a stop loses nothing.
#[derive(Default)]
struct DayState {
    actions: Vec<ActionRow>,
    tokens: TokenUsage,
    closing_text: Option<String>,
    feedback: Vec<FeedbackRow>,
    transcript: Transcript,
    /// Model turns of the main conversation.
    turns: u32,
    /// Prompt tokens of the first request (input + cache read + cache write).
    first_prompt_tokens: Option<u64>,
    /// Revision of the last run-row snapshot sent.
    revision: u32,
    /// How many of `actions` auth-internal has acknowledged (written); later snapshots
    /// carry only the rows after them.
    actions_written: usize,
}

/// The fixed facts of a run, for its run-row snapshots.
pub struct RunMeta {
    /// The persona.
    pub persona_id: Uuid,
    /// `{tickId}.{personaId}`.
    pub run_id: String,
    /// The tick.
    pub tick_id: String,
    /// This runner's worker id.
    pub worker: String,
    /// `anthropic`, `openai` or `sim`.
    pub provider: String,
    /// The configured model.
    pub model: String,
    /// `PERSONA_APP_VERSION`.
    pub app_version: String,
    /// When the run began.
    pub started_at: DateTime<Utc>,
}

/// How a run ended, for its final snapshot.
pub struct RunEnd {
    /// The outcome.
    pub outcome: RunOutcome,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// One of `types::runs::error_class`.
    pub error_class: Option<&'static str>,
}

/// The run-row snapshot of `state` (in progress when `end` is `None`).
fn run_record(meta: &RunMeta, state: &DayState, end: Option<&RunEnd>) -> RunRecord {
    let mut transcript = state.transcript.clone();
    // The server caps too; capping here keeps the request small.
    transcript.cap(TRANSCRIPT_CAP_BYTES);
    let tool_errors = state
        .actions
        .iter()
        .filter(|a| a.result == ActionResult::Error)
        .count();
    RunRecord {
        id: meta.run_id.clone(),
        tick_id: meta.tick_id.clone(),
        revision: state.revision,
        worker: meta.worker.clone(),
        provider: meta.provider.clone(),
        model: meta.model.clone(),
        app_version: meta.app_version.clone(),
        started_at: meta.started_at,
        finished_at: end.map(|_| Utc::now()),
        outcome: end.map(|e| e.outcome),
        error: end.and_then(|e| e.error.clone()),
        error_class: end.and_then(|e| e.error_class.map(str::to_owned)),
        turns: state.turns,
        tool_calls: u32::try_from(state.actions.len()).unwrap_or(u32::MAX),
        tool_errors: u32::try_from(tool_errors).unwrap_or(u32::MAX),
        tokens: state.tokens,
        first_prompt_tokens: state.first_prompt_tokens,
        transcript: Some(transcript),
        actions: None,
        feedback: None,
    }
}

/// Writes one snapshot of the run row (the next revision); the only writer of run rows.
/// With `rows`, the snapshot also carries the actions not yet acknowledged (up to the
/// end of their batch) and, in a final snapshot, the feedback: one request and one
/// transaction for the turn's rows and the run row.
async fn write_run(
    api: &PersonaApi,
    meta: &RunMeta,
    state: &mut DayState,
    end: Option<&RunEnd>,
    rows: bool,
) -> Result<(), ClientError> {
    state.revision += 1;
    let mut record = run_record(meta, state, end);
    let mut written = state.actions_written;
    if rows {
        if let Some(batch) = action_batch(&meta.run_id, written, &state.actions) {
            written += batch.actions.len();
            record.actions = Some(batch);
        }
        if end.is_some() && !state.feedback.is_empty() {
            record.feedback = Some(feedback_batch(&meta.run_id, &state.feedback));
        }
    }
    api.post_run(meta.persona_id, &record).await?;
    state.actions_written = written;
    Ok(())
}

/// The final snapshot with every row not yet written: whole batches a snapshot cannot
/// carry (a day of more than 500 calls) first, then one snapshot with the rest, the
/// feedback and the outcome.
async fn write_final(
    api: &PersonaApi,
    meta: &RunMeta,
    state: &mut DayState,
    end: &RunEnd,
) -> Result<(), ClientError> {
    // The final snapshot carries the last batch; the whole ones before it go first.
    let last_batch = batch_start(state.actions.len().saturating_sub(1));
    if state.actions_written < last_batch {
        api.post_actions_from(
            meta.persona_id,
            &meta.run_id,
            state.actions_written,
            &state.actions[..last_batch],
        )
        .await?;
        state.actions_written = last_batch;
    }
    write_run(api, meta, state, Some(end), true).await
}

/// The action row's input hash, the same one the MCP endpoint logs.
pub use service_kit::input_hash;

/// The per-run seed of the `sim` provider.
fn seed_of(run_id: &str) -> u64 {
    let d = Sha256::digest(run_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// Runs one claimed persona end to end, including write-back and release, as one trace
/// (`invoke_agent {slug}`, see [`crate::otel`]).
pub async fn run_persona(
    api: &PersonaApi,
    llm: &Llm,
    cfg: &DayConfig,
    claimed: &ClaimedPersona,
    tick_id: &str,
    shutdown: &Shutdown,
) -> PersonaRun {
    let run_id = format!("{tick_id}.{}", claimed.persona.user_id);
    let span = otel::day_span(claimed, &run_id, llm.provider_name());
    let run = run_persona_traced(api, llm, cfg, claimed, tick_id, run_id, shutdown)
        .instrument(span.clone())
        .await;
    otel::record_day(
        &span,
        &run.result,
        run.simulator_failure.as_deref(),
        &run.tokens,
        run.actions.len(),
        &run.feedback,
    );
    run
}

async fn run_persona_traced(
    api: &PersonaApi,
    llm: &Llm,
    cfg: &DayConfig,
    claimed: &ClaimedPersona,
    tick_id: &str,
    run_id: String,
    shutdown: &Shutdown,
) -> PersonaRun {
    let persona_id = claimed.persona.user_id;
    let mut state = DayState::default();
    let started = Instant::now();
    let meta = RunMeta {
        persona_id,
        run_id: run_id.clone(),
        tick_id: tick_id.to_owned(),
        worker: cfg.worker.clone(),
        provider: llm.provider_name().to_owned(),
        model: llm.model().to_owned(),
        app_version: cfg.app_version.clone(),
        started_at: Utc::now(),
    };

    // The heartbeat runs until the release has returned: the final run row and the
    // release retry through an outage too, and the lease must outlive them.
    let (result, simulator_failure, error_class) = {
        let mut day_and_release = std::pin::pin!(async {
            let (mut result, simulator_failure) =
                live_and_rate(api, llm, cfg, claimed, &meta, shutdown, started, &mut state).await;

            // The rows and the run row, final, before the lease goes.
            let end_of = |result: &Result<(), DayError>| match (result, &simulator_failure) {
                (Err(e), _) => RunEnd {
                    outcome: RunOutcome::Failed,
                    error: Some(e.to_string()),
                    error_class: Some(e.class()),
                },
                (Ok(()), Some(why)) => RunEnd {
                    outcome: RunOutcome::SimulatorFailure,
                    error: Some(why.clone()),
                    error_class: Some(error_class::SIMULATOR),
                },
                (Ok(()), None) => RunEnd {
                    outcome: RunOutcome::Ok,
                    error: None,
                    error_class: None,
                },
            };
            // Write back whatever happened, even after a failure: the tool calls were real.
            if let Err(e) = write_final(api, &meta, &mut state, &end_of(&result)).await {
                tracing::warn!(persona.id = %persona_id, run.id = %run_id, error = %e, "writing the day's rows failed");
                result = Err(DayError::WriteBack(e));
                // The run row alone, so the run says why.
                if let Err(e) =
                    write_run(api, &meta, &mut state, Some(&end_of(&result)), false).await
                {
                    tracing::warn!(persona.id = %persona_id, run.id = %run_id, error = %e, "writing the run row failed");
                }
            }

            let (outcome, error) = match &result {
                Ok(()) => (ReleaseOutcome::Done, None),
                Err(e) => (ReleaseOutcome::Failed, Some(e.to_string())),
            };
            let mut error_class = result.as_ref().err().map(DayError::class);
            let mut result = result.map_err(|e| e.to_string());
            match api
                .release(persona_id, claimed.lease_token, outcome, error)
                .await
            {
                Ok(r) => {
                    tracing::debug!(persona.id = %persona_id, retry_after = ?r.retry_after, "lease released");
                }
                Err(e) => {
                    tracing::warn!(persona.id = %persona_id, error = %e, "release failed");
                    let msg = format!("release failed: {e}");
                    error_class = error_class.or(Some("release"));
                    result = Err(match result {
                        Ok(()) => msg,
                        Err(prev) => format!("{prev}; {msg}"),
                    });
                }
            }
            (result, simulator_failure, error_class)
        });
        tokio::select! {
            r = &mut day_and_release => r,
            () = keep_lease(api, persona_id, claimed.lease_token, cfg.lease_seconds) => day_and_release.await,
        }
    };

    match (&result, &simulator_failure) {
        (Err(e), _) => {
            tracing::warn!(persona.id = %persona_id, run.id = %run_id, actions = state.actions.len(), error.class = error_class.unwrap_or("unknown"), error = %e, "persona run failed");
        }
        (Ok(()), Some(why)) => {
            tracing::warn!(persona.id = %persona_id, run.id = %run_id, reason = %why, "simulated user failed (not a product failure)");
        }
        (Ok(()), None) => {
            tracing::info!(persona.id = %persona_id, run.id = %run_id, actions = state.actions.len(), ratings = state.feedback.len(), tokens = state.tokens.total(), "persona day done");
        }
    }

    PersonaRun {
        persona_id,
        result,
        simulator_failure,
        tokens: state.tokens,
        first_prompt_tokens: state.first_prompt_tokens,
        error_class,
        actions: state.actions,
        feedback: state.feedback,
        abandoned: false,
    }
}

/// The day itself (main turn, rating turn), without the write-back and the release.
#[expect(clippy::too_many_arguments, reason = "the day's inputs, passed once")]
async fn live_and_rate(
    api: &PersonaApi,
    llm: &Llm,
    cfg: &DayConfig,
    claimed: &ClaimedPersona,
    meta: &RunMeta,
    shutdown: &Shutdown,
    started: Instant,
    state: &mut DayState,
) -> (Result<(), DayError>, Option<String>) {
    let run_id = meta.run_id.as_str();
    let lived = if shutdown.is_draining() {
        Err(DayError::Cancelled)
    } else {
        tokio::select! {
            r = live_day(api, llm, cfg, claimed, meta, state) => r,
            () = tokio::time::sleep(cfg.deadline) => Err(DayError::Deadline(cfg.deadline)),
            () = shutdown.cancelled() => Err(DayError::Cancelled),
        }
    };

    let mut simulator_failure = None;
    let result = match lived {
        Ok(()) if state.actions.is_empty() => {
            let text = state.closing_text.clone().unwrap_or_default();
            let why = if prompts::looks_like_refusal(&text) {
                "refused or broke character without using the app"
            } else {
                "ended the day without a single tool call"
            };
            simulator_failure = Some(format!("{why}: {}", truncate_chars(text.trim(), 200)));
            Ok(())
        }
        Ok(()) => {
            let remaining = cfg.deadline.saturating_sub(started.elapsed());
            tokio::select! {
                r = rate_day(llm, cfg, claimed, run_id, state) => r,
                () = tokio::time::sleep(remaining) => Err(DayError::Deadline(cfg.deadline)),
                () = shutdown.cancelled() => Err(DayError::Cancelled),
            }
        }
        Err(e) => Err(e),
    };
    (result, simulator_failure)
}

/// Renews the lease every third of its length while the day runs; never returns.
/// A `lease_lost` answer (another worker holds the persona now) stops the renewals.
async fn keep_lease(api: &PersonaApi, persona_id: Uuid, token: Uuid, lease_seconds: u32) {
    let every = Duration::from_secs(u64::from(lease_seconds / 3).max(1));
    loop {
        tokio::time::sleep(every).await;
        match api.heartbeat(persona_id, token, lease_seconds).await {
            Ok(r) => {
                tracing::debug!(persona.id = %persona_id, lease.expires_at = %r.lease_expires_at, "lease extended");
            }
            Err(e) if e.code() == Some(types::error::codes::LEASE_LOST) => {
                tracing::warn!(persona.id = %persona_id, "lease lost: another worker holds this persona now");
                std::future::pending::<()>().await;
            }
            Err(e) => {
                tracing::warn!(persona.id = %persona_id, error = %e, "lease heartbeat failed");
            }
        }
    }
}

async fn open_session(
    api: &PersonaApi,
    cfg: &DayConfig,
    email: &str,
) -> Result<McpSession, DayError> {
    let token = api.token(email).await.map_err(DayError::Login)?;
    let http = api.client().http().clone();
    match McpSession::open(http.clone(), &cfg.mcp_url, token.token.expose_secret()).await {
        Ok(s) => Ok(s),
        Err(McpError::Connect(e)) => {
            // A cached token may be dead (auth-internal restarted with a new key): log in
            // again once before giving up.
            tracing::info!(error = %e, "MCP connect failed; logging in again");
            api.forget_token(email);
            let token = api.token(email).await.map_err(DayError::Login)?;
            Ok(McpSession::open(http, &cfg.mcp_url, token.token.expose_secret()).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// [`open_session`] retried with the client's backoff until its budget runs out (the
/// login inside is retried by the client itself).
async fn reopen_session(
    api: &PersonaApi,
    cfg: &DayConfig,
    email: &str,
) -> Result<McpSession, DayError> {
    let policy = api.client().retry_policy();
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        match open_session(api, cfg, email).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                let wait = policy.backoff(attempt);
                if !policy.allows(attempt, started.elapsed(), wait) {
                    return Err(e);
                }
                tracing::warn!(error = %e, attempt, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "MCP session not open; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// The day's MCP session, reopened when its transport is lost.
struct Live<'a> {
    api: &'a PersonaApi,
    cfg: &'a DayConfig,
    email: &'a str,
    session: McpSession,
}

impl Live<'_> {
    /// Calls a tool; a lost transport reopens the session and re-sends the call under
    /// the same action id (auth-internal never runs an id twice), within the budget.
    async fn call(
        &mut self,
        name: &str,
        args: &serde_json::Value,
        id: &str,
        tick: &str,
    ) -> crate::mcp::ToolOutcome {
        let policy = self.api.client().retry_policy();
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let outcome = self.session.call(name, args, Some((id, tick))).await;
            let wait = policy.backoff(attempt);
            if !outcome.lost || !policy.allows(attempt, started.elapsed(), wait) {
                return outcome;
            }
            tracing::warn!(tool = %name, action.id = %id, error = %outcome.content, "MCP transport lost; reopening the session");
            tokio::time::sleep(wait).await;
            attempt += 1;
            match reopen_session(self.api, self.cfg, self.email).await {
                Ok(fresh) => {
                    let old = std::mem::replace(&mut self.session, fresh);
                    old.close().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "MCP session could not be reopened");
                    return outcome;
                }
            }
        }
    }
}

fn check_budget(cfg: &DayConfig, state: &DayState) -> Result<(), DayError> {
    let used = state.tokens.billed_equivalent();
    if used > cfg.token_budget {
        return Err(DayError::Budget {
            budget: cfg.token_budget,
            used,
        });
    }
    Ok(())
}

async fn live_day(
    api: &PersonaApi,
    llm: &Llm,
    cfg: &DayConfig,
    claimed: &ClaimedPersona,
    meta: &RunMeta,
    state: &mut DayState,
) -> Result<(), DayError> {
    let p = &claimed.persona;
    let run_id = meta.run_id.as_str();
    let lang = Lang::from_locale(&p.locale);
    state.transcript.system = p.system_prompt.clone();
    let session = reopen_session(api, cfg, &p.email).await?;
    // The digest is a nicety: a failure to fetch it must not cost the day.
    let ratings = match api.ratings(p.user_id, 3).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(persona.id = %p.user_id, error = %e, "could not fetch recent ratings");
            None
        }
    };
    let actions = match api.recent_actions(p.user_id, 30).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(persona.id = %p.user_id, error = %e, "could not fetch recent actions");
            None
        }
    };
    let digest = prompts::digest(lang, ratings.as_ref(), actions.as_ref());
    let tools = offer::scoped_tools(cfg.tools, &session.tools, &session.modules, &p.module_mix);
    let mut req = offer::day_request(
        lang,
        &p.system_prompt,
        &p.module_mix,
        tools,
        &digest,
        Utc::now(),
        cfg.max_tokens,
    );
    tracing::debug!(
        persona.id = %p.user_id,
        tools = req.tools.len(),
        tools.scope = cfg.tools.as_str(),
        prompt_tokens_estimate = offer::estimate_tokens(&req),
        "day request built"
    );
    if let Some(Message::User { text }) = req.messages.first() {
        state
            .transcript
            .messages
            .push(TranscriptMessage::User { text: text.clone() });
    }
    req.meta = RequestMeta {
        seed: seed_of(run_id),
        purpose: Purpose::Day,
        module_mix: p.module_mix.clone(),
        tool_modules: session.modules.clone(),
        locale: p.locale.clone(),
        ..RequestMeta::default()
    };
    let modules = session.modules.clone();
    let mut live = Live {
        api,
        cfg,
        email: &p.email,
        session,
    };
    let result = converse(&mut live, &modules, meta, llm, cfg, &mut req, state).await;
    live.session.close().await;
    result
}

async fn converse(
    live: &mut Live<'_>,
    modules: &std::collections::BTreeMap<String, String>,
    meta: &RunMeta,
    llm: &Llm,
    cfg: &DayConfig,
    req: &mut ChatRequest,
    state: &mut DayState,
) -> Result<(), DayError> {
    let run_id = meta.run_id.as_str();
    for _turn in 0..cfg.max_turns {
        let resp = llm.chat(req).await?;
        state.tokens.add(resp.usage);
        state.turns += 1;
        if state.first_prompt_tokens.is_none() {
            state.first_prompt_tokens = Some(resp.usage.prompt());
        }
        state
            .transcript
            .messages
            .push(TranscriptMessage::Assistant {
                text: resp.text.clone(),
                tool_calls: resp
                    .tool_calls
                    .iter()
                    .map(|c| TranscriptToolCall {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        arguments: c.arguments.clone(),
                    })
                    .collect(),
            });
        if let Some(t) = &resp.text {
            state.closing_text = Some(t.clone());
        }
        check_budget(cfg, state)?;
        if resp.tool_calls.is_empty() {
            return Ok(());
        }
        req.messages.push(Message::assistant_from(&resp));
        let mut results = Vec::with_capacity(resp.tool_calls.len());
        for call in &resp.tool_calls {
            let created_at = Utc::now();
            let known = modules.get(&call.name);
            let tool_span = otel::tool_span(&call.name, &call.id, &call.arguments);
            let (outcome_text, is_error, latency_ms, error_type) =
                if let Some(why) = &call.arguments_error {
                    let text = format!("invalid arguments: {why}");
                    (text, true, None, Some("invalid_arguments"))
                } else if known.is_none() {
                    let text = format!("unknown tool: {}", call.name);
                    (text, true, None, Some("unknown_tool"))
                } else {
                    let (id, tick) = action_row_id(run_id, state.actions.len(), &call.name);
                    let o = live
                        .call(&call.name, &call.arguments, &id, &tick)
                        .instrument(tool_span.clone())
                        .await;
                    let kind = o.is_error.then_some("tool_error");
                    (o.content, o.is_error, Some(o.latency_ms), kind)
                };
            otel::record_tool(&tool_span, error_type, &outcome_text);
            drop(tool_span);
            state.actions.push(ActionRow {
                tool_name: safe_tool_name(&call.name),
                module: known.cloned().unwrap_or_else(|| UNKNOWN_MODULE.to_owned()),
                input: Some(call.arguments.clone()),
                input_hash: Some(input_hash(&call.arguments)),
                result: if is_error {
                    ActionResult::Error
                } else {
                    ActionResult::Ok
                },
                error_message: is_error.then(|| truncate_chars(&outcome_text, MAX_ACTION_ERROR)),
                latency_ms,
                created_at: Some(created_at),
            });
            state.transcript.messages.push(TranscriptMessage::Tool {
                call_id: call.id.clone(),
                name: Some(call.name.clone()),
                content: outcome_text.clone(),
                is_error,
            });
            results.push(ToolResult {
                call_id: call.id.clone(),
                content: outcome_text,
                is_error,
            });
        }
        req.messages.push(Message::ToolResults(results));
        // Write as the day goes: the turn's new action rows and the run row in one
        // request. A failed snapshot costs nothing (its rows go with the next one, the
        // final one retries), so it is bounded: an outage slows a turn by seconds.
        match tokio::time::timeout(
            PROGRESS_WRITE_TIMEOUT,
            write_run(live.api, meta, state, None, true),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(run.id = %meta.run_id, error = %e, "run snapshot not written");
            }
            Err(_) => {
                tracing::warn!(run.id = %meta.run_id, "run snapshot timed out; the next one follows");
            }
        }
    }
    Ok(())
}

async fn rate_day(
    llm: &Llm,
    cfg: &DayConfig,
    claimed: &ClaimedPersona,
    run_id: &str,
    state: &mut DayState,
) -> Result<(), DayError> {
    let p = &claimed.persona;
    let lang = Lang::from_locale(&p.locale);
    let used: BTreeSet<&str> = state
        .actions
        .iter()
        .map(|a| a.module.as_str())
        .filter(|m| *m != UNKNOWN_MODULE)
        .collect();
    let mut modules: Vec<String> = used.into_iter().map(str::to_owned).collect();
    if modules.is_empty() {
        return Ok(());
    }
    // Models favour the last option of a list: shuffle so no module is always last.
    modules.shuffle(&mut rand::rng());
    let rating_prompt = prompts::rating_prompt(
        lang,
        &state.actions,
        state.closing_text.as_deref(),
        &modules,
    );
    state.transcript.rating_prompt = Some(rating_prompt.clone());
    let mut req = ChatRequest::new(p.system_prompt.clone(), rating_prompt, cfg.max_tokens);
    req.meta = RequestMeta {
        seed: seed_of(run_id),
        purpose: Purpose::Rating,
        module_mix: p.module_mix.clone(),
        modules_to_rate: modules.clone(),
        locale: p.locale.clone(),
        ..RequestMeta::default()
    };
    let resp = llm.chat(&req).await?;
    state.tokens.add(resp.usage);
    state.transcript.rating_reply = Some(resp.text.clone().unwrap_or_default());
    check_budget(cfg, state)?;
    let parsed = rating::parse_ratings(resp.text.as_deref().unwrap_or_default(), &modules);
    for why in &parsed.dropped {
        tracing::info!(persona.id = %p.user_id, reason = %why, "rating entry dropped");
    }
    if parsed.is_parse_failure() {
        tracing::warn!(persona.id = %p.user_id, "rating answer could not be parsed; stored as __parse");
    }
    state.feedback = parsed.rows;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn input_hash_is_16_hex_of_sha256() {
        let h = input_hash(&json!({"title": "x"}));
        assert_eq!(h.len(), 16);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        // sha256('{"title":"x"}')
        let full = hex::encode(Sha256::digest(br#"{"title":"x"}"#));
        assert_eq!(h, full[..16]);
        assert_ne!(h, input_hash(&json!({"title": "y"})));
    }

    #[test]
    fn invented_tool_names_are_made_acceptable() {
        assert_eq!(
            safe_tool_name("mcp__mana__todo.create"),
            "mcp__mana__todo_create"
        );
        assert_eq!(safe_tool_name(""), "_");
        assert_eq!(safe_tool_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn seeds_differ_per_run() {
        assert_ne!(seed_of("a"), seed_of("b"));
        assert_eq!(seed_of("a"), seed_of("a"));
    }
}
