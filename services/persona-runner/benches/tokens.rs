//! persona-runner token benchmark (issue 12): billed-equivalent input tokens per persona
//! day, before (no `cache_control`, every tool) and after (prompt caching + the persona's
//! module-mix tools).
//!
//! `cargo bench -p persona-runner --bench tokens`. Needs PostgreSQL like the tests.
//!
//! Set-up: a real in-process auth-internal (fresh database per configuration, manual
//! clock), the ten catalogue personas (`data/personas.json`), a real MCP session per day
//! and the fake Anthropic endpoint with its prompt-cache model (minimum cacheable prefix
//! 1024 tokens, 5-minute lifetime, tokens ≈ bytes / 4). The scripted model makes
//! `TOOL_CALLS` read-only tool calls per day, cycling through the persona's favourite
//! modules (parsed from the day prompt, so both configurations call the same tools), ends
//! the day, and rates. Each day runs in its own tick and the cache clock moves 10 minutes
//! after each, so **no day reads another day's cache**: the worst case for caching.
//!
//! Billed-equivalent input = input + 0.1 × cacheRead + 1.25 × cacheWrite
//! (`TokenUsage::billed_input_equivalent`). Prints figures; asserts only that every day
//! ran and that the fake rejected nothing.

#![expect(
    clippy::expect_used,
    reason = "benchmark: a panic is the failure report"
)]

use std::{collections::HashMap, time::Duration};

use fake_llm::{Api, DEFAULT_MIN_CACHEABLE_TOKENS, FakeLlm, Reply};
use persona_runner::{Application, Settings};
use serde_json::{Value, json};
use test_support::auth::{SEED_SECRET, SERVICE_KEY as KEY, spawn_auth_internal};
use types::tick::TokenUsage;

/// Tool calls per persona day (the day prompt asks for 3 to 8).
const TOOL_CALLS: usize = 6;
const RATING: &str = r#"{"ratings":[]}"#;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

/// The favourites line of the day prompt: "Module, die zu dir passen: a, b." (de) or
/// "Modules that suit you: a, b." (en).
fn favourites(body: &Value) -> Vec<String> {
    let text = body["messages"][0]["content"].to_string();
    ["passen: ", "suit you: "]
        .iter()
        .find_map(|marker| text.split_once(marker))
        .and_then(|(_, rest)| rest.split_once('.'))
        .map(|(list, _)| list.split(", ").map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A read-only tool of `module` among the offered ones.
fn read_tool(body: &Value, module: &str) -> Option<String> {
    let names: Vec<&str> = body["tools"]
        .as_array()?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .filter(|n| n.starts_with(&format!("{module}_")))
        .collect();
    ["_list", "_recent", "_search", "_list_events"]
        .iter()
        .find_map(|suffix| names.iter().find(|n| n.ends_with(suffix)))
        .or(names.first())
        .map(|n| (*n).to_owned())
}

fn handler(body: &Value) -> Reply {
    if body["tools"].as_array().is_none_or(|t| t.is_empty()) {
        return Reply::text(RATING);
    }
    let turn = body["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
    let favs = favourites(body);
    if turn >= TOOL_CALLS || favs.is_empty() {
        return Reply::text("Fertig für heute.");
    }
    match read_tool(body, &favs[turn % favs.len()]) {
        Some(tool) => Reply::tool_call(tool, json!({})),
        None => Reply::text("Fertig für heute."),
    }
}

struct Measured {
    days: usize,
    tokens: TokenUsage,
    first_prompt_max: u64,
    requests: usize,
}

async fn measure(label: &str, extra: &[(&str, &str)]) -> Measured {
    let auth_internal = spawn_auth_internal().await;
    let auth = auth_internal.base.clone();
    let seeded = reqwest::Client::new()
        .put(format!("{auth}/api/v1/internal/personas"))
        .header("x-service-key", KEY)
        .header("content-type", "application/json")
        .body(include_str!("../../../data/personas.json"))
        .send()
        .await
        .expect("seed");
    assert!(seeded.status().is_success(), "seed: {}", seeded.status());

    let fake = FakeLlm::start().await.expect("fake LLM");
    fake.enable_prompt_cache(DEFAULT_MIN_CACHEABLE_TOKENS);
    fake.set_anthropic_handler(handler);
    let mut env: HashMap<String, String> = [
        ("AUTH_INTERNAL_URL", auth.clone()),
        ("MANA_SERVICE_KEY", KEY.to_owned()),
        ("PERSONA_SEED_SECRET", SEED_SECRET.to_owned()),
        ("TICK_INTERVAL_SECS", "0".to_owned()),
        ("SHUTDOWN_GRACE_SECS", "0".to_owned()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("LLM_PROVIDER", "anthropic".to_owned()),
        ("ANTHROPIC_API_KEY", "x".to_owned()),
        ("ANTHROPIC_BASE_URL", fake.base_url()),
        ("PERSONA_CONCURRENCY", "1".to_owned()),
        ("PERSONA_CLAIM_LIMIT", "1".to_owned()),
        ("PERSONA_MAX_TURNS", "15".to_owned()),
        ("MANA_LOG_FORMAT", "pretty".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let app = Application::build(Settings::from_env(&env).expect("settings")).expect("runner");
    let runner = app.runner();
    let runner_handle = app.handle();
    tokio::spawn(app.run_without_signals());

    let mut tokens = TokenUsage::default();
    let mut days = 0;
    loop {
        let out = runner.run_now().await.expect("tick refused");
        assert!(out.error.is_none(), "{out:?}");
        if out.report.due == 0 {
            break;
        }
        assert_eq!(out.report.ran_successfully, 1, "{out:?}");
        tokens.add(out.report.tokens);
        days += 1;
        // The next persona's day starts after this day's cache has expired.
        fake.advance_cache_clock(Duration::from_secs(600));
    }
    let requests = fake.requests_to(Api::Anthropic);
    assert!(requests.iter().all(|r| r.rejection.is_none()), "rejected");
    let first_prompt_max = requests
        .iter()
        .filter(|r| r.body["messages"].as_array().is_some_and(|m| m.len() == 1))
        .filter(|r| r.body["tools"].is_array())
        .filter_map(|r| r.prompt_usage)
        .map(|u| u.input + u.cache_read + u.cache_write)
        .max()
        .unwrap_or(0);
    runner_handle.shutdown().await;
    auth_internal.stop().await;
    let per = |n: u64| n / u64::try_from(days.max(1)).unwrap_or(1);
    println!(
        "  {label:<44} per persona-day: billed-equivalent input {:>7}  (input {:>6}, cacheRead {:>6}, cacheWrite {:>6}; raw prompt {:>7}; output {:>4}); first request ≤ {first_prompt_max} prompt tokens; {days} days, {} requests",
        per(tokens.billed_input_equivalent()),
        per(tokens.input),
        per(tokens.cache_read),
        per(tokens.cache_write),
        per(tokens.prompt()),
        per(tokens.output),
        requests.len(),
    );
    Measured {
        days,
        tokens,
        first_prompt_max,
        requests: requests.len(),
    }
}

async fn run() {
    println!(
        "persona-runner tokens bench: {} catalogue personas, {TOOL_CALLS} tool calls per day, fake Anthropic with its prompt-cache model, no cache shared between days",
        10
    );
    let before = measure(
        "before: no cache_control, all tools",
        &[("LLM_PROMPT_CACHE", "off"), ("PERSONA_TOOLS", "all")],
    )
    .await;
    let cache_only = measure(
        "cache_control, all tools",
        &[("LLM_PROMPT_CACHE", "on"), ("PERSONA_TOOLS", "all")],
    )
    .await;
    let mix_only = measure(
        "no cache_control, mix tools",
        &[("LLM_PROMPT_CACHE", "off"), ("PERSONA_TOOLS", "mix")],
    )
    .await;
    let after = measure(
        "after: cache_control + mix tools",
        &[("LLM_PROMPT_CACHE", "on"), ("PERSONA_TOOLS", "mix")],
    )
    .await;
    assert_eq!(before.days, after.days);
    assert_eq!(before.requests, after.requests, "same conversations");
    let ratio = |m: &Measured| {
        m.tokens.billed_input_equivalent() as f64 / before.tokens.billed_input_equivalent() as f64
    };
    println!(
        "  billed-equivalent input vs before: cache only {:.2}, mix only {:.2}, cache + mix {:.2} → {:.0} % fewer (goal ≥ 60 %)",
        ratio(&cache_only),
        ratio(&mix_only),
        ratio(&after),
        (1.0 - ratio(&after)) * 100.0
    );
    println!(
        "  largest first request: before {} → after {} prompt tokens (fake's bytes/4 estimate)",
        before.first_prompt_max, after.first_prompt_max
    );
}
