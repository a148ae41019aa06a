//! Reliability (issue 10): a failed day is retried, unstarted personas of a stopping
//! runner are `abandoned`, a SIGKILLed runner leaves a row for every executed call,
//! and an auth-internal restart mid-day costs no call, rating or day.

use std::time::Duration;

use fake_llm::{Api, FakeLlm, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{
    Spawned, TestDb,
    auth::{spawn_binary, wait_healthy},
};

use crate::helpers::{Auth, Runner, SEED_SECRET, SERVICE_KEY, anthropic_env, as_refs, eventually};

const RATING_TODO: &str = "{\"ratings\":[{\"module\":\"todo\",\"rating\":4,\"notes\":\"gut\"}]}";

/// Day turns answer one `todo_create` each until the conversation holds `calls`
/// results, then text; the rating turn (no tools) answers [`RATING_TODO`].
fn busy_day(calls: usize, delay: Duration) -> impl Fn(&Value) -> Reply + Send + Sync + 'static {
    move |body: &Value| {
        let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
        if !has_tools {
            return Reply::text(RATING_TODO);
        }
        let turns = body["messages"].as_array().map_or(0, Vec::len) / 2;
        if turns < calls {
            Reply::delayed(
                delay,
                Reply::tool_call("todo_create", json!({"title": format!("Aufgabe {turns}")})),
            )
        } else {
            Reply::text("Fertig.")
        }
    }
}

/// Executed calls (the change log, origin `mcp`) against action rows, per persona.
async fn executed_vs_rows(db: &TestDb, persona: uuid::Uuid) -> (i64, i64) {
    let executed = db
        .count(&format!(
            "SELECT count(*) AS n FROM sync_changes WHERE user_id = '{persona}' AND origin = 'mcp'"
        ))
        .await;
    let rows = db
        .count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE persona_id = '{persona}' \
             AND tool_name = 'todo_create' AND result = 'ok'"
        ))
        .await;
    (executed, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_failing_on_its_third_turn_runs_again_after_the_backoff_and_is_rated() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("third", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::tool_call("todo_create", json!({"title": "Eins"})));
    fake.push_anthropic(Reply::tool_call("todo_create", json!({"title": "Zwei"})));
    fake.push_anthropic(Reply::error(500));
    let runner = Runner::spawn(&auth, &as_refs(&anthropic_env(&fake))).await;

    let (_, first) = runner.tick_http().await;
    assert_eq!(first["failed"].as_array().unwrap().len(), 1, "{first}");
    let profile = auth.profile(ids[0]).await;
    assert_eq!(profile["lastActiveAt"], Value::Null, "{profile}");
    let retry: chrono::DateTime<chrono::Utc> =
        profile["retryAfter"].as_str().unwrap().parse().unwrap();
    let (executed, rows) = executed_vs_rows(&auth.db, ids[0]).await;
    assert_eq!(
        (executed, rows),
        (2, 2),
        "the failed day's calls are recorded"
    );

    // Not before the backoff ends …
    let (_, early) = runner.tick_http().await;
    assert_eq!(early["due"], 0, "{early}");
    // … then it runs again and is rated.
    auth.clock.set(retry + chrono::TimeDelta::seconds(1));
    fake.push_anthropic(Reply::tool_call("todo_create", json!({"title": "Drei"})));
    fake.push_anthropic(Reply::text("Fertig."));
    fake.push_anthropic(Reply::text(RATING_TODO));
    let (_, again) = runner.tick_http().await;
    assert_eq!(again["due"], 1, "{again}");
    assert_eq!(again["ranSuccessfully"], 1, "{again}");
    assert_eq!(
        auth.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_feedback WHERE persona_id = '{}' AND rating = 4",
            ids[0]
        ))
        .await,
        1
    );
    let profile = auth.profile(ids[0]).await;
    assert!(profile["lastActiveAt"].is_string(), "{profile}");
    assert_eq!(profile["consecutiveFailures"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unstarted_personas_of_a_stopping_runner_are_abandoned_not_failed() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("aband", 3, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.set_anthropic_handler(|_| Reply::delayed(Duration::from_secs(30), Reply::text("spät")));
    let mut env = anthropic_env(&fake);
    env.push(("PERSONA_CONCURRENCY", "1".to_owned()));
    let runner = Runner::spawn(&auth, &as_refs(&env)).await;
    let tick = tokio::spawn({
        let r = runner.runner.clone();
        async move { r.run_now().await }
    });
    eventually(|| fake.requests_to(Api::Anthropic).len() == 1).await;
    runner.handle.shutdown().await;
    let out = tick.await.unwrap().unwrap();
    assert_eq!(out.report.due, 3, "{out:?}");
    assert_eq!(out.report.failed.len(), 1, "only the started day: {out:?}");
    assert_eq!(out.report.abandoned, 2, "{out:?}");
    assert_eq!(out.report.ran_successfully, 0);
    let mut backing_off = 0;
    for id in &ids {
        let p = auth.profile(*id).await;
        assert_eq!(p["lease"], Value::Null, "{p}");
        if p["retryAfter"].is_string() {
            backing_off += 1;
        } else {
            assert_eq!(p["consecutiveFailures"], 0, "{p}");
        }
    }
    assert_eq!(backing_off, 1, "only the interrupted day backs off");
    // The two abandoned personas are claimable at once.
    let claimed: Value = auth
        .internal(reqwest::Method::POST, "/personas/claim")
        .json(&json!({"worker": "other", "limit": 10, "leaseSeconds": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        claimed["personas"].as_array().unwrap().len(),
        2,
        "{claimed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_killed_mid_day_leaves_a_row_for_every_executed_call() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("kill", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.set_anthropic_handler(busy_day(12, Duration::from_millis(40)));
    let port = test_support::free_port();
    let mut runner = Spawned::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_persona-runner")),
        &[
            ("AUTH_INTERNAL_URL", auth.base.clone()),
            ("MANA_SERVICE_KEY", SERVICE_KEY.to_owned()),
            ("PERSONA_SEED_SECRET", SEED_SECRET.to_owned()),
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("TICK_INTERVAL_SECS", "0".to_owned()),
            ("MANA_LOG_FORMAT", "pretty".to_owned()),
            ("LLM_MAX_ATTEMPTS", "1".to_owned()),
            ("PERSONA_MAX_TURNS", "15".to_owned()),
            ("PERSONA_DEADLINE_SECS", "30".to_owned()),
            ("LLM_PROVIDER", "anthropic".to_owned()),
            ("ANTHROPIC_API_KEY", "test-anthropic-key".to_owned()),
            ("ANTHROPIC_BASE_URL", fake.base_url()),
        ],
    );
    let http = reqwest::Client::new();
    let tick_url = format!("http://127.0.0.1:{port}/internal/tick");
    let mut fired = false;
    for _ in 0..300 {
        // The tick answers only when the day is over: fire it and let it run.
        if http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
        {
            let http = http.clone();
            let url = tick_url.clone();
            tokio::spawn(async move {
                let _ = http
                    .post(url)
                    .header("x-service-key", SERVICE_KEY)
                    .send()
                    .await;
            });
            fired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fired, "runner did not come up");
    // Kill it in the middle of the day (a few calls done, more to come).
    let mut executed = 0;
    for _ in 0..500 {
        executed = executed_vs_rows(&auth.db, ids[0]).await.0;
        if executed >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(executed >= 4, "the day did not get going");
    runner.signal("KILL");
    assert!(runner.wait_exit(Duration::from_secs(5)).await.is_some());
    // Let a call the runner sent just before dying finish on the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (executed, rows) = executed_vs_rows(&auth.db, ids[0]).await;
    assert!(executed < 12, "killed mid-day, not after it ({executed})");
    assert_eq!(rows, executed, "one action row per executed call");
    assert_eq!(
        auth.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE persona_id = '{}'",
            ids[0]
        ))
        .await,
        executed,
        "and nothing else"
    );

    // After the lease expires the persona runs again, without duplicates.
    auth.clock.advance(chrono::TimeDelta::seconds(400));
    fake.set_anthropic_handler(busy_day(2, Duration::ZERO));
    let second = Runner::spawn(&auth, &as_refs(&anthropic_env(&fake))).await;
    let (status, report) = second.tick_http().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["ranSuccessfully"], 1, "{report}");
    let (executed_after, rows_after) = executed_vs_rows(&auth.db, ids[0]).await;
    assert_eq!(executed_after, executed + 2);
    assert_eq!(rows_after, executed_after);
}

/// Starts the auth-internal binary on `port` against `db` (no signal handlers of
/// ours in between: a real process, stopped with real signals).
fn start_auth(db: &TestDb, port: u16) -> Spawned {
    spawn_binary(
        &test_support::workspace_binary("auth-internal"),
        db,
        port,
        &[],
    )
}

/// What an auth-internal restart mid-day cost, over all personas of the tick.
#[derive(Debug, Default, PartialEq, Eq)]
struct RestartCost {
    lost_calls: i64,
    duplicates: i64,
    rows_missing_or_extra: i64,
    rows_incomplete: i64,
    lost_ratings: i64,
    failed_days: usize,
    still_leased: i64,
}

/// Runs `personas` busy days (6 calls each), stops auth-internal with `signal` once
/// the days are going, keeps it down for `down`, starts it again on the same port,
/// and counts what the tick lost. `retry_secs` is the runner's
/// `AUTH_INTERNAL_RETRY_SECS` (`None`: its default).
async fn restart_mid_day(
    personas: u32,
    signal: &str,
    down: Duration,
    retry_secs: Option<u64>,
) -> RestartCost {
    const CALLS: i64 = 6;
    let db = TestDb::new(auth_internal::db::MIGRATIONS).await;
    let port = test_support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut auth = start_auth(&db, port);
    wait_healthy(&base, Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let specs: Vec<Value> = (0..personas)
        .map(|i| {
            json!({"slug": format!("restart-{i}"), "name": format!("P {i}"), "archetype": "tester",
                "systemPrompt": "Du testest die App.", "moduleMix": {"todo": 1.0}, "tickCadence": "daily"})
        })
        .collect();
    let resp = http
        .put(format!("{base}/api/v1/internal/personas"))
        .header("x-service-key", SERVICE_KEY)
        .json(&json!({"personas": specs}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let fake = FakeLlm::start().await.unwrap();
    fake.set_anthropic_handler(busy_day(6, Duration::from_millis(150)));
    let mut env = anthropic_env(&fake);
    if let Some(secs) = retry_secs {
        env.push(("AUTH_INTERNAL_RETRY_SECS", secs.to_string()));
    }
    env.push(("INTERNAL_HTTP_TIMEOUT_SECS", "3".to_owned()));
    env.push(("PERSONA_CONCURRENCY", personas.to_string()));
    let runner = Runner::spawn_at(&base, &as_refs(&env)).await;
    let started = std::time::Instant::now();
    let tick = tokio::spawn({
        let r = runner.runner.clone();
        async move { r.run_now().await }
    });
    let mcp = "SELECT count(*) AS n FROM sync_changes WHERE origin = 'mcp'";
    for _ in 0..500 {
        if db.count(mcp).await >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = db.count(mcp).await;
    assert!(before >= 3, "the days did not get going");

    // Down mid-day, then back on the same port (a new signing key, no MCP sessions:
    // everything the runner held is gone).
    auth.signal(signal);
    assert!(auth.wait_exit(Duration::from_secs(15)).await.is_some());
    tokio::time::sleep(down).await;
    let _auth = start_auth(&db, port);

    let out = tick.await.unwrap().unwrap();
    let tick_secs = started.elapsed().as_secs_f64();
    assert_eq!(out.report.due, personas, "{out:?}");
    let mut cost = RestartCost {
        failed_days: out.report.failed.len(),
        ..RestartCost::default()
    };
    for i in 0..personas {
        let slug = format!("restart-{i}");
        let id: uuid::Uuid = {
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            #[derive(QueryableByName)]
            struct S {
                #[diesel(sql_type = diesel::sql_types::Uuid)]
                id: uuid::Uuid,
            }
            let mut conn = db.conn().await;
            let s: S = diesel::sql_query(format!(
                "SELECT user_id AS id FROM personas WHERE slug = '{slug}'"
            ))
            .get_result(&mut conn)
            .await
            .unwrap();
            s.id
        };
        let (executed, rows) = executed_vs_rows(&db, id).await;
        cost.lost_calls += (CALLS - executed).max(0);
        cost.duplicates += (executed - CALLS).max(0);
        cost.rows_missing_or_extra += (rows - executed).abs();
        cost.rows_incomplete += db
            .count(&format!("SELECT count(*) AS n FROM persona_actions WHERE persona_id = '{id}' AND completed_at IS NULL"))
            .await;
        cost.lost_ratings += 1 - db
            .count(&format!("SELECT count(*) AS n FROM persona_feedback WHERE persona_id = '{id}' AND rating = 4"))
            .await;
        cost.still_leased += 1 - db
            .count(&format!("SELECT count(*) AS n FROM personas WHERE user_id = '{id}' AND lease_expires_at IS NULL AND last_active_at IS NOT NULL"))
            .await;
    }
    eprintln!(
        "auth-internal SIG{signal} mid-day ({before} calls in), down {down:?}, {personas} personas × {CALLS} calls: \
         {} lost calls, {} lost ratings, {} duplicates, {} failed days \
         ({} rows missing or extra, {} incomplete, {} not released done); tick {tick_secs:.1} s",
        cost.lost_calls,
        cost.lost_ratings,
        cost.duplicates,
        cost.failed_days,
        cost.rows_missing_or_extra,
        cost.rows_incomplete,
        cost.still_leased,
    );
    assert_eq!(out.report.ran_successfully, personas, "{out:?}");
    cost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_auth_internal_restart_mid_day_costs_no_call_rating_or_day() {
    let cost = restart_mid_day(2, "TERM", Duration::from_secs(3), Some(20)).await;
    assert_eq!(cost, RestartCost::default());
}

/// The goal: auth-internal SIGKILLed mid-day and down 60 s, the runner on its
/// default retry budget (`AUTH_INTERNAL_RETRY_SECS`, 120 s) → 0 lost calls, 0 lost
/// ratings, 0 duplicates, 0 failed days. About 70 s of wall time (slow in nextest).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_internal_sigkilled_and_down_60s_mid_day_costs_nothing() {
    let cost = restart_mid_day(3, "KILL", Duration::from_secs(60), None).await;
    assert_eq!(cost, RestartCost::default());
}
