//! Retry, backoff and timeout behaviour over HTTP.

use std::time::{Duration, Instant};

use fake_llm::{Api, FakeLlm, Reply};
use llm::{Llm, LlmError, RetryPolicy};

use crate::common::{anthropic, fast_policy, openai, request_with_tools, settings};

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_with_retry_after_then_success() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::rate_limited("1"));
    fake.push_anthropic(Reply::text("fine now"));
    // max_delay above one second so the vendor's retry-after is honoured, not capped.
    let llm = anthropic(&fake).with_retry_policy(RetryPolicy {
        max_delay: Duration::from_secs(5),
        ..fast_policy()
    });
    let started = Instant::now();
    let resp = llm.chat(&request_with_tools("hi")).await.unwrap();
    assert_eq!(resp.text.as_deref(), Some("fine now"));
    assert_eq!(fake.requests_to(Api::Anthropic).len(), 2);
    // Lower bound only: the wait can be longer on a busy machine, never shorter.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_and_overload_are_retried() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::error(500));
    fake.push_anthropic(Reply::overloaded());
    fake.push_anthropic(Reply::text("third time"));
    let resp = anthropic(&fake)
        .chat(&request_with_tools("hi"))
        .await
        .unwrap();
    assert_eq!(resp.text.as_deref(), Some("third time"));
    assert_eq!(fake.requests().len(), 3);

    fake.push_openai(Reply::error(503));
    fake.push_openai(Reply::rate_limited("0"));
    fake.push_openai(Reply::text("ok again"));
    let resp = openai(&fake).chat(&request_with_tools("hi")).await.unwrap();
    assert_eq!(resp.text.as_deref(), Some("ok again"));
    assert_eq!(fake.requests_to(Api::OpenAi).len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn attempts_are_bounded() {
    let fake = FakeLlm::start().await.unwrap();
    for _ in 0..5 {
        fake.push_anthropic(Reply::error(503));
    }
    let err = anthropic(&fake)
        .chat(&request_with_tools("hi"))
        .await
        .unwrap_err();
    match &err {
        LlmError::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 3);
            assert!(matches!(**last, LlmError::Http { status: 503, .. }));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.status(), Some(503));
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(fake.pending_replies(Api::Anthropic), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_reply_times_out_and_is_retried() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::delayed(
        Duration::from_secs(5),
        Reply::text("too late"),
    ));
    fake.push_openai(Reply::text("quick"));
    let llm = openai(&fake).with_retry_policy(RetryPolicy {
        request_timeout: Duration::from_millis(300),
        ..fast_policy()
    });
    let resp = llm.chat(&request_with_tools("hi")).await.unwrap();
    assert_eq!(resp.text.as_deref(), Some("quick"));
    assert_eq!(fake.requests().len(), 2);

    fake.push_openai(Reply::delayed(
        Duration::from_secs(5),
        Reply::text("too late"),
    ));
    let llm = llm.with_retry_policy(RetryPolicy {
        max_attempts: 1,
        request_timeout: Duration::from_millis(300),
        ..fast_policy()
    });
    let err = llm.chat(&request_with_tools("hi")).await.unwrap_err();
    let LlmError::RetriesExhausted { attempts: 1, last } = err else {
        panic!("unexpected {err:?}");
    };
    assert!(matches!(*last, LlmError::Timeout(_)), "{last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_a_retried_transport_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = settings(&[
        ("ANTHROPIC_API_KEY", "sk-ant-transport-secret".to_string()),
        ("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{port}")),
        ("LLM_MAX_ATTEMPTS", "2".to_string()),
    ]);
    let llm = Llm::from_settings(&s, reqwest::Client::new()).unwrap();
    assert_eq!(llm.retry_policy().max_attempts, 2);
    let llm = llm.with_retry_policy(RetryPolicy {
        max_attempts: 2,
        ..fast_policy()
    });
    let err = llm.chat(&request_with_tools("hi")).await.unwrap_err();
    let LlmError::RetriesExhausted { attempts: 2, last } = &err else {
        panic!("unexpected {err:?}");
    };
    assert!(matches!(**last, LlmError::Transport(_)), "{last:?}");
    assert!(!format!("{err:?}").contains("transport-secret"));
}
