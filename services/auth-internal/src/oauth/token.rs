//! `POST /oauth/token` (RFC 6749 §4.1.3, §6; OAuth 2.1) and `POST /oauth/revoke`
//! (RFC 7009).
//!
//! Rules:
//! - Bodies are `application/x-www-form-urlencoded`; a repeated or malformed
//!   parameter is `invalid_request`. Public clients name themselves with
//!   `client_id` in the body, or in `Authorization: Basic` (any secret there
//!   is ignored); PKCE and refresh rotation protect them, not a secret.
//! - `authorization_code`: the code is locked, must be unused, unexpired, of
//!   this client and this `redirect_uri`, and `code_verifier` must prove its
//!   S256 challenge; any failure is `invalid_grant`. A second use of a code
//!   revokes the grant the first use created (RFC 6749 §4.1.2).
//! - `refresh_token`: rotation on every use. A rotated token presented again
//!   revokes the whole grant (committed before the error is answered).
//! - A `resource` on the token request must name this server's MCP endpoint
//!   and equal the grant's (RFC 8707 §2.2), else `invalid_target` (the code
//!   or refresh token stays usable); none means the grant's. `scope` may only
//!   narrow to what was granted (always `mcp`).
//! - Revocation answers 200 for any token, known or not (RFC 7009 §2.2);
//!   a refresh token or an access token revokes its grant.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    REFRESH_PREFIX, error::OAuthError, is_our_resource, random_secret, secret_digest, valid_scope,
    verify_pkce,
};
use crate::{
    auth::jwt::Claims,
    db::{oauth as db, users},
    state::AppState,
};

/// Every parameter either grant may carry.
#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
    // Accepted and ignored: public clients have no secret.
    #[serde(rename = "client_secret")]
    _client_secret: Option<String>,
}

/// RFC 6749 §5.1 token response.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthTokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
}

fn parse_form<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, OAuthError> {
    let ct = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    service_kit::storable::parse_form(body).map_err(|e| OAuthError::InvalidRequest(e.to_string()))
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest(format!("`{name}` is required")))
}

/// The client id of `Authorization: Basic base64(urlencoded id ":" secret)` (RFC 6749 §2.3.1).
fn basic_client_id(req: &HttpRequest) -> Option<String> {
    use base64::Engine;
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let id = text.split_once(':').map_or(text.as_str(), |(id, _)| id);
    let id: String = url::form_urlencoded::parse(format!("id={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    (!id.is_empty()).then_some(id)
}

/// What a successful exchange yields: the grant and its user.
struct Issued {
    grant: db::Grant,
    refresh_token: String,
}

/// `POST /oauth/token`.
#[utoipa::path(
    tag = "oauth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`grant_type=authorization_code` with `code`, `redirect_uri`, `client_id`, `code_verifier` (and optional `resource`); or `grant_type=refresh_token` with `refresh_token`, `client_id` (optional `scope`, `resource`)"),
    responses(
        (status = 200, description = "Tokens: an EdDSA JWT access token (`aud` = the MCP resource) and a rotated opaque refresh token", body = OAuthTokenResponse),
        (status = 400, description = "RFC 6749 §5.2: `invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`, `invalid_target`", body = super::error::OAuthErrorBody),
        (status = 401, description = "Unknown client (`invalid_client`)", body = super::error::OAuthErrorBody),
    ),
)]
#[post("/oauth/token")]
pub async fn exchange_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let form: TokenForm = parse_form(&req, &body)?;
    // A client that registered as `client_secret_basic` (we answered `none`)
    // may still name itself in `Authorization: Basic`; the secret is ignored.
    let basic = basic_client_id(&req);
    if basic.as_deref().is_some_and(service_kit::storable::has_nul) {
        return Err(OAuthError::InvalidRequest(format!(
            "`client_id` of Authorization: Basic {}",
            service_kit::storable::NUL_MESSAGE
        )));
    }
    let client_id = match (
        form.client_id.as_deref().filter(|c| !c.is_empty()),
        basic.as_deref(),
    ) {
        (Some(form_id), Some(header_id)) if form_id != header_id => {
            return Err(OAuthError::InvalidRequest(
                "client_id differs between the body and the Authorization header".into(),
            ));
        }
        (Some(id), _) | (None, Some(id)) => id.to_owned(),
        (None, None) => return Err(OAuthError::InvalidRequest("`client_id` is required".into())),
    };
    let client_id = client_id.as_str();
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    if db::find_client(&mut conn, client_id).await?.is_none() {
        return Err(OAuthError::InvalidClient("unknown client_id".into()));
    }
    let ours = super::mcp_resource(&req, &state);
    let resource = form.resource.as_deref().filter(|r| !r.is_empty());
    if let Some(r) = resource
        && !is_our_resource(r, &ours)
    {
        return Err(OAuthError::InvalidTarget(
            "resource must be this server's MCP endpoint".into(),
        ));
    }
    if let Some(scope) = form.scope.as_deref().filter(|s| !s.is_empty())
        && !valid_scope(scope)
    {
        return Err(OAuthError::InvalidScope("the only scope is `mcp`".into()));
    }
    let refresh_ttl =
        Duration::days(i64::try_from(state.settings.oauth.refresh_ttl_days).unwrap_or(30));
    let issued = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let code = required(&form.code, "code")?;
            let redirect_uri = required(&form.redirect_uri, "redirect_uri")?;
            let verifier = required(&form.code_verifier, "code_verifier")?;
            exchange_code(
                &mut conn,
                &Presented {
                    client_id,
                    resource,
                    now,
                    refresh_ttl,
                },
                code,
                redirect_uri,
                verifier,
            )
            .await?
        }
        Some("refresh_token") => {
            let token = required(&form.refresh_token, "refresh_token")?;
            exchange_refresh(
                &mut conn,
                &Presented {
                    client_id,
                    resource,
                    now,
                    refresh_ttl,
                },
                token,
            )
            .await?
        }
        None | Some("") => {
            return Err(OAuthError::InvalidRequest(
                "`grant_type` is required".into(),
            ));
        }
        Some(other) => {
            return Err(OAuthError::UnsupportedGrantType(format!(
                "grant_type `{other}` is not supported (authorization_code, refresh_token)"
            )));
        }
    };
    let user = users::find_by_id(&mut conn, issued.grant.user_id)
        .await?
        .ok_or_else(|| OAuthError::InvalidGrant("the account no longer exists".into()))?;
    let ttl = state.settings.oauth.access_ttl_secs;
    let claims = Claims {
        sub: user.id,
        aud: issued.grant.resource.clone(),
        iss: state.keys.issuer().to_owned(),
        iat: now.timestamp(),
        exp: now.timestamp() + i64::try_from(ttl).unwrap_or(600),
        email: user.email.clone(),
        kind: user.kind.clone(),
        gid: Some(issued.grant.id),
        jti: Some(Uuid::new_v4().to_string()),
        scope: Some(issued.grant.scope.clone()),
    };
    let access_token = state.keys.sign(&claims)?;
    tracing::info!(user.id = %user.id, client.id = %client_id, grant.id = %issued.grant.id, grant_type = form.grant_type.as_deref().unwrap_or(""), "oauth: tokens issued");
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .insert_header(("pragma", "no-cache"))
        .json(OAuthTokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            refresh_token: issued.refresh_token,
            scope: issued.grant.scope,
        }))
}

/// The outcome of a locked exchange, decided inside the transaction; errors
/// that must still commit (replay revocations) are returned as values.
enum Exchange {
    Ok(Issued),
    Refused(OAuthError),
}

/// What every token request brings besides its grant's secret.
struct Presented<'a> {
    client_id: &'a str,
    /// The request's `resource`, if it named one (RFC 8707 §2.2).
    resource: Option<&'a str>,
    now: DateTime<Utc>,
    refresh_ttl: Duration,
}

impl Presented<'_> {
    /// A `resource` that names another audience than the grant's (the host the
    /// client reached us by may have changed since the authorization).
    fn wrong_target(&self, granted: &str) -> Option<OAuthError> {
        self.resource
            .filter(|r| !is_our_resource(r, granted))
            .map(|_| {
                OAuthError::InvalidTarget(format!(
                    "resource must be the one this grant was authorized for ({granted})"
                ))
            })
    }
}

async fn new_refresh(
    conn: &mut diesel_async::AsyncPgConnection,
    grant_id: Uuid,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<String, OAuthError> {
    let token = random_secret(REFRESH_PREFIX)?;
    db::insert_refresh(
        conn,
        &db::RefreshToken {
            token_hash: secret_digest(&token),
            grant_id,
            created_at: now,
            expires_at: now + ttl,
            rotated_at: None,
        },
    )
    .await?;
    Ok(token)
}

async fn exchange_code(
    conn: &mut diesel_async::AsyncPgConnection,
    p: &Presented<'_>,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Issued, OAuthError> {
    let hash = secret_digest(code);
    let (client_id, now, refresh_ttl) = (p.client_id.to_owned(), p.now, p.refresh_ttl);
    let redirect_uri = redirect_uri.to_owned();
    let verifier = verifier.to_owned();
    let outcome = conn
        .transaction::<_, OAuthError, _>(async |conn| {
            let Some(row) = db::lock_code(conn, &hash).await? else {
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "unknown authorization code".into(),
                )));
            };
            if row.used_at.is_some() {
                if let Some(grant) = row.grant_id {
                    db::revoke_grant(conn, grant, now, "code_reuse").await?;
                    tracing::warn!(grant.id = %grant, client.id = %row.client_id, "oauth: authorization code replayed; grant revoked");
                }
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "the authorization code was already used".into(),
                )));
            }
            if row.expires_at <= now {
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "the authorization code expired".into(),
                )));
            }
            if row.client_id != client_id {
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "the authorization code was issued to another client".into(),
                )));
            }
            if row.redirect_uri != redirect_uri {
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "redirect_uri does not match the authorization request".into(),
                )));
            }
            if let Some(e) = p.wrong_target(&row.resource) {
                return Ok(Exchange::Refused(e));
            }
            if !verify_pkce(&verifier, &row.code_challenge) {
                // A wrong verifier burns the code: it was intercepted or the
                // client is broken; either way it must not be tried again.
                db::mark_code_used(conn, &hash, now, None).await?;
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "code_verifier does not match the code_challenge".into(),
                )));
            }
            let grant = db::Grant {
                id: Uuid::new_v4(),
                user_id: row.user_id,
                client_id: row.client_id.clone(),
                scope: row.scope.clone(),
                resource: row.resource.clone(),
                created_at: now,
                last_used_at: None,
                revoked_at: None,
                revoked_reason: None,
            };
            db::insert_grant(conn, &grant).await?;
            db::mark_code_used(conn, &hash, now, Some(grant.id)).await?;
            let refresh_token = new_refresh(conn, grant.id, now, refresh_ttl).await?;
            Ok(Exchange::Ok(Issued {
                grant,
                refresh_token,
            }))
        })
        .await?;
    match outcome {
        Exchange::Ok(issued) => Ok(issued),
        Exchange::Refused(e) => Err(e),
    }
}

async fn exchange_refresh(
    conn: &mut diesel_async::AsyncPgConnection,
    p: &Presented<'_>,
    token: &str,
) -> Result<Issued, OAuthError> {
    let hash = secret_digest(token);
    let (client_id, now, refresh_ttl) = (p.client_id.to_owned(), p.now, p.refresh_ttl);
    let outcome = conn
        .transaction::<_, OAuthError, _>(async |conn| {
            let Some((row, grant)) = db::lock_refresh(conn, &hash).await? else {
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "unknown or revoked refresh token".into(),
                )));
            };
            if grant.client_id != client_id {
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "the refresh token was issued to another client".into(),
                )));
            }
            if grant.revoked_at.is_some() {
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "the grant was revoked".into(),
                )));
            }
            if row.rotated_at.is_some() {
                db::revoke_grant(conn, grant.id, now, "refresh_token_reuse").await?;
                tracing::warn!(grant.id = %grant.id, user.id = %grant.user_id, client.id = %grant.client_id, "oauth: rotated refresh token replayed; grant revoked");
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "the refresh token was already used; the grant is revoked".into(),
                )));
            }
            if row.expires_at <= now {
                return Ok(Exchange::Refused(OAuthError::InvalidGrant(
                    "the refresh token expired".into(),
                )));
            }
            if let Some(e) = p.wrong_target(&grant.resource) {
                return Ok(Exchange::Refused(e));
            }
            db::mark_refresh_rotated(conn, &hash, grant.id, now).await?;
            db::touch_grant(conn, grant.id, now).await?;
            let refresh_token = new_refresh(conn, grant.id, now, refresh_ttl).await?;
            Ok(Exchange::Ok(Issued {
                grant,
                refresh_token,
            }))
        })
        .await?;
    match outcome {
        Exchange::Ok(issued) => Ok(issued),
        Exchange::Refused(e) => Err(e),
    }
}

#[derive(Debug, Default, Deserialize)]
struct RevokeForm {
    token: Option<String>,
    token_type_hint: Option<String>,
    client_id: Option<String>,
}

/// `POST /oauth/revoke` (RFC 7009).
#[utoipa::path(
    tag = "oauth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`token` (a refresh or access token), optional `token_type_hint`, `client_id`"),
    responses(
        (status = 200, description = "Revoked, or the token was unknown (RFC 7009 §2.2): the grant and all its tokens stop working"),
        (status = 400, description = "`invalid_request` (no `token`, not a form)", body = super::error::OAuthErrorBody),
    ),
)]
#[post("/oauth/revoke")]
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let form: RevokeForm = parse_form(&req, &body)?;
    let token = required(&form.token, "token")?;
    let _ = form.token_type_hint;
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    let grant = if token.starts_with(REFRESH_PREFIX) {
        db::grant_of_refresh(&mut conn, &secret_digest(token)).await?
    } else {
        let ours = super::mcp_resource(&req, &state);
        match state.keys.verify_for(token, now, &[ours.as_str()]) {
            Ok(Claims { gid: Some(gid), .. }) => db::find_grant(&mut conn, gid).await?,
            _ => None,
        }
    };
    if let Some(grant) = grant {
        // A client may revoke only its own tokens; others are ignored silently.
        let own = form
            .client_id
            .as_deref()
            .is_none_or(|c| c == grant.client_id);
        if own && db::revoke_grant(&mut conn, grant.id, now, "revoked").await? {
            tracing::info!(grant.id = %grant.id, user.id = %grant.user_id, "oauth: grant revoked (RFC 7009)");
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .finish())
}
