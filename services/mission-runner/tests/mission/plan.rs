//! The planner on both paths (JSON contract, native tools), both vendors, and `sim`.

use fake_llm::{Api, FakeLlm, Reply};
use llm::Llm;
use mission_runner::plan::iteration_id;
use mission_runner::{PlanModeSetting, PlanOutcome, Planner, PlannerSettings};
use serde_json::json;
use types::missions::{IterationSource, IterationStatus, StepIntent, StepStatus};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn json_contract_drops_unknown_tools_and_bad_params_with_reasons() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::text(format!(
        "Here you go:\n```json\n{}\n```",
        mixed_plan()
    )));
    let c = claimed("m-1", "Marathon");
    let out = planner(openai(&fake), PlanModeSetting::Json)
        .plan(&c, 0)
        .await;
    let PlanOutcome::Planned { iteration, tokens } = out else {
        panic!("expected a plan, got {out:?}");
    };
    assert!(tokens.total() > 0);
    assert_eq!(iteration.id, iteration_id(&c).to_string());
    assert_eq!(iteration.overall_status, IterationStatus::AwaitingReview);
    assert_eq!(iteration.source, Some(IterationSource::Server));
    assert_eq!(iteration.scheduled_for, Some(c.scheduled_for));
    assert_eq!(iteration.summary.as_deref(), Some("Three runs this week."));
    assert_eq!(iteration.plan.len(), 1);
    let step = &iteration.plan[0];
    assert_eq!(step.id, format!("{}-0", iteration.id));
    assert_eq!(step.status, StepStatus::Planned);
    assert_eq!(
        step.rationale.as_deref(),
        Some("Builds endurance toward 42 km.")
    );
    assert!(
        matches!(&step.intent, StepIntent::ToolCall { tool_name, params }
        if tool_name == "todo_create" && params["title"] == "Long run 15 km")
    );
    assert_eq!(iteration.dropped_steps.len(), 2);
    assert!(
        iteration.dropped_steps[0]
            .reason
            .contains("unknown tool `todo_teleport`")
    );
    assert_eq!(
        iteration.dropped_steps[1].tool_name.as_deref(),
        Some("mood_log")
    );
    assert!(
        iteration.dropped_steps[1].reason.contains("/level"),
        "{:?}",
        iteration.dropped_steps
    );

    // JSON mode offers no native tools; the prompt lists them with parameters.
    let reqs = fake.requests_to(Api::OpenAi);
    assert_eq!(reqs.len(), 1);
    assert!(
        reqs[0]
            .body
            .get("tools")
            .is_none_or(|t| t.as_array().is_some_and(Vec::is_empty))
    );
    let text = body_text(&reqs[0].body);
    assert!(text.contains("title: string (required)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prompt_carries_the_feedback_of_rejected_steps() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::text(mixed_plan()));
    let c = claimed("m-1", "Marathon");
    planner(openai(&fake), PlanModeSetting::Json)
        .plan(&c, 0)
        .await;
    let text = body_text(&fake.requests_to(Api::OpenAi)[0].body);
    assert!(text.contains("[rejected] Buy new running shoes"), "{text}");
    assert!(text.contains("I own enough shoes, focus on training"));
    assert!(text.contains("Never propose a rejected step again unchanged"));
    assert!(text.contains("Run a marathon (id: goal-1)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_output_is_a_failed_iteration_not_silence() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::text("Sorry, I'd rather write a poem about running."));
    let c = claimed("m-1", "Marathon");
    let out = planner(openai(&fake), PlanModeSetting::Json)
        .plan(&c, 0)
        .await;
    let PlanOutcome::ParseFailed { iteration, .. } = out else {
        panic!("expected a parse failure, got {out:?}");
    };
    assert_eq!(iteration.overall_status, IterationStatus::Failed);
    assert!(iteration.plan.is_empty());
    let error = iteration.error.unwrap();
    assert!(error.contains("no JSON plan found"), "{error}");
    assert!(error.contains("a poem about running"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_whose_every_step_is_invalid_fails_with_the_reasons() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::text(
        json!({"summary": "s", "steps": [{"toolName": "todo_delete", "params": {"id": "x"}}]})
            .to_string(),
    ));
    let out = planner(openai(&fake), PlanModeSetting::Json)
        .plan(&claimed("m-1", "Marathon"), 0)
        .await;
    let PlanOutcome::ParseFailed { iteration, .. } = out else {
        panic!("expected a parse failure, got {out:?}");
    };
    assert_eq!(iteration.overall_status, IterationStatus::Failed);
    assert_eq!(iteration.dropped_steps.len(), 1);
    assert!(iteration.error.unwrap().contains("may not be proposed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_empty_plan_is_approved_with_its_reason() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::text(
        r#"{"summary": "Rest day: nothing to plan.", "steps": []}"#,
    ));
    let out = planner(openai(&fake), PlanModeSetting::Json)
        .plan(&claimed("m-1", "Marathon"), 0)
        .await;
    let PlanOutcome::Planned { iteration, .. } = out else {
        panic!("expected a plan, got {out:?}");
    };
    assert_eq!(iteration.overall_status, IterationStatus::Approved);
    assert_eq!(
        iteration.summary.as_deref(),
        Some("Rest day: nothing to plan.")
    );
    assert!(iteration.error.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_tool_calls_become_proposals_and_are_never_executed() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::tool_calls(vec![
        (
            "todo_create".into(),
            json!({"title": "Interval training", "priority": "medium"}),
        ),
        ("todo_teleport".into(), json!({})),
        ("notes_create".into(), json!({"title": "Training log"})),
    ]));
    fake.push_openai(Reply::tool_call(
        "goals_log_progress",
        json!({"id": "goal-1", "amount": 5}),
    ));
    fake.push_openai(Reply::text(
        "Two workouts and a progress entry for this week.",
    ));
    let c = claimed("m-1", "Marathon");
    let out = planner(openai(&fake), PlanModeSetting::Tools)
        .plan(&c, 0)
        .await;
    let PlanOutcome::Planned { iteration, tokens } = out else {
        panic!("expected a plan, got {out:?}");
    };
    // Usage of all three rounds.
    assert_eq!(tokens.total(), 3 * 15);
    assert_eq!(
        iteration.summary.as_deref(),
        Some("Two workouts and a progress entry for this week.")
    );
    let tools: Vec<&str> = iteration
        .plan
        .iter()
        .map(|s| match &s.intent {
            StepIntent::ToolCall { tool_name, .. } => tool_name.as_str(),
            StepIntent::Note { .. } => "note",
        })
        .collect();
    assert_eq!(tools, ["todo_create", "goals_log_progress"]);
    assert_eq!(iteration.plan[0].summary, "todo_create: Interval training");
    assert_eq!(iteration.plan[1].id, format!("{}-1", iteration.id));
    assert_eq!(iteration.dropped_steps.len(), 2);
    assert!(iteration.dropped_steps[0].reason.contains("unknown tool"));
    assert!(
        iteration.dropped_steps[1].reason.contains("content"),
        "{:?}",
        iteration.dropped_steps
    );

    let reqs = fake.requests_to(Api::OpenAi);
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.rejection.is_none()));
    let offered: Vec<&str> = reqs[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    let mut proposable: Vec<&str> = tools::Registry::global()
        .proposable()
        .map(|t| t.name)
        .collect();
    // Sent in one order (by name), so the vendor's prefix cache can hit.
    proposable.sort_unstable();
    assert_eq!(offered, proposable);
    // Each call is answered: recorded, or refused with the reason.
    let second = body_text(&reqs[1].body);
    assert!(second.contains("recorded as a proposal for the user's review"));
    assert!(second.contains("not recorded: unknown tool"));
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_tool_calls_become_proposals() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::tool_call(
        "todo_create",
        json!({"title": "Easy 5 km"}),
    ));
    fake.push_anthropic(Reply::text("One easy run."));
    let out = planner(anthropic(&fake), PlanModeSetting::Auto)
        .plan(&claimed("m-1", "Marathon"), 0)
        .await;
    let PlanOutcome::Planned { iteration, .. } = out else {
        panic!("expected a plan, got {out:?}");
    };
    assert_eq!(iteration.plan.len(), 1);
    assert_eq!(iteration.summary.as_deref(), Some("One easy run."));
    let reqs = fake.requests_to(Api::Anthropic);
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter().all(|r| r.rejection.is_none()),
        "{:?}",
        reqs[1].rejection
    );
    assert!(body_text(&reqs[1].body).contains("tool_result"));
    assert!(body_text(&reqs[1].body).contains("recorded as a proposal"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_answers_in_text_on_the_tools_path_is_read_as_json() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::text(mixed_plan()));
    let out = planner(openai(&fake), PlanModeSetting::Tools)
        .plan(&claimed("m-1", "Marathon"), 0)
        .await;
    let PlanOutcome::Planned { iteration, .. } = out else {
        panic!("expected a plan, got {out:?}");
    };
    assert_eq!(iteration.plan.len(), 1);
    assert_eq!(iteration.dropped_steps.len(), 2);
    assert_eq!(fake.requests_to(Api::OpenAi).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_budget_means_no_llm_call() {
    let fake = FakeLlm::start().await.unwrap();
    let planner = Planner::new(
        openai(&fake),
        PlannerSettings {
            daily_token_budget: 1_000,
            ..PlannerSettings::default()
        },
        clock(),
    );
    let mut c = claimed("m-1", "Marathon");
    c.tokens_used_today = 900;
    // 900 from the claim + 100 spent earlier in this tick = the budget.
    let out = planner.plan(&c, 100).await;
    let PlanOutcome::OverBudget {
        used,
        budget,
        retry_after_seconds,
    } = out
    else {
        panic!("expected over budget, got {out:?}");
    };
    assert_eq!((used, budget), (1_000, 1_000));
    // 07:00 UTC → 17 h to midnight.
    assert_eq!(retry_after_seconds, 17 * 3600);
    assert!(fake.requests().is_empty());

    // Under the budget the LLM is asked.
    fake.push_openai(Reply::text(mixed_plan()));
    let out = planner.plan(&c, 0).await;
    assert!(matches!(out, PlanOutcome::Planned { .. }), "{out:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_llm_error_is_an_llm_failure_without_an_iteration() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_handler(|_| Reply::error(503));
    let out = planner(openai(&fake), PlanModeSetting::Tools)
        .plan(&claimed("m-1", "Marathon"), 0)
        .await;
    let PlanOutcome::LlmFailed {
        error,
        retry_after_seconds,
        ..
    } = &out
    else {
        panic!("expected an LLM failure, got {out:?}");
    };
    assert!(error.contains("503"), "{error}");
    // 300 s ± 25 %.
    assert!(
        (225..=375).contains(retry_after_seconds),
        "{retry_after_seconds}"
    );
    assert!(out.iteration().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn sim_plans_valid_steps_on_both_paths() {
    for mode in [PlanModeSetting::Json, PlanModeSetting::Tools] {
        let c = claimed("m-sim", "Marathon");
        let out = planner(Llm::sim(42), mode).plan(&c, 0).await;
        let PlanOutcome::Planned { iteration, tokens } = &out else {
            panic!("{mode:?}: expected a plan, got {out:?}");
        };
        assert!(!iteration.plan.is_empty(), "{mode:?}: {iteration:?}");
        assert!(tokens.total() > 0);
        for step in &iteration.plan {
            let StepIntent::ToolCall { tool_name, params } = &step.intent else {
                panic!("not a tool call");
            };
            tools::Registry::global()
                .validate(tool_name, params)
                .unwrap();
        }
        // Deterministic: the same slot plans the same iteration.
        let again = planner(Llm::sim(42), mode).plan(&c, 0).await;
        assert_eq!(again.iteration().unwrap().plan, iteration.plan);
    }
}
