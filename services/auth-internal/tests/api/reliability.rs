//! Reliability contracts: action rows written with the tool's effect, leases
//! (heartbeat, abandoned, failed-day retry), NUL refused at every edge, JSON-RPC
//! errors on `/mcp`, lost database connections as 503, and the drain.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ClientConfig, RequestMetaObject},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

use crate::helpers::{SEED_SECRET, TestApp, error_body, error_code, persona_spec, title_change};

type Client = RunningService<RoleClient, ClientConfig>;

async fn connect(app: &TestApp, token: &str) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp"))
            .auth_header(token.to_owned()),
    );
    ClientConfig::default().serve(transport).await.unwrap()
}

async fn persona_token(app: &TestApp, slug: &str) -> (uuid::Uuid, String) {
    persona_token_for(app, persona_spec(slug, "daily")).await
}

async fn persona_token_for(app: &TestApp, spec: Value) -> (uuid::Uuid, String) {
    let slug = spec["slug"].as_str().unwrap().to_owned();
    app.upsert_personas(json!([spec])).await;
    let slug = slug.as_str();
    let email = service_kit::persona_password::persona_email(slug);
    let password = service_kit::persona_password::persona_password(SEED_SECRET, &email);
    let body: Value = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["user"]["id"].as_str().unwrap().parse().unwrap(),
        body["accessToken"].as_str().unwrap().to_owned(),
    )
}

async fn call_with_meta(
    client: &Client,
    tool: &str,
    args: Value,
    tick: &str,
    id: &str,
) -> CallToolResult {
    let Value::Object(args) = args else {
        unreachable!()
    };
    let Value::Object(meta) = json!({"mana/actionId": id, "mana/tickId": tick}) else {
        unreachable!()
    };
    let mut params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
    params.meta = Some(RequestMetaObject::from(meta));
    client.call_tool(params).await.unwrap()
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persona_call_leaves_its_action_row_with_its_effect_once() {
    let app = TestApp::spawn().await;
    let (pid, token) = persona_token(&app, "meta").await;
    let client = connect(&app, &token).await;
    let tick = format!("t1.{pid}");
    let id = format!("{tick}-0-todo_create");

    let r = call_with_meta(
        &client,
        "todo_create",
        json!({"title": "Milch"}),
        &tick,
        &id,
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let changes = format!(
        "SELECT count(*) AS n FROM sync_changes WHERE user_id = '{pid}' AND origin = 'mcp'"
    );
    assert_eq!(app.sql_count(&changes).await, 1);
    let rows = format!(
        "SELECT count(*) AS n FROM persona_actions WHERE id = '{id}' AND persona_id = '{pid}' \
         AND module = 'todo' AND result = 'ok' AND completed_at IS NULL AND input_hash IS NOT NULL"
    );
    assert_eq!(app.sql_count(&rows).await, 1, "recorded by the server");

    // A re-sent call (same id) is not run again.
    let again = call_with_meta(
        &client,
        "todo_create",
        json!({"title": "Milch"}),
        &tick,
        &id,
    )
    .await;
    assert_ne!(again.is_error, Some(true));
    assert_eq!(
        again.structured_content.as_ref().unwrap()["alreadyExecuted"],
        true
    );
    assert_eq!(app.sql_count(&changes).await, 1, "no second effect");

    // A read tool leaves its row too (no effect to share a transaction with).
    let read_id = format!("{tick}-1-todo_list");
    let r = call_with_meta(&client, "todo_list", json!({}), &tick, &read_id).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE id = '{read_id}' AND latency_ms IS NOT NULL"
        ))
        .await,
        1
    );
    // Re-sent, it answers that it ran, and its row stays the one row of that id.
    let again = call_with_meta(&client, "todo_list", json!({}), &tick, &read_id).await;
    assert_ne!(again.is_error, Some(true), "{}", text(&again));
    assert_eq!(
        again.structured_content.as_ref().unwrap()["alreadyExecuted"],
        true
    );
    assert_eq!(
        again.structured_content.as_ref().unwrap()["actionId"],
        read_id.as_str()
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE persona_id = '{pid}'"
        ))
        .await,
        2
    );

    // The runner's write completes both rows once; a retry changes nothing.
    let batch = json!({"tickId": tick, "actions": [
        {"toolName": "todo_create", "module": "todo", "result": "ok", "latencyMs": 42},
        {"toolName": "todo_list", "module": "todo", "result": "error", "errorMessage": "seen as error"},
        {"toolName": "notes_create", "module": "notes", "result": "ok"},
    ]});
    let post = || async {
        app.internal(Method::POST, &format!("/personas/{pid}/actions"))
            .json(&batch)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(post().await, json!({"inserted": 3, "duplicates": 0}));
    assert_eq!(post().await, json!({"inserted": 0, "duplicates": 3}));
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE persona_id = '{pid}' AND completed_at IS NOT NULL"
        ))
        .await,
        3
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE id = '{id}' AND latency_ms = 42"
        ))
        .await,
        1
    );

    // A wrong id is a tool error saying what to fix; nothing runs.
    let bad = call_with_meta(&client, "todo_create", json!({"title": "x"}), &tick, "nope").await;
    assert_eq!(bad.is_error, Some(true));
    assert!(text(&bad).contains("mana/actionId"), "{}", text(&bad));
    assert_eq!(app.sql_count(&changes).await, 1);
    client.cancel().await.unwrap();
}

/// A tool that writes twice (`goals_log_progress`: a progress entry, then the goal)
/// commits both with its action row or nothing: with the second write forced to
/// fail, the first is gone too and the row says `error`; a re-send of a call whose
/// transaction never committed (auth-internal died between the writes) therefore
/// runs it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_calls_writes_commit_together_or_not_at_all() {
    let app = TestApp::spawn().await;
    let mut spec = persona_spec("atomic", "daily");
    spec["moduleMix"] = json!({"goals": 1.0});
    let (pid, token) = persona_token_for(&app, spec).await;
    let client = connect(&app, &token).await;
    let tick = format!("t1.{pid}");
    let created = call_with_meta(
        &client,
        "goals_create",
        json!({"title": "Laufen", "target": 10, "unit": "km"}),
        &tick,
        &format!("{tick}-0-goals_create"),
    )
    .await;
    assert_ne!(created.is_error, Some(true), "{}", text(&created));
    let goal = created.structured_content.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let entries = format!(
        "SELECT count(*) AS n FROM records WHERE user_id = '{pid}' AND table_name = 'goalProgress'"
    );
    let progress = |n: i64| {
        format!(
            "SELECT count(*) AS n FROM records WHERE user_id = '{pid}' AND table_name = 'goals' \
             AND record_id = '{goal}' AND (data->>'progress')::numeric = {n}"
        )
    };

    // A fault at the second write (the goal's patch).
    app.sql(
        "CREATE FUNCTION refuse_goal_patch() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
    )
    .await;
    app.sql(
        "CREATE TRIGGER refuse_goal_patch BEFORE INSERT ON sync_changes FOR EACH ROW \
         WHEN (NEW.table_name = 'goals' AND NEW.op = 'update') EXECUTE FUNCTION refuse_goal_patch()",
    )
    .await;
    let failed_id = format!("{tick}-1-goals_log_progress");
    let failed = call_with_meta(
        &client,
        "goals_log_progress",
        json!({"id": goal, "amount": 3}),
        &tick,
        &failed_id,
    )
    .await;
    assert_eq!(failed.is_error, Some(true), "{}", text(&failed));
    assert_eq!(
        app.sql_count(&entries).await,
        0,
        "the first write is gone too"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM sync_changes WHERE table_name = 'goalProgress'")
            .await,
        0
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE id = '{failed_id}' AND result = 'error'"
        ))
        .await,
        1,
        "the call's row says it failed"
    );

    // Without the fault the call lands whole, with its row; a re-send is not repeated.
    app.sql("DROP TRIGGER refuse_goal_patch ON sync_changes")
        .await;
    let ok_id = format!("{tick}-2-goals_log_progress");
    for _ in 0..2 {
        let r = call_with_meta(
            &client,
            "goals_log_progress",
            json!({"id": goal, "amount": 3}),
            &tick,
            &ok_id,
        )
        .await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
    }
    assert_eq!(app.sql_count(&entries).await, 1);
    assert_eq!(app.sql_count(&progress(3)).await, 1, "the goal was patched");
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE id = '{ok_id}' AND result = 'ok'"
        ))
        .await,
        1
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_callers_meta_writes_no_action_row() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("human-meta@example.com").await;
    let client = connect(&app, &token).await;
    let r = call_with_meta(
        &client,
        "todo_create",
        json!({"title": "x"}),
        "t",
        "t-0-todo_create",
    )
    .await;
    assert_ne!(r.is_error, Some(true));
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        0
    );
    client.cancel().await.unwrap();
}

async fn release(app: &TestApp, id: &str, token: &str, outcome: &str) -> reqwest::Response {
    app.internal(Method::POST, &format!("/personas/{id}/release"))
        .json(&json!({"leaseToken": token, "outcome": outcome, "error": "x"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_extends_a_held_lease_and_fences_a_stale_token() {
    let app = TestApp::spawn().await;
    let ids = app.seed_personas("hb", 1, "daily").await;
    let claimed = app.claim("w1", 1, 60).await;
    let p = &claimed["personas"][0];
    let token = p["leaseToken"].as_str().unwrap();
    let beat = |token: String, secs: u32| {
        app.internal(Method::POST, &format!("/personas/{}/heartbeat", ids[0]))
            .json(&json!({"leaseToken": token, "leaseSeconds": secs}))
            .send()
    };
    app.clock.advance(chrono::TimeDelta::seconds(50));
    let resp = beat(token.to_owned(), 600).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        body["leaseExpiresAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires, app.clock.now() + chrono::TimeDelta::seconds(600));
    // Past the first expiry, another worker still cannot claim it.
    app.clock.advance(chrono::TimeDelta::seconds(120));
    assert_eq!(app.claim("w2", 1, 60).await["personas"], json!([]));

    let resp = beat(uuid::Uuid::new_v4().to_string(), 60).await.unwrap();
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "lease_lost");
    let resp = beat(token.to_owned(), 0).await.unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let resp = app
        .internal(
            Method::POST,
            &format!("/personas/{}/heartbeat", uuid::Uuid::new_v4()),
        )
        .json(&json!({"leaseToken": token, "leaseSeconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    // After release the token is stale.
    assert_eq!(
        release(&app, &ids[0].to_string(), token, "done")
            .await
            .status(),
        StatusCode::OK
    );
    let resp = beat(token.to_owned(), 60).await.unwrap();
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "lease_lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_clears_the_lease_without_backoff_or_failure() {
    let app = TestApp::spawn().await;
    let ids = app.seed_personas("ab", 1, "daily").await;
    let claimed = app.claim("w1", 1, 600).await;
    let token = claimed["personas"][0]["leaseToken"].as_str().unwrap();
    let resp = release(&app, &ids[0].to_string(), token, "abandoned").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["retryAfter"], Value::Null);
    assert_eq!(body["lastActiveAt"], Value::Null);
    let profile: Value = app
        .internal(Method::GET, &format!("/personas/{}", ids[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["consecutiveFailures"], 0);
    assert_eq!(profile["lastError"], Value::Null);
    // Claimable again at once, by anyone.
    assert_eq!(
        app.claim("w2", 1, 600).await["personas"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_day_with_actions_is_due_again_after_its_backoff() {
    let app = TestApp::spawn().await;
    let ids = app.seed_personas("fd", 1, "daily").await;
    let claimed = app.claim("w1", 1, 600).await;
    let token = claimed["personas"][0]["leaseToken"].as_str().unwrap();
    let tick = format!("t.{}", ids[0]);
    let resp = app
        .internal(Method::POST, &format!("/personas/{}/actions", ids[0]))
        .json(&json!({"tickId": tick, "actions": [{"toolName": "todo_create", "module": "todo", "result": "ok"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = release(&app, &ids[0].to_string(), token, "failed")
        .await
        .json()
        .await
        .unwrap();
    let retry: chrono::DateTime<chrono::Utc> =
        body["retryAfter"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.claim("w1", 1, 600).await["personas"], json!([]));
    app.clock.set(retry + chrono::TimeDelta::seconds(1));
    assert_eq!(
        app.claim("w1", 1, 600).await["personas"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the failed day runs again after its backoff"
    );
}

/// One request per route family with a NUL where text is stored: each is refused as
/// 422 `validation_failed` naming the field, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_at_every_edge() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("nul@example.com").await;
    let ids = app.seed_personas("nul", 1, "daily").await;
    let pid = ids[0];
    let check = |resp: reqwest::Response, field: &'static str| async move {
        let body = error_body(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["error"]["code"], "validation_failed", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains("NUL"),
            "{field}: {message}"
        );
    };
    // auth
    let resp = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"email": "a\u{0}@example.com", "password": "a good password"}))
        .send()
        .await
        .unwrap();
    check(resp, "`email`").await;
    // sync push: a data value and a client id
    let resp = app
        .push(
            &token,
            json!({"clientId": "c1", "changes": [{"appId": "todo", "table": "todos", "recordId": "r1",
                "op": "insert", "data": {"title": "x\u{0}y"}}]}),
        )
        .await;
    check(resp, "`changes[0].data.title`").await;
    let resp = app
        .push(&token, json!({"clientId": "c\u{0}", "changes": []}))
        .await;
    check(resp, "`clientId`").await;
    // sync pull: a query parameter
    let resp = app
        .client
        .get(app.url("/api/v1/sync/pull?since=%00"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    check(resp, "query parameter `since`").await;
    // persona catalogue, claim, actions, feedback, release
    let mut spec = persona_spec("nul-2", "daily");
    spec["name"] = json!("Na\u{0}me");
    let resp = app
        .internal(Method::PUT, "/personas")
        .json(&json!({"personas": [spec]}))
        .send()
        .await
        .unwrap();
    check(resp, "`personas[0].name`").await;
    let resp = app
        .internal(Method::POST, "/personas/claim")
        .json(&json!({"worker": "w\u{0}", "limit": 1, "leaseSeconds": 60}))
        .send()
        .await
        .unwrap();
    check(resp, "`worker`").await;
    let resp = app
        .internal(Method::POST, &format!("/personas/{pid}/actions"))
        .json(
            &json!({"tickId": "t", "actions": [{"toolName": "todo_create", "module": "todo",
            "result": "error", "errorMessage": "bo\u{0}om", "input": {"k": "\u{0}"}}]}),
        )
        .send()
        .await
        .unwrap();
    check(resp, "`actions[0]").await;
    let resp = app
        .internal(Method::POST, &format!("/personas/{pid}/feedback"))
        .json(&json!({"tickId": "t", "feedback": [{"module": "todo", "rating": 3, "notes": "\u{0}"}]}))
        .send()
        .await
        .unwrap();
    check(resp, "`feedback[0].notes`").await;
    // missions: a path parameter and a body field
    let resp = app
        .internal(Method::POST, "/missions/a%00b/release")
        .json(&json!({"userId": uuid::Uuid::new_v4(), "leaseToken": uuid::Uuid::new_v4()}))
        .send()
        .await
        .unwrap();
    check(resp, "path parameter `id`").await;
    let resp = app
        .client
        .post(app.url("/api/v1/missions/m%00/iterations/i/steps/s/approve"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    check(resp, "path parameter `id`").await;
    // nothing was written
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM sync_changes")
            .await,
        0
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        0
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM users WHERE email LIKE 'a%'")
            .await,
        0
    );

    // MCP: arguments and ids are tool errors telling what to fix.
    let client = connect(&app, &token).await;
    for (tool, args, field) in [
        (
            "todo_create",
            json!({"title": "a\u{0}b"}),
            "arguments.title",
        ),
        ("todo_get", json!({"id": "x\u{0}"}), "arguments.id"),
        ("notes_search", json!({"query": "\u{0}"}), "arguments.query"),
    ] {
        let Value::Object(args) = args else {
            unreachable!()
        };
        let r = client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true), "{tool}");
        let t = text(&r);
        assert!(t.contains(field) && t.contains("NUL"), "{tool}: {t}");
    }
    client.cancel().await.unwrap();
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM sync_changes")
            .await,
        0
    );

    nul_in_oauth_bodies_is_invalid_request(&app).await;
    nul_in_browser_forms_is_a_400_page(&app, pid).await;
}

/// The OAuth endpoints answer a NUL in their form or JSON bodies in the RFC shape
/// (`invalid_request`, RFC 7591's codes for registration) naming the field; no client
/// is registered.
async fn nul_in_oauth_bodies_is_invalid_request(app: &TestApp) {
    let oauth = |resp: reqwest::Response, code: &'static str, field: &'static str| async move {
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{field}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], code, "{body}");
        let text = body["error_description"].as_str().unwrap();
        assert!(
            text.contains(field) && text.contains("NUL"),
            "{field}: {text}"
        );
    };
    let form = |path: &str, body: &'static str| {
        app.client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let resp = form(
        "/oauth/token",
        "grant_type=authorization_code&client_id=a%00b&code=c&redirect_uri=r&code_verifier=v",
    )
    .await
    .unwrap();
    oauth(resp, "invalid_request", "`client_id`").await;
    let resp = form(
        "/oauth/token",
        "grant_type=refresh_token&client_id=c&refresh_token=%00",
    )
    .await
    .unwrap();
    oauth(resp, "invalid_request", "`refresh_token`").await;
    let resp = form("/oauth/revoke", "token=t%00").await.unwrap();
    oauth(resp, "invalid_request", "`token`").await;
    // A NUL in the client id of `Authorization: Basic` is no client id.
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic YSUwMGI6eA==")
        .body("grant_type=refresh_token&refresh_token=r")
        .send()
        .await
        .unwrap();
    oauth(resp, "invalid_request", "`client_id`").await;
    for (metadata, code, field) in [
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb\u{0}"], "client_name": "x"}),
            "invalid_redirect_uri",
            "`redirect_uris[0]`",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_uri": "https://a.example/\u{0}"}),
            "invalid_client_metadata",
            "`client_uri`",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "\u{0}"}),
            "invalid_client_metadata",
            "`client_name`",
        ),
    ] {
        let resp = app
            .client
            .post(app.url("/oauth/register"))
            .json(&metadata)
            .send()
            .await
            .unwrap();
        oauth(resp, code, field).await;
    }
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM oauth_clients")
            .await,
        0
    );
}

/// The browser forms (OAuth consent and connections, the console) answer a NUL with a
/// 400 page naming the field; nothing changes.
async fn nul_in_browser_forms_is_a_400_page(app: &TestApp, pid: uuid::Uuid) {
    use crate::console::{Browser, add_operator, hidden_value};
    let page = |resp: reqwest::Response, field: &'static str| async move {
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{field}");
        let html = resp.text().await.unwrap();
        assert!(
            html.contains(field) && html.contains("NUL"),
            "{field}: {html}"
        );
    };
    let mut oauth = Browser::new(app);
    for path in [
        "/oauth/authorize",
        "/oauth/connections/sign-in",
        &format!("/oauth/connections/{}/disconnect", uuid::Uuid::new_v4()),
    ] {
        let resp = oauth
            .post(
                path,
                &[
                    ("csrf_token", "t"),
                    ("email", "a\u{0}@example.com"),
                    ("password", "p"),
                ],
            )
            .await;
        page(resp, "`email`").await;
    }
    // The console's sign-in, with a valid CSRF token.
    add_operator(app).await;
    let mut b = Browser::new(app);
    let form = b.get("/console/login").await;
    let token = hidden_value(&form.text().await.unwrap(), "csrf_token").unwrap();
    let resp = b
        .post(
            "/console/login",
            &[
                ("csrf_token", &token),
                ("email", "ops\u{0}@mana.test"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(resp.headers()["x-error-code"], "bad_request");
    page(resp, "`email`").await;
    // A persona form of a signed-in operator.
    let resp = b
        .sign_in(
            crate::console::OPERATOR_EMAIL,
            crate::console::OPERATOR_PASSWORD,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let csrf = b.csrf().await;
    let resp = b
        .post(
            &format!("/console/personas/{pid}/pause"),
            &[("csrf_token", &csrf), ("next", "/console\u{0}")],
        )
        .await;
    page(resp, "`next`").await;
    // Query strings of the pages are refused by the URI check, before any handler.
    for path in [
        "/console/personas?status=%00",
        "/oauth/authorize?response_type=code&client_id=a%00b",
    ] {
        let resp = b.get(path).await;
        let body = error_body(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["error"]["code"], "validation_failed", "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("query parameter") && m.contains("NUL")),
            "{path}: {body}"
        );
    }
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM personas WHERE user_id = '{pid}' AND paused"
        ))
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_rpc_gets_a_json_rpc_error_with_400() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("rpc@example.com").await;
    let post = |ct: &'static str, body: &'static str| {
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(&token)
            .header("content-type", ct)
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    for (ct, body, code) in [
        ("application/json", "{not json", -32700),
        ("application/json", "", -32700),
        ("application/json", "[]", -32600),
        ("application/json", r#"{"id": 1, "method": "ping"}"#, -32600),
        ("application/json", r#"{"jsonrpc": "2.0", "id": 1}"#, -32600),
        (
            "text/plain",
            r#"{"jsonrpc": "2.0", "id": 1, "method": "ping"}"#,
            -32600,
        ),
    ] {
        let resp = post(ct, body).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{ct} {body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Still 401 first without a token.
    let resp = app
        .client
        .post(app.url("/mcp"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // A valid message still reaches rmcp.
    let client = connect(&app, &token).await;
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    client.cancel().await.unwrap();
}

/// Backends terminated under load: every answer is 200 or 503 with `Retry-After`
/// and the JSON envelope, never a 500; the storm is proven to have hit (at least
/// [`STORM_HITS`] answers were 503) within [`STORM_REQUESTS`] requests.
/// Requests the storm test may send before its 503s must have been seen.
const STORM_REQUESTS: usize = 2_000;
/// 503s the storm test must see (then, after [`STORM_MIN_REQUESTS`], it stops sending).
const STORM_HITS: usize = 5;
/// Requests the storm test sends at least, so "never a 500" covers a mixed load.
const STORM_MIN_REQUESTS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_are_503_never_500() {
    use diesel_async::RunQueryDsl;
    let app = TestApp::spawn().await;
    let ids = app.seed_personas("storm", 1, "daily").await;
    let (_, token) = app.register_user("storm@example.com").await;
    let db_name = app.db.name().to_owned();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut admin =
                <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(
                    &test_support::admin_url(),
                )
                .await
                .unwrap();
            let mut storms = 0;
            while !std::sync::atomic::AtomicBool::load(&stop, std::sync::atomic::Ordering::SeqCst) {
                let _ = diesel::sql_query(format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
                ))
                .execute(&mut admin)
                .await;
                storms += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            storms
        })
    };
    let (mut ok, mut unavailable) = (0, 0);
    let mut sent = 0;
    for i in 0..STORM_REQUESTS {
        if unavailable >= STORM_HITS && sent >= STORM_MIN_REQUESTS {
            break;
        }
        sent += 1;
        let resp = if i % 2 == 0 {
            app.internal(Method::GET, &format!("/personas/{}", ids[0]))
                .send()
                .await
                .unwrap()
        } else {
            app.push(
                &token,
                json!({"clientId": "c", "changes": [{"appId": "todo", "table": "todos",
                    "recordId": format!("r{i}"), "op": "insert", "data": {"title": "t"}}]}),
            )
            .await
        };
        match resp.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(resp.headers().contains_key("retry-after"));
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["error"]["code"], "service_unavailable");
                unavailable += 1;
            }
            other => panic!("request {i}: {other} {}", resp.text().await.unwrap()),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let storms = killer.await.unwrap();
    assert!(storms > 0);
    assert_eq!(ok + unavailable, sent);
    eprintln!(
        "terminate-backend storm: {storms} storms, {sent} requests, {ok} × 200, {unavailable} × 503"
    );
    assert!(
        unavailable >= STORM_HITS,
        "the storm never hit: {unavailable} × 503 in {sent} requests ({storms} storms)"
    );
    // Recovery without a restart: the pool replaces the dead connections.
    let mut recovered = false;
    for _ in 0..50 {
        let resp = app
            .internal(Method::GET, &format!("/personas/{}", ids[0]))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "no recovery after the storm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_answers_health_503_at_once() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ok");
    app.state.lifecycle.begin_drain();
    let started = std::time::Instant::now();
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "draining");
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// The release/debug binary: SIGTERM with an open MCP session (its event stream
/// included) exits in well under 2 s, answering `/health` 503 `draining` meanwhile
/// if it is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_an_open_mcp_session_exits_fast() {
    let db = test_support::TestDb::new(auth_internal::db::MIGRATIONS).await;
    let port = test_support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = test_support::auth::spawn_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_auth-internal")),
        &db,
        port,
        &[("SHUTDOWN_GRACE_SECS", "10".to_owned())],
    );
    let http = reqwest::Client::new();
    test_support::auth::wait_healthy(&base, Duration::from_secs(6)).await;
    let body: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "term@example.com", "password": "a good password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["accessToken"].as_str().unwrap().to_owned();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(token),
    );
    let client = ClientConfig::default().serve(transport).await.unwrap();
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    // Give the client's GET event stream a moment to be open on the server.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(status.is_some(), "still running 5 s after SIGTERM");
    assert!(status.unwrap().success(), "{status:?}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    drop(client);
}

/// A persona's create is one statement with its action row
/// (`records::create_recorded`): both rows and the log row, or none. A re-sent call
/// (same action id) writes nothing; an id whose record exists writes nothing either,
/// not even the action row, and leaves the write to the transaction path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persona_create_writes_its_action_row_record_and_log_row_together() {
    use auth_internal::db::{
        personas::NewAction,
        records::{self, Author, RecordKey, Recorded},
    };

    let app = TestApp::spawn().await;
    let (pid, _) = persona_token(&app, "creator").await;
    let now = chrono::Utc::now();
    let author = Author {
        client_id: "mcp",
        origin: "mcp",
    };
    let key = |record_id| RecordKey {
        user_id: pid,
        app_id: "todo",
        table: "tasks",
        record_id,
    };
    let change = title_change(lww::Op::Insert, 0, "Milch");
    let action = |id: &str| NewAction {
        id: id.to_owned(),
        persona_id: pid,
        tick_id: format!("t1.{pid}"),
        tool_name: "todo_create".into(),
        module: "todo".into(),
        input: Some(json!({"title": "Milch"})),
        input_hash: Some("h".into()),
        result: "ok",
        error_message: None,
        latency_ms: None,
        created_at: now,
        completed_at: None,
    };
    // (action rows, log rows, records) of the persona.
    let counts = async || {
        let (changes, records) = app.stored_rows(pid).await;
        let actions = app
            .sql_count(&format!(
                "SELECT count(*) AS n FROM persona_actions WHERE persona_id = '{pid}'"
            ))
            .await;
        (actions, changes, records)
    };
    let mut conn = app.db.conn().await;

    let done = records::create_recorded(&mut conn, key("r1"), &change, author, now, &action("a1"))
        .await
        .unwrap();
    let Recorded::Created(made) = done else {
        panic!("{done:?}")
    };
    assert_eq!(counts().await, (1, 1, 1));
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM records WHERE user_id = '{pid}' AND record_id = 'r1' \
             AND last_change_id = {} AND NOT deleted",
            made.change_id
        ))
        .await,
        1
    );
    // Re-sent: the action id is there, so no second record.
    let again = records::create_recorded(&mut conn, key("r2"), &change, author, now, &action("a1"))
        .await
        .unwrap();
    assert!(matches!(again, Recorded::RanBefore), "{again:?}");
    assert_eq!(counts().await, (1, 1, 1), "a re-sent create writes nothing");
    // The record exists: nothing, not even the new action row.
    let existing =
        records::create_recorded(&mut conn, key("r1"), &change, author, now, &action("a2"))
            .await
            .unwrap();
    assert!(matches!(existing, Recorded::Exists), "{existing:?}");
    assert_eq!(
        counts().await,
        (1, 1, 1),
        "an existing id writes nothing here"
    );
}
