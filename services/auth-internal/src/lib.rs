//! auth-internal: users and login, the persona catalogue and its audit rows,
//! the app's record store and MCP tools, and the internal API of the runners.
//! It is the only owner of the Postgres schema.

pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod error;
pub mod lease;
pub mod mcp;
pub mod missions;
pub mod oauth;
pub mod openapi;
pub mod retention;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod web;

pub use config::Settings;
pub use startup::Application;
pub use state::AppState;
