//! The error answers many operations share, as utoipa response sets: an
//! operation lists `responses((status = 200, …), InternalErrors, LeaseErrors)`
//! instead of repeating the same `(status = …)` lines.
//!
//! Rules:
//! - Every set answers the one envelope `ApiError`; its text names the stable
//!   `code` the client can match on.
//! - A set holds only answers whose wording is the same on every route that
//!   uses it; a route-specific 404/409/413/422 stays on its route.
//! - These types are documentation only: handlers answer through `AppError`.

use types::ApiError;
use utoipa::IntoResponses;

/// The internal API's gate and the database: 401 without the service key,
/// 503 while the database is unavailable.
#[derive(IntoResponses)]
pub enum InternalErrors {
    #[response(
        status = 401,
        description = "Missing or wrong `X-Service-Key` (`unauthorized`)"
    )]
    Unauthorized(ApiError),
    #[response(
        status = 503,
        description = "The database is unavailable (`service_unavailable`, `Retry-After`)"
    )]
    Unavailable(ApiError),
}

/// A user route's gate and the database: 401 without a valid bearer token,
/// 503 while the database is unavailable.
#[derive(IntoResponses)]
pub enum UserErrors {
    #[response(
        status = 401,
        description = "Missing or invalid bearer token (`unauthorized`)"
    )]
    Unauthorized(ApiError),
    #[response(
        status = 503,
        description = "The database is unavailable (`service_unavailable`, `Retry-After`)"
    )]
    Unavailable(ApiError),
}

/// 503 while the database is unavailable (open routes).
#[derive(IntoResponses)]
pub enum Unavailable {
    #[response(
        status = 503,
        description = "The database is unavailable (`service_unavailable`, `Retry-After`)"
    )]
    Unavailable(ApiError),
}

/// A JSON body that does not parse: 400 naming the field.
#[derive(IntoResponses)]
pub enum BodyErrors {
    #[response(
        status = 400,
        description = "Malformed JSON or a wrong type (`invalid_body`), naming the field"
    )]
    InvalidBody(ApiError),
}

/// A query parameter that does not parse or breaks a rule: 400 naming it.
#[derive(IntoResponses)]
pub enum QueryErrors {
    #[response(
        status = 400,
        description = "A query parameter is invalid (`bad_request`), naming it"
    )]
    BadQuery(ApiError),
}

/// A lease token that no longer holds the lease.
#[derive(IntoResponses)]
pub enum LeaseErrors {
    #[response(
        status = 409,
        description = "The lease is no longer held by this token (`lease_lost`)"
    )]
    LeaseLost(ApiError),
}

/// A persona id that names no persona.
#[derive(IntoResponses)]
pub enum PersonaNotFound {
    #[response(status = 404, description = "No such persona (`not_found`)")]
    NotFound(ApiError),
}
