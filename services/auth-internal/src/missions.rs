//! The mission rules, on the data of one `ai/aiMissions` record: its
//! iteration history, its schedule, and the user's verdicts on proposed steps.
//!
//! Rules:
//! - Pure functions of the record's data (and `now`): no database, no HTTP.
//!   `routes::missions` loads and writes the record, `db::missions` keeps the
//!   schedule index; both ask this module what the record means.
//! - The history keeps the newest [`MAX_ITERATIONS`] iterations (oldest
//!   dropped first); iteration ids are unique, so a write-back is idempotent
//!   by id ([`MissionRecord::has_iteration`]).
//! - A record with no `nextRunAt` but an active cadence is due at the
//!   cadence's next slot after `now`; an inactive one is never due.
//! - A step is decided once: only a `planned` or `staged` step takes a
//!   verdict; a repeat leaves the record alone ([`MissionRecord::decide`]).
//! - An iteration's overall status follows its steps once none is open
//!   ([`overall_status`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use types::missions::{
    IterationStatus, Mission, MissionCadence, MissionIteration, PlanStep, StepStatus,
};

/// Iterations kept on a mission record (oldest dropped first).
pub const MAX_ITERATIONS: usize = 50;

/// Why a rule could not be applied to a record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MissionError {
    #[error("no step {step_id} in iteration {iteration_id}")]
    NoStep {
        iteration_id: String,
        step_id: String,
    },
    #[error("stored iteration is unreadable: {0}")]
    Unreadable(String),
}

/// What the schedule index says about a mission record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub active: bool,
    pub next_run_at: Option<DateTime<Utc>>,
}

impl Schedule {
    /// A deleted or unschedulable record.
    pub const NEVER: Self = Self {
        active: false,
        next_run_at: None,
    };
}

/// A verdict applied by [`MissionRecord::decide`].
#[derive(Debug, Clone)]
pub struct Decided {
    /// The iteration after the verdict (unchanged if it was already decided).
    pub iteration: MissionIteration,
    /// The patch to write (`iterations`), `None` when nothing changed.
    pub patch: Option<Map<String, Value>>,
}

/// The data of one mission record (its fields, without the record id).
#[derive(Debug, Clone, Copy)]
pub struct MissionRecord<'a> {
    data: &'a Map<String, Value>,
}

impl<'a> MissionRecord<'a> {
    pub fn new(data: &'a Map<String, Value>) -> Self {
        Self { data }
    }

    /// The record as a [`Mission`] with id `id`; `None` if it is not one.
    pub fn parse(&self, id: &str) -> Option<Mission> {
        let mut with_id = self.data.clone();
        with_id.insert("id".into(), Value::String(id.to_owned()));
        serde_json::from_value(Value::Object(with_id)).ok()
    }

    /// The stored iterations, oldest first, as stored.
    pub fn iterations(&self) -> Vec<Value> {
        self.data
            .get("iterations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether an iteration with this id is stored.
    pub fn has_iteration(&self, id: &str) -> bool {
        self.data
            .get("iterations")
            .and_then(Value::as_array)
            .is_some_and(|its| {
                its.iter()
                    .any(|i| i.get("id").and_then(Value::as_str) == Some(id))
            })
    }

    /// `nextRunAt`, if it is a timestamp.
    pub fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.data
            .get("nextRunAt")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    /// `cadence`, if it is one.
    pub fn cadence(&self) -> Option<MissionCadence> {
        self.data
            .get("cadence")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
    }

    /// Whether `state` is `active`.
    pub fn is_active(&self) -> bool {
        self.data.get("state").and_then(Value::as_str) == Some("active")
    }

    /// What the schedule should say about this (visible) record at `now`.
    pub fn schedule(&self, now: DateTime<Utc>) -> Schedule {
        let Some(cadence) = self.cadence() else {
            return Schedule::NEVER;
        };
        let active = self.is_active();
        let next_run_at = match self.next_run_at() {
            Some(t) => Some(t),
            None if active => cadence::next_after(&cadence, now).ok().flatten(),
            None => None,
        };
        Schedule {
            active,
            next_run_at,
        }
    }

    /// The slot after the run of `slot` finished at `now` (manual: none; after
    /// an outage one catch-up run, never a burst).
    pub fn next_slot(&self, slot: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cadence()
            .and_then(|c| cadence::advance(&c, slot, now).ok().flatten())
    }

    /// The patch that appends `iteration` (capped at [`MAX_ITERATIONS`]) and
    /// sets `nextRunAt` to `next` (`null`: none).
    pub fn append_iteration(
        &self,
        iteration: Value,
        next: Option<DateTime<Utc>>,
    ) -> Map<String, Value> {
        let mut iterations = self.iterations();
        iterations.push(iteration);
        let excess = iterations.len().saturating_sub(MAX_ITERATIONS);
        iterations.drain(..excess);
        let mut patch = Map::new();
        patch.insert("iterations".into(), Value::Array(iterations));
        patch.insert(
            "nextRunAt".into(),
            next.map_or(Value::Null, |t| {
                Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
            }),
        );
        patch
    }

    /// Where a step is: (iteration index, step index).
    fn find_step(&self, iteration_id: &str, step_id: &str) -> Option<(usize, usize)> {
        let iterations = self.data.get("iterations")?.as_array()?;
        let i = iterations
            .iter()
            .position(|it| it.get("id").and_then(Value::as_str) == Some(iteration_id))?;
        let steps = iterations[i].get("plan")?.as_array()?;
        let s = steps
            .iter()
            .position(|st| st.get("id").and_then(Value::as_str) == Some(step_id))?;
        Some((i, s))
    }

    fn no_step(iteration_id: &str, step_id: &str) -> MissionError {
        MissionError::NoStep {
            iteration_id: iteration_id.to_owned(),
            step_id: step_id.to_owned(),
        }
    }

    /// The iteration that holds the step.
    pub fn iteration_with_step(
        &self,
        iteration_id: &str,
        step_id: &str,
    ) -> Result<MissionIteration, MissionError> {
        let (i, _) = self
            .find_step(iteration_id, step_id)
            .ok_or_else(|| Self::no_step(iteration_id, step_id))?;
        serde_json::from_value(self.iterations()[i].clone())
            .map_err(|e| MissionError::Unreadable(e.to_string()))
    }

    /// Apply `verdict` to the step unless it was already decided; stamp
    /// `decidedAt` and the iteration's overall status.
    pub fn decide(
        &self,
        iteration_id: &str,
        step_id: &str,
        now: DateTime<Utc>,
        verdict: impl FnOnce(&mut PlanStep),
    ) -> Result<Decided, MissionError> {
        let (i, s) = self
            .find_step(iteration_id, step_id)
            .ok_or_else(|| Self::no_step(iteration_id, step_id))?;
        let mut iterations = self.iterations();
        let mut iteration: MissionIteration = serde_json::from_value(iterations[i].clone())
            .map_err(|e| MissionError::Unreadable(e.to_string()))?;
        let step = iteration
            .plan
            .get_mut(s)
            .ok_or_else(|| Self::no_step(iteration_id, step_id))?;
        if !matches!(step.status, StepStatus::Planned | StepStatus::Staged) {
            return Ok(Decided {
                iteration,
                patch: None,
            });
        }
        verdict(step);
        step.decided_at = Some(now);
        iteration.overall_status = overall_status(&iteration);
        iterations[i] = serde_json::to_value(&iteration)
            .map_err(|e| MissionError::Unreadable(e.to_string()))?;
        let mut patch = Map::new();
        patch.insert("iterations".into(), Value::Array(iterations));
        Ok(Decided {
            iteration,
            patch: Some(patch),
        })
    }
}

/// An iteration's status from its steps: unchanged while a step is open;
/// then `approved` if any step was, else `failed` if any failed, else
/// `rejected`.
pub fn overall_status(iteration: &MissionIteration) -> IterationStatus {
    let open = iteration
        .plan
        .iter()
        .any(|s| matches!(s.status, StepStatus::Planned | StepStatus::Staged));
    if open {
        return iteration.overall_status;
    }
    if iteration
        .plan
        .iter()
        .any(|s| s.status == StepStatus::Approved)
    {
        IterationStatus::Approved
    } else if iteration
        .plan
        .iter()
        .any(|s| s.status == StepStatus::Failed)
    {
        IterationStatus::Failed
    } else {
        IterationStatus::Rejected
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap()
    }

    fn step(id: &str, status: &str) -> Value {
        json!({"id": id, "summary": "s", "intent": {"kind": "note", "body": "t"}, "status": status})
    }

    fn iteration(id: &str, steps: Vec<Value>) -> Value {
        json!({"id": id, "startedAt": "2026-03-02T08:00:00Z", "plan": steps, "overallStatus": "awaiting-review"})
    }

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn appending_caps_the_history_and_sets_next_run() {
        let its: Vec<Value> = (0..MAX_ITERATIONS)
            .map(|n| iteration(&format!("it-{n}"), vec![]))
            .collect();
        let d = data(json!({ "iterations": its }));
        let rec = MissionRecord::new(&d);
        assert!(rec.has_iteration("it-0"));
        assert!(!rec.has_iteration("new"));
        let patch = rec.append_iteration(iteration("new", vec![]), Some(at(9)));
        let kept = patch["iterations"].as_array().unwrap();
        assert_eq!(kept.len(), MAX_ITERATIONS);
        assert_eq!(kept[0]["id"], "it-1", "the oldest is dropped first");
        assert_eq!(kept[MAX_ITERATIONS - 1]["id"], "new");
        assert_eq!(patch["nextRunAt"], "2026-03-02T09:00:00.000Z");
        let none = rec.append_iteration(iteration("x", vec![]), None);
        assert_eq!(none["nextRunAt"], Value::Null);
    }

    #[test]
    fn schedule_follows_state_cadence_and_next_run() {
        let manual = data(json!({"state": "active", "cadence": {"kind": "manual"}}));
        assert_eq!(
            MissionRecord::new(&manual).schedule(at(8)),
            Schedule {
                active: true,
                next_run_at: None
            }
        );
        let explicit = data(
            json!({"state": "paused", "cadence": {"kind": "manual"}, "nextRunAt": "2026-03-02T10:00:00Z"}),
        );
        assert_eq!(
            MissionRecord::new(&explicit).schedule(at(8)),
            Schedule {
                active: false,
                next_run_at: Some(at(10))
            }
        );
        let no_cadence = data(json!({"state": "active", "nextRunAt": "2026-03-02T10:00:00Z"}));
        assert_eq!(
            MissionRecord::new(&no_cadence).schedule(at(8)),
            Schedule::NEVER
        );
    }

    #[test]
    fn a_verdict_applies_once_and_settles_the_iteration() {
        let d = data(
            json!({"iterations": [iteration("it", vec![step("a", "planned"), step("b", "rejected")])]}),
        );
        let rec = MissionRecord::new(&d);
        let decided = rec
            .decide("it", "a", at(9), |s| s.status = StepStatus::Approved)
            .unwrap();
        assert_eq!(decided.iteration.plan[0].status, StepStatus::Approved);
        assert_eq!(decided.iteration.plan[0].decided_at, Some(at(9)));
        assert_eq!(decided.iteration.overall_status, IterationStatus::Approved);
        let patch = decided.patch.unwrap();
        assert_eq!(patch["iterations"][0]["plan"][0]["status"], "approved");

        // A repeat on a decided step changes nothing.
        let again = rec
            .decide("it", "b", at(9), |s| s.status = StepStatus::Approved)
            .unwrap();
        assert!(again.patch.is_none());
        assert_eq!(again.iteration.plan[1].status, StepStatus::Rejected);

        assert_eq!(
            rec.decide("it", "zz", at(9), |_| {}).unwrap_err(),
            MissionError::NoStep {
                iteration_id: "it".into(),
                step_id: "zz".into()
            }
        );
        assert!(rec.iteration_with_step("nope", "a").is_err());
        assert_eq!(rec.iteration_with_step("it", "a").unwrap().id, "it");
    }

    #[test]
    fn overall_status_waits_for_open_steps() {
        let d = data(
            json!({"iterations": [iteration("it", vec![step("a", "staged"), step("b", "failed")])]}),
        );
        let open = MissionRecord::new(&d)
            .iteration_with_step("it", "a")
            .unwrap();
        assert_eq!(overall_status(&open), open.overall_status);
        let mut closed = open.clone();
        closed.plan[0].status = StepStatus::Rejected;
        assert_eq!(overall_status(&closed), IterationStatus::Failed);
        closed.plan[1].status = StepStatus::Skipped;
        assert_eq!(overall_status(&closed), IterationStatus::Rejected);
    }
}
