//! The server's hybrid logical clock.
//!
//! Rules:
//! - [`Hlc::now`] takes the wall time as an argument (time is an input, so tests need no
//!   sleeps) and returns a stamp strictly greater than every stamp it returned before and
//!   every stamp passed to [`Hlc::observe`], even when the wall clock goes backwards: it
//!   uses `max(last wall, wall)` and bumps the counter when the wall time did not advance.
//!   A counter at `u32::MAX` rolls over into the next millisecond.
//! - [`Hlc::observe`] is the HLC receive rule: the clock's `(wall, counter)` becomes the
//!   maximum of its own and the remote stamp's, so the next `now` is greater than the
//!   remote stamp. Observe only stamps that passed [`Hlc::clamp`]; otherwise one skewed
//!   device would drag the server's clock into the future. [`Hlc::accept`] does both.
//! - [`Hlc::clamp`] replaces a stamp whose wall time lies more than `max_skew` ahead of
//!   `now` by the server's own current stamp, so a skewed device cannot win forever.
//! - After a restart, `observe` the largest stamp already stored so the clock never
//!   issues a stamp below one it issued before the restart.
//! - Wall times before the epoch count as 0 and after [`MAX_WALL_MS`] as `MAX_WALL_MS`;
//!   only at `MAX_WALL_MS` with the counter exhausted (year 33658) does `now` repeat.
//! - Thread-safe: the state sits behind a `Mutex`; a poisoned lock is recovered, because
//!   the state is two integers that are never left half-written.

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};

use crate::stamp::{MAX_WALL_MS, Stamp, StampError, validate_node};

/// A hybrid logical clock issuing [`Stamp`]s for one node (the server).
#[derive(Debug)]
pub struct Hlc {
    node: String,
    /// `(wall_ms, counter)` of the largest stamp issued or observed.
    last: Mutex<(i64, u32)>,
}

impl Hlc {
    /// A clock for `node_id` (same rules as a stamp's node id).
    pub fn new(node_id: impl Into<String>) -> Result<Self, StampError> {
        let node = node_id.into();
        validate_node(&node)?;
        Ok(Self {
            node,
            last: Mutex::new((0, 0)),
        })
    }

    /// This clock's node id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A new stamp, strictly greater than every earlier `now` and observed stamp.
    pub fn now(&self, wall: DateTime<Utc>) -> Stamp {
        let physical = wall.timestamp_millis().clamp(0, MAX_WALL_MS);
        let mut last = self.lock();
        let (wall_ms, counter) = *last;
        *last = if physical > wall_ms {
            (physical, 0)
        } else if let Some(next) = counter.checked_add(1) {
            (wall_ms, next)
        } else if wall_ms < MAX_WALL_MS {
            (wall_ms + 1, 0)
        } else {
            (wall_ms, counter)
        };
        Stamp::from_trusted(last.0, last.1, self.node.clone())
    }

    /// HLC receive rule: move the clock past a stamp seen from elsewhere.
    pub fn observe(&self, remote: &Stamp) {
        let mut last = self.lock();
        let remote = (remote.wall_ms(), remote.counter());
        if remote > *last {
            *last = remote;
        }
    }

    /// Returns `(stamp, false)` when `stamp` is at most `max_skew` ahead of `now`, else
    /// `(self.now(now), true)`. A negative `max_skew` counts as zero.
    pub fn clamp(&self, stamp: &Stamp, now: DateTime<Utc>, max_skew: TimeDelta) -> (Stamp, bool) {
        let limit = now
            .timestamp_millis()
            .saturating_add(max_skew.num_milliseconds().max(0));
        if stamp.wall_ms() > limit {
            (self.now(now), true)
        } else {
            (stamp.clone(), false)
        }
    }

    /// [`Hlc::clamp`], then [`Hlc::observe`] the result: the usual way to take in a
    /// client's stamp.
    pub fn accept(&self, stamp: &Stamp, now: DateTime<Utc>, max_skew: TimeDelta) -> (Stamp, bool) {
        let (stamp, clamped) = self.clamp(stamp, now, max_skew);
        self.observe(&stamp);
        (stamp, clamped)
    }

    fn lock(&self) -> MutexGuard<'_, (i64, u32)> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn rejects_bad_node() {
        assert!(Hlc::new("x".repeat(129)).is_err());
        assert!(Hlc::new("a\tb").is_err());
        assert_eq!(Hlc::new("srv").unwrap().node(), "srv");
    }

    #[test]
    fn now_follows_the_wall_clock() {
        let hlc = Hlc::new("srv").unwrap();
        let s = hlc.now(at(1_000));
        assert_eq!((s.wall_ms(), s.counter(), s.node()), (1_000, 0, "srv"));
        let s = hlc.now(at(2_000));
        assert_eq!((s.wall_ms(), s.counter()), (2_000, 0));
    }

    #[test]
    fn monotonic_when_wall_clock_goes_backwards() {
        let hlc = Hlc::new("srv").unwrap();
        let walls = [5_000, 5_000, 4_000, 100, 5_000, 5_001, 0, -7_000];
        let stamps: Vec<Stamp> = walls.iter().map(|&w| hlc.now(at(w))).collect();
        for pair in stamps.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        // The wall part never went backwards; the counter carried the order.
        assert_eq!(stamps[3].wall_ms(), 5_000);
        assert_eq!(stamps[3].counter(), 3);
        assert_eq!((stamps[5].wall_ms(), stamps[5].counter()), (5_001, 0));
    }

    #[test]
    fn counter_overflow_rolls_into_next_millisecond() {
        let hlc = Hlc::new("srv").unwrap();
        hlc.observe(&Stamp::new(10, u32::MAX, "other").unwrap());
        let s = hlc.now(at(10));
        assert_eq!((s.wall_ms(), s.counter()), (11, 0));
    }

    #[test]
    fn observe_moves_past_remote_stamps() {
        let hlc = Hlc::new("a").unwrap();
        hlc.now(at(1_000));
        let remote = Stamp::new(9_000, 7, "zzz").unwrap();
        hlc.observe(&remote);
        let s = hlc.now(at(1_001));
        assert!(s > remote, "{s} > {remote}");
        assert_eq!((s.wall_ms(), s.counter()), (9_000, 8));
        // An older remote stamp changes nothing.
        hlc.observe(&Stamp::new(500, 0, "zzz").unwrap());
        let t = hlc.now(at(1_002));
        assert_eq!((t.wall_ms(), t.counter()), (9_000, 9));
        // Once the wall clock catches up, it takes over again.
        let u = hlc.now(at(9_500));
        assert_eq!((u.wall_ms(), u.counter()), (9_500, 0));
    }

    #[test]
    fn clamp_replaces_stamps_too_far_in_the_future() {
        let hlc = Hlc::new("srv").unwrap();
        let now = at(100_000);
        let skew = TimeDelta::seconds(60);
        let ok = Stamp::new(160_000, 3, "dev").unwrap();
        assert_eq!(hlc.clamp(&ok, now, skew), (ok.clone(), false));
        let past = Stamp::new(1, 0, "dev").unwrap();
        assert_eq!(hlc.clamp(&past, now, skew), (past.clone(), false));

        let skewed = Stamp::new(160_001, 0, "dev").unwrap();
        let (replaced, clamped) = hlc.clamp(&skewed, now, skew);
        assert!(clamped);
        assert_eq!((replaced.wall_ms(), replaced.node()), (100_000, "srv"));
        assert!(replaced < skewed);

        // Negative skew counts as zero.
        let (_, clamped) = hlc.clamp(&Stamp::new(100_001, 0, "d").unwrap(), now, -skew);
        assert!(clamped);
    }

    #[test]
    fn accept_observes_the_clamped_stamp_only() {
        let hlc = Hlc::new("srv").unwrap();
        let now = at(100_000);
        let skew = TimeDelta::seconds(1);
        let (_, clamped) = hlc.accept(&Stamp::new(900_000, 0, "d").unwrap(), now, skew);
        assert!(clamped);
        // The skewed wall time did not leak into the clock.
        assert!(hlc.now(now).wall_ms() < 900_000);

        let fine = Stamp::new(100_500, 4, "d").unwrap();
        assert_eq!(hlc.accept(&fine, now, skew), (fine.clone(), false));
        assert!(hlc.now(now) > fine);
    }

    #[test]
    fn concurrent_callers_get_distinct_increasing_stamps() {
        let hlc = Hlc::new("srv").unwrap();
        let per_thread: Vec<Vec<Stamp>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..500).map(|_| hlc.now(at(42))).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for stamps in &per_thread {
            assert!(stamps.windows(2).all(|p| p[0] < p[1]));
        }
        let mut all: Vec<Stamp> = per_thread.into_iter().flatten().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 2_000);
    }
}
