//! The registry: every tool's spec, compiled input validator and handler.
//!
//! Rules:
//! - Built once ([`Registry::global`]); specs are static data, validators compiled at build.
//! - A call validates the arguments against the tool's JSON schema first, then deserializes
//!   them into the typed arguments, then runs the handler against the caller's store.
//! - [`Registry::call`] never runs a destructive tool; [`Registry::exposed`] (what MCP lists)
//!   never includes one.
//! - A tool whose schema failed to compile (a bug the unit tests catch) fails closed: its
//!   validation and calls answer an error, nothing panics.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use jsonschema::Validator;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ToolError;
use crate::handler::{Handler, Ids, ToolDef, run_generic};
use crate::modules;
use crate::schema;
use crate::store::{DynStore, RecordStore};

/// What a tool does to the user's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Reads only.
    Read,
    /// Creates or changes records.
    Write,
    /// Deletes or otherwise loses data: never exposed over MCP, never called by `call`.
    Destructive,
}

impl Policy {
    /// `read`, `write` or `destructive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Destructive => "destructive",
        }
    }
}

/// A tool as callers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// `<module>_<verb>`, matching `^[a-zA-Z0-9_-]{1,64}$`.
    pub name: &'static str,
    /// The module (a field of its own; never parse it out of `name`).
    pub module: &'static str,
    /// What the tool does, written for a model choosing tools.
    pub description: &'static str,
    pub policy: Policy,
    /// Whether a mission plan may propose this tool (writes outside `missions`).
    pub proposable: bool,
    /// JSON Schema of the arguments: a self-contained `type: object` schema.
    pub input_schema: Value,
}

/// The context of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// The time the call happens at (record timestamps, defaults such as "today", next runs).
    pub now: DateTime<Utc>,
    /// When set, new record ids are uuid v5 of `(id_seed, tool name, ordinal)` instead of
    /// random, and a record that already has such an id is answered instead of created again:
    /// re-executing an approved mission step (seeded with the step id) is idempotent.
    pub id_seed: Option<String>,
}

impl CallContext {
    /// A context at `now` without an id seed.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self { now, id_seed: None }
    }

    /// The same context with an id seed.
    #[must_use]
    pub fn with_id_seed(mut self, seed: impl Into<String>) -> Self {
        self.id_seed = Some(seed.into());
        self
    }
}

struct Entry {
    handler: Handler,
    validator: Result<Validator, String>,
}

/// All tools. Use [`Registry::global`].
pub struct Registry {
    specs: Vec<ToolSpec>,
    entries: Vec<Entry>,
    by_name: HashMap<&'static str, usize>,
}

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::build);

impl Registry {
    /// The registry, built on first use.
    pub fn global() -> &'static Registry {
        &GLOBAL
    }

    fn build() -> Self {
        let defs = modules::all();
        let mut specs = Vec::with_capacity(defs.len());
        let mut entries = Vec::with_capacity(defs.len());
        let mut by_name = HashMap::with_capacity(defs.len());
        for ToolDef { spec, handler } in defs {
            // A duplicate name would shadow a tool; the unit tests reject duplicates, and at
            // run time the first definition wins.
            if by_name.contains_key(spec.name) {
                continue;
            }
            by_name.insert(spec.name, specs.len());
            entries.push(Entry {
                handler,
                validator: schema::compile(&spec.input_schema),
            });
            specs.push(spec);
        }
        Self {
            specs,
            entries,
            by_name,
        }
    }

    /// Every tool, in registration order (grouped by module).
    pub fn all(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// The tools an MCP client may list and call: everything except destructive tools.
    pub fn exposed(&self) -> impl Iterator<Item = &ToolSpec> {
        self.specs
            .iter()
            .filter(|s| s.policy != Policy::Destructive)
    }

    /// The tools a mission plan may propose.
    pub fn proposable(&self) -> impl Iterator<Item = &ToolSpec> {
        self.specs.iter().filter(|s| s.proposable)
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&ToolSpec> {
        self.by_name.get(name).map(|&i| &self.specs[i])
    }

    /// Whether a call of `name` writes at most one record change (the generic create,
    /// patch and delete tools; reads write none): such a call needs no transaction
    /// around its writes to be all or nothing. Custom tools may write several, and
    /// an unknown name says `false`.
    pub fn writes_at_most_once(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&i| !matches!(self.entries[i].handler, Handler::Custom(_)))
    }

    /// Validates `args` against the tool's input schema; the error lists every problem with
    /// its JSON pointer (`/title: …`).
    pub fn validate(&self, name: &str, args: &Value) -> Result<(), ToolError> {
        let index = self.index(name)?;
        self.validate_at(index, args)
    }

    /// Validates and runs a tool as the store's user. Destructive tools answer
    /// [`ToolError::NotCallable`]. A `null` `args` counts as `{}`.
    pub async fn call<S: RecordStore>(
        &self,
        name: &str,
        args: Value,
        store: &S,
        ctx: &CallContext,
    ) -> Result<Value, ToolError> {
        let index = self.index(name)?;
        if self.specs[index].policy == Policy::Destructive {
            return Err(ToolError::NotCallable(name.to_owned()));
        }
        self.run(index, args, store, ctx).await
    }

    /// Like [`Registry::call`] but also runs destructive tools. Only for a caller that has
    /// the user's explicit confirmation for this very call (never for MCP or mission plans).
    pub async fn call_destructive<S: RecordStore>(
        &self,
        name: &str,
        args: Value,
        store: &S,
        ctx: &CallContext,
    ) -> Result<Value, ToolError> {
        let index = self.index(name)?;
        self.run(index, args, store, ctx).await
    }

    /// Names of tools whose input schema did not compile, with the reason (empty unless the
    /// registry has a bug).
    pub fn broken_schemas(&self) -> Vec<(&'static str, String)> {
        self.specs
            .iter()
            .zip(&self.entries)
            .filter_map(|(spec, entry)| {
                entry
                    .validator
                    .as_ref()
                    .err()
                    .map(|e| (spec.name, e.clone()))
            })
            .collect()
    }

    fn index(&self, name: &str) -> Result<usize, ToolError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| ToolError::UnknownTool(name.to_owned()))
    }

    fn validate_at(&self, index: usize, args: &Value) -> Result<(), ToolError> {
        let name = self.specs[index].name;
        match &self.entries[index].validator {
            Ok(validator) => match schema::check(validator, args) {
                None => Ok(()),
                Some(problems) => Err(ToolError::InvalidInput(format!("{name}: {problems}"))),
            },
            Err(e) => Err(ToolError::InvalidInput(format!(
                "{name}: the tool's input schema is broken: {e}"
            ))),
        }
    }

    async fn run<S: RecordStore>(
        &self,
        index: usize,
        args: Value,
        store: &S,
        ctx: &CallContext,
    ) -> Result<Value, ToolError> {
        let args = if args.is_null() {
            Value::Object(Map::new())
        } else {
            args
        };
        self.validate_at(index, &args)?;
        let name = self.specs[index].name;
        let ids = Ids::new(ctx.id_seed.as_deref(), name);
        match &self.entries[index].handler {
            Handler::Custom(custom) => custom(args, &DynStore(store), ctx, &ids).await,
            handler => run_generic(handler, args, store, ctx, &ids).await,
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tools", &self.specs.len())
            .finish()
    }
}
