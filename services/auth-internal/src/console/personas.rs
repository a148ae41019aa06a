//! `/console/personas`: the catalogue with its run state, and the pause /
//! resume / run-now forms.
//!
//! Rules:
//! - The filter lives in the query string (`?status=`), so the view is a link.
//! - Each state change is a POST form with the session's CSRF token; the
//!   token is checked before the database is touched; on success the browser
//!   is sent back (303) to the list it came from.

use actix_web::{HttpResponse, http::StatusCode, web};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use uuid::Uuid;

use super::{
    auth::{FormFields, Operator, check_csrf, safe_next},
    error::ConsoleError,
    fmt,
};
use crate::{
    db::console::{self as db, PersonaStatus, RunNow},
    state::AppState,
    web::{csrf, html_response, page},
};

#[derive(Debug, serde::Deserialize)]
pub struct PersonasQuery {
    status: Option<String>,
}

/// The badge of a run outcome (`None`: still running).
pub fn outcome_badge(outcome: Option<&str>, error_class: Option<&str>) -> Markup {
    html! {
        @match outcome {
            Some("ok") => span.badge.ok { "ok" },
            Some("simulator_failure") => span.badge.warn title="the simulated user failed, not the product" {
                "simulator failure" @if let Some(c) = error_class { " · " (c) }
            },
            Some(other) => span.badge.bad { (other) @if let Some(c) = error_class { " · " (c) } },
            None => span.badge.neutral { "running" },
        }
    }
}

fn last_run(row: &db::ConsolePersonaRow, now: DateTime<Utc>) -> Markup {
    html! {
        @match (&row.last_run_id, row.last_run_at) {
            (Some(id), Some(at)) => a href=(format!("/console/runs/{}", super::error::encode_query_value(id))) {
                (maybe_time(Some(at), now))
            },
            // Runs recorded before run records existed: only the activity time.
            _ => (maybe_time(row.last_active_at, now)),
        }
    }
}

fn last_outcome(row: &db::ConsolePersonaRow) -> Markup {
    html! {
        @if row.last_run_id.is_some() {
            (outcome_badge(row.last_outcome.as_deref(), row.last_error_class.as_deref()))
        } @else if row.consecutive_failures > 0 {
            span.badge.bad title=[row.last_error.as_deref()] { "failed" }
        } @else if row.last_active_at.is_some() {
            span.badge.ok { "ok" }
        } @else {
            span.badge.neutral { "never ran" }
        }
    }
}

fn action_form(
    op: &Operator,
    id: Uuid,
    action: &str,
    label: &str,
    class: &str,
    back: &str,
) -> Markup {
    html! {
        form.inline method="post" action=(format!("/console/personas/{id}/{action}")) {
            (csrf::hidden_field(&op.csrf_token))
            input type="hidden" name="next" value=(back);
            button.(class) type="submit" data-action=(action) { (label) }
        }
    }
}

fn maybe_time(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    html! {
        @match t {
            Some(t) => time datetime=(t.to_rfc3339()) title=(fmt::timestamp(t)) { (fmt::relative(t, now)) },
            None => span.muted { "—" },
        }
    }
}

/// `GET /console/personas?status=all|active|paused|failing|leased`.
pub async fn list_personas(
    state: web::Data<AppState>,
    op: Operator,
    query: web::Query<PersonasQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let status = match query.status.as_deref() {
        None | Some("") => PersonaStatus::All,
        Some(s) => PersonaStatus::parse(s).ok_or_else(|| {
            ConsoleError::bad_request(format!(
                "unknown status {s:?}; use all, active, paused, failing or leased"
            ))
        })?,
    };
    let now = state.clock.now();
    let mut conn = state.pool.get().await?;
    let rows = db::list_personas(&mut conn, status, now).await?;
    let back = if status == PersonaStatus::All {
        "/console/personas".to_owned()
    } else {
        format!("/console/personas?status={}", status.as_str())
    };
    let body = html! {
        h1 { "Personas" }
        form.filters method="get" action="/console/personas" {
            label { "Status"
                select name="status" {
                    @for s in PersonaStatus::ALL {
                        option value=(s.as_str()) selected[s == status] { (s.as_str()) }
                    }
                }
            }
            button.secondary type="submit" { "Filter" }
            span.muted { (rows.len()) " personas" }
        }
        @if rows.is_empty() {
            p.empty.panel { "No persona matches this filter." }
        } @else {
            table id="personas" {
                thead { tr {
                    th { "Persona" } th { "Archetype" } th { "Cadence" } th { "Locale" }
                    th { "Last run" } th { "Outcome" } th.num { "Failures in a row" }
                    th { "Backoff until" } th { "Lease holder" } th { "" }
                } }
                tbody {
                    @for row in &rows {
                        tr data-slug=(row.slug) data-paused=(row.paused) {
                            td {
                                strong { (row.display_name.as_deref().unwrap_or(&row.slug)) }
                                br; span.muted.mono { (row.slug) }
                                @if row.paused { " " span.badge.warn { "paused" } }
                            }
                            td { (row.archetype) }
                            td { (row.tick_cadence) }
                            td { (row.locale) }
                            td { (last_run(row, now)) }
                            td { (last_outcome(row)) }
                            td.num { (row.consecutive_failures) }
                            td { (maybe_time(row.retry_after.filter(|t| *t > now), now)) }
                            td {
                                @match &row.lease_owner {
                                    Some(owner) => { span.mono { (owner) } br; span.muted { "until " (maybe_time(row.lease_expires_at, now)) } },
                                    None => span.muted { "—" },
                                }
                            }
                            td.actions {
                                @if row.paused {
                                    (action_form(&op, row.user_id, "resume", "Resume", "secondary", &back))
                                } @else {
                                    (action_form(&op, row.user_id, "pause", "Pause", "danger", &back))
                                    (action_form(&op, row.user_id, "run-now", "Run now", "secondary", &back))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Personas", Some(&op.nav("personas")), body),
    ))
}

fn persona_id(path: &str) -> Result<Uuid, ConsoleError> {
    path.parse()
        .map_err(|_| ConsoleError::not_found(format!("no persona {path:?}")))
}

fn back_to(form: &std::collections::HashMap<String, String>) -> HttpResponse {
    let next = safe_next(form.get("next").map(String::as_str));
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, next))
        .finish()
}

async fn set_paused(
    state: web::Data<AppState>,
    op: Operator,
    id: String,
    form: FormFields,
    paused: bool,
) -> Result<HttpResponse, ConsoleError> {
    check_csrf(&op, &form)?;
    let id = persona_id(&id)?;
    let mut conn = state.pool.get().await?;
    if !db::set_paused(&mut conn, id, paused, state.clock.now()).await? {
        return Err(ConsoleError::not_found(format!("no persona {id}")));
    }
    tracing::info!(operator.id = %op.user_id, persona.id = %id, paused, "console: persona paused state set");
    Ok(back_to(&form))
}

/// `POST /console/personas/{id}/pause`.
pub async fn pause_persona(
    state: web::Data<AppState>,
    op: Operator,
    path: web::Path<String>,
    form: FormFields,
) -> Result<HttpResponse, ConsoleError> {
    set_paused(state, op, path.into_inner(), form, true).await
}

/// `POST /console/personas/{id}/resume`.
pub async fn resume_persona(
    state: web::Data<AppState>,
    op: Operator,
    path: web::Path<String>,
    form: FormFields,
) -> Result<HttpResponse, ConsoleError> {
    set_paused(state, op, path.into_inner(), form, false).await
}

/// `POST /console/personas/{id}/run-now`: clear the backoff, due at the next tick.
pub async fn run_persona_now(
    state: web::Data<AppState>,
    op: Operator,
    path: web::Path<String>,
    form: FormFields,
) -> Result<HttpResponse, ConsoleError> {
    check_csrf(&op, &form)?;
    let id = persona_id(&path.into_inner())?;
    let mut conn = state.pool.get().await?;
    match db::run_now(&mut conn, id, state.clock.now()).await? {
        RunNow::Scheduled => {
            tracing::info!(operator.id = %op.user_id, persona.id = %id, "console: persona run requested");
            Ok(back_to(&form))
        }
        RunNow::Paused => Err(ConsoleError::App(crate::error::AppError::Conflict(
            "the persona is paused; resume it first".into(),
        ))),
        RunNow::NotFound => Err(ConsoleError::not_found(format!("no persona {id}"))),
    }
}
