//! The record store: append a change to `sync_changes` and merge it into
//! `records` in the same transaction (field-level last-writer-wins, rules in
//! the `lww` crate), read current records, and page through a user's log.
//!
//! Every function takes the user id: nothing here can touch another user's
//! rows. Concurrent writers of one record serialise on its `records` row
//! ([`append_if`]: `INSERT … ON CONFLICT DO NOTHING` then `SELECT … FOR
//! UPDATE`, or for a create that meets no row one statement writing the record
//! and its log row ([`create`]); [`append_batch`]: lock what exists, insert the rest with its
//! merged state, start over if a concurrent writer created one of them).
//!
//! Rules:
//! - Every write locks its user's row first ([`USER_LOCK`]) and writes nothing
//!   when the user is gone; `records` and `sync_changes` have no foreign key to
//!   `users`, a user's delete trigger removes its rows.
//! - This module knows no table by name. A table that keeps a derived index
//!   (missions → `mission_schedule`) registers a [`TableHook`] in
//!   [`super::TABLE_HOOKS`]; [`append_if`] runs the hooks of the written table
//!   with the merged state, in the same transaction as the change.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Bool, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use lww::{Change, RecordState, Stamp};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    cached::CachedExt,
    schema::{records, sync_changes},
};

/// Where a record lives.
#[derive(Debug, Clone, Copy)]
pub struct RecordKey<'a> {
    pub user_id: Uuid,
    pub app_id: &'a str,
    pub table: &'a str,
    pub record_id: &'a str,
}

/// A record as merged by [`append_if`], handed to the table's hooks.
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    pub key: RecordKey<'a>,
    /// The merged state after the change (a deleted record is not visible).
    pub state: &'a RecordState,
    pub now: DateTime<Utc>,
}

/// A function run after every append to one table, inside the append's
/// transaction (a failure rolls the change back).
pub type HookFn = for<'a> fn(
    &'a mut AsyncPgConnection,
    Written<'a>,
) -> futures::future::BoxFuture<'a, QueryResult<()>>;

/// Registers [`HookFn`] `on_append` for the records of `app_id`/`table`.
#[derive(Debug, Clone, Copy)]
pub struct TableHook {
    pub app_id: &'static str,
    pub table: &'static str,
    pub on_append: HookFn,
}

/// Who wrote a change.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    pub client_id: &'a str,
    pub origin: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("stored record state is corrupt: {0}")]
    Corrupt(String),
    #[error("the record does not exist")]
    NotLive,
    #[error("a record with this id already exists")]
    AlreadyLive,
    /// A record of a batch was created by a concurrent writer between the
    /// batch's lock and its insert ([`append_batch`] starts over on it).
    #[error("a record of the batch was created concurrently")]
    Raced,
    /// Concurrent writers kept creating records of a batch, attempt after attempt.
    #[error("concurrent writes kept creating the batch's records; retry")]
    Contended,
    /// The records' user does not exist (deleted while its token was still valid):
    /// nothing is written ([`USER_LOCK`]).
    #[error("the account no longer exists")]
    UnknownUser,
}

/// [`USER_LOCK`] as a literal, for `concat!`.
macro_rules! user_lock {
    () => {
        "u AS MATERIALIZED (SELECT FROM users WHERE id = $1 FOR KEY SHARE)"
    };
}

/// Every write of the store first locks its user's row, as a CTE named `u` (no row:
/// the user is gone, and the statement writes nothing). `records` and `sync_changes`
/// have no foreign key to `users` (a check per inserted row); this one lock per
/// statement stands in for it: a user's delete waits for the writes holding it, and
/// its trigger then deletes what they wrote (migration 000090).
const USER_LOCK: &str = user_lock!();

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = records, check_for_backend(diesel::pg::Pg))]
pub struct RecordRow {
    pub record_id: String,
    pub data: Value,
    pub field_timestamps: Value,
    pub created_stamp: Option<String>,
    pub tombstone: Option<String>,
    pub deleted: bool,
    pub last_change_id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn parse_stamp(s: &str) -> Result<Stamp, RecordError> {
    s.parse()
        .map_err(|e: lww::StampError| RecordError::Corrupt(e.to_string()))
}

impl RecordRow {
    /// The merged state, as `lww` needs it to merge further changes.
    pub fn state(&self) -> Result<RecordState, RecordError> {
        let data = match &self.data {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let stamps: BTreeMap<String, Stamp> = serde_json::from_value(self.field_timestamps.clone())
            .map_err(|e| RecordError::Corrupt(e.to_string()))?;
        RecordState::from_parts(
            data,
            stamps,
            self.created_stamp.as_deref().map(parse_stamp).transpose()?,
            self.tombstone.as_deref().map(parse_stamp).transpose()?,
        )
        .map_err(|e| RecordError::Corrupt(e.to_string()))
    }

    pub fn data_map(&self) -> Map<String, Value> {
        match &self.data {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        }
    }
}

/// The result of appending one change.
#[derive(Debug, Clone)]
pub struct Appended {
    pub change_id: i64,
    pub state: RecordState,
    pub created_at: DateTime<Utc>,
}

/// What must hold of the record before a change is appended (checked under
/// the row lock, so it cannot race with another writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Anything,
    /// The record is live (visible).
    Live,
    /// The record is not live (never written, or deleted).
    NotLive,
}

/// Append `change` to the log and merge it into the record, in the caller's
/// transaction (call inside `conn.transaction`).
pub async fn append(
    conn: &mut AsyncPgConnection,
    key: RecordKey<'_>,
    change: &Change,
    author: Author<'_>,
    now: DateTime<Utc>,
) -> Result<Appended, RecordError> {
    append_if(conn, key, change, author, now, Expect::Anything).await
}

/// [`append`], refused with [`RecordError::NotLive`] / [`RecordError::AlreadyLive`]
/// unless `expect` holds.
pub async fn append_if(
    conn: &mut AsyncPgConnection,
    key: RecordKey<'_>,
    change: &Change,
    author: Author<'_>,
    now: DateTime<Utc>,
    expect: Expect,
) -> Result<Appended, RecordError> {
    // A create (a new id) usually meets no row at all: then one statement writes
    // the record and its log row.
    if expect == Expect::NotLive
        && let Some(appended) = create(conn, key, change, author, now).await?
    {
        run_hooks(conn, key, &appended.state, now).await?;
        return Ok(appended);
    }
    append_locked(conn, key, change, author, now, expect).await
}

/// [`append_if`] without its one-statement create: lock (or create) the record's
/// row, merge, write. For a caller whose [`create`] already found a row of the id.
pub async fn append_locked(
    conn: &mut AsyncPgConnection,
    key: RecordKey<'_>,
    change: &Change,
    author: Author<'_>,
    now: DateTime<Utc>,
    expect: Expect,
) -> Result<Appended, RecordError> {
    // Create the row if missing and lock it, in one statement: a new row is
    // locked by its INSERT, an existing one by the SELECT. Writers of one
    // record queue here.
    let row = lock_or_create(conn, key, now).await?;
    let mut state = row.state()?;
    let was_visible = row.last_change_id > 0 && state.is_visible();
    match (expect, was_visible) {
        (Expect::Live, false) => return Err(RecordError::NotLive),
        (Expect::NotLive, true) => return Err(RecordError::AlreadyLive),
        _ => {}
    }
    lww::apply(&mut state, change);

    let visible = state.is_visible();
    // `created_at` of a record: when it (re)appeared.
    let created_at = if visible && !was_visible {
        now
    } else {
        row.created_at
    };
    // The log row and the record in one statement.
    let change_id = record_write(
        "WITH c AS (INSERT INTO sync_changes (user_id, app_id, table_name, record_id, op, data, \
                        field_timestamps, stamp, client_id, origin, created_at) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id) \
         UPDATE records SET data = $12, field_timestamps = $13, created_stamp = $14, tombstone = $15, \
                deleted = $16, last_change_id = c.id, created_at = $17, updated_at = $11 \
         FROM c WHERE user_id = $1 AND app_id = $2 AND table_name = $3 AND record_id = $4 \
         RETURNING c.id",
        key,
        change,
        author,
        now,
        &state,
    )
    .bind::<Timestamptz, _>(created_at)
    .cached()
    .get_result::<ChangeId>(conn)
    .await?
    .id;
    run_hooks(conn, key, &state, now).await?;
    Ok(Appended {
        change_id,
        state,
        created_at,
    })
}

/// What [`create_recorded`] did.
#[derive(Debug)]
pub enum Recorded {
    /// The record, its log row and the action row are written.
    Created(Appended),
    /// The action row was there already: the call ran before, nothing is written.
    RanBefore,
    /// Nothing is written: a row of the id exists. The caller goes on with the
    /// action row and [`append_locked`] in a transaction.
    Exists,
}

/// [`create_recorded`]'s statement: [`record_write`]'s binds, then the action row's
/// ($17–$28, [`super::personas::bind_action`]).
const CREATE_RECORDED: &str = concat!(
    "WITH ",
    user_lock!(),
    ", e AS (SELECT EXISTS (SELECT 1 FROM records WHERE user_id = $1 AND app_id = $2 \
                        AND table_name = $3 AND record_id = $4) AS existed FROM u), \
              a AS (INSERT INTO persona_actions (id, persona_id, tick_id, tool_name, module, \
                        input, input_hash, result, error_message, latency_ms, created_at, \
                        completed_at) \
                    SELECT $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28 \
                    FROM e WHERE NOT e.existed \
                    ON CONFLICT DO NOTHING RETURNING 1), \
              r AS (INSERT INTO records (user_id, app_id, table_name, record_id, data, \
                        field_timestamps, created_stamp, tombstone, deleted, last_change_id, \
                        created_at, updated_at) \
                    SELECT $1, $2, $3, $4, $12, $13, $14, $15, $16, nextval('sync_changes_id_seq'), \
                           $11, $11 \
                    WHERE EXISTS (SELECT FROM a) RETURNING last_change_id), \
              c AS (INSERT INTO sync_changes (id, user_id, app_id, table_name, record_id, op, \
                        data, field_timestamps, stamp, client_id, origin, created_at) \
                    SELECT r.last_change_id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM r \
                    RETURNING id) \
         SELECT (SELECT id FROM c) AS id, (SELECT existed FROM e) AS existed"
);

/// A persona's create with the action row that records it, outside any transaction,
/// in one statement: the action row, the record and its log row, all or none. The
/// action row is written only when no row of `key` exists (as of the statement's
/// snapshot) and the record only when the action row was new (not a re-sent call).
/// A row of `key` created concurrently makes the record's plain `INSERT` fail, which
/// undoes the whole statement: [`Recorded::Exists`], as for an existing row. Like
/// [`create`] outside a transaction, only for a table without hooks ([`has_hooks`]).
pub async fn create_recorded(
    conn: &mut AsyncPgConnection,
    key: RecordKey<'_>,
    change: &Change,
    author: Author<'_>,
    now: DateTime<Utc>,
    action: &super::personas::NewAction,
) -> Result<Recorded, RecordError> {
    #[derive(QueryableByName)]
    struct Outcome {
        #[diesel(sql_type = Nullable<BigInt>)]
        id: Option<i64>,
        /// `None`: no user ([`USER_LOCK`]).
        #[diesel(sql_type = Nullable<Bool>)]
        existed: Option<bool>,
    }
    debug_assert!(!has_hooks(key), "a hook's write needs a transaction");
    let mut state = RecordState::default();
    lww::apply(&mut state, change);
    let outcome = super::personas::bind_action(
        record_write(CREATE_RECORDED, key, change, author, now, &state),
        action,
    )
    .cached()
    .get_result::<Outcome>(conn)
    .await;
    match outcome {
        Ok(Outcome { id: Some(id), .. }) => Ok(Recorded::Created(Appended {
            change_id: id,
            state,
            created_at: now,
        })),
        Ok(Outcome {
            existed: Some(true),
            ..
        }) => Ok(Recorded::Exists),
        Ok(Outcome {
            existed: Some(false),
            ..
        }) => Ok(Recorded::RanBefore),
        Ok(Outcome { existed: None, .. }) => Err(RecordError::UnknownUser),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            info,
        )) if info.table_name() == Some("records") => Ok(Recorded::Exists),
        Err(e) => Err(e.into()),
    }
}

/// A statement writing a record with its log row, with its first sixteen binds: the
/// key ($1–$4), the change's log columns ($5–$8), the author ($9, $10), `now` ($11)
/// and the merged state's record columns ($12–$16: data, stamps, created and
/// tombstone stamps, deleted). Callers bind what their statement adds from $17.
fn record_write<'a>(
    sql: &'a str,
    key: RecordKey<'a>,
    change: &'a Change,
    author: Author<'a>,
    now: DateTime<Utc>,
    state: &'a RecordState,
) -> diesel::query_builder::BoxedSqlQuery<'a, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    let (change_data, change_stamps) = change_columns(change);
    let (state_data, state_stamps) = state_columns(state);
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<SqlUuid, _>(key.user_id)
        .bind::<Text, _>(key.app_id)
        .bind::<Text, _>(key.table)
        .bind::<Text, _>(key.record_id)
        .bind::<Text, _>(change.op.as_str())
        .bind::<Nullable<Jsonb>, _>(change_data)
        .bind::<Jsonb, _>(change_stamps)
        .bind::<Text, _>(change.stamp.to_string())
        .bind::<Text, _>(author.client_id)
        .bind::<Text, _>(author.origin)
        .bind::<Timestamptz, _>(now)
        .bind::<Jsonb, _>(state_data)
        .bind::<Jsonb, _>(state_stamps)
        .bind::<Nullable<Text>, _>(state.created.as_ref().map(ToString::to_string))
        .bind::<Nullable<Text>, _>(state.tombstone.as_ref().map(ToString::to_string))
        .bind::<Bool, _>(!state.is_visible())
}

/// Whether `key`'s table keeps a derived index ([`TableHook`]): its writes are two
/// statements and need a transaction.
pub fn has_hooks(key: RecordKey<'_>) -> bool {
    super::TABLE_HOOKS
        .iter()
        .any(|h| h.app_id == key.app_id && h.table == key.table)
}

/// The record of `key` written with `change` merged into an empty state, and its log
/// row, in one statement — when no row of `key` exists (not even a deleted one);
/// `None` (nothing written) when one does; [`RecordError::UnknownUser`] (nothing
/// written) when the user is gone. The record's row takes its
/// `last_change_id` from the log's sequence and the log row that id, so both say the
/// same as [`append_locked`]'s two statements would. A concurrent writer's new row of
/// the same key makes the insert wait for its commit and then do nothing. Runs no
/// table hook: [`append_if`] runs them after it, in its transaction; outside one it
/// is only for a table without hooks ([`has_hooks`]).
pub async fn create(
    conn: &mut AsyncPgConnection,
    key: RecordKey<'_>,
    change: &Change,
    author: Author<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Appended>, RecordError> {
    #[derive(QueryableByName)]
    struct Outcome {
        #[diesel(sql_type = Nullable<BigInt>)]
        id: Option<i64>,
        #[diesel(sql_type = Bool)]
        user_found: bool,
    }
    const SQL: &str = concat!(
        "WITH ",
        user_lock!(),
        ", r AS (INSERT INTO records (user_id, app_id, table_name, record_id, data, \
                        field_timestamps, created_stamp, tombstone, deleted, last_change_id, \
                        created_at, updated_at) \
                    SELECT $1, $2, $3, $4, $12, $13, $14, $15, $16, nextval('sync_changes_id_seq'), \
                           $11, $11 FROM u \
                    ON CONFLICT DO NOTHING RETURNING last_change_id), \
              c AS (INSERT INTO sync_changes (id, user_id, app_id, table_name, record_id, op, \
                        data, field_timestamps, stamp, client_id, origin, created_at) \
                    SELECT r.last_change_id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM r \
                    RETURNING id) \
         SELECT (SELECT id FROM c) AS id, EXISTS (SELECT FROM u) AS user_found"
    );
    let mut state = RecordState::default();
    lww::apply(&mut state, change);
    let outcome = record_write(SQL, key, change, author, now, &state)
        .cached()
        .get_result::<Outcome>(conn)
        .await?;
    match outcome {
        Outcome {
            user_found: false, ..
        } => Err(RecordError::UnknownUser),
        Outcome { id, .. } => Ok(id.map(|change_id| Appended {
            change_id,
            state,
            created_at: now,
        })),
    }
}

/// The table hooks of `key`'s table, with the record's merged state.
async fn run_hooks(
    conn: &mut AsyncPgConnection,
    key: RecordKey<'_>,
    state: &RecordState,
    now: DateTime<Utc>,
) -> Result<(), RecordError> {
    for hook in super::TABLE_HOOKS
        .iter()
        .filter(|h| h.app_id == key.app_id && h.table == key.table)
    {
        (hook.on_append)(conn, Written { key, state, now }).await?;
    }
    Ok(())
}

const RECORD_COLUMNS: &str = "record_id, data, field_timestamps, created_stamp, tombstone, \
                              deleted, last_change_id, created_at, updated_at";

/// The record's row, locked for the transaction; created (not yet written,
/// `last_change_id = 0`) when missing. Locks the user's row first ([`USER_LOCK`]).
async fn lock_or_create(
    conn: &mut AsyncPgConnection,
    key: RecordKey<'_>,
    now: DateTime<Utc>,
) -> Result<RecordRow, RecordError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH {USER_LOCK}, \
              ins AS (INSERT INTO records (user_id, app_id, table_name, record_id, deleted, \
                          last_change_id, created_at, updated_at) \
                      SELECT $1, $2, $3, $4, true, 0, $5, $5 FROM u ON CONFLICT DO NOTHING \
                      RETURNING {RECORD_COLUMNS}), \
              cur AS (SELECT {RECORD_COLUMNS} FROM records \
                      WHERE user_id = $1 AND app_id = $2 AND table_name = $3 AND record_id = $4 \
                      FOR UPDATE) \
         SELECT * FROM ins UNION ALL SELECT * FROM cur"
        )
    });
    let found: Option<ListRow> = diesel::sql_query(SQL.as_str())
        .bind::<SqlUuid, _>(key.user_id)
        .bind::<Text, _>(key.app_id)
        .bind::<Text, _>(key.table)
        .bind::<Text, _>(key.record_id)
        .bind::<Timestamptz, _>(now)
        .cached()
        .get_result(conn)
        .await
        .optional()?;
    if let Some(row) = found {
        return Ok(row.into_row());
    }
    // Another transaction created the row after this statement's snapshot
    // was taken (the INSERT waited for it and did nothing; the SELECT could
    // not see it yet): a fresh statement sees and locks it. Or the user is
    // gone (nothing was inserted, and a deleted user has no rows).
    records::table
        .find((key.user_id, key.app_id, key.table, key.record_id))
        .select(RecordRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(RecordError::UnknownUser)
}

/// A live (visible) record.
pub async fn get(
    conn: &mut AsyncPgConnection,
    key: RecordKey<'_>,
) -> Result<Option<RecordRow>, RecordError> {
    Ok(records::table
        .find((key.user_id, key.app_id, key.table, key.record_id))
        .filter(records::deleted.eq(false))
        .select(RecordRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// A filter over a user's live records of one table.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub contains: Map<String, Value>,
    pub not_contains: Map<String, Value>,
    pub search_fields: Vec<String>,
    pub search_text: Option<String>,
    pub limit: u32,
}

/// Live records, newest created first. Search is a case-insensitive substring
/// match over the named fields' text.
pub async fn list(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    app_id: &str,
    table: &str,
    filter: &ListFilter,
) -> Result<Vec<Listed>, RecordError> {
    let not_contains: Vec<Value> = filter
        .not_contains
        .iter()
        .map(|(k, v)| {
            let mut m = Map::new();
            m.insert(k.clone(), v.clone());
            Value::Object(m)
        })
        .collect();
    let pattern = filter.search_text.as_ref().map(|t| {
        let escaped = t
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    Ok(diesel::sql_query(
        r"SELECT record_id, data, created_at, updated_at
          FROM records
          WHERE user_id = $1 AND app_id = $2 AND table_name = $3 AND NOT deleted
            AND data @> $4
            AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements($5) n WHERE records.data @> n.value)
            AND ($6::text IS NULL OR EXISTS (
                SELECT 1 FROM unnest($7::text[]) f WHERE (records.data ->> f) ILIKE $6))
          ORDER BY created_at DESC, record_id
          LIMIT $8",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(app_id)
    .bind::<Text, _>(table)
    .bind::<Jsonb, _>(Value::Object(filter.contains.clone()))
    .bind::<Jsonb, _>(Value::Array(not_contains))
    .bind::<Nullable<Text>, _>(pattern)
    .bind::<diesel::sql_types::Array<Text>, _>(filter.search_fields.clone())
    .bind::<Integer, _>(i32::try_from(filter.limit).unwrap_or(i32::MAX))
    .cached()
    .load::<Listed>(conn)
    .await?)
}

/// A live record as [`list`] returns it: what a reader sees, without the merge
/// state (field stamps, tombstone) that only a writer needs.
#[derive(Debug, Clone, QueryableByName)]
pub struct Listed {
    #[diesel(sql_type = Text)]
    pub record_id: String,
    #[diesel(sql_type = Jsonb)]
    pub data: Value,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub updated_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct ListRow {
    #[diesel(sql_type = Text)]
    record_id: String,
    #[diesel(sql_type = Jsonb)]
    data: Value,
    #[diesel(sql_type = Jsonb)]
    field_timestamps: Value,
    #[diesel(sql_type = Nullable<Text>)]
    created_stamp: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    tombstone: Option<String>,
    #[diesel(sql_type = Bool)]
    deleted: bool,
    #[diesel(sql_type = BigInt)]
    last_change_id: i64,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

impl ListRow {
    fn into_row(self) -> RecordRow {
        RecordRow {
            record_id: self.record_id,
            data: self.data,
            field_timestamps: self.field_timestamps,
            created_stamp: self.created_stamp,
            tombstone: self.tombstone,
            deleted: self.deleted,
            last_change_id: self.last_change_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// One change of the log as pull returns it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sync_changes, check_for_backend(diesel::pg::Pg))]
pub struct ChangeRow {
    pub id: i64,
    pub app_id: String,
    pub table_name: String,
    pub record_id: String,
    pub op: String,
    pub data: Option<Value>,
    pub field_timestamps: Value,
    pub client_id: String,
    pub origin: String,
    pub created_at: DateTime<Utc>,
}

/// The user's changes after `since`, in order, at most `limit`.
pub async fn changes_since(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    since: i64,
    limit: i64,
) -> Result<Vec<ChangeRow>, RecordError> {
    Ok(sync_changes::table
        .filter(sync_changes::user_id.eq(user_id))
        .filter(sync_changes::id.gt(since))
        .order(sync_changes::id.asc())
        .limit(limit)
        .select(ChangeRow::as_select())
        .load(conn)
        .await?)
}

/// Lock the user's row for the rest of the transaction, as every write of the store
/// does ([`USER_LOCK`]); [`RecordError::UnknownUser`] when the user is gone.
async fn lock_user(conn: &mut AsyncPgConnection, user_id: Uuid) -> Result<(), RecordError> {
    let locked = diesel::sql_query(concat!("WITH ", user_lock!(), " SELECT FROM u"))
        .bind::<SqlUuid, _>(user_id)
        .cached()
        .execute(conn)
        .await?;
    match locked {
        0 => Err(RecordError::UnknownUser),
        _ => Ok(()),
    }
}

/// Lock a record's row for the rest of the transaction (no-op when absent).
pub async fn lock(conn: &mut AsyncPgConnection, key: RecordKey<'_>) -> Result<(), RecordError> {
    records::table
        .find((key.user_id, key.app_id, key.table, key.record_id))
        .select(records::record_id)
        .for_update()
        .load::<String>(conn)
        .await?;
    Ok(())
}

/// One change of a batch for [`append_batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub app_id: &'a str,
    pub table: &'a str,
    pub record_id: &'a str,
    pub change: &'a Change,
}

/// An existing record of a batch, locked: `n` is its 1-based position in the
/// batch's sorted keys.
#[derive(QueryableByName)]
struct LockedRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(embed)]
    row: ListRow,
}

#[derive(QueryableByName)]
struct ChangeId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// What the batch's write statement did.
#[derive(QueryableByName)]
struct BatchWritten {
    /// The new `sync_changes` ids, ascending = in batch order.
    #[diesel(sql_type = diesel::sql_types::Array<BigInt>)]
    ids: Vec<i64>,
    #[diesel(sql_type = BigInt)]
    inserted: i64,
    #[diesel(sql_type = BigInt)]
    updated: i64,
}

/// A record of the batch while it is merged in memory.
struct Merging {
    state: RecordState,
    /// Whether the row exists (found and locked by this attempt).
    exists: bool,
    /// `last_change_id > 0` as stored or as set by an earlier change of the batch.
    written: bool,
    created_at: DateTime<Utc>,
    /// 1-based position in the batch of the last change to this record.
    last: i32,
    /// How many of the batch's changes are to this record.
    changes: u32,
}

/// The address of a record inside one user's store.
type Key3<'a> = (&'a str, &'a str, &'a str);

/// The `data` and `field_timestamps` columns of a change's log row (shared by
/// [`append_if`] and [`append_batch`]); `data` is NULL when the change writes no field.
fn change_columns(change: &Change) -> (Option<JsonbOf<ChangeData<'_>>>, JsonbOf<ChangeStamps<'_>>) {
    let data = (!change.fields.is_empty()).then_some(JsonbOf(ChangeData(change)));
    (data, JsonbOf(ChangeStamps(change)))
}

/// The `data` and `field_timestamps` columns of a merged record.
fn state_columns(state: &RecordState) -> (JsonbOf<StateData<'_>>, JsonbOf<StateStamps<'_>>) {
    (JsonbOf(StateData(state)), JsonbOf(StateStamps(state)))
}

/// A `jsonb` parameter serialized straight from what it borrows: the object columns
/// of the log and the records, without first copying every field name and value into
/// a `serde_json::Value` (a 1,000-change push binds four objects per change).
#[derive(Debug, diesel::expression::AsExpression)]
#[diesel(sql_type = Jsonb)]
struct JsonbOf<T>(T);

impl<T: serde::Serialize + std::fmt::Debug> diesel::serialize::ToSql<Jsonb, diesel::pg::Pg>
    for JsonbOf<T>
{
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
    ) -> diesel::serialize::Result {
        use std::io::Write;
        // jsonb's binary format: a version byte, then the JSON text.
        out.write_all(&[1])?;
        serde_json::to_writer(out, &self.0)?;
        Ok(diesel::serialize::IsNull::No)
    }
}

/// A change's written fields, `{name: value}`.
#[derive(Debug)]
struct ChangeData<'a>(&'a Change);
/// A change's field stamps, `{name: stamp}`.
#[derive(Debug)]
struct ChangeStamps<'a>(&'a Change);
/// A merged record's winning values, `{name: value}`.
#[derive(Debug)]
struct StateData<'a>(&'a RecordState);
/// A merged record's winning stamps, `{name: stamp}`.
#[derive(Debug)]
struct StateStamps<'a>(&'a RecordState);

impl serde::Serialize for ChangeData<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.fields.iter().map(|(name, value, _)| (name, value)))
    }
}

impl serde::Serialize for ChangeStamps<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.fields.iter().map(|(name, _, stamp)| (name, stamp)))
    }
}

impl serde::Serialize for StateData<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.fields.iter().map(|(name, f)| (name, &f.value)))
    }
}

impl serde::Serialize for StateStamps<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.fields.iter().map(|(name, f)| (name, &f.stamp)))
    }
}

/// How many times [`append_batch`] starts over when concurrent writers keep
/// creating records of the batch between its lock and its insert.
const BATCH_ATTEMPTS: usize = 8;

/// Append a batch of changes of one user, in order, all or nothing, in three
/// statements whatever the batch size; returns the new change ids in batch
/// order. The result is the same as calling [`append`] for each change in
/// order.
///
/// 1. Lock the user's row ([`USER_LOCK`]), then the batch's existing `records`
///    rows, one index lookup per key, in the order of the sorted keys (the
///    order a user's delete takes them in, so the two cannot deadlock).
/// 2. Merge in memory with the `lww` rules (a missing record starts empty).
/// 3. One statement: insert every `sync_changes` row, insert the new records
///    with their merged state (sorted keys, a plain `INSERT`: no speculative
///    insertion, so no extra index probe per new record; a record created by
///    one change takes its objects from that change's parameters), write the merged
///    state of the locked ones (an upsert that always meets its row: one
///    index lookup each, never a join over the user's records).
/// 4. Run the table hooks once per record with its final state.
///
/// A record that did not exist at step 1 but that a concurrent writer created
/// before step 3 fails the insert with a unique violation (it "lost the
/// race"); its merge started from the wrong state, so the attempt is rolled
/// back and the batch starts over
/// (the record is then found and locked at step 1). Starting over rather than
/// locking the latecomer at once keeps one lock order: every batch locks
/// existing rows (in key order) before it inserts any (in key order), and
/// holds no inserted row while it waits for a lock, so two batches cannot
/// deadlock.
///
/// Runs its own transaction (a savepoint when called inside one).
pub async fn append_batch(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    items: &[BatchItem<'_>],
    author: Author<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, RecordError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let batch = Batch::new(items, author);
    for attempt in 1..=BATCH_ATTEMPTS {
        match conn
            .transaction::<_, RecordError, _>(async |conn| batch.write(conn, user_id, now).await)
            .await
        {
            Err(RecordError::Raced) => tracing::info!(
                user.id = %user_id,
                batch.attempt = attempt,
                "batch {attempt} for user {user_id}: a new record was created \
                 concurrently; starting over"
            ),
            other => return other,
        }
    }
    Err(RecordError::Contended)
}

/// The parts of a batch that do not depend on what is stored: the sorted
/// keys and the `sync_changes` columns.
struct Batch<'a> {
    items: &'a [BatchItem<'a>],
    author: Author<'a>,
    keys: Vec<Key3<'a>>,
    /// Per item, the index of its key in `keys`.
    key_of: Vec<usize>,
    c_apps: Vec<&'a str>,
    c_tables: Vec<&'a str>,
    c_ids: Vec<&'a str>,
    c_ops: Vec<&'a str>,
    c_data: Vec<Option<JsonbOf<ChangeData<'a>>>>,
    c_stamps: Vec<JsonbOf<ChangeStamps<'a>>>,
    c_stamp: Vec<String>,
}

impl<'a> Batch<'a> {
    fn new(items: &'a [BatchItem<'a>], author: Author<'a>) -> Self {
        let mut keys: Vec<Key3<'a>> = items
            .iter()
            .map(|i| (i.app_id, i.table, i.record_id))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let key_of = items
            .iter()
            .map(|i| {
                keys.binary_search(&(i.app_id, i.table, i.record_id))
                    .unwrap_or_default()
            })
            .collect();
        let n = items.len();
        let mut batch = Self {
            items,
            author,
            keys,
            key_of,
            c_apps: Vec::with_capacity(n),
            c_tables: Vec::with_capacity(n),
            c_ids: Vec::with_capacity(n),
            c_ops: Vec::with_capacity(n),
            c_data: Vec::with_capacity(n),
            c_stamps: Vec::with_capacity(n),
            c_stamp: Vec::with_capacity(n),
        };
        for item in items {
            let (data, stamps) = change_columns(item.change);
            batch.c_apps.push(item.app_id);
            batch.c_tables.push(item.table);
            batch.c_ids.push(item.record_id);
            batch.c_ops.push(item.change.op.as_str());
            batch.c_data.push(data);
            batch.c_stamps.push(stamps);
            batch.c_stamp.push(item.change.stamp.to_string());
        }
        batch
    }

    /// One attempt, inside its transaction.
    async fn write(
        &self,
        conn: &mut AsyncPgConnection,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, RecordError> {
        use diesel::sql_types::Array;
        let (apps, (tables, ids)): (Vec<&str>, (Vec<&str>, Vec<&str>)) =
            self.keys.iter().map(|&(a, t, r)| (a, (t, r))).unzip();
        lock_user(conn, user_id).await?;
        // A locking subquery is never flattened into a join, so this is a
        // nested loop over the keys in array order (= lock order) with one
        // primary-key lookup each, whatever the planner thinks of the sizes.
        let locked: Vec<LockedRow> = diesel::sql_query(
            "SELECT k.n, rec.record_id, rec.data, rec.field_timestamps, rec.created_stamp, \
                    rec.tombstone, rec.deleted, rec.last_change_id, rec.created_at, rec.updated_at \
             FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS k(a, t, r, n) \
             CROSS JOIN LATERAL ( \
                 SELECT * FROM records \
                 WHERE user_id = $1 AND app_id = k.a AND table_name = k.t AND record_id = k.r \
                 FOR UPDATE) rec \
             ORDER BY k.n",
        )
        .bind::<SqlUuid, _>(user_id)
        .bind::<Array<Text>, _>(&apps)
        .bind::<Array<Text>, _>(&tables)
        .bind::<Array<Text>, _>(&ids)
        .cached()
        .load(conn)
        .await?;

        let mut merging: Vec<Merging> = (0..self.keys.len())
            .map(|_| Merging {
                state: RecordState::default(),
                exists: false,
                written: false,
                created_at: now,
                last: 0,
                changes: 0,
            })
            .collect();
        for l in locked {
            let m = usize::try_from(l.n - 1)
                .ok()
                .and_then(|i| merging.get_mut(i))
                .ok_or_else(|| RecordError::Corrupt(format!("locked key {} of none", l.n)))?;
            let row = l.row.into_row();
            m.state = row.state()?;
            m.exists = true;
            m.written = row.last_change_id > 0;
            m.created_at = row.created_at;
        }

        // Merge in batch order.
        for (n, (item, &k)) in self.items.iter().zip(&self.key_of).enumerate() {
            let m = &mut merging[k];
            let was_visible = m.written && m.state.is_visible();
            lww::apply(&mut m.state, item.change);
            if m.state.is_visible() && !was_visible {
                m.created_at = now;
            }
            m.written = true;
            m.changes += 1;
            m.last =
                i32::try_from(n + 1).map_err(|_| RecordError::Corrupt("batch too large".into()))?;
        }

        let mut new = RecordColumns::with_capacity(merging.len());
        let mut old = RecordColumns::with_capacity(merging.len());
        for (&key, m) in self.keys.iter().zip(&merging) {
            if m.exists {
                old.push(key, m, false);
            } else {
                new.push(key, m, self.merged_is_its_change(m));
            }
        }
        // Ids come from the sequence in the order of the SELECT (ORDER BY n),
        // so the sorted ids are the batch's changes in order and `ids[last]`
        // is a record's last change. New records are inserted in key order
        // (the lock order of inserts); locked ones conflict with their own
        // row and take the DO UPDATE branch.
        let written: BatchWritten = diesel::sql_query(
            "WITH c AS (INSERT INTO sync_changes (user_id, app_id, table_name, record_id, op, data, \
                            field_timestamps, stamp, client_id, origin, created_at) \
                        SELECT $1, x.a, x.t, x.r, x.op, x.d, x.fs, x.s, $9, $10, $11 \
                        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], \
                                    $7::jsonb[], $8::text[]) WITH ORDINALITY AS x(a, t, r, op, d, fs, s, n) \
                        ORDER BY x.n RETURNING id), \
                  ids AS (SELECT array_agg(id ORDER BY id) AS ids FROM c), \
                  ins AS (INSERT INTO records (user_id, app_id, table_name, record_id, data, \
                              field_timestamps, created_stamp, tombstone, deleted, last_change_id, \
                              created_at, updated_at) \
                          SELECT $1, v.a, v.t, v.r, coalesce(v.d, ($6::jsonb[])[v.last]), \
                                 coalesce(v.fs, ($7::jsonb[])[v.last]), v.cs, v.ts, v.del, \
                                 ids.ids[v.last], v.ca, $11 \
                          FROM unnest($12::text[], $13::text[], $14::text[], $15::jsonb[], $16::jsonb[], \
                                      $17::text[], $18::text[], $19::bool[], $20::int4[], $21::timestamptz[]) \
                               WITH ORDINALITY AS v(a, t, r, d, fs, cs, ts, del, last, ca, n) \
                          CROSS JOIN ids ORDER BY v.n \
                          RETURNING 1), \
                  upd AS (INSERT INTO records (user_id, app_id, table_name, record_id, data, \
                              field_timestamps, created_stamp, tombstone, deleted, last_change_id, \
                              created_at, updated_at) \
                          SELECT $1, v.a, v.t, v.r, v.d, v.fs, v.cs, v.ts, v.del, ids.ids[v.last], v.ca, $11 \
                          FROM unnest($22::text[], $23::text[], $24::text[], $25::jsonb[], $26::jsonb[], \
                                      $27::text[], $28::text[], $29::bool[], $30::int4[], $31::timestamptz[]) \
                               WITH ORDINALITY AS v(a, t, r, d, fs, cs, ts, del, last, ca, n) \
                          CROSS JOIN ids ORDER BY v.n \
                          ON CONFLICT (user_id, app_id, table_name, record_id) DO UPDATE SET \
                              data = excluded.data, field_timestamps = excluded.field_timestamps, \
                              created_stamp = excluded.created_stamp, tombstone = excluded.tombstone, \
                              deleted = excluded.deleted, last_change_id = excluded.last_change_id, \
                              created_at = excluded.created_at, updated_at = excluded.updated_at \
                          RETURNING 1) \
             SELECT (SELECT ids FROM ids) AS ids, (SELECT count(*) FROM ins) AS inserted, \
                    (SELECT count(*) FROM upd) AS updated",
        )
        .bind::<SqlUuid, _>(user_id)
        .bind::<Array<Text>, _>(&self.c_apps)
        .bind::<Array<Text>, _>(&self.c_tables)
        .bind::<Array<Text>, _>(&self.c_ids)
        .bind::<Array<Text>, _>(&self.c_ops)
        .bind::<Array<Nullable<Jsonb>>, _>(&self.c_data)
        .bind::<Array<Jsonb>, _>(&self.c_stamps)
        .bind::<Array<Text>, _>(&self.c_stamp)
        .bind::<Text, _>(self.author.client_id)
        .bind::<Text, _>(self.author.origin)
        .bind::<Timestamptz, _>(now)
        .bind::<Array<Text>, _>(&new.apps)
        .bind::<Array<Text>, _>(&new.tables)
        .bind::<Array<Text>, _>(&new.ids)
        .bind::<Array<Nullable<Jsonb>>, _>(&new.data)
        .bind::<Array<Nullable<Jsonb>>, _>(&new.stamps)
        .bind::<Array<Nullable<Text>>, _>(&new.created)
        .bind::<Array<Nullable<Text>>, _>(&new.tombstone)
        .bind::<Array<Bool>, _>(&new.deleted)
        .bind::<Array<Integer>, _>(&new.last)
        .bind::<Array<Timestamptz>, _>(&new.created_at)
        .bind::<Array<Text>, _>(&old.apps)
        .bind::<Array<Text>, _>(&old.tables)
        .bind::<Array<Text>, _>(&old.ids)
        .bind::<Array<Nullable<Jsonb>>, _>(&old.data)
        .bind::<Array<Nullable<Jsonb>>, _>(&old.stamps)
        .bind::<Array<Nullable<Text>>, _>(&old.created)
        .bind::<Array<Nullable<Text>>, _>(&old.tombstone)
        .bind::<Array<Bool>, _>(&old.deleted)
        .bind::<Array<Integer>, _>(&old.last)
        .bind::<Array<Timestamptz>, _>(&old.created_at)
        .cached()
        .get_result(conn)
        .await
        .map_err(|e| match e {
            // A new record that a concurrent writer created after the lock
            // (`sync_changes` has no unique key a batch could meet).
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                info,
            ) if info.table_name() == Some("records") => RecordError::Raced,
            other => other.into(),
        })?;
        if written.ids.len() != self.items.len()
            || written.inserted != new.len()
            || written.updated != old.len()
        {
            return Err(RecordError::Corrupt(format!(
                "wrote {} of {} changes, inserted {} of {} records and updated {} of {}",
                written.ids.len(),
                self.items.len(),
                written.inserted,
                new.len(),
                written.updated,
                old.len()
            )));
        }

        // Hooks keep a derived index of the record's state: the final state of
        // each record gives what running them after every change would.
        for (&(app_id, table, record_id), m) in self.keys.iter().zip(&merging) {
            for hook in super::TABLE_HOOKS
                .iter()
                .filter(|h| h.app_id == app_id && h.table == table)
            {
                let written = Written {
                    key: RecordKey {
                        user_id,
                        app_id,
                        table,
                        record_id,
                    },
                    state: &m.state,
                    now,
                };
                (hook.on_append)(conn, written).await?;
            }
        }
        Ok(written.ids)
    }

    /// Whether a record's merged `data` and `field_timestamps` are exactly those of
    /// its one change's log row: a record the batch creates with a single change
    /// that writes fields (each once) has that change's values and stamps. Such a
    /// record's columns are read from the log row's parameters instead of being sent
    /// again (most records of a typical push; half its objects).
    fn merged_is_its_change(&self, m: &Merging) -> bool {
        m.changes == 1
            && usize::try_from(m.last - 1)
                .ok()
                .and_then(|i| self.items.get(i))
                .is_some_and(|item| {
                    !item.change.fields.is_empty()
                        && item.change.fields.len() == m.state.fields.len()
                })
    }
}

/// The `records` columns of some of a batch's merged records, as arrays.
struct RecordColumns<'a> {
    apps: Vec<&'a str>,
    tables: Vec<&'a str>,
    ids: Vec<&'a str>,
    /// NULL where the record's objects are its one change's (read from the log
    /// row's parameters at the record's `last` position).
    data: Vec<Option<JsonbOf<StateData<'a>>>>,
    stamps: Vec<Option<JsonbOf<StateStamps<'a>>>>,
    created: Vec<Option<String>>,
    tombstone: Vec<Option<String>>,
    deleted: Vec<bool>,
    last: Vec<i32>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> RecordColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            apps: Vec::with_capacity(n),
            tables: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            stamps: Vec::with_capacity(n),
            created: Vec::with_capacity(n),
            tombstone: Vec::with_capacity(n),
            deleted: Vec::with_capacity(n),
            last: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
        }
    }

    /// `as_change`: the record's objects are its one change's (see
    /// [`Batch::merged_is_its_change`]).
    fn push(&mut self, (app, table, id): Key3<'a>, m: &'a Merging, as_change: bool) {
        let (data, stamps) = if as_change {
            (None, None)
        } else {
            let (data, stamps) = state_columns(&m.state);
            (Some(data), Some(stamps))
        };
        self.apps.push(app);
        self.tables.push(table);
        self.ids.push(id);
        self.data.push(data);
        self.stamps.push(stamps);
        self.created
            .push(m.state.created.as_ref().map(ToString::to_string));
        self.tombstone
            .push(m.state.tombstone.as_ref().map(ToString::to_string));
        self.deleted.push(!m.state.is_visible());
        self.last.push(m.last);
        self.created_at.push(m.created_at);
    }

    /// As the `count(*)` the write statement returns.
    fn len(&self) -> i64 {
        i64::try_from(self.ids.len()).unwrap_or(i64::MAX)
    }
}
