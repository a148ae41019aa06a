//! Builds the service from typed settings and returns a handle tests drive.
//!
//! Rules: the LLM falls back to `sim` when nothing is configured — logged at `warn` and
//! shown in `/health`; a missing service key keeps the loop off (runner-kit); the
//! diagnostic routes exist only with `MANA_DIAG=1` (404 otherwise).

use std::sync::Arc;

use actix_web::{HttpResponse, http::StatusCode, web};
use llm::Llm;
use runner_kit::{
    InternalClient, RetryPolicy, RunnerService, ServiceConfig, ServiceHandle, Shutdown, TickRunner,
    tick_handler, worker_id,
};
use serde::Deserialize;
use serde_json::{Map, json};
use service_kit::{json_error, metrics::Metrics};
use types::error::codes;

use crate::{
    api::PersonaApi,
    config::Settings,
    day::DayConfig,
    tick::{PersonaTick, PersonaTickConfig},
};

/// The service name in `/health` and metrics.
pub const SERVICE: &str = "persona-runner";

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
    service: RunnerService<PersonaTick>,
}

impl Application {
    /// Builds everything from `settings` and binds the port.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let http = runner_kit::http_client()?;
        let metrics = Metrics::new("mana_persona_runner");
        let llm = Llm::from_settings(&settings.llm, http.clone())?
            .with_metrics(runner_kit::register_llm_metrics(&metrics));
        if let Some(reason) = llm.sim_reason() {
            tracing::warn!(
                llm.provider = "sim",
                reason,
                "NO LANGUAGE MODEL: personas are played by the offline `sim` provider"
            );
        } else {
            tracing::info!(
                llm.provider = llm.provider_name(),
                llm.model = llm.model(),
                llm.tool_schema = llm.tool_schema().map(|t| t.as_str()),
                "LLM configured"
            );
        }
        if settings.dev_seed_secret {
            tracing::warn!("PERSONA_SEED_SECRET is not set: using the development secret");
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
        let api = Arc::new(PersonaApi::new(
            client.clone(),
            settings.seed_secret.clone(),
        ));
        let worker = worker_id();
        let tick = PersonaTick::new(
            PersonaTickConfig {
                api: api.clone(),
                llm: llm.clone(),
                day: DayConfig {
                    lease_seconds: settings.lease_seconds(),
                    mcp_url: format!("{}/mcp", runner.auth_internal_url),
                    max_turns: settings.max_turns,
                    deadline: settings.deadline,
                    token_budget: settings.token_budget,
                    max_tokens: settings.max_tokens,
                    tools: settings.tools,
                    worker: worker.clone(),
                    app_version: settings.app_version.clone(),
                },
                worker: worker.clone(),
                concurrency: settings.concurrency,
                claim_limit: settings.claim_limit,
                lease_seconds: settings.lease_seconds(),
            },
            &metrics,
        );
        let extras = {
            let llm = llm.clone();
            let s = settings.clone();
            Arc::new(move || {
                let mut m = Map::new();
                m.insert(
                    "llm".into(),
                    json!({
                        "provider": llm.provider_name(),
                        "model": llm.model(),
                        "toolSchema": llm.tool_schema().map(|t| t.as_str()),
                        "sim": llm.is_sim(),
                        "simReason": llm.sim_reason(),
                    }),
                );
                m.insert("worker".into(), json!(worker));
                m.insert("concurrency".into(), json!(s.concurrency));
                m.insert("deadlineSecs".into(), json!(s.deadline.as_secs()));
                m.insert("maxTurns".into(), json!(s.max_turns));
                m.insert("tokenBudget".into(), json!(s.token_budget));
                m.insert("tools".into(), json!(s.tools.as_str()));
                m.insert("devSeedSecret".into(), json!(s.dev_seed_secret));
                m.insert("diagnostics".into(), json!(s.runner.diag));
                m
            }) as runner_kit::HealthExtras
        };
        let diag = runner.diag;
        let diag_api = api.clone();
        let routes: runner_kit::Routes = Arc::new(move |cfg: &mut web::ServiceConfig| {
            if diag {
                cfg.app_data(web::Data::from(diag_api.clone()))
                    .route("/diag/login", web::get().to(diag_login))
                    .route("/diag/tick", web::post().to(tick_handler::<PersonaTick>));
            }
        });
        if diag {
            tracing::warn!(
                "MANA_DIAG=1: diagnostic routes /diag/login and /diag/tick are served (development only)"
            );
        }
        let service = RunnerService::build(ServiceConfig {
            name: SERVICE,
            version: env!("CARGO_PKG_VERSION"),
            settings: settings.runner.clone(),
            tick,
            client,
            metrics,
            shutdown: Shutdown::new(),
            health_extras: Some(extras),
            routes: Some(routes),
            workers: 2,
        })?;
        Ok(Self { service })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// The tick runner (tests run ticks directly).
    pub fn runner(&self) -> TickRunner<PersonaTick> {
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

#[derive(Deserialize)]
struct LoginQuery {
    email: Option<String>,
}

/// `GET /diag/login?email=`: logs in as a persona and says whether it worked.
async fn diag_login(api: web::Data<PersonaApi>, q: web::Query<LoginQuery>) -> HttpResponse {
    let Some(email) = q.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            "`email` is required",
        );
    };
    match api.login(email).await {
        Ok(r) => HttpResponse::Ok().json(json!({
            "ok": true,
            "email": email,
            "userId": r.user.id,
            "expiresIn": r.expires_in,
            "tokenLength": r.access_token.len(),
        })),
        Err(e) => {
            let status = e
                .status()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
            HttpResponse::build(status).json(json!({
                "ok": false,
                "email": email,
                "error": { "code": e.code().unwrap_or("upstream_unreachable"), "message": e.to_string() },
            }))
        }
    }
}
