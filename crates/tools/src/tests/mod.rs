//! Unit tests of the registry, the tools and `MemoryStore`.
mod memory;
mod modules;
mod registry;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use crate::{CallContext, MemoryStore, Registry, ToolError};

/// 2026-03-10 (a Tuesday) 12:00 UTC.
pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
}

pub(super) fn ctx() -> CallContext {
    CallContext::new(now())
}

pub(super) async fn call(store: &MemoryStore, name: &str, args: Value) -> Result<Value, ToolError> {
    Registry::global().call(name, args, store, &ctx()).await
}

/// Calls a tool that must succeed.
pub(super) async fn ok(store: &MemoryStore, name: &str, args: Value) -> Value {
    match call(store, name, args).await {
        Ok(v) => v,
        Err(e) => panic!("{name} failed: {e}"),
    }
}

pub(super) fn id_of(record: &Value) -> String {
    record["id"].as_str().expect("record has an id").to_owned()
}

pub(super) fn ids_of(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}
