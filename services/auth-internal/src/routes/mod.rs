//! Route registration: one module per resource.

pub mod auth;
pub mod health;
pub mod metrics;
pub mod missions;
pub mod personas;
pub mod sync;

use actix_web::{middleware::from_fn, web};
use service_kit::require_service_key;

/// Every method and path the application answers, in the OpenAPI path-template
/// form, including the routes `startup` mounts next to [`config`] (the
/// protected-resource metadata and `/mcp`). Keep it in step with [`config`]:
/// the API tests check that each entry is served and is in `/openapi.json`,
/// and that the document holds nothing else.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-protected-resource"),
    ("GET", "/.well-known/oauth-protected-resource/mcp"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/sync/push"),
    ("GET", "/api/v1/sync/pull"),
    (
        "POST",
        "/api/v1/missions/{id}/iterations/{iterationId}/steps/{stepId}/approve",
    ),
    (
        "POST",
        "/api/v1/missions/{id}/iterations/{iterationId}/steps/{stepId}/reject",
    ),
    ("PUT", "/api/v1/internal/personas"),
    ("GET", "/api/v1/internal/personas/due"),
    ("POST", "/api/v1/internal/personas/claim"),
    ("GET", "/api/v1/internal/personas/{id}"),
    ("GET", "/api/v1/internal/personas/{id}/ratings"),
    ("GET", "/api/v1/internal/personas/{id}/actions"),
    ("POST", "/api/v1/internal/personas/{id}/actions"),
    ("POST", "/api/v1/internal/personas/{id}/feedback"),
    ("POST", "/api/v1/internal/personas/{id}/release"),
    ("POST", "/api/v1/internal/missions/claim"),
    ("POST", "/api/v1/internal/missions/{id}/iterations"),
    ("POST", "/api/v1/internal/missions/{id}/release"),
    ("POST", "/mcp"),
];

/// The routes of the resource modules (see [`ROUTES`] for the full list).
pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/openapi.json", web::get().to(crate::openapi::openapi_json))
        .route("/.well-known/jwks.json", web::get().to(auth::jwks))
        .service(
            web::scope("/api/v1/auth")
                .route("/register", web::post().to(auth::register))
                .route("/login", web::post().to(auth::login)),
        )
        .service(web::scope("/api/v1/sync").configure(sync::config))
        .service(web::scope("/api/v1/missions").configure(missions::user_config))
        .service(
            web::scope("/api/v1/internal")
                .wrap(from_fn(require_service_key))
                .configure(personas::config)
                .configure(missions::internal_config),
        );
}
