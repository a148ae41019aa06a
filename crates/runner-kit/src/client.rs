//! A typed JSON client base for auth-internal (internal API and public routes).
//!
//! Rules:
//! - Internal calls send `x-service-key` with the first configured key; without one they
//!   fail with [`ClientError::NoServiceKey`] before anything is sent.
//! - Non-2xx answers become [`ClientError::Api`] with the status and the `code` and
//!   `message` of the JSON error envelope (`{error:{code,message}}`); a body that is not
//!   the envelope keeps its status and the start of its text.
//! - Whether a failed call is repeated is a property of the call ([`Retry`]), stated at
//!   every call site: [`Retry::Idempotent`] (reads, and writes the server makes
//!   idempotent with deterministic ids or lease tokens) repeats transport errors,
//!   timeouts and 5xx; [`Retry::NotIfSent`] (a claim: a repeat that follows a landed
//!   first attempt would lease *other* work, and the first batch would stay leased to
//!   nobody) repeats only what certainly did not happen — a connection that was never
//!   made, 429, 503. 4xx are never repeated. Waits are equal-jitter exponential
//!   ([`types::backoff::Backoff`], capped at [`RetryPolicy::max_delay`]) for at least
//!   [`RetryPolicy::max_attempts`] attempts and, beyond that, as long as
//!   [`RetryPolicy::budget`] has not run out (`AUTH_INTERNAL_RETRY_SECS`: an
//!   auth-internal restart is ridden out).
//! - The service key never appears in errors or `Debug` output.
//! - Every attempt is one client span and carries its W3C `traceparent`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use tracing::Instrument;
use types::{ApiError, backoff::Backoff, text::truncate_chars};

/// Whether a call may be repeated after a failure; see the module rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Repeating is harmless: transport errors, timeouts and 5xx are retried.
    Idempotent,
    /// The call must not run twice: retried only when it certainly did not reach the
    /// server (no connection was made) or the server said it did not process it (429,
    /// 503).
    NotIfSent,
}

/// Longest body text kept in an error.
const MAX_ERROR_TEXT: usize = 300;

/// What went wrong talking to auth-internal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No service key is configured; internal calls are impossible.
    #[error("no service key configured (MANA_SERVICE_KEY)")]
    NoServiceKey,
    /// The server answered non-2xx.
    #[error("{method} {path} answered {status} {code}: {message}")]
    Api {
        /// Request method.
        method: String,
        /// Request path (no host).
        path: String,
        /// HTTP status.
        status: u16,
        /// `error.code` of the envelope (`http_<status>` when the body was not one).
        code: String,
        /// `error.message`, or the start of the body.
        message: String,
    },
    /// No connection could be made: nothing was sent.
    #[error("{method} {path}: cannot connect: {message}")]
    Connect {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// The cause.
        message: String,
    },
    /// Sending or reading failed after the connection was made (the request may have
    /// reached the server).
    #[error("{method} {path}: transport error: {message}")]
    Transport {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// The cause.
        message: String,
    },
    /// The request took longer than the timeout.
    #[error("{method} {path}: timed out after {timeout:?}")]
    Timeout {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// The timeout in force.
        timeout: Duration,
    },
    /// The 2xx body was not the JSON we expected.
    #[error("{method} {path}: cannot decode the answer: {message}")]
    Decode {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// The decoder's complaint.
        message: String,
    },
}

impl ClientError {
    /// Whether another attempt of an idempotent call may succeed: transport errors,
    /// timeouts, 5xx, 429.
    pub fn is_retryable(&self) -> bool {
        self.may_retry(Retry::Idempotent)
    }

    /// Whether a call with rule `retry` may be repeated after this error.
    pub fn may_retry(&self, retry: Retry) -> bool {
        match (self, retry) {
            (Self::Connect { .. }, _) => true,
            (Self::Api { status, .. }, _) if *status == 429 || *status == 503 => true,
            (Self::Transport { .. } | Self::Timeout { .. }, Retry::Idempotent) => true,
            (Self::Api { status, .. }, Retry::Idempotent) => *status >= 500,
            (
                Self::Transport { .. } | Self::Timeout { .. } | Self::Api { .. },
                Retry::NotIfSent,
            )
            | (Self::NoServiceKey | Self::Decode { .. }, _) => false,
        }
    }

    /// The HTTP status, for [`ClientError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is 409 `lease_lost`: another worker owns the work now (or the lease
    /// expired), so the caller must neither retry nor release.
    pub fn is_lease_lost(&self) -> bool {
        self.status() == Some(409) && self.code() == Some(types::error::codes::LEASE_LOST)
    }

    /// A stable, low-cardinality kind for `error.type` on spans: the status code for
    /// answers, else `connect`, `transport`, `timeout`, `decode` or `no_service_key`.
    pub fn kind(&self) -> String {
        match self {
            Self::Api { status, .. } => status.to_string(),
            Self::Connect { .. } => "connect".into(),
            Self::Transport { .. } => "transport".into(),
            Self::Timeout { .. } => "timeout".into(),
            Self::Decode { .. } => "decode".into(),
            Self::NoServiceKey => "no_service_key".into(),
        }
    }

    /// The envelope's `error.code`, for [`ClientError::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// How often and how patiently a request is repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure, before jitter.
    pub base_delay: Duration,
    /// Cap of any single wait.
    pub max_delay: Duration,
    /// Limit of one attempt.
    pub timeout: Duration,
    /// After `max_attempts`, keep retrying while the time since the first attempt
    /// plus the next wait stays within this (zero: attempts only).
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            budget: Duration::ZERO,
        }
    }
}

impl RetryPolicy {
    /// The same policy limited to its attempts (for calls that must not wait long or
    /// must not be repeated much, such as a claim).
    pub fn without_budget(self) -> Self {
        Self {
            budget: Duration::ZERO,
            ..self
        }
    }

    /// Whether another attempt is allowed after failed attempt `attempt` (1-based),
    /// `elapsed` after the first one began, when the next wait would be `wait`.
    pub fn allows(&self, attempt: u32, elapsed: Duration, wait: Duration) -> bool {
        attempt < self.max_attempts.max(1) || elapsed + wait <= self.budget
    }

    /// The wait after failed attempt `attempt` (1-based): `base * 2^(attempt-1)` capped,
    /// with equal jitter (between half and all of it) so replicas do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff::new(self.base_delay, self.max_delay).equal_jitter(attempt, rand::random())
    }
}

/// The HTTP client a runner shares between auth-internal and its LLM.
///
/// Pooled connections are dropped after [`POOL_IDLE`] idle, below the 5 s keep-alive of
/// common servers (actix-web, uvicorn under llama.cpp-style OpenAI-compatible servers,
/// Node): reusing a connection the server is closing at that moment fails the request
/// with "connection closed before message completed", which costs an LLM attempt.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(POOL_IDLE)
        .build()
}

/// How long an idle pooled connection is kept (see [`http_client`]).
pub const POOL_IDLE: Duration = Duration::from_secs(4);

/// The client base. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct InternalClient {
    http: reqwest::Client,
    base_url: String,
    service_key: Option<SecretString>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for InternalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalClient")
            .field("base_url", &self.base_url)
            .field(
                "service_key",
                &self.service_key.as_ref().map(|_| "[REDACTED]"),
            )
            .field("retry", &self.retry)
            .finish()
    }
}

impl InternalClient {
    /// A client of `base_url` (e.g. `http://127.0.0.1:3001`) sending `service_key`.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        service_key: Option<&str>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            service_key: service_key
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| SecretString::from(k.to_owned())),
            retry,
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The shared HTTP client (for other protocols to the same host, e.g. MCP).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether a service key is configured.
    pub fn has_service_key(&self) -> bool {
        self.service_key.is_some()
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The same client with another retry policy (shares the HTTP client).
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        Self {
            retry,
            ..self.clone()
        }
    }

    /// `GET {path}` under `/api/v1/internal`, with the service key.
    pub async fn get_internal<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        self.send::<(), R>(
            Method::GET,
            &format!("/api/v1/internal{path}"),
            None,
            true,
            Retry::Idempotent,
        )
        .await
    }

    /// `POST {path}` under `/api/v1/internal`, with the service key, repeated by `retry`.
    pub async fn post_internal<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        retry: Retry,
    ) -> Result<R, ClientError> {
        self.send(
            Method::POST,
            &format!("/api/v1/internal{path}"),
            Some(body),
            true,
            retry,
        )
        .await
    }

    /// `PUT {path}` under `/api/v1/internal`, with the service key, repeated by `retry`.
    pub async fn put_internal<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        retry: Retry,
    ) -> Result<R, ClientError> {
        self.send(
            Method::PUT,
            &format!("/api/v1/internal{path}"),
            Some(body),
            true,
            retry,
        )
        .await
    }

    /// `POST {path}` (a full path such as `/api/v1/auth/login`) without the service key,
    /// repeated by `retry`.
    pub async fn post_public<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        retry: Retry,
    ) -> Result<R, ClientError> {
        self.send(Method::POST, path, Some(body), false, retry)
            .await
    }

    /// Whether `GET /health` answers 2xx within the timeout (one attempt, no retry).
    pub async fn is_reachable(&self) -> bool {
        let url = format!("{}/health", self.base_url);
        let timeout = self.retry.timeout.min(Duration::from_secs(3));
        matches!(
            self.http.get(url).timeout(timeout).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    /// One request, repeated by `retry`; see the module rules.
    pub async fn send<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        with_key: bool,
        retry: Retry,
    ) -> Result<R, ClientError> {
        let key = if with_key {
            Some(self.service_key.as_ref().ok_or(ClientError::NoServiceKey)?)
        } else {
            None
        };
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            let span = tracing::info_span!(
                "http.client",
                otel.name = %method,
                otel.kind = "client",
                http.request.method = %method,
                url.path = path,
                http.request.resend_count = i64::from(attempt - 1),
                http.response.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
            );
            let result = self
                .attempt(&method, path, body, key)
                .instrument(span.clone())
                .await;
            if let Err(e) = &result {
                span.record("error.type", e.kind());
            }
            let wait = self.retry.backoff(attempt);
            match result {
                Err(e)
                    if e.may_retry(retry)
                        && self.retry.allows(attempt, started.elapsed(), wait) =>
                {
                    tracing::warn!(
                        method = %method,
                        path,
                        attempt,
                        error = %e,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "auth-internal call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn attempt<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        body: Option<&B>,
        key: Option<&SecretString>,
    ) -> Result<R, ClientError> {
        let m = || method.to_string();
        let p = || path.to_owned();
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url))
            .timeout(self.retry.timeout);
        if let Some(key) = key {
            req = req.header(service_kit::service_key::HEADER, key.expose_secret());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        // W3C trace context, so auth-internal's server span continues this client span.
        let mut trace_headers = reqwest::header::HeaderMap::new();
        service_kit::telemetry::inject_current(&mut trace_headers);
        req = req.headers(trace_headers);
        let transport = |e: reqwest::Error| {
            if e.is_connect() {
                ClientError::Connect {
                    method: m(),
                    path: p(),
                    message: error_chain(&e),
                }
            } else if e.is_timeout() {
                ClientError::Timeout {
                    method: m(),
                    path: p(),
                    timeout: self.retry.timeout,
                }
            } else {
                ClientError::Transport {
                    method: m(),
                    path: p(),
                    message: error_chain(&e),
                }
            }
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        tracing::Span::current().record("http.response.status_code", i64::from(status.as_u16()));
        let bytes = resp.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(api_error(m(), p(), status, &bytes));
        }
        // An empty 2xx body decodes as JSON null (for `()` and `Option` answers).
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
            method: m(),
            path: p(),
            message: e.to_string(),
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn api_error(method: String, path: String, status: StatusCode, body: &[u8]) -> ClientError {
    let (code, message) = match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (
            format!("http_{}", status.as_u16()),
            truncate_chars(&String::from_utf8_lossy(body), MAX_ERROR_TEXT),
        ),
    };
    ClientError::Api {
        method,
        path,
        status: status.as_u16(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use test_support::proxy::{LosingProxy, Loss};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn envelope_errors_keep_code_and_message() {
        let e = api_error(
            "POST".into(),
            "/x".into(),
            StatusCode::CONFLICT,
            br#"{"error":{"code":"lease_lost","message":"gone"}}"#,
        );
        assert_eq!(e.code(), Some("lease_lost"));
        assert_eq!(e.status(), Some(409));
        assert!(e.is_lease_lost());
        let other = api_error(
            "POST".into(),
            "/x".into(),
            StatusCode::CONFLICT,
            br#"{"error":{"code":"conflict","message":"x"}}"#,
        );
        assert!(!other.is_lease_lost());
        assert!(!e.is_retryable());
        let e = api_error(
            "GET".into(),
            "/x".into(),
            StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.code(), Some("http_502"));
        assert!(e.is_retryable());
        assert!(e.to_string().contains("bad gateway"));
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            timeout: Duration::from_secs(1),
            budget: Duration::ZERO,
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d2 = p.backoff(2);
            assert!(d2 >= Duration::from_millis(100) && d2 <= Duration::from_millis(200));
            let d9 = p.backoff(9);
            assert!(d9 >= Duration::from_millis(175) && d9 <= Duration::from_millis(350));
        }
    }

    #[test]
    fn the_budget_extends_retries_beyond_the_attempts() {
        let p = RetryPolicy {
            max_attempts: 2,
            budget: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let w = Duration::from_secs(1);
        assert!(p.allows(1, Duration::ZERO, w));
        assert!(p.allows(7, Duration::from_secs(9), w));
        assert!(!p.allows(7, Duration::from_secs(9) + Duration::from_millis(1), w));
        assert!(!p.without_budget().allows(2, Duration::ZERO, w));
    }

    /// A keep-alive HTTP/1.1 server answering `200 ok` to each GET; counts connections.
    async fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::{Arc, atomic::AtomicUsize, atomic::Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while let Ok(n) = sock.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if sock.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn the_shared_client_drops_connections_idle_past_the_servers_keep_alive() {
        use std::sync::atomic::Ordering;
        let (url, accepted) = counting_server().await;
        let client = http_client().unwrap();
        let get = || async { client.get(&url).send().await.unwrap().text().await.unwrap() };
        assert_eq!(get().await, "ok");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(get().await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "reused while fresh");
        // Idle past the pool's limit (below a 5 s server keep-alive): a new connection.
        tokio::time::sleep(POOL_IDLE + Duration::from_millis(500)).await;
        assert_eq!(get().await, "ok");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "not reused after {POOL_IDLE:?} idle"
        );
        assert!(POOL_IDLE < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn transport_errors_are_retried_for_the_whole_budget() {
        let c = InternalClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9",
            Some("k"),
            RetryPolicy {
                max_attempts: 1,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(40),
                timeout: Duration::from_secs(1),
                budget: Duration::from_millis(300),
            },
        );
        let started = std::time::Instant::now();
        let err = c.get_internal::<serde_json::Value>("/x").await.unwrap_err();
        assert!(err.is_retryable());
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let c = InternalClient::new(
            reqwest::Client::new(),
            "http://h/",
            Some("super-secret"),
            RetryPolicy::default(),
        );
        assert_eq!(c.base_url(), "http://h");
        assert!(!format!("{c:?}").contains("super-secret"));
    }

    #[tokio::test]
    async fn internal_calls_need_a_key_and_transport_errors_are_retried() {
        let none = InternalClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9",
            None,
            RetryPolicy::default(),
        );
        let err = none
            .get_internal::<serde_json::Value>("/x")
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::NoServiceKey));

        // Port 9 (discard) is closed on test machines: connection refused, retried, then final.
        let c = InternalClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9",
            Some("k"),
            RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
                timeout: Duration::from_secs(2),
                budget: Duration::ZERO,
            },
        );
        let err = c.get_internal::<serde_json::Value>("/x").await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(!c.is_reachable().await);
    }

    fn fast_retries(url: &str, timeout: Duration) -> InternalClient {
        InternalClient::new(
            reqwest::Client::new(),
            url,
            Some("k"),
            RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
                timeout,
                budget: Duration::ZERO,
            },
        )
    }

    #[tokio::test]
    async fn a_claim_whose_answer_is_lost_is_sent_exactly_once() {
        for hang in [false, true] {
            // A real server that does the work of every request it reads, then loses
            // the answer: closes the connection, or holds it past the client's timeout.
            let server = LosingProxy::alone(if hang { Loss::Hold } else { Loss::Close }).await;
            let c = fast_retries(server.url(), Duration::from_millis(300));
            let err = c
                .post_internal::<_, serde_json::Value>(
                    "/personas/claim",
                    &serde_json::json!({"worker": "w", "limit": 5, "leaseSeconds": 60}),
                    Retry::NotIfSent,
                )
                .await
                .unwrap_err();
            assert!(!err.may_retry(Retry::NotIfSent), "hang={hang}: {err}");
            if hang {
                assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
            } else {
                assert!(matches!(err, ClientError::Transport { .. }), "{err}");
            }
            assert_eq!(
                server.forwarded(),
                1,
                "hang={hang}: the server must see exactly one claim"
            );

            // The same loss on an idempotent write is retried to the limit.
            let before = server.forwarded();
            let err = c
                .post_internal::<_, serde_json::Value>(
                    "/personas/p/release",
                    &serde_json::json!({}),
                    Retry::Idempotent,
                )
                .await
                .unwrap_err();
            assert!(err.is_retryable(), "{err}");
            assert_eq!(server.forwarded() - before, 3, "hang={hang}");
        }
    }

    #[tokio::test]
    async fn a_claim_that_never_connected_is_retried() {
        // Bind, learn the port, close: connecting is refused, so nothing was sent.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = fast_retries(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2));
        let err = c
            .post_internal::<_, serde_json::Value>(
                "/personas/claim",
                &serde_json::json!({}),
                Retry::NotIfSent,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(err.may_retry(Retry::NotIfSent));
        let api = |status| ClientError::Api {
            method: "POST".into(),
            path: "/x".into(),
            status,
            code: "x".into(),
            message: String::new(),
        };
        assert!(api(503).may_retry(Retry::NotIfSent) && api(429).may_retry(Retry::NotIfSent));
        assert!(!api(500).may_retry(Retry::NotIfSent) && api(500).may_retry(Retry::Idempotent));
        assert!(!api(409).may_retry(Retry::Idempotent));
    }
}
