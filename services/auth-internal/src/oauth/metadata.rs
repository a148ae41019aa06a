//! RFC 8414 authorization-server metadata.
//!
//! Rules:
//! - Every URL is derived from the issuer, which is the service's public base
//!   URL, so the document is right behind any host name once
//!   `mcp.public_url` is set.
//! - Only what is implemented is announced: `code` with PKCE `S256`,
//!   `authorization_code` and `refresh_token`, public clients (`none`).

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::SCOPE_MCP;
use crate::state::AppState;

/// RFC 8414 metadata (snake_case, as the RFC names it).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: String,
    pub revocation_endpoint: String,
    pub scopes_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub response_modes_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// RFC 9207: the authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    pub service_documentation: String,
}

/// The document for an issuer.
pub fn document(issuer: &str) -> AuthorizationServerMetadata {
    AuthorizationServerMetadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: format!("{issuer}/oauth/authorize"),
        token_endpoint: format!("{issuer}/oauth/token"),
        registration_endpoint: format!("{issuer}/oauth/register"),
        revocation_endpoint: format!("{issuer}/oauth/revoke"),
        scopes_supported: vec![SCOPE_MCP],
        response_types_supported: vec!["code"],
        response_modes_supported: vec!["query"],
        grant_types_supported: vec!["authorization_code", "refresh_token"],
        code_challenge_methods_supported: vec!["S256"],
        token_endpoint_auth_methods_supported: vec!["none"],
        revocation_endpoint_auth_methods_supported: vec!["none"],
        authorization_response_iss_parameter_supported: true,
        service_documentation: format!("{issuer}/openapi.json"),
    }
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
#[utoipa::path(
    tag = "oauth",
    responses(
        (status = 200, description = "Metadata of the OAuth 2.1 authorization server of `/mcp`", body = AuthorizationServerMetadata),
    ),
)]
#[get("/.well-known/oauth-authorization-server")]
pub async fn authorization_server_metadata(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=300"))
        .json(document(&super::issuer(&req, &state)))
}
