//! Integration tests of the llm crate: both real providers against the validating fake
//! vendor (fake-llm), retries and timeouts, settings, and the sim provider.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns panic on broken set-up"
)]

mod common;

mod anthropic;
mod openai;
mod retries;
mod sim;
