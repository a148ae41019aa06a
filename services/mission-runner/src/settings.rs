//! Settings of the planner and the tick, read from environment variables.
//!
//! Rules:
//! - Names: `MISSION_USER_DAILY_TOKEN_BUDGET` (0 = unlimited), `MISSION_PLAN_MODE`
//!   (`auto` | `tools` | `json`), `MISSION_MAX_TOKENS`, `MISSION_MAX_ROUNDS`,
//!   `MISSION_LLM_RETRY_SECS`, `MISSION_CONCURRENCY`, `MISSION_DEADLINE_SECS`,
//!   `MISSION_CLAIM_LIMIT`, `MISSION_LEASE_SECS`, `MISSION_WORKER_ID`.
//! - An empty value counts as unset; an unparsable one is an error naming the variable
//!   (never a silent default).
//! - The lease must outlive the per-mission deadline plus the write-back, so
//!   [`MissionSettings::from_lookup`] refuses a lease shorter than the deadline + 60 s.
//! - The service's own variables (`AUTH_INTERNAL_URL`, `MANA_SERVICE_KEY`, `BIND_ADDR`,
//!   `TICK_INTERVAL_SECS`) and the LLM's belong to the shared runner plumbing and `llm`.

use std::str::FromStr;
use std::time::Duration;

use crate::plan::MAX_ROUNDS;

/// A variable that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `name` holds something that is not a valid value.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Which planning path to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlanModeSetting {
    /// Native tool calls when the provider supports them, else the JSON contract.
    #[default]
    Auto,
    /// Always native tool calls.
    Tools,
    /// Always the JSON contract.
    Json,
}

impl FromStr for PlanModeSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "tools" => Ok(Self::Tools),
            "json" => Ok(Self::Json),
            other => Err(format!("expected auto, tools or json, not {other:?}")),
        }
    }
}

/// How one mission is planned.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannerSettings {
    /// Tokens one user's missions may spend per UTC day; 0 = unlimited.
    pub daily_token_budget: u64,
    /// The planning path.
    pub mode: PlanModeSetting,
    /// `max_tokens` of each model turn.
    pub max_tokens: u32,
    /// Model turns of the tool-calling loop, at most.
    pub max_rounds: u32,
    /// Sampling temperature (`None`: the vendor default).
    pub temperature: Option<f32>,
    /// Base delay before a mission whose LLM call failed is due again (jittered).
    pub llm_retry_after: Duration,
}

impl Default for PlannerSettings {
    fn default() -> Self {
        Self {
            daily_token_budget: 0,
            mode: PlanModeSetting::Auto,
            max_tokens: 2_048,
            max_rounds: MAX_ROUNDS,
            temperature: None,
            llm_retry_after: Duration::from_secs(300),
        }
    }
}

/// How a tick claims and runs missions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickSettings {
    /// The worker name sent with claims (logs, lease ownership).
    pub worker: String,
    /// Missions claimed per tick, at most.
    pub claim_limit: u32,
    /// Lease length asked for.
    pub lease_seconds: u32,
    /// Missions planned at the same time, at most.
    pub concurrency: usize,
    /// Longest a mission may take to plan (the LLM part).
    pub mission_deadline: Duration,
    /// Time kept free before the lease expires for the write-back.
    pub write_back_margin: Duration,
}

impl Default for TickSettings {
    fn default() -> Self {
        Self {
            worker: default_worker(),
            claim_limit: 50,
            lease_seconds: 600,
            concurrency: 4,
            mission_deadline: Duration::from_secs(300),
            write_back_margin: Duration::from_secs(30),
        }
    }
}

fn default_worker() -> String {
    format!("mission-runner-{}", std::process::id())
}

/// Everything this crate reads from the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MissionSettings {
    /// Planner settings.
    pub planner: PlannerSettings,
    /// Tick settings.
    pub tick: TickSettings,
}

impl MissionSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        fn parse<T: FromStr>(
            name: &'static str,
            raw: Option<String>,
        ) -> Result<Option<T>, SettingsError>
        where
            T::Err: std::fmt::Display,
        {
            raw.map(|v| {
                v.trim().parse::<T>().map_err(|e| SettingsError::Invalid {
                    name,
                    reason: e.to_string(),
                })
            })
            .transpose()
        }
        let positive = |name: &'static str, v: Option<u64>| match v {
            Some(0) => Err(SettingsError::Invalid {
                name,
                reason: "must be at least 1".into(),
            }),
            other => Ok(other),
        };

        let mut s = Self::default();
        let p = &mut s.planner;
        if let Some(v) = parse(
            "MISSION_USER_DAILY_TOKEN_BUDGET",
            get("MISSION_USER_DAILY_TOKEN_BUDGET"),
        )? {
            p.daily_token_budget = v;
        }
        if let Some(v) = parse("MISSION_PLAN_MODE", get("MISSION_PLAN_MODE"))? {
            p.mode = v;
        }
        if let Some(v) = positive(
            "MISSION_MAX_TOKENS",
            parse("MISSION_MAX_TOKENS", get("MISSION_MAX_TOKENS"))?,
        )? {
            p.max_tokens = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = positive(
            "MISSION_MAX_ROUNDS",
            parse("MISSION_MAX_ROUNDS", get("MISSION_MAX_ROUNDS"))?,
        )? {
            p.max_rounds = u32::try_from(v).unwrap_or(u32::MAX).min(20);
        }
        if let Some(v) = parse::<u64>("MISSION_LLM_RETRY_SECS", get("MISSION_LLM_RETRY_SECS"))? {
            p.llm_retry_after = Duration::from_secs(v);
        }
        let t = &mut s.tick;
        if let Some(v) = get("MISSION_WORKER_ID") {
            t.worker = v.trim().to_string();
        }
        if let Some(v) = positive(
            "MISSION_CONCURRENCY",
            parse("MISSION_CONCURRENCY", get("MISSION_CONCURRENCY"))?,
        )? {
            t.concurrency = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = positive(
            "MISSION_DEADLINE_SECS",
            parse("MISSION_DEADLINE_SECS", get("MISSION_DEADLINE_SECS"))?,
        )? {
            t.mission_deadline = Duration::from_secs(v);
        }
        if let Some(v) = positive(
            "MISSION_CLAIM_LIMIT",
            parse("MISSION_CLAIM_LIMIT", get("MISSION_CLAIM_LIMIT"))?,
        )? {
            t.claim_limit = u32::try_from(v).unwrap_or(u32::MAX);
        }
        match parse::<u32>("MISSION_LEASE_SECS", get("MISSION_LEASE_SECS"))? {
            Some(v) => t.lease_seconds = v,
            // Follow a longer deadline when the lease is not set explicitly.
            None => {
                let needed = t.mission_deadline + t.write_back_margin + Duration::from_secs(60);
                let needed = u32::try_from(needed.as_secs()).unwrap_or(u32::MAX);
                t.lease_seconds = t.lease_seconds.max(needed);
            }
        }
        let minimum = t.mission_deadline.as_secs() + 60;
        if u64::from(t.lease_seconds) < minimum {
            return Err(SettingsError::Invalid {
                name: "MISSION_LEASE_SECS",
                reason: format!(
                    "must be at least MISSION_DEADLINE_SECS + 60 = {minimum} so a lease outlives the planning"
                ),
            });
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<MissionSettings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        MissionSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let s = read(&[("MISSION_USER_DAILY_TOKEN_BUDGET", " ")]).unwrap();
        assert_eq!(s.planner, PlannerSettings::default());
        assert_eq!(s.planner.daily_token_budget, 0);
        assert_eq!(s.tick.concurrency, 4);
        assert!(u64::from(s.tick.lease_seconds) > s.tick.mission_deadline.as_secs());
    }

    #[test]
    fn values_are_read() {
        let s = read(&[
            ("MISSION_USER_DAILY_TOKEN_BUDGET", "50000"),
            ("MISSION_PLAN_MODE", "JSON"),
            ("MISSION_CONCURRENCY", "8"),
            ("MISSION_DEADLINE_SECS", "900"),
            ("MISSION_WORKER_ID", "w-1"),
        ])
        .unwrap();
        assert_eq!(s.planner.daily_token_budget, 50_000);
        assert_eq!(s.planner.mode, PlanModeSetting::Json);
        assert_eq!(s.tick.concurrency, 8);
        assert_eq!(s.tick.worker, "w-1");
        // The lease follows the longer deadline.
        assert!(s.tick.lease_seconds >= 960);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = read(&[("MISSION_USER_DAILY_TOKEN_BUDGET", "lots")]).unwrap_err();
        assert!(e.to_string().contains("MISSION_USER_DAILY_TOKEN_BUDGET"));
        let e = read(&[("MISSION_PLAN_MODE", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("MISSION_PLAN_MODE"));
        let e = read(&[("MISSION_CONCURRENCY", "0")]).unwrap_err();
        assert!(e.to_string().contains("MISSION_CONCURRENCY"));
        let e = read(&[("MISSION_LEASE_SECS", "30")]).unwrap_err();
        assert!(e.to_string().contains("MISSION_LEASE_SECS"));
    }
}
