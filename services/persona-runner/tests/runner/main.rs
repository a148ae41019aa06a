//! End to end: real auth-internal in-process + real MCP + fake or `sim` LLM.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns panic on broken set-up"
)]

mod caching;
mod helpers;
mod latency;
mod lost_claim;
mod otel;
mod reliability;
mod scenarios;
