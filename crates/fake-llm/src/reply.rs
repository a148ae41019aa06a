//! Scripted replies and the exact vendor JSON they render to.
//!
//! Rules: a [`Reply`] is API-neutral where it can be (text, tool calls, errors); it is
//! rendered in the wire format of the endpoint that serves it, with the ids, `usage` and
//! `stop_reason` / `finish_reason` the real vendor would send. Raw JSON and garbage
//! replies are sent verbatim.

use std::time::Duration;

use serde_json::{Value, json};

use crate::Api;

/// Token counts a scripted reply reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Fresh input tokens (Anthropic `input_tokens`; OpenAI `prompt_tokens` minus cached).
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
    /// Prompt-cache reads (Anthropic `cache_read_input_tokens`; OpenAI
    /// `prompt_tokens_details.cached_tokens`, which its `prompt_tokens` includes).
    pub cache_read: u64,
    /// Prompt-cache writes (Anthropic `cache_creation_input_tokens`; not sent by OpenAI).
    pub cache_write: u64,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            input: 10,
            output: 5,
            cache_read: 0,
            cache_write: 0,
        }
    }
}

/// One tool call the fake model makes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    /// Tool name.
    pub name: String,
    /// Arguments object.
    pub input: Value,
    /// OpenAI only: sent verbatim as `function.arguments` instead of `input` serialised
    /// (to script unparsable arguments).
    pub raw_arguments: Option<String>,
}

/// What the fake answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A final text answer (`end_turn` / `stop`).
    Text {
        /// The text.
        text: String,
        /// Reported usage.
        usage: Usage,
    },
    /// Text cut off by `max_tokens` (`max_tokens` / `length`).
    Truncated {
        /// The partial text.
        text: String,
        /// Reported usage.
        usage: Usage,
    },
    /// Tool calls, optionally with text (`tool_use` / `tool_calls`).
    ToolCalls {
        /// Text before the calls.
        text: Option<String>,
        /// The calls, in order.
        calls: Vec<ScriptedCall>,
        /// Reported usage.
        usage: Usage,
    },
    /// A raw JSON body with any status and extra headers.
    Json {
        /// HTTP status.
        status: u16,
        /// Body, sent as is.
        body: Value,
        /// Extra response headers.
        headers: Vec<(String, String)>,
    },
    /// An error in the vendor's error shape.
    Error {
        /// HTTP status (429, 500, 529, …).
        status: u16,
        /// Error message.
        message: String,
        /// `retry-after` header value (seconds or HTTP-date).
        retry_after: Option<String>,
    },
    /// A body that is not JSON.
    Garbage {
        /// HTTP status.
        status: u16,
        /// Body, sent as is.
        body: String,
    },
    /// Wait, then answer `reply`.
    Delayed {
        /// How long to wait before answering.
        delay: Duration,
        /// The answer.
        reply: Box<Reply>,
    },
}

impl Reply {
    /// A final text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            usage: Usage::default(),
        }
    }

    /// Text cut off by `max_tokens`.
    pub fn truncated(text: impl Into<String>) -> Self {
        Self::Truncated {
            text: text.into(),
            usage: Usage::default(),
        }
    }

    /// One tool call.
    pub fn tool_call(name: impl Into<String>, input: Value) -> Self {
        Self::tool_calls(vec![(name.into(), input)])
    }

    /// Several tool calls in one turn.
    pub fn tool_calls(calls: Vec<(String, Value)>) -> Self {
        Self::ToolCalls {
            text: None,
            calls: calls
                .into_iter()
                .map(|(name, input)| ScriptedCall {
                    name,
                    input,
                    raw_arguments: None,
                })
                .collect(),
            usage: Usage::default(),
        }
    }

    /// OpenAI: a tool call whose `function.arguments` string is `raw`, verbatim.
    pub fn tool_call_raw_arguments(name: impl Into<String>, raw: impl Into<String>) -> Self {
        Self::ToolCalls {
            text: None,
            calls: vec![ScriptedCall {
                name: name.into(),
                input: json!({}),
                raw_arguments: Some(raw.into()),
            }],
            usage: Usage::default(),
        }
    }

    /// A raw JSON body.
    pub fn json(status: u16, body: Value) -> Self {
        Self::Json {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// A vendor-shaped error with a default message.
    pub fn error(status: u16) -> Self {
        Self::Error {
            status,
            message: default_message(status).to_string(),
            retry_after: None,
        }
    }

    /// 429 with `retry-after: <value>`.
    pub fn rate_limited(retry_after: impl Into<String>) -> Self {
        Self::error(429).with_retry_after(retry_after)
    }

    /// Anthropic's 529 "overloaded".
    pub fn overloaded() -> Self {
        Self::error(529)
    }

    /// A 200 whose body is not JSON.
    pub fn garbage() -> Self {
        Self::Garbage {
            status: 200,
            body: "<html>upstream hiccup</html>".into(),
        }
    }

    /// `reply`, after `delay`.
    pub fn delayed(delay: Duration, reply: Reply) -> Self {
        Self::Delayed {
            delay,
            reply: Box::new(reply),
        }
    }

    /// Sets the `retry-after` of an [`Reply::Error`] (other variants are unchanged).
    #[must_use]
    pub fn with_retry_after(self, value: impl Into<String>) -> Self {
        match self {
            Self::Error {
                status, message, ..
            } => Self::Error {
                status,
                message,
                retry_after: Some(value.into()),
            },
            other => other,
        }
    }

    /// Sets the usage of a text, truncated or tool-call reply.
    #[must_use]
    pub fn with_usage(self, input: u64, output: u64) -> Self {
        self.map_usage(|u| Usage { input, output, ..u })
    }

    /// Sets all four kinds of usage of a text, truncated or tool-call reply.
    #[must_use]
    pub fn with_full_usage(self, usage: Usage) -> Self {
        self.map_usage(|_| usage)
    }

    /// Whether this is a model answer (text, truncated or tool calls, maybe delayed).
    pub fn is_answer(&self) -> bool {
        match self {
            Self::Text { .. } | Self::Truncated { .. } | Self::ToolCalls { .. } => true,
            Self::Delayed { reply, .. } => reply.is_answer(),
            _ => false,
        }
    }

    /// Changes the usage of a text, truncated or tool-call reply (also under a delay).
    #[must_use]
    pub fn map_usage(self, f: impl FnOnce(Usage) -> Usage) -> Self {
        match self {
            Self::Text { text, usage } => Self::Text {
                text,
                usage: f(usage),
            },
            Self::Truncated { text, usage } => Self::Truncated {
                text,
                usage: f(usage),
            },
            Self::ToolCalls { text, calls, usage } => Self::ToolCalls {
                text,
                calls,
                usage: f(usage),
            },
            Self::Delayed { delay, reply } => Self::Delayed {
                delay,
                reply: Box::new(reply.map_usage(f)),
            },
            other => other,
        }
    }

    /// Sets the text that accompanies tool calls.
    #[must_use]
    pub fn with_text(self, text: impl Into<String>) -> Self {
        match self {
            Self::ToolCalls { calls, usage, .. } => Self::ToolCalls {
                text: Some(text.into()),
                calls,
                usage,
            },
            other => other,
        }
    }
}

/// A rendered HTTP answer.
pub(crate) struct Rendered {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) headers: Vec<(String, String)>,
}

/// Renders `reply` (never [`Reply::Delayed`]; the server unwraps that) for `api`.
pub(crate) fn render(reply: &Reply, api: Api, model: &str) -> Rendered {
    let ok = |body: Value| Rendered {
        status: 200,
        body: body.to_string(),
        headers: Vec::new(),
    };
    match reply {
        Reply::Text { text, usage } => ok(match api {
            Api::Anthropic => anthropic_message_json(model, Some(text), &[], "end_turn", *usage),
            Api::OpenAi => openai_completion_json(model, Some(text), &[], "stop", *usage),
        }),
        Reply::Truncated { text, usage } => ok(match api {
            Api::Anthropic => anthropic_message_json(model, Some(text), &[], "max_tokens", *usage),
            Api::OpenAi => openai_completion_json(model, Some(text), &[], "length", *usage),
        }),
        Reply::ToolCalls { text, calls, usage } => ok(match api {
            Api::Anthropic => {
                anthropic_message_json(model, text.as_deref(), calls, "tool_use", *usage)
            }
            Api::OpenAi => {
                openai_completion_json(model, text.as_deref(), calls, "tool_calls", *usage)
            }
        }),
        Reply::Json {
            status,
            body,
            headers,
        } => Rendered {
            status: *status,
            body: body.to_string(),
            headers: headers.clone(),
        },
        Reply::Error {
            status,
            message,
            retry_after,
        } => Rendered {
            status: *status,
            body: error_json(api, *status, message, None).to_string(),
            headers: retry_after
                .iter()
                .map(|v| ("retry-after".to_string(), v.clone()))
                .collect(),
        },
        Reply::Garbage { status, body } => Rendered {
            status: *status,
            body: body.clone(),
            headers: Vec::new(),
        },
        Reply::Delayed { reply, .. } => render(reply, api, model),
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An Anthropic Messages API response body.
pub fn anthropic_message_json(
    model: &str,
    text: Option<&str>,
    calls: &[ScriptedCall],
    stop_reason: &str,
    usage: Usage,
) -> Value {
    let mut content: Vec<Value> = text
        .filter(|t| !t.is_empty())
        .map(|t| json!({ "type": "text", "text": t }))
        .into_iter()
        .collect();
    content.extend(calls.iter().map(|c| {
        json!({
            "type": "tool_use",
            "id": format!("toolu_{}", &short_id()[..24]),
            "name": c.name,
            "input": c.input,
        })
    }));
    json!({
        "id": format!("msg_{}", &short_id()[..24]),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": usage.input,
            "cache_creation_input_tokens": usage.cache_write,
            "cache_read_input_tokens": usage.cache_read,
            "output_tokens": usage.output,
        },
    })
}

/// An OpenAI Chat Completions response body.
pub fn openai_completion_json(
    model: &str,
    text: Option<&str>,
    calls: &[ScriptedCall],
    finish_reason: &str,
    usage: Usage,
) -> Value {
    let mut message = json!({
        "role": "assistant",
        "content": text,
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(
            calls
                .iter()
                .map(|c| {
                    json!({
                        "id": format!("call_{}", &short_id()[..24]),
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": c.raw_arguments.clone().unwrap_or_else(|| c.input.to_string()),
                        },
                    })
                })
                .collect(),
        );
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "id": format!("chatcmpl-{}", short_id()),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": usage.input + usage.cache_read,
            "completion_tokens": usage.output,
            "total_tokens": usage.input + usage.cache_read + usage.output,
            "prompt_tokens_details": { "cached_tokens": usage.cache_read },
        },
    })
}

/// The vendor's error body for `status`.
pub fn error_json(api: Api, status: u16, message: &str, param: Option<&str>) -> Value {
    match api {
        Api::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            json!({
                "type": "error",
                "error": { "type": kind, "message": message },
                "request_id": format!("req_{}", &short_id()[..24]),
            })
        }
        Api::OpenAi => {
            let (kind, code) = match status {
                401 => ("invalid_request_error", Some("invalid_api_key")),
                429 => ("requests", Some("rate_limit_exceeded")),
                s if s >= 500 => ("server_error", None),
                _ => ("invalid_request_error", None),
            };
            json!({
                "error": { "message": message, "type": kind, "param": param, "code": code }
            })
        }
    }
}

fn default_message(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "Invalid authentication",
        404 => "Not found",
        429 => "Rate limit exceeded, please retry later",
        500 => "Internal server error",
        502 => "Bad gateway",
        503 => "Service unavailable",
        529 => "Overloaded",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_render_in_both_formats() {
        let reply = Reply::tool_call("todo_create", json!({"title": "x"})).with_usage(7, 3);
        let a: Value =
            serde_json::from_str(&render(&reply, Api::Anthropic, "m").body).unwrap_or_default();
        assert_eq!(a["stop_reason"], "tool_use");
        assert_eq!(a["content"][0]["type"], "tool_use");
        assert_eq!(a["content"][0]["input"], json!({"title": "x"}));
        assert_eq!(
            a["usage"],
            json!({"input_tokens": 7, "output_tokens": 3,
                   "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
        );
        let cached = reply.clone().with_full_usage(Usage {
            input: 7,
            output: 3,
            cache_read: 100,
            cache_write: 20,
        });
        let oc: Value =
            serde_json::from_str(&render(&cached, Api::OpenAi, "m").body).unwrap_or_default();
        // OpenAI's prompt_tokens include the cached ones.
        assert_eq!(oc["usage"]["prompt_tokens"], 107);
        assert_eq!(oc["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
        let o: Value =
            serde_json::from_str(&render(&reply, Api::OpenAi, "m").body).unwrap_or_default();
        assert_eq!(o["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(o["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            o["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"title\":\"x\"}"
        );
        assert_eq!(o["usage"]["total_tokens"], 10);
    }

    #[test]
    fn errors_carry_retry_after_and_vendor_shape() {
        let r = render(&Reply::rate_limited("2"), Api::Anthropic, "m");
        assert_eq!(r.status, 429);
        assert_eq!(
            r.headers,
            vec![("retry-after".to_string(), "2".to_string())]
        );
        let v: Value = serde_json::from_str(&r.body).unwrap_or_default();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        let r = render(&Reply::overloaded(), Api::OpenAi, "m");
        let v: Value = serde_json::from_str(&r.body).unwrap_or_default();
        assert_eq!(v["error"]["type"], "server_error");
    }
}
