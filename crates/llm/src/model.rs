//! The provider-neutral conversation model.
//!
//! Rules:
//! - A conversation is `system` + an ordered list of [`Message`]s. Every tool call of an
//!   [`Message::Assistant`] must be answered by a [`ToolResult`] with the same `call_id` in
//!   the [`Message::ToolResults`] that follows it immediately; both vendor APIs reject
//!   anything else, so [`ChatRequest::validate`] checks it before a byte goes on the wire.
//! - Tool names match `^[a-zA-Z0-9_-]{1,64}$` (the vendor APIs reject dots and spaces).
//! - [`RequestMeta`] carries hints only the `sim` provider reads; real providers ignore it,
//!   so nothing in it may change what a real model is asked.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use types::tick::TokenUsage;

use crate::error::LlmError;

/// One request to a chat model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The stable part of the system prompt that many requests share (e.g. the rules of
    /// a persona day, the same for every persona). Sent before [`ChatRequest::system`];
    /// with the tools it forms the cacheable prefix, so nothing volatile (dates, ids)
    /// belongs here. Empty means none.
    #[serde(default)]
    pub shared_system: String,
    /// System prompt (the request-specific part, after `shared_system`); empty means none.
    pub system: String,
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// Tools the model may call; empty means a plain text turn.
    pub tools: Vec<ToolDef>,
    /// Upper bound on generated tokens (required by the Anthropic API).
    pub max_tokens: u32,
    /// Sampling temperature; `None` leaves the vendor default.
    pub temperature: Option<f32>,
    /// Hints for the `sim` provider; ignored by real providers.
    pub meta: RequestMeta,
}

impl ChatRequest {
    /// A request with a system prompt, one user message, no tools and default hints.
    pub fn new(system: impl Into<String>, user: impl Into<String>, max_tokens: u32) -> Self {
        Self {
            shared_system: String::new(),
            system: system.into(),
            messages: vec![Message::user(user)],
            tools: Vec::new(),
            max_tokens,
            temperature: None,
            meta: RequestMeta::default(),
        }
    }

    /// `shared_system` and `system` joined by a blank line (for APIs with one system text).
    pub fn full_system(&self) -> String {
        match (
            self.shared_system.trim().is_empty(),
            self.system.trim().is_empty(),
        ) {
            (true, _) => self.system.clone(),
            (false, true) => self.shared_system.clone(),
            (false, false) => format!("{}\n\n{}", self.shared_system, self.system),
        }
    }

    /// The tools in one deterministic order (by name), so every request of a
    /// conversation starts with a byte-identical prefix.
    pub fn sorted_tools(&self) -> Vec<&ToolDef> {
        let mut tools: Vec<&ToolDef> = self.tools.iter().collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }

    /// Checks the rules both vendor APIs enforce, so a malformed conversation fails fast
    /// with [`LlmError::InvalidRequest`] instead of a vendor 400 after a network round trip.
    pub fn validate(&self) -> Result<(), LlmError> {
        let invalid = |m: String| Err(LlmError::InvalidRequest(m));
        if self.messages.is_empty() {
            return invalid("messages must not be empty".into());
        }
        if self.max_tokens == 0 {
            return invalid("max_tokens must be at least 1".into());
        }
        let mut names = HashSet::new();
        for tool in &self.tools {
            if !is_valid_tool_name(&tool.name) {
                return invalid(format!(
                    "tool name {:?} does not match ^[a-zA-Z0-9_-]{{1,64}}$",
                    truncate_chars(&tool.name, 80)
                ));
            }
            if !names.insert(tool.name.as_str()) {
                return invalid(format!("tool name {:?} is defined twice", tool.name));
            }
        }
        for (i, msg) in self.messages.iter().enumerate() {
            match msg {
                Message::Assistant { tool_calls, .. } => {
                    let mut ids = HashSet::new();
                    for call in tool_calls {
                        if call.id.is_empty() || !ids.insert(call.id.as_str()) {
                            return invalid(format!(
                                "messages[{i}]: tool call ids must be non-empty and unique"
                            ));
                        }
                        if !is_valid_tool_name(&call.name) {
                            return invalid(format!(
                                "messages[{i}]: tool call name {:?} is not a valid tool name",
                                truncate_chars(&call.name, 80)
                            ));
                        }
                    }
                    if tool_calls.is_empty() {
                        continue;
                    }
                    let answered: HashSet<&str> = match self.messages.get(i + 1) {
                        Some(Message::ToolResults(results)) => {
                            results.iter().map(|r| r.call_id.as_str()).collect()
                        }
                        _ => HashSet::new(),
                    };
                    if let Some(missing) = tool_calls
                        .iter()
                        .find(|c| !answered.contains(c.id.as_str()))
                    {
                        return invalid(format!(
                            "messages[{i}]: tool call {:?} is not answered by a tool result in the next message",
                            missing.id
                        ));
                    }
                }
                Message::ToolResults(results) => {
                    if results.is_empty() {
                        return invalid(format!("messages[{i}]: empty tool results"));
                    }
                    let asked: HashSet<&str> =
                        match i.checked_sub(1).and_then(|p| self.messages.get(p)) {
                            Some(Message::Assistant { tool_calls, .. }) => {
                                tool_calls.iter().map(|c| c.id.as_str()).collect()
                            }
                            _ => HashSet::new(),
                        };
                    let mut seen = HashSet::new();
                    for r in results {
                        if !asked.contains(r.call_id.as_str()) || !seen.insert(r.call_id.as_str()) {
                            return invalid(format!(
                                "messages[{i}]: tool result {:?} does not answer a tool call of the previous message",
                                r.call_id
                            ));
                        }
                    }
                }
                Message::User { .. } => {}
            }
        }
        Ok(())
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Externally tagged: an internally tagged enum cannot serialise the `ToolResults` list.
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// Text from the user (or from the runner speaking as the app).
    User {
        /// The text.
        text: String,
    },
    /// A model turn: optional text and the tools it called.
    Assistant {
        /// Text the model produced, if any.
        text: Option<String>,
        /// Tool calls the model made, in order.
        tool_calls: Vec<ToolCall>,
    },
    /// Answers to every tool call of the preceding assistant message.
    ToolResults(Vec<ToolResult>),
}

impl Message {
    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::User { text: text.into() }
    }

    /// The assistant message that echoes a response back into the conversation.
    pub fn assistant_from(response: &ChatResponse) -> Self {
        Self::Assistant {
            text: response.text.clone(),
            tool_calls: response.tool_calls.clone(),
        }
    }
}

/// The answer to one tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The [`ToolCall::id`] this answers.
    pub call_id: String,
    /// What the tool returned (usually JSON text).
    pub content: String,
    /// Whether the tool failed; the model sees it as an error.
    pub is_error: bool,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// `^[a-zA-Z0-9_-]{1,64}$`.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON schema of the arguments object.
    pub input_schema: serde_json::Value,
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Vendor id; the matching [`ToolResult::call_id`] must repeat it.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments object; `{}` when the vendor sent arguments that did not parse.
    pub arguments: serde_json::Value,
    /// Why the vendor's arguments were unusable, if they were; the caller should answer
    /// the call with an error result instead of executing it.
    pub arguments_error: Option<String>,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The model finished its turn.
    EndTurn,
    /// The model wants tool results.
    ToolUse,
    /// `max_tokens` cut the answer off.
    MaxTokens,
    /// Anything else the vendor reported, verbatim.
    Other(String),
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text blocks joined with newlines; `None` when there was no text.
    pub text: Option<String>,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why the model stopped.
    pub stop: StopReason,
    /// Tokens billed for this call.
    pub usage: TokenUsage,
    /// The model that answered, as the vendor names it.
    pub model: String,
}

/// What a request is for; only the `sim` provider reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// A persona lives one day with the app's tools.
    #[default]
    Day,
    /// A persona rates the modules it used, as strict JSON.
    Rating,
    /// A mission planner proposes tool calls.
    Plan,
}

/// Hints for the `sim` provider. Real providers ignore every field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestMeta {
    /// Per-run seed (e.g. derived from persona id and day); mixed with the provider seed.
    pub seed: u64,
    /// What the request is for.
    pub purpose: Purpose,
    /// Module → weight: how much this persona uses each module.
    pub module_mix: BTreeMap<String, f64>,
    /// Tool name → module.
    pub tool_modules: BTreeMap<String, String>,
    /// Modules the rating turn must rate.
    pub modules_to_rate: Vec<String>,
    /// BCP-47-ish locale; `de…` makes sim write German.
    pub locale: String,
    /// Tool name → input schema, for a planning request that offers no native tools (the
    /// JSON contract); lets sim fill `params`. Optional.
    pub tool_schemas: BTreeMap<String, serde_json::Value>,
    /// "Now" for generated dates; `None` means the clock. Tests pin it.
    pub now: Option<DateTime<Utc>>,
}

/// Whether `name` matches `^[a-zA-Z0-9_-]{1,64}$` (the workspace's one name rule).
pub use types::names::is_valid_name as is_valid_tool_name;

pub(crate) use types::text::truncate_chars;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "todo_create".into(),
            arguments: json!({}),
            arguments_error: None,
        }
    }

    fn result(id: &str) -> ToolResult {
        ToolResult {
            call_id: id.into(),
            content: "{}".into(),
            is_error: false,
        }
    }

    #[test]
    fn tool_names_follow_the_vendor_pattern() {
        assert!(is_valid_tool_name("todo_create"));
        assert!(is_valid_tool_name("a-B_9"));
        assert!(is_valid_tool_name(&"x".repeat(64)));
        assert!(!is_valid_tool_name(&"x".repeat(65)));
        assert!(!is_valid_tool_name(""));
        assert!(!is_valid_tool_name("todo.create"));
        assert!(!is_valid_tool_name("todo create"));
        assert!(!is_valid_tool_name("tödo"));
    }

    #[test]
    fn unanswered_tool_call_is_rejected() {
        let mut req = ChatRequest::new("s", "u", 10);
        req.messages.push(Message::Assistant {
            text: None,
            tool_calls: vec![call("a"), call("b")],
        });
        req.messages.push(Message::ToolResults(vec![result("a")]));
        let err = req.validate().unwrap_err();
        assert!(err.to_string().contains("\"b\""), "{err}");
    }

    #[test]
    fn stray_tool_result_is_rejected() {
        let mut req = ChatRequest::new("s", "u", 10);
        req.messages.push(Message::ToolResults(vec![result("a")]));
        assert!(matches!(req.validate(), Err(LlmError::InvalidRequest(_))));
    }

    #[test]
    fn answered_conversation_is_valid() {
        let mut req = ChatRequest::new("s", "u", 10);
        req.messages.push(Message::Assistant {
            text: Some("x".into()),
            tool_calls: vec![call("a")],
        });
        req.messages.push(Message::ToolResults(vec![result("a")]));
        req.messages.push(Message::user("go on"));
        req.validate().unwrap();
    }

    #[test]
    fn bad_tool_definitions_are_rejected() {
        let mut req = ChatRequest::new("s", "u", 10);
        let def = ToolDef {
            name: "notes.create".into(),
            description: String::new(),
            input_schema: json!({"type": "object"}),
        };
        req.tools.push(def.clone());
        assert!(req.validate().is_err());
        req.tools[0].name = "notes_create".into();
        req.validate().unwrap();
        req.tools.push(ToolDef {
            name: "notes_create".into(),
            ..def
        });
        assert!(req.validate().is_err());
    }

    #[test]
    fn conversations_round_trip_through_serde() {
        let mut req = ChatRequest::new("s", "u", 10);
        req.messages.push(Message::Assistant {
            text: None,
            tool_calls: vec![call("a")],
        });
        req.messages.push(Message::ToolResults(vec![result("a")]));
        req.meta.purpose = Purpose::Rating;
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["messages"][2]["tool_results"][0]["call_id"], "a");
        let back: ChatRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_chars("äöü", 2), "äö…");
        assert_eq!(truncate_chars("abc", 3), "abc");
    }
}
