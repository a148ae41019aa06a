//! The connected-apps page (`/oauth/connections`): a user signs in and
//! disconnects OAuth clients, without JavaScript.
//!
//! Rules:
//! - The session is a login JWT in an `HttpOnly`, `SameSite=Strict` cookie
//!   scoped to `/oauth`, living as long as the token (`jwt.access_ttl_secs`).
//! - Every POST checks the CSRF double-submit token first; the sign-in then
//!   keeps the failure limit every password form shares
//!   (`web::sign_in_limit`: 429 `rate_limited`).
//! - The list and the disconnect are the JSON API's functions
//!   (`routes::oauth_grants`), so both paths keep one rule.

use actix_web::{HttpRequest, HttpResponse, get, http::StatusCode, post, web};
use serde::Deserialize;
use uuid::Uuid;

use super::page;
use crate::{
    auth::AuthUser,
    db::users,
    error::AppError,
    routes::oauth_grants::{disconnect, grants_of},
    state::AppState,
    web::sign_in_limit::SignInAttempt,
};

#[derive(Debug, Default, Deserialize)]
struct SignInForm {
    csrf_token: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct CsrfForm {
    csrf_token: Option<String>,
}

fn session_user(req: &HttpRequest, state: &AppState) -> Option<AuthUser> {
    let token = page::cookie(req, page::SESSION_COOKIE)?;
    let claims = state.keys.verify(token, state.clock.now()).ok()?;
    (claims.kind == "human").then_some(AuthUser {
        id: claims.sub,
        email: claims.email,
        kind: claims.kind,
    })
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("location", location))
        .insert_header(("cache-control", "no-store"))
        .finish()
}

fn with_cookie(mut resp: HttpResponse, cookie: &str) -> HttpResponse {
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(cookie) {
        resp.headers_mut()
            .append(actix_web::http::header::SET_COOKIE, v);
    }
    resp
}

fn server_error(e: &AppError) -> HttpResponse {
    // The AppError mapping logs the cause once.
    let status = actix_web::ResponseError::error_response(e).status();
    page::error_page(status, "Something went wrong", "Try again in a moment.")
}

/// `GET /oauth/connections`: the list (signed in) or the sign-in form.
#[utoipa::path(
    tag = "oauth",
    responses(
        (status = 200, description = "Connected apps with a disconnect button each, or the sign-in form (HTML)", content_type = "text/html", body = String),
    ),
)]
#[get("/oauth/connections")]
pub async fn connections_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (csrf, new_cookie) = match page::csrf_token(&req) {
        Ok(t) => t,
        Err(e) => return server_error(&e),
    };
    let resp = match session_user(&req, &state) {
        Some(user) => match grants_of(&state, user.id).await {
            Ok(grants) => {
                let rows: Vec<page::ConnectionRow> = grants
                    .into_iter()
                    .map(|g| page::ConnectionRow {
                        id: g.id,
                        client_name: g.client_name,
                        scope: g.scope,
                        created_at: g.created_at,
                        last_used_at: g.last_used_at,
                    })
                    .collect();
                page::respond(
                    StatusCode::OK,
                    page::connections_list(&user.email, &rows, &csrf),
                )
            }
            Err(e) => return server_error(&e),
        },
        None => page::respond(StatusCode::OK, page::connections_sign_in(&csrf, None)),
    };
    if new_cookie {
        with_cookie(
            resp,
            &page::set_cookie(&req, page::CSRF_COOKIE, &csrf, 3600),
        )
    } else {
        resp
    }
}

/// `POST /oauth/connections/sign-in`.
#[utoipa::path(
    tag = "oauth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf_token`, `email`, `password`"),
    responses(
        (status = 303, description = "Signed in (session cookie set); to `/oauth/connections`"),
        (status = 401, description = "Wrong email or password: the form again (HTML)", content_type = "text/html", body = String),
        (status = 403, description = "CSRF check failed, or not a human account (HTML)", content_type = "text/html", body = String),
        (status = 429, description = "Too many failed sign-ins from this address or for this email (`rate_limited`, `Retry-After`; the console's limit)", content_type = "text/html", body = String),
    ),
)]
#[post("/oauth/connections/sign-in")]
pub async fn connections_sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let form: SignInForm = match page::form_or_page(&body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    if !page::csrf_ok(&req, form.csrf_token.as_deref()) {
        return page::error_page(
            StatusCode::FORBIDDEN,
            "Please try again",
            "The form expired or did not come from this site. Reload the page and try again.",
        );
    }
    let csrf = form.csrf_token.unwrap_or_default();
    let email = form.email.unwrap_or_default();
    let attempt = SignInAttempt::new(&req, &state, &email);
    let result: Result<Result<Option<users::User>, u64>, AppError> = async {
        let user = {
            let mut conn = state.pool.get().await?;
            if let Some(retry_after) = attempt.refused(&mut conn).await? {
                return Ok(Err(retry_after));
            }
            users::find_by_email(&mut conn, email.trim()).await?
        };
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let ok = state
            .hasher
            .verify(form.password.unwrap_or_default(), stored)
            .await?;
        let mut conn = state.pool.get().await?;
        if ok && user.is_some() {
            attempt.succeeded(&mut conn).await?;
        } else {
            tracing::info!(client.ip = %attempt.ip, "oauth connections sign-in failed: wrong email or password");
            attempt.failed(&mut conn).await?;
        }
        Ok(Ok(user.filter(|_| ok)))
    }
    .await;
    let result = match result {
        Ok(Err(retry_after)) => return page::rate_limited(retry_after),
        Ok(Ok(user)) => Ok(user),
        Err(e) => Err(e),
    };
    match result {
        Ok(Some(user)) if user.kind == "human" => {
            match state
                .keys
                .issue(user.id, &user.email, &user.kind, state.clock.now())
            {
                Ok(token) => {
                    let max_age = i64::try_from(state.keys.ttl_secs()).unwrap_or(900);
                    with_cookie(
                        see_other("/oauth/connections"),
                        &page::set_cookie(&req, page::SESSION_COOKIE, &token, max_age),
                    )
                }
                Err(e) => server_error(&e),
            }
        }
        Ok(Some(_)) => page::respond(
            StatusCode::FORBIDDEN,
            page::connections_sign_in(&csrf, Some("This account cannot connect apps.")),
        ),
        Ok(None) => page::respond(
            StatusCode::UNAUTHORIZED,
            page::connections_sign_in(&csrf, Some("Wrong email or password.")),
        ),
        Err(e) => server_error(&e),
    }
}

/// `POST /oauth/connections/{id}/disconnect`.
#[utoipa::path(
    tag = "oauth",
    params(("id" = Uuid, Path, description = "The grant's id")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf_token`"),
    responses(
        (status = 303, description = "Disconnected (or already gone); back to `/oauth/connections`"),
        (status = 403, description = "CSRF check failed or not signed in (HTML)", content_type = "text/html", body = String),
    ),
)]
#[post("/oauth/connections/{id}/disconnect")]
pub async fn connections_disconnect(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let form: CsrfForm = match page::form_or_page(&body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    if !page::csrf_ok(&req, form.csrf_token.as_deref()) {
        return page::error_page(
            StatusCode::FORBIDDEN,
            "Please try again",
            "The form expired or did not come from this site. Reload the page and try again.",
        );
    }
    let Some(user) = session_user(&req, &state) else {
        return see_other("/oauth/connections");
    };
    let Ok(id) = id.parse::<Uuid>() else {
        return see_other("/oauth/connections");
    };
    match disconnect(&state, user.id, id).await {
        Ok(_) => see_other("/oauth/connections"),
        Err(e) => server_error(&e),
    }
}
