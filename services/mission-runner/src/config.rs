//! mission-runner settings: the common runner variables (runner-kit), the LLM variables
//! of `crates/llm`, and the mission variables `MISSION_USER_DAILY_TOKEN_BUDGET`
//! (0 = unlimited), `MISSION_PLAN_MODE` (`auto` | `tools` | `json`),
//! `MISSION_MAX_TOKENS`, `MISSION_MAX_ROUNDS`, `MISSION_LLM_RETRY_SECS`,
//! `MISSION_CONCURRENCY`, `MISSION_DEADLINE_SECS`, `MISSION_CLAIM_LIMIT`,
//! `MISSION_LEASE_SECS`, `MISSION_WORKER_ID`. `BIND_ADDR` defaults to `127.0.0.1:3066`.
//!
//! Rules:
//! - Read the way persona-runner reads its own: through runner-kit's
//!   [`load_section`] (the `config` crate over the named variables only, never the
//!   whole environment); an empty value counts as unset; an unparsable one fails
//!   start-up naming the variable (never a silent default).
//! - The lease must outlive the per-mission deadline plus the write-back, so a lease
//!   shorter than the deadline + 60 s is refused; an unset lease follows a longer
//!   deadline.
//! - The worker id is `MISSION_WORKER_ID`, else runner-kit's [`worker_id`].

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use llm::LlmSettings;
use runner_kit::{RunnerSettings, SettingsError, load_section, worker_id};
use serde::Deserialize;

use crate::parse::MAX_ROUNDS;

/// The default bind address.
pub const DEFAULT_BIND: &str = "127.0.0.1:3066";

/// Everything mission-runner is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The common runner settings.
    pub runner: RunnerSettings,
    /// The mission variables.
    pub mission: MissionSettings,
    /// The LLM configuration.
    pub llm: LlmSettings,
}

impl Settings {
    /// Reads the settings from an environment map (see the module rules for the names).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let runner = RunnerSettings::from_env(env, DEFAULT_BIND)?;
        let mission = MissionSettings::from_env(env)?;
        let llm = LlmSettings::from_lookup(|k| env.get(k).cloned()).map_err(|e| {
            SettingsError::Invalid {
                var: "LLM_*",
                message: e.to_string(),
            }
        })?;
        Ok(Self {
            runner,
            mission,
            llm,
        })
    }
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
    worker_id()
}

/// The mission variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MissionSettings {
    /// Planner settings.
    pub planner: PlannerSettings,
    /// Tick settings.
    pub tick: TickSettings,
}

#[derive(Debug, Deserialize)]
struct Raw {
    mission_user_daily_token_budget: Option<String>,
    mission_plan_mode: Option<String>,
    mission_max_tokens: Option<String>,
    mission_max_rounds: Option<String>,
    mission_llm_retry_secs: Option<String>,
    mission_worker_id: Option<String>,
    mission_concurrency: Option<String>,
    mission_deadline_secs: Option<String>,
    mission_claim_limit: Option<String>,
    mission_lease_secs: Option<String>,
}

fn parse<T: FromStr>(var: &'static str, raw: Option<String>) -> Result<Option<T>, SettingsError>
where
    T::Err: std::fmt::Display,
{
    raw.map(|v| {
        v.trim().parse::<T>().map_err(|e| SettingsError::Invalid {
            var,
            message: e.to_string(),
        })
    })
    .transpose()
}

fn positive(var: &'static str, raw: Option<String>) -> Result<Option<u64>, SettingsError> {
    match parse::<u64>(var, raw)? {
        Some(0) => Err(SettingsError::Invalid {
            var,
            message: "must be at least 1".into(),
        }),
        other => Ok(other),
    }
}

impl MissionSettings {
    /// Reads the mission variables from an environment map.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let raw: Raw = load_section(
            env,
            &[
                ("MISSION_USER_DAILY_TOKEN_BUDGET", None),
                ("MISSION_PLAN_MODE", None),
                ("MISSION_MAX_TOKENS", None),
                ("MISSION_MAX_ROUNDS", None),
                ("MISSION_LLM_RETRY_SECS", None),
                ("MISSION_WORKER_ID", None),
                ("MISSION_CONCURRENCY", None),
                ("MISSION_DEADLINE_SECS", None),
                ("MISSION_CLAIM_LIMIT", None),
                ("MISSION_LEASE_SECS", None),
            ],
        )?;
        let mut s = Self::default();
        let p = &mut s.planner;
        if let Some(v) = parse(
            "MISSION_USER_DAILY_TOKEN_BUDGET",
            raw.mission_user_daily_token_budget,
        )? {
            p.daily_token_budget = v;
        }
        if let Some(v) = parse("MISSION_PLAN_MODE", raw.mission_plan_mode)? {
            p.mode = v;
        }
        if let Some(v) = positive("MISSION_MAX_TOKENS", raw.mission_max_tokens)? {
            p.max_tokens = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = positive("MISSION_MAX_ROUNDS", raw.mission_max_rounds)? {
            p.max_rounds = u32::try_from(v).unwrap_or(u32::MAX).min(20);
        }
        if let Some(v) = parse::<u64>("MISSION_LLM_RETRY_SECS", raw.mission_llm_retry_secs)? {
            p.llm_retry_after = Duration::from_secs(v);
        }
        let t = &mut s.tick;
        if let Some(v) = raw.mission_worker_id {
            t.worker = v.trim().to_string();
        }
        if let Some(v) = positive("MISSION_CONCURRENCY", raw.mission_concurrency)? {
            t.concurrency = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = positive("MISSION_DEADLINE_SECS", raw.mission_deadline_secs)? {
            t.mission_deadline = Duration::from_secs(v);
        }
        if let Some(v) = positive("MISSION_CLAIM_LIMIT", raw.mission_claim_limit)? {
            t.claim_limit = u32::try_from(v).unwrap_or(u32::MAX);
        }
        match parse::<u32>("MISSION_LEASE_SECS", raw.mission_lease_secs)? {
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
                var: "MISSION_LEASE_SECS",
                message: format!(
                    "must be at least MISSION_DEADLINE_SECS + 60 = {minimum} so a lease outlives the planning"
                ),
            });
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn read(pairs: &[(&str, &str)]) -> Result<MissionSettings, SettingsError> {
        MissionSettings::from_env(&env(pairs))
    }

    #[test]
    fn the_whole_settings_read_runner_llm_and_mission_variables() {
        let s = Settings::from_env(&env(&[("MISSION_WORKER_ID", "w-9")])).unwrap();
        assert_eq!(s.runner.bind_addr.to_string(), DEFAULT_BIND);
        assert_eq!(s.mission.tick.worker, "w-9");
        assert_eq!(s.llm.resolve().unwrap().kind, llm::ProviderKind::Sim);
        let s = Settings::from_env(&env(&[])).unwrap();
        assert_eq!(s.mission.tick.worker, worker_id());
        let e = Settings::from_env(&env(&[("LLM_PROVIDER", "gemini")])).unwrap_err();
        assert!(e.to_string().contains("LLM"), "{e}");
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
