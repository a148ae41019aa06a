//! `chat {model}` client spans in the OpenTelemetry GenAI semantic conventions.
//!
//! Rules:
//! - One span per [`crate::Llm::chat`] call (retries included), kind client, with
//!   `gen_ai.operation.name = chat`, `gen_ai.provider.name`, `gen_ai.request.model`,
//!   `gen_ai.request.max_tokens`, and from the answer `gen_ai.response.model`,
//!   `gen_ai.response.finish_reasons`, `gen_ai.usage.{input,output}_tokens`,
//!   `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`;
//!   a failure sets `error.type` (a stable code) and the error status.
//! - Without `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` the span also
//!   carries the older `gen_ai.system`; with it, only the newest names.
//! - Message content is recorded only when capture is on
//!   (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`): with the opt-in as the
//!   `gen_ai.system_instructions` / `gen_ai.input.messages` / `gen_ai.output.messages`
//!   attributes, without it as per-message events (`gen_ai.user.message`, `gen_ai.choice`, …).

use opentelemetry::{Array, KeyValue, StringValue, Value as OtelValue, trace::Status};
use serde_json::{Value, json};
use service_kit::telemetry::{GenAiOptions, genai, int};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{ChatRequest, ChatResponse, LlmError, Message, StopReason};

/// The span of one chat call.
pub(crate) fn chat_span(provider: &'static str, model: &str, req: &ChatRequest) -> Span {
    let opts = genai();
    let span = tracing::info_span!(
        "chat",
        otel.name = %format!("chat {model}"),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        gen_ai.request.max_tokens = i64::from(req.max_tokens),
        gen_ai.request.temperature = Empty,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        error.type = Empty,
    );
    if let Some(t) = req.temperature {
        span.record("gen_ai.request.temperature", f64::from(t));
    }
    if !opts.latest_experimental {
        span.set_attribute("gen_ai.system", provider);
    }
    if opts.capture_content {
        record_input(&span, req, opts);
    }
    span
}

fn finish_reason(stop: &StopReason) -> String {
    match stop {
        StopReason::EndTurn => "stop".into(),
        StopReason::ToolUse => "tool_calls".into(),
        StopReason::MaxTokens => "length".into(),
        StopReason::Other(s) => s.clone(),
    }
}

/// Records the answer on the span.
pub(crate) fn record_response(span: &Span, resp: &ChatResponse) {
    span.record("gen_ai.response.model", resp.model.as_str());
    span.record("gen_ai.usage.input_tokens", int(resp.usage.input));
    span.record("gen_ai.usage.output_tokens", int(resp.usage.output));
    span.record(
        "gen_ai.usage.cache_read.input_tokens",
        int(resp.usage.cache_read),
    );
    span.record(
        "gen_ai.usage.cache_creation.input_tokens",
        int(resp.usage.cache_write),
    );
    span.set_attribute(
        "gen_ai.response.finish_reasons",
        OtelValue::Array(Array::String(vec![StringValue::from(finish_reason(
            &resp.stop,
        ))])),
    );
    let opts = genai();
    if opts.capture_content {
        let output = json!([{
            "role": "assistant",
            "parts": assistant_parts(resp.text.as_deref(), &resp.tool_calls),
            "finish_reason": finish_reason(&resp.stop),
        }]);
        if opts.latest_experimental {
            span.set_attribute("gen_ai.output.messages", output.to_string());
        } else {
            span.add_event(
                "gen_ai.choice",
                vec![
                    KeyValue::new("index", 0),
                    KeyValue::new("finish_reason", finish_reason(&resp.stop)),
                    KeyValue::new("message", output[0].to_string()),
                ],
            );
        }
    }
}

/// A stable, low-cardinality `error.type`.
pub fn error_type(e: &LlmError) -> String {
    match e {
        LlmError::Config(_) => "config".into(),
        LlmError::InvalidRequest(_) => "invalid_request".into(),
        LlmError::Http { status, .. } => status.to_string(),
        LlmError::Transport(_) => "transport".into(),
        LlmError::Timeout(_) => "timeout".into(),
        LlmError::Decode(_) => "decode".into(),
        LlmError::RetriesExhausted { last, .. } => error_type(last),
    }
}

/// Records a failure on the span.
pub(crate) fn record_error(span: &Span, e: &LlmError) {
    span.record("error.type", error_type(e));
    span.set_status(Status::error(e.to_string()));
}

fn assistant_parts(text: Option<&str>, calls: &[crate::ToolCall]) -> Vec<Value> {
    let mut parts = Vec::new();
    if let Some(t) = text {
        parts.push(json!({"type": "text", "content": t}));
    }
    for c in calls {
        parts.push(
            json!({"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}),
        );
    }
    parts
}

fn messages_json(req: &ChatRequest) -> Vec<Value> {
    req.messages
        .iter()
        .map(|m| match m {
            Message::User { text } => {
                json!({"role": "user", "parts": [{"type": "text", "content": text}]})
            }
            Message::Assistant { text, tool_calls } => {
                json!({"role": "assistant", "parts": assistant_parts(text.as_deref(), tool_calls)})
            }
            Message::ToolResults(results) => json!({
                "role": "tool",
                "parts": results.iter().map(|r| json!({
                    "type": "tool_call_response", "id": r.call_id, "response": r.content,
                })).collect::<Vec<_>>(),
            }),
        })
        .collect()
}

fn record_input(span: &Span, req: &ChatRequest, opts: GenAiOptions) {
    let messages = messages_json(req);
    if opts.latest_experimental {
        if !req.system.is_empty() {
            span.set_attribute(
                "gen_ai.system_instructions",
                json!([{"type": "text", "content": req.system}]).to_string(),
            );
        }
        span.set_attribute("gen_ai.input.messages", Value::Array(messages).to_string());
        return;
    }
    if !req.system.is_empty() {
        span.add_event(
            "gen_ai.system.message",
            vec![KeyValue::new("content", req.system.clone())],
        );
    }
    for m in messages {
        let event = match m["role"].as_str() {
            Some("user") => "gen_ai.user.message",
            Some("assistant") => "gen_ai.assistant.message",
            _ => "gen_ai.tool.message",
        };
        span.add_event(
            event,
            vec![KeyValue::new("content", m["parts"].to_string())],
        );
    }
}
