//! mission-runner
