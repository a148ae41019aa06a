//! The operator console's own persona queries: the catalogue view and the
//! pause / resume / run-now state changes.
//!
//! Rules:
//! - Only personas are read here (never a human user's rows): every query
//!   starts from `personas`.
//! - A state change touches one persona by id and says whether it existed;
//!   it never takes or breaks a lease (a run in flight finishes normally).
//! - "Run now" clears the failure backoff (`retry_after`) and makes the persona
//!   due for every cadence by moving `last_active_at` back to at least 24 h
//!   before `now` (never-run personas stay never-run, which is due already).
//!   Weekday personas still wait for a weekday, as the due rules say.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The status filter of the personas page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PersonaStatus {
    #[default]
    All,
    Active,
    Paused,
    /// At least one failed run in a row.
    Failing,
    /// Under an unexpired lease (running now).
    Leased,
}

impl PersonaStatus {
    pub const ALL: [Self; 5] = [
        Self::All,
        Self::Active,
        Self::Paused,
        Self::Failing,
        Self::Leased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Failing => "failing",
            Self::Leased => "leased",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One persona as the console lists it.
#[derive(Debug, Clone, QueryableByName)]
pub struct ConsolePersonaRow {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Text)]
    pub slug: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub display_name: Option<String>,
    #[diesel(sql_type = Text)]
    pub archetype: String,
    #[diesel(sql_type = Text)]
    pub tick_cadence: String,
    #[diesel(sql_type = Text)]
    pub locale: String,
    #[diesel(sql_type = Bool)]
    pub paused: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_active_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Integer)]
    pub consecutive_failures: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub retry_after: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub lease_owner: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The newest run (`persona_runs`), if any.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_run_id: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_run_at: Option<DateTime<Utc>>,
    /// `ok | simulator_failure | failed`, or NULL while in progress.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_outcome: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error_class: Option<String>,
}

/// The personas matching `status` at `now`, by slug.
pub async fn list_personas(
    conn: &mut AsyncPgConnection,
    status: PersonaStatus,
    now: DateTime<Utc>,
) -> QueryResult<Vec<ConsolePersonaRow>> {
    // $2 selects the filter; one statement keeps the column list in one place.
    diesel::sql_query(
        r"SELECT p.user_id, p.slug, u.display_name, p.archetype, p.tick_cadence, p.locale, p.paused,
                 p.last_active_at, p.consecutive_failures, p.retry_after, p.last_error,
                 CASE WHEN p.lease_expires_at > $1 THEN p.lease_owner END AS lease_owner,
                 CASE WHEN p.lease_expires_at > $1 THEN p.lease_expires_at END AS lease_expires_at,
                 r.id AS last_run_id, r.started_at AS last_run_at, r.outcome AS last_outcome,
                 r.error_class AS last_error_class
          FROM personas p JOIN users u ON u.id = p.user_id
          -- The newest run of each persona, over persona_runs_persona_idx.
          LEFT JOIN LATERAL (
              SELECT id, started_at, outcome, error_class FROM persona_runs
              WHERE persona_id = p.user_id ORDER BY started_at DESC, id DESC LIMIT 1
          ) r ON true
          WHERE CASE $2
                  WHEN 'active' THEN NOT p.paused
                  WHEN 'paused' THEN p.paused
                  WHEN 'failing' THEN p.consecutive_failures > 0
                  WHEN 'leased' THEN p.lease_expires_at > $1
                  ELSE true END
          ORDER BY p.slug",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(status.as_str())
    .load(conn)
    .await
}

/// The persona's slug and whether it is paused, or `None` when unknown.
pub async fn persona_state(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<(String, bool)>> {
    use super::schema::personas;
    personas::table
        .find(id)
        .select((personas::slug, personas::paused))
        .first(conn)
        .await
        .optional()
}

/// Pause or resume a persona. Returns false when it does not exist.
pub async fn set_paused(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    paused: bool,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    use super::schema::personas;
    let n = diesel::update(personas::table.find(id))
        .set((personas::paused.eq(paused), personas::updated_at.eq(now)))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// What "run now" found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNow {
    Scheduled,
    /// Paused personas are never due; resume first.
    Paused,
    NotFound,
}

/// Clear the backoff and make the persona due at the next tick (see the module rules).
pub async fn run_now(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<RunNow> {
    // One statement, so a concurrent pause wins or loses cleanly.
    let n = diesel::sql_query(
        r"UPDATE personas SET
            retry_after = NULL,
            last_active_at = CASE WHEN last_active_at IS NULL THEN NULL
                                  ELSE LEAST(last_active_at, $2 - interval '24 hours') END,
            updated_at = $2
          WHERE user_id = $1 AND NOT paused",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    if n > 0 {
        return Ok(RunNow::Scheduled);
    }
    Ok(match persona_state(conn, id).await? {
        None => RunNow::NotFound,
        Some(_) => RunNow::Paused,
    })
}

/// A rating note of a module, for the module page.
#[derive(Debug, Clone, QueryableByName)]
pub struct ModuleNoteRow {
    /// The run it belongs to (feedback `tick_id` is the run id).
    #[diesel(sql_type = Text)]
    pub run_id: String,
    #[diesel(sql_type = Text)]
    pub slug: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::SmallInt>)]
    pub rating: Option<i16>,
    #[diesel(sql_type = Nullable<Text>)]
    pub notes: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

/// The newest notes of `module` in `[from, to)`, newest first, over
/// `persona_feedback_module_idx` (module, created_at).
pub async fn module_notes(
    conn: &mut AsyncPgConnection,
    module: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<ModuleNoteRow>> {
    diesel::sql_query(
        r"SELECT f.tick_id AS run_id, p.slug, f.rating, f.notes, f.created_at
          FROM persona_feedback f JOIN personas p ON p.user_id = f.persona_id
          WHERE f.module = $1 AND f.created_at >= $2 AND f.created_at < $3
            AND f.notes IS NOT NULL AND f.notes <> ''
          ORDER BY f.created_at DESC, f.id DESC
          LIMIT $4",
    )
    .bind::<Text, _>(module)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await
}

/// Calls and errors of one tool.
#[derive(Debug, Clone, QueryableByName)]
pub struct ToolErrorsRow {
    #[diesel(sql_type = Text)]
    pub tool_name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub calls: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub errors: i64,
    /// The newest error message of this tool in the period.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
}

/// Per tool of `module`: calls and errors in `[from, to)`, highest error share first.
pub async fn module_tool_errors(
    conn: &mut AsyncPgConnection,
    module: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<Vec<ToolErrorsRow>> {
    diesel::sql_query(
        r"SELECT a.tool_name, count(*) AS calls,
                 count(*) FILTER (WHERE a.result = 'error') AS errors,
                 (array_agg(a.error_message ORDER BY a.created_at DESC)
                    FILTER (WHERE a.result = 'error'))[1] AS last_error
          FROM persona_actions a
          WHERE a.created_at >= $2 AND a.created_at < $3 AND a.module = $1
          GROUP BY a.tool_name
          ORDER BY count(*) FILTER (WHERE a.result = 'error')::float8 / count(*) DESC, a.tool_name",
    )
    .bind::<Text, _>(module)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Text)]
    app_version: String,
}

/// The app versions of runs started in `[from, to)` (for the version picker), newest first.
pub async fn app_versions(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> QueryResult<Vec<String>> {
    let rows: Vec<VersionRow> = diesel::sql_query(
        r"SELECT app_version FROM persona_runs
          WHERE started_at >= $1 AND started_at < $2 AND app_version <> ''
          GROUP BY app_version ORDER BY max(started_at) DESC LIMIT 50",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.app_version).collect())
}
