//! Integration tests of the llm crate: both real providers against the validating fake
//! vendor (fake-llm), retries and timeouts, settings, and the sim provider.

mod common;

mod anthropic;
mod openai;
mod retries;
mod sim;
