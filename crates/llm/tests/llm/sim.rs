//! The sim provider: determinism, plausible schema-valid arguments, rating and plan
//! contracts.

use std::collections::BTreeMap;

use chrono::TimeZone;
use llm::{ChatRequest, ChatResponse, Llm, Message, Purpose, StopReason, ToolDef, ToolResult};
use serde_json::{Value, json};

fn tools() -> Vec<ToolDef> {
    let mut tools = crate::common::tools();
    tools.push(ToolDef {
        name: "notes_create".into(),
        description: "Create a note".into(),
        input_schema: json!({
            "type": "object",
            "required": ["title", "content", "kind"],
            "properties": {
                "title": {"type": "string", "maxLength": 80},
                "content": {"type": "string"},
                "kind": {"$ref": "#/$defs/Kind"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
                "pinned": {"type": "boolean"}
            },
            "additionalProperties": false,
            "$defs": {"Kind": {"type": "string", "enum": ["idea", "memo", "list"]}}
        }),
    });
    tools.push(ToolDef {
        name: "notes_search".into(),
        description: "Search notes".into(),
        input_schema: json!({
            "type": "object",
            "required": ["query"],
            "properties": {
                "query": {"type": "string", "minLength": 2},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50}
            },
            "additionalProperties": false
        }),
    });
    tools.push(ToolDef {
        name: "mood_log".into(),
        description: "Log a mood".into(),
        input_schema: json!({
            "type": "object",
            "required": ["score", "at"],
            "properties": {
                "score": {"type": "integer", "minimum": 1, "maximum": 10},
                "at": {"type": "string", "format": "date-time"},
                "note": {"type": ["string", "null"]}
            },
            "additionalProperties": false
        }),
    });
    tools
}

fn tool_modules() -> BTreeMap<String, String> {
    [
        ("todo_create", "todo"),
        ("todo_complete", "todo"),
        ("notes_create", "notes"),
        ("notes_search", "notes"),
        ("mood_log", "mood"),
    ]
    .into_iter()
    .map(|(t, m)| (t.to_string(), m.to_string()))
    .collect()
}

fn day_request(seed: u64, locale: &str) -> ChatRequest {
    let mut req = ChatRequest::new("You are Anna.", "Live one day with the app.", 1024);
    req.tools = tools();
    req.meta.seed = seed;
    req.meta.purpose = Purpose::Day;
    req.meta.locale = locale.into();
    req.meta.tool_modules = tool_modules();
    req.meta.module_mix = [("todo", 3.0), ("notes", 2.0), ("mood", 1.0)]
        .into_iter()
        .map(|(m, w)| (m.to_string(), w))
        .collect();
    req.meta.now = Some(chrono::Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap());
    req
}

fn validator(tool: &ToolDef) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&tool.input_schema)
        .unwrap()
}

/// Plays a whole day: executes calls like a tiny app (creates return ids, completing an
/// unknown id fails) until sim ends its turn. Returns every response.
async fn play_day(llm: &Llm, mut req: ChatRequest) -> Vec<ChatResponse> {
    let mut out = Vec::new();
    let mut created: Vec<String> = Vec::new();
    for turn in 0..20 {
        let resp = llm.chat(&req).await.unwrap();
        out.push(resp.clone());
        if resp.tool_calls.is_empty() {
            break;
        }
        let results = resp
            .tool_calls
            .iter()
            .map(|c| {
                let (content, is_error) = match c.name.as_str() {
                    "todo_complete" => {
                        let id = c.arguments["id"].as_str().unwrap_or("");
                        if created.iter().any(|x| x == id) {
                            (json!({"id": id, "done": true}).to_string(), false)
                        } else {
                            ("record not found".to_string(), true)
                        }
                    }
                    name if name.ends_with("_create") || name == "mood_log" => {
                        let id = format!("rec-{turn}");
                        created.push(id.clone());
                        (json!({"id": id}).to_string(), false)
                    }
                    _ => (json!({"items": []}).to_string(), false),
                };
                ToolResult {
                    call_id: c.id.clone(),
                    content,
                    is_error,
                }
            })
            .collect();
        req.messages.push(Message::assistant_from(&resp));
        req.messages.push(Message::ToolResults(results));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn day_is_deterministic_per_seed_and_valid() {
    let llm = Llm::sim(7);
    assert!(llm.is_sim());
    assert_eq!(llm.provider_name(), "sim");
    let validators: BTreeMap<String, jsonschema::Validator> = tools()
        .iter()
        .map(|t| (t.name.clone(), validator(t)))
        .collect();
    let mut transcripts = Vec::new();
    for seed in 0..12 {
        let a = play_day(&llm, day_request(seed, "en")).await;
        let b = play_day(&llm, day_request(seed, "en")).await;
        assert_eq!(a, b, "seed {seed} is not deterministic");
        let calls: Vec<_> = a.iter().flat_map(|r| r.tool_calls.iter()).collect();
        assert!(
            (3..=8).contains(&calls.len()),
            "seed {seed}: {} calls",
            calls.len()
        );
        assert!(
            a[..a.len() - 1]
                .iter()
                .all(|r| r.tool_calls.len() == 1 && r.stop == StopReason::ToolUse)
        );
        let last = a.last().unwrap();
        assert_eq!(last.stop, StopReason::EndTurn);
        assert!(last.text.as_deref().unwrap().contains("used the app"));
        for c in &calls {
            let v = &validators[&c.name];
            let errors: Vec<String> = v.iter_errors(&c.arguments).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{} {}: {errors:?}", c.name, c.arguments);
        }
        for r in &a {
            assert!(r.usage.input > 0 && r.usage.output > 0);
        }
        transcripts.push(a);
    }
    // Different seeds give different days.
    assert!(transcripts.windows(2).any(|w| w[0] != w[1]));
    // Another provider seed changes the day too.
    let other = play_day(&Llm::sim(8), day_request(0, "en")).await;
    assert_ne!(other, transcripts[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn module_mix_steers_and_ids_are_reused() {
    let llm = Llm::sim(1);
    for seed in 0..10 {
        let mut req = day_request(seed, "en");
        req.meta.module_mix = [("todo".to_string(), 1.0)].into_iter().collect();
        let day = play_day(&llm, req).await;
        for c in day.iter().flat_map(|r| r.tool_calls.iter()) {
            assert!(c.name.starts_with("todo_"), "{} outside the mix", c.name);
        }
    }
    // A tool that needs an id gets the one an earlier result returned.
    let mut req = day_request(3, "en");
    req.tools.retain(|t| t.name == "todo_complete");
    req.messages.push(Message::Assistant {
        text: None,
        tool_calls: vec![llm::ToolCall {
            id: "c0".into(),
            name: "todo_create".into(),
            arguments: json!({"title": "x"}),
            arguments_error: None,
        }],
    });
    req.messages.push(Message::ToolResults(vec![ToolResult {
        call_id: "c0".into(),
        content: json!({"id": "abc-123", "title": "x"}).to_string(),
        is_error: false,
    }]));
    let resp = llm.chat(&req).await.unwrap();
    assert_eq!(resp.tool_calls[0].arguments, json!({"id": "abc-123"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn german_locale_speaks_german() {
    let day = play_day(&Llm::sim(2), day_request(5, "de-DE")).await;
    let summary = day.last().unwrap().text.clone().unwrap();
    assert!(summary.contains("für heute"), "{summary}");
}

fn rating_request(seed: u64, prompt: &str) -> ChatRequest {
    let mut req = ChatRequest::new("You are Anna.", prompt, 512);
    req.meta.seed = seed;
    req.meta.purpose = Purpose::Rating;
    req.meta.modules_to_rate = vec!["todo".into(), "notes".into(), "mood".into()];
    req
}

fn ratings(resp: &ChatResponse) -> BTreeMap<String, i64> {
    let v: Value = serde_json::from_str(resp.text.as_deref().unwrap()).unwrap();
    v["ratings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["notes"].as_str().is_some_and(|n| !n.is_empty()));
            (
                r["module"].as_str().unwrap().to_string(),
                r["rating"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ratings_are_strict_json_and_drop_after_errors() {
    let llm = Llm::sim(11);
    for seed in 0..20 {
        let calm = llm
            .chat(&rating_request(
                seed,
                "Today: todo_create ok, notes_create ok.",
            ))
            .await
            .unwrap();
        assert_eq!(calm.stop, StopReason::EndTurn);
        assert!(calm.tool_calls.is_empty());
        let calm_ratings = ratings(&calm);
        assert_eq!(
            calm_ratings.keys().collect::<Vec<_>>(),
            ["mood", "notes", "todo"]
        );
        assert!(calm_ratings.values().all(|r| (1..=5).contains(r)));
        assert_eq!(
            calm,
            llm.chat(&rating_request(
                seed,
                "Today: todo_create ok, notes_create ok."
            ))
            .await
            .unwrap()
        );

        let rough = llm
            .chat(&rating_request(
                seed,
                "Today:\ntodo_complete -> error: not found\nnotes_create ok",
            ))
            .await
            .unwrap();
        let rough_ratings = ratings(&rough);
        assert!(rough_ratings["todo"] < calm_ratings["todo"], "seed {seed}");
        assert_eq!(rough_ratings["notes"], calm_ratings["notes"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_with_tools_proposes_calls_then_summarises() {
    let llm = Llm::sim(5);
    let validators: BTreeMap<String, jsonschema::Validator> = tools()
        .iter()
        .map(|t| (t.name.clone(), validator(t)))
        .collect();
    for seed in 0..10 {
        let mut req = day_request(seed, "en");
        req.meta.purpose = Purpose::Plan;
        let first = llm.chat(&req).await.unwrap();
        assert!((1..=3).contains(&first.tool_calls.len()));
        assert_eq!(first.stop, StopReason::ToolUse);
        for c in &first.tool_calls {
            assert!(
                validators[&c.name].is_valid(&c.arguments),
                "{} {}",
                c.name,
                c.arguments
            );
        }
        req.messages.push(Message::assistant_from(&first));
        req.messages.push(Message::ToolResults(
            first
                .tool_calls
                .iter()
                .map(|c| ToolResult {
                    call_id: c.id.clone(),
                    content: "proposed".into(),
                    is_error: false,
                })
                .collect(),
        ));
        let second = llm.chat(&req).await.unwrap();
        assert_eq!(second.stop, StopReason::EndTurn);
        assert!(second.tool_calls.is_empty());
        assert!(second.text.unwrap().starts_with("Plan:"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_without_tools_follows_the_json_contract() {
    let llm = Llm::sim(5);
    let schemas: BTreeMap<String, Value> = tools()
        .into_iter()
        .map(|t| (t.name, t.input_schema))
        .collect();
    for seed in 0..10 {
        let mut req = ChatRequest::new("You plan.", "Objective: a tidy week.", 1024);
        req.meta.seed = seed;
        req.meta.purpose = Purpose::Plan;
        req.meta.tool_modules = tool_modules();
        req.meta.tool_schemas = schemas.clone();
        let resp = llm.chat(&req).await.unwrap();
        assert_eq!(resp.stop, StopReason::EndTurn);
        let v: Value = serde_json::from_str(resp.text.as_deref().unwrap()).unwrap();
        assert!(v["summary"].is_string());
        let steps = v["steps"].as_array().unwrap();
        assert!((1..=3).contains(&steps.len()));
        for s in steps {
            let name = s["toolName"].as_str().unwrap();
            let schema = &schemas[name];
            let valid = jsonschema::options()
                .should_validate_formats(true)
                .build(schema)
                .unwrap();
            assert!(valid.is_valid(&s["params"]), "{name} {}", s["params"]);
            assert!(s["summary"].is_string() && s["rationale"].is_string());
        }
        assert_eq!(resp, llm.chat(&req).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_from_settings_uses_the_seed() {
    let s = crate::common::settings(&[("LLM_SIM_SEED", "99".to_string())]);
    let a = Llm::from_settings(&s, reqwest::Client::new()).unwrap();
    assert!(a.sim_reason().unwrap().starts_with("no LLM configured"));
    let b = Llm::sim(99);
    let req = day_request(1, "en");
    assert_eq!(a.chat(&req).await.unwrap(), b.chat(&req).await.unwrap());
}
