//! Who may use the console: the operator extractor, sign-in, sign-out, and
//! the "service key or operator session" guard of the JSON report routes.
//!
//! Rules:
//! - Only users of kind `operator` get in. Valid credentials of a human or a
//!   persona, a session of such a user, or a bearer token of one → 403;
//!   no session at all → 303 to the sign-in page.
//! - Sign-in verifies the password like the API login (unknown email and
//!   wrong password take the same time and get the same answer), then issues a
//!   brand-new session id (rotation) and deletes the session the browser had.
//! - Every state-changing form is checked against the session's CSRF token
//!   ([`check_csrf`]) before anything is read from or written to the database.
//! - `next` after sign-in is only ever a path inside `/console`.
//! - Failed sign-ins are limited per client address and per email by the
//!   limit every password form shares ([`crate::web::sign_in_limit`]): at the
//!   limit the form answers 429 `rate_limited` with `Retry-After` before any
//!   password is checked.

use std::{collections::HashMap, future::Future, pin::Pin};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest, HttpResponse,
    body::{EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    middleware::Next,
    web,
};
use chrono::TimeDelta;
use maud::html;
use service_kit::{ServiceKeys, json_error};
use types::error::codes;
use uuid::Uuid;

use super::error::ConsoleError;
use crate::{
    db::{operators, users},
    state::AppState,
    web::{
        csrf, layout,
        session::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE},
        sign_in_limit::SignInAttempt,
    },
};

/// A signed-in operator (from the session cookie).
#[derive(Debug, Clone)]
pub struct Operator {
    pub user_id: Uuid,
    pub email: String,
    pub csrf_token: String,
}

impl Operator {
    /// The page navigation for this operator, with `active` highlighted.
    pub fn nav<'a>(&'a self, active: &'a str) -> layout::Nav<'a> {
        layout::Nav {
            active,
            operator: &self.email,
            csrf_token: &self.csrf_token,
        }
    }
}

/// What the request's credentials say about console access.
enum Access {
    Operator(Operator),
    /// Authenticated, but not an operator.
    NotOperator,
    Anonymous,
}

async fn access(req: &HttpRequest, state: &AppState) -> Result<Access, ConsoleError> {
    if let Some(id) = session::read_cookie(req, SESSION_COOKIE) {
        let mut conn = state.pool.get().await?;
        if let Some(s) =
            operators::find_session(&mut conn, &session::hash_id(&id), state.clock.now()).await?
        {
            return Ok(if s.kind == operators::OPERATOR_KIND {
                Access::Operator(Operator {
                    user_id: s.user_id,
                    email: s.email,
                    csrf_token: s.csrf_token,
                })
            } else {
                Access::NotOperator
            });
        }
    }
    // A user or persona presenting its access token is told no, not asked to sign in.
    if req.headers().contains_key(header::AUTHORIZATION)
        && let Ok(user) = crate::auth::authenticate(req, state)
        && user.kind != operators::OPERATOR_KIND
    {
        return Ok(Access::NotOperator);
    }
    Ok(Access::Anonymous)
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, ConsoleError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ConsoleError::App(crate::error::AppError::internal("AppState missing")))
}

fn here(req: &HttpRequest) -> String {
    match req.uri().query() {
        Some(q) => format!("{}?{q}", req.path()),
        None => req.path().to_owned(),
    }
}

impl FromRequest for Operator {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req)?;
            match access(&req, &state).await? {
                Access::Operator(op) => Ok(op),
                Access::NotOperator => Err(ConsoleError::Forbidden(
                    "the console is for operators only".into(),
                )),
                Access::Anonymous => Err(ConsoleError::SignIn {
                    // A form POST cannot be replayed after sign-in; come back to the page.
                    next: if req.method() == actix_web::http::Method::GET {
                        here(&req)
                    } else {
                        "/console".to_owned()
                    },
                }),
            }
        })
    }
}

/// A submitted form's fields.
/// A submitted form's fields; a field holding NUL is a 400 page naming it.
pub type FormFields = web::Form<service_kit::storable::StorableFields>;

/// Refuse the form unless it carries this session's CSRF token.
pub fn check_csrf(op: &Operator, form: &HashMap<String, String>) -> Result<(), ConsoleError> {
    if csrf::matches(&op.csrf_token, form.get(csrf::FIELD).map(String::as_str)) {
        Ok(())
    } else {
        tracing::warn!(operator.id = %op.user_id, "console form refused: bad csrf token");
        Err(ConsoleError::Csrf)
    }
}

/// The form parser of console routes: malformed bodies are a 400 page.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(16 * 1024)
        .error_handler(|err, _req| {
            let message = match err {
                actix_web::error::UrlencodedError::Parse(e) => e.to_string(),
                other => other.to_string(),
            };
            ConsoleError::bad_request(format!("invalid form: {message}")).into()
        })
}

/// Only paths inside the console are followed after sign-in or an action.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with("/console/logout") =>
        {
            n.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

fn secure_cookies(state: &AppState) -> bool {
    state.settings.is_production()
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_page(
    status: StatusCode,
    csrf_token: &str,
    next: &str,
    email: &str,
    problem: Option<&str>,
) -> HttpResponse {
    let body = html! {
        section.login.panel {
            h1 { "Sign in" }
            p.muted { "The operator console of the Mana back office." }
            @if let Some(problem) = problem {
                p.flash role="alert" { (problem) }
            }
            form method="post" action="/console/login" {
                (csrf::hidden_field(csrf_token))
                input type="hidden" name="next" value=(next);
                label { "Email"
                    input type="email" name="email" value=(email) autocomplete="username" required autofocus; }
                label { "Password"
                    input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        }
    };
    layout::html_response(status, layout::page("Sign in", None, body))
}

/// `GET /console/login`: the sign-in form (or straight on when signed in).
pub async fn login_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let next = safe_next(query.next.as_deref());
    if let Access::Operator(_) = access(&req, &state).await? {
        return Ok(see_other(&next));
    }
    let token = csrf::random_token()?;
    let mut resp = login_page(StatusCode::OK, &token, &next, "", None);
    set_cookie(
        &mut resp,
        &session::cookie(LOGIN_CSRF_COOKIE, &token, 3600, secure_cookies(&state)),
    );
    Ok(resp)
}

fn set_cookie(resp: &mut HttpResponse, cookie: &str) {
    if let Ok(v) = header::HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `POST /console/login`: check the form's token and the credentials, start a session.
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: FormFields,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    let cookie_token = session::read_cookie(&req, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !csrf::matches(&cookie_token, form.get(csrf::FIELD).map(String::as_str)) {
        tracing::warn!("console sign-in refused: bad csrf token");
        return Err(ConsoleError::Csrf);
    }
    let next = safe_next(form.get("next").map(String::as_str));
    let email = form.get("email").map(|e| e.trim()).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let attempt = SignInAttempt::new(&req, &state, email);
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    if let Some(retry_after_secs) = attempt.refused(&mut conn).await? {
        return Err(ConsoleError::RateLimited { retry_after_secs });
    }
    let user = if email.is_empty() {
        None
    } else {
        users::find_by_email(&mut conn, email).await?
    };
    // Connection back to the pool while argon2 runs.
    drop(conn);
    let ok = state
        .hasher
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    let user = match user {
        Some(u) if ok => u,
        _ => {
            tracing::info!(client.ip = %attempt.ip, "console sign-in failed: wrong email or password");
            let mut conn = state.pool.get().await?;
            attempt.failed(&mut conn).await?;
            return Ok(login_page(
                StatusCode::UNAUTHORIZED,
                &cookie_token,
                &next,
                email,
                Some("Wrong email or password."),
            ));
        }
    };
    if user.kind != operators::OPERATOR_KIND {
        tracing::warn!(user.id = %user.id, user.kind = %user.kind, "console sign-in refused: not an operator");
        return Err(ConsoleError::Forbidden(
            "this account is not an operator; the console is for operators only".into(),
        ));
    }
    let ttl = state.settings.console.session_ttl_secs;
    let expires_at = now + TimeDelta::seconds(i64::try_from(ttl).unwrap_or(i64::MAX / 4));
    let id = csrf::random_token()?;
    let csrf_token = csrf::random_token()?;
    let mut conn = state.pool.get().await?;
    attempt.succeeded(&mut conn).await?;
    if let Some(old) = session::read_cookie(&req, SESSION_COOKIE) {
        operators::delete_session(&mut conn, &session::hash_id(&old)).await?;
    }
    operators::create_session(
        &mut conn,
        &session::hash_id(&id),
        user.id,
        &csrf_token,
        now,
        expires_at,
    )
    .await?;
    tracing::info!(operator.id = %user.id, "console sign-in");
    let secure = secure_cookies(&state);
    let mut resp = see_other(&next);
    set_cookie(
        &mut resp,
        &session::cookie(SESSION_COOKIE, &id, ttl, secure),
    );
    set_cookie(
        &mut resp,
        &session::cookie(LOGIN_CSRF_COOKIE, "", 0, secure),
    );
    Ok(resp)
}

/// `POST /console/logout`: end the session (CSRF-checked).
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    op: Operator,
    form: FormFields,
) -> Result<HttpResponse, ConsoleError> {
    check_csrf(&op, &form)?;
    if let Some(id) = session::read_cookie(&req, SESSION_COOKIE) {
        let mut conn = state.pool.get().await?;
        operators::delete_session(&mut conn, &session::hash_id(&id)).await?;
    }
    tracing::info!(operator.id = %op.user_id, "console sign-out");
    let mut resp = see_other("/console/login");
    set_cookie(
        &mut resp,
        &session::cookie(SESSION_COOKIE, "", 0, secure_cookies(&state)),
    );
    Ok(resp)
}

/// Whether a request reads a report or a run (the routes an operator
/// session may read besides the service key).
pub fn is_report_read(req: &ServiceRequest) -> bool {
    let path = req.path();
    req.method() == actix_web::http::Method::GET
        && (path.starts_with("/api/v1/internal/reports/")
            || path == "/api/v1/internal/runs"
            || path.starts_with("/api/v1/internal/runs/"))
}

/// `from_fn` middleware of `/api/v1/internal`: a valid `X-Service-Key`, or,
/// for reading reports and runs ([`is_report_read`]), an operator session.
/// Otherwise 401 (403 for a session or token of a non-operator), as the usual
/// JSON error.
pub async fn require_service_key_or_operator(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let key_ok = match (
        req.app_data::<web::Data<ServiceKeys>>(),
        req.headers().get(service_kit::service_key::HEADER),
    ) {
        (Some(keys), Some(presented)) => keys.accepts(presented.as_bytes()),
        _ => false,
    };
    if key_ok {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    if !is_report_read(&req) {
        let resp = json_error(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "missing or invalid X-Service-Key",
        );
        return Ok(req.into_response(resp).map_into_right_body());
    }
    // The request clone must be gone before the request is passed on.
    let verdict = {
        let http = req.request().clone();
        match state_of(&http) {
            Ok(state) => access(&http, &state).await,
            Err(e) => Err(e),
        }
    };
    let refused = match verdict {
        Ok(Access::Operator(op)) => {
            req.extensions_mut().insert(op);
            None
        }
        Ok(Access::NotOperator) => Some(json_error(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            "reports are for operators and services only",
        )),
        Ok(Access::Anonymous) => Some(json_error(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "a valid X-Service-Key or an operator session is required",
        )),
        Err(ConsoleError::App(e)) => Some(actix_web::ResponseError::error_response(&e)),
        Err(_) => Some(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal error",
        )),
    };
    match refused {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(resp) => Ok(req.into_response(resp).map_into_right_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_the_console() {
        assert_eq!(
            safe_next(Some("/console/runs/x?y=1")),
            "/console/runs/x?y=1"
        );
        assert_eq!(
            safe_next(Some("/console?from=2026-11-01")),
            "/console?from=2026-11-01"
        );
        for evil in [
            "https://evil.test/console",
            "//evil.test",
            "/console//evil.test",
            "/consoleevil",
            "/console/\\evil",
            "/console/logout",
        ] {
            assert_eq!(safe_next(Some(evil)), "/console", "{evil}");
        }
        assert_eq!(safe_next(None), "/console");
    }
}
