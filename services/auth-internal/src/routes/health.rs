//! `GET /health`: 200 when Postgres answers, 503 (same shape) when it does not or the
//! service is draining (shutdown began).

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{db, state::AppState};

/// `/health`, at the top level.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(health);
}

/// The health answer (the same shape for 200 and 503).
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `auth-internal`.
    pub service: &'static str,
    /// The crate version.
    pub version: &'static str,
    /// `ok` or `down`.
    pub database: &'static str,
    /// `ok`, `down` (the database does not answer) or `draining` (shutting down:
    /// take this replica out of rotation).
    pub status: &'static str,
}

/// Liveness and readiness: whether Postgres answers within 2 s.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "The service and its database are up", body = Health),
        (status = 503, description = "The database does not answer (`status: down`), or the service is shutting down (`status: draining`)", body = Health),
    ),
)]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let draining = state.lifecycle.is_draining();
    // While draining the answer must be immediate: no database round trip.
    let up = !draining && db::ping(&state.pool, Duration::from_secs(2)).await;
    let body = Health {
        service: "auth-internal",
        version: env!("CARGO_PKG_VERSION"),
        database: if up || draining { "ok" } else { "down" },
        status: if draining {
            "draining"
        } else if up {
            "ok"
        } else {
            "down"
        },
    };
    if up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
