//! Personal access tokens over real HTTP: create, list, use on `/mcp`, revoke.

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};
use crate::oauth::mcp_status;

async fn create(app: &TestApp, login: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(login)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn list(app: &TestApp, login: &str) -> Value {
    let resp = app.get_as(login, "/api/v1/tokens").await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_use_and_revoke_a_personal_access_token() {
    let app = TestApp::spawn().await;
    let (_, login) = app.register_user("pat@example.com").await;
    let (_, other) = app.register_user("pat-other@example.com").await;
    let resp = create(&app, &login, json!({"name": "laptop", "scope": "mcp"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mana_pat_") && token.len() > 50);
    assert_eq!(created["name"], "laptop");
    assert_eq!(created["scope"], "mcp");
    let expires: chrono::DateTime<chrono::Utc> =
        created["expiresAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires - app.clock.now(), TimeDelta::days(90));
    // Stored hashed: the secret is nowhere in the table.
    assert_eq!(
        app.sql_count(&format!("SELECT count(*) AS n FROM personal_access_tokens WHERE token_hash = convert_to('{token}', 'UTF8')")).await,
        0
    );
    // The list has no secret and no use yet.
    let listed = list(&app, &login).await;
    let row = &listed["tokens"][0];
    assert_eq!(row["id"], id.as_str());
    assert!(row.get("token").is_none());
    assert!(!listed.to_string().contains(&token));
    assert_eq!(row["lastUsedAt"], Value::Null);
    // It works on /mcp with the real client and records its use.
    let client = crate::mcp::connect(&app, &token).await;
    crate::mcp::structured(
        &crate::mcp::call(&client, "todo_create", json!({"title": "per PAT"})).await,
    );
    let listed = list(&app, &login).await;
    assert_eq!(listed["tokens"][0]["lastUsedAt"], json!(app.clock.now()));
    // Bumped at most once a minute, so most requests write nothing.
    let first_use = app.clock.now();
    app.clock.advance(TimeDelta::seconds(30));
    assert_eq!(mcp_status(&app, &token).await, StatusCode::OK);
    assert_eq!(
        list(&app, &login).await["tokens"][0]["lastUsedAt"],
        json!(first_use)
    );
    app.clock.advance(TimeDelta::seconds(31));
    assert_eq!(mcp_status(&app, &token).await, StatusCode::OK);
    assert_eq!(
        list(&app, &login).await["tokens"][0]["lastUsedAt"],
        json!(app.clock.now())
    );
    // It is not a login token for the JSON API.
    let resp = app.get_as(&token, "/api/v1/tokens").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Another user neither sees nor deletes it.
    assert_eq!(list(&app, &other).await["tokens"], json!([]));
    let resp = app.delete_as(&other, &format!("/api/v1/tokens/{id}")).await;
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    assert_eq!(mcp_status(&app, &token).await, StatusCode::OK);
    // The owner revokes it: 204, then /mcp refuses it and it is gone from the list.
    let resp = app.delete_as(&login, &format!("/api/v1/tokens/{id}")).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(mcp_status(&app, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(list(&app, &login).await["tokens"], json!([]));
    let resp = app.delete_as(&login, &format!("/api/v1/tokens/{id}")).await;
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    let resp = app.delete_as(&login, "/api/v1/tokens/not-a-uuid").await;
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_and_bad_input_is_a_clear_4xx() {
    let app = TestApp::spawn().await;
    let (_, login) = app.register_user("pat-expiry@example.com").await;
    let resp = create(
        &app,
        &login,
        json!({"name": "short", "scope": "mcp", "expiresInDays": 1}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(mcp_status(&app, &token).await, StatusCode::OK);
    app.clock
        .advance(TimeDelta::days(1) + TimeDelta::seconds(1));
    assert_eq!(mcp_status(&app, &token).await, StatusCode::UNAUTHORIZED);
    let fresh = crate::oauth::login(&app, "pat-expiry@example.com").await;
    assert_eq!(list(&app, &fresh).await["tokens"][0]["expired"], true);
    for (body, status, code) in [
        (
            json!({"name": "x", "scope": "admin"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "  ", "scope": "mcp"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "x", "scope": "mcp", "expiresInDays": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "x", "scope": "mcp", "expiresInDays": 366}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"name": "x", "scope": "mcp", "expiresInDays": "soon"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ] {
        assert_eq!(
            error_code(create(&app, &fresh, body.clone()).await, status).await,
            code,
            "{body}"
        );
    }
    let resp = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"name": "x", "scope": "mcp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    // A fake PAT-shaped token is a 401, not a 500.
    assert_eq!(
        mcp_status(&app, "mana_pat_nope").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personas_cannot_create_tokens() {
    let app = TestApp::spawn().await;
    app.seed_personas("pat-persona", 1, "daily").await;
    let email = "persona.pat-persona-0@mana.test";
    let password =
        service_kit::persona_password::persona_password(crate::helpers::SEED_SECRET, email);
    let login = app.login(email, &password).await;
    let resp = create(&app, &login, json!({"name": "x", "scope": "mcp"})).await;
    assert_eq!(error_code(resp, StatusCode::FORBIDDEN).await, "forbidden");
}
