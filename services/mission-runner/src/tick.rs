//! One tick: claim due missions, plan each with bounded concurrency under a deadline,
//! write back or release, and report.
//!
//! Rules:
//! - Missions run as a stream with at most `concurrency` in flight (not fixed batches);
//!   each runs in its own task, so even a panic stays with that mission.
//! - The deadline covers the planning (the LLM part) and is cut to the lease: it never
//!   runs past `leaseExpiresAt − write_back_margin`, so the write-back still holds the
//!   lease. A mission past its deadline is released with a backoff (an LLM failure).
//! - Every outcome is final for the tick: one mission's failure never stops the others.
//!   Counting: `plansProduced` / `parseFailures` / `llmFailures` by plan outcome (whether
//!   or not the write-back then worked); `writeBackFailures` when an iteration could not
//!   be written (lease lost included). Missions over budget, without proposable tools,
//!   with no time left on their lease or whose task failed are in `due` only.
//! - Token use of a user's missions in this tick counts against that user's budget for
//!   the rest of the tick (the claim's figure predates the tick).
//! - Shutdown is runner-kit's two-stage [`Shutdown`]: draining claims nothing and starts
//!   no new mission (unstarted ones are released at once); cancelled also abandons
//!   planning in flight (released at once). Iterations already planned are still written
//!   back. Stopped missions are in `due` only.
//! - As runner-kit's [`Tick`], a tick whose claim fails still answers a report with
//!   `error` set, so `POST /internal/tick` and the metrics show the failure; missions by
//!   result and planning tokens by kind are counted in `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use runner_kit::{ClientError, Shutdown, Tick};
use serde::Serialize;
use service_kit::{Clock, metrics::Metrics};
use types::missions::{
    ClaimedMission, MissionClaimRequest, MissionReleaseRequest, WriteIterationRequest,
};
use types::tick::{MissionTickReport, TokenUsage};
use uuid::Uuid;

use crate::api::MissionApi;
use crate::config::TickSettings;
use crate::plan::{PlanOutcome, Planner};

/// What happened to one mission's iteration after planning.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteBack {
    /// Nothing to write (released instead).
    None,
    /// Written; `fresh` is `false` when auth-internal already had it (a retry).
    Written {
        /// Whether this call wrote it.
        fresh: bool,
    },
    /// Not written.
    Failed {
        /// Why.
        error: ClientError,
    },
}

/// The result of one mission in a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct MissionResult {
    /// The mission.
    pub mission_id: String,
    /// The planning outcome; `None` when the mission's deadline passed or its task failed.
    pub outcome: Option<PlanOutcome>,
    /// The write-back.
    pub write_back: WriteBack,
    /// Whether the planning ran past the deadline.
    pub timed_out: bool,
    /// Whether shutdown stopped the mission before it was planned (released at once).
    pub stopped: bool,
}

impl MissionResult {
    fn tokens(&self) -> TokenUsage {
        self.outcome
            .as_ref()
            .map(PlanOutcome::tokens)
            .unwrap_or_default()
    }
}

/// A tick's answer: the report, and why the tick could not claim, if it could not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickOutcome {
    /// The report.
    #[serde(flatten)]
    pub report: MissionTickReport,
    /// The claim's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// Missions processed by result, and planning tokens by kind.
#[derive(Clone, Debug)]
struct MissionMetrics {
    missions: Family<ResultLabel, Counter>,
    tokens: Family<KindLabel, Counter>,
}

impl MissionMetrics {
    fn register(metrics: &Metrics) -> Self {
        let m = Self {
            missions: Family::default(),
            tokens: Family::default(),
        };
        metrics.register(
            "missions",
            "Missions processed by result (planned, parse_failure, llm_failure, write_back_failure)",
            m.missions.clone(),
        );
        metrics.register(
            "llm_tokens",
            "Planning tokens by kind (input = fresh input, output, cache_read, cache_write)",
            m.tokens.clone(),
        );
        m
    }

    fn record(&self, r: &MissionTickReport) {
        for (result, n) in [
            ("planned", r.plans_produced),
            ("parse_failure", r.parse_failures),
            ("llm_failure", r.llm_failures),
            ("write_back_failure", r.write_back_failures),
        ] {
            self.missions
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .inc_by(u64::from(n));
        }
        for (kind, n) in [
            ("input", r.tokens.input),
            ("output", r.tokens.output),
            ("cache_read", r.tokens.cache_read),
            ("cache_write", r.tokens.cache_write),
        ] {
            self.tokens
                .get_or_create(&KindLabel { kind: kind.into() })
                .inc_by(n);
        }
    }
}

/// A new tick id.
pub fn new_tick_id() -> String {
    Uuid::new_v4().to_string()
}

/// Runs ticks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MissionTick {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    api: MissionApi,
    planner: Planner,
    settings: TickSettings,
    clock: Clock,
    metrics: Option<MissionMetrics>,
}

/// Tokens spent per user in the current tick.
type Ledger = Arc<Mutex<HashMap<Uuid, u64>>>;

impl MissionTick {
    /// A tick runner that records no metrics (see [`MissionTick::with_metrics`]).
    pub fn new(api: MissionApi, planner: Planner, settings: TickSettings, clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                api,
                planner,
                settings,
                clock,
                metrics: None,
            }),
        }
    }

    /// The same tick runner, counting missions and tokens in `metrics`.
    pub fn with_metrics(self, metrics: &Metrics) -> Self {
        let inner = Inner {
            api: self.inner.api.clone(),
            planner: self.inner.planner.clone(),
            settings: self.inner.settings.clone(),
            clock: self.inner.clock.clone(),
            metrics: Some(MissionMetrics::register(metrics)),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The planner.
    pub fn planner(&self) -> &Planner {
        &self.inner.planner
    }

    /// One tick: claim, run, report. Fails only when the claim fails. A draining
    /// shutdown claims nothing.
    pub async fn run_once(
        &self,
        tick_id: String,
        stop: Shutdown,
    ) -> Result<MissionTickReport, ClientError> {
        let started = Instant::now();
        let s = &self.inner.settings;
        if stop.is_draining() {
            let (report, _) = self.run_claimed(tick_id, Vec::new(), started, stop).await;
            return Ok(report);
        }
        let claim = self
            .inner
            .api
            .claim(&MissionClaimRequest {
                worker: s.worker.clone(),
                limit: s.claim_limit,
                lease_seconds: s.lease_seconds,
            })
            .await?;
        let (report, _) = self
            .run_claimed(tick_id, claim.missions, started, stop)
            .await;
        Ok(report)
    }

    /// Runs already-claimed missions and reports; also returns each mission's result.
    pub async fn run_claimed(
        &self,
        tick_id: String,
        missions: Vec<ClaimedMission>,
        started: Instant,
        stop: Shutdown,
    ) -> (MissionTickReport, Vec<MissionResult>) {
        let due = u32::try_from(missions.len()).unwrap_or(u32::MAX);
        tracing::info!(tick.id = %tick_id, due, "tick {tick_id}: {due} mission(s) due");
        let ledger: Ledger = Arc::default();
        let results: Vec<MissionResult> = futures::stream::iter(missions)
            .map(|claimed| {
                let this = self.clone();
                let ledger = ledger.clone();
                let stop = stop.clone();
                let mission_id = claimed.mission.id.clone();
                let span =
                    crate::otel::mission_span(&claimed, this.planner().llm().provider_name());
                let task_span = span.clone();
                async move {
                    let run = async move { this.run_one(claimed, &ledger, &stop).await };
                    match tokio::spawn(tracing::Instrument::instrument(run, task_span)).await {
                        Ok(result) => {
                            crate::otel::record_mission(&span, &result);
                            result
                        }
                        Err(e) => {
                            tracing::error!(
                                mission.id = %mission_id,
                                error = %e,
                                "mission {mission_id} task failed"
                            );
                            MissionResult {
                                mission_id,
                                outcome: None,
                                write_back: WriteBack::None,
                                timed_out: false,
                                stopped: false,
                            }
                        }
                    }
                }
            })
            .buffer_unordered(self.inner.settings.concurrency.max(1))
            .collect()
            .await;
        let mut report = MissionTickReport {
            tick_id,
            due,
            plans_produced: 0,
            parse_failures: 0,
            llm_failures: 0,
            write_back_failures: 0,
            tokens: TokenUsage::default(),
            duration_ms: 0,
        };
        for r in &results {
            report.tokens.add(r.tokens());
            match &r.outcome {
                Some(PlanOutcome::Planned { .. }) => report.plans_produced += 1,
                Some(PlanOutcome::ParseFailed { .. }) => report.parse_failures += 1,
                Some(PlanOutcome::LlmFailed { .. }) => report.llm_failures += 1,
                None if r.timed_out => report.llm_failures += 1,
                Some(PlanOutcome::Unplannable { .. } | PlanOutcome::OverBudget { .. }) | None => {}
            }
            if matches!(r.write_back, WriteBack::Failed { .. }) {
                report.write_back_failures += 1;
            }
        }
        report.duration_ms = elapsed_ms(started);
        tracing::info!(
            tick.id = %report.tick_id,
            due = report.due,
            plans_produced = report.plans_produced,
            parse_failures = report.parse_failures,
            llm_failures = report.llm_failures,
            write_back_failures = report.write_back_failures,
            tokens = report.tokens.total(),
            duration_ms = report.duration_ms,
            "tick {} done",
            report.tick_id
        );
        (report, results)
    }

    /// Plans one mission, then writes back or releases. Never fails.
    async fn run_one(
        &self,
        claimed: ClaimedMission,
        ledger: &Ledger,
        stop: &Shutdown,
    ) -> MissionResult {
        let inner = &self.inner;
        let mission_id = claimed.mission.id.clone();
        let stopped = |mission_id: String| MissionResult {
            mission_id,
            outcome: None,
            write_back: WriteBack::None,
            timed_out: false,
            stopped: true,
        };
        if stop.is_draining() {
            self.release(&claimed, 0).await;
            return stopped(mission_id);
        }
        let deadline = self.deadline(&claimed);
        let spent = ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&claimed.user_id)
            .copied()
            .unwrap_or(0);
        let Some(d) = deadline else {
            // No LLM was asked: not an LLM failure. The lease is (nearly) gone; hand it
            // back in case it is not, so the slot is re-claimed with a fresh lease.
            tracing::warn!(
                mission.id = %mission_id,
                lease_expires_at = %claimed.lease_expires_at,
                "mission {mission_id}: no time left on the lease, not planned"
            );
            self.release(&claimed, 0).await;
            return MissionResult {
                mission_id,
                outcome: None,
                write_back: WriteBack::None,
                timed_out: false,
                stopped: false,
            };
        };
        let planned = tokio::select! {
            r = tokio::time::timeout(d, inner.planner.plan(&claimed, spent)) => r.ok(),
            () = stop.cancelled() => {
                tracing::info!(mission.id = %mission_id, "mission {mission_id}: planning cancelled by shutdown");
                self.release(&claimed, 0).await;
                return stopped(mission_id);
            }
        };
        let Some(outcome) = planned else {
            tracing::warn!(
                mission.id = %mission_id,
                deadline_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                "mission {mission_id} ran past its planning deadline"
            );
            let retry = u32::try_from(inner.planner.settings().llm_retry_after.as_secs())
                .unwrap_or(u32::MAX);
            self.release(&claimed, retry).await;
            return MissionResult {
                mission_id,
                outcome: None,
                write_back: WriteBack::None,
                timed_out: true,
                stopped: false,
            };
        };
        // The per-user daily budget counts billed-equivalent tokens (a cache read 0.1×,
        // a cache write 1.25×), and so does what is written back to it.
        let tokens = outcome.tokens().billed_equivalent();
        if tokens > 0 {
            *ledger
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(claimed.user_id)
                .or_default() += tokens;
        }
        let write_back = match &outcome {
            PlanOutcome::Planned { iteration, .. }
            | PlanOutcome::ParseFailed { iteration, .. }
            | PlanOutcome::Unplannable { iteration } => {
                let req = WriteIterationRequest {
                    lease_token: claimed.lease_token,
                    iteration: iteration.clone(),
                    tokens,
                };
                match inner.api.write_iteration(&mission_id, &req).await {
                    Ok(resp) => {
                        tracing::info!(
                            mission.id = %mission_id,
                            iteration.id = %iteration.id,
                            outcome = outcome.label(),
                            steps = iteration.plan.len(),
                            dropped = iteration.dropped_steps.len(),
                            fresh = resp.written,
                            next_run_at = ?resp.next_run_at,
                            "mission {mission_id}: iteration {} written",
                            iteration.id
                        );
                        WriteBack::Written {
                            fresh: resp.written,
                        }
                    }
                    Err(error) => {
                        tracing::warn!(
                            mission.id = %mission_id,
                            iteration.id = %iteration.id,
                            error = %error,
                            "mission {mission_id}: write-back failed"
                        );
                        if !error.is_lease_lost() {
                            // Hand the slot back soon; re-planning it yields the same
                            // iteration id, so a write that did land is not duplicated.
                            self.release(&claimed, 60).await;
                        }
                        WriteBack::Failed { error }
                    }
                }
            }
            PlanOutcome::LlmFailed {
                retry_after_seconds,
                ..
            }
            | PlanOutcome::OverBudget {
                retry_after_seconds,
                ..
            } => {
                if let PlanOutcome::OverBudget { used, budget, .. } = &outcome {
                    tracing::info!(
                        mission.id = %mission_id,
                        user.id = %claimed.user_id,
                        tokens_used = used,
                        token_budget = budget,
                        "mission {mission_id}: the user's daily token budget is used up"
                    );
                }
                self.release(&claimed, *retry_after_seconds).await;
                WriteBack::None
            }
        };
        MissionResult {
            mission_id,
            outcome: Some(outcome),
            write_back,
            timed_out: false,
            stopped: false,
        }
    }

    /// The planning deadline: the configured one, cut to the lease minus the write-back
    /// margin; `None` when no time is left at all.
    fn deadline(&self, claimed: &ClaimedMission) -> Option<Duration> {
        let s = &self.inner.settings;
        let left = (claimed.lease_expires_at - self.inner.clock.now())
            .to_std()
            .ok()?
            .checked_sub(s.write_back_margin)?;
        Some(s.mission_deadline.min(left)).filter(|d| !d.is_zero())
    }

    async fn release(&self, claimed: &ClaimedMission, retry_after_seconds: u32) {
        let req = MissionReleaseRequest {
            lease_token: claimed.lease_token,
            retry_after_seconds: Some(retry_after_seconds),
        };
        if let Err(e) = self.inner.api.release(&claimed.mission.id, &req).await {
            // The lease expires on its own; nothing else to do.
            tracing::warn!(
                mission.id = %claimed.mission.id,
                error = %e,
                "mission {}: release failed",
                claimed.mission.id
            );
        }
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Tick for MissionTick {
    type Report = TickOutcome;

    async fn run(&self, tick_id: String, shutdown: Shutdown) -> TickOutcome {
        let started = Instant::now();
        match self.run_once(tick_id.clone(), shutdown).await {
            Ok(report) => {
                if let Some(m) = &self.inner.metrics {
                    m.record(&report);
                }
                TickOutcome {
                    report,
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(tick.id = %tick_id, error = %e, "tick {tick_id}: claim failed");
                TickOutcome {
                    report: MissionTickReport {
                        tick_id,
                        due: 0,
                        plans_produced: 0,
                        parse_failures: 0,
                        llm_failures: 0,
                        write_back_failures: 0,
                        tokens: TokenUsage::default(),
                        duration_ms: elapsed_ms(started),
                    },
                    error: Some(e.to_string()),
                }
            }
        }
    }

    fn outcome(&self, out: &TickOutcome) -> &'static str {
        let r = &out.report;
        if out.error.is_some() {
            "failed"
        } else if r.parse_failures + r.llm_failures + r.write_back_failures > 0 {
            "partial"
        } else {
            "ok"
        }
    }
}
