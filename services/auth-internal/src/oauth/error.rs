//! Errors of the OAuth endpoints and their one mapping to HTTP.
//!
//! Rules:
//! - The body is the RFCs' `{"error": code, "error_description": text}`
//!   (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 8707 `invalid_target`), never a 500
//!   for bad input; answers carry `Cache-Control: no-store`.
//! - `invalid_client` is 401; the registration rate limit is 429 with
//!   `Retry-After`; a database outage is 503 `temporarily_unavailable`; any
//!   other failure is an opaque 500 `server_error` whose cause is logged once.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};

use crate::error::AppError;

/// The RFC 6749 §5.2 / RFC 7591 §3.2.2 error body of the OAuth endpoints.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`,
    /// `invalid_scope`, `invalid_target`, `invalid_redirect_uri`,
    /// `invalid_client_metadata`, `rate_limited`, `temporarily_unavailable`, `server_error`.
    pub error: String,
    pub error_description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidTarget(String),
    #[error("{0}")]
    InvalidRedirectUri(String),
    #[error("{0}")]
    InvalidClientMetadata(String),
    #[error("too many registrations from this address; retry later")]
    RateLimited { retry_after_secs: u64 },
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable(String),
    #[error("internal error")]
    Server(String),
}

impl OAuthError {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient(_) => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Self::InvalidClientMetadata(_) => "invalid_client_metadata",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::Server(_) => "server_error",
        }
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        match e.status_code() {
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable(e.to_string()),
            _ => Self::Server(format!("{e}: {e:?}")),
        }
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::from(e).into()
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for OAuthError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        AppError::from(e).into()
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidClient(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unavailable(cause) => {
                tracing::warn!(error.cause = %cause, "oauth: database unavailable")
            }
            Self::Server(cause) => tracing::error!(error.cause = %cause, "oauth: internal error"),
            _ => {}
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header(("cache-control", "no-store"));
        match self {
            Self::RateLimited { retry_after_secs } => {
                resp.insert_header(("retry-after", retry_after_secs.to_string()));
            }
            Self::Unavailable(_) => {
                resp.insert_header(("retry-after", "2"));
            }
            Self::InvalidClient(_) => {
                resp.insert_header(("www-authenticate", "Bearer error=\"invalid_client\""));
            }
            _ => {}
        }
        resp.json(OAuthErrorBody {
            error: self.code().to_owned(),
            error_description: self.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_variant_to_status_and_rfc_code() {
        let cases: Vec<(OAuthError, u16, &str)> = vec![
            (
                OAuthError::InvalidRequest("x".into()),
                400,
                "invalid_request",
            ),
            (OAuthError::InvalidClient("x".into()), 401, "invalid_client"),
            (OAuthError::InvalidGrant("x".into()), 400, "invalid_grant"),
            (
                OAuthError::UnsupportedGrantType("x".into()),
                400,
                "unsupported_grant_type",
            ),
            (OAuthError::InvalidScope("x".into()), 400, "invalid_scope"),
            (OAuthError::InvalidTarget("x".into()), 400, "invalid_target"),
            (
                OAuthError::InvalidRedirectUri("x".into()),
                400,
                "invalid_redirect_uri",
            ),
            (
                OAuthError::InvalidClientMetadata("x".into()),
                400,
                "invalid_client_metadata",
            ),
            (
                OAuthError::RateLimited {
                    retry_after_secs: 60,
                },
                429,
                "rate_limited",
            ),
            (
                OAuthError::Unavailable("x".into()),
                503,
                "temporarily_unavailable",
            ),
            (OAuthError::Server("x".into()), 500, "server_error"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status_code().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(err.error_response().status().as_u16(), status);
        }
    }

    #[test]
    fn server_causes_never_reach_the_client() {
        let e = OAuthError::from(AppError::Internal("secret detail".into()));
        assert_eq!(e.to_string(), "internal error");
        let e = OAuthError::from(AppError::Unavailable("pool".into()));
        assert_eq!(e.code(), "temporarily_unavailable");
    }
}
