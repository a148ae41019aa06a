//! Settings: defaults → optional TOML file → `MANA_*` environment variables
//! (`__` between sections, e.g. `MANA_DATABASE__MAX_CONNECTIONS=16`) → the plain
//! variables the rest of the system uses: `DATABASE_URL`, `BIND_ADDR`,
//! `MANA_SERVICE_KEY` (comma-separated for rotation), `PERSONA_SEED_SECRET` and
//! `SHUTDOWN_GRACE_SECS`.
//!
//! The TOML file is `MANA_CONFIG` if set, else `config/auth-internal.toml` if it
//! exists. Invalid settings fail start-up with a message naming the setting.

use std::{collections::HashMap, net::SocketAddr};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use service_kit::{ServiceKeys, telemetry::LogFormat};

/// Development-only fallback for the persona seed secret.
pub use service_kit::persona_password::DEV_SEED_SECRET;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Deployment {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub environment: Deployment,
    pub database_url: SecretString,
    pub bind_addr: String,
    /// Comma-separated; any of them is accepted.
    pub service_key: SecretString,
    pub persona_seed_secret: SecretString,
    pub log_format: LogFormat,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub jwt: JwtSettings,
    pub password: PasswordSettings,
    pub personas: PersonaSettings,
    pub missions: MissionSettings,
    pub sync: SyncSettings,
    pub mcp: McpSettings,
    pub oauth: crate::oauth::OAuthSettings,
    /// The operator console (`MANA_CONSOLE__*`).
    #[serde(default)]
    pub console: crate::web::session::ConsoleSettings,
    pub runs: RunsSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// Largest accepted JSON body, bytes.
    pub max_body_bytes: usize,
    /// On SIGTERM/SIGINT: how long in-flight requests may take before the server
    /// stops anyway (`SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub max_connections: usize,
    /// Applied to every pooled connection.
    pub statement_timeout_ms: u64,
    /// How long a request waits for a pooled connection before 503.
    pub acquire_timeout_ms: u64,
    /// How long to keep retrying the first connection (migrations) at start-up.
    pub startup_timeout_secs: u64,
    /// Postgres `synchronous_commit` for this service's connections. `on`
    /// (default) acknowledges a write only once it is on disk; `off` trades the
    /// last few hundred milliseconds of acknowledged writes on a database crash
    /// (never corruption) for much faster small transactions.
    pub synchronous_commit: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    /// Ed25519 private key, PKCS#8 PEM. Unset in development: an ephemeral key
    /// is generated (tokens die with the process). Required in production.
    pub private_key_pem: Option<SecretString>,
    /// Alternatively a file holding that PEM.
    pub private_key_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PasswordSettings {
    /// argon2id memory in KiB, iterations, lanes.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PersonaSettings {
    pub backoff_base_secs: u64,
    pub backoff_cap_secs: u64,
    pub max_lease_secs: u32,
    pub max_claim: u32,
}

impl PersonaSettings {
    pub fn claim_limits(&self) -> ClaimLimits {
        ClaimLimits {
            max_lease_secs: self.max_lease_secs,
            max_claim: self.max_claim,
        }
    }
}

/// The mission claim's own lease limits (`MANA_MISSIONS__…`).
#[derive(Debug, Clone, Deserialize)]
pub struct MissionSettings {
    pub max_lease_secs: u32,
    pub max_claim: u32,
}

impl MissionSettings {
    pub fn claim_limits(&self) -> ClaimLimits {
        ClaimLimits {
            max_lease_secs: self.max_lease_secs,
            max_claim: self.max_claim,
        }
    }
}

/// What one claim request may ask for: `limit` in `1..=max_claim`,
/// `leaseSeconds` in `1..=max_lease_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimits {
    pub max_lease_secs: u32,
    pub max_claim: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SyncSettings {
    /// Stamps further than this in the future are clamped to the server clock.
    pub max_future_skew_secs: u64,
    pub max_push_changes: usize,
    pub max_pull_limit: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct McpSettings {
    /// `true`: MCP sessions (older clients); `false`: fully stateless, for replicas behind a load balancer.
    pub stateful: bool,
    /// Host names (besides loopback) the MCP endpoint accepts in `Host`.
    pub allowed_hosts: Vec<String>,
    /// Public base URL of this service, used in the protected-resource metadata.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunsSettings {
    /// Transcripts of runs started longer ago than this are dropped (`MANA_RUNS__RETENTION_DAYS`).
    pub retention_days: u32,
    /// How often the retention sweep runs.
    pub retention_interval_secs: u64,
    /// Transcripts dropped per statement of a sweep.
    pub retention_batch: u32,
    /// How often the report rollups' delta rows are folded, one row per key
    /// (`MANA_RUNS__ROLLUP_COMPACT_SECS`).
    pub rollup_compact_secs: u64,
    /// Largest raw body of a run upsert; larger → 413 (`MANA_RUNS__MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Stored transcripts are cut to this many bytes of JSON (from the middle, with a marker).
    pub transcript_cap_bytes: usize,
}

/// A setting that is missing or invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting `{setting}`: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

impl Settings {
    /// Load from the real process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(&env)
    }

    /// Load from an explicit environment map (tests never touch the process env).
    pub fn load_from(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        // MANA_CONFIG names the file (required then); empty means no file.
        let file = env
            .get("MANA_CONFIG")
            .cloned()
            .unwrap_or_else(|| "config/auth-internal.toml".to_owned());
        let file_required = env.get("MANA_CONFIG").is_some_and(|f| !f.is_empty());
        let mut builder = Config::builder()
            .set_default("environment", "development")?
            .set_default("database_url", "postgres://postgres@127.0.0.1:5432/mana")?
            .set_default("bind_addr", "127.0.0.1:3001")?
            .set_default("service_key", "")?
            .set_default("persona_seed_secret", "")?
            .set_default("log_format", "json")?
            .set_default("http.workers", 0)?
            .set_default("http.max_body_bytes", 4 * 1024 * 1024)?
            .set_default("http.shutdown_grace_secs", 10)?
            .set_default("database.max_connections", 16)?
            .set_default("database.statement_timeout_ms", 15_000)?
            .set_default("database.acquire_timeout_ms", 5_000)?
            .set_default("database.startup_timeout_secs", 30)?
            .set_default("database.synchronous_commit", "on")?
            .set_default("jwt.issuer", "mana-auth-internal")?
            .set_default("jwt.audience", "mana")?
            .set_default("jwt.access_ttl_secs", 900)?
            .set_default("password.memory_kib", 19_456)?
            .set_default("password.iterations", 2)?
            .set_default("password.parallelism", 1)?
            .set_default("personas.backoff_base_secs", 300)?
            .set_default("personas.backoff_cap_secs", 6 * 3600)?
            .set_default("personas.max_lease_secs", 6 * 3600)?
            .set_default("personas.max_claim", 500)?
            .set_default("missions.max_lease_secs", 6 * 3600)?
            .set_default("missions.max_claim", 500)?
            .set_default("sync.max_future_skew_secs", 300)?
            .set_default("sync.max_push_changes", 1000)?
            .set_default("sync.max_pull_limit", 1000)?
            .set_default("mcp.stateful", true)?
            .set_default("runs.retention_days", 90)?
            .set_default("runs.retention_interval_secs", 3600)?
            .set_default("runs.retention_batch", 500)?
            .set_default("runs.rollup_compact_secs", 10)?
            .set_default("runs.max_body_bytes", 4 * 1024 * 1024)?
            .set_default(
                "runs.transcript_cap_bytes",
                i64::try_from(types::runs::TRANSCRIPT_CAP_BYTES).unwrap_or(262_144),
            )?
            .set_default("mcp.allowed_hosts", Vec::<String>::new())?
            .set_default("oauth.access_ttl_secs", 600)?
            .set_default("oauth.code_ttl_secs", 60)?
            .set_default("oauth.refresh_ttl_days", 30)?
            .set_default("oauth.registrations_per_ip_per_hour", 20)?
            .set_default("oauth.pat_default_days", 90)?
            .set_default("oauth.pat_max_days", 365)?
            .add_source(
                File::new(
                    if file.is_empty() {
                        "/nonexistent/mana"
                    } else {
                        &file
                    },
                    FileFormat::Toml,
                )
                .required(file_required),
            )
            .add_source(
                Environment::with_prefix("MANA")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("mcp.allowed_hosts")
                    .source(Some(env.clone())),
            );
        for (var, key) in [
            ("DATABASE_URL", "database_url"),
            ("BIND_ADDR", "bind_addr"),
            ("MANA_SERVICE_KEY", "service_key"),
            ("PERSONA_SEED_SECRET", "persona_seed_secret"),
            ("SHUTDOWN_GRACE_SECS", "http.shutdown_grace_secs"),
        ] {
            builder = builder.set_override_option(key, env.get(var).cloned())?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.finish()?;
        Ok(settings)
    }

    fn finish(&mut self) -> Result<(), ConfigError> {
        let prod = self.environment == Deployment::Production;
        self.bind_addr.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "bind_addr (BIND_ADDR)",
                format!("{:?}: {e}", self.bind_addr),
            )
        })?;
        let url = self.database_url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "database_url (DATABASE_URL)",
                "must be a postgres:// URL",
            ));
        }
        let keys = self.service_keys();
        if prod && keys.is_empty() {
            return Err(invalid(
                "service_key (MANA_SERVICE_KEY)",
                "required in production",
            ));
        }
        if prod
            && self.service_key.expose_secret().split(',').any(|k| {
                let k = k.trim();
                !k.is_empty() && k.len() < 16
            })
        {
            return Err(invalid(
                "service_key (MANA_SERVICE_KEY)",
                "every key must be at least 16 characters in production",
            ));
        }
        if self.persona_seed_secret.expose_secret().is_empty() {
            if prod {
                return Err(invalid(
                    "persona_seed_secret (PERSONA_SEED_SECRET)",
                    "required in production",
                ));
            }
            self.persona_seed_secret = SecretString::from(DEV_SEED_SECRET.to_owned());
        } else if prod && self.persona_seed_secret.expose_secret() == DEV_SEED_SECRET {
            return Err(invalid(
                "persona_seed_secret (PERSONA_SEED_SECRET)",
                "the development secret must not be used in production",
            ));
        }
        if prod && self.jwt.private_key_pem.is_none() && self.jwt.private_key_file.is_none() {
            return Err(invalid(
                "jwt.private_key_pem (MANA_JWT__PRIVATE_KEY_PEM)",
                "a signing key is required in production",
            ));
        }
        if self.jwt.access_ttl_secs < 60 {
            return Err(invalid("jwt.access_ttl_secs", "must be at least 60"));
        }
        if self.jwt.audience.is_empty() {
            return Err(invalid("jwt.audience", "must not be empty"));
        }
        if !["on", "off", "local", "remote_write", "remote_apply"]
            .contains(&self.database.synchronous_commit.as_str())
        {
            return Err(invalid(
                "database.synchronous_commit",
                "must be on, off, local, remote_write or remote_apply",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.personas.backoff_base_secs == 0
            || self.personas.backoff_cap_secs < self.personas.backoff_base_secs
        {
            return Err(invalid(
                "personas.backoff_base_secs",
                "must be > 0 and <= personas.backoff_cap_secs",
            ));
        }
        for (setting, value) in [
            ("personas.max_claim", self.personas.max_claim),
            ("personas.max_lease_secs", self.personas.max_lease_secs),
            ("missions.max_claim", self.missions.max_claim),
            ("missions.max_lease_secs", self.missions.max_lease_secs),
        ] {
            if value == 0 {
                return Err(invalid(setting, "must be at least 1"));
            }
        }
        if self.password.memory_kib < 8 * self.password.parallelism.max(1)
            || self.password.iterations == 0
        {
            return Err(invalid(
                "password.memory_kib",
                "argon2 needs memory_kib >= 8 * parallelism and iterations >= 1",
            ));
        }
        self.oauth
            .validate()
            .map_err(|(setting, message)| invalid(setting, message))?;
        if self.sync.max_push_changes == 0 {
            return Err(invalid("sync.max_push_changes", "must be at least 1"));
        }
        if self.runs.retention_days == 0 {
            return Err(invalid(
                "runs.retention_days (MANA_RUNS__RETENTION_DAYS)",
                "must be at least 1",
            ));
        }
        if self.runs.rollup_compact_secs == 0 {
            return Err(invalid(
                "runs.rollup_compact_secs (MANA_RUNS__ROLLUP_COMPACT_SECS)",
                "must be at least 1",
            ));
        }
        if self.runs.retention_interval_secs == 0 || self.runs.retention_batch == 0 {
            return Err(invalid(
                "runs.retention_interval_secs",
                "runs.retention_interval_secs and runs.retention_batch must be at least 1",
            ));
        }
        if self.runs.transcript_cap_bytes < 4096
            || self.runs.max_body_bytes < self.runs.transcript_cap_bytes
        {
            return Err(invalid(
                "runs.transcript_cap_bytes",
                "must be at least 4096 and at most runs.max_body_bytes",
            ));
        }
        Ok(())
    }

    pub fn service_keys(&self) -> ServiceKeys {
        ServiceKeys::parse(self.service_key.expose_secret())
    }

    pub fn is_production(&self) -> bool {
        self.environment == Deployment::Production
    }
}

impl Settings {
    /// Settings for tests: [`Settings::test_env`] read as the process would.
    pub fn for_tests(database_url: &str) -> Result<Self, ConfigError> {
        Self::load_from(&Self::test_env(database_url).into_iter().collect())
    }

    /// The environment of the test settings: the given database, port 0, two
    /// service keys, cheap argon2, two workers, a fixed seed secret. Also what a
    /// test gives the binary (with its own `BIND_ADDR` after it).
    pub fn test_env(database_url: &str) -> Vec<(String, String)> {
        [
            ("DATABASE_URL", database_url),
            ("BIND_ADDR", "127.0.0.1:0"),
            (
                "MANA_SERVICE_KEY",
                "test-service-key-old,test-service-key-new",
            ),
            ("PERSONA_SEED_SECRET", "test-seed-secret"),
            ("MANA_CONFIG", ""),
            ("MANA_LOG_FORMAT", "pretty"),
            ("MANA_HTTP__WORKERS", "2"),
            ("MANA_DATABASE__MAX_CONNECTIONS", "24"),
            ("MANA_PASSWORD__MEMORY_KIB", "64"),
            ("MANA_PASSWORD__ITERATIONS", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
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
    fn plain_variables_and_prefixed_overrides_apply() {
        let s = Settings::load_from(&env(&[
            ("DATABASE_URL", "postgres://u@db:5432/x"),
            ("BIND_ADDR", "0.0.0.0:4000"),
            ("MANA_SERVICE_KEY", "k1,k2"),
            ("MANA_DATABASE__MAX_CONNECTIONS", "7"),
            ("MANA_MCP__ALLOWED_HOSTS", "a.example,b.example"),
        ]))
        .unwrap();
        assert_eq!(s.bind_addr, "0.0.0.0:4000");
        assert_eq!(s.database_url.expose_secret(), "postgres://u@db:5432/x");
        assert_eq!(s.service_keys().len(), 2);
        assert_eq!(s.database.max_connections, 7);
        assert_eq!(s.mcp.allowed_hosts, vec!["a.example", "b.example"]);
        assert_eq!(s.persona_seed_secret.expose_secret(), DEV_SEED_SECRET);
    }

    #[test]
    fn the_mission_claim_has_its_own_lease_limits() {
        let defaults = Settings::load_from(&env(&[])).unwrap();
        assert_eq!(
            defaults.missions.claim_limits(),
            ClaimLimits {
                max_lease_secs: 6 * 3600,
                max_claim: 500
            }
        );
        let s = Settings::load_from(&env(&[
            ("MANA_MISSIONS__MAX_LEASE_SECS", "900"),
            ("MANA_MISSIONS__MAX_CLAIM", "20"),
        ]))
        .unwrap();
        assert_eq!(
            s.missions.claim_limits(),
            ClaimLimits {
                max_lease_secs: 900,
                max_claim: 20
            }
        );
        assert_eq!(s.personas.claim_limits(), defaults.personas.claim_limits());
        let err = Settings::load_from(&env(&[("MANA_MISSIONS__MAX_CLAIM", "0")])).unwrap_err();
        assert!(err.to_string().contains("missions.max_claim"), "{err}");
    }

    #[test]
    fn invalid_settings_are_named() {
        let err = Settings::load_from(&env(&[("BIND_ADDR", "nonsense")])).unwrap_err();
        assert!(err.to_string().contains("BIND_ADDR"), "{err}");
        let err =
            Settings::load_from(&env(&[("MANA_DATABASE__MAX_CONNECTIONS", "lots")])).unwrap_err();
        assert!(err.to_string().contains("max_connections"), "{err}");
        let err = Settings::load_from(&env(&[("MANA_DATABASE__SYNCHRONOUS_COMMIT", "maybe")]))
            .unwrap_err();
        assert!(err.to_string().contains("synchronous_commit"), "{err}");
        let err = Settings::load_from(&env(&[("MANA_ENVIRONMENT", "production")])).unwrap_err();
        assert!(err.to_string().contains("MANA_SERVICE_KEY"), "{err}");
    }
}
