//! Authentication: password hashing, access tokens (EdDSA JWTs), and the
//! bearer-token extractor for user routes.

pub mod jwt;
pub mod password;

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use uuid::Uuid;

use crate::{error::AppError, state::AppState};

/// The authenticated caller of a user route, from `Authorization: Bearer <jwt>`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub email: String,
    pub kind: String,
}

/// The token of `Authorization: Bearer <token>`, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Read and verify the bearer token of a request.
pub fn authenticate(req: &HttpRequest, state: &AppState) -> Result<AuthUser, AppError> {
    let token =
        bearer_token(req).ok_or_else(|| AppError::Unauthorized("missing bearer token".into()))?;
    let claims = state
        .keys
        .verify(token, state.clock.now())
        .map_err(|e| AppError::Unauthorized(format!("invalid token: {e}")))?;
    Ok(AuthUser {
        id: claims.sub,
        email: claims.email,
        kind: claims.kind,
    })
}

impl FromRequest for AuthUser {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<AppState>>() {
            Some(state) => authenticate(req, state),
            None => Err(AppError::internal("AppState missing")),
        };
        Box::pin(async move { result.map_err(Into::into) })
    }
}
