//! Wire shapes shared by every service: plain serde data, no I/O — plus the few pure
//! rules every crate must apply alike ([`names`], [`text`], [`backoff`]), so each has
//! one home.
//!
//! JSON is camelCase everywhere. Enums that travel as strings are lowercase
//! (or kebab-case where the design names them so, e.g. `awaiting-review`).
//!
//! The optional `openapi` feature derives `utoipa::ToSchema` on every wire
//! type so a service can publish an OpenAPI document; without it the types
//! stay plain serde data with no extra dependency.

pub mod auth;
pub mod backoff;
pub mod error;
pub mod missions;
pub mod names;
pub mod personas;
pub mod reports;
pub mod runs;
pub mod sync;
pub mod text;
pub mod tick;

pub use error::{ApiError, ApiErrorBody};
