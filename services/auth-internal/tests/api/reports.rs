//! The reports on seeded data whose answers are known by hand: means, Student-t
//! intervals, previous-period deltas, worst-first order, `__parse` counted apart, the
//! app-version filter, trends by day and week, failures and tokens.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, error_body};

const T: &str = "2026-11-"; // November 2026; the test clock stands at Wed 18th 12:00 UTC.

struct Seed {
    a: Uuid,
    b: Uuid,
}

fn at(day_time: &str) -> String {
    format!("{T}{day_time}+00")
}

#[expect(clippy::too_many_arguments, reason = "a seeded row takes every column")]
async fn run(
    app: &TestApp,
    id: &str,
    persona: Uuid,
    started: &str,
    outcome: &str,
    class: Option<&str>,
    error: Option<&str>,
    provider_model_version: (&str, &str, &str),
    tokens: [i64; 4],
) {
    let q = |v: Option<&str>| v.map_or("NULL".to_owned(), |s| format!("'{s}'"));
    let (provider, model, version) = provider_model_version;
    app.sql(&format!(
        "INSERT INTO persona_runs (id, persona_id, tick_id, revision, worker, provider, model, app_version, \
           started_at, finished_at, outcome, error_class, error, tokens_input, tokens_output, \
           tokens_cache_read, tokens_cache_write) \
         VALUES ('{id}', '{persona}', '{tick}', 1, 'w', '{provider}', '{model}', '{version}', '{s}', '{s}', \
           '{outcome}', {class}, {error}, {}, {}, {}, {})",
        tokens[0],
        tokens[1],
        tokens[2],
        tokens[3],
        tick = id.split('.').next().unwrap(),
        s = at(started),
        class = q(class),
        error = q(error),
    ))
    .await;
}

async fn feedback(
    app: &TestApp,
    persona: Uuid,
    run: &str,
    module: &str,
    rating: Option<i16>,
    notes: &str,
    when: &str,
) {
    let rating = rating.map_or("NULL".to_owned(), |r| r.to_string());
    app.sql(&format!(
        "INSERT INTO persona_feedback (id, persona_id, tick_id, module, rating, notes, created_at) \
         VALUES ('{run}-{module}-{when}', '{persona}', '{run}', '{module}', {rating}, '{notes}', '{}')",
        at(when)
    ))
    .await;
}

async fn action(
    app: &TestApp,
    persona: Uuid,
    run: &str,
    i: u32,
    module: &str,
    ok: bool,
    when: &str,
) {
    let result = if ok { "ok" } else { "error" };
    app.sql(&format!(
        "INSERT INTO persona_actions (id, persona_id, tick_id, tool_name, module, result, created_at) \
         VALUES ('{run}-{i}-{module}_x', '{persona}', '{run}', '{module}_x', '{module}', '{result}', '{}')",
        at(when)
    ))
    .await;
}

/// The data set. Runs: r1.A (app 2.0), r2.B (app 1.9); feedback of run "r3" has no run row.
async fn seed(app: &TestApp) -> Seed {
    let ids = app.seed_personas("rater", 2, "daily").await;
    let (a, b) = (ids[0], ids[1]);
    let r1 = format!("r1.{a}");
    let r2 = format!("r2.{b}");
    let r3 = format!("r3.{a}");
    run(
        app,
        &r1,
        a,
        "12 09:00",
        "ok",
        None,
        None,
        ("sim", "sim-1", "2.0"),
        [100, 10, 5, 1],
    )
    .await;
    run(
        app,
        &r2,
        b,
        "12 10:00",
        "ok",
        None,
        None,
        ("anthropic", "claude", "1.9"),
        [200, 20, 50, 7],
    )
    .await;

    // todo, current period: 1, 2, 2, 1, 4 → mean 2.0.
    feedback(app, a, &r1, "todo", Some(1), "a: kaputt", "12 09:00").await;
    feedback(app, b, &r2, "todo", Some(2), "b: langsam", "13 09:00").await;
    feedback(app, a, &r1, "todo", Some(2), "c: umständlich", "14 09:00").await;
    feedback(app, b, &r2, "todo", Some(1), "d: verloren", "15 09:00").await;
    feedback(app, a, &r1, "todo", Some(4), "e: gut", "16 09:00").await;
    // todo, previous period: 4, 4 → mean 4.0; and one at exactly `to` (excluded).
    feedback(app, a, &r3, "todo", Some(4), "prev", "05 09:00").await;
    feedback(app, b, &r3, "todo", Some(4), "prev", "06 09:00").await;
    feedback(app, a, &r3, "todo", Some(5), "at to", "18 12:00").await;
    // notes: 4, 5, 4, 5 → mean 4.5; previous: one 1 just before `from`.
    feedback(app, a, &r1, "notes", Some(4), "ok", "12 11:00").await;
    feedback(app, b, &r2, "notes", Some(5), "super", "13 11:00").await;
    feedback(app, a, &r1, "notes", Some(4), "ok", "14 11:00").await;
    feedback(app, b, &r2, "notes", Some(5), "super", "15 11:00").await;
    feedback(app, a, &r3, "notes", Some(1), "prev", "11 11:59:59").await;
    // calendar: a single 3.
    feedback(app, b, &r2, "calendar", Some(3), "geht so", "13 12:00").await;
    // __parse: two in the period (one of r1), one before it.
    feedback(app, a, &r1, "__parse", None, "kein JSON", "12 13:00").await;
    feedback(app, b, &r2, "__parse", None, "kein JSON", "13 13:00").await;
    feedback(app, a, &r3, "__parse", None, "kein JSON", "05 13:00").await;

    // Tool calls: todo 4 (1 error, of r1), notes 2 ok, habits 3 errors (run r3), one old todo error.
    action(app, a, &r1, 0, "todo", false, "12 09:00").await;
    action(app, a, &r1, 1, "todo", true, "12 09:01").await;
    action(app, b, &r2, 0, "todo", true, "13 09:00").await;
    action(app, b, &r2, 1, "todo", true, "13 09:01").await;
    action(app, a, &r1, 2, "notes", true, "12 11:00").await;
    action(app, b, &r2, 2, "notes", true, "13 11:00").await;
    for i in 0..3 {
        action(app, a, &r3, i, "habits", false, "14 10:00").await;
    }
    action(app, a, &r3, 9, "todo", false, "05 10:00").await;
    Seed { a, b }
}

async fn get(app: &TestApp, path: &str) -> Value {
    let resp = app.internal(Method::GET, path).send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

fn close(v: &Value, expected: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((got - expected).abs() < 1e-4, "{got} vs {expected}");
}

fn interval(v: &Value, lo: f64, hi: f64) {
    close(&v[0], lo);
    close(&v[1], hi);
}

#[tokio::test]
async fn the_scoreboard_has_known_means_intervals_deltas_and_order() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let r = get(&app, "/reports/modules").await;
    assert_eq!(r["from"], "2026-11-11T12:00:00Z");
    assert_eq!(r["to"], "2026-11-18T12:00:00Z");
    assert_eq!(r["parseFailures"], 2);
    let modules = r["modules"].as_array().unwrap();
    let names: Vec<&str> = modules
        .iter()
        .map(|m| m["module"].as_str().unwrap())
        .collect();
    // Worst first; habits has calls but no ratings: last. __parse is never a module.
    assert_eq!(names, vec!["todo", "calendar", "notes", "habits"]);

    let todo = &modules[0];
    assert_eq!(todo["n"], 5);
    close(&todo["mean"], 2.0);
    // sd = √1.5, t(0.975, 4) = 2.776445 → ±1.520719; the low end clamps to 1.
    interval(&todo["ci95"], 1.0, 3.520_719);
    assert_eq!(todo["previous"], json!({"n": 2, "mean": 4.0}));
    close(&todo["delta"], -2.0);
    close(&todo["errorShare"], 0.25);
    assert_eq!(todo["toolCalls"], 4);
    // The three newest ratings ≤ 2, newest first, linked to their runs.
    let notes: Vec<&str> = todo["lowNotes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["notes"].as_str().unwrap())
        .collect();
    assert_eq!(notes, vec!["d: verloren", "c: umständlich", "b: langsam"]);
    assert_eq!(todo["lowNotes"][0]["rating"], 1);
    assert!(
        todo["lowNotes"][0]["runId"]
            .as_str()
            .unwrap()
            .starts_with("r2.")
    );
    assert_eq!(todo["lowNotes"][0]["at"], "2026-11-15T09:00:00Z");

    let calendar = &modules[1];
    assert_eq!(calendar["n"], 1);
    interval(&calendar["ci95"], 1.0, 5.0);
    assert_eq!(calendar["previous"], json!({"n": 0, "mean": null}));
    assert!(calendar["delta"].is_null());
    assert!(calendar["errorShare"].is_null());

    let notes_m = &modules[2];
    close(&notes_m["mean"], 4.5);
    // sd = 0.57735, t(0.975, 3) = 3.182446 → ±0.918693; the high end clamps to 5.
    interval(&notes_m["ci95"], 3.581_307, 5.0);
    close(&notes_m["delta"], 3.5);
    close(&notes_m["errorShare"], 0.0);
    assert!(notes_m["lowNotes"].as_array().unwrap().is_empty());

    let habits = &modules[3];
    assert_eq!(habits["n"], 0);
    assert!(habits["mean"].is_null() && habits["ci95"].is_null());
    close(&habits["errorShare"], 1.0);

    // The app-version filter: only the ratings and calls of runs of 2.0 (run r1).
    let v = get(&app, "/reports/modules?appVersion=2.0").await;
    assert_eq!(v["appVersion"], "2.0");
    assert_eq!(v["parseFailures"], 1);
    let vm = v["modules"].as_array().unwrap();
    let names: Vec<&str> = vm.iter().map(|m| m["module"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["todo", "notes"]);
    assert_eq!(vm[0]["n"], 3);
    close(&vm[0]["mean"], 7.0 / 3.0);
    close(&vm[0]["errorShare"], 0.5);
    assert_eq!(vm[1]["n"], 2);
    close(&vm[1]["mean"], 4.0);
    assert_eq!(vm[0]["lowNotes"].as_array().unwrap().len(), 2);
    let none = get(&app, "/reports/modules?appVersion=9.9").await;
    assert!(none["modules"].as_array().unwrap().is_empty());

    // An explicit period: only the previous week → todo is 4.0 with n 2.
    let prev = get(
        &app,
        "/reports/modules?from=2026-11-04T12:00:00Z&to=2026-11-11T12:00:00Z",
    )
    .await;
    let names: Vec<&str> = prev["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["module"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["notes", "todo"]);
    assert_eq!(prev["parseFailures"], 1);
}

#[tokio::test]
async fn a_module_trend_buckets_by_day_and_week_with_a_per_persona_breakdown() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;

    let day = get(&app, "/reports/modules/todo/trend").await;
    assert_eq!(day["bucket"], "day");
    let starts: Vec<&str> = day["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        vec![
            "2026-11-12T00:00:00Z",
            "2026-11-13T00:00:00Z",
            "2026-11-14T00:00:00Z",
            "2026-11-15T00:00:00Z",
            "2026-11-16T00:00:00Z"
        ]
    );
    assert!(
        day["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["n"] == 1)
    );

    let week = get(
        &app,
        "/reports/modules/todo/trend?bucket=week&from=2026-11-01&to=2026-11-18T12:00:00Z",
    )
    .await;
    let b = week["buckets"].as_array().unwrap();
    assert_eq!(b.len(), 3);
    // Weeks start on Monday (UTC): Nov 2, 9, 16.
    assert_eq!(b[0]["start"], "2026-11-02T00:00:00Z");
    assert_eq!(b[0]["n"], 2);
    interval(&b[0]["ci95"], 4.0, 4.0);
    assert_eq!(b[1]["start"], "2026-11-09T00:00:00Z");
    assert_eq!(b[1]["n"], 4);
    close(&b[1]["mean"], 1.5);
    interval(&b[1]["ci95"], 1.0, 2.418_693);
    assert_eq!(b[2]["start"], "2026-11-16T00:00:00Z");
    interval(&b[2]["ci95"], 1.0, 5.0);

    // Per persona, worst first: B [4, 2, 1] = 2.33 before A [4, 1, 2, 4] = 2.75.
    let p = week["personas"].as_array().unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0]["personaId"], s.b.to_string());
    assert_eq!(p[0]["n"], 3);
    close(&p[0]["mean"], 7.0 / 3.0);
    assert_eq!(p[0]["slug"], "rater-1");
    assert_eq!(p[1]["personaId"], s.a.to_string());
    close(&p[1]["mean"], 2.75);

    // Bad parameters: 400 naming them; a module name that cannot exist: 404.
    for (q, name) in [
        ("bucket=month", "`bucket`"),
        ("from=2026-11-20", "`from`"),
        ("to=soon", "`to`"),
    ] {
        let resp = app
            .internal(Method::GET, &format!("/reports/modules/todo/trend?{q}"))
            .send()
            .await
            .unwrap();
        let body = error_body(resp, StatusCode::BAD_REQUEST).await;
        assert!(
            body["error"]["message"].as_str().unwrap().contains(name),
            "{q}: {body}"
        );
    }
    let resp = app
        .internal(Method::GET, "/reports/modules/no%20such/trend")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failures_group_by_class_and_persona_and_tokens_by_provider_model_and_day() {
    let app = TestApp::spawn().await;
    let s = seed(&app).await;
    let (a, b) = (s.a, s.b);
    let sim = ("sim", "sim-1", "2.0");
    run(
        &app,
        &format!("f1.{a}"),
        a,
        "13 08:00",
        "failed",
        Some("llm"),
        Some("e1"),
        sim,
        [1, 0, 0, 0],
    )
    .await;
    run(
        &app,
        &format!("f2.{a}"),
        a,
        "14 08:00",
        "failed",
        Some("llm"),
        Some("e2"),
        sim,
        [1, 0, 0, 0],
    )
    .await;
    run(
        &app,
        &format!("f3.{a}"),
        a,
        "15 08:00",
        "failed",
        Some("llm"),
        Some("e3"),
        sim,
        [1, 0, 0, 0],
    )
    .await;
    run(
        &app,
        &format!("f4.{b}"),
        b,
        "16 08:00",
        "failed",
        Some("deadline"),
        Some("too slow"),
        sim,
        [0; 4],
    )
    .await;
    run(
        &app,
        &format!("f5.{a}"),
        a,
        "12 08:00",
        "simulator_failure",
        Some("simulator"),
        Some("refused"),
        sim,
        [0; 4],
    )
    .await;
    run(
        &app,
        &format!("f6.{a}"),
        a,
        "01 08:00",
        "failed",
        Some("llm"),
        Some("old"),
        sim,
        [0; 4],
    )
    .await;

    let f = get(&app, "/reports/failures").await;
    assert_eq!(f["total"], 5);
    let g = f["groups"].as_array().unwrap();
    assert_eq!(g.len(), 3);
    assert_eq!(g[0]["errorClass"], "llm");
    assert_eq!(g[0]["personaId"], a.to_string());
    assert_eq!(g[0]["slug"], "rater-0");
    assert_eq!(g[0]["count"], 3);
    assert_eq!(g[0]["firstSeen"], "2026-11-13T08:00:00Z");
    assert_eq!(g[0]["lastSeen"], "2026-11-15T08:00:00Z");
    assert_eq!(
        g[0]["example"],
        json!({"runId": format!("f3.{a}"), "error": "e3", "at": "2026-11-15T08:00:00Z"})
    );
    assert_eq!(g[1]["errorClass"], "deadline");
    assert_eq!(g[1]["personaId"], b.to_string());
    assert_eq!(g[2]["errorClass"], "simulator");

    let t = get(&app, "/reports/tokens?bucket=day").await;
    assert_eq!(t["bucket"], "day");
    let rows = t["rows"].as_array().unwrap();
    let shape: Vec<(String, String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["start"].as_str().unwrap()[8..10].to_owned(),
                r["provider"].as_str().unwrap().to_owned(),
                r["runs"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = |d: &str, p: &str, n: u64| (d.to_owned(), p.to_owned(), n);
    assert_eq!(
        shape,
        vec![
            expect("12", "anthropic", 1),
            expect("12", "sim", 2),
            expect("13", "sim", 1),
            expect("14", "sim", 1),
            expect("15", "sim", 1),
            expect("16", "sim", 1)
        ]
    );
    assert_eq!(rows[0]["model"], "claude");
    assert_eq!(
        rows[0]["tokens"],
        json!({"input": 200, "output": 20, "cacheRead": 50, "cacheWrite": 7})
    );
    assert_eq!(
        rows[1]["tokens"],
        json!({"input": 100, "output": 10, "cacheRead": 5, "cacheWrite": 1})
    );
    assert_eq!(
        t["total"],
        json!({"input": 303, "output": 30, "cacheRead": 55, "cacheWrite": 8})
    );

    let w = get(&app, "/reports/tokens?bucket=week").await;
    let rows = w["rows"].as_array().unwrap();
    // Week of Monday Nov 9: anthropic 1, sim 5; week of Nov 16: sim 1.
    assert_eq!(rows.len(), 3, "{w}");
    assert_eq!(rows[1]["start"], "2026-11-09T00:00:00Z");
    assert_eq!(rows[1]["provider"], "sim");
    assert_eq!(rows[1]["runs"], 5);
    assert_eq!(rows[2]["start"], "2026-11-16T00:00:00Z");

    let resp = app
        .internal(Method::GET, "/reports/tokens?bucket=hour")
        .send()
        .await
        .unwrap();
    let body = error_body(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`bucket`")
    );
    let resp = app
        .client
        .get(app.url("/api/v1/internal/reports/modules"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_app_version_covers_every_action_batch_of_a_run() {
    let app = TestApp::spawn().await;
    let a = app.seed_personas("batched", 1, "daily").await[0];
    let r1 = format!("t1.{a}");
    // The tool calls come first (recorded as they run), the run row after them.
    action(&app, a, &r1, 0, "todo", true, "16 09:00").await;
    // Batch 1 of the same run (persona-runner: tick id `{runId}~1`).
    action(&app, a, &format!("{r1}~1"), 0, "todo", false, "16 09:05").await;
    action(&app, a, &format!("{r1}~1"), 1, "todo", false, "16 09:06").await;
    run(
        &app,
        &r1,
        a,
        "16 08:59",
        "ok",
        None,
        None,
        ("sim", "sim-1", "3.1"),
        [1, 1, 0, 0],
    )
    .await;
    feedback(&app, a, &r1, "todo", Some(3), "ok", "16 09:10").await;

    for path in ["/reports/modules", "/reports/modules?appVersion=3.1"] {
        let r = get(&app, path).await;
        let todo = &r["modules"][0];
        assert_eq!(todo["module"], "todo", "{path}: {r}");
        assert_eq!(todo["toolCalls"], 3, "{path}: {r}");
        close(&todo["errorShare"], 2.0 / 3.0);
        assert_eq!(todo["n"], 1);
    }
    let other = get(&app, "/reports/modules?appVersion=3.0").await;
    assert!(other["modules"].as_array().unwrap().is_empty(), "{other}");
}

/// One count of the keys in which a rollup (`{kept}`: its key and sums, zero sums left
/// out) and a recount of the raw rows (`{recount}`) differ.
fn drift(kept: &str, recount: &str) -> String {
    format!(
        "(SELECT count(*) FROM (({kept} EXCEPT {recount}) UNION ALL ({recount} EXCEPT {kept})) AS d)"
    )
}

/// A rollup's sums per key (a key may have several delta rows until compacted).
fn summed(table: &str, key: &str, sums: &[&str]) -> String {
    let cols = sums
        .iter()
        .map(|c| format!("sum({c})::int8"))
        .collect::<Vec<_>>()
        .join(", ");
    let nonzero = sums
        .iter()
        .map(|c| format!("sum({c}) <> 0"))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!("SELECT {key}, {cols} FROM {table} GROUP BY {key} HAVING {nonzero}")
}

const ROLLUPS: [(&str, &str, &[&str]); 4] = [
    (
        "report_ratings_hourly",
        "hour, module, app_version",
        &["n", "sum", "sum_sq", "unparsed"],
    ),
    (
        "report_ratings_daily",
        "day, module, persona_id",
        &["n", "sum", "sum_sq"],
    ),
    (
        "report_calls_hourly",
        "hour, module, app_version",
        &["calls", "errors"],
    ),
    (
        "report_tokens_hourly",
        "hour, provider, model",
        &["runs", "input", "output", "cache_read", "cache_write"],
    ),
];

/// Rollup keys whose sums differ from a recount of the raw rows, over all four rollups.
fn rollup_drift() -> String {
    let ratings = "SELECT date_trunc('hour', f.created_at, 'UTC'), f.module, r.app_version, \
          count(f.rating), coalesce(sum(f.rating), 0), coalesce(sum(f.rating * f.rating), 0), \
          count(*) - count(f.rating) \
        FROM persona_feedback f LEFT JOIN persona_runs r ON r.id = f.tick_id GROUP BY 1, 2, 3";
    let daily = "SELECT date_trunc('day', created_at, 'UTC'), module, persona_id, count(*), \
          sum(rating), sum(rating * rating) FROM persona_feedback WHERE rating IS NOT NULL \
        GROUP BY 1, 2, 3";
    let calls = "SELECT date_trunc('hour', a.created_at, 'UTC'), a.module, r.app_version, \
          count(*), count(*) FILTER (WHERE a.result = 'error') \
        FROM persona_actions a LEFT JOIN persona_runs r ON r.id = split_part(a.tick_id, '~', 1) \
        GROUP BY 1, 2, 3";
    let tokens = "SELECT date_trunc('hour', started_at, 'UTC'), provider, model, count(*), \
          sum(tokens_input), sum(tokens_output), sum(tokens_cache_read), sum(tokens_cache_write) \
        FROM persona_runs GROUP BY 1, 2, 3";
    let counts = ROLLUPS
        .iter()
        .zip([ratings, daily, calls, tokens])
        .map(|((table, key, sums), recount)| drift(&summed(table, key, sums), recount))
        .collect::<Vec<_>>()
        .join(" + ");
    format!("SELECT {counts} AS n")
}

/// After a compaction: rows that are not one folded, non-zero row per key.
fn unfolded_rows() -> String {
    let counts = ROLLUPS
        .iter()
        .map(|(table, key, sums)| {
            let zero = sums
                .iter()
                .map(|c| format!("{c} = 0"))
                .collect::<Vec<_>>()
                .join(" AND ");
            format!(
                "(SELECT count(*) FROM {table} WHERE NOT folded OR ({zero})) + \
                 (SELECT count(*) FROM (SELECT 1 FROM {table} GROUP BY {key} \
                    HAVING count(*) > 1) AS k)"
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    format!("SELECT {counts} AS n")
}

/// Folds the rollups as auth-internal's upkeep task does, and checks they are still exact.
async fn compact_and_check(app: &TestApp, when: &str) {
    app.sql("SELECT report_compact()").await;
    assert_eq!(app.sql_count(&rollup_drift()).await, 0, "{when}, compacted");
    assert_eq!(
        app.sql_count(&unfolded_rows()).await,
        0,
        "{when}: one folded row per key"
    );
}

#[tokio::test]
async fn the_rollups_stay_equal_to_the_raw_rows_through_every_kind_of_write() {
    let app = TestApp::spawn().await;
    let Seed { a, b } = seed(&app).await;
    assert_eq!(app.sql_count(&rollup_drift()).await, 0, "after the seed");
    let (r1, r3) = (format!("r1.{a}"), format!("r3.{a}"));
    // A retried feedback batch inserts nothing and counts nothing.
    app.sql(&format!(
        "INSERT INTO persona_feedback (id, persona_id, tick_id, module, rating, created_at) \
         VALUES ('{r1}-todo-12 09:00', '{a}', '{r1}', 'todo', 5, now()), \
                ('{r1}-extra', '{a}', '{r1}', 'todo', 3, '{}') ON CONFLICT DO NOTHING",
        at("17 10:30")
    ))
    .await;
    // The run of ratings and calls written before it; a newer snapshot changes a run's
    // version and tokens; a tool call is completed with another result; a batch `~1`.
    run(
        &app,
        &r3,
        a,
        "05 08:00",
        "failed",
        Some("llm"),
        Some("529"),
        ("sim", "sim-1", "3.0"),
        [7, 7, 7, 7],
    )
    .await;
    app.sql(&format!(
        "UPDATE persona_runs SET app_version = '2.1', tokens_input = 1000, revision = 2 \
         WHERE id = '{r1}'"
    ))
    .await;
    app.sql(&format!(
        "UPDATE persona_actions SET result = 'ok', completed_at = now() WHERE id = '{r1}-0-todo_x'"
    ))
    .await;
    action(&app, a, &format!("{r1}~1"), 0, "notes", false, "12 11:30").await;
    // Retention drops transcripts (an update that changes nothing counted).
    app.sql("UPDATE persona_runs SET transcript = NULL").await;
    assert_eq!(app.sql_count(&rollup_drift()).await, 0, "after the writes");
    compact_and_check(&app, "after the writes").await;
    // Writes after a compaction add deltas to folded rows.
    for rating in [5, 3] {
        app.sql(&format!(
            "UPDATE persona_feedback SET rating = {rating} WHERE id = '{r1}-extra'"
        ))
        .await;
    }
    app.sql(&format!(
        "UPDATE persona_runs SET app_version = '2.1', tokens_output = 77, revision = 3 \
         WHERE id = '{r3}'"
    ))
    .await;
    // A snapshot that changes only the totals (one difference row), and one that also
    // moves the run to another hour (the old key's share out, the new key's in).
    app.sql(&format!(
        "UPDATE persona_runs SET tokens_cache_read = 40, tokens_input = 990, revision = 4 \
         WHERE id = '{r3}'"
    ))
    .await;
    app.sql(&format!(
        "UPDATE persona_runs SET started_at = started_at + interval '2 hours', \
           tokens_output = tokens_output + 3, revision = 5 WHERE id = '{r1}'"
    ))
    .await;
    assert_eq!(
        app.sql_count(&rollup_drift()).await,
        0,
        "after writes on folded rows"
    );
    let v = get(&app, "/reports/modules?appVersion=2.1").await;
    assert_eq!(v["modules"][0]["module"], "todo", "{v}");
    assert_eq!(v["modules"][0]["n"], 4, "{v}");
    // Deleting a persona takes its rows out of every rollup.
    app.sql(&format!("DELETE FROM users WHERE id = '{b}'"))
        .await;
    assert_eq!(
        app.sql_count(&rollup_drift()).await,
        0,
        "after a persona went"
    );
    compact_and_check(&app, "after a persona went").await;
    let r = get(&app, "/reports/modules").await;
    let todo = &r["modules"][0];
    assert_eq!(todo["module"], "todo", "{r}");
    // a's todo ratings in the period: 1, 2, 4 and the extra 3.
    assert_eq!(todo["n"], 4, "{r}");
    close(&todo["mean"], 2.5);
}

/// One transaction on its own connection that waits `hold_ms` before it commits, so
/// writers of the same persona overlap.
async fn slow_tx(conn: &mut diesel_async::AsyncPgConnection, sql: String, hold_ms: u32) {
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute(&format!(
        "BEGIN; {sql}; SELECT pg_sleep({hold_ms} / 1000.0); COMMIT"
    ))
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn runs_and_their_rows_written_at_once_keep_the_rollups_exact_while_they_are_compacted() {
    let app = TestApp::spawn().await;
    let personas = app.seed_personas("racer", 3, "daily").await;
    let when = at("17 10:15");
    // Per persona and run: the tool calls, the run row (then its new app version) and
    // the ratings each commit from their own connection while the others are open,
    // in an order that differs by run; a compactor folds all the while.
    let writers = personas.iter().flat_map(|p| (0..4).map(move |k| (*p, k)));
    let writes = writers.map(|(p, k)| {
        let db = app.db.clone();
        let run = format!("race{k}.{p}");
        let when = when.clone();
        async move {
            let action = format!(
                "INSERT INTO persona_actions (id, persona_id, tick_id, tool_name, module, result, created_at) \
                 VALUES ('{run}-a', '{p}', '{run}', 'todo_x', 'todo', 'ok', '{when}'), \
                        ('{run}-b', '{p}', '{run}~1', 'notes_x', 'notes', 'error', '{when}')"
            );
            let rating = format!(
                "INSERT INTO persona_feedback (id, persona_id, tick_id, module, rating, created_at) \
                 VALUES ('{run}-todo', '{p}', '{run}', 'todo', {}, '{when}')",
                1 + k
            );
            let run_row = format!(
                "INSERT INTO persona_runs (id, persona_id, tick_id, revision, worker, provider, model, \
                   app_version, started_at, tokens_input, tokens_output, tokens_cache_read, tokens_cache_write) \
                 VALUES ('{run}', '{p}', 'race{k}', 1, 'w', 'sim', 'sim-1', '1.0', '{when}', 10, 1, 0, 0); \
                 UPDATE persona_runs SET app_version = '1.1', tokens_input = 20, revision = 2 \
                 WHERE id = '{run}'"
            );
            let (mut c1, mut c2, mut c3) = (db.conn().await, db.conn().await, db.conn().await);
            let hold = |i: u32| 20 + 15 * ((k + i) % 3);
            tokio::join!(
                slow_tx(&mut c1, action, hold(0)),
                slow_tx(&mut c2, run_row, hold(1)),
                slow_tx(&mut c3, rating, hold(2)),
            );
        }
    });
    let compactor = async {
        let mut conn = app.db.conn().await;
        for _ in 0..20 {
            slow_tx(&mut conn, "SELECT report_compact()".into(), 5).await;
        }
    };
    tokio::join!(futures::future::join_all(writes), compactor);
    assert_eq!(app.sql_count(&rollup_drift()).await, 0, "after the race");
    compact_and_check(&app, "after the race").await;
    let v = get(&app, "/reports/modules?appVersion=1.1").await;
    let todo = &v["modules"][0];
    assert_eq!(todo["module"], "todo", "{v}");
    assert_eq!(
        todo["n"],
        3 * 4,
        "every rating under the run's new version: {v}"
    );
    assert_eq!(
        todo["toolCalls"],
        3 * 4,
        "every call under the run's new version: {v}"
    );
}
