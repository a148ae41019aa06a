//! The operator console at `/console`: server-rendered HTML pages over the
//! report queries, for operators only.
//!
//! Rules:
//! - Every page needs an operator session ([`auth::Operator`]); none → 303 to
//!   `/console/login`, a non-operator → 403.
//! - Pages read through the typed query functions of `db::` (the same ones
//!   the JSON report routes use); no page has SQL of its own.
//! - Period and filters are query parameters, so every view is a shareable
//!   link; state changes are CSRF-checked form POSTs answered with a 303.
//! - Only personas and aggregates are shown, never a human user's records.

pub mod auth;
pub mod error;
pub mod failures;
pub mod fmt;
pub mod modules;
pub mod period;
pub mod personas;
pub mod runs;

use actix_web::{HttpResponse, http::header, web};

use crate::web::{STYLESHEET, STYLESHEET_PATH};

/// Every console route, as (method, path template), for the route table checks.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/console"),
    ("GET", "/console/modules/{module}"),
    ("GET", "/console/runs/{runId}"),
    ("GET", "/console/failures"),
    ("GET", "/console/tokens"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("GET", "/console/personas"),
    ("POST", "/console/personas/{id}/pause"),
    ("POST", "/console/personas/{id}/resume"),
    ("POST", "/console/personas/{id}/run-now"),
    ("GET", STYLESHEET_PATH),
];

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(STYLESHEET)
}

/// Register the console's routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .app_data(auth::form_config())
            .route("", web::get().to(modules::scoreboard))
            .route("/", web::get().to(modules::scoreboard))
            .route("/modules/{module}", web::get().to(modules::module_page))
            .route("/runs/{runId}", web::get().to(runs::run_page))
            .route("/failures", web::get().to(failures::failures_page))
            .route("/tokens", web::get().to(failures::tokens_page))
            .route("/static/console.css", web::get().to(stylesheet))
            .route("/login", web::get().to(auth::login_form))
            .route("/login", web::post().to(auth::login))
            .route("/logout", web::post().to(auth::logout))
            .route("/personas", web::get().to(personas::list_personas))
            .route(
                "/personas/{id}/pause",
                web::post().to(personas::pause_persona),
            )
            .route(
                "/personas/{id}/resume",
                web::post().to(personas::resume_persona),
            )
            .route(
                "/personas/{id}/run-now",
                web::post().to(personas::run_persona_now),
            ),
    );
}
