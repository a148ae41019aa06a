//! A fake LLM vendor for tests: speaks the Anthropic Messages API and OpenAI Chat
//! Completions at the HTTP level on `127.0.0.1:0`.
//!
//! Rules:
//! - Every request is recorded (headers, JSON body, and why it was rejected, if it was).
//! - Every request is validated like the real API validates it (see [`validate`]); a bad
//!   request gets the vendor's 400/401 error shape and never consumes a scripted reply.
//! - A valid request is answered by the next queued [`Reply`] of its API, else by the
//!   API's fallback handler, else by a plain text reply `"ok"`.
//! - Anthropic prompt caching is modelled when [`FakeLlm::enable_prompt_cache`] is on
//!   (see [`cache`]): the prompt side of `usage` then comes from the request and the
//!   cache, the output side from the script.
//! - Start it inside a multi-threaded tokio runtime
//!   (`#[tokio::test(flavor = "multi_thread")]`); it stops when dropped.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fake_llm::{FakeLlm, Reply};
//! let fake = FakeLlm::start().await?;
//! fake.push_anthropic(Reply::tool_call("todo_create", serde_json::json!({"title": "x"})));
//! fake.push_anthropic(Reply::text("done"));
//! // ANTHROPIC_BASE_URL = fake.base_url(), OPENAI_BASE_URL = fake.openai_base_url()
//! # Ok(()) }
//! ```

pub mod cache;
mod reply;
pub mod validate;

use std::collections::{BTreeMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

pub use cache::{DEFAULT_MIN_CACHEABLE_TOKENS, PromptUsage, estimate_tokens};
pub use reply::{
    Reply, ScriptedCall, Usage, anthropic_message_json, error_json, openai_completion_json,
};
pub use validate::{
    AuthRule, Rejection, validate_anthropic, validate_llama_cpp_strict, validate_openai,
};

/// Which vendor API a request was addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /v1/messages`.
    Anthropic,
    /// `POST /v1/chat/completions`.
    OpenAi,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The API, or `None` for an unknown path (answered 404).
    pub api: Option<Api>,
    /// Request path.
    pub path: String,
    /// Headers, names lowercased; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`Null` when it did not parse).
    pub body: Value,
    /// Why the fake refused it, if it did.
    pub rejection: Option<Rejection>,
    /// The prompt side of the usage the prompt-cache model reported (Anthropic, when
    /// [`FakeLlm::enable_prompt_cache`] is on).
    pub prompt_usage: Option<PromptUsage>,
}

/// A stateless scripted behaviour: request body → reply.
pub type Handler = dyn Fn(&Value) -> Reply + Send + Sync;

#[derive(Default)]
struct Script {
    queue: VecDeque<Reply>,
    handler: Option<Arc<Handler>>,
    auth: AuthRule,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<RecordedRequest>>,
    anthropic: Mutex<Script>,
    openai: Mutex<Script>,
    prompt_cache: Mutex<Option<cache::PromptCache>>,
    llama_cpp_strict: std::sync::atomic::AtomicBool,
}

impl State {
    fn script(&self, api: Api) -> MutexGuard<'_, Script> {
        let m = match api {
            Api::Anthropic => &self.anthropic,
            Api::OpenAi => &self.openai,
        };
        // A panicking test thread must not wedge the other requests.
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn prompt_cache(&self) -> MutexGuard<'_, Option<cache::PromptCache>> {
        self.prompt_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn requests(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running fake server.
pub struct FakeLlm {
    base_url: String,
    state: Arc<State>,
    handle: ServerHandle,
}

impl std::fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLlm")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeLlm {
    /// Binds `127.0.0.1:0` and starts serving. Must run inside a tokio runtime.
    pub async fn start() -> std::io::Result<FakeLlm> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(32 * 1024 * 1024))
                .route("/v1/messages", web::post().to(anthropic))
                .route("/v1/chat/completions", web::post().to(openai))
                .default_service(web::to(unknown))
        })
        .on_connect(service_kit::net::on_connect)
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(FakeLlm {
            base_url: format!("http://{addr}"),
            state,
            handle,
        })
    }

    /// `http://127.0.0.1:<port>`: the Anthropic base URL (host root).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// `{base_url}/v1`: the OpenAI base URL.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests().clone()
    }

    /// Requests addressed to `api`.
    pub fn requests_to(&self, api: Api) -> Vec<RecordedRequest> {
        self.state
            .requests()
            .iter()
            .filter(|r| r.api == Some(api))
            .cloned()
            .collect()
    }

    /// Queues a reply for the next valid Anthropic request.
    pub fn push_anthropic(&self, reply: Reply) {
        self.state.script(Api::Anthropic).queue.push_back(reply);
    }

    /// Queues a reply for the next valid OpenAI request.
    pub fn push_openai(&self, reply: Reply) {
        self.state.script(Api::OpenAi).queue.push_back(reply);
    }

    /// Answers Anthropic requests the queue does not cover.
    pub fn set_anthropic_handler(&self, handler: impl Fn(&Value) -> Reply + Send + Sync + 'static) {
        self.state.script(Api::Anthropic).handler = Some(Arc::new(handler));
    }

    /// Answers OpenAI requests the queue does not cover.
    pub fn set_openai_handler(&self, handler: impl Fn(&Value) -> Reply + Send + Sync + 'static) {
        self.state.script(Api::OpenAi).handler = Some(Arc::new(handler));
    }

    /// How Anthropic requests must authenticate (default: any non-empty `x-api-key`).
    pub fn set_anthropic_auth(&self, rule: AuthRule) {
        self.state.script(Api::Anthropic).auth = rule;
    }

    /// How OpenAI requests must authenticate (default: any non-empty bearer token).
    pub fn set_openai_auth(&self, rule: AuthRule) {
        self.state.script(Api::OpenAi).auth = rule;
    }

    /// Models Anthropic prompt caching from now on: prefixes of at least `min_tokens`
    /// (Anthropic: 1024 for Sonnet/Opus, [`DEFAULT_MIN_CACHEABLE_TOKENS`]) up to a
    /// `cache_control` breakpoint are cached, and valid requests report `input_tokens`,
    /// `cache_read_input_tokens` and `cache_creation_input_tokens` computed from the
    /// request (the scripted reply keeps only its output tokens).
    pub fn enable_prompt_cache(&self, min_tokens: u64) {
        *self.state.prompt_cache() = Some(cache::PromptCache::new(min_tokens));
    }

    /// Moves the prompt cache's clock (entries live 5 minutes, or 1 hour with `ttl: "1h"`).
    pub fn advance_cache_clock(&self, by: std::time::Duration) {
        if let Some(c) = self.state.prompt_cache().as_mut() {
            c.advance(by);
        }
    }

    /// llama.cpp strictness on the OpenAI side: an assistant message whose `content` is
    /// `null` or missing is answered HTTP 500 with a pydantic validation error, as
    /// llama-cpp-python's server does.
    pub fn set_openai_llama_cpp_strict(&self, on: bool) {
        self.state
            .llama_cpp_strict
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Replies still queued for `api`.
    pub fn pending_replies(&self, api: Api) -> usize {
        self.state.script(api).queue.len()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; awaiting it is optional.
        let stopping = self.handle.stop(false);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(stopping);
        }
    }
}

fn headers_of(req: &HttpRequest) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

async fn anthropic(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    serve(Api::Anthropic, &req, &body, &state).await
}

async fn openai(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    serve(Api::OpenAi, &req, &body, &state).await
}

async fn unknown(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    state.requests().push(RecordedRequest {
        api: None,
        path: req.path().to_string(),
        headers: headers_of(&req),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        rejection: None,
        prompt_usage: None,
    });
    HttpResponse::NotFound()
        .content_type("application/json")
        .body(r#"{"error":{"message":"fake-llm: unknown path","type":"not_found_error"}}"#)
}

async fn serve(api: Api, req: &HttpRequest, raw: &[u8], state: &State) -> HttpResponse {
    let headers = headers_of(req);
    let parsed = serde_json::from_slice::<Value>(raw);
    // Decide under the lock, answer (and maybe sleep) outside it.
    let (reply, rejection) = {
        let mut script = state.script(api);
        let verdict = match &parsed {
            Err(e) => Err(Rejection {
                status: 400,
                message: format!("could not parse JSON body: {e}"),
                param: None,
            }),
            Ok(v) => match api {
                Api::Anthropic => validate_anthropic(&headers, v, &script.auth),
                Api::OpenAi => validate_openai(&headers, v, &script.auth).and_then(|()| {
                    if state
                        .llama_cpp_strict
                        .load(std::sync::atomic::Ordering::SeqCst)
                    {
                        validate_llama_cpp_strict(v)
                    } else {
                        Ok(())
                    }
                }),
            },
        };
        match verdict {
            Err(rejection) => (None, Some(rejection)),
            Ok(()) => {
                let reply = match script.queue.pop_front() {
                    Some(r) => r,
                    None => match (script.handler.clone(), &parsed) {
                        (Some(h), Ok(body)) => h(body),
                        _ => Reply::text("ok"),
                    },
                };
                (Some(reply), None)
            }
        }
    };
    // One parsed body, recorded as it is (no copies: the history grows every turn).
    let body = parsed.unwrap_or(Value::Null);
    // The prompt cache accounts answered Anthropic requests, in arrival order.
    let mut prompt_usage = None;
    let reply = match reply {
        Some(r) if api == Api::Anthropic && r.is_answer() && state.prompt_cache().is_some() => {
            let prompt = state.prompt_cache().as_mut().map(|c| c.account(&body));
            prompt_usage = prompt;
            Some(match prompt {
                Some(p) => r.map_usage(|u| Usage {
                    input: p.input,
                    output: u.output,
                    cache_read: p.cache_read,
                    cache_write: p.cache_write,
                }),
                None => r,
            })
        }
        other => other,
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model")
        .to_owned();
    state.requests().push(RecordedRequest {
        api: Some(api),
        path: req.path().to_string(),
        headers,
        body,
        rejection: rejection.clone(),
        prompt_usage,
    });
    if let Some(rejection) = rejection {
        tracing::debug!(status = rejection.status, message = %rejection.message, "fake-llm rejected a request");
        let error = error_json(
            api,
            rejection.status,
            &rejection.message,
            rejection.param.as_deref(),
        );
        return respond(rejection.status, error.to_string(), &[]);
    }
    let mut reply = reply.unwrap_or_else(|| Reply::text("ok"));
    while let Reply::Delayed {
        delay,
        reply: inner,
    } = reply
    {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    let rendered = reply::render(&reply, api, &model);
    respond(rendered.status, rendered.body, &rendered.headers)
}

fn respond(status: u16, body: String, headers: &[(String, String)]) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    builder.content_type("application/json");
    for (k, v) in headers {
        builder.insert_header((k.as_str(), v.as_str()));
    }
    builder.body(body)
}
