//! LLM providers behind one provider-neutral API.
//!
//! [`Llm`] talks to the Anthropic Messages API, any OpenAI-compatible Chat Completions
//! endpoint, or the deterministic offline `sim` provider, chosen by [`LlmSettings`].
//!
//! Rules:
//! - Callers speak only the neutral model ([`ChatRequest`], [`Message`], [`ChatResponse`]);
//!   each provider maps it to exactly what its vendor API accepts.
//! - Every request is checked with [`ChatRequest::validate`] before it is sent, so a
//!   malformed conversation fails the same way on every provider (sim included).
//! - Real providers retry 429/5xx/529, transport errors and timeouts per [`RetryPolicy`];
//!   other 4xx are final.
//! - API keys never reach logs, errors or `Debug` output; prompts are never logged.
//! - `sim` is a simulated player, not a model: [`Llm::is_sim`] and [`Llm::sim_reason`]
//!   let services say so loudly.

mod anthropic;
mod error;
pub mod extract;
mod http;
pub mod metrics;
mod model;
mod openai;
mod otel;
mod retry;
mod settings;
mod sim;
pub mod slim;

use std::time::Instant;

use tracing::Instrument;

pub use anthropic::ANTHROPIC_VERSION;
pub use error::{
    ErrorClass, LlmError, MAX_ERROR_BODY_CHARS, is_context_length_message, is_validation_message,
};
pub use model::{
    ChatRequest, ChatResponse, Message, Purpose, RequestMeta, StopReason, ToolCall, ToolDef,
    ToolResult, is_valid_tool_name,
};
pub use openai::TOOL_ERROR_PREFIX;
pub use otel::error_type;
pub use retry::RetryPolicy;
pub use settings::{
    DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_ANTHROPIC_MODEL, DEFAULT_OPENAI_BASE_URL,
    DEFAULT_OPENAI_MODEL, DEFAULT_SIM_MODEL, LlmSettings, PromptCache, ProviderKind,
    ResolvedProvider, ToolSchema,
};

use anthropic::AnthropicProvider;
use openai::OpenAiProvider;
use secrecy::{ExposeSecret, SecretString};
use sim::SimProvider;

/// A configured model client. Cheap to clone (the HTTP client is shared).
#[derive(Debug, Clone)]
pub struct Llm {
    provider: Provider,
    retry: RetryPolicy,
    sim_reason: Option<String>,
    metrics: Option<metrics::LlmMetrics>,
}

#[derive(Debug, Clone)]
enum Provider {
    Anthropic(AnthropicProvider),
    OpenAi(OpenAiProvider),
    Sim(SimProvider),
}

impl Llm {
    /// Builds the provider `settings` resolve to, sharing `client` (its own timeouts are
    /// overridden per request by the retry policy).
    pub fn from_settings(
        settings: &LlmSettings,
        client: reqwest::Client,
    ) -> Result<Self, LlmError> {
        let resolved = settings.resolve()?;
        let endpoint = || {
            resolved
                .endpoint
                .clone()
                .ok_or_else(|| LlmError::Config("provider has no endpoint".into()))
        };
        let provider = match resolved.kind {
            ProviderKind::Anthropic => Provider::Anthropic(AnthropicProvider {
                client,
                endpoint: endpoint()?,
                api_key: settings
                    .anthropic_api_key
                    .as_ref()
                    .map(|k| SecretString::from(k.expose_secret().trim()))
                    .ok_or_else(|| LlmError::Config("ANTHROPIC_API_KEY is not set".into()))?,
                model: resolved.model.clone(),
                prompt_cache: settings.prompt_cache.unwrap_or_default(),
                tool_schema: resolved.tool_schema,
            }),
            ProviderKind::OpenAi => Provider::OpenAi(OpenAiProvider {
                client,
                endpoint: endpoint()?,
                api_key: settings
                    .openai_api_key
                    .as_ref()
                    .map(|k| SecretString::from(k.expose_secret().trim()))
                    .filter(|k| !k.expose_secret().is_empty()),
                model: resolved.model.clone(),
                tool_schema: resolved.tool_schema,
            }),
            ProviderKind::Sim => Provider::Sim(SimProvider {
                seed: settings.sim_seed.unwrap_or(0),
                model: resolved.model.clone(),
            }),
        };
        Ok(Self {
            provider,
            retry: settings.retry_policy(),
            sim_reason: resolved.sim_reason,
            metrics: None,
        })
    }

    /// The `sim` provider with `seed`, e.g. for tests and demos.
    pub fn sim(seed: u64) -> Self {
        Self {
            provider: Provider::Sim(SimProvider {
                seed,
                model: DEFAULT_SIM_MODEL.to_string(),
            }),
            retry: RetryPolicy::default(),
            sim_reason: Some("sim provider constructed directly".into()),
            metrics: None,
        }
    }

    /// Replaces the retry policy (tests use tiny delays).
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Record every call in `metrics` (register its families with the service's registry).
    #[must_use]
    pub fn with_metrics(mut self, metrics: metrics::LlmMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How tool schemas are sent (`LLM_TOOL_SCHEMA` resolved: `full` or `slim`); `None`
    /// for `sim`, which sends nothing.
    pub fn tool_schema(&self) -> Option<ToolSchema> {
        match &self.provider {
            Provider::Anthropic(p) => Some(p.tool_schema),
            Provider::OpenAi(p) => Some(p.tool_schema),
            Provider::Sim(_) => None,
        }
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// One model turn. Validates the request, then calls the provider (with retries for
    /// the real ones).
    /// The call is one `chat {model}` span (GenAI conventions, see the `otel` module).
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let span = otel::chat_span(self.provider_name(), self.model(), req);
        let result = self.chat_unobserved(req).instrument(span.clone()).await;
        match &result {
            Ok(resp) => otel::record_response(&span, resp),
            Err(e) => otel::record_error(&span, e),
        }
        if let Some(m) = &self.metrics {
            m.observe(
                self.provider_name(),
                result.as_ref().map(|_| ()),
                started.elapsed().as_secs_f64(),
            );
        }
        result
    }

    async fn chat_unobserved(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        req.validate()?;
        match &self.provider {
            Provider::Anthropic(p) => p.chat(req, &self.retry).await,
            Provider::OpenAi(p) => p.chat(req, &self.retry).await,
            Provider::Sim(p) => {
                let started = Instant::now();
                let response = p.chat(req);
                tracing::debug!(
                    llm.provider = "sim",
                    llm.model = %p.model,
                    duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "sim answered"
                );
                Ok(response)
            }
        }
    }

    /// `"anthropic"`, `"openai"` or `"sim"`.
    pub fn provider_name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Which provider answers.
    pub fn kind(&self) -> ProviderKind {
        match &self.provider {
            Provider::Anthropic(_) => ProviderKind::Anthropic,
            Provider::OpenAi(_) => ProviderKind::OpenAi,
            Provider::Sim(_) => ProviderKind::Sim,
        }
    }

    /// The configured model name.
    pub fn model(&self) -> &str {
        match &self.provider {
            Provider::Anthropic(p) => &p.model,
            Provider::OpenAi(p) => &p.model,
            Provider::Sim(p) => &p.model,
        }
    }

    /// Whether the offline simulator answers (services must say so in logs and /health).
    pub fn is_sim(&self) -> bool {
        matches!(self.provider, Provider::Sim(_))
    }

    /// Whether native tool calling is offered. All three providers support it; an
    /// OpenAI-compatible server whose model lacks it will answer with plain text.
    pub fn supports_tools(&self) -> bool {
        true
    }

    /// Why `sim` answers (`None` for real providers).
    pub fn sim_reason(&self) -> Option<&str> {
        self.sim_reason.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let llm = Llm::sim(1);
        let req = ChatRequest::new("s", "u", 10);
        let fut = llm.chat(&req);
        assert_send(&fut);
    }

    #[test]
    fn from_settings_builds_the_resolved_provider() {
        let s = LlmSettings::from_lookup(|k| {
            (k == "ANTHROPIC_API_KEY").then(|| "sk-ant-abcdef".to_string())
        })
        .unwrap();
        let llm = Llm::from_settings(&s, reqwest::Client::new()).unwrap();
        assert_eq!(llm.provider_name(), "anthropic");
        assert_eq!(llm.model(), "claude-sonnet-4-5");
        assert!(!llm.is_sim());
        assert_eq!(llm.sim_reason(), None);
        assert!(!format!("{llm:?}").contains("sk-ant-abcdef"));

        let llm = Llm::from_settings(&LlmSettings::default(), reqwest::Client::new()).unwrap();
        assert!(llm.is_sim());
        assert_eq!(llm.provider_name(), "sim");
        assert_eq!(llm.model(), "sim-1");
        assert!(llm.sim_reason().unwrap().contains("no LLM configured"));
    }
}
