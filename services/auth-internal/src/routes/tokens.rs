//! Personal access tokens (`/api/v1/tokens`, user JWT): the simple bearer for
//! CLIs and scripts on `/mcp`.
//!
//! Rules:
//! - The secret (`mana_pat_` + 256 random bits, base64url) is returned once,
//!   at creation; only its SHA-256 digest is stored.
//! - Scope is `mcp` (the only one); expiry 1..=`oauth.pat_max_days` days,
//!   default `oauth.pat_default_days` (90).
//! - Only `human` users may create them (personas log in with their derived
//!   password, as before).
//! - Another user's token id answers exactly like an unknown one: 404.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use service_kit::Json;
use types::ApiError;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    owned_deleted,
    responses::{BodyErrors, UserErrors},
};
use crate::{
    auth::AuthUser,
    db::tokens as db,
    error::AppError,
    oauth::{PAT_PREFIX, SCOPE_MCP, random_secret, secret_digest},
    state::AppState,
};

/// The personal-access-token routes (absolute paths, top level).
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(create_token)
        .service(list_tokens)
        .service(delete_token);
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// 1–100 characters, e.g. "laptop claude code".
    pub name: String,
    /// `mcp`.
    pub scope: String,
    /// Days until expiry (default 90, at most 365).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A created token: the secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    pub id: Uuid,
    pub name: String,
    pub scope: String,
    /// `mana_pat_…`: send it as `Authorization: Bearer <token>` to `/mcp`.
    pub token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A token as listed (never the secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// `expiresAt` has passed: the token no longer works.
    pub expired: bool,
}

/// Answer of `GET /api/v1/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `POST /api/v1/tokens`.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = [])),
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "Created; `token` is shown only in this answer", body = CreatedToken),
        (status = 403, description = "Not a human account (`forbidden`)", body = ApiError),
        (status = 422, description = "Empty or long name, scope other than `mcp`, expiry out of range (`validation_failed`)", body = ApiError),
        BodyErrors,
        UserErrors,
    ),
)]
#[post("/api/v1/tokens")]
pub async fn create_token(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<CreateTokenRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    if user.kind != "human" {
        return Err(AppError::Forbidden(
            "only human accounts can create personal access tokens".into(),
        ));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::Validation(
            "`name` must be 1–100 printable characters".into(),
        ));
    }
    if body.scope != SCOPE_MCP {
        return Err(AppError::Validation("`scope` must be \"mcp\"".into()));
    }
    let settings = &state.settings.oauth;
    let days = body.expires_in_days.unwrap_or(settings.pat_default_days);
    if !(1..=settings.pat_max_days).contains(&days) {
        return Err(AppError::Validation(format!(
            "`expiresInDays` must be 1 to {}",
            settings.pat_max_days
        )));
    }
    let secret = random_secret(PAT_PREFIX)?;
    let now = state.clock.now();
    let row = db::PersonalAccessToken {
        id: Uuid::new_v4(),
        user_id: user.id,
        name: name.to_owned(),
        scope: SCOPE_MCP.to_owned(),
        token_hash: secret_digest(&secret),
        created_at: now,
        expires_at: now + Duration::days(i64::from(days)),
        last_used_at: None,
    };
    let mut conn = state.pool.get().await?;
    db::insert(&mut conn, &row).await?;
    tracing::info!(user.id = %user.id, token.id = %row.id, "personal access token created");
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(CreatedToken {
            id: row.id,
            name: row.name,
            scope: row.scope,
            token: secret,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }))
}

/// `GET /api/v1/tokens`.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's tokens, newest first, without secrets", body = TokenList),
        UserErrors,
    ),
)]
#[get("/api/v1/tokens")]
pub async fn list_tokens(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    let tokens = db::list_for_user(&mut conn, user.id)
        .await?
        .into_iter()
        .map(|t| TokenInfo {
            id: t.id,
            name: t.name,
            scope: t.scope,
            created_at: t.created_at,
            expired: t.expires_at <= now,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(TokenList { tokens }))
}

/// `DELETE /api/v1/tokens/{id}`.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked: the token stops working at once"),
        (status = 404, description = "No such token of the caller (`not_found`); also an id that is not a UUID", body = ApiError),
        UserErrors,
    ),
)]
#[delete("/api/v1/tokens/{id}")]
pub async fn delete_token(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let done = db::delete_for_user(&mut conn, user.id, id).await?;
    if done {
        tracing::info!(user.id = %user.id, token.id = %id, "personal access token revoked");
    }
    owned_deleted(done, "no such token")
}
