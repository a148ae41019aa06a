//! auth-internal over real HTTP against a real PostgreSQL database per test.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns panic on broken set-up"
)]

mod auth;
mod health;
mod helpers;
mod mcp;
mod migrations;
mod missions;
mod openapi;
mod personas;
mod sync;
