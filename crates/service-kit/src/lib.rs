//! Plumbing shared by the three services: JSON errors and extractors, the
//! service-key guard, telemetry, metrics, and the persona password derivation.

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

pub use clock::Clock;
pub use errors::{ErrorResponse, json_error};
pub use input_hash::input_hash;
pub use json::Json;
pub use service_key::{ServiceKeys, require_service_key};
