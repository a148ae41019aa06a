//! The shared state every request handler reads.
//!
//! Rules:
//! - This module imports no route module: routes, the MCP server and the
//!   store adapter depend on it, it depends on none of them (no import circle
//!   through `startup`).
//! - It holds what lives as long as the process; per-request data travels in
//!   extractors, not here.

use service_kit::{Clock, metrics::Metrics};

use crate::{
    auth::{jwt::Keys, password::Hasher},
    config::Settings,
    db::PgPool,
};

/// Shared state of every request handler.
pub struct AppState {
    pub pool: PgPool,
    pub keys: Keys,
    pub hasher: Hasher,
    pub clock: Clock,
    pub settings: Settings,
    pub metrics: Metrics,
    /// The server's hybrid logical clock for record stamps.
    pub hlc: lww::Hlc,
}
