//! The app's tools for agents over MCP (streamable HTTP, `rmcp`), mounted at `/mcp`.
//!
//! Rules:
//! - A bearer token is required on every request: a login JWT, an OAuth access
//!   token or a personal access token (see `crate::oauth::bearer`); without a
//!   valid one the answer is 401 with `WWW-Authenticate: Bearer resource_metadata=…`
//!   pointing at the RFC 9728 protected-resource metadata, plus `error="invalid_token"`
//!   only when a bearer token was sent (RFC 6750 §3.1). The token is verified here
//!   and never travels further: handlers only see the caller's user id.
//! - Tools come from the one registry (`crates/tools`); `tools/list` is marked private
//!   (per-user) and never lists `destructive` tools, which are not callable either.
//! - Every call runs as the token's user, writes through the same LWW path as sync
//!   (origin `mcp`), and is logged once: user, tool, input hash, `duration_ms`, result.
//! - Input errors and handler failures are tool results with `isError: true`; an
//!   unknown tool is a protocol error.
//! - Every `tools/call` is one server span `tools/call {tool}` continuing the client's
//!   `_meta.traceparent` (else the HTTP request's span); the store write is its child.
//! - `mcp.stateful = false` serves every request statelessly (replicas behind a load
//!   balancer); the current protocol revision is sessionless either way.
//! - A persona caller's `tools/call` may carry `_meta` `mana/actionId` and
//!   `mana/tickId` (the runner's deterministic action row id and the row's tick id).
//!   The action row is then written here, in the same transaction as the tool's
//!   effect (a read tool: right after it ran), so no executed call is ever without
//!   its row; an id already recorded means the call ran before (a re-sent request)
//!   and it is not run again. The runner's own write of the id completes the row.
//! - Arguments and `_meta` holding NUL (`\u0000`, which Postgres cannot store) are a
//!   tool error naming the argument; a POST body that is not JSON-RPC gets a
//!   JSON-RPC error object with status 400 (`-32700` parse error, `-32600` invalid
//!   request) from [`require_json_rpc`], before rmcp sees it.
//! - On shutdown the service's cancellation token closes every session and stream.

use std::{
    future::Future,
    sync::{Arc, LazyLock},
    time::Instant,
};

use actix_web::{
    Error, HttpMessage, HttpRequest, HttpResponse,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    get,
    http::header,
    middleware::Next,
    web,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
        ErrorCode, Implementation, JsonObject, ListToolsResult, PaginatedRequestParams,
        ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
    },
    service::RequestContext,
};
use rmcp_actix_web::transport::{
    LocalSessionManager, StreamableHttpService, on_request_extensions,
};
use serde::Serialize;
use serde_json::Value;
use service_kit::json_error;
use tools::{CallContext, Policy, Registry, ToolError};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use types::{ApiError, error::codes};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{db::personas::NewAction, routes::Documented, state::AppState, store::PgRecordStore};

/// The protected-resource metadata and `/mcp` itself (served by `transport`,
/// the rmcp service, behind [`require_bearer`] then [`require_json_rpc`], with every
/// body ending on shutdown; documented by [`mcp_endpoint`]).
pub fn routes<M>(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>, transport: M)
where
    M: actix_web::dev::HttpServiceFactory + 'static,
{
    cfg.service(protected_resource_metadata)
        .service(protected_resource_metadata_mcp)
        .service(Documented::new(
            web::scope("/mcp")
                .wrap(actix_web::middleware::from_fn(require_json_rpc))
                .wrap(actix_web::middleware::from_fn(end_streams_on_shutdown))
                .wrap(actix_web::middleware::from_fn(require_bearer))
                .service(transport),
            __path_mcp_endpoint,
        ));
}

/// The MCP caller, put into the request by the bearer middleware.
#[derive(Debug, Clone)]
pub struct McpUser {
    pub id: Uuid,
    /// `human`, `persona` …: only personas' calls write action rows.
    pub kind: String,
}

/// `_meta` key of the action row id a persona-runner assigns to a call.
pub const META_ACTION_ID: &str = "mana/actionId";
/// `_meta` key of the tick id of that row.
pub const META_TICK_ID: &str = "mana/tickId";

/// The action row a call must leave, from its `_meta`; `Err` says what to fix.
fn action_meta(meta: Option<&JsonObject>, tool: &str) -> Result<Option<(String, String)>, String> {
    let Some(meta) = meta else { return Ok(None) };
    let (Some(id), Some(tick)) = (meta.get(META_ACTION_ID), meta.get(META_TICK_ID)) else {
        return Ok(None);
    };
    let (Some(id), Some(tick)) = (id.as_str(), tick.as_str()) else {
        return Err(format!(
            "`_meta.{META_ACTION_ID}` and `_meta.{META_TICK_ID}` must be strings"
        ));
    };
    if tick.is_empty() || tick.len() > 128 || tick.chars().any(char::is_control) {
        return Err(format!(
            "`_meta.{META_TICK_ID}` must be 1–128 characters without control characters"
        ));
    }
    let index = id
        .strip_prefix(tick)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix(tool))
        .and_then(|rest| rest.strip_suffix('-'));
    if !index
        .is_some_and(|i| !i.is_empty() && i.len() <= 6 && i.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "`_meta.{META_ACTION_ID}` must be `{{tickId}}-{{index}}-{{toolName}}` for this call"
        ));
    }
    Ok(Some((id.to_owned(), tick.to_owned())))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolCallLabels {
    pub tool: String,
    pub result: String,
}

/// MCP metrics: calls and latency by tool and result.
#[derive(Clone)]
pub struct McpMetrics {
    calls: Family<ToolCallLabels, Counter>,
    duration: Family<ToolCallLabels, Histogram>,
}

impl McpMetrics {
    pub fn register(metrics: &service_kit::metrics::Metrics) -> Self {
        let calls = Family::<ToolCallLabels, Counter>::default();
        let duration = Family::<ToolCallLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(service_kit::metrics::latency_buckets())) as fn() -> Histogram,
        );
        metrics.register(
            "mcp_tool_calls",
            "MCP tool calls by tool and result",
            calls.clone(),
        );
        metrics.register(
            "mcp_tool_call_duration_seconds",
            "MCP tool call latency by tool and result",
            duration.clone(),
        );
        Self { calls, duration }
    }
}

/// The tools as MCP announces them, built once from the registry.
static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(|| {
    Registry::global()
        .exposed()
        .filter_map(|spec| {
            let Value::Object(schema) = spec.input_schema.clone() else {
                return None;
            };
            let schema: Arc<JsonObject> = Arc::new(schema);
            Some(
                Tool::new(spec.name, spec.description, schema).annotate(
                    ToolAnnotations::new()
                        .read_only(spec.policy == Policy::Read)
                        .destructive(false),
                ),
            )
        })
        .collect()
});

/// One MCP server instance (rmcp makes one per session, or per request when stateless).
#[derive(Clone)]
pub struct ManaMcp {
    state: web::Data<AppState>,
    metrics: McpMetrics,
}

fn caller(ctx: &RequestContext<RoleServer>) -> Result<McpUser, McpError> {
    on_request_extensions(&ctx.extensions)
        .and_then(|e| e.get::<McpUser>())
        .cloned()
        .ok_or_else(|| McpError::new(ErrorCode::INVALID_REQUEST, "not authenticated", None))
}

impl ServerHandler for ManaMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mana", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The Mana productivity app: todos, notes, journal, calendar, contacts, goals, \
                 habits, mood and AI missions. Every tool acts on the signed-in user's own records.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        caller(&ctx)?;
        Ok(ListToolsResult::with_all_items(TOOLS.clone()).with_cache_scope(CacheScope::Private))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        TOOLS.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let span = tools_call_span(&request.name, &ctx);
        let result = self
            .call_tool_traced(request, ctx)
            .instrument(span.clone())
            .await;
        match &result {
            Err(e) => {
                span.record("error.type", format!("{}", e.code.0));
                span.record("rpc.response.status_code", e.code.0);
                span.record("otel.status_code", "ERROR");
            }
            // The tool ran and answered `isError: true` (MCP conventions: `tool_error`).
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => {
                span.record("error.type", "tool_error");
                span.record("otel.status_code", "ERROR");
            }
            Ok(_) => {}
        }
        result
    }
}

impl ManaMcp {
    async fn call_tool_traced(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let user = caller(&ctx)?;
        let name = request.name.to_string();
        let registry = Registry::global();
        let exposed = registry
            .get(&name)
            .is_some_and(|t| t.policy != Policy::Destructive);
        let meta: Option<JsonObject> = request
            .meta
            .as_ref()
            .map(|m| m.0.0.clone())
            .or_else(|| (!ctx.meta.0.0.is_empty()).then(|| ctx.meta.0.0.clone()));
        let args = Value::Object(request.arguments.unwrap_or_default());
        let hash = service_kit::input_hash(&args);
        if !exposed {
            tracing::info!(user.id = %user.id, tool = %name, input.hash = %hash, result = "unknown_tool", "mcp tool call refused");
            self.metrics
                .calls
                .get_or_create(&ToolCallLabels {
                    tool: "unknown".into(),
                    result: "unknown_tool".into(),
                })
                .inc();
            return Err(McpError::invalid_params(
                format!("unknown tool: {name}"),
                None,
            ));
        }
        let fix = |what: String| {
            tracing::info!(user.id = %user.id, tool = %name, input.hash = %hash, result = "invalid_input", "mcp tool call refused");
            Ok(CallToolResult::error(vec![ContentBlock::text(what)]).into())
        };
        if let Some(path) = service_kit::storable::find_nul(&args, "arguments") {
            return fix(format!("`{path}` {}", service_kit::storable::NUL_MESSAGE));
        }
        if let Some(path) = meta
            .as_ref()
            .and_then(|m| service_kit::storable::find_nul(&Value::Object(m.clone()), "_meta"))
        {
            return fix(format!("`{path}` {}", service_kit::storable::NUL_MESSAGE));
        }
        let action = if user.kind == "persona" {
            match action_meta(meta.as_ref(), &name) {
                Ok(a) => a,
                Err(what) => return fix(what),
            }
        } else {
            None
        };
        let now = self.state.clock.now();
        let pending = action.map(|(id, tick_id)| NewAction {
            id,
            persona_id: user.id,
            tick_id,
            tool_name: name.clone(),
            module: registry
                .get(&name)
                .map_or_else(String::new, |t| t.module.to_owned()),
            input: Some(args.clone()),
            input_hash: Some(hash.clone()),
            result: "ok",
            error_message: None,
            latency_ms: None,
            created_at: now,
            completed_at: None,
        });
        let pending_id = pending.as_ref().map(|row| row.id.clone());
        let started = Instant::now();
        let store =
            PgRecordStore::new(self.state.clone(), user.id, "mcp", "mcp").with_action(pending);
        // A call of several writes is one transaction; one write is all or nothing on
        // its own (with its action row, in one transaction), so it opens none before.
        let store = if registry.writes_at_most_once(&name) {
            store
        } else {
            store.in_one_transaction()
        };
        let ctx = CallContext::new(now);
        let mut outcome = registry.call(&name, args, &store, &ctx).await;
        // The call's writes and its action row commit together, or none of them.
        if let Err(e) = store.finish(outcome.is_ok()).await {
            outcome = Err(ToolError::Store(e.to_string()));
        }
        let duration = started.elapsed();
        // A re-sent call is found out by its action row, with no lookup before it runs:
        // its first write finds the row and is refused (nothing repeated), or, for a
        // call that wrote nothing (a read, a refused write), recording the row finds it.
        let mut ran_before = store.ran_before();
        if let Some(mut row) = store.take_action().filter(|_| !ran_before) {
            if let Err(e) = &outcome {
                row.result = "error";
                row.error_message = Some(e.to_string().chars().take(4000).collect());
            }
            row.latency_ms = Some(i32::try_from(duration.as_millis()).unwrap_or(i32::MAX));
            match self.record_action(&row).await {
                Ok(recorded) => ran_before = !recorded,
                Err(e) => {
                    tracing::error!(user.id = %user.id, tool = %name, action.id = %row.id, error.cause = %e, "mcp action row not recorded");
                }
            }
        }
        if ran_before {
            tracing::info!(user.id = %user.id, tool = %name, "mcp tool call already ran; not repeated");
            let id = pending_id.unwrap_or_default();
            return Ok(CallToolResult::structured(serde_json::json!({
                "alreadyExecuted": true,
                "actionId": id,
                "message": "This call already ran (a re-sent request); its effect is kept and it was not repeated.",
            }))
            .into());
        }
        let (result, response) = match outcome {
            Ok(value) => ("ok", CallToolResult::structured(value)),
            Err(ToolError::UnknownTool(_) | ToolError::NotCallable(_)) => {
                return Err(McpError::invalid_params(
                    format!("unknown tool: {name}"),
                    None,
                ));
            }
            Err(e @ (ToolError::InvalidInput(_) | ToolError::NotFound(_))) => (
                e.code(),
                CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
            ),
            Err(e @ ToolError::Store(_)) => {
                tracing::warn!(user.id = %user.id, tool = %name, error.cause = %e, "mcp tool failed in the store");
                (
                    e.code(),
                    CallToolResult::error(vec![ContentBlock::text(
                        "The app could not complete this right now; try again in a moment.",
                    )]),
                )
            }
        };
        tracing::info!(
            user.id = %user.id,
            tool = %name,
            input.hash = %hash,
            duration_ms = duration.as_millis() as u64,
            result,
            "mcp tool call"
        );
        let labels = ToolCallLabels {
            tool: name,
            result: result.to_owned(),
        };
        self.metrics.calls.get_or_create(&labels).inc();
        self.metrics
            .duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        Ok(response.into())
    }
}

impl ManaMcp {
    async fn record_action(&self, row: &NewAction) -> Result<bool, crate::error::AppError> {
        let mut conn = self.state.pool.get().await?;
        Ok(crate::db::personas::record_executed(&mut conn, row).await?)
    }
}

/// The public base URL: configured, else from the request.
pub(crate) fn base_url(req: &HttpRequest, state: &AppState) -> String {
    if let Some(url) = &state.settings.mcp.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// The W3C trace context of the HTTP request that carried an MCP message, copied by the
/// transport's `on_request_fn`.
#[derive(Clone)]
struct HttpTraceContext(opentelemetry::Context);

/// The `Mcp-Session-Id` of the HTTP request that carried an MCP message (stateful mode;
/// rmcp has checked it names a live session before a handler runs).
#[derive(Clone)]
struct McpSessionId(String);

/// The server span `tools/call {tool}` (MCP semantic conventions), parented by the
/// `traceparent` in the request's `_meta` when the client sent one, else by the HTTP
/// request's span. `mcp.session.id` is set in stateful mode; [`ManaMcp::call_tool`] adds
/// `error.type` (the JSON-RPC code, or `tool_error` for an `isError` result).
fn tools_call_span(tool: &str, ctx: &RequestContext<RoleServer>) -> tracing::Span {
    let span = tracing::info_span!(
        "mcp.server",
        otel.name = %format!("tools/call {tool}"),
        otel.kind = "server",
        mcp.method.name = "tools/call",
        gen_ai.tool.name = tool,
        gen_ai.operation.name = "execute_tool",
        jsonrpc.request.id = %request_id(&ctx.id),
        mcp.protocol.version = ctx.protocol_version().map(|v| v.to_string()).unwrap_or_default(),
        mcp.session.id = tracing::field::Empty,
        error.type = tracing::field::Empty,
        rpc.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if let Some(session) =
        on_request_extensions(&ctx.extensions).and_then(|e| e.get::<McpSessionId>())
    {
        span.record("mcp.session.id", session.0.as_str());
    }
    let mut remote = std::collections::HashMap::new();
    if let Some(tp) = ctx.meta.get_traceparent() {
        remote.insert("traceparent".to_owned(), tp.to_owned());
        if let Some(ts) = ctx.meta.get_tracestate() {
            remote.insert("tracestate".to_owned(), ts.to_owned());
        }
    }
    let from_meta = service_kit::telemetry::context_from_map(&remote);
    let parent = if service_kit::telemetry::has_span(&from_meta) {
        Some(from_meta)
    } else {
        on_request_extensions(&ctx.extensions)
            .and_then(|e| e.get::<HttpTraceContext>())
            .map(|h| h.0.clone())
    };
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
    span
}

fn request_id(id: &rmcp::model::RequestId) -> String {
    match id {
        rmcp::model::NumberOrString::Number(n) => n.to_string(),
        rmcp::model::NumberOrString::String(s) => s.to_string(),
    }
}

/// The `WWW-Authenticate` of a 401 on `/mcp`. RFC 6750 §3.1: a request that
/// carried no bearer token (none at all, or another scheme) gets no error
/// code; one whose token was refused gets `error="invalid_token"`.
fn bearer_challenge(metadata: &str, token_sent: bool) -> String {
    let mut challenge = format!(
        "Bearer resource_metadata=\"{metadata}\", scope=\"{}\"",
        crate::oauth::SCOPE_MCP
    );
    if token_sent {
        challenge.push_str(", error=\"invalid_token\"");
    }
    challenge
}

/// `from_fn` middleware on `/mcp`: verify the bearer token, or answer 401.
pub async fn require_bearer(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(crate::error::AppError::internal("AppState missing").into());
    };
    match crate::oauth::bearer::authenticate_mcp(req.request(), &state).await {
        Ok(user) => {
            req.extensions_mut().insert(user);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(e @ crate::error::AppError::Unauthorized(_)) => {
            let metadata = format!(
                "{}/.well-known/oauth-protected-resource",
                base_url(req.request(), &state)
            );
            let mut resp = json_error(
                actix_web::http::StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                e.to_string(),
            );
            let challenge = bearer_challenge(
                &metadata,
                crate::auth::bearer_token(req.request()).is_some(),
            );
            if let Ok(v) = header::HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            Ok(req.into_response(resp).map_into_right_body())
        }
        Err(e) => {
            let resp = actix_web::ResponseError::error_response(&e);
            Ok(req.into_response(resp).map_into_right_body())
        }
    }
}

/// RFC 9728 protected-resource metadata of `/mcp` (snake_case, as the RFC names it).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProtectedResourceMetadata {
    /// The MCP endpoint's URL.
    pub resource: String,
    pub resource_name: &'static str,
    /// Always `["header"]`.
    pub bearer_methods_supported: Vec<&'static str>,
    /// The OAuth 2.1 authorization server(s) issuing tokens for it (RFC 8414 issuers).
    pub authorization_servers: Vec<String>,
    /// Always `["mcp"]`.
    pub scopes_supported: Vec<&'static str>,
    /// Where the keys that verify the bearer tokens are.
    pub jwks_uri: String,
    pub resource_documentation: String,
}

/// `GET /.well-known/oauth-protected-resource` (RFC 9728).
#[utoipa::path(
    tag = "mcp",
    responses(
        (status = 200, description = "Metadata of the MCP resource (where the 401 of `/mcp` points)", body = ProtectedResourceMetadata),
    ),
)]
#[get("/.well-known/oauth-protected-resource")]
pub async fn protected_resource_metadata(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    metadata(&req, &state)
}

fn metadata(req: &HttpRequest, state: &AppState) -> HttpResponse {
    let base = base_url(req, state);
    HttpResponse::Ok().json(ProtectedResourceMetadata {
        resource: format!("{base}/mcp"),
        resource_name: "Mana MCP",
        bearer_methods_supported: vec!["header"],
        authorization_servers: vec![base.clone()],
        scopes_supported: vec![crate::oauth::SCOPE_MCP],
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        resource_documentation: format!("{base}/health"),
    })
}

/// `GET /.well-known/oauth-protected-resource/mcp`: the same document under the
/// path-suffixed name RFC 9728 clients try first.
#[utoipa::path(
    tag = "mcp",
    responses(
        (status = 200, description = "The same metadata as `/.well-known/oauth-protected-resource`", body = ProtectedResourceMetadata),
    ),
)]
#[get("/.well-known/oauth-protected-resource/mcp")]
pub async fn protected_resource_metadata_mcp(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    metadata(&req, &state)
}

// OpenAPI annotation only: the route is served by rmcp (mounted by
// `routes::table` behind `require_bearer`, documented by this annotation
// through `routes::Documented`). The `///` text below is the published description.
/// `POST /mcp`: the MCP streamable-HTTP endpoint (tools as the token's user).
#[utoipa::path(
    post,
    path = "/mcp",
    tag = "mcp",
    security(("bearer" = [])),
    request_body(
        content = Value,
        description = "A JSON-RPC 2.0 message of the Model Context Protocol (`initialize`, `tools/list`, `tools/call`, …). Send `Accept: application/json, text/event-stream`. Stateful servers also answer `GET` (event stream) and `DELETE` (end session) with `Mcp-Session-Id`."
    ),
    responses(
        (status = 200, description = "The JSON-RPC answer, as JSON or as a `text/event-stream`; tool failures are results with `isError: true`", body = Value),
        (status = 401, description = "Missing or invalid bearer token (`unauthorized`); `WWW-Authenticate` points at the protected-resource metadata", body = ApiError),
    ),
)]
/// OpenAPI annotation only; the route is served by rmcp.
pub fn mcp_endpoint() {}

/// Build the MCP transport once; it is cloned into every actix worker.
pub fn build_service(
    state: web::Data<AppState>,
    metrics: McpMetrics,
) -> StreamableHttpService<ManaMcp> {
    let mcp = &state.settings.mcp;
    let mut hosts: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "[::1]".into(),
    ];
    hosts.extend(mcp.allowed_hosts.iter().cloned());
    let stateful = mcp.stateful;
    let factory_state = state.clone();
    StreamableHttpService::builder()
        .service_factory(Arc::new(move || {
            Ok(ManaMcp {
                state: factory_state.clone(),
                metrics: metrics.clone(),
            })
        }))
        .session_manager(Arc::new(LocalSessionManager::default()))
        .stateful_mode(stateful)
        .allowed_hosts(hosts)
        .cancellation_token(state.lifecycle.token())
        .on_request_fn(|http_req: &HttpRequest, ext| {
            if let Some(user) = http_req.extensions().get::<McpUser>() {
                ext.insert(user.clone());
            }
            if let Some(span) = http_req
                .extensions()
                .get::<service_kit::telemetry::HttpServerSpan>()
            {
                ext.insert(HttpTraceContext(span.0.context()));
            }
            if let Some(session) = http_req
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            {
                ext.insert(McpSessionId(session.to_owned()));
            }
        })
        .build()
}

/// A JSON-RPC error answer (`id: null`: the request could not be read).
fn json_rpc_error(status: actix_web::http::StatusCode, code: i32, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        }))
}

/// Why a parsed body is not one JSON-RPC 2.0 message, if it is not.
fn json_rpc_problem(v: &Value) -> Option<&'static str> {
    let Value::Object(m) = v else {
        return Some(
            "Invalid Request: expected one JSON-RPC 2.0 object (batches are not supported)",
        );
    };
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some("Invalid Request: `jsonrpc` must be \"2.0\"");
    }
    if m.get("id")
        .is_some_and(|id| !(id.is_string() || id.is_number() || id.is_null()))
    {
        return Some("Invalid Request: `id` must be a string or a number");
    }
    let is_request = m.get("method").is_some_and(Value::is_string);
    let is_response = m.contains_key("id") && (m.contains_key("result") || m.contains_key("error"));
    if !is_request && !is_response {
        return Some(
            "Invalid Request: a message needs a string `method` (or `id` with `result`/`error`)",
        );
    }
    if m.get("params")
        .is_some_and(|p| !(p.is_object() || p.is_array()))
    {
        return Some("Invalid Request: `params` must be an object");
    }
    None
}

/// A response body that ends when shutdown begins (an MCP event stream would
/// otherwise keep its connection, and the server, alive until the grace runs out).
struct EndsOnShutdown {
    body: actix_web::body::BoxBody,
    cancelled: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl MessageBody for EndsOnShutdown {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.cancelled.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        std::pin::Pin::new(&mut this.body).poll_next(cx)
    }
}

/// `from_fn` middleware on `/mcp`: every response body (event streams above all) ends
/// as soon as shutdown begins.
pub async fn end_streams_on_shutdown(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let token = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.lifecycle.token())
        .unwrap_or_default();
    let resp = next.call(req).await?;
    Ok(resp.map_body(move |_, body| EndsOnShutdown {
        body: actix_web::body::BoxBody::new(body),
        cancelled: Box::pin(token.cancelled_owned()),
    }))
}

/// `from_fn` middleware on `/mcp`: a POST body must be one JSON-RPC 2.0 message sent
/// as `application/json`; anything else is answered here with a JSON-RPC error object
/// and status 400 (`-32700` unparsable JSON, `-32600` not a valid request), or 413 over
/// the body limit. Valid bodies are handed on to rmcp unchanged.
pub async fn require_json_rpc(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    use actix_web::http::StatusCode;
    use futures::StreamExt;

    if req.method() != actix_web::http::Method::POST {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let reject = |req: ServiceRequest, status: StatusCode, code: i32, message: &str| {
        Ok(req
            .into_response(json_rpc_error(status, code, message))
            .map_into_right_body())
    };
    let is_json = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
    if !is_json {
        return reject(
            req,
            StatusCode::BAD_REQUEST,
            -32600,
            "Invalid Request: send the JSON-RPC message with Content-Type: application/json",
        );
    }
    let limit = req
        .app_data::<service_kit::json::JsonLimit>()
        .map_or(service_kit::json::DEFAULT_LIMIT, |l| l.0);
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return reject(
                req,
                StatusCode::BAD_REQUEST,
                -32700,
                "Parse error: the body could not be read",
            );
        };
        if body.len() + chunk.len() > limit {
            return reject(
                req,
                StatusCode::PAYLOAD_TOO_LARGE,
                -32600,
                "Invalid Request: the body is larger than the server accepts",
            );
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    match serde_json::from_slice::<Value>(&body) {
        Err(_) => reject(
            req,
            StatusCode::BAD_REQUEST,
            -32700,
            "Parse error: the body is not valid JSON",
        ),
        Ok(v) => match json_rpc_problem(&v) {
            Some(problem) => reject(req, StatusCode::BAD_REQUEST, -32600, problem),
            None => {
                req.set_payload(actix_web::dev::Payload::from(body));
                next.call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn action_meta_must_name_this_call() {
        let meta = |id: &str, tick: &str| {
            let Value::Object(m) = json!({META_ACTION_ID: id, META_TICK_ID: tick}) else {
                unreachable!()
            };
            m
        };
        assert_eq!(
            action_meta(Some(&meta("t.p-3-todo_create", "t.p")), "todo_create"),
            Ok(Some(("t.p-3-todo_create".into(), "t.p".into())))
        );
        assert!(action_meta(Some(&meta("t.p-3-notes_create", "t.p")), "todo_create").is_err());
        assert!(action_meta(Some(&meta("t.p-x-todo_create", "t.p")), "todo_create").is_err());
        assert!(action_meta(Some(&meta("u.p-3-todo_create", "t.p")), "todo_create").is_err());
        assert_eq!(action_meta(None, "todo_create"), Ok(None));
    }

    #[test]
    fn only_json_rpc_messages_pass() {
        assert_eq!(
            json_rpc_problem(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
            None
        );
        assert_eq!(
            json_rpc_problem(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
            None
        );
        assert_eq!(
            json_rpc_problem(&json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            None
        );
        for bad in [
            json!([]),
            json!(1),
            json!({"id": 1, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": {}, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": 1}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": 3}),
        ] {
            assert!(json_rpc_problem(&bad).is_some(), "{bad}");
        }
    }
}
