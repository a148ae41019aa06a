//! The reports: modules scoreboard, a module's trend, failures by class and persona,
//! tokens by provider, model and kind. Plain SQL over indexed columns; the statistics
//! (mean, Student-t interval) are finished here from `count`, `avg` and `stddev_samp`.
//!
//! Rules:
//! - Every period is half-open `[from, to)`; callers pass both bounds (no `now()` in SQL).
//! - Feedback and actions belong to a run through `tick_id` = the run id; the
//!   `appVersion` filter goes through that link to `persona_runs.app_version`.
//! - `__parse` rows (rating NULL) are counted apart and never enter a mean.
//! - Low notes are ratings ≤ 2 (the literal matches the partial index
//!   `persona_feedback_low_idx`; `types::reports::LOW_RATING_MAX` says the same).
//! - Each report is a few statements, each served by an index named in the migration
//!   `2026-12-01-000010_persona_runs`; the benchmark prints their plans.
//! - Buckets are UTC (`date_trunc` on the UTC wall time; weeks start on Monday).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Array, BigInt, Double, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid},
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
struct RatingAgg {
    #[diesel(sql_type = Text)]
    module: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Double>)]
    mean: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    sd: Option<f64>,
    #[diesel(sql_type = BigInt)]
    prev_n: i64,
    #[diesel(sql_type = Nullable<Double>)]
    prev_mean: Option<f64>,
    #[diesel(sql_type = BigInt)]
    unparsed: i64,
}

#[derive(QueryableByName)]
struct CallAgg {
    #[diesel(sql_type = Text)]
    module: String,
    #[diesel(sql_type = BigInt)]
    calls: i64,
    #[diesel(sql_type = BigInt)]
    errors: i64,
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

/// Ratings of both periods in one pass over `persona_feedback_created_idx`.
/// Binds: $1 previous from, $2 from, $3 to [, $4 app version].
fn ratings_sql(by_version: bool) -> String {
    let (join, cond) = if by_version {
        (
            "JOIN persona_runs r ON r.id = f.tick_id",
            "AND r.app_version = $4",
        )
    } else {
        ("", "")
    };
    format!(
        "SELECT f.module, \
           count(f.rating) FILTER (WHERE f.created_at >= $2) AS n, \
           (avg(f.rating) FILTER (WHERE f.created_at >= $2))::float8 AS mean, \
           (stddev_samp(f.rating) FILTER (WHERE f.created_at >= $2))::float8 AS sd, \
           count(f.rating) FILTER (WHERE f.created_at < $2) AS prev_n, \
           (avg(f.rating) FILTER (WHERE f.created_at < $2))::float8 AS prev_mean, \
           count(*) FILTER (WHERE f.rating IS NULL AND f.created_at >= $2) AS unparsed \
         FROM persona_feedback f {join} \
         WHERE f.created_at >= $1 AND f.created_at < $3 {cond} \
         GROUP BY f.module"
    )
}

/// Tool calls and errors per module over `persona_actions_created_idx`.
/// Binds: $1 from, $2 to [, $3 app version].
fn calls_sql(by_version: bool) -> String {
    let (join, cond) = if by_version {
        (
            "JOIN persona_runs r ON r.id = a.tick_id",
            "AND r.app_version = $3",
        )
    } else {
        ("", "")
    };
    format!(
        "SELECT a.module, count(*) AS calls, count(*) FILTER (WHERE a.result = 'error') AS errors \
         FROM persona_actions a {join} \
         WHERE a.created_at >= $1 AND a.created_at < $2 {cond} \
         GROUP BY a.module"
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

/// The SQL statements of the scoreboard (for the benchmark's plans).
pub fn modules_statements(by_version: bool) -> [String; 3] {
    [
        ratings_sql(by_version),
        calls_sql(by_version),
        notes_sql(by_version),
    ]
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn share(errors: i64, calls: i64) -> Option<f64> {
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    (calls > 0).then(|| errors as f64 / calls as f64)
}

/// `GET …/reports/modules`: see `types::reports::ModulesReport`.
pub async fn modules(
    conn: &mut AsyncPgConnection,
    f: &ModulesFilter,
) -> QueryResult<ModulesReport> {
    let p = f.period;
    let prev = p.previous();
    let by_version = f.app_version.is_some();
    let version = f.app_version.clone().unwrap_or_default();

    let ratings: Vec<RatingAgg> = if by_version {
        diesel::sql_query(ratings_sql(true))
            .bind::<Timestamptz, _>(prev.from)
            .bind::<Timestamptz, _>(p.from)
            .bind::<Timestamptz, _>(p.to)
            .bind::<Text, _>(&version)
            .load(conn)
            .await?
    } else {
        diesel::sql_query(ratings_sql(false))
            .bind::<Timestamptz, _>(prev.from)
            .bind::<Timestamptz, _>(p.from)
            .bind::<Timestamptz, _>(p.to)
            .load(conn)
            .await?
    };
    let calls: Vec<CallAgg> = if by_version {
        diesel::sql_query(calls_sql(true))
            .bind::<Timestamptz, _>(p.from)
            .bind::<Timestamptz, _>(p.to)
            .bind::<Text, _>(&version)
            .load(conn)
            .await?
    } else {
        diesel::sql_query(calls_sql(false))
            .bind::<Timestamptz, _>(p.from)
            .bind::<Timestamptz, _>(p.to)
            .load(conn)
            .await?
    };

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
    for r in ratings {
        if r.module == PARSE_FAILURE_MODULE {
            parse_failures += u64_of(r.unparsed);
            continue;
        }
        parse_failures += u64_of(r.unparsed);
        let n = u64_of(r.n);
        let prev_n = u64_of(r.prev_n);
        let s = scores
            .entry(r.module.clone())
            .or_insert_with(|| blank(&r.module));
        s.n = n;
        s.mean = r.mean;
        s.ci95 = ci95(n, r.mean, r.sd);
        s.previous = PeriodStats {
            n: prev_n,
            mean: r.prev_mean,
        };
        s.delta = r.mean.zip(r.prev_mean).map(|(a, b)| a - b);
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
        let per = i64::try_from(LOW_NOTES_PER_MODULE).unwrap_or(3);
        let notes: Vec<NoteRow> = if by_version {
            diesel::sql_query(notes_sql(true))
                .bind::<Array<Text>, _>(&names)
                .bind::<Timestamptz, _>(p.from)
                .bind::<Timestamptz, _>(p.to)
                .bind::<BigInt, _>(per)
                .bind::<Text, _>(&version)
                .load(conn)
                .await?
        } else {
            diesel::sql_query(notes_sql(false))
                .bind::<Array<Text>, _>(&names)
                .bind::<Timestamptz, _>(p.from)
                .bind::<Timestamptz, _>(p.to)
                .bind::<BigInt, _>(per)
                .load(conn)
                .await?
        };
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
struct BucketAgg {
    #[diesel(sql_type = Timestamptz)]
    start: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Double>)]
    mean: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    sd: Option<f64>,
}

#[derive(QueryableByName)]
struct PersonaAgg {
    #[diesel(sql_type = SqlUuid)]
    persona_id: Uuid,
    #[diesel(sql_type = Text)]
    slug: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Double>)]
    mean: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    sd: Option<f64>,
}

/// `date_trunc` of a timestamptz in UTC, back as a timestamptz. `$b` is the bucket name.
fn utc_trunc(bind: &str, column: &str) -> String {
    format!("(date_trunc({bind}, {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')")
}

/// Binds: $1 module, $2 from, $3 to, $4 bucket.
pub fn trend_buckets_sql() -> String {
    format!(
        "SELECT {start} AS start, count(f.rating) AS n, avg(f.rating)::float8 AS mean, \
                stddev_samp(f.rating)::float8 AS sd \
         FROM persona_feedback f \
         WHERE f.module = $1 AND f.created_at >= $2 AND f.created_at < $3 AND f.rating IS NOT NULL \
         GROUP BY 1 ORDER BY 1",
        start = utc_trunc("$4", "f.created_at")
    )
}

/// Binds: $1 module, $2 from, $3 to.
pub const TREND_PERSONAS_SQL: &str = "SELECT a.persona_id, p.slug, a.n, a.mean, a.sd FROM ( \
       SELECT f.persona_id, count(f.rating) AS n, avg(f.rating)::float8 AS mean, \
              stddev_samp(f.rating)::float8 AS sd \
       FROM persona_feedback f \
       WHERE f.module = $1 AND f.created_at >= $2 AND f.created_at < $3 AND f.rating IS NOT NULL \
       GROUP BY f.persona_id) AS a \
     JOIN personas p ON p.user_id = a.persona_id";

/// `GET …/reports/modules/{module}/trend`.
pub async fn module_trend(
    conn: &mut AsyncPgConnection,
    f: &TrendFilter,
) -> QueryResult<ModuleTrend> {
    let buckets: Vec<BucketAgg> = diesel::sql_query(trend_buckets_sql())
        .bind::<Text, _>(&f.module)
        .bind::<Timestamptz, _>(f.period.from)
        .bind::<Timestamptz, _>(f.period.to)
        .bind::<Text, _>(f.bucket.as_str())
        .load(conn)
        .await?;
    let personas: Vec<PersonaAgg> = diesel::sql_query(TREND_PERSONAS_SQL)
        .bind::<Text, _>(&f.module)
        .bind::<Timestamptz, _>(f.period.from)
        .bind::<Timestamptz, _>(f.period.to)
        .load(conn)
        .await?;
    let mut personas: Vec<PersonaBreakdown> = personas
        .into_iter()
        .map(|p| {
            let n = u64_of(p.n);
            PersonaBreakdown {
                persona_id: p.persona_id,
                slug: p.slug,
                n,
                mean: p.mean,
                ci95: ci95(n, p.mean, p.sd),
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
                let n = u64_of(b.n);
                TrendBucket {
                    start: b.start,
                    n,
                    mean: b.mean,
                    ci95: ci95(n, b.mean, b.sd),
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

/// Binds: $1 from, $2 to, $3 bucket. Served by `persona_runs_started_idx` (its INCLUDE
/// columns make it an index-only scan).
pub fn tokens_sql() -> String {
    format!(
        "SELECT {start} AS start, provider, model, count(*) AS runs, \
                sum(tokens_input)::int8 AS input, sum(tokens_output)::int8 AS output, \
                sum(tokens_cache_read)::int8 AS cache_read, sum(tokens_cache_write)::int8 AS cache_write \
         FROM persona_runs WHERE started_at >= $1 AND started_at < $2 \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        start = utc_trunc("$3", "started_at")
    )
}

/// `GET …/reports/tokens`.
pub async fn tokens(conn: &mut AsyncPgConnection, f: TokensFilter) -> QueryResult<TokensReport> {
    let rows: Vec<TokenAgg> = diesel::sql_query(tokens_sql())
        .bind::<Timestamptz, _>(f.period.from)
        .bind::<Timestamptz, _>(f.period.to)
        .bind::<Text, _>(f.bucket.as_str())
        .load(conn)
        .await?;
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
}
