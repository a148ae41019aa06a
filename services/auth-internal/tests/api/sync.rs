use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_body, error_code, title_change};

fn change(record: &str, op: &str, data: Value, stamps: Value) -> Value {
    json!({"appId": "todo", "table": "tasks", "recordId": record, "op": op, "data": data, "fieldStamps": stamps})
}

async fn record_data(app: &TestApp, user: uuid::Uuid, record: &str) -> (Value, bool) {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        data: Value,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        deleted: bool,
    }
    let mut conn = app.db.conn().await;
    let r: R = diesel::sql_query(
        "SELECT data, deleted FROM records WHERE user_id = $1 AND record_id = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .bind::<diesel::sql_types::Text, _>(record)
    .get_result(&mut conn)
    .await
    .unwrap();
    (r.data, r.deleted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_merges_fields_by_stamp_and_pull_pages_the_log() {
    let app = TestApp::spawn().await;
    let (user, token) = app.register_user("sync@example.com").await;
    let t1 = "2026-11-18T11:00:00Z";
    let t2 = "2026-11-18T11:30:00Z";
    // Two devices edit different and the same fields; the older write arrives last.
    let resp = app
        .push(&token, json!({"clientId": "phone", "changes": [
            change("r1", "insert", json!({"title": "Milch", "done": false}), json!({"title": t1, "done": t1})),
            change("r1", "update", json!({"title": "Hafermilch"}), json!({"title": t2})),
        ]}))
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    let resp = app
        .push(&token, json!({"clientId": "laptop", "changes": [
            change("r1", "update", json!({"title": "Sojamilch", "done": true}), json!({"title": t1, "done": t2})),
        ]}))
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["applied"], 1);
    let (data, deleted) = record_data(&app, user, "r1").await;
    assert_eq!(data, json!({"title": "Hafermilch", "done": true}));
    assert!(!deleted);

    // Pull: in order, paged, with a cursor.
    let page1 = app.pull(&token, "", 2).await;
    assert_eq!(page1["changes"].as_array().unwrap().len(), 2);
    assert_eq!(page1["hasMore"], true);
    assert_eq!(page1["changes"][0]["op"], "insert");
    assert_eq!(page1["changes"][0]["clientId"], "phone");
    assert_eq!(page1["changes"][0]["origin"], "client");
    let page2 = app.pull(&token, page1["cursor"].as_str().unwrap(), 2).await;
    assert_eq!(page2["changes"].as_array().unwrap().len(), 1);
    assert_eq!(page2["hasMore"], false);
    assert_eq!(page2["changes"][0]["clientId"], "laptop");
    let empty = app.pull(&token, page2["cursor"].as_str().unwrap(), 2).await;
    assert!(empty["changes"].as_array().unwrap().is_empty());
    assert_eq!(empty["cursor"], page2["cursor"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_tombstones_that_updates_do_not_resurrect() {
    let app = TestApp::spawn().await;
    let (user, token) = app.register_user("tomb@example.com").await;
    app.push(&token, json!({"clientId": "a", "changes": [
        change("r", "insert", json!({"title": "x"}), json!({"title": "2026-11-18T10:00:00Z"})),
        {"appId": "todo", "table": "tasks", "recordId": "r", "op": "delete", "stamp": "2026-11-18T10:05:00Z"},
        change("r", "update", json!({"title": "later"}), json!({"title": "2026-11-18T10:10:00Z"})),
    ]}))
    .await;
    assert!(
        record_data(&app, user, "r").await.1,
        "an update after the delete does not resurrect"
    );
    app.push(&token, json!({"clientId": "a", "changes": [
        {"appId": "todo", "table": "tasks", "recordId": "r", "op": "insert", "stamp": "2026-11-18T10:20:00Z", "data": {"done": false}},
    ]}))
    .await;
    let (data, deleted) = record_data(&app, user, "r").await;
    assert!(
        !deleted,
        "an explicit insert after the tombstone re-creates it"
    );
    assert_eq!(data["title"], "later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_stamps_are_clamped_to_the_server_clock() {
    let app = TestApp::spawn().await;
    let (user, token) = app.register_user("skew@example.com").await;
    // A device whose clock is a year ahead writes first…
    let resp = app
        .push(&token, json!({"clientId": "skewed", "changes": [
            change("r", "insert", json!({"title": "from the future"}), json!({"title": "2027-11-18T12:00:00Z"}))]}))
        .await;
    assert_eq!(resp.json::<Value>().await.unwrap()["clamped"], 1);
    // …and a correct device ten minutes later still wins.
    app.clock.advance(chrono::TimeDelta::minutes(10));
    app.push(
        &token,
        json!({"clientId": "ok", "changes": [
        change("r", "update", json!({"title": "now"}), json!({"title": "2026-11-18T12:10:00Z"}))]}),
    )
    .await;
    assert_eq!(record_data(&app, user, "r").await.0["title"], "now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_is_all_or_nothing_and_bounded() {
    let app = TestApp::spawn().await;
    let (_, token) = app.register_user("bad@example.com").await;
    let resp = app
        .push(
            &token,
            json!({"clientId": "c", "changes": [
                change("ok", "insert", json!({"title": "fine"}), json!({})),
                change("bad", "insert", json!({"__secret": 1}), json!({})),
            ]}),
        )
        .await;
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let resp = app
        .push(
            &token,
            json!({"clientId": "c", "changes": [change("x", "upsert", json!({}), json!({}))]}),
        )
        .await;
    let body = error_body(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("changes[0].op"),
        "{body}"
    );
    let resp = app
        .push(&token, json!({"clientId": "c", "changes": [change("x", "update", json!({"a": 1}), json!({"a": "yesterday"}))]}))
        .await;
    assert_eq!(
        error_code(resp, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let many: Vec<Value> = (0..1001)
        .map(|i| change(&format!("r{i}"), "insert", json!({"n": i}), json!({})))
        .collect();
    let resp = app
        .push(&token, json!({"clientId": "c", "changes": many}))
        .await;
    assert_eq!(
        error_code(resp, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM sync_changes")
            .await,
        0
    );
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM records").await, 0);
    let many: Vec<Value> = (0..1000)
        .map(|i| change(&format!("r{i}"), "insert", json!({"n": i}), json!({})))
        .collect();
    let resp = app
        .push(&token, json!({"clientId": "c", "changes": many}))
        .await;
    assert_eq!(resp.json::<Value>().await.unwrap()["applied"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_never_see_each_others_changes() {
    let app = TestApp::spawn().await;
    let (alice, alice_token) = app.register_user("alice@example.com").await;
    let (_, bob_token) = app.register_user("bob@example.com").await;
    app.push(&alice_token, json!({"clientId": "a", "changes": [change("shared-id", "insert", json!({"title": "Alice's"}), json!({}))]}))
        .await;
    // Bob writes the same record address: it is his own record, Alice's is untouched.
    app.push(&bob_token, json!({"clientId": "b", "changes": [change("shared-id", "update", json!({"title": "Bob's"}), json!({}))]}))
        .await;
    assert_eq!(
        record_data(&app, alice, "shared-id").await.0["title"],
        "Alice's"
    );
    let bob_pull = app.pull(&bob_token, "", 100).await;
    let titles: Vec<&Value> = bob_pull["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["data"]["title"])
        .collect();
    assert_eq!(titles, vec![&json!("Bob's")]);
    // No token or a garbage token: 401.
    let resp = app
        .client
        .get(app.url("/api/v1/sync/pull"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let resp = app
        .client
        .get(app.url("/api/v1/sync/pull"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
    let resp = app
        .client
        .get(app.url("/api/v1/sync/pull?since=abc"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp, StatusCode::BAD_REQUEST).await,
        "bad_request"
    );
}

/// The same set of changes pushed in different orders (each order by its own
/// user, one change per push as separate devices would) ends in identical records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_order_of_the_same_changes_converges() {
    use rand::{SeedableRng, seq::SliceRandom};
    let app = TestApp::spawn().await;
    let s = |m: u32| format!("2026-11-18T10:{m:02}:00Z");
    let changes = vec![
        json!({"appId": "todo", "table": "tasks", "recordId": "a", "op": "insert", "data": {"title": "A", "n": 1}, "fieldStamps": {"title": s(1), "n": s(1)}}),
        json!({"appId": "todo", "table": "tasks", "recordId": "a", "op": "update", "data": {"title": "A2"}, "fieldStamps": {"title": s(5)}}),
        json!({"appId": "todo", "table": "tasks", "recordId": "a", "op": "update", "data": {"n": 7, "tag": "x"}, "fieldStamps": {"n": s(3), "tag": s(3)}}),
        // Equal stamps, different values: a deterministic tie-break.
        json!({"appId": "todo", "table": "tasks", "recordId": "a", "op": "update", "data": {"tag": "y"}, "fieldStamps": {"tag": s(3)}}),
        json!({"appId": "todo", "table": "tasks", "recordId": "b", "op": "insert", "data": {"title": "B"}, "fieldStamps": {"title": s(2)}}),
        json!({"appId": "todo", "table": "tasks", "recordId": "b", "op": "delete", "stamp": s(4)}),
        json!({"appId": "todo", "table": "tasks", "recordId": "b", "op": "update", "data": {"title": "B late"}, "fieldStamps": {"title": s(9)}}),
        json!({"appId": "todo", "table": "tasks", "recordId": "c", "op": "delete", "stamp": s(6)}),
        json!({"appId": "todo", "table": "tasks", "recordId": "c", "op": "insert", "data": {"title": "C"}, "fieldStamps": {"title": s(8)}}),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut snapshots = Vec::new();
    for round in 0..8 {
        let mut order = changes.clone();
        if round > 0 {
            order.shuffle(&mut rng);
        }
        let (user, token) = app
            .register_user(&format!("order{round}@example.com"))
            .await;
        for c in order {
            let resp = app
                .push(
                    &token,
                    json!({"clientId": format!("dev{round}"), "changes": [c]}),
                )
                .await;
            assert_eq!(resp.status(), StatusCode::OK);
        }
        let mut rows = Vec::new();
        for id in ["a", "b", "c"] {
            rows.push(record_data(&app, user, id).await);
        }
        snapshots.push(rows);
    }
    for s in &snapshots[1..] {
        assert_eq!(s, &snapshots[0]);
    }
    let a = &snapshots[0][0];
    assert_eq!(a.0, json!({"title": "A2", "n": 7, "tag": "y"}));
    assert!(
        snapshots[0][1].1,
        "b stays deleted: the later update does not resurrect it"
    );
    assert!(!snapshots[0][2].1, "c's insert is newer than its tombstone");
}

/// Every column that last-writer-wins decides, for all of a user's records.
async fn merged_records(app: &TestApp, user: uuid::Uuid) -> Vec<Value> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        row: Value,
    }
    let mut conn = app.db.conn().await;
    let rows: Vec<R> = diesel::sql_query(
        "SELECT jsonb_build_object('app', app_id, 'table', table_name, 'id', record_id, \
                'data', data, 'stamps', field_timestamps, 'created', created_stamp, \
                'tombstone', tombstone, 'deleted', deleted, 'written', last_change_id > 0) AS row \
         FROM records WHERE user_id = $1 ORDER BY app_id, table_name, record_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.row).collect()
}

/// The same 1,000 changes (many per record, inserts, updates, deletes,
/// re-inserts, stale and tied stamps) pushed whole, in batches of 250, 7 and
/// one at a time end in identical records: set-based batches merge exactly
/// like one change after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_does_not_change_the_merged_records() {
    use rand::{Rng, SeedableRng};
    let app = TestApp::spawn().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let fields = ["title", "n", "tag", "done"];
    let changes: Vec<Value> = (0..1000)
        .map(|i| {
            let record = format!("r{}", rng.random_range(0..150));
            let table = if rng.random_bool(0.2) { "notes" } else { "tasks" };
            let stamp = format!(
                "2026-11-18T{:02}:{:02}:{:02}Z",
                rng.random_range(8..12),
                rng.random_range(0..60),
                rng.random_range(0..3)
            );
            match rng.random_range(0..10) {
                0 => json!({"appId": "todo", "table": table, "recordId": record, "op": "delete", "stamp": stamp}),
                k => {
                    let op = if k < 4 { "insert" } else { "update" };
                    let mut data = serde_json::Map::new();
                    let mut stamps = serde_json::Map::new();
                    for f in fields.iter().filter(|_| rng.random_bool(0.5)) {
                        data.insert((*f).into(), json!(format!("{f}{i}")));
                        stamps.insert((*f).into(), json!(stamp));
                    }
                    if data.is_empty() {
                        data.insert("title".into(), json!(i));
                        stamps.insert("title".into(), json!(stamp));
                    }
                    json!({"appId": "todo", "table": table, "recordId": record, "op": op, "data": data, "fieldStamps": stamps})
                }
            }
        })
        .collect();
    let mut results = Vec::new();
    for size in [1000usize, 250, 7, 1] {
        let (user, token) = app.register_user(&format!("batch{size}@example.com")).await;
        let mut applied = 0;
        for chunk in changes.chunks(size) {
            let resp = app
                .push(&token, json!({"clientId": "dev", "changes": chunk}))
                .await;
            assert_eq!(resp.status(), StatusCode::OK, "batch size {size}");
            let body: Value = resp.json().await.unwrap();
            applied += body["applied"].as_u64().unwrap();
        }
        assert_eq!(applied, 1000);
        results.push((size, merged_records(&app, user).await));
    }
    let (_, whole) = &results[0];
    assert!(whole.len() > 100, "{} records", whole.len());
    assert!(whole.iter().any(|r| r["deleted"] == json!(true)));
    assert!(whole.iter().any(|r| r["deleted"] == json!(false)));
    for (size, rows) in &results[1..] {
        assert_eq!(rows, whole, "batch size {size} differs from one batch");
    }
}

/// A user's change log without ids and users: what each push appended.
async fn logged_changes(app: &TestApp, user: uuid::Uuid) -> Vec<Value> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        row: Value,
    }
    let mut conn = app.db.conn().await;
    let rows: Vec<R> = diesel::sql_query(
        "SELECT jsonb_build_object('client', client_id, 'app', app_id, 'table', table_name, \
                'id', record_id, 'op', op, 'data', data, 'stamps', field_timestamps, 'stamp', stamp) AS row \
         FROM sync_changes WHERE user_id = $1 ORDER BY client_id, id",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.row).collect()
}

/// Two pushes that create the same records at the same moment are both
/// applied: the one whose new records were created under it starts over and
/// merges into them. The records end as if the pushes had come one after the
/// other, and the log holds each pushed change exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_creating_the_same_records_both_apply() {
    use diesel::prelude::*;
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    let app = TestApp::spawn().await;
    let s = |m: u32| format!("2026-11-18T10:{m:02}:00Z");
    // Both create r0..r59 (different fields, overlapping `title` with other
    // stamps) and records of their own; "b" also deletes r7.
    let push = |client: &str, minute: u32, own: &str| {
        let mut changes: Vec<Value> = (0..60)
            .map(|i| {
                change(
                    &format!("r{i}"),
                    "insert",
                    json!({"title": format!("{client}{i}"), client: i}),
                    json!({"title": s(minute + i % 3), client: s(minute)}),
                )
            })
            .collect();
        changes.extend((0..20).map(|i| {
            change(
                &format!("{own}{i}"),
                "insert",
                json!({"n": i}),
                json!({"n": s(minute)}),
            )
        }));
        json!({"clientId": client, "changes": changes})
    };
    let mut a = push("a", 1, "only-a-");
    let b = {
        let mut b = push("b", 2, "only-b-");
        b["changes"].as_array_mut().unwrap().push(
            json!({"appId": "todo", "table": "tasks", "recordId": "r7", "op": "delete", "stamp": s(30)}),
        );
        b
    };
    a["changes"].as_array_mut().unwrap().push(change(
        "r8",
        "update",
        json!({"title": "a late"}),
        json!({"title": s(40)}),
    ));

    // The reference: one push after the other.
    let (seq_user, seq_token) = app.register_user("sequential@example.com").await;
    for body in [&a, &b] {
        let resp = app.push(&seq_token, body.clone()).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    // At the same moment: while another transaction holds the change log in
    // SHARE mode, each push gets past its lock steps (its user's row, and the
    // records: nothing of them exists yet) and then waits in its write (its
    // INSERT into the log). Released when both wait, one of them finds its new
    // records created by the other.
    let (user, token) = app.register_user("concurrent@example.com").await;
    let mut holder = app.db.conn().await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .batch_execute("LOCK TABLE sync_changes IN SHARE MODE")
        .await
        .unwrap();
    let release = async {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut watcher = app.db.conn().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let waiting: N = diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .get_result(&mut watcher)
            .await
            .unwrap();
            if waiting.n >= 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the pushes never both waited ({} waiting)",
                waiting.n
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        holder.batch_execute("COMMIT").await.unwrap();
    };
    let (ra, rb, ()) = tokio::join!(
        app.push(&token, a.clone()),
        app.push(&token, b.clone()),
        release
    );
    for (resp, n) in [(ra, 81), (rb, 81)] {
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.json::<Value>().await.unwrap()["applied"], n);
    }

    let merged = merged_records(&app, user).await;
    assert_eq!(merged.len(), 60 + 20 + 20);
    assert_eq!(merged, merged_records(&app, seq_user).await);
    let r0 = merged.iter().find(|r| r["id"] == "r0").unwrap();
    assert_eq!(r0["data"], json!({"title": "b0", "a": 0, "b": 0}));
    assert!(
        merged
            .iter()
            .any(|r| r["id"] == "r7" && r["deleted"] == json!(true))
    );
    assert_eq!(
        logged_changes(&app, user).await,
        logged_changes(&app, seq_user).await,
        "every pushed change is logged exactly once"
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM sync_changes WHERE user_id = '{user}'"
        ))
        .await,
        162
    );
}

/// Deleting a user takes its records and change log with it and leaves other users'
/// alone; a deleted user's token (still valid: JWTs are not revoked) writes nothing
/// and gets 401 `unauthorized` (no user row to lock), not a 500 — by push and by
/// a single write alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_records_go_with_it_and_its_token_writes_nothing() {
    use auth_internal::db::records::{self, Author, RecordError, RecordKey};
    use diesel_async::AsyncConnection;

    let app = TestApp::spawn().await;
    let (gone, gone_token) = app.register_user("gone@example.com").await;
    let (kept, kept_token) = app.register_user("kept@example.com").await;
    let t = "2026-11-18T11:00:00Z";
    let body = json!({"clientId": "phone", "changes": [
        change("r1", "insert", json!({"title": "Milch"}), json!({"title": t})),
        change("r2", "insert", json!({"title": "Brot"}), json!({"title": t})),
        change("r1", "update", json!({"done": true}), json!({"done": t})),
    ]});
    for token in [&gone_token, &kept_token] {
        let resp = app.push(token, body.clone()).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{}",
            resp.text().await.unwrap()
        );
    }
    assert_eq!(app.stored_rows(gone).await, (3, 2));

    app.sql(&format!("DELETE FROM users WHERE id = '{gone}'"))
        .await;
    assert_eq!(app.stored_rows(gone).await, (0, 0), "the user's rows went");
    assert_eq!(app.stored_rows(kept).await, (3, 2), "another user's stayed");

    let resp = app.push(&gone_token, body).await;
    let err = error_body(resp, StatusCode::UNAUTHORIZED).await;
    assert_eq!(err["error"]["code"], "unauthorized", "{err}");
    assert_eq!(app.stored_rows(gone).await, (0, 0), "a push wrote nothing");

    // The single-write path (MCP tools, missions) refuses the same way.
    let one = title_change(lww::Op::Insert, 0, "Käse");
    let key = RecordKey {
        user_id: gone,
        app_id: "todo",
        table: "tasks",
        record_id: "r3",
    };
    let author = Author {
        client_id: "test",
        origin: "mcp",
    };
    let mut conn = app.db.conn().await;
    let refused = conn
        .transaction::<_, RecordError, _>(async |c| {
            records::append(c, key, &one, author, chrono::Utc::now()).await
        })
        .await;
    assert!(
        matches!(refused, Err(RecordError::UnknownUser)),
        "{refused:?}"
    );
    assert_eq!(
        app.stored_rows(gone).await,
        (0, 0),
        "a single write wrote nothing"
    );
}

/// A user deleted while a write of theirs is in flight: the delete waits for the
/// write, then takes what it wrote. No row of a deleted user is left behind, for
/// each kind of write (a push's batch, a one-statement create, a merge into an
/// existing record) — the store's writes lock the user's row in place of a
/// foreign key per row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deleted_during_a_write_keeps_none_of_its_rows() {
    use auth_internal::db::records::{self, Author, BatchItem, Expect, RecordKey};
    use diesel_async::{AsyncConnection, TransactionManager};
    type Tm = <diesel_async::AsyncPgConnection as AsyncConnection>::TransactionManager;

    let app = TestApp::spawn().await;
    let author = Author {
        client_id: "test",
        origin: "mcp",
    };
    let waiting = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM users%'";
    for write in ["batch", "create", "merge"] {
        let (user, _) = app.register_user(&format!("{write}@example.com")).await;
        let key = RecordKey {
            user_id: user,
            app_id: "todo",
            table: "tasks",
            record_id: "r1",
        };
        let mut writer = app.db.conn().await;
        if write == "merge" {
            let first = title_change(lww::Op::Insert, 0, "Milch");
            records::create(&mut writer, key, &first, author, chrono::Utc::now())
                .await
                .unwrap()
                .unwrap();
        }
        let change = title_change(lww::Op::Insert, 1, "Brot");
        Tm::begin_transaction(&mut writer).await.unwrap();
        let now = chrono::Utc::now();
        match write {
            "batch" => {
                let items = [BatchItem {
                    app_id: key.app_id,
                    table: key.table,
                    record_id: key.record_id,
                    change: &change,
                }];
                records::append_batch(&mut writer, user, &items, author, now)
                    .await
                    .map(drop)
            }
            "create" => records::append_if(&mut writer, key, &change, author, now, Expect::NotLive)
                .await
                .map(drop),
            _ => records::append(&mut writer, key, &change, author, now)
                .await
                .map(drop),
        }
        .unwrap();

        let delete = format!("DELETE FROM users WHERE id = '{user}'");
        let ((), ()) = tokio::join!(app.sql(&delete), async {
            app.wait_until_counted(
                waiting,
                &format!("{write}: the delete never waited for the write"),
            )
            .await;
            Tm::commit_transaction(&mut writer).await.unwrap();
        });
        assert_eq!(
            app.stored_rows(user).await,
            (0, 0),
            "{write}: rows left behind"
        );
    }
}

/// A create (`Expect::NotLive`, the MCP create tools) of a new id is one statement;
/// it must still say what the general path says: the log row's id is the record's
/// `last_change_id`, a second create of the id is refused with nothing written, a
/// deleted record can be created again, and of two concurrent creates of one id the
/// second waits for the first and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_write_the_record_and_its_log_row_once_and_refuse_a_live_id() {
    use auth_internal::db::records::{self, Author, Expect, RecordError, RecordKey};
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};

    let app = TestApp::spawn().await;
    let (user, _) = app.register_user("creates@example.com").await;
    let author = Author {
        client_id: "test",
        origin: "mcp",
    };
    let key = |record_id| RecordKey {
        user_id: user,
        app_id: "todo",
        table: "tasks",
        record_id,
    };
    let write = async |record, change: &lww::Change, expect| {
        let mut conn = app.db.conn().await;
        conn.transaction::<_, RecordError, _>(async |c| {
            records::append_if(c, key(record), change, author, chrono::Utc::now(), expect).await
        })
        .await
    };
    let logged = |record: &str| {
        format!(
            "SELECT count(*) AS n FROM sync_changes WHERE user_id = '{user}' AND record_id = '{record}'"
        )
    };

    let made = write(
        "r1",
        &title_change(lww::Op::Insert, 1, "Milch"),
        Expect::NotLive,
    )
    .await
    .unwrap();
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM records r JOIN sync_changes c ON c.id = r.last_change_id \
             WHERE r.user_id = '{user}' AND r.record_id = 'r1' AND c.id = {} AND NOT r.deleted",
            made.change_id
        ))
        .await,
        1,
        "the record points at its log row"
    );
    let again = write(
        "r1",
        &title_change(lww::Op::Insert, 2, "Brot"),
        Expect::NotLive,
    )
    .await;
    assert!(matches!(again, Err(RecordError::AlreadyLive)), "{again:?}");
    assert_eq!(
        app.sql_count(&logged("r1")).await,
        1,
        "a refused create logs nothing"
    );
    assert_eq!(
        record_data(&app, user, "r1").await,
        (json!({"title": "Milch"}), false)
    );

    // Deleted, then created again (the general path: a row exists).
    write("r1", &title_change(lww::Op::Delete, 3, ""), Expect::Live)
        .await
        .unwrap();
    write(
        "r1",
        &title_change(lww::Op::Insert, 4, "Käse"),
        Expect::NotLive,
    )
    .await
    .unwrap();
    assert_eq!(
        record_data(&app, user, "r1").await,
        (json!({"title": "Käse"}), false)
    );
    assert_eq!(app.sql_count(&logged("r1")).await, 3);

    // Two creates of one new id at once: the second waits, then is refused.
    let waiting = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND query LIKE 'WITH u AS MATERIALIZED %, r AS (INSERT INTO records%'";
    let mut first = app.db.conn().await;
    first.batch_execute("BEGIN").await.unwrap();
    let c1 = title_change(lww::Op::Insert, 5, "erste");
    records::append_if(
        &mut first,
        key("r2"),
        &c1,
        author,
        chrono::Utc::now(),
        Expect::NotLive,
    )
    .await
    .unwrap();
    let c2 = title_change(lww::Op::Insert, 6, "zweite");
    let (second, ()) = tokio::join!(write("r2", &c2, Expect::NotLive), async {
        app.wait_until_counted(waiting, "the second create never waited for the first")
            .await;
        first.batch_execute("COMMIT").await.unwrap();
    });
    assert!(
        matches!(second, Err(RecordError::AlreadyLive)),
        "{second:?}"
    );
    assert_eq!(
        record_data(&app, user, "r2").await,
        (json!({"title": "erste"}), false)
    );
    assert_eq!(app.sql_count(&logged("r2")).await, 1);
}
