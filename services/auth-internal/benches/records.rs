//! Record-store hot paths against the real app over loopback HTTP: MCP tool
//! calls (stateful and stateless transport), a 1,000-change sync push, and
//! sync pull with an empty log versus 1M changes of other users.
//!
//! Run with `cargo bench -p auth-internal --bench records` (bench profile =
//! release). Rules of this program:
//! - it prints figures and never asserts timings: goals are reported as
//!   met / not met, so a slow machine gives numbers, not a failure;
//! - every loop is bounded by a count and the timed loops also by a
//!   wall-clock budget (the report says how many samples were taken);
//! - client and server share the machine (the bench runtime drives the
//!   clients, actix runs its own workers), as on a small box;
//! - every section gets a fresh database (`TestDb`, dropped at the end); the
//!   1M-change history is seeded directly with SQL (`generate_series`) and
//!   `VACUUM ANALYZE`d;
//! - to show where MCP time goes, the same tools are also timed in-process
//!   (registry + `PgRecordStore`, no HTTP), next to an HTTP floor (a route
//!   without the database) and a database floor (`SELECT 1`);
//! - the SQL statements each tool costs are counted, not written down: every
//!   connection of the process carries a diesel `Instrumentation` that counts
//!   the statements it sends (`BEGIN` and `COMMIT` included, so each is one
//!   round trip), read around a loop of one tool;
//! - `RECORDS_BENCH_STATELESS=0` leaves out the stateless MCP section and
//!   `RECORDS_BENCH_PULL_1M=0` the 1M-change pull section (to repeat the
//!   timed MCP and push figures quickly); `RECORDS_BENCH_MCP=0` leaves out
//!   both MCP sections (to repeat the sync figures alone).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use auth_internal::store::PgRecordStore;
use chrono::Utc;
use diesel::{
    QueryableByName,
    connection::{Instrumentation, InstrumentationEvent},
    sql_types::{BigInt, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use reqwest::{Client, header::CONTENT_TYPE};
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, ClientConfig},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Map, Value, json};
use service_kit::Clock;
use test_support::{
    auth::{AuthInternal, Options},
    bench::{Entry, Summary, ms, ratio, section},
};
use tools::{CallContext, Registry};
use types::sync::{PullResponse, PushResponse};
use uuid::Uuid;

type McpClient = RunningService<RoleClient, ClientConfig>;

/// Statements sent by every diesel connection of this process (see [`CountStatements`]).
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// Counts each statement a connection sends (one round trip each, unpipelined).
struct CountStatements;

impl Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if matches!(event, InstrumentationEvent::StartQuery { .. }) {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Statements sent so far (`AtomicU64::load` spelled out: diesel's
/// `RunQueryDsl::load` would be picked for the method call).
fn statements_sent() -> u64 {
    AtomicU64::load(&STATEMENTS, Ordering::Relaxed)
}

/// Statements per call of `tool` over `calls` sequential MCP calls on `client`
/// (the process's only traffic while it runs).
async fn statements_per_call(
    client: &McpClient,
    tool: &'static str,
    calls: usize,
) -> anyhow::Result<f64> {
    let before = statements_sent();
    for i in 0..calls {
        // Even call numbers of `mixed_call` create, odd ones list.
        let i = 2 * i + usize::from(tool == "todo_list");
        let (name, args) = mixed_call(77, i);
        let result = client
            .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
            .await
            .map_err(|e| anyhow!("{name}: {e}"))?;
        if result.is_error == Some(true) {
            bail!("{name} failed: {:?}", result.content);
        }
    }
    let sent = statements_sent() - before;
    Ok(sent as f64 / calls as f64)
}

const MCP_CLIENTS: usize = 8;
const MCP_WARMUP: usize = 40;
const MCP_SEQ_CALLS: usize = 2_000;
const MCP_CONC_CALLS_PER_CLIENT: usize = 400;
/// Wall-clock cap on one MCP loop (sequential, or all concurrent clients).
const MCP_BUDGET: Duration = Duration::from_secs(25);
const DIRECT_CALLS: usize = 400;
/// MCP calls of one tool whose SQL statements are counted.
const STATEMENT_CALLS: usize = 100;
const FLOOR_SAMPLES: usize = 400;
const PUSH_CHANGES: usize = 1_000;
const PUSH_WARMUP: usize = 2;
const PUSH_SAMPLES: usize = 20;
const PUSH_BUDGET: Duration = Duration::from_secs(60);
/// Changes in the pulling user's history (one page at `limit=500`).
const PULL_HISTORY: usize = 250;
const PULL_LIMIT: u32 = 500;
const PULL_WARMUP: usize = 30;
const PULL_SAMPLES: usize = 300;
const PULL_BUDGET: Duration = Duration::from_secs(30);
const OTHER_USERS: i64 = 1_000;
const OTHER_CHANGES: i64 = 1_000_000;
/// Every this many seeded rows one belongs to the interleaved user B instead.
const INTERLEAVE_EVERY: i64 = OTHER_CHANGES / PULL_HISTORY as i64;
const PLAN_MAX_LINES: usize = 14;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    // Before any connection exists: each one counts its statements.
    diesel::connection::set_default_instrumentation(|| Some(Box::new(CountStatements)))
        .map_err(|e| anyhow!("statement counter: {e}"))?;
    let profile = if cfg!(debug_assertions) {
        "debug (figures are not representative)"
    } else {
        "release"
    };
    println!(
        "records bench: {profile} build, {} cores, {} UTC",
        std::thread::available_parallelism().map_or(0, usize::from),
        Utc::now().format("%Y-%m-%d %H:%M"),
    );

    let mcp = section("RECORDS_BENCH_MCP");
    let stateful = if mcp {
        Some(mcp_section(true).await?)
    } else {
        None
    };
    let stateless = if mcp && section("RECORDS_BENCH_STATELESS") {
        Some(mcp_section(false).await?)
    } else {
        None
    };
    let sync = sync_section(section("RECORDS_BENCH_PULL_1M")).await?;

    for s in stateful.iter().chain(&stateless) {
        print_mcp(s);
    }
    print_sync(&sync);
    let path = test_support::bench::record(&summary_entries(
        stateful.as_ref(),
        stateless.as_ref(),
        &sync,
    ))?;
    println!();
    println!("summary written to {}", path.display());
    println!("total run time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The app on a fresh database, and a client to it.
struct Server {
    client: Client,
    auth: AuthInternal,
}

impl Server {
    async fn start(stateful: bool) -> anyhow::Result<Self> {
        let auth = Options::default()
            .clock(Clock::System)
            .settings(move |s| s.mcp.stateful = stateful)
            .spawn()
            .await;
        let client = Client::builder().timeout(Duration::from_secs(60)).build()?;
        Ok(Self { client, auth })
    }

    async fn stop(self) {
        let Self { client, auth } = self;
        // Keep-alive connections closed first: the graceful stop has nothing to wait for.
        drop(client);
        auth.stop().await;
    }

    /// Register a human user; (id, access token).
    async fn register(&self, email: &str) -> anyhow::Result<(Uuid, String)> {
        let resp = self
            .client
            .post(format!("{}/api/v1/auth/register", self.auth.base))
            .json(&json!({ "email": email, "password": "a good password" }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("register answered {status}: {body}");
        }
        let id = body["user"]["id"]
            .as_str()
            .context("user.id")?
            .parse()
            .context("user.id is a uuid")?;
        let token = body["accessToken"]
            .as_str()
            .context("accessToken")?
            .to_owned();
        Ok((id, token))
    }

    async fn mcp(&self, token: &str) -> anyhow::Result<McpClient> {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", self.auth.base))
                .auth_header(token.to_owned()),
        );
        ClientConfig::default()
            .serve(transport)
            .await
            .map_err(|e| anyhow!("MCP initialize: {e}"))
    }
}

// ---------------------------------------------------------------- MCP

/// Latencies (ms) of one loop, by tool.
#[derive(Default)]
struct CallTimes {
    create: Vec<f64>,
    list: Vec<f64>,
}

impl CallTimes {
    fn merge(&mut self, other: Self) {
        self.create.extend(other.create);
        self.list.extend(other.list);
    }

    fn all(&self) -> Vec<f64> {
        self.create.iter().chain(&self.list).copied().collect()
    }

    fn calls(&self) -> usize {
        self.create.len() + self.list.len()
    }
}

const PRIORITIES: [&str; 3] = ["low", "medium", "high"];

/// Arguments of call `i` of client `c`: even = `todo_create`, odd = `todo_list`.
fn mixed_call(c: usize, i: usize) -> (&'static str, Map<String, Value>) {
    let args = if i.is_multiple_of(2) {
        json!({
            "title": format!("Einkauf {c}-{i}: Hafermilch und Brot"),
            "priority": PRIORITIES[i % PRIORITIES.len()],
            "tags": ["bench"],
        })
    } else {
        json!({})
    };
    let tool = if i.is_multiple_of(2) {
        "todo_create"
    } else {
        "todo_list"
    };
    (tool, args.as_object().cloned().unwrap_or_default())
}

/// `calls` mixed calls on one MCP session (or fewer if `deadline` passes).
async fn mcp_loop(
    client: &McpClient,
    c: usize,
    first: usize,
    calls: usize,
    deadline: Instant,
) -> anyhow::Result<CallTimes> {
    let mut times = CallTimes::default();
    for i in first..first + calls {
        if Instant::now() > deadline {
            break;
        }
        let (tool, args) = mixed_call(c, i);
        let t = Instant::now();
        let result = client
            .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
            .await
            .map_err(|e| anyhow!("{tool}: {e}"))?;
        let elapsed = ms(t.elapsed());
        if result.is_error == Some(true) {
            bail!("{tool} failed: {:?}", result.content);
        }
        if tool == "todo_create" {
            times.create.push(elapsed);
        } else {
            times.list.push(elapsed);
        }
    }
    Ok(times)
}

struct McpStats {
    stateful: bool,
    http_floor: Summary,
    db_floor: Summary,
    direct: CallTimesSummary,
    /// SQL statements per MCP call (counted), todo_create / todo_list.
    statements: (f64, f64),
    seq: Throughput,
    conc: Throughput,
}

struct CallTimesSummary {
    create: Summary,
    list: Summary,
}

impl CallTimesSummary {
    fn of(t: CallTimes) -> Self {
        Self {
            create: Summary::of(t.create),
            list: Summary::of(t.list),
        }
    }
}

struct Throughput {
    clients: usize,
    calls: usize,
    secs: f64,
    all: Summary,
    by_tool: CallTimesSummary,
}

impl Throughput {
    fn new(clients: usize, times: CallTimes, d: Duration) -> Self {
        Self {
            clients,
            calls: times.calls(),
            secs: d.as_secs_f64(),
            all: Summary::of(times.all()),
            by_tool: CallTimesSummary::of(times),
        }
    }

    fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.calls as f64 / self.secs
        } else {
            0.0
        }
    }
}

async fn mcp_section(stateful: bool) -> anyhow::Result<McpStats> {
    let mode = if stateful { "stateful" } else { "stateless" };
    println!("MCP ({mode}): starting …");
    let server = Server::start(stateful).await?;
    let mut users = Vec::with_capacity(MCP_CLIENTS + 1);
    for u in 0..=MCP_CLIENTS {
        users.push(
            server
                .register(&format!("mcp-{mode}-{u}@records.bench.invalid"))
                .await?,
        );
    }

    // Floors: HTTP without the database, and one database round trip.
    let jwks = format!("{}/.well-known/jwks.json", server.auth.base);
    let mut http_floor = Vec::with_capacity(FLOOR_SAMPLES);
    for i in 0..FLOOR_SAMPLES + 20 {
        let t = Instant::now();
        let resp = server.client.get(&jwks).send().await?;
        let status = resp.status();
        resp.bytes().await?;
        if !status.is_success() {
            bail!("jwks answered {status}");
        }
        if i >= 20 {
            http_floor.push(ms(t.elapsed()));
        }
    }
    let mut conn = server.auth.db.conn().await;
    let mut db_floor = Vec::with_capacity(FLOOR_SAMPLES);
    for i in 0..FLOOR_SAMPLES + 20 {
        let t = Instant::now();
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        if i >= 20 {
            db_floor.push(ms(t.elapsed()));
        }
    }
    drop(conn);

    // The same tools in-process: registry + PgRecordStore, no HTTP, no MCP.
    let direct_user = users[MCP_CLIENTS].0;
    let store = PgRecordStore::new(server.auth.state.clone(), direct_user, "bench", "mcp");
    let registry = Registry::global();
    let mut direct = CallTimes::default();
    for i in 0..MCP_WARMUP + DIRECT_CALLS {
        let (tool, args) = mixed_call(99, i);
        let ctx = CallContext::new(Utc::now());
        let t = Instant::now();
        registry
            .call(tool, Value::Object(args), &store, &ctx)
            .await
            .map_err(|e| anyhow!("direct {tool}: {e}"))?;
        let elapsed = ms(t.elapsed());
        if i >= MCP_WARMUP {
            if tool == "todo_create" {
                direct.create.push(elapsed);
            } else {
                direct.list.push(elapsed);
            }
        }
    }

    // Sequential: one session.
    let first = server.mcp(&users[0].1).await?;
    mcp_loop(
        &first,
        0,
        0,
        MCP_WARMUP,
        Instant::now() + Duration::from_secs(30),
    )
    .await?;
    let t = Instant::now();
    let times = mcp_loop(
        &first,
        0,
        MCP_WARMUP,
        MCP_SEQ_CALLS,
        Instant::now() + MCP_BUDGET,
    )
    .await?;
    let seq = Throughput::new(1, times, t.elapsed());
    let statements = (
        statements_per_call(&first, "todo_create", STATEMENT_CALLS).await?,
        statements_per_call(&first, "todo_list", STATEMENT_CALLS).await?,
    );
    println!(
        "  sequential: {} calls, {:.0} calls/s",
        seq.calls,
        seq.per_sec()
    );

    // Concurrent: one session per user, all connected and warmed up first.
    let mut others = Vec::with_capacity(MCP_CLIENTS);
    for (_, token) in &users[1..MCP_CLIENTS] {
        others.push(server.mcp(token).await?);
    }
    let mut warm = Vec::with_capacity(MCP_CLIENTS);
    for (c, client) in (1..).zip(others) {
        warm.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            mcp_loop(&client, c, 0, MCP_WARMUP, deadline)
                .await
                .map(|_| client)
        }));
    }
    let mut clients = Vec::with_capacity(MCP_CLIENTS);
    clients.push(first);
    for task in warm {
        clients.push(task.await??);
    }
    let deadline = Instant::now() + MCP_BUDGET;
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(MCP_CLIENTS);
    for (c, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let times = mcp_loop(
                &client,
                c,
                MCP_WARMUP + MCP_SEQ_CALLS,
                MCP_CONC_CALLS_PER_CLIENT,
                deadline,
            )
            .await;
            (client, times)
        }));
    }
    let mut times = CallTimes::default();
    let mut done = Vec::with_capacity(MCP_CLIENTS);
    for task in tasks {
        let (client, result) = task.await?;
        times.merge(result?);
        done.push(client);
    }
    let conc = Throughput::new(MCP_CLIENTS, times, t.elapsed());
    println!(
        "  {MCP_CLIENTS} concurrent: {} calls, {:.0} calls/s",
        conc.calls,
        conc.per_sec()
    );
    for client in done {
        // A session that fails to close cleanly does not matter here.
        let _ = client.cancel().await;
    }
    server.stop().await;
    Ok(McpStats {
        stateful,
        http_floor: Summary::of(http_floor),
        db_floor: Summary::of(db_floor),
        direct: CallTimesSummary::of(direct),
        statements,
        seq,
        conc,
    })
}

// ---------------------------------------------------------------- sync

struct SyncStats {
    push: Summary,
    /// The floor: one multi-row INSERT of as many rows into each of
    /// `sync_changes` and `records` (no merge, no HTTP).
    raw_insert: Summary,
    push_applied: u32,
    pull_empty: Summary,
    /// The pull figures over a 1M-change log (`None`: section left out).
    pull_1m: Option<Pull1m>,
}

struct Pull1m {
    pull_seeded: Summary,
    pull_interleaved: Summary,
    log_rows: i64,
    seed_secs: f64,
    vacuum_secs: f64,
    plan_contiguous: Result<Vec<String>, String>,
    plan_interleaved: Result<Vec<String>, String>,
}

async fn sync_section(pull_1m: bool) -> anyhow::Result<SyncStats> {
    println!("sync: starting …");
    let server = Server::start(true).await?;
    let (_, token_a) = server.register("pull-a@records.bench.invalid").await?;
    let (user_b, token_b) = server.register("pull-b@records.bench.invalid").await?;
    let (_, token_c) = server.register("push-c@records.bench.invalid").await?;

    // User A's small history: one push, so its rows are contiguous in the log.
    let history = push_body("a", 0, PULL_HISTORY)?;
    push_once(&server, &token_a, history).await?;

    // (a) pull with an otherwise empty log.
    let pull_empty = pull_latency(&server, &token_a, PULL_HISTORY).await?;
    println!("  pull (empty log): p50 {:.2} ms", pull_empty.p50);

    // Push 1,000 changes per request (user C); pushes after the first also
    // update a fifth of the previous push's records.
    let bodies = (0..PUSH_WARMUP + PUSH_SAMPLES)
        .map(|k| push_body("c", k, PUSH_CHANGES))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start = Instant::now();
    let mut push = Vec::with_capacity(PUSH_SAMPLES);
    let mut push_applied = 0;
    for (k, body) in bodies.into_iter().enumerate() {
        if start.elapsed() > PUSH_BUDGET {
            break;
        }
        let t = Instant::now();
        let answer = push_once(&server, &token_c, body).await?;
        if k >= PUSH_WARMUP {
            push.push(ms(t.elapsed()));
            push_applied = answer.applied;
        }
    }
    let push = Summary::of(push);
    println!("  push ({PUSH_CHANGES} changes): p50 {:.0} ms", push.p50);
    let raw_insert = raw_insert_latency(&server, user_b).await?;
    println!(
        "  raw INSERT ({PUSH_CHANGES} rows × 2 tables): p50 {:.1} ms",
        raw_insert.p50
    );

    let pull_1m = if pull_1m {
        Some(pull_1m_section(&server, user_b, &token_a, &token_b).await?)
    } else {
        None
    };
    server.stop().await;
    Ok(SyncStats {
        push,
        raw_insert,
        push_applied,
        pull_empty,
        pull_1m,
    })
}

/// (b) 1M changes of 1,000 other users, plus user B's history spread
/// through them (one row every INTERLEAVE_EVERY: worst-case heap locality).
async fn pull_1m_section(
    server: &Server,
    user_b: Uuid,
    token_a: &str,
    token_b: &str,
) -> anyhow::Result<Pull1m> {
    println!("  seeding {OTHER_CHANGES} changes of {OTHER_USERS} other users …");
    let mut conn = server.auth.db.conn().await;
    let t = Instant::now();
    seed_log(&mut conn, user_b).await?;
    let seed_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for table in ["users", "sync_changes", "records"] {
        diesel::sql_query(format!("VACUUM ANALYZE {table}"))
            .execute(&mut conn)
            .await?;
    }
    let vacuum_secs = t.elapsed().as_secs_f64();
    let log_rows = diesel::sql_query("SELECT count(*) AS n FROM sync_changes")
        .get_result::<CountRow>(&mut conn)
        .await?
        .n;
    println!("  seeded in {seed_secs:.1} s, VACUUM ANALYZE {vacuum_secs:.1} s");

    let pull_seeded = pull_latency(server, token_a, PULL_HISTORY).await?;
    let pull_interleaved = pull_latency(server, token_b, PULL_HISTORY).await?;
    let user_a = user_id_of(&mut conn, "pull-a@records.bench.invalid").await?;
    let plan_contiguous = explain_pull(&mut conn, user_a).await;
    let plan_interleaved = explain_pull(&mut conn, user_b).await;
    drop(conn);
    Ok(Pull1m {
        pull_seeded,
        pull_interleaved,
        log_rows,
        seed_secs,
        vacuum_secs,
        plan_contiguous,
        plan_interleaved,
    })
}

/// Push body `k` of client `who` with `n` changes, serialized. Stamps are
/// canonical HLC stamps of now, counter = position in the push.
fn push_body(who: &str, k: usize, n: usize) -> anyhow::Result<Vec<u8>> {
    let now_ms = Utc::now().timestamp_millis();
    let node = format!("bench-{who}-phone");
    let changes = (0..n)
        .map(|i| {
            let stamp = lww::Stamp::new(now_ms, u32::try_from(i)?, node.clone())?.to_string();
            // Record i+1 of the previous push was an insert (i % 5 == 0 here).
            Ok(if k > 0 && i.is_multiple_of(5) {
                json!({
                    "appId": "todo", "table": "tasks", "recordId": format!("{who}-{}-{}", k - 1, i + 1),
                    "op": "update", "data": {"isCompleted": true}, "fieldStamps": {"isCompleted": stamp},
                })
            } else {
                json!({
                    "appId": "todo", "table": "tasks", "recordId": format!("{who}-{k}-{i}"),
                    "op": "insert",
                    "data": {"title": format!("Aufgabe {k}-{i}: Fahrrad reparieren"), "isCompleted": false,
                             "priority": "medium", "tags": ["bench"]},
                    "stamp": stamp,
                })
            })
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;
    Ok(serde_json::to_vec(
        &json!({ "clientId": format!("bench-{who}-phone"), "changes": changes }),
    )?)
}

async fn push_once(server: &Server, token: &str, body: Vec<u8>) -> anyhow::Result<PushResponse> {
    let resp = server
        .client
        .post(format!("{}/api/v1/sync/push", server.auth.base))
        .bearer_auth(token)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        bail!(
            "push answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// Pull latency of one user's first page; each answer must hold `expect` changes.
/// The raw-INSERT baseline of a push: `PUSH_CHANGES` rows into `sync_changes`
/// and `records` with one `INSERT … SELECT generate_series` each, committed
/// (the rows are removed again afterwards).
async fn raw_insert_latency(server: &Server, user: Uuid) -> anyhow::Result<Summary> {
    let mut conn = server.auth.db.conn().await;
    let mut samples = Vec::with_capacity(PUSH_SAMPLES);
    for k in 0..PUSH_WARMUP + PUSH_SAMPLES {
        let t = Instant::now();
        diesel::sql_query(format!(
            "WITH c AS (INSERT INTO sync_changes (user_id, app_id, table_name, record_id, op, data, \
                 field_timestamps, stamp, client_id, origin, created_at) \
               SELECT $1, 'todo', 'tasks', 'raw{k}-' || g, 'insert', jsonb_build_object('title', 't' || g), \
                 jsonb_build_object('title', '2026-11-18T10:00:00Z'), '2026-11-18T10:00:00Z', 'raw', 'client', now() \
               FROM generate_series(1, {PUSH_CHANGES}) g RETURNING id, record_id, data, field_timestamps) \
             INSERT INTO records (user_id, app_id, table_name, record_id, data, field_timestamps, \
                 created_stamp, deleted, last_change_id, created_at, updated_at) \
             SELECT $1, 'todo', 'tasks', record_id, data, field_timestamps, '2026-11-18T10:00:00Z', false, id, now(), now() FROM c"
        ))
        .bind::<SqlUuid, _>(user)
        .execute(&mut conn)
        .await?;
        if k >= PUSH_WARMUP {
            samples.push(ms(t.elapsed()));
        }
    }
    for sql in [
        "DELETE FROM records WHERE user_id = $1 AND record_id LIKE 'raw%'",
        "DELETE FROM sync_changes WHERE user_id = $1 AND record_id LIKE 'raw%'",
    ] {
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(user)
            .execute(&mut conn)
            .await?;
    }
    Ok(Summary::of(samples))
}

async fn pull_latency(server: &Server, token: &str, expect: usize) -> anyhow::Result<Summary> {
    let url = format!(
        "{}/api/v1/sync/pull?since=0&limit={PULL_LIMIT}",
        server.auth.base
    );
    let start = Instant::now();
    let mut samples = Vec::with_capacity(PULL_SAMPLES);
    for i in 0..PULL_WARMUP + PULL_SAMPLES {
        if start.elapsed() > PULL_BUDGET {
            break;
        }
        let t = Instant::now();
        let resp = server.client.get(&url).bearer_auth(token).send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let elapsed = ms(t.elapsed());
        if !status.is_success() {
            bail!(
                "pull answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let page: PullResponse = serde_json::from_slice(&bytes)?;
        if page.changes.len() != expect {
            bail!(
                "pull returned {} changes, expected {expect}",
                page.changes.len()
            );
        }
        if i >= PULL_WARMUP {
            samples.push(elapsed);
        }
    }
    Ok(Summary::of(samples))
}

/// 1,000 other users and `OTHER_CHANGES` of their changes, with user B's
/// `PULL_HISTORY` changes interleaved; same shapes as a client push writes.
async fn seed_log(conn: &mut AsyncPgConnection, user_b: Uuid) -> anyhow::Result<()> {
    diesel::sql_query("SET synchronous_commit = off")
        .execute(conn)
        .await?;
    diesel::sql_query(
        r"INSERT INTO users (id, email, password_hash, kind, created_at)
          SELECT md5('bench-sync-user-' || u)::uuid, 'sync-' || u || '@records.bench.invalid',
                 'bench-not-a-real-hash', 'human', now() - interval '30 days'
          FROM generate_series(1, $1) u",
    )
    .bind::<BigInt, _>(OTHER_USERS)
    .execute(conn)
    .await?;
    diesel::sql_query(
        r#"INSERT INTO sync_changes (user_id, app_id, table_name, record_id, op, data,
                                    field_timestamps, stamp, client_id, origin, created_at)
          SELECT CASE WHEN g % $3 = 0 THEN $4
                      ELSE md5('bench-sync-user-' || (1 + g % $1))::uuid END,
                 'todo', 'tasks', 'seed-' || (g / 5),
                 CASE WHEN g % 5 = 0 THEN 'insert' ELSE 'update' END,
                 jsonb_build_object('title', 'Aufgabe ' || g || ': Fahrrad reparieren',
                                    'isCompleted', g % 2 = 0, 'priority', 'medium',
                                    'tags', '["bench"]'::jsonb),
                 jsonb_build_object('title', s, 'isCompleted', s, 'priority', s, 'tags', s),
                 s, 'seed-phone', 'client', now() - interval '1 day'
          FROM (SELECT g, lpad(((extract(epoch FROM now()) * 1000)::bigint - 86400000)::text, 15, '0')
                          || '-' || lpad(g::text, 10, '0') || '-seed-phone' AS s
                FROM generate_series(1, $2) g) x"#,
    )
    .bind::<BigInt, _>(OTHER_USERS)
    .bind::<BigInt, _>(OTHER_CHANGES + PULL_HISTORY as i64)
    .bind::<BigInt, _>(INTERLEAVE_EVERY)
    .bind::<SqlUuid, _>(user_b)
    .execute(conn)
    .await?;
    Ok(())
}

async fn user_id_of(conn: &mut AsyncPgConnection, email: &str) -> anyhow::Result<Uuid> {
    Ok(
        diesel::sql_query("SELECT id FROM users WHERE lower(email) = lower($1)")
            .bind::<Text, _>(email)
            .get_result::<IdRow>(conn)
            .await?
            .id,
    )
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the pull query as `changes_since` builds it.
async fn explain_pull(conn: &mut AsyncPgConnection, user: Uuid) -> Result<Vec<String>, String> {
    diesel::sql_query(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT id, app_id, table_name, record_id, op, data, \
         field_timestamps, client_id, origin, created_at FROM sync_changes \
         WHERE user_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<BigInt, _>(0_i64)
    .bind::<BigInt, _>(i64::from(PULL_LIMIT) + 1)
    .load::<PlanLine>(conn)
    .await
    .map(|lines| lines.into_iter().map(|l| l.line).collect())
    .map_err(|e| format!("EXPLAIN failed: {e}"))
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

// ---------------------------------------------------------------- report

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn print_mcp(s: &McpStats) {
    let mode = if s.stateful {
        "stateful (sessions)"
    } else {
        "stateless"
    };
    println!();
    println!("== MCP tool calls, {mode}: alternating todo_create / todo_list ==");
    for (name, t) in [("sequential", &s.seq), ("concurrent", &s.conc)] {
        println!(
            "   {name:<10} {} client(s): {:>6.0} calls/s ({} calls in {:.1} s)  {}",
            t.clients,
            t.per_sec(),
            t.calls,
            t.secs,
            t.all.line()
        );
        println!(
            "              create p50 {:.2} / p99 {:.2} ms   list p50 {:.2} / p99 {:.2} ms",
            t.by_tool.create.p50, t.by_tool.create.p99, t.by_tool.list.p50, t.by_tool.list.p99
        );
        println!(
            "              goal ≥ 1,500 calls/s: {}; goal p99 ≤ 20 ms: {}",
            met(t.per_sec() >= 1_500.0),
            met(t.all.p99 <= 20.0)
        );
    }
    println!("   where the time goes (sequential p50s):");
    println!(
        "     HTTP floor (GET /.well-known/jwks.json, no DB)  {}",
        s.http_floor.line()
    );
    println!(
        "     DB round trip (SELECT 1, direct connection)     {}",
        s.db_floor.line()
    );
    println!(
        "     in-process todo_create (registry + store)      {}",
        s.direct.create.line()
    );
    println!(
        "     in-process todo_list   (registry + store)      {}",
        s.direct.list.line()
    );
    let create_rest = s.seq.by_tool.create.p50 - s.direct.create.p50;
    let list_rest = s.seq.by_tool.list.p50 - s.direct.list.p50;
    println!(
        "     MCP minus in-process: create {create_rest:.2} ms, list {list_rest:.2} ms \
         (HTTP + bearer check + rmcp JSON-RPC/SSE + client)"
    );
    let (create, list) = s.statements;
    println!(
        "     SQL statements per call (counted, BEGIN/COMMIT included): todo_create {create:.2}, \
         todo_list {list:.2}; at the DB floor that is ≈ {:.2} / {:.2} ms",
        create * s.db_floor.p50,
        list * s.db_floor.p50
    );
}

fn print_sync(s: &SyncStats) {
    println!();
    println!(
        "== sync push: {PUSH_CHANGES} changes per POST /api/v1/sync/push (80 % inserts, 20 % updates) =="
    );
    println!(
        "   {}  ({:.0} changes/s at p50; {} applied per push)",
        s.push.line(),
        ratio(PUSH_CHANGES as f64 * 1000.0, s.push.p50),
        s.push_applied
    );
    println!(
        "   raw INSERT baseline {}  (push / raw = {:.2}×; goal ≥ 20,000 changes/s: {})",
        s.raw_insert.line(),
        ratio(s.push.p50, s.raw_insert.p50),
        met(PUSH_CHANGES as f64 * 1000.0 / s.push.p50 >= 20_000.0)
    );
    println!();
    println!(
        "== sync pull: GET /api/v1/sync/pull?since=0&limit={PULL_LIMIT}, {PULL_HISTORY}-change history =="
    );
    println!(
        "   (a) otherwise empty log              {}",
        s.pull_empty.line()
    );
    let Some(p) = &s.pull_1m else {
        println!("   (b) 1M-change log: left out (RECORDS_BENCH_PULL_1M=0)");
        return;
    };
    println!(
        "   (b) +{OTHER_CHANGES} changes of {OTHER_USERS} users   {}   [log {} rows; seed {:.1} s + VACUUM ANALYZE {:.1} s]",
        p.pull_seeded.line(),
        p.log_rows,
        p.seed_secs,
        p.vacuum_secs
    );
    println!(
        "   (b') user spread through the 1M       {}",
        p.pull_interleaved.line()
    );
    let r50 = ratio(p.pull_seeded.p50, s.pull_empty.p50);
    let r99 = ratio(p.pull_seeded.p99, s.pull_empty.p99);
    println!(
        "   (b)/(a): p50 {r50:.2}×, p99 {r99:.2}× (goal within 1.5×: {});  (b')/(a): p50 {:.2}×, p99 {:.2}×",
        met(r50 <= 1.5 && r99 <= 1.5),
        ratio(p.pull_interleaved.p50, s.pull_empty.p50),
        ratio(p.pull_interleaved.p99, s.pull_empty.p99),
    );
    for (name, plan) in [
        ("contiguous user (b)", &p.plan_contiguous),
        ("spread user (b')", &p.plan_interleaved),
    ] {
        println!("   EXPLAIN (ANALYZE, BUFFERS), {name}:");
        match plan {
            Ok(lines) => {
                for line in lines.iter().take(PLAN_MAX_LINES) {
                    println!("     {line}");
                }
            }
            Err(why) => println!("     {why}"),
        }
    }
}

/// The figures of this bench for `summary.json`.
fn summary_entries(
    stateful: Option<&McpStats>,
    stateless: Option<&McpStats>,
    sync: &SyncStats,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for s in stateful.into_iter().chain(stateless) {
        let mode = if s.stateful { "stateful" } else { "stateless" };
        out.push(
            Entry::new(
                format!("mcp.{mode}.todo_create.seq_p50"),
                s.seq.by_tool.create.p50,
                "ms",
            )
            .against("in_process.todo_create.p50", s.direct.create.p50),
        );
        out.push(
            Entry::new(
                format!("mcp.{mode}.todo_list.seq_p50"),
                s.seq.by_tool.list.p50,
                "ms",
            )
            .against("in_process.todo_list.p50", s.direct.list.p50),
        );
        out.push(Entry::new(
            format!("mcp.{mode}.todo_create.statements"),
            s.statements.0,
            "statements/call",
        ));
        out.push(Entry::new(
            format!("mcp.{mode}.todo_list.statements"),
            s.statements.1,
            "statements/call",
        ));
        out.push(Entry::new(
            format!("mcp.{mode}.seq.calls_per_s"),
            s.seq.per_sec(),
            "calls/s",
        ));
        out.push(Entry::new(
            format!("mcp.{mode}.conc{}.calls_per_s", s.conc.clients),
            s.conc.per_sec(),
            "calls/s",
        ));
        out.push(Entry::new(
            format!("mcp.{mode}.conc{}.p99", s.conc.clients),
            s.conc.all.p99,
            "ms",
        ));
    }
    out.push(
        Entry::new(format!("sync.push{PUSH_CHANGES}.p50"), sync.push.p50, "ms")
            .against(format!("raw_insert{PUSH_CHANGES}.p50"), sync.raw_insert.p50),
    );
    out.push(Entry::new(
        "sync.push.changes_per_s",
        ratio(PUSH_CHANGES as f64 * 1000.0, sync.push.p50),
        "changes/s",
    ));
    if let Some(p) = &sync.pull_1m {
        out.push(
            Entry::new("sync.pull.seeded1m.p50", p.pull_seeded.p50, "ms")
                .against("sync.pull.empty.p50", sync.pull_empty.p50),
        );
    }
    out
}
