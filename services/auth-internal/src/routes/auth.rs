//! Registration, login and the JWKS.
//!
//! Unknown email and wrong password get the same 401 body and, because the
//! unknown-email path verifies against a dummy hash, the same time.

use actix_web::{HttpResponse, get, post, web};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use service_kit::Json;
use types::ApiError;
use types::auth::{LoginRequest, RegisterRequest, TokenResponse, TokenUser};

use super::responses::Unavailable;
use crate::{db::users, error::AppError, state::AppState};

/// `/api/v1/auth/*` and the token keys at `/.well-known/jwks.json`.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(jwks).service(
        utoipa_actix_web::scope("/api/v1/auth")
            .service(register)
            .service(login),
    );
}

fn token_response(state: &AppState, user: &users::User) -> Result<TokenResponse, AppError> {
    let access_token = state
        .keys
        .issue(user.id, &user.email, &user.kind, state.clock.now())?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".to_owned(),
        expires_in: state.keys.ttl_secs(),
        user: TokenUser {
            id: user.id,
            email: user.email.clone(),
            kind: user.kind.clone(),
        },
    })
}

fn validate_email(email: &str) -> Result<&str, AppError> {
    let email = email.trim();
    let valid = email.len() <= 320
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(AppError::Validation(
            "`email` is not a valid email address".into(),
        ))
    }
}

/// `POST /api/v1/auth/register` → 201 with a token.
#[utoipa::path(
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered; a token for the new user", body = TokenResponse),
        (status = 400, description = "Malformed JSON or a wrong type (`invalid_body`)", body = ApiError),
        (status = 409, description = "The email is taken (`email_taken`)", body = ApiError),
        (status = 422, description = "Invalid email, password not 8–1024 characters, or displayName too long (`validation_failed`)", body = ApiError),
        Unavailable,
    ),
)]
#[post("/register")]
pub async fn register(
    state: web::Data<AppState>,
    body: Json<RegisterRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let email = validate_email(&body.email)?.to_owned();
    let chars = body.password.chars().count();
    if !(8..=1024).contains(&chars) {
        return Err(AppError::Validation(
            "`password` must be 8 to 1024 characters".into(),
        ));
    }
    if body
        .display_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 200)
    {
        return Err(AppError::Validation(
            "`displayName` must be at most 200 characters".into(),
        ));
    }
    let hash = state.hasher.hash(body.password).await?;
    let mut conn = state.pool.get().await?;
    let user = users::insert(
        &mut conn,
        &users::NewUser {
            email: &email,
            password_hash: &hash,
            kind: "human",
            display_name: body.display_name.as_deref(),
        },
    )
    .await
    .map_err(|e| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => AppError::EmailTaken,
        other => other.into(),
    })?;
    Ok(HttpResponse::Created().json(token_response(&state, &user)?))
}

/// `POST /api/v1/auth/login`.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A token for the account", body = TokenResponse),
        (status = 400, description = "Malformed JSON or a wrong type (`invalid_body`)", body = ApiError),
        (status = 401, description = "Unknown email or wrong password: the same answer (`invalid_credentials`)", body = ApiError),
        Unavailable,
    ),
)]
#[post("/login")]
pub async fn login(
    state: web::Data<AppState>,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let user = {
        let mut conn = state.pool.get().await?;
        users::find_by_email(&mut conn, body.email.trim()).await?
    };
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = state.hasher.verify(body.password, stored).await?;
    match user {
        Some(user) if ok => Ok(HttpResponse::Ok().json(token_response(&state, &user)?)),
        _ => Err(AppError::InvalidCredentials),
    }
}

/// `GET /.well-known/jwks.json`.
#[utoipa::path(
    tag = "auth",
    responses(
        (status = 200, description = "The Ed25519 public key(s) that verify access tokens (RFC 7517 JWK set, `OKP`/`Ed25519`/`EdDSA`)", body = serde_json::Value),
    ),
)]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=300"))
        .json(state.keys.jwks())
}
