//! Shared helpers: providers pointed at a fake, tiny retry delays, a tool set.

use std::collections::HashMap;
use std::time::Duration;

use fake_llm::FakeLlm;
use llm::{ChatRequest, Llm, LlmSettings, RetryPolicy, ToolDef};
use serde_json::json;

pub const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789-secret";
pub const OPENAI_KEY: &str = "sk-openai-test-9876543210-secret";

/// Fast retries so tests do not sleep for real.
pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        request_timeout: Duration::from_secs(10),
    }
}

pub fn settings(pairs: &[(&str, String)]) -> LlmSettings {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    LlmSettings::from_lookup(|k| map.get(k).cloned()).unwrap()
}

pub fn anthropic(fake: &FakeLlm) -> Llm {
    let s = settings(&[
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.to_string()),
        // Trailing slash tolerated.
        ("ANTHROPIC_BASE_URL", format!("{}/", fake.base_url())),
    ]);
    Llm::from_settings(&s, reqwest::Client::new())
        .unwrap()
        .with_retry_policy(fast_policy())
}

pub fn openai(fake: &FakeLlm) -> Llm {
    let s = settings(&[
        ("OPENAI_API_KEY", OPENAI_KEY.to_string()),
        ("OPENAI_BASE_URL", fake.openai_base_url()),
    ]);
    Llm::from_settings(&s, reqwest::Client::new())
        .unwrap()
        .with_retry_policy(fast_policy())
}

pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "todo_create".into(),
            description: "Create a todo".into(),
            input_schema: json!({
                "type": "object",
                "required": ["title"],
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                    "priority": {"type": "integer", "minimum": 1, "maximum": 3},
                    "dueDate": {"type": "string", "format": "date"}
                },
                "additionalProperties": false
            }),
        },
        ToolDef {
            name: "todo_complete".into(),
            description: "Complete a todo".into(),
            input_schema: json!({
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string"}},
                "additionalProperties": false
            }),
        },
    ]
}

pub fn request_with_tools(user: &str) -> ChatRequest {
    let mut req = ChatRequest::new("You are a busy parent.", user, 512);
    req.tools = tools();
    req.temperature = Some(0.7);
    req
}
