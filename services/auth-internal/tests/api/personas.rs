use std::collections::HashSet;

use chrono::{TimeDelta, TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{OLD_SERVICE_KEY, TestApp, error_body, error_code, persona_spec};

fn action(tool: &str) -> Value {
    json!({ "toolName": tool, "module": tool.split('_').next().unwrap(), "result": "ok", "latencyMs": 12,
            "input": {"title": "x"}, "inputHash": "abc123" })
}

async fn post_actions(app: &TestApp, id: impl std::fmt::Display, body: Value) -> reqwest::Response {
    app.internal(Method::POST, &format!("/personas/{id}/actions"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn post_feedback(
    app: &TestApp,
    id: impl std::fmt::Display,
    body: Value,
) -> reqwest::Response {
    app.internal(Method::POST, &format!("/personas/{id}/feedback"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn release(
    app: &TestApp,
    id: impl std::fmt::Display,
    token: &str,
    outcome: &str,
) -> reqwest::Response {
    app.internal(Method::POST, &format!("/personas/{id}/release"))
        .json(&json!({ "leaseToken": token, "outcome": outcome }))
        .send()
        .await
        .unwrap()
}

async fn due_ids(app: &TestApp) -> Vec<String> {
    let resp = app
        .internal(Method::GET, "/personas/due?limit=500")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(body["serverTime"].is_string());
    body["personas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_routes_need_a_service_key_and_accept_every_configured_one() {
    let app = TestApp::spawn().await;
    let url = app.url("/api/v1/internal/personas/due");
    let resp = app.client.get(&url).send().await.unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let resp = app
        .client
        .get(&url)
        .header("x-service-key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let resp = app
        .client
        .get(&url)
        .header("x-service-key", OLD_SERVICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_upsert_is_idempotent_and_validated() {
    let app = TestApp::spawn().await;
    let personas = json!([persona_spec("anna", "daily"), persona_spec("ben", "hourly")]);
    assert_eq!(
        app.upsert_personas(personas.clone()).await,
        json!({"created": 2, "updated": 0})
    );
    assert_eq!(
        app.upsert_personas(personas).await,
        json!({"created": 0, "updated": 2})
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM users WHERE kind = 'persona'")
            .await,
        2
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM users WHERE email = 'persona.anna@mana.test'")
            .await,
        1
    );

    // An unknown cadence is a type error naming the field.
    let mut bad = persona_spec("cara", "monthly");
    let resp = app
        .internal(Method::PUT, "/personas")
        .json(&json!({"personas": [bad.clone()]}))
        .send()
        .await
        .unwrap();
    let body = error_body(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("personas[0].tickCadence"),
        "{body}"
    );
    // An invalid slug or weight is a 422; nothing of the batch is written.
    bad["tickCadence"] = json!("daily");
    bad["slug"] = json!("Not A Slug");
    let resp = app
        .internal(Method::PUT, "/personas")
        .json(&json!({"personas": [persona_spec("dora", "daily"), bad]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM personas").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_rules_follow_cadence_pause_and_order() {
    let app = TestApp::spawn().await;
    let mut paused = persona_spec("paused", "hourly");
    paused["paused"] = json!(true);
    app.upsert_personas(json!([
        persona_spec("h-old", "hourly"),
        persona_spec("h-recent", "hourly"),
        persona_spec("d-old", "daily"),
        persona_spec("d-recent", "daily"),
        persona_spec("w-old", "weekdays"),
        persona_spec("never", "daily"),
        paused,
    ]))
    .await;
    // Wednesday noon: set last runs relative to it.
    app.sql("UPDATE personas SET last_active_at = '2026-11-18 10:30:00+00' WHERE slug = 'h-old'")
        .await; // 1.5 h
    app.sql(
        "UPDATE personas SET last_active_at = '2026-11-18 11:30:00+00' WHERE slug = 'h-recent'",
    )
    .await; // 0.5 h
    app.sql("UPDATE personas SET last_active_at = '2026-11-17 11:00:00+00' WHERE slug = 'd-old'")
        .await; // 25 h
    app.sql(
        "UPDATE personas SET last_active_at = '2026-11-17 13:00:00+00' WHERE slug = 'd-recent'",
    )
    .await; // 23 h
    app.sql("UPDATE personas SET last_active_at = '2026-11-16 12:00:00+00' WHERE slug = 'w-old'")
        .await; // 48 h
    let due = due_ids(&app).await;
    assert_eq!(
        due,
        vec![
            "persona.never@mana.test", // never run first
            "persona.w-old@mana.test",
            "persona.d-old@mana.test",
            "persona.h-old@mana.test",
        ]
    );
    // Exactly one hour / one day ago counts as due.
    app.sql(
        "UPDATE personas SET last_active_at = '2026-11-18 11:00:00+00' WHERE slug = 'h-recent'",
    )
    .await;
    assert!(
        due_ids(&app)
            .await
            .contains(&"persona.h-recent@mana.test".to_owned())
    );

    // Saturday: the weekdays persona is not due, the daily ones still are.
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap());
    let due = due_ids(&app).await;
    assert!(
        !due.contains(&"persona.w-old@mana.test".to_owned()),
        "{due:?}"
    );
    assert!(due.contains(&"persona.d-old@mana.test".to_owned()));
    // Monday it is due again.
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap());
    assert!(
        due_ids(&app)
            .await
            .contains(&"persona.w-old@mana.test".to_owned())
    );
    assert!(
        !due_ids(&app)
            .await
            .contains(&"persona.paused@mana.test".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_claimers_never_share_a_persona() {
    let app = TestApp::spawn().await;
    let ids = app.seed_personas("p", 500, "hourly").await;
    assert_eq!(ids.len(), 500);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for w in 0..20 {
        let client = app.client.clone();
        let url = app.url("/api/v1/internal/personas/claim");
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            barrier.wait().await;
            loop {
                let resp = client
                    .post(&url)
                    .header("x-service-key", crate::helpers::SERVICE_KEY)
                    .json(&json!({"worker": format!("w{w}"), "limit": 7, "leaseSeconds": 600}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                let body: Value = resp.json().await.unwrap();
                let got = body["personas"].as_array().unwrap().clone();
                if got.is_empty() {
                    break;
                }
                mine.extend(
                    got.into_iter()
                        .map(|p| p["userId"].as_str().unwrap().to_owned()),
                );
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "a persona was claimed twice");
    assert_eq!(unique.len(), 500, "every due persona was claimed");
    // Nothing is due while the leases hold.
    assert!(
        app.claim("late", 10, 60).await["personas"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_reclaimed_and_the_old_token_loses_it() {
    let app = TestApp::spawn().await;
    let id = app.seed_personas("solo", 1, "daily").await[0];
    let first = app.claim("w1", 5, 60).await;
    let p = &first["personas"][0];
    assert_eq!(p["userId"], id.to_string());
    assert!(p["leaseExpiresAt"].is_string());
    assert_eq!(p["tickCadence"], "daily");
    assert_eq!(p["locale"], "de");
    let old_token = p["leaseToken"].as_str().unwrap().to_owned();
    assert!(
        app.claim("w2", 5, 60).await["personas"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    app.clock.advance(TimeDelta::seconds(61));
    let second = app.claim("w2", 5, 60).await;
    let new_token = second["personas"][0]["leaseToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(old_token, new_token);

    let resp = release(&app, id, &old_token, "done").await;
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "lease_lost");
    let resp = release(&app, id, &new_token, "done").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(body["lastActiveAt"].is_string());
    // A retried release with the same token is answered alike, changing nothing.
    assert_eq!(
        release(&app, id, &new_token, "done").await.status(),
        StatusCode::OK
    );
    // Done: not due again until a day later.
    assert!(
        app.claim("w3", 5, 60).await["personas"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.clock.advance(TimeDelta::hours(24));
    assert_eq!(
        app.claim("w3", 5, 60).await["personas"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let resp = release(&app, Uuid::new_v4(), &new_token, "done").await;
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_back_off_with_a_cap_instead_of_running_every_tick() {
    let app = TestApp::spawn().await;
    let id = app.seed_personas("flaky", 1, "hourly").await[0];
    let mut last_gap = TimeDelta::zero();
    for attempt in 0..12 {
        let claimed = app.claim("w", 1, 60).await;
        let token = claimed["personas"][0]["leaseToken"]
            .as_str()
            .unwrap_or_else(|| panic!("attempt {attempt}: {claimed}"))
            .to_owned();
        let resp = release(&app, id, &token, "failed").await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        assert!(body["lastActiveAt"].is_null(), "a failed run is not a run");
        let retry_after: chrono::DateTime<Utc> =
            body["retryAfter"].as_str().unwrap().parse().unwrap();
        let gap = retry_after - app.clock.now();
        // base 300 s ± 25 %, doubling, capped at 6 h.
        assert!(gap >= TimeDelta::seconds(225), "attempt {attempt}: {gap}");
        assert!(gap <= TimeDelta::hours(6), "attempt {attempt}: {gap}");
        if (1..5).contains(&attempt) {
            assert!(gap > last_gap, "backoff grows: {last_gap} then {gap}");
        }
        last_gap = gap;
        // Not due on the next ticks…
        app.clock.advance(TimeDelta::seconds(60));
        assert!(
            app.claim("w", 1, 60).await["personas"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        // …but due once the backoff passed.
        app.clock.set(retry_after + TimeDelta::seconds(1));
    }
    assert!(
        last_gap >= TimeDelta::hours(4),
        "the cap is reached: {last_gap}"
    );
    let profile: Value = app
        .internal(Method::GET, &format!("/personas/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["consecutiveFailures"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_written_once_and_bump_last_active() {
    let app = TestApp::spawn().await;
    let id = app.seed_personas("act", 1, "daily").await[0];
    let batch = json!({"tickId": "tick-1", "actions": [action("todo_create"), action("notes_search"),
        {"toolName": "todo_list", "module": "todo", "result": "error", "errorMessage": "boom"}]});
    let resp = post_actions(&app, id, batch.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"inserted": 3, "duplicates": 0})
    );
    let resp = post_actions(&app, id, batch).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"inserted": 0, "duplicates": 3})
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        3
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions WHERE id = 'tick-1-1-notes_search' AND module = 'notes' AND input_hash = 'abc123'").await,
        1
    );
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM persona_actions WHERE result = 'error' AND error_message = 'boom'").await, 1);
    // Only a `done` release moves last_active_at (the due rule's last completed day):
    // a day that fails after writing actions is still retried after its backoff.
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM personas WHERE last_active_at IS NULL")
            .await,
        1
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions WHERE completed_at IS NOT NULL")
            .await,
        3
    );
}

#[tokio::test]
async fn a_batch_with_a_first_index_lands_its_rows_under_their_positions() {
    let app = TestApp::spawn().await;
    let id = app.seed_personas("first", 1, "daily").await[0];
    // An old-style batch (no `firstIndex`): rows 0 and 1.
    let old = json!({"tickId": "run-1", "actions": [action("todo_create"), action("todo_list")]});
    assert_eq!(
        post_actions(&app, id, old)
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!({"inserted": 2, "duplicates": 0})
    );
    // Only the new rows, from index 2 on; a retry of it adds nothing.
    let new = json!({"tickId": "run-1", "firstIndex": 2,
        "actions": [action("notes_create"), action("todo_create")]});
    for expected in [
        json!({"inserted": 2, "duplicates": 0}),
        json!({"inserted": 0, "duplicates": 2}),
    ] {
        let resp = post_actions(&app, id, new.clone()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.json::<Value>().await.unwrap(), expected);
    }
    let ids = app
        .sql_count(
            "SELECT count(*) AS n FROM persona_actions WHERE id IN \
             ('run-1-0-todo_create', 'run-1-1-todo_list', 'run-1-2-notes_create', 'run-1-3-todo_create')",
        )
        .await;
    assert_eq!(ids, 4);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        4
    );
    // Past the end of a batch: refused, nothing written.
    let rows: Vec<Value> = (0..2).map(|_| action("todo_create")).collect();
    let resp = post_actions(
        &app,
        id,
        json!({"tickId": "run-1", "firstIndex": 499, "actions": rows}),
    )
    .await;
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_invalid_batches_write_nothing() {
    let app = TestApp::spawn().await;
    let id = app.seed_personas("big", 1, "daily").await[0];
    let rows: Vec<Value> = (0..501).map(|_| action("todo_create")).collect();
    let resp = post_actions(&app, id, json!({"tickId": "t", "actions": rows})).await;
    assert_eq!(
        error_code(resp, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    let rows: Vec<Value> = (0..500).map(|_| action("todo_create")).collect();
    let mut bad = rows.clone();
    bad[499]["toolName"] = json!("todo.create");
    let resp = post_actions(&app, id, json!({"tickId": "t", "actions": bad})).await;
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let mut wrong_type = rows.clone();
    wrong_type[3]["result"] = json!("maybe");
    let resp = post_actions(&app, id, json!({"tickId": "t", "actions": wrong_type})).await;
    let body = error_body(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("actions[3].result"),
        "{body}"
    );
    let resp = post_actions(&app, id, json!({"tickId": "t", "actions": []})).await;
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        0
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM personas WHERE last_active_at IS NOT NULL")
            .await,
        0
    );
    // Exactly 500 is fine.
    let resp = post_actions(&app, id, json!({"tickId": "t", "actions": rows})).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["inserted"], 500);

    // Unknown persona, or an id that is not one at all: 404.
    let resp = post_actions(
        &app,
        Uuid::new_v4(),
        json!({"tickId": "t", "actions": [action("todo_create")]}),
    )
    .await;
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    let resp = post_actions(
        &app,
        "not-a-uuid",
        json!({"tickId": "t", "actions": [action("todo_create")]}),
    )
    .await;
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    // Not JSON at all.
    let resp = app
        .internal(Method::POST, &format!("/personas/{id}/actions"))
        .header("content-type", "application/json")
        .body("[1,2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::BAD_REQUEST).await,
        "invalid_body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_ratings_are_checked_and_parse_failures_are_visible() {
    let app = TestApp::spawn().await;
    let id = app.seed_personas("fb", 1, "daily").await[0];
    for (rating, module) in [
        (json!(6), "todo"),
        (json!(0), "todo"),
        (json!(null), "todo"),
    ] {
        let resp = post_feedback(
            &app,
            id,
            json!({"tickId": "t1", "feedback": [{"module": module, "rating": rating}]}),
        )
        .await;
        assert_eq!(
            error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
            "validation_failed",
            "{rating}"
        );
    }
    let resp = post_feedback(
        &app,
        id,
        json!({"tickId": "t1", "feedback": [{"module": "todo", "rating": 3.5}]}),
    )
    .await;
    assert_eq!(
        error_code(resp, StatusCode::BAD_REQUEST).await,
        "invalid_body"
    );
    let rows: Vec<Value> = (0..101)
        .map(|i| json!({"module": format!("m{i}"), "rating": 3}))
        .collect();
    let resp = post_feedback(&app, id, json!({"tickId": "t1", "feedback": rows})).await;
    assert_eq!(
        error_code(resp, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_feedback")
            .await,
        0
    );

    let batch = json!({"tickId": "t1", "feedback": [
        {"module": "todo", "rating": 4, "notes": "klappt"},
        {"module": "__parse", "rating": null, "notes": "Ich fand alles super!"}]});
    let resp = post_feedback(&app, id, batch.clone()).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"inserted": 2, "duplicates": 0})
    );
    let resp = post_feedback(&app, id, batch).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"inserted": 0, "duplicates": 2})
    );
    assert_eq!(
        app.sql_count(
            "SELECT count(*) AS n FROM persona_feedback WHERE id = 't1-todo' AND rating = 4"
        )
        .await,
        1
    );
    assert_eq!(
        app.sql_count(
            "SELECT count(*) AS n FROM persona_feedback WHERE module = '__parse' AND rating IS NULL"
        )
        .await,
        1
    );

    post_feedback(
        &app,
        id,
        json!({"tickId": "t2", "feedback": [{"module": "todo", "rating": 2, "notes": "langsam"}]}),
    )
    .await;
    let ratings: Value = app
        .internal(Method::GET, &format!("/personas/{id}/ratings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let todo = ratings["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == "todo")
        .unwrap();
    assert_eq!(todo["count"], 2);
    assert_eq!(todo["average"], 3.0);
    assert_eq!(todo["last"].as_array().unwrap().len(), 2);
    let parse = ratings["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == "__parse")
        .unwrap();
    assert_eq!(parse["count"], 0);
    assert!(parse["average"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_profile_shows_lease_and_last_run() {
    let app = TestApp::spawn().await;
    let id = app.seed_personas("op", 1, "hourly").await[0];
    app.claim("worker-a", 1, 600).await;
    let resp = app
        .internal(Method::GET, &format!("/personas/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["slug"], "op-0");
    assert_eq!(body["lease"]["owner"], "worker-a");
    assert_eq!(body["tickCadence"], "hourly");
    let resp = app
        .internal(Method::GET, &format!("/personas/{}", Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    // Claim validation.
    let resp = app
        .internal(Method::POST, "/personas/claim")
        .json(&json!({"worker": "w", "limit": 0, "leaseSeconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let resp = app
        .internal(Method::POST, "/personas/claim")
        .json(&json!({"worker": "w", "limit": 1}))
        .send()
        .await
        .unwrap();
    let body = error_body(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("leaseSeconds"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_and_recent_actions_are_empty_for_a_new_persona_and_404_for_an_unknown_one() {
    let app = TestApp::spawn().await;
    let id = app.seed_personas("memory", 1, "hourly").await[0];
    let get = |path: String| {
        let app = &app;
        async move { app.internal(Method::GET, &path).send().await.unwrap() }
    };
    // A persona that never ran: 200 with nothing to remember.
    let resp = get(format!("/personas/{id}/ratings")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["modules"], json!([]));
    let resp = get(format!("/personas/{id}/actions")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["actions"], json!([]));
    // Once it has rows, they are answered.
    post_actions(
        &app,
        id,
        json!({"tickId": "t", "actions": [action("todo_create")]}),
    )
    .await;
    post_feedback(
        &app,
        id,
        json!({"tickId": "t", "feedback": [{"module": "todo", "rating": 4, "notes": "ok"}]}),
    )
    .await;
    let resp = get(format!("/personas/{id}/ratings")).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["modules"][0]["count"],
        1
    );
    let resp = get(format!("/personas/{id}/actions")).await;
    let body = resp.json::<Value>().await.unwrap();
    assert_eq!(body["actions"][0]["toolName"], "todo_create");
    // No such persona: 404, not an empty answer.
    for path in ["ratings", "actions"] {
        let resp = get(format!("/personas/{}/{path}", Uuid::new_v4())).await;
        assert_eq!(
            error_code(resp, StatusCode::NOT_FOUND).await,
            "not_found",
            "{path}"
        );
    }
}
