//! Plumbing shared by the three services: JSON errors and extractors, the
//! service-key guard, telemetry, metrics, and the persona password derivation.
//!
//! It also sets the process's global allocator: mimalloc. Every binary of the
//! workspace links this crate, so the services, their tests and their benchmarks
//! all run on the allocator production runs on. (glibc's malloc took 6–18 % of the
//! CPU of the MCP and persona-day hot paths, mostly in `_int_free` and
//! `malloc_consolidate` across worker threads; see issue 13's note.) It is built
//! without transparent huge pages (`no_thp`): with them, every reuse of memory it had
//! returned to the OS faulted in and zeroed 2 MiB (`clear_page_erms` was 8 % of a
//! persona-day bench's CPU; a run of 400 days spent ~2 s less in the kernel without).

pub mod clock;
pub mod errors;
pub mod input_hash;
pub mod json;
pub mod metrics;
pub mod net;
pub mod persona_password;
pub mod service_key;
pub mod storable;
pub mod telemetry;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use clock::Clock;
pub use errors::{ErrorResponse, json_error};
pub use input_hash::input_hash;
pub use json::Json;
pub use service_key::{ServiceKeys, require_service_key};
