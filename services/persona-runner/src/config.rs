//! persona-runner settings: the common runner variables (runner-kit) plus
//! `PERSONA_SEED_SECRET`, `PERSONA_CONCURRENCY` (2), `PERSONA_DEADLINE_SECS` (600),
//! `PERSONA_MAX_TURNS` (15), `PERSONA_TOKEN_BUDGET` (200 000 billed-equivalent tokens),
//! `PERSONA_CLAIM_LIMIT` (50), `PERSONA_MAX_TOKENS` (1024), `PERSONA_TOOLS` (`mix`),
//! `PERSONA_APP_VERSION` (empty: the app release under test, stored on every run row) and
//! the LLM variables of `crates/llm`. `BIND_ADDR` defaults to `127.0.0.1:3070`.
//!
//! Rules: invalid values fail start-up naming the variable; a missing seed secret falls
//! back to the development secret with a warning (logins then fail against a production
//! auth-internal, which is visible in every persona's error).

use std::{collections::HashMap, time::Duration};

use llm::LlmSettings;
use runner_kit::{RunnerSettings, SettingsError, load_section};
use secrecy::SecretString;
use serde::Deserialize;

use crate::offer::ToolScope;

/// The default bind address.
pub const DEFAULT_BIND: &str = "127.0.0.1:3070";
/// The development seed secret (the same constant as auth-internal's fallback).
pub use service_kit::persona_password::DEV_SEED_SECRET;

#[derive(Debug, Deserialize)]
struct Raw {
    persona_seed_secret: Option<SecretString>,
    persona_concurrency: usize,
    persona_deadline_secs: u64,
    persona_max_turns: u32,
    persona_token_budget: u64,
    persona_claim_limit: u32,
    persona_max_tokens: u32,
    persona_tools: String,
    persona_app_version: Option<String>,
}

/// Everything persona-runner is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The common runner settings.
    pub runner: RunnerSettings,
    /// HMAC secret of the persona passwords.
    pub seed_secret: SecretString,
    /// Whether `seed_secret` is the development fallback.
    pub dev_seed_secret: bool,
    /// Personas run at once.
    pub concurrency: usize,
    /// Wall-clock limit of one persona's day.
    pub deadline: Duration,
    /// Model turns of the main conversation.
    pub max_turns: u32,
    /// Billed-equivalent tokens one day may use
    /// ([`types::tick::TokenUsage::billed_equivalent`]).
    pub token_budget: u64,
    /// Personas claimed per tick.
    pub claim_limit: u32,
    /// `max_tokens` of each model request.
    pub max_tokens: u32,
    /// Which tools a persona is offered.
    pub tools: ToolScope,
    /// The LLM configuration.
    pub llm: LlmSettings,
    /// The app release under test (`PERSONA_APP_VERSION`), `""` when not set.
    pub app_version: String,
}

fn invalid(var: &'static str, message: &str) -> SettingsError {
    SettingsError::Invalid {
        var,
        message: message.to_owned(),
    }
}

impl Settings {
    /// Reads the settings from an environment map.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let runner = RunnerSettings::from_env(env, DEFAULT_BIND)?;
        let raw: Raw = load_section(
            env,
            &[
                ("PERSONA_SEED_SECRET", None),
                ("PERSONA_CONCURRENCY", Some("2")),
                ("PERSONA_DEADLINE_SECS", Some("600")),
                ("PERSONA_MAX_TURNS", Some("15")),
                ("PERSONA_TOKEN_BUDGET", Some("200000")),
                ("PERSONA_CLAIM_LIMIT", Some("50")),
                ("PERSONA_MAX_TOKENS", Some("1024")),
                ("PERSONA_TOOLS", Some("mix")),
                ("PERSONA_APP_VERSION", None),
            ],
        )?;
        if raw.persona_concurrency == 0 || raw.persona_concurrency > 1000 {
            return Err(invalid("PERSONA_CONCURRENCY", "must be 1 to 1000"));
        }
        if raw.persona_deadline_secs == 0 {
            return Err(invalid("PERSONA_DEADLINE_SECS", "must be at least 1"));
        }
        if raw.persona_max_turns == 0 {
            return Err(invalid("PERSONA_MAX_TURNS", "must be at least 1"));
        }
        if raw.persona_token_budget == 0 {
            return Err(invalid("PERSONA_TOKEN_BUDGET", "must be at least 1"));
        }
        if !(1..=500).contains(&raw.persona_claim_limit) {
            return Err(invalid("PERSONA_CLAIM_LIMIT", "must be 1 to 500"));
        }
        let app_version = raw.persona_app_version.unwrap_or_default();
        if app_version.chars().count() > 100 || app_version.chars().any(char::is_control) {
            return Err(invalid(
                "PERSONA_APP_VERSION",
                "must be at most 100 characters without control characters",
            ));
        }
        if raw.persona_max_tokens == 0 {
            return Err(invalid("PERSONA_MAX_TOKENS", "must be at least 1"));
        }
        let tools: ToolScope = raw
            .persona_tools
            .parse()
            .map_err(|e: String| invalid("PERSONA_TOOLS", &e))?;
        let llm = LlmSettings::from_lookup(|k| env.get(k).cloned()).map_err(|e| {
            SettingsError::Invalid {
                var: "LLM_*",
                message: e.to_string(),
            }
        })?;
        let (seed_secret, dev_seed_secret) = match raw.persona_seed_secret {
            Some(s) => (s, false),
            None => (SecretString::from(DEV_SEED_SECRET.to_owned()), true),
        };
        Ok(Self {
            runner,
            seed_secret,
            dev_seed_secret,
            concurrency: raw.persona_concurrency,
            deadline: Duration::from_secs(raw.persona_deadline_secs),
            max_turns: raw.persona_max_turns,
            token_budget: raw.persona_token_budget,
            claim_limit: raw.persona_claim_limit,
            max_tokens: raw.persona_max_tokens,
            tools,
            llm,
            app_version,
        })
    }

    /// The lease asked for at claim time: the deadline plus time to write and release,
    /// so a lease never expires under a persona that is still within its deadline.
    pub fn lease_seconds(&self) -> u32 {
        let secs = self.deadline.as_secs().saturating_add(120);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults() {
        let s = Settings::from_env(&env(&[])).unwrap();
        assert_eq!(s.runner.bind_addr.to_string(), DEFAULT_BIND);
        assert_eq!(s.concurrency, 2);
        assert_eq!(s.deadline, Duration::from_secs(600));
        assert_eq!(s.max_turns, 15);
        assert_eq!(s.tools, ToolScope::Mix);
        assert!(s.dev_seed_secret);
        assert_eq!(s.seed_secret.expose_secret(), DEV_SEED_SECRET);
        assert!(s.lease_seconds() > 600);
        assert_eq!(s.llm.resolve().unwrap().kind, llm::ProviderKind::Sim);
    }

    #[test]
    fn values_and_errors() {
        let s = Settings::from_env(&env(&[
            ("PERSONA_SEED_SECRET", "s3cret"),
            ("PERSONA_CONCURRENCY", "8"),
            ("PERSONA_DEADLINE_SECS", "30"),
            ("PERSONA_TOKEN_BUDGET", "5000"),
            ("PERSONA_TOOLS", "all"),
            ("LLM_PROVIDER", "openai"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1"),
        ]))
        .unwrap();
        assert_eq!(s.concurrency, 8);
        assert_eq!(s.lease_seconds(), 150);
        assert_eq!(s.token_budget, 5000);
        assert_eq!(s.tools, ToolScope::All);
        assert!(!s.dev_seed_secret);
        assert_eq!(s.llm.resolve().unwrap().kind, llm::ProviderKind::OpenAi);
        for (var, value) in [
            ("PERSONA_CONCURRENCY", "0"),
            ("PERSONA_MAX_TURNS", "0"),
            ("PERSONA_DEADLINE_SECS", "x"),
            ("PERSONA_TOOLS", "some"),
            ("LLM_PROVIDER", "gemini"),
        ] {
            let err = Settings::from_env(&env(&[(var, value)])).unwrap_err();
            let text = err.to_string().to_ascii_lowercase();
            assert!(
                text.contains(&var.to_ascii_lowercase()) || text.contains("llm"),
                "{var}: {err}"
            );
        }
    }
}
