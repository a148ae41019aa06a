//! The fake over real HTTP: routing, validation answers, scripting, recording.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns panic on broken set-up"
)]

use std::time::Duration;

use fake_llm::{Api, AuthRule, FakeLlm, Reply};
use serde_json::{Value, json};

fn anthropic_body() -> Value {
    json!({"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
}

async fn post_anthropic(fake: &FakeLlm, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_then_handler_then_default() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::tool_call("todo_create", json!({"title": "a"})));
    fake.set_anthropic_handler(|body| {
        Reply::text(format!(
            "turns={}",
            body["messages"].as_array().map_or(0, Vec::len)
        ))
    });

    let (status, v, _) = post_anthropic(&fake, &anthropic_body()).await;
    assert_eq!(status, 200);
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["model"], "claude-test");
    assert!(
        v["content"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_")
    );

    let (_, v, _) = post_anthropic(&fake, &anthropic_body()).await;
    assert_eq!(v["content"][0]["text"], "turns=1");
    assert_eq!(fake.pending_replies(Api::Anthropic), 0);

    let recorded = fake.requests_to(Api::Anthropic);
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].headers["x-api-key"], "k");
    assert_eq!(recorded[0].body, anthropic_body());
    assert!(recorded[0].rejection.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_requests_get_vendor_errors_and_keep_the_queue() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::text("kept"));
    let (status, v, _) = post_anthropic(&fake, &json!({"model": "m", "messages": []})).await;
    assert_eq!(status, 400);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    assert_eq!(fake.pending_replies(Api::Anthropic), 1);
    assert!(fake.requests()[0].rejection.is_some());

    // OpenAI: missing bearer → 401 in OpenAI's shape; keyless servers can be emulated.
    let client = reqwest::Client::new();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let url = format!("{}/chat/completions", fake.openai_base_url());
    let resp = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    fake.set_openai_auth(AuthRule::NotRequired);
    let resp = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "ok");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let resp = client
        .post(format!("{}/v2/nothing", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(fake.requests().last().unwrap().api, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_delays_and_garbage() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::rate_limited("3"));
    fake.push_anthropic(Reply::delayed(
        Duration::from_millis(50),
        Reply::overloaded(),
    ));
    fake.push_anthropic(Reply::garbage());

    let (status, v, headers) = post_anthropic(&fake, &anthropic_body()).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let (status, v, _) = post_anthropic(&fake, &anthropic_body()).await;
    assert_eq!(status, 529);
    assert_eq!(v["error"]["type"], "overloaded_error");

    let (status, v, _) = post_anthropic(&fake, &anthropic_body()).await;
    assert_eq!(status, 200);
    assert_eq!(v, Value::Null, "garbage is not JSON");
}
