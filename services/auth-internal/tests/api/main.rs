//! auth-internal over real HTTP against a real PostgreSQL database per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod health;
mod helpers;
mod mcp;
mod missions;
mod openapi;
mod personas;
mod reliability;
mod sync;
