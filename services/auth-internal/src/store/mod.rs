//! The record store's service layer, in two jobs: [`stamp`] (validating and
//! stamping pushed changes, applying a batch) and [`adapter`] (the tool
//! registry's view of a user's records). Mapping record errors to HTTP is
//! `error.rs`'s job.
//!
//! Rules:
//! - Both write through `db::records::append*` only, so every write of the
//!   service takes the same LWW path and the same table hooks.

pub mod adapter;
pub mod stamp;

pub use adapter::PgRecordStore;
pub use stamp::{
    Prepared, StampStats, apply_all, prepare, server_change, valid_name, valid_record_id,
};
