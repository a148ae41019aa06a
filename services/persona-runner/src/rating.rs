//! The tolerant parser of the rating turn's answer.
//!
//! Rules:
//! - The answer should be `{"ratings":[{"module","rating","notes"}]}`; whitespace, code
//!   fences and prose around ONE JSON value are tolerated, and so is a bare array of
//!   entries. The value is found by the workspace's one extractor
//!   ([`llm::extract`]) with [`Policy::First`]: the first value that carries ratings
//!   wins (a model that repeats its answer is not punished).
//! - An entry is kept only for a module that was asked for (case-insensitive), with a
//!   rating that is a number (or numeric string) in 1–5 (rounded to the nearest
//!   integer); anything else is dropped with a reason. A module rated twice keeps its
//!   first rating. Notes are kept if they are a string, truncated.
//! - When nothing usable comes out of a non-empty answer (no JSON, or every entry
//!   dropped), the result is one row `{module:"__parse", rating:null, notes:<why + raw,
//!   truncated>}` so operators see it — never a made-up rating.
//! - No input makes it panic (property-tested); work is bounded by [`MAX_INPUT`].

use llm::extract::{Policy, extract_json};
use serde_json::Value;
use types::personas::{FeedbackRow, PARSE_FAILURE_MODULE};
use types::text::truncate_chars;

/// Longest answer considered; the rest is ignored.
pub const MAX_INPUT: usize = 64 * 1024;
/// Longest note kept per rating.
pub const MAX_NOTES: usize = 1000;
/// Longest raw text kept in a `__parse` row.
pub const MAX_RAW: usize = 500;

/// The parse result: rows to store and why entries were dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRatings {
    /// Feedback rows (one `__parse` row when nothing was usable).
    pub rows: Vec<FeedbackRow>,
    /// One human-readable reason per dropped entry.
    pub dropped: Vec<String>,
}

impl ParsedRatings {
    /// Whether the answer could not be used at all.
    pub fn is_parse_failure(&self) -> bool {
        self.rows
            .first()
            .is_some_and(|r| r.module == PARSE_FAILURE_MODULE)
    }
}

fn cut_to_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

const RATINGS_KEYS: [&str; 3] = ["ratings", "Ratings", "bewertungen"];

/// Whether `v` carries ratings: `{"ratings": [...]}` (or one entry object there), a lone
/// entry `{"module": …}`, or an array of entries.
fn carries_ratings(v: &Value) -> bool {
    match v {
        Value::Object(obj) => {
            RATINGS_KEYS
                .iter()
                .any(|k| matches!(obj.get(*k), Some(Value::Array(_) | Value::Object(_))))
                || obj.contains_key("module")
        }
        Value::Array(a) => a.iter().any(Value::is_object),
        _ => false,
    }
}

/// The entries array of the first JSON value in `text` that carries ratings.
fn find_entries(text: &str) -> Option<Vec<Value>> {
    match extract_json(text, Policy::First, carries_ratings).ok()? {
        Value::Object(mut obj) => {
            match RATINGS_KEYS.iter().find_map(|k| obj.remove(*k)) {
                Some(Value::Array(a)) => Some(a),
                Some(single @ Value::Object(_)) => Some(vec![single]),
                // A lone entry object (`{"module":…,"rating":…}`).
                _ if obj.contains_key("module") => Some(vec![Value::Object(obj)]),
                _ => None,
            }
        }
        Value::Array(a) if a.iter().any(Value::is_object) => Some(a),
        _ => None,
    }
}

fn rating_of(v: Option<&Value>) -> Result<i64, String> {
    let n = match v {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && (0.5..5.5).contains(&n) => {
            // Safe: n is within 0.5..5.5, so the rounded value is 1..=5.
            Ok((n.round() as i64).clamp(1, 5))
        }
        Some(n) => Err(format!("rating {n} is outside 1–5")),
        None => Err(format!(
            "rating {} is not a number",
            v.map_or_else(
                || "missing".to_owned(),
                |v| truncate_chars(&v.to_string(), 40)
            )
        )),
    }
}

/// Parses `raw` for ratings of `modules` (the modules used today).
pub fn parse_ratings(raw: &str, modules: &[String]) -> ParsedRatings {
    let text = cut_to_boundary(raw, MAX_INPUT);
    let mut rows: Vec<FeedbackRow> = Vec::new();
    let mut dropped = Vec::new();
    let Some(entries) = find_entries(text) else {
        return failure(raw, "no JSON with ratings found", dropped);
    };
    for (i, entry) in entries.iter().enumerate() {
        let Some(obj) = entry.as_object() else {
            dropped.push(format!("entry {i} is not an object"));
            continue;
        };
        let Some(name) = obj.get("module").and_then(Value::as_str) else {
            dropped.push(format!("entry {i} has no module name"));
            continue;
        };
        let wanted = name.trim();
        let Some(module) = modules.iter().find(|m| m.eq_ignore_ascii_case(wanted)) else {
            dropped.push(format!(
                "entry {i}: module {:?} was not used today",
                truncate_chars(wanted, 64)
            ));
            continue;
        };
        if rows.iter().any(|r| &r.module == module) {
            dropped.push(format!(
                "entry {i}: module {module} rated twice; kept the first"
            ));
            continue;
        }
        let rating = match rating_of(obj.get("rating")) {
            Ok(r) => r,
            Err(why) => {
                dropped.push(format!("entry {i} ({module}): {why}"));
                continue;
            }
        };
        let notes = obj
            .get("notes")
            .or_else(|| obj.get("note"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| truncate_chars(n, MAX_NOTES));
        rows.push(FeedbackRow {
            module: module.clone(),
            rating: Some(rating),
            notes,
        });
    }
    if rows.is_empty() && !modules.is_empty() {
        let why = if dropped.is_empty() {
            "the ratings list was empty".to_owned()
        } else {
            format!("no usable rating ({})", dropped.join("; "))
        };
        return failure(raw, &why, dropped);
    }
    ParsedRatings { rows, dropped }
}

fn failure(raw: &str, why: &str, dropped: Vec<String>) -> ParsedRatings {
    let notes = format!(
        "{}: {}",
        truncate_chars(why, 300),
        truncate_chars(raw.trim(), MAX_RAW)
    );
    ParsedRatings {
        rows: vec![FeedbackRow {
            module: PARSE_FAILURE_MODULE.to_owned(),
            rating: None,
            notes: Some(notes),
        }],
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mods() -> Vec<String> {
        ["todo", "notes", "mood"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    fn ratings(raw: &str) -> Vec<(String, Option<i64>)> {
        parse_ratings(raw, &mods())
            .rows
            .into_iter()
            .map(|r| (r.module, r.rating))
            .collect()
    }

    fn pair(m: &str, r: i64) -> (String, Option<i64>) {
        (m.to_owned(), Some(r))
    }

    #[test]
    fn strict_json_parses() {
        let p = parse_ratings(
            r#"{"ratings":[{"module":"todo","rating":4,"notes":"klappt"},{"module":"notes","rating":2,"notes":"Suche fehlt"}]}"#,
            &mods(),
        );
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].notes.as_deref(), Some("klappt"));
        assert!(p.dropped.is_empty());
        assert!(!p.is_parse_failure());
    }

    #[test]
    fn fences_prose_and_whitespace_are_tolerated() {
        let cases = [
            "```json\n{\"ratings\":[{\"module\":\"todo\",\"rating\":5}]}\n```",
            "```\n{\"ratings\":[{\"module\":\"todo\",\"rating\":5}]}```",
            "Hier meine Bewertung:\n\n{\"ratings\": [ {\"module\": \"todo\", \"rating\": 5} ]}\n\nDanke!",
            "   \n\t{\"ratings\":[{\"module\":\"todo\",\"rating\":5}]}   ",
            "Sure! Here's the JSON you asked for {with braces in prose}: {\"ratings\":[{\"module\":\"todo\",\"rating\":5}]} Hope that helps {:}",
            "[{\"module\":\"todo\",\"rating\":5}]",
            "{\"module\":\"todo\",\"rating\":5}",
            "{\"ratings\":{\"module\":\"todo\",\"rating\":5}}",
        ];
        for raw in cases {
            assert_eq!(ratings(raw), vec![pair("todo", 5)], "{raw}");
        }
    }

    #[test]
    fn lenient_values_and_case() {
        assert_eq!(
            ratings(
                r#"{"ratings":[{"module":"TODO","rating":"4"},{"module":" mood ","rating":3.0},{"module":"notes","rating":4.6}]}"#
            ),
            vec![pair("todo", 4), pair("mood", 3), pair("notes", 5)]
        );
    }

    #[test]
    fn bad_entries_are_dropped_with_reasons() {
        let p = parse_ratings(
            r#"{"ratings":[
                {"module":"todo","rating":7},
                {"module":"calendar","rating":4},
                {"module":"notes","rating":"gut"},
                {"module":"mood"},
                "mood: 3",
                {"rating":2},
                {"module":"mood","rating":0},
                {"module":"mood","rating":2,"notes":"ok"},
                {"module":"mood","rating":5}
            ]}"#,
            &mods(),
        );
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].module, "mood");
        assert_eq!(p.rows[0].rating, Some(2));
        assert_eq!(p.dropped.len(), 8, "{:?}", p.dropped);
        assert!(p.dropped.iter().any(|d| d.contains("outside 1–5")));
        assert!(p.dropped.iter().any(|d| d.contains("not used today")));
        assert!(p.dropped.iter().any(|d| d.contains("rated twice")));
    }

    #[test]
    fn unusable_output_becomes_one_parse_row_without_a_rating() {
        for raw in [
            "",
            "Ich fand alles super!",
            "{\"ratings\": [ {\"module\": \"todo\", \"rating\": 4 ",
            "{'ratings': [{'module': 'todo', 'rating': 4}]}",
            "{\"ratings\": []}",
            "{\"ratings\": [{\"module\":\"calendar\",\"rating\":4}]}",
            "{\"score\": 4}",
            "null",
            "[1,2,3]",
        ] {
            let p = parse_ratings(raw, &mods());
            assert!(p.is_parse_failure(), "{raw:?} → {p:?}");
            assert_eq!(p.rows.len(), 1);
            assert_eq!(p.rows[0].rating, None);
            assert!(
                p.rows[0].notes.as_ref().unwrap().contains(raw.trim()),
                "{raw}"
            );
        }
    }

    #[test]
    fn huge_raw_text_is_truncated_in_the_parse_row() {
        let raw = "ä".repeat(10_000);
        let p = parse_ratings(&raw, &mods());
        let notes = p.rows[0].notes.clone().unwrap();
        assert!(notes.chars().count() < MAX_RAW + 400, "{}", notes.len());
    }

    #[test]
    fn long_notes_are_truncated() {
        let raw = format!(
            r#"{{"ratings":[{{"module":"todo","rating":3,"notes":"{}"}}]}}"#,
            "x".repeat(5000)
        );
        let p = parse_ratings(&raw, &mods());
        assert_eq!(
            p.rows[0].notes.as_ref().unwrap().chars().count(),
            MAX_NOTES + 1
        );
    }

    #[test]
    fn no_modules_and_no_ratings_is_not_a_failure() {
        let p = parse_ratings(r#"{"ratings":[]}"#, &[]);
        assert!(p.rows.is_empty());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(raw in ".{0,400}") {
            let p = parse_ratings(&raw, &mods());
            prop_assert!(!p.rows.is_empty());
            for r in &p.rows {
                if r.module == PARSE_FAILURE_MODULE {
                    prop_assert_eq!(r.rating, None);
                } else {
                    prop_assert!(matches!(r.rating, Some(1..=5)));
                    prop_assert!(mods().contains(&r.module));
                }
            }
        }

        #[test]
        fn never_panics_on_json_like_text(
            raw in r#"[\{\}\[\]":,0-9a-z \n`\-.]{0,300}"#,
            rating in -10.0f64..10.0,
        ) {
            let wrapped = format!("{raw}{{\"ratings\":[{{\"module\":\"notes\",\"rating\":{rating}}}]}}{raw}");
            let p = parse_ratings(&wrapped, &mods());
            prop_assert!(!p.rows.is_empty());
            let _ = parse_ratings(&raw, &mods());
        }
    }
}
