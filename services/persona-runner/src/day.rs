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

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use chrono::Utc;
use llm::{ChatRequest, Llm, LlmError, Message, Purpose, RequestMeta, ToolResult};
use rand::seq::SliceRandom;
use runner_kit::{ClientError, Shutdown};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use types::{
    names::sanitize_name as safe_tool_name,
    personas::{ActionResult, ActionRow, ClaimedPersona, FeedbackRow, ReleaseOutcome},
    text::truncate_chars,
    tick::TokenUsage,
};
use uuid::Uuid;

use crate::{
    api::PersonaApi,
    mcp::{McpError, McpSession, UNKNOWN_MODULE},
    offer::{self, ToolScope},
    prompts::{self, Lang},
    rating,
};

/// Longest error message kept per action.
const MAX_ACTION_ERROR: usize = 500;

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
    /// A stable snake_case class of the failure (a run's `errorClass`): the LLM's own
    /// class ([`llm::ErrorClass::as_str`]: `context_length`, `invalid_request`,
    /// `rate_limited`, …) for model failures, else `login`, `mcp`, `deadline`, `budget`,
    /// `cancelled` or `write_back`.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Login(_) => "login",
            Self::Mcp(_) => "mcp",
            Self::Llm(e) => e.class().as_str(),
            Self::Deadline(_) => "deadline",
            Self::Budget { .. } => "budget",
            Self::Cancelled => "cancelled",
            Self::WriteBack(_) => "write_back",
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
}

/// What the day collected, kept outside the day's future so a stop loses nothing.
#[derive(Default)]
struct DayState {
    actions: Vec<ActionRow>,
    tokens: TokenUsage,
    first_prompt_tokens: Option<u64>,
    closing_text: Option<String>,
    feedback: Vec<FeedbackRow>,
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

/// Runs one claimed persona end to end, including write-back and release.
pub async fn run_persona(
    api: &PersonaApi,
    llm: &Llm,
    cfg: &DayConfig,
    claimed: &ClaimedPersona,
    tick_id: &str,
    shutdown: &Shutdown,
) -> PersonaRun {
    let persona_id = claimed.persona.user_id;
    let run_id = format!("{tick_id}.{persona_id}");
    let mut state = DayState::default();
    let started = Instant::now();

    let lived = if shutdown.is_draining() {
        Err(DayError::Cancelled)
    } else {
        tokio::select! {
            r = live_day(api, llm, cfg, claimed, &run_id, &mut state) => r,
            () = tokio::time::sleep(cfg.deadline) => Err(DayError::Deadline(cfg.deadline)),
            () = shutdown.cancelled() => Err(DayError::Cancelled),
        }
    };

    let mut simulator_failure = None;
    let mut result = match lived {
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
                r = rate_day(llm, cfg, claimed, &run_id, &mut state) => r,
                () = tokio::time::sleep(remaining) => Err(DayError::Deadline(cfg.deadline)),
                () = shutdown.cancelled() => Err(DayError::Cancelled),
            }
        }
        Err(e) => Err(e),
    };

    // Write back whatever happened, even after a failure: the tool calls were real.
    if let Err(e) = write_back(api, persona_id, &run_id, &state).await {
        result = Err(DayError::WriteBack(e));
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
    }
}

async fn write_back(
    api: &PersonaApi,
    persona_id: Uuid,
    run_id: &str,
    state: &DayState,
) -> Result<(), ClientError> {
    if !state.actions.is_empty() {
        api.post_actions(persona_id, run_id, &state.actions).await?;
    }
    if !state.feedback.is_empty() {
        api.post_feedback(persona_id, run_id, &state.feedback)
            .await?;
    }
    Ok(())
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
    run_id: &str,
    state: &mut DayState,
) -> Result<(), DayError> {
    let p = &claimed.persona;
    let lang = Lang::from_locale(&p.locale);
    let session = open_session(api, cfg, &p.email).await?;
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
    req.meta = RequestMeta {
        seed: seed_of(run_id),
        purpose: Purpose::Day,
        module_mix: p.module_mix.clone(),
        tool_modules: session.modules.clone(),
        locale: p.locale.clone(),
        ..RequestMeta::default()
    };
    let result = converse(&session, llm, cfg, &mut req, state).await;
    session.close().await;
    result
}

async fn converse(
    session: &McpSession,
    llm: &Llm,
    cfg: &DayConfig,
    req: &mut ChatRequest,
    state: &mut DayState,
) -> Result<(), DayError> {
    for _turn in 0..cfg.max_turns {
        let resp = llm.chat(req).await?;
        state.tokens.add(resp.usage);
        if state.first_prompt_tokens.is_none() {
            state.first_prompt_tokens = Some(resp.usage.prompt());
        }
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
            let known = session.modules.get(&call.name);
            let (outcome_text, is_error, latency_ms) = if let Some(why) = &call.arguments_error {
                (format!("invalid arguments: {why}"), true, None)
            } else if known.is_none() {
                (format!("unknown tool: {}", call.name), true, None)
            } else {
                let o = session.call(&call.name, &call.arguments).await;
                (o.content, o.is_error, Some(o.latency_ms))
            };
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
            results.push(ToolResult {
                call_id: call.id.clone(),
                content: outcome_text,
                is_error,
            });
        }
        req.messages.push(Message::ToolResults(results));
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
    let mut req = ChatRequest::new(
        p.system_prompt.clone(),
        prompts::rating_prompt(
            lang,
            &state.actions,
            state.closing_text.as_deref(),
            &modules,
        ),
        cfg.max_tokens,
    );
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
