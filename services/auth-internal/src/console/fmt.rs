//! Small formatting helpers shared by the console pages.
//!
//! Rules: times are shown in UTC (the whole back office runs on UTC) with the
//! exact timestamp in a tooltip; numbers use fixed precision per kind.

use chrono::{DateTime, Utc};

/// `2026-11-18 12:00 UTC`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "5 min ago", "in 2 h", "3 d ago".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let (abs, future) = (secs.unsigned_abs(), secs < 0);
    let text = match abs {
        0..=59 => format!("{abs} s"),
        60..=3599 => format!("{} min", abs / 60),
        3600..=86_399 => format!("{} h", abs / 3600),
        _ => format!("{} d", abs / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Thousands separated by a thin space: `1 234 567`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A share as a percentage with one decimal.
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn formats() {
        let now = Utc.with_ymd_and_hms(2026, 11, 18, 12, 0, 0).unwrap();
        assert_eq!(
            relative(now - chrono::TimeDelta::minutes(5), now),
            "5 min ago"
        );
        assert_eq!(relative(now + chrono::TimeDelta::hours(2), now), "in 2 h");
        assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
        assert_eq!(count(12), "12");
        assert_eq!(percent(0.125), "12.5 %");
        assert_eq!(timestamp(now), "2026-11-18 12:00 UTC");
    }
}
