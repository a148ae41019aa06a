//! persona-runner benchmark (issue 4 §7): the runner's own cost per persona-day.
//!
//! `cargo bench -p persona-runner --bench day` (release). Needs PostgreSQL like the tests
//! (`TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! 1. Throughput: a real in-process auth-internal (fresh database, manual clock), a real
//!    MCP session per day, and a zero-latency fake OpenAI-compatible LLM that makes
//!    exactly 10 tool calls per day (`todo_create` / `todo_list` alternating), then ends
//!    the day and answers the rating turn with strict JSON. 200 hourly personas,
//!    `PERSONA_CONCURRENCY` 1, 8 and 32 (1: one day at a time, so its tool-call p50 is
//!    the round trip of one call, not a queue); per concurrency a cold round (a fresh runner logs
//!    every persona in) and a warm round (cached tokens, clock one hour on). Every round
//!    checks the rows written (200 × 10 actions, 200 ratings) so the figure is honest.
//!    `DAY_BENCH_CONCURRENCY=8,32` runs only the concurrencies named.
//!    Everything shares the machine's cores (runner, auth-internal, fake, PostgreSQL).
//! 2. Memory: the release binary of persona-runner as a child process (so its RSS is its
//!    own), `PERSONA_CONCURRENCY=200`, a fake that waits 200 ms per reply so all 200 days
//!    overlap; idle `VmRSS` after `/health`, then `VmRSS` sampled every 20 ms during
//!    `POST /internal/tick` and `VmHWM` at the end. `DAY_BENCH_MEMORY=0` leaves it out.
//!
//! Rules: prints figures, asserts only correctness (rows, outcomes), never time. Every
//! loop is bounded; the child is killed on every path (guard with `Drop`).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark: a panic is the failure report"
)]

use std::{
    collections::HashMap,
    fs::File,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use chrono::TimeDelta;
use fake_llm::{Api, FakeLlm, Reply};
use persona_runner::{Application, PersonaTick, Settings, TickOutput};
use runner_kit::{ServiceHandle, TickRunner};
use serde_json::{Value, json};
use test_support::{
    auth::{AuthInternal, Options, SEED_SECRET, SERVICE_KEY as KEY},
    bench::{Entry, Summary, ms},
    free_port,
};

/// Personas per round.
const PERSONAS: usize = 200;
/// Tool calls per persona-day.
const TOOL_CALLS: usize = 10;
/// Fake LLM latency in the memory part (so all days overlap).
const MEMORY_DELAY: Duration = Duration::from_millis(200);
/// Upper bound of one tick (the runner's own deadline is 120 s).
const TICK_LIMIT: Duration = Duration::from_secs(180);
/// `/proc/<pid>/stat` times are in clock ticks; 100 Hz on every Linux we run on.
const CLK_TCK: f64 = 100.0;
const RATING: &str = r#"{"ratings":[{"module":"todo","rating":4,"notes":"schnell und klar"}]}"#;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let started = Instant::now();
    let profile = if cfg!(debug_assertions) {
        "debug (figures are not representative)"
    } else {
        "release"
    };
    println!(
        "persona-runner day bench: {profile} build, {} cores, {PERSONAS} personas, {TOOL_CALLS} tool calls per day",
        thread::available_parallelism().map_or(0, usize::from),
    );
    throughput().await;
    if test_support::bench::section("DAY_BENCH_MEMORY") {
        memory().await;
    }
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------
// Shared set-up
// ---------------------------------------------------------------------------------------

/// When the fake saw each day start (first main-turn request) and end (rating request),
/// keyed by the persona's system prompt (unique per persona).
#[derive(Default)]
struct Spans {
    days: Mutex<HashMap<String, (Instant, Option<Instant>)>>,
}

impl Spans {
    fn start(&self, key: String) {
        self.days
            .lock()
            .unwrap()
            .insert(key, (Instant::now(), None));
    }

    /// Ends the open day whose system prompt ends with `system`: the rating request carries
    /// only the persona's own system prompt, the day's requests the shared rules before it.
    fn end(&self, system: &str) {
        let now = Instant::now();
        let mut days = self.days.lock().unwrap();
        if let Some(day) = days
            .iter_mut()
            .find(|(k, d)| d.1.is_none() && k.ends_with(system))
            .map(|(_, d)| d)
        {
            day.1 = Some(now);
        }
    }

    /// The completed spans so far; forgets them all.
    fn take(&self) -> Vec<(Instant, Instant)> {
        self.days
            .lock()
            .unwrap()
            .drain()
            .filter_map(|(_, (s, e))| e.map(|e| (s, e)))
            .collect()
    }
}

/// The most spans open at one instant.
fn max_overlap(spans: &[(Instant, Instant)]) -> usize {
    let mut events: Vec<(Instant, i64)> = spans
        .iter()
        .flat_map(|(s, e)| [(*s, 1), (*e, -1)])
        .collect();
    // At equal instants, ends before starts.
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut max) = (0i64, 0i64);
    for (_, d) in events {
        open += d;
        max = max.max(open);
    }
    usize::try_from(max).unwrap_or(0)
}

/// Mean, median and max day length in ms, as the fake saw them.
fn span_stats(spans: &[(Instant, Instant)]) -> Summary {
    Summary::of(
        spans
            .iter()
            .map(|(s, e)| ms(e.duration_since(*s)))
            .collect(),
    )
}

/// The scripted model: by the number of assistant messages so far, `TOOL_CALLS` tool
/// calls (`todo_create` / `todo_list` alternating), then a closing text; a request
/// without tools is the rating turn and gets strict JSON.
fn day_handler(delay: Duration, spans: Arc<Spans>) -> impl Fn(&Value) -> Reply + Send + Sync {
    move |body: &Value| {
        let messages = body["messages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let key = messages
            .first()
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
        let reply = if has_tools {
            let turns = messages.iter().filter(|m| m["role"] == "assistant").count();
            if turns == 0 {
                spans.start(key);
            }
            if turns >= TOOL_CALLS {
                Reply::text("Fertig für heute.")
            } else if turns % 2 == 0 {
                Reply::tool_call(
                    "todo_create",
                    json!({ "title": format!("Bench-Aufgabe {turns}") }),
                )
            } else {
                Reply::tool_call("todo_list", json!({ "limit": 5 }))
            }
        } else {
            spans.end(&key);
            Reply::text(RATING)
        };
        if delay.is_zero() {
            reply
        } else {
            Reply::delayed(delay, reply)
        }
    }
}

/// A fake OpenAI endpoint scripted with [`day_handler`].
async fn start_fake(delay: Duration) -> (FakeLlm, Arc<Spans>) {
    let fake = FakeLlm::start().await.expect("start fake LLM");
    let spans = Arc::new(Spans::default());
    fake.set_openai_handler(day_handler(delay, spans.clone()));
    (fake, spans)
}

fn rejected(fake: &FakeLlm) -> usize {
    fake.requests_to(Api::OpenAi)
        .iter()
        .filter(|r| r.rejection.is_some())
        .count()
}

/// auth-internal in-process on a fresh database, clock fixed at Wed 2026-11-18 12:00 UTC.
struct Auth {
    app: AuthInternal,
}

impl Auth {
    async fn spawn() -> Self {
        // The clock moves an hour between rounds: keep tokens valid so the warm rounds
        // measure a cached token, not a rejected one.
        let app = Options::default()
            .settings(|s| s.jwt.access_ttl_secs = 7 * 24 * 3600)
            .spawn()
            .await;
        Self { app }
    }

    /// Upserts `PERSONAS` hourly personas `{prefix}-{i}`.
    async fn seed(&self, prefix: &str) {
        let specs: Vec<Value> = (0..PERSONAS)
            .map(|i| {
                json!({
                    "slug": format!("{prefix}-{i}"),
                    "name": format!("Bench {i}"),
                    "archetype": "tester",
                    "systemPrompt": format!("Du bist Testperson Nr. {i} ({prefix}) und probierst die App im Alltag aus."),
                    "moduleMix": { "todo": 0.6, "notes": 0.4 },
                    "tickCadence": "hourly",
                    "locale": "de",
                })
            })
            .collect();
        let resp = reqwest::Client::new()
            .put(format!("{}/api/v1/internal/personas", self.app.base))
            .header("x-service-key", KEY)
            .json(&json!({ "personas": specs }))
            .send()
            .await
            .expect("seed personas");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "seed: {status} {body}");
    }

    async fn count(&self, sql: &str) -> i64 {
        self.app.db.count(sql).await
    }

    /// Checks the tick's rows: every persona wrote exactly `TOOL_CALLS` ok actions and
    /// one `todo` rating of 4.
    async fn verify_rows(&self, tick_id: &str) {
        assert!(
            tick_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
            "unexpected tick id {tick_id:?}"
        );
        let of_tick = format!("starts_with(tick_id, '{tick_id}.')");
        let expected_actions = i64::try_from(PERSONAS * TOOL_CALLS).unwrap();
        let expected_personas = i64::try_from(PERSONAS).unwrap();
        let actions = self
            .count(&format!(
                "SELECT count(*) AS n FROM persona_actions WHERE {of_tick}"
            ))
            .await;
        let ok = self
            .count(&format!(
                "SELECT count(*) AS n FROM persona_actions WHERE {of_tick} AND result = 'ok' \
                 AND module = 'todo' AND tool_name IN ('todo_create', 'todo_list')"
            ))
            .await;
        let full_days = self
            .count(&format!(
                "SELECT count(*) AS n FROM (SELECT persona_id FROM persona_actions WHERE {of_tick} \
                 GROUP BY persona_id HAVING count(*) = {TOOL_CALLS}) t"
            ))
            .await;
        let ratings = self
            .count(&format!(
                "SELECT count(*) AS n FROM persona_feedback WHERE {of_tick} AND module = 'todo' AND rating = 4"
            ))
            .await;
        assert_eq!(
            (actions, ok, full_days, ratings),
            (
                expected_actions,
                expected_actions,
                expected_personas,
                expected_personas
            ),
            "(actions, ok actions, personas with {TOOL_CALLS} actions, ratings) of tick {tick_id}"
        );
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

/// Every persona ran, none failed, none was a simulator failure.
fn check_report(out: &TickOutput) {
    let r = &out.report;
    assert!(out.error.is_none(), "tick error: {:?}", out.error);
    assert_eq!(r.due as usize, PERSONAS, "due: {out:?}");
    assert_eq!(
        (
            r.ran_successfully as usize,
            r.failed.len(),
            r.simulator_failures
        ),
        (PERSONAS, 0, 0),
        "first failures: {:?}",
        r.failed.iter().take(3).collect::<Vec<_>>()
    );
}

/// utime + stime of `pid` in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the `comm` in parentheses: state is field 3, utime 14, stime 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / CLK_TCK
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn runner_env(auth_url: &str, llm_url: &str, concurrency: usize) -> Vec<(String, String)> {
    [
        ("AUTH_INTERNAL_URL", auth_url.to_owned()),
        ("MANA_SERVICE_KEY", KEY.to_owned()),
        ("PERSONA_SEED_SECRET", SEED_SECRET.to_owned()),
        ("TICK_INTERVAL_SECS", "0".to_owned()),
        ("SHUTDOWN_GRACE_SECS", "0".to_owned()),
        ("LLM_PROVIDER", "openai".to_owned()),
        ("OPENAI_BASE_URL", llm_url.to_owned()),
        ("OPENAI_API_KEY", "x".to_owned()),
        ("PERSONA_CONCURRENCY", concurrency.to_string()),
        ("PERSONA_CLAIM_LIMIT", PERSONAS.to_string()),
        ("PERSONA_DEADLINE_SECS", "120".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

// ---------------------------------------------------------------------------------------
// 1. Throughput
// ---------------------------------------------------------------------------------------

async fn spawn_runner(
    auth: &Auth,
    fake: &FakeLlm,
    concurrency: usize,
) -> (TickRunner<PersonaTick>, ServiceHandle) {
    let mut env: HashMap<String, String> =
        runner_env(&auth.app.base, &fake.openai_base_url(), concurrency)
            .into_iter()
            .collect();
    env.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
    let settings = Settings::from_env(&env).expect("runner settings");
    let app = Application::build(settings).expect("runner");
    let runner = app.runner();
    let handle = app.handle();
    tokio::spawn(app.run_without_signals());
    (runner, handle)
}

/// auth-internal's HTTP requests so far by `method route`, and PostgreSQL's commits of
/// the bench database (what one day costs the server, per round).
async fn server_counts(auth: &Auth) -> (HashMap<String, f64>, i64) {
    let mut by_route = HashMap::new();
    for line in auth.app.state.metrics.encode().lines() {
        let Some(rest) = line.strip_prefix("mana_auth_http_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let key = format!("{} {}", label("method"), label("route"));
        *by_route.entry(key).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    let commits = auth
        .count("SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()")
        .await;
    (by_route, commits)
}

/// Prints the requests per day by route and the commits per day between two counts.
fn print_server_counts(before: &(HashMap<String, f64>, i64), after: &(HashMap<String, f64>, i64)) {
    let mut rows: Vec<(String, f64)> = after
        .0
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - before.0.get(k).unwrap_or(&0.0)) / PERSONAS as f64,
            )
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let detail: Vec<String> = rows.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
    println!(
        "    per day: {total:.1} auth-internal requests ({}); {:.1} PostgreSQL commits (stats lag: approximate)",
        detail.join(", "),
        (after.1 - before.1) as f64 / PERSONAS as f64
    );
}

/// Persona-days/s of one tick and the median `latencyMs` of its tool calls.
async fn round(
    auth: &Auth,
    runner: &TickRunner<PersonaTick>,
    spans: &Spans,
    label: &str,
) -> (f64, i64) {
    let pid = std::process::id();
    let counts0 = server_counts(auth).await;
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    let out = tokio::time::timeout(TICK_LIMIT, runner.run_now())
        .await
        .expect("tick exceeded its limit")
        .expect("tick refused");
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    check_report(&out);
    auth.verify_rows(&out.report.tick_id).await;
    let tool_p50 = auth
        .count(&format!(
            "SELECT (percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms))::bigint AS n \
             FROM persona_actions WHERE starts_with(tick_id, '{}.')",
            out.report.tick_id
        ))
        .await;
    let day = span_stats(&spans.take());
    let days_per_s = PERSONAS as f64 / secs;
    println!(
        "  {label:<26} {days_per_s:>6.1} persona-days/s  ({PERSONAS} days in {secs:>5.2} s; day mean {:>5.0} ms, p50 {:>5.0} ms, max {:>5.0} ms; \
         tool call p50 {tool_p50} ms; bench-process CPU {:>4.1} ms/day; rows ok: {} actions, {PERSONAS} ratings)",
        day.mean,
        day.p50,
        day.max,
        cpu * 1000.0 / PERSONAS as f64,
        PERSONAS * TOOL_CALLS,
    );
    print_server_counts(&counts0, &server_counts(auth).await);
    // Hourly personas are due again an hour later.
    auth.app.clock.advance(TimeDelta::minutes(61));
    (days_per_s, tool_p50)
}

/// `DAY_BENCH_CONCURRENCY` (comma-separated, e.g. `8,32`), else 1, 8 and 32.
fn concurrencies() -> Vec<usize> {
    std::env::var("DAY_BENCH_CONCURRENCY")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|c| c.trim().parse().ok())
                .filter(|&c| c > 0)
                .collect::<Vec<usize>>()
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| vec![1, 8, 32])
}

async fn throughput() {
    println!();
    println!(
        "1. throughput: zero-latency fake LLM (OpenAI wire format), {TOOL_CALLS} MCP tool calls/day \
         (todo_create/todo_list) + strict-JSON rating, real in-process auth-internal + PostgreSQL"
    );
    println!(
        "   (runner, auth-internal, fake LLM and PostgreSQL share the machine; the fake also validates \
         and records every request)"
    );
    let auth = Auth::spawn().await;
    auth.seed("tp").await;
    let mut entries = Vec::new();
    for concurrency in concurrencies() {
        // A fresh fake per runner bounds the requests it keeps in memory.
        let (fake, spans) = start_fake(Duration::ZERO).await;
        let (runner, handle) = spawn_runner(&auth, &fake, concurrency).await;
        round(
            &auth,
            &runner,
            &spans,
            &format!("concurrency {concurrency}, cold:"),
        )
        .await;
        let (days, tool_p50) = round(
            &auth,
            &runner,
            &spans,
            &format!("concurrency {concurrency}, warm:"),
        )
        .await;
        entries.push(Entry::new(
            format!("persona.days_per_s.c{concurrency}.warm"),
            days,
            "days/s",
        ));
        entries.push(Entry::new(
            format!("persona.tool_call.p50.c{concurrency}"),
            tool_p50 as f64,
            "ms",
        ));
        let bad = rejected(&fake);
        assert_eq!(bad, 0, "the fake rejected {bad} requests as malformed");
        handle.shutdown().await;
    }
    println!(
        "   cold = a fresh runner logs every persona in (as an hourly persona does in production, where \
         the 15-min token has expired); warm = token cached"
    );
    let path = test_support::bench::record(&entries).expect("write the bench summary");
    println!("   summary written to {}", path.display());
    auth.stop().await;
}

// ---------------------------------------------------------------------------------------
// 2. Memory
// ---------------------------------------------------------------------------------------

/// The child runner; killed and reaped on every path, panics included.
struct ChildGuard {
    child: Child,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples `VmRSS` of `pid` every 20 ms until `stop` (at most 5 min); returns the peak
/// in kB and when it was seen, relative to the start.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> thread::JoinHandle<(u64, Duration, usize)> {
    thread::spawn(move || {
        let started = Instant::now();
        let (mut peak, mut at, mut samples) = (0u64, Duration::ZERO, 0usize);
        for _ in 0..15_000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(kb) = status_kb(pid, "VmRSS") {
                samples += 1;
                if kb > peak {
                    peak = kb;
                    at = started.elapsed();
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        (peak, at, samples)
    })
}

async fn memory() {
    println!();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_persona-runner"));
    println!(
        "2. memory: {} as a child process, PERSONA_CONCURRENCY={PERSONAS}, fake LLM answers after {} ms \
         per reply (so all days overlap), {TOOL_CALLS} tool calls/day",
        bin.display(),
        MEMORY_DELAY.as_millis()
    );
    let auth = Auth::spawn().await;
    auth.seed("mem").await;
    let (fake, spans) = start_fake(MEMORY_DELAY).await;

    let port = free_port();
    let log = std::env::temp_dir().join(format!("persona-runner-bench-{}.log", std::process::id()));
    let out = File::create(&log).expect("child log file");
    let err = out.try_clone().expect("child log file");
    let mut cmd = Command::new(&bin);
    cmd.env_clear()
        .envs(runner_env(
            &auth.app.base,
            &fake.openai_base_url(),
            PERSONAS,
        ))
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("MANA_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let mut guard = ChildGuard {
        child: cmd.spawn().expect("spawn persona-runner"),
    };
    let pid = guard.child.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(TICK_LIMIT)
        .build()
        .expect("client");

    let mut ready = false;
    for _ in 0..200 {
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!(
                "persona-runner exited early ({status}); log: {}",
                log.display()
            );
        }
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "persona-runner /health not ready within 10 s; log: {}",
        log.display()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = status_kb(pid, "VmRSS").expect("VmRSS");
    let cpu0 = cpu_secs(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(pid, stop.clone());
    let t0 = Instant::now();
    let resp = client
        .post(format!("{base}/internal/tick"))
        .header("x-service-key", KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("tick: {e}; log: {}", log.display()));
    let status = resp.status();
    let body: Value = resp.json().await.expect("tick report");
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (sampled_peak, peak_at, samples) = sampler.join().expect("sampler");
    let hwm = status_kb(pid, "VmHWM").unwrap_or(0);
    let after = status_kb(pid, "VmRSS").unwrap_or(0);
    let cpu = cpu_secs(pid) - cpu0;
    drop(guard);

    assert!(status.is_success(), "tick: {status} {body}");
    let report: TickOutput = TickOutput {
        report: serde_json::from_value(body.clone()).expect("tick report shape"),
        error: body["error"].as_str().map(str::to_owned),
    };
    check_report(&report);
    auth.verify_rows(&report.report.tick_id).await;
    let spans = spans.take();
    let overlap = max_overlap(&spans);
    let day = span_stats(&spans);
    let (mean, max) = (day.mean, day.max);
    let bad = rejected(&fake);
    assert_eq!(bad, 0, "the fake rejected {bad} requests as malformed");

    let peak = sampled_peak.max(hwm);
    let per = |p: u64| mb(p.saturating_sub(idle)) / PERSONAS as f64;
    println!(
        "  tick: {PERSONAS} days ok in {secs:.2} s; {overlap} of {PERSONAS} days in flight at once (seen by the fake); \
         day mean {mean:.0} ms, max {max:.0} ms; rows ok: {} actions, {PERSONAS} ratings",
        PERSONAS * TOOL_CALLS
    );
    println!("  idle RSS (after /health):        {:>7.1} MB", mb(idle));
    println!(
        "  peak RSS sampled (20 ms, {samples} samples, at +{:.2} s): {:>7.1} MB",
        peak_at.as_secs_f64(),
        mb(sampled_peak)
    );
    println!("  VmHWM at the end:                {:>7.1} MB", mb(hwm));
    println!("  RSS after the tick:              {:>7.1} MB", mb(after));
    println!(
        "  (peak - idle) / {PERSONAS}:             {:>7.3} MB per concurrent persona (goal <= 2 MB; sampled peak only: {:.3} MB)",
        per(peak),
        per(sampled_peak)
    );
    println!(
        "  runner CPU: {:.1} ms per persona-day ({cpu:.2} s for {PERSONAS} days; runner alone would reach ~{:.0} persona-days/s per core)",
        cpu * 1000.0 / PERSONAS as f64,
        if cpu > 0.0 {
            PERSONAS as f64 / cpu
        } else {
            0.0
        }
    );
    println!("  child log: {}", log.display());
    auth.stop().await;
}
