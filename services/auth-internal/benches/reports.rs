//! The reports against the real app over loopback HTTP, on a seeded history: by default
//! 1M feedback rows, 1M actions and 100k runs over 90 days (200 personas).
//!
//! Run with `cargo bench -p auth-internal --bench reports` (bench profile = release).
//! Sizes and samples come from the environment so a shared machine can run it smaller:
//! `REPORTS_BENCH_FEEDBACK`, `REPORTS_BENCH_ACTIONS`, `REPORTS_BENCH_RUNS`,
//! `REPORTS_BENCH_SAMPLES` (per report, default 60).
//!
//! Rules of this program:
//! - it prints figures and never asserts timings: the goal (p95 ≤ 100 ms) is reported as
//!   met / not met;
//! - the data is seeded with `generate_series` in a fresh database (`TestDb`, dropped at
//!   the end) and `VACUUM ANALYZE`d, so index-only scans see an up-to-date visibility map;
//! - every feedback and action row belongs to a run (its `tick_id` is the run id), so the
//!   `appVersion` filter and the run detail see realistic joins;
//! - the seeding goes through the tables' triggers, so the report rollups
//!   (`report_*_hourly`, `report_ratings_daily`) are filled as production fills them, and the
//!   seed time includes their upkeep; then they are compacted once, as auth-internal's
//!   upkeep task does every few seconds;
//! - each report's statements are `EXPLAIN ANALYZE`d with the binds a default request uses,
//!   and their plan shape (node types and indexes) is printed; the statements are the code's
//!   own (`db::reports::explained`), except the runs list, which diesel builds: its
//!   equivalent (with and without `q`) is spelled out here.

use std::time::{Duration, Instant};

use anyhow::bail;
use auth_internal::db::reports as sql;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use reqwest::Client;
use serde_json::Value;
use service_kit::Clock;
use test_support::{
    TestDb,
    auth::{Options, SERVICE_KEY},
};

const PERSONAS: i64 = 200;
const WARMUP: usize = 5;
/// Wall-clock cap per report.
const BUDGET: Duration = Duration::from_secs(40);
const GOAL_P95_MS: f64 = 100.0;

fn env_num(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let feedback = env_num("REPORTS_BENCH_FEEDBACK", 1_000_000);
    let actions = env_num("REPORTS_BENCH_ACTIONS", 1_000_000);
    let runs = env_num("REPORTS_BENCH_RUNS", 100_000);
    let samples = usize::try_from(env_num("REPORTS_BENCH_SAMPLES", 60)).unwrap_or(60);
    let profile = if cfg!(debug_assertions) {
        "debug (figures are not representative)"
    } else {
        "release"
    };
    println!(
        "reports bench: {profile} build, {} cores; {feedback} feedback, {actions} actions, {runs} runs over 90 days, {PERSONAS} personas",
        std::thread::available_parallelism().map_or(0, usize::from),
    );

    let db = TestDb::new(auth_internal::db::MIGRATIONS).await;
    let now = Utc::now();
    let mut conn = db.conn().await;
    let t = Instant::now();
    seed(&mut conn, now, feedback, actions, runs).await?;
    let seed_secs = t.elapsed().as_secs_f64();
    // auth-internal's upkeep folds the triggers' delta rows within seconds; do it once here.
    let t = Instant::now();
    let folded = sql::compact(&mut conn).await?;
    println!(
        "  rollups compacted to {folded} rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    for table in [
        "users",
        "personas",
        "persona_runs",
        "persona_feedback",
        "persona_actions",
        "report_ratings_hourly",
        "report_ratings_daily",
        "report_calls_hourly",
        "report_tokens_hourly",
    ] {
        diesel::sql_query(format!("VACUUM ANALYZE {table}"))
            .execute(&mut conn)
            .await?;
    }
    println!(
        "  seeded in {seed_secs:.1} s, VACUUM ANALYZE {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The server's database is the one seeded; `conn` stays open for the EXPLAINs.
    let auth = Options::default().clock(Clock::System).db(db).spawn().await;
    let base = auth.url("/api/v1/internal");
    let client = Client::builder().timeout(Duration::from_secs(30)).build()?;

    // A run with actions and feedback for the detail, and a cursor deep in the list.
    let detail_id = diesel::sql_query(
        "SELECT id FROM persona_runs ORDER BY started_at DESC, id DESC OFFSET 100 LIMIT 1",
    )
    .get_result::<Id>(&mut conn)
    .await?
    .id;
    let page: Value = client
        .get(format!("{base}/runs?limit=50"))
        .header("x-service-key", SERVICE_KEY)
        .send()
        .await?
        .json()
        .await?;
    let cursor = page["nextCursor"].as_str().unwrap_or_default().to_owned();

    let cases: Vec<(&str, String)> = vec![
        ("modules (7 days)", "/reports/modules".into()),
        (
            "modules appVersion=1.2",
            "/reports/modules?appVersion=1.2".into(),
        ),
        ("trend todo day (7 d)", "/reports/modules/todo/trend".into()),
        (
            "trend todo week (90 d)",
            format!(
                "/reports/modules/todo/trend?bucket=week&from={}",
                (now - TimeDelta::days(90)).format("%Y-%m-%d")
            ),
        ),
        ("runs page 1", "/runs?limit=50".into()),
        (
            "runs page 2 (cursor)",
            format!("/runs?limit=50&cursor={cursor}"),
        ),
        (
            "runs outcome=failed",
            "/runs?outcome=failed&limit=50".into(),
        ),
        (
            "runs persona",
            format!(
                "/runs?persona={}&limit=50",
                detail_id.split_once('.').map_or("", |(_, p)| p)
            ),
        ),
        ("runs q=timeout", "/runs?q=timeout&limit=50".into()),
        ("run detail", format!("/runs/{detail_id}")),
        ("failures (7 days)", "/reports/failures".into()),
        ("tokens day (7 days)", "/reports/tokens?bucket=day".into()),
        (
            "tokens day (30 days)",
            format!(
                "/reports/tokens?bucket=day&from={}",
                (now - TimeDelta::days(30)).format("%Y-%m-%d")
            ),
        ),
    ];
    let mut results = Vec::new();
    for (name, path) in &cases {
        let url = format!("{base}{path}");
        let mut times = Vec::with_capacity(samples);
        let t0 = Instant::now();
        for i in 0..WARMUP + samples {
            if t0.elapsed() > BUDGET {
                break;
            }
            let t = Instant::now();
            let resp = client
                .get(&url)
                .header("x-service-key", SERVICE_KEY)
                .send()
                .await?;
            let status = resp.status();
            let bytes = resp.bytes().await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if !status.is_success() {
                bail!("{name}: {status} {}", String::from_utf8_lossy(&bytes));
            }
            if i >= WARMUP {
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        let p = |q: f64| {
            let idx = ((times.len() as f64 - 1.0) * q).round() as usize;
            times.get(idx).copied().unwrap_or(f64::NAN)
        };
        results.push((name.to_string(), times.len(), p(0.5), p(0.95)));
    }

    println!();
    println!(
        "{:<26} {:>7} {:>9} {:>9}  goal p95 ≤ {GOAL_P95_MS} ms",
        "report", "samples", "p50 ms", "p95 ms"
    );
    for (name, n, p50, p95) in &results {
        let verdict = if *p95 <= GOAL_P95_MS {
            "met"
        } else {
            "NOT met"
        };
        println!("{name:<26} {n:>7} {p50:>9.1} {p95:>9.1}  {verdict}");
    }

    println!();
    println!("plan shapes (EXPLAIN ANALYZE, default period = last 7 days):");
    let period = sql::Period {
        from: now - TimeDelta::days(7),
        to: now,
    };
    let mut statements = sql::explained(period, "todo", "1.2");
    let quarter = sql::Period {
        from: now - TimeDelta::days(90),
        to: now,
    };
    statements.extend(
        sql::explained(quarter, "todo", "1.2")
            .into_iter()
            .filter(|(name, _)| name.starts_with("trend") || name.starts_with("tokens"))
            .map(|(name, q)| {
                (
                    if name.starts_with("trend") {
                        "trend (90 days)"
                    } else {
                        "tokens (90 days)"
                    },
                    q,
                )
            }),
    );
    let mut plans: Vec<(&str, Result<Vec<PlanLine>, diesel::result::Error>)> = Vec::new();
    for (name, q) in statements {
        // The scoreboard runs its statements with its own setting (`db::reports::modules`).
        let setting = if name.starts_with("modules") {
            format!("SET {}", sql::SCOREBOARD_SETTING)
        } else {
            "RESET max_parallel_workers_per_gather".to_owned()
        };
        diesel::sql_query(setting).execute(&mut conn).await?;
        plans.push((name, q.load(&mut conn).await));
    }
    diesel::sql_query("RESET max_parallel_workers_per_gather")
        .execute(&mut conn)
        .await?;
    for (name, text) in [
        (
            "runs list (equivalent of the diesel query)",
            "EXPLAIN ANALYZE SELECT id, persona_id, tick_id, outcome, error_class, started_at, \
               finished_at, tool_calls, tool_errors, tokens_input, tokens_output, \
               tokens_cache_read, tokens_cache_write FROM persona_runs \
             WHERE started_at >= $1 AND started_at < $2 \
             ORDER BY started_at DESC, id DESC LIMIT 51",
        ),
        (
            "runs q=timeout (equivalent of the diesel query)",
            "EXPLAIN ANALYZE SELECT id, started_at FROM persona_runs \
             WHERE started_at >= $1 AND started_at < $2 \
               AND (error ILIKE '%timeout%' OR id IN ( \
                 SELECT tick_id FROM persona_feedback WHERE notes ILIKE '%timeout%')) \
             ORDER BY started_at DESC, id DESC LIMIT 51",
        ),
    ] {
        plans.push((
            name,
            diesel::sql_query(text)
                .bind::<Timestamptz, _>(period.from)
                .bind::<Timestamptz, _>(period.to)
                .load(&mut conn)
                .await,
        ));
    }
    for (name, plan) in plans {
        println!("  {name}:");
        match plan {
            Ok(lines) => {
                for l in shape(&lines) {
                    println!("    {l}");
                }
            }
            Err(e) => println!("    EXPLAIN failed: {e}"),
        }
    }

    drop(client);
    drop(conn);
    auth.stop().await;
    println!("total run time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The plan's nodes without costs (indentation kept), plus its execution time.
fn shape(lines: &[PlanLine]) -> Vec<String> {
    let mut out = Vec::new();
    for l in lines {
        let text = l.line.as_str();
        let trimmed = text.trim_start();
        let indent = text.len() - trimmed.len();
        let node = trimmed.trim_start_matches("-> ");
        let is_node = trimmed.starts_with("->") || indent == 0;
        if trimmed.starts_with("Execution Time") {
            out.push(trimmed.to_owned());
        } else if is_node && !trimmed.starts_with("Planning") {
            let name = node.split("  (").next().unwrap_or(node);
            let name = name.split(" (cost").next().unwrap_or(name);
            let rows = node
                .split("actual time=")
                .nth(1)
                .and_then(|s| s.split("rows=").nth(1))
                .and_then(|s| s.split(' ').next())
                .unwrap_or("?");
            out.push(format!("{}{name} [rows={rows}]", " ".repeat(indent / 2)));
        }
    }
    out
}

/// 200 personas; `runs` runs spread evenly over the last 90 days, each with its share of
/// feedback and actions (same run ids), realistic outcomes, classes, providers and versions.
async fn seed(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    feedback: i64,
    actions: i64,
    runs: i64,
) -> anyhow::Result<()> {
    diesel::sql_query("SET synchronous_commit = off")
        .execute(conn)
        .await?;
    diesel::sql_query("SELECT setseed(0.42)")
        .execute(conn)
        .await?;
    diesel::sql_query(
        "INSERT INTO users (id, email, password_hash, kind, display_name) \
         SELECT md5('bench-user-' || g)::uuid, 'bench-' || g || '@personas.bench.invalid', \
                'x', 'persona', 'Bench ' || g FROM generate_series(0, $1 - 1) g",
    )
    .bind::<BigInt, _>(PERSONAS)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO personas (user_id, slug, archetype, system_prompt, module_mix, tick_cadence) \
         SELECT md5('bench-user-' || g)::uuid, 'bench-' || g, 'tester', 'Du bist …', \
                '{\"todo\": 1}'::jsonb, 'daily' FROM generate_series(0, $1 - 1) g",
    )
    .bind::<BigInt, _>(PERSONAS)
    .execute(conn)
    .await?;
    // Run r (1..runs) belongs to persona r % 200 and starts (runs - r) / runs × 90 days ago.
    let run_id = "'bench-' || r || '.' || md5('bench-user-' || (r % 200))::uuid";
    let run_start = "$2::timestamptz - ($1 - r) * (interval '90 days' / $1)";
    diesel::sql_query(format!(
        "INSERT INTO persona_runs (id, persona_id, tick_id, revision, worker, provider, model, \
           app_version, started_at, finished_at, outcome, error, error_class, turns, tool_calls, \
           tool_errors, tokens_input, tokens_output, tokens_cache_read, tokens_cache_write, \
           first_prompt_tokens, transcript) \
         SELECT {run_id}, md5('bench-user-' || (r % 200))::uuid, 'bench-' || r, 3, 'w-1', \
           (ARRAY['anthropic', 'openai'])[1 + r % 2], (ARRAY['claude-sonnet-4-5', 'gpt-4o-mini'])[1 + r % 2], \
           (ARRAY['1.0', '1.1', '1.2'])[1 + least(2, r * 3 / $1)], \
           {run_start}, {run_start} + interval '4 minutes', \
           CASE WHEN x < 0.90 THEN 'ok' WHEN x < 0.97 THEN 'failed' ELSE 'simulator_failure' END, \
           CASE WHEN x < 0.90 THEN NULL WHEN x < 0.97 THEN \
             (ARRAY['LLM failed: 529 overloaded', 'deadline exceeded', 'MCP connect timeout', 'login failed'])[1 + r % 4] \
             ELSE 'refused' END, \
           CASE WHEN x < 0.90 THEN NULL WHEN x < 0.97 THEN \
             (ARRAY['llm', 'deadline', 'mcp', 'login'])[1 + r % 4] ELSE 'simulator' END, \
           8, 10, (r % 3), 2000 + r % 500, 400 + r % 100, 6000, CASE WHEN r % 10 = 0 THEN 1500 ELSE 0 END, \
           3000, CASE WHEN r % 50 = 0 THEN '{{\"system\": \"s\", \"messages\": []}}'::jsonb END \
         FROM (SELECT r, random() AS x FROM generate_series(1, $1) r OFFSET 0) s"
    ))
    .bind::<BigInt, _>(runs)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    // Feedback row g belongs to run r = 1 + g % runs, one module per row (k = g / runs).
    let f_run = "1 + g % $3";
    diesel::sql_query(format!(
        "INSERT INTO persona_feedback (id, persona_id, tick_id, module, rating, notes, created_at) \
         SELECT {run_id} || '-' || k, md5('bench-user-' || (r % 200))::uuid, {run_id}, \
           CASE WHEN x < 0.01 THEN '__parse' ELSE (ARRAY['todo', 'notes', 'journal', 'calendar', \
             'contacts', 'goals', 'habits', 'mood', 'missions', 'todo'])[1 + k % 10] END, \
           CASE WHEN x < 0.01 THEN NULL ELSE 1 + floor(random() * 5)::int END, \
           CASE WHEN x < 0.01 THEN 'kein JSON' ELSE 'Notiz ' || g END, \
           {run_start} + interval '3 minutes' \
         FROM (SELECT g, {f_run} AS r, g / $3 AS k, random() AS x \
               FROM generate_series(0, $4 - 1) g OFFSET 0) s",
        run_start = "$2::timestamptz - ($1 - r) * (interval '90 days' / $1)",
    ))
    .bind::<BigInt, _>(runs)
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(runs)
    .bind::<BigInt, _>(feedback)
    .execute(conn)
    .await?;
    diesel::sql_query(format!(
        "INSERT INTO persona_actions (id, persona_id, tick_id, tool_name, module, input, result, \
           error_message, latency_ms, created_at) \
         SELECT {run_id} || '-' || k || '-' || m || '_create', md5('bench-user-' || (r % 200))::uuid, \
           {run_id}, m || '_create', m, '{{\"title\": \"x\"}}'::jsonb, \
           CASE WHEN x < 0.05 THEN 'error' ELSE 'ok' END, \
           CASE WHEN x < 0.05 THEN 'timeout' END, 20 + g % 80, \
           {run_start} + k * interval '10 seconds' \
         FROM (SELECT g, 1 + g % $3 AS r, g / $3 AS k, random() AS x, \
                 (ARRAY['todo', 'notes', 'journal', 'calendar', 'contacts', 'goals', 'habits', \
                        'mood'])[1 + g % 8] AS m \
               FROM generate_series(0, $4 - 1) g OFFSET 0) s",
        run_start = "$2::timestamptz - ($1 - r) * (interval '90 days' / $1)",
    ))
    .bind::<BigInt, _>(runs)
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(runs)
    .bind::<BigInt, _>(actions)
    .execute(conn)
    .await?;
    Ok(())
}
