//! Route registration: one module per resource.

pub mod auth;
pub mod health;
pub mod metrics;
pub mod missions;
pub mod personas;
pub mod sync;

use actix_web::{middleware::from_fn, web};
use service_kit::require_service_key;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/metrics", web::get().to(metrics::metrics))
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
