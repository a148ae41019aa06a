//! Start auth-internal (fresh database, manual clock) and persona-runners against it.

use std::{collections::HashMap, time::Duration};

use persona_runner::{Application, PersonaTick, Settings};
use reqwest::{Client, StatusCode};
use runner_kit::{ServiceHandle, TickRunner};
use serde_json::{Value, json};
use test_support::auth::{AuthInternal, spawn_auth_internal};
pub use test_support::auth::{SEED_SECRET, SERVICE_KEY};

/// auth-internal (its `base`, `clock`, `db` through `Deref`) and a client to it.
pub struct Auth {
    auth: AuthInternal,
    pub client: Client,
}

/// Field access (`auth.base`, `auth.clock`, `auth.db`) reads the handle.
impl std::ops::Deref for Auth {
    type Target = AuthInternal;

    fn deref(&self) -> &AuthInternal {
        &self.auth
    }
}

impl Auth {
    pub async fn spawn() -> Self {
        Self {
            auth: spawn_auth_internal().await,
            client: Client::new(),
        }
    }

    pub fn internal(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(&format!("/api/v1/internal{path}")))
            .header("x-service-key", SERVICE_KEY)
    }

    pub async fn upsert(&self, personas: Value) -> Value {
        let resp = self
            .internal(reqwest::Method::PUT, "/personas")
            .json(&json!({ "personas": personas }))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Upserts personas `{prefix}-{i}` and returns their ids in slug order.
    pub async fn seed(&self, prefix: &str, n: usize, locale: &str) -> Vec<uuid::Uuid> {
        let specs: Vec<Value> = (0..n)
            .map(|i| {
                json!({
                    "slug": format!("{prefix}-{i}"),
                    "name": format!("Persona {i}"),
                    "archetype": "tester",
                    "systemPrompt": "Du bist eine Testperson, die die App im Alltag ausprobiert.",
                    "moduleMix": { "todo": 0.6, "notes": 0.4 },
                    "tickCadence": "daily",
                    "locale": locale,
                })
            })
            .collect();
        self.upsert(Value::Array(specs)).await;
        let rows = self
            .sql_strings(&format!(
                "SELECT user_id::text AS s FROM personas WHERE slug LIKE '{prefix}-%' ORDER BY slug"
            ))
            .await;
        rows.into_iter().map(|s| s.parse().unwrap()).collect()
    }

    pub async fn profile(&self, id: uuid::Uuid) -> Value {
        self.internal(reqwest::Method::GET, &format!("/personas/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn sql_count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }

    pub async fn sql_strings(&self, sql: &str) -> Vec<String> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        #[derive(QueryableByName)]
        struct S {
            #[diesel(sql_type = diesel::sql_types::Text)]
            s: String,
        }
        let mut conn = self.db.conn().await;
        let rows: Vec<S> = diesel::sql_query(sql).load(&mut conn).await.unwrap();
        rows.into_iter().map(|r| r.s).collect()
    }
}

pub struct Runner {
    pub base: String,
    pub client: Client,
    pub runner: TickRunner<PersonaTick>,
    pub handle: ServiceHandle,
}

impl Runner {
    /// A runner against `auth` with the loop off; `extra` adds or overrides variables.
    pub async fn spawn(auth: &Auth, extra: &[(&str, &str)]) -> Self {
        Self::spawn_at(&auth.base, extra).await
    }

    /// A runner against auth-internal at `base`.
    pub async fn spawn_at(base: &str, extra: &[(&str, &str)]) -> Self {
        let mut env: HashMap<String, String> = [
            ("AUTH_INTERNAL_URL", base),
            ("MANA_SERVICE_KEY", SERVICE_KEY),
            ("PERSONA_SEED_SECRET", SEED_SECRET),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("TICK_INTERVAL_SECS", "0"),
            ("MANA_LOG_FORMAT", "pretty"),
            ("LLM_MAX_ATTEMPTS", "1"),
            ("SHUTDOWN_GRACE_SECS", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let settings = Settings::from_env(&env).unwrap();
        let app = Application::build(settings).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let runner = app.runner();
        let handle = app.handle();
        tokio::spawn(app.run_without_signals());
        Self {
            base,
            client: Client::new(),
            runner,
            handle,
        }
    }

    pub async fn tick_http(&self) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}/internal/tick", self.base))
            .header("x-service-key", SERVICE_KEY)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// Polls `cond` every 20 ms, at most ~10 s.
pub async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached");
}

/// Anthropic env for a fake server.
pub fn anthropic_env(fake: &fake_llm::FakeLlm) -> Vec<(&'static str, String)> {
    vec![
        ("LLM_PROVIDER", "anthropic".to_owned()),
        ("ANTHROPIC_API_KEY", "test-anthropic-key".to_owned()),
        ("ANTHROPIC_BASE_URL", fake.base_url()),
    ]
}

/// OpenAI env for a fake server.
pub fn openai_env(fake: &fake_llm::FakeLlm) -> Vec<(&'static str, String)> {
    vec![
        ("LLM_PROVIDER", "openai".to_owned()),
        ("OPENAI_API_KEY", "test-openai-key".to_owned()),
        ("OPENAI_BASE_URL", fake.openai_base_url()),
    ]
}

pub fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
