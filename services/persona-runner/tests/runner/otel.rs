//! Traces (issue 14): one persona day is one trace from the runner through MCP into
//! auth-internal's store write, exported over OTLP/HTTP to an in-process receiver; a dead
//! collector costs a tick nothing; the standard `OTEL_*` variables decide what reaches the
//! collector; JSON log lines inside a day carry its trace id.

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use fake_llm::{Api, FakeLlm, Reply};
use serde_json::json;
use service_kit::telemetry::{
    GenAiOptions, LogFormat, OtelSettings, Telemetry, build_provider, subscriber,
    subscriber_with_writer,
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
    // The provider's resource names the service. (auth-internal runs in this process under
    // the same provider; deployed, its own `Telemetry::init` names it `auth-internal`.)
    assert_eq!(day.service, "persona-runner");
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
        assert_eq!(c.service, "persona-runner");
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
    assert!(tools.iter().all(|t| t.service == "persona-runner"));
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
        let Some(tool) = tools.iter().find(|t| t.span_id == m.parent_span_id) else {
            panic!("parented by the runner's execute_tool span: {m:#?}");
        };
        // The server saw the same outcome as the client: `isError: true` is a tool error.
        if tool.str("error.type") == Some("tool_error") {
            assert_eq!(m.str("error.type"), Some("tool_error"), "{m:#?}");
            assert_eq!(m.status, 2, "error status: {m:#?}");
        } else {
            assert_eq!(m.str("error.type"), None, "{m:#?}");
            assert_ne!(m.status, 2, "{m:#?}");
        }
        // Stateful MCP (the default): both calls ran in the day's one session.
        assert!(
            m.str("mcp.session.id").is_some_and(|id| !id.is_empty()),
            "{m:#?}"
        );
        assert_eq!(m.str("mcp.session.id"), mcp[0].str("mcp.session.id"));
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
    // Each turn's actions ride on its run snapshot, and the final snapshot carries the
    // feedback, so the runs route appears once per turn (and once more at the end).
    for route in [
        "POST /api/v1/internal/personas/{id}/runs",
        "POST /api/v1/internal/personas/{id}/release",
    ] {
        let server: Vec<_> = trace.iter().filter(|s| s.name == route).collect();
        assert!(!server.is_empty(), "{route}: {trace:#?}");
        if route.ends_with("/runs") {
            assert!(
                server.len() >= 2,
                "a snapshot per turn and the final one: {route}"
            );
        } else {
            assert_eq!(server.len(), 1, "{route}: {trace:#?}");
        }
        for s in server {
            assert_eq!(s.kind, 2);
            // A run's first snapshot creates its row (201); the later ones answer 200.
            let status = s.int("http.response.status_code");
            assert!(matches!(status, Some(200 | 201)), "{route}: {status:?}");
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

/// The standard variables alone decide what reaches the collector: the endpoint, the
/// headers (percent-decoded, as an operator writes `Basic%20…` for Langfuse) and the service
/// name. They come through one lookup, so the test needs no process-wide `set_var`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_otlp_variables_reach_the_collector() {
    let receiver = OtlpReceiver::start().await;
    let url = receiver.traces_url();
    let vars: HashMap<&str, String> = HashMap::from([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            url.trim_end_matches("/v1/traces").to_owned(),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Basic%20abc, x-scope-orgid=tenant%2C1".to_owned(),
        ),
        ("OTEL_SERVICE_NAME", "persona-runner-eu".to_owned()),
    ]);
    let settings = OtelSettings::from_lookup("persona-runner", |k| vars.get(k).cloned());
    assert!(settings.export);
    let provider = build_provider(&settings).unwrap();
    {
        let _guard = tracing::subscriber::set_default(subscriber(LogFormat::Pretty, &provider));
        tracing::info_span!("probe").in_scope(|| tracing::info!("inside the probe"));
    }
    let p = provider.clone();
    tokio::task::spawn_blocking(move || p.force_flush())
        .await
        .unwrap()
        .unwrap();
    let spans = receiver
        .wait_for(Duration::from_secs(10), |s| {
            s.iter().any(|s| s.name == "probe")
        })
        .await;
    let probe = spans.iter().find(|s| s.name == "probe").unwrap();
    assert_eq!(probe.service, "persona-runner-eu", "OTEL_SERVICE_NAME wins");
    let headers = receiver.export_headers();
    assert!(!headers.is_empty());
    for h in &headers {
        assert_eq!(
            h.get("authorization").map(String::as_str),
            Some("Basic abc")
        );
        assert_eq!(h.get("x-scope-orgid").map(String::as_str), Some("tenant,1"));
        assert_eq!(
            h.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
    }
    let _ = provider.shutdown();
}

/// A writer collecting log output in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Logs and traces meet: the JSON line a persona day logs inside its span carries the
/// `trace_id` and `span_id` the collector received for that day. Per-thread subscriber
/// and a current-thread runtime, as in the dead-collector test, so no global is needed.
#[test]
fn a_persona_days_json_log_lines_carry_its_trace_id() {
    let capture = Capture::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (day, persona_id) = rt.block_on(async {
        let receiver = OtlpReceiver::start().await;
        let provider = build_provider(
            &OtelSettings::from_lookup("persona-runner", |_| None)
                .exporting_to(receiver.traces_url()),
        )
        .unwrap();
        let writer = capture.clone();
        let _guard = tracing::subscriber::set_default(subscriber_with_writer(
            LogFormat::Json,
            &provider,
            move || writer.clone(),
        ));
        let auth = Auth::spawn().await;
        let ids = auth.seed("logged", 1, "de").await;
        let fake = FakeLlm::start().await.unwrap();
        script(&fake);
        let env = anthropic_env(&fake);
        let runner = Runner::spawn(&auth, &as_refs(&env)).await;
        let out = runner.runner.run_now().await.unwrap();
        assert_eq!(out.report.ran_successfully, 1, "{:?}", out.report);

        let p = provider.clone();
        tokio::task::spawn_blocking(move || p.force_flush())
            .await
            .unwrap()
            .unwrap();
        let spans = receiver
            .wait_for(Duration::from_secs(10), |s| {
                s.iter()
                    .any(|s| s.str("gen_ai.agent.name") == Some("logged-0"))
            })
            .await;
        let day = spans
            .into_iter()
            .find(|s| s.str("gen_ai.agent.name") == Some("logged-0"))
            .unwrap();
        (day, ids[0].to_string())
    });
    drop(rt);

    let lines = capture.lines();
    let done: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "persona day done" && l["persona.id"] == persona_id.as_str())
        .collect();
    assert_eq!(done.len(), 1, "{lines:#?}");
    assert_eq!(done[0]["trace_id"], day.trace_id.as_str(), "{:?}", done[0]);
    assert_eq!(done[0]["span_id"], day.span_id.as_str(), "{:?}", done[0]);
    assert_eq!(done[0]["level"], "INFO");
    // Every line of that run is in the day's trace (nested spans have their own span ids).
    let run_id = done[0]["run.id"].as_str().unwrap();
    for l in lines.iter().filter(|l| l["run.id"] == run_id) {
        assert_eq!(l["trace_id"], day.trace_id.as_str(), "{l:?}");
    }
}
