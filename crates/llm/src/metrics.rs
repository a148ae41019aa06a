//! Prometheus metrics of LLM requests: count and latency by provider and
//! status (`ok`, the HTTP status of the final failure, `transport`, `timeout`,
//! `decode`, `invalid_request`, `config`). One observation per `chat` call,
//! after retries.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};

use crate::LlmError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlmLabels {
    pub provider: String,
    pub status: String,
}

/// The families a service registers (e.g. `llm_requests`, `llm_request_duration_seconds`).
#[derive(Clone, Debug)]
pub struct LlmMetrics {
    pub requests: Family<LlmLabels, Counter>,
    pub duration: Family<LlmLabels, Histogram>,
}

impl Default for LlmMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(
                (|| {
                    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                        0.01, 2.0, 14,
                    ))
                }) as fn() -> Histogram,
            ),
        }
    }
}

/// The status label of a finished call.
pub fn status_label(result: Result<(), &LlmError>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(e) => match e.status() {
            Some(status) => status.to_string(),
            None => match e {
                LlmError::Timeout(..) => "timeout".into(),
                LlmError::Transport(..) => "transport".into(),
                LlmError::Decode(..) => "decode".into(),
                LlmError::InvalidRequest(..) => "invalid_request".into(),
                LlmError::Config(..) => "config".into(),
                LlmError::RetriesExhausted { last, .. } => status_label(Err(last)),
                _ => "error".into(),
            },
        },
    }
}

impl LlmMetrics {
    pub(crate) fn observe(&self, provider: &str, result: Result<(), &LlmError>, seconds: f64) {
        let labels = LlmLabels {
            provider: provider.to_owned(),
            status: status_label(result),
        };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_name_the_final_outcome() {
        assert_eq!(status_label(Ok(())), "ok");
        let http = LlmError::Http {
            status: 529,
            message: "overloaded".into(),
            retry_after: None,
        };
        assert_eq!(status_label(Err(&http)), "529");
        let exhausted = LlmError::RetriesExhausted {
            attempts: 3,
            last: Box::new(LlmError::Transport("refused".into())),
        };
        assert_eq!(status_label(Err(&exhausted)), "transport");
    }
}
