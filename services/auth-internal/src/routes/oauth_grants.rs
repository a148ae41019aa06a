//! The user's connected OAuth clients (`/api/v1/oauth/grants`, user JWT).
//!
//! Rules:
//! - Only live (not revoked) grants of the caller are listed.
//! - Disconnecting revokes the grant: its refresh tokens are deleted and its
//!   access tokens stop working on `/mcp` at the next request.
//! - Another user's grant id answers exactly like an unknown one: 404.

use actix_web::{HttpResponse, delete, get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use types::ApiError;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{owned_deleted, responses::UserErrors};
use crate::{auth::AuthUser, db::oauth as db, error::AppError, state::AppState};

/// The connected-apps routes (absolute paths, top level).
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(list_grants).service(delete_grant);
}

/// One connected client.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantInfo {
    pub id: Uuid,
    pub client_id: String,
    pub client_name: String,
    pub scope: String,
    /// The resource its tokens are for (the MCP endpoint).
    pub resource: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Answer of `GET /api/v1/oauth/grants`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    pub grants: Vec<GrantInfo>,
}

/// The caller's live grants (shared with the connected-apps page).
pub async fn grants_of(state: &AppState, user_id: Uuid) -> Result<Vec<GrantInfo>, AppError> {
    let mut conn = state.pool.get().await?;
    Ok(db::list_user_grants(&mut conn, user_id)
        .await?
        .into_iter()
        .map(|(g, client_name)| GrantInfo {
            id: g.id,
            client_id: g.client_id,
            client_name,
            scope: g.scope,
            resource: g.resource,
            created_at: g.created_at,
            last_used_at: g.last_used_at,
        })
        .collect())
}

/// Revoke one of the caller's grants; false if it is not theirs or not live.
pub async fn disconnect(state: &AppState, user_id: Uuid, id: Uuid) -> Result<bool, AppError> {
    let mut conn = state.pool.get().await?;
    let done = db::revoke_user_grant(&mut conn, user_id, id, state.clock.now()).await?;
    if done {
        tracing::info!(user.id = %user_id, grant.id = %id, "oauth: grant disconnected by the user");
    }
    Ok(done)
}

/// `GET /api/v1/oauth/grants`.
#[utoipa::path(
    tag = "oauth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The apps connected to the caller's account, newest first", body = GrantList),
        UserErrors,
    ),
)]
#[get("/api/v1/oauth/grants")]
pub async fn list_grants(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, AppError> {
    let grants = grants_of(&state, user.id).await?;
    Ok(HttpResponse::Ok().json(GrantList { grants }))
}

/// `DELETE /api/v1/oauth/grants/{id}`.
#[utoipa::path(
    tag = "oauth",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The grant's id")),
    responses(
        (status = 204, description = "Disconnected: the app's tokens stop working at once"),
        (status = 404, description = "No such live grant of the caller (`not_found`); also an id that is not a UUID", body = ApiError),
        UserErrors,
    ),
)]
#[delete("/api/v1/oauth/grants/{id}")]
pub async fn delete_grant(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, AppError> {
    let done = disconnect(&state, user.id, id.into_inner()).await?;
    owned_deleted(done, "no such connected app")
}
