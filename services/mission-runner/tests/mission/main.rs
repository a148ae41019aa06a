//! Integration tests of mission-runner against a fake LLM vendor and a fake of
//! auth-internal's mission endpoints.

mod common;
mod e2e;
mod plan;
mod service;
mod tick;
