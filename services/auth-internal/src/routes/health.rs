//! `GET /health`: 200 when Postgres answers, 503 (same shape) when it does not.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::{db, startup::AppState};

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let up = db::ping(&state.pool, Duration::from_secs(2)).await;
    let body = json!({
        "service": "auth-internal",
        "version": env!("CARGO_PKG_VERSION"),
        "database": if up { "ok" } else { "down" },
    });
    if up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
