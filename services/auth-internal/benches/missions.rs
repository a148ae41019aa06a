//! Mission claim cost against change-log size: claim latency (HTTP, limit 10,
//! claim + release as a runner's steady state) with 10k missions and 100k vs
//! 1M rows in `sync_changes`, and, on the same data, the original's approach:
//! replay every `ai/aiMissions` change of the log, merge, filter the due ones.
//!
//! `cargo bench -p auth-internal --bench missions` (release). Prints figures;
//! asserts nothing about time. Every loop is bounded.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "benchmark program")]

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chrono::Utc;
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Jsonb, Nullable, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use service_kit::Clock;
use test_support::{
    TestDb,
    auth::{Options, SERVICE_KEY as KEY},
    bench::{Entry, percentile},
};
use uuid::Uuid;

const MISSIONS: i64 = 10_000;
const USERS: i64 = 1_000;
const SAMPLES: usize = 200;
const REPLAYS: usize = 5;

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
}

/// Seed users, 10k due missions (records + schedule) and `log_rows` changes,
/// 10 % of them mission updates, the rest other apps.
async fn seed(conn: &mut AsyncPgConnection, log_rows: i64) {
    exec(conn, &format!(
        "INSERT INTO users (id, email, password_hash, kind) \
         SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'u' || g || '@bench.test', 'x', 'human' \
         FROM generate_series(1, {USERS}) g")).await;
    let mission = "jsonb_build_object('title', 'M' || g, 'objective', 'o', 'conceptMarkdown', '', 'state', 'active', \
        'cadence', jsonb_build_object('kind', 'interval', 'everyMinutes', 60), \
        'nextRunAt', to_char(now() - (g % 600) * interval '1 minute', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
        'inputs', '[]'::jsonb, 'iterations', '[]'::jsonb)";
    let user =
        format!("('00000000-0000-4000-8000-' || lpad(((g % {USERS}) + 1)::text, 12, '0'))::uuid");
    exec(conn, &format!(
        "INSERT INTO records (user_id, app_id, table_name, record_id, data, field_timestamps, created_stamp, deleted, last_change_id, created_at, updated_at) \
         SELECT {user}, 'ai', 'aiMissions', 'm' || g, {mission}, '{{}}'::jsonb, NULL, false, g, now(), now() \
         FROM generate_series(1, {MISSIONS}) g")).await;
    exec(conn, &format!(
        "INSERT INTO mission_schedule (user_id, mission_id, active, next_run_at) \
         SELECT {user}, 'm' || g, true, now() - (g % 600) * interval '1 minute' FROM generate_series(1, {MISSIONS}) g")).await;
    let stamp = "lpad((extract(epoch FROM now())::bigint * 1000 - 100000000 + g)::text, 15, '0') || '-' || lpad('0', 10, '0') || '-seed'";
    exec(conn, &format!(
        "INSERT INTO sync_changes (user_id, app_id, table_name, record_id, op, data, field_timestamps, stamp, client_id, origin, created_at) \
         SELECT {user}, \
                CASE WHEN g % 10 = 0 THEN 'ai' ELSE 'todo' END, \
                CASE WHEN g % 10 = 0 THEN 'aiMissions' ELSE 'tasks' END, \
                CASE WHEN g % 10 = 0 THEN 'm' || ((g / 10) % {MISSIONS} + 1) ELSE 't' || g END, \
                CASE WHEN g % 10 = 0 AND g > {MISSIONS} * 10 THEN 'update' ELSE 'insert' END, \
                CASE WHEN g % 10 = 0 THEN {mission_g} ELSE jsonb_build_object('title', 'todo ' || g) END, \
                '{{}}'::jsonb, {stamp}, 'bench', 'client', now() - interval '30 days' + g * interval '1 millisecond' \
         FROM generate_series(1, {log_rows}) g",
        mission_g = mission.replace("'M' || g", "'M' || ((g / 10) % 10000 + 1)"))).await;
    exec(conn, "VACUUM ANALYZE").await;
}

#[derive(QueryableByName)]
struct LogRow {
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = Text)]
    record_id: String,
    #[diesel(sql_type = Text)]
    op: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    data: Option<Value>,
    #[diesel(sql_type = Text)]
    stamp: String,
}

/// The original's tick: read every mission change ever written, merge, filter due.
async fn replay(conn: &mut AsyncPgConnection) -> usize {
    let rows: Vec<LogRow> = diesel::sql_query(
        "SELECT user_id, record_id, op, data, stamp FROM sync_changes \
         WHERE app_id = 'ai' AND table_name = 'aiMissions' ORDER BY id",
    )
    .load(conn)
    .await
    .unwrap();
    let mut states: HashMap<(Uuid, String), lww::RecordState> = HashMap::new();
    for r in rows {
        let stamp: lww::Stamp = r.stamp.parse().unwrap();
        let fields = match r.data {
            Some(Value::Object(m)) => m.into_iter().map(|(k, v)| (k, v, stamp.clone())).collect(),
            _ => Vec::new(),
        };
        let change = lww::Change {
            op: r.op.parse().unwrap(),
            fields,
            stamp,
        };
        lww::apply(states.entry((r.user_id, r.record_id)).or_default(), &change);
    }
    let now = Utc::now().to_rfc3339();
    states
        .values()
        .filter(|s| s.is_visible())
        .filter(|s| {
            let d = s.data();
            d.get("state") == Some(&json!("active"))
                && d.get("nextRunAt")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t <= now.as_str())
        })
        .count()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn measure(log_rows: i64) -> (Vec<f64>, Vec<f64>) {
    let db = TestDb::new(auth_internal::db::MIGRATIONS).await;
    let mut conn = db.conn().await;
    let t = Instant::now();
    seed(&mut conn, log_rows).await;
    let n: Count = diesel::sql_query("SELECT count(*) AS n FROM sync_changes")
        .get_result(&mut conn)
        .await
        .unwrap();
    println!(
        "  seeded {MISSIONS} missions, {} log rows in {:.1}s",
        n.n,
        t.elapsed().as_secs_f64()
    );

    let auth = Options::default().clock(Clock::System).db(db).spawn().await;
    // The replays below read the same database after the server has stopped.
    let _db = auth.db.clone();
    let base = auth.base.clone();
    let client = reqwest::Client::new();

    let mut claims = Vec::with_capacity(SAMPLES);
    let budget = Instant::now();
    for i in 0..SAMPLES + 20 {
        if budget.elapsed() > Duration::from_secs(90) {
            break;
        }
        let t = Instant::now();
        let resp: Value = client
            .post(format!("{base}/api/v1/internal/missions/claim"))
            .header("x-service-key", KEY)
            .json(&json!({"worker": "bench", "limit": 10, "leaseSeconds": 600}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let missions = resp["missions"].as_array().expect("claim answer");
        assert_eq!(missions.len(), 10, "{resp}");
        if i >= 20 {
            claims.push(ms);
        }
        for m in missions {
            client
                .post(format!(
                    "{base}/api/v1/internal/missions/{}/release",
                    m["mission"]["id"].as_str().unwrap()
                ))
                .header("x-service-key", KEY)
                .json(&json!({"leaseToken": m["leaseToken"]}))
                .send()
                .await
                .unwrap();
        }
    }
    drop(client);
    auth.stop().await;

    let mut replays = Vec::with_capacity(REPLAYS);
    for _ in 0..REPLAYS {
        let t = Instant::now();
        let due = replay(&mut conn).await;
        replays.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(due > 0);
    }
    claims.sort_by(f64::total_cmp);
    replays.sort_by(f64::total_cmp);
    (claims, replays)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "mission claim bench ({} build): {MISSIONS} due missions, claim limit 10 + release",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        let mut results = Vec::new();
        for rows in [100_000_i64, 1_000_000] {
            println!("change log {rows} rows:");
            let (claims, replays) = measure(rows).await;
            println!(
                "  claim   p50 {:.2} ms  p99 {:.2} ms  ({} samples)",
                percentile(&claims, 0.5),
                percentile(&claims, 0.99),
                claims.len()
            );
            println!(
                "  replay  p50 {:.1} ms  (baseline: whole-log replay of ai/aiMissions, {} runs)",
                percentile(&replays, 0.5),
                replays.len()
            );
            results.push((percentile(&claims, 0.5), percentile(&replays, 0.5)));
        }
        let (c100k, _) = results[0];
        let (c1m, r1m) = results[1];
        println!(
            "claim p50 1M / 100k rows: {:.2}x (goal <= 1.5x)",
            c1m / c100k
        );
        println!(
            "replay / claim at 1M rows: {:.0}x (goal >= 100x)",
            r1m / c1m
        );
        let path = test_support::bench::record(&[
            Entry::new("missions.claim.log1m.p50", c1m, "ms")
                .against("missions.claim.log100k.p50", c100k),
            Entry::new("missions.replay.log1m.p50", r1m, "ms")
                .against("missions.claim.log1m.p50", c1m),
        ])
        .unwrap();
        println!("summary written to {}", path.display());
    });
}
