//! When a mission runs next: pure schedule arithmetic over [`MissionCadence`], no I/O.
//!
//! # Kinds
//! - `manual`: never scheduled; [`next_after`] and [`advance`] return `Ok(None)`.
//! - `interval {everyMinutes}`: `next_after(t)` is `t + everyMinutes`. [`advance`] keeps the
//!   phase of the grid `scheduled + k * every` and returns its first point strictly after
//!   `now` (`k >= 1`). Intervals are elapsed time, so DST changes nothing.
//! - `daily {atHour, atMinute}`: every day at `atHour:atMinute` on the wall clock of the
//!   timezone.
//! - `weekly {dayOfWeek, atHour}`: on `dayOfWeek` (0 = Sunday … 6 = Saturday) at `atHour:00`
//!   on the wall clock of the timezone.
//! - `cron {expression}`: a 5-field expression (minute hour day-of-month month day-of-week),
//!   matched against the wall clock of the timezone. Parsed by `croner`, so its extensions
//!   (`L`, `W`, `#`, `+`, month/day names, `@daily`-style nicknames) are accepted; seconds
//!   and year fields (6 or 7 fields) are rejected. Day-of-month and day-of-week combine with
//!   OR when both are restricted, as in Vixie cron. An expression that can never match
//!   (`0 0 30 2 *`) is rejected by [`validate`] and is an error for the other functions.
//!
//! `timezone` is an IANA name; absent means UTC. Names are case-sensitive.
//!
//! # Daylight saving time (all wall-clock kinds, cron included)
//! Every kind except `interval` first finds the next matching *local* time, then maps it to
//! an instant:
//! - a local time that does not exist (spring-forward gap) runs at the first instant after
//!   the gap: 02:30 Europe/Berlin on the last Sunday of March runs at 03:00 CEST. Several
//!   cron slots inside one gap (`*/15 * * * *`) collapse into that single run;
//! - a local time that exists twice (fall-back overlap) runs once, at the earlier instant.
//!   The repeated wall-clock stretch never fires again, so `*/15 * * * *` does not run
//!   eight times in the doubled hour.
//!
//! So a slot is never run twice and never skipped. For cron this is deliberately *not*
//! croner's own time-zone search, which skips gap slots and repeats the overlap for
//! wildcard/stepped expressions: we let croner match the naive local wall clock and apply
//! the rules above ourselves.
//!
//! # Catch-up after an outage
//! [`advance`] returns the first slot strictly after `max(scheduled, now)`: the late run
//! counts as the one catch-up run and the slots missed meanwhile never fire in a burst.
//!
//! # Range
//! Input and result instants lie in the years 1 through 9999 (UTC), and cron searches end
//! at the year 5000 (croner's limit); beyond that the functions return
//! [`CadenceError::OutOfRange`] rather than panic.

use std::str::FromStr as _;

use chrono::{
    DateTime, Datelike as _, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta,
    TimeZone as _, Utc,
};
use chrono_tz::Tz;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, CronComponent};
use types::missions::MissionCadence;

#[cfg(test)]
mod tests;

/// Why a cadence is invalid or has no computable next slot. Messages name the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CadenceError {
    /// `interval` with `everyMinutes == 0`.
    #[error("everyMinutes must be >= 1")]
    EveryMinutes,
    /// `daily`/`weekly` hour out of range.
    #[error("atHour must be 0..=23 (got {0})")]
    AtHour(u8),
    /// `daily` minute out of range.
    #[error("atMinute must be 0..=59 (got {0})")]
    AtMinute(u8),
    /// `weekly` day out of range.
    #[error("dayOfWeek must be 0..=6 with 0 = Sunday (got {0})")]
    DayOfWeek(u8),
    /// `timezone` is not an IANA name known to chrono-tz (names are case-sensitive).
    #[error("unknown timezone {0:?}")]
    UnknownTimezone(String),
    /// The expression does not parse as 5 fields, is too long, or never matches a date.
    #[error("invalid cron expression {expression:?}: {reason}")]
    InvalidCron { expression: String, reason: String },
    /// croner failed while searching a valid expression; not expected in practice.
    #[error("cron expression {expression:?} could not be evaluated: {reason}")]
    CronEvaluation { expression: String, reason: String },
    /// An input instant lies outside the supported years, or the next slot would.
    #[error(
        "no next run: the date lies outside the supported range (years 1 to 9999; cron up to 5000)"
    )]
    OutOfRange,
}

/// Longest cron expression accepted; real expressions are a few dozen characters.
const MAX_CRON_LEN: usize = 200;
/// Supported years (UTC) of inputs and results; keeps every local-time conversion far
/// from chrono's limits.
const MIN_YEAR: i32 = 1;
const MAX_YEAR: i32 = 9999;
/// Upper bound of cron matches examined per call. Matches that resolve to instants not after
/// `after` only occur inside one fall-back overlap (at most ~one hour of per-minute matches
/// in any real zone), so this is only a guard against looping.
const MAX_CRON_STEPS: u32 = 10_000;
/// Longest gap (spring forward, or a skipped day like Pacific/Apia on 2011-12-30) searched,
/// in minutes.
const MAX_GAP_MINUTES: u32 = 3 * 24 * 60;

/// Checks a cadence: hour/minute/day ranges, `everyMinutes >= 1`, the timezone is a known
/// IANA name, and a cron expression has 5 fields, parses and matches at least one date.
pub fn validate(c: &MissionCadence) -> Result<(), CadenceError> {
    Plan::parse(c).map(|_| ())
}

/// The first scheduled slot strictly after `after`. `Ok(None)` for Manual.
///
/// For `interval` this is `after + everyMinutes`; see [`advance`] for keeping the phase.
pub fn next_after(
    c: &MissionCadence,
    after: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, CadenceError> {
    Plan::parse(c)?.next_after(after)
}

/// After a run planned for slot `scheduled` happens at `now`, the next slot: the first slot
/// strictly after max(scheduled, now). So after an outage the late run counts as the one
/// catch-up run and missed slots never fire in a burst. Interval keeps its phase
/// (scheduled + k*every, the first one > now).
pub fn advance(
    c: &MissionCadence,
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, CadenceError> {
    let plan = Plan::parse(c)?;
    if matches!(plan, Plan::Manual) {
        return Ok(None);
    }
    in_range(scheduled)?;
    in_range(now)?;
    match plan {
        Plan::Interval { every_seconds } => {
            in_range(interval_advance(every_seconds, scheduled, now)?).map(Some)
        }
        _ => plan.next_after(scheduled.max(now)),
    }
}

/// A validated cadence, ready to compute with.
#[expect(
    clippy::large_enum_variant,
    reason = "a short-lived local per call, never stored; boxing would only add an allocation"
)]
enum Plan<'a> {
    Manual,
    Interval {
        every_seconds: i64,
    },
    /// Daily and weekly: `weekday` is `None` for daily.
    WallClock {
        weekday: Option<u32>,
        time: NaiveTime,
        tz: Tz,
    },
    Cron {
        cron: Cron,
        expression: &'a str,
        tz: Tz,
    },
}

impl<'a> Plan<'a> {
    fn parse(c: &'a MissionCadence) -> Result<Self, CadenceError> {
        match c {
            MissionCadence::Manual => Ok(Plan::Manual),
            MissionCadence::Interval { every_minutes } => {
                if *every_minutes == 0 {
                    return Err(CadenceError::EveryMinutes);
                }
                Ok(Plan::Interval {
                    every_seconds: i64::from(*every_minutes) * 60,
                })
            }
            MissionCadence::Daily {
                at_hour,
                at_minute,
                timezone,
            } => {
                let time = wall_time(*at_hour, *at_minute)?;
                let tz = parse_tz(timezone.as_deref())?;
                Ok(Plan::WallClock {
                    weekday: None,
                    time,
                    tz,
                })
            }
            MissionCadence::Weekly {
                day_of_week,
                at_hour,
                timezone,
            } => {
                if *day_of_week > 6 {
                    return Err(CadenceError::DayOfWeek(*day_of_week));
                }
                let time = wall_time(*at_hour, 0)?;
                let tz = parse_tz(timezone.as_deref())?;
                Ok(Plan::WallClock {
                    weekday: Some(u32::from(*day_of_week)),
                    time,
                    tz,
                })
            }
            MissionCadence::Cron {
                expression,
                timezone,
            } => {
                let cron = parse_cron(expression)?;
                let tz = parse_tz(timezone.as_deref())?;
                Ok(Plan::Cron {
                    cron,
                    expression,
                    tz,
                })
            }
        }
    }

    fn next_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, CadenceError> {
        let next = match self {
            Plan::Manual => return Ok(None),
            Plan::Interval { every_seconds } => add_seconds(in_range(after)?, *every_seconds)?,
            Plan::WallClock { weekday, time, tz } => {
                next_wall_clock(*tz, *weekday, *time, in_range(after)?)?
            }
            Plan::Cron {
                cron,
                expression,
                tz,
            } => next_cron(cron, expression, *tz, in_range(after)?)?,
        };
        in_range(next).map(Some)
    }
}

fn wall_time(hour: u8, minute: u8) -> Result<NaiveTime, CadenceError> {
    if hour > 23 {
        return Err(CadenceError::AtHour(hour));
    }
    if minute > 59 {
        return Err(CadenceError::AtMinute(minute));
    }
    NaiveTime::from_hms_opt(u32::from(hour), u32::from(minute), 0).ok_or(CadenceError::AtHour(hour))
}

fn parse_tz(name: Option<&str>) -> Result<Tz, CadenceError> {
    match name {
        None => Ok(Tz::UTC),
        Some(name) => {
            Tz::from_str(name).map_err(|_| CadenceError::UnknownTimezone(name.to_owned()))
        }
    }
}

fn parse_cron(expression: &str) -> Result<Cron, CadenceError> {
    let invalid = |reason: String| CadenceError::InvalidCron {
        expression: expression.to_owned(),
        reason,
    };
    if expression.len() > MAX_CRON_LEN {
        return Err(invalid(format!("longer than {MAX_CRON_LEN} characters")));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| invalid(e.to_string()))
        .and_then(|cron| {
            ensure_cron_ever_matches(&cron, expression)?;
            Ok(cron)
        })
}

/// Rejects expressions that match no date at all (`0 0 30 2 *`).
///
/// Whether a date matches depends only on its year's type (leap or not, weekday of 1
/// January), and 2000–2099 contains all 14 types, so a copy of the expression restricted to
/// those years matches iff the expression ever does. The restriction keeps the check cheap:
/// croner skips the remaining years one step each instead of scanning days up to 5000.
fn ensure_cron_ever_matches(cron: &Cron, expression: &str) -> Result<(), CadenceError> {
    let evaluation = |e: CronError| CadenceError::CronEvaluation {
        expression: expression.to_owned(),
        reason: e.to_string(),
    };
    let mut probe = cron.clone();
    let mut years = CronComponent::new(
        u16::try_from(croner::YEAR_LOWER_LIMIT).unwrap_or(1),
        u16::try_from(croner::YEAR_UPPER_LIMIT).unwrap_or(5000),
        0,
        0,
    );
    years.parse("2000-2099").map_err(evaluation)?;
    probe.pattern.years = years;
    let start = NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or(CadenceError::OutOfRange)?;
    match probe.find_next_occurrence(&start, true) {
        Ok(_) => Ok(()),
        Err(CronError::TimeSearchLimitExceeded) => Err(CadenceError::InvalidCron {
            expression: expression.to_owned(),
            reason: "it never matches any date".to_owned(),
        }),
        Err(e) => Err(evaluation(e)),
    }
}

/// `t` itself if its year is supported.
fn in_range(t: DateTime<Utc>) -> Result<DateTime<Utc>, CadenceError> {
    if (MIN_YEAR..=MAX_YEAR).contains(&t.year()) {
        Ok(t)
    } else {
        Err(CadenceError::OutOfRange)
    }
}

fn add_seconds(t: DateTime<Utc>, seconds: i64) -> Result<DateTime<Utc>, CadenceError> {
    TimeDelta::try_seconds(seconds)
        .and_then(|d| t.checked_add_signed(d))
        .ok_or(CadenceError::OutOfRange)
}

/// `scheduled + k * every` for the smallest `k >= 1` that lands strictly after `now`.
fn interval_advance(
    every_seconds: i64,
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, CadenceError> {
    let k = if now < scheduled {
        1
    } else {
        // Whole seconds elapsed, rounded down: a grid point equal to `now` is not "after"
        // it, and one a fraction of a second past `now` still is.
        let elapsed = (now - scheduled).num_seconds();
        elapsed / every_seconds + 1
    };
    let offset = k
        .checked_mul(every_seconds)
        .ok_or(CadenceError::OutOfRange)?;
    add_seconds(scheduled, offset)
}

/// Daily (`weekday == None`) and weekly slots: the first matching local day whose slot,
/// mapped to an instant, is strictly after `after`.
fn next_wall_clock(
    tz: Tz,
    weekday: Option<u32>,
    time: NaiveTime,
    after: DateTime<Utc>,
) -> Result<DateTime<Utc>, CadenceError> {
    // Start a day early and look 9 days ahead: the local date of `after` and of its slot
    // can differ by a day around a fall-back overlap at midnight or a skipped day, and a
    // weekly slot is at most 7 days away. Slots map to instants monotonically, so the
    // first one past `after` is the answer.
    let mut day = after
        .with_timezone(&tz)
        .date_naive()
        .pred_opt()
        .ok_or(CadenceError::OutOfRange)?;
    for _ in 0..10 {
        if weekday.is_none_or(|w| day.weekday().num_days_from_sunday() == w) {
            let slot = resolve_local(tz, day.and_time(time))?;
            if slot > after {
                return Ok(slot);
            }
        }
        day = day.succ_opt().ok_or(CadenceError::OutOfRange)?;
    }
    Err(CadenceError::OutOfRange)
}

/// Cron slots: croner matches the naive local wall clock; each match is mapped to an
/// instant by the DST rules and skipped while it is not after `after` (that happens only
/// for matches inside an overlap whose earlier pass is already past).
fn next_cron(
    cron: &Cron,
    expression: &str,
    tz: Tz,
    after: DateTime<Utc>,
) -> Result<DateTime<Utc>, CadenceError> {
    let mut cursor = after.with_timezone(&tz).naive_local();
    for _ in 0..MAX_CRON_STEPS {
        let local = match cron.find_next_occurrence(&cursor, false) {
            Ok(local) => local,
            // Parsing already ruled out expressions that never match: this is the year 5000.
            Err(CronError::TimeSearchLimitExceeded) => return Err(CadenceError::OutOfRange),
            Err(e) => {
                return Err(CadenceError::CronEvaluation {
                    expression: expression.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        let slot = resolve_local(tz, local)?;
        if slot > after {
            return Ok(slot);
        }
        cursor = local;
    }
    Err(CadenceError::OutOfRange)
}

/// The instant a local wall-clock time runs at: the earlier of two in an overlap, the first
/// instant after the gap for a time that does not exist.
fn resolve_local(tz: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, CadenceError> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Ok(t.to_utc()),
        LocalResult::Ambiguous(a, b) => Ok(a.min(b).to_utc()),
        LocalResult::None => end_of_gap(tz, local),
    }
}

/// The first instant whose local time is past `local`, a time inside a gap. Local time
/// jumps over the gap at that instant, so it is the transition itself.
fn end_of_gap(tz: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, CadenceError> {
    let minute = TimeDelta::minutes(1);
    let mut probe = local;
    for _ in 0..MAX_GAP_MINUTES {
        probe = probe
            .checked_add_signed(minute)
            .ok_or(CadenceError::OutOfRange)?;
        let exists = match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => Some(t),
            LocalResult::Ambiguous(a, b) => Some(a.min(b)),
            LocalResult::None => None,
        };
        if let Some(t) = exists {
            // `t` is at most a minute past the transition (old LMT offsets are not whole
            // minutes); step back to the exact second.
            let mut first = t.to_utc();
            for _ in 0..60 {
                let Some(earlier) = first.checked_sub_signed(TimeDelta::seconds(1)) else {
                    break;
                };
                if earlier.with_timezone(&tz).naive_local() > local {
                    first = earlier;
                } else {
                    break;
                }
            }
            return Ok(first);
        }
    }
    Err(CadenceError::OutOfRange)
}
