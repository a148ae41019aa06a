//! The scenarios of issue 4 §6.

use std::time::Duration;

use fake_llm::{Api, FakeLlm, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Auth, Runner, anthropic_env, as_refs, eventually, openai_env};

const RATING_TODO: &str = "Klar, hier:\n```json\n{\"ratings\":[{\"module\":\"todo\",\"rating\":4,\"notes\":\"praktisch\"}]}\n```";

/// A stateless fake: first day turn → one `todo_create`, later turns → text, rating → JSON.
fn day_handler(body: &Value) -> Reply {
    let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    if !has_tools {
        return Reply::text(RATING_TODO);
    }
    if body["messages"].as_array().is_some_and(|m| m.len() == 1) {
        Reply::tool_call("todo_create", json!({"title": "Wäsche"}))
    } else {
        Reply::text("Fertig für heute.")
    }
}

/// `GET /api/v1/internal/runs/{runId}` from auth-internal.
async fn run_row(auth: &Auth, run_id: &str) -> Value {
    let resp = auth
        .internal(reqwest::Method::GET, &format!("/runs/{run_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn scripted_day(provider: Api) {
    let auth = Auth::spawn().await;
    let ids = auth.seed("scripted", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    let push = |r: Reply| match provider {
        Api::Anthropic => fake.push_anthropic(r),
        Api::OpenAi => fake.push_openai(r),
    };
    push(Reply::tool_call(
        "todo_create",
        json!({"title": "Milch kaufen"}),
    ));
    // `title` is required: the tool answers isError.
    push(Reply::tool_call("todo_create", json!({})));
    push(Reply::tool_call(
        "notes_create",
        json!({"title": "Idee", "content": "Dachgarten"}),
    ));
    push(Reply::text("Ich habe eingekauft und eine Idee notiert."));
    push(Reply::text(
        "Bewertung: {\"ratings\":[{\"module\":\"notes\",\"rating\":5,\"notes\":\"schön\"},{\"module\":\"todo\",\"rating\":2,\"notes\":\"Fehler\"},{\"module\":\"calendar\",\"rating\":4}]}",
    ));
    let mut env = match provider {
        Api::Anthropic => anthropic_env(&fake),
        Api::OpenAi => openai_env(&fake),
    };
    env.push(("PERSONA_APP_VERSION", "2.3.1".to_owned()));
    let runner = Runner::spawn(&auth, &as_refs(&env)).await;

    let (status, report) = runner.tick_http().await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["due"], 1, "{report}");
    assert_eq!(report["ranSuccessfully"], 1, "{report}");
    assert_eq!(report["simulatorFailures"], 0);
    assert_eq!(report["failed"], json!([]));
    assert_eq!(
        report["tokens"]["input"], 50,
        "5 requests × 10 input tokens"
    );
    let tick_id = report["tickId"].as_str().unwrap().to_owned();
    assert_eq!(fake.pending_replies(provider), 0);
    assert!(fake.requests().iter().all(|r| r.rejection.is_none()));

    let id = ids[0];
    let run_id = format!("{tick_id}.{id}");
    let rows = auth
        .sql_strings(&format!(
            "SELECT tool_name || '|' || module || '|' || result || '|' || coalesce(input_hash,'') || '|' || coalesce(error_message,'') || '|' || (latency_ms IS NOT NULL)::text AS s \
             FROM persona_actions WHERE persona_id = '{id}' AND tick_id = '{run_id}' ORDER BY id"
        ))
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    // ids are `{run}-{i}-{tool}`: ordered by index.
    let parts: Vec<Vec<&str>> = rows.iter().map(|r| r.split('|').collect()).collect();
    assert_eq!(&parts[0][..3], ["todo_create", "todo", "ok"]);
    assert_eq!(&parts[1][..3], ["todo_create", "todo", "error"]);
    assert!(!parts[1][4].is_empty(), "error message kept");
    assert_eq!(&parts[2][..3], ["notes_create", "notes", "ok"]);
    assert!(parts.iter().all(|p| p[3].len() == 16 && p[5] == "true"));
    assert_ne!(parts[0][3], parts[1][3]);

    let feedback = auth
        .sql_strings(&format!(
            "SELECT module || '|' || coalesce(rating::text,'null') || '|' || coalesce(notes,'') AS s FROM persona_feedback \
             WHERE persona_id = '{id}' ORDER BY module"
        ))
        .await;
    assert_eq!(
        feedback,
        vec!["notes|5|schön", "todo|2|Fehler"],
        "calendar was not used: dropped"
    );

    // What the model saw: unprefixed MCP tools, tool results paired by id, and a rating
    // request without tools that carries today's actions.
    let reqs = fake.requests_to(provider);
    assert_eq!(reqs.len(), 5);
    let tools = reqs[0].body["tools"].as_array().unwrap();
    let names: Vec<&str> = tools
        .iter()
        .map(|t| {
            t["name"]
                .as_str()
                .or(t["function"]["name"].as_str())
                .unwrap()
        })
        .collect();
    assert!(
        names.contains(&"todo_create") && names.contains(&"notes_create"),
        "{names:?}"
    );
    assert!(names.iter().all(|n| !n.contains("__") && !n.contains('.')));
    let rating = &reqs[4].body;
    assert!(rating["tools"].as_array().is_none_or(Vec::is_empty));
    let rating_text = rating["messages"].to_string();
    assert!(rating_text.contains("todo_create (todo)"), "{rating_text}");
    assert!(
        rating_text.contains("notes_create (notes): ok"),
        "{rating_text}"
    );
    assert!(
        reqs[0].body["messages"]
            .to_string()
            .contains("Lebe einen Tag")
    );

    // The run row: outcome, counts, tokens, app version and the whole conversation.
    let run = run_row(&auth, &run_id).await;
    assert_eq!(run["outcome"], "ok", "{run}");
    assert!(run["errorClass"].is_null());
    assert_eq!(run["personaId"], id.to_string());
    assert_eq!(run["tickId"], tick_id);
    assert_eq!(run["appVersion"], "2.3.1");
    assert_eq!(
        run["provider"],
        if provider == Api::Anthropic {
            "anthropic"
        } else {
            "openai"
        }
    );
    assert_eq!(run["turns"], 4);
    assert_eq!(run["toolCalls"], 3);
    assert_eq!(run["toolErrors"], 1);
    assert_eq!(run["tokens"], report["tokens"]);
    assert_eq!(run["firstPromptTokens"], 10);
    assert!(run["finishedAt"].is_string());
    // Snapshots after each of the 3 tool turns, then the final one.
    assert_eq!(run["revision"], 4);
    let t = &run["transcript"];
    assert!(t["system"].as_str().unwrap().starts_with("Du bist"), "{t}");
    let roles: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant"
        ]
    );
    let m = t["messages"].as_array().unwrap();
    assert!(m[0]["text"].as_str().unwrap().contains("Lebe einen Tag"));
    assert_eq!(m[1]["toolCalls"][0]["name"], "todo_create");
    assert_eq!(
        m[1]["toolCalls"][0]["arguments"],
        json!({"title": "Milch kaufen"})
    );
    assert_eq!(
        m[4]["isError"], true,
        "the failed call's result as the model saw it"
    );
    assert_eq!(m[7]["text"], "Ich habe eingekauft und eine Idee notiert.");
    assert!(
        t["ratingPrompt"]
            .as_str()
            .unwrap()
            .contains("todo_create (todo)")
    );
    assert!(t["ratingReply"].as_str().unwrap().starts_with("Bewertung:"));
    assert_eq!(run["actions"].as_array().unwrap().len(), 3);
    assert_eq!(run["feedback"].as_array().unwrap().len(), 2);

    // The persona is released as done and not due again.
    let profile = auth.profile(id).await;
    assert_eq!(profile["lease"], Value::Null, "{profile}");
    assert_eq!(profile["consecutiveFailures"], 0);
    assert_eq!(profile["actionsTotal"], 3);
    let (_, again) = runner.tick_http().await;
    assert_eq!(again["due"], 0, "{again}");
    assert_eq!(
        auth.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anthropic_day_records_every_action_and_rating() {
    scripted_day(Api::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openai_day_records_every_action_and_rating() {
    scripted_day(Api::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unparseable_rating_is_one_parse_row_and_english_prompts_for_en() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("garbled", 1, "en-GB").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::tool_call(
        "todo_create",
        json!({"title": "Call mum"}),
    ));
    fake.push_anthropic(Reply::text("Done."));
    fake.push_anthropic(Reply::text("I'd give todo a solid four out of five!"));
    let runner = Runner::spawn(&auth, &as_refs(&anthropic_env(&fake))).await;
    let (_, report) = runner.tick_http().await;
    assert_eq!(report["ranSuccessfully"], 1, "{report}");
    let rows = auth
        .sql_strings(&format!(
            "SELECT module || '|' || coalesce(rating::text,'null') || '|' || notes AS s FROM persona_feedback WHERE persona_id = '{}'",
            ids[0]
        ))
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].starts_with("__parse|null|"), "{rows:?}");
    assert!(rows[0].contains("solid four"), "raw text kept: {rows:?}");
    let first = &fake.requests_to(Api::Anthropic)[0].body;
    assert!(first["messages"].to_string().contains("Live one day"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zero_tool_calls_is_a_simulator_failure_released_done() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("refuser", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.push_openai(Reply::text(
        "I'm sorry, but I can't pretend to be a person.",
    ));
    let runner = Runner::spawn(&auth, &as_refs(&openai_env(&fake))).await;
    let (_, report) = runner.tick_http().await;
    assert_eq!(report["simulatorFailures"], 1, "{report}");
    assert_eq!(report["ranSuccessfully"], 0);
    assert_eq!(report["failed"], json!([]));
    // No rating turn without actions.
    assert_eq!(fake.requests_to(Api::OpenAi).len(), 1);
    let run_id = format!("{}.{}", report["tickId"].as_str().unwrap(), ids[0]);
    let run = run_row(&auth, &run_id).await;
    assert_eq!(run["outcome"], "simulator_failure", "{run}");
    assert_eq!(run["errorClass"], "simulator");
    assert!(run["error"].as_str().unwrap().contains("refused"), "{run}");
    assert_eq!(run["toolCalls"], 0);
    assert_eq!(
        run["transcript"]["messages"][1]["text"],
        "I'm sorry, but I can't pretend to be a person."
    );
    let profile = auth.profile(ids[0]).await;
    assert_eq!(profile["consecutiveFailures"], 0, "{profile}");
    assert!(
        profile["lastActiveAt"].is_string(),
        "released done: {profile}"
    );
    // Not retried on the next tick.
    let (_, again) = runner.tick_http().await;
    assert_eq!(again["due"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retried_writes_add_no_duplicates() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("retry", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.set_anthropic_handler(day_handler);
    let runner = Runner::spawn(&auth, &as_refs(&anthropic_env(&fake))).await;
    let (_, report) = runner.tick_http().await;
    assert_eq!(report["ranSuccessfully"], 1, "{report}");
    let tick_id = report["tickId"].as_str().unwrap();
    let run_id = format!("{tick_id}.{}", ids[0]);
    let actions = auth
        .sql_count("SELECT count(*) AS n FROM persona_actions")
        .await;
    let feedback = auth
        .sql_count("SELECT count(*) AS n FROM persona_feedback")
        .await;
    assert_eq!((actions, feedback), (1, 1));

    // Replay the tick's writes exactly as a retry would send them.
    let api = runner.runner.tick().api().clone();
    let row = types::personas::ActionRow {
        tool_name: "todo_create".into(),
        module: "todo".into(),
        input: Some(json!({"title": "Wäsche"})),
        input_hash: None,
        result: types::personas::ActionResult::Ok,
        error_message: None,
        latency_ms: Some(1),
        created_at: None,
    };
    assert_eq!(api.post_actions(ids[0], &run_id, &[row]).await.unwrap(), 0);
    let fb = types::personas::FeedbackRow {
        module: "todo".into(),
        rating: Some(3),
        notes: None,
    };
    assert_eq!(api.post_feedback(ids[0], &run_id, &[fb]).await.unwrap(), 0);
    assert_eq!(
        auth.sql_count("SELECT count(*) AS n FROM persona_actions")
            .await,
        1
    );
    assert_eq!(
        auth.sql_count("SELECT count(*) AS n FROM persona_feedback")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runners_ticking_at_once_never_run_a_persona_twice() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("pair", 8, "de").await;
    let sim = [("LLM_PROVIDER", "sim"), ("PERSONA_CONCURRENCY", "3")];
    let a = Runner::spawn(&auth, &sim).await;
    let b = Runner::spawn(&auth, &sim).await;
    let (ra, rb) = tokio::join!(a.tick_http(), b.tick_http());
    let (ra, rb) = (ra.1, rb.1);
    let due = ra["due"].as_u64().unwrap() + rb["due"].as_u64().unwrap();
    assert_eq!(due, 8, "{ra} {rb}");
    let ok = ra["ranSuccessfully"].as_u64().unwrap() + rb["ranSuccessfully"].as_u64().unwrap();
    assert_eq!(ok, 8, "{ra} {rb}");
    assert_eq!(
        auth.sql_count("SELECT count(DISTINCT persona_id) AS n FROM persona_actions")
            .await,
        8
    );
    assert_eq!(
        auth.sql_count(
            "SELECT count(*) AS n FROM (SELECT persona_id FROM persona_actions GROUP BY persona_id \
             HAVING count(DISTINCT split_part(tick_id, '~', 1)) > 1) t"
        )
        .await,
        0,
        "one run per persona"
    );
    for id in ids {
        assert_eq!(auth.profile(id).await["lease"], Value::Null);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_persona_whose_llm_keeps_failing_backs_off() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("broken", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.set_anthropic_handler(|_| Reply::error(500));
    let runner = Runner::spawn(&auth, &as_refs(&anthropic_env(&fake))).await;

    let (_, first) = runner.tick_http().await;
    assert_eq!(first["due"], 1);
    assert_eq!(
        first["failed"][0]["personaId"],
        ids[0].to_string(),
        "{first}"
    );
    assert!(
        first["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("LLM"),
        "{first}"
    );
    let profile = auth.profile(ids[0]).await;
    assert_eq!(profile["consecutiveFailures"], 1, "{profile}");
    assert!(profile["retryAfter"].is_string());
    // The failed run has its row too, classed, with what happened before the failure.
    let run_id = format!("{}.{}", first["tickId"].as_str().unwrap(), ids[0]);
    let run = run_row(&auth, &run_id).await;
    assert_eq!(run["outcome"], "failed", "{run}");
    assert_eq!(run["errorClass"], "llm");
    assert!(run["error"].as_str().unwrap().contains("LLM"));
    assert_eq!(run["transcript"]["messages"][0]["role"], "user");
    assert_eq!(profile["lease"], Value::Null);

    // Immediately after, and a minute later: backing off, not claimed.
    let (_, second) = runner.tick_http().await;
    assert_eq!(second["due"], 0, "{second}");
    auth.clock.advance(chrono::TimeDelta::seconds(60));
    let (_, third) = runner.tick_http().await;
    assert_eq!(third["due"], 0, "{third}");
    let calls = fake.requests_to(Api::Anthropic).len();
    assert_eq!(calls, 1, "one LLM call so far");

    // After the backoff it is tried again (and fails again, backing off longer).
    auth.clock.advance(chrono::TimeDelta::hours(1));
    let (_, fourth) = runner.tick_http().await;
    assert_eq!(fourth["due"], 1, "{fourth}");
    assert_eq!(auth.profile(ids[0]).await["consecutiveFailures"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_tick_while_one_is_in_flight_is_409_with_its_id() {
    let auth = Auth::spawn().await;
    auth.seed("slow", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::delayed(
        Duration::from_millis(1500),
        Reply::text("Heute nichts."),
    ));
    let runner = Runner::spawn(&auth, &as_refs(&anthropic_env(&fake))).await;
    let first = tokio::spawn({
        let client = runner.client.clone();
        let url = format!("{}/internal/tick", runner.base);
        async move {
            client
                .post(url)
                .header("x-service-key", crate::helpers::SERVICE_KEY)
                .send()
                .await
                .unwrap()
        }
    });
    let r = runner.runner.clone();
    eventually(|| r.in_flight().is_some()).await;
    let running = runner.runner.in_flight().unwrap();
    let (status, body) = runner.tick_http().await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "tick_in_flight");
    assert_eq!(body["tickId"], running.as_str());
    let first = first.await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let report: Value = first.json().await.unwrap();
    assert_eq!(report["tickId"], running.as_str());
    assert_eq!(report["simulatorFailures"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_mid_tick_loses_no_rows_and_releases_the_lease() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("stop", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::tool_call(
        "todo_create",
        json!({"title": "Vor dem Stopp"}),
    ));
    fake.push_anthropic(Reply::delayed(
        Duration::from_secs(60),
        Reply::text("zu spät"),
    ));
    let runner = Runner::spawn(&auth, &as_refs(&anthropic_env(&fake))).await;
    let tick = tokio::spawn({
        let r = runner.runner.clone();
        async move { r.run_now().await }
    });
    eventually(|| fake.requests_to(Api::Anthropic).len() == 2).await;
    runner.handle.shutdown().await;
    let out = tick.await.unwrap().unwrap();
    assert_eq!(out.report.failed.len(), 1, "{out:?}");
    assert!(
        out.report.failed[0].error.contains("shutting down"),
        "{out:?}"
    );
    let rows = auth
        .sql_strings(&format!(
            "SELECT tool_name || '|' || result AS s FROM persona_actions WHERE persona_id = '{}'",
            ids[0]
        ))
        .await;
    assert_eq!(rows, vec!["todo_create|ok"]);
    let profile = auth.profile(ids[0]).await;
    assert_eq!(profile["lease"], Value::Null, "{profile}");
    assert!(
        profile["lastError"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
    // A drained runner starts no new tick.
    let err = runner.runner.run_now().await.unwrap_err();
    assert_eq!(err, runner_kit::TickError::ShuttingDown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_past_its_deadline_fails_and_keeps_its_actions() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("late", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::tool_call("todo_create", json!({"title": "Früh"})));
    fake.push_anthropic(Reply::delayed(
        Duration::from_secs(30),
        Reply::text("zu spät"),
    ));
    let mut env = anthropic_env(&fake);
    env.push(("PERSONA_DEADLINE_SECS", "1".to_owned()));
    let runner = Runner::spawn(&auth, &as_refs(&env)).await;
    let (_, report) = runner.tick_http().await;
    assert!(
        report["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{report}"
    );
    assert_eq!(
        auth.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_actions WHERE persona_id = '{}'",
            ids[0]
        ))
        .await,
        1
    );
    assert_eq!(auth.profile(ids[0]).await["lease"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_catalogue_loads_and_sim_lives_every_day_end_to_end() {
    let auth = Auth::spawn().await;
    let catalogue: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/personas.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let personas = catalogue["personas"].clone();
    assert_eq!(personas.as_array().unwrap().len(), 10);
    let answer = auth.upsert(personas.clone()).await;
    assert_eq!(answer, json!({"created": 10, "updated": 0}));
    assert_eq!(
        auth.upsert(personas).await,
        json!({"created": 0, "updated": 10})
    );

    // No LLM variables at all: sim, said loudly in /health.
    let runner = Runner::spawn(&auth, &[("PERSONA_CONCURRENCY", "4")]).await;
    let (status, health) = runner.get("/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["llm"]["provider"], "sim");
    assert_eq!(health["llm"]["toolSchema"], Value::Null, "{health}");
    assert!(
        health["llm"]["simReason"]
            .as_str()
            .unwrap()
            .contains("no LLM configured")
    );

    let (status, report) = runner.tick_http().await;
    assert_eq!(status, StatusCode::OK);
    // Wednesday: every cadence is due.
    assert_eq!(report["due"], 10, "{report}");
    assert_eq!(report["failed"], json!([]), "{report}");
    assert_eq!(
        report["ranSuccessfully"].as_u64().unwrap() + report["simulatorFailures"].as_u64().unwrap(),
        10
    );
    assert!(report["tokens"]["input"].as_u64().unwrap() > 0);
    assert_eq!(
        auth.sql_count("SELECT count(DISTINCT persona_id) AS n FROM persona_actions")
            .await,
        report["ranSuccessfully"].as_i64().unwrap()
    );
    assert_eq!(
        auth.sql_count("SELECT count(*) AS n FROM persona_feedback WHERE module = '__parse'")
            .await,
        0
    );
    assert!(
        auth.sql_count("SELECT count(*) AS n FROM persona_feedback")
            .await
            >= 10
    );
    // Every action's module is the registry's module of its tool.
    for row in auth
        .sql_strings("SELECT DISTINCT tool_name || '|' || module AS s FROM persona_actions")
        .await
    {
        let (tool, module) = row.split_once('|').unwrap();
        assert_eq!(tools::Registry::global().get(tool).unwrap().module, module);
    }
    let (_, metrics) = runner.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("mana_persona_runner_ticks_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mana_persona_runner_tick_duration_seconds"));
    assert!(metrics.contains("mana_persona_runner_http_requests_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_diag_and_a_missing_service_key() {
    let auth = Auth::spawn().await;
    auth.seed("diag", 1, "de").await;
    // No service key: starts anyway, loop off and says why, ticks are refused.
    let keyless = Runner::spawn(
        &auth,
        &[("MANA_SERVICE_KEY", ""), ("TICK_INTERVAL_SECS", "60")],
    )
    .await;
    let (status, health) = keyless.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["service"], "persona-runner");
    assert_eq!(health["loop"]["enabled"], false);
    assert!(
        health["loop"]["reason"]
            .as_str()
            .unwrap()
            .contains("MANA_SERVICE_KEY")
    );
    assert_eq!(health["authInternal"]["reachable"], true);
    let (status, _) = keyless.tick_http().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = keyless
        .get("/diag/login?email=persona.diag-0@mana.test")
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "diagnostics are off by default"
    );

    let diag = Runner::spawn(&auth, &[("MANA_DIAG", "1"), ("LLM_PROVIDER", "sim")]).await;
    let (status, body) = diag.get("/diag/login?email=persona.diag-0@mana.test").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true);
    let (status, body) = diag.get("/diag/login?email=persona.nobody@mana.test").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["ok"], false);

    // auth-internal unreachable: 503.
    let lonely = Runner::spawn(&auth, &[("AUTH_INTERNAL_URL", "http://127.0.0.1:9")]).await;
    let (status, health) = lonely.get("/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["authInternal"]["reachable"], false);
}

/// A completion exactly as llama-cpp-python 0.3.36 (`chatml-function-calling`) sends it:
/// `content: null`, the legacy `function_call` beside `tool_calls`, its call-id scheme.
fn llama_cpp_tool_call(name: &str, arguments: &str, n: u32) -> Reply {
    let cmpl = format!("cmpl-00000000-0000-0000-0000-00000000000{n}");
    Reply::Json {
        status: 200,
        body: json!({
            "id": format!("chat{cmpl}"), "object": "chat.completion", "created": 1_796_132_482,
            "model": "smollm2",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{"id": format!("call__0_{name}_{cmpl}"), "type": "function",
                    "function": {"name": name, "arguments": arguments}}],
                "function_call": {"name": name, "arguments": arguments}}}],
            "usage": {"prompt_tokens": 3768, "completion_tokens": 20, "total_tokens": 3788}
        }),
        headers: Vec::new(),
    }
}

fn llama_cpp_text(text: &str) -> Reply {
    Reply::Json {
        status: 200,
        body: json!({
            "id": "chatcmpl-text", "object": "chat.completion", "created": 1_796_132_490,
            "model": "smollm2",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940}
        }),
        headers: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_llama_cpp_server_day_survives_broken_arguments_and_prose_ratings() {
    let auth = Auth::spawn().await;
    let ids = auth.seed("llamacpp", 1, "en-GB").await;
    let fake = FakeLlm::start().await.unwrap();
    // llama.cpp answers 500 to `content: null`; a keyless local server.
    fake.set_openai_llama_cpp_strict(true);
    fake.set_openai_auth(fake_llm::AuthRule::NotRequired);
    // What SmolLM2 does: a raw newline inside a string (not JSON), then a valid call,
    // then prose where the rating JSON should be.
    fake.push_openai(llama_cpp_tool_call(
        "todo_create",
        "{\"title\": \"Shopping\", \"description\": \"]\n\" }",
        1,
    ));
    fake.push_openai(llama_cpp_tool_call(
        "todo_create",
        "{\"title\": \"Todo List\"}",
        2,
    ));
    fake.push_openai(llama_cpp_text("functions.todo_create:"));
    fake.push_openai(llama_cpp_text(
        "This task was a mix of frustration, helpfulness and creativity.",
    ));
    let env = [
        ("LLM_PROVIDER", "openai".to_owned()),
        ("OPENAI_BASE_URL", fake.openai_base_url()),
    ];
    let runner = Runner::spawn(&auth, &as_refs(&env)).await;
    // An operator can see that a local server gets slim schemas.
    let (_, health) = runner.get("/health").await;
    assert_eq!(health["llm"]["toolSchema"], "slim", "{health}");
    let (_, report) = runner.tick_http().await;
    assert_eq!(report["ranSuccessfully"], 1, "{report}");

    let requests = fake.requests_to(Api::OpenAi);
    assert_eq!(requests.len(), 4);
    assert!(
        requests.iter().all(|r| r.rejection.is_none()),
        "{:?}",
        requests.iter().map(|r| &r.rejection).collect::<Vec<_>>()
    );
    // No key configured: no Authorization header; slim schemas for a local host.
    assert!(!requests[0].headers.contains_key("authorization"));
    let tools = requests[0].body["tools"].to_string();
    assert!(tools.contains("todo_create"), "{tools}");
    assert!(!tools.contains("\"pattern\""), "{tools}");
    assert!(
        !tools.contains("\"maxLength\":10000") && !tools.contains("\"maxLength\":200000"),
        "{tools}"
    );

    // Sorted by text: `error` before `ok`.
    let actions = auth
        .sql_strings(&format!(
            "SELECT tool_name || '|' || result || '|' || coalesce(error_message, '') AS s FROM persona_actions WHERE persona_id = '{}' ORDER BY 1",
            ids[0]
        ))
        .await;
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(
        actions[0].starts_with("todo_create|error|invalid arguments"),
        "{actions:?}"
    );
    assert!(actions[1].starts_with("todo_create|ok|"), "{actions:?}");
    // The broken call was answered as a tool error the model could read.
    let second = requests[1].body["messages"].to_string();
    assert!(
        second.contains("[tool error] invalid arguments"),
        "{second}"
    );

    let feedback = auth
        .sql_strings(&format!(
            "SELECT module || '|' || coalesce(rating::text, 'null') AS s FROM persona_feedback WHERE persona_id = '{}'",
            ids[0]
        ))
        .await;
    assert_eq!(feedback, vec!["__parse|null".to_owned()]);
    let runs = auth
        .sql_strings(&format!(
            "SELECT outcome || '|' || turns || '|' || first_prompt_tokens AS s FROM persona_runs WHERE persona_id = '{}'",
            ids[0]
        ))
        .await;
    assert_eq!(runs, vec!["ok|3|3768".to_owned()]);
}

/// More calls than two action batches hold (500 each): every call gets its row, under
/// the id its position gives (`{run}`, `{run}~1`, `{run}~2` tick ids), once each, and
/// the run row counts them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_of_more_calls_than_two_batches_hold_writes_every_row_once() {
    const CALLS: usize = 1001;
    let auth = Auth::spawn().await;
    let ids = auth.seed("busy", 1, "de").await;
    let fake = FakeLlm::start().await.unwrap();
    fake.push_anthropic(Reply::tool_calls(
        (0..CALLS)
            .map(|i| {
                (
                    "todo_create".to_owned(),
                    json!({"title": format!("Aufgabe {i}")}),
                )
            })
            .collect(),
    ));
    fake.push_anthropic(Reply::text("Geschafft."));
    fake.push_anthropic(Reply::text(RATING_TODO));
    let runner = Runner::spawn(&auth, &as_refs(&anthropic_env(&fake))).await;

    let (status, report) = runner.tick_http().await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["ranSuccessfully"], 1, "{report}");
    let run_id = format!("{}.{}", report["tickId"].as_str().unwrap(), ids[0]);

    let per_tick = auth
        .sql_strings(&format!(
            "SELECT tick_id || '|' || count(*) || '|' || count(DISTINCT id) || '|' || \
                    min(split_part(substring(id FROM length(tick_id) + 2), '-', 1)::int) || '|' || \
                    max(split_part(substring(id FROM length(tick_id) + 2), '-', 1)::int) AS s \
             FROM persona_actions WHERE persona_id = '{}' AND result = 'ok' GROUP BY tick_id ORDER BY tick_id",
            ids[0]
        ))
        .await;
    assert_eq!(
        per_tick,
        vec![
            format!("{run_id}|500|500|0|499"),
            format!("{run_id}~1|500|500|0|499"),
            format!("{run_id}~2|1|1|0|0"),
        ]
    );
    let executed = auth
        .sql_count(&format!(
            "SELECT count(*) AS n FROM sync_changes WHERE user_id = '{}' AND origin = 'mcp'",
            ids[0]
        ))
        .await;
    assert_eq!(executed, i64::try_from(CALLS).unwrap());
    let run = run_row(&auth, &run_id).await;
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(run["toolCalls"], CALLS, "{run}");
    assert_eq!(
        auth.sql_count(&format!(
            "SELECT count(*) AS n FROM persona_feedback WHERE persona_id = '{}' AND rating = 4",
            ids[0]
        ))
        .await,
        1
    );
}
