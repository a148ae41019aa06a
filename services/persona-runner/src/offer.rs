//! What the model is offered on a persona's day: the tools scoped to the persona, the
//! shared system prompt, and the first request built from them; plus the token estimate
//! that keeps that request inside a small context window.
//!
//! Rules:
//! - `PERSONA_TOOLS=mix` (default): only the tools of modules with weight > 0 in the
//!   persona's module mix; `all`: every tool MCP lists. A mix that matches no tool falls
//!   back to all of them (with a warning), so a day never starts without tools.
//! - Tools are offered in one order (by name) and the shared system prompt holds
//!   nothing volatile, so the prefix tools + shared system is byte-identical for every
//!   day of every persona with the same tools (what the prompt cache keys on). The date,
//!   the favourites and the digest go into the user message.
//! - [`estimate_tokens`] is deliberately pessimistic: ⌈UTF-8 bytes / 3⌉ of everything
//!   sent (tool JSON included) plus a per-message and per-tool overhead for the chat
//!   template; real tokenizers average 3.5–4.5 bytes per token on this text.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use llm::{ChatRequest, Message, ToolDef};

use crate::prompts::{self, Lang};

/// Template overhead per message (role markers, separators), in tokens.
const MESSAGE_OVERHEAD: u64 = 8;
/// Template overhead per tool (the wrapper around name, description, schema), in tokens.
const TOOL_OVERHEAD: u64 = 12;

/// Which tools a persona is offered (`PERSONA_TOOLS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolScope {
    /// The tools of the modules in the persona's module mix (weight > 0).
    #[default]
    Mix,
    /// Every tool MCP lists.
    All,
}

impl ToolScope {
    /// `mix` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mix => "mix",
            Self::All => "all",
        }
    }
}

impl FromStr for ToolScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mix" => Ok(Self::Mix),
            "all" => Ok(Self::All),
            other => Err(format!("must be mix or all, not {other:?}")),
        }
    }
}

/// The tools offered to a persona with `mix`, sorted by name. `modules` maps tool name →
/// module (registry metadata).
pub fn scoped_tools(
    scope: ToolScope,
    tools: &[ToolDef],
    modules: &BTreeMap<String, String>,
    mix: &BTreeMap<String, f64>,
) -> Vec<ToolDef> {
    let mut offered: Vec<ToolDef> = match scope {
        ToolScope::All => tools.to_vec(),
        ToolScope::Mix => tools
            .iter()
            .filter(|t| {
                modules
                    .get(&t.name)
                    .and_then(|m| mix.get(m))
                    .is_some_and(|w| *w > 0.0)
            })
            .cloned()
            .collect(),
    };
    if offered.is_empty() && !tools.is_empty() {
        tracing::warn!(
            modules = ?mix.keys().collect::<Vec<_>>(),
            "the module mix matches no tool; offering all tools"
        );
        offered = tools.to_vec();
    }
    offered.sort_by(|a, b| a.name.cmp(&b.name));
    offered
}

/// The first request of a persona's day (before any tool call).
pub fn day_request(
    lang: Lang,
    system_prompt: &str,
    module_mix: &BTreeMap<String, f64>,
    tools: Vec<ToolDef>,
    digest: &str,
    now: DateTime<Utc>,
    max_tokens: u32,
) -> ChatRequest {
    let mut req = ChatRequest::new(
        system_prompt.to_owned(),
        prompts::day_prompt(lang, now, module_mix, digest),
        max_tokens,
    );
    req.shared_system = prompts::shared_system(lang).to_owned();
    req.tools = tools;
    req
}

/// A pessimistic estimate of the prompt tokens of `req` (see the module rules).
pub fn estimate_tokens(req: &ChatRequest) -> u64 {
    let bytes = |s: &str| u64::try_from(s.len()).unwrap_or(u64::MAX);
    let mut total = bytes(&req.shared_system) + bytes(&req.system);
    let mut messages = 1u64;
    for m in &req.messages {
        messages += 1;
        total += match m {
            Message::User { text } => bytes(text),
            Message::Assistant { text, tool_calls } => {
                text.as_deref().map_or(0, bytes)
                    + tool_calls
                        .iter()
                        .map(|c| bytes(&c.name) + bytes(&c.arguments.to_string()) + 16)
                        .sum::<u64>()
            }
            Message::ToolResults(results) => results
                .iter()
                .map(|r| bytes(&r.content) + bytes(&r.call_id))
                .sum(),
        };
    }
    let tools = u64::try_from(req.tools.len()).unwrap_or(u64::MAX);
    for t in &req.tools {
        total += bytes(&t.name) + bytes(&t.description) + bytes(&t.input_schema.to_string());
    }
    total.div_ceil(3) + messages * MESSAGE_OVERHEAD + tools * TOOL_OVERHEAD
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use types::personas::UpsertPersonasRequest;

    use super::*;

    /// The context window of a default llama.cpp / Ollama setup.
    const SMALL_CONTEXT: u64 = 8_192;
    const MAX_TOKENS: u32 = 1_024;

    /// The tools exactly as auth-internal's MCP endpoint lists them.
    fn mcp_tools() -> (Vec<ToolDef>, BTreeMap<String, String>) {
        let reg = tools::Registry::global();
        let defs: Vec<ToolDef> = reg
            .exposed()
            .map(|s| ToolDef {
                name: s.name.to_owned(),
                description: s.description.to_owned(),
                input_schema: s.input_schema.clone(),
            })
            .collect();
        let modules = reg
            .exposed()
            .map(|s| (s.name.to_owned(), s.module.to_owned()))
            .collect();
        (defs, modules)
    }

    fn catalogue() -> UpsertPersonasRequest {
        serde_json::from_str(include_str!("../../../data/personas.json")).unwrap()
    }

    /// The longest digest a day can carry (prompts::MAX_DIGEST chars, with umlauts).
    fn worst_digest() -> String {
        "Bewertung für Module: täglich genutzt. "
            .chars()
            .cycle()
            .take(1200)
            .collect()
    }

    #[test]
    fn every_catalogue_persona_first_request_fits_an_8k_context() {
        let (all, modules) = mcp_tools();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let digest = worst_digest();
        let catalogue = catalogue();
        assert!(catalogue.personas.len() >= 10);
        for p in &catalogue.personas {
            let lang = Lang::from_locale(p.locale.as_deref().unwrap_or("de"));
            let tools = scoped_tools(ToolScope::Mix, &all, &modules, &p.module_mix);
            assert!(!tools.is_empty(), "{}", p.slug);
            let req = day_request(
                lang,
                &p.system_prompt,
                &p.module_mix,
                tools,
                &digest,
                now,
                MAX_TOKENS,
            );
            let prompt = estimate_tokens(&req);
            println!(
                "{}: {} tools, ~{prompt} prompt tokens",
                p.slug,
                req.tools.len()
            );
            assert!(
                prompt + u64::from(MAX_TOKENS) <= SMALL_CONTEXT,
                "{}: ~{prompt} prompt tokens + {MAX_TOKENS} do not fit {SMALL_CONTEXT}",
                p.slug
            );
        }
        // The same day with every tool does not fit: scoping is what makes it work.
        let p = &catalogue.personas[0];
        let req = day_request(
            Lang::De,
            &p.system_prompt,
            &p.module_mix,
            scoped_tools(ToolScope::All, &all, &modules, &p.module_mix),
            &digest,
            now,
            MAX_TOKENS,
        );
        assert!(
            estimate_tokens(&req) + u64::from(MAX_TOKENS) > SMALL_CONTEXT,
            "~{} with all tools",
            estimate_tokens(&req)
        );
    }

    /// Largest `maxLength`/`maxItems` anywhere in `schema`, and whether it has a `pattern`
    /// keyword (only at schema positions: property maps are walked by their values).
    fn grammar_load(schema: &serde_json::Value) -> (u64, bool) {
        use serde_json::Value;
        let Value::Object(o) = schema else {
            return (0, false);
        };
        let mut bound = ["maxLength", "maxItems"]
            .iter()
            .filter_map(|k| o.get(*k).and_then(Value::as_u64))
            .max()
            .unwrap_or(0);
        let mut pattern = o.contains_key("pattern");
        let mut visit = |v: &Value| {
            let (b, p) = grammar_load(v);
            bound = bound.max(b);
            pattern |= p;
        };
        for (k, v) in o {
            match (k.as_str(), v) {
                ("properties" | "$defs", Value::Object(m)) => m.values().for_each(&mut visit),
                ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(a)) => {
                    a.iter().for_each(&mut visit);
                }
                ("items" | "additionalProperties" | "not", v) => visit(v),
                _ => {}
            }
        }
        (bound, pattern)
    }

    #[test]
    fn slim_schemas_of_every_tool_stay_under_the_llama_cpp_grammar_limit() {
        // llama.cpp's grammar parser gives up on a string of maxLength 1,500 (measured with
        // llama-cpp-python 0.3.36, and its server then dies); the full schemas go far past it.
        const LLAMA_CPP_FAILS_AT: u64 = 1_500;
        let (all, _) = mcp_tools();
        let full_max = all
            .iter()
            .map(|t| grammar_load(&t.input_schema).0)
            .max()
            .unwrap_or(0);
        assert!(
            full_max >= LLAMA_CPP_FAILS_AT,
            "full schemas peak at {full_max}"
        );
        assert!(all.iter().any(|t| grammar_load(&t.input_schema).1));
        for t in &all {
            let slim = llm::slim::slim_schema(&t.input_schema);
            let (bound, pattern) = grammar_load(&slim);
            assert!(bound < LLAMA_CPP_FAILS_AT, "{}: bound {bound}", t.name);
            assert!(!pattern, "{}: a pattern is left", t.name);
            assert_eq!(slim["required"], t.input_schema["required"], "{}", t.name);
            let props = |s: &serde_json::Value| {
                s["properties"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>())
            };
            assert_eq!(props(&slim), props(&t.input_schema), "{}", t.name);
        }
    }

    #[test]
    fn mix_offers_only_weighted_modules_sorted() {
        let (all, modules) = mcp_tools();
        let mix = BTreeMap::from([
            ("todo".to_owned(), 0.7),
            ("notes".to_owned(), 0.3),
            ("mood".to_owned(), 0.0),
        ]);
        let offered = scoped_tools(ToolScope::Mix, &all, &modules, &mix);
        assert!(offered.iter().any(|t| t.name.starts_with("todo_")));
        assert!(offered.iter().any(|t| t.name.starts_with("notes_")));
        assert!(
            offered
                .iter()
                .all(|t| matches!(modules[&t.name].as_str(), "todo" | "notes")),
            "weight 0 and absent modules are not offered"
        );
        let names: Vec<&str> = offered.iter().map(|t| t.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(
            scoped_tools(ToolScope::All, &all, &modules, &mix).len(),
            all.len()
        );
        // A mix that matches nothing falls back to every tool.
        let none = BTreeMap::from([("gardening".to_owned(), 1.0)]);
        assert_eq!(
            scoped_tools(ToolScope::Mix, &all, &modules, &none).len(),
            all.len()
        );
        assert_eq!("ALL".parse::<ToolScope>(), Ok(ToolScope::All));
        assert!("some".parse::<ToolScope>().is_err());
    }

    #[test]
    fn the_estimate_is_pessimistic_and_the_prefix_has_nothing_volatile() {
        let req = ChatRequest::new("s", "x".repeat(3000), 10);
        assert!(estimate_tokens(&req) >= 1000);
        let (all, modules) = mcp_tools();
        let mix = BTreeMap::from([("todo".to_owned(), 1.0)]);
        let day = |d: u32| {
            day_request(
                Lang::De,
                "Du bist Lina.",
                &mix,
                scoped_tools(ToolScope::Mix, &all, &modules, &mix),
                "",
                Utc.with_ymd_and_hms(2026, 12, d, 9, 0, 0).unwrap(),
                100,
            )
        };
        let (a, b) = (day(1), day(2));
        assert_eq!(a.shared_system, b.shared_system);
        assert_eq!(
            serde_json::to_string(&a.tools).unwrap(),
            serde_json::to_string(&b.tools).unwrap()
        );
        assert!(!a.shared_system.contains("2026"));
        assert_ne!(a.messages, b.messages, "the date lives in the user message");
    }
}
