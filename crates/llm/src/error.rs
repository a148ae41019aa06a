//! Errors of the LLM layer.
//!
//! Rules: no variant ever holds an API key (vendor bodies are redacted and truncated to
//! [`MAX_ERROR_BODY_CHARS`] before they get here); [`LlmError::is_retryable`] is the one
//! place that decides what the retry loop repeats.

use std::time::Duration;

/// Longest vendor error text kept in an error.
pub const MAX_ERROR_BODY_CHARS: usize = 500;

/// What can go wrong talking to a model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The configuration is unusable (missing key, unknown provider, bad number).
    #[error("LLM configuration: {0}")]
    Config(String),
    /// The request breaks a rule of the vendor APIs; nothing was sent.
    #[error("invalid LLM request: {0}")]
    InvalidRequest(String),
    /// The vendor answered with a non-success status.
    #[error("LLM provider answered HTTP {status}: {message}")]
    Http {
        /// HTTP status code.
        status: u16,
        /// The vendor's error message (or the start of its body).
        message: String,
        /// The vendor's `retry-after`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Connecting, sending or reading failed.
    #[error("LLM transport error: {0}")]
    Transport(String),
    /// The request took longer than the per-request timeout.
    #[error("LLM request timed out after {0:?}")]
    Timeout(Duration),
    /// The vendor's answer was not the JSON we expected.
    #[error("cannot decode LLM response: {0}")]
    Decode(String),
    /// Every attempt failed with a retryable error.
    #[error("LLM request failed after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<LlmError>,
    },
}

impl LlmError {
    /// Whether another attempt may succeed: 429, 5xx (incl. Anthropic's 529 "overloaded"),
    /// transport errors and timeouts. Other 4xx, decode and config errors are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => *status == 429 || (500..=599).contains(status),
            Self::Transport(_) | Self::Timeout(_) => true,
            Self::Config(_)
            | Self::InvalidRequest(_)
            | Self::Decode(_)
            | Self::RetriesExhausted { .. } => false,
        }
    }

    /// The HTTP status behind this error, looking through [`LlmError::RetriesExhausted`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            Self::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> LlmError {
        LlmError::Http {
            status,
            message: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn retryable_classification() {
        for s in [429, 500, 502, 503, 529] {
            assert!(http(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!http(s).is_retryable(), "{s}");
        }
        assert!(LlmError::Transport("x".into()).is_retryable());
        assert!(LlmError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!LlmError::Decode("x".into()).is_retryable());
        assert!(!LlmError::Config("x".into()).is_retryable());
        let exhausted = LlmError::RetriesExhausted {
            attempts: 3,
            last: Box::new(http(503)),
        };
        assert!(!exhausted.is_retryable());
        assert_eq!(exhausted.status(), Some(503));
    }
}
