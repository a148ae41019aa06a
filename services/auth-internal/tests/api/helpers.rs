//! Start the real application on port 0 against a fresh database.

use std::sync::Arc;

use actix_web::web;
use auth_internal::{AppState, Application, Settings};
use chrono::{DateTime, TimeZone, Utc};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use service_kit::Clock;
use test_support::TestDb;

pub const SERVICE_KEY: &str = "test-service-key-new";
pub const OLD_SERVICE_KEY: &str = "test-service-key-old";
pub const SEED_SECRET: &str = "test-seed-secret";

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub clock: Clock,
    pub state: web::Data<AppState>,
    pub db: Arc<TestDb>,
    handle: actix_web::dev::ServerHandle,
}

/// Wednesday 2026-11-18 12:00 UTC.
pub fn wednesday_noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0).unwrap()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::new(auth_internal::db::MIGRATIONS).await;
        let mut settings = Settings::for_tests(db.url()).unwrap();
        tweak(&mut settings);
        let clock = Clock::manual(wednesday_noon());
        let app = Application::build_with_clock(settings, clock.clone())
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        Self {
            base,
            client: Client::new(),
            clock,
            state,
            db: Arc::new(db),
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn internal(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(&format!("/api/v1/internal{path}")))
            .header("x-service-key", SERVICE_KEY)
    }

    pub async fn upsert_personas(&self, personas: Value) -> Value {
        let resp = self
            .internal(reqwest::Method::PUT, "/personas")
            .json(&json!({ "personas": personas }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{}",
            resp.text().await.unwrap()
        );
        resp.json().await.unwrap()
    }

    /// Upsert `n` personas of one cadence named `{prefix}-{i}`; returns their ids.
    pub async fn seed_personas(&self, prefix: &str, n: usize, cadence: &str) -> Vec<uuid::Uuid> {
        let personas: Vec<Value> = (0..n)
            .map(|i| persona_spec(&format!("{prefix}-{i}"), cadence))
            .collect();
        for chunk in personas.chunks(500) {
            self.upsert_personas(Value::Array(chunk.to_vec())).await;
        }
        let mut conn = self.db.conn().await;
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            user_id: uuid::Uuid,
        }
        let rows: Vec<Id> =
            diesel::sql_query("SELECT user_id FROM personas WHERE slug LIKE $1 ORDER BY slug")
                .bind::<diesel::sql_types::Text, _>(format!("{prefix}-%"))
                .load(&mut conn)
                .await
                .unwrap();
        rows.into_iter().map(|r| r.user_id).collect()
    }

    pub async fn claim(&self, worker: &str, limit: u32, lease_seconds: u32) -> Value {
        let resp = self
            .internal(reqwest::Method::POST, "/personas/claim")
            .json(&json!({ "worker": worker, "limit": limit, "leaseSeconds": lease_seconds }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    pub async fn sql_count(&self, sql: &str) -> i64 {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        #[derive(QueryableByName)]
        struct C {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db.conn().await;
        let c: C = diesel::sql_query(sql).get_result(&mut conn).await.unwrap();
        c.n
    }

    pub async fn sql(&self, sql: &str) {
        use diesel_async::RunQueryDsl;
        let mut conn = self.db.conn().await;
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop the server without waiting; the database is dropped after.
        tokio::spawn(async move { handle.stop(false).await });
    }
}

pub fn persona_spec(slug: &str, cadence: &str) -> Value {
    json!({
        "slug": slug,
        "name": format!("Persona {slug}"),
        "archetype": "tester",
        "systemPrompt": "Du bist eine Testperson, die die App ausprobiert.",
        "moduleMix": { "todo": 0.5, "notes": 0.5 },
        "tickCadence": cadence,
    })
}

/// Assert the JSON error envelope and return the code.
pub async fn error_code(resp: Response, status: StatusCode) -> String {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.expect("JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    code
}

pub async fn error_body(resp: Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status);
    resp.json().await.expect("JSON error body")
}

impl TestApp {
    /// Register a human user; returns (user id, access token).
    pub async fn register_user(&self, email: &str) -> (uuid::Uuid, String) {
        let resp = self
            .client
            .post(self.url("/api/v1/auth/register"))
            .json(&json!({ "email": email, "password": "a good password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        (
            body["user"]["id"].as_str().unwrap().parse().unwrap(),
            body["accessToken"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn push(&self, token: &str, body: Value) -> Response {
        self.client
            .post(self.url("/api/v1/sync/push"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn pull(&self, token: &str, since: &str, limit: u32) -> Value {
        let resp = self
            .client
            .get(self.url(&format!("/api/v1/sync/pull?since={since}&limit={limit}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }
}
