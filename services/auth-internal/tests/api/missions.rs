//! Missions on auth-internal: schedule, claim, write-back, approve/reject.

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

fn mission_change(id: &str, data: Value) -> Value {
    json!({"appId": "ai", "table": "aiMissions", "recordId": id, "op": "insert", "data": data})
}

fn daily_mission(next_run_at: &str, inputs: Value) -> Value {
    json!({
        "title": "Morgenplan", "objective": "Plane meinen Tag aus Zielen und offenen Aufgaben",
        "conceptMarkdown": "", "state": "active",
        "cadence": {"kind": "daily", "atHour": 7, "atMinute": 0},
        "nextRunAt": next_run_at, "inputs": inputs, "iterations": []
    })
}

async fn claim(app: &TestApp) -> Value {
    let resp = app
        .internal(Method::POST, "/missions/claim")
        .json(&json!({"worker": "w1", "limit": 10, "leaseSeconds": 300}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn iteration(id: &str, scheduled_for: &Value) -> Value {
    json!({
        "id": id, "startedAt": "2026-11-18T12:00:00Z", "finishedAt": "2026-11-18T12:00:05Z",
        "summary": "Ein Plan", "overallStatus": "awaiting-review", "source": "server",
        "scheduledFor": scheduled_for,
        "plan": [
            {"id": format!("{id}-0"), "summary": "Steuer-Todo anlegen", "status": "planned",
             "intent": {"kind": "toolCall", "toolName": "todo_create", "params": {"title": "Steuern machen", "priority": "high"}}},
            {"id": format!("{id}-1"), "summary": "Notiz", "status": "planned",
             "intent": {"kind": "toolCall", "toolName": "notes_create", "params": {"title": "Idee", "content": "x"}}}
        ]
    })
}

async fn write(app: &TestApp, mission: &str, token: &Value, it: Value) -> reqwest::Response {
    app.internal(Method::POST, &format!("/missions/{mission}/iterations"))
        .json(&json!({"leaseToken": token, "iteration": it, "tokens": 1234}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_mission_is_claimed_planned_and_synced_back() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("planner@example.com").await;
    // One input exists, one does not.
    app.push(
        &token,
        json!({"clientId": "web", "changes": [
            {"appId": "todo", "table": "tasks", "recordId": "t1", "op": "insert",
             "data": {"title": "Steuererklärung", "description": "bis Ende des Monats"}},
            mission_change("m1", daily_mission("2026-11-18T07:00:00Z", json!([
                {"module": "todo", "table": "tasks", "id": "t1"},
                {"module": "notes", "table": "notes", "id": "gone"}]))),
            mission_change("m-future", daily_mission("2026-11-19T07:00:00Z", json!([]))),
        ]}),
    )
    .await;
    let claimed = claim(&app).await;
    let missions = claimed["missions"].as_array().unwrap();
    assert_eq!(missions.len(), 1, "{claimed}");
    let m = &missions[0];
    assert_eq!(m["mission"]["id"], "m1");
    assert_eq!(m["scheduledFor"], "2026-11-18T07:00:00Z");
    assert_eq!(m["resolvedInputs"][0]["found"], true);
    assert_eq!(m["resolvedInputs"][0]["title"], "Steuererklärung");
    assert_eq!(m["resolvedInputs"][0]["content"], "bis Ende des Monats");
    assert_eq!(m["resolvedInputs"][1]["found"], false);
    let tools: Vec<&str> = m["proposableTools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"todo_create")
            && !tools.contains(&"todo_list")
            && !tools.contains(&"todo_delete")
    );
    // Leased: nobody else gets it.
    assert!(claim(&app).await["missions"].as_array().unwrap().is_empty());

    let before = app.pull(&token, "", 1000).await;
    let resp = write(
        &app,
        "m1",
        &m["leaseToken"],
        iteration("it-1", &m["scheduledFor"]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["written"], true);
    // Daily at 07:00 UTC, run at 12:00 on the 18th: next is the 19th 07:00.
    assert_eq!(body["nextRunAt"], "2026-11-19T07:00:00Z");

    // The user's devices receive it through sync.
    let after = app
        .pull(&token, before["cursor"].as_str().unwrap(), 1000)
        .await;
    let change = after["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["recordId"] == "m1")
        .unwrap();
    assert_eq!(change["origin"], "mission-runner");
    assert_eq!(change["data"]["iterations"][0]["id"], "it-1");
    assert_eq!(
        change["data"]["iterations"][0]["overallStatus"],
        "awaiting-review"
    );

    // A retried write-back lands once.
    let resp = write(
        &app,
        "m1",
        &m["leaseToken"],
        iteration("it-1", &m["scheduledFor"]),
    )
    .await;
    assert_eq!(resp.json::<Value>().await.unwrap()["written"], false);
    let again = app
        .pull(&token, after["cursor"].as_str().unwrap(), 1000)
        .await;
    assert!(again["changes"].as_array().unwrap().is_empty());
    // A different iteration with a stale token: lease_lost.
    let resp = write(
        &app,
        "m1",
        &m["leaseToken"],
        iteration("it-2", &m["scheduledFor"]),
    )
    .await;
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "lease_lost");
    // Not due again until tomorrow 07:00.
    assert!(claim(&app).await["missions"].as_array().unwrap().is_empty());
    app.clock.advance(TimeDelta::hours(19));
    let next = claim(&app).await;
    let mut ids: Vec<&str> = next["missions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mission"]["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec!["m-future", "m1"], "both due at the same slot");
    assert_eq!(
        app.sql_count("SELECT tokens AS n FROM mission_token_usage")
            .await,
        1234
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_one_catch_up_run_then_the_next_slot() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("outage@example.com").await;
    let mut m = daily_mission("2026-11-15T07:00:00Z", json!([]));
    m["cadence"] = json!({"kind": "interval", "everyMinutes": 60});
    app.push(
        &token,
        json!({"clientId": "web", "changes": [mission_change("m", m)]}),
    )
    .await;
    let claimed = claim(&app).await;
    let mm = &claimed["missions"][0];
    let body: Value = write(
        &app,
        "m",
        &mm["leaseToken"],
        iteration("it", &mm["scheduledFor"]),
    )
    .await
    .json()
    .await
    .unwrap();
    // Three days of missed hourly slots: the next run is the next grid slot after now, not a backlog.
    assert_eq!(body["nextRunAt"], "2026-11-18T13:00:00Z");
    assert!(claim(&app).await["missions"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deleted_and_released_missions_are_not_due() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("states@example.com").await;
    app.push(&token, json!({"clientId": "web", "changes": [
        mission_change("paused", {let mut m = daily_mission("2026-11-18T07:00:00Z", json!([])); m["state"] = json!("paused"); m}),
        mission_change("deleted", daily_mission("2026-11-18T07:00:00Z", json!([]))),
        {"appId": "ai", "table": "aiMissions", "recordId": "deleted", "op": "delete"},
        mission_change("flaky", daily_mission("2026-11-18T07:00:00Z", json!([]))),
    ]})).await;
    let claimed = claim(&app).await;
    let missions = claimed["missions"].as_array().unwrap();
    assert_eq!(missions.len(), 1, "{claimed}");
    assert_eq!(missions[0]["mission"]["id"], "flaky");
    let resp = app
        .internal(Method::POST, "/missions/flaky/release")
        .json(&json!({"leaseToken": missions[0]["leaseToken"], "retryAfterSeconds": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(claim(&app).await["missions"].as_array().unwrap().is_empty());
    app.clock.advance(TimeDelta::seconds(601));
    assert_eq!(claim(&app).await["missions"].as_array().unwrap().len(), 1);
    // Resume the paused one through sync: due again.
    app.push(&token, json!({"clientId": "web", "changes": [
        {"appId": "ai", "table": "aiMissions", "recordId": "paused", "op": "update", "data": {"state": "active"}}]})).await;
    assert_eq!(claim(&app).await["missions"][0]["mission"]["id"], "paused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_step_runs_the_tool_as_the_user_once() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("owner@example.com").await;
    let (_, other) = app.register_user("other@example.com").await;
    app.push(&token, json!({"clientId": "web", "changes": [mission_change("m", daily_mission("2026-11-18T07:00:00Z", json!([])))]})).await;
    let claimed = claim(&app).await;
    let mm = &claimed["missions"][0];
    write(
        &app,
        "m",
        &mm["leaseToken"],
        iteration("it", &mm["scheduledFor"]),
    )
    .await;

    let approve = |tok: String, step: &'static str| {
        app.client
            .post(app.url(&format!(
                "/api/v1/missions/m/iterations/it/steps/{step}/approve"
            )))
            .bearer_auth(tok)
            .send()
    };
    // Another user cannot approve it (it is not theirs: 404).
    let resp = approve(other.clone(), "it-0").await.unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    let resp = approve(token.clone(), "it-0").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["step"]["status"], "approved");
    let todo_id = body["step"]["outcome"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["step"]["outcome"]["title"], "Steuern machen");
    // Idempotent: approving again creates nothing new.
    let again: Value = approve(token.clone(), "it-0")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["step"]["outcome"]["id"], todo_id.as_str());
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM records WHERE app_id = 'todo' AND NOT deleted")
            .await,
        1
    );
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM records WHERE app_id = 'todo' AND data->>'title' = 'Steuern machen'").await, 1);

    // Reject the other step with feedback; the iteration is decided.
    let resp = app
        .client
        .post(app.url("/api/v1/missions/m/iterations/it/steps/it-1/reject"))
        .bearer_auth(&token)
        .json(&json!({"feedback": "keine Notizen bitte"}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["step"]["status"], "rejected");
    assert_eq!(body["step"]["feedback"], "keine Notizen bitte");
    assert_eq!(body["iterationStatus"], "approved");
    // An approved step cannot be rejected afterwards.
    let resp = app
        .client
        .post(app.url("/api/v1/missions/m/iterations/it/steps/it-0/reject"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "conflict");
    // The verdicts reach the next planning run.
    app.clock.advance(TimeDelta::days(1));
    let next = claim(&app).await;
    let recent = &next["missions"][0]["recentIterations"][0];
    assert_eq!(recent["plan"][1]["status"], "rejected");
    assert_eq!(recent["plan"][1]["feedback"], "keine Notizen bitte");
}
