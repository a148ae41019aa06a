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
//! - Outside one-transaction mode every write is its own transaction, with its action
//!   row; a create is a single statement, with its action row if any, and needs none
//!   ([`records::create`], [`records::create_recorded`]).
//! - In one-transaction mode ([`PgRecordStore::in_one_transaction`], a tool call that
//!   may write several records) all writes of the call and its action row are one
//!   transaction, ended by [`PgRecordStore::finish`]: a call that dies or fails
//!   between two writes leaves nothing, so its re-send runs it whole. Reads of the
//!   call see its own writes. The transaction opens with the call's first write,
//!   which needs no savepoint (nothing of the call is there to spoil); later writes
//!   each get one.
//! - A write whose action row is already recorded is refused and leaves
//!   [`PgRecordStore::ran_before`] set: the caller answers "already executed".

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

use diesel_async::{AsyncConnection, AsyncPgConnection, TransactionManager};
use lww::Op;
use serde_json::{Map, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::stamp::{server_change, valid_name, valid_record_id};
use crate::{
    db::{
        PooledConn,
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
    /// A write found the attached action row already recorded (a re-sent call).
    ran_before: Arc<AtomicBool>,
    /// One-transaction mode: the connection of the open transaction, once a write
    /// began it (`None` inside: no write yet).
    txn: Option<Arc<tokio::sync::Mutex<Option<PooledConn>>>>,
}

type Txm = <AsyncPgConnection as AsyncConnection>::TransactionManager;

/// A connection for one store operation: the call's open transaction, or the pool's.
enum OpConn<'a> {
    Txn(tokio::sync::MutexGuard<'a, Option<PooledConn>>),
    Pool(Box<PooledConn>),
}

impl OpConn<'_> {
    fn conn(&mut self) -> Result<&mut AsyncPgConnection, tools::StoreError> {
        match self {
            Self::Txn(guard) => guard
                .as_deref_mut()
                .ok_or_else(|| tools::StoreError::Backend("the call's transaction is gone".into())),
            Self::Pool(conn) => Ok(conn),
        }
    }
}

/// A write's failure, or the attached action id was recorded already.
enum WriteError {
    Record(RecordError),
    AlreadyRan,
    Pool(String),
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
            ran_before: Arc::new(AtomicBool::new(false)),
            txn: None,
        }
    }

    /// Make every write of this store (one tool call) and its action row one
    /// transaction; the caller must end it with [`Self::finish`].
    pub fn in_one_transaction(mut self) -> Self {
        self.txn = Some(Arc::new(tokio::sync::Mutex::new(None)));
        self
    }

    /// End the call's transaction: commit when `commit` (then the action row is
    /// recorded with the effects), else roll back (nothing of the call remains; its
    /// action row is left for [`Self::take_action`]). A failed commit is an error and
    /// leaves the action row too. Without a write (or outside one-transaction mode)
    /// there is nothing to end.
    pub async fn finish(&self, commit: bool) -> Result<(), tools::StoreError> {
        let Some(txn) = &self.txn else {
            return Ok(());
        };
        let Some(mut conn) = txn.lock().await.take() else {
            return Ok(());
        };
        if commit {
            Txm::commit_transaction(&mut *conn)
                .await
                .map_err(|e| tools::StoreError::Backend(e.to_string()))?;
            // Committed with the effects: nothing left to record.
            self.take_action();
        } else if let Err(e) = Txm::rollback_transaction(&mut *conn).await {
            // The pool discards a connection left in a transaction.
            tracing::warn!(user.id = %self.user_id, error.cause = %e, "tool call rollback failed");
        }
        Ok(())
    }

    async fn pool_conn(&self) -> Result<PooledConn, tools::StoreError> {
        self.state
            .pool
            .get()
            .await
            .map_err(|e| tools::StoreError::Backend(e.to_string()))
    }

    /// The connection for a read: the call's transaction once it is open.
    async fn read_conn(&self) -> Result<OpConn<'_>, tools::StoreError> {
        if let Some(txn) = &self.txn {
            let guard = txn.lock().await;
            if guard.is_some() {
                return Ok(OpConn::Txn(guard));
            }
        }
        Ok(OpConn::Pool(Box::new(self.pool_conn().await?)))
    }

    /// The connection for a write in one-transaction mode: the open transaction, or a
    /// new one that first records the attached action row (then `true`: this is the
    /// call's first write).
    async fn txn_conn<'a>(
        &self,
        txn: &'a tokio::sync::Mutex<Option<PooledConn>>,
    ) -> Result<(tokio::sync::MutexGuard<'a, Option<PooledConn>>, bool), WriteError> {
        let mut guard = txn.lock().await;
        let first = guard.is_none();
        if first {
            let mut conn = self
                .state
                .pool
                .get()
                .await
                .map_err(|e| WriteError::Pool(e.to_string()))?;
            Txm::begin_transaction(&mut *conn).await?;
            let action = self
                .action
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(row) = &action {
                match crate::db::personas::record_executed(&mut conn, row).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = Txm::rollback_transaction(&mut *conn).await;
                        return Err(WriteError::AlreadyRan);
                    }
                    Err(e) => {
                        let _ = Txm::rollback_transaction(&mut *conn).await;
                        return Err(e.into());
                    }
                }
            }
            *guard = Some(conn);
        }
        Ok((guard, first))
    }

    /// Attach the action row the first write records with its effect.
    pub fn with_action(self, row: Option<NewAction>) -> Self {
        *self.action.lock().unwrap_or_else(PoisonError::into_inner) = row;
        self
    }

    /// Whether a write of this store found its action row already recorded: the
    /// call ran before (a re-sent request) and nothing of it was repeated.
    pub fn ran_before(&self) -> bool {
        self.ran_before.load(Ordering::Relaxed)
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
        let appended = if let Some(txn) = &self.txn {
            // Inside the call's transaction. A savepoint keeps a refused write from
            // spoiling the writes before it; the first write has none before it (a
            // failure rolls the whole call back), so it goes without one.
            async {
                let (mut guard, first) = self.txn_conn(txn).await?;
                let conn = guard
                    .as_deref_mut()
                    .ok_or_else(|| WriteError::Pool("the call's transaction is gone".into()))?;
                if first {
                    return Ok(records::append_if(conn, key, &change, author, now, expect).await?);
                }
                conn.transaction::<_, WriteError, _>(async |conn| {
                    Ok(records::append_if(conn, key, &change, author, now, expect).await?)
                })
                .await
            }
            .instrument(super::db_write_span(1))
            .await
        } else {
            let action = self
                .action
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let recorded_here = action.is_some();
            let mut conn = self.pool_conn().await?;
            // A create in a table without hooks is one statement (with its action row,
            // if any), all or nothing on its own: no transaction around it. When it
            // finds a row of the id, the transaction below merges into that row.
            let one_statement = expect == records::Expect::NotLive && !records::has_hooks(key);
            let created = if one_statement {
                async {
                    match &action {
                        None => Ok(records::create(&mut conn, key, &change, author, now).await?),
                        Some(row) => {
                            match records::create_recorded(
                                &mut conn, key, &change, author, now, row,
                            )
                            .await?
                            {
                                records::Recorded::Created(appended) => Ok(Some(appended)),
                                records::Recorded::RanBefore => Err(WriteError::AlreadyRan),
                                records::Recorded::Exists => Ok(None),
                            }
                        }
                    }
                }
                .instrument(super::db_write_span(1))
                .await
            } else {
                Ok(None)
            };
            let appended = match created {
                Ok(Some(appended)) => Ok(appended),
                Err(e) => Err(e),
                Ok(None) => {
                    conn.transaction::<_, WriteError, _>(async |conn| {
                        if let Some(row) = &action
                            && !crate::db::personas::record_executed(conn, row).await?
                        {
                            return Err(WriteError::AlreadyRan);
                        }
                        Ok(if one_statement {
                            records::append_locked(conn, key, &change, author, now, expect).await?
                        } else {
                            records::append_if(conn, key, &change, author, now, expect).await?
                        })
                    })
                    .instrument(super::db_write_span(1))
                    .await
                }
            };
            if appended.is_ok() && recorded_here {
                // Committed with the effect: nothing left to record.
                self.take_action();
            }
            appended
        };
        if matches!(appended, Err(WriteError::AlreadyRan)) {
            self.ran_before.store(true, Ordering::Relaxed);
        }
        let appended = appended.map_err(|e| match e {
            WriteError::AlreadyRan => tools::StoreError::Invalid(
                "this call already ran (a re-sent request); it was not repeated".into(),
            ),
            WriteError::Record(RecordError::NotLive) => tools::StoreError::NotFound,
            WriteError::Record(RecordError::AlreadyLive) => {
                tools::StoreError::Invalid("a record with this id already exists".into())
            }
            WriteError::Record(other) => tools::StoreError::Backend(other.to_string()),
            WriteError::Pool(e) => tools::StoreError::Backend(e),
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
        valid_address(app, table, Some(id))?;
        let mut conn = self.read_conn().await?;
        let key = RecordKey {
            user_id: self.user_id,
            app_id: app,
            table,
            record_id: id,
        };
        let row = records::get(conn.conn()?, key)
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
        let mut conn = self.read_conn().await?;
        let rows = records::list(conn.conn()?, self.user_id, app, table, &filter)
            .await
            .map_err(|e| tools::StoreError::Backend(e.to_string()))?;
        Ok(rows
            .into_iter()
            .map(|r| tools::StoredRecord {
                id: r.record_id,
                data: match r.data {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
            .collect())
    }
}
