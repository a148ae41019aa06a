//! Anthropic Messages API (`POST {root}/v1/messages`, `anthropic-version: 2023-06-01`).
//!
//! Rules of the wire format this module keeps:
//! - `system` is top-level (omitted when empty); `messages` alternate user/assistant, so
//!   neighbouring neutral messages of the same role are merged into one vendor message.
//! - An assistant's `tool_use` blocks are answered by `tool_result` blocks in the very
//!   next user message, and those come first in its content (text after them).
//! - Empty text blocks are rejected by the API, so they are never sent.
//! - `input` / `input_schema` are always JSON objects; schemas are full unless
//!   `LLM_TOOL_SCHEMA=slim` ([`crate::slim`]).
//! - Prompt caching (on unless `LLM_PROMPT_CACHE=off`): tools in one order (by name), so
//!   the prefix is byte-identical on every request; `cache_control: {"type":"ephemeral"}`
//!   at the end of the stable prefix (the shared system block, or the last tool when
//!   there is none), on the request-specific system block, and on the last block of the
//!   newest message, so each turn reads what the previous turn wrote. That is at most 3
//!   of the API's 4 breakpoints. `LLM_PROMPT_CACHE=1h` gives the stable-prefix breakpoint
//!   `ttl: "1h"` (it comes first, so no 1h marker ever follows a 5m one). Usage keeps the four kinds apart: `input_tokens`
//!   excludes `cache_read_input_tokens` and `cache_creation_input_tokens`.

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};
use types::tick::TokenUsage;

use crate::error::LlmError;
use crate::http::{Body, JsonCall, post_json, secret_header};
use crate::model::{ChatRequest, ChatResponse, Message, StopReason, ToolCall};
use crate::retry::RetryPolicy;
use crate::settings::{PromptCache, ToolSchema};
use crate::slim::{WireSchema, wire_schema};

/// The API version header value this module speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A configured Anthropic client.
#[derive(Debug, Clone)]
pub(crate) struct AnthropicProvider {
    pub(crate) client: reqwest::Client,
    pub(crate) endpoint: String,
    pub(crate) api_key: SecretString,
    pub(crate) model: String,
    /// Whether `cache_control` breakpoints are sent.
    pub(crate) prompt_cache: PromptCache,
    /// How tool schemas are sent (resolved: `full` or `slim`).
    pub(crate) tool_schema: ToolSchema,
}

impl AnthropicProvider {
    pub(crate) async fn chat(
        &self,
        req: &ChatRequest,
        policy: &RetryPolicy,
    ) -> Result<ChatResponse, LlmError> {
        let key = self.api_key.expose_secret();
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", secret_header(key, "ANTHROPIC_API_KEY")?);
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let body = request_body(&self.model, req, self.prompt_cache, self.tool_schema);
        let value = post_json(
            &self.client,
            policy,
            JsonCall {
                provider: "anthropic",
                model: &self.model,
                url: &self.endpoint,
                headers,
                body: &body,
                secret: Some(key),
                error_message,
            },
        )
        .await?;
        parse_response(&value, &self.model)
    }
}

/// The breakpoint marker (default 5-minute lifetime).
fn ephemeral() -> Value {
    json!({ "type": "ephemeral" })
}

/// The marker at the end of the stable prefix: an hour with `LLM_PROMPT_CACHE=1h`. It is
/// the first breakpoint of a request, so the API's rule that a longer lifetime never
/// follows a shorter one holds.
fn prefix_marker(cache: PromptCache) -> Value {
    match cache {
        PromptCache::OneHour => json!({ "type": "ephemeral", "ttl": "1h" }),
        PromptCache::On | PromptCache::Off => ephemeral(),
    }
}

/// A tool of a Messages API request.
#[derive(Debug, Serialize)]
pub(crate) struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: WireSchema<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<Value>,
}

/// The exact JSON body for `req`; `cache` says which prompt-cache breakpoints are added,
/// `tool_schema` how the tools' input schemas are sent.
pub(crate) fn request_body<'a>(
    model: &str,
    req: &'a ChatRequest,
    cache: PromptCache,
    tool_schema: ToolSchema,
) -> Body<WireTool<'a>> {
    let on = cache.is_on();
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(req.max_tokens));
    let shared = text_block(&req.shared_system);
    let specific = text_block(&req.system);
    if shared.is_some() || (on && specific.is_some()) {
        let mut blocks = Vec::new();
        if let Some(mut b) = shared.clone() {
            if on {
                b["cache_control"] = prefix_marker(cache);
            }
            blocks.push(b);
        }
        if let Some(mut b) = specific {
            if on {
                b["cache_control"] = ephemeral();
            }
            blocks.push(b);
        }
        body.insert("system".into(), Value::Array(blocks));
    } else if specific.is_some() {
        body.insert("system".into(), json!(req.system));
    }
    let mut messages = messages(req);
    if on
        && let Some(last) = messages
            .last_mut()
            .and_then(|m| m.get_mut("content"))
            .and_then(Value::as_array_mut)
            .and_then(|blocks| blocks.last_mut())
    {
        last["cache_control"] = ephemeral();
    }
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = req.temperature {
        // Anthropic accepts 0..=1.
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    let mut tools: Vec<WireTool<'a>> = req
        .sorted_tools()
        .into_iter()
        .map(|t| WireTool {
            name: &t.name,
            description: &t.description,
            input_schema: wire_schema(&t.input_schema, tool_schema),
            cache_control: None,
        })
        .collect();
    // Without a shared system block the tools are the whole stable prefix.
    if on
        && shared.is_none()
        && let Some(last) = tools.last_mut()
    {
        last.cache_control = Some(prefix_marker(cache));
    }
    Body {
        fields: body,
        tools,
        tool_choice: None,
    }
}

fn messages(req: &ChatRequest) -> Vec<Value> {
    // (role, blocks) with neighbours of the same role merged.
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for msg in &req.messages {
        let (role, blocks) = match msg {
            Message::User { text } => ("user", text_block(text).into_iter().collect()),
            Message::Assistant { text, tool_calls } => {
                let mut blocks: Vec<Value> =
                    text.as_deref().and_then(text_block).into_iter().collect();
                blocks.extend(tool_calls.iter().map(|c| {
                    json!({
                        "type": "tool_use",
                        "id": c.id,
                        "name": c.name,
                        "input": object_or_empty(&c.arguments),
                    })
                }));
                ("assistant", blocks)
            }
            Message::ToolResults(results) => (
                "user",
                results
                    .iter()
                    .map(|r| {
                        json!({
                            "type": "tool_result",
                            "tool_use_id": r.call_id,
                            "content": r.content,
                            "is_error": r.is_error,
                        })
                    })
                    .collect(),
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    out.into_iter()
        .map(|(role, mut blocks)| {
            // tool_result blocks must lead their user message; stable, so order is kept.
            blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            json!({ "role": role, "content": blocks })
        })
        .collect()
}

fn text_block(text: &str) -> Option<Value> {
    (!text.trim().is_empty()).then(|| json!({ "type": "text", "text": text }))
}

fn object_or_empty(v: &Value) -> Value {
    if v.is_object() { v.clone() } else { json!({}) }
}

/// Decodes a Messages API response.
pub(crate) fn parse_response(v: &Value, requested_model: &str) -> Result<ChatResponse, LlmError> {
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| LlmError::Decode("response has no `content` array".into()))?;
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = block.get("text").and_then(Value::as_str) {
                    texts.push(t.to_string());
                }
            }
            Some("tool_use") => {
                let id = block.get("id").and_then(Value::as_str);
                let name = block.get("name").and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(LlmError::Decode("tool_use block without id or name".into()));
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                let (arguments, arguments_error) = if input.is_object() {
                    (input, None)
                } else {
                    (
                        json!({}),
                        Some(format!("tool input is not a JSON object: {input}")),
                    )
                };
                tool_calls.push(ToolCall {
                    id: id.to_string(),
                    name: name.to_string(),
                    arguments,
                    arguments_error,
                });
            }
            // thinking, redacted_thinking, server tool blocks: not ours to interpret.
            _ => {}
        }
    }
    let stop = match v.get("stop_reason").and_then(Value::as_str) {
        Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_string()),
        None => StopReason::Other("unknown".into()),
    };
    let usage = v.get("usage");
    let count = |k: &str| {
        usage
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    // `input_tokens` excludes both cache kinds: the four are reported apart.
    let usage = TokenUsage {
        input: count("input_tokens"),
        output: count("output_tokens"),
        cache_read: count("cache_read_input_tokens"),
        cache_write: count("cache_creation_input_tokens"),
    };
    let text = texts.join("\n");
    Ok(ChatResponse {
        text: (!text.is_empty()).then_some(text),
        tool_calls,
        stop,
        usage,
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(requested_model)
            .to_string(),
    })
}

/// `{"type":"error","error":{"type":"…","message":"…"}}` → `"type: message"`.
fn error_message(v: &Value) -> Option<String> {
    let err = v.get("error")?;
    let message = err.get("message").and_then(Value::as_str)?;
    Some(match err.get("type").and_then(Value::as_str) {
        Some(kind) => format!("{kind}: {message}"),
        None => message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ToolDef, ToolResult};

    /// The body as the server receives it.
    fn sent(model: &str, req: &ChatRequest, cache: PromptCache, mode: ToolSchema) -> Value {
        serde_json::to_value(request_body(model, req, cache, mode)).unwrap()
    }

    fn call(id: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "todo_create".into(),
            arguments: json!({"title": "x"}),
            arguments_error: None,
        }
    }

    #[test]
    fn body_has_the_vendor_shape() {
        let mut req = ChatRequest::new("be brief", "hi", 256);
        req.temperature = Some(0.5);
        req.tools.push(ToolDef {
            name: "todo_create".into(),
            description: "Create a todo".into(),
            input_schema: json!({"properties": {"title": {"type": "string"}}}),
        });
        req.messages.push(Message::Assistant {
            text: Some(String::new()),
            tool_calls: vec![call("t1"), call("t2")],
        });
        req.messages.push(Message::ToolResults(vec![
            ToolResult {
                call_id: "t1".into(),
                content: "{\"id\":\"a\"}".into(),
                is_error: false,
            },
            ToolResult {
                call_id: "t2".into(),
                content: "boom".into(),
                is_error: true,
            },
        ]));
        req.messages.push(Message::user("and now?"));
        let body = sent("claude-x", &req, PromptCache::Off, ToolSchema::Full);
        assert_eq!(
            body,
            json!({
                "model": "claude-x",
                "max_tokens": 256,
                "system": "be brief",
                "temperature": 0.5,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "t1", "name": "todo_create", "input": {"title": "x"}},
                        {"type": "tool_use", "id": "t2", "name": "todo_create", "input": {"title": "x"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "{\"id\":\"a\"}", "is_error": false},
                        {"type": "tool_result", "tool_use_id": "t2", "content": "boom", "is_error": true},
                        {"type": "text", "text": "and now?"}
                    ]}
                ],
                "tools": [{
                    "name": "todo_create",
                    "description": "Create a todo",
                    "input_schema": {"type": "object", "properties": {"title": {"type": "string"}}}
                }]
            })
        );
    }

    #[test]
    fn empty_system_and_no_tools_are_omitted() {
        let body = sent(
            "m",
            &ChatRequest::new("", "hi", 5),
            PromptCache::On,
            ToolSchema::Full,
        );
        assert!(body.get("system").is_none());
        assert!(body.get("tools").is_none());
        assert!(body.get("temperature").is_none());
    }

    #[test]
    fn response_is_decoded() {
        let v = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-y",
            "content": [
                {"type": "text", "text": "Let me"},
                {"type": "tool_use", "id": "toolu_1", "name": "notes_create", "input": {"title": "t"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}
        });
        let r = parse_response(&v, "m").unwrap();
        assert_eq!(r.text.as_deref(), Some("Let me"));
        assert_eq!(r.stop, StopReason::ToolUse);
        assert_eq!(r.tool_calls[0].arguments, json!({"title": "t"}));
        assert_eq!(
            r.usage,
            TokenUsage {
                input: 10,
                output: 5,
                cache_read: 2,
                cache_write: 0,
            }
        );
        let v = json!({"content": [], "stop_reason": "end_turn", "usage": {
            "input_tokens": 7, "output_tokens": 3,
            "cache_creation_input_tokens": 1500, "cache_read_input_tokens": 4000}});
        let u = parse_response(&v, "m").unwrap().usage;
        assert_eq!((u.input, u.cache_read, u.cache_write), (7, 4000, 1500));
        assert_eq!(r.model, "claude-y");
        let r = parse_response(&json!({"content": [], "stop_reason": "refusal"}), "m").unwrap();
        assert_eq!(r.stop, StopReason::Other("refusal".into()));
        assert_eq!(r.text, None);
        assert!(parse_response(&json!({"nope": 1}), "m").is_err());
    }

    fn tool(name: &str) -> ToolDef {
        ToolDef {
            name: name.into(),
            description: format!("{name} tool"),
            input_schema: json!({"type": "object"}),
        }
    }

    #[test]
    fn cache_breakpoints_mark_the_stable_prefix_and_the_newest_message() {
        let mut req = ChatRequest::new("You are Anna.", "Heute ist 2026-12-01.", 64);
        req.shared_system = "Rules of the day.".into();
        req.tools = vec![tool("todo_list"), tool("notes_create"), tool("todo_create")];
        let body = sent("m", &req, PromptCache::On, ToolSchema::Full);
        assert_eq!(
            body["system"],
            json!([
                {"type": "text", "text": "Rules of the day.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "You are Anna.", "cache_control": {"type": "ephemeral"}}
            ])
        );
        // One deterministic order, whatever order the caller listed the tools in.
        let names: Vec<&str> = body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["notes_create", "todo_create", "todo_list"]);
        assert!(
            body["tools"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t.get("cache_control").is_none()),
            "the shared system block ends the stable prefix"
        );
        assert_eq!(
            body["messages"][0]["content"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );

        // The next turn: the breakpoint moves to the newest message only.
        req.messages.push(Message::Assistant {
            text: None,
            tool_calls: vec![call("t1")],
        });
        req.messages.push(Message::ToolResults(vec![ToolResult {
            call_id: "t1".into(),
            content: "{}".into(),
            is_error: false,
        }]));
        let next = sent("m", &req, PromptCache::On, ToolSchema::Full);
        assert!(
            next["messages"][0]["content"][0]
                .get("cache_control")
                .is_none()
        );
        assert_eq!(
            next["messages"][2]["content"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        // The prefix (tools + system) is byte-identical between the turns.
        assert_eq!(next["tools"].to_string(), body["tools"].to_string());
        assert_eq!(next["system"].to_string(), body["system"].to_string());
        let marks = next.to_string().matches("cache_control").count();
        assert!(marks <= 4, "{marks} breakpoints");

        // Without a shared block the last tool ends the stable prefix.
        req.shared_system.clear();
        let body = sent("m", &req, PromptCache::On, ToolSchema::Full);
        assert_eq!(
            body["tools"][2]["cache_control"],
            json!({"type": "ephemeral"})
        );
        // 1h: the stable-prefix marker (here the last tool) lives an hour, the rest 5m.
        let hour = sent("m", &req, PromptCache::OneHour, ToolSchema::Full);
        assert_eq!(
            hour["tools"][2]["cache_control"],
            json!({"type": "ephemeral", "ttl": "1h"})
        );
        assert_eq!(
            hour["system"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        // Caching off: no marker anywhere, the system prompt a plain string.
        let off = sent("m", &req, PromptCache::Off, ToolSchema::Full);
        assert!(!off.to_string().contains("cache_control"));
        assert_eq!(off["system"], json!("You are Anna."));
    }

    #[test]
    fn vendor_error_message_is_extracted() {
        let v = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        assert_eq!(error_message(&v).unwrap(), "overloaded_error: Overloaded");
    }
}
