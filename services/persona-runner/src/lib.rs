//! persona-runner: LLM personas live a simulated day with the app over MCP on their
//! cadence; every tool call is logged as an action and every used module is rated.
//!
//! Layout: [`config`] (settings), [`api`] (auth-internal persona API + login cache),
//! [`mcp`] (the persona's MCP session), [`offer`] (tools scoped to the persona, the
//! first request and its size), [`prompts`], [`rating`] (the tolerant rating
//! parser), [`day`] (one persona's day), [`tick`] (claim → stream of days → report),
//! [`startup`] (the service, built on `runner-kit`), [`otel`] (the day's GenAI spans).

pub mod api;
pub mod config;
pub mod day;
pub mod mcp;
pub mod offer;
pub mod otel;
pub mod prompts;
pub mod rating;
pub mod startup;
pub mod tick;

pub use config::Settings;
pub use startup::Application;
pub use tick::{PersonaTick, TickOutput};
