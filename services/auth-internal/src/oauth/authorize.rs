//! `GET/POST /oauth/authorize`: the authorization endpoint (sign-in + consent).
//!
//! Rules:
//! - Until the client and its redirect URI are known to be valid (registered
//!   client, exact redirect match), errors are an HTML page and never a
//!   redirect (RFC 6749 §4.1.2.1: no open redirector).
//! - After that, errors go back to the client as `error=` query parameters
//!   with `state` and `iss` (RFC 9207).
//! - PKCE `S256` is required; `plain` or no challenge is `invalid_request`.
//!   `resource` (RFC 8707) defaults to, and must equal, our MCP resource;
//!   another is `invalid_target`. `scope` defaults to `mcp`.
//! - The POST re-validates the whole request (the hidden fields are client
//!   input too), checks CSRF, then the password the way login does (the same
//!   time for an unknown email), within the failure limit every password form
//!   shares (`web::sign_in_limit`: 429 `rate_limited` at the limit). Only
//!   `human` users may approve.
//! - A code is 256 random bits, stored hashed, single use, expiring after
//!   `oauth.code_ttl_secs`.

use actix_web::{HttpRequest, HttpResponse, get, http::StatusCode, post, web};
use chrono::Duration;
use serde::Deserialize;

use super::{
    SCOPE_MCP, is_our_resource, page, random_secret, secret_digest, valid_challenge, valid_scope,
};
use crate::{
    db::{oauth as db, users},
    error::AppError,
    state::AppState,
    web::sign_in_limit::SignInAttempt,
};

/// The authorization request (query of the GET, hidden fields of the POST).
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// The submitted consent form.
#[derive(Debug, Default, Deserialize)]
pub struct ConsentForm {
    #[serde(flatten)]
    pub params: AuthorizeParams,
    pub csrf_token: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub decision: Option<String>,
}

/// A request that passed every check.
struct Valid {
    client: db::Client,
    redirect_uri: String,
    challenge: String,
    state: Option<String>,
    scope: String,
    resource: String,
    issuer: String,
}

impl Valid {
    fn hidden(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("response_type", "code".to_owned()),
            ("client_id", self.client.id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("code_challenge", self.challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
            ("scope", self.scope.clone()),
            ("resource", self.resource.clone()),
        ];
        if let Some(state) = &self.state {
            h.push(("state", state.clone()));
        }
        h
    }
}

/// Why a request cannot proceed.
enum Failure {
    /// Before the redirect URI is trusted: an HTML page.
    Page(StatusCode, String),
    /// After: back to the client.
    Redirect(HttpResponse),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        let status = actix_web::ResponseError::status_code(&e);
        if status.is_server_error() {
            // Logged once by the AppError mapping.
            let _ = actix_web::ResponseError::error_response(&e);
        }
        Failure::Page(
            status,
            if status == StatusCode::SERVICE_UNAVAILABLE {
                "The service is temporarily unavailable; try again in a moment.".into()
            } else {
                "Something went wrong on our side; try again.".into()
            },
        )
    }
}

/// `redirect_uri?{params}&state=…&iss=…`, a 302 (GET) or 303 (POST).
fn redirect_to(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
    status: StatusCode,
) -> HttpResponse {
    let location = match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
                if let Some(state) = state {
                    q.append_pair("state", state);
                }
                q.append_pair("iss", issuer);
            }
            url.to_string()
        }
        // Registered URIs were parsed at registration, so this cannot happen;
        // still never panic.
        Err(_) => {
            return page::error_page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect",
                "The redirect URI is invalid.",
            );
        }
    };
    HttpResponse::build(status)
        .insert_header(("location", location))
        .insert_header(("cache-control", "no-store"))
        .finish()
}

fn error_redirect(
    redirect_uri: &str,
    code: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
    status: StatusCode,
) -> Failure {
    Failure::Redirect(redirect_to(
        redirect_uri,
        &[("error", code), ("error_description", description)],
        state,
        issuer,
        status,
    ))
}

async fn validate(
    req: &HttpRequest,
    state: &AppState,
    p: &AuthorizeParams,
    redirect_status: StatusCode,
) -> Result<Valid, Failure> {
    let client_id = p
        .client_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Failure::Page(
                StatusCode::BAD_REQUEST,
                "The request names no client (`client_id` is missing).".into(),
            )
        })?;
    let client = {
        let mut conn = state.pool.get().await.map_err(AppError::from)?;
        db::find_client(&mut conn, client_id)
            .await
            .map_err(AppError::from)?
    }
    .ok_or_else(|| {
        Failure::Page(
            StatusCode::BAD_REQUEST,
            "This app is not registered with Mana (unknown `client_id`).".into(),
        )
    })?;
    let redirect_uri = match p.redirect_uri.as_deref() {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        Some(_) => {
            return Err(Failure::Page(
                StatusCode::BAD_REQUEST,
                "The redirect URI is not one this app registered.".into(),
            ));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(Failure::Page(
                StatusCode::BAD_REQUEST,
                "`redirect_uri` is required for an app with several redirect URIs.".into(),
            ));
        }
    };
    let issuer = super::issuer(req, state);
    let st = p.state.as_deref();
    let fail = |code: &str, msg: &str| {
        error_redirect(&redirect_uri, code, msg, st, &issuer, redirect_status)
    };
    if p.response_type.as_deref() != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "response_type must be `code`",
        ));
    }
    let challenge = match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (None | Some(""), _) => {
            return Err(fail(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ));
        }
        (Some(_), Some("S256")) => p.code_challenge.clone().unwrap_or_default(),
        (Some(_), Some("plain") | None) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not allowed)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
    };
    if !valid_challenge(&challenge) {
        return Err(fail(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    let scope = match p.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => SCOPE_MCP.to_owned(),
        Some(s) if valid_scope(s) => SCOPE_MCP.to_owned(),
        Some(_) => return Err(fail("invalid_scope", "the only scope is `mcp`")),
    };
    let ours = super::mcp_resource(req, state);
    let resource = match p.resource.as_deref().filter(|r| !r.is_empty()) {
        None => ours,
        Some(r) if is_our_resource(r, &ours) => ours,
        Some(_) => {
            return Err(fail(
                "invalid_target",
                "resource must be this server's MCP endpoint",
            ));
        }
    };
    if p.state.as_ref().is_some_and(|s| s.len() > 1000) {
        return Err(fail(
            "invalid_request",
            "state is longer than 1000 characters",
        ));
    }
    Ok(Valid {
        client,
        redirect_uri,
        challenge,
        state: p.state.clone(),
        scope,
        resource,
        issuer,
    })
}

fn consent(
    req: &HttpRequest,
    v: &Valid,
    csrf: &str,
    new_cookie: bool,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let host = url::Url::parse(&v.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let hidden = v.hidden();
    let mut resp = page::respond_redirecting_to(
        status,
        page::consent_page(&page::ConsentView {
            client_name: &v.client.client_name,
            redirect_host: &host,
            scope: &v.scope,
            resource: &v.resource,
            hidden: &hidden,
            csrf,
            email,
            error,
        }),
        &v.redirect_uri,
    );
    if new_cookie
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&page::set_cookie(
            req,
            page::CSRF_COOKIE,
            csrf,
            3600,
        ))
    {
        resp.headers_mut()
            .append(actix_web::http::header::SET_COOKIE, value);
    }
    resp
}

fn failure_response(f: Failure) -> HttpResponse {
    match f {
        Failure::Page(status, message) => {
            page::error_page(status, "This app cannot connect", &message)
        }
        Failure::Redirect(resp) => resp,
    }
}

/// `GET /oauth/authorize`: validate the request and show sign-in + consent.
#[utoipa::path(
    tag = "oauth",
    params(
        ("response_type" = String, Query, description = "`code`"),
        ("client_id" = String, Query, description = "From `/oauth/register`"),
        ("redirect_uri" = Option<String>, Query, description = "Exactly one of the registered URIs"),
        ("code_challenge" = String, Query, description = "PKCE S256 challenge"),
        ("code_challenge_method" = String, Query, description = "`S256` (`plain` is refused)"),
        ("state" = Option<String>, Query, description = "Passed back unchanged"),
        ("scope" = Option<String>, Query, description = "`mcp` (the default)"),
        ("resource" = Option<String>, Query, description = "RFC 8707: this server's `/mcp` URL (the default)"),
    ),
    responses(
        (status = 200, description = "The sign-in and consent page (HTML)", content_type = "text/html", body = String),
        (status = 302, description = "Back to the client with `error=…` (invalid request after the redirect URI was verified)"),
        (status = 400, description = "Unknown client or unregistered redirect URI (HTML page, no redirect)", content_type = "text/html", body = String),
    ),
)]
#[get("/oauth/authorize")]
pub async fn authorize_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params: AuthorizeParams = match serde_urlencoded::from_str(req.query_string()) {
        Ok(p) => p,
        Err(e) => {
            return page::error_page(
                StatusCode::BAD_REQUEST,
                "This app cannot connect",
                &format!("The authorization request is malformed: {e}."),
            );
        }
    };
    let valid = match validate(&req, &state, &params, StatusCode::FOUND).await {
        Ok(v) => v,
        Err(f) => return failure_response(f),
    };
    let (csrf, new_cookie) = match page::csrf_token(&req) {
        Ok(t) => t,
        Err(e) => return failure_response(e.into()),
    };
    consent(&req, &valid, &csrf, new_cookie, "", None, StatusCode::OK)
}

/// `POST /oauth/authorize`: the consent form (sign in, approve or deny).
#[utoipa::path(
    tag = "oauth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "The authorization request's fields (hidden), `csrf_token`, `email`, `password`, `decision=approve|deny`"),
    responses(
        (status = 303, description = "Back to the client: `code` (and `state`, `iss`) on approval, `error=access_denied` on deny"),
        (status = 400, description = "Malformed form or invalid request (HTML page)", content_type = "text/html", body = String),
        (status = 401, description = "Wrong email or password: the form again with a message", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or the account may not connect apps (personas)", content_type = "text/html", body = String),
        (status = 429, description = "Too many failed sign-ins from this address or for this email (`rate_limited`, `Retry-After`; the console's limit)", content_type = "text/html", body = String),
    ),
)]
#[post("/oauth/authorize")]
pub async fn authorize_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let form: ConsentForm = match service_kit::storable::parse_form(&body) {
        Ok(f) => f,
        Err(e) => {
            return page::error_page(
                StatusCode::BAD_REQUEST,
                "This app cannot connect",
                &format!("The form cannot be used: {e}."),
            );
        }
    };
    let valid = match validate(&req, &state, &form.params, StatusCode::SEE_OTHER).await {
        Ok(v) => v,
        Err(f) => return failure_response(f),
    };
    if !page::csrf_ok(&req, form.csrf_token.as_deref()) {
        return page::error_page(
            StatusCode::FORBIDDEN,
            "Please try again",
            "The form expired or did not come from this site (CSRF check failed). Reload the page and try again.",
        );
    }
    let csrf = form.csrf_token.clone().unwrap_or_default();
    let email = form.email.as_deref().map(str::trim).unwrap_or("");
    match form.decision.as_deref() {
        Some("deny") => {
            tracing::info!(client.id = %valid.client.id, "oauth: authorization denied by the user");
            return redirect_to(
                &valid.redirect_uri,
                &[
                    ("error", "access_denied"),
                    ("error_description", "the user denied the request"),
                ],
                valid.state.as_deref(),
                &valid.issuer,
                StatusCode::SEE_OTHER,
            );
        }
        Some("approve") => {}
        _ => {
            return consent(
                &req,
                &valid,
                &csrf,
                false,
                email,
                Some("Choose approve or deny."),
                StatusCode::BAD_REQUEST,
            );
        }
    }
    let attempt = SignInAttempt::new(&req, &state, email);
    match sign_in_and_issue(
        &state,
        &valid,
        &attempt,
        email,
        form.password.unwrap_or_default(),
    )
    .await
    {
        Ok(Ok(code)) => redirect_to(
            &valid.redirect_uri,
            &[("code", &code)],
            valid.state.as_deref(),
            &valid.issuer,
            StatusCode::SEE_OTHER,
        ),
        Ok(Err(Refusal::Form(status, message))) => {
            consent(&req, &valid, &csrf, false, email, Some(message), status)
        }
        Ok(Err(Refusal::RateLimited(retry_after_secs))) => page::rate_limited(retry_after_secs),
        Err(e) => failure_response(e.into()),
    }
}

/// Why a sign-in issued no code.
enum Refusal {
    /// The form again, with this status and message.
    Form(StatusCode, &'static str),
    /// Too many failures: 429 after this many seconds.
    RateLimited(u64),
}

/// Check the password (as login does, within the shared failure limit) and
/// mint a code for a human user.
async fn sign_in_and_issue(
    state: &AppState,
    v: &Valid,
    attempt: &SignInAttempt,
    email: &str,
    password: String,
) -> Result<Result<String, Refusal>, AppError> {
    let user = {
        let mut conn = state.pool.get().await?;
        if let Some(retry_after) = attempt.refused(&mut conn).await? {
            return Ok(Err(Refusal::RateLimited(retry_after)));
        }
        users::find_by_email(&mut conn, email).await?
    };
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = state.hasher.verify(password, stored).await?;
    let user = match user {
        Some(u) if ok => u,
        _ => {
            tracing::info!(client.ip = %attempt.ip, client.id = %v.client.id, "oauth sign-in failed: wrong email or password");
            let mut conn = state.pool.get().await?;
            attempt.failed(&mut conn).await?;
            return Ok(Err(Refusal::Form(
                StatusCode::UNAUTHORIZED,
                "Wrong email or password.",
            )));
        }
    };
    if user.kind != "human" {
        tracing::warn!(user.id = %user.id, user.kind = %user.kind, client.id = %v.client.id, "oauth: non-human account refused");
        return Ok(Err(Refusal::Form(
            StatusCode::FORBIDDEN,
            "This account cannot connect apps (persona and system accounts never get OAuth grants).",
        )));
    }
    let code = random_secret("")?;
    let now = state.clock.now();
    let ttl = i64::try_from(state.settings.oauth.code_ttl_secs).unwrap_or(60);
    let mut conn = state.pool.get().await?;
    attempt.succeeded(&mut conn).await?;
    db::insert_code(
        &mut conn,
        &db::Code {
            code_hash: secret_digest(&code),
            client_id: v.client.id.clone(),
            user_id: user.id,
            redirect_uri: v.redirect_uri.clone(),
            code_challenge: v.challenge.clone(),
            scope: v.scope.clone(),
            resource: v.resource.clone(),
            created_at: now,
            expires_at: now + Duration::seconds(ttl),
            used_at: None,
            grant_id: None,
        },
    )
    .await?;
    tracing::info!(user.id = %user.id, client.id = %v.client.id, "oauth: authorization code issued");
    Ok(Ok(code))
}
