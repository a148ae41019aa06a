//! The shared state every request handler reads.
//!
//! Rules:
//! - This module imports no route module: routes, the MCP server and the
//!   store adapter depend on it, it depends on none of them (no import circle
//!   through `startup`).
//! - It holds what lives as long as the process; per-request data travels in
//!   extractors, not here.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use service_kit::{Clock, metrics::Metrics};
use tokio_util::sync::CancellationToken;

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
    /// Draining state, requests in flight, and the token that ends MCP streams.
    pub lifecycle: Lifecycle,
}

/// Shared shutdown state: cheap to clone.
#[derive(Clone, Default)]
pub struct Lifecycle {
    draining: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    cancel: CancellationToken,
}

impl Lifecycle {
    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Start draining: `/health` says so and every MCP stream and session ends.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    /// The counter the in-flight middleware moves.
    pub(crate) fn in_flight_counter(&self) -> Arc<AtomicUsize> {
        self.in_flight.clone()
    }

    /// Requests being handled now (long-lived MCP event streams excluded).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The token whose cancellation closes MCP sessions and their streams.
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Wait until nothing is in flight, at most `grace`.
    pub async fn settle(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
