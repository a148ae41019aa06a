//! Runner settings from the environment, read through the `config` crate.
//!
//! Rules:
//! - Only the variables a runner names are read (never the whole environment), each
//!   with its default; an empty value counts as unset (compose files write `KEY=`).
//! - Invalid values fail start-up with an error naming the variable.
//! - The service key may be missing: the service starts, the loop stays off (see
//!   [`RunnerSettings::loop_disabled_reason`]).
//! - Tests pass an explicit map; nothing here touches the process environment except
//!   [`env_map`].

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use config::{Config, Environment};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use service_kit::{ServiceKeys, telemetry::LogFormat};

/// Default base URL of auth-internal.
pub const DEFAULT_AUTH_INTERNAL_URL: &str = "http://127.0.0.1:3001";

/// A setting that is missing or invalid.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The `config` crate could not build or deserialize the settings.
    #[error("invalid configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// One variable has an unusable value.
    #[error("invalid setting {var}: {message}")]
    Invalid {
        /// The environment variable.
        var: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// The process environment as a map (the only place that reads it).
pub fn env_map() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// Deserializes `T` from the variables `vars` names: `(ENV_NAME, default)`. Each
/// variable becomes the lower-cased field name (`PERSONA_MAX_TURNS` → `persona_max_turns`).
/// Numbers and booleans (`1`/`true`/`yes`/`on`) are parsed leniently by `config`.
pub fn load_section<T: DeserializeOwned>(
    env: &HashMap<String, String>,
    vars: &[(&str, Option<&str>)],
) -> Result<T, SettingsError> {
    let mut builder = Config::builder();
    let mut picked = HashMap::new();
    for (name, default) in vars {
        let key = name.to_ascii_lowercase();
        if let Some(d) = default {
            builder = builder.set_default(key.as_str(), *d)?;
        }
        if let Some(v) = env.get(*name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            picked.insert((*name).to_owned(), v.to_owned());
        }
    }
    builder = builder.add_source(Environment::default().source(Some(picked)));
    Ok(builder.build()?.try_deserialize()?)
}

#[derive(Debug, Deserialize)]
struct RawRunner {
    auth_internal_url: String,
    mana_service_key: Option<SecretString>,
    bind_addr: String,
    tick_interval_secs: u64,
    runner_paused: String,
    mana_log_format: String,
    mana_diag: String,
    shutdown_grace_secs: u64,
    internal_http_timeout_secs: u64,
    auth_internal_retry_secs: u64,
}

/// What every runner needs.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// `AUTH_INTERNAL_URL`, without a trailing slash.
    pub auth_internal_url: String,
    /// `MANA_SERVICE_KEY`: a comma list; the first key is sent, all are accepted on
    /// `POST /internal/tick`.
    pub service_keys: ServiceKeys,
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `TICK_INTERVAL_SECS`; 0 turns the loop off (CI drives ticks by hand).
    pub tick_interval: Duration,
    /// `RUNNER_PAUSED`: the loop skips its ticks (manual ticks still run).
    pub paused: bool,
    /// `MANA_LOG_FORMAT`: `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// `MANA_DIAG=1`: development-only diagnostic routes are served.
    pub diag: bool,
    /// `SHUTDOWN_GRACE_SECS`: how long running work may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// `INTERNAL_HTTP_TIMEOUT_SECS`: per-request timeout towards auth-internal.
    pub http_timeout: Duration,
    /// `AUTH_INTERNAL_RETRY_SECS` (default 120): how long a call to auth-internal keeps
    /// being retried (capped backoff) before it fails, so a restart of auth-internal
    /// costs no day.
    pub retry_budget: Duration,
}

fn truthy(var: &'static str, v: &str) -> Result<bool, SettingsError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        other => Err(SettingsError::Invalid {
            var,
            message: format!("expected 1/true/yes/on or 0/false/no/off, not {other:?}"),
        }),
    }
}

impl RunnerSettings {
    /// Reads the common runner variables; `default_bind` is the service's own port.
    pub fn from_env(
        env: &HashMap<String, String>,
        default_bind: &str,
    ) -> Result<Self, SettingsError> {
        let raw: RawRunner = load_section(
            env,
            &[
                ("AUTH_INTERNAL_URL", Some(DEFAULT_AUTH_INTERNAL_URL)),
                ("MANA_SERVICE_KEY", None),
                ("BIND_ADDR", Some(default_bind)),
                ("TICK_INTERVAL_SECS", Some("60")),
                ("RUNNER_PAUSED", Some("false")),
                ("MANA_LOG_FORMAT", Some("json")),
                ("MANA_DIAG", Some("0")),
                ("SHUTDOWN_GRACE_SECS", Some("30")),
                ("INTERNAL_HTTP_TIMEOUT_SECS", Some("15")),
                ("AUTH_INTERNAL_RETRY_SECS", Some("120")),
            ],
        )?;
        let url = raw
            .auth_internal_url
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SettingsError::Invalid {
                var: "AUTH_INTERNAL_URL",
                message: format!("must start with http:// or https://, not {url:?}"),
            });
        }
        let bind_addr =
            raw.bind_addr
                .parse::<SocketAddr>()
                .map_err(|e| SettingsError::Invalid {
                    var: "BIND_ADDR",
                    message: format!("{:?}: {e}", raw.bind_addr),
                })?;
        let log_format = match raw.mana_log_format.trim().to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                return Err(SettingsError::Invalid {
                    var: "MANA_LOG_FORMAT",
                    message: format!("expected json or pretty, not {other:?}"),
                });
            }
        };
        if raw.internal_http_timeout_secs == 0 {
            return Err(SettingsError::Invalid {
                var: "INTERNAL_HTTP_TIMEOUT_SECS",
                message: "must be at least 1".into(),
            });
        }
        Ok(Self {
            auth_internal_url: url,
            service_keys: raw
                .mana_service_key
                .map(|k| ServiceKeys::parse(k.expose_secret()))
                .unwrap_or_default(),
            bind_addr,
            tick_interval: Duration::from_secs(raw.tick_interval_secs),
            paused: truthy("RUNNER_PAUSED", &raw.runner_paused)?,
            log_format,
            diag: truthy("MANA_DIAG", &raw.mana_diag)?,
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
            http_timeout: Duration::from_secs(raw.internal_http_timeout_secs),
            retry_budget: Duration::from_secs(raw.auth_internal_retry_secs),
        })
    }

    /// Why the interval loop is off, if it is (`None` = it runs).
    pub fn loop_disabled_reason(&self) -> Option<String> {
        if self.service_keys.is_empty() {
            Some("MANA_SERVICE_KEY is not set: cannot call auth-internal's internal API".into())
        } else if self.tick_interval.is_zero() {
            Some("TICK_INTERVAL_SECS=0: ticks run only via POST /internal/tick".into())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_and_the_loop_is_off_without_a_key() {
        let s = RunnerSettings::from_env(&env(&[("PATH", "/bin")]), "127.0.0.1:3070").unwrap();
        assert_eq!(s.auth_internal_url, "http://127.0.0.1:3001");
        assert_eq!(s.bind_addr.port(), 3070);
        assert_eq!(s.tick_interval, Duration::from_secs(60));
        assert!(!s.paused && !s.diag);
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(s.service_keys.is_empty());
        assert!(
            s.loop_disabled_reason()
                .unwrap()
                .contains("MANA_SERVICE_KEY")
        );
    }

    #[test]
    fn variables_are_read_and_empty_means_unset() {
        let s = RunnerSettings::from_env(
            &env(&[
                ("AUTH_INTERNAL_URL", "http://auth:3001/"),
                ("MANA_SERVICE_KEY", "first-key, second-key"),
                ("BIND_ADDR", "0.0.0.0:9000"),
                ("TICK_INTERVAL_SECS", "0"),
                ("RUNNER_PAUSED", "TRUE"),
                ("MANA_LOG_FORMAT", "pretty"),
                ("MANA_DIAG", "1"),
                ("SHUTDOWN_GRACE_SECS", ""),
            ]),
            "127.0.0.1:3070",
        )
        .unwrap();
        assert_eq!(s.auth_internal_url, "http://auth:3001");
        assert_eq!(s.service_keys.primary(), Some("first-key"));
        assert!(s.service_keys.accepts(b"second-key"));
        assert_eq!(s.bind_addr.port(), 9000);
        assert!(s.paused && s.diag);
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
        assert!(
            s.loop_disabled_reason()
                .unwrap()
                .contains("TICK_INTERVAL_SECS=0")
        );
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("BIND_ADDR", "nope"),
            ("TICK_INTERVAL_SECS", "soon"),
            ("RUNNER_PAUSED", "maybe"),
            ("AUTH_INTERNAL_URL", "auth:3001"),
            ("MANA_LOG_FORMAT", "xml"),
        ] {
            let err = RunnerSettings::from_env(&env(&[(var, value)]), "127.0.0.1:1").unwrap_err();
            assert!(
                err.to_string()
                    .to_ascii_lowercase()
                    .contains(&var.to_ascii_lowercase()),
                "{var}: {err}"
            );
        }
    }

    #[test]
    fn load_section_reads_only_named_variables() {
        #[derive(Deserialize)]
        struct S {
            persona_max_turns: u32,
            persona_token_budget: Option<u64>,
        }
        let s: S = load_section(
            &env(&[("PERSONA_MAX_TURNS", "7"), ("OTHER", "x")]),
            &[
                ("PERSONA_MAX_TURNS", Some("15")),
                ("PERSONA_TOKEN_BUDGET", None),
            ],
        )
        .unwrap();
        assert_eq!(s.persona_max_turns, 7);
        assert_eq!(s.persona_token_budget, None);
    }
}
