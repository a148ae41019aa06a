//! The runner's HTTP service: `GET /health`, `GET /metrics`, `POST /internal/tick`
//! (service key), the runner's own routes, the interval loop and graceful shutdown.
//!
//! Rules:
//! - `/health` is 200 while auth-internal answers its `/health`, 503 otherwise; the body
//!   names the service, its version, the loop state (on/off and why), auth-internal's
//!   reachability, the tick in flight and the runner's own fields.
//! - `POST /internal/tick` answers the report (200), or 409
//!   `{error:{code:"tick_in_flight",…}, tickId}` while a tick runs, or 503 while
//!   shutting down.
//! - Shutdown (SIGTERM/SIGINT or [`ServiceHandle::shutdown`]): stop the loop and refuse
//!   new ticks, give the running tick `shutdown_grace` to finish, then cancel it (it
//!   records what it has and releases its leases), then stop the HTTP server.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{
    App, HttpResponse, HttpServer, dev::ServerHandle, http::StatusCode, middleware::from_fn, web,
};
use serde_json::{Map, Value, json};
use service_kit::{
    errors, json_error,
    metrics::{Metrics, metrics_handler, track_http},
    require_service_key,
};
use types::{ApiError, error::codes};

use crate::{
    InternalClient, RunnerSettings,
    tick::{LoopState, Shutdown, Tick, TickError, TickMetrics, TickRunner, spawn_loop},
};

/// Runner-specific `/health` fields, computed per request.
pub type HealthExtras = Arc<dyn Fn() -> Map<String, Value> + Send + Sync>;

/// Extra routes of a runner (they can extract `web::Data<TickRunner<T>>`,
/// `web::Data<InternalClient>` and `web::Data<RunnerSettings>`).
pub type Routes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// Everything a runner service is built from.
pub struct ServiceConfig<T: Tick> {
    /// Service name in `/health` and logs (`persona-runner`).
    pub name: &'static str,
    /// Version in `/health`.
    pub version: &'static str,
    /// The common settings.
    pub settings: RunnerSettings,
    /// The runner's tick.
    pub tick: T,
    /// The auth-internal client (used for the reachability check).
    pub client: InternalClient,
    /// The metrics registry (tick metrics are registered into it here).
    pub metrics: Metrics,
    /// The shutdown signal the tick also received, if it kept one.
    pub shutdown: Shutdown,
    /// Extra `/health` fields.
    pub health_extras: Option<HealthExtras>,
    /// Extra routes.
    pub routes: Option<Routes>,
    /// actix workers (0 = 2).
    pub workers: usize,
}

/// Stops a running service. Cheap to clone.
#[derive(Clone)]
pub struct ServiceHandle {
    server: ServerHandle,
    shutdown: Shutdown,
    grace: Duration,
    idle: Arc<dyn Fn(Duration) -> futures::future::BoxFuture<'static, bool> + Send + Sync>,
}

impl ServiceHandle {
    /// The graceful shutdown sequence (see the module rules). Idempotent.
    pub async fn shutdown(&self) {
        tracing::info!(
            grace_secs = self.grace.as_secs(),
            "shutting down: no new ticks"
        );
        self.shutdown.begin_drain();
        if !(self.idle)(self.grace).await {
            tracing::warn!("grace period over: cancelling the running tick");
            self.shutdown.cancel();
            // The cancelled tick still writes its rows and releases its leases.
            if !(self.idle)(Duration::from_secs(30)).await {
                tracing::error!("the cancelled tick did not finish within 30 s");
            }
        }
        self.server.stop(true).await;
    }

    /// The shutdown signal.
    pub fn signal(&self) -> &Shutdown {
        &self.shutdown
    }
}

/// A built (bound, not yet running) runner service.
pub struct RunnerService<T: Tick> {
    server: actix_web::dev::Server,
    port: u16,
    runner: TickRunner<T>,
    handle: ServiceHandle,
    loop_state: LoopState,
    interval: Duration,
}

#[derive(Clone)]
struct HealthState {
    name: &'static str,
    version: &'static str,
    loop_state: LoopState,
    extras: Option<HealthExtras>,
    in_flight: Arc<dyn Fn() -> Option<String> + Send + Sync>,
}

impl<T: Tick> RunnerService<T> {
    /// Binds `settings.bind_addr` and builds the app.
    pub fn build(cfg: ServiceConfig<T>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(cfg.settings.bind_addr)?;
        let port = listener.local_addr()?.port();
        let tick_metrics = TickMetrics::register(&cfg.metrics);
        let runner = TickRunner::new(cfg.tick, tick_metrics, cfg.shutdown.clone());
        let loop_state = LoopState::from_settings(&cfg.settings);
        if let Some(reason) = &loop_state.reason {
            tracing::warn!(service = cfg.name, reason = %reason, enabled = loop_state.enabled, "tick loop");
        }
        let health = HealthState {
            name: cfg.name,
            version: cfg.version,
            loop_state: loop_state.clone(),
            extras: cfg.health_extras,
            in_flight: {
                let r = runner.clone();
                Arc::new(move || r.in_flight())
            },
        };
        let runner_data = web::Data::new(runner.clone());
        let client = web::Data::new(cfg.client);
        let settings = web::Data::new(cfg.settings.clone());
        let keys = web::Data::new(cfg.settings.service_keys.clone());
        let metrics = web::Data::new(cfg.metrics);
        let health = web::Data::new(health);
        let routes = cfg.routes;
        let server = HttpServer::new(move || {
            let routes = routes.clone();
            App::new()
                .app_data(runner_data.clone())
                .app_data(client.clone())
                .app_data(settings.clone())
                .app_data(keys.clone())
                .app_data(metrics.clone())
                .app_data(health.clone())
                .app_data(errors::query_config())
                .app_data(errors::path_config())
                .wrap(from_fn(track_http))
                .wrap(from_fn(service_kit::telemetry::trace_http))
                .route("/health", web::get().to(health_handler))
                .route("/metrics", web::get().to(metrics_handler))
                .service(
                    web::resource("/internal/tick")
                        .wrap(from_fn(require_service_key))
                        .route(web::post().to(tick_handler::<T>))
                        .default_service(web::to(errors::method_not_allowed)),
                )
                .configure(move |c| {
                    if let Some(r) = &routes {
                        r(c);
                    }
                })
                .default_service(web::to(errors::not_found))
        })
        .on_connect(service_kit::net::on_connect)
        .workers(if cfg.workers == 0 { 2 } else { cfg.workers })
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)?
        .run();
        let idle_runner = runner.clone();
        let handle = ServiceHandle {
            server: server.handle(),
            shutdown: cfg.shutdown,
            grace: cfg.settings.shutdown_grace,
            idle: Arc::new(move |limit| {
                let r = idle_runner.clone();
                Box::pin(async move { r.wait_idle(limit).await })
            }),
        };
        Ok(Self {
            server,
            port,
            runner,
            handle,
            loop_state,
            interval: cfg.settings.tick_interval,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The tick runner (tests run ticks directly).
    pub fn runner(&self) -> TickRunner<T> {
        self.runner.clone()
    }

    /// A handle that stops the service gracefully.
    pub fn handle(&self) -> ServiceHandle {
        self.handle.clone()
    }

    /// Serves, runs the loop if enabled, and shuts down gracefully on SIGTERM/SIGINT.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let loop_task = self
            .loop_state
            .enabled
            .then(|| spawn_loop(self.runner.clone(), self.interval, self.loop_state.paused));
        let handle = self.handle.clone();
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            handle.shutdown().await;
        });
        let result = self.server.await;
        signals.abort();
        if let Some(t) = loop_task {
            t.abort();
        }
        result
    }

    /// Serves and runs the loop without installing signal handlers (tests, embedding).
    pub async fn run_without_signals(self) -> std::io::Result<()> {
        let loop_task = self
            .loop_state
            .enabled
            .then(|| spawn_loop(self.runner.clone(), self.interval, self.loop_state.paused));
        let result = self.server.await;
        if let Some(t) = loop_task {
            t.abort();
        }
        result
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn health_handler(
    health: web::Data<HealthState>,
    client: web::Data<InternalClient>,
) -> HttpResponse {
    let reachable = client.is_reachable().await;
    let mut body = json!({
        "service": health.name,
        "version": health.version,
        "status": if reachable { "ok" } else { "degraded" },
        "loop": health.loop_state,
        "authInternal": { "url": client.base_url(), "reachable": reachable },
        "tickInFlight": (health.in_flight)(),
    });
    if let (Some(extra), Some(obj)) = (&health.extras, body.as_object_mut()) {
        for (k, v) in extra() {
            obj.insert(k, v);
        }
    }
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(body)
}

/// `POST /internal/tick` (and any diagnostic alias): run one tick, answer its report.
pub async fn tick_handler<T: Tick>(runner: web::Data<TickRunner<T>>) -> HttpResponse {
    match runner.run_now().await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(TickError::InFlight(id)) => {
            let mut body = serde_json::to_value(ApiError::new(
                codes::TICK_IN_FLIGHT,
                format!("tick {id} is still in flight"),
            ))
            .unwrap_or_else(|_| json!({}));
            if let Some(obj) = body.as_object_mut() {
                obj.insert("tickId".into(), Value::String(id));
            }
            HttpResponse::Conflict().json(body)
        }
        Err(TickError::ShuttingDown) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SERVICE_UNAVAILABLE,
            "the runner is shutting down",
        ),
        Err(e @ TickError::Crashed(_)) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            e.to_string(),
        ),
    }
}
