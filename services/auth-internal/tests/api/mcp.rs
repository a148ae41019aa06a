//! MCP over real streamable HTTP with the rmcp client.

use reqwest::StatusCode;
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ClientConfig},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

type Client = RunningService<RoleClient, ClientConfig>;

pub(crate) async fn connect(app: &TestApp, token: &str) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp"))
            .auth_header(token.to_owned()),
    );
    ClientConfig::default()
        .serve(transport)
        .await
        .expect("MCP initialize")
}

pub(crate) async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("args must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

pub(crate) fn structured(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "tool failed: {:?}", r.content);
    r.structured_content.clone().expect("structured content")
}

fn error_text(r: &CallToolResult) -> String {
    assert_eq!(
        r.is_error,
        Some(true),
        "expected a tool error, got {:?}",
        r.structured_content
    );
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_the_registry_without_destructive_tools() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("list@example.com").await;
    let client = connect(&app, &token).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for expected in [
        "todo_create",
        "notes_search",
        "journal_add",
        "calendar_create_event",
        "contacts_create",
        "goals_create",
        "habits_log",
        "mood_log",
        "missions_create",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.contains(&"todo_delete".to_owned()),
        "destructive tools are never listed"
    );
    let re_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    assert!(names.iter().all(|n| re_ok(n)));
    let create = tools.iter().find(|t| t.name == "todo_create").unwrap();
    assert_eq!(create.input_schema.get("type"), Some(&json!("object")));
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_module_creates_and_lists_through_mcp() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("modules@example.com").await;
    let client = connect(&app, &token).await;
    let cases = [
        (
            "todo_create",
            json!({"title": "Steuererklärung"}),
            "todo_list",
            json!({}),
        ),
        (
            "notes_create",
            json!({"title": "Idee", "content": "Ein Garten auf dem Dach"}),
            "notes_search",
            json!({"query": "garten"}),
        ),
        (
            "journal_add",
            json!({"content": "Heute war ruhig."}),
            "journal_list",
            json!({}),
        ),
        (
            "calendar_create_event",
            json!({"title": "Zahnarzt", "startsAt": "2026-11-18T15:00:00Z"}),
            "calendar_list_events",
            json!({"from": "2026-11-18T00:00:00Z", "to": "2026-11-19T00:00:00Z"}),
        ),
        (
            "contacts_create",
            json!({"name": "Ada Lovelace", "email": "ada@example.com"}),
            "contacts_search",
            json!({"query": "ada"}),
        ),
        (
            "goals_create",
            json!({"title": "100 km laufen", "target": 100}),
            "goals_list",
            json!({}),
        ),
        (
            "habits_create",
            json!({"title": "Gießen"}),
            "habits_list",
            json!({}),
        ),
        (
            "mood_log",
            json!({"level": 7, "emotion": "calm"}),
            "mood_recent",
            json!({"days": 7}),
        ),
        (
            "missions_create",
            json!({"title": "Morgenplan", "objective": "Plane meinen Tag",
            "cadence": {"kind": "daily", "atHour": 7, "atMinute": 30}}),
            "missions_list",
            json!({}),
        ),
    ];
    for (create, args, list, list_args) in cases {
        let created = structured(&call(&client, create, args).await);
        let id = created["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{create}: {created}"))
            .to_owned();
        let listed = structured(&call(&client, list, list_args).await);
        let ids: Vec<&str> = listed["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}: {listed}"))
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        assert!(
            ids.contains(&id.as_str()),
            "{list} did not return the record made by {create}: {listed}"
        );
    }
    // The mission got a schedule.
    let missions = structured(&call(&client, "missions_list", json!({})).await);
    assert!(missions["items"][0]["nextRunAt"].is_string(), "{missions}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_errors_are_results_and_unknown_tools_are_protocol_errors() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("errors@example.com").await;
    let client = connect(&app, &token).await;
    let r = call(
        &client,
        "todo_complete",
        json!({"id": "00000000-0000-4000-8000-000000000000"}),
    )
    .await;
    assert!(
        error_text(&r).contains("todo_list"),
        "a helpful message: {r:?}"
    );
    let r = call(&client, "todo_create", json!({"title": ""})).await;
    assert!(error_text(&r).contains("title"));
    let err = client
        .call_tool(CallToolRequestParams::new("todo_explode".to_owned()))
        .await
        .expect_err("unknown tool");
    assert!(err.to_string().contains("unknown tool"), "{err}");
    let err = client
        .call_tool(
            CallToolRequestParams::new("todo_delete".to_owned())
                .with_arguments(json!({"id": "x"}).as_object().unwrap().clone()),
        )
        .await
        .expect_err("destructive tools are not callable");
    assert!(err.to_string().contains("unknown tool"), "{err}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_requires_a_valid_bearer_token() {
    let app = TestApp::spawn().await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |token: Option<String>| {
        let mut req = app
            .client
            .post(app.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(t) = token {
            req = req.bearer_auth(t)
        }
        req.send()
    };
    for token in [None, Some("garbage".to_owned())] {
        let sent = token.is_some();
        let resp = post(token).await.unwrap();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer resource_metadata=\""),
            "{challenge}"
        );
        assert!(challenge.contains("/.well-known/oauth-protected-resource"));
        // RFC 6750 §3.1: an error code only when a token was sent and refused.
        assert_eq!(
            challenge.contains("error=\"invalid_token\""),
            sent,
            "{challenge}"
        );
        if !sent {
            assert!(!challenge.contains("error="), "{challenge}");
        }
        assert_eq!(
            error_code(resp, StatusCode::UNAUTHORIZED).await,
            "unauthorized"
        );
    }
    // Expired: issued two hours ago.
    let (user, _) = app.register_user("exp@example.com").await;
    let old = app
        .state
        .keys
        .issue(
            user,
            "exp@example.com",
            "human",
            app.clock.now() - chrono::TimeDelta::hours(2),
        )
        .unwrap();
    assert_eq!(
        post(Some(old)).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Another scheme is no bearer token: no error code either.
    let basic = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("authorization", "Basic dXNlcjpwdw==")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let challenge = basic.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer ") && !challenge.contains("error="),
        "{challenge}"
    );
    // Wrong audience: signed by our key for another service.
    let mut jwt = auth_internal::config::JwtSettings {
        issuer: "mana-auth-internal".into(),
        audience: "other".into(),
        access_ttl_secs: 900,
        private_key_pem: None,
        private_key_file: None,
    };
    jwt.audience = "other".into();
    let other_keys = auth_internal::auth::jwt::Keys::from_settings(&jwt).unwrap();
    let foreign = other_keys
        .issue(user, "exp@example.com", "human", app.clock.now())
        .unwrap();
    assert_eq!(
        post(Some(foreign)).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // The metadata document.
    let meta: Value = app
        .client
        .get(app.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(meta["resource"].as_str().unwrap().ends_with("/mcp"));
    assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_never_sees_or_changes_another_users_records() {
    let app = TestApp::spawn().await;
    let (_, alice_token) = app.register_user("alice@example.com").await;
    let (_, bob_token) = app.register_user("bob@example.com").await;
    let alice = connect(&app, &alice_token).await;
    let bob = connect(&app, &bob_token).await;
    let todo = structured(&call(&alice, "todo_create", json!({"title": "Alice's secret"})).await);
    let id = todo["id"].as_str().unwrap();
    let bobs = structured(&call(&bob, "todo_list", json!({})).await);
    assert_eq!(bobs["count"], 0, "{bobs}");
    error_text(&call(&bob, "todo_complete", json!({"id": id})).await);
    error_text(&call(&bob, "todo_get", json!({"id": id})).await);
    let mine = structured(&call(&alice, "todo_get", json!({"id": id})).await);
    assert_ne!(mine["isCompleted"], json!(true));
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_and_sync_see_the_same_records() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("both@example.com").await;
    let client = connect(&app, &token).await;
    let todo = structured(&call(&client, "todo_create", json!({"title": "über MCP"})).await);
    let pulled = app.pull(&token, "", 100).await;
    let change = &pulled["changes"][0];
    assert_eq!(change["recordId"], todo["id"]);
    assert_eq!(change["origin"], "mcp");
    assert_eq!(change["data"]["title"], "über MCP");
    // A device's push shows up in the MCP list, merged.
    let resp = app
        .push(
            &token,
            json!({"clientId": "phone", "changes": [
        {"appId": "todo", "table": "tasks", "recordId": "from-phone", "op": "insert",
         "data": {"title": "vom Handy", "priority": "high", "isCompleted": false}}]}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let listed = structured(&call(&client, "todo_list", json!({})).await);
    let titles: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["title"].as_str())
        .collect();
    assert!(titles.contains(&"vom Handy"), "{listed}");
    // Completing through MCP is an update the device pulls.
    call(&client, "todo_complete", json!({"id": "from-phone"})).await;
    let after = app
        .pull(&token, pulled["cursor"].as_str().unwrap(), 100)
        .await;
    let last = after["changes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["op"], "update");
    assert_eq!(last["data"]["isCompleted"], true);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_mode_serves_without_sessions() {
    let app = TestApp::spawn_with(|s| s.mcp.stateful = false).await;
    let (_, token) = app.register_user("stateless@example.com").await;
    let client = connect(&app, &token).await;
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    structured(
        &call(
            &client,
            "notes_create",
            json!({"title": "t", "content": "c"}),
        )
        .await,
    );
    client.cancel().await.unwrap();
}
