//! Property tests: the merge converges whatever the order, is idempotent and monotonic.
//!
//! Stamps come from a tiny domain (4 wall times × 2 counters × 3 nodes) and values from
//! a handful of JSON values, so equal stamps, and equal stamps with different values,
//! are common.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns panic on broken set-up"
)]

use std::collections::BTreeMap;

use lww::{Applied, Change, Op, RecordState, Stamp, apply};
use proptest::prelude::*;
use serde_json::{Value, json};

type Log = Vec<(usize, Change)>;
type Store = BTreeMap<usize, RecordState>;

fn stamp() -> impl Strategy<Value = Stamp> {
    (0..4i64, 0..2u32, prop::sample::select(vec!["", "a", "b"]))
        .prop_map(|(wall, counter, node)| Stamp::new(wall, counter, node).unwrap())
}

fn value() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!(null),
        json!(1),
        json!(1.0),
        json!("x"),
        json!("y"),
        json!(true),
        json!([1, 2]),
        json!({"k": 1, "j": "z"}),
        json!({"k": 2}),
    ])
}

fn change() -> impl Strategy<Value = Change> {
    let op = prop::sample::select(vec![Op::Insert, Op::Update, Op::Update, Op::Delete]);
    let field = (prop::sample::select(vec!["a", "b", "c"]), value(), stamp())
        .prop_map(|(name, value, stamp)| (name.to_owned(), value, stamp));
    (op, prop::collection::vec(field, 0..4), stamp()).prop_map(|(op, fields, stamp)| Change {
        op,
        fields,
        stamp,
    })
}

fn log() -> impl Strategy<Value = Log> {
    prop::collection::vec((0..3usize, change()), 0..24)
}

fn replay(log: &[(usize, Change)]) -> Store {
    let mut store = Store::new();
    for (record, change) in log {
        apply(store.entry(*record).or_default(), change);
    }
    store
}

fn json_of(store: &Store) -> String {
    serde_json::to_string(store).unwrap()
}

proptest! {
    #[test]
    fn any_permutation_converges(
        (log, shuffled) in log().prop_flat_map(|l| (Just(l.clone()), Just(l).prop_shuffle()))
    ) {
        prop_assert_eq!(json_of(&replay(&log)), json_of(&replay(&shuffled)));
    }

    #[test]
    fn matches_reference_model(log in log()) {
        let store = replay(&log);
        for (record, state) in &store {
            let changes: Vec<&Change> =
                log.iter().filter(|(r, _)| r == record).map(|(_, c)| c).collect();
            // Each field: the write with the largest (stamp, JSON text).
            let mut expected: BTreeMap<&str, (&Stamp, String, &Value)> = BTreeMap::new();
            for (name, value, stamp) in changes.iter().flat_map(|c| &c.fields) {
                let candidate = (stamp, value.to_string(), value);
                let slot = expected.entry(name).or_insert(candidate.clone());
                if (candidate.0, &candidate.1) > (slot.0, &slot.1) {
                    *slot = candidate;
                }
            }
            prop_assert_eq!(state.fields.len(), expected.len());
            for (name, (stamp, _, value)) in expected {
                prop_assert_eq!(&state.fields[name].stamp, stamp);
                prop_assert_eq!(&state.fields[name].value, value);
            }
            let max_of = |op: Op| changes.iter().filter(|c| c.op == op).map(|c| &c.stamp).max();
            prop_assert_eq!(state.created.as_ref(), max_of(Op::Insert));
            prop_assert_eq!(state.tombstone.as_ref(), max_of(Op::Delete));
            let deleted = match (max_of(Op::Delete), max_of(Op::Insert)) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(t), Some(c)) => t >= c,
            };
            prop_assert_eq!(state.is_deleted(), deleted);
        }
    }

    #[test]
    fn reapplying_is_a_noop(log in log()) {
        let mut store = replay(&log);
        let before = json_of(&store);
        for (record, change) in &log {
            let applied = apply(store.entry(*record).or_default(), change);
            prop_assert!(applied.is_noop(), "{:?}", applied);
            prop_assert!(!applied.visibility_changed());
        }
        prop_assert_eq!(json_of(&store), before);
    }

    #[test]
    fn duplicated_and_shuffled_log_converges(
        (log, doubled) in log().prop_flat_map(|l| {
            let twice: Log = l.iter().chain(l.iter()).cloned().collect();
            (Just(l), Just(twice).prop_shuffle())
        })
    ) {
        prop_assert_eq!(json_of(&replay(&log)), json_of(&replay(&doubled)));
    }

    #[test]
    fn merge_is_monotonic_and_applied_is_accurate(log in log()) {
        let mut store = Store::new();
        for (record, change) in &log {
            let state = store.entry(*record).or_default();
            let old = state.clone();
            let applied: Applied = apply(state, change);
            for (name, field) in &old.fields {
                let new = &state.fields[name];
                prop_assert!(new.stamp >= field.stamp);
                prop_assert_eq!(applied.changed_fields.contains(name), new != field);
            }
            for name in state.fields.keys().filter(|n| !old.fields.contains_key(*n)) {
                prop_assert!(applied.changed_fields.contains(name));
            }
            prop_assert!(state.created >= old.created);
            prop_assert!(state.tombstone >= old.tombstone);
            prop_assert_eq!(
                applied.markers_changed,
                state.created != old.created || state.tombstone != old.tombstone
            );
            prop_assert_eq!(applied.visible_before, old.is_visible());
            prop_assert_eq!(applied.visible_after, state.is_visible());
        }
    }

    #[test]
    fn states_and_changes_round_trip_through_json(log in log()) {
        for state in replay(&log).into_values() {
            let text = serde_json::to_string(&state).unwrap();
            prop_assert_eq!(serde_json::from_str::<RecordState>(&text).unwrap(), state);
        }
        for (_, change) in &log {
            // Through a jsonb-like `Value`, as Postgres hands it back.
            let value = serde_json::to_value(change).unwrap();
            prop_assert_eq!(&serde_json::from_value::<Change>(value).unwrap(), change);
        }
    }
}

#[test]
fn resurrection_scenario_converges_in_every_order() {
    // insert@1, delete@2, update@3, insert@4: deleted until the re-create at 4, and
    // every order of the four gives the same final state.
    let s = |w| Stamp::new(w, 0, "d").unwrap();
    let changes = [
        Change {
            op: Op::Insert,
            fields: vec![("a".into(), json!(1), s(1))],
            stamp: s(1),
        },
        Change {
            op: Op::Delete,
            fields: vec![],
            stamp: s(2),
        },
        Change {
            op: Op::Update,
            fields: vec![("a".into(), json!(3), s(3))],
            stamp: s(3),
        },
        Change {
            op: Op::Insert,
            fields: vec![("b".into(), json!(4), s(4))],
            stamp: s(4),
        },
    ];
    let mut finals = Vec::new();
    for perm in permutations(4) {
        let mut state = RecordState::default();
        for i in perm {
            apply(&mut state, &changes[i]);
        }
        finals.push(serde_json::to_string(&state).unwrap());
        assert!(!state.is_deleted());
        assert_eq!(
            state.data(),
            json!({"a": 3, "b": 4}).as_object().cloned().unwrap()
        );
    }
    assert_eq!(finals.len(), 24);
    assert!(finals.windows(2).all(|p| p[0] == p[1]));

    let mut without_reinsert = RecordState::default();
    for c in &changes[..3] {
        apply(&mut without_reinsert, c);
    }
    assert!(without_reinsert.is_deleted());
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}
