//! Building blocks of tool handlers: collections, handler kinds, argument parsing, ids,
//! and the generic create / patch / get / delete / list executors.
//!
//! Rules:
//! - A tool is data: a [`ToolDef`] = spec + [`Handler`]. Most handlers are one of the generic
//!   kinds below, parametrised by plain `fn`s that turn typed arguments into record fields;
//!   only read-modify-write tools are [`Handler::Custom`], a [`CustomFn`] registered by the
//!   module itself. This file names no module.
//! - Whether a mission may propose a tool is a property of its [`Collection`]
//!   (`proposable`), for write tools only.
//! - Records answer as `{id, …data}` (plus `createdAt`/`updatedAt` from the store when the
//!   data has none); lists answer `{items, count}`.
//! - Timestamps written into data are RFC 3339 UTC with milliseconds, from `ctx.now`.
//! - A store `NotFound` becomes a [`ToolError::NotFound`] that names the list tool to call.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::error::ToolError;
use crate::registry::{CallContext, Policy, ToolSpec};
use crate::schema::input_schema;
use crate::store::{BoxFuture, DynStore, ListQuery, RecordStore, StoreError, StoredRecord};

/// Where a module keeps one kind of record, and how to talk about it in messages.
#[derive(Debug)]
pub(crate) struct Collection {
    pub module: &'static str,
    pub app: &'static str,
    pub table: &'static str,
    /// Singular noun for messages ("todo", "calendar event").
    pub noun: &'static str,
    /// The tool that lists this collection's ids.
    pub list_tool: &'static str,
    /// Whether handlers write `createdAt`/`updatedAt` into data.
    pub stamps: bool,
    /// Whether a mission plan may propose this collection's write tools (missions plan
    /// other modules' writes, never their own).
    pub proposable: bool,
}

/// Builds a new record's data from the call's arguments.
pub(crate) type BuildData = fn(Value, &CallContext) -> Result<Map<String, Value>, ToolError>;
/// Builds `(id, patch)` from the call's arguments.
pub(crate) type BuildPatch =
    fn(Value, &CallContext) -> Result<(String, Map<String, Value>), ToolError>;
/// Builds a list plan from the call's arguments.
pub(crate) type BuildList = fn(Value, &CallContext) -> Result<ListPlan, ToolError>;

/// A read-modify-write handler with its own code: a plain `fn`, so registering one is data.
/// Modules usually pass a closure that boxes their `async fn`:
/// `|args, store, ctx, ids| Box::pin(log(args, store, ctx, ids))`.
pub(crate) type CustomFn = for<'a> fn(
    Value,
    &'a DynStore<'a>,
    &'a CallContext,
    &'a Ids<'a>,
) -> BoxFuture<'a, Result<Value, ToolError>>;

/// What running a tool does.
pub(crate) enum Handler {
    /// Insert a new record (new id) built from the arguments.
    Create {
        coll: &'static Collection,
        build: BuildData,
    },
    /// Patch fields of an existing record.
    Patch {
        coll: &'static Collection,
        build: BuildPatch,
    },
    /// Read one record by `id`.
    Get {
        coll: &'static Collection,
        view: fn(&StoredRecord) -> Value,
    },
    /// Delete one record by `id`.
    Delete { coll: &'static Collection },
    /// List current records.
    List {
        coll: &'static Collection,
        build: BuildList,
    },
    /// Read-modify-write tools with their own code, registered by their module.
    Custom(CustomFn),
}

/// A tool: its public spec and its handler.
pub(crate) struct ToolDef {
    pub spec: ToolSpec,
    pub handler: Handler,
}

impl ToolDef {
    fn new<T: JsonSchema>(
        name: &'static str,
        coll: &'static Collection,
        policy: Policy,
        description: &'static str,
        handler: Handler,
    ) -> Self {
        let mut input_schema = input_schema::<T>();
        if let Some(id) = input_schema
            .pointer_mut("/properties/id")
            .and_then(Value::as_object_mut)
        {
            id.insert(
                "description".to_owned(),
                Value::String(format!(
                    "Id of the {} (from {} or a create result).",
                    coll.noun, coll.list_tool
                )),
            );
        }
        Self {
            spec: ToolSpec {
                name,
                module: coll.module,
                description,
                policy,
                proposable: policy == Policy::Write && coll.proposable,
                input_schema,
            },
            handler,
        }
    }

    /// A create tool whose arguments serialize to the record's fields.
    pub fn create<T: NewRecord>(
        name: &'static str,
        coll: &'static Collection,
        description: &'static str,
    ) -> Self {
        Self::new::<T>(
            name,
            coll,
            Policy::Write,
            description,
            Handler::Create {
                coll,
                build: build_create::<T>,
            },
        )
    }

    /// An update tool: `id` plus the optional fields to overwrite.
    pub fn update<T: RecordPatch>(
        name: &'static str,
        coll: &'static Collection,
        description: &'static str,
    ) -> Self {
        Self::new::<T>(
            name,
            coll,
            Policy::Write,
            description,
            Handler::Patch {
                coll,
                build: build_patch::<T>,
            },
        )
    }

    /// A write tool that patches fixed fields (complete, archive, cancel …).
    pub fn patch<T: JsonSchema>(
        name: &'static str,
        coll: &'static Collection,
        description: &'static str,
        build: BuildPatch,
    ) -> Self {
        Self::new::<T>(
            name,
            coll,
            Policy::Write,
            description,
            Handler::Patch { coll, build },
        )
    }

    /// A read tool answering one record by id.
    pub fn get(name: &'static str, coll: &'static Collection, description: &'static str) -> Self {
        Self::get_with(name, coll, description, record_json)
    }

    /// A read tool answering one record by id, shaped by `view`.
    pub fn get_with(
        name: &'static str,
        coll: &'static Collection,
        description: &'static str,
        view: fn(&StoredRecord) -> Value,
    ) -> Self {
        Self::new::<IdArgs>(
            name,
            coll,
            Policy::Read,
            description,
            Handler::Get { coll, view },
        )
    }

    /// A destructive tool deleting one record by id.
    pub fn delete(
        name: &'static str,
        coll: &'static Collection,
        description: &'static str,
    ) -> Self {
        Self::new::<IdArgs>(
            name,
            coll,
            Policy::Destructive,
            description,
            Handler::Delete { coll },
        )
    }

    /// A read tool listing records.
    pub fn list<T: JsonSchema>(
        name: &'static str,
        coll: &'static Collection,
        description: &'static str,
        build: BuildList,
    ) -> Self {
        Self::new::<T>(
            name,
            coll,
            Policy::Read,
            description,
            Handler::List { coll, build },
        )
    }

    /// A tool with its own handler code.
    pub fn custom<T: JsonSchema>(
        name: &'static str,
        coll: &'static Collection,
        policy: Policy,
        description: &'static str,
        custom: CustomFn,
    ) -> Self {
        Self::new::<T>(name, coll, policy, description, Handler::Custom(custom))
    }

    /// A write tool that archives a record (`{isArchived: true, archivedAt: now}`), or with
    /// `archived: false` restores it (`{isArchived: false, archivedAt: null}`).
    pub fn archive(
        name: &'static str,
        coll: &'static Collection,
        description: &'static str,
    ) -> Self {
        Self::patch::<ArchiveArgs>(name, coll, description, build_archive)
    }
}

/// Arguments of a create tool; serializing them gives the record's fields.
pub(crate) trait NewRecord: DeserializeOwned + Serialize + JsonSchema {
    /// Adds the fields the tool owns (flags, defaults that depend on `now`) and checks rules
    /// the schema cannot state.
    fn finish(&self, ctx: &CallContext, data: &mut Map<String, Value>) -> Result<(), ToolError>;
}

/// Arguments of an update tool: `id` plus optional fields; the fields that are present are
/// the patch.
pub(crate) trait RecordPatch: DeserializeOwned + Serialize + JsonSchema {
    fn id(&self) -> &str;
    /// Checks rules the schema cannot state; may add derived fields.
    fn finish(&self, _ctx: &CallContext, _patch: &mut Map<String, Value>) -> Result<(), ToolError> {
        Ok(())
    }
}

/// `{id}`: the arguments of get/delete style tools.
#[derive(Debug, serde::Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IdArgs {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    pub id: String,
}

/// `{id, archived}`: the arguments of [`ToolDef::archive`] tools.
#[derive(Debug, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ArchiveArgs {
    /// Id of the record.
    #[schemars(length(min = 1, max = 200))]
    pub id: String,
    /// true archives, false restores.
    #[serde(default = "default_true")]
    pub archived: bool,
}

fn default_true() -> bool {
    true
}

/// `{isArchived, archivedAt}` for an [`ArchiveArgs`] call.
fn build_archive(
    args: Value,
    ctx: &CallContext,
) -> Result<(String, Map<String, Value>), ToolError> {
    let ArchiveArgs { id, archived } = parse(args)?;
    let mut patch = Map::new();
    patch.insert("isArchived".to_owned(), Value::Bool(archived));
    patch.insert(
        "archivedAt".to_owned(),
        if archived {
            timestamp(ctx.now)
        } else {
            Value::Null
        },
    );
    Ok((id, patch))
}

/// A filter over stored records that the store cannot express.
pub(crate) type Keep = Box<dyn Fn(&StoredRecord) -> bool + Send + Sync>;

/// How a list tool reads and shapes its records.
pub(crate) struct ListPlan {
    /// Store filters; `limit` is the number of items to answer.
    pub query: ListQuery,
    /// A filter the store cannot express (date ranges …). When set, the store is asked for
    /// up to [`SCAN_LIMIT`] records and the survivors are cut to `query.limit`.
    pub keep: Option<Keep>,
    /// Order of the answer; `None` keeps the store's (newest created first).
    pub order: Option<fn(&StoredRecord, &StoredRecord) -> Ordering>,
    /// Shape of each item.
    pub view: fn(&StoredRecord) -> Value,
}

/// How many records a list tool scans when it filters or sorts beyond what the store does.
pub(crate) const SCAN_LIMIT: u32 = 1000;

impl ListPlan {
    pub fn new(query: ListQuery) -> Self {
        Self {
            query,
            keep: None,
            order: None,
            view: record_json,
        }
    }
}

/// New record ids for one call: uuid v4, or uuid v5 of `(seed, tool, ordinal)` so that
/// re-running a call with the same seed produces the same ids.
pub(crate) struct Ids<'a> {
    seed: Option<&'a str>,
    tool: &'a str,
    next: AtomicU32,
}

/// Namespace of seeded record ids (a fixed random uuid; changing it changes every seeded id).
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0d4e_8a53_4b7e_9d2c_51a0_3f6e_b2c8);

impl<'a> Ids<'a> {
    pub fn new(seed: Option<&'a str>, tool: &'a str) -> Self {
        Self {
            seed,
            tool,
            next: AtomicU32::new(0),
        }
    }

    pub fn seeded(&self) -> bool {
        self.seed.is_some()
    }

    pub fn next_id(&self) -> String {
        let ordinal = self.next.fetch_add(1, AtomicOrdering::Relaxed);
        match self.seed {
            // Unit separators keep ("a", "b_c") and ("a_b", "c") apart.
            Some(seed) => Uuid::new_v5(
                &ID_NAMESPACE,
                format!("{seed}\u{1f}{}\u{1f}{ordinal}", self.tool).as_bytes(),
            ),
            None => Uuid::new_v4(),
        }
        .to_string()
    }
}

/// Deserializes typed arguments (after schema validation, so failures are rare).
pub(crate) fn parse<T: DeserializeOwned>(args: Value) -> Result<T, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::InvalidInput(e.to_string()))
}

/// Serializes typed arguments into record fields.
pub(crate) fn to_map<T: Serialize>(value: &T) -> Result<Map<String, Value>, ToolError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ToolError::InvalidInput(
            "arguments must be an object".to_owned(),
        )),
        Err(e) => Err(ToolError::InvalidInput(e.to_string())),
    }
}

/// RFC 3339 UTC with milliseconds: the one timestamp format handlers write.
pub(crate) fn timestamp(at: DateTime<Utc>) -> Value {
    Value::String(at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Rejects a text that is empty or only whitespace.
pub(crate) fn not_blank(field: &str, text: &str) -> Result<(), ToolError> {
    if text.trim().is_empty() {
        Err(ToolError::InvalidInput(format!(
            "/{field}: must not be blank"
        )))
    } else {
        Ok(())
    }
}

/// `{id, …data}`, with the store's timestamps where the data has none.
pub(crate) fn record_json(record: &StoredRecord) -> Value {
    let mut out = record.data.clone();
    out.insert("id".to_owned(), Value::String(record.id.clone()));
    out.entry("createdAt")
        .or_insert_with(|| timestamp(record.created_at));
    out.entry("updatedAt")
        .or_insert_with(|| timestamp(record.updated_at));
    Value::Object(out)
}

/// The error for an id that names no record.
pub(crate) fn not_found(coll: &Collection, id: &str) -> ToolError {
    ToolError::NotFound(format!(
        "no {} with id {id} — call {} to see ids",
        coll.noun, coll.list_tool
    ))
}

/// Maps a store error on record `id` of `coll`.
pub(crate) fn store_error(error: StoreError, coll: &Collection, id: &str) -> ToolError {
    match error {
        StoreError::NotFound => not_found(coll, id),
        StoreError::Invalid(message) => ToolError::InvalidInput(message),
        StoreError::Backend(message) => ToolError::Store(message),
    }
}

/// Reads a record that must exist.
pub(crate) async fn get_existing<S: RecordStore>(
    store: &S,
    coll: &Collection,
    id: &str,
) -> Result<StoredRecord, ToolError> {
    store
        .get(coll.app, coll.table, id)
        .await
        .map_err(|e| store_error(e, coll, id))?
        .ok_or_else(|| not_found(coll, id))
}

/// A record [`insert_new`] answered.
pub(crate) struct Inserted {
    pub record: StoredRecord,
    /// The record already existed under its seeded id: an earlier run of the same call
    /// created it, and this run changed nothing.
    pub replayed: bool,
}

/// Inserts a new record with the next id. With a seed, a record that already has that id is
/// the result of an earlier run of the same call and is answered as is (`replayed`).
pub(crate) async fn insert_new<S: RecordStore>(
    store: &S,
    coll: &Collection,
    mut data: Map<String, Value>,
    ctx: &CallContext,
    ids: &Ids<'_>,
) -> Result<Inserted, ToolError> {
    let id = ids.next_id();
    if ids.seeded()
        && let Some(existing) = store
            .get(coll.app, coll.table, &id)
            .await
            .map_err(|e| store_error(e, coll, &id))?
    {
        return Ok(Inserted {
            record: existing,
            replayed: true,
        });
    }
    if coll.stamps {
        data.insert("createdAt".to_owned(), timestamp(ctx.now));
        data.insert("updatedAt".to_owned(), timestamp(ctx.now));
    }
    let record = store
        .insert(coll.app, coll.table, &id, data)
        .await
        .map_err(|e| store_error(e, coll, &id))?;
    Ok(Inserted {
        record,
        replayed: false,
    })
}

/// Patches a record that must exist.
pub(crate) async fn patch_existing<S: RecordStore>(
    store: &S,
    coll: &Collection,
    id: &str,
    mut patch: Map<String, Value>,
    ctx: &CallContext,
) -> Result<StoredRecord, ToolError> {
    if coll.stamps {
        patch.insert("updatedAt".to_owned(), timestamp(ctx.now));
    }
    store
        .update(coll.app, coll.table, id, patch)
        .await
        .map_err(|e| store_error(e, coll, id))
}

/// Runs a non-custom handler.
pub(crate) async fn run_generic<S: RecordStore>(
    handler: &Handler,
    args: Value,
    store: &S,
    ctx: &CallContext,
    ids: &Ids<'_>,
) -> Result<Value, ToolError> {
    match handler {
        Handler::Create { coll, build } => {
            let data = build(args, ctx)?;
            Ok(record_json(
                &insert_new(store, coll, data, ctx, ids).await?.record,
            ))
        }
        Handler::Patch { coll, build } => {
            let (id, patch) = build(args, ctx)?;
            Ok(record_json(
                &patch_existing(store, coll, &id, patch, ctx).await?,
            ))
        }
        Handler::Get { coll, view } => {
            let IdArgs { id } = parse(args)?;
            Ok(view(&get_existing(store, coll, &id).await?))
        }
        Handler::Delete { coll } => {
            let IdArgs { id } = parse(args)?;
            store
                .delete(coll.app, coll.table, &id)
                .await
                .map_err(|e| store_error(e, coll, &id))?;
            Ok(json!({ "id": id, "deleted": true }))
        }
        Handler::List { coll, build } => run_list(store, coll, build(args, ctx)?).await,
        Handler::Custom(_) => Err(ToolError::Store(
            "custom handler dispatched as generic".to_owned(),
        )),
    }
}

async fn run_list<S: RecordStore>(
    store: &S,
    coll: &Collection,
    plan: ListPlan,
) -> Result<Value, ToolError> {
    let ListPlan {
        mut query,
        keep,
        order,
        view,
    } = plan;
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    if keep.is_some() || order.is_some() {
        query.limit = SCAN_LIMIT;
    }
    let mut records = store
        .list(coll.app, coll.table, &query)
        .await
        .map_err(|e| store_error(e, coll, ""))?;
    if let Some(keep) = keep {
        records.retain(|r| keep(r));
    }
    if let Some(order) = order {
        records.sort_by(order);
    }
    records.truncate(limit);
    let items: Vec<Value> = records.iter().map(view).collect();
    Ok(json!({ "count": items.len(), "items": items }))
}

fn build_create<T: NewRecord>(
    args: Value,
    ctx: &CallContext,
) -> Result<Map<String, Value>, ToolError> {
    let parsed: T = parse(args)?;
    let mut data = to_map(&parsed)?;
    parsed.finish(ctx, &mut data)?;
    Ok(data)
}

fn build_patch<T: RecordPatch>(
    args: Value,
    ctx: &CallContext,
) -> Result<(String, Map<String, Value>), ToolError> {
    let parsed: T = parse(args)?;
    let mut patch = to_map(&parsed)?;
    patch.remove("id");
    parsed.finish(ctx, &mut patch)?;
    if patch.is_empty() {
        return Err(ToolError::InvalidInput(
            "nothing to change: pass at least one field besides `id`".to_owned(),
        ));
    }
    Ok((parsed.id().to_owned(), patch))
}
