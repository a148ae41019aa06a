//! `MemoryStore` keeps the `RecordStore` contract.

use serde_json::{Map, Value, json};

use crate::{ListQuery, MemoryStore, RecordStore, Search, StoreError};

fn obj(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[tokio::test]
async fn crud_and_tombstones() {
    let store = MemoryStore::new();
    store
        .insert("a", "t", "1", obj(json!({"x": 1, "y": 2})))
        .await
        .unwrap();
    assert!(matches!(
        store.insert("a", "t", "1", Map::new()).await,
        Err(StoreError::Invalid(_))
    ));
    let patched = store
        .update("a", "t", "1", obj(json!({"y": 3, "z": 4})))
        .await
        .unwrap();
    assert_eq!(Value::Object(patched.data), json!({"x": 1, "y": 3, "z": 4}));
    assert_eq!(
        store.update("a", "t", "2", Map::new()).await,
        Err(StoreError::NotFound)
    );
    // Tables are separate.
    assert_eq!(store.get("a", "other", "1").await.unwrap(), None);
    store.delete("a", "t", "1").await.unwrap();
    assert_eq!(store.get("a", "t", "1").await.unwrap(), None);
    assert_eq!(
        store.update("a", "t", "1", Map::new()).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.delete("a", "t", "1").await, Err(StoreError::NotFound));
    assert_eq!(store.count("a", "t"), 0);
}

#[tokio::test]
async fn list_filters_like_jsonb_containment_newest_first() {
    let store = MemoryStore::new();
    store
        .insert(
            "a",
            "t",
            "1",
            obj(json!({"title": "Alpha", "tags": ["x", "y"], "done": true})),
        )
        .await
        .unwrap();
    store
        .insert(
            "a",
            "t",
            "2",
            obj(json!({"title": "beta", "tags": ["y"], "meta": {"k": 1, "j": 2}})),
        )
        .await
        .unwrap();
    store
        .insert("a", "t", "3", obj(json!({"title": "Gamma", "done": false})))
        .await
        .unwrap();
    let ids =
        |records: Vec<crate::StoredRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let query = |v: Value, not: Value, search: Option<(&[&str], &str)>, limit: u32| ListQuery {
        contains: obj(v),
        not_contains: obj(not),
        search: search.map(|(fields, text)| Search {
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            text: text.to_owned(),
        }),
        limit,
    };
    let list = |q: ListQuery| {
        let store = &store;
        async move { ids(store.list("a", "t", &q).await.unwrap()) }
    };
    assert_eq!(
        list(query(json!({}), json!({}), None, 10)).await,
        ["3", "2", "1"]
    );
    assert_eq!(list(query(json!({}), json!({}), None, 2)).await, ["3", "2"]);
    assert_eq!(
        list(query(json!({"tags": ["y"]}), json!({}), None, 10)).await,
        ["2", "1"]
    );
    assert_eq!(
        list(query(json!({"tags": ["x", "y"]}), json!({}), None, 10)).await,
        ["1"]
    );
    assert_eq!(
        list(query(json!({"meta": {"k": 1.0}}), json!({}), None, 10)).await,
        ["2"]
    );
    // A record without the field passes NOT (data @> {done: true}).
    assert_eq!(
        list(query(json!({}), json!({"done": true}), None, 10)).await,
        ["3", "2"]
    );
    assert_eq!(
        list(query(json!({}), json!({}), Some((&["title"], "A")), 10)).await,
        ["3", "2", "1"]
    );
    assert_eq!(
        list(query(json!({}), json!({}), Some((&["title"], "alp")), 10)).await,
        ["1"]
    );
    assert_eq!(
        list(query(json!({}), json!({}), Some((&["tags"], "X")), 10)).await,
        ["1"]
    );
    assert_eq!(
        list(query(json!({}), json!({}), Some((&["nothing"], "a")), 10)).await,
        Vec::<String>::new()
    );
    store.delete("a", "t", "2").await.unwrap();
    assert_eq!(
        list(query(json!({}), json!({}), None, 10)).await,
        ["3", "1"]
    );
}
