//! Anthropic provider against the validating fake.

use fake_llm::{Api, AuthRule, FakeLlm, Reply};
use llm::{LlmError, Message, StopReason, ToolResult};
use serde_json::json;
use types::tick::TokenUsage;

use crate::common::{ANTHROPIC_KEY, anthropic, request_with_tools};

#[tokio::test(flavor = "multi_thread")]
async fn tool_call_result_and_final_text_round_trip() {
    let fake = FakeLlm::start().await.unwrap();
    // Only the exact key is accepted, so the header must carry it.
    fake.set_anthropic_auth(AuthRule::Exact(ANTHROPIC_KEY.into()));
    fake.push_anthropic(
        Reply::tool_calls(vec![
            ("todo_create".into(), json!({"title": "Milk"})),
            ("todo_complete".into(), json!({"id": "t-1"})),
        ])
        .with_text("Let me note that.")
        .with_usage(120, 30),
    );
    fake.push_anthropic(Reply::text("All done for today.").with_usage(200, 12));
    let llm = anthropic(&fake);
    assert_eq!(llm.provider_name(), "anthropic");

    let mut req = request_with_tools("Live one day with the app.");
    let first = llm.chat(&req).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(first.text.as_deref(), Some("Let me note that."));
    assert_eq!(first.tool_calls.len(), 2);
    assert_eq!(first.tool_calls[0].name, "todo_create");
    assert_eq!(first.tool_calls[0].arguments, json!({"title": "Milk"}));
    assert_eq!(first.tool_calls[0].arguments_error, None);
    assert_eq!(first.model, "claude-sonnet-4-5");

    req.messages.push(Message::assistant_from(&first));
    req.messages.push(Message::ToolResults(vec![
        ToolResult {
            call_id: first.tool_calls[0].id.clone(),
            content: json!({"id": "t-2", "title": "Milk"}).to_string(),
            is_error: false,
        },
        ToolResult {
            call_id: first.tool_calls[1].id.clone(),
            content: "not found".into(),
            is_error: true,
        },
    ]));
    // A user nudge right after the results is merged into the same vendor message.
    req.messages.push(Message::user("Anything else?"));
    let second = llm.chat(&req).await.unwrap();
    assert_eq!(second.stop, StopReason::EndTurn);
    assert_eq!(second.text.as_deref(), Some("All done for today."));
    assert!(second.tool_calls.is_empty());

    let mut total = TokenUsage::default();
    total.add(first.usage);
    total.add(second.usage);
    assert_eq!(
        total,
        TokenUsage {
            input: 320,
            output: 42,
            ..Default::default()
        }
    );

    let recorded = fake.requests_to(Api::Anthropic);
    assert_eq!(recorded.len(), 2);
    for r in &recorded {
        assert_eq!(r.rejection, None, "fake rejected: {:?}", r.rejection);
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(r.headers["anthropic-version"], "2023-06-01");
        assert_eq!(r.headers["x-api-key"], ANTHROPIC_KEY);
        assert!(r.headers["content-type"].starts_with("application/json"));
        assert_eq!(r.body["system"], "You are a busy parent.");
        assert_eq!(r.body["tools"][0]["input_schema"]["type"], "object");
    }
    let messages = recorded[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "user, assistant, user(results + nudge)");
    let results = messages[2]["content"].as_array().unwrap();
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], json!(first.tool_calls[0].id));
    assert_eq!(results[1]["is_error"], true);
    assert_eq!(results[2]["type"], "text");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_request_is_not_retried() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::error(400));
    let err = anthropic(&fake)
        .chat(&request_with_tools("hi"))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Http { status: 400, .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("invalid_request_error"), "{err}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_body_is_a_decode_error() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::garbage());
    let err = anthropic(&fake)
        .chat(&request_with_tools("hi"))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Decode(_)), "{err:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_never_appears_in_errors_or_debug() {
    let fake = FakeLlm::start().await.unwrap();
    // A proxy that echoes the key back must not leak it through our error.
    fake.push_anthropic(Reply::json(
        401,
        json!({"type": "error", "error": {"type": "authentication_error",
            "message": format!("invalid x-api-key {ANTHROPIC_KEY}")}}),
    ));
    let llm = anthropic(&fake);
    let err = llm.chat(&request_with_tools("hi")).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    for text in [err.to_string(), format!("{err:?}"), format!("{llm:?}")] {
        assert!(!text.contains(ANTHROPIC_KEY), "key leaked: {text}");
        assert!(!text.contains("0123456789"), "key leaked: {text}");
    }
    assert!(err.to_string().contains("[REDACTED]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn long_error_bodies_are_truncated() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::Garbage {
        status: 403,
        body: "x".repeat(5000),
    });
    let err = anthropic(&fake)
        .chat(&request_with_tools("hi"))
        .await
        .unwrap_err();
    let LlmError::Http {
        status, message, ..
    } = err
    else {
        panic!("unexpected error");
    };
    assert_eq!(status, 403);
    assert!(message.chars().count() <= llm::MAX_ERROR_BODY_CHARS + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unanswered_tool_call_fails_before_sending() {
    let fake = FakeLlm::start().await.unwrap();
    let mut req = request_with_tools("hi");
    req.messages.push(Message::Assistant {
        text: None,
        tool_calls: vec![llm::ToolCall {
            id: "toolu_1".into(),
            name: "todo_create".into(),
            arguments: json!({}),
            arguments_error: None,
        }],
    });
    req.messages.push(Message::user("ignored the call"));
    let err = anthropic(&fake).chat(&req).await.unwrap_err();
    assert!(matches!(err, LlmError::InvalidRequest(_)), "{err:?}");
    assert!(fake.requests().is_empty());
}
