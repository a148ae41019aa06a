//! Upkeep of the run records, one background task: transcript retention drops the
//! transcripts of runs started more than `runs.retention_days` ago, keeping the run
//! summaries; every `runs.rollup_compact_secs` the report rollups' delta rows are folded
//! into one row per key ([`compact`]).
//!
//! Rules:
//! - `now` comes from the application's clock, so tests move a manual clock and call
//!   [`sweep`] instead of waiting for the interval.
//! - A sweep works in batches of `runs.retention_batch` rows, one short statement each
//!   (no long lock, no table-wide rewrite), until a batch comes back short.
//! - A failed sweep is logged and retried at the next interval; it never stops the task.
//! - The reports' rollups are untouched: nulling a transcript changes no column they sum
//!   (the `persona_runs` trigger skips such updates), and summaries are never deleted.
//! - Compaction changes no report (a report sums a key's rows) and is safe from several
//!   replicas (one compacts, the others get 0); it only keeps the rollups small.

use std::time::Duration;

use actix_web::web;
use chrono::TimeDelta;

use crate::{
    db::{reports, runs},
    error::AppError,
    state::AppState,
};

/// Most batches one sweep runs (the next interval continues).
const MAX_BATCHES: u32 = 1000;

/// One sweep at the clock's `now`; returns the transcripts dropped.
pub async fn sweep(state: &AppState) -> Result<u64, AppError> {
    let s = &state.settings.runs;
    let cutoff = state.clock.now() - TimeDelta::days(i64::from(s.retention_days));
    let mut conn = state.pool.get().await?;
    let mut dropped = 0u64;
    for _ in 0..MAX_BATCHES {
        let n = runs::drop_transcripts_before(&mut conn, cutoff, s.retention_batch).await?;
        dropped += n as u64;
        if n < s.retention_batch as usize {
            break;
        }
    }
    if dropped > 0 {
        tracing::info!(transcripts.dropped = dropped, %cutoff, "run transcripts past retention dropped");
    }
    Ok(dropped)
}

/// Folds the report rollups once; returns the folded rows written.
pub async fn compact(state: &AppState) -> Result<i64, AppError> {
    let mut conn = state.pool.get().await?;
    let folded = reports::compact(&mut conn).await?;
    tracing::debug!(rollups.folded = folded, "report rollups compacted");
    Ok(folded)
}

/// Starts the periodic sweep and compaction; abort the handle to stop them.
pub fn spawn(state: web::Data<AppState>) -> tokio::task::JoinHandle<()> {
    let every = |secs| {
        let mut interval = tokio::time::interval(Duration::from_secs(secs));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    };
    let mut sweeps = every(state.settings.runs.retention_interval_secs);
    let mut compactions = every(state.settings.runs.rollup_compact_secs);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = sweeps.tick() => {
                    if let Err(e) = sweep(&state).await {
                        tracing::warn!(error = %e, "transcript retention sweep failed; retrying next interval");
                    }
                }
                _ = compactions.tick() => {
                    if let Err(e) = compact(&state).await {
                        tracing::warn!(error = %e, "report rollup compaction failed; retrying next interval");
                    }
                }
            }
        }
    })
}
