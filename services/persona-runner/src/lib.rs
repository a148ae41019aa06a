//! persona-runner
