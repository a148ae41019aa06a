//! Personas: the catalogue, due selection, leases, actions and feedback.
//!
//! Due rules (UTC, `now` is always a parameter so tests move time freely):
//! hourly → never run or last run ≥ 1 h ago; daily → ≥ 24 h; weekdays → ≥ 24 h
//! and `now` is Mon–Fri. Paused personas are never due; neither is a persona
//! under an unexpired lease or in its failure backoff (`retry_after > now`).
//! Order: `last_active_at` ascending, never-run first, then `user_id`.
//!
//! The claim is one statement: per cadence a `MATERIALIZED` CTE reads the
//! index `personas_claim_idx` in due order with `FOR UPDATE SKIP LOCKED` and
//! stops after `limit` rows, the three are merged and cut to `limit`, and the
//! chosen rows get a fresh lease token. Concurrent claimers skip each other's
//! locked rows, and a committed lease excludes the row from later claims until
//! it expires, so no two claimers ever hold one persona at once.

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Utc, Weekday};
use diesel::{
    prelude::*,
    sql_types::{Bool, Double, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    cached::CachedExt,
    schema::{persona_actions, personas},
};

/// Whether weekday personas can be due at `now` (UTC Mon–Fri).
pub fn is_weekday(now: DateTime<Utc>) -> bool {
    !matches!(now.weekday(), Weekday::Sat | Weekday::Sun)
}

/// A due persona joined with its user.
#[derive(Debug, Clone, QueryableByName)]
pub struct DueRow {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub display_name: Option<String>,
    #[diesel(sql_type = Text)]
    pub archetype: String,
    #[diesel(sql_type = Text)]
    pub system_prompt: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub module_mix: serde_json::Value,
    #[diesel(sql_type = Text)]
    pub tick_cadence: String,
    #[diesel(sql_type = Text)]
    pub locale: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_active_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub lease_token: Option<Uuid>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// The per-cadence candidate selection; `{lock}` is empty or `FOR UPDATE SKIP LOCKED`.
/// Binds: $1 now, $2 limit, $3 is_weekday.
const CANDIDATES: &str = r"
    hourly AS MATERIALIZED (
        SELECT user_id, last_active_at FROM personas
        WHERE NOT paused AND tick_cadence = 'hourly'
          AND coalesce(last_active_at, '-infinity'::timestamptz) <= $1 - interval '1 hour'
          AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
          AND (retry_after IS NULL OR retry_after <= $1)
        ORDER BY coalesce(last_active_at, '-infinity'::timestamptz), user_id
        LIMIT $2 {lock}
    ),
    daily AS MATERIALIZED (
        SELECT user_id, last_active_at FROM personas
        WHERE NOT paused AND tick_cadence = 'daily'
          AND coalesce(last_active_at, '-infinity'::timestamptz) <= $1 - interval '24 hours'
          AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
          AND (retry_after IS NULL OR retry_after <= $1)
        ORDER BY coalesce(last_active_at, '-infinity'::timestamptz), user_id
        LIMIT $2 {lock}
    ),
    weekdays AS MATERIALIZED (
        SELECT user_id, last_active_at FROM personas
        WHERE $3 AND NOT paused AND tick_cadence = 'weekdays'
          AND coalesce(last_active_at, '-infinity'::timestamptz) <= $1 - interval '24 hours'
          AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
          AND (retry_after IS NULL OR retry_after <= $1)
        ORDER BY coalesce(last_active_at, '-infinity'::timestamptz), user_id
        LIMIT $2 {lock}
    ),
    picked AS MATERIALIZED (
        SELECT user_id, last_active_at FROM (
            SELECT * FROM hourly UNION ALL SELECT * FROM daily UNION ALL SELECT * FROM weekdays
        ) c
        ORDER BY coalesce(last_active_at, '-infinity'::timestamptz), user_id
        LIMIT $2
    )";

/// The statement of [`due`] (read only, nothing locked).
/// Binds: $1 now, $2 limit, $3 is_weekday.
pub fn due_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH {} SELECT p.user_id, u.email, u.display_name, p.archetype, p.system_prompt, p.module_mix, \
             p.tick_cadence, p.locale, p.last_active_at, NULL::uuid AS lease_token, NULL::timestamptz AS lease_expires_at \
             FROM picked JOIN personas p ON p.user_id = picked.user_id JOIN users u ON u.id = p.user_id",
            CANDIDATES.replace("{lock}", "")
        )
    });
    &SQL
}

/// The statement of [`claim`], exactly as it runs (benches `EXPLAIN` it).
/// Binds: $1 now, $2 limit, $3 is_weekday, $4 worker, $5 lease seconds.
pub fn claim_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH {} UPDATE personas p SET lease_owner = $4, lease_token = gen_random_uuid(), \
             lease_expires_at = $1 + make_interval(secs => $5), attempt = p.attempt + 1 \
             FROM picked, users u WHERE p.user_id = picked.user_id AND u.id = p.user_id \
             RETURNING p.user_id, u.email, u.display_name, p.archetype, p.system_prompt, p.module_mix, \
             p.tick_cadence, p.locale, p.last_active_at, p.lease_token, p.lease_expires_at",
            CANDIDATES.replace("{lock}", "FOR UPDATE SKIP LOCKED")
        )
    });
    &SQL
}

fn sort_due(rows: &mut [DueRow]) {
    rows.sort_by(|a, b| {
        (a.last_active_at.is_some(), a.last_active_at, a.user_id).cmp(&(
            b.last_active_at.is_some(),
            b.last_active_at,
            b.user_id,
        ))
    });
}

/// The personas due at `now`, without leasing them.
pub async fn due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: u32,
) -> QueryResult<Vec<DueRow>> {
    let mut rows: Vec<DueRow> = diesel::sql_query(due_sql())
        .bind::<Timestamptz, _>(now)
        .bind::<Integer, _>(i32::try_from(limit).unwrap_or(i32::MAX))
        .bind::<Bool, _>(is_weekday(now))
        .cached()
        .load(conn)
        .await?;
    sort_due(&mut rows);
    Ok(rows)
}

/// Lease up to `limit` due personas to `worker` for `lease_seconds`.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    worker: &str,
    limit: u32,
    lease_seconds: u32,
) -> QueryResult<Vec<DueRow>> {
    let mut rows: Vec<DueRow> = diesel::sql_query(claim_sql())
        .bind::<Timestamptz, _>(now)
        .bind::<Integer, _>(i32::try_from(limit).unwrap_or(i32::MAX))
        .bind::<Bool, _>(is_weekday(now))
        .bind::<Text, _>(worker)
        .bind::<Double, _>(f64::from(lease_seconds))
        .cached()
        .load(conn)
        .await?;
    sort_due(&mut rows);
    Ok(rows)
}

/// What a release did.
#[derive(Debug, Clone, QueryableByName)]
pub struct ReleasedRow {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_active_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub retry_after: Option<DateTime<Utc>>,
}

/// lease token, lease expiry, last run, retry after.
type LeaseColumns = (
    Option<Uuid>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// How a release ended.
#[derive(Debug)]
pub enum Release {
    Released(ReleasedRow),
    /// The same token released this lease before (an idempotent retry).
    AlreadyReleased(ReleasedRow),
    LeaseLost,
    NotFound,
}

/// Backoff after failures: base · 2^(failures−1), jittered ±25 %, capped — the
/// workspace's failure backoff ([`types::backoff::Backoff::spread`]), computed in Rust.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base_secs: u64,
    pub cap_secs: u64,
}

impl Backoff {
    /// When a persona that has failed `failures` times in a row (this one included) is
    /// due again.
    fn retry_after(self, now: DateTime<Utc>, failures: u32) -> DateTime<Utc> {
        let wait = types::backoff::Backoff::new(
            std::time::Duration::from_secs(self.base_secs),
            std::time::Duration::from_secs(self.cap_secs),
        )
        .spread(failures, rand::random());
        now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX)
    }
}

/// How a lease ends (the `outcome` of a release).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseKind {
    /// `last_active_at = now` (the due rule's "last completed day"), failures reset.
    Done,
    /// `last_active_at` kept, failures counted, `retry_after` set by the backoff.
    Failed,
    /// Lease cleared, nothing else changes: due again at once.
    Abandoned,
}

/// End a lease; see [`ReleaseKind`] for what each outcome records.
pub async fn release(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    token: Uuid,
    kind: ReleaseKind,
    error: Option<&str>,
    now: DateTime<Utc>,
    backoff: Backoff,
) -> QueryResult<Release> {
    let (done, failed) = match kind {
        ReleaseKind::Done => (true, false),
        ReleaseKind::Failed => (false, true),
        ReleaseKind::Abandoned => (false, false),
    };
    // A failure's backoff depends on the failures so far: read them under the lease,
    // and update only if they are unchanged (a concurrent retry of this release then
    // finds the lease gone and is answered as already released).
    let failures: Option<i32> = if failed {
        personas::table
            .find(id)
            .filter(personas::lease_token.eq(token))
            .filter(personas::lease_expires_at.is_not_null())
            .select(personas::consecutive_failures)
            .first(conn)
            .await
            .optional()?
    } else {
        None
    };
    let retry_after = failures.map(|n| {
        let n = u32::try_from(n).unwrap_or(0).saturating_add(1);
        backoff.retry_after(now, n)
    });
    // Only the holder of the current token may release; the token stays in the
    // row after release so a retried release is recognised and answered alike.
    // `abandoned` (claimed, never started) only clears the lease.
    let released: Option<ReleasedRow> = if !failed || failures.is_some() {
        diesel::sql_query(
            r"UPDATE personas SET
                lease_owner = NULL,
                lease_expires_at = NULL,
                last_active_at = CASE WHEN $3 THEN $4 ELSE last_active_at END,
                consecutive_failures = CASE WHEN $3 THEN 0 WHEN $8 THEN consecutive_failures + 1
                    ELSE consecutive_failures END,
                retry_after = CASE WHEN $8 THEN $5 WHEN $3 THEN NULL ELSE retry_after END,
                last_error = CASE WHEN $3 THEN NULL WHEN $8 THEN $6 ELSE last_error END,
                updated_at = $4
              WHERE user_id = $1 AND lease_token = $2 AND lease_expires_at IS NOT NULL
                AND (NOT $8 OR consecutive_failures = $7)
              RETURNING last_active_at, retry_after",
        )
        .bind::<SqlUuid, _>(id)
        .bind::<SqlUuid, _>(token)
        .bind::<Bool, _>(done)
        .bind::<Timestamptz, _>(now)
        .bind::<Nullable<Timestamptz>, _>(retry_after)
        .bind::<Nullable<Text>, _>(error)
        .bind::<diesel::sql_types::Integer, _>(failures.unwrap_or(0))
        .bind::<Bool, _>(failed)
        .cached()
        .get_result(conn)
        .await
        .optional()?
    } else {
        None
    };
    if let Some(row) = released {
        return Ok(Release::Released(row));
    }
    let current: Option<LeaseColumns> = personas::table
        .find(id)
        .select((
            personas::lease_token,
            personas::lease_expires_at,
            personas::last_active_at,
            personas::retry_after,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(match current {
        None => Release::NotFound,
        Some((Some(t), None, last_active_at, retry_after)) if t == token => {
            Release::AlreadyReleased(ReleasedRow {
                last_active_at,
                retry_after,
            })
        }
        Some(_) => Release::LeaseLost,
    })
}

pub async fn exists(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(personas::table.find(id)))
        .get_result(conn)
        .await
}

/// A `persona_actions` row to write ([`insert_actions`], [`record_executed`]; the
/// ingest bench's raw baseline inserts it with diesel).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = persona_actions)]
pub struct NewAction {
    pub id: String,
    pub persona_id: Uuid,
    pub tick_id: String,
    pub tool_name: String,
    pub module: String,
    pub input: Option<serde_json::Value>,
    pub input_hash: Option<String>,
    pub result: &'static str,
    pub error_message: Option<String>,
    pub latency_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
    /// Set by the runner's write; `None` for a row recorded at execution time.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Write a batch of the runner's actions. A new id is inserted; an id auth-internal
/// already recorded at execution time (see [`record_executed`]) is *completed*: its
/// result, error and latency become the runner's (what the model saw) and
/// `completed_at` is set. A row already completed is left alone, so a retried batch
/// changes nothing. Returns rows inserted or completed. `last_active_at` is not
/// touched: only a `done` release moves it (the due rule must not skip a failed day).
pub async fn insert_actions(
    conn: &mut AsyncPgConnection,
    rows: &[NewAction],
) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Jsonb};
    if rows.is_empty() {
        return Ok(0);
    }
    let c = ActionColumns::of(rows);
    // Only a server-recorded row is completed, and only once.
    diesel::sql_query(
        "INSERT INTO persona_actions (id, persona_id, tick_id, tool_name, module, input, \
             input_hash, result, error_message, latency_ms, created_at, completed_at) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
             $6::jsonb[], $7::text[], $8::text[], $9::text[], $10::int4[], $11::timestamptz[], \
             $12::timestamptz[]) \
         ON CONFLICT (id) DO UPDATE SET result = excluded.result, \
             error_message = excluded.error_message, latency_ms = excluded.latency_ms, \
             completed_at = excluded.completed_at \
         WHERE persona_actions.completed_at IS NULL",
    )
    .bind::<Array<Text>, _>(&c.id)
    .bind::<Array<SqlUuid>, _>(&c.persona_id)
    .bind::<Array<Text>, _>(&c.tick_id)
    .bind::<Array<Text>, _>(&c.tool_name)
    .bind::<Array<Text>, _>(&c.module)
    .bind::<Array<Nullable<Jsonb>>, _>(&c.input)
    .bind::<Array<Nullable<Text>>, _>(&c.input_hash)
    .bind::<Array<Text>, _>(&c.result)
    .bind::<Array<Nullable<Text>>, _>(&c.error_message)
    .bind::<Array<Nullable<Integer>>, _>(&c.latency_ms)
    .bind::<Array<Timestamptz>, _>(&c.created_at)
    .bind::<Array<Nullable<Timestamptz>>, _>(&c.completed_at)
    .cached()
    .execute(conn)
    .await
}

/// The `persona_actions` columns of a batch, as arrays: one statement of fixed text
/// (a prepared statement, whatever the batch size) writes them all.
struct ActionColumns<'a> {
    id: Vec<&'a str>,
    persona_id: Vec<Uuid>,
    tick_id: Vec<&'a str>,
    tool_name: Vec<&'a str>,
    module: Vec<&'a str>,
    input: Vec<Option<&'a serde_json::Value>>,
    input_hash: Vec<Option<&'a str>>,
    result: Vec<&'a str>,
    error_message: Vec<Option<&'a str>>,
    latency_ms: Vec<Option<i32>>,
    created_at: Vec<DateTime<Utc>>,
    completed_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> ActionColumns<'a> {
    fn of(rows: &'a [NewAction]) -> Self {
        Self {
            id: rows.iter().map(|r| r.id.as_str()).collect(),
            persona_id: rows.iter().map(|r| r.persona_id).collect(),
            tick_id: rows.iter().map(|r| r.tick_id.as_str()).collect(),
            tool_name: rows.iter().map(|r| r.tool_name.as_str()).collect(),
            module: rows.iter().map(|r| r.module.as_str()).collect(),
            input: rows.iter().map(|r| r.input.as_ref()).collect(),
            input_hash: rows.iter().map(|r| r.input_hash.as_deref()).collect(),
            result: rows.iter().map(|r| r.result).collect(),
            error_message: rows.iter().map(|r| r.error_message.as_deref()).collect(),
            latency_ms: rows.iter().map(|r| r.latency_ms).collect(),
            created_at: rows.iter().map(|r| r.created_at).collect(),
            completed_at: rows.iter().map(|r| r.completed_at).collect(),
        }
    }
}

/// Record a tool call auth-internal is executing for a persona, inside the
/// transaction of its effect. `false`: the id is already recorded, i.e. this call
/// ran before (a re-sent request) and its effect must not happen twice.
pub async fn record_executed(conn: &mut AsyncPgConnection, row: &NewAction) -> QueryResult<bool> {
    // Fixed text (diesel's `insert_into` of a row with `None` fields writes `DEFAULT`
    // and is never prepared): one round trip on the tool call's path.
    let n = bind_action(
        diesel::sql_query(
            "INSERT INTO persona_actions (id, persona_id, tick_id, tool_name, module, input, \
                 input_hash, result, error_message, latency_ms, created_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT DO NOTHING",
        )
        .into_boxed(),
        row,
    )
    .cached()
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Binds the twelve `persona_actions` columns of `row` next, in table order (`id`,
/// `persona_id`, `tick_id`, `tool_name`, `module`, `input`, `input_hash`, `result`,
/// `error_message`, `latency_ms`, `created_at`, `completed_at`).
pub(super) fn bind_action<'a>(
    q: diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery>,
    row: &'a NewAction,
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    use diesel::sql_types::Jsonb;
    q.bind::<Text, _>(&row.id)
        .bind::<SqlUuid, _>(row.persona_id)
        .bind::<Text, _>(&row.tick_id)
        .bind::<Text, _>(&row.tool_name)
        .bind::<Text, _>(&row.module)
        .bind::<Nullable<Jsonb>, _>(row.input.as_ref())
        .bind::<Nullable<Text>, _>(row.input_hash.as_deref())
        .bind::<Text, _>(row.result)
        .bind::<Nullable<Text>, _>(row.error_message.as_deref())
        .bind::<Nullable<Integer>, _>(row.latency_ms)
        .bind::<Timestamptz, _>(row.created_at)
        .bind::<Nullable<Timestamptz>, _>(row.completed_at)
}

/// Extend the lease held with `token` to `now + lease_seconds`. `None`: the token is
/// not the persona's current, unreleased lease (or no such persona).
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    token: Uuid,
    lease_seconds: u32,
    now: DateTime<Utc>,
) -> QueryResult<Option<DateTime<Utc>>> {
    // An expired lease that nobody re-claimed still holds its token, so the holder
    // may revive it; a re-claim changed the token, which fences the old holder out.
    diesel::update(
        personas::table
            .find(id)
            .filter(personas::lease_token.eq(token))
            .filter(personas::lease_expires_at.is_not_null()),
    )
    .set(personas::lease_expires_at.eq(now + chrono::TimeDelta::seconds(i64::from(lease_seconds))))
    .returning(personas::lease_expires_at)
    .get_result::<Option<DateTime<Utc>>>(conn)
    .await
    .optional()
    .map(Option::flatten)
}

/// A `persona_feedback` row to write ([`insert_feedback`]).
#[derive(Debug)]
pub struct NewFeedback {
    pub id: String,
    pub persona_id: Uuid,
    pub tick_id: String,
    pub module: String,
    pub rating: Option<i16>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_feedback(
    conn: &mut AsyncPgConnection,
    rows: &[NewFeedback],
) -> QueryResult<usize> {
    use diesel::sql_types::{Array, SmallInt};
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let persona_ids: Vec<Uuid> = rows.iter().map(|r| r.persona_id).collect();
    let tick_ids: Vec<&str> = rows.iter().map(|r| r.tick_id.as_str()).collect();
    let modules: Vec<&str> = rows.iter().map(|r| r.module.as_str()).collect();
    let ratings: Vec<Option<i16>> = rows.iter().map(|r| r.rating).collect();
    let notes: Vec<Option<&str>> = rows.iter().map(|r| r.notes.as_deref()).collect();
    let created_at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.created_at).collect();
    diesel::sql_query(
        "INSERT INTO persona_feedback (id, persona_id, tick_id, module, rating, notes, created_at) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::int2[], \
             $6::text[], $7::timestamptz[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind::<Array<Text>, _>(&ids)
    .bind::<Array<SqlUuid>, _>(&persona_ids)
    .bind::<Array<Text>, _>(&tick_ids)
    .bind::<Array<Text>, _>(&modules)
    .bind::<Array<Nullable<SmallInt>>, _>(&ratings)
    .bind::<Array<Nullable<Text>>, _>(&notes)
    .bind::<Array<Timestamptz>, _>(&created_at)
    .cached()
    .execute(conn)
    .await
}

/// The persona's row for the operator profile.
#[derive(Debug, Clone, QueryableByName)]
pub struct ProfileRow {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub display_name: Option<String>,
    #[diesel(sql_type = Text)]
    pub slug: String,
    #[diesel(sql_type = Text)]
    pub archetype: String,
    #[diesel(sql_type = Text)]
    pub system_prompt: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub module_mix: serde_json::Value,
    #[diesel(sql_type = Text)]
    pub tick_cadence: String,
    #[diesel(sql_type = Text)]
    pub locale: String,
    #[diesel(sql_type = Bool)]
    pub paused: bool,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_active_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub lease_owner: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub lease_expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Integer)]
    pub consecutive_failures: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub retry_after: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub actions_total: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_tick_id: Option<String>,
}

pub async fn profile(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ProfileRow>> {
    diesel::sql_query(
        r"SELECT p.user_id, u.email, u.display_name, p.slug, p.archetype, p.system_prompt, p.module_mix,
                 p.tick_cadence, p.locale, p.paused, p.created_at, p.last_active_at, p.lease_owner,
                 p.lease_expires_at, p.consecutive_failures, p.retry_after, p.last_error,
                 (SELECT count(*) FROM persona_actions a WHERE a.persona_id = p.user_id) AS actions_total,
                 (SELECT a.tick_id FROM persona_actions a WHERE a.persona_id = p.user_id
                    ORDER BY a.created_at DESC LIMIT 1) AS last_tick_id
          FROM personas p JOIN users u ON u.id = p.user_id WHERE p.user_id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .get_result(conn)
    .await
    .optional()
}

#[derive(Debug, Clone, QueryableByName)]
pub struct RatingRow {
    #[diesel(sql_type = Text)]
    pub module: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub count: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub average: Option<f64>,
    #[diesel(sql_type = Text)]
    pub tick_id: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::SmallInt>)]
    pub rating: Option<i16>,
    #[diesel(sql_type = Nullable<Text>)]
    pub notes: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

/// Per module: count and average of real ratings, and the last `last_n` rows.
pub async fn ratings(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    last_n: i32,
) -> QueryResult<Vec<RatingRow>> {
    diesel::sql_query(
        r"SELECT f.module, s.count, s.average, f.tick_id, f.rating, f.notes, f.created_at
          FROM (SELECT module, count(rating) AS count, avg(rating)::float8 AS average
                FROM persona_feedback WHERE persona_id = $1 GROUP BY module) s
          CROSS JOIN LATERAL (
              SELECT module, tick_id, rating, notes, created_at FROM persona_feedback
              WHERE persona_id = $1 AND module = s.module
              ORDER BY created_at DESC, id DESC LIMIT $2) f
          ORDER BY f.module, f.created_at DESC",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Integer, _>(last_n)
    .cached()
    .load(conn)
    .await
}

/// One catalogue entry, ready to store.
#[derive(Debug)]
pub struct PersonaUpsert<'a> {
    pub slug: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub archetype: &'a str,
    pub system_prompt: &'a str,
    pub module_mix: serde_json::Value,
    pub tick_cadence: &'a str,
    pub locale: Option<&'a str>,
    pub paused: Option<bool>,
    pub password_hash: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    /// The email belongs to an account that is not a persona.
    NotAPersona,
}

/// Create or update one persona and its user. `locale`/`paused` left `None`
/// keep their stored values on update (defaults on create).
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    p: &PersonaUpsert<'_>,
    now: DateTime<Utc>,
) -> QueryResult<Upserted> {
    use super::schema::users;
    use super::users as db_users;

    let (user_id, outcome) = match db_users::find_by_email(conn, p.email).await? {
        Some(u) if u.kind != "persona" => return Ok(Upserted::NotAPersona),
        Some(u) => {
            diesel::update(users::table.find(u.id))
                .set((
                    users::display_name.eq(p.name),
                    users::password_hash.eq(&p.password_hash),
                ))
                .execute(conn)
                .await?;
            (u.id, Upserted::Updated)
        }
        None => {
            let u = db_users::insert(
                conn,
                &db_users::NewUser {
                    email: p.email,
                    password_hash: &p.password_hash,
                    kind: "persona",
                    display_name: Some(p.name),
                },
            )
            .await?;
            (u.id, Upserted::Created)
        }
    };
    diesel::insert_into(personas::table)
        .values((
            personas::user_id.eq(user_id),
            personas::slug.eq(p.slug),
            personas::archetype.eq(p.archetype),
            personas::system_prompt.eq(p.system_prompt),
            personas::module_mix.eq(&p.module_mix),
            personas::tick_cadence.eq(p.tick_cadence),
            personas::locale.eq(p.locale.unwrap_or("de")),
            personas::paused.eq(p.paused.unwrap_or(false)),
            personas::created_at.eq(now),
            personas::updated_at.eq(now),
        ))
        .on_conflict(personas::user_id)
        .do_update()
        .set((
            personas::archetype.eq(p.archetype),
            personas::system_prompt.eq(p.system_prompt),
            personas::module_mix.eq(&p.module_mix),
            personas::tick_cadence.eq(p.tick_cadence),
            personas::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    if p.locale.is_some() || p.paused.is_some() {
        let target = personas::table.find(user_id);
        if let Some(locale) = p.locale {
            diesel::update(target)
                .set(personas::locale.eq(locale))
                .execute(conn)
                .await?;
        }
        if let Some(paused) = p.paused {
            diesel::update(target)
                .set(personas::paused.eq(paused))
                .execute(conn)
                .await?;
        }
    }
    Ok(outcome)
}

/// A recent action row.
#[derive(Debug, Clone, Queryable)]
pub struct RecentActionRow {
    pub id: String,
    pub tick_id: String,
    pub tool_name: String,
    pub module: String,
    pub result: String,
    pub error_message: Option<String>,
    pub latency_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// The persona's newest actions (index `persona_actions_persona_idx`).
pub async fn recent_actions(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    limit: i64,
) -> QueryResult<Vec<RecentActionRow>> {
    persona_actions::table
        .filter(persona_actions::persona_id.eq(id))
        .order((
            persona_actions::created_at.desc(),
            persona_actions::id.desc(),
        ))
        .limit(limit)
        .select((
            persona_actions::id,
            persona_actions::tick_id,
            persona_actions::tool_name,
            persona_actions::module,
            persona_actions::result,
            persona_actions::error_message,
            persona_actions::latency_ms,
            persona_actions::created_at,
        ))
        .load(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_and_due_statements_differ_only_in_locking_and_leasing() {
        let claim = claim_sql();
        let due = due_sql();
        assert!(!claim.contains("{lock}") && !due.contains("{lock}"));
        assert_eq!(claim.matches("FOR UPDATE SKIP LOCKED").count(), 3);
        assert!(!due.contains("FOR UPDATE"));
        assert!(
            claim.starts_with("WITH ") && claim.contains("UPDATE personas p SET lease_owner = $4")
        );
        assert!(due.starts_with("WITH ") && !due.contains("$4"));
    }
}
