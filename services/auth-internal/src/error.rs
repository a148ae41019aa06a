//! The service's one error type and its one mapping to HTTP.
//!
//! Pool exhaustion and a closed or unreachable database are 503 with
//! `Retry-After`; a statement timeout is 503 too (the database is overloaded);
//! every other database failure is an opaque 500 whose cause is logged once,
//! here. Client errors carry a stable snake_case `code`.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use service_kit::json_error;
use types::error::codes;

use crate::{db::records::RecordError, missions::MissionError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("{0}")]
    Conflict(String),
    #[error("the lease is no longer held by this token")]
    LeaseLost,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Validation(String),
    #[error("the database is unavailable")]
    Unavailable(String),
    #[error("database error")]
    Database(#[from] DieselError),
    #[error("internal error")]
    Internal(String),
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<RecordError> for AppError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Db(e) => AppError::Database(e),
            RecordError::Corrupt(m) => AppError::Internal(m),
            RecordError::NotLive => AppError::NotFound("no such record".into()),
            RecordError::AlreadyLive => {
                AppError::Conflict("a record with this id already exists".into())
            }
            RecordError::Raced | RecordError::Contended => AppError::Unavailable(e.to_string()),
            RecordError::UnknownUser => AppError::Unauthorized(e.to_string()),
        }
    }
}

impl From<MissionError> for AppError {
    fn from(e: MissionError) -> Self {
        match e {
            MissionError::NoStep { .. } => AppError::NotFound(e.to_string()),
            MissionError::Unreadable(_) => AppError::Internal(e.to_string()),
        }
    }
}

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => codes::BAD_REQUEST,
            Self::Unauthorized(_) => codes::UNAUTHORIZED,
            Self::InvalidCredentials => codes::INVALID_CREDENTIALS,
            Self::Forbidden(_) => codes::FORBIDDEN,
            Self::NotFound(_) => codes::NOT_FOUND,
            Self::EmailTaken => codes::EMAIL_TAKEN,
            Self::Conflict(_) => codes::CONFLICT,
            Self::LeaseLost => codes::LEASE_LOST,
            Self::PayloadTooLarge(_) => codes::PAYLOAD_TOO_LARGE,
            Self::Validation(_) => codes::VALIDATION_FAILED,
            Self::Unavailable(_) => codes::SERVICE_UNAVAILABLE,
            Self::Database(e) if db_unavailable(e) => codes::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => codes::INTERNAL,
        }
    }
}

/// Whether a diesel error means "the database is not there (right now)": a lost or
/// closed connection, a command that could not be sent (diesel-async reports a
/// connection that died mid-request as `UnableToSendCommand`, "connection closed"),
/// an administrator's termination, or a statement timeout.
pub fn db_unavailable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => {
            let m = info.message();
            // 57014 query_canceled (statement_timeout) surfaces as Unknown with this text;
            // 57P01 admin_shutdown / pg_terminate_backend as "terminating connection …".
            m.contains("statement timeout")
                || m.contains("terminating connection")
                || m.contains("connection closed")
                || m.contains("the database system is")
        }
        DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::EmailTaken | Self::Conflict(_) | Self::LeaseLost => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if db_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            Self::Unavailable(cause) => {
                tracing::warn!(error.cause = %cause, "database unavailable");
                "the database is unavailable; retry shortly".to_owned()
            }
            Self::Database(e) => {
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    tracing::warn!(error.cause = %e, "database unavailable");
                    "the database is unavailable; retry shortly".to_owned()
                } else {
                    tracing::error!(error.cause = %e, "database error");
                    "internal error".to_owned()
                }
            }
            Self::Internal(cause) => {
                tracing::error!(error.cause = %cause, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let mut resp = json_error(status, self.code(), message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("2"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_variant_to_status_and_code() {
        let cases: Vec<(AppError, u16, &str)> = vec![
            (AppError::BadRequest("x".into()), 400, "bad_request"),
            (AppError::Unauthorized("x".into()), 401, "unauthorized"),
            (AppError::InvalidCredentials, 401, "invalid_credentials"),
            (AppError::NotFound("x".into()), 404, "not_found"),
            (AppError::EmailTaken, 409, "email_taken"),
            (AppError::LeaseLost, 409, "lease_lost"),
            (
                AppError::PayloadTooLarge("x".into()),
                413,
                "payload_too_large",
            ),
            (AppError::Validation("x".into()), 422, "validation_failed"),
            (
                AppError::Unavailable("pool".into()),
                503,
                "service_unavailable",
            ),
            (AppError::Database(DieselError::NotFound), 500, "internal"),
            (
                AppError::Database(DieselError::DatabaseError(
                    DatabaseErrorKind::UnableToSendCommand,
                    Box::new("connection closed".to_owned()),
                )),
                503,
                "service_unavailable",
            ),
            (
                AppError::Database(DieselError::DatabaseError(
                    DatabaseErrorKind::ClosedConnection,
                    Box::new("gone".to_owned()),
                )),
                503,
                "service_unavailable",
            ),
            (AppError::Internal("boom".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status_code().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
        }
    }

    #[test]
    fn maps_record_errors_beside_the_others() {
        let cases: Vec<(RecordError, u16, &str)> = vec![
            (RecordError::NotLive, 404, "not_found"),
            (RecordError::AlreadyLive, 409, "conflict"),
            (RecordError::Contended, 503, "service_unavailable"),
            (RecordError::UnknownUser, 401, "unauthorized"),
            (RecordError::Corrupt("bad stamp".into()), 500, "internal"),
            (RecordError::Db(DieselError::NotFound), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let app = AppError::from(err);
            assert_eq!(app.status_code().as_u16(), status, "{app:?}");
            assert_eq!(app.code(), code, "{app:?}");
        }
    }

    #[test]
    fn internal_causes_never_reach_the_client() {
        let resp = AppError::Internal("secret detail".into()).error_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let unavailable = AppError::Unavailable("pool timed out".into()).error_response();
        assert!(unavailable.headers().contains_key("retry-after"));
    }
}
