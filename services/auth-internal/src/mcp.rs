//! The app's tools for agents over MCP (streamable HTTP, `rmcp`), mounted at `/mcp`.
//!
//! Rules:
//! - A bearer JWT from `/api/v1/auth/login` is required on every request; without a
//!   valid one the answer is 401 with `WWW-Authenticate: Bearer resource_metadata=…`
//!   pointing at the RFC 9728 protected-resource metadata. The token is verified here
//!   and never travels further: handlers only see the caller's user id.
//! - Tools come from the one registry (`crates/tools`); `tools/list` is marked private
//!   (per-user) and never lists `destructive` tools, which are not callable either.
//! - Every call runs as the token's user, writes through the same LWW path as sync
//!   (origin `mcp`), and is logged once: user, tool, input hash, `duration_ms`, result.
//! - Input errors and handler failures are tool results with `isError: true`; an
//!   unknown tool is a protocol error.
//! - `mcp.stateful = false` serves every request statelessly (replicas behind a load
//!   balancer); the current protocol revision is sessionless either way.

use std::{
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
use types::{ApiError, error::codes};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{auth, routes::Documented, state::AppState, store::PgRecordStore};

/// The protected-resource metadata and `/mcp` itself (served by `transport`,
/// the rmcp service, behind [`require_bearer`]; documented by [`mcp_endpoint`]).
pub fn routes<M>(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>, transport: M)
where
    M: actix_web::dev::HttpServiceFactory + 'static,
{
    cfg.service(protected_resource_metadata)
        .service(protected_resource_metadata_mcp)
        .service(Documented::new(
            web::scope("/mcp")
                .wrap(actix_web::middleware::from_fn(require_bearer))
                .service(transport),
            __path_mcp_endpoint,
        ));
}

/// The MCP caller, put into the request by the bearer middleware.
#[derive(Debug, Clone)]
pub struct McpUser {
    pub id: Uuid,
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
        let user = caller(&ctx)?;
        let name = request.name.to_string();
        let registry = Registry::global();
        let exposed = registry
            .get(&name)
            .is_some_and(|t| t.policy != Policy::Destructive);
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
        let started = Instant::now();
        let store = PgRecordStore::new(self.state.clone(), user.id, "mcp", "mcp");
        let ctx = CallContext::new(self.state.clock.now());
        let outcome = registry.call(&name, args, &store, &ctx).await;
        let duration = started.elapsed();
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

/// The public base URL: configured, else from the request.
fn base_url(req: &HttpRequest, state: &AppState) -> String {
    if let Some(url) = &state.settings.mcp.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// `from_fn` middleware on `/mcp`: verify the bearer token, or answer 401.
pub async fn require_bearer(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(crate::error::AppError::internal("AppState missing").into());
    };
    match auth::authenticate(req.request(), &state) {
        Ok(user) => {
            req.extensions_mut().insert(McpUser { id: user.id });
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(e) => {
            let metadata = format!(
                "{}/.well-known/oauth-protected-resource",
                base_url(req.request(), &state)
            );
            let mut resp = json_error(
                actix_web::http::StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                e.to_string(),
            );
            let challenge =
                format!("Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\"");
            if let Ok(v) = header::HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
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
        .on_request_fn(|http_req: &HttpRequest, ext| {
            if let Some(user) = http_req.extensions().get::<McpUser>() {
                ext.insert(user.clone());
            }
        })
        .build()
}
