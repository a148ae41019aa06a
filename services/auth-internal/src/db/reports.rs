//! The reports: modules scoreboard, a module's trend, failures by class and persona,
//! tokens by provider, model and kind. Plain SQL over rollups and indexed columns; the
//! statistics (mean, Student-t interval) are finished here from count, sum and sum of
//! squares, which give exactly what `avg` and `stddev_samp` give.
//!
//! Rules:
//! - Every period is half-open `[from, to)`; callers pass both bounds (no `now()` in SQL).
//! - Ratings, tool calls and tokens are read from the rollups of the migrations
//!   `2026-12-01-000050_report_rollups` and `…000070_report_rollup_deltas` (UTC hours;
//!   the per-persona breakdown UTC days) for the whole buckets of a period, and from the
//!   raw rows for the partial buckets at its edges ([`Split`]), so any bounds give exact
//!   results and no report reads more than two hours (two days for the persona breakdown)
//!   of raw rows.
//! - A rollup key may have several rows (the triggers append signed deltas; [`compact`]
//!   folds them), so every read sums its rows: never assume one row per key.
//! - Feedback belongs to a run through `tick_id` = the run id, actions through their tick
//!   id up to a batch suffix `~k` (`{runId}~k`, persona-runner's batches); the
//!   `appVersion` filter goes through that link to `persona_runs.app_version` (the
//!   rollups keep the version per row, moved by the triggers when a run is written).
//! - `__parse` rows (rating NULL) are counted apart and never enter a mean.
//! - Low notes are ratings ≤ 2 (the literal matches the partial index
//!   `persona_feedback_low_idx`; `types::reports::LOW_RATING_MAX` says the same).
//! - Each statement is served by an index; [`explained`] gives them to the benchmark,
//!   which prints their plans.
//! - Buckets are UTC (`date_trunc` on the UTC wall time; weeks start on Monday).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::{
    pg::Pg,
    prelude::*,
    query_builder::{BoxedSqlQuery, SqlQuery},
    sql_types::{Array, BigInt, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use statrs::distribution::{ContinuousCDF, StudentsT};
use types::{
    personas::PARSE_FAILURE_MODULE,
    reports::{
        Bucket, FailureExample, FailureGroup, FailuresReport, LOW_NOTES_PER_MODULE, LowNote,
        ModuleScore, ModuleTrend, ModulesReport, PeriodStats, PersonaBreakdown, TokenRow,
        TokensReport, TrendBucket,
    },
    tick::TokenUsage,
};
use uuid::Uuid;

use super::runs::tokens_of;

/// The 95 % Student-t interval of a mean of 1–5 ratings, clamped to `[1, 5]`.
/// `n = 0` → `None`; `n = 1` → `[1, 5]` (one rating says nothing about spread).
pub fn ci95(n: u64, mean: Option<f64>, sd: Option<f64>) -> Option<[f64; 2]> {
    let mean = mean?;
    match n {
        0 => None,
        1 => Some([1.0, 5.0]),
        _ => {
            let sd = sd.unwrap_or(0.0);
            #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
            let nf = n as f64;
            let t = StudentsT::new(0.0, 1.0, nf - 1.0)
                .map(|d| d.inverse_cdf(0.975))
                .unwrap_or(1.959_963_984_540_054);
            let half = t * sd / nf.sqrt();
            Some([(mean - half).max(1.0), (mean + half).min(5.0)])
        }
    }
}

/// A period `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// The period of the same length just before this one.
    pub fn previous(&self) -> Self {
        Self {
            from: self.from - (self.to - self.from),
            to: self.from,
        }
    }
}

/// Filter of the modules scoreboard.
#[derive(Debug, Clone)]
pub struct ModulesFilter {
    pub period: Period,
    /// Only ratings and tool calls of runs with this `app_version`.
    pub app_version: Option<String>,
}

/// Filter of a module's trend.
#[derive(Debug, Clone)]
pub struct TrendFilter {
    pub module: String,
    pub period: Period,
    pub bucket: Bucket,
}

/// Filter of the tokens report.
#[derive(Debug, Clone, Copy)]
pub struct TokensFilter {
    pub period: Period,
    pub bucket: Bucket,
}

#[derive(QueryableByName)]
struct NoteRow {
    #[diesel(sql_type = Text)]
    module: String,
    #[diesel(sql_type = Text)]
    tick_id: String,
    #[diesel(sql_type = SmallInt)]
    rating: i16,
    #[diesel(sql_type = Nullable<Text>)]
    notes: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// Prefix a statement gets: nothing to run it, `EXPLAIN …` for the benchmark's plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Explain,
}

impl Mode {
    fn prefix(self) -> &'static str {
        match self {
            Self::Run => "",
            Self::Explain => "EXPLAIN (ANALYZE, BUFFERS OFF) ",
        }
    }
}

/// A statement with its binds.
pub type Query = BoxedSqlQuery<'static, Pg, SqlQuery>;

fn query(mode: Mode, sql: &str) -> Query {
    diesel::sql_query(format!("{}{sql}", mode.prefix())).into_boxed()
}

/// A period cut at whole rollup buckets (UTC hours or days): `whole` is read from a
/// rollup, the two `edges` (possibly empty) from the raw rows. A period shorter than
/// one whole bucket is all edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub whole: Period,
    pub edges: [Period; 2],
}

fn floor_to(t: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    let s = t.timestamp().div_euclid(secs) * secs;
    DateTime::from_timestamp(s, 0).unwrap_or(t)
}

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

impl Split {
    /// `unit` in seconds: [`HOUR`] or [`DAY`] (Unix time has no leap seconds, so these
    /// are the UTC `date_trunc` buckets the rollups use).
    fn of(p: Period, unit: i64) -> Self {
        let floor_from = floor_to(p.from, unit);
        let ceil_from = if floor_from == p.from {
            p.from
        } else {
            floor_from + TimeDelta::seconds(unit)
        };
        let floor_to_ = floor_to(p.to, unit);
        if ceil_from >= floor_to_ {
            let empty = Period {
                from: p.to,
                to: p.to,
            };
            return Self {
                whole: empty,
                edges: [p, empty],
            };
        }
        Self {
            whole: Period {
                from: ceil_from,
                to: floor_to_,
            },
            edges: [
                Period {
                    from: p.from,
                    to: ceil_from,
                },
                Period {
                    from: floor_to_,
                    to: p.to,
                },
            ],
        }
    }

    /// Binds `whole.from, whole.to, edge0.from, edge0.to, edge1.from, edge1.to` in order.
    fn bind(self, q: Query) -> Query {
        q.bind::<Timestamptz, _>(self.whole.from)
            .bind::<Timestamptz, _>(self.whole.to)
            .bind::<Timestamptz, _>(self.edges[0].from)
            .bind::<Timestamptz, _>(self.edges[0].to)
            .bind::<Timestamptz, _>(self.edges[1].from)
            .bind::<Timestamptz, _>(self.edges[1].to)
    }
}

/// Count, sum and sum of squares of ratings: the mean and the sample standard deviation
/// exactly as `avg` and `stddev_samp` give them. Loaded from the columns `n`, `s`, `ss`
/// (embedded in each row type of the rating queries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct Sums {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
    #[diesel(sql_type = BigInt, column_name = s)]
    pub sum: i64,
    #[diesel(sql_type = BigInt, column_name = ss)]
    pub sum_sq: i64,
}

impl Sums {
    #[expect(clippy::cast_precision_loss, reason = "sums far below 2^52")]
    pub fn mean(self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / self.n as f64)
    }

    /// `sqrt((n·Σx² − (Σx)²) / (n(n − 1)))`, the numerator in exact integers.
    #[expect(clippy::cast_precision_loss, reason = "sums far below 2^52")]
    pub fn sd(self) -> Option<f64> {
        (self.n > 1).then(|| {
            let (n, s, ss) = (
                i128::from(self.n),
                i128::from(self.sum),
                i128::from(self.sum_sq),
            );
            let num = (n * ss - s * s).max(0) as f64;
            (num / (n * (n - 1)) as f64).sqrt()
        })
    }

    pub fn ci95(self) -> Option<[f64; 2]> {
        ci95(u64_of(self.n), self.mean(), self.sd())
    }
}

/// One raw arm of a rollup read: `{select}` over `persona_feedback f` (or the table in
/// `from`) in `[${lo}, ${hi})` of `{column}`, grouped by `{group}`.
fn raw_arm(
    select: &str,
    from: &str,
    column: &str,
    lo: u8,
    hi: u8,
    cond: &str,
    group: &str,
) -> String {
    format!(
        "SELECT {select} FROM {from} WHERE {column} >= ${lo} AND {column} < ${hi} {cond} GROUP BY {group}"
    )
}

#[derive(QueryableByName)]
struct RatingSums {
    #[diesel(sql_type = Text)]
    module: String,
    #[diesel(embed)]
    sums: Sums,
    #[diesel(sql_type = BigInt)]
    unparsed: i64,
}

/// Per module: ratings' sums and unparsed rows of one period, whole hours from
/// `report_ratings_hourly`, edges from `persona_feedback_created_idx`.
/// Binds: the [`Split`] ($1–$6) [, $7 app version].
fn ratings_sql(by_version: bool) -> String {
    let (cond, join) = if by_version {
        (
            "AND app_version = $7",
            "persona_feedback f JOIN persona_runs r ON r.id = f.tick_id AND r.app_version = $7",
        )
    } else {
        ("", "persona_feedback f")
    };
    let select = "f.module, count(f.rating), coalesce(sum(f.rating), 0), \
                  coalesce(sum(f.rating * f.rating), 0), count(*) - count(f.rating)";
    format!(
        "SELECT module, sum(n)::int8 AS n, sum(s)::int8 AS s, sum(ss)::int8 AS ss, \
                sum(u)::int8 AS unparsed FROM ( \
           SELECT module, n, sum AS s, sum_sq AS ss, unparsed AS u FROM report_ratings_hourly \
           WHERE hour >= $1 AND hour < $2 {cond} \
           UNION ALL {} UNION ALL {}) AS x \
         GROUP BY module HAVING sum(n) > 0 OR sum(u) > 0",
        raw_arm(select, join, "f.created_at", 3, 4, "", "f.module"),
        raw_arm(select, join, "f.created_at", 5, 6, "", "f.module"),
    )
}

#[derive(QueryableByName)]
struct CallSums {
    #[diesel(sql_type = Text)]
    module: String,
    #[diesel(sql_type = BigInt)]
    calls: i64,
    #[diesel(sql_type = BigInt)]
    errors: i64,
}

/// Per module: tool calls and errors of one period, whole hours from
/// `report_calls_hourly`, edges from `persona_actions_created_idx`. A batch's tick id
/// `{runId}~k` belongs to run `runId`. Binds: the [`Split`] ($1–$6) [, $7 app version].
fn calls_sql(by_version: bool) -> String {
    let (cond, join) = if by_version {
        (
            "AND app_version = $7",
            "persona_actions a JOIN persona_runs r \
             ON r.id = split_part(a.tick_id, '~', 1) AND r.app_version = $7",
        )
    } else {
        ("", "persona_actions a")
    };
    let select = "a.module, count(*), count(*) FILTER (WHERE a.result = 'error')";
    format!(
        "SELECT module, sum(calls)::int8 AS calls, sum(errors)::int8 AS errors FROM ( \
           SELECT module, calls, errors FROM report_calls_hourly \
           WHERE hour >= $1 AND hour < $2 {cond} \
           UNION ALL {} UNION ALL {}) AS x \
         GROUP BY module HAVING sum(calls) > 0",
        raw_arm(select, join, "a.created_at", 3, 4, "", "a.module"),
        raw_arm(select, join, "a.created_at", 5, 6, "", "a.module"),
    )
}

/// The newest low notes of each module, over `persona_feedback_low_idx`.
/// Binds: $1 modules, $2 from, $3 to, $4 per module [, $5 app version].
fn notes_sql(by_version: bool) -> String {
    let cond = if by_version {
        "AND EXISTS (SELECT 1 FROM persona_runs r WHERE r.id = f.tick_id AND r.app_version = $5)"
    } else {
        ""
    };
    format!(
        "SELECT m.module, l.tick_id, l.rating, l.notes, l.created_at \
         FROM unnest($1::text[]) AS m(module) \
         CROSS JOIN LATERAL ( \
           SELECT f.tick_id, f.rating, f.notes, f.created_at FROM persona_feedback f \
           WHERE f.module = m.module AND f.rating <= 2 \
             AND f.created_at >= $2 AND f.created_at < $3 {cond} \
           ORDER BY f.created_at DESC, f.id DESC LIMIT $4) AS l \
         ORDER BY m.module, l.created_at DESC"
    )
}

fn with_version(q: Query, version: Option<&str>) -> Query {
    match version {
        Some(v) => q.bind::<Text, _>(v.to_owned()),
        None => q,
    }
}

fn ratings_query(mode: Mode, p: Period, version: Option<&str>) -> Query {
    let q = Split::of(p, HOUR).bind(query(mode, &ratings_sql(version.is_some())));
    with_version(q, version)
}

fn calls_query(mode: Mode, p: Period, version: Option<&str>) -> Query {
    let q = Split::of(p, HOUR).bind(query(mode, &calls_sql(version.is_some())));
    with_version(q, version)
}

fn notes_query(mode: Mode, modules: Vec<String>, p: Period, version: Option<&str>) -> Query {
    let per = i64::try_from(LOW_NOTES_PER_MODULE).unwrap_or(3);
    let q = query(mode, &notes_sql(version.is_some()))
        .bind::<Array<Text>, _>(modules)
        .bind::<Timestamptz, _>(p.from)
        .bind::<Timestamptz, _>(p.to)
        .bind::<BigInt, _>(per);
    match version {
        Some(v) => q.bind::<Text, _>(v.to_owned()),
        None => q,
    }
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn share(errors: i64, calls: i64) -> Option<f64> {
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    (calls > 0).then(|| errors as f64 / calls as f64)
}

/// The setting the scoreboard's statements run with (see [`modules`]).
pub const SCOREBOARD_SETTING: &str = "max_parallel_workers_per_gather = 0";

/// `GET …/reports/modules`: see `types::reports::ModulesReport`. Its statements run in
/// one transaction, so they see one snapshot, and without parallel workers: each reads a
/// few thousand rows, and starting workers would cost more than it saves (tens of ms on
/// a loaded host, the benchmark showed).
pub async fn modules(
    conn: &mut AsyncPgConnection,
    f: &ModulesFilter,
) -> QueryResult<ModulesReport> {
    use diesel_async::AsyncConnection;
    conn.transaction(async |c| {
        diesel::sql_query(format!("SET LOCAL {SCOREBOARD_SETTING}"))
            .execute(c)
            .await?;
        modules_in(c, f).await
    })
    .await
}

async fn modules_in(conn: &mut AsyncPgConnection, f: &ModulesFilter) -> QueryResult<ModulesReport> {
    let p = f.period;
    let version = f.app_version.as_deref();
    let current: Vec<RatingSums> = ratings_query(Mode::Run, p, version).load(conn).await?;
    let previous: Vec<RatingSums> = ratings_query(Mode::Run, p.previous(), version)
        .load(conn)
        .await?;
    let calls: Vec<CallSums> = calls_query(Mode::Run, p, version).load(conn).await?;

    let mut parse_failures = 0u64;
    let mut scores: BTreeMap<String, ModuleScore> = BTreeMap::new();
    let blank = |module: &str| ModuleScore {
        module: module.to_owned(),
        n: 0,
        mean: None,
        ci95: None,
        previous: PeriodStats { n: 0, mean: None },
        delta: None,
        error_share: None,
        tool_calls: 0,
        low_notes: Vec::new(),
    };
    for r in current {
        parse_failures += u64_of(r.unparsed);
        if r.module == PARSE_FAILURE_MODULE {
            continue;
        }
        let sums = r.sums;
        let s = scores
            .entry(r.module.clone())
            .or_insert_with(|| blank(&r.module));
        s.n = u64_of(sums.n);
        s.mean = sums.mean();
        s.ci95 = sums.ci95();
    }
    for r in previous {
        if r.module == PARSE_FAILURE_MODULE {
            continue;
        }
        let sums = r.sums;
        let s = scores
            .entry(r.module.clone())
            .or_insert_with(|| blank(&r.module));
        s.previous = PeriodStats {
            n: u64_of(sums.n),
            mean: sums.mean(),
        };
    }
    for s in scores.values_mut() {
        s.delta = s.mean.zip(s.previous.mean).map(|(a, b)| a - b);
    }
    for c in calls {
        let s = scores
            .entry(c.module.clone())
            .or_insert_with(|| blank(&c.module));
        s.tool_calls = u64_of(c.calls);
        s.error_share = share(c.errors, c.calls);
    }

    let names: Vec<String> = scores
        .values()
        .filter(|s| s.n > 0)
        .map(|s| s.module.clone())
        .collect();
    if !names.is_empty() {
        let notes: Vec<NoteRow> = notes_query(Mode::Run, names, p, version).load(conn).await?;
        for n in notes {
            if let Some(s) = scores.get_mut(&n.module) {
                s.low_notes.push(LowNote {
                    run_id: n.tick_id,
                    rating: n.rating,
                    notes: n.notes,
                    at: n.created_at,
                });
            }
        }
    }

    let mut modules: Vec<ModuleScore> = scores.into_values().collect();
    // Worst first: lowest mean; modules without ratings in the period last; then by name.
    modules.sort_by(|a, b| match (a.mean, b.mean) {
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.module.cmp(&b.module)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.module.cmp(&b.module),
    });
    Ok(ModulesReport {
        from: p.from,
        to: p.to,
        app_version: f.app_version.clone(),
        modules,
        parse_failures,
    })
}

#[derive(QueryableByName)]
struct BucketSums {
    #[diesel(sql_type = Timestamptz)]
    start: DateTime<Utc>,
    #[diesel(embed)]
    sums: Sums,
}

#[derive(QueryableByName)]
struct PersonaSums {
    #[diesel(sql_type = SqlUuid)]
    persona_id: Uuid,
    #[diesel(sql_type = Text)]
    slug: String,
    #[diesel(embed)]
    sums: Sums,
}

/// `date_trunc` of a timestamptz in UTC, back as a timestamptz. `$b` is the bucket name.
fn utc_trunc(bind: &str, column: &str) -> String {
    format!("(date_trunc({bind}, {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')")
}

/// A module's buckets: whole hours from `report_ratings_hourly_module_idx`, edges from
/// `persona_feedback_module_trend_idx`. Binds: the [`Split`] ($1–$6), $7 module, $8 bucket.
fn trend_buckets_sql() -> String {
    let select = format!(
        "{} AS start, count(*), sum(f.rating), sum(f.rating * f.rating)",
        utc_trunc("$8", "f.created_at")
    );
    let cond = "AND f.module = $7 AND f.rating IS NOT NULL";
    format!(
        "SELECT start, sum(n)::int8 AS n, sum(s)::int8 AS s, sum(ss)::int8 AS ss FROM ( \
           SELECT {start} AS start, n, sum AS s, sum_sq AS ss FROM report_ratings_hourly \
           WHERE module = $7 AND hour >= $1 AND hour < $2 \
           UNION ALL {} UNION ALL {}) AS x \
         GROUP BY start HAVING sum(n) > 0 ORDER BY start",
        raw_arm(
            &select,
            "persona_feedback f",
            "f.created_at",
            3,
            4,
            cond,
            "1"
        ),
        raw_arm(
            &select,
            "persona_feedback f",
            "f.created_at",
            5,
            6,
            cond,
            "1"
        ),
        start = utc_trunc("$8", "hour"),
    )
}

/// A module's per-persona sums: whole days from `report_ratings_daily`, edges from
/// `persona_feedback_module_trend_idx`. Binds: the day [`Split`] ($1–$6), $7 module.
fn trend_personas_sql() -> String {
    let select = "f.persona_id, count(*), sum(f.rating), sum(f.rating * f.rating)";
    let cond = "AND f.module = $7 AND f.rating IS NOT NULL";
    format!(
        "SELECT a.persona_id, p.slug, a.n, a.s, a.ss FROM ( \
           SELECT persona_id, sum(n)::int8 AS n, sum(s)::int8 AS s, sum(ss)::int8 AS ss FROM ( \
             SELECT persona_id, n, sum AS s, sum_sq AS ss FROM report_ratings_daily \
             WHERE module = $7 AND day >= $1 AND day < $2 \
             UNION ALL {} UNION ALL {}) AS x \
           GROUP BY persona_id HAVING sum(n) > 0) AS a \
         JOIN personas p ON p.user_id = a.persona_id",
        raw_arm(
            select,
            "persona_feedback f",
            "f.created_at",
            3,
            4,
            cond,
            "1"
        ),
        raw_arm(
            select,
            "persona_feedback f",
            "f.created_at",
            5,
            6,
            cond,
            "1"
        ),
    )
}

fn trend_buckets_query(mode: Mode, f: &TrendFilter) -> Query {
    Split::of(f.period, HOUR)
        .bind(query(mode, &trend_buckets_sql()))
        .bind::<Text, _>(f.module.clone())
        .bind::<Text, _>(f.bucket.as_str())
}

fn trend_personas_query(mode: Mode, f: &TrendFilter) -> Query {
    Split::of(f.period, DAY)
        .bind(query(mode, &trend_personas_sql()))
        .bind::<Text, _>(f.module.clone())
}

/// `GET …/reports/modules/{module}/trend`.
pub async fn module_trend(
    conn: &mut AsyncPgConnection,
    f: &TrendFilter,
) -> QueryResult<ModuleTrend> {
    let buckets: Vec<BucketSums> = trend_buckets_query(Mode::Run, f).load(conn).await?;
    let personas: Vec<PersonaSums> = trend_personas_query(Mode::Run, f).load(conn).await?;
    let mut personas: Vec<PersonaBreakdown> = personas
        .into_iter()
        .map(|p| {
            let sums = p.sums;
            PersonaBreakdown {
                persona_id: p.persona_id,
                slug: p.slug,
                n: u64_of(sums.n),
                mean: sums.mean(),
                ci95: sums.ci95(),
            }
        })
        .collect();
    personas.sort_by(|a, b| {
        a.mean
            .unwrap_or(f64::MAX)
            .total_cmp(&b.mean.unwrap_or(f64::MAX))
            .then_with(|| a.slug.cmp(&b.slug))
    });
    Ok(ModuleTrend {
        module: f.module.clone(),
        from: f.period.from,
        to: f.period.to,
        bucket: f.bucket,
        buckets: buckets
            .into_iter()
            .map(|b| {
                let sums = b.sums;
                TrendBucket {
                    start: b.start,
                    n: u64_of(sums.n),
                    mean: sums.mean(),
                    ci95: sums.ci95(),
                }
            })
            .collect(),
        personas,
    })
}

#[derive(QueryableByName)]
struct FailureAgg {
    #[diesel(sql_type = Text)]
    error_class: String,
    #[diesel(sql_type = SqlUuid)]
    persona_id: Uuid,
    #[diesel(sql_type = Text)]
    slug: String,
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = Timestamptz)]
    first_seen: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    last_seen: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    example_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    example_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    example_at: DateTime<Utc>,
}

/// Failed and simulator-failed runs of `[from, to)` grouped by class and persona, over
/// the partial index `persona_runs_failures_idx`. Binds: $1 from, $2 to.
pub const FAILURES_SQL: &str = "SELECT g.error_class, g.persona_id, p.slug, g.count, g.first_seen, g.last_seen, \
            g.example_id, r.error AS example_error, r.started_at AS example_at \
     FROM ( \
       SELECT coalesce(error_class, 'unknown') AS error_class, persona_id, count(*) AS count, \
              min(started_at) AS first_seen, max(started_at) AS last_seen, \
              (array_agg(id ORDER BY started_at DESC, id DESC))[1] AS example_id \
       FROM persona_runs \
       WHERE outcome IN ('failed', 'simulator_failure') AND started_at >= $1 AND started_at < $2 \
       GROUP BY 1, 2) AS g \
     CROSS JOIN LATERAL ( \
       SELECT x.error, x.started_at FROM persona_runs x WHERE x.id = g.example_id LIMIT 1) AS r \
     JOIN personas p ON p.user_id = g.persona_id \
     ORDER BY g.count DESC, g.last_seen DESC, g.error_class, p.slug";

/// `GET …/reports/failures`.
pub async fn failures(conn: &mut AsyncPgConnection, period: Period) -> QueryResult<FailuresReport> {
    let rows: Vec<FailureAgg> = diesel::sql_query(FAILURES_SQL)
        .bind::<Timestamptz, _>(period.from)
        .bind::<Timestamptz, _>(period.to)
        .load(conn)
        .await?;
    let total = rows.iter().map(|r| u64_of(r.count)).sum();
    Ok(FailuresReport {
        from: period.from,
        to: period.to,
        total,
        groups: rows
            .into_iter()
            .map(|r| FailureGroup {
                error_class: r.error_class,
                persona_id: r.persona_id,
                slug: r.slug,
                count: u64_of(r.count),
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                example: FailureExample {
                    run_id: r.example_id,
                    error: r.example_error,
                    at: r.example_at,
                },
            })
            .collect(),
    })
}

#[derive(QueryableByName)]
struct TokenAgg {
    #[diesel(sql_type = Timestamptz)]
    start: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    model: String,
    #[diesel(sql_type = BigInt)]
    runs: i64,
    #[diesel(sql_type = BigInt)]
    input: i64,
    #[diesel(sql_type = BigInt)]
    output: i64,
    #[diesel(sql_type = BigInt)]
    cache_read: i64,
    #[diesel(sql_type = BigInt)]
    cache_write: i64,
}

/// Whole hours from `report_tokens_hourly`, edges from `persona_runs_started_idx` (its
/// INCLUDE columns make them index-only scans). Binds: the [`Split`] ($1–$6), $7 bucket.
fn tokens_sql() -> String {
    let select = format!(
        "{} AS start, provider, model, count(*), sum(tokens_input), sum(tokens_output), \
         sum(tokens_cache_read), sum(tokens_cache_write)",
        utc_trunc("$7", "started_at")
    );
    format!(
        "SELECT start, provider, model, sum(runs)::int8 AS runs, sum(i)::int8 AS input, \
                sum(o)::int8 AS output, sum(cr)::int8 AS cache_read, sum(cw)::int8 AS cache_write \
         FROM ( \
           SELECT {start} AS start, provider, model, runs, input AS i, output AS o, \
                  cache_read AS cr, cache_write AS cw \
           FROM report_tokens_hourly WHERE hour >= $1 AND hour < $2 \
           UNION ALL {} UNION ALL {}) AS x \
         GROUP BY 1, 2, 3 HAVING sum(runs) > 0 ORDER BY 1, 2, 3",
        raw_arm(&select, "persona_runs", "started_at", 3, 4, "", "1, 2, 3"),
        raw_arm(&select, "persona_runs", "started_at", 5, 6, "", "1, 2, 3"),
        start = utc_trunc("$7", "hour"),
    )
}

fn tokens_query(mode: Mode, f: TokensFilter) -> Query {
    Split::of(f.period, HOUR)
        .bind(query(mode, &tokens_sql()))
        .bind::<Text, _>(f.bucket.as_str())
}

/// Folds the rollups' delta rows into one row per key (`report_compact()`); returns the
/// folded rows written, 0 when another connection is compacting. Any time is safe: a
/// report sums a key's rows, and rows written meanwhile wait for the next call.
pub async fn compact(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Folded {
        #[diesel(sql_type = BigInt)]
        folded: i64,
    }
    let row: Folded = diesel::sql_query("SELECT report_compact() AS folded")
        .get_result(conn)
        .await?;
    Ok(row.folded)
}

/// `GET …/reports/tokens`.
pub async fn tokens(conn: &mut AsyncPgConnection, f: TokensFilter) -> QueryResult<TokensReport> {
    let rows: Vec<TokenAgg> = tokens_query(Mode::Run, f).load(conn).await?;
    let mut total = TokenUsage::default();
    let rows = rows
        .into_iter()
        .map(|r| {
            let tokens = tokens_of(r.input, r.output, r.cache_read, r.cache_write);
            total.add(tokens);
            TokenRow {
                start: r.start,
                provider: r.provider,
                model: r.model,
                runs: u64_of(r.runs),
                tokens,
            }
        })
        .collect();
    Ok(TokensReport {
        from: f.period.from,
        to: f.period.to,
        bucket: f.bucket,
        rows,
        total,
    })
}

/// The statements of each report for `EXPLAIN (ANALYZE)` (the benchmark prints their
/// plans): a default request over `period`, module `module`, app version `version`.
pub fn explained(period: Period, module: &str, version: &str) -> Vec<(&'static str, Query)> {
    let trend = |bucket| TrendFilter {
        module: module.to_owned(),
        period,
        bucket,
    };
    let modules: Vec<String> = vec![module.to_owned()];
    vec![
        (
            "modules: ratings",
            ratings_query(Mode::Explain, period, None),
        ),
        (
            "modules: previous ratings",
            ratings_query(Mode::Explain, period.previous(), None),
        ),
        (
            "modules: tool calls",
            calls_query(Mode::Explain, period, None),
        ),
        (
            "modules: low notes",
            notes_query(Mode::Explain, modules.clone(), period, None),
        ),
        (
            "modules appVersion: ratings",
            ratings_query(Mode::Explain, period, Some(version)),
        ),
        (
            "modules appVersion: tool calls",
            calls_query(Mode::Explain, period, Some(version)),
        ),
        (
            "modules appVersion: low notes",
            notes_query(Mode::Explain, modules, period, Some(version)),
        ),
        (
            "trend: buckets",
            trend_buckets_query(Mode::Explain, &trend(Bucket::Day)),
        ),
        (
            "trend: personas",
            trend_personas_query(Mode::Explain, &trend(Bucket::Day)),
        ),
        (
            "failures",
            query(Mode::Explain, FAILURES_SQL)
                .bind::<Timestamptz, _>(period.from)
                .bind::<Timestamptz, _>(period.to),
        ),
        (
            "tokens",
            tokens_query(
                Mode::Explain,
                TokensFilter {
                    period,
                    bucket: Bucket::Day,
                },
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn the_interval_is_student_t_and_clamped() {
        // Ratings 2, 4: mean 3, sd √2, t(0.975, 1) = 12.706 → ±12.7 → clamped to [1, 5].
        assert_eq!(ci95(2, Some(3.0), Some(2f64.sqrt())), Some([1.0, 5.0]));
        // Ratings 3,4,5,4,3,4,5,4,3,5 (n = 10): mean 4.0, sd 0.8165,
        // t(0.975, 9) = 2.262157 → half-width 0.584.
        let [lo, hi] = ci95(10, Some(4.0), Some(0.816_496_580_927_726)).unwrap();
        assert!((lo - 3.415_913).abs() < 1e-4, "{lo}");
        assert!((hi - 4.584_087).abs() < 1e-4, "{hi}");
        assert_eq!(ci95(1, Some(2.0), None), Some([1.0, 5.0]));
        assert_eq!(ci95(0, None, None), None);
        // No spread: a point interval.
        assert_eq!(ci95(5, Some(4.0), Some(0.0)), Some([4.0, 4.0]));
    }

    #[test]
    fn the_previous_period_has_the_same_length() {
        let to = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let from = DateTime::from_timestamp(400_000, 0).unwrap();
        let p = Period { from, to }.previous();
        assert_eq!(p.to, from);
        assert_eq!(p.from, DateTime::from_timestamp(-200_000, 0).unwrap());
    }

    #[test]
    fn periods_split_at_whole_hours_and_days() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let p = Period {
            from: t("2026-11-11T12:30:00Z"),
            to: t("2026-11-18T12:00:00Z"),
        };
        let s = Split::of(p, HOUR);
        assert_eq!(
            (s.whole.from, s.whole.to),
            (t("2026-11-11T13:00:00Z"), p.to)
        );
        assert_eq!((s.edges[0].from, s.edges[0].to), (p.from, s.whole.from));
        assert_eq!(s.edges[1].from, s.edges[1].to);
        let d = Split::of(p, DAY);
        assert_eq!(
            (d.whole.from, d.whole.to),
            (t("2026-11-12T00:00:00Z"), t("2026-11-18T00:00:00Z"))
        );
        assert_eq!(
            (d.edges[1].from, d.edges[1].to),
            (t("2026-11-18T00:00:00Z"), p.to)
        );
        // Shorter than one whole bucket: all edge, the rollup range empty.
        let short = Period {
            from: t("2026-11-11T12:10:00Z"),
            to: t("2026-11-11T13:50:00Z"),
        };
        let s = Split::of(short, HOUR);
        assert_eq!(s.edges[0], short);
        assert_eq!(s.whole.from, s.whole.to);
    }

    #[test]
    fn sums_give_the_mean_and_sample_deviation() {
        // 3,4,5,4,3,4,5,4,3,5: n 10, Σ 40, Σx² 166 → mean 4, sd 0.8165.
        let s = Sums {
            n: 10,
            sum: 40,
            sum_sq: 166,
        };
        assert_eq!(s.mean(), Some(4.0));
        assert!((s.sd().unwrap() - 0.816_496_580_927_726).abs() < 1e-12);
        assert_eq!(
            Sums {
                n: 1,
                sum: 2,
                sum_sq: 4
            }
            .sd(),
            None
        );
        assert_eq!(Sums::default().mean(), None);
    }
}
