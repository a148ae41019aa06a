//! Integration tests of mission-runner against a fake LLM vendor and a fake of
//! auth-internal's mission endpoints.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns panic on broken set-up"
)]

mod common;
mod e2e;
mod plan;
mod service;
mod tick;
