//! auth-internal over real HTTP against a real PostgreSQL database per test.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns panic on broken set-up"
)]

mod auth;
mod browser;
mod console;
mod health;
mod helpers;
mod mcp;
mod migrations;
mod missions;
mod oauth;
mod openapi;
mod personas;
mod real_clients;
mod reliability;
mod reports;
mod runs;
mod sync;
mod tokens;
