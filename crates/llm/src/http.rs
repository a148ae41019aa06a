//! The one HTTP path both real providers share: POST JSON, retry, decode.
//!
//! Rules: the body is serialised once and re-sent unchanged on every attempt (with the
//! `chat` span's W3C `traceparent`); every
//! attempt is logged (provider, model, status, attempt, duration) without the key or the
//! prompt; vendor error bodies are reduced to their message, stripped of the key and
//! truncated before they become an [`LlmError`].

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{LlmError, MAX_ERROR_BODY_CHARS};
use crate::model::truncate_chars;
use crate::retry::{RetryPolicy, parse_retry_after, parse_retry_after_ms};

/// A request body of both APIs: the conversation's fields as JSON, then the tools,
/// serialized from their definitions (see [`crate::slim::wire_schema`]) rather than
/// copied into a `Value` on every turn, then `tool_choice` where the API takes one.
#[derive(Debug, Serialize)]
pub(crate) struct Body<T> {
    #[serde(flatten)]
    pub fields: Map<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'static str>,
}

/// One logical call to a vendor endpoint; `B` is the body's type.
pub(crate) struct JsonCall<'a, B: ?Sized> {
    pub provider: &'static str,
    pub model: &'a str,
    pub url: &'a str,
    /// Extra headers (auth, version); marked sensitive where they hold a key.
    pub headers: HeaderMap,
    pub body: &'a B,
    /// The key, so it can be scrubbed from anything a vendor echoes back.
    pub secret: Option<&'a str>,
    /// Pulls the human message out of the vendor's error JSON.
    pub error_message: fn(&Value) -> Option<String>,
}

/// POSTs `call.body` with retries per `policy`; returns the decoded success body.
pub(crate) async fn post_json<B: Serialize + ?Sized>(
    client: &reqwest::Client,
    policy: &RetryPolicy,
    call: JsonCall<'_, B>,
) -> Result<Value, LlmError> {
    let bytes = serde_json::to_vec(call.body)
        .map_err(|e| LlmError::InvalidRequest(format!("cannot serialise request: {e}")))?;
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = Instant::now();
        let result = send_once(client, policy, &call, bytes.clone()).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let err = match result {
            Ok(value) => {
                tracing::info!(
                    llm.provider = call.provider,
                    llm.model = call.model,
                    http.status = 200u16,
                    attempt,
                    duration_ms,
                    "llm request succeeded"
                );
                return Ok(value);
            }
            Err(err) => err,
        };
        let status = err.status();
        if !err.is_retryable() {
            tracing::warn!(
                llm.provider = call.provider,
                llm.model = call.model,
                http.status = status,
                attempt,
                duration_ms,
                error = %err,
                "llm request failed, not retryable"
            );
            return Err(err);
        }
        if attempt >= max_attempts {
            tracing::warn!(
                llm.provider = call.provider,
                llm.model = call.model,
                http.status = status,
                attempt,
                duration_ms,
                error = %err,
                "llm request failed, attempts exhausted"
            );
            return Err(LlmError::RetriesExhausted {
                attempts: attempt,
                last: Box::new(err),
            });
        }
        let retry_after = match &err {
            LlmError::Http { retry_after, .. } => *retry_after,
            _ => None,
        };
        let wait = policy.backoff(attempt, retry_after);
        tracing::warn!(
            llm.provider = call.provider,
            llm.model = call.model,
            http.status = status,
            attempt,
            duration_ms,
            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            error = %err,
            "llm request failed, retrying"
        );
        tokio::time::sleep(wait).await;
    }
}

async fn send_once<B: ?Sized>(
    client: &reqwest::Client,
    policy: &RetryPolicy,
    call: &JsonCall<'_, B>,
    body: Vec<u8>,
) -> Result<Value, LlmError> {
    let transport = |e: reqwest::Error| map_reqwest(&e, policy.request_timeout, call.secret);
    let mut headers = call.headers.clone();
    // W3C trace context of the `chat` span, so an instrumented gateway continues the trace.
    service_kit::telemetry::inject_current(&mut headers);
    let response = client
        .post(call.url)
        .headers(headers)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .timeout(policy.request_timeout)
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let bytes = response.bytes().await.map_err(transport)?;
    if !status.is_success() {
        let parsed = serde_json::from_slice::<Value>(&bytes).ok();
        let message = parsed
            .as_ref()
            .and_then(call.error_message)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(LlmError::Http {
            status: status.as_u16(),
            message: clean(&message, call.secret),
            retry_after,
        });
    }
    serde_json::from_slice::<Value>(&bytes).map_err(|e| {
        let start = clean(&String::from_utf8_lossy(&bytes), call.secret);
        LlmError::Decode(format!(
            "body is not JSON ({e}): {}",
            truncate_chars(&start, 200)
        ))
    })
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("retry-after-ms")
        .and_then(parse_retry_after_ms)
        .or_else(|| header("retry-after").and_then(|v| parse_retry_after(v, chrono::Utc::now())))
}

fn map_reqwest(e: &reqwest::Error, timeout: Duration, secret: Option<&str>) -> LlmError {
    if e.is_timeout() {
        return LlmError::Timeout(timeout);
    }
    // reqwest's Display hides the cause ("error sending request"); walk the chain.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    LlmError::Transport(clean(&text, secret))
}

/// Removes the key (should a vendor or proxy echo it) and truncates.
pub(crate) fn clean(text: &str, secret: Option<&str>) -> String {
    let text = match secret {
        Some(s) if s.len() >= 4 => text.replace(s, "[REDACTED]"),
        _ => text.to_string(),
    };
    truncate_chars(text.trim(), MAX_ERROR_BODY_CHARS)
}

/// A header value holding a secret: marked sensitive so reqwest never prints it.
pub(crate) fn secret_header(value: &str, name: &str) -> Result<HeaderValue, LlmError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        // Never echo the value: it is a key.
        LlmError::Config(format!(
            "{name} contains characters not allowed in a header"
        ))
    })?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_redacts_and_truncates() {
        let key = "sk-secret-123456";
        let text = format!("bad key {key} {}", "x".repeat(1000));
        let out = clean(&text, Some(key));
        assert!(!out.contains(key));
        assert!(out.contains("[REDACTED]"));
        assert!(out.chars().count() <= MAX_ERROR_BODY_CHARS + 1);
    }

    #[test]
    fn retry_after_ms_is_preferred() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("20"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(20)));
    }
}
