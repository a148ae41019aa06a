//! The persona day's spans in the OpenTelemetry GenAI semantic conventions.
//!
//! Rules:
//! - A persona day is one trace: its `invoke_agent {slug}` span is a root (linked to the
//!   tick that ran it) with `gen_ai.operation.name = invoke_agent`, `gen_ai.agent.name` =
//!   the persona slug, `gen_ai.agent.id` = the persona id and `gen_ai.conversation.id` =
//!   the run id; its LLM turns (`chat {model}`), tool calls (`execute_tool {tool}`) and
//!   write-backs are its descendants, and so are auth-internal's spans.
//! - Each module rating is one `gen_ai.evaluation.result` event on the day's span
//!   (`gen_ai.evaluation.name` = module, `gen_ai.evaluation.score.value`,
//!   `gen_ai.evaluation.explanation` = the note); the unparseable `__parse` row is an event
//!   with `error.type = parse_failure` instead of a score.
//! - Tool arguments and results reach spans only when message capture is on.

use opentelemetry::{KeyValue, trace::Status, trace::TraceContextExt};
use service_kit::telemetry::{genai, int};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use types::{
    personas::{ClaimedPersona, FeedbackRow},
    tick::TokenUsage,
};

/// The slug behind `persona.<slug>@mana.test` (the whole local part otherwise).
pub fn persona_slug(email: &str) -> &str {
    let local = email.split('@').next().unwrap_or(email);
    local.strip_prefix("persona.").unwrap_or(local)
}

/// The root span of one persona day, linked to the current (tick) span.
pub fn day_span(claimed: &ClaimedPersona, run_id: &str, provider: &str) -> Span {
    let p = &claimed.persona;
    let slug = persona_slug(&p.email);
    let span = tracing::info_span!(
        parent: None,
        "invoke_agent",
        otel.name = %format!("invoke_agent {slug}"),
        otel.kind = "internal",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.provider.name = provider,
        gen_ai.agent.name = slug,
        gen_ai.agent.id = %p.user_id,
        gen_ai.conversation.id = run_id,
        persona.id = %p.user_id,
        run.id = run_id,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        mana.actions = Empty,
        mana.simulator_failure = Empty,
        error.type = Empty,
    );
    let tick = Span::current().context().span().span_context().clone();
    if tick.is_valid() {
        span.add_link(tick);
    }
    span
}

/// Records how the day ended.
pub fn record_day(
    span: &Span,
    result: &Result<(), String>,
    simulator_failure: Option<&str>,
    tokens: &TokenUsage,
    actions: usize,
    feedback: &[FeedbackRow],
) {
    span.record("gen_ai.usage.input_tokens", int(tokens.input));
    span.record("gen_ai.usage.output_tokens", int(tokens.output));
    span.record(
        "gen_ai.usage.cache_read.input_tokens",
        int(tokens.cache_read),
    );
    span.record(
        "gen_ai.usage.cache_creation.input_tokens",
        int(tokens.cache_write),
    );
    span.record("mana.actions", int(actions));
    if let Some(why) = simulator_failure {
        span.record("mana.simulator_failure", why);
    }
    if let Err(e) = result {
        span.record("error.type", error_class(e));
        span.set_status(Status::error(e.clone()));
    }
    for row in feedback {
        let mut attrs = vec![KeyValue::new("gen_ai.evaluation.name", row.module.clone())];
        match row.rating {
            Some(r) => {
                attrs.push(KeyValue::new("gen_ai.evaluation.score.value", r as f64));
                attrs.push(KeyValue::new(
                    "gen_ai.evaluation.score.label",
                    format!("{r}/5"),
                ));
            }
            None => attrs.push(KeyValue::new("error.type", "parse_failure")),
        }
        if let Some(n) = &row.notes {
            attrs.push(KeyValue::new("gen_ai.evaluation.explanation", n.clone()));
        }
        span.add_event("gen_ai.evaluation.result", attrs);
    }
}

/// A low-cardinality class of a day's error message (see `day::DayError`).
fn error_class(e: &str) -> &'static str {
    let e = e.to_ascii_lowercase();
    if e.starts_with("login") {
        "login"
    } else if e.starts_with("mcp") {
        "mcp"
    } else if e.starts_with("llm") {
        "llm"
    } else if e.starts_with("deadline") {
        "deadline"
    } else if e.starts_with("token budget") {
        "budget"
    } else if e.starts_with("interrupted") {
        "cancelled"
    } else if e.starts_with("write-back") {
        "write_back"
    } else if e.starts_with("release") {
        "release"
    } else {
        "_OTHER"
    }
}

/// The span of one tool call the model made.
pub fn tool_span(name: &str, call_id: &str, arguments: &serde_json::Value) -> Span {
    let span = tracing::info_span!(
        "execute_tool",
        otel.name = %format!("execute_tool {name}"),
        otel.kind = "internal",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = name,
        gen_ai.tool.call.id = call_id,
        gen_ai.tool.type = "function",
        error.type = Empty,
    );
    if genai().capture_content {
        span.set_attribute("gen_ai.tool.call.arguments", arguments.to_string());
    }
    span
}

/// Records a tool call's outcome; `error_type` is `None` on success.
pub fn record_tool(span: &Span, error_type: Option<&'static str>, content: &str) {
    if let Some(kind) = error_type {
        span.record("error.type", kind);
        span.set_status(Status::error(content.chars().take(200).collect::<String>()));
    }
    if genai().capture_content {
        span.set_attribute("gen_ai.tool.call.result", content.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_come_from_persona_emails() {
        assert_eq!(persona_slug("persona.anna-k@mana.test"), "anna-k");
        assert_eq!(persona_slug("someone@x"), "someone");
        assert_eq!(error_class("LLM failed: boom"), "llm");
        assert_eq!(error_class("deadline of 1s exceeded"), "deadline");
        assert_eq!(error_class("something"), "_OTHER");
    }
}
