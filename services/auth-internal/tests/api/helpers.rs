//! Start the real application on port 0 against a fresh database.

use auth_internal::Settings;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use test_support::auth::{AuthInternal, Options};
pub use test_support::auth::{OLD_SERVICE_KEY, SEED_SECRET, SERVICE_KEY, wednesday_noon};

/// The running app (its `base`, `clock`, `state`, `db` through `Deref`) and a client.
pub struct TestApp {
    auth: AuthInternal,
    pub client: Client,
}

/// Field access (`app.base`, `app.clock`, `app.db`, `app.state`) reads the handle, as
/// before the start-up moved to `test_support::auth`.
impl std::ops::Deref for TestApp {
    type Target = AuthInternal;

    fn deref(&self) -> &AuthInternal {
        &self.auth
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::started(Options::default()).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        Self::started(Options::default().settings(tweak)).await
    }

    async fn started(options: Options) -> Self {
        Self {
            auth: options.spawn().await,
            client: Client::new(),
        }
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
        self.db.count(sql).await
    }

    /// Polls the count `sql` every 25 ms until it is above zero (say, a backend waiting
    /// on a lock); panics with `what` after 5 s.
    pub async fn wait_until_counted(&self, sql: &str, what: &str) {
        for _ in 0..200 {
            if self.sql_count(sql).await > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("{what}");
    }

    /// Counts of `user`'s rows in the change log and the records.
    pub async fn stored_rows(&self, user: uuid::Uuid) -> (i64, i64) {
        (
            self.sql_count(&format!(
                "SELECT count(*) AS n FROM sync_changes WHERE user_id = '{user}'"
            ))
            .await,
            self.sql_count(&format!(
                "SELECT count(*) AS n FROM records WHERE user_id = '{user}'"
            ))
            .await,
        )
    }

    pub async fn sql(&self, sql: &str) {
        use diesel_async::RunQueryDsl;
        let mut conn = self.db.conn().await;
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
}

/// A server-stamped record change: `op` stamped now with `counter`, writing `title`
/// (no field when empty).
pub fn title_change(op: lww::Op, counter: u32, title: &str) -> lww::Change {
    let stamp = lww::Stamp::new(chrono::Utc::now().timestamp_millis(), counter, "server").unwrap();
    lww::Change {
        op,
        fields: if title.is_empty() {
            vec![]
        } else {
            vec![("title".into(), serde_json::json!(title), stamp.clone())]
        },
        stamp,
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
    /// `GET path` with `token` as the bearer.
    pub async fn get_as(&self, token: &str, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `DELETE path` with `token` as the bearer.
    pub async fn delete_as(&self, token: &str, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Log in with the JSON API; the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let resp = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "login of {email}");
        let body: Value = resp.json().await.unwrap();
        body["accessToken"].as_str().unwrap().to_owned()
    }

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
