//! The record store seen by tool handlers.
//!
//! Rules:
//! - A [`RecordStore`] is already scoped to one user and one origin (mcp, mission-runner …);
//!   handlers never name a user.
//! - Records are addressed by `(app, table, id)`; `data` is a JSON object with camelCase keys.
//! - Reads see current state only: merged (field-level LWW) and not deleted. Nothing here
//!   replays a change log.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The caller's records. An implementation is already scoped to one user and one origin (mcp, mission-runner …).
pub trait RecordStore: Send + Sync {
    /// Create a record. An id that already exists is an error ([`StoreError::Invalid`]).
    fn insert(
        &self,
        app: &str,
        table: &str,
        id: &str,
        data: Map<String, Value>,
    ) -> impl Future<Output = Result<StoredRecord, StoreError>> + Send;
    /// Patch fields of an existing, not deleted record (field-level LWW on the server). NotFound otherwise.
    fn update(
        &self,
        app: &str,
        table: &str,
        id: &str,
        patch: Map<String, Value>,
    ) -> impl Future<Output = Result<StoredRecord, StoreError>> + Send;
    /// Delete (tombstone) an existing record. NotFound when it does not exist or is deleted.
    fn delete(
        &self,
        app: &str,
        table: &str,
        id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The current record, `None` when it does not exist or is deleted.
    fn get(
        &self,
        app: &str,
        table: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<StoredRecord>, StoreError>> + Send;
    /// Current (merged, not deleted) records, newest created first, at most `query.limit`.
    fn list(
        &self,
        app: &str,
        table: &str,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StoreError>> + Send;
}

/// One current record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub id: String,
    pub data: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Filters of [`RecordStore::list`]; all of them must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListQuery {
    /// jsonb containment: `data @> contains`.
    pub contains: Map<String, Value>,
    /// `NOT (data @> {k: v})` for each entry (a record without the field passes).
    pub not_contains: Map<String, Value>,
    /// Case-insensitive substring over the named fields.
    pub search: Option<Search>,
    pub limit: u32,
}

/// Case-insensitive substring search: a record matches when any of `fields` contains `text`.
/// A string field matches on its value, an array field on any string element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub fields: Vec<String>,
    pub text: String,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist or is deleted.
    #[error("record not found")]
    NotFound,
    /// The store refused the operation (e.g. the id already exists, a value is too large).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The backend failed (database down, timeout …).
    #[error("store backend error: {0}")]
    Backend(String),
}
