//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! Rules:
//! - The document is generated from the handlers' `#[utoipa::path]`
//!   annotations and the wire types' `ToSchema` derives; nothing is written by
//!   hand except the security schemes.
//! - Its paths are collected from [`crate::routes::table`], the same table the
//!   server mounts: [`ApiDoc`] holds only what no handler says (info, tags,
//!   shared schemas, security schemes). `tests/api/openapi.rs` checks the
//!   served document against the running service both ways.
//! - Every non-2xx answer references the one envelope schema `ApiError`,
//!   except the `/oauth/*` endpoints: their JSON errors are the RFCs'
//!   `OAuthErrorBody` and their browser pages answer HTML.
//! - Security schemes: `bearer` (the user JWT from login) and `serviceKey`
//!   (the `X-Service-Key` header of the internal API).

use std::sync::LazyLock;

use actix_web::{App, HttpResponse, get, web};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use utoipa_actix_web::AppExt;

/// `/openapi.json`, at the top level.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(openapi_json);
}

/// The generated document (see the module docs).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-internal",
        description = "Users and login, the record store (sync), missions and their verdicts, \
the MCP endpoint, and the service-key-gated internal API of the runners.\n\n\
Every error is `{\"error\":{\"code\":\"snake_case\",\"message\":\"…\"}}`: malformed JSON or a wrong \
type → 400 `invalid_body` naming the field; missing or wrong key or token → 401; unknown \
resource → 404 `not_found`; conflicts and stale leases → 409 (`conflict`, `email_taken`, \
`lease_lost`); a batch over its limit → 413 `payload_too_large`; rule violations → 422 \
`validation_failed`; database unavailable → 503 `service_unavailable` with `Retry-After`."
    ),
    components(schemas(types::ApiError, types::ApiErrorBody, crate::oauth::error::OAuthErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "ops", description = "Health, metrics and this document"),
        (name = "auth", description = "Registration, login and the token keys"),
        (name = "sync", description = "The record store for user clients"),
        (name = "missions", description = "The user's verdicts on proposed mission steps"),
        (name = "mcp", description = "The app's tools for agents over MCP"),
        (name = "oauth", description = "OAuth 2.1 authorization server of `/mcp` (RFC 8414, 7591, 7636, 8707, 7009) and connected apps"),
        (name = "tokens", description = "Personal access tokens for `/mcp`"),
        (name = "internal-personas", description = "Persona catalogue, leases and audit rows (persona-runner)"),
        (name = "internal-runs", description = "Persona run records with transcripts (persona-runner, operators)"),
        (name = "internal-reports", description = "Ratings, failures and tokens over the runs (operators, the console)"),
        (name = "internal-missions", description = "Mission leases and write-back (mission-runner)"),
    ),
)]
pub struct ApiDoc;

/// Adds the two security schemes the operations refer to by name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An EdDSA access token from `/api/v1/auth/login` or `/register`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "serviceKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Service-Key",
                "The shared service key of the runners (`MANA_SERVICE_KEY`)",
            ))),
        );
    }
}

/// Built once from the route table: the document is a pure function of the code.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
    let (_, document) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        // `/mcp` is served by rmcp; the document needs only its annotation.
        .configure(|cfg| crate::routes::table(cfg, web::scope("")))
        .split_for_parts();
    document
});

/// The document as served.
/// Every path template of the document (`/api/v1/missions/{id}/…`), for naming
/// path parameters in errors.
pub fn path_templates() -> Vec<String> {
    document().paths.paths.keys().cloned().collect()
}

/// The document as served.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    &DOCUMENT
}

/// `GET /openapi.json`.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", body = serde_json::Value),
    ),
)]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
