//! LLM configuration and provider resolution.
//!
//! Rules:
//! - Environment names are exactly `LLM_PROVIDER`, `LLM_MODEL`, `ANTHROPIC_API_KEY`,
//!   `ANTHROPIC_BASE_URL`, `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `LLM_TIMEOUT_SECS`,
//!   `LLM_MAX_ATTEMPTS`, `LLM_SIM_SEED`, `LLM_PROMPT_CACHE` (`on` by default: Anthropic
//!   `cache_control` breakpoints; `off` sends none; `1h`: see [`PromptCache`]), `LLM_TOOL_SCHEMA` (`auto` by default:
//!   see [`ToolSchema`]). An empty value counts as unset (compose files often write
//!   `ANTHROPIC_API_KEY=`).
//! - Resolution: an explicit `LLM_PROVIDER` wins; else Anthropic when its key is set; else
//!   OpenAI-compatible when its key or base URL is set; else `sim`, with a reason the
//!   services log loudly and show in /health.
//! - Keys are [`SecretString`]s: `Debug` prints `[REDACTED]`, and no error names a value.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::LlmError;
use crate::retry::RetryPolicy;

/// Default Anthropic host (root; `/v1/messages` is appended).
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// Default OpenAI base (ends in `/v1`; `/chat/completions` is appended).
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Default model per provider.
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
/// Default OpenAI model.
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";
/// The sim provider's model name.
pub const DEFAULT_SIM_MODEL: &str = "sim-1";

/// Which provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Anthropic Messages API.
    Anthropic,
    /// Any OpenAI-compatible `/chat/completions` endpoint.
    #[serde(rename = "openai")]
    OpenAi,
    /// The deterministic offline simulator.
    Sim,
}

impl ProviderKind {
    /// The provider's name as used in config, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::OpenAi => "openai",
            Self::Sim => "sim",
        }
    }

    /// The model used when none is configured.
    pub fn default_model(self) -> &'static str {
        match self {
            Self::Anthropic => DEFAULT_ANTHROPIC_MODEL,
            Self::OpenAi => DEFAULT_OPENAI_MODEL,
            Self::Sim => DEFAULT_SIM_MODEL,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "anthropic" => Ok(Self::Anthropic),
            "openai" => Ok(Self::OpenAi),
            "sim" => Ok(Self::Sim),
            other => Err(LlmError::Config(format!(
                "LLM_PROVIDER must be anthropic, openai or sim, not {other:?}"
            ))),
        }
    }
}

/// Anthropic prompt caching (`LLM_PROMPT_CACHE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PromptCache {
    /// No `cache_control` breakpoints.
    #[serde(rename = "off")]
    Off,
    /// Breakpoints with the default 5-minute lifetime (`on`, `5m`).
    #[default]
    #[serde(rename = "on", alias = "5m")]
    On,
    /// The stable prefix (tools + shared system) lives an hour (`ttl: "1h"`), so the
    /// next day of a persona with the same tools reads it even when days are more than
    /// 5 minutes apart; the persona block and the newest message keep 5 minutes (the
    /// turns of one day are seconds apart). Anthropic bills a 1-hour write 2× an input
    /// token (a 5-minute one 1.25×).
    #[serde(rename = "1h")]
    OneHour,
}

impl PromptCache {
    /// `off`, `on` or `1h`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::OneHour => "1h",
        }
    }

    /// Whether breakpoints are sent at all.
    pub fn is_on(self) -> bool {
        self != Self::Off
    }
}

impl FromStr for PromptCache {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" | "5m" => Ok(Self::On),
            "off" | "false" | "0" | "no" => Ok(Self::Off),
            "1h" => Ok(Self::OneHour),
            _ => Err(LlmError::Config(format!(
                "LLM_PROMPT_CACHE must be on, off or 1h, not {s:?}"
            ))),
        }
    }
}

/// How tool input schemas are sent (`LLM_TOOL_SCHEMA`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolSchema {
    /// `slim` for an OpenAI-compatible server that is not `api.openai.com` (local and
    /// third-party servers, which often compile schemas into a grammar), else `full`.
    #[default]
    Auto,
    /// The schemas exactly as the tools define them.
    Full,
    /// [`crate::slim::slim_schema`]: long length bounds capped, `pattern` and exotic
    /// `format`s dropped; the tool server still validates the full schema.
    Slim,
}

impl ToolSchema {
    /// `auto`, `full` or `slim`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Full => "full",
            Self::Slim => "slim",
        }
    }

    /// What `auto` means for `kind` at `endpoint`: `full` or `slim`, never `auto`.
    pub fn resolve(self, kind: ProviderKind, endpoint: Option<&str>) -> Self {
        match self {
            Self::Auto if kind == ProviderKind::OpenAi && !is_openai_host(endpoint) => Self::Slim,
            Self::Auto => Self::Full,
            other => other,
        }
    }
}

impl FromStr for ToolSchema {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "full" => Ok(Self::Full),
            "slim" => Ok(Self::Slim),
            other => Err(LlmError::Config(format!(
                "LLM_TOOL_SCHEMA must be auto, full or slim, not {other:?}"
            ))),
        }
    }
}

/// Whether `endpoint` is OpenAI's own API (`api.openai.com`, any scheme, port or path).
fn is_openai_host(endpoint: Option<&str>) -> bool {
    let Some(url) = endpoint else { return false };
    let rest = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .split(':')
        .next()
        .unwrap_or_default();
    host == "api.openai.com"
}

/// LLM configuration as read from the environment or a config file. Every field is
/// optional; [`LlmSettings::resolve`] decides what they mean together.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LlmSettings {
    /// `LLM_PROVIDER`; `None` means "pick from the keys".
    pub provider: Option<ProviderKind>,
    /// `LLM_MODEL`; `None` means the provider's default.
    pub model: Option<String>,
    /// `ANTHROPIC_API_KEY`.
    pub anthropic_api_key: Option<SecretString>,
    /// `ANTHROPIC_BASE_URL` (host root).
    pub anthropic_base_url: Option<String>,
    /// `OPENAI_API_KEY`; optional for keyless servers (Ollama, vLLM).
    pub openai_api_key: Option<SecretString>,
    /// `OPENAI_BASE_URL` (ends in `/v1`).
    pub openai_base_url: Option<String>,
    /// `LLM_TIMEOUT_SECS`: per-request timeout.
    pub timeout_secs: Option<u64>,
    /// `LLM_MAX_ATTEMPTS`: attempts per request, including the first.
    pub max_attempts: Option<u32>,
    /// `LLM_SIM_SEED`: the sim provider's base seed.
    pub sim_seed: Option<u64>,
    /// `LLM_PROMPT_CACHE`: `None` means [`PromptCache::On`].
    pub prompt_cache: Option<PromptCache>,
    /// `LLM_TOOL_SCHEMA`: `None` means [`ToolSchema::Auto`].
    pub tool_schema: Option<ToolSchema>,
}

/// The outcome of [`LlmSettings::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProvider {
    /// The provider that will answer.
    pub kind: ProviderKind,
    /// The model it will be asked for.
    pub model: String,
    /// Endpoint URL (`None` for sim).
    pub endpoint: Option<String>,
    /// Why `sim` answers, when it does.
    pub sim_reason: Option<String>,
    /// How tool schemas are sent: `full` or `slim` (`auto` resolved).
    pub tool_schema: ToolSchema,
}

const SIM_FALLBACK_REASON: &str = "no LLM configured: set LLM_PROVIDER (anthropic|openai) with \
     ANTHROPIC_API_KEY, or OPENAI_API_KEY / OPENAI_BASE_URL; using the offline `sim` provider \
     (simulated players, not a language model)";

impl LlmSettings {
    /// Reads the settings from `lookup` (e.g. `|k| std::env::var(k).ok()`), then checks that
    /// they resolve, so a misconfiguration fails at start-up.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let secret = |name: &str| get(name).map(SecretString::from);
        let settings = Self {
            provider: get("LLM_PROVIDER").map(|v| v.parse()).transpose()?,
            model: get("LLM_MODEL"),
            anthropic_api_key: secret("ANTHROPIC_API_KEY"),
            anthropic_base_url: get("ANTHROPIC_BASE_URL"),
            openai_api_key: secret("OPENAI_API_KEY"),
            openai_base_url: get("OPENAI_BASE_URL"),
            timeout_secs: parse_num(get("LLM_TIMEOUT_SECS"), "LLM_TIMEOUT_SECS", 1)?,
            max_attempts: parse_num(get("LLM_MAX_ATTEMPTS"), "LLM_MAX_ATTEMPTS", 1)?,
            sim_seed: parse_num(get("LLM_SIM_SEED"), "LLM_SIM_SEED", 0)?,
            prompt_cache: get("LLM_PROMPT_CACHE").map(|v| v.parse()).transpose()?,
            tool_schema: get("LLM_TOOL_SCHEMA").map(|v| v.parse()).transpose()?,
        };
        settings.resolve()?;
        Ok(settings)
    }

    /// Decides provider, model and endpoint. Errors when an explicit provider lacks what
    /// it needs or a URL is not http(s).
    pub fn resolve(&self) -> Result<ResolvedProvider, LlmError> {
        let has_anthropic_key = non_empty(self.anthropic_api_key.as_ref());
        let has_openai_key = non_empty(self.openai_api_key.as_ref());
        let has_openai_url = self
            .openai_base_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty());
        let (kind, sim_reason) = match self.provider {
            Some(ProviderKind::Anthropic) if !has_anthropic_key => {
                return Err(LlmError::Config(
                    "LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY".into(),
                ));
            }
            Some(ProviderKind::OpenAi) if !has_openai_key && !has_openai_url => {
                return Err(LlmError::Config(
                    "LLM_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a keyless \
                     server such as Ollama or vLLM)"
                        .into(),
                ));
            }
            Some(ProviderKind::Sim) => (
                ProviderKind::Sim,
                Some("LLM_PROVIDER=sim: using the offline `sim` provider (simulated players, not a language model)".to_string()),
            ),
            Some(kind) => (kind, None),
            None if has_anthropic_key => (ProviderKind::Anthropic, None),
            None if has_openai_key || has_openai_url => (ProviderKind::OpenAi, None),
            None => (ProviderKind::Sim, Some(SIM_FALLBACK_REASON.to_string())),
        };
        let endpoint = match kind {
            ProviderKind::Anthropic => Some(format!(
                "{}/v1/messages",
                anthropic_root(self.anthropic_base_url.as_deref())?
            )),
            ProviderKind::OpenAi => Some(format!(
                "{}/chat/completions",
                openai_base(self.openai_base_url.as_deref())?
            )),
            ProviderKind::Sim => None,
        };
        let model = self
            .model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .unwrap_or(kind.default_model())
            .to_string();
        let tool_schema = self
            .tool_schema
            .unwrap_or_default()
            .resolve(kind, endpoint.as_deref());
        Ok(ResolvedProvider {
            kind,
            model,
            endpoint,
            sim_reason,
            tool_schema,
        })
    }

    /// The retry policy: defaults, with `LLM_TIMEOUT_SECS` and `LLM_MAX_ATTEMPTS` applied.
    pub fn retry_policy(&self) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        if let Some(secs) = self.timeout_secs.filter(|s| *s > 0) {
            policy.request_timeout = Duration::from_secs(secs);
        }
        if let Some(n) = self.max_attempts.filter(|n| *n > 0) {
            policy.max_attempts = n;
        }
        policy
    }
}

fn non_empty(secret: Option<&SecretString>) -> bool {
    secret.is_some_and(|s| !s.expose_secret().trim().is_empty())
}

fn parse_num<T: FromStr + PartialOrd + From<u8>>(
    value: Option<String>,
    name: &str,
    min: u8,
) -> Result<Option<T>, LlmError> {
    let Some(v) = value else { return Ok(None) };
    match v.parse::<T>() {
        Ok(n) if n >= T::from(min) => Ok(Some(n)),
        _ => Err(LlmError::Config(format!(
            "{name} must be an integer >= {min}, not {v:?}"
        ))),
    }
}

fn check_scheme(url: &str, name: &str) -> Result<(), LlmError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(LlmError::Config(format!(
            "{name} must start with http:// or https://, not {url:?}"
        )))
    }
}

/// The Anthropic host root: trailing slashes and a pasted `/v1` or `/v1/messages` removed.
fn anthropic_root(base: Option<&str>) -> Result<String, LlmError> {
    let mut url = base
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_ANTHROPIC_BASE_URL)
        .trim_end_matches('/')
        .to_string();
    for suffix in ["/v1/messages", "/v1"] {
        if let Some(stripped) = url.strip_suffix(suffix) {
            url = stripped.trim_end_matches('/').to_string();
            break;
        }
    }
    check_scheme(&url, "ANTHROPIC_BASE_URL")?;
    Ok(url)
}

/// The OpenAI-compatible base: trailing slashes and a pasted `/chat/completions` removed.
/// No `/v1` is added: compatible servers mount the API under different prefixes.
fn openai_base(base: Option<&str>) -> Result<String, LlmError> {
    let mut url = base
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_OPENAI_BASE_URL)
        .trim_end_matches('/')
        .to_string();
    if let Some(stripped) = url.strip_suffix("/chat/completions") {
        url = stripped.trim_end_matches('/').to_string();
    }
    check_scheme(&url, "OPENAI_BASE_URL")?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<LlmSettings, LlmError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LlmSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_configured_falls_back_to_sim_with_reason() {
        let r = from(&[]).unwrap().resolve().unwrap();
        assert_eq!(r.kind, ProviderKind::Sim);
        assert_eq!(r.model, "sim-1");
        assert!(r.sim_reason.unwrap().starts_with("no LLM configured"));
        // Empty values count as unset.
        let r = from(&[("ANTHROPIC_API_KEY", " "), ("LLM_PROVIDER", "")])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(r.kind, ProviderKind::Sim);
    }

    #[test]
    fn prompt_cache_switch() {
        assert_eq!(from(&[]).unwrap().prompt_cache, None);
        let cache = |v: &str| from(&[("LLM_PROMPT_CACHE", v)]).unwrap().prompt_cache;
        assert_eq!(cache("off"), Some(PromptCache::Off));
        assert_eq!(cache("ON"), Some(PromptCache::On));
        assert_eq!(cache("5m"), Some(PromptCache::On));
        assert_eq!(cache("1H"), Some(PromptCache::OneHour));
        let s: LlmSettings =
            serde_json::from_value(serde_json::json!({"prompt_cache": "1h"})).unwrap();
        assert_eq!(s.prompt_cache, Some(PromptCache::OneHour));
        let err = from(&[("LLM_PROMPT_CACHE", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("LLM_PROMPT_CACHE"), "{err}");
    }

    #[test]
    fn tool_schema_is_slim_for_compatible_servers_only() {
        let schema = |pairs: &[(&str, &str)]| from(pairs).unwrap().resolve().unwrap().tool_schema;
        // Local and third-party OpenAI-compatible servers: slim by default.
        assert_eq!(
            schema(&[("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")]),
            ToolSchema::Slim
        );
        assert_eq!(
            schema(&[
                ("OPENAI_API_KEY", "k"),
                ("OPENAI_BASE_URL", "https://openrouter.ai/api/v1")
            ]),
            ToolSchema::Slim
        );
        // A look-alike host is not OpenAI.
        assert_eq!(
            schema(&[("OPENAI_BASE_URL", "https://api.openai.com.evil.example/v1")]),
            ToolSchema::Slim
        );
        // OpenAI itself (default base or spelled out), Anthropic and sim: full.
        assert_eq!(schema(&[("OPENAI_API_KEY", "k")]), ToolSchema::Full);
        assert_eq!(
            schema(&[
                ("OPENAI_API_KEY", "k"),
                ("OPENAI_BASE_URL", "https://API.openai.com:443/v1/")
            ]),
            ToolSchema::Full
        );
        assert_eq!(schema(&[("ANTHROPIC_API_KEY", "a")]), ToolSchema::Full);
        assert_eq!(schema(&[]), ToolSchema::Full);
        // An explicit choice wins everywhere.
        assert_eq!(
            schema(&[
                ("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
                ("LLM_TOOL_SCHEMA", "FULL")
            ]),
            ToolSchema::Full
        );
        assert_eq!(
            schema(&[("OPENAI_API_KEY", "k"), ("LLM_TOOL_SCHEMA", "slim")]),
            ToolSchema::Slim
        );
        assert_eq!(
            schema(&[("ANTHROPIC_API_KEY", "a"), ("LLM_TOOL_SCHEMA", "slim")]),
            ToolSchema::Slim
        );
        let err = from(&[("LLM_TOOL_SCHEMA", "tiny")]).unwrap_err();
        assert!(err.to_string().contains("LLM_TOOL_SCHEMA"), "{err}");
    }

    #[test]
    fn keys_pick_the_provider() {
        let r = from(&[("ANTHROPIC_API_KEY", "a"), ("OPENAI_API_KEY", "o")])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(r.kind, ProviderKind::Anthropic);
        assert_eq!(r.model, "claude-sonnet-4-5");
        assert_eq!(
            r.endpoint.as_deref(),
            Some("https://api.anthropic.com/v1/messages")
        );
        assert_eq!(r.sim_reason, None);

        let r = from(&[("OPENAI_BASE_URL", "http://localhost:11434/v1/")])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(r.kind, ProviderKind::OpenAi);
        assert_eq!(r.model, "gpt-4o-mini");
        assert_eq!(
            r.endpoint.as_deref(),
            Some("http://localhost:11434/v1/chat/completions")
        );
    }

    #[test]
    fn explicit_provider_wins() {
        let r = from(&[
            ("LLM_PROVIDER", "OpenAI"),
            ("ANTHROPIC_API_KEY", "a"),
            ("OPENAI_API_KEY", "o"),
            ("LLM_MODEL", "gpt-4.1"),
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(r.kind, ProviderKind::OpenAi);
        assert_eq!(r.model, "gpt-4.1");
        assert_eq!(
            r.endpoint.as_deref(),
            Some("https://api.openai.com/v1/chat/completions")
        );

        let r = from(&[("LLM_PROVIDER", "sim"), ("ANTHROPIC_API_KEY", "a")])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(r.kind, ProviderKind::Sim);
        assert!(r.sim_reason.unwrap().contains("LLM_PROVIDER=sim"));
    }

    #[test]
    fn explicit_provider_without_key_is_a_config_error() {
        let err = from(&[("LLM_PROVIDER", "anthropic"), ("OPENAI_API_KEY", "o")]).unwrap_err();
        assert!(matches!(err, LlmError::Config(_)));
        assert!(err.to_string().contains("ANTHROPIC_API_KEY"));
        let err = from(&[("LLM_PROVIDER", "openai")]).unwrap_err();
        assert!(err.to_string().contains("OPENAI_API_KEY"));
        let err = from(&[("LLM_PROVIDER", "gemini")]).unwrap_err();
        assert!(err.to_string().contains("LLM_PROVIDER"));
    }

    #[test]
    fn base_url_suffixes_are_normalised() {
        for (input, want) in [
            ("https://proxy.example/", "https://proxy.example"),
            ("https://proxy.example/v1", "https://proxy.example"),
            (
                "https://proxy.example/v1/messages/",
                "https://proxy.example",
            ),
            (
                "http://127.0.0.1:9/anthropic",
                "http://127.0.0.1:9/anthropic",
            ),
        ] {
            assert_eq!(anthropic_root(Some(input)).unwrap(), want, "{input}");
        }
        for (input, want) in [
            ("http://h/v1", "http://h/v1"),
            ("http://h/v1///", "http://h/v1"),
            ("http://h/v1/chat/completions", "http://h/v1"),
            (
                "https://openrouter.ai/api/v1/",
                "https://openrouter.ai/api/v1",
            ),
        ] {
            assert_eq!(openai_base(Some(input)).unwrap(), want, "{input}");
        }
        assert!(openai_base(Some("localhost:11434/v1")).is_err());
    }

    #[test]
    fn numbers_are_checked_and_applied() {
        let s = from(&[
            ("LLM_TIMEOUT_SECS", "7"),
            ("LLM_MAX_ATTEMPTS", "2"),
            ("LLM_SIM_SEED", "42"),
        ])
        .unwrap();
        assert_eq!(s.sim_seed, Some(42));
        let p = s.retry_policy();
        assert_eq!(p.request_timeout, Duration::from_secs(7));
        assert_eq!(p.max_attempts, 2);
        assert!(from(&[("LLM_MAX_ATTEMPTS", "0")]).is_err());
        assert!(from(&[("LLM_TIMEOUT_SECS", "soon")]).is_err());
    }

    #[test]
    fn debug_never_shows_keys() {
        let s = from(&[
            ("ANTHROPIC_API_KEY", "sk-ant-very-secret"),
            ("OPENAI_API_KEY", "sk-oai-very-secret"),
        ])
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("very-secret"), "{dbg}");
    }

    #[test]
    fn deserializes_from_config_values() {
        let s: LlmSettings = serde_json::from_value(serde_json::json!({
            "provider": "openai",
            "openai_base_url": "http://h/v1",
            "openai_api_key": "k"
        }))
        .unwrap();
        assert_eq!(s.resolve().unwrap().kind, ProviderKind::OpenAi);
        let d = LlmSettings::default().resolve().unwrap();
        assert_eq!(d.kind, ProviderKind::Sim);
    }
}
