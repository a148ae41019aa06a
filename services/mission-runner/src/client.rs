//! The client of auth-internal's three mission endpoints.
//!
//! Rules:
//! - Every request carries `x-service-key`; the key never reaches logs, errors or `Debug`.
//! - A non-2xx answer is decoded from the JSON error envelope into [`ClientError::Api`]
//!   with its `code`; 409 `lease_lost` is its own variant, because the caller must not
//!   retry or release after it.
//! - Write-back and release are retried on transport errors, 429 and 5xx with jittered
//!   exponential backoff: the iteration id is deterministic, so auth-internal writes a
//!   retried iteration once. A claim is retried only when it certainly did not happen
//!   (connection refused, 429, 503): a retried claim whose first attempt did land would
//!   lease missions nobody plans until the lease expires.
//! - Mission ids are path segments, percent-encoded.

use std::time::Duration;

use rand::Rng;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use types::error::{ApiError, codes};
use types::missions::{
    MissionClaimRequest, MissionClaimResponse, MissionReleaseRequest, WriteIterationRequest,
    WriteIterationResponse,
};

use crate::text::truncate_chars;

/// The service-key header.
pub const SERVICE_KEY_HEADER: &str = "x-service-key";

/// Why a call to auth-internal failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// 409 `lease_lost`: another worker owns the mission now (or the lease expired).
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// Any other non-2xx answer.
    #[error("auth-internal answered HTTP {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The envelope's `code` (`http_<status>` when the body was not the envelope).
        code: String,
        /// The envelope's message (or the start of the body).
        message: String,
    },
    /// Connecting, sending or reading failed, or it timed out.
    #[error("auth-internal transport error: {0}")]
    Transport(String),
    /// A 2xx body that is not what the contract says.
    #[error("cannot decode auth-internal's answer: {0}")]
    Decode(String),
    /// The base URL is unusable.
    #[error("invalid auth-internal URL: {0}")]
    Url(String),
}

impl ClientError {
    /// The stable code: the envelope's, or `transport`, `decode`, `url`.
    pub fn code(&self) -> &str {
        match self {
            Self::LeaseLost(_) => codes::LEASE_LOST,
            Self::Api { code, .. } => code,
            Self::Transport(_) => "transport",
            Self::Decode(_) => "decode",
            Self::Url(_) => "url",
        }
    }

    /// Whether this is 409 `lease_lost`.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Self::LeaseLost(_))
    }

    fn retryable(&self, idempotent: bool, connect_failed: bool) -> bool {
        match self {
            Self::Transport(_) => idempotent || connect_failed,
            Self::Api { status, .. } => {
                *status == 429 || *status == 503 || (idempotent && (500..=599).contains(status))
            }
            Self::LeaseLost(_) | Self::Decode(_) | Self::Url(_) => false,
        }
    }
}

/// Retry and timeout policy of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRetry {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure, before jitter; doubles per attempt.
    pub base_delay: Duration,
    /// Longest single wait.
    pub max_delay: Duration,
    /// Limit of one attempt.
    pub request_timeout: Duration,
}

impl Default for ClientRetry {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl ClientRetry {
    /// Wait after failed attempt `attempt` (1-based): "equal jitter" of the exponential delay.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        let full = self.base_delay.saturating_mul(exp).min(self.max_delay);
        let half = full / 2;
        let spread = u64::try_from((full - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            rand::rng().random_range(0..=spread)
        };
        half + Duration::from_nanos(jitter)
    }
}

/// A client of the mission endpoints. Cheap to clone.
#[derive(Clone)]
pub struct InternalClient {
    http: reqwest::Client,
    base: Url,
    key: SecretString,
    retry: ClientRetry,
}

impl std::fmt::Debug for InternalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalClient")
            .field("base", &self.base.as_str())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl InternalClient {
    /// A client of auth-internal at `base_url` (e.g. `http://127.0.0.1:3001`; a path
    /// prefix is kept).
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        service_key: SecretString,
        retry: ClientRetry,
    ) -> Result<Self, ClientError> {
        let base = Url::parse(base_url.trim()).map_err(|e| ClientError::Url(e.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Url(format!(
                "{base_url:?} is not an http(s) base URL"
            )));
        }
        Ok(Self {
            http,
            base,
            key: service_key,
            retry: ClientRetry {
                max_attempts: retry.max_attempts.max(1),
                ..retry
            },
        })
    }

    /// `POST /api/v1/internal/missions/claim`.
    pub async fn claim(
        &self,
        req: &MissionClaimRequest,
    ) -> Result<MissionClaimResponse, ClientError> {
        let url = self.url(&["claim"])?;
        self.post(url, req, false).await
    }

    /// `POST /api/v1/internal/missions/{id}/iterations`.
    pub async fn write_iteration(
        &self,
        mission_id: &str,
        req: &WriteIterationRequest,
    ) -> Result<WriteIterationResponse, ClientError> {
        let url = self.url(&[mission_id, "iterations"])?;
        self.post(url, req, true).await
    }

    /// `POST /api/v1/internal/missions/{id}/release`. Any 2xx body is accepted.
    pub async fn release(
        &self,
        mission_id: &str,
        req: &MissionReleaseRequest,
    ) -> Result<(), ClientError> {
        let url = self.url(&[mission_id, "release"])?;
        self.post::<_, serde::de::IgnoredAny>(url, req, true)
            .await
            .map(|_| ())
    }

    fn url(&self, tail: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::Url("base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["api", "v1", "internal", "missions"])
            .extend(tail);
        Ok(url)
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        url: Url,
        body: &B,
        idempotent: bool,
    ) -> Result<T, ClientError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (result, connect_failed) = self.post_once(url.clone(), body).await;
            match result {
                Ok(v) => return Ok(v),
                Err(e)
                    if attempt < self.retry.max_attempts
                        && e.retryable(idempotent, connect_failed) =>
                {
                    let wait = self.retry.backoff(attempt);
                    tracing::debug!(
                        url.path = url.path(),
                        attempt,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %e,
                        "retrying auth-internal call"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt; the flag says whether the connection itself failed (nothing was sent).
    async fn post_once<B: Serialize, T: DeserializeOwned>(
        &self,
        url: Url,
        body: &B,
    ) -> (Result<T, ClientError>, bool) {
        let sent = self
            .http
            .post(url)
            .header(SERVICE_KEY_HEADER, self.key.expose_secret())
            .timeout(self.retry.request_timeout)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let connect = e.is_connect();
                return (Err(ClientError::Transport(transport_message(&e))), connect);
            }
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return (Err(ClientError::Transport(transport_message(&e))), false),
        };
        if status.is_success() {
            // An empty 2xx body stands for `null` (e.g. a 204 release).
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return (
                serde_json::from_slice(bytes)
                    .map_err(|e| ClientError::Decode(truncate_chars(&e.to_string(), 300))),
                false,
            );
        }
        (Err(api_error(status, &bytes)), false)
    }
}

fn transport_message(e: &reqwest::Error) -> String {
    // reqwest's Display names the URL, never headers, so the key cannot leak here.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    truncate_chars(&format!("{kind}: {e}"), 300)
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let (code, message) = match serde_json::from_slice::<ApiError>(body) {
        Ok(env) => (env.error.code, env.error.message),
        Err(_) => (
            format!("http_{}", status.as_u16()),
            truncate_chars(&String::from_utf8_lossy(body), 300),
        ),
    };
    if status == StatusCode::CONFLICT && code == codes::LEASE_LOST {
        return ClientError::LeaseLost(message);
    }
    ClientError::Api {
        status: status.as_u16(),
        code,
        message: truncate_chars(&message, 300),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn client(base: &str) -> InternalClient {
        InternalClient::new(
            reqwest::Client::new(),
            base,
            SecretString::from("very-secret-key"),
            ClientRetry::default(),
        )
        .unwrap()
    }

    #[test]
    fn urls_keep_a_prefix_and_encode_ids() {
        let c = client("http://auth:3001/prefix/");
        assert_eq!(
            c.url(&["claim"]).unwrap().as_str(),
            "http://auth:3001/prefix/api/v1/internal/missions/claim"
        );
        assert_eq!(
            c.url(&["a/b c?", "iterations"]).unwrap().as_str(),
            "http://auth:3001/prefix/api/v1/internal/missions/a%2Fb%20c%3F/iterations"
        );
        assert!(!format!("{c:?}").contains("very-secret-key"));
        assert!(
            InternalClient::new(
                reqwest::Client::new(),
                "mailto:x@y",
                SecretString::from("k"),
                ClientRetry::default()
            )
            .is_err()
        );
    }

    #[test]
    fn error_envelopes_become_typed_errors() {
        let lost = api_error(
            StatusCode::CONFLICT,
            br#"{"error":{"code":"lease_lost","message":"stale token"}}"#,
        );
        assert!(lost.is_lease_lost());
        assert_eq!(lost.code(), "lease_lost");
        let other = api_error(
            StatusCode::CONFLICT,
            br#"{"error":{"code":"conflict","message":"x"}}"#,
        );
        assert!(!other.is_lease_lost());
        assert_eq!(other.code(), "conflict");
        let raw = api_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(raw.code(), "http_502");
        assert!(raw.to_string().contains("bad gateway"));
    }

    #[test]
    fn retry_rules() {
        let api = |status| ClientError::Api {
            status,
            code: "x".into(),
            message: String::new(),
        };
        let t = ClientError::Transport("x".into());
        assert!(t.retryable(true, false));
        assert!(!t.retryable(false, false));
        assert!(t.retryable(false, true));
        assert!(api(500).retryable(true, false));
        assert!(!api(500).retryable(false, false));
        assert!(api(503).retryable(false, false));
        assert!(api(429).retryable(false, false));
        assert!(!api(400).retryable(true, false));
        assert!(!ClientError::LeaseLost(String::new()).retryable(true, false));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = ClientRetry {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            request_timeout: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let first = r.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = r.backoff(10);
            assert!(late >= Duration::from_millis(150) && late <= Duration::from_millis(300));
        }
    }
}
