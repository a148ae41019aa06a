//! Missions: the runner's internal API (claim, iteration write-back, release)
//! and the user's verdicts on proposed steps (approve executes the tool as the
//! user; reject records feedback).
//!
//! Write-back is idempotent by iteration id (a retry writes nothing and
//! answers `written: false`), appends the iteration through the LWW path as a
//! server-origin change, advances `nextRunAt` from the cadence (manual: none;
//! after an outage one catch-up run, never a burst), and ends the lease, all in
//! one transaction. Iteration history is capped at the newest
//! [`MAX_ITERATIONS`].

use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use lww::Op;
use serde::Serialize;
use serde_json::{Map, Value, json};
use service_kit::Json;
use tools::{CallContext, Registry};
use types::{
    ApiError,
    missions::{
        ClaimedMission, IterationStatus, MISSIONS_APP, MISSIONS_TABLE, Mission,
        MissionClaimRequest, MissionClaimResponse, MissionIteration, MissionReleaseRequest,
        PlanStep, RejectStepRequest, ResolvedInput, StepIntent, StepStatus, WriteIterationRequest,
        WriteIterationResponse,
    },
};
use utoipa::ToSchema;
use uuid::Uuid;

use super::responses::{BodyErrors, InternalErrors, LeaseErrors, UserErrors};
use crate::{
    auth::AuthUser,
    db::{
        missions as db,
        records::{self, Author, RecordKey},
    },
    error::AppError,
    missions::MissionRecord,
    state::AppState,
    store::{self, PgRecordStore},
};

pub use crate::missions::MAX_ITERATIONS;
/// Iterations handed to the planner.
pub const RECENT_ITERATIONS: usize = 3;
/// Characters of an input's content handed to the planner.
pub const INPUT_CONTENT_CHARS: usize = 2000;

/// The runner's routes, inside the internal scope (`/api/v1/internal`).
pub fn internal_routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(claim_missions)
        .service(write_iteration)
        .service(release_mission);
}

/// The user's routes, inside `/api/v1/missions`.
pub fn user_routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(approve_step).service(reject_step);
}

/// Answer of `POST /api/v1/internal/missions/{id}/release`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MissionReleased {
    /// Always `true`.
    pub released: bool,
    /// When the mission is due again at the earliest (`null`: at once).
    pub retry_after: Option<DateTime<Utc>>,
}

/// Answer of the user's approve and reject: the step as stored and the
/// iteration's overall status after the verdict.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepVerdict {
    pub step: Option<PlanStep>,
    pub iteration_status: IterationStatus,
}

fn mission_key(user_id: Uuid, id: &str) -> RecordKey<'_> {
    RecordKey {
        user_id,
        app_id: MISSIONS_APP,
        table: MISSIONS_TABLE,
        record_id: id,
    }
}

fn truncate(s: &str, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((i, _)) => (s[..i].to_owned(), true),
        None => (s.to_owned(), false),
    }
}

fn text_field(data: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| {
            data.get(*n)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(str::to_owned)
}

/// `POST /api/v1/internal/missions/claim`.
#[utoipa::path(
    tag = "internal-missions",
    security(("serviceKey" = [])),
    request_body = MissionClaimRequest,
    responses(
        (status = 200, description = "Due missions now leased to this worker, with resolved inputs, recent iterations, proposable tools and tokens used today", body = MissionClaimResponse),
        (status = 422, description = "`worker`, `limit` or `leaseSeconds` out of range (`validation_failed`)", body = ApiError),
        InternalErrors,
        BodyErrors,
    ),
)]
#[post("/missions/claim")]
pub async fn claim_missions(
    state: web::Data<AppState>,
    body: Json<MissionClaimRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    crate::lease::validate_claim(
        state.settings.missions.claim_limits(),
        &req.worker,
        req.limit,
        req.lease_seconds,
    )?;
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    // The lease and the reads it answers with are one transaction: a failure between
    // them (a lost connection, a timeout) rolls the lease back, so nothing stays leased
    // that no runner was told about.
    let missions = conn
        .transaction::<_, AppError, _>(async |conn| {
            let claimed = db::claim(conn, now, &req.worker, req.limit, req.lease_seconds).await?;
            let proposable: Vec<String> = Registry::global()
                .proposable()
                .map(|t| t.name.to_owned())
                .collect();
            let mut missions = Vec::with_capacity(claimed.len());
            for row in claimed {
                let record = records::get(conn, mission_key(row.user_id, &row.mission_id)).await?;
                let Some(mission) = record
                    .as_ref()
                    .and_then(|r| MissionRecord::new(&r.data_map()).parse(&row.mission_id))
                else {
                    // Unreadable or vanished: give the lease back, try again in an hour.
                    tracing::warn!(mission.id = %row.mission_id, user.id = %row.user_id, "claimed mission is not readable; skipping");
                    db::end_lease(
                        conn,
                        row.user_id,
                        &row.mission_id,
                        Some(now + chrono::TimeDelta::hours(1)),
                    )
                    .await?;
                    continue;
                };
                let mut resolved = Vec::with_capacity(mission.inputs.len());
                for input in &mission.inputs {
                    let key = RecordKey {
                        user_id: row.user_id,
                        app_id: &input.module,
                        table: &input.table,
                        record_id: &input.id,
                    };
                    let found = if store::valid_name(&input.module) && store::valid_name(&input.table) {
                        records::get(conn, key).await?
                    } else {
                        None
                    };
                    resolved.push(match found {
                        Some(r) => {
                            let data = r.data_map();
                            let content = text_field(
                                &data,
                                &["content", "description", "notes", "objective", "body"],
                            );
                            let (content, truncated) = match content {
                                Some(c) => {
                                    let (c, t) = truncate(&c, INPUT_CONTENT_CHARS);
                                    (Some(c), t)
                                }
                                None => (None, false),
                            };
                            ResolvedInput {
                                module: input.module.clone(),
                                table: input.table.clone(),
                                id: input.id.clone(),
                                found: true,
                                title: text_field(&data, &["title", "name"]).map(|t| truncate(&t, 300).0),
                                content,
                                truncated,
                            }
                        }
                        None => ResolvedInput {
                            module: input.module.clone(),
                            table: input.table.clone(),
                            id: input.id.clone(),
                            found: false,
                            title: None,
                            content: None,
                            truncated: false,
                        },
                    });
                }
                let recent: Vec<MissionIteration> = mission
                    .iterations
                    .iter()
                    .rev()
                    .take(RECENT_ITERATIONS)
                    .rev()
                    .cloned()
                    .collect();
                let tokens_used_today = db::tokens_used(conn, row.user_id, now.date_naive()).await?;
                missions.push(ClaimedMission {
                    user_id: row.user_id,
                    mission: Mission {
                        iterations: Vec::new(),
                        ..mission
                    },
                    scheduled_for: row.leased_slot,
                    lease_token: row.lease_token,
                    lease_expires_at: row.lease_expires_at,
                    resolved_inputs: resolved,
                    recent_iterations: recent,
                    proposable_tools: proposable.clone(),
                    tokens_used_today,
                });
            }
            Ok(missions)
        })
        .await?;
    tracing::info!(worker = %req.worker, claimed = missions.len(), "missions claimed");
    Ok(HttpResponse::Ok().json(MissionClaimResponse {
        missions,
        server_time: now,
    }))
}

/// `POST /api/v1/internal/missions/{id}/iterations`.
#[utoipa::path(
    tag = "internal-missions",
    security(("serviceKey" = [])),
    params(("id" = String, Path, description = "The mission (record) id")),
    request_body = WriteIterationRequest,
    responses(
        (status = 200, description = "Written, or `written: false` when this iteration id already was (a retry)", body = WriteIterationResponse),
        (status = 404, description = "No such mission, or it was deleted (`not_found`)", body = ApiError),
        (status = 422, description = "`iteration.id` is not 1–200 characters (`validation_failed`)", body = ApiError),
        InternalErrors,
        BodyErrors,
        LeaseErrors,
    ),
)]
#[post("/missions/{id}/iterations")]
pub async fn write_iteration(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<WriteIterationRequest>,
) -> Result<HttpResponse, AppError> {
    let mission_id = id.into_inner();
    let req = body.into_inner();
    let iteration_id = req.iteration.id.clone();
    if iteration_id.is_empty() || iteration_id.len() > 200 {
        return Err(AppError::Validation(
            "`iteration.id` must be 1–200 characters".into(),
        ));
    }
    let iteration = serde_json::to_value(&req.iteration).map_err(AppError::internal)?;
    let now = state.clock.now();
    let st = state.clone();
    let mut conn = state.pool.get().await?;
    let answer = conn
        .transaction::<_, AppError, _>(async |conn| {
            let Some(lease) = db::lock_lease(conn, &mission_id, req.lease_token).await? else {
                // Not held: a retry of a write that already landed, or a lost lease.
                let owners = db::owners(conn, &mission_id).await?;
                if owners.is_empty() {
                    return Err(AppError::NotFound(format!("no mission {mission_id}")));
                }
                for o in owners {
                    if let Some(r) = records::get(conn, mission_key(o.user_id, &mission_id)).await?
                    {
                        let data = r.data_map();
                        let mission = MissionRecord::new(&data);
                        if mission.has_iteration(&iteration_id) {
                            return Ok(WriteIterationResponse {
                                written: false,
                                next_run_at: mission.next_run_at(),
                            });
                        }
                    }
                }
                return Err(AppError::LeaseLost);
            };
            let key = mission_key(lease.user_id, &mission_id);
            let Some(record) = records::get(conn, key).await? else {
                db::end_lease(conn, lease.user_id, &mission_id, None).await?;
                return Err(AppError::NotFound(format!(
                    "mission {mission_id} was deleted"
                )));
            };
            let data = record.data_map();
            let mission = MissionRecord::new(&data);
            if mission.has_iteration(&iteration_id) {
                db::end_lease(conn, lease.user_id, &mission_id, None).await?;
                return Ok(WriteIterationResponse {
                    written: false,
                    next_run_at: mission.next_run_at(),
                });
            }
            let next = mission.next_slot(lease.leased_slot.unwrap_or(now), now);
            let patch = mission.append_iteration(iteration, next);
            let change = store::server_change(&st, Op::Update, patch, now);
            let author = Author {
                client_id: "mission-runner",
                origin: "mission-runner",
            };
            records::append(conn, key, &change, author, now).await?;
            db::end_lease(conn, lease.user_id, &mission_id, None).await?;
            db::add_tokens(conn, lease.user_id, now.date_naive(), req.tokens).await?;
            Ok(WriteIterationResponse {
                written: true,
                next_run_at: next,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /api/v1/internal/missions/{id}/release`.
#[utoipa::path(
    tag = "internal-missions",
    security(("serviceKey" = [])),
    params(("id" = String, Path, description = "The mission (record) id")),
    request_body = MissionReleaseRequest,
    responses(
        (status = 200, description = "The lease is given back", body = MissionReleased),
        (status = 404, description = "No such mission (`not_found`)", body = ApiError),
        InternalErrors,
        BodyErrors,
        LeaseErrors,
    ),
)]
#[post("/missions/{id}/release")]
pub async fn release_mission(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Json<MissionReleaseRequest>,
) -> Result<HttpResponse, AppError> {
    let mission_id = id.into_inner();
    let req = body.into_inner();
    let now = state.clock.now();
    let retry_after = req
        .retry_after_seconds
        .filter(|s| *s > 0)
        .map(|s| now + chrono::TimeDelta::seconds(i64::from(s)));
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, AppError, _>(async |conn| {
        match db::lock_lease(conn, &mission_id, req.lease_token).await? {
            Some(lease) => {
                db::end_lease(conn, lease.user_id, &mission_id, retry_after).await?;
                Ok(())
            }
            None if db::owners(conn, &mission_id).await?.is_empty() => {
                Err(AppError::NotFound(format!("no mission {mission_id}")))
            }
            None => Err(AppError::LeaseLost),
        }
    })
    .await?;
    Ok(HttpResponse::Ok().json(MissionReleased {
        released: true,
        retry_after,
    }))
}

/// Load the user's mission and one step of it (404 for anything not theirs).
async fn load_step(
    state: &AppState,
    user: Uuid,
    mission_id: &str,
    iteration_id: &str,
    step_id: &str,
) -> Result<MissionIteration, AppError> {
    let mut conn = state.pool.get().await?;
    let record = records::get(&mut conn, mission_key(user, mission_id))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no mission {mission_id}")))?;
    Ok(MissionRecord::new(&record.data_map()).iteration_with_step(iteration_id, step_id)?)
}

/// Record a verdict on a step: lock the mission, re-read the step, apply
/// `decide` unless another request already decided it (the rule is
/// [`MissionRecord::decide`]), write the iterations back through the LWW path.
/// Returns the iteration as stored.
async fn record_verdict(
    state: &web::Data<AppState>,
    user: Uuid,
    mission_id: &str,
    iteration_id: &str,
    step_id: &str,
    decide: impl FnOnce(&mut types::missions::PlanStep) + Send,
) -> Result<MissionIteration, AppError> {
    let now = state.clock.now();
    let st = state.clone();
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let key = mission_key(user, mission_id);
        // Lock the record row so concurrent verdicts apply one after the other.
        records::lock(conn, key).await?;
        let record = records::get(conn, key)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no mission {mission_id}")))?;
        let decided =
            MissionRecord::new(&record.data_map()).decide(iteration_id, step_id, now, decide)?;
        if let Some(patch) = decided.patch {
            let change = store::server_change(&st, Op::Update, patch, now);
            let author = Author {
                client_id: "server",
                origin: "approval",
            };
            records::append(conn, key, &change, author, now).await?;
        }
        Ok(decided.iteration)
    })
    .await
}

fn step_answer(iteration: &MissionIteration, step_id: &str) -> HttpResponse {
    HttpResponse::Ok().json(StepVerdict {
        step: iteration.plan.iter().find(|s| s.id == step_id).cloned(),
        iteration_status: iteration.overall_status,
    })
}

type StepPath = web::Path<(String, String, String)>;

/// `POST /api/v1/missions/{id}/iterations/{iterationId}/steps/{stepId}/approve`:
/// execute the step's tool as the user (idempotent: the record ids derive from
/// the step id) and record `approved` with the result, or `failed` with the error.
#[utoipa::path(
    tag = "missions",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The mission (record) id"),
        ("iterationId" = String, Path, description = "The iteration id"),
        ("stepId" = String, Path, description = "The plan step id"),
    ),
    responses(
        (status = 200, description = "The step is `approved` with the tool's result, or `failed` with the error (also on a repeat)", body = StepVerdict),
        (status = 404, description = "No such mission, iteration or step of the caller (`not_found`)", body = ApiError),
        (status = 409, description = "The step was already rejected or skipped (`conflict`)", body = ApiError),
        UserErrors,
    ),
)]
#[post("/{id}/iterations/{iterationId}/steps/{stepId}/approve")]
pub async fn approve_step(
    state: web::Data<AppState>,
    user: AuthUser,
    path: StepPath,
) -> Result<HttpResponse, AppError> {
    let (mission_id, iteration_id, step_id) = path.into_inner();
    let iteration = load_step(&state, user.id, &mission_id, &iteration_id, &step_id).await?;
    let Some(step) = iteration.plan.iter().find(|s| s.id == step_id).cloned() else {
        return Err(AppError::NotFound(format!("no step {step_id}")));
    };
    match step.status {
        StepStatus::Approved | StepStatus::Failed => return Ok(step_answer(&iteration, &step_id)),
        StepStatus::Rejected | StepStatus::Skipped => {
            return Err(AppError::Conflict(
                format!("step {step_id} was already {:?}", step.status).to_lowercase(),
            ));
        }
        StepStatus::Planned | StepStatus::Staged => {}
    }
    let outcome: Result<Value, String> = match &step.intent {
        StepIntent::Note { .. } => Ok(json!({ "acknowledged": true })),
        StepIntent::ToolCall { tool_name, params } => {
            let registry = Registry::global();
            match registry.get(tool_name) {
                Some(spec) if spec.proposable => {
                    let store =
                        PgRecordStore::new(state.clone(), user.id, "mission-approval", "approval");
                    let ctx = CallContext::new(state.clock.now()).with_id_seed(step.id.clone());
                    registry
                        .call(tool_name, params.clone(), &store, &ctx)
                        .await
                        .map_err(|e| e.to_string())
                }
                _ => Err(format!("tool {tool_name} may not be proposed by a mission")),
            }
        }
    };
    let iteration =
        record_verdict(
            &state,
            user.id,
            &mission_id,
            &iteration_id,
            &step_id,
            |s| match outcome {
                Ok(result) => {
                    s.status = StepStatus::Approved;
                    s.outcome = Some(result);
                }
                Err(error) => {
                    s.status = StepStatus::Failed;
                    s.outcome = Some(json!({ "error": error }));
                }
            },
        )
        .await?;
    Ok(step_answer(&iteration, &step_id))
}

/// `POST /api/v1/missions/{id}/iterations/{iterationId}/steps/{stepId}/reject`.
#[utoipa::path(
    tag = "missions",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The mission (record) id"),
        ("iterationId" = String, Path, description = "The iteration id"),
        ("stepId" = String, Path, description = "The plan step id"),
    ),
    request_body(content = Option<RejectStepRequest>, description = "Optional feedback for the planner (the body may be empty)"),
    responses(
        (status = 200, description = "The step is `rejected` (also on a repeat)", body = StepVerdict),
        (status = 404, description = "No such mission, iteration or step of the caller (`not_found`)", body = ApiError),
        (status = 409, description = "The step was already approved or failed (`conflict`)", body = ApiError),
        UserErrors,
    ),
)]
#[post("/{id}/iterations/{iterationId}/steps/{stepId}/reject")]
pub async fn reject_step(
    state: web::Data<AppState>,
    user: AuthUser,
    path: StepPath,
    body: Option<Json<RejectStepRequest>>,
) -> Result<HttpResponse, AppError> {
    let (mission_id, iteration_id, step_id) = path.into_inner();
    let feedback = body
        .and_then(|b| b.into_inner().feedback)
        .map(|f| truncate(&f, 2000).0);
    let iteration = load_step(&state, user.id, &mission_id, &iteration_id, &step_id).await?;
    if let Some(step) = iteration.plan.iter().find(|s| s.id == step_id) {
        if matches!(step.status, StepStatus::Approved | StepStatus::Failed) {
            return Err(AppError::Conflict(format!(
                "step {step_id} was already decided"
            )));
        }
        if step.status == StepStatus::Rejected {
            return Ok(step_answer(&iteration, &step_id));
        }
    }
    let iteration = record_verdict(&state, user.id, &mission_id, &iteration_id, &step_id, |s| {
        s.status = StepStatus::Rejected;
        s.feedback = feedback;
    })
    .await?;
    Ok(step_answer(&iteration, &step_id))
}
