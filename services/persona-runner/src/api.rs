//! The persona side of auth-internal: the internal persona API (service key) and the
//! persona's own login, with its access token cached.
//!
//! Rules:
//! - The bearer for MCP is the `accessToken` (JWT) of `POST /api/v1/auth/login` — never
//!   anything else — cached per email until [`TOKEN_REFRESH_MARGIN`] before it expires.
//! - Actions go in batches of at most [`MAX_ACTIONS_PER_BATCH`]. The server's row id is
//!   `{tickId}-{firstIndex + index in batch}-{tool}`, so batch `k > 0` uses tick id
//!   `{runId}~{k}`: ids stay unique across batches and identical on a retry, and a write
//!   sends only the rows after the last acknowledged one ([`action_batch`]).
//! - Writes, reads and releases are [`Retry::Idempotent`] (the deterministic ids and
//!   the lease token make a repeat harmless); the claim is [`Retry::NotIfSent`]: a repeat
//!   after a claim that landed would lease other personas and strand the first batch.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use runner_kit::{ClientError, InternalClient, Retry};
use secrecy::{ExposeSecret, SecretString};
use service_kit::persona_password::persona_password;
use types::auth::{LoginRequest, TokenResponse};
use types::personas::{
    ActionRow, ActionsBatch, ClaimPersonasResponse, ClaimRequest, FeedbackBatch, FeedbackRow,
    HeartbeatRequest, HeartbeatResponse, InsertedResponse, PersonaProfile, PersonaRatingsResponse,
    ReleaseOutcome, ReleaseRequest, ReleaseResponse, batch_tick_id,
};
use types::runs::{RunRecord, RunWritten};
use uuid::Uuid;

/// The row id the server gives action number `n` (0-based) of run `run_id`, and the
/// tick id of its batch: `({tickId}-{i}-{tool}, tickId)` with the batching of
/// [`PersonaApi::post_actions`].
pub fn action_row_id(run_id: &str, n: usize, tool: &str) -> (String, String) {
    let (tick, i) = batch_position(run_id, n);
    (format!("{tick}-{i}-{tool}"), tick)
}

/// Where action number `n` (0-based) of run `run_id` is written: the tick id of
/// its batch (`{runId}` for the first, `{runId}~{k}` for batch `k > 0`) and its
/// index within that batch.
fn batch_position(run_id: &str, n: usize) -> (String, usize) {
    let k = n / MAX_ACTIONS_PER_BATCH;
    (batch_tick_id(run_id, k), n - batch_start(n))
}

/// The index of the first action of the batch that action `n` (0-based) belongs to.
pub fn batch_start(n: usize) -> usize {
    n - n % MAX_ACTIONS_PER_BATCH
}

/// The batch that writes `actions[first..]` up to the end of `first`'s batch (rows of
/// one batch share a tick id, see [`action_row_id`]); `None` when nothing is left.
pub fn action_batch(run_id: &str, first: usize, actions: &[ActionRow]) -> Option<ActionsBatch> {
    if first >= actions.len() {
        return None;
    }
    let (tick_id, i) = batch_position(run_id, first);
    let end = actions
        .len()
        .min(batch_start(first) + MAX_ACTIONS_PER_BATCH);
    Some(ActionsBatch {
        tick_id,
        actions: actions[first..end].to_vec(),
        // Old servers know no `firstIndex`: a batch from its start omits it.
        first_index: (i > 0).then(|| u32::try_from(i).unwrap_or(u32::MAX)),
    })
}

/// The feedback batch of run `run_id`: its first [`MAX_FEEDBACK_PER_BATCH`] rows.
pub fn feedback_batch(run_id: &str, feedback: &[FeedbackRow]) -> FeedbackBatch {
    FeedbackBatch {
        tick_id: run_id.to_owned(),
        feedback: feedback
            .iter()
            .take(MAX_FEEDBACK_PER_BATCH)
            .cloned()
            .collect(),
    }
}

/// Most actions per batch (the server's limit).
pub const MAX_ACTIONS_PER_BATCH: usize = 500;
/// Most feedback rows per batch (the server's limit).
pub const MAX_FEEDBACK_PER_BATCH: usize = 100;
/// A cached token is renewed this long before it expires.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Cache `token` for `email` and drop every expired entry, so the cache holds
/// only live tokens however many personas the process has run.
fn remember(
    cache: &mut HashMap<String, AccessToken>,
    email: &str,
    token: AccessToken,
    now: Instant,
) {
    cache.retain(|_, t| t.expires_at > now);
    cache.insert(email.to_owned(), token);
}

/// A cached access token.
#[derive(Clone)]
pub struct AccessToken {
    /// The JWT.
    pub token: SecretString,
    /// The user it belongs to.
    pub user_id: Uuid,
    expires_at: Instant,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// The persona API client.
pub struct PersonaApi {
    client: InternalClient,
    seed_secret: SecretString,
    tokens: Mutex<HashMap<String, AccessToken>>,
}

impl PersonaApi {
    /// Wraps the client base; `seed_secret` derives persona passwords.
    pub fn new(client: InternalClient, seed_secret: SecretString) -> Self {
        Self {
            client,
            seed_secret,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The client base.
    pub fn client(&self) -> &InternalClient {
        &self.client
    }

    /// Logs in as the persona with its derived password (fresh, no cache).
    pub async fn login(&self, email: &str) -> Result<TokenResponse, ClientError> {
        let password = persona_password(self.seed_secret.expose_secret(), email);
        self.client
            .post_public(
                "/api/v1/auth/login",
                &LoginRequest {
                    email: email.to_owned(),
                    password,
                },
                Retry::Idempotent,
            )
            .await
    }

    /// How many tokens are cached (live ones only, after the last insert).
    pub fn cached_tokens(&self) -> usize {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The cached token of `email`, logging in when there is none or it expires soon.
    pub async fn token(&self, email: &str) -> Result<AccessToken, ClientError> {
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(email)
            .filter(|t| t.expires_at > Instant::now() + TOKEN_REFRESH_MARGIN)
            .cloned();
        if let Some(t) = cached {
            return Ok(t);
        }
        let login = self.login(email).await?;
        let token = AccessToken {
            token: SecretString::from(login.access_token),
            user_id: login.user.id,
            expires_at: Instant::now() + Duration::from_secs(login.expires_in),
        };
        remember(
            &mut self.tokens.lock().unwrap_or_else(PoisonError::into_inner),
            email,
            token.clone(),
            Instant::now(),
        );
        Ok(token)
    }

    /// Forgets a cached token (after the server rejected it).
    pub fn forget_token(&self, email: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(email);
    }

    /// `POST /personas/claim` (`NotIfSent`: a repeated claim whose first attempt landed
    /// would lease other personas; within the budget only what certainly did not land
    /// is repeated).
    pub async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease_seconds: u32,
    ) -> Result<ClaimPersonasResponse, ClientError> {
        self.client
            .post_internal(
                "/personas/claim",
                &ClaimRequest {
                    worker: worker.to_owned(),
                    limit,
                    lease_seconds,
                },
                Retry::NotIfSent,
            )
            .await
    }

    /// `POST /personas/{id}/actions`, in batches; returns rows inserted (not duplicates).
    pub async fn post_actions(
        &self,
        id: Uuid,
        run_id: &str,
        actions: &[ActionRow],
    ) -> Result<u32, ClientError> {
        self.post_actions_from(id, run_id, 0, actions).await
    }

    /// `POST /personas/{id}/actions` of `actions[first..]` only (the rows before `first`
    /// are written already), in batches with `firstIndex`; returns rows inserted.
    pub async fn post_actions_from(
        &self,
        id: Uuid,
        run_id: &str,
        mut first: usize,
        actions: &[ActionRow],
    ) -> Result<u32, ClientError> {
        let mut inserted = 0;
        while let Some(batch) = action_batch(run_id, first, actions) {
            first += batch.actions.len();
            let r: InsertedResponse = self
                .client
                .post_internal(
                    &format!("/personas/{id}/actions"),
                    &batch,
                    Retry::Idempotent,
                )
                .await?;
            inserted += r.inserted;
        }
        Ok(inserted)
    }

    /// `POST /personas/{id}/feedback` (at most [`MAX_FEEDBACK_PER_BATCH`] rows are sent).
    pub async fn post_feedback(
        &self,
        id: Uuid,
        run_id: &str,
        feedback: &[FeedbackRow],
    ) -> Result<u32, ClientError> {
        if feedback.is_empty() {
            return Ok(0);
        }
        let r: InsertedResponse = self
            .client
            .post_internal(
                &format!("/personas/{id}/feedback"),
                &feedback_batch(run_id, feedback),
                Retry::Idempotent,
            )
            .await?;
        Ok(r.inserted)
    }

    /// `POST /personas/{id}/runs`: one snapshot of the run (idempotent by its revision).
    pub async fn post_run(&self, id: Uuid, run: &RunRecord) -> Result<RunWritten, ClientError> {
        self.client
            // Idempotent by the run id and its revision.
            .post_internal(&format!("/personas/{id}/runs"), run, Retry::Idempotent)
            .await
    }

    /// `POST /personas/{id}/release`.
    pub async fn release(
        &self,
        id: Uuid,
        lease_token: Uuid,
        outcome: ReleaseOutcome,
        error: Option<String>,
    ) -> Result<ReleaseResponse, ClientError> {
        self.client
            .post_internal(
                &format!("/personas/{id}/release"),
                &ReleaseRequest {
                    lease_token,
                    outcome,
                    error,
                },
                Retry::Idempotent,
            )
            .await
    }

    /// `POST /personas/{id}/heartbeat`: extend the lease to now + `lease_seconds`.
    pub async fn heartbeat(
        &self,
        id: Uuid,
        lease_token: Uuid,
        lease_seconds: u32,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.client
            .post_internal(
                &format!("/personas/{id}/heartbeat"),
                &HeartbeatRequest {
                    lease_token,
                    lease_seconds,
                },
                Retry::Idempotent,
            )
            .await
    }

    /// `GET /personas/{id}/ratings?last=N`.
    pub async fn ratings(
        &self,
        id: Uuid,
        last: u32,
    ) -> Result<PersonaRatingsResponse, ClientError> {
        self.client
            .get_internal(&format!("/personas/{id}/ratings?last={last}"))
            .await
    }

    /// `GET /personas/{id}/actions?limit=N`: the newest tool calls.
    pub async fn recent_actions(
        &self,
        id: Uuid,
        limit: u32,
    ) -> Result<types::personas::RecentActionsResponse, ClientError> {
        self.client
            .get_internal(&format!("/personas/{id}/actions?limit={limit}"))
            .await
    }

    /// `GET /personas/{id}`.
    pub async fn profile(&self, id: Uuid) -> Result<PersonaProfile, ClientError> {
        self.client.get_internal(&format!("/personas/{id}")).await
    }
}

#[cfg(test)]
mod token_cache_tests {
    use super::*;

    fn row(tool: &str) -> ActionRow {
        ActionRow {
            tool_name: tool.to_owned(),
            module: "todo".to_owned(),
            input: None,
            input_hash: None,
            result: types::personas::ActionResult::Ok,
            error_message: None,
            latency_ms: None,
            created_at: None,
        }
    }

    #[test]
    fn batches_carry_only_new_rows_and_stop_at_batch_ends() {
        let rows: Vec<ActionRow> = (0..MAX_ACTIONS_PER_BATCH + 3).map(|_| row("x")).collect();
        assert!(action_batch("t.p", 0, &rows[..0]).is_none());
        let b = action_batch("t.p", 0, &rows[..3]).unwrap();
        assert_eq!(
            (b.tick_id.as_str(), b.first_index, b.actions.len()),
            ("t.p", None, 3)
        );
        let b = action_batch("t.p", 3, &rows[..5]).unwrap();
        assert_eq!(
            (b.tick_id.as_str(), b.first_index, b.actions.len()),
            ("t.p", Some(3), 2)
        );
        assert!(action_batch("t.p", 5, &rows[..5]).is_none());
        // A range across a batch end stops there; the rest is batch 1 from its start.
        let b = action_batch("t.p", 498, &rows).unwrap();
        assert_eq!((b.first_index, b.actions.len()), (Some(498), 2));
        let b = action_batch("t.p", MAX_ACTIONS_PER_BATCH, &rows).unwrap();
        assert_eq!(
            (b.tick_id.as_str(), b.first_index, b.actions.len()),
            ("t.p~1", None, 3)
        );
        // Every row's server id (`{tickId}-{firstIndex + i}-{tool}`) is `action_row_id`'s.
        let b = action_batch("t.p", MAX_ACTIONS_PER_BATCH + 1, &rows).unwrap();
        let server_id = format!("{}-{}-x", b.tick_id, b.first_index.unwrap());
        assert_eq!(
            action_row_id("t.p", MAX_ACTIONS_PER_BATCH + 1, "x").0,
            server_id
        );
    }

    #[test]
    fn action_ids_follow_the_batching() {
        assert_eq!(
            action_row_id("t.p", 3, "todo_create"),
            ("t.p-3-todo_create".into(), "t.p".into())
        );
        assert_eq!(
            action_row_id("t.p", MAX_ACTIONS_PER_BATCH + 2, "x"),
            ("t.p~1-2-x".into(), "t.p~1".into())
        );
    }

    fn token(expires_at: Instant) -> AccessToken {
        AccessToken {
            token: SecretString::from("t".to_owned()),
            user_id: uuid::Uuid::nil(),
            expires_at,
        }
    }

    #[test]
    fn expired_tokens_are_dropped_when_a_new_one_is_cached() {
        let now = Instant::now();
        let mut cache = HashMap::new();
        remember(&mut cache, "a", token(now + Duration::from_secs(60)), now);
        remember(&mut cache, "b", token(now + Duration::from_secs(600)), now);
        assert_eq!(cache.len(), 2);
        let later = now + Duration::from_secs(120);
        remember(
            &mut cache,
            "c",
            token(later + Duration::from_secs(600)),
            later,
        );
        assert_eq!(cache.len(), 2, "a expired and was dropped");
        assert!(!cache.contains_key("a"));
        assert!(cache.contains_key("b") && cache.contains_key("c"));
    }
}
