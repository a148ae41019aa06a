//! Merge core of the record store: hybrid logical clock stamps and field-level
//! last-writer-wins. Pure logic, no I/O.
//!
//! - [`Stamp`]: `(wall_ms, counter, node)`, totally ordered, with a canonical string form
//!   that sorts byte-wise in the same order; serde uses that string.
//! - [`Hlc`]: the server's clock; issues monotonic stamps, observes client stamps and
//!   clamps stamps too far in the future.
//! - [`RecordState`] + [`apply`]: the snapshot of one record and the merge of one
//!   [`Change`] into it. Applying any set of changes in any order, any number of times,
//!   converges to the same state; the exact rules (ties, deletes, resurrection, orphan
//!   updates) are in the [`record`] module docs.
//!
//! Every type round-trips through `serde_json` so it can be stored as `jsonb`.

pub mod hlc;
pub mod record;
pub mod stamp;

pub use hlc::Hlc;
pub use record::{
    Applied, Change, FieldValue, LwwError, Op, RESERVED_PREFIX, RecordState, apply, validate_change,
};
pub use stamp::{MAX_NODE_CHARS, MAX_WALL_MS, Stamp, StampError};
