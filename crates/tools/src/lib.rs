//! The one tool registry of the Mana back office.
//!
//! Used by auth-internal's MCP endpoint (`tools/list`, `tools/call`, scoped to the caller) and
//! step-approval endpoint, and by mission-runner's allow-list and parameter validation, so the
//! two can never drift.
//!
//! Rules:
//! - Tool names are `<module>_<verb>` and match `^[a-zA-Z0-9_-]{1,64}$` (LLM APIs reject
//!   dots); the module is a field of [`ToolSpec`], never parsed out of the name.
//! - Input schemas are derived with `schemars` and are self-contained `type: object` schemas
//!   with `additionalProperties: false`; arguments are validated against them before a
//!   handler sees them.
//! - Handlers only use a [`RecordStore`] (already scoped to one user); this crate knows no
//!   database, web framework or MCP library.
//! - Destructive tools are never listed by [`Registry::exposed`] and never run by
//!   [`Registry::call`]; a mission may propose only [`ToolSpec::proposable`] tools (write tools of a
//!   collection marked `proposable`: every one outside `missions`).
//! - Adding a module is data only: a file under `modules/` with its collections and tool
//!   definitions (custom handlers registered as `fn`s), and one line in `modules::all`.

mod error;
mod handler;
#[cfg(any(test, feature = "memory"))]
mod memory;
mod modules;
mod registry;
mod schema;
mod store;

#[cfg(test)]
mod tests;

pub use error::ToolError;
#[cfg(any(test, feature = "memory"))]
pub use memory::MemoryStore;
pub use registry::{CallContext, Policy, Registry, ToolSpec};
pub use store::{ListQuery, RecordStore, Search, StoreError, StoredRecord};
