//! Register the LLM request metrics of `crates/llm` in a runner's registry.

use llm::metrics::LlmMetrics;
use service_kit::metrics::Metrics;

/// Register `llm_requests` and `llm_request_duration_seconds` (by provider and
/// status) and return the families to attach with `Llm::with_metrics`.
pub fn register_llm_metrics(metrics: &Metrics) -> LlmMetrics {
    let m = LlmMetrics::default();
    metrics.register(
        "llm_requests",
        "LLM requests (after retries) by provider and status",
        m.requests.clone(),
    );
    metrics.register(
        "llm_request_duration_seconds",
        "LLM request latency, retries included, by provider and status",
        m.duration.clone(),
    );
    m
}
