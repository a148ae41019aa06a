//! auth-internal
