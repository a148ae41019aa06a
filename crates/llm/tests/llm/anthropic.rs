//! Anthropic provider against the validating fake.

use fake_llm::{Api, AuthRule, FakeLlm, Reply};
use llm::{LlmError, Message, StopReason, ToolResult};
use serde_json::json;
use types::tick::TokenUsage;

use crate::common::{ANTHROPIC_KEY, anthropic, fast_policy, request_with_tools, settings};

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
        assert_eq!(r.body["system"][0]["text"], "You are a busy parent.");
        assert_eq!(r.body["system"][0]["cache_control"]["type"], "ephemeral");
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

/// A conversation whose stable prefix is long enough to be cached.
fn long_request() -> llm::ChatRequest {
    let mut req = request_with_tools("Heute ist 2026-12-01. Lebe einen Tag mit der App.");
    req.shared_system = "Rules of a persona day. ".repeat(400);
    req
}

fn answer_calls(req: &mut llm::ChatRequest, resp: &llm::ChatResponse) {
    req.messages.push(Message::assistant_from(resp));
    req.messages.push(Message::ToolResults(
        resp.tool_calls
            .iter()
            .map(|c| ToolResult {
                call_id: c.id.clone(),
                content: json!({"ok": true}).to_string(),
                is_error: false,
            })
            .collect(),
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn turns_after_the_first_read_the_prompt_cache() {
    let fake = FakeLlm::start().await.unwrap();
    fake.enable_prompt_cache(fake_llm::DEFAULT_MIN_CACHEABLE_TOKENS);
    for _ in 0..3 {
        fake.push_anthropic(Reply::tool_call("todo_create", json!({"title": "x"})));
    }
    fake.push_anthropic(Reply::text("done"));
    let llm = anthropic(&fake);
    let mut req = long_request();
    let mut usages = Vec::new();
    loop {
        let resp = llm.chat(&req).await.unwrap();
        usages.push(resp.usage);
        if resp.tool_calls.is_empty() {
            break;
        }
        answer_calls(&mut req, &resp);
    }
    assert_eq!(usages.len(), 4);
    assert!(fake.requests().iter().all(|r| r.rejection.is_none()));
    let first = usages[0];
    assert_eq!(first.cache_read, 0, "{first:?}");
    assert!(
        first.cache_write > 2000,
        "the prefix is written once: {first:?}"
    );
    for (turn, u) in usages.iter().enumerate().skip(1) {
        // Each turn reads everything the previous turn wrote or read.
        let prev = usages[turn - 1];
        assert_eq!(
            u.cache_read,
            prev.cache_read + prev.cache_write,
            "turn {turn}: {u:?}"
        );
        assert!(u.cache_write < 200, "only the new turn is written: {u:?}");
        assert!(u.input < 50, "{u:?}");
    }

    // A new conversation with the same tools and shared system (another day) reads the
    // stable prefix; the day-specific message is new.
    let next_day = llm.chat(&long_request()).await.unwrap().usage;
    assert!(
        next_day.cache_read >= first.cache_write - 50,
        "{next_day:?}"
    );

    // Five quiet minutes later the entries have expired.
    fake.advance_cache_clock(std::time::Duration::from_secs(301));
    let cold = llm.chat(&long_request()).await.unwrap().usage;
    assert_eq!(cold.cache_read, 0, "{cold:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prompt_cache_off_sends_no_breakpoints_and_reads_nothing() {
    let fake = FakeLlm::start().await.unwrap();
    fake.enable_prompt_cache(fake_llm::DEFAULT_MIN_CACHEABLE_TOKENS);
    let s = settings(&[
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.to_string()),
        ("ANTHROPIC_BASE_URL", fake.base_url()),
        ("LLM_PROMPT_CACHE", "off".to_string()),
    ]);
    let llm = llm::Llm::from_settings(&s, reqwest::Client::new())
        .unwrap()
        .with_retry_policy(fast_policy());
    let a = llm.chat(&long_request()).await.unwrap().usage;
    let b = llm.chat(&long_request()).await.unwrap().usage;
    assert_eq!((a.cache_read, a.cache_write, b.cache_read), (0, 0, 0));
    assert_eq!(a.input, b.input);
    for r in fake.requests() {
        assert!(!r.body.to_string().contains("cache_control"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_hour_prefix_outlives_thirty_quiet_minutes() {
    let llm_with = |fake: &FakeLlm, cache: &str| {
        let s = settings(&[
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.to_string()),
            ("ANTHROPIC_BASE_URL", fake.base_url()),
            ("LLM_PROMPT_CACHE", cache.to_string()),
        ]);
        llm::Llm::from_settings(&s, reqwest::Client::new())
            .unwrap()
            .with_retry_policy(fast_policy())
    };
    let fake = FakeLlm::start().await.unwrap();
    fake.enable_prompt_cache(fake_llm::DEFAULT_MIN_CACHEABLE_TOKENS);
    let hour = llm_with(&fake, "1h");
    let mut req = long_request();
    fake.push_anthropic(Reply::tool_call("todo_create", json!({"title": "x"})));
    let first = hour.chat(&req).await.unwrap();
    assert!(first.usage.cache_write > 2000, "{:?}", first.usage);
    answer_calls(&mut req, &first);
    hour.chat(&req).await.unwrap();
    let recorded = fake.requests();
    // The validating fake enforces 5m/1h only and no 1h marker after a 5m one.
    assert!(
        recorded.iter().all(|r| r.rejection.is_none()),
        "{recorded:?}"
    );
    let body = &recorded[1].body;
    assert_eq!(
        body["system"][0]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"}),
        "the shared prefix lives an hour"
    );
    assert_eq!(
        body["system"][1]["cache_control"],
        json!({"type": "ephemeral"})
    );
    let newest = body["messages"].as_array().unwrap().last().unwrap();
    let last_block = newest["content"].as_array().unwrap().last().unwrap();
    assert_eq!(last_block["cache_control"], json!({"type": "ephemeral"}));

    // Thirty minutes later (the next day of a persona): the prefix is still read.
    fake.advance_cache_clock(std::time::Duration::from_secs(30 * 60));
    let later = hour.chat(&long_request()).await.unwrap().usage;
    assert!(
        later.cache_read > 2000 && later.cache_read + 200 >= first.usage.cache_write,
        "{later:?} vs {:?}",
        first.usage
    );

    // With the default 5-minute lifetime the same gap finds nothing.
    let fake5 = FakeLlm::start().await.unwrap();
    fake5.enable_prompt_cache(fake_llm::DEFAULT_MIN_CACHEABLE_TOKENS);
    let five = llm_with(&fake5, "on");
    assert!(five.chat(&long_request()).await.unwrap().usage.cache_write > 2000);
    fake5.advance_cache_clock(std::time::Duration::from_secs(30 * 60));
    let cold = five.chat(&long_request()).await.unwrap().usage;
    assert_eq!(cold.cache_read, 0, "{cold:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn context_length_errors_are_final_and_classified() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::Error {
        status: 400,
        message: "prompt is too long: 210000 tokens > 200000 maximum".into(),
        retry_after: None,
    });
    let err = anthropic(&fake)
        .chat(&request_with_tools("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), llm::ErrorClass::ContextLength);
    assert_eq!(err.class().as_str(), "context_length");
    assert_eq!(fake.requests().len(), 1, "not retried");
}
