//! Request validation as strict as the real vendor APIs (stricter where noted).
//!
//! Rules: every check here mirrors a 400/401 the real API answers, with a message in its
//! style, so a provider that passes the fake sends what the vendor accepts. Where the
//! vendor is lenient but our client must not rely on it, the fake is strict on purpose:
//! Anthropic roles must alternate (the API would merge them) and the first message must
//! be from the user.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

/// How the fake checks credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthRule {
    /// A non-empty key must be present (default).
    #[default]
    AnyKey,
    /// Exactly this key must be sent.
    Exact(String),
    /// No key is required (Ollama/vLLM style); one that is sent is ignored.
    NotRequired,
}

/// Why the fake refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status (400 or 401).
    pub status: u16,
    /// Vendor-style message.
    pub message: String,
    /// OpenAI's `param`, when the error names one.
    pub param: Option<String>,
}

fn bad(message: impl Into<String>) -> Rejection {
    Rejection {
        status: 400,
        message: message.into(),
        param: None,
    }
}

fn bad_param(message: impl Into<String>, param: impl Into<String>) -> Rejection {
    Rejection {
        status: 400,
        message: message.into(),
        param: Some(param.into()),
    }
}

fn unauthorized(message: impl Into<String>) -> Rejection {
    Rejection {
        status: 401,
        message: message.into(),
        param: None,
    }
}

/// Whether `name` matches `^[a-zA-Z0-9_-]{1,64}$` (the vendors' pattern, which is the
/// workspace's one name rule).
pub use types::names::is_valid_name as is_valid_tool_name;

fn check_json_content_type(headers: &BTreeMap<String, String>) -> Result<(), Rejection> {
    match headers.get("content-type") {
        Some(ct) if ct.to_ascii_lowercase().starts_with("application/json") => Ok(()),
        _ => Err(bad("Content-Type must be application/json")),
    }
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), Rejection> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) if at.is_empty() => Err(bad(format!("{k}: Extra inputs are not permitted"))),
        Some(k) => Err(bad(format!("{at}.{k}: Extra inputs are not permitted"))),
        None => Ok(()),
    }
}

const ANTHROPIC_TOP: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "temperature",
    "tools",
    "tool_choice",
    "stop_sequences",
    "stream",
    "metadata",
    "top_p",
    "top_k",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
];

/// Validates a `POST /v1/messages` request.
pub fn validate_anthropic(
    headers: &BTreeMap<String, String>,
    body: &Value,
    auth: &AuthRule,
) -> Result<(), Rejection> {
    match (auth, headers.get("x-api-key").map(|k| k.trim())) {
        (AuthRule::NotRequired, _) => {}
        (_, None | Some("")) => return Err(unauthorized("x-api-key header is required")),
        (AuthRule::Exact(want), Some(got)) if want != got => {
            return Err(unauthorized("invalid x-api-key"));
        }
        _ => {}
    }
    match headers.get("anthropic-version").map(String::as_str) {
        None => return Err(bad("anthropic-version: header is required")),
        Some("2023-06-01" | "2023-01-01") => {}
        Some(v) => return Err(bad(format!("anthropic-version: invalid version {v:?}"))),
    }
    check_json_content_type(headers)?;
    let Some(obj) = body.as_object() else {
        return Err(bad("request body must be a JSON object"));
    };
    check_keys(obj, ANTHROPIC_TOP, "")?;
    match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        Some(_) => return Err(bad("model: Input should be a valid string")),
        None => return Err(bad("model: Field required")),
    }
    match obj.get("max_tokens") {
        None => return Err(bad("max_tokens: Field required")),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => {}
            _ => {
                return Err(bad(
                    "max_tokens: Input should be an integer greater than or equal to 1",
                ));
            }
        },
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(bad("stream: the fake does not stream"));
    }
    if let Some(t) = obj.get("temperature") {
        match t.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => {}
            _ => return Err(bad("temperature: Input should be a number between 0 and 1")),
        }
    }
    if let Some(system) = obj.get("system") {
        match system {
            Value::String(_) => {}
            Value::Array(blocks) => {
                for (j, b) in blocks.iter().enumerate() {
                    text_block(b, &format!("system.{j}"))?;
                }
            }
            _ => return Err(bad("system: Input should be a valid string or list")),
        }
    }
    cache_controls(obj)?;
    let tool_names = anthropic_tools(obj)?;
    let messages = match obj.get("messages") {
        None => return Err(bad("messages: Field required")),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(bad("messages: Input should be a valid list")),
    };
    if messages.is_empty() {
        return Err(bad("messages: at least one message is required"));
    }
    anthropic_messages(messages, &tool_names)
}

/// Most blocks that may carry `cache_control` in one request.
pub const MAX_CACHE_BREAKPOINTS: usize = 4;

/// Every `cache_control` must be `{"type":"ephemeral"}` with an optional `ttl` of `5m` or
/// `1h`; at most [`MAX_CACHE_BREAKPOINTS`] per request; a `1h` entry may not follow a
/// `5m` one (in the order tools → system → messages).
fn cache_controls(obj: &Map<String, Value>) -> Result<(), Rejection> {
    // Every block that may carry a marker, in reading order.
    let mut spots: Vec<(String, &Value)> = Vec::new();
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        spots.extend(
            tools
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("tools.{i}"), t)),
        );
    }
    if let Some(blocks) = obj.get("system").and_then(Value::as_array) {
        spots.extend(
            blocks
                .iter()
                .enumerate()
                .map(|(j, b)| (format!("system.{j}"), b)),
        );
    }
    if let Some(messages) = obj.get("messages").and_then(Value::as_array) {
        for (i, m) in messages.iter().enumerate() {
            for (j, b) in m
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                spots.push((format!("messages.{i}.content.{j}"), b));
                if let Some(parts) = b.get("content").and_then(Value::as_array) {
                    spots.extend(
                        parts
                            .iter()
                            .enumerate()
                            .map(|(k, p)| (format!("messages.{i}.content.{j}.content.{k}"), p)),
                    );
                }
            }
        }
    }
    let found: Vec<(String, &Value)> = spots
        .into_iter()
        .filter_map(|(at, b)| b.get("cache_control").map(|cc| (at, cc)))
        .collect();
    let mut seen_5m = false;
    for (at, cc) in &found {
        let Some(o) = cc.as_object() else {
            return Err(bad(format!(
                "{at}.cache_control: Input should be an object"
            )));
        };
        check_keys(o, &["type", "ttl"], &format!("{at}.cache_control"))?;
        if o.get("type").and_then(Value::as_str) != Some("ephemeral") {
            return Err(bad(format!(
                "{at}.cache_control.type: Input should be 'ephemeral'"
            )));
        }
        match o.get("ttl") {
            None => seen_5m = true,
            Some(v) if v.as_str() == Some("5m") => seen_5m = true,
            Some(v) if v.as_str() == Some("1h") => {
                if seen_5m {
                    return Err(bad(
                        "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block",
                    ));
                }
            }
            Some(_) => {
                return Err(bad(format!(
                    "{at}.cache_control.ttl: Input should be '5m' or '1h'"
                )));
            }
        }
    }
    if found.len() > MAX_CACHE_BREAKPOINTS {
        return Err(bad(format!(
            "A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {}.",
            found.len()
        )));
    }
    Ok(())
}

fn anthropic_tools(obj: &Map<String, Value>) -> Result<Option<HashSet<String>>, Rejection> {
    let Some(tools) = obj.get("tools") else {
        return Ok(None);
    };
    let Some(tools) = tools.as_array() else {
        return Err(bad("tools: Input should be a valid list"));
    };
    let mut names = HashSet::new();
    for (i, t) in tools.iter().enumerate() {
        let Some(t) = t.as_object() else {
            return Err(bad(format!("tools.{i}: Input should be an object")));
        };
        check_keys(
            t,
            &[
                "name",
                "description",
                "input_schema",
                "cache_control",
                "type",
            ],
            &format!("tools.{i}"),
        )?;
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            return Err(bad(format!("tools.{i}.name: Field required")));
        };
        if !is_valid_tool_name(name) {
            return Err(bad(format!(
                "tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )));
        }
        if t.get("description").is_some_and(|d| !d.is_string()) {
            return Err(bad(format!(
                "tools.{i}.description: Input should be a valid string"
            )));
        }
        match t.get("input_schema") {
            None => return Err(bad(format!("tools.{i}.input_schema: Field required"))),
            Some(s) if s.get("type").and_then(Value::as_str) == Some("object") => {}
            Some(_) => {
                return Err(bad(format!(
                    "tools.{i}.input_schema.type: Input should be 'object'"
                )));
            }
        }
        if !names.insert(name.to_string()) {
            return Err(bad("tools: Tool names must be unique."));
        }
    }
    Ok(Some(names))
}

fn text_block(b: &Value, at: &str) -> Result<(), Rejection> {
    let Some(o) = b.as_object() else {
        return Err(bad(format!("{at}: Input should be an object")));
    };
    if o.get("type").and_then(Value::as_str) != Some("text") {
        return Err(bad(format!("{at}.type: Input should be 'text'")));
    }
    check_keys(o, &["type", "text", "cache_control", "citations"], at)?;
    match o.get("text").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() => Ok(()),
        Some(_) => Err(bad(format!(
            "{at}.text: text content blocks must be non-empty"
        ))),
        None => Err(bad(format!("{at}.text: Field required"))),
    }
}

fn anthropic_messages(
    messages: &[Value],
    tool_names: &Option<HashSet<String>>,
) -> Result<(), Rejection> {
    let mut prev_role: Option<&str> = None;
    // tool_use ids of the previous (assistant) message, awaiting results.
    let mut pending: Vec<String> = Vec::new();
    let last = messages.len().saturating_sub(1);
    for (i, m) in messages.iter().enumerate() {
        let Some(m) = m.as_object() else {
            return Err(bad(format!("messages.{i}: Input should be an object")));
        };
        check_keys(m, &["role", "content"], &format!("messages.{i}"))?;
        let role = match m.get("role").and_then(Value::as_str) {
            Some(r @ ("user" | "assistant")) => r,
            _ => {
                return Err(bad(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                )));
            }
        };
        if i == 0 && role != "user" {
            return Err(bad("messages: first message must use the \"user\" role"));
        }
        if prev_role == Some(role) {
            return Err(bad(format!(
                "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" roles in a row"
            )));
        }
        prev_role = Some(role);
        let blocks: Vec<Value> = match m.get("content") {
            Some(Value::String(s)) => {
                if s.is_empty() && !(role == "assistant" && i == last) {
                    return Err(bad(format!(
                        "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                    )));
                }
                vec![]
            }
            Some(Value::Array(b)) => {
                if b.is_empty() && !(role == "assistant" && i == last) {
                    return Err(bad(format!(
                        "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                    )));
                }
                b.clone()
            }
            Some(_) => {
                return Err(bad(format!(
                    "messages.{i}.content: Input should be a valid string or list"
                )));
            }
            None => return Err(bad(format!("messages.{i}.content: Field required"))),
        };
        let mut uses: Vec<String> = Vec::new();
        let mut results: Vec<String> = Vec::new();
        let mut seen_non_result = false;
        for (j, b) in blocks.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            let Some(o) = b.as_object() else {
                return Err(bad(format!("{at}: Input should be an object")));
            };
            match o.get("type").and_then(Value::as_str) {
                Some("text") => {
                    text_block(b, &at)?;
                    seen_non_result = true;
                }
                Some("tool_use") => {
                    if role != "assistant" {
                        return Err(bad(format!(
                            "{at}: tool_use blocks are only allowed in assistant messages"
                        )));
                    }
                    check_keys(o, &["type", "id", "name", "input", "cache_control"], &at)?;
                    let Some(id) = o
                        .get("id")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                    else {
                        return Err(bad(format!("{at}.id: Field required")));
                    };
                    match o.get("name").and_then(Value::as_str) {
                        Some(n) if is_valid_tool_name(n) => {}
                        _ => {
                            return Err(bad(format!(
                                "{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                            )));
                        }
                    }
                    if !o.get("input").is_some_and(Value::is_object) {
                        return Err(bad(format!(
                            "{at}.input: Input should be a valid dictionary"
                        )));
                    }
                    if uses.contains(&id.to_string()) {
                        return Err(bad(format!("{at}: `tool_use` ids must be unique")));
                    }
                    uses.push(id.to_string());
                }
                Some("tool_result") => {
                    if role != "user" {
                        return Err(bad(format!(
                            "{at}: tool_result blocks are only allowed in user messages"
                        )));
                    }
                    if seen_non_result {
                        return Err(bad(format!(
                            "messages.{i}: tool_result blocks must come first in the content array, before any text"
                        )));
                    }
                    check_keys(
                        o,
                        &[
                            "type",
                            "tool_use_id",
                            "content",
                            "is_error",
                            "cache_control",
                        ],
                        &at,
                    )?;
                    let Some(id) = o.get("tool_use_id").and_then(Value::as_str) else {
                        return Err(bad(format!("{at}.tool_use_id: Field required")));
                    };
                    match o.get("content") {
                        None | Some(Value::String(_)) => {}
                        Some(Value::Array(parts)) => {
                            for (k, p) in parts.iter().enumerate() {
                                let kind = p.get("type").and_then(Value::as_str);
                                if kind == Some("text") {
                                    text_block(p, &format!("{at}.content.{k}"))?;
                                } else if kind != Some("image") {
                                    return Err(bad(format!(
                                        "{at}.content.{k}.type: Input should be 'text' or 'image'"
                                    )));
                                }
                            }
                        }
                        Some(_) => {
                            return Err(bad(format!(
                                "{at}.content: Input should be a valid string or list"
                            )));
                        }
                    }
                    if o.get("is_error").is_some_and(|e| !e.is_boolean()) {
                        return Err(bad(format!(
                            "{at}.is_error: Input should be a valid boolean"
                        )));
                    }
                    if !pending.contains(&id.to_string()) {
                        return Err(bad(format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        )));
                    }
                    results.push(id.to_string());
                }
                Some("image" | "document") => seen_non_result = true,
                Some("thinking" | "redacted_thinking") if role == "assistant" => {}
                _ => return Err(bad(format!("{at}.type: unknown content block type"))),
            }
        }
        if (!uses.is_empty() || !results.is_empty())
            && tool_names.as_ref().is_none_or(HashSet::is_empty)
        {
            return Err(bad(
                "Requests which include `tool_use` or `tool_result` blocks must define tools.",
            ));
        }
        if role == "user" {
            let missing: Vec<&str> = pending
                .iter()
                .filter(|id| !results.contains(id))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(bad(format!(
                    "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    i.saturating_sub(1),
                    missing.join(", ")
                )));
            }
            pending.clear();
        } else {
            pending = uses;
        }
    }
    if !pending.is_empty() {
        return Err(bad(format!(
            "messages.{last}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
            pending.join(", ")
        )));
    }
    Ok(())
}

const OPENAI_TOP: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "seed",
    "metadata",
    "store",
    "reasoning_effort",
    "service_tier",
    "modalities",
    "prediction",
    "audio",
    "web_search_options",
];

/// llama.cpp strictness (llama-cpp-python's server validates with pydantic and answers
/// HTTP 500): an assistant message's `content` must be a string, never `null` or
/// missing, even beside `tool_calls`.
pub fn validate_llama_cpp_strict(body: &Value) -> Result<(), Rejection> {
    let messages = body.get("messages").and_then(Value::as_array);
    for (i, m) in messages.into_iter().flatten().enumerate() {
        if m.get("role").and_then(Value::as_str) == Some("assistant")
            && !m.get("content").is_some_and(Value::is_string)
        {
            let input = m.get("content").map_or("None".to_owned(), |c| match c {
                Value::Null => "None".to_owned(),
                other => other.to_string(),
            });
            return Err(Rejection {
                status: 500,
                message: format!(
                    "1 validation errors:\n  {{'type': 'string_type', 'loc': ('body', 'messages', {i}, 'ChatCompletionRequestAssistantMessage', 'content'), 'msg': 'Input should be a valid string', 'input': {input}}}"
                ),
                param: None,
            });
        }
    }
    Ok(())
}

/// Validates a `POST /v1/chat/completions` request.
pub fn validate_openai(
    headers: &BTreeMap<String, String>,
    body: &Value,
    auth: &AuthRule,
) -> Result<(), Rejection> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    match (auth, bearer) {
        (AuthRule::NotRequired, _) => {}
        (_, None) => {
            return Err(unauthorized(
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            ));
        }
        (AuthRule::Exact(want), Some(got)) if want != got => {
            return Err(unauthorized("Incorrect API key provided."));
        }
        _ => {}
    }
    check_json_content_type(headers)?;
    let Some(obj) = body.as_object() else {
        return Err(bad("We could not parse the JSON body of your request."));
    };
    if let Some(k) = obj.keys().find(|k| !OPENAI_TOP.contains(&k.as_str())) {
        return Err(bad(format!("Unrecognized request argument supplied: {k}")));
    }
    match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {}
        _ => return Err(bad_param("you must provide a model parameter", "model")),
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(bad_param("the fake does not stream", "stream"));
    }
    for key in ["max_tokens", "max_completion_tokens"] {
        if obj
            .get(key)
            .is_some_and(|v| v.as_u64().is_none_or(|n| n < 1))
        {
            return Err(bad_param(
                format!("Invalid '{key}': integer below minimum value. Expected a value >= 1."),
                key,
            ));
        }
    }
    if obj
        .get("temperature")
        .is_some_and(|t| !t.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)))
    {
        return Err(bad_param(
            "Invalid 'temperature': expected a number between 0 and 2.",
            "temperature",
        ));
    }
    let has_tools = openai_tools(obj)?;
    if let Some(choice) = obj.get("tool_choice") {
        if !has_tools {
            return Err(bad_param(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                "tool_choice",
            ));
        }
        let ok = match choice {
            Value::String(s) => ["none", "auto", "required"].contains(&s.as_str()),
            Value::Object(o) => {
                o.get("type").and_then(Value::as_str) == Some("function")
                    && o.get("function")
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .is_some()
            }
            _ => false,
        };
        if !ok {
            return Err(bad_param("Invalid value for 'tool_choice'.", "tool_choice"));
        }
    }
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(bad_param("[] is too short - 'messages'", "messages")),
        _ => {
            return Err(bad_param(
                "Missing required parameter: 'messages'.",
                "messages",
            ));
        }
    };
    openai_messages(messages)
}

fn openai_tools(obj: &Map<String, Value>) -> Result<bool, Rejection> {
    let Some(tools) = obj.get("tools") else {
        return Ok(false);
    };
    let Some(tools) = tools.as_array() else {
        return Err(bad_param(
            "Invalid type for 'tools': expected an array.",
            "tools",
        ));
    };
    if tools.is_empty() {
        return Err(bad_param("[] is too short - 'tools'", "tools"));
    }
    let mut names = HashSet::new();
    for (i, t) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        let Some(t) = t.as_object() else {
            return Err(bad_param(
                format!("Invalid type for '{param}': expected an object."),
                param,
            ));
        };
        if let Some(k) = t
            .keys()
            .find(|k| !["type", "function"].contains(&k.as_str()))
        {
            return Err(bad_param(
                format!("Unrecognized request argument supplied: {param}.{k}"),
                param,
            ));
        }
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(bad_param(
                format!("Invalid value for '{param}.type': expected 'function'."),
                format!("{param}.type"),
            ));
        }
        let Some(f) = t.get("function").and_then(Value::as_object) else {
            return Err(bad_param(
                format!("Missing required parameter: '{param}.function'."),
                format!("{param}.function"),
            ));
        };
        if let Some(k) = f
            .keys()
            .find(|k| !["name", "description", "parameters", "strict"].contains(&k.as_str()))
        {
            return Err(bad_param(
                format!("Unrecognized request argument supplied: {param}.function.{k}"),
                param,
            ));
        }
        let name = f.get("name").and_then(Value::as_str).unwrap_or("");
        if !is_valid_tool_name(name) {
            return Err(bad_param(
                format!(
                    "Invalid '{param}.function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."
                ),
                format!("{param}.function.name"),
            ));
        }
        if f.get("description").is_some_and(|d| !d.is_string()) {
            return Err(bad_param(
                format!("Invalid type for '{param}.function.description': expected a string."),
                param,
            ));
        }
        if f.get("parameters").is_some_and(|p| !p.is_object()) {
            return Err(bad_param(
                format!("Invalid type for '{param}.function.parameters': expected an object."),
                param,
            ));
        }
        if !names.insert(name.to_string()) {
            return Err(bad_param(format!("Duplicate tool name: {name}"), "tools"));
        }
    }
    Ok(true)
}

fn openai_content_ok(content: Option<&Value>) -> bool {
    match content {
        Some(Value::String(_)) => true,
        Some(Value::Array(parts)) => {
            !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p.get("type").and_then(Value::as_str).is_some())
        }
        _ => false,
    }
}

fn openai_messages(messages: &[Value]) -> Result<(), Rejection> {
    // Tool call ids of the last assistant message still waiting for `tool` messages.
    let mut pending: Vec<String> = Vec::new();
    // Whether `tool` messages are allowed here (right after tool_calls or other tool msgs).
    let mut in_tool_block = false;
    for (i, m) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Some(m) = m.as_object() else {
            return Err(bad_param(
                format!("Invalid type for '{param}': expected an object."),
                param,
            ));
        };
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "tool" && !pending.is_empty() {
            return Err(bad_param(
                format!(
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                    pending.join(", ")
                ),
                "messages",
            ));
        }
        let allowed: &[&str] = match role {
            "system" | "developer" => &["role", "content", "name"],
            "user" => &["role", "content", "name"],
            "assistant" => &["role", "content", "name", "tool_calls", "refusal", "audio"],
            "tool" => &["role", "content", "tool_call_id"],
            _ => {
                return Err(bad_param(
                    format!(
                        "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
                    ),
                    format!("{param}.role"),
                ));
            }
        };
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(bad_param(
                format!("Unrecognized request argument supplied: {param}.{k}"),
                param,
            ));
        }
        match role {
            "system" | "developer" | "user" => {
                if !openai_content_ok(m.get("content")) {
                    return Err(bad_param(
                        format!(
                            "Invalid value for '{param}.content': expected a string or an array of content parts."
                        ),
                        format!("{param}.content"),
                    ));
                }
                in_tool_block = false;
            }
            "assistant" => {
                let calls = match m.get("tool_calls") {
                    None => None,
                    Some(Value::Array(c)) if !c.is_empty() => Some(c),
                    Some(Value::Array(_)) => {
                        return Err(bad_param(
                            format!("[] is too short - '{param}.tool_calls'"),
                            format!("{param}.tool_calls"),
                        ));
                    }
                    Some(_) => {
                        return Err(bad_param(
                            format!("Invalid type for '{param}.tool_calls': expected an array."),
                            format!("{param}.tool_calls"),
                        ));
                    }
                };
                let content = m.get("content");
                let content_ok = match content {
                    None | Some(Value::Null) => calls.is_some(),
                    other => openai_content_ok(other),
                };
                if !content_ok {
                    return Err(bad_param(
                        format!(
                            "Invalid value for '{param}.content': expected a string, got null."
                        ),
                        format!("{param}.content"),
                    ));
                }
                in_tool_block = false;
                if let Some(calls) = calls {
                    for (j, c) in calls.iter().enumerate() {
                        let cp = format!("{param}.tool_calls[{j}]");
                        let Some(c) = c.as_object() else {
                            return Err(bad_param(
                                format!("Invalid type for '{cp}': expected an object."),
                                cp,
                            ));
                        };
                        if let Some(k) = c
                            .keys()
                            .find(|k| !["id", "type", "function"].contains(&k.as_str()))
                        {
                            return Err(bad_param(
                                format!("Unrecognized request argument supplied: {cp}.{k}"),
                                cp,
                            ));
                        }
                        let Some(id) = c
                            .get("id")
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                        else {
                            return Err(bad_param(
                                format!("Missing required parameter: '{cp}.id'."),
                                format!("{cp}.id"),
                            ));
                        };
                        if c.get("type").and_then(Value::as_str) != Some("function") {
                            return Err(bad_param(
                                format!("Missing required parameter: '{cp}.type'."),
                                format!("{cp}.type"),
                            ));
                        }
                        let Some(f) = c.get("function").and_then(Value::as_object) else {
                            return Err(bad_param(
                                format!("Missing required parameter: '{cp}.function'."),
                                format!("{cp}.function"),
                            ));
                        };
                        let name = f.get("name").and_then(Value::as_str).unwrap_or("");
                        if !is_valid_tool_name(name) {
                            return Err(bad_param(
                                format!(
                                    "Invalid '{cp}.function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."
                                ),
                                format!("{cp}.function.name"),
                            ));
                        }
                        match f.get("arguments") {
                            Some(Value::String(_)) => {}
                            Some(other) => {
                                let got = match other {
                                    Value::Object(_) => "an object",
                                    Value::Array(_) => "an array",
                                    Value::Null => "null",
                                    _ => "a non-string value",
                                };
                                return Err(bad_param(
                                    format!(
                                        "Invalid type for '{cp}.function.arguments': expected a string, but got {got} instead."
                                    ),
                                    format!("{cp}.function.arguments"),
                                ));
                            }
                            None => {
                                return Err(bad_param(
                                    format!(
                                        "Missing required parameter: '{cp}.function.arguments'."
                                    ),
                                    format!("{cp}.function.arguments"),
                                ));
                            }
                        }
                        if pending.contains(&id.to_string()) {
                            return Err(bad_param(format!("Duplicate tool_call id: {id}"), cp));
                        }
                        pending.push(id.to_string());
                    }
                    in_tool_block = true;
                }
            }
            _ => {
                // role == "tool"
                let Some(id) = m.get("tool_call_id").and_then(Value::as_str) else {
                    return Err(bad_param(
                        format!("Missing required parameter: '{param}.tool_call_id'."),
                        format!("{param}.tool_call_id"),
                    ));
                };
                if !openai_content_ok(m.get("content")) {
                    return Err(bad_param(
                        format!(
                            "Invalid value for '{param}.content': expected a string or an array of content parts."
                        ),
                        format!("{param}.content"),
                    ));
                }
                let Some(pos) = pending
                    .iter()
                    .position(|p| p == id)
                    .filter(|_| in_tool_block)
                else {
                    return Err(bad_param(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                        format!("{param}.role"),
                    ));
                };
                pending.remove(pos);
            }
        }
    }
    if !pending.is_empty() {
        return Err(bad_param(
            format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                pending.join(", ")
            ),
            "messages",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anthropic_headers() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("x-api-key".to_string(), "k".to_string()),
            ("anthropic-version".to_string(), "2023-06-01".to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ])
    }

    fn openai_headers() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("authorization".to_string(), "Bearer k".to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ])
    }

    fn tool() -> Value {
        json!({"name": "todo_create", "description": "d", "input_schema": {"type": "object"}})
    }

    fn a(body: Value) -> Result<(), Rejection> {
        validate_anthropic(&anthropic_headers(), &body, &AuthRule::AnyKey)
    }

    fn o(body: Value) -> Result<(), Rejection> {
        validate_openai(&openai_headers(), &body, &AuthRule::AnyKey)
    }

    fn msg(r: Result<(), Rejection>) -> String {
        match r {
            Ok(()) => "accepted".into(),
            Err(e) => format!("{} {}", e.status, e.message),
        }
    }

    #[test]
    fn anthropic_accepts_a_full_tool_round() {
        let body = json!({
            "model": "m", "max_tokens": 10, "system": "s", "tools": [tool()],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "ok"},
                    {"type": "tool_use", "id": "t1", "name": "todo_create", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "done", "is_error": false},
                    {"type": "text", "text": "more"}]}
            ]
        });
        assert_eq!(msg(a(body)), "accepted");
    }

    #[test]
    fn anthropic_cache_control_is_checked() {
        let cc = json!({"type": "ephemeral"});
        let text = |t: &str, cc: &Value| json!({"type": "text", "text": t, "cache_control": cc});
        let ok = json!({
            "model": "m", "max_tokens": 1,
            "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": cc}],
            "system": [text("a", &cc), text("b", &cc)],
            "messages": [{"role": "user", "content": [text("c", &cc)]}]
        });
        assert_eq!(msg(a(ok.clone())), "accepted");
        let mut five = ok.clone();
        if let Some(blocks) = five["messages"][0]["content"].as_array_mut() {
            blocks.push(text("d", &cc));
        }
        let got = msg(a(five));
        assert!(
            got.starts_with("400")
                && got
                    .contains("A maximum of 4 blocks with cache_control may be provided. Found 5."),
            "{got}"
        );
        let mut wrong = ok.clone();
        wrong["system"][0]["cache_control"] = json!({"type": "persistent"});
        assert!(msg(a(wrong)).contains("'ephemeral'"));
        let mut ttl = ok.clone();
        ttl["system"][0]["cache_control"] = json!({"type": "ephemeral", "ttl": "2h"});
        assert!(msg(a(ttl)).contains("'5m' or '1h'"));
        let mut order = ok;
        order["system"][1]["cache_control"] = json!({"type": "ephemeral", "ttl": "1h"});
        assert!(msg(a(order)).contains("must not come after"));
    }

    #[test]
    fn anthropic_rejections() {
        let base = |messages: Value| json!({"model": "m", "max_tokens": 10, "tools": [tool()], "messages": messages});
        let cases = [
            (
                json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
                "model: Field required",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens: Field required",
            ),
            (
                json!({"model": "m", "max_tokens": 1}),
                "messages: Field required",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "foo": 1}),
                "Extra inputs",
            ),
            (
                base(json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])),
                "alternate",
            ),
            (
                base(json!([{"role": "assistant", "content": "a"}])),
                "first message",
            ),
            (
                base(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "todo_create", "input": {}}]},
                {"role": "user", "content": "no result"}])),
                "without `tool_result`",
            ),
            (
                base(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "todo_create", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "x"}]}])),
                "unexpected `tool_use_id`",
            ),
            (
                base(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "todo_create", "input": {}}]},
                {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "tool_result", "tool_use_id": "t1", "content": "x"}]}])),
                "must come first",
            ),
            (
                base(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "todo_create", "input": "{}"}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]}])),
                "valid dictionary",
            ),
            (
                base(json!([{"role": "user", "content": [{"type": "text", "text": ""}]}])),
                "non-empty",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "tools": [{"name": "a.b", "input_schema": {"type": "object"}}], "messages": [{"role": "user", "content": "x"}]}),
                "pattern",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "tools": [{"name": "ab"}], "messages": [{"role": "user", "content": "x"}]}),
                "input_schema: Field required",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]}]}),
                "must define tools",
            ),
        ];
        for (body, want) in cases {
            let got = msg(a(body.clone()));
            assert!(
                got.starts_with("400") && got.contains(want),
                "{want}: {got} for {body}"
            );
        }
    }

    #[test]
    fn anthropic_headers_are_checked() {
        let body =
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]});
        let mut h = anthropic_headers();
        h.remove("x-api-key");
        assert_eq!(
            validate_anthropic(&h, &body, &AuthRule::AnyKey).map_err(|e| e.status),
            Err(401)
        );
        assert!(validate_anthropic(&h, &body, &AuthRule::NotRequired).is_ok());
        let h = anthropic_headers();
        assert_eq!(
            validate_anthropic(&h, &body, &AuthRule::Exact("other".into())).map_err(|e| e.status),
            Err(401)
        );
        let mut h = anthropic_headers();
        h.remove("anthropic-version");
        assert!(
            msg(validate_anthropic(&h, &body, &AuthRule::AnyKey)).contains("anthropic-version")
        );
    }

    #[test]
    fn openai_accepts_a_full_tool_round() {
        let body = json!({
            "model": "m", "max_tokens": 10, "temperature": 0.2, "tool_choice": "auto",
            "tools": [{"type": "function", "function": {"name": "todo_create", "description": "d", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "todo_create", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "todo_create", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c2", "content": "ok"},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                {"role": "assistant", "content": "done"}
            ]
        });
        assert_eq!(msg(o(body)), "accepted");
    }

    #[test]
    fn openai_rejections() {
        let with = |messages: Value| json!({"model": "m", "messages": messages});
        let call = |id: &str, args: Value| json!({"id": id, "type": "function", "function": {"name": "todo_create", "arguments": args}});
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model parameter",
            ),
            (json!({"model": "m"}), "'messages'"),
            (json!({"model": "m", "messages": []}), "too short"),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "bogus": 1}),
                "Unrecognized request argument",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": []}),
                "too short - 'tools'",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}),
                "only allowed when 'tools'",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                    "tools": [{"type": "function", "function": {"name": "todo.create"}}]}),
                "does not match pattern",
            ),
            (
                with(json!([{"role": "user", "content": "x"},
                {"role": "assistant", "content": null, "tool_calls": [call("c1", json!("{}"))]},
                {"role": "user", "content": "y"}])),
                "did not have response messages: c1",
            ),
            (
                with(json!([{"role": "user", "content": "x"},
                {"role": "assistant", "content": null, "tool_calls": [call("c1", json!("{}"))]}])),
                "did not have response messages",
            ),
            (
                with(json!([{"role": "user", "content": "x"},
                {"role": "assistant", "content": null, "tool_calls": [call("c1", json!({}))]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}])),
                "expected a string, but got an object",
            ),
            (
                with(
                    json!([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c9", "content": "ok"}]),
                ),
                "preceeding message with 'tool_calls'",
            ),
            (
                with(
                    json!([{"role": "user", "content": "x"}, {"role": "assistant", "content": null}]),
                ),
                "got null",
            ),
            (
                with(json!([{"role": "robot", "content": "x"}])),
                "Supported values",
            ),
        ];
        for (body, want) in cases {
            let got = msg(o(body.clone()));
            assert!(
                got.starts_with("400") && got.contains(want),
                "{want}: {got} for {body}"
            );
        }
    }

    #[test]
    fn openai_auth_rules() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let mut h = openai_headers();
        h.remove("authorization");
        assert_eq!(
            validate_openai(&h, &body, &AuthRule::AnyKey).map_err(|e| e.status),
            Err(401)
        );
        assert!(validate_openai(&h, &body, &AuthRule::NotRequired).is_ok());
        assert_eq!(
            validate_openai(&openai_headers(), &body, &AuthRule::Exact("x".into()))
                .map_err(|e| e.status),
            Err(401)
        );
        assert!(validate_openai(&openai_headers(), &body, &AuthRule::Exact("k".into())).is_ok());
    }
}
