use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{SEED_SECRET, TestApp, error_body, error_code, persona_spec};

async fn register(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({ "email": email, "password": password, "displayName": "Ada" }))
        .send()
        .await
        .unwrap()
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_login_issues_a_verifiable_eddsa_token() {
    let app = TestApp::spawn().await;
    let resp = register(&app, "Ada@Example.com", "correct horse").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["tokenType"], "Bearer");
    assert_eq!(created["user"]["kind"], "human");

    let resp = login(&app, "ada@example.COM", "correct horse").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["id"], created["user"]["id"]);
    assert!(body["expiresIn"].as_u64().unwrap() >= 60);
    let token = body["accessToken"].as_str().unwrap();

    // The JWKS verifies the token: EdDSA, kid, sub, aud.
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let claims = app.state.keys.verify(token, app.clock.now()).unwrap();
    assert_eq!(claims.sub.to_string(), body["user"]["id"].as_str().unwrap());
    assert_eq!(claims.aud, "mana");

    // Expired after its TTL (time injected).
    app.clock.advance(chrono::TimeDelta::seconds(
        body["expiresIn"].as_i64().unwrap() + 60,
    ));
    assert!(app.state.keys.verify(token, app.clock.now()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_are_unique_case_insensitively() {
    let app = TestApp::spawn().await;
    assert_eq!(
        register(&app, "bob@example.com", "password-1")
            .await
            .status(),
        StatusCode::CREATED
    );
    let resp = register(&app, "BOB@example.com", "password-2").await;
    assert_eq!(error_code(resp, StatusCode::CONFLICT).await, "email_taken");
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM users").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_email_and_wrong_password_are_indistinguishable() {
    let app = TestApp::spawn().await;
    register(&app, "carol@example.com", "right-password").await;
    let wrong = error_body(
        login(&app, "carol@example.com", "wrong-password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let unknown = error_body(
        login(&app, "nobody@example.com", "wrong-password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "invalid_credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_validates_input() {
    let app = TestApp::spawn().await;
    let resp = register(&app, "not-an-email", "long enough").await;
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let resp = register(&app, "dan@example.com", "short").await;
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    // Wrong type: 400 naming the field.
    let resp = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({ "email": "dan@example.com", "password": 12345678 }))
        .send()
        .await
        .unwrap();
    let body = error_body(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"]["code"], "invalid_body");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{body}"
    );
    // Malformed JSON.
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::BAD_REQUEST).await,
        "invalid_body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persona_logs_in_with_the_derived_password() {
    let app = TestApp::spawn().await;
    app.upsert_personas(json!([persona_spec("anna", "daily")]))
        .await;
    let email = "persona.anna@mana.test";
    let password = service_kit::persona_password::persona_password(SEED_SECRET, email);
    let resp = login(&app, email, &password).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["kind"], "persona");
    assert_eq!(body["user"]["email"], email);
    // A different seed secret derives a password that does not work.
    let wrong = service_kit::persona_password::persona_password("other-secret", email);
    assert_eq!(
        login(&app, email, &wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
