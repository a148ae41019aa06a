//! Build the application from typed [`Settings`]: run migrations, build the
//! pool, bind the listener, and return a handle tests and `main` can run.
//!
//! Rules (shutdown): on SIGTERM/SIGINT (or [`Lifecycle::begin_drain`]) `/health`
//! answers 503 `draining` at once, MCP event streams and sessions are closed (their
//! cancellation token), requests in flight get up to `http.shutdown_grace_secs`
//! (`SHUTDOWN_GRACE_SECS`) to finish, then the server stops — at once when idle.

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{App, HttpServer, dev::Server, middleware::from_fn, web};
use secrecy::ExposeSecret;
use service_kit::{Clock, json::JsonLimit, metrics::Metrics};

use crate::{
    auth::{jwt::Keys, password::Hasher},
    config::Settings,
    db, routes,
    state::{AppState, Lifecycle},
};

/// Counts a request as in flight while its handler runs (drops decrement, so a
/// cancelled request is not counted forever).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds its request's [`InFlight`] count until it is fully
/// written (or dropped), so the drain waits for answers, not only handlers.
struct Counted {
    body: actix_web::body::BoxBody,
    guard: Option<InFlight>,
}

impl actix_web::body::MessageBody for Counted {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.body).poll_next(cx);
        if matches!(polled, std::task::Poll::Ready(None | Some(Err(_)))) {
            this.guard.take();
        }
        polled
    }
}

/// `from_fn` middleware: track requests in flight (until their answer is written) for
/// the drain, except the long-lived `GET /mcp` event stream, which ends by the
/// cancellation token instead.
async fn track_in_flight(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<Counted>, actix_web::Error> {
    let stream = req.method() == actix_web::http::Method::GET && req.path().starts_with("/mcp");
    let guard = match (stream, req.app_data::<web::Data<AppState>>()) {
        (false, Some(state)) => {
            let counter = state.lifecycle.in_flight_counter();
            counter.fetch_add(1, Ordering::SeqCst);
            Some(InFlight(counter))
        }
        _ => None,
    };
    let resp = next.call(req).await?;
    Ok(resp.map_body(move |_, body| Counted {
        body: actix_web::body::BoxBody::new(body),
        guard,
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("{0}")]
    App(#[from] crate::error::AppError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A built, bound, not yet running application.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    retention: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Migrate, connect and bind, using the system clock.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::System).await
    }

    /// As [`Application::build`] with an injected clock (tests).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        let url = settings.database_url.expose_secret().to_owned();
        db::run_migrations(
            &url,
            Duration::from_secs(settings.database.startup_timeout_secs),
        )
        .await?;
        let pool = db::build_pool(&url, &settings.database)?;
        let keys = Keys::from_settings(&settings.jwt)?;
        if keys.ephemeral {
            tracing::warn!(
                "no jwt.private_key_pem configured: using an ephemeral signing key; tokens die with this process"
            );
        }
        let service_keys = settings.service_keys();
        if service_keys.is_empty() {
            tracing::warn!("MANA_SERVICE_KEY is not set: every /api/v1/internal route answers 401");
        }
        let hasher = Hasher::new(&settings.password)?;
        let node = format!("srv-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let hlc = lww::Hlc::new(node).map_err(crate::error::AppError::internal)?;
        let listener =
            TcpListener::bind(&settings.bind_addr).map_err(|source| StartupError::Bind {
                addr: settings.bind_addr.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.bind_addr.clone(),
                source,
            })?
            .port();
        let metrics = Metrics::new("mana_auth");
        let workers = settings.http.workers;
        let body_limit = settings.http.max_body_bytes;
        let state = web::Data::new(AppState {
            pool,
            keys,
            hasher,
            clock,
            settings,
            metrics: metrics.clone(),
            hlc,
            lifecycle: Lifecycle::default(),
        });
        let grace = state.settings.http.shutdown_grace_secs;
        let server_state = state.clone();
        let mcp_metrics = crate::mcp::McpMetrics::register(&state.metrics);
        let db_gauges = web::Data::new(crate::routes::metrics::DbGauges::register(&state.metrics));
        let mcp_service = crate::mcp::build_service(state.clone(), mcp_metrics);
        let service_keys = web::Data::new(service_keys);
        let metrics = web::Data::new(metrics);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(service_kit::storable::reject_nul_in_uri))
                .wrap(from_fn(track_in_flight))
                .wrap(from_fn(service_kit::metrics::track_http))
                .app_data(service_kit::storable::RouteTemplates::new(
                    crate::openapi::path_templates(),
                ))
                .wrap(from_fn(service_kit::telemetry::trace_http))
                .app_data(server_state.clone())
                .app_data(service_keys.clone())
                .app_data(metrics.clone())
                .app_data(db_gauges.clone())
                .app_data(JsonLimit(body_limit))
                .app_data(service_kit::errors::query_config())
                .app_data(service_kit::errors::path_config())
                .configure(|cfg| {
                    routes::table(
                        &mut utoipa_actix_web::service_config::ServiceConfig::new(cfg),
                        mcp_service.clone().scope(),
                    );
                })
                .configure(crate::console::config)
                .default_service(web::to(routes::unmatched))
        })
        .on_connect(service_kit::net::on_connect)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: format!("port {port}"),
            source,
        })?
        .shutdown_timeout(grace)
        .disable_signals();
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.run();
        let retention = crate::retention::spawn(state.clone());
        Ok(Self {
            port,
            server,
            state,
            retention,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The shutdown state (tests drain without a signal).
    pub fn lifecycle(&self) -> Lifecycle {
        self.state.lifecycle.clone()
    }

    /// Run until stopped through [`Application::handle`] (no signal handling: tests).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.retention.abort();
        result
    }

    /// Run until SIGTERM/SIGINT, then drain as the module rules say.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let lifecycle = self.state.lifecycle.clone();
        let grace = Duration::from_secs(self.state.settings.http.shutdown_grace_secs);
        let mut server = std::pin::pin!(self.server);
        tokio::select! {
            r = &mut server => return r,
            () = shutdown_signal() => {}
        }
        lifecycle.begin_drain();
        tracing::info!(
            in_flight = lifecycle.in_flight(),
            grace_secs = grace.as_secs(),
            "shutdown: draining"
        );
        tokio::select! {
            r = &mut server => return r,
            () = lifecycle.settle(grace) => {}
        }
        // Every answer is written (or the grace is over): close the remaining
        // connections (idle keep-alives, event streams) now instead of waiting for them.
        // The server future handles the stop command, so both run together.
        let (_, r) = tokio::join!(handle.stop(false), server);
        r
    }
}

/// Resolves on the first SIGTERM or SIGINT (SIGINT only where SIGTERM does not exist).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; waiting for Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
