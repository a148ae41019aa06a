//! The tolerant JSON extractor: the one way a model's free-text answer becomes a JSON
//! value (persona ratings, mission plans).
//!
//! Rules:
//! - Tolerated around the value: whitespace, code fences (with or without an info
//!   string such as `json`, closed or not) and prose. Candidates are, in this order of
//!   preference: the whole text when it is one JSON value the caller wants; else the
//!   values inside the fences; else the values embedded in the prose, left to right.
//! - Only objects and arrays count (an object must not be empty, an array must hold an
//!   object: a `[x]` or `{}` in prose is not an answer). A candidate the caller does not
//!   want is searched inside too, so a wanted value wrapped in an envelope is found; a
//!   wanted value is never searched inside (its own parts are not further answers).
//! - The caller's `wanted` predicate says which values are answers, and the
//!   [`Policy`] says what several answers mean: [`Policy::First`] takes the first,
//!   [`Policy::Unique`] refuses more than one ([`ExtractError::Ambiguous`]). With no
//!   wanted value, a single top-level candidate is returned for the caller to judge
//!   (e.g. "has no `steps`"); several are ambiguous under `Unique`, and the first is
//!   returned under `First`.
//! - Never panics on any input (property-tested); work is bounded: the caller bounds the
//!   text, and at most [`MAX_CANDIDATE_STARTS`] start positions are tried.

use serde_json::Value;
use types::text::truncate_chars;

/// Most `{`/`[` positions from which a value is tried (per fence, and in the prose).
pub const MAX_CANDIDATE_STARTS: usize = 256;

/// What several wanted values in one answer mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The first wanted value wins (later ones are ignored).
    First,
    /// Exactly one wanted value is allowed; more is [`ExtractError::Ambiguous`].
    Unique,
}

/// Why no value came out of an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// Nothing but whitespace.
    #[error("the answer is empty")]
    Empty,
    /// No JSON object or array anywhere.
    #[error("no JSON found in the answer")]
    NoJson,
    /// Something JSON-like that did not parse (the first parser complaint, shortened).
    #[error("the JSON does not parse: {0}")]
    InvalidJson(String),
    /// Several values where [`Policy::Unique`] allows one.
    #[error("the answer holds {0} JSON values; expected exactly one")]
    Ambiguous(usize),
}

struct Candidate {
    value: Value,
    /// Found inside another candidate.
    nested: bool,
    wanted: bool,
}

/// The JSON value in `text` by `policy`; `wanted` says which values are answers.
pub fn extract_json(
    text: &str,
    policy: Policy,
    wanted: impl Fn(&Value) -> bool,
) -> Result<Value, ExtractError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ExtractError::Empty);
    }
    if let Ok(v) = serde_json::from_str::<Value>(text)
        && (v.is_object() || v.is_array())
        && wanted(&v)
    {
        return Ok(v);
    }
    let mut first_error = None;
    let mut candidates = Vec::new();
    for block in fenced_blocks(text) {
        embedded(block, &wanted, &mut candidates, &mut first_error);
    }
    if candidates.is_empty() {
        embedded(text, &wanted, &mut candidates, &mut first_error);
    }
    choose(candidates, policy).ok_or_else(|| match first_error {
        Some(e) => ExtractError::InvalidJson(truncate_chars(&e, 200)),
        None => ExtractError::NoJson,
    })?
}

/// `None` when there is no candidate at all.
fn choose(candidates: Vec<Candidate>, policy: Policy) -> Option<Result<Value, ExtractError>> {
    let wanted = candidates.iter().filter(|c| c.wanted).count();
    match (policy, wanted) {
        (_, 1) | (Policy::First, 2..) => {
            return candidates
                .into_iter()
                .find(|c| c.wanted)
                .map(|c| Ok(c.value));
        }
        (Policy::Unique, n @ 2..) => return Some(Err(ExtractError::Ambiguous(n))),
        (_, 0) => {}
    }
    let top = candidates.iter().filter(|c| !c.nested).count();
    match (policy, top) {
        (_, 0) => None,
        (Policy::Unique, n @ 2..) => Some(Err(ExtractError::Ambiguous(n))),
        _ => candidates
            .into_iter()
            .find(|c| !c.nested)
            .map(|c| Ok(c.value)),
    }
}

/// The insides of ``` fences (an info string such as `json` on the opening line is
/// skipped). An unclosed fence runs to the end of the text.
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        // Skip the info string up to the end of the line (`json`, `JSON`, …); a fence that
        // has its JSON on the same line keeps it.
        let body_start = match after.find('\n') {
            Some(nl)
                if after[..nl]
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric()) =>
            {
                nl + 1
            }
            _ => 0,
        };
        let body = &after[body_start..];
        match body.find("```") {
            Some(close) => {
                out.push(&body[..close]);
                rest = &body[close + 3..];
            }
            None => {
                out.push(body);
                break;
            }
        }
    }
    out
}

/// Appends the objects and arrays that start at a `{` or `[` of `text` and parse, left
/// to right; see the module rules for what counts and what is searched inside.
fn embedded(
    text: &str,
    wanted: &impl Fn(&Value) -> bool,
    out: &mut Vec<Candidate>,
    first_error: &mut Option<String>,
) {
    let mut pos = 0;
    let mut tries = 0;
    // Candidates starting before this offset lie inside an earlier one.
    let mut inside_until = 0;
    while pos < text.len() && tries < MAX_CANDIDATE_STARTS {
        let Some(rel) = text[pos..].find(['{', '[']) else {
            break;
        };
        let start = pos + rel;
        tries += 1;
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) => {
                // `end` is past the value, on a char boundary (JSON ends in `}`/`]`).
                let end = start + stream.byte_offset();
                let counts = match &value {
                    Value::Object(o) => !o.is_empty(),
                    Value::Array(a) => a.iter().any(Value::is_object),
                    _ => false,
                };
                if !counts {
                    pos = end.max(start + 1);
                    continue;
                }
                let is_wanted = wanted(&value);
                out.push(Candidate {
                    value,
                    nested: start < inside_until,
                    wanted: is_wanted,
                });
                if is_wanted {
                    pos = end.max(start + 1);
                } else {
                    // Look inside it for a wanted value.
                    inside_until = inside_until.max(end);
                    pos = start + 1;
                }
            }
            Some(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
                pos = start + 1;
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn has(key: &'static str) -> impl Fn(&Value) -> bool {
        move |v| v.get(key).is_some()
    }

    #[test]
    fn whole_text_fences_and_prose_are_tolerated() {
        for text in [
            r#"  {"steps":[1]}  "#,
            "```json\n{\"steps\":[1]}\n```",
            "```\n{\"steps\":[1]}```",
            "```JSON\n{\"steps\":[1]}",
            "Here it is: {\"steps\":[1]} hope {that} helps {:}",
            "```json\nSure: {\"steps\":[1]} done\n```",
        ] {
            for policy in [Policy::First, Policy::Unique] {
                assert_eq!(
                    extract_json(text, policy, has("steps")).unwrap(),
                    json!({"steps": [1]}),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn the_policy_decides_what_two_answers_mean() {
        let two = r#"{"steps":[1]} and also {"steps":[2]}"#;
        assert_eq!(
            extract_json(two, Policy::First, has("steps")).unwrap(),
            json!({"steps": [1]})
        );
        assert_eq!(
            extract_json(two, Policy::Unique, has("steps")),
            Err(ExtractError::Ambiguous(2))
        );
        // Unrelated JSON next to one answer is not a second answer.
        let one = r#"Context {"a":1}. Plan: {"steps":[]}"#;
        for policy in [Policy::First, Policy::Unique] {
            assert_eq!(
                extract_json(one, policy, has("steps")).unwrap(),
                json!({"steps": []})
            );
        }
    }

    #[test]
    fn a_wanted_value_inside_an_envelope_is_found() {
        let text = r#"{"answer": {"ratings": [{"module": "todo"}]}}"#;
        for policy in [Policy::First, Policy::Unique] {
            assert_eq!(
                extract_json(text, policy, has("ratings")).unwrap(),
                json!({"ratings": [{"module": "todo"}]})
            );
        }
    }

    #[test]
    fn without_a_wanted_value_one_candidate_goes_back_to_the_caller() {
        assert_eq!(
            extract_json(r#"{"summary":"x"}"#, Policy::Unique, has("steps")).unwrap(),
            json!({"summary": "x"})
        );
        assert_eq!(
            extract_json(
                r#"[{"toolName":"a","params":{"x":1}}]"#,
                Policy::Unique,
                has("steps")
            )
            .unwrap(),
            json!([{"toolName": "a", "params": {"x": 1}}])
        );
        assert_eq!(
            extract_json(r#"{"a":1} {"b":2}"#, Policy::Unique, has("steps")),
            Err(ExtractError::Ambiguous(2))
        );
        assert_eq!(
            extract_json(r#"{"a":1} {"b":2}"#, Policy::First, has("steps")).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn failures_are_named() {
        assert_eq!(
            extract_json(" \n", Policy::First, has("x")),
            Err(ExtractError::Empty)
        );
        assert_eq!(
            extract_json("no json here [1, 2] {}", Policy::First, has("x")),
            Err(ExtractError::NoJson)
        );
        assert!(matches!(
            extract_json("{\"steps\": [}", Policy::Unique, has("steps")),
            Err(ExtractError::InvalidJson(_))
        ));
        assert!(matches!(
            extract_json(
                "{'ratings': [{'module': 'todo'}]}",
                Policy::First,
                has("ratings")
            ),
            Err(ExtractError::InvalidJson(_))
        ));
    }

    #[test]
    fn deep_nesting_and_many_braces_are_bounded() {
        for policy in [Policy::First, Policy::Unique] {
            assert!(extract_json(&"[".repeat(100_000), policy, has("x")).is_err());
            assert!(extract_json(&"{".repeat(300_000), policy, has("x")).is_err());
            assert!(extract_json(&"{\"a\":".repeat(50_000), policy, has("x")).is_err());
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,400}") {
            let _ = extract_json(&s, Policy::First, has("steps"));
            let _ = extract_json(&s, Policy::Unique, has("steps"));
        }

        #[test]
        fn never_panics_on_jsonish_text(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("{".to_string()), Just("}".to_string()), Just("[".to_string()),
                    Just("]".to_string()), Just("```".to_string()), Just("```json\n".to_string()),
                    Just("\"steps\"".to_string()), Just(":".to_string()), Just(",".to_string()),
                    Just("\"".to_string()), Just("ä".to_string()), Just("\n".to_string()),
                    "[a-z0-9 ]{0,5}",
                ],
                0..80,
            )
        ) {
            let text = parts.concat();
            for policy in [Policy::First, Policy::Unique] {
                if let Ok(v) = extract_json(&text, policy, has("steps")) {
                    prop_assert!(v.is_object() || v.is_array());
                }
            }
        }

        #[test]
        fn one_answer_survives_any_wrapping(
            title in "[a-zA-Z ]{1,40}",
            prose in "[a-zA-Z .!]{0,40}",
            fence in proptest::bool::ANY,
        ) {
            let answer = json!({"steps": [{"title": title}]});
            let text = if fence {
                format!("{prose}\n```json\n{answer}\n```\n{prose}")
            } else {
                format!("{prose} {answer} {prose}")
            };
            for policy in [Policy::First, Policy::Unique] {
                prop_assert_eq!(extract_json(&text, policy, has("steps")).unwrap(), answer.clone());
            }
        }

        #[test]
        fn first_takes_the_first_of_several_and_unique_refuses(n in 2usize..6) {
            let text: Vec<String> = (0..n).map(|i| format!("step {i}: {{\"steps\":[{i}]}}")).collect();
            let text = text.join(" then ");
            prop_assert_eq!(
                extract_json(&text, Policy::First, has("steps")).unwrap(),
                json!({"steps": [0]})
            );
            prop_assert_eq!(
                extract_json(&text, Policy::Unique, has("steps")),
                Err(ExtractError::Ambiguous(n))
            );
        }
    }
}
