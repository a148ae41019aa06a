//! Build the application from typed [`Settings`]: run migrations, build the
//! pool, bind the listener, and return a handle tests and `main` can run.

use std::{net::TcpListener, time::Duration};

use actix_web::{App, HttpServer, dev::Server, middleware::from_fn, web};
use secrecy::ExposeSecret;
use service_kit::{Clock, json::JsonLimit, metrics::Metrics};

use crate::{
    auth::{jwt::Keys, password::Hasher},
    config::Settings,
    db, routes,
    state::AppState,
};

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
        });
        let server_state = state.clone();
        let mcp_metrics = crate::mcp::McpMetrics::register(&state.metrics);
        let db_gauges = web::Data::new(crate::routes::metrics::DbGauges::register(&state.metrics));
        let mcp_service = crate::mcp::build_service(state.clone(), mcp_metrics);
        let service_keys = web::Data::new(service_keys);
        let metrics = web::Data::new(metrics);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(service_kit::metrics::track_http))
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
                .default_service(web::to(routes::unmatched))
        })
        .on_connect(service_kit::net::on_connect)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: format!("port {port}"),
            source,
        })?
        .shutdown_timeout(10);
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.run();
        Ok(Self {
            port,
            server,
            state,
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

    /// Run until SIGTERM/SIGINT (actix installs the signal handlers) or stop.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
