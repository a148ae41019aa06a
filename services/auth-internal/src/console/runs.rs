//! `/console/runs/{runId}`: one persona run as a conversation.
//!
//! Rules:
//! - The page is `db::runs::get_run` (the same detail as the JSON route):
//!   summary, transcript, actions and feedback; nothing else is queried.
//! - The transcript reads top to bottom like the conversation the model had:
//!   system prompt, user turns, assistant turns with their tool calls
//!   (arguments shown as JSON), tool results as the model saw them (errors
//!   highlighted), omitted stretches marked; then the rating prompt and reply.
//! - Without a transcript (retention dropped it, or a run written before run
//!   records existed) the actions are shown as the tool-call list instead.

use actix_web::{HttpResponse, http::StatusCode, web};
use maud::{Markup, html};
use types::runs::{RunDetail, Transcript, TranscriptMessage};

use super::{auth::Operator, error::ConsoleError, fmt, personas::outcome_badge};
use crate::{db::runs as db, state::AppState, web::html_response, web::page};

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn transcript(t: &Transcript) -> Markup {
    // Turn numbers: each assistant message is one model turn.
    let mut turn = 0u32;
    let numbered: Vec<(u32, &TranscriptMessage)> = t
        .messages
        .iter()
        .map(|m| {
            if matches!(m, TranscriptMessage::Assistant { .. }) {
                turn += 1;
            }
            (turn, m)
        })
        .collect();
    html! {
        div.conversation id="transcript" {
            details.msg.system {
                summary { span.role { "system prompt" } " (" (t.system.chars().count()) " characters)" }
                div.text { (t.system) }
            }
            @for (turn, m) in &numbered {
                @match m {
                    TranscriptMessage::User { text } => {
                        div.msg.user { div.role { "user" } div.text { (text) } }
                    },
                    TranscriptMessage::Assistant { text, tool_calls } => {
                        div.msg.assistant data-turn=(turn) {
                            div.role { "assistant · turn " (turn) }
                            @if let Some(text) = text { div.text { (text) } }
                            @for c in tool_calls {
                                div.tool-call {
                                    strong { "→ " code { (c.name) } } " " span.muted.mono { (c.id) }
                                    pre { (pretty(&c.arguments)) }
                                }
                            }
                        }
                    },
                    TranscriptMessage::Tool { call_id, name, content, is_error } => {
                        div class=(if *is_error { "msg tool error" } else { "msg tool" }) {
                            div.role {
                                "tool result · " code { (name.as_deref().unwrap_or("?")) } " " span.mono { (call_id) }
                                @if *is_error { " " span.badge.bad { "error" } }
                            }
                            pre { (content) }
                        }
                    },
                    TranscriptMessage::Omitted { messages, bytes } => {
                        div.msg.system { div.role { "omitted" }
                            (messages) " messages (" (fmt::count(i64::try_from(*bytes).unwrap_or(i64::MAX))) " bytes) were cut from the middle to keep the transcript under its cap" }
                    },
                }
            }
            @if let Some(prompt) = &t.rating_prompt {
                details.msg.user {
                    summary { span.role { "rating prompt" } }
                    div.text { (prompt) }
                }
            }
            @if let Some(reply) = &t.rating_reply {
                div.msg.assistant { div.role { "rating reply (raw)" } pre { (reply) } }
            }
            @if let Some(cut) = &t.cut {
                p.muted { "This transcript was capped: " (cut.messages) " messages and " (cut.texts)
                    " texts shortened; it was " (fmt::count(i64::try_from(cut.original_bytes).unwrap_or(i64::MAX))) " bytes." }
            }
        }
    }
}

fn actions(d: &RunDetail) -> Markup {
    html! {
        @if d.actions.is_empty() {
            p.empty.panel { "No tool calls." }
        } @else {
            table id="actions" {
                thead { tr { th { "#" } th { "Tool" } th { "Arguments" } th { "Result" } th.num { "Latency" } } }
                tbody {
                    @for (i, a) in d.actions.iter().enumerate() {
                        @let failed = matches!(a.result, types::personas::ActionResult::Error);
                        tr class=(if failed { "error" } else { "" }) {
                            td { (i + 1) }
                            td { code { (a.tool_name) } br; span.muted { (a.module) } }
                            td { @if let Some(input) = &a.input { pre { (pretty(input)) } } }
                            td {
                                @if failed {
                                    span.badge.bad { "error" }
                                    @if let Some(e) = &a.error_message { br; (e) }
                                } @else { span.badge.ok { "ok" } }
                            }
                            td.num { @if let Some(ms) = a.latency_ms { (ms) " ms" } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/runs/{runId}`.
pub async fn run_page(
    state: web::Data<AppState>,
    op: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let run_id = path.into_inner();
    let mut conn = state.pool.get().await?;
    let d = db::get_run(&mut conn, &run_id)
        .await?
        .ok_or_else(|| ConsoleError::not_found(format!("no run {run_id}")))?;
    let slug = crate::db::console::persona_state(&mut conn, d.summary.persona_id)
        .await?
        .map(|(slug, _)| slug)
        .unwrap_or_default();
    let s = &d.summary;
    let duration = s.finished_at.map(|f| (f - s.started_at).num_milliseconds());
    let t = &s.tokens;
    let body = html! {
        p.muted { a href="/console/personas" { "Personas" } " / " (slug) " / run" }
        h1 { "Run " code { (d.summary.id) } }
        div.grid2 {
            section.panel {
                dl.kv {
                    dt { "Persona" } dd { (slug) " " span.muted.mono { (s.persona_id) } }
                    dt { "Outcome" } dd { (outcome_badge(s.outcome.map(|o| o.as_str()), s.error_class.as_deref())) }
                    @if let Some(e) = &d.error { dt { "Error" } dd { span.badge.bad { "error" } " " (e) } }
                    dt { "Tick" } dd.mono { (s.tick_id) }
                    dt { "Worker" } dd.mono { (d.worker) }
                    dt { "Model" } dd { (d.provider) " · " (d.model) }
                    dt { "App version" } dd { @if d.app_version.is_empty() { span.muted { "—" } } @else { code { (d.app_version) } } }
                }
            }
            section.panel {
                dl.kv {
                    dt { "Started" } dd { (fmt::timestamp(s.started_at)) }
                    dt { "Finished" } dd { @match s.finished_at { Some(f) => (fmt::timestamp(f)), None => span.badge.neutral { "running" } } }
                    dt { "Duration" } dd { @match duration { Some(ms) => (format!("{}.{} s", ms / 1000, (ms % 1000) / 100)), None => "—" } }
                    dt { "Turns" } dd { (d.turns) }
                    dt { "Tool calls" } dd { (s.tool_calls) @if s.tool_errors > 0 { " · " span.badge.bad { (s.tool_errors) " errors" } } }
                    dt { "Tokens" } dd id="tokens" {
                        (fmt::count(i64::try_from(t.input).unwrap_or(i64::MAX))) " in · "
                        (fmt::count(i64::try_from(t.output).unwrap_or(i64::MAX))) " out · "
                        (fmt::count(i64::try_from(t.cache_read).unwrap_or(i64::MAX))) " cache read · "
                        (fmt::count(i64::try_from(t.cache_write).unwrap_or(i64::MAX))) " cache write"
                    }
                    @if let Some(fp) = d.first_prompt_tokens { dt { "First prompt" } dd { (fp) " tokens" } }
                }
            }
        }
        h2 { "Ratings" }
        @if d.feedback.is_empty() {
            p.empty.panel { "No ratings." }
        } @else {
            table id="ratings" {
                thead { tr { th { "Module" } th.num { "Rating" } th { "Note" } } }
                tbody {
                    @for f in &d.feedback {
                        tr {
                            td { code { (f.module) } }
                            td.num {
                                @match f.rating {
                                    Some(r) if r <= 2 => span.badge.bad { (r) },
                                    Some(r) => span.badge { (r) },
                                    None => span.badge.neutral { "unparsed" },
                                }
                            }
                            td { (f.notes.as_deref().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        h2 { "Conversation" }
        @match &d.transcript {
            Some(tr) => (transcript(tr)),
            None => {
                p.muted { "No transcript is kept for this run (retention dropped it, or it predates run records); its tool calls:" }
            },
        }
        h2 { "Tool calls" }
        (actions(&d))
    };
    Ok(html_response(
        StatusCode::OK,
        page(
            &format!("Run {}", d.summary.id),
            Some(&op.nav("personas")),
            body,
        ),
    ))
}
