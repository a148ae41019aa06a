//! Across the real stack: auth-internal (fresh database) + mission-runner over
//! real HTTP + a fake OpenAI vendor. A mission pushed through sync becomes due,
//! is planned, its iteration reaches the user's sync pull, and approving a
//! step creates the record as that user.

use chrono::{TimeDelta, Utc};
use fake_llm::{FakeLlm, Reply};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use test_support::auth::{AuthInternal, Options, SERVICE_KEY as KEY};

use crate::common::{Runner, runner_settings};

struct Stack {
    auth: String,
    runner: String,
    http: Client,
    _auth_internal: AuthInternal,
    _runner: Runner,
    _llm: FakeLlm,
}

async fn stack(llm: FakeLlm, mode: &str) -> Stack {
    // The runner checks leases against its own (system) clock, so auth runs near it.
    let auth_internal = Options::default().clock_at(Utc::now()).spawn().await;
    let runner = Runner::start(runner_settings(
        &auth_internal.base,
        KEY,
        &[
            ("LLM_PROVIDER", "openai"),
            ("OPENAI_BASE_URL", llm.openai_base_url().as_str()),
            ("OPENAI_API_KEY", "sk-test"),
            ("LLM_MAX_ATTEMPTS", "1"),
            ("MISSION_PLAN_MODE", mode),
        ],
    ));
    Stack {
        auth: auth_internal.base.clone(),
        runner: runner.base.clone(),
        http: Client::new(),
        _auth_internal: auth_internal,
        _runner: runner,
        _llm: llm,
    }
}

impl Stack {
    async fn user(&self, email: &str) -> String {
        let body: Value = self
            .http
            .post(format!("{}/api/v1/auth/register", self.auth))
            .json(&json!({"email": email, "password": "a good password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["accessToken"].as_str().unwrap().to_owned()
    }

    async fn push(&self, token: &str, changes: Value) {
        let resp = self
            .http
            .post(format!("{}/api/v1/sync/push", self.auth))
            .bearer_auth(token)
            .json(&json!({"clientId": "web", "changes": changes}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    async fn pull(&self, token: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/sync/pull?limit=1000", self.auth))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["changes"].as_array().unwrap().clone()
    }

    async fn tick(&self) -> Value {
        let resp = self
            .http
            .post(format!("{}/internal/tick", self.runner))
            .header("x-service-key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }
}

fn mission(next_run_at: &str) -> Value {
    json!({"appId": "ai", "table": "aiMissions", "recordId": "m1", "op": "insert", "data": {
        "title": "Morgenplan", "objective": "Plane meinen Tag aus offenen Aufgaben", "conceptMarkdown": "",
        "state": "active", "cadence": {"kind": "daily", "atHour": 6, "atMinute": 0},
        "nextRunAt": next_run_at, "inputs": [{"module": "todo", "table": "tasks", "id": "t1"}], "iterations": []}})
}

fn latest_iteration(changes: &[Value]) -> Value {
    changes
        .iter()
        .rev()
        .find(|c| c["recordId"] == "m1" && c["data"]["iterations"].is_array())
        .map(|c| {
            c["data"]["iterations"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .clone()
        })
        .expect("an iteration reached the user's pull")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_mission_is_planned_validated_written_back_and_approved() {
    let llm = FakeLlm::start().await.unwrap();
    // Round 1: three proposals (one good, one unknown tool, one with bad params); round 2: done.
    llm.push_openai(Reply::tool_calls(vec![
        (
            "todo_create".into(),
            json!({"title": "Steuererklärung abgeben", "priority": "high"}),
        ),
        ("todo_explode".into(), json!({"title": "boom"})),
        (
            "todo_create".into(),
            json!({"title": "Zahnarzt", "priority": "whenever"}),
        ),
    ]));
    llm.push_openai(Reply::text("Ein Punkt für heute: die Steuer."));
    let s = stack(llm, "tools").await;
    let token = s.user("mission@example.com").await;
    let other = s.user("other@example.com").await;
    let due_at = (Utc::now() - TimeDelta::minutes(5)).to_rfc3339();
    s.push(&token, json!([
        {"appId": "todo", "table": "tasks", "recordId": "t1", "op": "insert", "data": {"title": "Steuern", "description": "Frist Ende November"}},
        mission(&due_at)
    ])).await;

    let report = s.tick().await;
    assert_eq!(report["due"], 1, "{report}");
    assert_eq!(report["plansProduced"], 1, "{report}");
    assert_eq!(report["llmFailures"], 0, "{report}");

    // The resolved input reached the prompt.
    let requests = s._llm.requests();
    let prompt = requests[0].body.to_string();
    assert!(
        prompt.contains("Frist Ende November"),
        "inputs are in the planner prompt"
    );

    let it = latest_iteration(&s.pull(&token).await);
    assert_eq!(it["overallStatus"], "awaiting-review", "{it}");
    assert_eq!(it["source"], "server");
    let plan = it["plan"].as_array().unwrap();
    assert_eq!(plan.len(), 1, "only the valid step survives: {it}");
    assert_eq!(plan[0]["intent"]["toolName"], "todo_create");
    let dropped = it["droppedSteps"].as_array().unwrap();
    assert_eq!(dropped.len(), 2, "{it}");
    assert!(dropped.iter().any(|d| d["toolName"] == "todo_explode"));
    assert!(
        dropped
            .iter()
            .all(|d| !d["reason"].as_str().unwrap().is_empty())
    );

    // Not due again this tick: nextRunAt moved to tomorrow 06:00.
    assert_eq!(s.tick().await["due"], 0);

    // Another user cannot approve it; the owner can, and the todo appears as theirs.
    let url = format!(
        "{}/api/v1/missions/m1/iterations/{}/steps/{}/approve",
        s.auth,
        it["id"].as_str().unwrap(),
        plan[0]["id"].as_str().unwrap()
    );
    let resp = s.http.post(&url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = s.http.post(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let approved: Value = resp.json().await.unwrap();
    assert_eq!(approved["step"]["status"], "approved");
    let todo_id = approved["step"]["outcome"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let changes = s.pull(&token).await;
    assert!(
        changes.iter().any(|c| c["recordId"] == todo_id.as_str()
            && c["data"]["title"] == "Steuererklärung abgeben"),
        "the approved step created the todo as the user"
    );
    let others = s.pull(&other).await;
    assert!(others.is_empty(), "nothing leaked to the other user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_llm_becomes_a_failed_iteration_not_silence() {
    let llm = FakeLlm::start().await.unwrap();
    llm.set_openai_handler(|_| {
        Reply::text("Sure! Here's what I'd do: probably something nice {not json")
    });
    let s = stack(llm, "json").await;
    let token = s.user("garbage@example.com").await;
    s.push(
        &token,
        json!([mission(&(Utc::now() - TimeDelta::minutes(1)).to_rfc3339())]),
    )
    .await;
    let report = s.tick().await;
    assert_eq!(report["parseFailures"], 1, "{report}");
    assert_eq!(report["plansProduced"], 0, "{report}");
    let it = latest_iteration(&s.pull(&token).await);
    assert_eq!(it["overallStatus"], "failed", "{it}");
    assert!(
        !it["error"].as_str().unwrap_or_default().is_empty(),
        "the reason is kept: {it}"
    );
}

/// Issue 14: planning one mission is one trace — `invoke_agent mission-planner` with the
/// validation outcome, its `chat` spans, and auth-internal's write-back span as a child.
/// The only test of this binary that installs a global subscriber; it filters by trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mission_plan_is_one_trace_with_its_validation_outcome() {
    use service_kit::telemetry::{GenAiOptions, LogFormat, OtelSettings, Telemetry};
    use test_support::otlp::OtlpReceiver;

    let receiver = OtlpReceiver::start().await;
    let provider = service_kit::telemetry::build_provider(
        &OtelSettings::from_lookup("mission-runner", |_| None).exporting_to(receiver.traces_url()),
    )
    .unwrap();
    let telemetry =
        Telemetry::init_with(LogFormat::Pretty, provider, true, GenAiOptions::default());
    let llm = FakeLlm::start().await.unwrap();
    llm.push_openai(Reply::tool_calls(vec![
        ("todo_create".into(), json!({"title": "Steuer"})),
        ("todo_explode".into(), json!({"title": "boom"})),
        (
            "todo_create".into(),
            json!({"title": "Zahnarzt", "priority": "whenever"}),
        ),
    ]));
    llm.push_openai(Reply::text("Ein Punkt für heute."));
    let s = stack(llm, "tools").await;
    let token = s.user("traced-mission@example.com").await;
    let due_at = (Utc::now() - TimeDelta::minutes(5)).to_rfc3339();
    // Its own record id: under `cargo test` the other tests' missions reach this receiver too.
    let mut m = mission(&due_at);
    m["recordId"] = json!("m-traced");
    s.push(&token, json!([m])).await;
    let report = s.tick().await;
    assert_eq!(report["plansProduced"], 1, "{report}");

    let p = telemetry.provider().clone();
    tokio::task::spawn_blocking(move || p.force_flush())
        .await
        .unwrap()
        .unwrap();
    let spans = receiver
        .wait_for(std::time::Duration::from_secs(10), |s| {
            s.iter()
                .any(|s| s.str("gen_ai.agent.id") == Some("m-traced"))
        })
        .await;
    let plans: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.name == "invoke_agent mission-planner" && s.str("gen_ai.agent.id") == Some("m-traced")
        })
        .collect();
    assert_eq!(plans.len(), 1, "{spans:#?}");
    let plan = plans[0];
    assert!(plan.parent_span_id.is_empty() && plan.links.len() == 1);
    assert_eq!(plan.str("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(plan.str("mana.plan.outcome"), Some("planned"));
    assert_eq!(plan.int("mana.plan.steps_kept"), Some(1));
    assert_eq!(plan.int("mana.plan.steps_dropped"), Some(2));
    assert_eq!(plan.str("mana.write_back"), Some("written"));
    assert!(
        plan.str("gen_ai.conversation.id")
            .is_some_and(|id| !id.is_empty())
    );
    let dropped: Vec<_> = plan
        .events
        .iter()
        .filter(|e| e.name == "mana.plan.step_dropped")
        .collect();
    assert_eq!(dropped.len(), 2);
    assert!(
        dropped
            .iter()
            .any(|e| e.attributes.get("gen_ai.tool.name") == Some(&json!("todo_explode")))
    );

    let trace: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == plan.trace_id)
        .collect();
    let chats: Vec<_> = trace
        .iter()
        .filter(|s| s.name.starts_with("chat "))
        .collect();
    assert_eq!(chats.len(), 2, "two rounds of the tool loop: {trace:#?}");
    assert!(chats.iter().all(|c| c.parent_span_id == plan.span_id
        && c.str("gen_ai.provider.name") == Some("openai")
        && c.str("gen_ai.system") == Some("openai")));
    // Default options: message capture is off, so no prompt or answer leaves the process,
    // neither as attributes (latest conventions) nor as per-message events.
    for c in &chats {
        for key in [
            "gen_ai.system_instructions",
            "gen_ai.input.messages",
            "gen_ai.output.messages",
        ] {
            assert!(!c.attributes.contains_key(key), "{key} on {c:#?}");
        }
        assert!(
            c.events.iter().all(|e| !matches!(
                e.name.as_str(),
                "gen_ai.system.message"
                    | "gen_ai.user.message"
                    | "gen_ai.assistant.message"
                    | "gen_ai.tool.message"
                    | "gen_ai.choice"
            )),
            "message events without capture: {:?}",
            c.events
        );
    }
    assert!(
        trace
            .iter()
            .any(|s| s.name == "POST /api/v1/internal/missions/{id}/iterations" && s.kind == 2),
        "auth-internal's write-back continues the plan's trace: {trace:#?}"
    );
}
