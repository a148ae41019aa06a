//! The record store: append a change to `sync_changes` and merge it into
//! `records` in the same transaction (field-level last-writer-wins, rules in
//! the `lww` crate), read current records, and page through a user's log.
//!
//! Every function takes the user id: nothing here can touch another user's
//! rows. Concurrent writers of one record serialise on its `records` row
//! (`INSERT … ON CONFLICT DO NOTHING` then `SELECT … FOR UPDATE`).
//!
//! Rules:
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
use diesel_async::{AsyncPgConnection, RunQueryDsl};
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
}

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

    let (change_data, change_stamps) = change_columns(change);
    let visible = state.is_visible();
    // `created_at` of a record: when it (re)appeared.
    let created_at = if visible && !was_visible {
        now
    } else {
        row.created_at
    };
    // The log row and the record in one statement.
    let change_id = diesel::sql_query(
        "WITH c AS (INSERT INTO sync_changes (user_id, app_id, table_name, record_id, op, data, \
                        field_timestamps, stamp, client_id, origin, created_at) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id) \
         UPDATE records SET data = $12, field_timestamps = $13, created_stamp = $14, tombstone = $15, \
                deleted = $16, last_change_id = c.id, created_at = $17, updated_at = $11 \
         FROM c WHERE user_id = $1 AND app_id = $2 AND table_name = $3 AND record_id = $4 \
         RETURNING c.id",
    )
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
    .bind::<Jsonb, _>(Value::Object(state.data()))
    .bind::<Jsonb, _>(state_stamps(&state))
    .bind::<Nullable<Text>, _>(state.created.as_ref().map(ToString::to_string))
    .bind::<Nullable<Text>, _>(state.tombstone.as_ref().map(ToString::to_string))
    .bind::<Bool, _>(!visible)
    .bind::<Timestamptz, _>(created_at)
    .cached()
    .get_result::<ChangeId>(conn)
    .await?
    .id;
    for hook in super::TABLE_HOOKS
        .iter()
        .filter(|h| h.app_id == key.app_id && h.table == key.table)
    {
        let written = Written {
            key,
            state: &state,
            now,
        };
        (hook.on_append)(conn, written).await?;
    }
    Ok(Appended {
        change_id,
        state,
        created_at,
    })
}

const RECORD_COLUMNS: &str = "record_id, data, field_timestamps, created_stamp, tombstone, \
                              deleted, last_change_id, created_at, updated_at";

/// The record's row, locked for the transaction; created (not yet written,
/// `last_change_id = 0`) when missing.
async fn lock_or_create(
    conn: &mut AsyncPgConnection,
    key: RecordKey<'_>,
    now: DateTime<Utc>,
) -> Result<RecordRow, RecordError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH ins AS (INSERT INTO records (user_id, app_id, table_name, record_id, deleted, \
                          last_change_id, created_at, updated_at) \
                      VALUES ($1, $2, $3, $4, true, 0, $5, $5) ON CONFLICT DO NOTHING \
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
    // not see it yet): a fresh statement sees and locks it.
    Ok(records::table
        .find((key.user_id, key.app_id, key.table, key.record_id))
        .select(RecordRow::as_select())
        .for_update()
        .first(conn)
        .await?)
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
) -> Result<Vec<RecordRow>, RecordError> {
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
        r"SELECT record_id, data, field_timestamps, created_stamp, tombstone, deleted, last_change_id, created_at, updated_at
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
    .load::<ListRow>(conn)
    .await?
    .into_iter()
    .map(ListRow::into_row)
    .collect())
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

/// A record row of a batch, with the rest of its key.
#[derive(QueryableByName)]
struct LockedRow {
    #[diesel(sql_type = Text)]
    app_id: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(embed)]
    row: ListRow,
}

#[derive(QueryableByName)]
struct ChangeId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// A record of the batch while it is merged in memory.
struct Merging {
    state: RecordState,
    /// `last_change_id > 0` as stored or as set by an earlier change of the batch.
    written: bool,
    created_at: DateTime<Utc>,
    /// Index into the batch of the last change to this record.
    last: usize,
}

type Key3 = (String, String, String);

/// The `data` and `field_timestamps` columns of a change's log row (shared by
/// [`append_if`] and [`append_batch`]).
fn change_columns(change: &Change) -> (Option<Value>, Value) {
    let data = if change.fields.is_empty() {
        None
    } else {
        Some(Value::Object(
            change
                .fields
                .iter()
                .map(|(k, v, _)| (k.clone(), v.clone()))
                .collect(),
        ))
    };
    let stamps: Map<String, Value> = change
        .fields
        .iter()
        .map(|(k, _, s)| (k.clone(), Value::String(s.to_string())))
        .collect();
    (data, Value::Object(stamps))
}

/// The `field_timestamps` column of a merged record.
fn state_stamps(state: &RecordState) -> Value {
    Value::Object(
        state
            .field_stamps()
            .into_iter()
            .map(|(k, s)| (k, Value::String(s.to_string())))
            .collect(),
    )
}

/// Append a batch of changes of one user, in order, with a fixed number of
/// set-based statements whatever the batch size: create the missing
/// `records` rows, lock all affected rows (in key order, so two batches over
/// the same records cannot deadlock), merge in memory with the same `lww`
/// rules as [`append`], insert every `sync_changes` row, update every record,
/// then run the table hooks once per record with its final state. The result
/// is the same as calling [`append`] for each change in order. Call inside
/// the caller's transaction.
pub async fn append_batch(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    items: &[BatchItem<'_>],
    author: Author<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Appended>, RecordError> {
    use diesel::sql_types::Array;
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut keys: Vec<Key3> = items
        .iter()
        .map(|i| {
            (
                i.app_id.to_owned(),
                i.table.to_owned(),
                i.record_id.to_owned(),
            )
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (apps, (tables, ids)): (Vec<&str>, (Vec<&str>, Vec<&str>)) = keys
        .iter()
        .map(|(a, t, r)| (a.as_str(), (t.as_str(), r.as_str())))
        .unzip();

    diesel::sql_query(
        "INSERT INTO records (user_id, app_id, table_name, record_id, deleted, last_change_id, created_at, updated_at) \
         SELECT $1, k.a, k.t, k.r, true, 0, $5, $5 FROM unnest($2::text[], $3::text[], $4::text[]) AS k(a, t, r) \
         ORDER BY k.a, k.t, k.r ON CONFLICT DO NOTHING",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Array<Text>, _>(&apps)
    .bind::<Array<Text>, _>(&tables)
    .bind::<Array<Text>, _>(&ids)
    .bind::<Timestamptz, _>(now)
    .cached()
    .execute(conn)
    .await?;
    let locked: Vec<LockedRow> = diesel::sql_query(
        "SELECT r.app_id, r.table_name, r.record_id, r.data, r.field_timestamps, r.created_stamp, \
                r.tombstone, r.deleted, r.last_change_id, r.created_at, r.updated_at \
         FROM records r JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(a, t, r) \
           ON r.app_id = k.a AND r.table_name = k.t AND r.record_id = k.r \
         WHERE r.user_id = $1 \
         ORDER BY r.app_id, r.table_name, r.record_id FOR UPDATE OF r",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Array<Text>, _>(&apps)
    .bind::<Array<Text>, _>(&tables)
    .bind::<Array<Text>, _>(&ids)
    .cached()
    .load(conn)
    .await?;
    if locked.len() != keys.len() {
        return Err(RecordError::Corrupt(format!(
            "locked {} of {} records",
            locked.len(),
            keys.len()
        )));
    }
    let mut merging: BTreeMap<Key3, Merging> = BTreeMap::new();
    for l in locked {
        let row = l.row.into_row();
        let m = Merging {
            state: row.state()?,
            written: row.last_change_id > 0,
            created_at: row.created_at,
            last: 0,
        };
        merging.insert((l.app_id, l.table_name, row.record_id), m);
    }

    // Merge in batch order; remember each change's state for the result.
    let mut states = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let key = (
            item.app_id.to_owned(),
            item.table.to_owned(),
            item.record_id.to_owned(),
        );
        let m = merging
            .get_mut(&key)
            .ok_or_else(|| RecordError::Corrupt("a batch record was not locked".into()))?;
        let was_visible = m.written && m.state.is_visible();
        lww::apply(&mut m.state, item.change);
        if m.state.is_visible() && !was_visible {
            m.created_at = now;
        }
        m.written = true;
        m.last = n;
        states.push((m.state.clone(), m.created_at));
    }

    let mut c_apps = Vec::with_capacity(items.len());
    let mut c_tables = Vec::with_capacity(items.len());
    let mut c_ids = Vec::with_capacity(items.len());
    let mut c_ops = Vec::with_capacity(items.len());
    let mut c_data = Vec::with_capacity(items.len());
    let mut c_stamps = Vec::with_capacity(items.len());
    let mut c_stamp = Vec::with_capacity(items.len());
    for item in items {
        let (data, stamps) = change_columns(item.change);
        c_apps.push(item.app_id);
        c_tables.push(item.table);
        c_ids.push(item.record_id);
        c_ops.push(item.change.op.as_str());
        c_data.push(data);
        c_stamps.push(stamps);
        c_stamp.push(item.change.stamp.to_string());
    }
    // Ids come from the sequence in the order of the SELECT (ORDER BY n), so
    // the sorted ids are the batch's changes in order.
    let mut change_ids: Vec<i64> = diesel::sql_query(
        "INSERT INTO sync_changes (user_id, app_id, table_name, record_id, op, data, field_timestamps, \
                                   stamp, client_id, origin, created_at) \
         SELECT $1, c.a, c.t, c.r, c.op, c.d, c.fs, c.s, $9, $10, $11 \
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::text[]) \
              WITH ORDINALITY AS c(a, t, r, op, d, fs, s, n) \
         ORDER BY c.n RETURNING id",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Array<Text>, _>(&c_apps)
    .bind::<Array<Text>, _>(&c_tables)
    .bind::<Array<Text>, _>(&c_ids)
    .bind::<Array<Text>, _>(&c_ops)
    .bind::<Array<Nullable<Jsonb>>, _>(&c_data)
    .bind::<Array<Jsonb>, _>(&c_stamps)
    .bind::<Array<Text>, _>(&c_stamp)
    .bind::<Text, _>(author.client_id)
    .bind::<Text, _>(author.origin)
    .bind::<Timestamptz, _>(now)
    .cached()
    .load::<ChangeId>(conn)
    .await?
    .into_iter()
    .map(|c| c.id)
    .collect();
    change_ids.sort_unstable();
    if change_ids.len() != items.len() {
        return Err(RecordError::Corrupt(format!(
            "inserted {} of {} changes",
            change_ids.len(),
            items.len()
        )));
    }

    let mut r_apps = Vec::with_capacity(merging.len());
    let mut r_tables = Vec::with_capacity(merging.len());
    let mut r_ids = Vec::with_capacity(merging.len());
    let mut r_data = Vec::with_capacity(merging.len());
    let mut r_stamps = Vec::with_capacity(merging.len());
    let mut r_created = Vec::with_capacity(merging.len());
    let mut r_tomb = Vec::with_capacity(merging.len());
    let mut r_deleted = Vec::with_capacity(merging.len());
    let mut r_last = Vec::with_capacity(merging.len());
    let mut r_created_at = Vec::with_capacity(merging.len());
    for ((a, t, r), m) in &merging {
        r_apps.push(a.as_str());
        r_tables.push(t.as_str());
        r_ids.push(r.as_str());
        r_data.push(Value::Object(m.state.data()));
        r_stamps.push(state_stamps(&m.state));
        r_created.push(m.state.created.as_ref().map(ToString::to_string));
        r_tomb.push(m.state.tombstone.as_ref().map(ToString::to_string));
        r_deleted.push(!m.state.is_visible());
        r_last.push(change_ids[m.last]);
        r_created_at.push(m.created_at);
    }
    diesel::sql_query(
        "UPDATE records r SET data = v.d, field_timestamps = v.fs, created_stamp = v.cs, tombstone = v.ts, \
                deleted = v.del, last_change_id = v.last, created_at = v.ca, updated_at = $12 \
         FROM unnest($2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::text[], $8::text[], \
                     $9::bool[], $10::int8[], $11::timestamptz[]) AS v(a, t, r, d, fs, cs, ts, del, last, ca) \
         WHERE r.user_id = $1 AND r.app_id = v.a AND r.table_name = v.t AND r.record_id = v.r",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Array<Text>, _>(&r_apps)
    .bind::<Array<Text>, _>(&r_tables)
    .bind::<Array<Text>, _>(&r_ids)
    .bind::<Array<Jsonb>, _>(&r_data)
    .bind::<Array<Jsonb>, _>(&r_stamps)
    .bind::<Array<Nullable<Text>>, _>(&r_created)
    .bind::<Array<Nullable<Text>>, _>(&r_tomb)
    .bind::<Array<Bool>, _>(&r_deleted)
    .bind::<Array<BigInt>, _>(&r_last)
    .bind::<Array<Timestamptz>, _>(&r_created_at)
    .bind::<Timestamptz, _>(now)
    .cached()
    .execute(conn)
    .await?;

    // Hooks keep a derived index of the record's state: the final state of
    // each record gives what running them after every change would.
    for ((a, t, r), m) in &merging {
        for hook in super::TABLE_HOOKS
            .iter()
            .filter(|h| h.app_id == a && h.table == t)
        {
            let written = Written {
                key: RecordKey {
                    user_id,
                    app_id: a,
                    table: t,
                    record_id: r,
                },
                state: &m.state,
                now,
            };
            (hook.on_append)(conn, written).await?;
        }
    }
    Ok(states
        .into_iter()
        .zip(change_ids)
        .map(|((state, created_at), change_id)| Appended {
            change_id,
            state,
            created_at,
        })
        .collect())
}
