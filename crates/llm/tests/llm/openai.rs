//! OpenAI-compatible provider against the validating fake.

use fake_llm::{Api, AuthRule, FakeLlm, Reply};
use llm::{Llm, Message, StopReason, ToolResult};
use serde_json::json;

use crate::common::{OPENAI_KEY, fast_policy, openai, request_with_tools, settings};

#[tokio::test(flavor = "multi_thread")]
async fn tool_call_result_and_final_text_round_trip() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_auth(AuthRule::Exact(OPENAI_KEY.into()));
    fake.push_openai(
        Reply::tool_call("todo_create", json!({"title": "Milk", "priority": 2})).with_usage(50, 9),
    );
    fake.push_openai(Reply::text("Done.").with_usage(80, 3));
    let llm = openai(&fake);
    assert_eq!(llm.provider_name(), "openai");
    assert_eq!(llm.model(), "gpt-4o-mini");

    let mut req = request_with_tools("Plan my day.");
    let first = llm.chat(&req).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(first.text, None);
    assert_eq!(
        first.tool_calls[0].arguments,
        json!({"title": "Milk", "priority": 2})
    );
    req.messages.push(Message::assistant_from(&first));
    req.messages.push(Message::ToolResults(vec![ToolResult {
        call_id: first.tool_calls[0].id.clone(),
        content: "{\"id\":\"t-1\"}".into(),
        is_error: false,
    }]));
    let second = llm.chat(&req).await.unwrap();
    assert_eq!(second.stop, StopReason::EndTurn);
    assert_eq!(second.text.as_deref(), Some("Done."));
    assert_eq!(first.usage.input + second.usage.input, 130);
    assert_eq!(first.usage.output + second.usage.output, 12);

    let recorded = fake.requests_to(Api::OpenAi);
    assert_eq!(recorded.len(), 2);
    for r in &recorded {
        assert_eq!(r.rejection, None, "fake rejected: {:?}", r.rejection);
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.headers["authorization"], format!("Bearer {OPENAI_KEY}"));
        assert_eq!(r.body["tool_choice"], "auto");
        assert_eq!(r.body["tools"][0]["type"], "function");
        assert_eq!(r.body["max_tokens"], 512);
    }
    let messages = recorded[1].body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[2]["role"], "assistant");
    // "" beside tool_calls, never null (llama.cpp's server rejects null).
    assert_eq!(messages[2]["content"], json!(""));
    assert!(messages[2]["tool_calls"][0]["function"]["arguments"].is_string());
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], json!(first.tool_calls[0].id));
}

#[tokio::test(flavor = "multi_thread")]
async fn unparsable_arguments_are_flagged_and_answerable() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::tool_call_raw_arguments(
        "todo_create",
        "{\"title\": \"Mi",
    ));
    fake.push_openai(Reply::text("Sorry, retrying later."));
    let llm = openai(&fake);
    let mut req = request_with_tools("go");
    let first = llm.chat(&req).await.unwrap();
    let call = &first.tool_calls[0];
    assert_eq!(call.arguments, json!({}));
    assert!(
        call.arguments_error
            .as_deref()
            .unwrap()
            .contains("not valid JSON")
    );
    // The caller answers with an error result; the vendor must accept that conversation.
    req.messages.push(Message::assistant_from(&first));
    req.messages.push(Message::ToolResults(vec![ToolResult {
        call_id: call.id.clone(),
        content: call.arguments_error.clone().unwrap(),
        is_error: true,
    }]));
    let second = llm.chat(&req).await.unwrap();
    assert_eq!(second.text.as_deref(), Some("Sorry, retrying later."));
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.rejection, None);
    assert!(
        last.body["messages"][3]["content"]
            .as_str()
            .unwrap()
            .starts_with(llm::TOOL_ERROR_PREFIX)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_server_gets_no_authorization_header() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_auth(AuthRule::NotRequired);
    // A pasted full endpoint with a trailing slash still resolves to /v1/chat/completions.
    let s = settings(&[
        (
            "OPENAI_BASE_URL",
            format!("{}/chat/completions/", fake.openai_base_url()),
        ),
        ("LLM_MODEL", "llama3.1".to_string()),
    ]);
    let llm = Llm::from_settings(&s, reqwest::Client::new())
        .unwrap()
        .with_retry_policy(fast_policy());
    let resp = llm.chat(&llm::ChatRequest::new("", "hi", 8)).await.unwrap();
    assert_eq!(resp.text.as_deref(), Some("ok"));
    assert_eq!(resp.model, "llama3.1");
    let r = fake.requests().pop().unwrap();
    assert_eq!(r.path, "/v1/chat/completions");
    assert!(!r.headers.contains_key("authorization"));
    assert!(r.body.get("tools").is_none() && r.body.get("tool_choice").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn max_tokens_cut_is_reported() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::truncated("and then I"));
    fake.push_anthropic(Reply::truncated("and then I"));
    let r = openai(&fake).chat(&request_with_tools("x")).await.unwrap();
    assert_eq!(r.stop, StopReason::MaxTokens);
    let r = crate::common::anthropic(&fake)
        .chat(&request_with_tools("x"))
        .await
        .unwrap();
    assert_eq!(r.stop, StopReason::MaxTokens);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_llama_cpp_strict_server_accepts_the_tool_round() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_llama_cpp_strict(true);
    fake.set_openai_auth(AuthRule::NotRequired);
    fake.push_openai(Reply::tool_call("todo_create", json!({"title": "Milk"})));
    fake.push_openai(Reply::text("Done."));
    let llm = openai(&fake);
    let mut req = request_with_tools("Plan my day.");
    let first = llm.chat(&req).await.unwrap();
    req.messages.push(Message::assistant_from(&first));
    req.messages.push(Message::ToolResults(vec![ToolResult {
        call_id: first.tool_calls[0].id.clone(),
        content: "{}".into(),
        is_error: false,
    }]));
    // The second request carries the assistant message with tool_calls: it passes.
    let second = llm.chat(&req).await.unwrap();
    assert_eq!(second.text.as_deref(), Some("Done."));
    let recorded = fake.requests_to(Api::OpenAi);
    assert!(recorded.iter().all(|r| r.rejection.is_none()));
    assert_eq!(recorded[1].body["messages"][2]["content"], json!(""));

    // What such a server answers to `content: null`: a 500 that is a validation error,
    // classified invalid_request and not retried.
    let mut body = recorded[1].body.clone();
    body["messages"][2]["content"] = serde_json::Value::Null;
    let status = reqwest::Client::new()
        .post(format!("{}/chat/completions", fake.openai_base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_500_and_context_length_are_not_retried() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::Error {
        status: 500,
        message: "1 validation error for ChatCompletionRequestAssistantMessage\ncontent\n  Input should be a valid string".into(),
        retry_after: None,
    });
    let err = openai(&fake)
        .chat(&request_with_tools("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), llm::ErrorClass::InvalidRequest, "{err}");
    assert_eq!(fake.requests_to(Api::OpenAi).len(), 1, "not retried");

    fake.push_openai(Reply::Error {
        status: 400,
        message: "This model's maximum context length is 8192 tokens. However, you requested 10775 tokens.".into(),
        retry_after: None,
    });
    let err = openai(&fake)
        .chat(&request_with_tools("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.class().as_str(), "context_length");
    assert_eq!(fake.requests_to(Api::OpenAi).len(), 2, "not retried");

    for status in [404, 422] {
        fake.push_openai(Reply::error(status));
        let err = openai(&fake)
            .chat(&request_with_tools("hi"))
            .await
            .unwrap_err();
        assert_eq!(err.class(), llm::ErrorClass::InvalidRequest, "{status}");
    }
    assert_eq!(fake.requests_to(Api::OpenAi).len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_prompt_tokens_are_reported_apart() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::text("hi").with_full_usage(fake_llm::Usage {
        input: 300,
        output: 4,
        cache_read: 1024,
        cache_write: 0,
    }));
    let usage = openai(&fake)
        .chat(&request_with_tools("hi"))
        .await
        .unwrap()
        .usage;
    assert_eq!(
        (
            usage.input,
            usage.cache_read,
            usage.cache_write,
            usage.output
        ),
        (300, 1024, 0, 4)
    );
    assert_eq!(usage.prompt(), 1324);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_server_gets_slim_tool_schemas_unless_full_is_asked_for() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_auth(AuthRule::NotRequired);
    let mut req = request_with_tools("Write it down.");
    req.tools[0].input_schema["properties"]["notes"] =
        json!({"type": "string", "maxLength": 200000, "pattern": "^.*$"});
    let sent_notes = |pairs: &[(&str, String)]| {
        let llm = Llm::from_settings(&settings(pairs), reqwest::Client::new())
            .unwrap()
            .with_retry_policy(fast_policy());
        let req = req.clone();
        let fake = &fake;
        async move {
            llm.chat(&req).await.unwrap();
            let last = fake.requests_to(Api::OpenAi).pop().unwrap();
            assert_eq!(last.rejection, None);
            let tool = &last.body["tools"].as_array().unwrap()[1];
            assert_eq!(tool["function"]["name"], "todo_create");
            tool["function"]["parameters"]["properties"]["notes"].clone()
        }
    };
    let base = fake.openai_base_url();
    // A keyless local server (llama.cpp, Ollama, vLLM): slim by default.
    assert_eq!(
        sent_notes(&[("OPENAI_BASE_URL", base.clone())]).await,
        json!({"type": "string", "maxLength": 1000})
    );
    assert_eq!(
        sent_notes(&[
            ("OPENAI_BASE_URL", base),
            ("LLM_TOOL_SCHEMA", "full".into())
        ])
        .await,
        json!({"type": "string", "maxLength": 200000, "pattern": "^.*$"})
    );
}
