//! Backoff: how long to wait before trying again. The one home of both waits in the
//! workspace (LLM requests, internal-API requests, failed persona days, failed
//! mission plans).
//!
//! Rules:
//! - The nominal wait after failure `n` (1-based) is `base · 2^(n−1)`, capped at `cap`.
//! - A *request retry* ([`Backoff::equal_jitter`]) waits uniformly between half and all
//!   of the nominal wait ("equal jitter"): never longer than nominal, because a caller
//!   is waiting, and never in step with the replicas that failed together.
//! - A *failure backoff* ([`Backoff::spread`]) waits the nominal time ±25 %, capped:
//!   centred on the operator's setting (a 300 s base means 5 minutes on average), spread
//!   so work that failed together does not come back together. It is computed here in
//!   Rust for personas (auth-internal's release) and missions (the runner's release)
//!   alike — never in SQL.
//! - Every function takes the random sample as an argument (`[0, 1]`), so tests pin it;
//!   callers pass `rand::random::<f64>()`. Out-of-range samples are clamped.

use std::time::Duration;

/// The base and cap of an exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure, before jitter.
    pub base: Duration,
    /// Upper bound of any wait, jitter included.
    pub cap: Duration,
}

impl Backoff {
    /// A backoff from `base` doubling up to `cap`.
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// `base · 2^(attempt−1)` capped at `cap` (`attempt` is 1-based; 0 counts as 1).
    pub fn nominal(&self, attempt: u32) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base.saturating_mul(exp).min(self.cap)
    }

    /// Request retry: between half and all of [`Backoff::nominal`], by `sample`.
    pub fn equal_jitter(&self, attempt: u32, sample: f64) -> Duration {
        let full = self.nominal(attempt);
        let half = full / 2;
        half + (full - half).mul_f64(unit(sample))
    }

    /// Failure backoff: `base · 2^(attempt−1) · (0.75 … 1.25)` by `sample`, capped at `cap`.
    pub fn spread(&self, attempt: u32, sample: f64) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base
            .saturating_mul(exp)
            .mul_f64(0.75 + 0.5 * unit(sample))
            .min(self.cap)
    }
}

fn unit(sample: f64) -> f64 {
    if sample.is_finite() {
        sample.clamp(0.0, 1.0)
    } else {
        0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn equal_jitter_stays_between_half_and_nominal_and_is_capped() {
        let b = Backoff::new(MS(100), MS(350));
        assert_eq!(b.nominal(0), MS(100));
        assert_eq!(b.nominal(1), MS(100));
        assert_eq!(b.nominal(2), MS(200));
        assert_eq!(b.nominal(9), MS(350));
        assert_eq!(b.nominal(u32::MAX), MS(350));
        assert_eq!(b.equal_jitter(1, 0.0), MS(50));
        assert_eq!(b.equal_jitter(1, 1.0), MS(100));
        assert_eq!(b.equal_jitter(2, 0.5), MS(150));
        assert_eq!(b.equal_jitter(9, 0.0), MS(175));
        assert_eq!(b.equal_jitter(9, 7.0), MS(350));
        assert_eq!(
            b.equal_jitter(9, f64::NAN),
            MS(262) + Duration::from_micros(500)
        );
    }

    #[test]
    fn spread_is_nominal_plus_minus_a_quarter_and_capped() {
        let b = Backoff::new(Duration::from_secs(300), Duration::from_secs(6 * 3600));
        assert_eq!(b.spread(1, 0.0), Duration::from_secs(225));
        assert_eq!(b.spread(1, 1.0), Duration::from_secs(375));
        assert_eq!(b.spread(2, 0.5), Duration::from_secs(600));
        assert_eq!(b.spread(40, 0.0), Duration::from_secs(6 * 3600));
        assert_eq!(b.spread(7, -3.0), Duration::from_secs(300 * 64 * 3 / 4));
    }
}
