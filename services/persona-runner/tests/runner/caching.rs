//! Issue 12: prompt caching against the fake's Anthropic cache model, tools scoped to the
//! persona, billed-equivalent budgets, four token kinds in reports and /metrics.

use fake_llm::{Api, DEFAULT_MIN_CACHEABLE_TOKENS, FakeLlm, RecordedRequest, Reply};
use serde_json::{Value, json};

use crate::helpers::{Auth, Runner, anthropic_env, as_refs};

const RATING: &str = r#"{"ratings":[{"module":"todo","rating":4,"notes":"praktisch"},{"module":"notes","rating":3,"notes":"ok"}]}"#;

/// Day turns 1–3 call a tool, turn 4 ends the day; the tool-less rating turn rates.
fn handler(body: &Value) -> Reply {
    let Some(_) = body["tools"].as_array().filter(|t| !t.is_empty()) else {
        return Reply::text(RATING);
    };
    match body["messages"].as_array().map_or(0, Vec::len) {
        1 => Reply::tool_call("todo_create", json!({"title": "Wäsche"})),
        3 => Reply::tool_call(
            "notes_create",
            json!({"title": "Idee", "content": "Balkon"}),
        ),
        5 => Reply::tool_call("todo_list", json!({})),
        _ => Reply::text("Fertig für heute."),
    }
}

fn day_requests(fake: &FakeLlm) -> Vec<RecordedRequest> {
    fake.requests_to(Api::Anthropic)
        .into_iter()
        .filter(|r| r.body["tools"].as_array().is_some_and(|t| !t.is_empty()))
        .collect()
}

fn tool_names(r: &RecordedRequest) -> Vec<String> {
    r.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn turns_and_the_next_day_read_the_cache_and_only_mix_tools_are_offered() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("cached", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.enable_prompt_cache(DEFAULT_MIN_CACHEABLE_TOKENS);
    fake.set_anthropic_handler(handler);
    let runner = Runner::spawn(&auth, &as_refs(&anthropic_env(&fake))).await;

    let (_, report) = runner.tick_http().await;
    assert_eq!(report["ranSuccessfully"], 1, "{report}");
    assert!(fake.requests().iter().all(|r| r.rejection.is_none()));
    let day1 = day_requests(&fake);
    assert_eq!(day1.len(), 4);

    // Only the tools of the mix (todo 0.6, notes 0.4), in one order, on every turn.
    let names = tool_names(&day1[0]);
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("todo_") || n.starts_with("notes_")),
        "{names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for r in &day1 {
        assert_eq!(
            r.body["tools"], day1[0].body["tools"],
            "byte-identical prefix"
        );
        assert_eq!(r.body["system"], day1[0].body["system"]);
        let marks = r.body.to_string().matches("cache_control").count();
        assert!((1..=4).contains(&marks), "{marks}");
    }

    // Turn 1 writes the prefix; turns 2…n read everything before their newest message.
    let usage: Vec<_> = day1.iter().map(|r| r.prompt_usage.unwrap()).collect();
    assert_eq!(usage[0].cache_read, 0, "{usage:?}");
    assert!(
        usage[0].cache_write >= DEFAULT_MIN_CACHEABLE_TOKENS,
        "{usage:?}"
    );
    for t in 1..usage.len() {
        assert_eq!(
            usage[t].cache_read,
            usage[t - 1].cache_read + usage[t - 1].cache_write,
            "turn {} reads what turn {t} cached: {usage:?}",
            t + 1
        );
    }

    // The report and /metrics keep the four kinds apart.
    let tokens = &report["tokens"];
    let sum = |f: fn(&fake_llm::PromptUsage) -> u64| {
        fake.requests_to(Api::Anthropic)
            .iter()
            .map(|r| r.prompt_usage.map_or(0, |u| f(&u)))
            .sum::<u64>()
    };
    assert_eq!(
        tokens["cacheRead"].as_u64().unwrap(),
        sum(|u| u.cache_read),
        "{report}"
    );
    assert_eq!(
        tokens["cacheWrite"].as_u64().unwrap(),
        sum(|u| u.cache_write),
        "{report}"
    );
    assert_eq!(
        tokens["input"].as_u64().unwrap(),
        sum(|u| u.input),
        "{report}"
    );
    let (_, metrics) = runner.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    for kind in ["input", "output", "cache_read", "cache_write"] {
        assert!(
            metrics.contains(&format!("kind=\"{kind}\"")),
            "{kind}: {metrics}"
        );
    }

    // The next day of the same persona: its first request reads the stable prefix
    // (tools + shared system + persona system) that day 1 wrote.
    auth.clock.advance(chrono::TimeDelta::hours(25));
    let before = day_requests(&fake).len();
    let (_, report2) = runner.tick_http().await;
    assert_eq!(report2["ranSuccessfully"], 1, "{report2}");
    let day2 = day_requests(&fake);
    let first = day2[before].prompt_usage.unwrap();
    assert!(
        first.cache_read >= usage[0].cache_write / 2,
        "{first:?} vs {usage:?}"
    );
    assert!(first.cache_read > 0);
    assert_eq!(
        auth.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE persona_id = '{}'",
            ids[0]
        ))
        .await,
        6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persona_tools_all_offers_every_tool_and_budgets_count_billed_tokens() {
    let auth = Auth::spawn().await;
    auth.seed("budget", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.enable_prompt_cache(DEFAULT_MIN_CACHEABLE_TOKENS);
    fake.set_anthropic_handler(handler);
    let mut env = anthropic_env(&fake);
    env.push(("PERSONA_TOOLS", "all".to_owned()));
    // Tight: the day's raw prompt tokens (every turn re-reads the prefix) exceed it, the
    // billed equivalent (a cache read is 0.1×) does not.
    env.push(("PERSONA_TOKEN_BUDGET", "30000".to_owned()));
    let runner = Runner::spawn(&auth, &as_refs(&env)).await;
    let (_, report) = runner.tick_http().await;
    assert_eq!(report["ranSuccessfully"], 1, "{report}");
    let t: types::tick::TokenUsage = serde_json::from_value(report["tokens"].clone()).unwrap();
    assert!(t.total() > 30_000, "raw {t:?}");
    assert!(t.billed_equivalent() <= 30_000, "billed {t:?}");
    let all = tools::Registry::global().exposed().count();
    assert_eq!(tool_names(&day_requests(&fake)[0]).len(), all);
}
