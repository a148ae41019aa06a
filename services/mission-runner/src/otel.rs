//! The mission plan's span in the OpenTelemetry GenAI semantic conventions.
//!
//! Rules:
//! - Planning one mission is one trace: an `invoke_agent mission-planner` root span
//!   (linked to the tick) with `gen_ai.agent.id` = the mission id and
//!   `gen_ai.conversation.id` = the iteration id; its `chat {model}` calls and the
//!   write-back (and auth-internal's spans) are its descendants.
//! - The validation outcome is on the span: `mana.plan.outcome`, `mana.plan.steps_kept`,
//!   `mana.plan.steps_dropped`, one `mana.plan.step_dropped` event per dropped step with
//!   its reason, and the tokens used; an LLM or parse failure sets `error.type`.

use opentelemetry::{KeyValue, trace::Status, trace::TraceContextExt};
use service_kit::telemetry::int;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use types::missions::ClaimedMission;

use crate::{
    plan::{PlanOutcome, iteration_id},
    tick::{MissionResult, WriteBack},
};

/// The agent name of the planner.
pub const AGENT_NAME: &str = "mission-planner";

/// The root span of one mission's planning, linked to the current (tick) span.
pub fn mission_span(claimed: &ClaimedMission, provider: &str) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "invoke_agent",
        otel.name = %format!("invoke_agent {AGENT_NAME}"),
        gen_ai.operation.name = "invoke_agent",
        gen_ai.provider.name = provider,
        gen_ai.agent.name = AGENT_NAME,
        gen_ai.agent.id = %claimed.mission.id,
        gen_ai.conversation.id = %iteration_id(claimed),
        mission.id = %claimed.mission.id,
        user.id = %claimed.user_id,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        mana.plan.outcome = Empty,
        mana.plan.steps_kept = Empty,
        mana.plan.steps_dropped = Empty,
        mana.write_back = Empty,
        error.type = Empty,
    );
    let tick = Span::current().context().span().span_context().clone();
    if tick.is_valid() {
        span.add_link(tick);
    }
    span
}

/// Records the planning outcome and the write-back.
pub fn record_mission(span: &Span, result: &MissionResult) {
    let write_back = match &result.write_back {
        WriteBack::None => "none",
        WriteBack::Written { fresh: true } => "written",
        WriteBack::Written { fresh: false } => "duplicate",
        WriteBack::Failed { .. } => "failed",
    };
    span.record("mana.write_back", write_back);
    let Some(outcome) = &result.outcome else {
        let kind = if result.timed_out {
            "deadline"
        } else if result.stopped {
            "cancelled"
        } else {
            "not_planned"
        };
        span.record("mana.plan.outcome", kind);
        if result.timed_out {
            span.record("error.type", kind);
            span.set_status(Status::error("planning deadline passed"));
        }
        return;
    };
    span.record("mana.plan.outcome", outcome.label());
    let t = outcome.tokens();
    span.record("gen_ai.usage.input_tokens", int(t.input));
    span.record("gen_ai.usage.output_tokens", int(t.output));
    span.record("gen_ai.usage.cache_read.input_tokens", int(t.cache_read));
    span.record(
        "gen_ai.usage.cache_creation.input_tokens",
        int(t.cache_write),
    );
    if let Some(it) = outcome.iteration() {
        span.record("mana.plan.steps_kept", int(it.plan.len()));
        span.record("mana.plan.steps_dropped", int(it.dropped_steps.len()));
        for d in &it.dropped_steps {
            let mut attrs = vec![KeyValue::new("mana.plan.drop_reason", d.reason.clone())];
            if let Some(tool) = &d.tool_name {
                attrs.push(KeyValue::new("gen_ai.tool.name", tool.clone()));
            }
            span.add_event("mana.plan.step_dropped", attrs);
        }
    }
    match outcome {
        PlanOutcome::LlmFailed { error, .. } => {
            span.record("error.type", "llm");
            span.set_status(Status::error(error.clone()));
        }
        PlanOutcome::ParseFailed { .. } => {
            span.record("error.type", "parse_failure");
            span.set_status(Status::error("the plan could not be parsed"));
        }
        _ => {}
    }
    if let WriteBack::Failed { .. } = &result.write_back
        && !matches!(
            outcome,
            PlanOutcome::LlmFailed { .. } | PlanOutcome::ParseFailed { .. }
        )
    {
        span.record("error.type", "write_back");
        span.set_status(Status::error("write-back failed"));
    }
}
