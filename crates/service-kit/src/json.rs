//! A JSON body extractor whose errors are the JSON envelope and name the field.
//!
//! Rules: the body must be `application/json` (415 otherwise); bodies over the
//! configured limit are 413 `payload_too_large` before anything is parsed;
//! malformed JSON or a wrong type is 400 `invalid_body` with the JSON path of
//! the offending field (via `serde_path_to_error`); a string or key holding NUL
//! (`\u0000`, which Postgres cannot store) is 422 `validation_failed` naming its
//! JSON path (see [`crate::storable`]).

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, http::StatusCode, web};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use types::error::codes;

use crate::errors::ErrorResponse;

/// Default body limit when no [`JsonLimit`] is registered: 1 MiB.
pub const DEFAULT_LIMIT: usize = 1 << 20;

/// The body size limit for [`Json`], registered with `app_data`.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

/// Extracts and deserializes a JSON body; see the module docs.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Deserialize bytes, naming the failing field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ErrorResponse> {
    if let Some(path) = crate::storable::find_nul_in_json(bytes) {
        return Err(ErrorResponse::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::VALIDATION_FAILED,
            format!("`{path}` {}", crate::storable::NUL_MESSAGE),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = if path.is_empty() || path == "." {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body at `{path}`: {inner}")
        };
        ErrorResponse::new(StatusCode::BAD_REQUEST, codes::INVALID_BODY, message)
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<JsonLimit>()
            .or_else(|| req.app_data::<web::Data<JsonLimit>>().map(|d| d.get_ref()))
            .map_or(DEFAULT_LIMIT, |l| l.0);
        let read = read_json::<T>(req, payload, limit);
        Box::pin(async move { read.await.map(Json) })
    }
}

/// What the [`Json`] extractor does, with an explicit `limit`: for a route whose body
/// limit differs from the application's (take `HttpRequest` and `web::Payload`).
pub fn read_json<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> impl Future<Output = Result<T, actix_web::Error>> + 'static {
    let is_json = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
    let declared_len = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    async move {
        if !is_json {
            return Err(ErrorResponse::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Type: application/json",
            )
            .into());
        }
        let too_large = || {
            ErrorResponse::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {limit} bytes"),
            )
        };
        if declared_len.is_some_and(|n| n > limit) {
            return Err(too_large().into());
        }
        // One allocation for a body that declares its length (no regrowth copies).
        let mut body = web::BytesMut::with_capacity(declared_len.unwrap_or(0).min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ErrorResponse::bad_request(format!("could not read the request body: {e}"))
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large().into());
            }
            body.extend_from_slice(&chunk);
        }
        parse_json(&body).map_err(Into::into)
    }
}
