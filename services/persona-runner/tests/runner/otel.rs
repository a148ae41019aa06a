//! Traces (issue 14): one persona day is one trace from the runner through MCP into
//! auth-internal's store write, exported over OTLP/HTTP to an in-process receiver; a dead
//! collector costs a tick nothing.

use std::{collections::HashMap, time::Duration};

use fake_llm::{Api, FakeLlm, Reply};
use serde_json::json;
use service_kit::telemetry::{
    GenAiOptions, LogFormat, OtelSettings, Telemetry, build_provider, subscriber,
};
use test_support::otlp::{OtlpReceiver, RecordedSpan};

use crate::helpers::{Auth, Runner, anthropic_env, as_refs};

const RATING: &str = "{\"ratings\":[{\"module\":\"todo\",\"rating\":4,\"notes\":\"praktisch\"}]}";

fn script(fake: &FakeLlm) {
    fake.push_anthropic(Reply::tool_call("todo_create", json!({"title": "Milch"})));
    // `title` is required: the tool answers isError.
    fake.push_anthropic(Reply::tool_call("todo_create", json!({})));
    fake.push_anthropic(Reply::text("Fertig für heute."));
    fake.push_anthropic(Reply::text(RATING));
}

fn by_id(spans: &[RecordedSpan]) -> HashMap<&str, &RecordedSpan> {
    spans.iter().map(|s| (s.span_id.as_str(), s)).collect()
}

/// Whether `span` descends from `ancestor` (following parent ids inside one trace).
fn descends(ids: &HashMap<&str, &RecordedSpan>, span: &RecordedSpan, ancestor: &str) -> bool {
    let mut cur = span.parent_span_id.as_str();
    for _ in 0..64 {
        if cur == ancestor {
            return true;
        }
        match ids.get(cur) {
            Some(p) => cur = p.parent_span_id.as_str(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_persona_day_is_one_trace_across_runner_mcp_and_auth_internal() {
    let receiver = OtlpReceiver::start().await;
    let provider = build_provider(
        &OtelSettings::from_lookup("persona-runner", |_| None).exporting_to(receiver.traces_url()),
    )
    .unwrap();
    // The only test of this binary that installs a global subscriber; under `cargo test`
    // other tests' spans reach it too, so everything below filters by trace id.
    let telemetry = Telemetry::init_with(
        LogFormat::Pretty,
        provider.clone(),
        true,
        GenAiOptions {
            capture_content: true,
            latest_experimental: true,
        },
    );

    let auth = Auth::spawn().await;
    let ids = auth.seed("traced", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    script(&fake);
    let env = anthropic_env(&fake);
    let runner = Runner::spawn(&auth, &as_refs(&env)).await;
    let (status, report) = runner.tick_http().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ranSuccessfully"], 1, "{report}");

    let p = telemetry.provider().clone();
    tokio::task::spawn_blocking(move || p.force_flush())
        .await
        .unwrap()
        .unwrap();
    let spans = receiver
        .wait_for(Duration::from_secs(10), |s| {
            s.iter()
                .any(|s| s.str("gen_ai.agent.name") == Some("traced-0"))
        })
        .await;

    let days: Vec<&RecordedSpan> = spans
        .iter()
        .filter(|s| s.str("gen_ai.agent.name") == Some("traced-0"))
        .collect();
    assert_eq!(days.len(), 1, "one invoke_agent span per day: {days:#?}");
    let day = days[0];
    assert_eq!(day.name, "invoke_agent traced-0");
    assert_eq!(day.str("gen_ai.operation.name"), Some("invoke_agent"));
    assert!(
        day.parent_span_id.is_empty(),
        "the day is a trace of its own"
    );
    assert_eq!(day.links.len(), 1, "linked to its tick");
    assert_ne!(day.links[0], day.trace_id);
    let tick_id = report["tickId"].as_str().unwrap();
    let run_id = format!("{tick_id}.{}", ids[0]);
    assert_eq!(day.str("gen_ai.conversation.id"), Some(run_id.as_str()));
    assert_eq!(day.str("gen_ai.provider.name"), Some("anthropic"));
    assert_eq!(day.int("gen_ai.usage.input_tokens"), Some(40), "{day:#?}");
    // The rating is an evaluation event.
    let evals: Vec<_> = day
        .events
        .iter()
        .filter(|e| e.name == "gen_ai.evaluation.result")
        .collect();
    assert_eq!(evals.len(), 1, "{:?}", day.events);
    assert_eq!(evals[0].attributes["gen_ai.evaluation.name"], "todo");
    assert_eq!(evals[0].attributes["gen_ai.evaluation.score.value"], 4.0);
    assert_eq!(
        evals[0].attributes["gen_ai.evaluation.explanation"],
        "praktisch"
    );

    let trace: Vec<&RecordedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == day.trace_id)
        .collect();
    let ids = by_id(&spans);
    let named = |prefix: &str| -> Vec<&RecordedSpan> {
        trace
            .iter()
            .copied()
            .filter(|s| s.name.starts_with(prefix))
            .collect()
    };

    // Four LLM turns (three of the day, one rating), each a child of the day.
    let chats = named("chat ");
    assert_eq!(chats.len(), 4, "{chats:#?}");
    for c in &chats {
        assert_eq!(c.name, "chat claude-sonnet-4-5");
        assert_eq!(c.kind, 3, "client");
        assert_eq!(c.parent_span_id, day.span_id);
        assert_eq!(c.str("gen_ai.operation.name"), Some("chat"));
        assert_eq!(c.str("gen_ai.provider.name"), Some("anthropic"));
        assert_eq!(c.str("gen_ai.request.model"), Some("claude-sonnet-4-5"));
        assert!(
            c.str("gen_ai.response.model")
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(c.int("gen_ai.usage.input_tokens"), Some(10));
        assert!(c.int("gen_ai.usage.output_tokens").is_some());
        assert!(c.int("gen_ai.usage.cache_read.input_tokens").is_some());
        assert!(c.int("gen_ai.usage.cache_creation.input_tokens").is_some());
        assert!(c.attributes["gen_ai.response.finish_reasons"].is_array());
        assert!(c.str("gen_ai.system").is_none(), "latest conventions only");
        assert!(c.str("gen_ai.input.messages").is_some(), "capture is on");
    }
    assert_eq!(
        chats
            .iter()
            .filter(|c| c.attributes["gen_ai.response.finish_reasons"] == json!(["tool_calls"]))
            .count(),
        2
    );
    // The LLM request carried the chat span's context.
    for r in fake.requests_to(Api::Anthropic) {
        let tp = r
            .headers
            .get("traceparent")
            .expect("traceparent to the LLM");
        assert!(tp.contains(&day.trace_id), "{tp}");
    }

    // Two tool calls, the second failing; each continued by auth-internal's MCP span, which
    // reaches the store write.
    let tools = named("execute_tool ");
    assert_eq!(tools.len(), 2, "{tools:#?}");
    assert!(tools.iter().all(|t| {
        t.parent_span_id == day.span_id
            && t.str("gen_ai.tool.name") == Some("todo_create")
            && t.str("gen_ai.tool.call.id")
                .is_some_and(|id| !id.is_empty())
    }));
    assert_eq!(
        tools
            .iter()
            .filter(|t| t.str("error.type") == Some("tool_error"))
            .count(),
        1
    );
    let mcp = named("tools/call todo_create");
    assert_eq!(mcp.len(), 2, "{mcp:#?}");
    for m in &mcp {
        assert_eq!(m.kind, 2, "server");
        assert!(
            tools.iter().any(|t| t.span_id == m.parent_span_id),
            "parented by the runner's execute_tool span"
        );
        assert_eq!(m.str("mcp.method.name"), Some("tools/call"));
        assert_eq!(m.str("gen_ai.tool.name"), Some("todo_create"));
        assert!(m.str("jsonrpc.request.id").is_some_and(|id| !id.is_empty()));
        assert!(m.str("mcp.protocol.version").is_some_and(|v| !v.is_empty()));
    }
    let writes = named("INSERT sync_changes");
    assert_eq!(writes.len(), 1, "the valid call wrote once: {writes:#?}");
    assert!(mcp.iter().any(|m| m.span_id == writes[0].parent_span_id));
    assert_eq!(writes[0].str("db.system.name"), Some("postgresql"));

    // The write-back: runner client spans, continued by auth-internal's HTTP server spans.
    for route in [
        "POST /api/v1/internal/personas/{id}/actions",
        "POST /api/v1/internal/personas/{id}/feedback",
        "POST /api/v1/internal/personas/{id}/release",
    ] {
        // Actions are written after every turn and once more at the end, so that route
        // may appear several times; each write is its own server span.
        let server: Vec<_> = trace.iter().filter(|s| s.name == route).collect();
        assert!(!server.is_empty(), "{route}: {trace:#?}");
        if !route.ends_with("/actions") {
            assert_eq!(server.len(), 1, "{route}: {trace:#?}");
        }
        for s in server {
            assert_eq!(s.kind, 2);
            assert_eq!(s.int("http.response.status_code"), Some(200));
            assert_eq!(s.str("http.request.method"), Some("POST"));
            assert_eq!(s.str("http.route"), Some(&route[5..]));
            let client = ids[s.parent_span_id.as_str()];
            assert_eq!(client.kind, 3, "parent is the runner's client span");
            assert_eq!(client.name, "POST");
            assert!(descends(&ids, client, &day.span_id));
        }
    }
    // MCP's own HTTP requests carry the day's context too.
    assert!(trace.iter().any(|s| s.name == "POST /mcp" && s.kind == 2));
    // Every span of the trace hangs off the day.
    for s in &trace {
        assert!(
            s.span_id == day.span_id || descends(&ids, s, &day.span_id),
            "{s:#?}"
        );
    }
    // The tick is a trace of its own (claim inside), linked from the day.
    let tick_trace: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == day.links[0])
        .collect();
    assert!(tick_trace.iter().any(|s| s.name == "tick"));
    assert!(
        tick_trace
            .iter()
            .any(|s| s.name == "POST /api/v1/internal/personas/claim")
    );
}

/// A collector that never answers (or is gone) must not slow a tick: export happens on the
/// batch processor's thread. This test installs its subscriber for its own thread only and
/// runs everything the runner does on that thread (current-thread runtime, tick run
/// directly), so it needs no global and works in one process with the others.
#[test]
fn a_dead_or_silent_collector_costs_a_tick_nothing() {
    // A listener that accepts connections into its backlog but never answers: each export
    // waits out its whole timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let export_timeout = Duration::from_secs(4);
    // Silent: exports start at once and hang during the tick. Closed: spans wait in the
    // queue until the flush below, which then fails against the closed port.
    for (url, batch_delay) in [
        (
            format!("http://{}/v1/traces", silent.local_addr().unwrap()),
            Duration::from_millis(1),
        ),
        (
            format!("http://127.0.0.1:{closed}/v1/traces"),
            Duration::from_secs(3600),
        ),
    ] {
        let mut settings = OtelSettings::from_lookup("persona-runner", |_| None).exporting_to(&url);
        settings.timeout = Some(export_timeout);
        settings.batch_delay = Some(batch_delay);
        let provider = build_provider(&settings).unwrap();
        let _guard = tracing::subscriber::set_default(subscriber(LogFormat::Pretty, &provider));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let auth = Auth::spawn().await;
            auth.seed("dead", 2, "de").await;
            let fake = FakeLlm::start().await.unwrap();
            script(&fake);
            script(&fake);
            let env = anthropic_env(&fake);
            let runner = Runner::spawn(&auth, &as_refs(&env)).await;
            let started = std::time::Instant::now();
            let out = runner.runner.run_now().await.unwrap();
            let took = started.elapsed();
            assert_eq!(out.report.ran_successfully, 2, "{url}: {:?}", out.report);
            assert!(out.error.is_none());
            // Dozens of spans ended during the tick while the first export hung for its
            // whole timeout (or failed at once): the tick never waited for it.
            assert!(
                took < export_timeout,
                "{url}: the tick took {took:?}, as long as an export"
            );
        });
        // The spans really were handed to the exporter, which could not deliver them: the
        // closed port's queued spans fail on flush; the silent one was connected to.
        let flushed = provider.force_flush();
        if batch_delay > export_timeout {
            assert!(flushed.is_err(), "{url}: export must have failed");
        } else {
            silent.set_nonblocking(true).unwrap();
            assert!(
                silent.accept().is_ok(),
                "{url}: the exporter must have tried"
            );
        }
        drop(rt);
    }
}
