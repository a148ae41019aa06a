//! The `sim` provider: a deterministic, seeded, offline stand-in for a model.
//!
//! Rules:
//! - Same provider seed + same request ⇒ same response, on every machine (own RNG, no
//!   clock unless `meta.now` is unset and a date is needed).
//! - It is a simulated player for demos and CI, never presented as a language model:
//!   `provider_name()` is `"sim"` and the services say so in logs and /health.
//! - Behaviour by [`Purpose`]:
//!   - `Day`: for the first N assistant turns (N in 3..=8, from the seed) one tool call
//!     each: module by `module_mix`, a tool of it (create/add/log early, list/search
//!     later), arguments from the tool's schema; then a short text summary.
//!   - `Rating`: strict JSON `{"ratings":[{module, rating, notes}]}` for
//!     `modules_to_rate`; ratings from the seed, lowered by tool errors seen in the
//!     conversation.
//!   - `Plan`: with tools, 1–3 calls, then (after their results) a summary; without tools,
//!     the JSON contract `{summary, steps:[{summary, toolName, params, rationale}]}`.
//! - Usage is reported as characters / 4 so token budgets can be exercised.

mod rng;
mod schema;
mod words;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use types::tick::TokenUsage;

use crate::model::{
    ChatRequest, ChatResponse, Message, Purpose, RequestMeta, StopReason, ToolCall, ToolDef,
};
use rng::{SimRng, fnv1a, mix};
use schema::{Filler, requires_id};
use words::{Lang, RATING_NOTES};

/// The offline simulator.
#[derive(Debug, Clone)]
pub(crate) struct SimProvider {
    pub(crate) seed: u64,
    pub(crate) model: String,
}

/// What happened to one earlier tool call.
struct Outcome {
    tool: String,
    module: Option<String>,
    is_error: bool,
    ids: Vec<String>,
}

impl SimProvider {
    pub(crate) fn chat(&self, req: &ChatRequest) -> ChatResponse {
        let base = mix(&[self.seed, req.meta.seed]);
        let turn = req
            .messages
            .iter()
            .filter(|m| matches!(m, Message::Assistant { .. }))
            .count() as u64;
        let ctx = Ctx {
            req,
            meta: &req.meta,
            base,
            turn,
            lang: Lang::from_locale(&req.meta.locale),
            now: req.meta.now.unwrap_or_else(Utc::now),
            history: history(req),
            prompt_ids: prompt_ids(req),
        };
        let (text, tool_calls) = match req.meta.purpose {
            Purpose::Day => ctx.day(),
            Purpose::Rating => (Some(ctx.rating()), Vec::new()),
            Purpose::Plan => ctx.plan(),
        };
        let stop = if tool_calls.is_empty() {
            StopReason::EndTurn
        } else {
            StopReason::ToolUse
        };
        let usage = TokenUsage {
            input: tokens(input_chars(req)),
            output: tokens(output_chars(text.as_deref(), &tool_calls)).max(1),
            ..Default::default()
        };
        ChatResponse {
            text,
            tool_calls,
            stop,
            usage,
            model: self.model.clone(),
        }
    }
}

struct Ctx<'a> {
    req: &'a ChatRequest,
    meta: &'a RequestMeta,
    base: u64,
    turn: u64,
    lang: Lang,
    now: DateTime<Utc>,
    history: Vec<Outcome>,
    /// UUIDs quoted in the system prompt or user messages, in order of appearance.
    prompt_ids: Vec<String>,
}

impl Ctx<'_> {
    fn rng(&self, label: &str) -> SimRng {
        SimRng::new(mix(&[self.base, fnv1a(label), self.turn]))
    }

    fn de(&self) -> bool {
        self.lang == Lang::De
    }

    fn day(&self) -> (Option<String>, Vec<ToolCall>) {
        // N depends on the seed only, so it is the same on every turn of the run.
        let turns = 3 + SimRng::new(mix(&[self.base, fnv1a("day-turns")])).below(6);
        if self.req.tools.is_empty() || self.turn >= turns {
            return (Some(self.day_summary()), Vec::new());
        }
        let mut rng = self.rng("day");
        let early = self.turn * 2 < turns;
        let tools: Vec<&ToolDef> = self.req.tools.iter().collect();
        let call = self
            .choose_tool(&mut rng, &tools, early)
            .map(|tool| self.call(&mut rng, tool));
        (None, call.into_iter().collect())
    }

    fn day_summary(&self) -> String {
        let n = self.history.len();
        let mut used: Vec<&str> = Vec::new();
        for o in &self.history {
            if !used.contains(&o.tool.as_str()) {
                used.push(&o.tool);
            }
        }
        let errors = self.history.iter().filter(|o| o.is_error).count();
        let mut text = match (self.de(), n) {
            (true, 0) => "Heute bin ich nicht dazu gekommen, die App zu nutzen.".to_string(),
            (false, 0) => "I didn't get to use the app today.".to_string(),
            (true, _) => format!(
                "Das war's für heute. Ich habe die App {n}-mal genutzt ({}).",
                used.join(", ")
            ),
            (false, _) => format!(
                "That's it for today. I used the app {n} times ({}).",
                used.join(", ")
            ),
        };
        if errors > 0 {
            text.push_str(&if self.de() {
                format!(" Manches hat nicht geklappt ({errors} Fehler).")
            } else {
                format!(" Some things did not work ({errors} errors).")
            });
        }
        text
    }

    fn rating(&self) -> String {
        let mut modules: Vec<&str> = Vec::new();
        for m in &self.meta.modules_to_rate {
            if !modules.contains(&m.as_str()) {
                modules.push(m);
            }
        }
        let errors = self.errors_by_module(&modules);
        let ratings: Vec<Value> = modules
            .iter()
            .map(|module| {
                // Not mixed with the turn: a rating is one fresh conversation.
                let mut rng = SimRng::new(mix(&[self.base, fnv1a("rating"), fnv1a(module)]));
                let base = rng
                    .weighted(&[1.0, 3.0, 4.0, 2.0])
                    .and_then(|i| [2u8, 3, 4, 5].get(i).copied())
                    .unwrap_or(4);
                let penalty = match errors.get(module).copied().unwrap_or(0) {
                    0 => 0,
                    1 | 2 => 1,
                    _ => 2,
                };
                let rating = base.saturating_sub(penalty).max(1);
                let notes = self
                    .lang
                    .bank(&RATING_NOTES)
                    .get(usize::from(rating - 1))
                    .copied()
                    .unwrap_or("");
                json!({ "module": module, "rating": rating, "notes": notes })
            })
            .collect();
        json!({ "ratings": ratings }).to_string()
    }

    /// Tool errors per module: structured results in this conversation, plus lines of
    /// the prompt that mention the module next to an error word (the rating turn gets
    /// "what happened today" as text).
    fn errors_by_module<'m>(&self, modules: &[&'m str]) -> HashMap<&'m str, usize> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for o in self.history.iter().filter(|o| o.is_error) {
            if let Some(m) = modules.iter().find(|m| o.module.as_deref() == Some(**m)) {
                *counts.entry(*m).or_default() += 1;
            }
        }
        const MARKERS: [&str; 6] = [
            "error",
            "fehler",
            "failed",
            "fehlgeschlagen",
            "iserror",
            "nicht geklappt",
        ];
        for msg in &self.req.messages {
            let Message::User { text } = msg else {
                continue;
            };
            for line in text.lines() {
                let line = line.to_lowercase();
                if !MARKERS.iter().any(|k| line.contains(k)) {
                    continue;
                }
                for m in modules {
                    if line.contains(&m.to_lowercase()) {
                        *counts.entry(*m).or_default() += 1;
                    }
                }
            }
        }
        counts
    }

    fn plan(&self) -> (Option<String>, Vec<ToolCall>) {
        if self.req.tools.is_empty() {
            return (Some(self.plan_json()), Vec::new());
        }
        if self.turn > 0 {
            return (Some(self.plan_summary()), Vec::new());
        }
        let mut rng = self.rng("plan");
        let count = 1 + rng.below(3);
        let mut remaining: Vec<&ToolDef> = self.req.tools.iter().collect();
        let mut calls = Vec::new();
        for _ in 0..count {
            let Some(tool) = self.choose_tool(&mut rng, &remaining, true) else {
                break;
            };
            calls.push(self.call(&mut rng, tool));
            remaining.retain(|t| t.name != tool.name);
        }
        (None, calls)
    }

    fn plan_summary(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for msg in &self.req.messages {
            if let Message::Assistant { tool_calls, .. } = msg {
                names.extend(tool_calls.iter().map(|c| c.name.as_str()));
            }
        }
        if self.de() {
            format!(
                "Plan: {} Schritt(e) vorgeschlagen ({}). Jeder Schritt bringt das Ziel ein Stück voran.",
                names.len(),
                names.join(", ")
            )
        } else {
            format!(
                "Plan: {} step(s) proposed ({}). Each step moves the objective forward.",
                names.len(),
                names.join(", ")
            )
        }
    }

    fn plan_json(&self) -> String {
        let mut rng = self.rng("plan-json");
        let mut remaining: Vec<(&String, &String)> = self.meta.tool_modules.iter().collect();
        let count = 1 + rng.below(3);
        let mut steps = Vec::new();
        for _ in 0..count {
            let weights: Vec<f64> = remaining
                .iter()
                .map(|(name, module)| {
                    let w = self.module_weight(module).unwrap_or(1.0);
                    let needs_id = self.meta.tool_schemas.get(*name).is_some_and(requires_id);
                    if needs_id && self.prompt_ids.is_empty() {
                        w * 0.1
                    } else {
                        w
                    }
                })
                .collect();
            let weights = if weights.iter().all(|w| *w <= 0.0) {
                vec![1.0; remaining.len()]
            } else {
                weights
            };
            let Some(i) = rng.weighted(&weights) else {
                break;
            };
            let (name, module) = remaining.remove(i);
            let params = match self.meta.tool_schemas.get(name) {
                Some(schema) => Filler {
                    rng: &mut rng,
                    root: schema,
                    lang: self.lang,
                    module: Some(module),
                    now: self.now,
                    known_ids: &self.prompt_ids,
                }
                .fill_arguments(),
                None => json!({}),
            };
            let (summary, rationale) = if self.de() {
                (
                    format!("{name} ausführen ({module})"),
                    "Bringt das Ziel mit einer kleinen, prüfbaren Änderung voran.",
                )
            } else {
                (
                    format!("Run {name} ({module})"),
                    "Moves the objective forward with a small, reviewable change.",
                )
            };
            steps.push(json!({
                "summary": summary,
                "toolName": name,
                "params": params,
                "rationale": rationale,
            }));
        }
        let summary = if self.de() {
            format!("{} Schritt(e) für diese Iteration.", steps.len())
        } else {
            format!("{} step(s) for this iteration.", steps.len())
        };
        json!({ "summary": summary, "steps": steps }).to_string()
    }

    /// `module_mix` weight of a module, when it has a usable one.
    fn module_weight(&self, module: &str) -> Option<f64> {
        self.meta
            .module_mix
            .get(module)
            .copied()
            .filter(|w| w.is_finite() && *w > 0.0)
    }

    /// A module by `module_mix` among modules that have tools, then a tool of it; any
    /// tool when no tool has a known module.
    fn choose_tool<'t>(
        &self,
        rng: &mut SimRng,
        tools: &[&'t ToolDef],
        early: bool,
    ) -> Option<&'t ToolDef> {
        let mut by_module: BTreeMap<&str, Vec<&'t ToolDef>> = BTreeMap::new();
        for t in tools {
            if let Some(m) = self.meta.tool_modules.get(&t.name) {
                by_module.entry(m.as_str()).or_default().push(t);
            }
        }
        let candidates: Vec<&'t ToolDef> = if by_module.is_empty() {
            tools.to_vec()
        } else {
            let modules: Vec<&str> = by_module.keys().copied().collect();
            let mut weights: Vec<f64> = modules
                .iter()
                .map(|m| self.module_weight(m).unwrap_or(0.0))
                .collect();
            if weights.iter().all(|w| *w <= 0.0) {
                weights = vec![1.0; modules.len()];
            }
            let i = rng.weighted(&weights)?;
            by_module.remove(modules.get(i)?)?
        };
        let weights: Vec<f64> = candidates
            .iter()
            .map(|t| self.tool_weight(t, early))
            .collect();
        let i = rng.weighted(&weights).unwrap_or(0);
        candidates.get(i).copied()
    }

    fn tool_weight(&self, tool: &ToolDef, early: bool) -> f64 {
        let name = tool.name.to_ascii_lowercase();
        let has = |verbs: &[&str]| verbs.iter().any(|v| name.contains(v));
        let creates = has(&[
            "create", "add", "log", "new", "record", "write", "track", "save",
        ]);
        let reads = has(&[
            "list", "search", "get", "find", "read", "show", "view", "query",
        ]);
        let mut w = match (creates, reads, early) {
            (true, _, true) => 4.0,
            (true, _, false) => 1.5,
            (false, true, true) => 1.0,
            (false, true, false) => 3.0,
            (false, false, _) => 1.5,
        };
        if has(&["delete", "remove", "archive", "destroy", "clear"]) {
            // A plausible user rarely deletes things.
            w *= 0.15;
        }
        if requires_id(&tool.input_schema) {
            // Without a fresh id this call can only fail or repeat itself.
            let used = self.ids_used_by(&tool.name);
            if self
                .known_ids(tool)
                .first()
                .is_none_or(|id| used.contains(id))
            {
                w *= 0.1;
            }
        }
        w
    }

    /// Ids this tool may reference, best first: ids from earlier results of the tool's
    /// own module (newest first, ones this tool already used last), then ids quoted in
    /// the prompt (a mission's input records). Results of other modules are never used:
    /// completing a todo with a note's id only produces errors.
    fn known_ids(&self, tool: &ToolDef) -> Vec<String> {
        let module = self.meta.tool_modules.get(&tool.name);
        let mut fresh = Vec::new();
        for o in self.history.iter().rev().filter(|o| !o.is_error) {
            if module.is_none() || o.module.as_ref() == module {
                fresh.extend(o.ids.iter().cloned());
            }
        }
        fresh.extend(self.prompt_ids.iter().cloned());
        let mut seen = HashSet::new();
        fresh.retain(|id| seen.insert(id.clone()));
        let used = self.ids_used_by(&tool.name);
        let (unused, reused): (Vec<String>, Vec<String>) =
            fresh.into_iter().partition(|id| !used.contains(id));
        unused.into_iter().chain(reused).collect()
    }

    /// String values of earlier calls of `tool` (to avoid completing one todo twice).
    fn ids_used_by(&self, tool: &str) -> HashSet<String> {
        let mut used = HashSet::new();
        for msg in &self.req.messages {
            if let Message::Assistant { tool_calls, .. } = msg {
                for c in tool_calls.iter().filter(|c| c.name == tool) {
                    if let Some(args) = c.arguments.as_object() {
                        used.extend(args.values().filter_map(Value::as_str).map(str::to_string));
                    }
                }
            }
        }
        used
    }

    fn call(&self, rng: &mut SimRng, tool: &ToolDef) -> ToolCall {
        let module = self.meta.tool_modules.get(&tool.name).map(String::as_str);
        let ids = self.known_ids(tool);
        let mut filler = Filler {
            rng: &mut *rng,
            root: &tool.input_schema,
            lang: self.lang,
            module,
            now: self.now,
            known_ids: &ids,
        };
        let arguments = filler.fill_arguments();
        ToolCall {
            id: format!("toolu_sim_{:016x}", rng.next_u64()),
            name: tool.name.clone(),
            arguments,
            arguments_error: None,
        }
    }
}

/// Every earlier tool call with its result, in order.
fn history(req: &ChatRequest) -> Vec<Outcome> {
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::new();
    for msg in &req.messages {
        match msg {
            Message::Assistant { tool_calls, .. } => {
                for c in tool_calls {
                    names.insert(&c.id, &c.name);
                }
            }
            Message::ToolResults(results) => {
                for r in results {
                    let tool = names.get(r.call_id.as_str()).copied().unwrap_or("");
                    out.push(Outcome {
                        tool: tool.to_string(),
                        module: req.meta.tool_modules.get(tool).cloned(),
                        is_error: r.is_error,
                        ids: extract_ids(&r.content),
                    });
                }
            }
            Message::User { .. } => {}
        }
    }
    out
}

/// UUIDs quoted in the system prompt and user messages, deduplicated, in order.
fn prompt_ids(req: &ChatRequest) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let texts =
        std::iter::once(req.system.as_str()).chain(req.messages.iter().filter_map(|m| match m {
            Message::User { text } => Some(text.as_str()),
            _ => None,
        }));
    for text in texts {
        for id in find_uuids(text) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

/// Hyphenated UUIDs in `text`.
fn find_uuids(text: &str) -> Vec<String> {
    const LEN: usize = 36;
    let bytes = text.as_bytes();
    let is_part = |b: u8| b.is_ascii_hexdigit() || b == b'-';
    let mut out = Vec::new();
    let mut i = 0;
    while i + LEN <= bytes.len() {
        let window = &bytes[i..i + LEN];
        let shaped = window.iter().enumerate().all(|(k, b)| {
            if matches!(k, 8 | 13 | 18 | 23) {
                *b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
        let bounded =
            (i == 0 || !is_part(bytes[i - 1])) && bytes.get(i + LEN).is_none_or(|b| !is_part(*b));
        if shaped && bounded {
            // All-ASCII window, so these are char boundaries.
            if let Some(s) = text.get(i..i + LEN) {
                out.push(s.to_ascii_lowercase());
            }
            i += LEN;
        } else {
            i += 1;
        }
    }
    out
}

/// `"id"` values in a tool result: from its JSON when it parses, else by scanning text.
fn extract_ids(content: &str) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("id", Value::String(s)) if !s.is_empty() => out.push(s.clone()),
                        ("id", Value::Number(n)) => out.push(n.to_string()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            // MCP results often wrap JSON in a text field.
            Value::String(s) if s.trim_start().starts_with(['{', '[']) => {
                if let Ok(inner) = serde_json::from_str::<Value>(s) {
                    walk(&inner, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(content) {
        walk(&v, &mut out);
        return out;
    }
    let mut rest = content;
    while let Some(pos) = rest.find("\"id\"") {
        rest = &rest[pos + 4..];
        let after = rest.trim_start();
        let Some(after) = after.strip_prefix(':') else {
            continue;
        };
        let Some(value) = after.trim_start().strip_prefix('"') else {
            continue;
        };
        if let Some(end) = value.find('"')
            && end > 0
        {
            out.push(value[..end].to_string());
        }
    }
    out
}

fn tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

fn input_chars(req: &ChatRequest) -> usize {
    let mut n = req.shared_system.chars().count() + req.system.chars().count();
    for msg in &req.messages {
        n += match msg {
            Message::User { text } => text.chars().count(),
            Message::Assistant { text, tool_calls } => {
                text.as_deref().map_or(0, |t| t.chars().count())
                    + tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.to_string().len())
                        .sum::<usize>()
            }
            Message::ToolResults(results) => {
                results.iter().map(|r| r.content.chars().count()).sum()
            }
        };
    }
    n + req
        .tools
        .iter()
        .map(|t| t.name.len() + t.description.chars().count() + t.input_schema.to_string().len())
        .sum::<usize>()
}

fn output_chars(text: Option<&str>, calls: &[ToolCall]) -> usize {
    text.map_or(0, |t| t.chars().count())
        + calls
            .iter()
            .map(|c| c.name.len() + c.arguments.to_string().len())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_in_json_and_text() {
        assert_eq!(
            extract_ids(r#"{"id":"a","items":[{"id":"b"},{"id":7}],"x":{"ownerId":"no"}}"#),
            vec!["a", "b", "7"]
        );
        assert_eq!(
            extract_ids(r#"{"content":[{"type":"text","text":"{\"id\":\"c\"}"}]}"#),
            vec!["c"]
        );
        assert_eq!(
            extract_ids(r#"Created: {"id": "d", "title": "x"} and "id":"e""#),
            vec!["d", "e"]
        );
        assert!(extract_ids("nothing here").is_empty());
    }

    #[test]
    fn uuids_are_found_in_prompts() {
        let a = "7a7c1c61-264d-41e4-b979-983afdf9e0be";
        let text = format!("Input: notes/{a}, ünïcode {}, x{a}0", a.to_uppercase());
        assert_eq!(find_uuids(&text), vec![a.to_string(), a.to_string()]);
        assert!(find_uuids("7a7c1c61-264d-41e4-b979").is_empty());
    }

    #[test]
    fn token_estimate_is_chars_over_four() {
        assert_eq!(tokens(0), 0);
        assert_eq!(tokens(1), 1);
        assert_eq!(tokens(8), 2);
        assert_eq!(tokens(9), 3);
    }
}
