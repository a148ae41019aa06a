//! cadence
