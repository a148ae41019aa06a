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
//! - Shutdown ([`StopSignal`]) has two stages: `Drain` claims nothing and starts no new
//!   mission (unstarted ones are released at once); `Cancel` also abandons planning in
//!   flight (released at once). Iterations already planned are still written back.
//!   Stopped missions are in `due` only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use service_kit::Clock;
use tokio::sync::watch;
use types::missions::{
    ClaimedMission, MissionClaimRequest, MissionReleaseRequest, WriteIterationRequest,
};
use types::tick::{MissionTickReport, TokenUsage};
use uuid::Uuid;

use crate::client::{ClientError, InternalClient};
use crate::planner::{PlanOutcome, Planner};
use crate::settings::TickSettings;

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

/// How far a shutdown has gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopLevel {
    /// Work normally.
    #[default]
    Run,
    /// Start nothing new.
    Drain,
    /// Stop running work now.
    Cancel,
}

/// The receiving side of a shutdown signal. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<StopLevel>);

impl StopSignal {
    /// A signal and the sender that raises it (send [`StopLevel::Drain`], then
    /// [`StopLevel::Cancel`]).
    pub fn channel() -> (watch::Sender<StopLevel>, StopSignal) {
        let (tx, rx) = watch::channel(StopLevel::Run);
        (tx, StopSignal(rx))
    }

    /// A signal that never fires.
    pub fn never() -> StopSignal {
        Self::channel().1
    }

    /// The current level.
    pub fn level(&self) -> StopLevel {
        *self.0.borrow()
    }

    /// Resolves once the level reaches [`StopLevel::Cancel`]; never, if the sender is gone
    /// before that.
    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|l| *l == StopLevel::Cancel).await.is_err() {
            std::future::pending::<()>().await;
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
    client: InternalClient,
    planner: Planner,
    settings: TickSettings,
    clock: Clock,
}

/// Tokens spent per user in the current tick.
type Ledger = Arc<Mutex<HashMap<Uuid, u64>>>;

impl MissionTick {
    /// A tick runner.
    pub fn new(
        client: InternalClient,
        planner: Planner,
        settings: TickSettings,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                planner,
                settings,
                clock,
            }),
        }
    }

    /// The planner.
    pub fn planner(&self) -> &Planner {
        &self.inner.planner
    }

    /// One tick: claim, run, report. Fails only when the claim fails. A draining signal
    /// claims nothing.
    pub async fn run(
        &self,
        tick_id: String,
        stop: StopSignal,
    ) -> Result<MissionTickReport, ClientError> {
        let started = Instant::now();
        let s = &self.inner.settings;
        if stop.level() >= StopLevel::Drain {
            let (report, _) = self.run_claimed(tick_id, Vec::new(), started, stop).await;
            return Ok(report);
        }
        let claim = self
            .inner
            .client
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
        stop: StopSignal,
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
                async move {
                    match tokio::spawn(async move { this.run_one(claimed, &ledger, &stop).await })
                        .await
                    {
                        Ok(result) => result,
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
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
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
        stop: &StopSignal,
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
        if stop.level() >= StopLevel::Drain {
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
        let tokens = outcome.tokens().total();
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
                match inner.client.write_iteration(&mission_id, &req).await {
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
        if let Err(e) = self.inner.client.release(&claimed.mission.id, &req).await {
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
