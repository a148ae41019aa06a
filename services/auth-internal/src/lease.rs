//! The rules every claim request follows, personas and missions alike; each
//! resource passes its own [`ClaimLimits`] (`MANA_PERSONAS__…`,
//! `MANA_MISSIONS__…`).
//!
//! Rules:
//! - `worker` is 1–200 characters, `limit` is `1..=max_claim`,
//!   `leaseSeconds` is `1..=max_lease_secs`; anything else is 422
//!   `validation_failed` naming the field.

use crate::{config::ClaimLimits, error::AppError};

/// Check one claim request against `s`.
pub fn validate_claim(
    s: ClaimLimits,
    worker: &str,
    limit: u32,
    lease_seconds: u32,
) -> Result<(), AppError> {
    if worker.trim().is_empty() || worker.len() > 200 {
        return Err(AppError::Validation(
            "`worker` must be 1–200 characters".into(),
        ));
    }
    if !(1..=s.max_claim).contains(&limit) {
        return Err(AppError::Validation(format!(
            "`limit` must be 1 to {}",
            s.max_claim
        )));
    }
    if !(1..=s.max_lease_secs).contains(&lease_seconds) {
        return Err(AppError::Validation(format!(
            "`leaseSeconds` must be 1 to {}",
            s.max_lease_secs
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_the_callers() {
        let tight = ClaimLimits {
            max_lease_secs: 60,
            max_claim: 2,
        };
        assert!(validate_claim(tight, "w", 2, 60).is_ok());
        for (worker, limit, lease, field) in [
            ("", 1, 1, "worker"),
            ("w", 0, 1, "limit"),
            ("w", 3, 1, "limit"),
            ("w", 1, 61, "leaseSeconds"),
            ("w", 1, 0, "leaseSeconds"),
        ] {
            let err = validate_claim(tight, worker, limit, lease).unwrap_err();
            assert!(
                matches!(&err, AppError::Validation(m) if m.contains(field)),
                "{err:?}"
            );
        }
    }
}
