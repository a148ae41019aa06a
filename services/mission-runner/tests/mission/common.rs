//! Shared helpers: a fake of auth-internal's mission endpoints, claimed missions, LLMs
//! pointed at the fake vendor, fast retries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use fake_llm::FakeLlm;
use llm::{Llm, LlmSettings, RetryPolicy};
use mission_runner::{
    Application, MissionApi, MissionTick, PlanModeSetting, Planner, PlannerSettings, Settings,
    TickSettings,
};
use runner_kit::ServiceHandle;
use serde_json::{Value, json};
use service_kit::Clock;
use types::missions::{
    ClaimedMission, IterationSource, IterationStatus, Mission, MissionCadence, MissionClaimRequest,
    MissionClaimResponse, MissionIteration, MissionReleaseRequest, MissionState, PlanStep,
    ResolvedInput, StepIntent, StepStatus, WriteIterationRequest,
};
use uuid::Uuid;

pub const SERVICE_KEY: &str = "test-service-key-0123456789";

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 7, 0, 0).unwrap()
}

pub fn clock() -> Clock {
    Clock::manual(now())
}

/// How the fake answers one write-back of a mission.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer this status with an error envelope without writing.
    Before(u16),
    /// Write, then answer this status anyway (the answer got lost).
    After(u16),
    /// 409 lease_lost.
    LeaseLost,
}

#[derive(Default)]
pub struct FakeState {
    pub claims: Vec<MissionClaimRequest>,
    pub claim_queue: VecDeque<MissionClaimResponse>,
    /// Every write-back request received (mission id, body), failed ones included.
    pub write_requests: Vec<(String, WriteIterationRequest)>,
    /// Iterations stored, by mission id, once per iteration id.
    pub stored: HashMap<String, Vec<MissionIteration>>,
    pub releases: Vec<(String, MissionReleaseRequest)>,
    pub faults: HashMap<String, VecDeque<Fault>>,
    pub seen_keys: HashSet<String>,
    /// Commit each claim, then hold the answer this long (past the client's timeout,
    /// the answer is lost).
    pub claim_answer_delay: Option<Duration>,
}

pub struct FakeInternal {
    pub base_url: String,
    pub state: Arc<Mutex<FakeState>>,
    handle: ServerHandle,
}

impl FakeInternal {
    pub async fn start() -> FakeInternal {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/api/v1/internal/missions/claim", web::post().to(claim))
                .route(
                    "/api/v1/internal/missions/{id}/iterations",
                    web::post().to(write_iteration),
                )
                .route(
                    "/api/v1/internal/missions/{id}/release",
                    web::post().to(release),
                )
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeInternal {
            base_url: format!("http://{addr}"),
            state,
            handle,
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn client(&self) -> MissionApi {
        self.client_with_key(SERVICE_KEY)
    }

    pub fn client_with_key(&self, key: &str) -> MissionApi {
        self.client_with(key, fast_client_retry())
    }

    pub fn client_with(&self, key: &str, retry: runner_kit::RetryPolicy) -> MissionApi {
        MissionApi::new(runner_kit::InternalClient::new(
            reqwest::Client::new(),
            &self.base_url,
            Some(key),
            retry,
        ))
    }

    pub fn fault(&self, mission_id: &str, fault: Fault) {
        self.state()
            .faults
            .entry(mission_id.to_string())
            .or_default()
            .push_back(fault);
    }
}

impl Drop for FakeInternal {
    fn drop(&mut self) {
        let stopping = self.handle.stop(false);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(stopping);
        }
    }
}

type Data = web::Data<Mutex<FakeState>>;

fn envelope(status: u16, code: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": {"code": code, "message": format!("fake says {code}")}}))
}

fn authorised(req: &HttpRequest, state: &Data) -> bool {
    let key = req
        .headers()
        .get("x-service-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ok = key == SERVICE_KEY;
    state.lock().unwrap().seen_keys.insert(key);
    ok
}

async fn claim(
    req: HttpRequest,
    body: web::Json<MissionClaimRequest>,
    state: Data,
) -> HttpResponse {
    if !authorised(&req, &state) {
        return envelope(401, "unauthorized");
    }
    let (resp, delay) = {
        let mut s = state.lock().unwrap();
        s.claims.push(body.into_inner());
        let resp = s.claim_queue.pop_front().unwrap_or(MissionClaimResponse {
            missions: vec![],
            server_time: now(),
        });
        (resp, s.claim_answer_delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    HttpResponse::Ok().json(resp)
}

async fn write_iteration(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<WriteIterationRequest>,
    state: Data,
) -> HttpResponse {
    if !authorised(&req, &state) {
        return envelope(401, "unauthorized");
    }
    let id = path.into_inner();
    let body = body.into_inner();
    let mut s = state.lock().unwrap();
    s.write_requests.push((id.clone(), body.clone()));
    let fault = s.faults.get_mut(&id).and_then(VecDeque::pop_front);
    match fault {
        Some(Fault::Before(status)) => return envelope(status, "internal"),
        Some(Fault::LeaseLost) => return envelope(409, "lease_lost"),
        _ => {}
    }
    let stored = s.stored.entry(id).or_default();
    let written = !stored.iter().any(|i| i.id == body.iteration.id);
    if written {
        stored.push(body.iteration);
    }
    if let Some(Fault::After(status)) = fault {
        return envelope(status, "internal");
    }
    HttpResponse::Ok().json(json!({
        "written": written,
        "nextRunAt": (now() + TimeDelta::days(1)).to_rfc3339(),
    }))
}

async fn release(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<MissionReleaseRequest>,
    state: Data,
) -> HttpResponse {
    if !authorised(&req, &state) {
        return envelope(401, "unauthorized");
    }
    state
        .lock()
        .unwrap()
        .releases
        .push((path.into_inner(), body.into_inner()));
    HttpResponse::NoContent().finish()
}

/// mission-runner's settings against auth-internal at `auth_url`: port 0, the loop off
/// (ticks only through `POST /internal/tick`); `extra` adds or overrides variables.
pub fn runner_settings(auth_url: &str, key: &str, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("AUTH_INTERNAL_URL", auth_url),
        ("MANA_SERVICE_KEY", key),
        ("BIND_ADDR", "127.0.0.1:0"),
        ("TICK_INTERVAL_SECS", "0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_env(&env).unwrap()
}

/// The mission-runner service in-process (its HTTP endpoints on `base`).
pub struct Runner {
    pub base: String,
    handle: ServiceHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Runner {
    pub fn start(settings: Settings) -> Self {
        let app = Application::build(settings).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_without_signals());
        Self {
            base,
            handle,
            server,
        }
    }

    /// The graceful shutdown; the service must exit cleanly.
    pub async fn stop(self) {
        self.handle.shutdown().await;
        self.server.await.unwrap().unwrap();
    }
}

pub fn fast_client_retry() -> runner_kit::RetryPolicy {
    runner_kit::RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
        budget: Duration::ZERO,
    }
}

pub fn fast_llm_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        request_timeout: Duration::from_secs(10),
    }
}

fn llm_from(pairs: &[(&str, String)]) -> Llm {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    let s = LlmSettings::from_lookup(|k| map.get(k).cloned()).unwrap();
    Llm::from_settings(&s, reqwest::Client::new())
        .unwrap()
        .with_retry_policy(fast_llm_retry())
}

pub fn openai(fake: &FakeLlm) -> Llm {
    llm_from(&[
        ("OPENAI_API_KEY", "sk-openai-test".to_string()),
        ("OPENAI_BASE_URL", fake.openai_base_url()),
    ])
}

pub fn anthropic(fake: &FakeLlm) -> Llm {
    llm_from(&[
        ("ANTHROPIC_API_KEY", "sk-ant-test".to_string()),
        ("ANTHROPIC_BASE_URL", fake.base_url()),
    ])
}

pub fn planner(llm: Llm, mode: PlanModeSetting) -> Planner {
    Planner::new(
        llm,
        PlannerSettings {
            mode,
            ..PlannerSettings::default()
        },
        clock(),
    )
}

pub fn ticker(internal: &FakeInternal, planner: Planner, concurrency: usize) -> MissionTick {
    MissionTick::new(
        internal.client(),
        planner,
        TickSettings {
            worker: "test-worker".into(),
            concurrency,
            ..TickSettings::default()
        },
        clock(),
    )
}

/// A due mission with one input and one rejected step in its history.
pub fn claimed(id: &str, title: &str) -> ClaimedMission {
    ClaimedMission {
        user_id: Uuid::from_u128(7),
        mission: Mission {
            id: id.into(),
            title: title.into(),
            objective: "Turn my marathon goal into this week's todos.".into(),
            concept_markdown: "Small steps.".into(),
            state: MissionState::Active,
            cadence: MissionCadence::Daily {
                at_hour: 7,
                at_minute: 0,
                timezone: None,
            },
            next_run_at: Some(now()),
            inputs: vec![],
            iterations: vec![],
        },
        scheduled_for: now(),
        lease_token: Uuid::from_u128(99),
        lease_expires_at: now() + TimeDelta::minutes(10),
        resolved_inputs: vec![ResolvedInput {
            module: "goals".into(),
            table: "goals".into(),
            id: "goal-1".into(),
            found: true,
            title: Some("Run a marathon".into()),
            content: Some("Progress: 12 / 42 km".into()),
            truncated: false,
        }],
        recent_iterations: vec![MissionIteration {
            id: "it-old".into(),
            started_at: now() - TimeDelta::days(1),
            finished_at: None,
            plan: vec![PlanStep {
                id: "it-old-0".into(),
                summary: "Buy new running shoes".into(),
                intent: StepIntent::ToolCall {
                    tool_name: "todo_create".into(),
                    params: json!({"title": "Buy new running shoes"}),
                },
                status: StepStatus::Rejected,
                rationale: None,
                outcome: None,
                feedback: Some("I own enough shoes, focus on training".into()),
                decided_at: None,
            }],
            summary: None,
            user_feedback: None,
            overall_status: IterationStatus::Rejected,
            source: Some(IterationSource::Server),
            dropped_steps: vec![],
            error: None,
            scheduled_for: None,
        }],
        proposable_tools: tools::Registry::global()
            .proposable()
            .map(|t| t.name.to_string())
            .collect(),
        tokens_used_today: 0,
    }
}

/// A JSON-contract answer with one valid step, one unknown tool and one bad param.
pub fn mixed_plan() -> String {
    json!({
        "summary": "Three runs this week.",
        "steps": [
            {"summary": "Plan a long run", "toolName": "todo_create",
             "params": {"title": "Long run 15 km", "dueDate": "2026-03-14", "priority": "high"},
             "rationale": "Builds endurance toward 42 km."},
            {"summary": "Teleport", "toolName": "todo_teleport", "params": {"title": "x"}, "rationale": "r"},
            {"summary": "Log mood", "toolName": "mood_log", "params": {"level": 11, "emotion": "calm"}, "rationale": "r"}
        ]
    })
    .to_string()
}

/// The text of a recorded LLM request body, for substring checks.
pub fn body_text(body: &Value) -> String {
    body.to_string()
}
