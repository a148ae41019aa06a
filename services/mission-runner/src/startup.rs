//! The service: runner-kit's plumbing (interval loop with overlap guard,
//! `POST /internal/tick` with 409 while in flight, `/health`, `/metrics`, graceful
//! shutdown) around a [`MissionTick`].
//!
//! Rules:
//! - `BIND_ADDR` defaults to `127.0.0.1:3066`; the common variables are runner-kit's,
//!   the LLM's are `crates/llm`'s, the mission ones are [`MissionSettings`]'.
//! - The LLM falls back to `sim` when nothing is configured: logged at `warn` and shown in
//!   `/health`. A missing service key keeps the loop off (runner-kit says why).
//! - A tick whose claim fails still answers a report, with `error` set, so
//!   `POST /internal/tick` and the metrics show the failure.
//! - runner-kit's two-stage shutdown maps onto [`StopSignal`]: drain → claim and start
//!   nothing; cancel → abandon planning in flight and release those leases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llm::{Llm, LlmSettings};
use runner_kit::{
    RetryPolicy, RunnerService, RunnerSettings, ServiceConfig, ServiceHandle, Shutdown, Tick,
    TickRunner, worker_id,
};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, json};
use service_kit::Clock;
use service_kit::metrics::Metrics;
use types::tick::{MissionTickReport, TokenUsage};

use crate::client::{ClientRetry, InternalClient};
use crate::planner::Planner;
use crate::settings::{MissionSettings, SettingsError};
use crate::tick::{MissionTick, StopLevel, StopSignal};

/// The service name in `/health` and logs.
pub const SERVICE: &str = "mission-runner";
/// Default `BIND_ADDR`.
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:3066";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The common runner variables are unusable.
    #[error("settings: {0}")]
    Runner(#[from] runner_kit::SettingsError),
    /// The mission variables are unusable.
    #[error("settings: {0}")]
    Mission(#[from] SettingsError),
    /// The LLM configuration is unusable.
    #[error("LLM: {0}")]
    Llm(#[from] llm::LlmError),
    /// The auth-internal client could not be built.
    #[error("auth-internal client: {0}")]
    Client(#[from] crate::client::ClientError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// Binding the port failed.
    #[error("bind: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything the service reads from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// runner-kit's common variables.
    pub runner: RunnerSettings,
    /// The mission variables.
    pub mission: MissionSettings,
    /// The LLM variables.
    pub llm: LlmSettings,
}

impl Settings {
    /// Reads `env` (see the module rules for the names).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, StartupError> {
        let lookup = |k: &str| env.get(k).cloned();
        let mut mission = MissionSettings::from_lookup(lookup)?;
        if env
            .get("MISSION_WORKER_ID")
            .is_none_or(|v| v.trim().is_empty())
        {
            mission.tick.worker = worker_id();
        }
        Ok(Self {
            runner: RunnerSettings::from_env(env, DEFAULT_BIND_ADDR)?,
            mission,
            llm: LlmSettings::from_lookup(lookup)?,
        })
    }
}

/// A tick's answer: the report, and why the tick could not claim, if it could not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickOutcome {
    /// The report.
    #[serde(flatten)]
    pub report: MissionTickReport,
    /// The claim's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// [`MissionTick`] as runner-kit's [`Tick`].
#[derive(Debug, Clone)]
pub struct MissionService {
    tick: MissionTick,
    counters: MissionMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// Missions processed by result, and planning tokens by kind.
#[derive(Clone, Debug)]
struct MissionMetrics {
    missions: prometheus_client::metrics::family::Family<
        ResultLabel,
        prometheus_client::metrics::counter::Counter,
    >,
    tokens: prometheus_client::metrics::family::Family<
        KindLabel,
        prometheus_client::metrics::counter::Counter,
    >,
}

impl MissionMetrics {
    fn register(metrics: &Metrics) -> Self {
        let m = Self {
            missions: Default::default(),
            tokens: Default::default(),
        };
        metrics.register(
            "missions",
            "Missions processed by result (planned, parse_failure, llm_failure, write_back_failure)",
            m.missions.clone(),
        );
        metrics.register(
            "llm_tokens",
            "Planning tokens by kind (input, output)",
            m.tokens.clone(),
        );
        m
    }

    fn record(&self, r: &MissionTickReport) {
        for (result, n) in [
            ("planned", r.plans_produced),
            ("parse_failure", r.parse_failures),
            ("llm_failure", r.llm_failures),
            ("write_back_failure", r.write_back_failures),
        ] {
            self.missions
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .inc_by(u64::from(n));
        }
        self.tokens
            .get_or_create(&KindLabel {
                kind: "input".into(),
            })
            .inc_by(r.tokens.input);
        self.tokens
            .get_or_create(&KindLabel {
                kind: "output".into(),
            })
            .inc_by(r.tokens.output);
    }
}

impl Tick for MissionService {
    type Report = TickOutcome;

    async fn run(&self, tick_id: String, shutdown: Shutdown) -> TickOutcome {
        let started = Instant::now();
        let (tx, stop) = StopSignal::channel();
        let bridge = tokio::spawn(async move {
            shutdown.draining().await;
            let _ = tx.send(StopLevel::Drain);
            shutdown.cancelled().await;
            let _ = tx.send(StopLevel::Cancel);
        });
        // Let the bridge see a shutdown that already began.
        tokio::task::yield_now().await;
        let result = self.tick.run(tick_id.clone(), stop).await;
        bridge.abort();
        match result {
            Ok(report) => {
                self.counters.record(&report);
                TickOutcome {
                    report,
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(tick.id = %tick_id, error = %e, "tick {tick_id}: claim failed");
                TickOutcome {
                    report: MissionTickReport {
                        tick_id,
                        due: 0,
                        plans_produced: 0,
                        parse_failures: 0,
                        llm_failures: 0,
                        write_back_failures: 0,
                        tokens: TokenUsage::default(),
                        duration_ms: u64::try_from(started.elapsed().as_millis())
                            .unwrap_or(u64::MAX),
                    },
                    error: Some(e.to_string()),
                }
            }
        }
    }

    fn outcome(&self, out: &TickOutcome) -> &'static str {
        let r = &out.report;
        if out.error.is_some() {
            "failed"
        } else if r.parse_failures + r.llm_failures + r.write_back_failures > 0 {
            "partial"
        } else {
            "ok"
        }
    }
}

/// The built service.
pub struct Application {
    service: RunnerService<MissionService>,
}

impl Application {
    /// Builds everything from `settings` and binds the port.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        let metrics = Metrics::new("mana_mission_runner");
        let llm = Llm::from_settings(&settings.llm, http.clone())?
            .with_metrics(runner_kit::register_llm_metrics(&metrics));
        let counters = MissionMetrics::register(&metrics);
        if let Some(reason) = llm.sim_reason() {
            tracing::warn!(
                llm.provider = "sim",
                reason,
                "NO LANGUAGE MODEL: missions are planned by the offline `sim` provider"
            );
        } else {
            tracing::info!(
                llm.provider = llm.provider_name(),
                llm.model = llm.model(),
                "LLM configured"
            );
        }
        let runner = &settings.runner;
        let key = runner.service_keys.primary().unwrap_or_default();
        let client = InternalClient::new(
            http.clone(),
            &runner.auth_internal_url,
            SecretString::from(key.to_string()),
            ClientRetry {
                request_timeout: runner.http_timeout,
                ..ClientRetry::default()
            },
        )?;
        let kit_client = runner_kit::InternalClient::new(
            http,
            &runner.auth_internal_url,
            runner.service_keys.primary(),
            RetryPolicy {
                timeout: runner.http_timeout,
                ..RetryPolicy::default()
            },
        );
        let mission = settings.mission.clone();
        let clock = Clock::System;
        let planner = Planner::new(llm.clone(), mission.planner.clone(), clock.clone());
        let mode = planner.mode();
        let tick = MissionService {
            tick: MissionTick::new(client, planner, mission.tick.clone(), clock),
            counters,
        };
        let extras = {
            let m = mission.clone();
            Arc::new(move || {
                let mut out = Map::new();
                out.insert(
                    "llm".into(),
                    json!({
                        "provider": llm.provider_name(),
                        "model": llm.model(),
                        "sim": llm.is_sim(),
                        "simReason": llm.sim_reason(),
                    }),
                );
                out.insert("planMode".into(), json!(format!("{mode:?}").to_lowercase()));
                out.insert("worker".into(), json!(m.tick.worker));
                out.insert("concurrency".into(), json!(m.tick.concurrency));
                out.insert(
                    "deadlineSecs".into(),
                    json!(m.tick.mission_deadline.as_secs()),
                );
                out.insert(
                    "userDailyTokenBudget".into(),
                    json!(m.planner.daily_token_budget),
                );
                out
            }) as runner_kit::HealthExtras
        };
        let service = RunnerService::build(ServiceConfig {
            name: SERVICE,
            version: env!("CARGO_PKG_VERSION"),
            settings: settings.runner.clone(),
            tick,
            client: kit_client,
            metrics,
            shutdown: Shutdown::new(),
            health_extras: Some(extras),
            routes: None,
            workers: 2,
        })?;
        Ok(Self { service })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// The tick runner (tests run ticks directly).
    pub fn runner(&self) -> TickRunner<MissionService> {
        self.service.runner()
    }

    /// Graceful-shutdown handle.
    pub fn handle(&self) -> ServiceHandle {
        self.service.handle()
    }

    /// Serves until SIGTERM/SIGINT, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.service.run_until_stopped().await
    }

    /// Serves without signal handlers (tests stop it through [`Application::handle`]).
    pub async fn run_without_signals(self) -> std::io::Result<()> {
        self.service.run_without_signals().await
    }
}
