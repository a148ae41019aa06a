//! Builds the service from typed settings and returns a handle tests drive.
//!
//! Rules: runner-kit's plumbing (interval loop with overlap guard, `POST /internal/tick`
//! with 409 while in flight, `/health`, `/metrics`, graceful shutdown) around a
//! [`MissionTick`], with one runner-kit client shared by the tick and the service; the
//! LLM falls back to `sim` when nothing is configured — logged at `warn` and shown in
//! `/health`; a missing service key keeps the loop off (runner-kit says why).

use std::sync::Arc;

use llm::Llm;
use runner_kit::{
    InternalClient, RetryPolicy, RunnerService, ServiceConfig, ServiceHandle, Shutdown, TickRunner,
};
use serde_json::{Map, json};
use service_kit::Clock;
use service_kit::metrics::Metrics;

use crate::api::MissionApi;
use crate::config::Settings;
use crate::plan::Planner;
use crate::tick::MissionTick;

/// The service name in `/health` and logs.
pub const SERVICE: &str = "mission-runner";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The LLM configuration is unusable.
    #[error("LLM: {0}")]
    Llm(#[from] llm::LlmError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// Binding the port failed.
    #[error("bind: {0}")]
    Io(#[from] std::io::Error),
}

/// The built service.
pub struct Application {
    service: RunnerService<MissionTick>,
}

impl Application {
    /// Builds everything from `settings` and binds the port.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let http = runner_kit::http_client()?;
        let metrics = Metrics::new("mana_mission_runner");
        let llm = Llm::from_settings(&settings.llm, http.clone())?
            .with_metrics(runner_kit::register_llm_metrics(&metrics));
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
                llm.tool_schema = llm.tool_schema().map(|t| t.as_str()),
                "LLM configured"
            );
        }
        let runner = &settings.runner;
        let client = InternalClient::new(
            http,
            &runner.auth_internal_url,
            runner.service_keys.primary(),
            RetryPolicy {
                timeout: runner.http_timeout,
                budget: runner.retry_budget,
                ..RetryPolicy::default()
            },
        );
        let mission = settings.mission.clone();
        let clock = Clock::System;
        let planner = Planner::new(llm.clone(), mission.planner.clone(), clock.clone());
        let mode = planner.mode();
        let tick = MissionTick::new(
            MissionApi::new(client.clone()),
            planner,
            mission.tick.clone(),
            clock,
        )
        .with_metrics(&metrics);
        let extras = {
            let m = mission.clone();
            Arc::new(move || {
                let mut out = Map::new();
                out.insert(
                    "llm".into(),
                    json!({
                        "provider": llm.provider_name(),
                        "model": llm.model(),
                        "toolSchema": llm.tool_schema().map(|t| t.as_str()),
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
            client,
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
    pub fn runner(&self) -> TickRunner<MissionTick> {
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
