//! The persona internal API (service key): catalogue upsert, due list, claim,
//! actions and feedback ingest, release, and the operator views.
//!
//! Checks run in this order and nothing is written before all pass: body
//! shape (400, naming the field) → batch size (413) → row rules (422) →
//! persona exists (404). Batches are written in one statement with
//! deterministic ids and `ON CONFLICT DO NOTHING`, so a retry adds nothing.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, post, put, web};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use secrecy::ExposeSecret;
use serde::Deserialize;
use service_kit::{Json, persona_password};
use types::{
    ApiError,
    personas::{
        ActionResult, ActionsBatch, ClaimPersonasResponse, ClaimRequest, ClaimedPersona,
        DuePersona, DuePersonasResponse, FeedbackBatch, HeartbeatRequest, HeartbeatResponse,
        InsertedResponse, LeaseInfo, ModuleRatings, PARSE_FAILURE_MODULE, PersonaProfile,
        PersonaRatingsResponse, RatingNote, RecentAction, RecentActionsResponse, ReleaseOutcome,
        ReleaseRequest, ReleaseResponse, TickCadence, UpsertPersonasRequest,
        UpsertPersonasResponse,
    },
};
use utoipa::IntoParams;
use uuid::Uuid;

use super::responses::{BodyErrors, InternalErrors, LeaseErrors, PersonaNotFound};
use crate::{
    db::personas::{
        self as db, Backoff, DueRow, NewAction, NewFeedback, PersonaUpsert, Release, ReleaseKind,
        Upserted,
    },
    error::AppError,
    state::AppState,
};

/// Most actions in one batch.
pub const MAX_ACTIONS: usize = 500;
/// Most feedback rows in one batch.
pub const MAX_FEEDBACK: usize = 100;
/// Most personas in one catalogue upsert.
pub const MAX_CATALOGUE: usize = 1000;

/// The persona routes, inside the internal scope (`/api/v1/internal`).
/// `/personas/due` and `/personas/claim` come before `/personas/{id}`.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(upsert_personas)
        .service(list_due_personas)
        .service(claim_personas)
        .service(get_persona)
        .service(get_persona_ratings)
        .service(list_persona_actions)
        .service(record_actions)
        .service(record_feedback)
        .service(release_persona)
        .service(extend_persona_lease);
}

use types::names::is_valid_name_up_to as valid_name;

fn valid_slug(s: &str) -> bool {
    valid_name(s, 63)
        && s.bytes().all(|b| !b.is_ascii_uppercase() && b != b'_')
        && !s.starts_with('-')
}

fn cadence(s: &str) -> Result<TickCadence, AppError> {
    TickCadence::parse(s)
        .ok_or_else(|| AppError::Internal(format!("unknown cadence in database: {s}")))
}

fn module_mix(v: serde_json::Value) -> BTreeMap<String, f64> {
    serde_json::from_value(v).unwrap_or_default()
}

fn due_persona(r: DueRow) -> Result<DuePersona, AppError> {
    Ok(DuePersona {
        user_id: r.user_id,
        name: r.display_name.unwrap_or_default(),
        email: r.email,
        archetype: r.archetype,
        system_prompt: r.system_prompt,
        module_mix: module_mix(r.module_mix),
        tick_cadence: cadence(&r.tick_cadence)?,
        locale: r.locale,
        last_active_at: r.last_active_at,
    })
}

/// `PUT /api/v1/internal/personas`.
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    request_body = UpsertPersonasRequest,
    responses(
        (status = 200, description = "The catalogue was upserted in one transaction", body = UpsertPersonasResponse),
        (status = 409, description = "A slug's email belongs to an account that is not a persona (`conflict`)", body = ApiError),
        (status = 413, description = "More than 1000 personas (`payload_too_large`)", body = ApiError),
        (status = 422, description = "A persona breaks a rule (`validation_failed`), naming the field", body = ApiError),
        InternalErrors,
        BodyErrors,
    ),
)]
#[put("/personas")]
pub async fn upsert_personas(
    state: web::Data<AppState>,
    body: Json<UpsertPersonasRequest>,
) -> Result<HttpResponse, AppError> {
    let specs = body.into_inner().personas;
    if specs.len() > MAX_CATALOGUE {
        return Err(AppError::PayloadTooLarge(format!(
            "at most {MAX_CATALOGUE} personas per request"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, p) in specs.iter().enumerate() {
        let field = |f: &str| format!("personas[{i}].{f}");
        if !valid_slug(&p.slug) {
            return Err(AppError::Validation(format!(
                "`{}` must be 1–63 characters of a-z, 0-9 and '-'",
                field("slug")
            )));
        }
        if !seen.insert(p.slug.as_str()) {
            return Err(AppError::Validation(format!(
                "`{}` appears twice",
                field("slug")
            )));
        }
        for (name, value, max) in [
            ("name", &p.name, 200),
            ("archetype", &p.archetype, 100),
            ("systemPrompt", &p.system_prompt, 20_000),
        ] {
            if value.trim().is_empty() || value.chars().count() > max {
                return Err(AppError::Validation(format!(
                    "`{}` must be 1–{max} characters",
                    field(name)
                )));
            }
        }
        if p.module_mix.is_empty()
            || p.module_mix
                .iter()
                .any(|(m, w)| !valid_name(m, 64) || !w.is_finite() || *w < 0.0)
        {
            return Err(AppError::Validation(format!(
                "`{}` must map module names to non-negative weights",
                field("moduleMix")
            )));
        }
        if p.locale.as_ref().is_some_and(|l| !valid_name(l, 35)) {
            return Err(AppError::Validation(format!(
                "`{}` must be a language tag such as de or en-US",
                field("locale")
            )));
        }
    }
    let secret = state
        .settings
        .persona_seed_secret
        .expose_secret()
        .to_owned();
    let mut prepared = Vec::with_capacity(specs.len());
    for p in &specs {
        let email = persona_password::persona_email(&p.slug);
        let password = persona_password::persona_password(&secret, &email);
        let hash = state.hasher.hash(password).await?;
        prepared.push((email, hash));
    }
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    let (created, updated) = conn
        .transaction::<_, AppError, _>(async |conn| {
            let (mut created, mut updated) = (0u32, 0u32);
            for (p, (email, hash)) in specs.iter().zip(prepared) {
                let outcome = db::upsert(
                    conn,
                    &PersonaUpsert {
                        slug: &p.slug,
                        email: &email,
                        name: p.name.trim(),
                        archetype: &p.archetype,
                        system_prompt: &p.system_prompt,
                        module_mix: serde_json::to_value(&p.module_mix)
                            .map_err(AppError::internal)?,
                        tick_cadence: p.tick_cadence.as_str(),
                        locale: p.locale.as_deref(),
                        paused: p.paused,
                        password_hash: hash,
                    },
                    now,
                )
                .await?;
                match outcome {
                    Upserted::Created => created += 1,
                    Upserted::Updated => updated += 1,
                    Upserted::NotAPersona => {
                        return Err(AppError::Conflict(format!(
                            "{email} belongs to an account that is not a persona"
                        )));
                    }
                }
            }
            Ok((created, updated))
        })
        .await?;
    Ok(HttpResponse::Ok().json(UpsertPersonasResponse { created, updated }))
}

/// Query of `GET …/personas/due`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DueQuery {
    /// Most personas to list, 1 to `personas.max_claim` (default 100).
    pub limit: Option<u32>,
}

/// `GET /api/v1/internal/personas/due?limit=N`: never-run first, then oldest `lastActiveAt`.
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    params(DueQuery),
    responses(
        (status = 200, description = "The due personas (not leased)", body = DuePersonasResponse),
        (status = 400, description = "A query value has the wrong type", body = ApiError),
        (status = 422, description = "`limit` out of range (`validation_failed`)", body = ApiError),
        InternalErrors,
    ),
)]
#[get("/personas/due")]
pub async fn list_due_personas(
    state: web::Data<AppState>,
    query: web::Query<DueQuery>,
) -> Result<HttpResponse, AppError> {
    let max = state.settings.personas.max_claim;
    let limit = query.limit.unwrap_or(100);
    if !(1..=max).contains(&limit) {
        return Err(AppError::Validation(format!("`limit` must be 1 to {max}")));
    }
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    let personas = db::due(&mut conn, now, limit)
        .await?
        .into_iter()
        .map(due_persona)
        .collect::<Result<_, _>>()?;
    Ok(HttpResponse::Ok().json(DuePersonasResponse {
        personas,
        server_time: now,
    }))
}

/// `POST /api/v1/internal/personas/claim`: lease due personas (`FOR UPDATE SKIP LOCKED`).
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "The personas now leased to this worker (possibly none)", body = ClaimPersonasResponse),
        (status = 422, description = "`worker`, `limit` or `leaseSeconds` out of range (`validation_failed`)", body = ApiError),
        InternalErrors,
        BodyErrors,
    ),
)]
#[post("/personas/claim")]
pub async fn claim_personas(
    state: web::Data<AppState>,
    body: Json<ClaimRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    crate::lease::validate_claim(
        state.settings.personas.claim_limits(),
        &req.worker,
        req.limit,
        req.lease_seconds,
    )?;
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    let rows = db::claim(&mut conn, now, &req.worker, req.limit, req.lease_seconds).await?;
    let mut personas = Vec::with_capacity(rows.len());
    for r in rows {
        let (Some(lease_token), Some(lease_expires_at)) = (r.lease_token, r.lease_expires_at)
        else {
            return Err(AppError::internal("claimed row without a lease"));
        };
        personas.push(ClaimedPersona {
            persona: due_persona(r)?,
            lease_token,
            lease_expires_at,
        });
    }
    tracing::info!(worker = %req.worker, claimed = personas.len(), "personas claimed");
    Ok(HttpResponse::Ok().json(ClaimPersonasResponse {
        personas,
        server_time: now,
    }))
}

/// `{inserted, duplicates}` of a batch of `total` rows.
fn inserted_response(inserted: usize, total: usize) -> InsertedResponse {
    let inserted = u32::try_from(inserted).unwrap_or(u32::MAX);
    InsertedResponse {
        inserted,
        duplicates: u32::try_from(total)
            .unwrap_or(u32::MAX)
            .saturating_sub(inserted),
    }
}

fn check_tick_id(tick_id: &str) -> Result<(), AppError> {
    if tick_id.is_empty() || tick_id.len() > 128 || tick_id.chars().any(char::is_control) {
        return Err(AppError::Validation(
            "`tickId` must be 1–128 characters without control characters".into(),
        ));
    }
    Ok(())
}

async fn ensure_persona(conn: &mut AsyncPgConnection, id: Uuid) -> Result<(), AppError> {
    if db::exists(conn, id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound(format!("no persona {id}")))
    }
}

/// Truncate to at most `max` characters.
fn truncate(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s,
    }
}

/// The rows of an actions batch, checked (413, 422) before anything is written: row `i`
/// gets the id `{tickId}-{firstIndex + i}-{tool}`.
pub(crate) fn action_rows(
    id: Uuid,
    batch: ActionsBatch,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<NewAction>, AppError> {
    if batch.actions.len() > MAX_ACTIONS {
        return Err(AppError::PayloadTooLarge(format!(
            "at most {MAX_ACTIONS} actions per batch, got {}",
            batch.actions.len()
        )));
    }
    if batch.actions.is_empty() {
        return Err(AppError::Validation(
            "`actions` must hold 1 to 500 rows".into(),
        ));
    }
    check_tick_id(&batch.tick_id)?;
    let first = batch.first_index.unwrap_or(0) as usize;
    if first + batch.actions.len() > MAX_ACTIONS {
        return Err(AppError::Validation(format!(
            "`firstIndex` + the number of `actions` must be at most {MAX_ACTIONS}"
        )));
    }
    let mut rows = Vec::with_capacity(batch.actions.len());
    for (i, a) in batch.actions.into_iter().enumerate() {
        if !valid_name(&a.tool_name, 64) {
            return Err(AppError::Validation(format!(
                "`actions[{i}].toolName` must match ^[a-zA-Z0-9_-]{{1,64}}$"
            )));
        }
        if !valid_name(&a.module, 64) {
            return Err(AppError::Validation(format!(
                "`actions[{i}].module` must match ^[a-zA-Z0-9_-]{{1,64}}$"
            )));
        }
        if a.latency_ms.is_some_and(|l| l < 0) {
            return Err(AppError::Validation(format!(
                "`actions[{i}].latencyMs` must not be negative"
            )));
        }
        if a.input_hash.as_ref().is_some_and(|h| h.len() > 128) {
            return Err(AppError::Validation(format!(
                "`actions[{i}].inputHash` must be at most 128 characters"
            )));
        }
        rows.push(NewAction {
            id: format!("{}-{}-{}", batch.tick_id, first + i, a.tool_name),
            persona_id: id,
            tick_id: batch.tick_id.clone(),
            tool_name: a.tool_name,
            module: a.module,
            input: a.input,
            input_hash: a.input_hash,
            result: a.result.as_str(),
            error_message: a.error_message.map(|m| truncate(m, 4000)),
            latency_ms: a.latency_ms,
            created_at: a.created_at.unwrap_or(now),
            completed_at: Some(now),
        });
    }
    Ok(rows)
}

/// The rows of a feedback batch, checked (413, 422) before anything is written.
pub(crate) fn feedback_rows(
    id: Uuid,
    batch: FeedbackBatch,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<NewFeedback>, AppError> {
    if batch.feedback.len() > MAX_FEEDBACK {
        return Err(AppError::PayloadTooLarge(format!(
            "at most {MAX_FEEDBACK} feedback rows per batch, got {}",
            batch.feedback.len()
        )));
    }
    if batch.feedback.is_empty() {
        return Err(AppError::Validation(
            "`feedback` must hold 1 to 100 rows".into(),
        ));
    }
    check_tick_id(&batch.tick_id)?;
    let mut rows = Vec::with_capacity(batch.feedback.len());
    for (i, f) in batch.feedback.into_iter().enumerate() {
        let is_parse = f.module == PARSE_FAILURE_MODULE;
        if !is_parse && !valid_name(&f.module, 64) {
            return Err(AppError::Validation(format!(
                "`feedback[{i}].module` must match ^[a-zA-Z0-9_-]{{1,64}}$"
            )));
        }
        let rating = match f.rating {
            Some(r @ 1..=5) => Some(r as i16),
            Some(r) => {
                return Err(AppError::Validation(format!(
                    "`feedback[{i}].rating` must be an integer 1–5, got {r}"
                )));
            }
            None if is_parse => None,
            None => {
                return Err(AppError::Validation(format!(
                    "`feedback[{i}].rating` may be null only for module {PARSE_FAILURE_MODULE}"
                )));
            }
        };
        rows.push(NewFeedback {
            id: format!("{}-{}", batch.tick_id, f.module),
            persona_id: id,
            tick_id: batch.tick_id.clone(),
            module: f.module,
            rating,
            notes: f.notes.map(|n| truncate(n, 4000)),
            created_at: now,
        });
    }
    Ok(rows)
}

/// `POST /api/v1/internal/personas/{id}/actions`.
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    params(("id" = Uuid, Path, description = "The persona's user id")),
    request_body = ActionsBatch,
    responses(
        (status = 200, description = "Rows written; a retried batch counts as duplicates", body = InsertedResponse),
        (status = 413, description = "More than 500 actions (`payload_too_large`)", body = ApiError),
        (status = 422, description = "A row breaks a rule (`validation_failed`), naming the field", body = ApiError),
        InternalErrors,
        BodyErrors,
        PersonaNotFound,
    ),
)]
#[post("/personas/{id}/actions")]
pub async fn record_actions(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<ActionsBatch>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let rows = action_rows(id, body.into_inner(), state.clock.now())?;
    let mut conn = state.pool.get().await?;
    ensure_persona(&mut conn, id).await?;
    let inserted = db::insert_actions(&mut conn, &rows).await?;
    Ok(HttpResponse::Ok().json(inserted_response(inserted, rows.len())))
}

/// `POST /api/v1/internal/personas/{id}/feedback`.
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    params(("id" = Uuid, Path, description = "The persona's user id")),
    request_body = FeedbackBatch,
    responses(
        (status = 200, description = "Rows written; a retried batch counts as duplicates", body = InsertedResponse),
        (status = 413, description = "More than 100 feedback rows (`payload_too_large`)", body = ApiError),
        (status = 422, description = "A row breaks a rule, e.g. a rating outside 1–5 (`validation_failed`)", body = ApiError),
        InternalErrors,
        BodyErrors,
        PersonaNotFound,
    ),
)]
#[post("/personas/{id}/feedback")]
pub async fn record_feedback(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<FeedbackBatch>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let rows = feedback_rows(id, body.into_inner(), state.clock.now())?;
    let mut conn = state.pool.get().await?;
    ensure_persona(&mut conn, id).await?;
    let inserted = db::insert_feedback(&mut conn, &rows).await?;
    Ok(HttpResponse::Ok().json(inserted_response(inserted, rows.len())))
}

/// `POST /api/v1/internal/personas/{id}/release`.
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    params(("id" = Uuid, Path, description = "The persona's user id")),
    request_body = ReleaseRequest,
    responses(
        (status = 200, description = "The lease is released (also when it already was). `done` moves `lastActiveAt`; `failed` sets a backoff; `abandoned` (claimed, never started) only clears the lease", body = ReleaseResponse),
        InternalErrors,
        BodyErrors,
        LeaseErrors,
        PersonaNotFound,
    ),
)]
#[post("/personas/{id}/release")]
pub async fn release_persona(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<ReleaseRequest>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let req = body.into_inner();
    let s = &state.settings.personas;
    let kind = match req.outcome {
        ReleaseOutcome::Done => ReleaseKind::Done,
        ReleaseOutcome::Failed => ReleaseKind::Failed,
        ReleaseOutcome::Abandoned => ReleaseKind::Abandoned,
    };
    let error = req.error.map(|e| truncate(e, 2000));
    let mut conn = state.pool.get().await?;
    let outcome = db::release(
        &mut conn,
        id,
        req.lease_token,
        kind,
        error.as_deref(),
        state.clock.now(),
        Backoff {
            base_secs: s.backoff_base_secs,
            cap_secs: s.backoff_cap_secs,
        },
    )
    .await?;
    match outcome {
        Release::Released(r) | Release::AlreadyReleased(r) => {
            Ok(HttpResponse::Ok().json(ReleaseResponse {
                released: true,
                last_active_at: r.last_active_at,
                retry_after: r.retry_after,
            }))
        }
        Release::LeaseLost => Err(AppError::LeaseLost),
        Release::NotFound => Err(AppError::NotFound(format!("no persona {id}"))),
    }
}

/// `POST /api/v1/internal/personas/{id}/heartbeat`: extend the lease held with
/// `leaseToken` to now + `leaseSeconds`, so a long day's rows are never abandoned.
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    params(("id" = Uuid, Path, description = "The persona's user id")),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "The lease now runs until `leaseExpiresAt`", body = HeartbeatResponse),
        InternalErrors,
        BodyErrors,
        LeaseErrors,
        PersonaNotFound,
    ),
)]
#[post("/personas/{id}/heartbeat")]
pub async fn extend_persona_lease(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: Json<HeartbeatRequest>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let req = body.into_inner();
    let max = state.settings.personas.max_lease_secs;
    if !(1..=max).contains(&req.lease_seconds) {
        return Err(AppError::Validation(format!(
            "`leaseSeconds` must be 1 to {max}"
        )));
    }
    let mut conn = state.pool.get().await?;
    match db::heartbeat(
        &mut conn,
        id,
        req.lease_token,
        req.lease_seconds,
        state.clock.now(),
    )
    .await?
    {
        Some(lease_expires_at) => {
            Ok(HttpResponse::Ok().json(HeartbeatResponse { lease_expires_at }))
        }
        None => {
            ensure_persona(&mut conn, id).await?;
            Err(AppError::LeaseLost)
        }
    }
}

/// `GET /api/v1/internal/personas/{id}`.
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    params(("id" = Uuid, Path, description = "The persona's user id")),
    responses(
        (status = 200, description = "The persona's profile for operators", body = PersonaProfile),
        (status = 400, description = "`id` is not a UUID", body = ApiError),
        InternalErrors,
        PersonaNotFound,
    ),
)]
#[get("/personas/{id}")]
pub async fn get_persona(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    let r = db::profile(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no persona {id}")))?;
    let lease = match (r.lease_owner, r.lease_expires_at) {
        (Some(owner), Some(expires_at)) if expires_at > now => {
            Some(LeaseInfo { owner, expires_at })
        }
        _ => None,
    };
    Ok(HttpResponse::Ok().json(PersonaProfile {
        persona: DuePersona {
            user_id: r.user_id,
            email: r.email,
            name: r.display_name.unwrap_or_default(),
            archetype: r.archetype,
            system_prompt: r.system_prompt,
            module_mix: module_mix(r.module_mix),
            tick_cadence: cadence(&r.tick_cadence)?,
            locale: r.locale,
            last_active_at: r.last_active_at,
        },
        slug: r.slug,
        paused: r.paused,
        created_at: r.created_at,
        lease,
        consecutive_failures: r.consecutive_failures,
        retry_after: r.retry_after,
        last_error: r.last_error,
        actions_total: r.actions_total,
        last_tick_id: r.last_tick_id,
    }))
}

/// Query of `GET …/personas/{id}/ratings`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RatingsQuery {
    /// Recent ratings per module, 1 to 100 (default 5).
    pub last: Option<u32>,
}

/// `GET /api/v1/internal/personas/{id}/ratings?last=N`: per module count,
/// average (of real ratings) and the last N ratings with notes.
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    params(("id" = Uuid, Path, description = "The persona's user id"), RatingsQuery),
    responses(
        (status = 200, description = "Ratings per module", body = PersonaRatingsResponse),
        (status = 400, description = "`id` is not a UUID, or a query value has the wrong type", body = ApiError),
        (status = 422, description = "`last` out of range (`validation_failed`)", body = ApiError),
        InternalErrors,
        PersonaNotFound,
    ),
)]
#[get("/personas/{id}/ratings")]
pub async fn get_persona_ratings(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<RatingsQuery>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let last = query.last.unwrap_or(5);
    if !(1..=100).contains(&last) {
        return Err(AppError::Validation("`last` must be 1 to 100".into()));
    }
    let mut conn = state.pool.get().await?;
    let rows = db::ratings(&mut conn, id, last as i32).await?;
    // Rows prove the persona exists; only an empty answer needs the lookup.
    if rows.is_empty() {
        ensure_persona(&mut conn, id).await?;
    }
    let mut modules: Vec<ModuleRatings> = Vec::new();
    for r in rows {
        let note = RatingNote {
            tick_id: r.tick_id,
            rating: r.rating.map(i64::from),
            notes: r.notes,
            created_at: r.created_at,
        };
        match modules.last_mut() {
            Some(m) if m.module == r.module => m.last.push(note),
            _ => modules.push(ModuleRatings {
                module: r.module,
                count: r.count,
                average: r.average,
                last: vec![note],
            }),
        }
    }
    Ok(HttpResponse::Ok().json(PersonaRatingsResponse {
        persona_id: id,
        modules,
    }))
}

/// Query of `GET …/personas/{id}/actions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionsQuery {
    /// How many, 1 to 200 (default 20).
    pub limit: Option<u32>,
}

/// `GET /api/v1/internal/personas/{id}/actions?limit=N`: the persona's newest
/// tool calls (operators, and the runner's "your recent days" digest).
#[utoipa::path(
    tag = "internal-personas",
    security(("serviceKey" = [])),
    params(("id" = Uuid, Path, description = "The persona's user id"), ActionsQuery),
    responses(
        (status = 200, description = "Newest actions first", body = RecentActionsResponse),
        (status = 400, description = "A query value has the wrong type", body = ApiError),
        (status = 422, description = "`limit` out of range (`validation_failed`)", body = ApiError),
        InternalErrors,
        PersonaNotFound,
    ),
)]
#[get("/personas/{id}/actions")]
pub async fn list_persona_actions(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<ActionsQuery>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let limit = query.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(AppError::Validation("`limit` must be 1 to 200".into()));
    }
    let mut conn = state.pool.get().await?;
    let rows = db::recent_actions(&mut conn, id, i64::from(limit)).await?;
    // Rows prove the persona exists; only an empty answer needs the lookup.
    if rows.is_empty() {
        ensure_persona(&mut conn, id).await?;
    }
    let actions = rows
        .into_iter()
        .map(|r| RecentAction {
            id: r.id,
            tick_id: r.tick_id,
            tool_name: r.tool_name,
            module: r.module,
            result: if r.result == "error" {
                ActionResult::Error
            } else {
                ActionResult::Ok
            },
            error_message: r.error_message,
            latency_ms: r.latency_ms,
            created_at: r.created_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(RecentActionsResponse {
        persona_id: id,
        actions,
    }))
}
