//! Integration tests of mission-runner against a fake LLM vendor and a fake of
//! auth-internal's mission endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod e2e;
mod plan;
mod service;
mod tick;
