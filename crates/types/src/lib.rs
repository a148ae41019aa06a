//! Wire shapes shared by every service: plain serde data, no I/O.
//!
//! JSON is camelCase everywhere. Enums that travel as strings are lowercase
//! (or kebab-case where the design names them so, e.g. `awaiting-review`).

pub mod error;
pub mod missions;
pub mod personas;
pub mod sync;
pub mod tick;

pub use error::{ApiError, ApiErrorBody};
