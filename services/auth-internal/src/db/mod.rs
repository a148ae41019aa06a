//! The connection pool and the embedded migrations.
//!
//! Every pooled connection gets `statement_timeout`, so one runaway query
//! cannot hold a connection forever. Waiting for a pooled connection is
//! bounded too; both surface as 503 through [`crate::error::AppError`].
//!
//! Rules:
//! - [`TABLE_HOOKS`] is the one list of record tables that keep a derived
//!   index in the same transaction as each change; `records` runs them
//!   without naming any table.

pub mod cached;
pub mod console;
pub mod missions;
pub mod oauth;
pub mod operators;
pub mod personas;
pub mod records;
pub mod reports;
pub mod runs;
pub mod schema;
pub mod tokens;
pub mod users;

use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
    async_connection_wrapper::AsyncConnectionWrapper,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod, deadpool::Pool,
    },
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;

use crate::config::DatabaseSettings;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Hooks run by `records::append_if` for the records of their table.
pub const TABLE_HOOKS: &[records::TableHook] = &[missions::SCHEDULE_HOOK];

pub type PgPool = Pool<AsyncPgConnection>;
pub type PooledConn = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not build the connection pool: {0}")]
    Pool(String),
    #[error("could not connect to the database: {0}")]
    Connect(String),
    #[error("migrations failed: {0}")]
    Migration(String),
}

/// Build the pool (lazily connecting).
pub fn build_pool(url: &str, settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    let timeout_ms = settings.statement_timeout_ms;
    // Validated against a fixed list in `Settings`, so safe to interpolate.
    let synchronous_commit = settings.synchronous_commit.clone();
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    // No `SELECT 1` per checkout (a round trip on every request): a pooled
    // connection is checked for an open or broken transaction only; a
    // connection the server closed fails its next query and is discarded.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        let synchronous_commit = synchronous_commit.clone();
        async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            conn.batch_execute(&format!(
                "SET statement_timeout = {timeout_ms}; SET synchronous_commit = {synchronous_commit}"
            ))
            .await
            .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    let acquire = Duration::from_millis(settings.acquire_timeout_ms);
    Pool::builder(manager)
        .max_size(settings.max_connections)
        .wait_timeout(Some(acquire))
        .create_timeout(Some(acquire))
        .recycle_timeout(Some(acquire))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Run pending migrations on a dedicated connection, retrying the connection
/// until `startup_timeout` passes (Postgres may still be starting).
pub async fn run_migrations(url: &str, startup_timeout: Duration) -> Result<(), DbError> {
    let deadline = tokio::time::Instant::now() + startup_timeout;
    loop {
        let url_owned = url.to_owned();
        let attempt = tokio::task::spawn_blocking(move || -> Result<(), DbError> {
            let mut conn =
                <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(
                    &url_owned,
                )
                .map_err(|e| DbError::Connect(e.to_string()))?;
            // Replicas starting together take turns: the first migrates, the others
            // find nothing pending. The lock ends with the session.
            diesel::RunQueryDsl::execute(
                diesel::sql_query("SELECT pg_advisory_lock(7423000)"),
                &mut conn,
            )
            .map_err(|e| DbError::Migration(e.to_string()))?;
            conn.run_pending_migrations(MIGRATIONS)
                .map(|_| ())
                .map_err(|e| DbError::Migration(e.to_string()))
        })
        .await
        .map_err(|e| DbError::Migration(e.to_string()))?;
        match attempt {
            Err(DbError::Connect(e)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error.cause = %e, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

/// `SELECT 1` within `timeout`: is the database usable right now?
pub async fn ping(pool: &PgPool, timeout: Duration) -> bool {
    let check = async {
        let mut conn = pool.get().await.ok()?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await.ok()
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Some(_)))
}
