//! The persona's MCP session with auth-internal's `/mcp` (rmcp client, streamable HTTP,
//! bearer JWT).
//!
//! Rules:
//! - Tools reach the model under their MCP names, unprefixed, with the input schemas MCP
//!   announced; each tool's module comes from the tool registry (`crates/tools`), never
//!   from parsing the name.
//! - A tool result with `isError: true` is an error result; a protocol error (unknown
//!   tool, bad arguments at the protocol level) and a transport error are error results
//!   too — the model sees them, the action is marked `error`.
//! - A call carries its action row id and tick id in `_meta` (`mana/actionId`,
//!   `mana/tickId`): auth-internal records the row with the tool's effect and does not
//!   run an id twice, so a call whose transport failed may be re-sent on a new session.
//! - A transport failure (not a protocol error) is marked [`ToolOutcome::lost`]: the
//!   caller reopens the session (auth-internal may have restarted) and re-sends.
//! - Every call carries the current span's W3C `traceparent` in `_meta`.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use llm::{ToolDef, is_valid_tool_name};
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, ClientConfig, RequestMetaObject},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::Value;

/// Module recorded for a tool the registry does not know.
pub const UNKNOWN_MODULE: &str = "unknown";
/// Longest tool output handed back to the model.
pub const MAX_TOOL_OUTPUT: usize = 8_000;

/// Why the session could not be used.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// initialize failed (auth, network, protocol).
    #[error("MCP connect failed: {0}")]
    Connect(String),
    /// tools/list failed.
    #[error("MCP tools/list failed: {0}")]
    ListTools(String),
}

/// How one tool call ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    /// Text for the model (structured content as JSON, or the text blocks).
    pub content: String,
    /// Whether the call failed.
    pub is_error: bool,
    /// Wall-clock latency of the call.
    pub latency_ms: i32,
    /// The transport failed (the session may be gone): re-send on a new session.
    pub lost: bool,
}

/// `_meta` key of the action row id (the same on auth-internal).
pub const META_ACTION_ID: &str = "mana/actionId";
/// `_meta` key of the action row's tick id.
pub const META_TICK_ID: &str = "mana/tickId";

/// An open MCP session.
pub struct McpSession {
    client: RunningService<RoleClient, ClientConfig>,
    /// The tools as the model sees them.
    pub tools: Vec<ToolDef>,
    /// Tool name → module (registry metadata).
    pub modules: BTreeMap<String, String>,
}

/// The module of `tool` according to the registry.
pub fn module_of(tool: &str) -> String {
    tools::Registry::global()
        .get(tool)
        .map_or_else(|| UNKNOWN_MODULE.to_owned(), |t| t.module.to_owned())
}

impl McpSession {
    /// Connects to `url` with `token` as bearer and lists the tools.
    pub async fn open(http: reqwest::Client, url: &str, token: &str) -> Result<Self, McpError> {
        // The session's HTTP requests carry the day's trace context too (per request, the
        // tool call's own context travels in `_meta`).
        let headers: HashMap<HeaderName, HeaderValue> =
            service_kit::telemetry::trace_context_of(&tracing::Span::current())
                .into_iter()
                .filter_map(|(k, v)| {
                    Some((
                        HeaderName::from_bytes(k.as_bytes()).ok()?,
                        HeaderValue::from_str(&v).ok()?,
                    ))
                })
                .collect();
        let transport = StreamableHttpClientTransport::with_client(
            http,
            StreamableHttpClientTransportConfig::with_uri(url.to_owned())
                .auth_header(token.to_owned())
                .custom_headers(headers),
        );
        let client = ClientConfig::default()
            .serve(transport)
            .await
            .map_err(|e| McpError::Connect(e.to_string()))?;
        let listed = match client.list_all_tools().await {
            Ok(t) => t,
            Err(e) => {
                let _ = client.cancel().await;
                return Err(McpError::ListTools(e.to_string()));
            }
        };
        let mut tools = Vec::with_capacity(listed.len());
        let mut modules = BTreeMap::new();
        for t in listed {
            let name = t.name.to_string();
            if !is_valid_tool_name(&name) {
                tracing::warn!(tool = %name, "MCP tool name is not valid for LLM APIs: skipped");
                continue;
            }
            modules.insert(name.clone(), module_of(&name));
            tools.push(ToolDef {
                description: t.description.as_deref().unwrap_or_default().to_owned(),
                input_schema: Value::Object((*t.input_schema).clone()),
                name,
            });
        }
        Ok(Self {
            client,
            tools,
            modules,
        })
    }

    /// Calls `name` with `arguments` (an object; anything else is sent as `{}`), with
    /// the action row `(id, tick id)` in `_meta` when given.
    pub async fn call(
        &self,
        name: &str,
        arguments: &Value,
        action: Option<(&str, &str)>,
    ) -> ToolOutcome {
        let started = Instant::now();
        let mut params = CallToolRequestParams::new(name.to_owned());
        if let Value::Object(args) = arguments {
            params = params.with_arguments(args.clone());
        }
        let mut meta = serde_json::Map::new();
        if let Some((id, tick)) = action {
            meta.insert(META_ACTION_ID.to_owned(), Value::String(id.to_owned()));
            meta.insert(META_TICK_ID.to_owned(), Value::String(tick.to_owned()));
        }
        let mut meta = RequestMetaObject::from(meta);
        // W3C trace context of the current (`execute_tool`) span in `_meta` (SEP-414), so
        // auth-internal's `tools/call` span is its child.
        let trace = service_kit::telemetry::trace_context_of(&tracing::Span::current());
        let traced = if let Some(tp) = trace.get("traceparent") {
            meta.set_traceparent(tp.clone());
            if let Some(ts) = trace.get("tracestate") {
                meta.set_tracestate(ts.clone());
            }
            true
        } else {
            false
        };
        if action.is_some() || traced {
            params.meta = Some(meta);
        }
        let mut lost = false;
        let (content, is_error) = match self.client.call_tool(params).await {
            Ok(result) => {
                let is_error = result.is_error == Some(true);
                let text: Vec<String> = result
                    .content
                    .iter()
                    .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                    .collect();
                let content = match (&result.structured_content, is_error) {
                    (Some(v), false) => v.to_string(),
                    _ if !text.is_empty() => text.join("\n"),
                    (Some(v), true) => v.to_string(),
                    (None, _) => String::new(),
                };
                (content, is_error)
            }
            Err(e) => {
                lost = !matches!(e, rmcp::ServiceError::McpError(_));
                (format!("tool call failed: {e}"), true)
            }
        };
        ToolOutcome {
            content: types::text::truncate_chars(&content, MAX_TOOL_OUTPUT),
            is_error,
            latency_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
            lost,
        }
    }

    /// Closes the session (best effort).
    pub async fn close(self) {
        let _ = self.client.cancel().await;
    }
}
