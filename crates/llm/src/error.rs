//! Errors of the LLM layer.
//!
//! Rules: no variant ever holds an API key (vendor bodies are redacted and truncated to
//! [`MAX_ERROR_BODY_CHARS`] before they get here); [`LlmError::class`] is the one place
//! that classifies a failure, and [`LlmError::is_retryable`] follows from the class:
//! only `rate_limited`, `overloaded`, `server`, `transport` and `timeout` are repeated.
//! A request the vendor refused as malformed (400/404/422, or a 500 whose body is a
//! request-validation error, as llama.cpp's Python server answers) or as too long for
//! the model's context would fail the same way again, so it is final.

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

/// What kind of failure an [`LlmError`] is; stable snake_case names via
/// [`ErrorClass::as_str`] (stored as a run's `errorClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The prompt does not fit the model's context window.
    ContextLength,
    /// The vendor refused the request as malformed (400/404/422, a validation 500), or
    /// our own check refused it before sending.
    InvalidRequest,
    /// 401/403: the key is missing, wrong or not allowed.
    Auth,
    /// 429.
    RateLimited,
    /// 529 (Anthropic "overloaded").
    Overloaded,
    /// Other 5xx.
    Server,
    /// Any other HTTP status.
    Http,
    /// Connecting, sending or reading failed.
    Transport,
    /// The per-request timeout passed.
    Timeout,
    /// The answer was not the JSON we expected.
    Decode,
    /// The configuration is unusable.
    Config,
}

impl ErrorClass {
    /// The stable name: `context_length`, `invalid_request`, `auth`, `rate_limited`,
    /// `overloaded`, `server`, `http`, `transport`, `timeout`, `decode`, `config`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContextLength => "context_length",
            Self::InvalidRequest => "invalid_request",
            Self::Auth => "auth",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Server => "server",
            Self::Http => "http",
            Self::Transport => "transport",
            Self::Timeout => "timeout",
            Self::Decode => "decode",
            Self::Config => "config",
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Overloaded | Self::Server | Self::Transport | Self::Timeout
        )
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a vendor message says the prompt is longer than the context window
/// (OpenAI/vLLM "maximum context length", code `context_length_exceeded`, llama.cpp
/// "exceed context window" / "exceeds the available context size", Anthropic "prompt is
/// too long", Ollama/LiteLLM "context length").
pub fn is_context_length_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "maximum context length",
        "context_length_exceeded",
        "context length exceeded",
        "exceed context window",
        "exceeds the context window",
        "available context size",
        "prompt is too long",
        "input is too long",
        "too many tokens",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Whether a 5xx body is really a refusal of the request: a server that answers a
/// request-validation failure with 500 (llama-cpp-python with pydantic: "1 validation
/// error for …", FastAPI's `RequestValidationError`) fails the same way every time.
pub fn is_validation_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("validation error")
        || m.contains("validationerror")
        || m.contains("input should be")
        || m.contains("field required")
}

impl LlmError {
    /// Classifies the failure (looking through [`LlmError::RetriesExhausted`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Http {
                status, message, ..
            } => {
                if is_context_length_message(message) {
                    return ErrorClass::ContextLength;
                }
                match *status {
                    400 | 404 | 413 | 422 => ErrorClass::InvalidRequest,
                    401 | 403 => ErrorClass::Auth,
                    429 => ErrorClass::RateLimited,
                    529 => ErrorClass::Overloaded,
                    500..=599 if is_validation_message(message) => ErrorClass::InvalidRequest,
                    500..=599 => ErrorClass::Server,
                    _ => ErrorClass::Http,
                }
            }
            Self::Transport(_) => ErrorClass::Transport,
            Self::Timeout(_) => ErrorClass::Timeout,
            Self::Decode(_) => ErrorClass::Decode,
            Self::Config(_) => ErrorClass::Config,
            Self::InvalidRequest(_) => ErrorClass::InvalidRequest,
            Self::RetriesExhausted { last, .. } => last.class(),
        }
    }

    /// Whether another attempt may succeed: 429, 5xx (incl. Anthropic's 529
    /// "overloaded") unless the body is a request-validation or context-length error,
    /// transport errors and timeouts. Other 4xx, decode and config errors are final, and
    /// so is an exhausted retry loop.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RetriesExhausted { .. } => false,
            other => other.class().is_retryable(),
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
        http_msg(status, "")
    }

    fn http_msg(status: u16, message: &str) -> LlmError {
        LlmError::Http {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    #[test]
    fn error_classes() {
        let cases = [
            (http(400), ErrorClass::InvalidRequest),
            (http(404), ErrorClass::InvalidRequest),
            (http(422), ErrorClass::InvalidRequest),
            (http(401), ErrorClass::Auth),
            (http(429), ErrorClass::RateLimited),
            (http(529), ErrorClass::Overloaded),
            (http(503), ErrorClass::Server),
            (http(418), ErrorClass::Http),
            (
                http_msg(
                    400,
                    "invalid_request_error: This model's maximum context length is 8192 tokens",
                ),
                ErrorClass::ContextLength,
            ),
            (
                http_msg(400, "context_length_exceeded"),
                ErrorClass::ContextLength,
            ),
            (
                http_msg(400, "Requested tokens (9751) exceed context window of 8192"),
                ErrorClass::ContextLength,
            ),
            (
                http_msg(
                    400,
                    "invalid_request_error: prompt is too long: 210000 tokens > 200000 maximum",
                ),
                ErrorClass::ContextLength,
            ),
            (
                http_msg(
                    500,
                    "1 validation error for ChatCompletionRequestAssistantMessage content Input should be a valid string",
                ),
                ErrorClass::InvalidRequest,
            ),
            (LlmError::Transport("x".into()), ErrorClass::Transport),
            (
                LlmError::Timeout(Duration::from_secs(1)),
                ErrorClass::Timeout,
            ),
            (LlmError::Decode("x".into()), ErrorClass::Decode),
            (LlmError::Config("x".into()), ErrorClass::Config),
            (
                LlmError::InvalidRequest("x".into()),
                ErrorClass::InvalidRequest,
            ),
        ];
        for (err, class) in cases {
            assert_eq!(err.class(), class, "{err}");
            assert_eq!(err.is_retryable(), class.is_retryable(), "{err}");
        }
        let exhausted = LlmError::RetriesExhausted {
            attempts: 4,
            last: Box::new(http(503)),
        };
        assert_eq!(exhausted.class(), ErrorClass::Server);
        assert_eq!(ErrorClass::ContextLength.as_str(), "context_length");
        assert_eq!(ErrorClass::RateLimited.to_string(), "rate_limited");
        assert!(!ErrorClass::ContextLength.is_retryable());
        assert!(ErrorClass::Overloaded.is_retryable());
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
