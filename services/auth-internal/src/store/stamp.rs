//! Sync stamping: turns pushed changes into stamped `lww` changes (stamps
//! more than `sync.max_future_skew_secs` ahead are clamped to the server
//! clock), validates them, and applies a batch atomically.
//!
//! Rules:
//! - A field's stamp is its `fieldStamps` entry, else the change's `stamp`.
//!   The change's own stamp (the insert/delete marker) is its `stamp`, else
//!   its newest field stamp, else a fresh stamp of the server's hybrid
//!   logical clock.
//! - Changes the server writes itself (MCP, missions) are stamped by
//!   [`server_change`], all fields with one fresh stamp.
//! - A batch is all or nothing ([`apply_all`], one transaction).

use chrono::{DateTime, TimeDelta, Utc};
use lww::{Change, Op, Stamp};
use serde_json::{Map, Value};
use tracing::Instrument;
use types::sync::{ChangeOp, PushChange};
use uuid::Uuid;

use crate::{
    db::records::{self, Author},
    error::AppError,
    state::AppState,
};

/// App ids and table names follow the workspace's one name rule.
pub use types::names::is_valid_name as valid_name;

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
/// Returns the new change ids (cursors) in order.
pub async fn apply_all(
    state: &AppState,
    user_id: Uuid,
    author: Author<'_>,
    prepared: &[Prepared],
    now: DateTime<Utc>,
) -> Result<Vec<i64>, AppError> {
    let mut conn = state.pool.get().await?;
    let items: Vec<records::BatchItem<'_>> = prepared
        .iter()
        .map(|p| records::BatchItem {
            app_id: &p.app_id,
            table: &p.table,
            record_id: &p.record_id,
            change: &p.change,
        })
        .collect();
    // `append_batch` is its own transaction (and retries it when it races).
    Ok(
        records::append_batch(&mut conn, user_id, &items, author, now)
            .instrument(super::db_write_span(prepared.len()))
            .await?,
    )
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
