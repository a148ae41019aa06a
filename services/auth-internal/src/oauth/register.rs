//! RFC 7591 dynamic client registration (public clients).
//!
//! Rules:
//! - Redirect URIs: 1–10, absolute, no fragment, no user info; `https`, or
//!   `http` on a loopback host (`127.0.0.1`, `[::1]`, `localhost`) with any
//!   port (RFC 8252 §7.3). Anything else is 400 `invalid_redirect_uri`.
//! - Other metadata we cannot honour is 400 `invalid_client_metadata`;
//!   `token_endpoint_auth_method` `client_secret_post`/`client_secret_basic`
//!   is replaced by `none` (RFC 7591 §3.2.1 lets the server substitute), and
//!   the answer says so.
//! - At most `oauth.registrations_per_ip_per_hour` registrations per peer
//!   address per hour (counted in the database, so every replica agrees;
//!   count and insert in one transaction under a per-address advisory lock,
//!   so concurrent registrations never overshoot); more is 429 with
//!   `Retry-After`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::Duration;
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{SCOPE_MCP, error::OAuthError, valid_scope};
use crate::{db::oauth as db, state::AppState};

/// The registration request (only the fields we read; others are ignored, as
/// RFC 7591 §2 requires).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegistrationRequest {
    pub redirect_uris: Option<Vec<String>>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub scope: Option<String>,
}

/// RFC 7591 §3.2.1 client information.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationResponse {
    pub client_id: String,
    pub client_id_issued_at: i64,
    pub client_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<&'static str>,
    pub response_types: Vec<&'static str>,
    /// Always `none`: public client, PKCE instead of a secret.
    pub token_endpoint_auth_method: &'static str,
    pub scope: &'static str,
}

/// Whether a redirect URI may be registered (see the module rules).
pub fn check_redirect_uri(raw: &str) -> Result<(), String> {
    if raw.len() > 2000 {
        return Err("a redirect URI is longer than 2000 characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("`{raw}` is not an absolute URL: {e}"))?;
    if url.fragment().is_some() {
        return Err(format!("`{raw}` has a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{raw}` carries user info"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Domain("localhost")) => Ok(()),
            _ => Err(format!(
                "`{raw}`: plain http is allowed only on a loopback host (127.0.0.1, [::1], localhost)"
            )),
        },
        other => Err(format!(
            "`{raw}`: scheme `{other}` is not allowed (https, or http on loopback)"
        )),
    }
}

fn validate(
    body: &RegistrationRequest,
) -> Result<(Vec<String>, String, Option<String>), OAuthError> {
    let uris = body
        .redirect_uris
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| OAuthError::InvalidRedirectUri("`redirect_uris` is required".into()))?;
    if uris.len() > 10 {
        return Err(OAuthError::InvalidRedirectUri(
            "at most 10 `redirect_uris`".into(),
        ));
    }
    for uri in &uris {
        check_redirect_uri(uri).map_err(OAuthError::InvalidRedirectUri)?;
    }
    if let Some(types) = &body.grant_types
        && let Some(bad) = types
            .iter()
            .find(|t| !matches!(t.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(OAuthError::InvalidClientMetadata(format!(
            "grant type `{bad}` is not supported (authorization_code, refresh_token)"
        )));
    }
    if let Some(types) = &body.response_types
        && let Some(bad) = types.iter().find(|t| t.as_str() != "code")
    {
        return Err(OAuthError::InvalidClientMetadata(format!(
            "response type `{bad}` is not supported (code)"
        )));
    }
    if let Some(method) = &body.token_endpoint_auth_method
        && !matches!(
            method.as_str(),
            "none" | "client_secret_post" | "client_secret_basic"
        )
    {
        return Err(OAuthError::InvalidClientMetadata(format!(
            "token_endpoint_auth_method `{method}` is not supported (none)"
        )));
    }
    if let Some(scope) = &body.scope
        && !scope.trim().is_empty()
        && !valid_scope(scope)
    {
        return Err(OAuthError::InvalidClientMetadata(format!(
            "scope `{scope}` is not offered (mcp)"
        )));
    }
    let name = body
        .client_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("Unnamed MCP client");
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(OAuthError::InvalidClientMetadata(
            "`client_name` must be at most 200 printable characters".into(),
        ));
    }
    let client_uri = match body.client_uri.as_deref().filter(|u| !u.is_empty()) {
        None => None,
        Some(u) => {
            let parsed = url::Url::parse(u).map_err(|e| {
                OAuthError::InvalidClientMetadata(format!("`client_uri` is not a URL: {e}"))
            })?;
            if !matches!(parsed.scheme(), "https" | "http") || u.len() > 2000 {
                return Err(OAuthError::InvalidClientMetadata(
                    "`client_uri` must be an http(s) URL".into(),
                ));
            }
            Some(u.to_owned())
        }
    };
    Ok((uris, name.to_owned(), client_uri))
}

/// `POST /oauth/register` (RFC 7591).
#[utoipa::path(
    tag = "oauth",
    request_body = RegistrationRequest,
    responses(
        (status = 201, description = "Registered; the client's information (public client, no secret)", body = RegistrationResponse),
        (status = 400, description = "RFC 7591 error: `invalid_redirect_uri` or `invalid_client_metadata` (`{error, error_description}`)", body = super::error::OAuthErrorBody),
        (status = 429, description = "Too many registrations from this address (`rate_limited`, `Retry-After`)", body = super::error::OAuthErrorBody),
    ),
)]
#[post("/oauth/register")]
pub async fn register_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    if let Some(field) = service_kit::storable::find_nul_in_json(&body) {
        let message = format!("`{field}` {}", service_kit::storable::NUL_MESSAGE);
        return Err(if field.starts_with("redirect_uris") {
            OAuthError::InvalidRedirectUri(message)
        } else {
            OAuthError::InvalidClientMetadata(message)
        });
    }
    let body: RegistrationRequest = serde_json::from_slice(&body).map_err(|e| {
        OAuthError::InvalidClientMetadata(format!("the body is not valid client metadata: {e}"))
    })?;
    let (redirect_uris, client_name, client_uri) = validate(&body)?;
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let now = state.clock.now();
    let limit = i64::from(state.settings.oauth.registrations_per_ip_per_hour);
    let client = db::Client {
        id: format!("mcp_{}", uuid::Uuid::new_v4().simple()),
        client_name,
        redirect_uris,
        client_uri,
        registered_ip: ip,
        created_at: now,
    };
    let mut conn = state.pool.get().await?;
    // Count and insert under the address's lock: concurrent registrations
    // queue up behind it, so the limit holds exactly.
    conn.transaction::<_, OAuthError, _>(async |conn| {
        db::lock_registrations_of(conn, &client.registered_ip).await?;
        let recent =
            db::count_registrations_since(conn, &client.registered_ip, now - Duration::hours(1))
                .await?;
        if recent >= limit {
            tracing::warn!(client.ip = %client.registered_ip, registrations = recent, "oauth: registration rate limit hit");
            return Err(OAuthError::RateLimited {
                retry_after_secs: 3600,
            });
        }
        db::insert_client(conn, &client).await?;
        Ok(())
    })
    .await?;
    tracing::info!(client.id = %client.id, client.name = %client.client_name, "oauth: client registered");
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(RegistrationResponse {
            client_id: client.id,
            client_id_issued_at: now.timestamp(),
            client_name: client.client_name,
            client_uri: client.client_uri,
            redirect_uris: client.redirect_uris,
            grant_types: vec!["authorization_code", "refresh_token"],
            response_types: vec!["code"],
            token_endpoint_auth_method: "none",
            scope: SCOPE_MCP,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_follow_rfc_8252() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:33418/callback",
            "http://127.0.0.1/callback",
            "http://[::1]:8080/cb",
            "http://localhost:6274/oauth/callback",
            "https://app.example/cb?x=1",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://evil.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "https://app.example/cb#frag",
            "https://user:pw@app.example/cb",
            "javascript:alert(1)",
            "cb",
            "ftp://127.0.0.1/cb",
            "http://10.0.0.1/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
