//! lww
