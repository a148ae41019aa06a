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
                 CASE WHEN p.lease_expires_at > $1 THEN p.lease_expires_at END AS lease_expires_at
          FROM personas p JOIN users u ON u.id = p.user_id
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
