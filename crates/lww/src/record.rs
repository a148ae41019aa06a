//! Field-level last-writer-wins merge of one record.
//!
//! A [`RecordState`] is the merged result of every [`Change`] applied to one record, and
//! [`apply`] is a join: applying the same set of changes in any order, any number of
//! times, yields the same state. The rules:
//!
//! 1. **Fields.** Every change (insert, update and delete alike) carries stamped field
//!    writes `(name, value, stamp)`. A write replaces the stored field only if its stamp
//!    is greater than the stored stamp. On equal stamps (same wall time, counter and
//!    node: a buggy client) the value whose canonical JSON text (object keys sorted,
//!    no whitespace) is byte-wise larger wins, so the outcome never depends on arrival
//!    order; equal text means equal values, and the stored one is kept. A field's stamp
//!    therefore never decreases, and fields are never removed (a `null` value is a value).
//! 2. **Markers.** An `insert` raises `created` to the max of its stamp and the stored
//!    one; a `delete` raises `tombstone` likewise; an `update` touches neither.
//! 3. **Deletion and resurrection.** `is_deleted()` is `tombstone >= created` (or a
//!    tombstone with no `created`). So updates never resurrect a deleted record,
//!    whatever their stamps: their fields are still merged (which keeps the state
//!    order-independent and lets a later re-create show the newest values) but the
//!    record stays deleted. Only an `insert` whose stamp is greater than the tombstone
//!    brings it back; the visible data is then all merged fields, including ones written
//!    before the delete. A delete wins a tie with an insert of the same stamp.
//! 4. **Orphan updates.** An update of a record never seen before creates the state
//!    (`created` stays `None`) and the record is visible: a client may push updates for
//!    a record created offline on another device whose insert arrives later. When that
//!    insert arrives its fields merge by stamp like any other write.
//! 5. **Deletes may carry fields** (e.g. the legacy `deletedAt`); they merge by rule 1.
//! 6. **Validation** happens at the boundary, not in `apply` (which accepts anything and
//!    never panics): [`validate_change`] rejects empty field names, names starting with
//!    `__` (reserved for bookkeeping, as the original's `__fieldMeta`) and a field written
//!    twice in one change. An update with no fields is allowed and changes nothing.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::stamp::Stamp;

/// Prefix of field names reserved for bookkeeping.
pub const RESERVED_PREFIX: &str = "__";

/// Why a change or a stored state was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LwwError {
    /// A field name was empty.
    #[error("field name must not be empty")]
    EmptyFieldName,
    /// A field name starts with the reserved `__` prefix.
    #[error("field name {name:?} is reserved: names starting with \"__\" are not allowed")]
    ReservedField {
        /// The rejected field name.
        name: String,
    },
    /// A change wrote the same field twice.
    #[error("field {name:?} appears more than once in one change")]
    DuplicateField {
        /// The repeated field name.
        name: String,
    },
    /// Rebuilding a state: a data field has no stamp.
    #[error("field {name:?} has a value but no stamp")]
    UnstampedField {
        /// The field without a stamp.
        name: String,
    },
    /// Rebuilding a state: a stamp has no data field.
    #[error("field {name:?} has a stamp but no value")]
    StampWithoutValue {
        /// The stamp's field name.
        name: String,
    },
    /// An operation name other than `insert`, `update` or `delete`.
    #[error("unknown op {op:?}: expected insert, update or delete")]
    UnknownOp {
        /// The start of the rejected text.
        op: String,
    },
}

/// The kind of a change; serialised in lowercase like the `sync_changes.op` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Creates (or re-creates) the record; raises `created`.
    Insert,
    /// Writes fields only.
    Update,
    /// Deletes the record; raises `tombstone`.
    Delete,
}

impl Op {
    /// The lowercase name (`insert`, `update`, `delete`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Op {
    type Err = LwwError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "insert" => Ok(Self::Insert),
            "update" => Ok(Self::Update),
            "delete" => Ok(Self::Delete),
            other => Err(LwwError::UnknownOp {
                op: other.chars().take(32).collect(),
            }),
        }
    }
}

/// One change to apply to a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What the change does to the record's existence.
    pub op: Op,
    /// Stamped field writes `(name, value, stamp)`; JSON: `[[name, value, stamp], …]`.
    #[serde(default)]
    pub fields: Vec<(String, Value, Stamp)>,
    /// The change's own stamp: the insert or delete marker.
    pub stamp: Stamp,
}

/// The winning value of one field and the stamp it was written with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    /// The field's current value.
    pub value: Value,
    /// The stamp of the write that set it.
    pub stamp: Stamp,
}

/// The merged state of one record; see the module docs for the rules.
///
/// JSON: `{"fields": {name: {"value": …, "stamp": "…"}}, "tombstone": stamp|null,
/// "created": stamp|null}`. Persist all of it: `tombstone` and `created` are needed
/// to merge later changes correctly, a `deleted` flag alone is not enough.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordState {
    /// Per field, the winning value and its stamp.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldValue>,
    /// The largest stamp of any delete applied.
    #[serde(default)]
    pub tombstone: Option<Stamp>,
    /// The largest stamp of any insert applied.
    #[serde(default)]
    pub created: Option<Stamp>,
}

impl RecordState {
    /// Rebuilds a state from separately stored columns. Every data field needs a stamp
    /// and every stamp a data field.
    pub fn from_parts(
        data: Map<String, Value>,
        mut stamps: BTreeMap<String, Stamp>,
        created: Option<Stamp>,
        tombstone: Option<Stamp>,
    ) -> Result<Self, LwwError> {
        let mut fields = BTreeMap::new();
        for (name, value) in data {
            let Some(stamp) = stamps.remove(&name) else {
                return Err(LwwError::UnstampedField { name });
            };
            fields.insert(name, FieldValue { value, stamp });
        }
        if let Some(name) = stamps.into_keys().next() {
            return Err(LwwError::StampWithoutValue { name });
        }
        Ok(Self {
            fields,
            tombstone,
            created,
        })
    }

    /// The record's data: field → winning value (also for a deleted record; check
    /// [`RecordState::is_deleted`]).
    pub fn data(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .map(|(name, field)| (name.clone(), field.value.clone()))
            .collect()
    }

    /// Field → stamp of the winning write.
    pub fn field_stamps(&self) -> BTreeMap<String, Stamp> {
        self.fields
            .iter()
            .map(|(name, field)| (name.clone(), field.stamp.clone()))
            .collect()
    }

    /// Whether a delete is in force: a tombstone at or after the newest insert.
    pub fn is_deleted(&self) -> bool {
        match (&self.tombstone, &self.created) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(tombstone), Some(created)) => tombstone >= created,
        }
    }

    /// Whether readers should see the record: it exists (inserted or has fields) and
    /// is not deleted. The default state (nothing applied) is not visible.
    pub fn is_visible(&self) -> bool {
        !self.is_deleted() && (self.created.is_some() || !self.fields.is_empty())
    }

    /// Merges one field write; returns whether the stored field changed.
    fn merge_field(&mut self, name: &str, value: &Value, stamp: &Stamp) -> bool {
        let Some(current) = self.fields.get_mut(name) else {
            self.fields.insert(
                name.to_owned(),
                FieldValue {
                    value: value.clone(),
                    stamp: stamp.clone(),
                },
            );
            return true;
        };
        let wins = match stamp.cmp(&current.stamp) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => canonical_json(value) > canonical_json(&current.value),
        };
        if wins {
            current.value = value.clone();
            current.stamp = stamp.clone();
        }
        wins
    }
}

/// What [`apply`] changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Fields whose value or stamp changed, sorted, without repeats.
    pub changed_fields: Vec<String>,
    /// Whether `created` or `tombstone` moved.
    pub markers_changed: bool,
    /// [`RecordState::is_visible`] before the change.
    pub visible_before: bool,
    /// [`RecordState::is_visible`] after the change.
    pub visible_after: bool,
}

impl Applied {
    /// Whether the record appeared or disappeared for readers.
    pub fn visibility_changed(&self) -> bool {
        self.visible_before != self.visible_after
    }

    /// Whether the state is exactly as before (e.g. a re-applied change).
    pub fn is_noop(&self) -> bool {
        self.changed_fields.is_empty() && !self.markers_changed
    }
}

/// Merges `change` into `state` by the module's rules.
pub fn apply(state: &mut RecordState, change: &Change) -> Applied {
    let visible_before = state.is_visible();
    let mut changed = BTreeSet::new();
    for (name, value, stamp) in &change.fields {
        if state.merge_field(name, value, stamp) {
            changed.insert(name.as_str());
        }
    }
    let marker = match change.op {
        Op::Insert => Some(&mut state.created),
        Op::Delete => Some(&mut state.tombstone),
        Op::Update => None,
    };
    let markers_changed = marker.is_some_and(|marker| raise(marker, &change.stamp));
    Applied {
        changed_fields: changed.into_iter().map(str::to_owned).collect(),
        markers_changed,
        visible_before,
        visible_after: state.is_visible(),
    }
}

/// Checks a change at the boundary (see rule 6 in the module docs).
pub fn validate_change(change: &Change) -> Result<(), LwwError> {
    let mut seen = BTreeSet::new();
    for (name, _, _) in &change.fields {
        if name.is_empty() {
            return Err(LwwError::EmptyFieldName);
        }
        if name.starts_with(RESERVED_PREFIX) {
            return Err(LwwError::ReservedField { name: name.clone() });
        }
        if !seen.insert(name.as_str()) {
            return Err(LwwError::DuplicateField { name: name.clone() });
        }
    }
    Ok(())
}

/// Sets `marker` to `max(marker, stamp)`; returns whether it moved.
fn raise(marker: &mut Option<Stamp>, stamp: &Stamp) -> bool {
    if marker.as_ref().is_some_and(|current| current >= stamp) {
        return false;
    }
    *marker = Some(stamp.clone());
    true
}

/// Compact JSON with object keys sorted at every level. `serde_json` sorts keys only
/// while its `preserve_order` feature is off, and any crate in the workspace could turn
/// it on, so the tie-break does not rely on it.
fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // A string value's Display is its escaped JSON form.
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn st(wall: i64, counter: u32, node: &str) -> Stamp {
        Stamp::new(wall, counter, node).unwrap()
    }

    fn change(op: Op, at: i64, fields: &[(&str, Value, i64)]) -> Change {
        Change {
            op,
            fields: fields
                .iter()
                .map(|(n, v, w)| ((*n).to_owned(), v.clone(), st(*w, 0, "dev")))
                .collect(),
            stamp: st(at, 0, "dev"),
        }
    }

    fn applied(changes: &[Change]) -> RecordState {
        let mut state = RecordState::default();
        for c in changes {
            apply(&mut state, c);
        }
        state
    }

    #[test]
    fn newer_field_wins_older_is_ignored() {
        let mut state = applied(&[change(Op::Insert, 10, &[("a", json!(1), 10)])]);
        let r = apply(&mut state, &change(Op::Update, 30, &[("a", json!(3), 30)]));
        assert_eq!(r.changed_fields, ["a"]);
        let r = apply(&mut state, &change(Op::Update, 20, &[("a", json!(2), 20)]));
        assert!(r.is_noop());
        assert_eq!(state.data()["a"], json!(3));
        assert_eq!(state.field_stamps()["a"], st(30, 0, "dev"));
    }

    #[test]
    fn the_first_inserts_stamps_count() {
        // The original ignored the insert's stamps, so any later-arriving update won.
        let state = applied(&[
            change(Op::Insert, 50, &[("a", json!("new"), 50)]),
            change(Op::Update, 40, &[("a", json!("old"), 40)]),
        ]);
        assert_eq!(state.data()["a"], json!("new"));
    }

    #[test]
    fn equal_stamps_break_ties_by_value_text_not_arrival() {
        let x = change(Op::Update, 5, &[("a", json!("x"), 5)]);
        let y = change(Op::Update, 5, &[("a", json!("y"), 5)]);
        assert_eq!(applied(&[x.clone(), y.clone()]).data()["a"], json!("y"));
        assert_eq!(applied(&[y, x]).data()["a"], json!("y"));
        // Key order inside objects does not matter to the tie-break.
        assert_eq!(
            canonical_json(&json!({"b": [1, {"d": null, "c": 1.5}], "a": "\""})),
            r#"{"a":"\"","b":[1,{"c":1.5,"d":null}]}"#
        );
    }

    #[test]
    fn node_breaks_ties_before_values() {
        let mut a = change(Op::Update, 5, &[]);
        a.fields.push(("f".into(), json!("zzz"), st(5, 0, "a")));
        let mut b = change(Op::Update, 5, &[]);
        b.fields.push(("f".into(), json!("aaa"), st(5, 0, "b")));
        assert_eq!(applied(&[a.clone(), b.clone()]).data()["f"], json!("aaa"));
        assert_eq!(applied(&[b, a]).data()["f"], json!("aaa"));
    }

    #[test]
    fn update_after_delete_stays_deleted() {
        let mut state = applied(&[
            change(Op::Insert, 10, &[("a", json!(1), 10)]),
            change(Op::Delete, 20, &[]),
        ]);
        assert!(state.is_deleted());
        let r = apply(&mut state, &change(Op::Update, 30, &[("a", json!(2), 30)]));
        assert!(state.is_deleted());
        assert!(!r.visible_before && !r.visible_after && !r.visibility_changed());
        // The value is still merged, so a later re-create shows it.
        assert_eq!(r.changed_fields, ["a"]);
        assert_eq!(state.data()["a"], json!(2));
    }

    #[test]
    fn insert_after_delete_resurrects() {
        let mut state = applied(&[
            change(
                Op::Insert,
                10,
                &[("a", json!(1), 10), ("b", json!("keep"), 10)],
            ),
            change(Op::Delete, 20, &[]),
        ]);
        let r = apply(&mut state, &change(Op::Insert, 30, &[("a", json!(9), 30)]));
        assert!(!state.is_deleted());
        assert!(r.visibility_changed() && r.visible_after);
        assert_eq!(
            state.data(),
            json!({"a": 9, "b": "keep"}).as_object().cloned().unwrap()
        );
    }

    #[test]
    fn insert_older_than_delete_does_not_resurrect() {
        let mut state = applied(&[change(Op::Delete, 20, &[])]);
        let r = apply(&mut state, &change(Op::Insert, 10, &[("a", json!(1), 10)]));
        assert!(state.is_deleted());
        assert!(!r.visible_after);
        // Same stamp: the delete wins the tie.
        let r = apply(&mut state, &change(Op::Insert, 20, &[]));
        assert!(r.markers_changed && state.is_deleted());
        // Arrival order does not matter: delete arriving after the older insert.
        let late = applied(&[
            change(Op::Insert, 10, &[("a", json!(1), 10)]),
            change(Op::Delete, 20, &[]),
        ]);
        assert!(late.is_deleted());
    }

    #[test]
    fn orphan_update_is_visible_and_merges_with_late_insert() {
        let mut state = RecordState::default();
        assert!(!state.is_visible());
        let r = apply(
            &mut state,
            &change(Op::Update, 30, &[("a", json!("edit"), 30)]),
        );
        assert!(r.visibility_changed() && state.is_visible() && state.created.is_none());
        apply(
            &mut state,
            &change(
                Op::Insert,
                10,
                &[("a", json!("orig"), 10), ("b", json!(1), 10)],
            ),
        );
        assert_eq!(
            state.data(),
            json!({"a": "edit", "b": 1}).as_object().cloned().unwrap()
        );
        assert!(state.is_visible());
    }

    #[test]
    fn delete_fields_merge_and_reapply_is_noop() {
        let del = change(Op::Delete, 20, &[("deletedAt", json!("2024-01-01"), 20)]);
        let mut state = applied(&[change(Op::Insert, 10, &[]), del.clone()]);
        assert_eq!(state.data()["deletedAt"], json!("2024-01-01"));
        let before = state.clone();
        assert!(apply(&mut state, &del).is_noop());
        assert_eq!(state, before);
    }

    #[test]
    fn validate_change_rules() {
        let ok = change(Op::Delete, 1, &[("a", json!(1), 1), ("_b", json!(1), 1)]);
        assert_eq!(validate_change(&ok), Ok(()));
        assert_eq!(validate_change(&change(Op::Update, 1, &[])), Ok(()));
        assert_eq!(
            validate_change(&change(Op::Update, 1, &[("__meta", json!(1), 1)])),
            Err(LwwError::ReservedField {
                name: "__meta".into()
            })
        );
        assert_eq!(
            validate_change(&change(Op::Insert, 1, &[("", json!(1), 1)])),
            Err(LwwError::EmptyFieldName)
        );
        assert_eq!(
            validate_change(&change(
                Op::Update,
                1,
                &[("a", json!(1), 1), ("a", json!(2), 2)]
            )),
            Err(LwwError::DuplicateField { name: "a".into() })
        );
    }

    #[test]
    fn json_round_trips() {
        let state = applied(&[
            change(Op::Insert, 10, &[("a", json!({"x": [1, 2.5, null]}), 10)]),
            change(Op::Delete, 20, &[]),
        ]);
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(
            text,
            r#"{"fields":{"a":{"value":{"x":[1,2.5,null]},"stamp":"000000000000010-0000000000-dev"}},"tombstone":"000000000000020-0000000000-dev","created":"000000000000010-0000000000-dev"}"#
        );
        assert_eq!(serde_json::from_str::<RecordState>(&text).unwrap(), state);
        assert_eq!(
            serde_json::from_str::<RecordState>("{}").unwrap(),
            RecordState::default()
        );

        let c = change(Op::Update, 3, &[("a", json!("v"), 2)]);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"op":"update","fields":[["a","v","000000000000002-0000000000-dev"]],"stamp":"000000000000003-0000000000-dev"}"#
        );
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), c);
        assert!(serde_json::from_str::<Change>(r#"{"op":"upsert","stamp":"x"}"#).is_err());
        assert_eq!("delete".parse::<Op>(), Ok(Op::Delete));
        assert!("DELETE".parse::<Op>().is_err());
    }

    #[test]
    fn from_parts_round_trips_and_checks_pairing() {
        let state = applied(&[
            change(
                Op::Insert,
                10,
                &[("a", json!(1), 10), ("b", json!(null), 12)],
            ),
            change(Op::Delete, 20, &[]),
        ]);
        let rebuilt = RecordState::from_parts(
            state.data(),
            state.field_stamps(),
            state.created.clone(),
            state.tombstone.clone(),
        )
        .unwrap();
        assert_eq!(rebuilt, state);

        let mut stamps = state.field_stamps();
        stamps.remove("b");
        assert_eq!(
            RecordState::from_parts(state.data(), stamps, None, None),
            Err(LwwError::UnstampedField { name: "b".into() })
        );
        let mut data = state.data();
        data.remove("a");
        assert_eq!(
            RecordState::from_parts(data, state.field_stamps(), None, None),
            Err(LwwError::StampWithoutValue { name: "a".into() })
        );
    }
}
