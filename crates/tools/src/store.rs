//! The record store seen by tool handlers.
//!
//! Rules:
//! - A [`RecordStore`] is already scoped to one user and one origin (mcp, mission-runner …);
//!   handlers never name a user.
//! - Records are addressed by `(app, table, id)`; `data` is a JSON object with camelCase keys.
//! - Reads see current state only: merged (field-level LWW) and not deleted. Nothing here
//!   replays a change log.

use std::future::Future;
use std::pin::Pin;

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

/// A boxed, sendable future: what the object-safe [`ErasedStore`] answers.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`RecordStore`] made object-safe, so custom handlers can be plain `fn`s registered as
/// data (a `fn` pointer cannot be generic over the store type).
pub(crate) trait ErasedStore: Send + Sync {
    fn insert_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        id: &'a str,
        data: Map<String, Value>,
    ) -> BoxFuture<'a, Result<StoredRecord, StoreError>>;
    fn update_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        id: &'a str,
        patch: Map<String, Value>,
    ) -> BoxFuture<'a, Result<StoredRecord, StoreError>>;
    fn delete_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn get_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredRecord>, StoreError>>;
    fn list_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<StoredRecord>, StoreError>>;
}

impl<S: RecordStore> ErasedStore for S {
    fn insert_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        id: &'a str,
        data: Map<String, Value>,
    ) -> BoxFuture<'a, Result<StoredRecord, StoreError>> {
        Box::pin(self.insert(app, table, id, data))
    }
    fn update_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        id: &'a str,
        patch: Map<String, Value>,
    ) -> BoxFuture<'a, Result<StoredRecord, StoreError>> {
        Box::pin(self.update(app, table, id, patch))
    }
    fn delete_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.delete(app, table, id))
    }
    fn get_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredRecord>, StoreError>> {
        Box::pin(self.get(app, table, id))
    }
    fn list_erased<'a>(
        &'a self,
        app: &'a str,
        table: &'a str,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<StoredRecord>, StoreError>> {
        Box::pin(self.list(app, table, query))
    }
}

/// Any [`RecordStore`] behind one concrete type: the store custom handlers are given.
#[derive(Clone, Copy)]
pub(crate) struct DynStore<'s>(pub &'s (dyn ErasedStore + 's));

impl RecordStore for DynStore<'_> {
    async fn insert(
        &self,
        app: &str,
        table: &str,
        id: &str,
        data: Map<String, Value>,
    ) -> Result<StoredRecord, StoreError> {
        self.0.insert_erased(app, table, id, data).await
    }
    async fn update(
        &self,
        app: &str,
        table: &str,
        id: &str,
        patch: Map<String, Value>,
    ) -> Result<StoredRecord, StoreError> {
        self.0.update_erased(app, table, id, patch).await
    }
    async fn delete(&self, app: &str, table: &str, id: &str) -> Result<(), StoreError> {
        self.0.delete_erased(app, table, id).await
    }
    async fn get(
        &self,
        app: &str,
        table: &str,
        id: &str,
    ) -> Result<Option<StoredRecord>, StoreError> {
        self.0.get_erased(app, table, id).await
    }
    async fn list(
        &self,
        app: &str,
        table: &str,
        query: &ListQuery,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.0.list_erased(app, table, query).await
    }
}
