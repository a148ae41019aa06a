//! The registry's invariants: names, modules, schemas, policy, validation, dispatch.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::{call, ctx, id_of, ok};
use crate::{MemoryStore, Policy, Registry, ToolError};

fn registry() -> &'static Registry {
    Registry::global()
}

#[test]
fn tool_names_are_valid_unique_and_prefixed_by_their_module() {
    let all = crate::modules::all();
    assert!(
        all.len() >= 40,
        "expected the full tool set, got {}",
        all.len()
    );
    let mut seen = HashSet::new();
    for def in &all {
        let name = def.spec.name;
        assert!(
            types::names::is_valid_name(name),
            "{name} does not match {}",
            types::names::NAME_PATTERN
        );
        assert!(seen.insert(name), "duplicate tool name {name}");
        assert!(
            name.starts_with(&format!("{}_", def.spec.module)),
            "{name} is not named <module>_<verb> for module {}",
            def.spec.module
        );
    }
    assert_eq!(registry().all().len(), all.len());
}

#[test]
fn every_module_has_create_list_and_get() {
    let mut modules: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for spec in registry().all() {
        modules.entry(spec.module).or_default().push(spec.name);
    }
    let expected = [
        "calendar", "contacts", "goals", "habits", "journal", "missions", "mood", "notes", "todo",
    ];
    assert_eq!(modules.keys().copied().collect::<Vec<_>>(), expected);
    for (module, names) in &modules {
        let verbs: Vec<&str> = names.iter().map(|n| &n[module.len() + 1..]).collect();
        let has = |candidates: &[&str]| verbs.iter().any(|v| candidates.contains(v));
        assert!(
            has(&["create", "add", "log", "create_event"]),
            "{module} has no create: {verbs:?}"
        );
        assert!(
            has(&["list", "search", "recent", "list_events"]),
            "{module} has no list/search: {verbs:?}"
        );
        assert!(has(&["get", "get_event"]), "{module} has no get: {verbs:?}");
        assert!(
            has(&["update", "update_event"]),
            "{module} has no update: {verbs:?}"
        );
    }
}

fn walk<'a>(value: &'a Value, out: &mut Vec<(&'a str, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push((k.as_str(), v));
                walk(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
        _ => {}
    }
}

#[test]
fn every_schema_compiles_and_is_a_self_contained_object_schema() {
    assert_eq!(registry().broken_schemas(), Vec::new());
    for spec in registry().all() {
        let schema = &spec.input_schema;
        assert_eq!(schema["type"], "object", "{}", spec.name);
        assert!(schema["properties"].is_object(), "{}", spec.name);
        assert!(schema["required"].is_array(), "{}", spec.name);
        assert_eq!(schema["additionalProperties"], false, "{}", spec.name);
        for key in ["$schema", "title", "oneOf", "anyOf", "allOf"] {
            assert!(schema.get(key).is_none(), "{} has a root {key}", spec.name);
        }
        let required = schema["required"].as_array().unwrap();
        for r in required {
            assert!(
                schema["properties"].get(r.as_str().unwrap()).is_some(),
                "{}: {r} not a property",
                spec.name
            );
        }
        let mut entries = Vec::new();
        walk(schema, &mut entries);
        for (key, value) in entries {
            assert!(
                key != "$ref" && key != "$defs",
                "{} is not self-contained",
                spec.name
            );
            assert!(
                !(key == "type" && value.as_array().is_some_and(|t| t.contains(&json!("null")))),
                "{} has a nullable property",
                spec.name
            );
            assert!(
                !(key == "format"
                    && value
                        .as_str()
                        .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"))),
                "{} has a non-standard format {value}",
                spec.name
            );
        }
        // Every property is described for the model.
        for (name, prop) in schema["properties"].as_object().unwrap() {
            assert!(
                prop["description"].is_string(),
                "{}.{name} has no description",
                spec.name
            );
        }
    }
}

#[test]
fn todo_create_schema_snapshot() {
    let schema = &registry().get("todo_create").unwrap().input_schema;
    let tags = json!({
        "type": "array",
        "default": [],
        "description": "Labels for grouping, e.g. [\"work\"].",
        "items": { "type": "string", "minLength": 1, "maxLength": 60 },
        "maxItems": 20
    });
    assert_eq!(
        schema,
        &json!({
            "type": "object",
            "properties": {
                "title": { "type": "string", "description": "Short title of the task.", "minLength": 1, "maxLength": 500 },
                "description": { "type": "string", "description": "Details, steps or context.", "maxLength": 10000 },
                "priority": {
                    "type": "string",
                    "description": "How urgent the task is.",
                    "enum": ["low", "medium", "high", "urgent"],
                    "default": "medium"
                },
                "dueDate": { "type": "string", "format": "date", "description": "Day the task is due (YYYY-MM-DD)." },
                "tags": tags
            },
            "required": ["title"],
            "additionalProperties": false
        })
    );
}

#[test]
fn policies_follow_the_verbs() {
    for spec in registry().all() {
        let verb = &spec.name[spec.module.len() + 1..];
        let expected = if verb.starts_with("get")
            || verb.starts_with("list")
            || verb == "search"
            || verb == "recent"
        {
            Policy::Read
        } else if verb == "delete" {
            Policy::Destructive
        } else {
            Policy::Write
        };
        assert_eq!(spec.policy, expected, "{}", spec.name);
    }
    assert_eq!(
        serde_json::to_value(Policy::Destructive).unwrap(),
        "destructive"
    );
    assert_eq!(Policy::Read.as_str(), "read");
}

#[test]
fn destructive_tools_are_not_exposed() {
    assert_eq!(
        registry().get("todo_delete").unwrap().policy,
        Policy::Destructive
    );
    assert!(
        registry()
            .exposed()
            .all(|s| s.policy != Policy::Destructive)
    );
    assert!(registry().exposed().all(|s| s.name != "todo_delete"));
    assert_eq!(
        registry().exposed().count(),
        registry()
            .all()
            .iter()
            .filter(|s| s.policy != Policy::Destructive)
            .count()
    );
    assert!(registry().exposed().any(|s| s.name == "todo_list"));
}

#[tokio::test]
async fn destructive_tools_are_not_callable_but_call_destructive_runs_them() {
    let store = MemoryStore::new();
    let todo = ok(&store, "todo_create", json!({"title": "Pay rent"})).await;
    let id = id_of(&todo);
    let err = call(&store, "todo_delete", json!({"id": id}))
        .await
        .unwrap_err();
    assert_eq!(err, ToolError::NotCallable("todo_delete".to_owned()));
    assert_eq!(store.count("todo", "tasks"), 1);

    let done = registry()
        .call_destructive("todo_delete", json!({"id": id}), &store, &ctx())
        .await
        .unwrap();
    assert_eq!(done, json!({"id": id, "deleted": true}));
    assert_eq!(store.count("todo", "tasks"), 0);
    let again = registry()
        .call_destructive("todo_delete", json!({"id": id}), &store, &ctx())
        .await
        .unwrap_err();
    assert!(matches!(again, ToolError::NotFound(_)), "{again:?}");
}

#[test]
fn proposable_tools_are_writes_outside_missions() {
    let proposable: Vec<&str> = registry().proposable().map(|s| s.name).collect();
    assert!(proposable.contains(&"todo_create"));
    assert!(proposable.contains(&"notes_archive"));
    assert!(proposable.contains(&"habits_log"));
    for spec in registry().all() {
        let expected = spec.policy == Policy::Write && spec.module != "missions";
        assert_eq!(spec.proposable, expected, "{}", spec.name);
    }
    assert!(registry().proposable().all(|s| s.policy == Policy::Write));
    assert!(!proposable.contains(&"todo_list"));
    assert!(!proposable.contains(&"missions_create"));
}

#[test]
fn spec_serializes_camel_case() {
    let spec = serde_json::to_value(registry().get("todo_list").unwrap()).unwrap();
    assert_eq!(spec["name"], "todo_list");
    assert_eq!(spec["module"], "todo");
    assert_eq!(spec["policy"], "read");
    assert_eq!(spec["proposable"], false);
    assert_eq!(spec["inputSchema"]["type"], "object");
}

#[test]
fn validation_errors_name_every_bad_field() {
    let err = registry()
        .validate(
            "todo_create",
            &json!({"title": "", "priority": "huge", "colour": "red"}),
        )
        .unwrap_err();
    let ToolError::InvalidInput(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.starts_with("todo_create: "), "{message}");
    assert!(
        message.contains("/title: \"\" is shorter than 1 character"),
        "{message}"
    );
    assert!(
        message.contains("/priority: \"huge\" is not one of"),
        "{message}"
    );
    assert!(message.contains("'colour'"), "{message}");

    let err = registry().validate("todo_create", &json!({})).unwrap_err();
    assert_eq!(
        err,
        ToolError::InvalidInput("todo_create: \"title\" is a required property".to_owned())
    );
    let err = registry().validate(
        "calendar_create_event",
        &json!({"title": "x", "startsAt": "tomorrow"}),
    );
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("/startsAt: \"tomorrow\" is not a \"date-time\"")
    );
    assert!(
        registry()
            .validate(
                "todo_create",
                &json!({"title": "ok", "dueDate": "2026-03-01"})
            )
            .is_ok()
    );
}

#[test]
fn validation_errors_do_not_echo_long_values() {
    let content = "x".repeat(200_001);
    let err = registry()
        .validate("notes_create", &json!({"title": "t", "content": content}))
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("/content: value is longer than 200000 characters"),
        "{message}"
    );
    assert!(message.len() < 200, "{message}");
}

#[test]
fn cadence_errors_explain_the_matching_kind_or_list_the_kinds() {
    let base = |cadence: Value| json!({"title": "t", "objective": "o", "cadence": cadence});
    let err = registry()
        .validate(
            "missions_create",
            &base(json!({"kind": "daily", "atHour": 25, "atMinute": 0})),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/cadence/atHour: 25 is greater than the maximum of 23"),
        "{err}"
    );
    assert!(!err.contains("everyMinutes"), "{err}");

    let err = registry()
        .validate("missions_create", &base(json!({"kind": "hourly"})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/cadence/kind: must be one of"), "{err}");
    for kind in ["manual", "interval", "daily", "weekly", "cron"] {
        assert!(err.contains(&format!("\"{kind}\"")), "{err}");
    }

    let err = registry()
        .validate(
            "missions_create",
            &base(json!({"atHour": 7, "atMinute": 0})),
        )
        .unwrap_err();
    assert_eq!(
        err,
        ToolError::InvalidInput(
            "missions_create: /cadence: \"kind\" is a required property".to_owned()
        )
    );
}

#[tokio::test]
async fn unknown_tools_and_null_args() {
    let store = MemoryStore::new();
    assert_eq!(
        call(&store, "todo.create", json!({})).await.unwrap_err(),
        ToolError::UnknownTool("todo.create".to_owned())
    );
    assert!(matches!(
        registry().validate("nope", &json!({})),
        Err(ToolError::UnknownTool(_))
    ));
    // MCP clients may send no arguments for a tool without required ones.
    let listed = ok(&store, "todo_list", Value::Null).await;
    assert_eq!(listed, json!({"items": [], "count": 0}));
    let err = call(&store, "todo_get", Value::Null).await.unwrap_err();
    assert!(matches!(err, ToolError::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn seeded_calls_create_the_same_record_once() {
    let store = MemoryStore::new();
    let seeded = ctx().with_id_seed("step-1");
    let args = json!({"title": "Call mum"});
    let first = registry()
        .call("todo_create", args.clone(), &store, &seeded)
        .await
        .unwrap();
    let second = registry()
        .call("todo_create", args.clone(), &store, &seeded)
        .await
        .unwrap();
    assert_eq!(id_of(&first), id_of(&second));
    assert_eq!(first, second);
    assert_eq!(store.count("todo", "tasks"), 1);
    assert_eq!(
        uuid::Uuid::parse_str(&id_of(&first))
            .unwrap()
            .get_version_num(),
        5
    );

    let other = registry()
        .call(
            "todo_create",
            args.clone(),
            &store,
            &ctx().with_id_seed("step-2"),
        )
        .await
        .unwrap();
    assert_ne!(id_of(&other), id_of(&first));
    // The same seed for another tool gives another id.
    let note = registry()
        .call(
            "notes_create",
            json!({"title": "t", "content": ""}),
            &store,
            &seeded,
        )
        .await
        .unwrap();
    assert_ne!(id_of(&note), id_of(&first));

    let a = ok(&store, "todo_create", args.clone()).await;
    let b = ok(&store, "todo_create", args).await;
    assert_ne!(id_of(&a), id_of(&b));
    assert_eq!(
        uuid::Uuid::parse_str(&id_of(&a)).unwrap().get_version_num(),
        4
    );
}

#[test]
fn call_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let store = MemoryStore::new();
    let context = ctx();
    let future = registry().call("todo_list", json!({}), &store, &context);
    assert_send(&future);
}

#[test]
fn only_generic_tools_write_at_most_once() {
    let r = registry();
    for name in [
        "todo_create",
        "todo_update",
        "todo_list",
        "goals_create",
        "notes_get",
    ] {
        assert!(r.get(name).is_some(), "{name} exists");
        assert!(r.writes_at_most_once(name), "{name}");
    }
    // Read-modify-write and multi-record tools need their call's transaction.
    for name in [
        "goals_log_progress",
        "habits_log",
        "missions_create",
        "no_such_tool",
    ] {
        assert!(!r.writes_at_most_once(name), "{name}");
    }
}
