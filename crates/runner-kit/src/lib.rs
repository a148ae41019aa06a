//! Plumbing shared by the runners (persona-runner, mission-runner): settings, a typed
//! client base for auth-internal's internal API, and a tick service — interval loop with
//! an overlap guard, `POST /internal/tick`, `GET /health`, `GET /metrics` and graceful
//! shutdown.
//!
//! Rules:
//! - Nothing here knows personas or missions: a runner plugs in a [`Tick`] and its own
//!   routes and health fields.
//! - A tick never runs twice at once in one process (loop, `POST /internal/tick` and any
//!   diagnostic route share one [`TickRunner`]); cross-process exclusion is the job of
//!   auth-internal's leases.
//! - A missing service key never stops start-up: the loop stays off and `/health` says why.

pub mod client;
pub mod llm_metrics;
pub mod service;
pub mod settings;
pub mod tick;

pub use client::{ClientError, InternalClient, Retry, RetryPolicy, http_client};
pub use llm_metrics::register_llm_metrics;
pub use service::{
    HealthExtras, Routes, RunnerService, ServiceConfig, ServiceHandle, tick_handler,
};
pub use settings::{RunnerSettings, SettingsError, env_map, load_section};
pub use tick::{
    LoopState, Shutdown, Tick, TickError, TickMetrics, TickRunner, spawn_loop, worker_id,
};
pub use tokio_util::sync::CancellationToken;
