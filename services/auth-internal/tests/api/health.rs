use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, error_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_the_database() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["service"], "auth-internal");
    assert_eq!(body["database"], "ok");
    assert!(body["version"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_while_postgres_is_unreachable() {
    // Point the app at a database, then drop that database under it.
    let app = TestApp::spawn_with(|s| s.database.acquire_timeout_ms = 500).await;
    let name = app.db.name().to_owned();
    let admin = test_support::admin_url();
    {
        use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
        let mut conn = AsyncPgConnection::establish(&admin).await.unwrap();
        // Terminate the sessions, then rename the database away.
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        diesel::sql_query(format!(
            "ALTER DATABASE \"{name}\" RENAME TO \"{name}_away\""
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["database"], "down");
    assert_eq!(body["service"], "auth-internal");

    // A data route answers 503 with the JSON envelope and Retry-After, never 500.
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "a@b.example", "password": "whatever1"}))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(resp, StatusCode::SERVICE_UNAVAILABLE).await,
        "service_unavailable"
    );

    // Bring it back: the same process recovers.
    {
        use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
        let mut conn = AsyncPgConnection::establish(&admin).await.unwrap();
        diesel::sql_query(format!(
            "ALTER DATABASE \"{name}_away\" RENAME TO \"{name}\""
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_metrics() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(error_code(resp, StatusCode::NOT_FOUND).await, "not_found");
    app.client.get(app.url("/health")).send().await.unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("mana_auth_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/health\""), "{text}");
    assert!(text.contains("mana_auth_db_pool_size"), "{text}");
    assert!(
        text.contains("mana_auth_db_dead_tuples{table=\"personas\"}"),
        "{text}"
    );
    assert!(text.contains("# EOF"), "OpenMetrics text ends with # EOF");
}
