//! Sync for user clients: push a batch of changes, pull the log after a cursor.
//! The user is always the token's, never taken from the body.

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use service_kit::Json;
use types::{
    ApiError,
    sync::{ChangeOp, PullResponse, PulledChange, PushRequest, PushResponse},
};
use utoipa::IntoParams;

use super::responses::UserErrors;
use crate::{
    auth::AuthUser,
    db::records::{self, Author},
    error::AppError,
    state::AppState,
    store::{self, StampStats},
};

/// The sync routes, inside `/api/v1/sync`.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(push_changes).service(pull_changes);
}

/// `POST /api/v1/sync/push`.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    request_body = PushRequest,
    responses(
        (status = 200, description = "All changes applied (all or nothing)", body = PushResponse),
        (status = 400, description = "Malformed JSON or a wrong type (`invalid_body`)", body = ApiError),
        (status = 413, description = "More changes than `sync.max_push_changes` (`payload_too_large`)", body = ApiError),
        (status = 422, description = "A change breaks a rule, e.g. a bad `clientId` or stamp (`validation_failed`)", body = ApiError),
        UserErrors,
    ),
)]
#[post("/push")]
pub async fn push_changes(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<PushRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    let max = state.settings.sync.max_push_changes;
    if req.changes.len() > max {
        return Err(AppError::PayloadTooLarge(format!(
            "at most {max} changes per push, got {}",
            req.changes.len()
        )));
    }
    if req.client_id.trim().is_empty() || req.client_id.len() > 128 {
        return Err(AppError::Validation(
            "`clientId` must be 1–128 characters".into(),
        ));
    }
    let now = state.clock.now();
    let mut stats = StampStats::default();
    let prepared = req
        .changes
        .into_iter()
        .enumerate()
        .map(|(i, c)| store::prepare(&state, c, &format!("changes[{i}]"), now, &mut stats))
        .collect::<Result<Vec<_>, _>>()?;
    let author = Author {
        client_id: &req.client_id,
        origin: "client",
    };
    let change_ids = store::apply_all(&state, user.id, author, &prepared, now).await?;
    let cursor = change_ids.last().copied().unwrap_or(0);
    Ok(HttpResponse::Ok().json(PushResponse {
        cursor: cursor.to_string(),
        applied: u32::try_from(change_ids.len()).unwrap_or(u32::MAX),
        clamped: stats.clamped,
    }))
}

/// Query of `GET /api/v1/sync/pull`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PullQuery {
    /// A cursor returned by push or pull; absent or empty: from the start.
    pub since: Option<String>,
    /// Page size, 1 to `sync.max_pull_limit` (default 500).
    pub limit: Option<u32>,
}

/// `GET /api/v1/sync/pull?since=CURSOR&limit=N`.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    params(PullQuery),
    responses(
        (status = 200, description = "The caller's changes after the cursor, in order", body = PullResponse),
        (status = 400, description = "`since` is not a cursor, or a query value has the wrong type", body = ApiError),
        (status = 422, description = "`limit` out of range (`validation_failed`)", body = ApiError),
        UserErrors,
    ),
)]
#[get("/pull")]
pub async fn pull_changes(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PullQuery>,
) -> Result<HttpResponse, AppError> {
    let since = match query.since.as_deref() {
        None | Some("") => 0,
        Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            AppError::BadRequest("`since` must be a cursor returned by push or pull".into())
        })?,
    };
    let max = state.settings.sync.max_pull_limit;
    let limit = query.limit.unwrap_or(500);
    if !(1..=max).contains(&limit) {
        return Err(AppError::Validation(format!("`limit` must be 1 to {max}")));
    }
    let mut conn = state.pool.get().await?;
    let mut rows = records::changes_since(&mut conn, user.id, since, i64::from(limit) + 1).await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let cursor = rows.last().map_or(since, |r| r.id);
    let changes = rows
        .into_iter()
        .map(|r| {
            Ok(PulledChange {
                cursor: r.id.to_string(),
                app_id: r.app_id,
                table: r.table_name,
                record_id: r.record_id,
                op: ChangeOp::parse(&r.op)
                    .ok_or_else(|| AppError::internal(format!("bad op {}", r.op)))?,
                data: match r.data {
                    Some(serde_json::Value::Object(m)) => Some(m),
                    _ => None,
                },
                field_stamps: serde_json::from_value(r.field_timestamps).unwrap_or_default(),
                client_id: r.client_id,
                origin: r.origin,
                created_at: r.created_at,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(HttpResponse::Ok().json(PullResponse {
        changes,
        cursor: cursor.to_string(),
        has_more,
    }))
}
