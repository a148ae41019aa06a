//! auth-internal in-process for tests and benches (feature `auth-internal`): the real
//! application on port 0 against a database of its own.
//!
//! Rules:
//! - [`spawn_auth_internal`] is the one start-up: a fresh migrated [`TestDb`],
//!   `Settings::for_tests`, a manual clock at [`wednesday_noon`]. [`Options`] changes
//!   exactly those three things (a tweak of the settings, another clock, a database
//!   the caller has already seeded) and nothing else.
//! - The server stops when the [`AuthInternal`] is dropped (at once, without
//!   waiting) or through [`AuthInternal::stop`] (gracefully, awaited); the database
//!   is dropped after the server.
//! - The keys are those of `Settings::for_tests` ([`SERVICE_KEY`], [`OLD_SERVICE_KEY`],
//!   [`SEED_SECRET`]), so callers name them instead of repeating the strings.
//! - The binary ([`spawn_binary`], for real signals and restarts) gets the same test
//!   settings as environment variables (`Settings::test_env`), on a port it is told.
//! - Dependency: this module depends on the auth-internal *library*. auth-internal's
//!   integration tests and benches may use it (a dev-dependency cycle cargo allows);
//!   its unit tests must not pass auth-internal types through it, because there the
//!   crate under test is a second copy whose types differ.

use std::{path::Path, sync::Arc, time::Duration};

use actix_web::{dev::ServerHandle, web};
use auth_internal::{AppState, Application, Settings};
use chrono::{DateTime, TimeZone, Utc};
use service_kit::Clock;

use crate::{Spawned, TestDb};

/// The current service key of `Settings::for_tests` (`X-Service-Key`).
pub const SERVICE_KEY: &str = "test-service-key-new";
/// The previous service key of `Settings::for_tests`, still accepted (key rotation).
pub const OLD_SERVICE_KEY: &str = "test-service-key-old";
/// `PERSONA_SEED_SECRET` of `Settings::for_tests` (persona passwords derive from it).
pub const SEED_SECRET: &str = "test-seed-secret";

/// Wednesday 2026-11-18 12:00 UTC: where the manual clock starts unless told otherwise.
pub fn wednesday_noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// auth-internal with the defaults: fresh database, test settings, manual clock at
/// [`wednesday_noon`].
pub async fn spawn_auth_internal() -> AuthInternal {
    Options::default().spawn().await
}

type Tweak = Box<dyn FnOnce(&mut Settings) + Send>;

/// What a start-up may change; [`Options::spawn`] starts it.
pub struct Options {
    clock: Clock,
    db: Option<TestDb>,
    tweaks: Vec<Tweak>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Clock::manual(wednesday_noon()),
            db: None,
            tweaks: Vec::new(),
        }
    }
}

impl Options {
    /// Change the test settings before the build (e.g. `|s| s.mcp.stateful = false`);
    /// several tweaks apply in order.
    #[must_use]
    pub fn settings(mut self, tweak: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// A manual clock standing at `at` (advance it through [`AuthInternal::clock`]).
    #[must_use]
    pub fn clock_at(self, at: DateTime<Utc>) -> Self {
        self.clock(Clock::manual(at))
    }

    /// Any clock, e.g. `Clock::System` where the server must keep real time (benches).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Serve this database (already migrated and seeded) instead of a fresh one.
    #[must_use]
    pub fn db(mut self, db: TestDb) -> Self {
        self.db = Some(db);
        self
    }

    /// Build and run the application; panics if it cannot start.
    pub async fn spawn(self) -> AuthInternal {
        let db = match self.db {
            Some(db) => db,
            None => TestDb::new(auth_internal::db::MIGRATIONS).await,
        };
        let mut settings = Settings::for_tests(db.url())
            .unwrap_or_else(|e| panic!("auth-internal test settings: {e}"));
        for tweak in self.tweaks {
            tweak(&mut settings);
        }
        let app = Application::build_with_clock(settings, self.clock.clone())
            .await
            .unwrap_or_else(|e| panic!("auth-internal did not start: {e}"));
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        AuthInternal {
            base,
            clock: self.clock,
            state,
            db: Arc::new(db),
            handle: Some(handle),
        }
    }
}

/// A running auth-internal; stopped when dropped.
pub struct AuthInternal {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base: String,
    /// The clock the server reads (manual unless [`Options::clock`] said otherwise).
    pub clock: Clock,
    /// The application state (pool, settings, lifecycle), shared with the server.
    pub state: web::Data<AppState>,
    /// Its database (for fixtures and assertions); dropped after the server.
    pub db: Arc<TestDb>,
    handle: Option<ServerHandle>,
}

impl AuthInternal {
    /// `base` + `path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stop gracefully and wait until the server has stopped (close the caller's
    /// keep-alive connections first, or the stop waits for them up to the grace).
    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop(true).await;
        }
    }
}

impl Drop for AuthInternal {
    fn drop(&mut self) {
        // Stop without waiting: Drop cannot await, and the database is dropped after
        // (with FORCE, so open connections do not hold it).
        if let Some(handle) = self.handle.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}

/// The auth-internal binary at `program` as a child process on `port` against `db`,
/// with the test settings; `extra` comes after them (and so overrides them). Killed
/// when dropped. Wait for it with [`wait_healthy`].
pub fn spawn_binary(program: &Path, db: &TestDb, port: u16, extra: &[(&str, String)]) -> Spawned {
    let mut env: Vec<(String, String)> = Settings::test_env(db.url());
    env.push(("BIND_ADDR".to_owned(), format!("127.0.0.1:{port}")));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    Spawned::start(program, &env)
}

/// Polls `GET {base}/health` every 20 ms until it answers 200; panics after `limit`.
pub async fn wait_healthy(base: &str, limit: Duration) {
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("auth-internal at {base} did not come up within {limit:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_are_those_of_the_test_settings() {
        let s = Settings::for_tests("postgres://u@127.0.0.1:5432/x").unwrap();
        let keys = s.service_keys();
        assert_eq!(keys.primary(), Some(OLD_SERVICE_KEY));
        assert!(keys.accepts(SERVICE_KEY.as_bytes()) && keys.accepts(OLD_SERVICE_KEY.as_bytes()));
        assert!(!keys.accepts(b"test-service-key"));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&s.persona_seed_secret),
            SEED_SECRET
        );
    }
}
