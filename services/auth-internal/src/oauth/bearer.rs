//! The bearer check of `/mcp`: which tokens are accepted and how revocation
//! reaches them.
//!
//! Rules:
//! - Accepted: login JWTs (`aud` = `jwt.audience`, as before), OAuth access
//!   tokens (`aud` = this server's MCP resource, with a `gid`), and personal
//!   access tokens (`mana_pat_…`).
//! - An OAuth access token is valid only while its grant is: one primary-key
//!   lookup of `oauth_grants` per request (revocation is immediate, not at
//!   expiry). A PAT is one lookup by its unique digest index. Login JWTs need
//!   no database.
//! - `last_used_at` is written at most once a minute per grant or token.
//! - Token problems are 401 (the caller's); database trouble is 503/500 (ours).

use actix_web::HttpRequest;
use diesel::result::Error as DieselError;

use super::{PAT_PREFIX, secret_digest};
use crate::{
    auth::bearer_token,
    db::{oauth as db, tokens},
    error::AppError,
    mcp::McpUser,
    state::AppState,
};

fn unauthorized(msg: &str) -> AppError {
    AppError::Unauthorized(msg.to_owned())
}

/// Authenticate a `/mcp` request.
pub async fn authenticate_mcp(req: &HttpRequest, state: &AppState) -> Result<McpUser, AppError> {
    let token = bearer_token(req).ok_or_else(|| unauthorized("missing bearer token"))?;
    let now = state.clock.now();
    if token.starts_with(PAT_PREFIX) {
        let mut conn = state.pool.get().await?;
        let pat = tokens::find_live(&mut conn, &secret_digest(token), now)
            .await?
            .ok_or_else(|| {
                unauthorized("invalid token: unknown, revoked or expired access token")
            })?;
        if stale(pat.last_used_at, now)
            && let Err(e) = tokens::touch(&mut conn, pat.id, now).await
        {
            log_touch_failure(&e);
        }
        // Only human accounts can hold personal access tokens (routes/tokens.rs).
        return Ok(McpUser {
            id: pat.user_id,
            kind: "human".to_owned(),
        });
    }
    let resource = super::mcp_resource(req, state);
    let claims = state
        .keys
        .verify_for(token, now, &[state.keys.audience(), resource.as_str()])
        .map_err(|e| AppError::Unauthorized(format!("invalid token: {e}")))?;
    if claims.aud == resource {
        let gid = claims
            .gid
            .ok_or_else(|| unauthorized("invalid token: no grant"))?;
        let mut conn = state.pool.get().await?;
        let grant = db::live_grant(&mut conn, gid)
            .await?
            .filter(|g| g.user_id == claims.sub)
            .ok_or_else(|| unauthorized("invalid token: the grant was revoked"))?;
        if stale(grant.last_used_at, now)
            && let Err(e) = db::touch_grant(&mut conn, grant.id, now).await
        {
            log_touch_failure(&e);
        }
    }
    Ok(McpUser {
        id: claims.sub,
        kind: claims.kind,
    })
}

/// Whether `last_used_at` is due for a bump (never, or over a minute ago):
/// most requests then cost one read and no write.
fn stale(last: Option<chrono::DateTime<chrono::Utc>>, now: chrono::DateTime<chrono::Utc>) -> bool {
    last.is_none_or(|t| now - t > chrono::Duration::seconds(60))
}

/// A failed `last_used_at` bump never fails the request.
fn log_touch_failure(e: &DieselError) {
    tracing::warn!(error.cause = %e, "could not record last use of a token");
}
