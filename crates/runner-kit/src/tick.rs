//! The generic tick: one [`Tick`] implementation per runner, run by a [`TickRunner`]
//! that guarantees at most one tick in flight per process, records metrics, and lets
//! shutdown drain it.
//!
//! Rules:
//! - A tick runs in its own task: a caller that goes away (an HTTP client hanging up)
//!   never cancels it halfway; only [`Shutdown::cancel`] asks it to stop.
//! - [`Shutdown`] has two stages: *draining* (start nothing new; work already started
//!   should finish) and *cancelled* (stop now, record what happened, release leases).
//!   Cancelled implies draining.
//! - The interval loop skips (never queues) a firing while a tick is in flight, skips
//!   every firing while paused, and stops when draining begins.

use std::{
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
};
use serde::Serialize;
use service_kit::metrics::Metrics;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// One runner's unit of periodic work.
pub trait Tick: Send + Sync + 'static {
    /// The JSON report of one tick (answered by `POST /internal/tick`).
    type Report: Serialize + Send + 'static;

    /// Runs one tick with the given id. Must not panic; errors belong in the report.
    fn run(&self, tick_id: String, shutdown: Shutdown)
    -> impl Future<Output = Self::Report> + Send;

    /// The metrics label of a finished tick (`ok`, `partial`, `failed`, …).
    fn outcome(&self, _report: &Self::Report) -> &'static str {
        "ok"
    }
}

/// The two-stage shutdown signal handed to every tick. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    drain: CancellationToken,
    cancel: CancellationToken,
}

impl Shutdown {
    /// A shutdown signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stage 1: start nothing new.
    pub fn begin_drain(&self) {
        self.drain.cancel();
    }

    /// Stage 2: stop running work now (implies draining).
    pub fn cancel(&self) {
        self.drain.cancel();
        self.cancel.cancel();
    }

    /// Whether draining has begun.
    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Whether running work must stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when draining begins.
    pub async fn draining(&self) {
        self.drain.cancelled().await;
    }

    /// Resolves when running work must stop.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}

/// Why a tick did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TickError {
    /// Another tick is running; its id.
    #[error("tick {0} is still in flight")]
    InFlight(String),
    /// The service is shutting down.
    #[error("the runner is shutting down")]
    ShuttingDown,
    /// The tick task panicked or was aborted.
    #[error("the tick task failed: {0}")]
    Crashed(String),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// Tick metrics: ticks by outcome, tick duration, ticks in flight.
#[derive(Clone)]
pub struct TickMetrics {
    ticks: Family<OutcomeLabels, Counter>,
    duration: Histogram,
    in_flight: Gauge,
}

impl TickMetrics {
    /// Registers `ticks`, `tick_duration_seconds` and `ticks_in_flight` in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let ticks = Family::<OutcomeLabels, Counter>::default();
        // 50 ms … ~27 min: a tick may hold personas up to their 10-minute deadline.
        let duration = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.05, 2.0, 16,
        ));
        let in_flight = Gauge::default();
        metrics.register("ticks", "Finished ticks by outcome", ticks.clone());
        metrics.register(
            "tick_duration_seconds",
            "Duration of finished ticks",
            duration.clone(),
        );
        metrics.register("ticks_in_flight", "Ticks running now", in_flight.clone());
        Self {
            ticks,
            duration,
            in_flight,
        }
    }

    fn finished(&self, outcome: &str, elapsed: Duration) {
        self.ticks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

struct Inner<T> {
    tick: T,
    in_flight: Mutex<Option<String>>,
    metrics: TickMetrics,
    shutdown: Shutdown,
    tracker: TaskTracker,
}

/// Runs ticks one at a time. Cheap to clone.
pub struct TickRunner<T: Tick> {
    inner: Arc<Inner<T>>,
}

impl<T: Tick> Clone for TickRunner<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// Clears the in-flight slot when the tick task ends, however it ends.
struct InFlightGuard<T: Tick>(Arc<Inner<T>>);

impl<T: Tick> Drop for InFlightGuard<T> {
    fn drop(&mut self) {
        *self
            .0
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.0.metrics.in_flight.dec();
    }
}

impl<T: Tick> TickRunner<T> {
    /// A runner of `tick` that reports to `metrics` and obeys `shutdown`.
    pub fn new(tick: T, metrics: TickMetrics, shutdown: Shutdown) -> Self {
        Self {
            inner: Arc::new(Inner {
                tick,
                in_flight: Mutex::new(None),
                metrics,
                shutdown,
                tracker: TaskTracker::new(),
            }),
        }
    }

    /// The tick implementation.
    pub fn tick(&self) -> &T {
        &self.inner.tick
    }

    /// The shutdown signal ticks receive.
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    /// The id of the tick in flight, if any.
    pub fn in_flight(&self) -> Option<String> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs one tick now and returns its report, or says why it did not run.
    pub async fn run_now(&self) -> Result<T::Report, TickError> {
        let tick_id = {
            let mut slot = self
                .inner
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(id) = slot.as_ref() {
                return Err(TickError::InFlight(id.clone()));
            }
            if self.inner.shutdown.is_draining() {
                return Err(TickError::ShuttingDown);
            }
            let id = uuid::Uuid::new_v4().to_string();
            *slot = Some(id.clone());
            id
        };
        self.inner.metrics.in_flight.inc();
        let guard = InFlightGuard(self.inner.clone());
        let inner = self.inner.clone();
        // The tick is one span (its claim and write-backs are children); each unit of work
        // it runs may start its own trace linked to it.
        let span = tracing::info_span!("tick", tick.id = %tick_id);
        let task = self.inner.tracker.spawn(tracing::Instrument::instrument(async move {
            let _guard = guard;
            let started = Instant::now();
            tracing::info!(tick.id = %tick_id, "tick started");
            let report = inner
                .tick
                .run(tick_id.clone(), inner.shutdown.clone())
                .await;
            let outcome = inner.tick.outcome(&report);
            let elapsed = started.elapsed();
            inner.metrics.finished(outcome, elapsed);
            tracing::info!(tick.id = %tick_id, outcome, duration_ms = elapsed.as_millis() as u64, "tick finished");
            report
        }, span));
        task.await.map_err(|e| {
            self.inner.metrics.finished("crashed", Duration::ZERO);
            TickError::Crashed(e.to_string())
        })
    }

    /// Waits until no tick task is running, at most `limit`; `true` when none is.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        self.inner.tracker.close();
        let idle = tokio::time::timeout(limit, self.inner.tracker.wait())
            .await
            .is_ok();
        self.inner.tracker.reopen();
        idle
    }
}

/// Whether the interval loop runs, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopState {
    /// The loop is running (it may still skip firings while paused).
    pub enabled: bool,
    /// Why it is off, or why it skips.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds between firings (0 = off).
    pub interval_secs: u64,
    /// `RUNNER_PAUSED`: firings are skipped.
    pub paused: bool,
}

impl LoopState {
    /// The state for `settings`.
    pub fn from_settings(settings: &crate::RunnerSettings) -> Self {
        let disabled = settings.loop_disabled_reason();
        let reason = disabled.clone().or_else(|| {
            settings
                .paused
                .then(|| "RUNNER_PAUSED: every firing is skipped".to_owned())
        });
        Self {
            enabled: disabled.is_none(),
            reason,
            interval_secs: settings.tick_interval.as_secs(),
            paused: settings.paused,
        }
    }
}

/// Starts the interval loop: the first firing comes after one interval, then one per
/// interval; skipped while paused or while a tick is in flight; ends when draining begins.
pub fn spawn_loop<T: Tick>(
    runner: TickRunner<T>,
    interval: Duration,
    paused: bool,
) -> tokio::task::JoinHandle<()> {
    let shutdown = runner.shutdown().clone();
    tokio::spawn(async move {
        if interval.is_zero() {
            return;
        }
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.draining() => break,
                _ = timer.tick() => {}
            }
            if paused {
                tracing::debug!("runner paused: tick skipped");
                continue;
            }
            match runner.run_now().await {
                Ok(_) => {}
                Err(TickError::InFlight(id)) => {
                    tracing::info!(tick.in_flight = %id, "previous tick still running: firing skipped");
                }
                Err(TickError::ShuttingDown) => break,
                Err(e) => tracing::error!(error = %e, "tick failed"),
            }
        }
        tracing::info!("tick loop stopped");
    })
}

/// This process's worker id: `<hostname>-<pid>`.
pub fn worker_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Waits for `release` before finishing, so a test controls how long a tick runs.
    struct Gate {
        started: tokio::sync::Notify,
        release: tokio::sync::Notify,
        runs: AtomicU32,
    }

    impl Tick for Arc<Gate> {
        type Report = String;

        async fn run(&self, tick_id: String, shutdown: Shutdown) -> String {
            self.runs.fetch_add(1, Ordering::SeqCst);
            self.started.notify_one();
            tokio::select! {
                () = self.release.notified() => format!("done {tick_id}"),
                () = shutdown.cancelled() => format!("cancelled {tick_id}"),
            }
        }
    }

    fn runner() -> (Arc<Gate>, TickRunner<Arc<Gate>>, Metrics) {
        let gate = Arc::new(Gate {
            started: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
            runs: AtomicU32::new(0),
        });
        let metrics = Metrics::new("test");
        let r = TickRunner::new(
            gate.clone(),
            TickMetrics::register(&metrics),
            Shutdown::new(),
        );
        (gate, r, metrics)
    }

    #[tokio::test]
    async fn a_second_tick_is_refused_while_one_is_in_flight() {
        let (gate, r, metrics) = runner();
        let first = tokio::spawn({
            let r = r.clone();
            async move { r.run_now().await }
        });
        gate.started.notified().await;
        let running = r.in_flight().unwrap();
        assert_eq!(
            r.run_now().await.unwrap_err(),
            TickError::InFlight(running.clone())
        );
        gate.release.notify_one();
        let report = first.await.unwrap().unwrap();
        assert_eq!(report, format!("done {running}"));
        assert_eq!(r.in_flight(), None);
        assert_eq!(gate.runs.load(Ordering::SeqCst), 1);
        let text = metrics.encode();
        assert!(
            text.contains("test_ticks_total{outcome=\"ok\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_dropped_caller_does_not_cancel_the_tick() {
        let (gate, r, _) = runner();
        let caller = tokio::spawn({
            let r = r.clone();
            async move { r.run_now().await }
        });
        gate.started.notified().await;
        caller.abort();
        let _ = caller.await;
        // Still in flight: the tick runs in its own task.
        assert!(r.in_flight().is_some());
        gate.release.notify_one();
        assert!(r.wait_idle(Duration::from_secs(5)).await);
        assert_eq!(r.in_flight(), None);
    }

    #[tokio::test]
    async fn cancel_reaches_the_running_tick_and_draining_refuses_new_ones() {
        let (gate, r, _) = runner();
        let first = tokio::spawn({
            let r = r.clone();
            async move { r.run_now().await }
        });
        gate.started.notified().await;
        r.shutdown().begin_drain();
        assert!(!r.wait_idle(Duration::from_millis(20)).await);
        r.shutdown().cancel();
        let report = first.await.unwrap().unwrap();
        assert!(report.starts_with("cancelled "), "{report}");
        assert_eq!(r.run_now().await.unwrap_err(), TickError::ShuttingDown);
    }

    #[test]
    fn worker_id_names_host_and_pid() {
        let id = worker_id();
        assert!(id.ends_with(&format!("-{}", std::process::id())), "{id}");
    }
}
