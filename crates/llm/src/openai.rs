//! OpenAI-compatible Chat Completions (`POST {base}/chat/completions`).
//!
//! Rules of the wire format this module keeps:
//! - `Authorization: Bearer <key>` only when a key is configured (Ollama/vLLM need none).
//! - An assistant message with tool calls carries `content` (`""` when there is no text:
//!   OpenAI, vLLM, Ollama, LiteLLM and llama.cpp all accept it, while llama.cpp's server
//!   rejects `null`) and `tool_calls[{id, type:"function", function:{name, arguments:<JSON string>}}]`;
//!   each call is answered by its own `{role:"tool", tool_call_id, content}` message.
//! - `tools`/`tool_choice` are omitted when there are no tools (the API rejects `[]`).
//! - Responses are read leniently because compatible servers differ: arguments that are
//!   already an object are accepted, unparsable ones become `{}` plus `arguments_error`,
//!   missing call ids are generated, and tool calls under `finish_reason: "stop"` count as
//!   [`StopReason::ToolUse`].
//! - Tool schemas go out full, or slim ([`crate::slim`]) for servers that compile them into
//!   a grammar (`LLM_TOOL_SCHEMA`; `auto` = slim unless the host is `api.openai.com`).
//! - The system prompt is one message (`shared_system`, then `system`); tools are sent in
//!   one order (by name) so the automatic prefix cache of the API can hit.
//! - Usage: `prompt_tokens` includes `prompt_tokens_details.cached_tokens`, so fresh
//!   input = prompt − cached and cache reads = cached (OpenAI bills no cache writes).

use reqwest::header::{AUTHORIZATION, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};
use types::tick::TokenUsage;

use crate::error::LlmError;
use crate::http::{Body, JsonCall, post_json, secret_header};
use crate::model::{ChatRequest, ChatResponse, Message, StopReason, ToolCall, truncate_chars};
use crate::retry::RetryPolicy;
use crate::settings::ToolSchema;
use crate::slim::{WireSchema, wire_schema};

/// Prefix that tells the model a tool result is an error (the wire format has no flag).
pub const TOOL_ERROR_PREFIX: &str = "[tool error] ";

/// A configured OpenAI-compatible client.
#[derive(Debug, Clone)]
pub(crate) struct OpenAiProvider {
    pub(crate) client: reqwest::Client,
    pub(crate) endpoint: String,
    pub(crate) api_key: Option<SecretString>,
    pub(crate) model: String,
    /// How tool schemas are sent (resolved: `full` or `slim`).
    pub(crate) tool_schema: ToolSchema,
}

impl OpenAiProvider {
    pub(crate) async fn chat(
        &self,
        req: &ChatRequest,
        policy: &RetryPolicy,
    ) -> Result<ChatResponse, LlmError> {
        let key = self
            .api_key
            .as_ref()
            .map(|k| k.expose_secret())
            .filter(|k| !k.is_empty());
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert(
                AUTHORIZATION,
                secret_header(&format!("Bearer {key}"), "OPENAI_API_KEY")?,
            );
        }
        let body = request_body(&self.model, req, self.tool_schema);
        let value = post_json(
            &self.client,
            policy,
            JsonCall {
                provider: "openai",
                model: &self.model,
                url: &self.endpoint,
                headers,
                body: &body,
                secret: key,
                error_message,
            },
        )
        .await?;
        parse_response(&value, &self.model)
    }
}

/// A tool of a Chat Completions request.
#[derive(Debug, Serialize)]
pub(crate) struct WireTool<'a> {
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: WireSchema<'a>,
}

/// The exact JSON body for `req`; `tool_schema` says how the tools' input schemas are sent.
pub(crate) fn request_body<'a>(
    model: &str,
    req: &'a ChatRequest,
    tool_schema: ToolSchema,
) -> Body<WireTool<'a>> {
    let mut messages = Vec::new();
    let system = req.full_system();
    if !system.trim().is_empty() {
        messages.push(json!({ "role": "system", "content": system }));
    }
    for msg in &req.messages {
        match msg {
            Message::User { text } => messages.push(json!({ "role": "user", "content": text })),
            Message::Assistant { text, tool_calls } => {
                let mut m = Map::new();
                m.insert("role".into(), json!("assistant"));
                // Never null: llama.cpp's server answers 500 to `content: null`.
                m.insert("content".into(), json!(text.as_deref().unwrap_or_default()));
                if !tool_calls.is_empty() {
                    let calls = tool_calls
                        .iter()
                        .map(|c| {
                            let args = if c.arguments.is_object() {
                                c.arguments.to_string()
                            } else {
                                "{}".to_string()
                            };
                            json!({
                                "id": c.id,
                                "type": "function",
                                "function": { "name": c.name, "arguments": args },
                            })
                        })
                        .collect();
                    m.insert("tool_calls".into(), Value::Array(calls));
                }
                messages.push(Value::Object(m));
            }
            Message::ToolResults(results) => {
                for r in results {
                    let content = if r.is_error {
                        format!("{TOOL_ERROR_PREFIX}{}", r.content)
                    } else {
                        r.content.clone()
                    };
                    messages.push(json!({
                        "role": "tool",
                        "tool_call_id": r.call_id,
                        "content": content,
                    }));
                }
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("max_tokens".into(), json!(req.max_tokens));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t.clamp(0.0, 2.0)));
    }
    let tools: Vec<WireTool<'a>> = req
        .sorted_tools()
        .into_iter()
        .map(|t| WireTool {
            r#type: "function",
            function: WireFunction {
                name: &t.name,
                description: &t.description,
                parameters: wire_schema(&t.input_schema, tool_schema),
            },
        })
        .collect();
    Body {
        fields: body,
        tool_choice: (!tools.is_empty()).then_some("auto"),
        tools,
    }
}

/// Decodes a Chat Completions response.
pub(crate) fn parse_response(v: &Value, requested_model: &str) -> Result<ChatResponse, LlmError> {
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| LlmError::Decode("response has no `choices[0]`".into()))?;
    let message = choice
        .get("message")
        .ok_or_else(|| LlmError::Decode("choices[0] has no `message`".into()))?;
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let mut tool_calls = Vec::new();
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for (i, call) in calls.iter().enumerate() {
            let function = call.get("function");
            let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) else {
                return Err(LlmError::Decode(format!(
                    "tool_calls[{i}] has no function name"
                )));
            };
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map_or_else(
                    || format!("call_{}", uuid::Uuid::new_v4().simple()),
                    str::to_string,
                );
            let (arguments, arguments_error) =
                parse_arguments(function.and_then(|f| f.get("arguments")));
            tool_calls.push(ToolCall {
                id,
                name: name.to_string(),
                arguments,
                arguments_error,
            });
        }
    }
    let stop = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("length") => StopReason::MaxTokens,
        _ if !tool_calls.is_empty() => StopReason::ToolUse,
        Some("stop") => StopReason::EndTurn,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
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
    let cached = usage
        .and_then(|u| u.get("prompt_tokens_details"))
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let prompt = count("prompt_tokens");
    Ok(ChatResponse {
        text,
        tool_calls,
        stop,
        usage: TokenUsage {
            // cached_tokens are part of prompt_tokens.
            input: prompt.saturating_sub(cached),
            output: count("completion_tokens"),
            cache_read: cached.min(prompt),
            cache_write: 0,
        },
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(requested_model)
            .to_string(),
    })
}

/// `arguments` is a JSON string per the spec; keep `{}` plus a reason when it is unusable.
fn parse_arguments(raw: Option<&Value>) -> (Value, Option<String>) {
    match raw {
        None | Some(Value::Null) => (json!({}), None),
        Some(Value::Object(_)) => (raw.cloned().unwrap_or_else(|| json!({})), None),
        Some(Value::String(s)) if s.trim().is_empty() => (json!({}), None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => (v, None),
            Ok(other) => (
                json!({}),
                Some(format!(
                    "arguments are not a JSON object: {}",
                    truncate_chars(&other.to_string(), 200)
                )),
            ),
            Err(e) => (
                json!({}),
                Some(format!(
                    "arguments are not valid JSON ({e}): {}",
                    truncate_chars(s, 200)
                )),
            ),
        },
        Some(other) => (
            json!({}),
            Some(format!(
                "arguments are neither a JSON string nor an object: {}",
                truncate_chars(&other.to_string(), 200)
            )),
        ),
    }
}

/// `{"error":{"message":"…","type":"…","code":…}}` → `"type: message"`.
fn error_message(v: &Value) -> Option<String> {
    let err = v.get("error")?;
    // Some compatible servers send `{"error": "text"}`.
    if let Some(s) = err.as_str() {
        return Some(s.to_string());
    }
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
    fn sent(model: &str, req: &ChatRequest, mode: ToolSchema) -> Value {
        serde_json::to_value(request_body(model, req, mode)).unwrap()
    }

    #[test]
    fn body_has_the_vendor_shape() {
        let mut req = ChatRequest::new("sys", "hi", 100);
        req.tools.push(ToolDef {
            name: "todo_create".into(),
            description: "d".into(),
            input_schema: json!({"type": "object"}),
        });
        req.messages.push(Message::Assistant {
            text: None,
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "todo_create".into(),
                arguments: json!({"title": "a"}),
                arguments_error: None,
            }],
        });
        req.messages.push(Message::ToolResults(vec![ToolResult {
            call_id: "c1".into(),
            content: "nope".into(),
            is_error: true,
        }]));
        let body = sent("gpt", &req, ToolSchema::Full);
        assert_eq!(
            body,
            json!({
                "model": "gpt",
                "max_tokens": 100,
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"id": "c1", "type": "function",
                         "function": {"name": "todo_create", "arguments": "{\"title\":\"a\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "c1", "content": "[tool error] nope"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "todo_create", "description": "d", "parameters": {"type": "object"}}}],
                "tool_choice": "auto"
            })
        );
        let plain = sent("gpt", &ChatRequest::new("", "hi", 1), ToolSchema::Full);
        assert!(plain.get("tools").is_none() && plain.get("tool_choice").is_none());
        assert_eq!(plain["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn slim_mode_sends_grammar_friendly_parameters() {
        let mut req = ChatRequest::new("sys", "hi", 100);
        req.tools.push(ToolDef {
            name: "notes_create".into(),
            description: "Create a note".into(),
            input_schema: json!({
                "type": "object",
                "required": ["body"],
                "properties": {
                    "body": {"type": "string", "minLength": 1, "maxLength": 200000},
                    "color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"}
                }
            }),
        });
        let parameters = |mode| sent("m", &req, mode)["tools"][0]["function"]["parameters"].clone();
        assert_eq!(parameters(ToolSchema::Full), req.tools[0].input_schema);
        assert_eq!(
            parameters(ToolSchema::Slim),
            json!({
                "type": "object",
                "required": ["body"],
                "properties": {
                    "body": {"type": "string", "minLength": 1, "maxLength": 1000},
                    "color": {"type": "string"}
                }
            })
        );
    }

    #[test]
    fn arguments_are_parsed_leniently() {
        assert_eq!(
            parse_arguments(Some(&json!("{\"a\":1}"))),
            (json!({"a": 1}), None)
        );
        assert_eq!(
            parse_arguments(Some(&json!({"a": 1}))),
            (json!({"a": 1}), None)
        );
        assert_eq!(parse_arguments(Some(&json!(""))), (json!({}), None));
        let (v, e) = parse_arguments(Some(&json!("{\"a\":")));
        assert_eq!(v, json!({}));
        assert!(e.unwrap().contains("not valid JSON"));
        let (_, e) = parse_arguments(Some(&json!("[1]")));
        assert!(e.unwrap().contains("not a JSON object"));
    }

    #[test]
    fn response_is_decoded() {
        let v = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{"type": "function", "function": {"name": "x", "arguments": "{}"}}]
            }}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
        });
        let r = parse_response(&v, "m").unwrap();
        // Tool calls under "stop" (Ollama does this) still mean tool use.
        assert_eq!(r.stop, StopReason::ToolUse);
        assert!(r.tool_calls[0].id.starts_with("call_"));
        assert_eq!(r.text, None);
        assert_eq!(
            r.usage,
            TokenUsage {
                input: 9,
                output: 3,
                ..Default::default()
            }
        );
        assert_eq!(r.model, "gpt-4o-mini-2024");
        assert!(parse_response(&json!({"choices": []}), "m").is_err());
        let v = json!({
            "choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 2000, "completion_tokens": 7,
                      "prompt_tokens_details": {"cached_tokens": 1536}}
        });
        assert_eq!(
            parse_response(&v, "m").unwrap().usage,
            TokenUsage {
                input: 464,
                output: 7,
                cache_read: 1536,
                cache_write: 0
            }
        );
    }

    #[test]
    fn a_real_llama_cpp_python_reply_is_decoded() {
        // Captured from llama-cpp-python 0.3.36 (`chatml-function-calling`, SmolLM2-135M):
        // `content: null`, the legacy `function_call` beside `tool_calls`, and arguments
        // whose string holds a raw newline (a control character JSON forbids).
        let raw = r#"{"id":"chatcmpl-a7c18753-dbed-4f32-af66-53199d792216","object":"chat.completion","created":1796132482,"model":"x","choices":[{"index":0,"message":{"content":null,"tool_calls":[{"id":"call__0_notes_create_cmpl-5ebbb0e0-b5a0-4496-905b-2bc95276177c","type":"function","function":{"name":"notes_create","arguments":"{\"title\": \"Serve yourself right\", \"body\": \"]\n\" }"}}],"role":"assistant","function_call":{"name":"notes_create:","arguments":"{\"title\": \"Serve yourself right\", \"body\": \"]\n\" }"}},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":259,"completion_tokens":18,"total_tokens":277}}"#;
        let v: Value = serde_json::from_str(raw).unwrap();
        let r = parse_response(&v, "m").unwrap();
        assert_eq!(r.stop, StopReason::ToolUse);
        assert_eq!(r.text, None);
        assert_eq!(r.tool_calls.len(), 1);
        let call = &r.tool_calls[0];
        assert_eq!(call.name, "notes_create");
        assert_eq!(
            call.id,
            "call__0_notes_create_cmpl-5ebbb0e0-b5a0-4496-905b-2bc95276177c"
        );
        // Not valid JSON: the call is kept (answered as a tool error), its input is `{}`.
        assert_eq!(call.arguments, json!({}));
        assert!(
            call.arguments_error
                .as_deref()
                .is_some_and(|e| e.contains("not valid JSON")),
            "{call:?}"
        );
        assert_eq!(r.usage.prompt(), 259);
    }

    #[test]
    fn error_messages_are_extracted() {
        let v = json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}});
        assert_eq!(error_message(&v).unwrap(), "invalid_request_error: bad");
        assert_eq!(error_message(&json!({"error": "plain"})).unwrap(), "plain");
    }
}
