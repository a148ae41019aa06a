//! End to end: real auth-internal in-process + real MCP + fake or `sim` LLM.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod caching;
mod helpers;
mod latency;
mod lost_claim;
mod reliability;
mod otel;
mod scenarios;
