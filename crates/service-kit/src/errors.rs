//! Every error a service answers is the JSON envelope of [`types::ApiError`],
//! including actix's own extractor and routing errors.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    error::{PathError, QueryPayloadError},
    http::{StatusCode, header},
    web,
};
use types::{ApiError, error::codes};

/// Build a JSON error response.
pub fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ApiError::new(code, message))
}

/// A ready-made error: status + code + message. Use it where a crate has no
/// richer error type of its own (extractor errors, routing).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ErrorResponse {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra headers, e.g. `Retry-After` or `WWW-Authenticate`.
    pub headers: Vec<(header::HeaderName, String)>,
}

impl ErrorResponse {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }
}

impl ResponseError for ErrorResponse {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = json_error(self.status, self.code, self.message.clone());
        for (name, value) in &self.headers {
            if let Ok(v) = header::HeaderValue::from_str(value) {
                resp.headers_mut().insert(name.clone(), v);
            }
        }
        resp
    }
}

/// Query-string errors as JSON 400.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        ErrorResponse::bad_request(format!("invalid query string: {err}")).into()
    })
}

/// Path-segment errors (e.g. a persona id that is not a UUID) as JSON 404:
/// no resource can live at such a path.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
        ErrorResponse::not_found(format!("no such resource: {err}")).into()
    })
}

/// Fallback for unmatched routes: JSON 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    json_error(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        format!("no route for {} {}", req.method(), req.path()),
    )
}

/// Wrong method on a known resource: JSON 405.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        format!("method {} is not allowed on {}", req.method(), req.path()),
    )
}
