//! Run records over HTTP (service key): the runner's upsert, the runs list and a run's
//! detail. The queries live in `db::runs`; these handlers only validate and map.
//!
//! Rules:
//! - Upsert checks, in order, before anything is written: raw body ≤
//!   `runs.max_body_bytes` (413) → JSON shape (400 naming the field) → record rules
//!   (422 naming the field) → persona exists (404). The transcript is then capped at
//!   `runs.transcript_cap_bytes` by `Transcript::cap` (never refused for its size).
//! - The run id must be `<tickId>.<personaId>` of the path's persona.
//! - A snapshot may carry the run's new action rows (`actions`, with `firstIndex`) and its
//!   feedback (`feedback`), checked like their own endpoints' batches and written in the
//!   snapshot's transaction: one request per turn writes the turn's rows and the run row.
//! - The first write of a run answers 201, later ones 200 with `written` saying
//!   whether the stored snapshot changed (a retry or an older snapshot changes nothing).
//! - Query errors are 400 naming the parameter.

use actix_web::{HttpRequest, HttpResponse, dev::Payload, get, post, web};
use diesel_async::AsyncConnection;
use types::{
    ApiError,
    runs::{RunDetail, RunOutcome, RunRecord, RunWritten, RunsPage},
};
use utoipa::IntoParams;
use uuid::Uuid;

use super::responses::{BodyErrors, InternalErrors, QueryErrors};
use crate::{
    db::{
        personas::{self as personas_db, NewAction, NewFeedback},
        runs::{self as db, NewRun, RunCursor, RunFilter, RunWrite},
    },
    error::AppError,
    routes::personas as personas_routes,
    routes::reports::{PeriodParams, bad_param, check_chars, json_of, parse_param, period_params},
    state::AppState,
};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(record_run).service(list_runs).service(get_run);
}

/// Longest error text kept on a run.
pub const MAX_ERROR_CHARS: usize = 20_000;

fn check_text(field: &'static str, v: &str, min: usize, max: usize) -> Result<(), AppError> {
    let n = v.chars().count();
    if n < min || n > max || v.chars().any(char::is_control) {
        return Err(AppError::Validation(format!(
            "`{field}` must be {min}–{max} characters without control characters"
        )));
    }
    Ok(())
}

/// An error class: snake_case, 1–64 characters.
pub fn valid_error_class(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The record rules (422), given the path's persona.
fn validate(persona_id: Uuid, r: &RunRecord) -> Result<(), AppError> {
    check_text("tickId", &r.tick_id, 1, 128)?;
    if r.tick_id.contains('~') {
        // `{runId}~k` is an action batch of run `runId` (the reports' attribution).
        return Err(AppError::Validation(
            "`tickId` must not contain `~` (it marks action batches)".into(),
        ));
    }
    if r.id != format!("{}.{persona_id}", r.tick_id) {
        return Err(AppError::Validation(format!(
            "`id` must be `<tickId>.<personaId>` = `{}.{persona_id}`",
            r.tick_id
        )));
    }
    check_text("worker", &r.worker, 1, 200)?;
    check_text("provider", &r.provider, 1, 100)?;
    check_text("model", &r.model, 1, 200)?;
    check_text("appVersion", &r.app_version, 0, 100)?;
    match (r.outcome, r.finished_at) {
        (Some(_), None) => {
            return Err(AppError::Validation(
                "`finishedAt` is required once `outcome` is set".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(AppError::Validation(
                "`outcome` is required once `finishedAt` is set".into(),
            ));
        }
        _ => {}
    }
    if r.finished_at.is_some_and(|f| f < r.started_at) {
        return Err(AppError::Validation(
            "`finishedAt` must not be before `startedAt`".into(),
        ));
    }
    if let Some(c) = &r.error_class
        && !valid_error_class(c)
    {
        return Err(AppError::Validation(
            "`errorClass` must be 1–64 characters of a-z, 0-9 and '_'".into(),
        ));
    }
    if matches!(r.outcome, Some(RunOutcome::Failed)) && r.error_class.is_none() {
        return Err(AppError::Validation(
            "`errorClass` is required when `outcome` is `failed`".into(),
        ));
    }
    if r.error
        .as_ref()
        .is_some_and(|e| e.chars().count() > MAX_ERROR_CHARS)
    {
        return Err(AppError::Validation(format!(
            "`error` must be at most {MAX_ERROR_CHARS} characters"
        )));
    }
    if r.tool_errors > r.tool_calls {
        return Err(AppError::Validation(
            "`toolErrors` must not exceed `toolCalls`".into(),
        ));
    }
    Ok(())
}

/// `POST /api/v1/internal/personas/{id}/runs`: insert or advance one run.
#[utoipa::path(
    tag = "internal-runs",
    security(("serviceKey" = [])),
    params(("id" = Uuid, Path, description = "The persona's user id")),
    request_body = RunRecord,
    responses(
        (status = 201, description = "First snapshot of this run stored", body = RunWritten),
        (status = 200, description = "A newer snapshot stored (`written: true`), or a retry / older snapshot ignored (`written: false`)", body = RunWritten),
        (status = 404, description = "No such persona (`not_found`)", body = ApiError),
        (status = 413, description = "Raw body over `runs.max_body_bytes` (`payload_too_large`)", body = ApiError),
        (status = 422, description = "The record breaks a rule (`validation_failed`), naming the field", body = ApiError),
        BodyErrors, InternalErrors,
    ),
)]
#[post("/personas/{id}/runs")]
pub async fn record_run(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let persona_id = id.into_inner();
    let mut payload: Payload = payload.into_inner();
    let record: RunRecord =
        service_kit::json::read_json(&req, &mut payload, state.settings.runs.max_body_bytes)
            .await?;
    Ok(store_run(&state, persona_id, record).await?)
}

/// The action and feedback rows that travel with a snapshot, checked like their own
/// endpoints' batches; they belong to this run.
fn rows_of(
    persona_id: Uuid,
    record: &mut RunRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Vec<NewAction>, Vec<NewFeedback>), AppError> {
    let actions = match record.actions.take() {
        Some(batch) => {
            if !types::personas::is_batch_tick_of(&batch.tick_id, &record.id) {
                return Err(AppError::Validation(
                    "`actions.tickId` must be the run's id or `<runId>~<k>`".into(),
                ));
            }
            personas_routes::action_rows(persona_id, batch, now)?
        }
        None => Vec::new(),
    };
    let feedback = match record.feedback.take() {
        Some(batch) if batch.tick_id != record.id => {
            return Err(AppError::Validation(
                "`feedback.tickId` must be the run's id".into(),
            ));
        }
        Some(batch) => personas_routes::feedback_rows(persona_id, batch, now)?,
        None => Vec::new(),
    };
    Ok((actions, feedback))
}

/// A write that broke a row's reference to its persona: 404 for that persona.
fn persona_missing(e: diesel::result::Error, persona_id: Uuid) -> AppError {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            AppError::NotFound(format!("no persona {persona_id}"))
        }
        other => other.into(),
    }
}

async fn store_run(
    state: &AppState,
    persona_id: Uuid,
    mut record: RunRecord,
) -> Result<HttpResponse, AppError> {
    validate(persona_id, &record)?;
    let now = state.clock.now();
    let (actions, feedback) = rows_of(persona_id, &mut record, now)?;
    // The row needs the record's other fields, not its transcript: no copy of it.
    let mut transcript = record.transcript.take();
    let cut = transcript
        .as_mut()
        .is_some_and(|t| t.cap(state.settings.runs.transcript_cap_bytes));
    let transcript = transcript
        .map(|t| serde_json::to_value(&t))
        .transpose()
        .map_err(AppError::internal)?;
    let row = NewRun::from_record(persona_id, &record, transcript, now)
        .map_err(|e| AppError::Validation(e.to_string()))?;
    let mut conn = state.pool.get().await?;
    // Rows and snapshot commit together: a snapshot never counts calls whose rows are
    // missing, and one round trip writes a whole turn. An unknown persona is found by
    // the rows' foreign keys (nothing is written), not by a lookup before every write.
    let missing = |e| persona_missing(e, persona_id);
    let write = if actions.is_empty() && feedback.is_empty() {
        db::upsert_run(&mut conn, &row).await.map_err(missing)?
    } else {
        conn.transaction::<_, AppError, _>(async |conn| {
            if !actions.is_empty() {
                personas_db::insert_actions(conn, &actions)
                    .await
                    .map_err(missing)?;
            }
            if !feedback.is_empty() {
                personas_db::insert_feedback(conn, &feedback)
                    .await
                    .map_err(missing)?;
            }
            db::upsert_run(conn, &row).await.map_err(missing)
        })
        .await?
    };
    let (status, written, revision) = match write {
        RunWrite::Inserted => (actix_web::http::StatusCode::CREATED, true, record.revision),
        RunWrite::Updated => (actix_web::http::StatusCode::OK, true, record.revision),
        RunWrite::Unchanged { stored_revision } => (
            actix_web::http::StatusCode::OK,
            false,
            u32::try_from(stored_revision).unwrap_or(0),
        ),
    };
    tracing::debug!(run.id = %record.id, persona.id = %persona_id, revision, written, transcript.cut = cut, "run upserted");
    Ok(HttpResponse::build(status).json(RunWritten {
        run_id: record.id,
        written,
        revision,
        transcript_cut: cut && written,
    }))
}

/// Query of `GET /api/v1/internal/runs`.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct RunsQuery {
    /// A persona's user id.
    pub persona: Option<String>,
    /// `ok`, `simulator_failure` or `failed`.
    pub outcome: Option<String>,
    /// An error class such as `llm` or `deadline`.
    pub error_class: Option<String>,
    /// Start of the period on `startedAt` (RFC 3339 or `YYYY-MM-DD`, UTC); default `to` − 7 days.
    pub from: Option<String>,
    /// End of the period, exclusive; default now.
    pub to: Option<String>,
    /// Case-insensitive text searched in the run's error and its rating notes.
    pub q: Option<String>,
    /// Runs per page, 1–500 (default 50).
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

period_params!(RunsQuery);

/// Parses the runs list's query (400 naming the parameter).
pub fn run_filter(
    q: &RunsQuery,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<RunFilter, AppError> {
    let period = q.period(now)?;
    let persona = parse_param("persona", q.persona.as_deref(), "must be a UUID", |p| {
        Uuid::parse_str(p).ok()
    })?;
    let outcome = parse_param(
        "outcome",
        q.outcome.as_deref(),
        "must be ok, simulator_failure or failed",
        RunOutcome::parse,
    )?;
    if let Some(c) = &q.error_class
        && !valid_error_class(c)
    {
        return Err(bad_param(
            "errorClass",
            "must be 1–64 characters of a-z, 0-9 and '_'",
        ));
    }
    check_chars("q", q.q.as_deref(), 200)?;
    let limit = parse_param(
        "limit",
        q.limit.as_deref(),
        "must be an integer from 1 to 500",
        |l| l.parse::<u32>().ok().filter(|l| (1..=500).contains(l)),
    )?
    .unwrap_or(50);
    let cursor = parse_param(
        "cursor",
        q.cursor.as_deref(),
        "is not a cursor of this list",
        RunCursor::decode,
    )?;
    Ok(RunFilter {
        persona,
        outcome,
        error_class: q.error_class.clone(),
        from: period.from,
        to: period.to,
        q: q.q.clone().filter(|t| !t.trim().is_empty()),
        limit,
        cursor,
    })
}

/// `GET /api/v1/internal/runs`: newest first, keyset-paged.
#[utoipa::path(
    tag = "internal-runs",
    security(("serviceKey" = [])),
    params(RunsQuery),
    responses(
        (status = 200, description = "One page of runs, newest first", body = RunsPage),
        QueryErrors, InternalErrors,
    ),
)]
#[get("/runs")]
pub async fn list_runs(
    state: web::Data<AppState>,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, AppError> {
    let filter = run_filter(&query, state.clock.now())?;
    json_of(&state, async |c| db::list_runs(c, &filter).await).await
}

/// `GET /api/v1/internal/runs/{runId}`: summary, transcript, actions and feedback.
#[utoipa::path(
    tag = "internal-runs",
    security(("serviceKey" = [])),
    params(("runId" = String, Path, description = "`<tickId>.<personaId>`")),
    responses(
        (status = 200, description = "The run; `transcript` is null once retention dropped it", body = RunDetail),
        (status = 404, description = "No such run (`not_found`)", body = ApiError),
        InternalErrors,
    ),
)]
#[get("/runs/{runId}")]
pub async fn get_run(
    state: web::Data<AppState>,
    run_id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let run_id = run_id.into_inner();
    let mut conn = state.pool.get().await?;
    let detail = db::get_run(&mut conn, &run_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no run {run_id}")))?;
    Ok(HttpResponse::Ok().json(detail))
}
