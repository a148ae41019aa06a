use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use types::missions::MissionCadence;

use super::{CadenceError, advance, next_after, validate};

const BERLIN: Option<&str> = Some("Europe/Berlin");
const NEW_YORK: Option<&str> = Some("America/New_York");

fn interval(every_minutes: u32) -> MissionCadence {
    MissionCadence::Interval { every_minutes }
}

fn daily(at_hour: u8, at_minute: u8, tz: Option<&str>) -> MissionCadence {
    MissionCadence::Daily {
        at_hour,
        at_minute,
        timezone: tz.map(str::to_owned),
    }
}

fn weekly(day_of_week: u8, at_hour: u8, tz: Option<&str>) -> MissionCadence {
    MissionCadence::Weekly {
        day_of_week,
        at_hour,
        timezone: tz.map(str::to_owned),
    }
}

fn cron(expression: &str, tz: Option<&str>) -> MissionCadence {
    MissionCadence::Cron {
        expression: expression.to_owned(),
        timezone: tz.map(str::to_owned),
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn fmt(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `next_after` as an RFC 3339 string.
fn next(c: &MissionCadence, after: &str) -> String {
    fmt(next_after(c, t(after)).unwrap().unwrap())
}

/// `n` consecutive slots after `after`, each computed from the previous one.
fn slots(c: &MissionCadence, after: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = t(after);
    for _ in 0..n {
        cur = next_after(c, cur).unwrap().unwrap();
        out.push(fmt(cur));
    }
    out
}

fn adv(c: &MissionCadence, scheduled: &str, now: &str) -> String {
    fmt(advance(c, t(scheduled), t(now)).unwrap().unwrap())
}

// ---------------------------------------------------------------- each kind

#[test]
fn manual_never_runs() {
    let c = MissionCadence::Manual;
    assert_eq!(validate(&c), Ok(()));
    assert_eq!(next_after(&c, t("2026-01-01T00:00:00Z")), Ok(None));
    assert_eq!(
        advance(&c, t("2026-01-01T00:00:00Z"), t("2026-02-01T00:00:00Z")),
        Ok(None)
    );
}

#[test]
fn interval_next_after_adds_the_interval() {
    let c = interval(90);
    assert_eq!(next(&c, "2026-05-01T10:00:00Z"), "2026-05-01T11:30:00Z");
    // Elapsed time: DST does not stretch or shrink an interval.
    assert_eq!(
        next(&interval(60), "2026-03-29T00:30:00Z"),
        "2026-03-29T01:30:00Z"
    );
}

#[test]
fn daily_in_utc_today_or_tomorrow() {
    let c = daily(9, 15, None);
    assert_eq!(next(&c, "2026-05-01T08:00:00Z"), "2026-05-01T09:15:00Z");
    assert_eq!(next(&c, "2026-05-01T09:14:59Z"), "2026-05-01T09:15:00Z");
    // Strictly after: the slot itself is not its own next slot.
    assert_eq!(next(&c, "2026-05-01T09:15:00Z"), "2026-05-02T09:15:00Z");
    assert_eq!(next(&c, "2026-05-01T12:00:00Z"), "2026-05-02T09:15:00Z");
}

#[test]
fn daily_uses_the_timezone_wall_clock() {
    // 09:15 in Berlin summer time is 07:15 UTC, in winter 08:15 UTC.
    let c = daily(9, 15, BERLIN);
    assert_eq!(next(&c, "2026-07-01T00:00:00Z"), "2026-07-01T07:15:00Z");
    assert_eq!(next(&c, "2026-01-10T00:00:00Z"), "2026-01-10T08:15:00Z");
    // 23:00 UTC is already the next local day in Berlin.
    assert_eq!(next(&c, "2026-07-01T23:00:00Z"), "2026-07-02T07:15:00Z");
}

#[test]
fn weekly_runs_on_the_day_at_the_hour() {
    // 2026-05-01 is a Friday; 3 = Wednesday.
    let c = weekly(3, 8, None);
    assert_eq!(next(&c, "2026-05-01T12:00:00Z"), "2026-05-06T08:00:00Z");
    assert_eq!(
        slots(&c, "2026-05-01T12:00:00Z", 3),
        [
            "2026-05-06T08:00:00Z",
            "2026-05-13T08:00:00Z",
            "2026-05-20T08:00:00Z"
        ]
    );
    // 0 = Sunday, 6 = Saturday.
    assert_eq!(
        next(&weekly(0, 0, None), "2026-05-01T12:00:00Z"),
        "2026-05-03T00:00:00Z"
    );
    assert_eq!(
        next(&weekly(6, 23, None), "2026-05-01T12:00:00Z"),
        "2026-05-02T23:00:00Z"
    );
}

#[test]
fn weekly_when_today_is_the_day() {
    // Friday 2026-05-01 (5), at 10:00 New York time (EDT, 14:00 UTC).
    let c = weekly(5, 10, NEW_YORK);
    // Not yet passed: today.
    assert_eq!(next(&c, "2026-05-01T13:59:00Z"), "2026-05-01T14:00:00Z");
    // Exactly the slot, or passed: a week later.
    assert_eq!(next(&c, "2026-05-01T14:00:00Z"), "2026-05-08T14:00:00Z");
    assert_eq!(next(&c, "2026-05-01T20:00:00Z"), "2026-05-08T14:00:00Z");
    // Still Friday in New York although Saturday in UTC.
    assert_eq!(
        next(&weekly(5, 23, NEW_YORK), "2026-05-02T02:00:00Z"),
        "2026-05-02T03:00:00Z"
    );
}

#[test]
fn cron_basic() {
    let c = cron("0 9 * * MON-FRI", None);
    // Friday 2026-05-01 after 9:00 → Monday.
    assert_eq!(next(&c, "2026-05-01T10:00:00Z"), "2026-05-04T09:00:00Z");
    let c = cron("*/20 * * * *", None);
    assert_eq!(
        slots(&c, "2026-05-01T10:05:30Z", 3),
        [
            "2026-05-01T10:20:00Z",
            "2026-05-01T10:40:00Z",
            "2026-05-01T11:00:00Z"
        ]
    );
    // Strictly after, also for a sub-second offset past the slot.
    assert_eq!(next(&c, "2026-05-01T10:20:00Z"), "2026-05-01T10:40:00Z");
    assert_eq!(next(&c, "2026-05-01T10:19:59.999Z"), "2026-05-01T10:20:00Z");
}

#[test]
fn cron_uses_the_timezone_wall_clock() {
    let c = cron("30 8 * * *", Some("Asia/Kolkata"));
    // 08:30 IST is 03:00 UTC.
    assert_eq!(next(&c, "2026-05-01T00:00:00Z"), "2026-05-01T03:00:00Z");
    assert_eq!(next(&c, "2026-05-01T03:00:00Z"), "2026-05-02T03:00:00Z");
}

#[test]
fn cron_nicknames_and_dom_dow_or() {
    assert_eq!(
        next(&cron("@daily", None), "2026-05-01T10:00:00Z"),
        "2026-05-02T00:00:00Z"
    );
    assert_eq!(
        next(&cron("@weekly", None), "2026-05-01T10:00:00Z"),
        "2026-05-03T00:00:00Z"
    );
    // Both day fields restricted: either matches (Vixie cron). The 13th, or any Friday.
    let c = cron("0 12 13 * FRI", None);
    assert_eq!(
        slots(&c, "2026-05-02T00:00:00Z", 3),
        [
            "2026-05-08T12:00:00Z",
            "2026-05-13T12:00:00Z",
            "2026-05-15T12:00:00Z"
        ]
    );
}

// ------------------------------------------------------------- month ends, leap days

#[test]
fn daily_across_month_and_year_end() {
    let c = daily(23, 30, None);
    assert_eq!(
        slots(&c, "2026-01-30T23:45:00Z", 3),
        [
            "2026-01-31T23:30:00Z",
            "2026-02-01T23:30:00Z",
            "2026-02-02T23:30:00Z"
        ]
    );
    assert_eq!(next(&c, "2026-02-28T23:31:00Z"), "2026-03-01T23:30:00Z");
    assert_eq!(next(&c, "2026-12-31T23:31:00Z"), "2027-01-01T23:30:00Z");
    // 23:30 in New York crosses the UTC date line: 04:30 UTC the next day (EDT).
    let c = daily(23, 30, NEW_YORK);
    assert_eq!(
        slots(&c, "2026-05-31T12:00:00Z", 2),
        ["2026-06-01T03:30:00Z", "2026-06-02T03:30:00Z"]
    );
}

#[test]
fn cron_day_31_skips_short_months() {
    let c = cron("0 9 31 * *", None);
    assert_eq!(
        slots(&c, "2026-01-31T10:00:00Z", 6),
        [
            "2026-03-31T09:00:00Z",
            "2026-05-31T09:00:00Z",
            "2026-07-31T09:00:00Z",
            "2026-08-31T09:00:00Z",
            "2026-10-31T09:00:00Z",
            "2026-12-31T09:00:00Z",
        ]
    );
}

#[test]
fn cron_last_day_of_month() {
    let c = cron("0 9 L * *", None);
    assert_eq!(
        slots(&c, "2028-01-31T10:00:00Z", 3),
        [
            "2028-02-29T09:00:00Z",
            "2028-03-31T09:00:00Z",
            "2028-04-30T09:00:00Z"
        ]
    );
}

#[test]
fn cron_leap_day_only_in_leap_years() {
    let c = cron("0 0 29 2 *", None);
    assert_eq!(
        slots(&c, "2025-01-01T00:00:00Z", 3),
        [
            "2028-02-29T00:00:00Z",
            "2032-02-29T00:00:00Z",
            "2036-02-29T00:00:00Z"
        ]
    );
    // 2100 is not a leap year: eight years from 2096 to 2104.
    assert_eq!(next(&c, "2096-03-01T00:00:00Z"), "2104-02-29T00:00:00Z");
    // In a timezone: midnight Feb 29 in Berlin is 23:00 UTC on Feb 28.
    assert_eq!(
        next(&cron("0 0 29 2 *", BERLIN), "2025-01-01T00:00:00Z"),
        "2028-02-28T23:00:00Z"
    );
}

// ---------------------------------------------------------------- DST
// 2026: Europe/Berlin springs forward on Sun 29 March 02:00 CET → 03:00 CEST (01:00 UTC) and
// falls back on Sun 25 October 03:00 CEST → 02:00 CET (01:00 UTC). America/New_York springs
// forward on Sun 8 March 02:00 EST → 03:00 EDT (07:00 UTC) and falls back on Sun 1 November
// 02:00 EDT → 01:00 EST (06:00 UTC).

#[test]
fn daily_spring_forward_runs_at_end_of_gap() {
    let c = daily(2, 30, BERLIN);
    assert_eq!(
        slots(&c, "2026-03-27T12:00:00Z", 4),
        [
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // 02:30 does not exist → 03:00 CEST
            "2026-03-30T00:30:00Z", // 02:30 CEST
            "2026-03-31T00:30:00Z",
        ]
    );
    let c = daily(2, 15, NEW_YORK);
    assert_eq!(
        slots(&c, "2026-03-07T12:00:00Z", 3),
        [
            "2026-03-08T07:00:00Z", // 02:15 does not exist → 03:00 EDT
            "2026-03-09T06:15:00Z", // 02:15 EDT
            "2026-03-10T06:15:00Z",
        ]
    );
    // The hour after the gap is unaffected.
    assert_eq!(
        next(&daily(3, 0, BERLIN), "2026-03-28T12:00:00Z"),
        "2026-03-29T01:00:00Z"
    );
    assert_eq!(
        next(&daily(1, 59, BERLIN), "2026-03-28T12:00:00Z"),
        "2026-03-29T00:59:00Z"
    );
}

#[test]
fn daily_fall_back_runs_once_at_the_earlier_instant() {
    let c = daily(2, 30, BERLIN);
    assert_eq!(
        slots(&c, "2026-10-24T12:00:00Z", 3),
        [
            "2026-10-25T00:30:00Z", // 02:30 CEST, the first of two
            "2026-10-26T01:30:00Z", // 02:30 CET
            "2026-10-27T01:30:00Z",
        ]
    );
    // From inside the second pass of the repeated hour: the slot already ran an hour ago.
    assert_eq!(next(&c, "2026-10-25T01:00:00Z"), "2026-10-26T01:30:00Z");
    assert_eq!(next(&c, "2026-10-25T00:45:00Z"), "2026-10-26T01:30:00Z");

    let c = daily(1, 30, NEW_YORK);
    assert_eq!(
        slots(&c, "2026-10-31T12:00:00Z", 2),
        [
            "2026-11-01T05:30:00Z", // 01:30 EDT, not 01:30 EST (06:30 UTC)
            "2026-11-02T06:30:00Z", // 01:30 EST
        ]
    );
    assert_eq!(next(&c, "2026-11-01T06:10:00Z"), "2026-11-02T06:30:00Z");
}

#[test]
fn weekly_across_dst_changes() {
    // Sunday 02:00 Berlin: does not exist on 29 March, exists twice on 25 October.
    let c = weekly(0, 2, BERLIN);
    assert_eq!(
        slots(&c, "2026-03-21T12:00:00Z", 3),
        [
            "2026-03-22T01:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-04-05T00:00:00Z"
        ]
    );
    assert_eq!(
        slots(&c, "2026-10-18T12:00:00Z", 2),
        ["2026-10-25T00:00:00Z", "2026-11-01T01:00:00Z"]
    );
    // Sunday 02:00 New York on 8 March → 03:00 EDT; Sunday 01:00 on 1 November → EDT pass.
    assert_eq!(
        next(&weekly(0, 2, NEW_YORK), "2026-03-02T00:00:00Z"),
        "2026-03-08T07:00:00Z"
    );
    let c = weekly(0, 1, NEW_YORK);
    assert_eq!(
        slots(&c, "2026-10-26T00:00:00Z", 2),
        ["2026-11-01T05:00:00Z", "2026-11-08T06:00:00Z"]
    );
    assert_eq!(next(&c, "2026-11-01T06:30:00Z"), "2026-11-08T06:00:00Z");
}

#[test]
fn cron_fixed_time_across_dst_changes() {
    let c = cron("30 2 * * *", BERLIN);
    assert_eq!(
        slots(&c, "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    );
    assert_eq!(
        slots(&c, "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    let c = cron("0 2 * * *", NEW_YORK);
    assert_eq!(next(&c, "2026-03-07T12:00:00Z"), "2026-03-08T07:00:00Z");
    let c = cron("30 1 * * *", NEW_YORK);
    assert_eq!(
        slots(&c, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
}

#[test]
fn cron_stepped_spring_forward_collapses_gap_slots_into_one_run() {
    // 02:00 and 02:30 CET do not exist; they and the real 03:00 CEST slot are one run.
    let c = cron("*/30 * * * *", BERLIN);
    assert_eq!(
        slots(&c, "2026-03-29T00:00:00Z", 4),
        [
            "2026-03-29T00:30:00Z", // 01:30 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST
            "2026-03-29T01:30:00Z", // 03:30 CEST
            "2026-03-29T02:00:00Z",
        ]
    );
    // New York: 02:00–02:59 missing; hourly at :45 runs 01:45 EST then 03:00 EDT then 03:45.
    let c = cron("45 * * * *", NEW_YORK);
    assert_eq!(
        slots(&c, "2026-03-08T06:00:00Z", 3),
        [
            "2026-03-08T06:45:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:45:00Z"
        ]
    );
}

#[test]
fn cron_stepped_fall_back_does_not_repeat_the_hour() {
    let c = cron("*/30 * * * *", BERLIN);
    assert_eq!(
        slots(&c, "2026-10-24T23:50:00Z", 4),
        [
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T02:00:00Z", // 03:00 CET: 02:00 and 02:30 CET already ran
            "2026-10-25T02:30:00Z",
        ]
    );
    let c = cron("15 * * * *", NEW_YORK);
    assert_eq!(
        slots(&c, "2026-11-01T05:00:00Z", 2),
        ["2026-11-01T05:15:00Z", "2026-11-01T07:15:00Z"]
    );
    // Starting inside the second pass.
    assert_eq!(next(&c, "2026-11-01T06:05:00Z"), "2026-11-01T07:15:00Z");
}

/// Why we do not use croner's own time-zone search: for a stepped expression it runs the
/// repeated hour twice. If croner ever changes this, the docs in lib.rs need updating.
#[test]
fn croner_native_timezone_search_repeats_the_overlap() {
    use chrono_tz::Europe::Berlin;
    use std::str::FromStr as _;
    let c = croner::Cron::from_str("*/30 * * * *").unwrap();
    let start = t("2026-10-24T23:50:00Z").with_timezone(&Berlin);
    let native: Vec<String> = c
        .iter_after(start)
        .take(4)
        .map(|d| fmt(d.to_utc()))
        .collect();
    assert_eq!(
        native,
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:00:00Z", // 02:00 CET, which this crate does not run
            "2026-10-25T01:30:00Z",
        ]
    );
}

#[test]
fn lord_howe_half_hour_gap() {
    // Australia/Lord_Howe springs forward 30 minutes: 2026-10-04 02:00 → 02:30 (+10:30 → +11).
    let c = daily(2, 10, Some("Australia/Lord_Howe"));
    assert_eq!(next(&c, "2026-10-03T12:00:00Z"), "2026-10-03T15:30:00Z");
    assert_eq!(next(&c, "2026-10-03T15:30:00Z"), "2026-10-04T15:10:00Z");
}

#[test]
fn skipped_calendar_day_runs_at_end_of_gap() {
    // Pacific/Apia skipped 2011-12-30 entirely (UTC-10 → UTC+14 at 10:00 UTC).
    let c = daily(10, 0, Some("Pacific/Apia"));
    assert_eq!(
        slots(&c, "2011-12-29T12:00:00Z", 3),
        [
            "2011-12-29T20:00:00Z", // 29 Dec 10:00 -10
            "2011-12-30T10:00:00Z", // 30 Dec does not exist → 31 Dec 00:00 +14
            "2011-12-30T20:00:00Z", // 31 Dec 10:00 +14
        ]
    );
    // Weekly Friday (30 Dec 2011 was a Friday) also lands at the end of the gap.
    assert_eq!(
        next(&weekly(5, 10, Some("Pacific/Apia")), "2011-12-25T00:00:00Z"),
        "2011-12-30T10:00:00Z"
    );
}

// ---------------------------------------------------------------- advance

#[test]
fn interval_advance_keeps_phase_after_outage() {
    let c = interval(60);
    // Down for three days and 17 minutes: one late run, then the next point on the grid.
    let next = adv(&c, "2026-05-01T10:00:00Z", "2026-05-04T10:17:00Z");
    assert_eq!(next, "2026-05-04T11:00:00Z");
    // The run after that is on schedule again.
    assert_eq!(
        adv(&c, &next, "2026-05-04T11:00:05Z"),
        "2026-05-04T12:00:00Z"
    );
    // A grid point equal to now is not after now.
    assert_eq!(
        adv(&c, "2026-05-01T10:00:00Z", "2026-05-01T13:00:00Z"),
        "2026-05-01T14:00:00Z"
    );
    assert_eq!(
        adv(&c, "2026-05-01T10:00:00Z", "2026-05-01T12:59:59.5Z"),
        "2026-05-01T13:00:00Z"
    );
    // On time, and early (clock skew): the next point after the scheduled slot.
    assert_eq!(
        adv(&c, "2026-05-01T10:00:00Z", "2026-05-01T10:00:00Z"),
        "2026-05-01T11:00:00Z"
    );
    assert_eq!(
        adv(&c, "2026-05-01T10:00:00Z", "2026-05-01T09:00:00Z"),
        "2026-05-01T11:00:00Z"
    );
    // Phase with an odd interval: 7 minutes from 10:03.
    assert_eq!(
        adv(&interval(7), "2026-05-01T10:03:00Z", "2026-05-01T11:00:00Z"),
        "2026-05-01T11:06:00Z"
    );
}

#[test]
fn wall_clock_advance_after_outage_fires_once() {
    let c = daily(9, 0, None);
    // Slot on 1 May missed until 4 May 10:00: the next is 5 May, not 2, 3 or 4 May.
    assert_eq!(
        adv(&c, "2026-05-01T09:00:00Z", "2026-05-04T10:00:00Z"),
        "2026-05-05T09:00:00Z"
    );
    // Back before the day's slot: that slot is still ahead.
    assert_eq!(
        adv(&c, "2026-05-01T09:00:00Z", "2026-05-04T08:00:00Z"),
        "2026-05-04T09:00:00Z"
    );
    // On time.
    assert_eq!(
        adv(&c, "2026-05-01T09:00:00Z", "2026-05-01T09:00:30Z"),
        "2026-05-02T09:00:00Z"
    );
    // Ran early (now before the slot): never the same slot again.
    assert_eq!(
        adv(&c, "2026-05-01T09:00:00Z", "2026-05-01T08:59:00Z"),
        "2026-05-02T09:00:00Z"
    );

    let c = cron("*/5 * * * *", None);
    assert_eq!(
        adv(&c, "2026-05-01T09:00:00Z", "2026-05-03T17:42:10Z"),
        "2026-05-03T17:45:00Z"
    );
    let c = weekly(1, 6, BERLIN);
    assert_eq!(
        adv(&c, "2026-05-04T04:00:00Z", "2026-05-20T00:00:00Z"),
        "2026-05-25T04:00:00Z"
    );
}

// ---------------------------------------------------------------- validation and errors

#[test]
fn validate_accepts_good_cadences() {
    for c in [
        MissionCadence::Manual,
        interval(1),
        interval(u32::MAX),
        daily(0, 0, None),
        daily(23, 59, Some("UTC")),
        weekly(0, 0, Some("Pacific/Chatham")),
        weekly(6, 23, NEW_YORK),
        cron("0 9 * * 1-5", BERLIN),
        cron("  15,45 */2 1-15 JAN,jul sun  ", None),
        cron("0 0 29 2 *", None),
        cron("0 12 L * *", None),
        cron("0 12 * * 5#L", None),
        cron("@hourly", None),
    ] {
        assert_eq!(validate(&c), Ok(()), "{c:?}");
    }
}

#[test]
fn validate_rejects_out_of_range_fields() {
    let cases = [
        (interval(0), "everyMinutes must be >= 1"),
        (daily(24, 0, None), "atHour must be 0..=23 (got 24)"),
        (daily(0, 60, None), "atMinute must be 0..=59 (got 60)"),
        (
            weekly(7, 0, None),
            "dayOfWeek must be 0..=6 with 0 = Sunday (got 7)",
        ),
        (weekly(0, 255, None), "atHour must be 0..=23 (got 255)"),
        (
            daily(0, 0, Some("Mars/Base")),
            "unknown timezone \"Mars/Base\"",
        ),
        (weekly(0, 0, Some("")), "unknown timezone \"\""),
        (
            cron("0 0 * * *", Some("europe/berlin")),
            "unknown timezone \"europe/berlin\"",
        ),
    ];
    for (c, message) in cases {
        let err = validate(&c).unwrap_err();
        assert_eq!(err.to_string(), message, "{c:?}");
        // The other entry points reject the same input the same way.
        assert_eq!(next_after(&c, t("2026-01-01T00:00:00Z")), Err(err.clone()));
        assert_eq!(
            advance(&c, t("2026-01-01T00:00:00Z"), t("2026-01-02T00:00:00Z")),
            Err(err)
        );
    }
}

#[test]
fn validate_rejects_bad_cron_expressions() {
    for expression in [
        "",
        "   ",
        "not a cron",
        "* * * *",
        "0 0 0 * * *",      // seconds field
        "0 0 0 * * * 2030", // seconds and year fields
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "0/10 * * * *",
        "@reboot",
    ] {
        let err = validate(&cron(expression, None)).unwrap_err();
        assert!(
            matches!(&err, CadenceError::InvalidCron { expression: e, .. } if e == expression),
            "{expression:?}: {err:?}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("invalid cron expression {expression:?}: ")),
            "{err}"
        );
    }
    let long = format!("0 0 * * {}", "1,".repeat(150));
    assert!(matches!(
        validate(&cron(&long, None)),
        Err(CadenceError::InvalidCron { reason, .. }) if reason.contains("longer than 200")
    ));
}

#[test]
fn never_matching_cron_is_an_error_not_a_hang() {
    for expression in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"] {
        let c = cron(expression, None);
        let expected = CadenceError::InvalidCron {
            expression: expression.to_owned(),
            reason: "it never matches any date".to_owned(),
        };
        assert_eq!(validate(&c), Err(expected.clone()));
        assert_eq!(
            next_after(&c, t("2026-01-01T00:00:00Z")),
            Err(expected.clone())
        );
        assert_eq!(
            advance(&c, t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:00Z")),
            Err(expected)
        );
    }
    // A rare but real combination is fine: 29 February that is also a Monday (AND via `+`).
    let c = cron("0 0 29 2 +MON", None);
    assert_eq!(validate(&c), Ok(()));
    assert_eq!(next(&c, "2026-01-01T00:00:00Z"), "2044-02-29T00:00:00Z");
}

#[test]
fn out_of_range_instants_are_errors_not_panics() {
    let all = [
        interval(1),
        interval(u32::MAX),
        daily(12, 0, Some("Pacific/Kiritimati")),
        weekly(3, 12, Some("Etc/GMT+12")),
        cron("0 0 * * *", Some("Pacific/Kiritimati")),
    ];
    for c in &all {
        for extreme in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            assert_eq!(
                next_after(c, extreme),
                Err(CadenceError::OutOfRange),
                "{c:?}"
            );
            assert_eq!(
                advance(c, extreme, extreme),
                Err(CadenceError::OutOfRange),
                "{c:?}"
            );
            assert_eq!(
                advance(c, t("2026-01-01T00:00:00Z"), extreme),
                Err(CadenceError::OutOfRange),
                "{c:?}"
            );
        }
    }
    // Cron search stops at croner's year-5000 limit.
    assert_eq!(
        next_after(&cron("0 0 29 2 *", None), t("4999-03-01T00:00:00Z")),
        Err(CadenceError::OutOfRange)
    );
    // The last supported days still work for the wall-clock kinds.
    assert_eq!(
        next(&daily(12, 0, None), "9999-12-30T13:00:00Z"),
        "9999-12-31T12:00:00Z"
    );
    // Results past the year 9999 are not returned either (u32::MAX minutes is 8166 years).
    assert_eq!(
        next_after(&daily(12, 0, None), t("9999-12-31T13:00:00Z")),
        Err(CadenceError::OutOfRange)
    );
    assert_eq!(
        next_after(&interval(u32::MAX), t("2026-01-01T00:00:00Z")),
        Err(CadenceError::OutOfRange)
    );
    assert_eq!(
        advance(
            &interval(u32::MAX),
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:00Z")
        ),
        Err(CadenceError::OutOfRange)
    );
    assert_eq!(
        next(&interval(u32::MAX / 2), "2026-01-01T00:00:00Z"),
        "6109-01-24T02:07:00Z"
    );
}

// ---------------------------------------------------------------- properties

mod props {
    use super::*;
    use proptest::prelude::*;

    const ZONES: &[Option<&str>] = &[
        None,
        Some("UTC"),
        Some("Europe/Berlin"),
        Some("America/New_York"),
        Some("Australia/Lord_Howe"),
        Some("Pacific/Apia"),
        Some("Pacific/Chatham"),
        Some("America/Santiago"),
        Some("Asia/Kolkata"),
        Some("America/St_Johns"),
    ];

    /// Transitions near which the interesting cases live (UTC).
    const TRANSITIONS: &[&str] = &[
        "2026-03-29T01:00:00Z",
        "2026-10-25T01:00:00Z",
        "2026-03-08T07:00:00Z",
        "2026-11-01T06:00:00Z",
        "2026-10-03T15:30:00Z",
        "2026-04-04T15:00:00Z",
        "2011-12-30T10:00:00Z",
        "2026-04-05T03:00:00Z",
        "2026-09-06T04:00:00Z",
    ];

    fn zone() -> impl Strategy<Value = Option<String>> {
        proptest::sample::select(ZONES).prop_map(|z| z.map(str::to_owned))
    }

    fn cron_expression() -> impl Strategy<Value = String> {
        let minute = proptest::sample::select(&["0", "30", "*/15", "*", "5,35", "59"][..]);
        let hour = proptest::sample::select(&["*", "0", "1", "2", "1-3", "*/6", "23"][..]);
        let dom = proptest::sample::select(&["*", "1", "29", "31", "L", "15W"][..]);
        let month = proptest::sample::select(&["*", "2", "*/3", "10", "3,11"][..]);
        let dow = proptest::sample::select(&["*", "0", "1-5", "SAT", "5#L"][..]);
        (minute, hour, dom, month, dow).prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
    }

    fn cadence() -> impl Strategy<Value = MissionCadence> {
        prop_oneof![
            Just(MissionCadence::Manual),
            (1u32..=20_000).prop_map(interval),
            (0u8..24, 0u8..60, zone()).prop_map(|(h, m, timezone)| MissionCadence::Daily {
                at_hour: h,
                at_minute: m,
                timezone,
            }),
            (0u8..7, 0u8..24, zone()).prop_map(|(d, h, timezone)| MissionCadence::Weekly {
                day_of_week: d,
                at_hour: h,
                timezone,
            }),
            (cron_expression(), zone()).prop_map(|(expression, timezone)| MissionCadence::Cron {
                expression,
                timezone
            }),
        ]
    }

    /// Instants between 1970 and 2100, or within six hours of a DST transition.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        prop_oneof![
            (0i64..4_102_444_800, 0u32..1_000_000_000)
                .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap()),
            (
                proptest::sample::select(TRANSITIONS),
                -6 * 3600i64..6 * 3600
            )
                .prop_map(|(base, off)| t(base) + TimeDelta::seconds(off)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn advance_is_always_after_now_and_scheduled(
            c in cadence(),
            scheduled in instant(),
            now in instant(),
        ) {
            prop_assume!(validate(&c).is_ok());
            match advance(&c, scheduled, now).unwrap() {
                None => prop_assert_eq!(c, MissionCadence::Manual),
                Some(r) => {
                    prop_assert!(r > now, "{:?}: {} <= now {}", c, r, now);
                    prop_assert!(r > scheduled, "{:?}: {} <= scheduled {}", c, r, scheduled);
                    if let MissionCadence::Interval { every_minutes } = c {
                        // On the grid of `scheduled`, and the first such point after now.
                        let step = i64::from(every_minutes) * 60;
                        let diff = (r - scheduled).num_seconds();
                        prop_assert_eq!((r - scheduled).subsec_nanos(), 0);
                        prop_assert_eq!(diff % step, 0);
                        prop_assert!(diff == step || r - TimeDelta::seconds(step) <= now);
                    } else {
                        prop_assert_eq!(Some(r), next_after(&c, scheduled.max(now)).unwrap());
                    }
                }
            }
        }

        /// No slot between `after` and the answer: every instant in between has the same
        /// next slot (so nothing is skipped), and the answer is strictly later.
        #[test]
        fn next_after_skips_no_slot(
            c in cadence(),
            after in instant(),
            frac in 0.0f64..1.0,
        ) {
            prop_assume!(validate(&c).is_ok());
            prop_assume!(!matches!(c, MissionCadence::Interval { .. } | MissionCadence::Manual));
            let r = next_after(&c, after).unwrap().unwrap();
            prop_assert!(r > after);
            let span = (r - after).num_milliseconds();
            #[expect(clippy::cast_possible_truncation, clippy::cast_precision_loss, reason = "test sampling")]
            let between = after + TimeDelta::milliseconds((span as f64 * frac) as i64);
            prop_assume!(between < r);
            prop_assert_eq!(next_after(&c, between).unwrap(), Some(r));
        }

        /// Consecutive daily slots are 23 to 25 hours apart in zones with one-hour DST.
        #[test]
        fn daily_slots_are_about_a_day_apart(
            h in 0u8..24,
            m in 0u8..60,
            zone in proptest::sample::select(&["Europe/Berlin", "America/New_York", "UTC"][..]),
            after in instant(),
        ) {
            let c = daily(h, m, Some(zone));
            let a = next_after(&c, after).unwrap().unwrap();
            let b = next_after(&c, a).unwrap().unwrap();
            let gap = b - a;
            prop_assert!(gap >= TimeDelta::hours(23) && gap <= TimeDelta::hours(25), "{a} → {b}");
        }
    }
}
