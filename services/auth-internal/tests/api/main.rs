//! auth-internal over real HTTP against a real PostgreSQL database per test.

mod auth;
mod health;
mod helpers;
mod mcp;
mod migrations;
mod missions;
mod openapi;
mod personas;
mod sync;
