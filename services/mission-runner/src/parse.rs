//! From a model's answer to validated plan steps, on either path.
//!
//! Rules:
//! - JSON contract ([`parse_plan`]): tolerant of whitespace, code fences and prose around
//!   ONE JSON value, through the workspace's one extractor ([`llm::extract`]) with
//!   [`Policy::Unique`]: more than one candidate plan object is ambiguous and fails (two
//!   plans are two different intentions; guessing one would stage the wrong steps). The
//!   parser never panics on any input (a proptest checks it) and its work is bounded
//!   ([`MAX_PARSE_CHARS`], [`llm::extract::MAX_CANDIDATE_STARTS`]).
//! - Native tool calls ([`run_tool_loop`]): the proposable tools are offered as
//!   [`llm::ToolDef`]s; every call becomes a proposed step and is NEVER executed: it is
//!   answered with a result saying it was recorded for the user's review (or, when invalid,
//!   why it was not), until the model stops calling tools or [`MAX_ROUNDS`] is reached.
//! - Both paths go through one [`StepValidator`]: the tool exists in the registry, is
//!   proposable, is offered to this mission, and its params are valid against its JSON
//!   schema (`Registry::validate`). Invalid steps are dropped with the reason kept
//!   ([`DroppedStep`]); exact duplicates and steps beyond [`MAX_STEPS`] are dropped too.

use std::collections::BTreeSet;

use llm::extract::{ExtractError, Policy};
use llm::{ChatRequest, ChatResponse, Llm, LlmError, Message, StopReason, ToolDef, ToolResult};
use serde_json::{Map, Value, json};
use tools::{Registry, ToolSpec};
use types::missions::DroppedStep;
use types::tick::TokenUsage;

use types::text::{head_chars, one_line, truncate_chars};

use crate::prompts::MAX_STEPS;

/// Longest answer the parser looks at; the rest is ignored.
pub const MAX_PARSE_CHARS: usize = 200_000;
/// Model turns in the tool-calling loop, at most.
pub const MAX_ROUNDS: u32 = 5;
/// Dropped steps kept on one iteration, at most.
pub const MAX_DROPPED: usize = 20;
/// Longest reason kept on a dropped step.
pub const MAX_REASON_CHARS: usize = 400;
/// Longest step summary or rationale kept.
pub const MAX_STEP_TEXT_CHARS: usize = 500;

/// What the tool result of a recorded proposal says.
pub const RECORDED_MESSAGE: &str = "recorded as a proposal for the user's review; it has not been executed, so there is no result and no new id";

/// Why an answer is not a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("the answer is empty")]
    Empty,
    /// No JSON object or array anywhere.
    #[error("no JSON plan found in the answer")]
    NoJson,
    /// Something JSON-like that did not parse.
    #[error("the JSON plan does not parse: {0}")]
    InvalidJson(String),
    /// Several separate JSON plans.
    #[error("the answer holds {0} JSON plans; expected exactly one")]
    Ambiguous(usize),
    /// The JSON value has no `steps` array.
    #[error("the JSON plan has no \"steps\" array")]
    MissingSteps,
}

/// A plan as the model wrote it: the summary and the raw step values, not yet validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPlan {
    /// The plan's summary, if it had a non-empty string one.
    pub summary: Option<String>,
    /// Each element of `steps`, as written.
    pub steps: Vec<Value>,
}

/// Parses the JSON output contract `{"summary": …, "steps": [...]}` out of `text`.
/// A bare array is taken as the steps list.
pub fn parse_plan(text: &str) -> Result<ParsedPlan, ParseError> {
    let value = extract_json(text)?;
    match value {
        Value::Array(steps) => Ok(ParsedPlan {
            summary: None,
            steps,
        }),
        Value::Object(mut obj) => {
            let steps = match obj.remove("steps") {
                Some(Value::Array(steps)) => steps,
                _ => return Err(ParseError::MissingSteps),
            };
            let summary = obj
                .get("summary")
                .and_then(Value::as_str)
                .map(|s| truncate_chars(s.trim(), MAX_STEP_TEXT_CHARS))
                .filter(|s| !s.is_empty());
            Ok(ParsedPlan { summary, steps })
        }
        _ => Err(ParseError::MissingSteps),
    }
}

/// Finds the one JSON value in `text`: the whole text, else the fenced blocks, else the
/// JSON values embedded in prose. When several candidates exist, those with a `steps` key
/// are preferred; more than one of them is ambiguous.
pub fn extract_json(text: &str) -> Result<Value, ParseError> {
    llm::extract::extract_json(head_chars(text, MAX_PARSE_CHARS), Policy::Unique, |v| {
        v.get("steps").is_some()
    })
    .map_err(|e| match e {
        ExtractError::Empty => ParseError::Empty,
        ExtractError::NoJson => ParseError::NoJson,
        ExtractError::InvalidJson(m) => ParseError::InvalidJson(m),
        ExtractError::Ambiguous(n) => ParseError::Ambiguous(n),
    })
}

/// A step that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidStep {
    /// What the step does (from the model, or derived from the call).
    pub summary: String,
    /// A registry tool this mission may propose.
    pub tool_name: String,
    /// Params valid against the tool's schema.
    pub params: Value,
    /// Why, in the model's words, if it gave one.
    pub rationale: Option<String>,
}

/// The validated steps and the dropped ones, in the order the model proposed them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validated {
    /// Valid steps.
    pub steps: Vec<ValidStep>,
    /// Invalid steps with reasons (at most [`MAX_DROPPED`]).
    pub dropped: Vec<DroppedStep>,
}

/// The tools a mission may propose: the registry's proposable tools that the claim named
/// too, in registry order. A name the claim lists that this build's registry does not know
/// (or does not consider proposable) is left out: both sides must agree.
pub fn offered_tools<'r>(registry: &'r Registry, claimed: &[String]) -> Vec<&'r ToolSpec> {
    let names: BTreeSet<&str> = claimed.iter().map(String::as_str).collect();
    registry
        .proposable()
        .filter(|spec| names.contains(spec.name))
        .collect()
}

/// The offered tools as native tool definitions.
pub fn tool_defs(tools: &[&ToolSpec]) -> Vec<ToolDef> {
    tools
        .iter()
        .map(|t| ToolDef {
            name: t.name.to_string(),
            description: t.description.to_string(),
            input_schema: t.input_schema.clone(),
        })
        .collect()
}

/// Checks proposed steps one by one against the registry and the mission's offered tools.
#[derive(Debug)]
pub struct StepValidator<'r> {
    registry: &'r Registry,
    offered: BTreeSet<String>,
    out: Validated,
    dropped_total: usize,
}

impl<'r> StepValidator<'r> {
    /// A validator for a mission offered `offered`.
    pub fn new(registry: &'r Registry, offered: &[&ToolSpec]) -> Self {
        Self {
            registry,
            offered: offered.iter().map(|t| t.name.to_string()).collect(),
            out: Validated::default(),
            dropped_total: 0,
        }
    }

    /// Validates one raw step of the JSON contract. Accepts `toolName` (or `tool_name`,
    /// `tool`), `params` (or `parameters`, `arguments`, `args`; a JSON string holding an
    /// object is decoded), `summary`, `rationale`.
    pub fn offer_raw(&mut self, raw: &Value) -> Result<usize, String> {
        let Some(obj) = raw.as_object() else {
            return Err(self.drop_step(None, "the step is not a JSON object".into()));
        };
        let tool = ["toolName", "tool_name", "tool"]
            .iter()
            .find_map(|k| obj.get(*k))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(tool) = tool else {
            return Err(self.drop_step(None, "the step names no tool (\"toolName\")".into()));
        };
        let params = ["params", "parameters", "arguments", "args"]
            .iter()
            .find_map(|k| obj.get(*k))
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        let params = match params {
            Value::String(s) => match serde_json::from_str::<Value>(&s) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err(
                        self.drop_step(Some(tool), "\"params\" must be a JSON object".into())
                    );
                }
            },
            Value::Null => Value::Object(Map::new()),
            other => other,
        };
        let text = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .map(|s| one_line(s, MAX_STEP_TEXT_CHARS))
                .filter(|s| !s.is_empty())
        };
        self.offer(tool, params, text("summary"), text("rationale"))
    }

    /// Validates one proposed call. `Ok(index)` is the step's position in the plan; `Err`
    /// is the reason it was dropped (already recorded).
    pub fn offer(
        &mut self,
        tool_name: &str,
        params: Value,
        summary: Option<String>,
        rationale: Option<String>,
    ) -> Result<usize, String> {
        let Some(spec) = self.registry.get(tool_name) else {
            return Err(self.drop_step(
                Some(tool_name),
                format!("unknown tool `{}`", one_line(tool_name, 64)),
            ));
        };
        if !spec.proposable {
            return Err(self.drop_step(
                Some(tool_name),
                format!(
                    "tool `{tool_name}` may not be proposed by a mission (policy {})",
                    spec.policy.as_str()
                ),
            ));
        }
        if !self.offered.contains(tool_name) {
            return Err(self.drop_step(
                Some(tool_name),
                format!("tool `{tool_name}` is not offered to this mission"),
            ));
        }
        if !params.is_object() {
            return Err(self.drop_step(Some(tool_name), "params must be a JSON object".into()));
        }
        if let Err(e) = self.registry.validate(tool_name, &params) {
            return Err(self.drop_step(Some(tool_name), e.to_string()));
        }
        if let Some(i) = self
            .out
            .steps
            .iter()
            .position(|s| s.tool_name == tool_name && s.params == params)
        {
            return Err(self.drop_step(Some(tool_name), format!("duplicate of step {}", i + 1)));
        }
        if self.out.steps.len() >= MAX_STEPS {
            return Err(self.drop_step(
                Some(tool_name),
                format!("the plan already has the maximum of {MAX_STEPS} steps"),
            ));
        }
        let summary = summary.unwrap_or_else(|| describe_call(tool_name, &params));
        self.out.steps.push(ValidStep {
            summary,
            tool_name: tool_name.to_string(),
            params,
            rationale,
        });
        Ok(self.out.steps.len() - 1)
    }

    /// Steps dropped so far, including those past [`MAX_DROPPED`] that were not kept.
    pub fn dropped_total(&self) -> usize {
        self.dropped_total
    }

    /// Valid steps so far.
    pub fn valid_count(&self) -> usize {
        self.out.steps.len()
    }

    /// The result.
    pub fn finish(self) -> Validated {
        self.out
    }

    fn drop_step(&mut self, tool: Option<&str>, reason: String) -> String {
        let reason = truncate_chars(&reason, MAX_REASON_CHARS);
        self.dropped_total += 1;
        if self.out.dropped.len() < MAX_DROPPED {
            self.out.dropped.push(DroppedStep {
                tool_name: tool.map(|t| truncate_chars(t, 64)),
                reason: reason.clone(),
            });
        }
        reason
    }
}

/// Validates every raw step of a parsed plan.
pub fn validate_steps(registry: &Registry, offered: &[&ToolSpec], raw: &[Value]) -> Validated {
    let mut v = StepValidator::new(registry, offered);
    for step in raw {
        // The reason is recorded on the validator; nothing else to do with it here.
        let _ = v.offer_raw(step);
    }
    v.finish()
}

/// A summary for a step the model did not describe: the tool and its most telling param.
pub fn describe_call(tool_name: &str, params: &Value) -> String {
    let hint = ["title", "name", "content", "id"]
        .iter()
        .find_map(|k| params.get(*k).and_then(Value::as_str))
        .map(|v| one_line(v, 80));
    match hint {
        Some(h) => format!("{tool_name}: {h}"),
        None => tool_name.to_string(),
    }
}

/// What the tool-calling loop produced.
#[derive(Debug)]
pub struct LoopOutcome {
    /// Every call, validated.
    pub validated: Validated,
    /// Calls the model made, valid or not.
    pub calls: usize,
    /// Model turns that answered.
    pub rounds: u32,
    /// Text of the last answer (the plan summary, or a JSON-contract fallback).
    pub final_text: Option<String>,
    /// How the last answer stopped.
    pub last_stop: Option<StopReason>,
    /// Tokens of every round.
    pub usage: TokenUsage,
    /// An LLM error that ended the loop after at least one answered round (the calls made
    /// until then are kept).
    pub late_error: Option<LlmError>,
}

/// A failed first round: no answer at all.
#[derive(Debug)]
pub struct LoopFailure {
    /// Why.
    pub error: LlmError,
}

/// Runs the native tool-calling loop. `request` holds the prompt and the offered tools;
/// `validator` decides each call; `budget_left` (billed-equivalent tokens, see
/// [`TokenUsage::billed_equivalent`]) stops the loop early.
pub async fn run_tool_loop(
    llm: &Llm,
    mut request: ChatRequest,
    mut validator: StepValidator<'_>,
    max_rounds: u32,
    budget_left: Option<u64>,
) -> Result<LoopOutcome, LoopFailure> {
    let mut usage = TokenUsage::default();
    let mut calls = 0;
    let mut rounds = 0;
    let mut final_text = None;
    let mut last_stop = None;
    let mut late_error = None;
    while rounds < max_rounds.max(1) {
        let response: ChatResponse = match llm.chat(&request).await {
            Ok(r) => r,
            Err(error) if rounds == 0 => return Err(LoopFailure { error }),
            Err(error) => {
                late_error = Some(error);
                break;
            }
        };
        rounds += 1;
        usage.add(response.usage);
        final_text = response.text.clone().filter(|t| !t.trim().is_empty());
        last_stop = Some(response.stop.clone());
        if response.tool_calls.is_empty() {
            break;
        }
        let rationale = final_text
            .as_deref()
            .map(|t| one_line(t, MAX_STEP_TEXT_CHARS));
        let mut results = Vec::with_capacity(response.tool_calls.len());
        for call in &response.tool_calls {
            calls += 1;
            let verdict = match &call.arguments_error {
                Some(e) => Err(validator.drop_step(
                    Some(&call.name),
                    format!("the call's arguments are not valid JSON: {e}"),
                )),
                None => {
                    validator.offer(&call.name, call.arguments.clone(), None, rationale.clone())
                }
            };
            let (content, is_error) = match verdict {
                Ok(i) => (
                    json!({"success": true, "step": i + 1, "message": RECORDED_MESSAGE}),
                    false,
                ),
                Err(reason) => (
                    json!({"success": false, "message": format!("not recorded: {reason}")}),
                    true,
                ),
            };
            results.push(ToolResult {
                call_id: call.id.clone(),
                content: content.to_string(),
                is_error,
            });
        }
        // The text of a turn with calls is their rationale, not the plan's summary.
        final_text = None;
        let spent_out = budget_left.is_some_and(|left| usage.billed_equivalent() >= left);
        if rounds >= max_rounds || spent_out || validator.valid_count() >= MAX_STEPS {
            break;
        }
        request.messages.push(Message::assistant_from(&response));
        request.messages.push(Message::ToolResults(results));
    }
    Ok(LoopOutcome {
        validated: validator.finish(),
        calls,
        rounds,
        final_text,
        last_stop,
        usage,
        late_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offered() -> Vec<&'static ToolSpec> {
        offered_tools(
            Registry::global(),
            &[
                "todo_create".into(),
                "notes_create".into(),
                "todo_complete".into(),
            ],
        )
    }

    #[test]
    fn parses_bare_json() {
        let p = parse_plan(r#" {"summary":"S","steps":[{"toolName":"todo_create"}]} "#).unwrap();
        assert_eq!(p.summary.as_deref(), Some("S"));
        assert_eq!(p.steps.len(), 1);
    }

    #[test]
    fn parses_fenced_json_with_prose() {
        let text = "Here is the plan:\n```json\n{\"summary\":\"S\",\"steps\":[]}\n```\nHope it helps {not json}.";
        let p = parse_plan(text).unwrap();
        assert_eq!(p.summary.as_deref(), Some("S"));
        assert!(p.steps.is_empty());
        let unclosed = "```JSON\n{\"steps\":[{\"toolName\":\"x\"}]}";
        assert_eq!(parse_plan(unclosed).unwrap().steps.len(), 1);
    }

    #[test]
    fn parses_json_inside_prose() {
        let text = "Sure! {\"summary\": \"Plan\", \"steps\": [{\"toolName\": \"todo_create\", \"params\": {\"title\": \"a}b\"}}]} Let me know.";
        let p = parse_plan(text).unwrap();
        assert_eq!(p.steps[0]["params"]["title"], "a}b");
    }

    #[test]
    fn a_bare_array_is_the_steps() {
        let p = parse_plan(r#"[{"toolName":"todo_create","params":{"title":"x"}}]"#).unwrap();
        assert_eq!(p.summary, None);
        assert_eq!(p.steps.len(), 1);
    }

    #[test]
    fn refuses_what_is_not_one_plan() {
        assert_eq!(parse_plan("   \n"), Err(ParseError::Empty));
        assert_eq!(
            parse_plan("I cannot help with that."),
            Err(ParseError::NoJson)
        );
        assert!(matches!(
            parse_plan("{\"summary\": \"x\", \"steps\": [}"),
            Err(ParseError::InvalidJson(_))
        ));
        assert_eq!(
            parse_plan(r#"{"steps":[]} and also {"steps":[]}"#),
            Err(ParseError::Ambiguous(2))
        );
        assert_eq!(
            parse_plan(r#"{"summary":"x"}"#),
            Err(ParseError::MissingSteps)
        );
        assert_eq!(
            parse_plan(r#"{"summary":"x","steps":"none"}"#),
            Err(ParseError::MissingSteps)
        );
        // A plan object next to unrelated JSON is still one plan.
        let p = parse_plan(r#"Context {"a":1}. Plan: {"summary":"s","steps":[]}"#).unwrap();
        assert_eq!(p.summary.as_deref(), Some("s"));
    }

    #[test]
    fn unknown_tools_and_bad_params_are_dropped_with_reasons() {
        let raw: Vec<Value> = serde_json::from_str(
            r#"[
              {"summary":"ok","toolName":"todo_create","params":{"title":"Stretch"},"rationale":"r"},
              {"toolName":"todo_fly","params":{}},
              {"toolName":"todo_delete","params":{"id":"t1"}},
              {"toolName":"mood_log","params":{"level":5,"emotion":"calm"}},
              {"toolName":"todo_create","params":{"title":""}},
              {"toolName":"todo_create","params":{"title":"x","colour":"red"}},
              {"toolName":"todo_create","params":"{\"title\":\"From a string\"}"},
              {"toolName":"todo_create","params":[1]},
              {"params":{}},
              "just text",
              {"summary":"ok","toolName":"todo_create","params":{"title":"Stretch"}}
            ]"#,
        )
        .unwrap();
        let v = validate_steps(Registry::global(), &offered(), &raw);
        let names: Vec<&str> = v.steps.iter().map(|s| s.tool_name.as_str()).collect();
        assert_eq!(names, ["todo_create", "todo_create"]);
        assert_eq!(v.steps[0].rationale.as_deref(), Some("r"));
        assert_eq!(v.steps[1].summary, "todo_create: From a string");
        let reasons: Vec<&str> = v.dropped.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(reasons.len(), 9, "{reasons:?}");
        assert!(reasons[0].contains("unknown tool `todo_fly`"));
        assert!(reasons[1].contains("may not be proposed"));
        assert!(reasons[2].contains("not offered to this mission"));
        assert!(reasons[3].contains("/title"), "{}", reasons[3]);
        assert!(reasons[4].contains("colour"), "{}", reasons[4]);
        assert!(reasons[5].contains("JSON object"));
        assert!(reasons[6].contains("names no tool"));
        assert!(reasons[7].contains("not a JSON object"));
        assert!(reasons[8].contains("duplicate of step 1"));
        assert_eq!(v.dropped[0].tool_name.as_deref(), Some("todo_fly"));
        assert_eq!(v.dropped[6].tool_name, None);
    }

    #[test]
    fn plans_are_capped_at_max_steps() {
        let raw: Vec<Value> = (0..8)
            .map(|i| json!({"toolName": "todo_create", "params": {"title": format!("t{i}")}}))
            .collect();
        let v = validate_steps(Registry::global(), &offered(), &raw);
        assert_eq!(v.steps.len(), MAX_STEPS);
        assert_eq!(v.dropped.len(), 8 - MAX_STEPS);
        assert!(v.dropped[0].reason.contains("maximum"));
    }

    #[test]
    fn offered_tools_are_the_intersection() {
        let names: Vec<&str> = offered_tools(
            Registry::global(),
            &[
                "todo_delete".into(),
                "todo_create".into(),
                "nope".into(),
                "todo_list".into(),
            ],
        )
        .iter()
        .map(|t| t.name)
        .collect();
        assert_eq!(names, ["todo_create"]);
        let defs = tool_defs(&offered());
        assert_eq!(defs.len(), 3);
        assert!(defs.iter().all(|d| llm::is_valid_tool_name(&d.name)));
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(s in "\\PC{0,400}") {
            let _ = parse_plan(&s);
        }

        #[test]
        fn the_parser_never_panics_on_jsonish_text(
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
            if let Ok(plan) = parse_plan(&text) {
                let v = validate_steps(Registry::global(), &offered(), &plan.steps);
                prop_assert!(v.steps.len() <= MAX_STEPS);
            }
        }

        #[test]
        fn any_valid_plan_survives_wrapping(title in "[a-zA-Z ]{1,40}", prose in "[a-zA-Z .!]{0,40}") {
            let plan = json!({"summary": "s", "steps": [{"toolName": "todo_create", "params": {"title": title}}]});
            let text = format!("{prose}\n```json\n{plan}\n```\n{prose}");
            let parsed = parse_plan(&text).unwrap();
            prop_assert_eq!(parsed.steps.len(), 1);
        }
    }

    #[test]
    fn deep_nesting_and_many_braces_are_bounded() {
        let deep = "[".repeat(100_000);
        assert!(parse_plan(&deep).is_err());
        let braces = "{".repeat(300_000);
        assert!(parse_plan(&braces).is_err());
    }
}
