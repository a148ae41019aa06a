//! The record store's service layer: turns pushed changes into stamped `lww`
//! changes (stamps more than `sync.max_future_skew_secs` ahead are clamped to
//! the server clock), validates them, and applies a batch atomically.
//!
//! Stamping: a field's stamp is its `fieldStamps` entry, else the change's
//! `stamp`. The change's own stamp (the insert/delete marker) is its `stamp`,
//! else its newest field stamp, else a fresh stamp of the server's hybrid
//! logical clock.

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::AsyncConnection;
use lww::{Change, Op, Stamp};
use serde_json::{Map, Value};
use types::sync::{ChangeOp, PushChange};
use uuid::Uuid;

use crate::{
    db::records::{self, Appended, Author, RecordError, RecordKey},
    error::AppError,
    state::AppState,
};

impl From<RecordError> for AppError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Db(e) => AppError::Database(e),
            RecordError::Corrupt(m) => AppError::Internal(m),
            RecordError::NotLive => AppError::NotFound("no such record".into()),
            RecordError::AlreadyLive => {
                AppError::Conflict("a record with this id already exists".into())
            }
        }
    }
}

pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn valid_record_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 200 && !s.chars().any(char::is_control)
}

/// A validated, stamped change ready to append.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub app_id: String,
    pub table: String,
    pub record_id: String,
    pub change: Change,
}

/// Counts what stamping did.
#[derive(Debug, Default, Clone, Copy)]
pub struct StampStats {
    pub clamped: u32,
}

fn op(op: ChangeOp) -> Op {
    match op {
        ChangeOp::Insert => Op::Insert,
        ChangeOp::Update => Op::Update,
        ChangeOp::Delete => Op::Delete,
    }
}

/// Validate and stamp one pushed change. `at` names it in errors (`changes[3]`).
pub fn prepare(
    state: &AppState,
    c: PushChange,
    at: &str,
    now: DateTime<Utc>,
    stats: &mut StampStats,
) -> Result<Prepared, AppError> {
    if !valid_name(&c.app_id) || !valid_name(&c.table) {
        return Err(AppError::Validation(format!(
            "`{at}.appId` and `{at}.table` must match ^[a-zA-Z0-9_-]{{1,64}}$"
        )));
    }
    if !valid_record_id(&c.record_id) {
        return Err(AppError::Validation(format!(
            "`{at}.recordId` must be 1–200 characters without control characters"
        )));
    }
    let skew =
        TimeDelta::seconds(i64::try_from(state.settings.sync.max_future_skew_secs).unwrap_or(300));
    let mut accept = |raw: &str, field: &str| -> Result<Stamp, AppError> {
        let parsed: Stamp = raw
            .parse()
            .map_err(|e| AppError::Validation(format!("`{at}.{field}`: {e}")))?;
        let (stamp, clamped) = state.hlc.accept(&parsed, now, skew);
        if clamped {
            stats.clamped += 1;
        }
        Ok(stamp)
    };
    let data = c.data.unwrap_or_default();
    let mut field_stamps = c.field_stamps.unwrap_or_default();
    if let Some(extra) = field_stamps.keys().find(|k| !data.contains_key(*k)) {
        return Err(AppError::Validation(format!(
            "`{at}.fieldStamps.{extra}` has no value in `data`"
        )));
    }
    // The change's own stamp: explicit, else its newest field stamp, else the server clock.
    let mut stamped: Vec<(String, Value, Option<Stamp>)> = Vec::with_capacity(data.len());
    for (name, value) in data {
        let stamp = match field_stamps.remove(&name) {
            Some(raw) => Some(accept(&raw, &format!("fieldStamps.{name}"))?),
            None => None,
        };
        stamped.push((name, value, stamp));
    }
    let change_stamp = match &c.stamp {
        Some(raw) => accept(raw, "stamp")?,
        None => match stamped.iter().filter_map(|(_, _, s)| s.as_ref()).max() {
            Some(newest) => newest.clone(),
            None => state.hlc.now(now),
        },
    };
    let fields: Vec<(String, Value, Stamp)> = stamped
        .into_iter()
        .map(|(name, value, stamp)| (name, value, stamp.unwrap_or_else(|| change_stamp.clone())))
        .collect();
    let change = Change {
        op: op(c.op),
        fields,
        stamp: change_stamp,
    };
    lww::validate_change(&change).map_err(|e| AppError::Validation(format!("`{at}`: {e}")))?;
    Ok(Prepared {
        app_id: c.app_id,
        table: c.table,
        record_id: c.record_id,
        change,
    })
}

/// Append prepared changes for `user_id` in one transaction: all or nothing.
pub async fn apply_all(
    state: &AppState,
    user_id: Uuid,
    author: Author<'_>,
    prepared: &[Prepared],
    now: DateTime<Utc>,
) -> Result<Vec<Appended>, AppError> {
    let mut conn = state.pool.get().await?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let mut out = Vec::with_capacity(prepared.len());
        for p in prepared {
            let key = RecordKey {
                user_id,
                app_id: &p.app_id,
                table: &p.table,
                record_id: &p.record_id,
            };
            out.push(records::append(conn, key, &p.change, author, now).await?);
        }
        Ok(out)
    })
    .await
}

/// Fields as a stamped change written by the server itself (MCP, missions).
pub fn server_change(
    state: &AppState,
    op: Op,
    data: Map<String, Value>,
    now: DateTime<Utc>,
) -> Change {
    let stamp = state.hlc.now(now);
    Change {
        op,
        fields: data
            .into_iter()
            .map(|(k, v)| (k, v, stamp.clone()))
            .collect(),
        stamp,
    }
}

/// The tool registry's view of one user's records, writing through the same
/// LWW path as sync with the given origin (`mcp`, `mission-runner` …).
#[derive(Clone)]
pub struct PgRecordStore {
    state: actix_web::web::Data<AppState>,
    user_id: Uuid,
    client_id: String,
    origin: String,
}

impl PgRecordStore {
    pub fn new(
        state: actix_web::web::Data<AppState>,
        user_id: Uuid,
        client_id: &str,
        origin: &str,
    ) -> Self {
        Self {
            state,
            user_id,
            client_id: client_id.to_owned(),
            origin: origin.to_owned(),
        }
    }

    fn stored(id: &str, row: &records::RecordRow) -> tools::StoredRecord {
        tools::StoredRecord {
            id: id.to_owned(),
            data: row.data_map(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }

    /// Append one server-stamped change if `expect` holds; the answer is built
    /// from the merged state, without reading the record again.
    async fn write(
        &self,
        app: &str,
        table: &str,
        id: &str,
        op: Op,
        data: Map<String, Value>,
        expect: records::Expect,
    ) -> Result<tools::StoredRecord, tools::StoreError> {
        if !valid_name(app) || !valid_name(table) || !valid_record_id(id) {
            return Err(tools::StoreError::Invalid(format!(
                "bad record address {app}/{table}/{id}"
            )));
        }
        let now = self.state.clock.now();
        let change = server_change(&self.state, op, data, now);
        lww::validate_change(&change).map_err(|e| tools::StoreError::Invalid(e.to_string()))?;
        let key = RecordKey {
            user_id: self.user_id,
            app_id: app,
            table,
            record_id: id,
        };
        let author = Author {
            client_id: &self.client_id,
            origin: &self.origin,
        };
        let mut conn = self
            .state
            .pool
            .get()
            .await
            .map_err(|e| tools::StoreError::Backend(e.to_string()))?;
        let appended = conn
            .transaction::<_, RecordError, _>(async |conn| {
                records::append_if(conn, key, &change, author, now, expect).await
            })
            .await
            .map_err(|e| match e {
                RecordError::NotLive => tools::StoreError::NotFound,
                RecordError::AlreadyLive => {
                    tools::StoreError::Invalid("a record with this id already exists".into())
                }
                other => tools::StoreError::Backend(other.to_string()),
            })?;
        Ok(tools::StoredRecord {
            id: id.to_owned(),
            data: if appended.state.is_visible() {
                appended.state.data()
            } else {
                Map::new()
            },
            created_at: appended.created_at,
            updated_at: now,
        })
    }
}

impl tools::RecordStore for PgRecordStore {
    async fn insert(
        &self,
        app: &str,
        table: &str,
        id: &str,
        data: Map<String, Value>,
    ) -> Result<tools::StoredRecord, tools::StoreError> {
        self.write(app, table, id, Op::Insert, data, records::Expect::NotLive)
            .await
    }

    async fn update(
        &self,
        app: &str,
        table: &str,
        id: &str,
        patch: Map<String, Value>,
    ) -> Result<tools::StoredRecord, tools::StoreError> {
        self.write(app, table, id, Op::Update, patch, records::Expect::Live)
            .await
    }

    async fn delete(&self, app: &str, table: &str, id: &str) -> Result<(), tools::StoreError> {
        self.write(
            app,
            table,
            id,
            Op::Delete,
            Map::new(),
            records::Expect::Live,
        )
        .await
        .map(|_| ())
    }

    async fn get(
        &self,
        app: &str,
        table: &str,
        id: &str,
    ) -> Result<Option<tools::StoredRecord>, tools::StoreError> {
        let mut conn = self
            .state
            .pool
            .get()
            .await
            .map_err(|e| tools::StoreError::Backend(e.to_string()))?;
        let key = RecordKey {
            user_id: self.user_id,
            app_id: app,
            table,
            record_id: id,
        };
        let row = records::get(&mut conn, key)
            .await
            .map_err(|e| tools::StoreError::Backend(e.to_string()))?;
        Ok(row.map(|r| Self::stored(id, &r)))
    }

    async fn list(
        &self,
        app: &str,
        table: &str,
        query: &tools::ListQuery,
    ) -> Result<Vec<tools::StoredRecord>, tools::StoreError> {
        let filter = records::ListFilter {
            contains: query.contains.clone(),
            not_contains: query.not_contains.clone(),
            search_fields: query
                .search
                .as_ref()
                .map(|s| s.fields.clone())
                .unwrap_or_default(),
            search_text: query.search.as_ref().map(|s| s.text.clone()),
            limit: query.limit,
        };
        let mut conn = self
            .state
            .pool
            .get()
            .await
            .map_err(|e| tools::StoreError::Backend(e.to_string()))?;
        let rows = records::list(&mut conn, self.user_id, app, table, &filter)
            .await
            .map_err(|e| tools::StoreError::Backend(e.to_string()))?;
        Ok(rows.iter().map(|r| Self::stored(&r.record_id, r)).collect())
    }
}
