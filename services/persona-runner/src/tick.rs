//! One persona-runner tick: claim due personas (lease longer than the deadline) → run
//! them with bounded concurrency as a stream → report.
//!
//! Rules: one persona's failure never stops the others; personas not started when
//! shutdown begins are released `abandoned` at once (claimable again right away, with
//! no backoff, counted in `abandoned`, neither failed nor done); the report never
//! panics and carries a claim error in `error`.

use std::{sync::Arc, time::Instant};

use futures::StreamExt;
use llm::Llm;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use runner_kit::{Shutdown, Tick};
use serde::Serialize;
use service_kit::metrics::Metrics;
use types::{
    personas::ReleaseOutcome,
    tick::{PersonaFailure, PersonaTickReport, TokenUsage},
};

use crate::{
    api::PersonaApi,
    day::{DayConfig, PersonaRun, run_persona},
};

/// The answer of `POST /internal/tick`: the report, plus the error that stopped the
/// tick before any persona ran (claim failed, no service key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickOutput {
    /// The report.
    #[serde(flatten)]
    pub report: PersonaTickReport,
    /// Why no persona could be claimed, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    module: String,
    result: String,
}

/// Persona-level metrics.
#[derive(Clone)]
struct PersonaMetrics {
    runs: Family<OutcomeLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
}

impl PersonaMetrics {
    fn register(metrics: &Metrics) -> Self {
        let m = Self {
            runs: Family::default(),
            tokens: Family::default(),
            actions: Family::default(),
        };
        metrics.register(
            "persona_runs",
            "Persona days by outcome (ok, failed, simulator_failure)",
            m.runs.clone(),
        );
        metrics.register(
            "llm_tokens",
            "LLM tokens used by kind (input = fresh input, output, cache_read, cache_write)",
            m.tokens.clone(),
        );
        metrics.register(
            "persona_actions",
            "Tool calls by module and result",
            m.actions.clone(),
        );
        m
    }

    fn record(&self, run: &PersonaRun) {
        let outcome = match (&run.result, &run.simulator_failure) {
            _ if run.abandoned => "abandoned",
            (Err(_), _) => "failed",
            (Ok(()), Some(_)) => "simulator_failure",
            (Ok(()), None) => "ok",
        };
        self.runs
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        for (kind, n) in [
            ("input", run.tokens.input),
            ("output", run.tokens.output),
            ("cache_read", run.tokens.cache_read),
            ("cache_write", run.tokens.cache_write),
        ] {
            self.tokens
                .get_or_create(&TokenLabels { kind: kind.into() })
                .inc_by(n);
        }
        for a in &run.actions {
            self.actions
                .get_or_create(&ActionLabels {
                    module: a.module.clone(),
                    result: a.result.as_str().into(),
                })
                .inc();
        }
    }
}

/// The persona tick.
pub struct PersonaTick {
    api: Arc<PersonaApi>,
    llm: Llm,
    day: DayConfig,
    worker: String,
    concurrency: usize,
    claim_limit: u32,
    lease_seconds: u32,
    metrics: PersonaMetrics,
}

/// How a [`PersonaTick`] is set up.
pub struct PersonaTickConfig {
    /// The persona API.
    pub api: Arc<PersonaApi>,
    /// The model.
    pub llm: Llm,
    /// The day's limits.
    pub day: DayConfig,
    /// Worker id sent with claims.
    pub worker: String,
    /// Personas at once.
    pub concurrency: usize,
    /// Personas per claim.
    pub claim_limit: u32,
    /// Lease length.
    pub lease_seconds: u32,
}

impl PersonaTick {
    /// A tick reporting to `metrics`.
    pub fn new(cfg: PersonaTickConfig, metrics: &Metrics) -> Self {
        Self {
            api: cfg.api,
            llm: cfg.llm,
            day: cfg.day,
            worker: cfg.worker,
            concurrency: cfg.concurrency.max(1),
            claim_limit: cfg.claim_limit,
            lease_seconds: cfg.lease_seconds,
            metrics: PersonaMetrics::register(metrics),
        }
    }

    /// The model in use.
    pub fn llm(&self) -> &Llm {
        &self.llm
    }

    /// The persona API.
    pub fn api(&self) -> &Arc<PersonaApi> {
        &self.api
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Tick for PersonaTick {
    type Report = TickOutput;

    async fn run(&self, tick_id: String, shutdown: Shutdown) -> TickOutput {
        let started = Instant::now();
        let mut report = PersonaTickReport {
            tick_id: tick_id.clone(),
            due: 0,
            ran_successfully: 0,
            failed: Vec::new(),
            simulator_failures: 0,
            abandoned: 0,
            tokens: TokenUsage::default(),
            duration_ms: 0,
        };
        let claimed = match self
            .api
            .claim(&self.worker, self.claim_limit, self.lease_seconds)
            .await
        {
            Ok(c) => c.personas,
            Err(e) => {
                tracing::error!(tick.id = %tick_id, error = %e, "claim failed");
                report.duration_ms = elapsed_ms(started);
                return TickOutput {
                    report,
                    error: Some(format!("claim failed: {e}")),
                };
            }
        };
        report.due = u32::try_from(claimed.len()).unwrap_or(u32::MAX);
        let runs: Vec<PersonaRun> = futures::stream::iter(claimed)
            .map(|p| {
                let shutdown = shutdown.clone();
                let tick_id = tick_id.clone();
                let fut: futures::future::BoxFuture<'_, PersonaRun> = Box::pin(async move {
                    if shutdown.is_draining() {
                        return self.abandon(&p, &tick_id).await;
                    }
                    run_persona(&self.api, &self.llm, &self.day, &p, &tick_id, &shutdown).await
                });
                fut
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for run in runs {
            self.metrics.record(&run);
            report.tokens.add(run.tokens);
            if run.abandoned {
                report.abandoned += 1;
                continue;
            }
            match (run.result, run.simulator_failure) {
                (Err(error), _) => report.failed.push(PersonaFailure {
                    persona_id: run.persona_id,
                    error,
                }),
                (Ok(()), Some(_)) => report.simulator_failures += 1,
                (Ok(()), None) => report.ran_successfully += 1,
            }
        }
        report.duration_ms = elapsed_ms(started);
        if report.due > 0 {
            tracing::info!(
                tick.id = %tick_id,
                due = report.due,
                ok = report.ran_successfully,
                failed = report.failed.len(),
                simulator_failures = report.simulator_failures,
                tokens = report.tokens.total(),
                duration_ms = report.duration_ms,
                "persona tick done"
            );
        }
        TickOutput {
            report,
            error: None,
        }
    }

    fn outcome(&self, report: &TickOutput) -> &'static str {
        if report.error.is_some() {
            "failed"
        } else if report.report.failed.is_empty() {
            "ok"
        } else {
            "partial"
        }
    }
}

impl PersonaTick {
    /// Releases a persona that was claimed but not started (shutdown).
    async fn abandon(&self, p: &types::personas::ClaimedPersona, tick_id: &str) -> PersonaRun {
        let id = p.persona.user_id;
        let error = "not started: the runner is shutting down".to_owned();
        if let Err(e) = self
            .api
            .release(
                id,
                p.lease_token,
                ReleaseOutcome::Abandoned,
                Some(error.clone()),
            )
            .await
        {
            tracing::warn!(persona.id = %id, tick.id = %tick_id, error = %e, "release of an unstarted persona failed");
        }
        PersonaRun {
            persona_id: id,
            result: Err(error),
            simulator_failure: None,
            tokens: TokenUsage::default(),
            first_prompt_tokens: None,
            error_class: Some("cancelled"),
            actions: Vec::new(),
            feedback: Vec::new(),
            abandoned: true,
        }
    }
}
