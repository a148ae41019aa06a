//! The tools adapter: the tool registry's [`tools::RecordStore`] over the
//! record tables of one user.
//!
//! Rules:
//! - Writes go through the same LWW path as sync ([`records::append_if`]),
//!   server-stamped, with the caller's origin (`mcp`, `approval`, …).
//! - Record errors map to [`tools::StoreError`] here, once: not live →
//!   `NotFound`, already live → `Invalid`, anything else → `Backend`.
//! - An attached persona action row commits in the transaction of the first write
//!   (see [`PgRecordStore`]); addresses and filters holding NUL are `Invalid`.

use std::sync::{Arc, Mutex, PoisonError};

use diesel_async::AsyncConnection;
use lww::Op;
use serde_json::{Map, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::stamp::{server_change, valid_name, valid_record_id};
use crate::{
    db::{
        personas::NewAction,
        records::{self, Author, RecordError, RecordKey},
    },
    state::AppState,
};

/// The tool registry's view of one user's records, writing through the same
/// LWW path as sync with the given origin (`mcp`, `mission-runner` …).
///
/// With an action row attached ([`PgRecordStore::with_action`]) the first write
/// inserts that row in its own transaction, so the effect and its audit row commit
/// together or not at all; an id already present aborts the write (the call ran
/// before) with nothing changed.
#[derive(Clone)]
pub struct PgRecordStore {
    state: actix_web::web::Data<AppState>,
    user_id: Uuid,
    client_id: String,
    origin: String,
    action: Arc<Mutex<Option<NewAction>>>,
}

/// A write's failure, or the attached action id was recorded already.
enum WriteError {
    Record(RecordError),
    AlreadyRan,
}

impl From<diesel::result::Error> for WriteError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Record(RecordError::Db(e))
    }
}

impl From<RecordError> for WriteError {
    fn from(e: RecordError) -> Self {
        Self::Record(e)
    }
}

fn nul_error(path: &str) -> tools::StoreError {
    tools::StoreError::Invalid(format!("`{path}` {}", service_kit::storable::NUL_MESSAGE))
}

fn valid_address(app: &str, table: &str, id: Option<&str>) -> Result<(), tools::StoreError> {
    if !valid_name(app) || !valid_name(table) || id.is_some_and(|id| !valid_record_id(id)) {
        return Err(tools::StoreError::Invalid(format!(
            "bad record address {}/{}/{}: names match ^[a-zA-Z0-9_-]{{1,64}}$, ids are 1–200 characters without control characters",
            app.escape_debug(),
            table.escape_debug(),
            id.unwrap_or_default().escape_debug()
        )));
    }
    Ok(())
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
            action: Arc::new(Mutex::new(None)),
        }
    }

    /// Attach the action row the first write records with its effect.
    pub fn with_action(self, row: Option<NewAction>) -> Self {
        *self.action.lock().unwrap_or_else(PoisonError::into_inner) = row;
        self
    }

    /// The attached action row if no write has recorded it (a read-only call, a
    /// refused or failed write).
    pub fn take_action(&self) -> Option<NewAction> {
        self.action
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
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
        valid_address(app, table, Some(id))?;
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
        let action = self
            .action
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let appended = conn
            .transaction::<_, WriteError, _>(async |conn| {
                if let Some(row) = &action
                    && !crate::db::personas::record_executed(conn, row).await?
                {
                    return Err(WriteError::AlreadyRan);
                }
                Ok(records::append_if(conn, key, &change, author, now, expect).await?)
            })
            .instrument(super::db_write_span(1))
            .await
            .map_err(|e| match e {
                WriteError::AlreadyRan => tools::StoreError::Invalid(
                    "this call already ran (a re-sent request); it was not repeated".into(),
                ),
                WriteError::Record(RecordError::NotLive) => tools::StoreError::NotFound,
                WriteError::Record(RecordError::AlreadyLive) => {
                    tools::StoreError::Invalid("a record with this id already exists".into())
                }
                WriteError::Record(other) => tools::StoreError::Backend(other.to_string()),
            })?;
        if action.is_some() {
            // Committed with the effect: nothing left to record.
            self.take_action();
        }
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
        valid_address(app, table, Some(id))?;
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
        valid_address(app, table, None)?;
        for filter in [&query.contains, &query.not_contains] {
            if let Some(path) =
                service_kit::storable::find_nul(&Value::Object(filter.clone()), "filter")
            {
                return Err(nul_error(&path));
            }
        }
        if let Some(search) = &query.search
            && service_kit::storable::has_nul(&search.text)
        {
            return Err(nul_error("search text"));
        }
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
