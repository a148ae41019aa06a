//! A stall guard on the MCP round trip: the tool calls of persona days on
//! loopback (rmcp client, session mode, the `latencyMs` of their action rows)
//! must not sit in Nagle's algorithm waiting for a delayed ACK (~40 ms each
//! before `TCP_NODELAY` on accepted sockets). The bound is generous on
//! purpose: it catches a stall, it is not a speed target.
//!
//! The test always judges; it does not skip under load. Two things keep it
//! robust on a busy two-core box: the median is over `DAYS × TOOL_CALLS`
//! calls (one day at a time), and the bound is relative to the same tools
//! called in-process (registry + store, no HTTP) in the same test, right
//! after the days: `median(MCP) ≤ MEDIAN_BOUND_MS + median(in-process)`. CPU
//! wait inflates both sides; a delayed-ACK stall adds ~40 ms to the MCP side
//! only. nextest runs it alone (`.config/nextest.toml`).

use std::time::Instant;

use fake_llm::{FakeLlm, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tools::{CallContext, Registry};

use crate::helpers::{Auth, Runner, anthropic_env, as_refs};

const TOOL_CALLS: usize = 10;
const DAYS: usize = 3;
const MEDIAN_BOUND_MS: f64 = 20.0;

/// `TOOL_CALLS` tool calls alternating `todo_create` / `todo_list`, then a
/// closing text; the rating request (no tools) gets a rating.
fn handler(body: &Value) -> Reply {
    if body["tools"].as_array().is_none_or(Vec::is_empty) {
        return Reply::text("{\"ratings\":[{\"module\":\"todo\",\"rating\":4}]}");
    }
    let turns = body["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
    match turns {
        n if n < TOOL_CALLS && n % 2 == 0 => {
            Reply::tool_call("todo_create", json!({"title": format!("Aufgabe {n}")}))
        }
        n if n < TOOL_CALLS => Reply::tool_call("todo_list", json!({})),
        _ => Reply::text("Fertig."),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn median_tool_call_latency_of_a_day_is_not_stalled() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("latency", DAYS, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.set_anthropic_handler(handler);
    let mut env = anthropic_env(&fake);
    env.push(("PERSONA_CONCURRENCY", "1".to_owned()));
    let runner = Runner::spawn(&auth, &as_refs(&env)).await;

    let (status, report) = runner.tick_http().await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["ranSuccessfully"], DAYS, "{report}");
    let mcp: Vec<f64> = auth
        .sql_strings(
            "SELECT latency_ms::text AS s FROM persona_actions \
             WHERE latency_ms IS NOT NULL ORDER BY latency_ms",
        )
        .await
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(mcp.len(), DAYS * TOOL_CALLS, "{mcp:?}");

    // The same calls in-process, as the first persona, in the same minutes.
    let store =
        auth_internal::store::PgRecordStore::new(auth.state.clone(), ids[0], "latency-test", "mcp");
    let registry = Registry::global();
    let mut direct = Vec::with_capacity(DAYS * TOOL_CALLS);
    for i in 0..DAYS * TOOL_CALLS {
        let (tool, args) = if i % 2 == 0 {
            ("todo_create", json!({"title": format!("Direkt {i}")}))
        } else {
            ("todo_list", json!({}))
        };
        let ctx = CallContext::new(auth.clock.now());
        let t = Instant::now();
        registry.call(tool, args, &store, &ctx).await.unwrap();
        // Whole milliseconds, as `latencyMs` is.
        direct.push(t.elapsed().as_millis() as f64);
    }

    let (mcp_median, direct_median) = (median(mcp.clone()), median(direct.clone()));
    let bound = MEDIAN_BOUND_MS + direct_median;
    eprintln!(
        "MCP median {mcp_median} ms over {} calls; in-process median {direct_median} ms; bound {bound} ms",
        mcp.len()
    );
    assert!(
        mcp_median <= bound,
        "median tool-call latency {mcp_median} ms > {MEDIAN_BOUND_MS} ms + in-process median \
         {direct_median} ms: MCP {mcp:?}, in-process {direct:?}"
    );
}
