//! The record store's service layer, in two jobs: [`stamp`] (validating and
//! stamping pushed changes, applying a batch) and [`adapter`] (the tool
//! registry's view of a user's records). Mapping record errors to HTTP is
//! `error.rs`'s job.
//!
//! Rules:
//! - Both write through `db::records::append*` only, so every write of the
//!   service takes the same LWW path and the same table hooks.
//! - Every write transaction is one `INSERT sync_changes` client span ([`db_write_span`]),
//!   the end of a persona day's trace.

pub mod adapter;
pub mod stamp;

pub use adapter::PgRecordStore;
/// The client span of one record-store write transaction (database semantic conventions):
/// the change-log append and the snapshot merge, `changes` of them.
pub(crate) fn db_write_span(changes: usize) -> tracing::Span {
    tracing::info_span!(
        "db.write",
        otel.name = "INSERT sync_changes",
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "INSERT",
        db.collection.name = "sync_changes",
        db.operation.batch.size = i64::try_from(changes).unwrap_or(i64::MAX),
    )
}

pub use stamp::{
    Prepared, StampStats, apply_all, prepare, server_change, valid_name, valid_record_id,
};
