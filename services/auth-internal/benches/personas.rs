//! Persona hot paths against the real app over loopback HTTP: claim latency
//! with 10k and with 1M personas in the table, and action ingest (HTTP versus
//! a raw multi-row INSERT of the same rows).
//!
//! Run with `cargo bench -p auth-internal --bench personas` (bench profile =
//! release). Rules of this program:
//! - it prints figures and never asserts timings: goals are reported as
//!   met / not met, so a slow machine gives numbers, not a failure;
//! - every loop is bounded by a count, and the timed loops also by a wall-clock
//!   budget (the report says how many samples were actually taken);
//! - each table size gets a fresh database (`TestDb`, dropped at the end),
//!   seeded directly with SQL (`generate_series`) and `VACUUM ANALYZE`d;
//! - claims run in the realistic steady state: claim 10, then release every
//!   claimed persona as `done` (the releases are timed apart from the claim),
//!   so each sample shrinks the due set by 10 as a real runner does;
//! - the `EXPLAIN` is of the real claim statement: `db::personas::claim_sql()`,
//!   the very text `claim` runs, so it cannot drift from the code.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use auth_internal::db::{personas::NewAction, schema::persona_actions};
use chrono::{Datelike, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Bool, Double, Integer, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use reqwest::{Client, header::CONTENT_TYPE};
use service_kit::Clock;
use test_support::{
    TestDb,
    auth::{AuthInternal, Options, SERVICE_KEY},
    bench::{Entry, Rate, Summary, ms, ratio},
};
use types::personas::{
    ActionResult, ActionRow, ActionsBatch, ClaimPersonasResponse, ClaimRequest, InsertedResponse,
    ReleaseOutcome, ReleaseRequest,
};
use uuid::Uuid;

const CLAIM_LIMIT: u32 = 10;
const LEASE_SECONDS: u32 = 600;
const CLAIM_WARMUP: usize = 30;
const CLAIM_SAMPLES: usize = 300;
/// Wall-clock cap on one size's claim loop (warm-up included).
const CLAIM_BUDGET: Duration = Duration::from_secs(90);
const BATCH_ROWS: usize = 500;
const INGEST_WARMUP_BATCHES: usize = 3;
const INGEST_SEQ_BATCHES: usize = 40;
const INGEST_CLIENTS: usize = 4;
const INGEST_BATCHES_PER_CLIENT: usize = 10;
/// Wall-clock cap on one ingest phase.
const INGEST_BUDGET: Duration = Duration::from_secs(60);
const PLAN_MAX_LINES: usize = 60;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let profile = if cfg!(debug_assertions) {
        "debug (figures are not representative)"
    } else {
        "release"
    };
    let now = Utc::now();
    println!(
        "persona bench: {profile} build, {} cores, {} UTC ({:?}; weekday personas {}due today)",
        std::thread::available_parallelism().map_or(0, usize::from),
        now.format("%Y-%m-%d %H:%M"),
        now.weekday(),
        if auth_internal::db::personas::is_weekday(now) {
            ""
        } else {
            "NOT "
        },
    );

    let small = Bench::start(10_000).await?;
    let small_claims = small.claim_latency().await?;
    let ingest = small.ingest().await?;
    small.stop().await;

    let large = Bench::start(1_000_000).await?;
    let large_claims = large.claim_latency().await?;
    let plan = large.explain_claim().await;
    large.stop().await;

    print_report(&small_claims, &large_claims, &plan, &ingest);
    let path = test_support::bench::record(&[
        Entry::new("personas.claim.1m.p50", large_claims.claims.p50, "ms")
            .against("personas.claim.10k.p50", small_claims.claims.p50),
        Entry::new("personas.claim.1m.p99", large_claims.claims.p99, "ms")
            .against("personas.claim.10k.p99", small_claims.claims.p99),
        Entry::new(
            "personas.ingest.seq.rows_per_s",
            ingest.http_seq.per_sec(),
            "rows/s",
        )
        .against("raw_insert.seq.rows_per_s", ingest.raw_seq.per_sec()),
        Entry::new(
            "personas.ingest.conc.rows_per_s",
            ingest.http_conc.per_sec(),
            "rows/s",
        )
        .against("raw_insert.conc.rows_per_s", ingest.raw_conc.per_sec()),
    ])?;
    println!("summary written to {}", path.display());
    println!("total run time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A fresh database seeded with `personas` personas and the app serving it.
struct Bench {
    personas: u64,
    seed_secs: f64,
    vacuum_secs: f64,
    /// `…/api/v1/internal`.
    base: String,
    client: Client,
    auth: AuthInternal,
}

impl Bench {
    async fn start(personas: u64) -> anyhow::Result<Self> {
        println!("seeding {personas} personas …");
        let db = TestDb::new(auth_internal::db::MIGRATIONS).await;
        let mut conn = db.conn().await;
        let t = Instant::now();
        seed(&mut conn, personas).await?;
        let seed_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for table in ["users", "personas", "persona_actions"] {
            diesel::sql_query(format!("VACUUM ANALYZE {table}"))
                .execute(&mut conn)
                .await?;
        }
        let vacuum_secs = t.elapsed().as_secs_f64();
        println!("  seeded in {seed_secs:.1} s, VACUUM ANALYZE {vacuum_secs:.1} s");

        drop(conn);
        let auth = Options::default().clock(Clock::System).db(db).spawn().await;
        let base = auth.url("/api/v1/internal");
        let client = Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self {
            personas,
            seed_secs,
            vacuum_secs,
            base,
            client,
            auth,
        })
    }

    async fn stop(self) {
        let Self { client, auth, .. } = self;
        // Close the client's keep-alive connections first so the graceful
        // stop has nothing to wait for; the database is dropped after the server.
        drop(client);
        auth.stop().await;
    }

    async fn conn(&self) -> AsyncPgConnection {
        self.auth.db.conn().await
    }

    async fn claim_latency(&self) -> anyhow::Result<ClaimStats> {
        let mut conn = self.conn().await;
        let due_at_start = count(&mut conn, DUE_COUNT_SQL).await?;
        let body = serde_json::to_vec(&ClaimRequest {
            worker: "bench-worker".into(),
            limit: CLAIM_LIMIT,
            lease_seconds: LEASE_SECONDS,
        })?;
        let url = format!("{}/personas/claim", self.base);
        let mut claims = Vec::with_capacity(CLAIM_SAMPLES);
        let mut releases = Vec::with_capacity(CLAIM_SAMPLES);
        let mut short_claims = 0usize;
        let loop_start = Instant::now();
        for i in 0..CLAIM_WARMUP + CLAIM_SAMPLES {
            if loop_start.elapsed() > CLAIM_BUDGET {
                break;
            }
            let t = Instant::now();
            let resp = self
                .client
                .post(&url)
                .header("x-service-key", SERVICE_KEY)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await?;
            let status = resp.status();
            let bytes = resp.bytes().await?;
            let elapsed = t.elapsed();
            if !status.is_success() {
                bail!(
                    "claim answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            let claimed: ClaimPersonasResponse = serde_json::from_slice(&bytes)?;
            let t = Instant::now();
            let done = futures::future::join_all(
                claimed
                    .personas
                    .iter()
                    .map(|p| self.release(p.persona.user_id, p.lease_token)),
            )
            .await;
            for r in done {
                r?;
            }
            if i >= CLAIM_WARMUP {
                claims.push(ms(elapsed));
                releases.push(ms(t.elapsed()));
                if claimed.personas.len() < CLAIM_LIMIT as usize {
                    short_claims += 1;
                }
            }
        }
        Ok(ClaimStats {
            personas: self.personas,
            seed_secs: self.seed_secs,
            vacuum_secs: self.vacuum_secs,
            due_at_start,
            claims: Summary::of(claims),
            releases: Summary::of(releases),
            short_claims,
        })
    }

    async fn release(&self, id: Uuid, token: Uuid) -> anyhow::Result<()> {
        let resp = self
            .client
            .post(format!("{}/personas/{id}/release", self.base))
            .header("x-service-key", SERVICE_KEY)
            .json(&ReleaseRequest {
                lease_token: token,
                outcome: ReleaseOutcome::Done,
                error: None,
            })
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("release answered {status}: {}", resp.text().await?);
        }
        Ok(())
    }

    /// `EXPLAIN (ANALYZE, BUFFERS)` of the claim, rolled back; lines or why not.
    async fn explain_claim(&self) -> Result<Vec<String>, String> {
        let sql = auth_internal::db::personas::claim_sql();
        let mut conn = self.conn().await;
        let now = Utc::now();
        let explain = async {
            diesel::sql_query("BEGIN").execute(&mut conn).await?;
            let plan: QueryResult<Vec<PlanLine>> =
                diesel::sql_query(format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"))
                    .bind::<Timestamptz, _>(now)
                    .bind::<Integer, _>(CLAIM_LIMIT as i32)
                    .bind::<Bool, _>(auth_internal::db::personas::is_weekday(now))
                    .bind::<Text, _>("bench-explain")
                    .bind::<Double, _>(f64::from(LEASE_SECONDS))
                    .load(&mut conn)
                    .await;
            diesel::sql_query("ROLLBACK").execute(&mut conn).await?;
            plan
        };
        match explain.await {
            Ok(lines) => Ok(lines.into_iter().map(|l| l.line).collect()),
            Err(e) => Err(format!("EXPLAIN failed: {e}")),
        }
    }

    async fn ingest(&self) -> anyhow::Result<IngestStats> {
        let mut conn = self.conn().await;
        let ids: Vec<Uuid> =
            diesel::sql_query("SELECT user_id AS id FROM personas ORDER BY slug LIMIT $1")
                .bind::<BigInt, _>(2 * INGEST_CLIENTS as i64 + 2)
                .load::<IdRow>(&mut conn)
                .await?
                .into_iter()
                .map(|r| r.id)
                .collect();
        let [seq_http_id, seq_raw_id, rest @ ..] = ids.as_slice() else {
            bail!("too few personas for the ingest bench");
        };
        let (conc_http_ids, conc_raw_ids) = rest.split_at(INGEST_CLIENTS.min(rest.len()));
        if conc_raw_ids.len() < INGEST_CLIENTS {
            bail!("too few personas for the ingest bench");
        }

        // Warm-up: connections, prepared paths, caches.
        let warm: Vec<_> = (0..INGEST_WARMUP_BATCHES)
            .map(|b| action_batch(&format!("warm-http-{b}"), b))
            .collect();
        post_batches(&self.client, &self.base, *seq_http_id, warm).await?;
        let warm: Vec<_> = (0..INGEST_WARMUP_BATCHES)
            .map(|b| raw_rows(*seq_raw_id, &action_batch(&format!("warm-raw-{b}"), b)))
            .collect();
        insert_raw(&mut conn, warm).await?;

        // Sequential.
        let batches: Vec<_> = (0..INGEST_SEQ_BATCHES)
            .map(|b| action_batch(&format!("seq-http-{b}"), b))
            .collect();
        let t = Instant::now();
        let http_seq = post_batches(&self.client, &self.base, *seq_http_id, batches).await?;
        let http_seq = Rate::new(http_seq, t.elapsed());

        let batches: Vec<_> = (0..INGEST_SEQ_BATCHES)
            .map(|b| raw_rows(*seq_raw_id, &action_batch(&format!("seq-raw-{b}"), b)))
            .collect();
        let t = Instant::now();
        let raw_seq = insert_raw(&mut conn, batches).await?;
        let raw_seq = Rate::new(raw_seq, t.elapsed());

        // Concurrent: one persona per client, as separate runners would.
        let mut tasks = Vec::with_capacity(INGEST_CLIENTS);
        let t = Instant::now();
        for (c, id) in conc_http_ids.iter().enumerate() {
            let batches: Vec<_> = (0..INGEST_BATCHES_PER_CLIENT)
                .map(|b| action_batch(&format!("conc-http-{c}-{b}"), b))
                .collect();
            let (client, base, id) = (self.client.clone(), self.base.clone(), *id);
            tasks.push(tokio::spawn(async move {
                post_batches(&client, &base, id, batches).await
            }));
        }
        let mut rows = 0;
        for task in tasks {
            rows += task.await??;
        }
        let http_conc = Rate::new(rows, t.elapsed());

        let mut conns = Vec::with_capacity(INGEST_CLIENTS);
        for _ in 0..INGEST_CLIENTS {
            conns.push(self.conn().await);
        }
        let mut tasks = Vec::with_capacity(INGEST_CLIENTS);
        let t = Instant::now();
        for ((c, id), mut conn) in conc_raw_ids.iter().enumerate().zip(conns) {
            let batches: Vec<_> = (0..INGEST_BATCHES_PER_CLIENT)
                .map(|b| raw_rows(*id, &action_batch(&format!("conc-raw-{c}-{b}"), b)))
                .collect();
            tasks.push(tokio::spawn(
                async move { insert_raw(&mut conn, batches).await },
            ));
        }
        let mut rows = 0;
        for task in tasks {
            rows += task.await??;
        }
        let raw_conc = Rate::new(rows, t.elapsed());

        Ok(IngestStats {
            http_seq,
            raw_seq,
            http_conc,
            raw_conc,
        })
    }
}

type QueryResult<T> = Result<T, diesel::result::Error>;

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

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> QueryResult<i64> {
    Ok(diesel::sql_query(sql).get_result::<CountRow>(conn).await?.n)
}

/// The due rules of `src/db/personas.rs`, as a count (for the report only).
const DUE_COUNT_SQL: &str = r"
    SELECT count(*) AS n FROM personas
    WHERE NOT paused
      AND (lease_expires_at IS NULL OR lease_expires_at <= now())
      AND (retry_after IS NULL OR retry_after <= now())
      AND coalesce(last_active_at, '-infinity') <= now()
          - CASE tick_cadence WHEN 'hourly' THEN interval '1 hour' ELSE interval '24 hours' END
      AND (tick_cadence <> 'weekdays' OR extract(isodow FROM now() AT TIME ZONE 'UTC') < 6)";

/// Seed `n` persona users and personas. Mix (seeded `random()`): cadence 30 %
/// hourly / 50 % daily / 20 % weekdays; 5 % paused; `last_active_at` 5 % never
/// run, 45 % overdue by up to 14 days, 50 % active within their cadence period
/// (not due). So about 47 % are due (fewer at weekends: no weekday personas).
async fn seed(conn: &mut AsyncPgConnection, n: u64) -> anyhow::Result<()> {
    let n = i64::try_from(n).context("persona count")?;
    diesel::sql_query("SET synchronous_commit = off")
        .execute(conn)
        .await?;
    diesel::sql_query(
        r"INSERT INTO users (id, email, password_hash, kind, display_name, created_at)
          SELECT md5('bench-user-' || g)::uuid, 'bench-' || g || '@personas.bench.invalid',
                 'bench-not-a-real-hash', 'persona', 'Bench persona ' || g, now() - interval '30 days'
          FROM generate_series(1, $1) g",
    )
    .bind::<BigInt, _>(n)
    .execute(conn)
    .await?;
    diesel::sql_query("SELECT setseed(0.42)")
        .execute(conn)
        .await?;
    // `OFFSET 0` keeps each row's random() values drawn once.
    diesel::sql_query(
        r#"INSERT INTO personas (user_id, slug, archetype, system_prompt, module_mix, tick_cadence,
                                locale, paused, last_active_at, created_at, updated_at)
          SELECT md5('bench-user-' || g)::uuid, 'bench-' || g,
                 (ARRAY['student', 'parent', 'freelancer', 'retiree'])[1 + g % 4],
                 'Du bist eine Testperson, die die App ausprobiert.',
                 '{"todo": 0.5, "notes": 0.3, "calendar": 0.2}'::jsonb,
                 cadence, CASE WHEN g % 5 = 0 THEN 'en' ELSE 'de' END, p < 0.05,
                 CASE WHEN a < 0.05 THEN NULL
                      WHEN a < 0.50 THEN now() - period - b * interval '14 days'
                      ELSE now() - b * (period - interval '5 minutes') END,
                 now() - interval '30 days', now()
          FROM (SELECT *, CASE cadence WHEN 'hourly' THEN interval '1 hour'
                                       ELSE interval '24 hours' END AS period
                FROM (SELECT g, a, b, p,
                             CASE WHEN k < 0.3 THEN 'hourly' WHEN k < 0.8 THEN 'daily'
                                  ELSE 'weekdays' END AS cadence
                      FROM (SELECT g, random() AS a, random() AS b, random() AS p, random() AS k
                            FROM generate_series(1, $1) g OFFSET 0) r) c) s"#,
    )
    .bind::<BigInt, _>(n)
    .execute(conn)
    .await?;
    Ok(())
}

const TOOLS: [(&str, &str); 6] = [
    ("todo_create", "todo"),
    ("todo_complete", "todo"),
    ("notes_create", "notes"),
    ("notes_search", "notes"),
    ("calendar_create_event", "calendar"),
    ("calendar_list", "calendar"),
];

/// A realistic 500-row batch: small JSON inputs, a 64-hex input hash, 5 % errors.
fn action_batch(tick_id: &str, seed: usize) -> ActionsBatch {
    let actions = (0..BATCH_ROWS)
        .map(|i| {
            let (tool, module) = TOOLS[(seed + i) % TOOLS.len()];
            let h = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64 + 1);
            ActionRow {
                tool_name: tool.to_owned(),
                module: module.to_owned(),
                input: Some(serde_json::json!({
                    "title": format!("Eintrag {seed}-{i}: Einkauf für das Wochenende"),
                    "tags": ["bench", module],
                    "priority": i % 3,
                })),
                input_hash: Some(format!(
                    "{h:016x}{:016x}{:016x}{:016x}",
                    h.rotate_left(16),
                    h.rotate_left(32),
                    h.rotate_left(48)
                )),
                result: if i % 20 == 0 {
                    ActionResult::Error
                } else {
                    ActionResult::Ok
                },
                error_message: None,
                latency_ms: Some(((i * 37) % 900) as i32),
                created_at: None,
            }
        })
        .collect();
    ActionsBatch {
        tick_id: tick_id.to_owned(),
        actions,
        first_index: None,
    }
}

/// The rows the server would write for `batch` (same ids, same columns).
fn raw_rows(persona_id: Uuid, batch: &ActionsBatch) -> Vec<NewAction> {
    let now = Utc::now();
    batch
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| NewAction {
            id: format!("{}-{i}-{}", batch.tick_id, a.tool_name),
            persona_id,
            tick_id: batch.tick_id.clone(),
            tool_name: a.tool_name.clone(),
            module: a.module.clone(),
            input: a.input.clone(),
            input_hash: a.input_hash.clone(),
            result: a.result.as_str(),
            error_message: a.error_message.clone(),
            latency_ms: a.latency_ms,
            created_at: now,
            completed_at: Some(now),
        })
        .collect()
}

/// Post each batch in turn (bodies serialized before timing); rows inserted.
async fn post_batches(
    client: &Client,
    base: &str,
    persona_id: Uuid,
    batches: Vec<ActionsBatch>,
) -> anyhow::Result<usize> {
    let url = format!("{base}/personas/{persona_id}/actions");
    let bodies = batches
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let mut rows = 0usize;
    for body in bodies {
        if start.elapsed() > INGEST_BUDGET {
            break;
        }
        let resp = client
            .post(&url)
            .header("x-service-key", SERVICE_KEY)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            bail!(
                "actions answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let answer: InsertedResponse = serde_json::from_slice(&bytes)?;
        rows += answer.inserted as usize;
    }
    Ok(rows)
}

/// Insert each batch with one multi-row `INSERT … ON CONFLICT DO NOTHING`.
async fn insert_raw(
    conn: &mut AsyncPgConnection,
    batches: Vec<Vec<NewAction>>,
) -> anyhow::Result<usize> {
    let start = Instant::now();
    let mut rows = 0usize;
    for batch in batches {
        if start.elapsed() > INGEST_BUDGET {
            break;
        }
        rows += diesel::insert_into(persona_actions::table)
            .values(&batch)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }
    Ok(rows)
}

struct ClaimStats {
    personas: u64,
    seed_secs: f64,
    vacuum_secs: f64,
    due_at_start: i64,
    claims: Summary,
    releases: Summary,
    short_claims: usize,
}

struct IngestStats {
    http_seq: Rate,
    raw_seq: Rate,
    http_conc: Rate,
    raw_conc: Rate,
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// Drop the planner's `(cost=…)` estimate: the actual figures stay.
fn compact_plan_line(line: &str) -> String {
    match line.find(" (cost=") {
        Some(i) => match line[i..].find(')') {
            Some(j) => format!("{}{}", &line[..i], &line[i + j + 1..]),
            None => line.to_owned(),
        },
        None => line.to_owned(),
    }
}

fn print_report(
    small: &ClaimStats,
    large: &ClaimStats,
    plan: &Result<Vec<String>, String>,
    ingest: &IngestStats,
) {
    println!();
    println!("== claim: POST /personas/claim limit={CLAIM_LIMIT} leaseSeconds={LEASE_SECONDS} ==");
    println!(
        "   each sample = one claim round trip; then all claimed are released `done` \
         (10 concurrent releases, timed apart); {CLAIM_WARMUP} warm-up claims first"
    );
    println!(
        "   {:>9} {:>9} {:>7} {:>5} {:>8} {:>8} {:>8} {:>13} {:>13}",
        "personas",
        "due@start",
        "samples",
        "short",
        "p50 ms",
        "p99 ms",
        "mean ms",
        "release p50",
        "seed+vacuum s"
    );
    for s in [small, large] {
        println!(
            "   {:>9} {:>9} {:>7} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>10.2} ms {:>6.1}+{:.1}",
            s.personas,
            s.due_at_start,
            s.claims.n,
            s.short_claims,
            s.claims.p50,
            s.claims.p99,
            s.claims.mean,
            s.releases.p50,
            s.seed_secs,
            s.vacuum_secs
        );
    }
    let r50 = ratio(large.claims.p50, small.claims.p50);
    let r99 = ratio(large.claims.p99, small.claims.p99);
    println!(
        "   1M/10k: p50 {r50:.2}×, p99 {r99:.2}×, mean {:.2}×  (goal p50 ≤ 2×: {})",
        ratio(large.claims.mean, small.claims.mean),
        met(r50 <= 2.0)
    );
    println!(
        "   p50 at 1M {:.2} ms (goal ≤ 5 ms: {})",
        large.claims.p50,
        met(large.claims.p50 <= 5.0)
    );
    println!();
    println!("== EXPLAIN (ANALYZE, BUFFERS) of the claim at 1M (rolled back; costs elided) ==");
    match plan {
        Ok(lines) => {
            for line in lines.iter().take(PLAN_MAX_LINES) {
                println!("   {}", compact_plan_line(line));
            }
            if lines.len() > PLAN_MAX_LINES {
                println!("   … {} more lines", lines.len() - PLAN_MAX_LINES);
            }
            let all = lines.join("\n");
            println!(
                "   summary: personas_claim_idx used: {}; Seq Scan on personas: {}; Sort nodes: {}",
                all.contains("personas_claim_idx"),
                all.contains("Seq Scan on personas"),
                all.matches("Sort Method").count()
            );
        }
        Err(why) => println!("   {why}"),
    }
    println!();
    println!("== ingest: {BATCH_ROWS}-row batches, POST /personas/{{id}}/actions vs raw INSERT ==");
    for (name, http, raw) in [
        ("sequential", &ingest.http_seq, &ingest.raw_seq),
        ("4 concurrent clients", &ingest.http_conc, &ingest.raw_conc),
    ] {
        let r = ratio(http.per_sec(), raw.per_sec());
        println!(
            "   {name:<21} HTTP {:>8.0} rows/s ({} rows in {:.2} s)   raw {:>8.0} rows/s ({} rows in {:.2} s)   HTTP/raw {:.0} % (goal ≥ 50 %: {})",
            http.per_sec(),
            http.items,
            http.secs,
            raw.per_sec(),
            raw.items,
            raw.secs,
            r * 100.0,
            met(r >= 0.5)
        );
    }
    println!(
        "   (HTTP includes the existence check and the last_active_at update in the same \
         transaction; raw is the INSERT alone)"
    );
}
