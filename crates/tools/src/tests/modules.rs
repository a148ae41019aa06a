//! The tools against `MemoryStore`: round trips and each module's rules.

use chrono::Duration;
use serde_json::{Value, json};
use types::missions::{Mission, MissionCadence, MissionState};

use super::{call, ctx, id_of, ids_of, now, ok};
use crate::{MemoryStore, Registry, ToolError};

#[tokio::test]
async fn create_then_list_round_trip_for_every_module() {
    let cases: [(&str, Value, &str, Value, &str, &str); 9] = [
        (
            "todo_create",
            json!({"title": "Buy milk", "priority": "high", "dueDate": "2026-03-12"}),
            "todo_list",
            json!({}),
            "todo",
            "tasks",
        ),
        (
            "notes_create",
            json!({"title": "Ideas", "content": "Rust all the things", "tags": ["dev"]}),
            "notes_search",
            json!({"query": "rust"}),
            "notes",
            "notes",
        ),
        (
            "journal_add",
            json!({"content": "A calm day.", "mood": "content"}),
            "journal_list",
            json!({}),
            "journal",
            "journalEntries",
        ),
        (
            "calendar_create_event",
            json!({"title": "Dentist", "startsAt": "2026-03-11T09:30:00+01:00"}),
            "calendar_list_events",
            json!({}),
            "calendar",
            "events",
        ),
        (
            "contacts_create",
            json!({"name": "Ada Lovelace", "email": "ada@example.org"}),
            "contacts_search",
            json!({"query": "ADA"}),
            "contacts",
            "contacts",
        ),
        (
            "goals_create",
            json!({"title": "Run 50 km", "target": 50, "unit": "km", "period": "monthly"}),
            "goals_list",
            json!({}),
            "goals",
            "goals",
        ),
        (
            "habits_create",
            json!({"title": "Drink water", "targetPerDay": 8}),
            "habits_list",
            json!({}),
            "habits",
            "habits",
        ),
        (
            "mood_log",
            json!({"level": 7, "emotion": "calm"}),
            "mood_recent",
            json!({}),
            "mood",
            "moodEntries",
        ),
        (
            "missions_create",
            json!({"title": "Weekly review", "objective": "Summarise my week", "cadence": {"kind": "weekly", "dayOfWeek": 0, "atHour": 18}}),
            "missions_list",
            json!({}),
            "ai",
            "aiMissions",
        ),
    ];
    for (create, args, list, list_args, app, table) in cases {
        let store = MemoryStore::new();
        let created = ok(&store, create, args.clone()).await;
        let id = id_of(&created);
        assert_eq!(store.count(app, table), 1, "{create}");
        for (key, value) in args.as_object().unwrap() {
            if key != "startsAt" {
                assert_eq!(&created[key], value, "{create}.{key}");
            }
        }
        let listed = ok(&store, list, list_args).await;
        assert_eq!(listed["count"], 1, "{list}: {listed}");
        assert_eq!(ids_of(&listed), vec![id.clone()], "{list}");
        let get = Registry::global()
            .all()
            .iter()
            .find(|s| {
                s.module == Registry::global().get(create).unwrap().module
                    && s.name.contains("_get")
            })
            .unwrap()
            .name;
        let got = ok(&store, get, json!({"id": id})).await;
        assert_eq!(id_of(&got), id, "{get}");
    }
}

#[tokio::test]
async fn records_carry_timestamps_from_the_context() {
    let store = MemoryStore::new();
    let todo = ok(&store, "todo_create", json!({"title": "x"})).await;
    assert_eq!(todo["createdAt"], "2026-03-10T12:00:00.000Z");
    assert_eq!(todo["updatedAt"], "2026-03-10T12:00:00.000Z");
    assert_eq!(todo["isCompleted"], false);
    assert_eq!(todo["priority"], "medium");
    assert_eq!(todo["tags"], json!([]));
    assert!(todo.get("description").is_none());
    let event = ok(
        &store,
        "calendar_create_event",
        json!({"title": "x", "startsAt": "2026-03-11T09:30:00+01:00"}),
    )
    .await;
    // Stored normalised to UTC in the handlers' one timestamp format.
    assert_eq!(event["startsAt"], "2026-03-11T08:30:00.000Z");
}

#[tokio::test]
async fn updating_an_unknown_id_is_not_found_with_a_hint() {
    let store = MemoryStore::new();
    for (tool, args, hint) in [
        (
            "todo_update",
            json!({"id": "nope", "title": "x"}),
            "call todo_list",
        ),
        ("todo_complete", json!({"id": "nope"}), "call todo_list"),
        ("todo_get", json!({"id": "nope"}), "call todo_list"),
        ("notes_archive", json!({"id": "nope"}), "call notes_search"),
        (
            "calendar_cancel_event",
            json!({"id": "nope"}),
            "call calendar_list_events",
        ),
        (
            "goals_log_progress",
            json!({"id": "nope", "amount": 1}),
            "call goals_list",
        ),
        ("habits_log", json!({"id": "nope"}), "call habits_list"),
        (
            "missions_pause",
            json!({"id": "nope"}),
            "call missions_list",
        ),
        (
            "missions_update",
            json!({"id": "nope", "title": "x"}),
            "call missions_list",
        ),
    ] {
        let err = call(&store, tool, args).await.unwrap_err();
        let ToolError::NotFound(message) = &err else {
            panic!("{tool}: {err:?}")
        };
        assert!(
            message.contains("with id nope") && message.contains(hint),
            "{tool}: {message}"
        );
    }
    assert_eq!(
        call(&store, "todo_complete", json!({"id": "nope"}))
            .await
            .unwrap_err()
            .to_string(),
        "no todo with id nope — call todo_list to see ids"
    );
}

#[tokio::test]
async fn update_patches_only_given_fields() {
    let store = MemoryStore::new();
    let id = id_of(
        &ok(
            &store,
            "notes_create",
            json!({"title": "A", "content": "body", "isPinned": true}),
        )
        .await,
    );
    let later = ctx().now + Duration::minutes(5);
    let updated = Registry::global()
        .call(
            "notes_update",
            json!({"id": id, "title": "B"}),
            &store,
            &crate::CallContext::new(later),
        )
        .await
        .unwrap();
    assert_eq!(updated["title"], "B");
    assert_eq!(updated["content"], "body");
    assert_eq!(updated["isPinned"], true);
    assert_eq!(updated["createdAt"], "2026-03-10T12:00:00.000Z");
    assert_eq!(updated["updatedAt"], "2026-03-10T12:05:00.000Z");

    let err = call(&store, "notes_update", json!({"id": id}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::InvalidInput(m) if m.contains("nothing to change")),
        "{err:?}"
    );
    let err = call(&store, "notes_update", json!({"id": id, "title": "   "}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::InvalidInput(m) if m.contains("/title")),
        "{err:?}"
    );
}

#[tokio::test]
async fn todo_complete_and_list_filters() {
    let store = MemoryStore::new();
    let a = id_of(
        &ok(
            &store,
            "todo_create",
            json!({"title": "Write report", "tags": ["work"]}),
        )
        .await,
    );
    let b = id_of(
        &ok(
            &store,
            "todo_create",
            json!({"title": "Water plants", "priority": "low"}),
        )
        .await,
    );
    let c = id_of(
        &ok(
            &store,
            "todo_create",
            json!({"title": "Report taxes", "priority": "urgent"}),
        )
        .await,
    );

    let done = ok(&store, "todo_complete", json!({"id": a})).await;
    assert_eq!(done["isCompleted"], true);
    assert_eq!(done["completedAt"], "2026-03-10T12:00:00.000Z");

    assert_eq!(
        ids_of(&ok(&store, "todo_list", json!({})).await),
        vec![c.clone(), b.clone()]
    );
    assert_eq!(
        ids_of(&ok(&store, "todo_list", json!({"includeCompleted": true})).await),
        vec![c.clone(), b.clone(), a.clone()]
    );
    assert_eq!(
        ids_of(
            &ok(
                &store,
                "todo_list",
                json!({"includeCompleted": true, "query": "REPORT"})
            )
            .await
        ),
        vec![c.clone(), a.clone()]
    );
    assert_eq!(
        ids_of(&ok(&store, "todo_list", json!({"priority": "low"})).await),
        vec![b.clone()]
    );
    assert_eq!(
        ids_of(
            &ok(
                &store,
                "todo_list",
                json!({"includeCompleted": true, "tag": "work"})
            )
            .await
        ),
        vec![a.clone()]
    );
    assert_eq!(
        ids_of(&ok(&store, "todo_list", json!({"limit": 1})).await),
        vec![c]
    );

    let reopened = ok(
        &store,
        "todo_complete",
        json!({"id": a, "completed": false}),
    )
    .await;
    assert_eq!(reopened["isCompleted"], false);
    assert_eq!(reopened["completedAt"], Value::Null);
    assert_eq!(ok(&store, "todo_list", json!({})).await["count"], 3);
}

#[tokio::test]
async fn notes_archive_hides_from_search() {
    let store = MemoryStore::new();
    let id = id_of(
        &ok(
            &store,
            "notes_create",
            json!({"title": "Old", "content": "x", "tags": ["Archive-me"]}),
        )
        .await,
    );
    assert_eq!(
        ok(&store, "notes_search", json!({"query": "archive-ME"})).await["count"],
        1
    );
    let archived = ok(&store, "notes_archive", json!({"id": id})).await;
    assert_eq!(archived["isArchived"], true);
    assert_eq!(ok(&store, "notes_search", json!({})).await["count"], 0);
    assert_eq!(
        ok(&store, "notes_search", json!({"includeArchived": true})).await["count"],
        1
    );
    ok(
        &store,
        "notes_archive",
        json!({"id": id, "archived": false}),
    )
    .await;
    assert_eq!(ok(&store, "notes_search", json!({})).await["count"], 1);
}

#[tokio::test]
async fn journal_defaults_to_today_and_filters_by_date() {
    let store = MemoryStore::new();
    let today = ok(&store, "journal_add", json!({"content": "today"})).await;
    assert_eq!(today["entryDate"], "2026-03-10");
    let old = id_of(
        &ok(
            &store,
            "journal_add",
            json!({"content": "old", "entryDate": "2026-01-02"}),
        )
        .await,
    );
    assert_eq!(
        ids_of(
            &ok(
                &store,
                "journal_list",
                json!({"from": "2026-01-01", "to": "2026-01-31"})
            )
            .await
        ),
        vec![old]
    );
    assert_eq!(
        ok(&store, "journal_list", json!({"from": "2026-03-10"})).await["count"],
        1
    );
    let err = call(
        &store,
        "journal_list",
        json!({"from": "2026-03-10", "to": "2026-03-01"}),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ToolError::InvalidInput(_)));
}

#[tokio::test]
async fn calendar_lists_by_start_within_the_range() {
    let store = MemoryStore::new();
    let later = id_of(
        &ok(
            &store,
            "calendar_create_event",
            json!({"title": "Later", "startsAt": "2026-03-20T10:00:00Z"}),
        )
        .await,
    );
    let soon = id_of(&ok(&store, "calendar_create_event", json!({"title": "Soon", "startsAt": "2026-03-11T10:00:00Z", "endsAt": "2026-03-11T11:00:00Z"})).await);
    let past = id_of(
        &ok(
            &store,
            "calendar_create_event",
            json!({"title": "Past", "startsAt": "2026-03-01T10:00:00Z"}),
        )
        .await,
    );
    // Started earlier today: still listed by default.
    let morning = id_of(
        &ok(
            &store,
            "calendar_create_event",
            json!({"title": "Standup", "startsAt": "2026-03-10T08:00:00Z"}),
        )
        .await,
    );

    assert_eq!(
        ids_of(&ok(&store, "calendar_list_events", json!({})).await),
        vec![morning.clone(), soon.clone(), later.clone()]
    );
    assert_eq!(
        ids_of(
            &ok(
                &store,
                "calendar_list_events",
                json!({"from": "2026-02-01T00:00:00Z", "to": "2026-03-11T10:30:00Z"})
            )
            .await
        ),
        vec![past.clone(), morning.clone(), soon.clone()]
    );
    // Overlap: an event running at `from` is included.
    assert_eq!(
        ids_of(
            &ok(
                &store,
                "calendar_list_events",
                json!({"from": "2026-03-11T10:30:00Z", "to": "2026-03-12T00:00:00Z"})
            )
            .await
        ),
        vec![soon.clone()]
    );
    ok(&store, "calendar_cancel_event", json!({"id": soon})).await;
    assert_eq!(
        ids_of(&ok(&store, "calendar_list_events", json!({})).await),
        vec![morning, later]
    );
    assert_eq!(
        ok(
            &store,
            "calendar_list_events",
            json!({"includeCancelled": true})
        )
        .await["count"],
        3
    );

    let err = call(
        &store,
        "calendar_create_event",
        json!({"title": "x", "startsAt": "2026-03-11T10:00:00Z", "endsAt": "2026-03-11T09:00:00Z"}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ToolError::InvalidInput(m) if m.contains("/endsAt")),
        "{err:?}"
    );
}

#[tokio::test]
async fn goals_progress_adds_up_and_marks_achievement() {
    let store = MemoryStore::new();
    let id = id_of(
        &ok(
            &store,
            "goals_create",
            json!({"title": "Read", "target": 3, "unit": "books"}),
        )
        .await,
    );
    let first = ok(&store, "goals_log_progress", json!({"id": id, "amount": 2})).await;
    assert_eq!(first["progress"], 2);
    assert!(first.get("achievedAt").is_none());
    let second = ok(
        &store,
        "goals_log_progress",
        json!({"id": id, "amount": 1.5}),
    )
    .await;
    assert_eq!(second["progress"], 3.5);
    assert_eq!(second["achievedAt"], "2026-03-10T12:00:00.000Z");
    assert_eq!(second["lastProgressAt"], "2026-03-10T12:00:00.000Z");
    let fixed = ok(
        &store,
        "goals_log_progress",
        json!({"id": id, "amount": -0.5}),
    )
    .await;
    assert_eq!(fixed["progress"], 3);
}

#[tokio::test]
async fn habits_log_counts_the_day_and_refuses_archived_habits() {
    let store = MemoryStore::new();
    let id = id_of(&ok(&store, "habits_create", json!({"title": "Stretch"})).await);
    let first = ok(&store, "habits_log", json!({"id": id})).await;
    assert_eq!(first["log"]["habitId"], id.as_str());
    assert_eq!(first["log"]["date"], "2026-03-10");
    assert_eq!(first["countOnDate"], 1);
    assert_eq!(first["habit"]["title"], "Stretch");
    assert_eq!(
        ok(&store, "habits_log", json!({"id": id, "note": "evening"})).await["countOnDate"],
        2
    );
    assert_eq!(
        ok(
            &store,
            "habits_log",
            json!({"id": id, "date": "2026-03-09"})
        )
        .await["countOnDate"],
        1
    );
    assert_eq!(store.count("habits", "habitLogs"), 3);

    let habit = ok(&store, "habits_get", json!({"id": id})).await;
    assert_eq!(habit["icon"], "star");
    assert_eq!(habit["color"], "#6366f1");

    ok(&store, "habits_archive", json!({"id": id})).await;
    assert_eq!(ok(&store, "habits_list", json!({})).await["count"], 0);
    let err = call(&store, "habits_log", json!({"id": id}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::InvalidInput(m) if m.contains("archived")),
        "{err:?}"
    );
}

#[tokio::test]
async fn mood_recent_covers_the_last_days() {
    let store = MemoryStore::new();
    let today = id_of(&ok(&store, "mood_log", json!({"level": 8, "emotion": "happy"})).await);
    let six_days_ago = id_of(
        &ok(
            &store,
            "mood_log",
            json!({"level": 4, "emotion": "tired", "date": "2026-03-04"}),
        )
        .await,
    );
    ok(
        &store,
        "mood_log",
        json!({"level": 2, "emotion": "sad", "date": "2026-03-03"}),
    )
    .await;
    assert_eq!(
        ids_of(&ok(&store, "mood_recent", json!({})).await),
        vec![six_days_ago, today.clone()]
    );
    assert_eq!(
        ids_of(&ok(&store, "mood_recent", json!({"days": 1})).await),
        vec![today]
    );
    assert_eq!(
        ok(&store, "mood_recent", json!({"days": 30})).await["count"],
        3
    );
    let err = call(&store, "mood_log", json!({"level": 11, "emotion": "happy"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/level"), "{err}");
}

fn mission_of(record: &Value) -> Mission {
    serde_json::from_value(record.clone()).unwrap()
}

#[tokio::test]
async fn missions_create_stores_a_mission_with_its_next_run() {
    let store = MemoryStore::new();
    let created = ok(
        &store,
        "missions_create",
        json!({
            "title": "Inbox zero",
            "objective": "Triage my todos",
            "cadence": {"kind": "interval", "everyMinutes": 90},
            "inputs": [{"module": "notes", "table": "notes", "id": "n1"}]
        }),
    )
    .await;
    let mission = mission_of(&created);
    assert_eq!(mission.state, MissionState::Active);
    assert_eq!(
        mission.cadence,
        MissionCadence::Interval { every_minutes: 90 }
    );
    assert_eq!(mission.next_run_at, Some(now() + Duration::minutes(90)));
    assert_eq!(mission.inputs.len(), 1);
    assert!(mission.iterations.is_empty());
    assert_eq!(mission.concept_markdown, "");
    assert_eq!(created["iterationCount"], 0);

    // The stored data is the serialized Mission without `id`.
    let record = crate::RecordStore::get(&store, "ai", "aiMissions", &mission.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!record.data.contains_key("id"));
    let mut data = record.data.clone();
    data.insert("id".to_owned(), json!(mission.id));
    let stored: Mission = serde_json::from_value(Value::Object(data.clone())).unwrap();
    assert_eq!(serde_json::to_value(&stored).unwrap(), Value::Object(data));

    let daily = ok(
        &store,
        "missions_create",
        json!({"title": "Morning brief", "objective": "o", "cadence": {"kind": "daily", "atHour": 7, "atMinute": 30}}),
    )
    .await;
    assert_eq!(daily["nextRunAt"], "2026-03-11T07:30:00Z");
    let manual = ok(
        &store,
        "missions_create",
        json!({"title": "t", "objective": "o", "cadence": {"kind": "manual"}}),
    )
    .await;
    assert!(mission_of(&manual).next_run_at.is_none());
}

#[tokio::test]
async fn missions_create_rejects_bad_cadences_and_iterations() {
    let store = MemoryStore::new();
    for (cadence, needle) in [
        (
            json!({"kind": "daily", "atHour": 7, "atMinute": 0, "timezone": "Mars/Olympus"}),
            "/cadence: unknown timezone",
        ),
        (
            json!({"kind": "cron", "expression": "every day"}),
            "/cadence: invalid cron expression",
        ),
        (
            json!({"kind": "cron", "expression": "0 0 30 2 *"}),
            "/cadence: invalid cron expression",
        ),
        (
            json!({"kind": "interval", "everyMinutes": 0}),
            "/cadence/everyMinutes",
        ),
    ] {
        let err = call(
            &store,
            "missions_create",
            json!({"title": "t", "objective": "o", "cadence": cadence}),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, ToolError::InvalidInput(m) if m.contains(needle)),
            "{needle}: {err:?}"
        );
    }
    let err = call(
        &store,
        "missions_create",
        json!({"title": "t", "objective": "o", "cadence": {"kind": "manual"}, "iterations": []}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ToolError::InvalidInput(m) if m.contains("'iterations'")),
        "{err:?}"
    );
    assert_eq!(store.count("ai", "aiMissions"), 0);
}

#[tokio::test]
async fn missions_pause_resume_and_update() {
    let store = MemoryStore::new();
    let created = ok(
        &store,
        "missions_create",
        json!({"title": "t", "objective": "o", "cadence": {"kind": "interval", "everyMinutes": 60}}),
    )
    .await;
    let id = id_of(&created);

    let paused = ok(&store, "missions_pause", json!({"id": id})).await;
    assert_eq!(paused["state"], "paused");
    assert_eq!(
        ok(&store, "missions_list", json!({"state": "paused"})).await["count"],
        1
    );
    assert_eq!(
        ok(&store, "missions_list", json!({"state": "active"})).await["count"],
        0
    );
    // Pausing twice is harmless.
    assert_eq!(
        ok(&store, "missions_pause", json!({"id": id})).await["state"],
        "paused"
    );

    let later = now() + Duration::hours(5);
    let resumed = Registry::global()
        .call(
            "missions_resume",
            json!({"id": id}),
            &store,
            &crate::CallContext::new(later),
        )
        .await
        .unwrap();
    let mission = mission_of(&resumed);
    assert_eq!(mission.state, MissionState::Active);
    assert_eq!(mission.next_run_at, Some(later + Duration::minutes(60)));

    let updated = ok(
        &store,
        "missions_update",
        json!({"id": id, "title": "New", "cadence": {"kind": "weekly", "dayOfWeek": 3, "atHour": 9}}),
    )
    .await;
    let mission = mission_of(&updated);
    assert_eq!(mission.title, "New");
    // Wednesday 2026-03-11 09:00 UTC is the next weekly slot after Tuesday noon.
    assert_eq!(mission.next_run_at, Some(now() + Duration::hours(21)));

    let err = call(
        &store,
        "missions_update",
        json!({"id": id, "iterations": []}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ToolError::InvalidInput(m) if m.contains("'iterations'")),
        "{err:?}"
    );
    let err = call(
        &store,
        "missions_update",
        json!({"id": id, "state": "done"}),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ToolError::InvalidInput(_)));

    // A done mission can neither be paused nor resumed.
    crate::RecordStore::update(
        &store,
        "ai",
        "aiMissions",
        &id,
        serde_json::Map::from_iter([("state".to_owned(), json!("done"))]),
    )
    .await
    .unwrap();
    for tool in ["missions_pause", "missions_resume"] {
        let err = call(&store, tool, json!({"id": id})).await.unwrap_err();
        assert!(
            matches!(&err, ToolError::InvalidInput(m) if m.contains("is done")),
            "{tool}: {err:?}"
        );
    }
}

#[tokio::test]
async fn missions_views_bound_iterations() {
    let store = MemoryStore::new();
    let id = id_of(
        &ok(
            &store,
            "missions_create",
            json!({"title": "t", "objective": "o", "cadence": {"kind": "manual"}}),
        )
        .await,
    );
    let iterations: Vec<Value> = (0..12)
        .map(|i| json!({"id": format!("it-{i}"), "startedAt": "2026-03-10T12:00:00Z", "plan": [], "overallStatus": "approved"}))
        .collect();
    crate::RecordStore::update(
        &store,
        "ai",
        "aiMissions",
        &id,
        serde_json::Map::from_iter([("iterations".to_owned(), json!(iterations))]),
    )
    .await
    .unwrap();
    let got = ok(&store, "missions_get", json!({"id": id})).await;
    assert_eq!(got["iterationCount"], 12);
    let shown = got["iterations"].as_array().unwrap();
    assert_eq!(shown.len(), 10);
    assert_eq!(shown[0]["id"], "it-2");
    assert_eq!(shown[9]["id"], "it-11");
    let listed = ok(&store, "missions_list", json!({})).await;
    assert!(listed["items"][0].get("iterations").is_none());
    assert_eq!(listed["items"][0]["iterationCount"], 12);
}

#[tokio::test]
async fn seeded_goal_progress_is_applied_once() {
    let store = MemoryStore::new();
    let id = id_of(
        &ok(
            &store,
            "goals_create",
            json!({"title": "Run", "target": 10}),
        )
        .await,
    );
    let step = ctx().with_id_seed("mission-1/iteration-1/step-1");
    let args = json!({"id": id, "amount": 4});
    let first = Registry::global()
        .call("goals_log_progress", args.clone(), &store, &step)
        .await
        .unwrap();
    let again = Registry::global()
        .call("goals_log_progress", args.clone(), &store, &step)
        .await
        .unwrap();
    assert_eq!(first["progress"], 4);
    assert_eq!(again, first);
    assert_eq!(store.count("goals", "goalProgress"), 1);
    // Another step is another log.
    let other = Registry::global()
        .call(
            "goals_log_progress",
            args,
            &store,
            &ctx().with_id_seed("mission-1/iteration-1/step-2"),
        )
        .await
        .unwrap();
    assert_eq!(other["progress"], 8);
    assert_eq!(store.count("goals", "goalProgress"), 2);
}
