//! The console's error type and its one mapping to an HTTP answer.
//!
//! Rules:
//! - "Not signed in" is a 303 to the sign-in page (with `next` = where the
//!   operator wanted to go); everything else keeps the status and stable
//!   `code` of [`AppError`] and is shown as an HTML page, since the console's
//!   clients are browsers. The page names the code, and so does the
//!   `x-error-code` header, so scripts can tell errors apart without parsing HTML.
//! - Causes of 5xx errors are logged once (by [`AppError`]) and never shown.

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use types::error::codes;

use crate::{error::AppError, web::layout};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No (live) session: go to the sign-in page, then back to `next`.
    #[error("sign in to use the console")]
    SignIn { next: String },
    /// Signed in or authenticated, but not as an operator.
    #[error("{0}")]
    Forbidden(String),
    /// A state-changing form without its CSRF token, or with a wrong one.
    #[error("the form's CSRF token is missing or wrong; reload the page and try again")]
    Csrf,
    /// Too many failed sign-ins from this address or for this email.
    #[error("{}", crate::web::sign_in_limit::refusal_message(*retry_after_secs))]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for ConsoleError {
    fn from(e: diesel::result::Error) -> Self {
        Self::App(AppError::Database(e))
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ConsoleError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::App(e.into())
    }
}

impl From<crate::web::csrf::RandomError> for ConsoleError {
    fn from(e: crate::web::csrf::RandomError) -> Self {
        Self::App(AppError::internal(e))
    }
}

impl ConsoleError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::App(AppError::BadRequest(message.into()))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::App(AppError::NotFound(message.into()))
    }

    fn code(&self) -> &'static str {
        match self {
            Self::SignIn { .. } => codes::UNAUTHORIZED,
            Self::Forbidden(_) => codes::FORBIDDEN,
            Self::Csrf => CSRF_FAILED,
            Self::RateLimited { .. } => RATE_LIMITED,
            Self::App(e) => e.code(),
        }
    }
}

/// The code of a refused CSRF check.
pub const CSRF_FAILED: &str = "csrf_failed";
/// The code of a sign-in refused for too many failures (as OAuth's registration).
pub const RATE_LIMITED: &str = crate::web::sign_in_limit::RATE_LIMITED;

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden(_) | Self::Csrf => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::App(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::SignIn { next } = self {
            let location = format!("/console/login?next={}", encode_query_value(next));
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        let status = self.status_code();
        let message = match self {
            // AppError's own mapping logs a server error's cause once; only
            // the client-safe message is shown.
            Self::App(e) if status.is_server_error() => {
                let _logged = e.error_response();
                "something went wrong on our side; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let code = self.code();
        let mut resp =
            layout::html_response(status, layout::error_page(status, code, &message, None));
        resp.headers_mut().insert(
            header::HeaderName::from_static("x-error-code"),
            header::HeaderValue::from_static(code),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
        }
        if let Self::RateLimited { retry_after_secs } = self {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(*retry_after_secs),
            );
        }
        resp
    }
}

/// Percent-encode a query value (RFC 3986 unreserved characters stay).
pub fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_code() {
        let signin = ConsoleError::SignIn {
            next: "/console/runs/a b".into(),
        }
        .error_response();
        assert_eq!(signin.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            signin
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some("/console/login?next=/console/runs/a%20b")
        );
        for (e, status, code) in [
            (ConsoleError::Csrf, 403, "csrf_failed"),
            (ConsoleError::Forbidden("no".into()), 403, "forbidden"),
            (ConsoleError::not_found("x"), 404, "not_found"),
            (
                ConsoleError::RateLimited {
                    retry_after_secs: 900,
                },
                429,
                "rate_limited",
            ),
            (
                ConsoleError::App(AppError::Internal("secret".into())),
                500,
                "internal",
            ),
        ] {
            let resp = e.error_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(
                resp.headers()
                    .get("x-error-code")
                    .and_then(|v| v.to_str().ok()),
                Some(code)
            );
        }
    }
}
