//! The route table: one list that both registers every route with actix and
//! produces the OpenAPI document (`utoipa-actix-web` collects each
//! registered handler's `#[utoipa::path]` as it is registered).
//!
//! Rules:
//! - [`table`] is the only place routes are mounted; `startup` mounts it and
//!   `openapi` builds `/openapi.json` from it, so nothing can be served but
//!   undocumented, or documented but not served.
//! - A handler is an `async fn` with `#[utoipa::path(…)]` (tag, security,
//!   params, body, responses: no method or path) directly above the actix
//!   route macro (`#[get("/x")]`, `#[post("/x")]`, …), whose path is
//!   relative to the scope it is mounted in. The actix macro is the one
//!   source of method and path, for both the router and the document.
//! - Register with `service(handler)` only; never `.route(…)` or `.map(…)`
//!   (they bypass the document). A service served by other code (rmcp at
//!   `/mcp`) goes in through [`Documented`] with its annotation.
//! - Error answers reuse the shared response sets of [`responses`]
//!   (`InternalErrors`, `LeaseErrors`, …) instead of repeating lines.
//! - A wrong method on a documented path is 405 (JSON, with `Allow`); an
//!   unknown path is 404 `not_found` (see [`unmatched`]).
//!
//! # Adding a route module (one line)
//!
//! Write `routes/<name>.rs` with its handlers as above and
//!
//! ```ignore
//! pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
//!     cfg.service(claim_runs).service(get_run);
//! }
//! ```
//!
//! then add `pub mod <name>;` below and one line to [`table`]: inside the
//! internal scope for a service-key route (`.configure(runs::routes)`, paths
//! relative to `/api/v1/internal`), or at the top level with its own scope
//! (`.service(scope("/console").configure(console::routes))`,
//! `.configure(oauth::routes)` for absolute paths). A new tag goes in
//! `openapi.rs`'s `tags(...)`. The OpenAPI tests pick the routes up by
//! themselves.

pub mod auth;
pub mod health;
pub mod metrics;
pub mod missions;
pub mod oauth_grants;
pub mod personas;
pub mod reports;
pub mod responses;
pub mod runs;
pub mod sync;
pub mod tokens;

use actix_web::{
    HttpRequest, HttpResponse,
    dev::{AppService, HttpServiceFactory},
    http::header,
    middleware::from_fn,
};
use utoipa_actix_web::{OpenApiFactory, scope, service_config::ServiceConfig};

/// Every route of the service. `mcp` is what serves `/mcp` (the rmcp
/// transport; any placeholder when only the document is wanted).
pub fn table<M>(cfg: &mut ServiceConfig<'_>, mcp: M)
where
    M: HttpServiceFactory + 'static,
{
    cfg.configure(health::routes)
        .configure(metrics::routes)
        .configure(crate::openapi::routes)
        .configure(auth::routes)
        .configure(|cfg| crate::mcp::routes(cfg, mcp))
        .service(scope("/api/v1/sync").configure(sync::routes))
        .service(scope("/api/v1/missions").configure(missions::user_routes))
        .configure(tokens::routes)
        .configure(oauth_grants::routes)
        .configure(crate::oauth::routes)
        .service(
            // One scope for every service-key route: an unknown internal path
            // is 401 without the key, never a hint that it does not exist.
            // Reading reports and runs also accepts an operator session (the
            // console's); the guard decides both in one place.
            scope("/api/v1/internal")
                .wrap(from_fn(
                    crate::console::auth::require_service_key_or_operator,
                ))
                .configure(personas::routes)
                // Runs and reports: the console will accept an operator session here as
                // well; the guard is this scope's `require_service_key`.
                .configure(runs::routes)
                .configure(reports::routes)
                .configure(missions::internal_routes),
        );
}

/// The answer of a `DELETE` of one of the caller's own things (a token, a grant):
/// 204 if it was removed, else 404 `not_found` saying `missing` — the same for
/// another user's id as for an unknown one.
pub fn owned_deleted(done: bool, missing: &str) -> Result<HttpResponse, crate::error::AppError> {
    if done {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(crate::error::AppError::NotFound(missing.to_owned()))
    }
}

/// A service registered by other code, documented by the `#[utoipa::path]`
/// annotation `D` (an annotation-only fn's `__path_…` type).
pub struct Documented<S, D> {
    service: S,
    doc: D,
}

impl<S, D> Documented<S, D> {
    pub fn new(service: S, doc: D) -> Self {
        Self { service, doc }
    }
}

impl<S: HttpServiceFactory, D> HttpServiceFactory for Documented<S, D> {
    fn register(self, config: &mut AppService) {
        self.service.register(config);
    }
}

impl<S, D: OpenApiFactory> OpenApiFactory for Documented<S, D> {
    fn paths(&self) -> utoipa::openapi::path::Paths {
        self.doc.paths()
    }

    fn schemas(
        &self,
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        self.doc.schemas(schemas);
    }
}

/// Whether a concrete path matches an OpenAPI path template (`{x}` is one
/// segment).
fn matches_template(template: &str, path: &str) -> bool {
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) => {
                let param = ts.starts_with('{') && ts.ends_with('}');
                if !(param && !ps.is_empty() || ts == ps) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The methods the document lists for the paths matching `path`.
fn documented_methods(path: &str) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = crate::openapi::document()
        .paths
        .paths
        .iter()
        .filter(|(template, _)| matches_template(template, path))
        .flat_map(|(_, item)| {
            [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("OPTIONS", item.options.is_some()),
                ("HEAD", item.head.is_some()),
                ("PATCH", item.patch.is_some()),
                ("TRACE", item.trace.is_some()),
            ]
            .into_iter()
            .filter_map(|(m, present)| present.then_some(m))
        })
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// The default service: 405 with `Allow` for a documented path asked with
/// another method, else 404.
pub async fn unmatched(req: HttpRequest) -> HttpResponse {
    let allowed = documented_methods(req.path());
    if allowed.is_empty() {
        return service_kit::errors::not_found(req).await;
    }
    let mut resp = service_kit::errors::method_not_allowed(req).await;
    if let Ok(value) = header::HeaderValue::from_str(&allowed.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, value);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_segment_by_segment() {
        assert!(matches_template("/a/{id}/b", "/a/42/b"));
        assert!(!matches_template("/a/{id}/b", "/a//b"));
        assert!(!matches_template("/a/{id}", "/a/42/b"));
        assert!(!matches_template("/a/b", "/a/c"));
        assert!(matches_template("/health", "/health"));
    }

    #[test]
    fn documented_methods_come_from_the_table() {
        assert_eq!(documented_methods("/health"), vec!["GET"]);
        assert_eq!(
            documented_methods("/api/v1/internal/personas/7/actions"),
            vec!["GET", "POST"]
        );
        assert!(documented_methods("/api/v1/nothing").is_empty());
    }
}
