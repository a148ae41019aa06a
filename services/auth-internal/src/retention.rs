//! Transcript retention: a background task that drops the transcripts of runs started
//! more than `runs.retention_days` ago, keeping the run summaries.
//!
//! Rules:
//! - `now` comes from the application's clock, so tests move a manual clock and call
//!   [`sweep`] instead of waiting for the interval.
//! - A sweep works in batches of `runs.retention_batch` rows, one short statement each
//!   (no long lock, no table-wide rewrite), until a batch comes back short.
//! - A failed sweep is logged and retried at the next interval; it never stops the task.
//! - The reports' rollups are untouched: nulling a transcript changes no column they sum
//!   (the `persona_runs` trigger skips such updates), and summaries are never deleted.

use std::time::Duration;

use actix_web::web;
use chrono::TimeDelta;

use crate::{db::runs, error::AppError, state::AppState};

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

/// Starts the periodic sweep; abort the handle to stop it.
pub fn spawn(state: web::Data<AppState>) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(state.settings.runs.retention_interval_secs);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = sweep(&state).await {
                tracing::warn!(error = %e, "transcript retention sweep failed; retrying next interval");
            }
        }
    })
}
