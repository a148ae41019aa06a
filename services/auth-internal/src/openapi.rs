//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! Rules:
//! - The document is generated from the handlers' `#[utoipa::path]`
//!   annotations and the wire types' `ToSchema` derives; nothing is written by
//!   hand except the security schemes.
//! - Every route in [`crate::routes::ROUTES`] is listed in `paths(...)` below;
//!   `tests/api/openapi.rs` checks both directions against the running service,
//!   so a route added without its annotation (or the reverse) fails CI.
//! - Every non-2xx answer references the one envelope schema `ApiError`.
//! - Security schemes: `bearer` (the user JWT from login) and `serviceKey`
//!   (the `X-Service-Key` header of the internal API).

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{mcp, routes};

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
    paths(
        routes::health::health,
        routes::metrics::metrics,
        openapi_json,
        routes::auth::jwks,
        mcp::protected_resource_metadata,
        mcp::protected_resource_metadata_mcp,
        routes::auth::register,
        routes::auth::login,
        routes::sync::push_changes,
        routes::sync::pull_changes,
        routes::missions::approve_step,
        routes::missions::reject_step,
        routes::personas::upsert_personas,
        routes::personas::list_due_personas,
        routes::personas::claim_personas,
        routes::personas::get_persona,
        routes::personas::get_persona_ratings,
        routes::personas::list_persona_actions,
        routes::personas::record_actions,
        routes::personas::record_feedback,
        routes::personas::release_persona,
        routes::missions::claim_missions,
        routes::missions::write_iteration,
        routes::missions::release_mission,
        mcp::mcp_endpoint,
    ),
    components(schemas(types::ApiError, types::ApiErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "ops", description = "Health, metrics and this document"),
        (name = "auth", description = "Registration, login and the token keys"),
        (name = "sync", description = "The record store for user clients"),
        (name = "missions", description = "The user's verdicts on proposed mission steps"),
        (name = "mcp", description = "The app's tools for agents over MCP"),
        (name = "internal-personas", description = "Persona catalogue, leases and audit rows (persona-runner)"),
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

/// Built once: the document is a pure function of the code.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// The document as served.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    &DOCUMENT
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", body = serde_json::Value),
    ),
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
