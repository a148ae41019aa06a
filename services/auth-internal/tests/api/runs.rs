//! Run records: the upsert (idempotent, never backwards, capped transcript), the runs
//! list (filters, search, keyset paging), the run detail, and transcript retention.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, error_body, error_code, wednesday_noon};

fn run_id(tick: &str, persona: Uuid) -> String {
    format!("{tick}.{persona}")
}

fn transcript(turns: usize) -> Value {
    let mut messages = vec![json!({"role": "user", "text": "Lebe einen Tag mit der App."})];
    for i in 0..turns {
        messages.push(json!({"role": "assistant", "text": format!("turn {i}"),
            "toolCalls": [{"id": format!("c{i}"), "name": "todo_create", "arguments": {"title": format!("t{i}")}}]}));
        messages.push(
            json!({"role": "tool", "callId": format!("c{i}"), "name": "todo_create",
            "content": format!("{{\"id\":\"r{i}\"}}"), "isError": false}),
        );
    }
    json!({"system": "Du bist Anna.", "messages": messages,
           "ratingPrompt": "Bewerte die Module.", "ratingReply": "{\"todo\": 4}"})
}

/// A run snapshot; `outcome` None = in progress.
fn record(
    persona: Uuid,
    tick: &str,
    revision: u32,
    started: DateTime<Utc>,
    outcome: Option<&str>,
) -> Value {
    let mut r = json!({
        "id": run_id(tick, persona),
        "tickId": tick,
        "revision": revision,
        "worker": "w-1",
        "provider": "sim",
        "model": "sim-1",
        "appVersion": "1.4.0",
        "startedAt": started,
        "turns": revision,
        "toolCalls": revision,
        "toolErrors": 0,
        "tokens": {"input": 100 * revision, "output": 10 * revision, "cacheRead": 5, "cacheWrite": 1},
        "firstPromptTokens": 1234,
        "transcript": transcript(revision as usize),
    });
    if let Some(o) = outcome {
        r["outcome"] = json!(o);
        r["finishedAt"] = json!(started + TimeDelta::minutes(3));
        if o == "failed" {
            r["errorClass"] = json!("llm");
            r["error"] = json!("LLM failed: 500 from upstream");
        }
    }
    r
}

async fn post_run(app: &TestApp, persona: Uuid, body: &Value) -> reqwest::Response {
    app.internal(Method::POST, &format!("/personas/{persona}/runs"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let resp = app.internal(Method::GET, path).send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

fn action_row(tool: &str) -> Value {
    json!({"toolName": tool, "module": "todo", "result": "ok", "latencyMs": 7, "input": {"title": "x"}})
}

#[tokio::test]
async fn a_snapshot_carries_its_turns_rows_in_one_transaction() {
    let app = TestApp::spawn().await;
    let p = app.seed_personas("carrier", 1, "daily").await[0];
    let started = wednesday_noon() - TimeDelta::hours(1);
    let id = run_id("tick-c", p);
    // Turn 1: rows 0..2 with the snapshot.
    let mut r = record(p, "tick-c", 1, started, None);
    r["actions"] =
        json!({"tickId": id, "actions": [action_row("todo_create"), action_row("todo_list")]});
    assert_eq!(post_run(&app, p, &r).await.status(), StatusCode::CREATED);
    // Turn 2: only the new row, from index 2; a retry of it adds nothing.
    let mut r = record(p, "tick-c", 2, started, None);
    r["actions"] = json!({"tickId": id, "firstIndex": 2, "actions": [action_row("todo_create")]});
    assert_eq!(post_run(&app, p, &r).await.status(), StatusCode::OK);
    assert_eq!(post_run(&app, p, &r).await.status(), StatusCode::OK);
    // The final snapshot with the feedback.
    let mut r = record(p, "tick-c", 3, started, Some("ok"));
    r["feedback"] =
        json!({"tickId": id, "feedback": [{"module": "todo", "rating": 4, "notes": "gut"}]});
    assert_eq!(post_run(&app, p, &r).await.status(), StatusCode::OK);
    let n = app
        .sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE id IN \
             ('{id}-0-todo_create', '{id}-1-todo_list', '{id}-2-todo_create') AND persona_id = '{p}'"
        ))
        .await;
    assert_eq!(n, 3);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        3
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_feedback WHERE id = '{id}-todo' AND rating = 4"
        ))
        .await,
        1
    );
    let run = get_json(&app, &format!("/runs/{id}")).await;
    assert_eq!(
        (run["revision"].clone(), run["outcome"].clone()),
        (json!(3), json!("ok"))
    );

    // Rows of another run, or a bad row: 422, and neither the rows nor the snapshot land.
    let mut r = record(p, "tick-c", 4, started, Some("ok"));
    r["actions"] = json!({"tickId": "tick-x", "actions": [action_row("todo_create")]});
    assert_eq!(
        error_code(
            post_run(&app, p, &r).await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "validation_failed"
    );
    let mut r = record(p, "tick-c", 4, started, Some("ok"));
    r["actions"] = json!({"tickId": id, "firstIndex": 3, "actions": [action_row("todo.bad")]});
    assert_eq!(
        error_code(
            post_run(&app, p, &r).await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "validation_failed"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        3
    );
    assert_eq!(get_json(&app, &format!("/runs/{id}")).await["revision"], 3);
}

#[tokio::test]
async fn run_upsert_is_idempotent_and_never_goes_backwards() {
    let app = TestApp::spawn().await;
    let p = app.seed_personas("runner", 1, "daily").await[0];
    let started = wednesday_noon() - TimeDelta::hours(1);
    let id = run_id("tick-1", p);

    // First snapshot (in progress): 201.
    let resp = post_run(&app, p, &record(p, "tick-1", 1, started, None)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"runId": id, "written": true, "revision": 1, "transcriptCut": false})
    );

    // A retry of the same snapshot writes nothing.
    let resp = post_run(&app, p, &record(p, "tick-1", 1, started, None)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["written"], false);

    // The final snapshot replaces it.
    let resp = post_run(&app, p, &record(p, "tick-1", 5, started, Some("failed"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["written"], true);

    // A delayed older snapshot (revision 3) must not overwrite it…
    let resp = post_run(&app, p, &record(p, "tick-1", 3, started, None)).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["written"], false);
    assert_eq!(body["revision"], 5);
    // …nor may a higher revision turn the finished run back into a running one.
    let resp = post_run(&app, p, &record(p, "tick-1", 9, started, None)).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["written"], false);

    let run = get_json(&app, &format!("/runs/{id}")).await;
    assert_eq!(run["revision"], 5);
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["errorClass"], "llm");
    assert_eq!(run["error"], "LLM failed: 500 from upstream");
    assert_eq!(run["turns"], 5);
    assert_eq!(run["toolCalls"], 5);
    assert_eq!(
        run["tokens"],
        json!({"input": 500, "output": 50, "cacheRead": 5, "cacheWrite": 1})
    );
    assert_eq!(run["firstPromptTokens"], 1234);
    assert_eq!(run["appVersion"], "1.4.0");
    assert_eq!(run["personaId"], p.to_string());
    assert_eq!(run["tickId"], "tick-1");
    // 1 user message + 2 per turn.
    assert_eq!(run["transcript"]["messages"].as_array().unwrap().len(), 11);
    assert_eq!(run["transcript"]["ratingReply"], "{\"todo\": 4}");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_runs")
            .await,
        1
    );
}

#[tokio::test]
async fn bad_run_records_get_clear_errors_and_write_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.runs.max_body_bytes = 64 * 1024;
        s.runs.transcript_cap_bytes = 16 * 1024;
    })
    .await;
    let p = app.seed_personas("bad", 1, "daily").await[0];
    let started = wednesday_noon() - TimeDelta::hours(1);

    // Wrong type: 400 naming the field.
    let mut r = record(p, "t", 1, started, None);
    r["toolCalls"] = json!("three");
    let body = error_body(post_run(&app, p, &r).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"]["code"], "invalid_body");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("toolCalls"),
        "{body}"
    );

    // Rules: 422 naming the field.
    let other = Uuid::new_v4();
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut r = record(p, "t", 1, started, None);
                r["id"] = json!(run_id("t", other));
                r
            },
            "`id`",
        ),
        (
            {
                let mut r = record(p, "t", 1, started, Some("failed"));
                r["errorClass"] = Value::Null;
                r
            },
            "`errorClass`",
        ),
        (
            {
                let mut r = record(p, "t", 1, started, Some("ok"));
                r["finishedAt"] = Value::Null;
                r
            },
            "`finishedAt`",
        ),
        (
            {
                let mut r = record(p, "t", 1, started, None);
                r["toolErrors"] = json!(7);
                r
            },
            "`toolErrors`",
        ),
        (
            {
                let mut r = record(p, "t", 1, started, None);
                r["errorClass"] = json!("Bad Class");
                r
            },
            "`errorClass`",
        ),
        (
            {
                let mut r = record(p, "t", 1, started, None);
                r["worker"] = json!("");
                r
            },
            "`worker`",
        ),
    ];
    for (body, field) in cases {
        let err = error_body(
            post_run(&app, p, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(err["error"]["code"], "validation_failed");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {err}"
        );
    }
    // Bad outcome value: 400.
    let mut r = record(p, "t", 1, started, Some("ok"));
    r["outcome"] = json!("done");
    assert_eq!(
        error_code(post_run(&app, p, &r).await, StatusCode::BAD_REQUEST).await,
        "invalid_body"
    );

    // Unknown persona: 404, also with rows carried, and nothing is written.
    let r = record(other, "t", 1, started, None);
    assert_eq!(
        error_code(post_run(&app, other, &r).await, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    let mut r = record(other, "t", 1, started, Some("ok"));
    let other_run = run_id("t", other);
    r["actions"] = json!({"tickId": other_run, "actions": [action_row("todo_create")]});
    r["feedback"] = json!({"tickId": other_run, "feedback": [{"module": "todo", "rating": 4}]});
    assert_eq!(
        error_code(post_run(&app, other, &r).await, StatusCode::NOT_FOUND).await,
        "not_found"
    );
    r.as_object_mut().unwrap().remove("actions");
    assert_eq!(
        error_code(post_run(&app, other, &r).await, StatusCode::NOT_FOUND).await,
        "not_found",
        "feedback alone"
    );
    for table in ["persona_runs", "persona_actions", "persona_feedback"] {
        assert_eq!(
            app.sql_count(&format!(
                "SELECT count(*) AS n FROM {table} WHERE persona_id = '{other}'"
            ))
            .await,
            0,
            "{table}"
        );
    }

    // A raw body over the configured maximum: 413.
    let mut r = record(p, "t", 1, started, None);
    r["transcript"]["system"] = json!("x".repeat(70 * 1024));
    assert_eq!(
        error_code(post_run(&app, p, &r).await, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_runs")
            .await,
        0
    );

    // Under the body maximum but over the transcript cap: stored, cut from the middle.
    let r = record(p, "t", 150, started, None);
    let resp = post_run(&app, p, &r).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.json::<Value>().await.unwrap()["transcriptCut"], true);
    let run = get_json(&app, &format!("/runs/{}", run_id("t", p))).await;
    let stored = serde_json::to_vec(&run["transcript"]).unwrap().len();
    assert!(stored <= 16 * 1024, "{stored}");
    let messages = run["transcript"]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "user");
    let marker = messages
        .iter()
        .find(|m| m["role"] == "omitted")
        .expect("a cut marker");
    assert!(marker["messages"].as_u64().unwrap() > 0);
    assert_eq!(run["transcript"]["cut"]["messages"], marker["messages"]);
    assert_eq!(messages.last().unwrap()["role"], "tool");
}

#[tokio::test]
async fn run_detail_has_its_actions_and_feedback_and_unknown_runs_are_404() {
    let app = TestApp::spawn().await;
    let p = app.seed_personas("detail", 1, "daily").await[0];
    let id = run_id("tick-9", p);
    let started = wednesday_noon() - TimeDelta::hours(2);
    assert_eq!(
        post_run(&app, p, &record(p, "tick-9", 2, started, Some("ok")))
            .await
            .status(),
        StatusCode::CREATED
    );
    let resp = app
        .internal(Method::POST, &format!("/personas/{p}/actions"))
        .json(&json!({"tickId": id, "actions": [
            {"toolName": "todo_create", "module": "todo", "result": "ok", "input": {"title": "a"}, "latencyMs": 5,
             "createdAt": started + TimeDelta::seconds(10)},
            {"toolName": "notes_create", "module": "notes", "result": "error", "errorMessage": "boom",
             "createdAt": started + TimeDelta::seconds(20)},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .internal(Method::POST, &format!("/personas/{p}/feedback"))
        .json(&json!({"tickId": id, "feedback": [
            {"module": "todo", "rating": 4, "notes": "gut"},
            {"module": "notes", "rating": 2, "notes": "Fehler beim Speichern"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let run = get_json(&app, &format!("/runs/{id}")).await;
    let actions = run["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0]["toolName"], "todo_create");
    assert_eq!(actions[0]["input"], json!({"title": "a"}));
    assert_eq!(actions[1]["result"], "error");
    assert_eq!(actions[1]["errorMessage"], "boom");
    let feedback = run["feedback"].as_array().unwrap();
    assert_eq!(feedback.len(), 2);
    assert_eq!(feedback[0]["module"], "notes");
    assert_eq!(feedback[0]["rating"], 2);
    assert_eq!(run["outcome"], "ok");
    assert!(run["finishedAt"].is_string());

    let resp = app
        .internal(Method::GET, &format!("/runs/{}", run_id("nope", p)))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/internal/runs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
}

#[tokio::test]
async fn runs_list_filters_searches_and_pages_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let ps = app.seed_personas("lister", 2, "daily").await;
    let now = wednesday_noon();
    // 23 runs, several sharing a start time (the id breaks the tie).
    let mut expected = Vec::new();
    for i in 0..23u32 {
        let p = ps[(i % 2) as usize];
        let tick = format!("tick-{i:02}");
        let started = now - TimeDelta::hours(i64::from(i / 3) + 1);
        let outcome = match i % 4 {
            0 => Some("failed"),
            1 => Some("simulator_failure"),
            2 => None,
            _ => Some("ok"),
        };
        let mut r = record(p, &tick, 2, started, outcome);
        if outcome == Some("simulator_failure") {
            r["errorClass"] = json!("simulator");
            r["error"] = json!("refused to use the app");
        }
        let resp = post_run(&app, p, &r).await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{}",
            resp.text().await.unwrap()
        );
        expected.push((started, run_id(&tick, p)));
    }
    // One run outside the default period (8 days ago).
    let old = record(ps[0], "tick-old", 1, now - TimeDelta::days(8), Some("ok"));
    assert_eq!(
        post_run(&app, ps[0], &old).await.status(),
        StatusCode::CREATED
    );
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();

    // Page through 5 at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/runs?limit=5".to_owned(),
            Some(c) => format!("/runs?limit=5&cursor={c}"),
        };
        let page = get_json(&app, &path).await;
        let runs = page["runs"].as_array().unwrap();
        assert!(runs.len() <= 5);
        seen.extend(runs.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(
        seen, expected,
        "pages must list every run once, newest first"
    );
    // A page of the list has the contract's fields.
    let first = get_json(&app, "/runs?limit=1").await;
    let r = &first["runs"][0];
    for key in [
        "id",
        "personaId",
        "tickId",
        "outcome",
        "errorClass",
        "startedAt",
        "finishedAt",
        "toolCalls",
        "toolErrors",
        "tokens",
    ] {
        assert!(r.get(key).is_some(), "missing {key}: {r}");
    }

    // Filters.
    let failed = get_json(&app, "/runs?outcome=failed&limit=100").await;
    assert_eq!(failed["runs"].as_array().unwrap().len(), 6);
    assert!(
        failed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "failed")
    );
    let sim = get_json(&app, "/runs?errorClass=simulator&limit=100").await;
    assert_eq!(sim["runs"].as_array().unwrap().len(), 6);
    let mine = get_json(&app, &format!("/runs?persona={}&limit=100", ps[1])).await;
    assert_eq!(mine["runs"].as_array().unwrap().len(), 11);
    let all = get_json(
        &app,
        &format!(
            "/runs?from={}&limit=100",
            (now - TimeDelta::days(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    )
    .await;
    assert_eq!(all["runs"].as_array().unwrap().len(), 24);

    // q searches the error text…
    let q = get_json(&app, "/runs?q=REFUSED&limit=100").await;
    assert_eq!(q["runs"].as_array().unwrap().len(), 6);
    // …and the rating notes of the run (literally: % is not a wildcard).
    let target = &expected[4];
    let persona = target.split_once('.').unwrap().1;
    let resp = app
        .internal(Method::POST, &format!("/personas/{persona}/feedback"))
        .json(&json!({"tickId": target, "feedback": [{"module": "todo", "rating": 1, "notes": "Sync verliert 100% meiner Einträge"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let q = get_json(&app, "/runs?q=100%25%20meiner").await;
    let ids: Vec<&str> = q["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![target.as_str()]);
    assert_eq!(
        get_json(&app, "/runs?q=%25").await["runs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Bad parameters: 400 naming them.
    for (query, name) in [
        ("outcome=done", "`outcome`"),
        ("persona=x", "`persona`"),
        ("limit=0", "`limit`"),
        ("limit=501", "`limit`"),
        ("cursor=garbage", "`cursor`"),
        ("from=yesterday", "`from`"),
        ("errorClass=NO", "`errorClass`"),
    ] {
        let resp = app
            .internal(Method::GET, &format!("/runs?{query}"))
            .send()
            .await
            .unwrap();
        let body = error_body(resp, StatusCode::BAD_REQUEST).await;
        assert!(
            body["error"]["message"].as_str().unwrap().contains(name),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn retention_drops_old_transcripts_in_batches_and_keeps_the_summaries() {
    let app = TestApp::spawn_with(|s| {
        s.runs.retention_days = 30;
        s.runs.retention_batch = 2;
    })
    .await;
    let p = app.seed_personas("keeper", 1, "daily").await[0];
    let now = wednesday_noon();
    // 5 runs 40 days old, 2 runs 10 days old.
    for i in 0..7 {
        let age = if i < 5 { 40 } else { 10 };
        let r = record(
            p,
            &format!("t{i}"),
            1,
            now - TimeDelta::days(age),
            Some("ok"),
        );
        assert_eq!(post_run(&app, p, &r).await.status(), StatusCode::CREATED);
    }
    let with_transcript = "SELECT count(*) AS n FROM persona_runs WHERE transcript IS NOT NULL";

    // Nothing is old enough yet at a time before the cutoff: move the clock back.
    app.clock.set(now - TimeDelta::days(20));
    assert_eq!(
        auth_internal::retention::sweep(&app.state).await.unwrap(),
        0
    );
    assert_eq!(app.sql_count(with_transcript).await, 7);

    // At `now`, the five 40-day-old runs are past 30 days: three batches of ≤ 2.
    app.clock.set(now);
    assert_eq!(
        auth_internal::retention::sweep(&app.state).await.unwrap(),
        5
    );
    assert_eq!(app.sql_count(with_transcript).await, 2);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_runs")
            .await,
        7
    );
    let run = get_json(&app, &format!("/runs/{}", run_id("t0", p))).await;
    assert!(run["transcript"].is_null());
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["tokens"]["input"], 100);
    let young = get_json(&app, &format!("/runs/{}", run_id("t6", p))).await;
    assert!(young["transcript"]["messages"].is_array());

    // 25 days later the younger two go too; a second sweep finds nothing.
    app.clock.advance(TimeDelta::days(25));
    assert_eq!(
        auth_internal::retention::sweep(&app.state).await.unwrap(),
        2
    );
    assert_eq!(
        auth_internal::retention::sweep(&app.state).await.unwrap(),
        0
    );
    assert_eq!(app.sql_count(with_transcript).await, 0);
}

/// A long transcript (rewritten by each snapshot of a day) is stored lz4-compressed
/// (migration 000080) and reads back exactly as written.
#[tokio::test]
async fn a_long_transcript_is_stored_compressed_and_reads_back_whole() {
    let app = TestApp::spawn().await;
    let p = app.seed_personas("talker", 1, "daily").await[0];
    let started = wednesday_noon() - TimeDelta::hours(1);
    let r = record(p, "tick-long", 120, started, Some("ok"));
    assert_eq!(post_run(&app, p, &r).await.status(), StatusCode::CREATED);
    assert_eq!(
        app.sql_count(
            "SELECT count(*) AS n FROM persona_runs \
             WHERE pg_column_compression(transcript) = 'lz4' AND octet_length(transcript::text) > 10000"
        )
        .await,
        1
    );
    let detail = get_json(&app, &format!("/runs/{}", run_id("tick-long", p))).await;
    assert_eq!(
        detail["transcript"],
        transcript(120),
        "{}",
        detail["transcript"]
    );
}

/// Every turn's snapshot rewrites the run's counters and transcript; none of those
/// columns is in an index (key, INCLUDE, expression or predicate), so Postgres can
/// update the row in place without a new entry in each of its indexes (a HOT update,
/// migration 000100). Finishing a run (outcome, error class) may touch indexes.
#[tokio::test]
async fn no_index_of_the_runs_refers_to_a_column_every_snapshot_changes() {
    let app = TestApp::spawn().await;
    let per_snapshot = [
        "revision",
        "turns",
        "tool_calls",
        "tool_errors",
        "tokens_input",
        "tokens_output",
        "tokens_cache_read",
        "tokens_cache_write",
        "first_prompt_tokens",
        "transcript",
        "updated_at",
    ];
    let names = per_snapshot
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let indexed = format!(
        "SELECT count(*) AS n FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0 \
         WHERE i.indrelid = 'persona_runs'::regclass AND a.attname IN ({names}) \
           AND (a.attnum = ANY (i.indkey::int2[]) \
                OR coalesce(pg_get_expr(i.indpred, i.indrelid), '') ~ ('\\m' || a.attname || '\\M') \
                OR coalesce(pg_get_expr(i.indexprs, i.indrelid), '') ~ ('\\m' || a.attname || '\\M'))"
    );
    assert_eq!(app.sql_count(&indexed).await, 0, "{indexed}");
    // The check itself sees such an index.
    app.sql("CREATE INDEX probe ON persona_runs (started_at) WHERE transcript IS NOT NULL")
        .await;
    assert_eq!(app.sql_count(&indexed).await, 1, "{indexed}");
}
