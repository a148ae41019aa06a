//! Test support: a fresh PostgreSQL database per test, cloned from a migrated
//! template.
//!
//! The template is named after a hash of `migrations/`, so changing a
//! migration makes a new one; it is built once under an advisory lock (safe
//! across parallel test processes, as nextest runs them) and marked
//! `IS_TEMPLATE`. Each test gets `CREATE DATABASE … TEMPLATE …` (milliseconds)
//! and the database is dropped when the [`TestDb`] is dropped. Test databases
//! left behind by killed runs are swept after an hour.
//!
//! The server is `TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`.
//!
//! Also here, so tests and benches do not copy them: [`auth`] (feature `auth-internal`:
//! auth-internal in-process, only for the crates that start it), [`proxy`] (a proxy
//! that loses answers), [`bench`] (statistics of the benches), [`otlp`] (a trace
//! receiver), [`free_port`] and [`Spawned`] (a binary as a child process).

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test support panics on broken set-up"
)]

#[cfg(feature = "auth-internal")]
pub mod auth;
pub mod bench;
pub mod proxy;

use std::{
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl,
    async_connection_wrapper::AsyncConnectionWrapper,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

pub mod otlp;

const PREFIX: &str = "mana_test_";

/// The server tests use.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn url_for(db: &str) -> String {
    let admin = admin_url();
    match admin.rfind('/') {
        Some(i) if admin[..i].contains('@') || admin[..i].ends_with(char::is_numeric) => {
            let (base, rest) = admin.split_at(i);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}/{db}{query}")
        }
        _ => format!("{admin}/{db}"),
    }
}

fn migrations_fingerprint() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read migrations dir") {
            let p = entry.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for f in files {
        ctx.update(f.strip_prefix(&dir).unwrap().to_string_lossy().as_bytes());
        ctx.update(&std::fs::read(&f).expect("read migration"));
    }
    hex::encode(&ctx.finish().as_ref()[..8])
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// A database of its own for one test, dropped with this value.
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// Create a fresh database with every migration applied.
    pub async fn new(migrations: EmbeddedMigrations) -> Self {
        let template = ensure_template(migrations).await;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let name = format!("{PREFIX}{secs}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&admin_url())
            .await
            .expect("connect to the test PostgreSQL server (TEST_DATABASE_URL)");
        diesel::sql_query(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        ))
        .execute(&mut admin)
        .await
        .expect("create test database");
        let url = url_for(&name);
        Self { name, url }
    }

    /// Create a fresh, empty database (no migrations), e.g. to test the
    /// migrations themselves.
    pub async fn empty() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let name = format!("{PREFIX}{secs}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&admin_url())
            .await
            .expect("connect to the test PostgreSQL server (TEST_DATABASE_URL)");
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create empty test database");
        let url = url_for(&name);
        Self { name, url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A direct connection (for assertions and fixtures).
    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect to test database")
    }

    /// The BIGINT column `n` of the one row `sql` returns (`SELECT count(*) AS n …`).
    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.conn().await;
        let row: Count = diesel::sql_query(sql)
            .get_result(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        row.n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url()).await {
                        let _ = diesel::sql_query(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut admin)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

async fn ensure_template(migrations: EmbeddedMigrations) -> String {
    let template = format!("mana_tpl_{}", migrations_fingerprint());
    let mut admin = AsyncPgConnection::establish(&admin_url())
        .await
        .expect("connect to the test PostgreSQL server (TEST_DATABASE_URL)");
    if template_ready(&mut admin, &template).await {
        return template;
    }
    diesel::sql_query("SELECT pg_advisory_lock(7423001)")
        .execute(&mut admin)
        .await
        .expect("advisory lock");
    if !template_ready(&mut admin, &template).await {
        let _ = diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS \"{template}\" WITH (FORCE)"
        ))
        .execute(&mut admin)
        .await;
        diesel::sql_query(format!("CREATE DATABASE \"{template}\""))
            .execute(&mut admin)
            .await
            .expect("create template database");
        let url = url_for(&template);
        tokio::task::spawn_blocking(move || {
            let mut conn =
                <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                    .expect("connect to template");
            conn.run_pending_migrations(migrations)
                .expect("migrate template");
        })
        .await
        .expect("migration thread");
        diesel::sql_query(format!("ALTER DATABASE \"{template}\" IS_TEMPLATE true"))
            .execute(&mut admin)
            .await
            .expect("mark template");
        sweep(&mut admin).await;
    }
    diesel::sql_query("SELECT pg_advisory_unlock(7423001)")
        .execute(&mut admin)
        .await
        .expect("advisory unlock");
    template
}

async fn template_ready(admin: &mut AsyncPgConnection, template: &str) -> bool {
    let rows: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1 AND datistemplate")
            .bind::<Text, _>(template)
            .load(admin)
            .await
            .expect("query pg_database");
    !rows.is_empty()
}

/// Drop test databases older than an hour (left by killed runs) and old templates.
async fn sweep(admin: &mut AsyncPgConnection) {
    let rows: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'mana_test_%' OR (datname LIKE 'mana_tpl_%' AND datistemplate)",
    )
    .load(admin)
    .await
    .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let current = format!("mana_tpl_{}", migrations_fingerprint());
    for Name { datname } in rows {
        let stale = if let Some(rest) = datname.strip_prefix(PREFIX) {
            rest.split('_')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|t| now.saturating_sub(t) > 3600)
        } else {
            datname != current
        };
        if stale {
            if datname.starts_with("mana_tpl_") {
                let _ =
                    diesel::sql_query(format!("ALTER DATABASE \"{datname}\" IS_TEMPLATE false"))
                        .execute(admin)
                        .await;
            }
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)"
            ))
            .execute(admin)
            .await;
        }
    }
}

/// A free TCP port on 127.0.0.1 in 40000–60000 (for a spawned binary, which is told
/// its port): probed by binding, then released.
pub fn free_port() -> u16 {
    let seed = u32::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..4]
            .try_into()
            .unwrap_or_default(),
    );
    for i in 0..2000u32 {
        let port =
            40_000 + u16::try_from((seed.wrapping_add(i.wrapping_mul(7919))) % 20_000).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 40000–60000");
}

/// A spawned binary, killed (SIGKILL) when dropped so a failing test leaves nothing.
pub struct Spawned {
    child: std::process::Child,
}

impl Spawned {
    /// Start `program` with exactly `env` added to a cleared environment (plus `PATH`).
    pub fn start(program: &std::path::Path, env: &[(&str, String)]) -> Self {
        let mut cmd = std::process::Command::new(program);
        cmd.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(std::process::Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Self { child }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal (`TERM`, `KILL`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -{name} failed");
    }

    /// Wait up to `limit` for the process to exit; its status, or `None` if it did not.
    pub async fn wait_exit(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a workspace binary next to the running test (`target/<profile>/<name>`),
/// built first with cargo if it is not there (when only another package was built).
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap_or_else(|| panic!("unexpected test path {}", exe.display()));
    let bin = dir.join(name);
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", name, "--bin", name])
            .status()
            .unwrap_or_else(|e| panic!("cargo build {name}: {e}"));
        assert!(status.success(), "cargo build -p {name} failed");
    }
    bin
}
