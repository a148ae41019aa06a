//! Retry policy: jittered exponential backoff that honours the vendor's `retry-after`.
//!
//! Rules: attempt `n` (1-based) that failed waits `base_delay * 2^(n-1)` with "equal
//! jitter" (uniformly between half and all of it), or the vendor's `retry-after` when that
//! is longer; every wait is capped at `max_delay`. The jitter spreads replicas that were
//! throttled together; the cap keeps a hostile `retry-after` from parking a tick.

use std::time::Duration;

use chrono::{DateTime, Utc};
use types::backoff::Backoff;

/// How often and how patiently a request is repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt, before jitter.
    pub base_delay: Duration,
    /// Upper bound of any single wait, `retry-after` included.
    pub max_delay: Duration,
    /// Limit for one attempt, from connect until the whole body is read.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after failed attempt `attempt` (1-based) before the next one.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let jittered =
            Backoff::new(self.base_delay, self.max_delay).equal_jitter(attempt, rand::random());
        retry_after
            .map_or(jittered, |ra| ra.max(jittered))
            .min(self.max_delay)
    }
}

/// Parses a `retry-after` value: delay seconds (`"2"`, `"1.5"`) or an HTTP-date. A date
/// in the past means "now" (zero); anything unparsable is ignored.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten();
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let delta = at.with_timezone(&Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Parses OpenAI's `retry-after-ms` (milliseconds, possibly fractional).
pub(crate) fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let ms = value.trim().parse::<f64>().ok()?;
    (ms.is_finite() && ms >= 0.0)
        .then(|| Duration::try_from_secs_f64(ms / 1000.0).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            request_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = policy();
        for _ in 0..200 {
            let d1 = p.backoff(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.backoff(3, None);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(p.backoff(40, None) <= p.max_delay);
            assert!(p.backoff(40, None) >= p.max_delay / 2);
        }
    }

    #[test]
    fn retry_after_wins_when_longer_but_is_capped() {
        let p = policy();
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(p.backoff(1, Some(Duration::from_secs(60))), p.max_delay);
        // A retry-after shorter than the backoff does not shorten it.
        assert!(p.backoff(3, Some(Duration::ZERO)) >= Duration::from_millis(200));
    }

    #[test]
    fn zero_base_delay_never_waits() {
        let p = RetryPolicy {
            base_delay: Duration::ZERO,
            ..policy()
        };
        assert_eq!(p.backoff(4, None), Duration::ZERO);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 50).unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after_ms("250"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after_ms("NaN"), None);
    }
}
