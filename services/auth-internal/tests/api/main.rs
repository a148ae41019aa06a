//! auth-internal over real HTTP against a real PostgreSQL database per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod browser;
mod console;
mod health;
mod helpers;
mod mcp;
mod missions;
mod oauth;
mod openapi;
mod personas;
mod real_clients;
mod reports;
mod runs;
mod reliability;
mod sync;
mod tokens;
