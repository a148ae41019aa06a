//! Mission scheduling. `mission_schedule` mirrors each mission record's
//! `state`, `nextRunAt` and deletion, written in the same transaction as every
//! change to the record ([`SCHEDULE_HOOK`], registered for `ai/aiMissions` in
//! `db::TABLE_HOOKS` and run by `records::append_if`), so the claim reads an
//! index of due rows and never the change log.
//!
//! What a record means for the schedule is `crate::missions`'s rule
//! ([`MissionRecord::schedule`]). Leases work as for
//! personas: `FOR UPDATE SKIP LOCKED`, a fresh token per claim, expired leases
//! claimable again.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::{
    prelude::*,
    sql_types::{
        BigInt, Bool, Date, Double, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
    },
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use lww::RecordState;
use types::missions::{MISSIONS_APP, MISSIONS_TABLE};
use uuid::Uuid;

use super::records::TableHook;
use crate::missions::{MissionRecord, Schedule};

/// The table hook that keeps `mission_schedule` in step with mission records.
pub const SCHEDULE_HOOK: TableHook = TableHook {
    app_id: MISSIONS_APP,
    table: MISSIONS_TABLE,
    on_append: |conn, w| {
        Box::pin(sync_schedule(
            conn,
            w.key.user_id,
            w.key.record_id,
            w.state,
            w.now,
        ))
    },
};

/// Mirror a mission record into the schedule (same transaction as the change).
pub async fn sync_schedule(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    mission_id: &str,
    state: &RecordState,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let schedule = if state.is_visible() {
        MissionRecord::new(&state.data()).schedule(now)
    } else {
        Schedule::NEVER
    };
    diesel::sql_query(
        "INSERT INTO mission_schedule (user_id, mission_id, active, next_run_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id, mission_id) DO UPDATE SET active = $3, next_run_at = $4, updated_at = $5",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(mission_id)
    .bind::<Bool, _>(schedule.active)
    .bind::<Nullable<Timestamptz>, _>(schedule.next_run_at)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedRow {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Text)]
    pub mission_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub leased_slot: DateTime<Utc>,
    #[diesel(sql_type = SqlUuid)]
    pub lease_token: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub lease_expires_at: DateTime<Utc>,
}

/// Lease up to `limit` due missions (active, `next_run_at <= now`), oldest slot first.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    worker: &str,
    limit: u32,
    lease_seconds: u32,
) -> QueryResult<Vec<ClaimedRow>> {
    let mut rows: Vec<ClaimedRow> = diesel::sql_query(
        r"WITH due AS MATERIALIZED (
              SELECT user_id, mission_id FROM mission_schedule
              WHERE active AND next_run_at IS NOT NULL AND next_run_at <= $1
                AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
                AND (retry_after IS NULL OR retry_after <= $1)
              ORDER BY next_run_at, user_id, mission_id
              LIMIT $2
              FOR UPDATE SKIP LOCKED)
          UPDATE mission_schedule s SET lease_owner = $3, lease_token = gen_random_uuid(),
              lease_expires_at = $1 + make_interval(secs => $4), leased_slot = s.next_run_at
          FROM due WHERE s.user_id = due.user_id AND s.mission_id = due.mission_id
          RETURNING s.user_id, s.mission_id, s.leased_slot, s.lease_token, s.lease_expires_at",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Integer, _>(i32::try_from(limit).unwrap_or(i32::MAX))
    .bind::<Text, _>(worker)
    .bind::<Double, _>(f64::from(lease_seconds))
    .load(conn)
    .await?;
    rows.sort_by(|a, b| {
        (a.leased_slot, a.user_id, &a.mission_id).cmp(&(b.leased_slot, b.user_id, &b.mission_id))
    });
    Ok(rows)
}

/// The schedule row a lease token holds, locked for the rest of the transaction.
#[derive(Debug, Clone, QueryableByName)]
pub struct LeaseRow {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub leased_slot: Option<DateTime<Utc>>,
}

pub async fn lock_lease(
    conn: &mut AsyncPgConnection,
    mission_id: &str,
    token: Uuid,
) -> QueryResult<Option<LeaseRow>> {
    diesel::sql_query(
        "SELECT user_id, leased_slot FROM mission_schedule \
         WHERE mission_id = $1 AND lease_token = $2 AND lease_expires_at IS NOT NULL FOR UPDATE",
    )
    .bind::<Text, _>(mission_id)
    .bind::<SqlUuid, _>(token)
    .get_result(conn)
    .await
    .optional()
}

#[derive(Debug, Clone, QueryableByName)]
pub struct OwnerRow {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
}

/// The users that have a mission with this id (normally one).
pub async fn owners(conn: &mut AsyncPgConnection, mission_id: &str) -> QueryResult<Vec<OwnerRow>> {
    diesel::sql_query("SELECT user_id FROM mission_schedule WHERE mission_id = $1")
        .bind::<Text, _>(mission_id)
        .load(conn)
        .await
}

/// End a lease; the mission is due again after `retry_after` (if given).
pub async fn end_lease(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    mission_id: &str,
    retry_after: Option<DateTime<Utc>>,
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE mission_schedule SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
         leased_slot = NULL, retry_after = $3 WHERE user_id = $1 AND mission_id = $2",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(mission_id)
    .bind::<Nullable<Timestamptz>, _>(retry_after)
    .execute(conn)
    .await
}

/// Add planning tokens to the user's usage of `day`.
pub async fn add_tokens(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    day: NaiveDate,
    tokens: u64,
) -> QueryResult<()> {
    if tokens == 0 {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO mission_token_usage (user_id, day, tokens) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, day) DO UPDATE SET tokens = mission_token_usage.tokens + $3",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Date, _>(day)
    .bind::<BigInt, _>(i64::try_from(tokens).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Tokens {
    #[diesel(sql_type = BigInt)]
    tokens: i64,
}

pub async fn tokens_used(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    day: NaiveDate,
) -> QueryResult<u64> {
    let row: Option<Tokens> =
        diesel::sql_query("SELECT tokens FROM mission_token_usage WHERE user_id = $1 AND day = $2")
            .bind::<SqlUuid, _>(user_id)
            .bind::<Date, _>(day)
            .get_result(conn)
            .await
            .optional()?;
    Ok(row.map_or(0, |r| u64::try_from(r.tokens).unwrap_or(0)))
}
