//! [`MemoryStore`]: an in-memory [`RecordStore`] for tests (feature `memory`).
//!
//! Rules: it keeps the trait's contract the way the Postgres store does — one user's records,
//! patches merge top-level fields, deletes are tombstones, `list` answers live records newest
//! created first with jsonb containment semantics (`@>`). It has no change log and no LWW
//! stamps: every write wins, in call order. Timestamps come from the system clock; order
//! among records comes from a creation sequence, so equal clock readings never reorder.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::Utc;
use serde_json::{Map, Value};

use crate::store::{ListQuery, RecordStore, Search, StoreError, StoredRecord};

#[derive(Debug, Clone)]
struct Entry {
    record: StoredRecord,
    deleted: bool,
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    seq: u64,
    /// `(app, table)` → `id` → entry.
    tables: HashMap<(String, String), HashMap<String, Entry>>,
}

/// One user's records in memory. Cheap to create; share it by reference.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live (not deleted) records in `app`/`table`.
    pub fn count(&self, app: &str, table: &str) -> usize {
        self.lock()
            .tables
            .get(&(app.to_owned(), table.to_owned()))
            .map_or(0, |t| t.values().filter(|e| !e.deleted).count())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave an entry half-written (every mutation is
        // one map operation), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert_now(
        &self,
        app: &str,
        table: &str,
        id: &str,
        data: Map<String, Value>,
    ) -> Result<StoredRecord, StoreError> {
        if id.is_empty() {
            return Err(StoreError::Invalid("empty record id".to_owned()));
        }
        let mut inner = self.lock();
        inner.seq += 1;
        let seq = inner.seq;
        let table = inner
            .tables
            .entry((app.to_owned(), table.to_owned()))
            .or_default();
        if table.contains_key(id) {
            return Err(StoreError::Invalid(format!("record {id} already exists")));
        }
        let now = Utc::now();
        let record = StoredRecord {
            id: id.to_owned(),
            data,
            created_at: now,
            updated_at: now,
        };
        table.insert(
            id.to_owned(),
            Entry {
                record: record.clone(),
                deleted: false,
                seq,
            },
        );
        Ok(record)
    }

    fn update_now(
        &self,
        app: &str,
        table: &str,
        id: &str,
        patch: Map<String, Value>,
    ) -> Result<StoredRecord, StoreError> {
        let mut inner = self.lock();
        let entry = inner
            .tables
            .get_mut(&(app.to_owned(), table.to_owned()))
            .and_then(|t| t.get_mut(id))
            .filter(|e| !e.deleted)
            .ok_or(StoreError::NotFound)?;
        entry.record.data.extend(patch);
        entry.record.updated_at = Utc::now();
        Ok(entry.record.clone())
    }

    fn delete_now(&self, app: &str, table: &str, id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let entry = inner
            .tables
            .get_mut(&(app.to_owned(), table.to_owned()))
            .and_then(|t| t.get_mut(id))
            .filter(|e| !e.deleted)
            .ok_or(StoreError::NotFound)?;
        entry.deleted = true;
        entry.record.updated_at = Utc::now();
        Ok(())
    }

    fn get_now(&self, app: &str, table: &str, id: &str) -> Option<StoredRecord> {
        self.lock()
            .tables
            .get(&(app.to_owned(), table.to_owned()))
            .and_then(|t| t.get(id))
            .filter(|e| !e.deleted)
            .map(|e| e.record.clone())
    }

    fn list_now(&self, app: &str, table: &str, query: &ListQuery) -> Vec<StoredRecord> {
        let inner = self.lock();
        let Some(table) = inner.tables.get(&(app.to_owned(), table.to_owned())) else {
            return Vec::new();
        };
        let mut hits: Vec<&Entry> = table
            .values()
            .filter(|e| !e.deleted && matches(&e.record.data, query))
            .collect();
        hits.sort_by_key(|e| std::cmp::Reverse(e.seq));
        hits.into_iter()
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .map(|e| e.record.clone())
            .collect()
    }
}

impl RecordStore for MemoryStore {
    fn insert(
        &self,
        app: &str,
        table: &str,
        id: &str,
        data: Map<String, Value>,
    ) -> impl Future<Output = Result<StoredRecord, StoreError>> + Send {
        ready(self.insert_now(app, table, id, data))
    }

    fn update(
        &self,
        app: &str,
        table: &str,
        id: &str,
        patch: Map<String, Value>,
    ) -> impl Future<Output = Result<StoredRecord, StoreError>> + Send {
        ready(self.update_now(app, table, id, patch))
    }

    fn delete(
        &self,
        app: &str,
        table: &str,
        id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.delete_now(app, table, id))
    }

    fn get(
        &self,
        app: &str,
        table: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<StoredRecord>, StoreError>> + Send {
        ready(Ok(self.get_now(app, table, id)))
    }

    fn list(
        &self,
        app: &str,
        table: &str,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StoreError>> + Send {
        ready(Ok(self.list_now(app, table, query)))
    }
}

fn matches(data: &Map<String, Value>, query: &ListQuery) -> bool {
    contains_object(data, &query.contains)
        && query
            .not_contains
            .iter()
            .all(|(k, v)| !data.get(k).is_some_and(|have| jsonb_contains(have, v)))
        && query
            .search
            .as_ref()
            .is_none_or(|s| search_matches(data, s))
}

fn contains_object(have: &Map<String, Value>, want: &Map<String, Value>) -> bool {
    want.iter()
        .all(|(k, w)| have.get(k).is_some_and(|h| jsonb_contains(h, w)))
}

/// Postgres `@>` below the top level: objects contain objects key-wise, arrays contain arrays
/// element-wise (each wanted element is contained in some element), scalars are equal.
fn jsonb_contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => contains_object(h, w),
        (Value::Array(h), Value::Array(w)) => {
            w.iter().all(|wi| h.iter().any(|hi| jsonb_contains(hi, wi)))
        }
        (Value::Number(h), Value::Number(w)) => h.as_f64() == w.as_f64(),
        (h, w) => h == w,
    }
}

fn search_matches(data: &Map<String, Value>, search: &Search) -> bool {
    let needle = search.text.to_lowercase();
    search.fields.iter().any(|field| match data.get(field) {
        Some(Value::String(s)) => s.to_lowercase().contains(&needle),
        Some(Value::Array(items)) => items.iter().any(|i| {
            i.as_str()
                .is_some_and(|s| s.to_lowercase().contains(&needle))
        }),
        _ => false,
    })
}
