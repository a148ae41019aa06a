//! Telemetry for all three services: the tracing subscriber (JSON lines or pretty logs),
//! OpenTelemetry traces exported over OTLP/HTTP (protobuf), and W3C trace-context
//! propagation across HTTP and MCP.
//!
//! Rules:
//! - Export is on only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is not `true`).
//!   [`OtelSettings::from_lookup`] resolves the traces endpoint, `…_HEADERS` (percent-decoded)
//!   and `OTEL_SERVICE_NAME` the way the exporter and SDK would, so one lookup (a map in
//!   tests) decides what reaches the collector; the exporter still reads `…_TIMEOUT`, the SDK
//!   `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*` and `OTEL_RESOURCE_ATTRIBUTES`. The service's
//!   own name is only the default when neither `OTEL_SERVICE_NAME` nor the attributes name one.
//! - Spans leave through the batch processor's own thread with the *blocking* reqwest
//!   client (the async client panics on that thread and spans vanish): a slow or dead
//!   collector never blocks a request or a tick. [`Telemetry::shutdown`] flushes on exit.
//! - With export off spans still get ids (a provider without processors), so every log line
//!   inside a span carries `trace_id` and `span_id` and an incoming `traceparent` still
//!   correlates logs across services.
//! - Context crosses process boundaries as W3C `traceparent`/`tracestate` only
//!   ([`TraceContextPropagator`]), in HTTP headers and in MCP `_meta`.
//! - Tests build a provider themselves ([`build_provider`], [`subscriber`]) and may install
//!   it globally ([`Telemetry::init_with`]) or per thread; nothing requires the global.
//! - The SDK's and exporter's own events (`internal-logs`: a failed or rejected export, a
//!   full queue) are logged like any other line but never reach the OpenTelemetry layer, so
//!   they neither become span events nor feed back into export.
//! - Message content reaches spans only with
//!   `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` ([`genai`]).

use std::{
    collections::HashMap,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};
use opentelemetry::{
    Context, KeyValue,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
};
use tracing::{Dispatch, Instrument, Span, Subscriber, dispatcher::WeakDispatch, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, fmt, layer::SubscriberExt, registry::LookupSpan, util::SubscriberInitExt,
};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

/// Why telemetry could not be set up as asked.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter rejected its configuration (e.g. an invalid endpoint).
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// GenAI semantic-convention switches, read from the standard variables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenAiOptions {
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`: prompts, answers and tool
    /// arguments/results go onto spans.
    pub capture_content: bool,
    /// `OTEL_SEMCONV_STABILITY_OPT_IN` contains `gen_ai_latest_experimental`: only the
    /// newest attribute names (no `gen_ai.system`), content as `gen_ai.input.messages` /
    /// `gen_ai.output.messages` attributes instead of per-message events.
    pub latest_experimental: bool,
}

static CAPTURE_CONTENT: AtomicBool = AtomicBool::new(false);
static LATEST_EXPERIMENTAL: AtomicBool = AtomicBool::new(false);

/// The GenAI options in force (set by [`Telemetry::init`] / [`set_genai`]).
pub fn genai() -> GenAiOptions {
    GenAiOptions {
        capture_content: CAPTURE_CONTENT.load(Ordering::Relaxed),
        latest_experimental: LATEST_EXPERIMENTAL.load(Ordering::Relaxed),
    }
}

/// Sets the process-wide GenAI options.
pub fn set_genai(options: GenAiOptions) {
    CAPTURE_CONTENT.store(options.capture_content, Ordering::Relaxed);
    LATEST_EXPERIMENTAL.store(options.latest_experimental, Ordering::Relaxed);
}

/// What [`build_provider`] needs, read from `OTEL_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtelSettings {
    /// Export spans over OTLP/HTTP.
    pub export: bool,
    /// The traces URL (`http://host:4318/v1/traces`): `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// as given, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; `None` leaves it to the
    /// exporter's default.
    pub endpoint: Option<String>,
    /// Export headers: `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`
    /// (`key=value,…`, values percent-decoded).
    pub headers: HashMap<String, String>,
    /// `service.name`: `OTEL_SERVICE_NAME`, else the service's own name unless
    /// `OTEL_RESOURCE_ATTRIBUTES` names one (`None`: the SDK's resource detectors decide).
    pub service_name: Option<String>,
    /// Per-export timeout (`None`: `OTEL_EXPORTER_OTLP_TIMEOUT` or the exporter's 10 s).
    pub timeout: Option<Duration>,
    /// Delay between batch exports (`None`: `OTEL_BSP_SCHEDULE_DELAY` or 5 s).
    pub batch_delay: Option<Duration>,
    /// GenAI switches.
    pub genai: GenAiOptions,
}

fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// `%XX` escapes decoded (the OTLP header format); `None` for a broken escape or non-UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `key=value,…` as the OTLP exporters read `OTEL_EXPORTER_OTLP_HEADERS`: pairs trimmed,
/// values percent-decoded (kept as given when the escape is broken), empty keys or values
/// skipped.
fn parse_headers(v: &str) -> HashMap<String, String> {
    v.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            let v = percent_decode(v).unwrap_or_else(|| v.to_owned());
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_owned(), v))
        })
        .collect()
}

impl OtelSettings {
    /// Reads the variables through `lookup` (tests pass a map; services the real env).
    pub fn from_lookup(default_service: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
            get("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        });
        let export = !truthy(lookup("OTEL_SDK_DISABLED")) && endpoint.is_some();
        let headers = get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| get("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|h| parse_headers(&h))
            .unwrap_or_default();
        let attributes_name_service = lookup("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
            attrs
                .split(',')
                .any(|kv| kv.split('=').next().map(str::trim) == Some("service.name"))
        });
        let service_name = get("OTEL_SERVICE_NAME")
            .or_else(|| (!attributes_name_service).then(|| default_service.to_owned()));
        Self {
            export,
            endpoint,
            headers,
            service_name,
            timeout: None,
            batch_delay: None,
            genai: GenAiOptions {
                capture_content: truthy(lookup(
                    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                )),
                latest_experimental: lookup("OTEL_SEMCONV_STABILITY_OPT_IN").is_some_and(|v| {
                    v.split(',')
                        .any(|o| o.trim() == "gen_ai_latest_experimental")
                }),
            },
        }
    }

    /// Reads the process environment.
    pub fn from_env(default_service: &str) -> Self {
        Self::from_lookup(default_service, |k| std::env::var(k).ok())
    }

    /// Export to `traces_url` (a full `/v1/traces` URL), whatever the environment says.
    #[must_use]
    pub fn exporting_to(mut self, traces_url: impl Into<String>) -> Self {
        self.export = true;
        self.endpoint = Some(traces_url.into());
        self
    }
}

/// Builds a tracer provider: a batch OTLP/HTTP exporter when `settings.export`, else none
/// (spans still get ids for log correlation).
pub fn build_provider(settings: &OtelSettings) -> Result<SdkTracerProvider, TelemetryError> {
    let mut resource = Resource::builder();
    if let Some(name) = &settings.service_name {
        resource = resource.with_service_name(name.clone());
    }
    resource =
        resource.with_attributes([KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))]);
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    if !settings.export {
        return Ok(builder.build());
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(url) = &settings.endpoint {
        exporter = exporter.with_endpoint(url.clone());
    }
    if let Some(t) = settings.timeout {
        exporter = exporter.with_timeout(t);
    }
    if !settings.headers.is_empty() {
        use opentelemetry_otlp::WithHttpConfig;
        exporter = exporter.with_headers(settings.headers.clone());
    }
    let exporter = exporter
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let processor = match settings.batch_delay {
        Some(delay) => BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(delay)
                    .build(),
            )
            .build(),
        None => BatchSpanProcessor::builder(exporter).build(),
    };
    Ok(builder.with_span_processor(processor).build())
}

/// The ids of a span, cached in its extensions for the JSON log lines.
#[derive(Debug, Clone)]
struct TraceIds {
    trace_id: String,
    span_id: String,
}

/// Puts the OpenTelemetry ids of an event's span into that span's extensions (once), so the
/// JSON formatter can print `trace_id` / `span_id` on every line inside a span.
struct TraceIdsLayer {
    dispatch: OnceLock<WeakDispatch>,
}

impl<S> Layer<S> for TraceIdsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        if span.extensions().get::<TraceIds>().is_some() {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let Some(cx) = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch) else {
            return;
        };
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            span.extensions_mut().insert(TraceIds {
                trace_id: sc.trace_id().to_string(),
                span_id: sc.span_id().to_string(),
            });
        }
    }
}

/// The JSON log layer: `timestamp`, `level`, the event's fields flattened, `target`, and
/// `trace_id`/`span_id` inside a span.
pub fn json_layer<S, W>(make_writer: W) -> json_subscriber::JsonLayer<S, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + 'static,
{
    let mut layer = json_subscriber::JsonLayer::new(make_writer);
    layer
        .with_timer("timestamp", fmt::time::SystemTime)
        .with_level("level")
        .with_flattened_event()
        .with_target("target");
    layer.add_from_extension_ref::<TraceIds, _, _>("trace_id", |ids| Some(&ids.trace_id));
    layer.add_from_extension_ref::<TraceIds, _, _>("span_id", |ids| Some(&ids.span_id));
    layer
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn,opentelemetry=warn"))
}

/// Whether `target` is the OpenTelemetry SDK or exporter logging about itself (targets
/// `opentelemetry`, `opentelemetry_sdk`, `opentelemetry-otlp`, …).
fn is_otel_internal(target: &str) -> bool {
    target.starts_with("opentelemetry")
}

/// A complete subscriber (filter, OpenTelemetry, ids, log layer writing to `make_writer`) for
/// `provider`; install it globally or with `tracing::subscriber::set_default`.
pub fn subscriber_with_writer<W>(
    format: LogFormat,
    provider: &SdkTracerProvider,
    make_writer: W,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("mana"))
        .with_tracked_inactivity(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            !is_otel_internal(meta.target())
        }));
    let registry = tracing_subscriber::registry()
        .with(filter())
        .with(otel)
        .with(TraceIdsLayer {
            dispatch: OnceLock::new(),
        });
    let (json, pretty) = match format {
        LogFormat::Json => (Some(json_layer(make_writer)), None),
        LogFormat::Pretty => (None, Some(fmt::layer().compact().with_writer(make_writer))),
    };
    registry.with(json).with(pretty)
}

/// [`subscriber_with_writer`] writing to stdout.
pub fn subscriber(
    format: LogFormat,
    provider: &SdkTracerProvider,
) -> impl Subscriber + Send + Sync + 'static {
    subscriber_with_writer(format, provider, std::io::stdout)
}

/// The installed telemetry of a process; call [`Telemetry::shutdown`] before exit.
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Reads `OTEL_*` from the environment and installs the global subscriber. An exporter
    /// that cannot be built is reported and export stays off; logging always works.
    /// Calling it twice is harmless (the first subscriber stays).
    pub fn init(format: LogFormat, service_name: &str) -> Self {
        let settings = OtelSettings::from_env(service_name);
        match build_provider(&settings) {
            Ok(provider) => {
                let t = Self::init_with(format, provider, settings.export, settings.genai);
                if settings.export {
                    tracing::info!(
                        service = service_name,
                        "OpenTelemetry trace export on (OTLP/HTTP)"
                    );
                }
                t
            }
            Err(e) => {
                let provider = build_provider(&OtelSettings {
                    export: false,
                    ..settings.clone()
                })
                .unwrap_or_else(|_| SdkTracerProvider::builder().build());
                let t = Self::init_with(format, provider, false, settings.genai);
                tracing::warn!(error = %e, "OpenTelemetry export is off: the exporter could not be built");
                t
            }
        }
    }

    /// Installs `provider` behind the global subscriber (tests build their own provider).
    pub fn init_with(
        format: LogFormat,
        provider: SdkTracerProvider,
        exporting: bool,
        genai: GenAiOptions,
    ) -> Self {
        set_genai(genai);
        let _already_set = subscriber(format, &provider).try_init();
        Self {
            provider,
            exporting,
        }
    }

    /// The provider (tests flush it).
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Whether spans are exported.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Flushes pending spans and stops the exporter (bounded by the export timeout).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5))
            && self.exporting
        {
            tracing::warn!(error = %e, "OpenTelemetry shutdown did not complete");
        }
    }
}

/// A count as an OTLP integer attribute: tracing-opentelemetry exports `u64` fields as
/// strings, `i64` as integers.
pub fn int(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// Installs the global subscriber without a service name (kept for callers that only log).
pub fn init(format: LogFormat) {
    let _ = Telemetry::init(format, "mana");
}

// ---- propagation -------------------------------------------------------------------

struct MapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapExtractor<'a>(&'a HashMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct ActixHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for ActixHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// `traceparent` (and `tracestate` if any) of `span`, empty when the span is not traced.
pub fn trace_context_of(span: &Span) -> HashMap<String, String> {
    let mut out = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut MapInjector(&mut out));
    out
}

/// Adds `traceparent`/`tracestate` of the current span to outgoing HTTP headers.
pub fn inject_current(headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(
        &Span::current().context(),
        &mut opentelemetry_http::HeaderInjector(headers),
    );
}

/// The remote parent carried by `traceparent`/`tracestate` values (empty context if none or
/// invalid).
pub fn context_from_map(values: &HashMap<String, String>) -> Context {
    TraceContextPropagator::new().extract(&MapExtractor(values))
}

/// The remote parent carried by an incoming request's headers.
pub fn context_from_actix(headers: &actix_web::http::header::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&ActixHeaders(headers))
}

/// Whether `cx` holds a valid remote or local span.
pub fn has_span(cx: &Context) -> bool {
    cx.span().span_context().is_valid()
}

/// The span of the HTTP request being served, put into the request's extensions by
/// [`trace_http`] (MCP handlers use it as the parent when `_meta` carries none).
#[derive(Clone, Debug)]
pub struct HttpServerSpan(pub Span);

/// Routes that get no server span (probes and scrapes would drown the traces).
const UNTRACED: [&str; 2] = ["/health", "/metrics"];

/// `from_fn` middleware: one server span `{METHOD} {route}` per request, continuing the
/// caller's `traceparent` (HTTP semantic conventions).
pub async fn trace_http(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if UNTRACED.contains(&req.path()) {
        return next.call(req).await;
    }
    let method = req.method().to_string();
    let route = req.match_pattern();
    let name = match &route {
        Some(r) => format!("{method} {r}"),
        None => method.clone(),
    };
    let span = tracing::info_span!(
        "http.server",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %method,
        http.route = route.as_deref().unwrap_or_default(),
        url.path = %req.path(),
        http.response.status_code = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    );
    let _ = span.set_parent(context_from_actix(req.headers()));
    req.extensions_mut().insert(HttpServerSpan(span.clone()));
    let res = next.call(req).instrument(span.clone()).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("error.type", status.to_string());
        span.record("otel.status_code", "ERROR");
    }
    res
}

#[cfg(test)]
mod tests {

    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> fmt::MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(c: &Capture) -> Vec<serde_json::Value> {
        String::from_utf8(c.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn json_lines_inside_a_span_carry_its_trace_and_span_id_even_without_export() {
        let provider = build_provider(&OtelSettings::default()).unwrap();
        let capture = Capture::default();
        let sub = subscriber_with_writer(LogFormat::Json, &provider, capture.clone());
        let (trace_id, span_id) = tracing::subscriber::with_default(sub, || {
            tracing::info!(outside = 1, "before any span");
            let span = tracing::info_span!("work");
            let _g = span.enter();
            tracing::info!(persona.id = "p1", "inside");
            let sc = span.context().span().span_context().clone();
            (sc.trace_id().to_string(), sc.span_id().to_string())
        });
        let out = lines(&capture);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].get("trace_id").is_none());
        assert_eq!(out[0]["message"], "before any span");
        assert_eq!(out[1]["message"], "inside");
        assert_eq!(out[1]["persona.id"], "p1");
        assert_eq!(out[1]["level"], "INFO");
        assert_eq!(out[1]["trace_id"], trace_id.as_str());
        assert_eq!(out[1]["span_id"], span_id.as_str());
        assert_eq!(trace_id.len(), 32);
        assert_ne!(trace_id, "0".repeat(32));
    }

    #[test]
    fn a_remote_parent_is_continued_and_reinjected() {
        let provider = build_provider(&OtelSettings::default()).unwrap();
        let sub = subscriber(LogFormat::Pretty, &provider);
        let incoming = HashMap::from([
            (
                "traceparent".to_owned(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
            ),
            ("tracestate".to_owned(), "vendor=abc,other=x:1".to_owned()),
        ]);
        let out = tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("server");
            span.set_parent(context_from_map(&incoming)).unwrap();
            trace_context_of(&span)
        });
        let tp = &out["traceparent"];
        assert!(
            tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "{tp}"
        );
        assert!(!tp.contains("b7ad6b7169203331"), "a new span id: {tp}");
        // The caller's vendor state travels on unchanged, in order.
        assert_eq!(
            out.get("tracestate").map(String::as_str),
            Some("vendor=abc,other=x:1"),
            "{out:?}"
        );
        assert!(!has_span(&context_from_map(&HashMap::new())));
    }

    #[test]
    fn settings_follow_the_standard_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let off = OtelSettings::from_lookup("svc", env(&[]));
        assert!(!off.export);
        assert_eq!(off.endpoint, None);
        assert!(off.headers.is_empty());
        assert_eq!(off.service_name.as_deref(), Some("svc"));
        assert_eq!(off.genai, GenAiOptions::default());

        let on = OtelSettings::from_lookup(
            "svc",
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Basic%20abc, x-scope-orgid = t%2C1 ,broken=%zz,empty=",
                ),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment=dev, service.name=x",
                ),
                ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true"),
                (
                    "OTEL_SEMCONV_STABILITY_OPT_IN",
                    "http,gen_ai_latest_experimental",
                ),
            ]),
        );
        assert!(on.export);
        assert_eq!(
            on.endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            on.headers,
            HashMap::from([
                ("authorization".to_owned(), "Basic abc".to_owned()),
                ("x-scope-orgid".to_owned(), "t,1".to_owned()),
                ("broken".to_owned(), "%zz".to_owned()),
            ])
        );
        assert_eq!(on.service_name, None, "the resource attributes name it");
        assert!(on.genai.capture_content && on.genai.latest_experimental);

        let traces_only = OtelSettings::from_lookup(
            "svc",
            env(&[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/custom"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-general=1"),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-traces=2"),
                ("OTEL_SERVICE_NAME", "named"),
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=loses"),
            ]),
        );
        assert!(traces_only.export);
        assert_eq!(
            traces_only.endpoint.as_deref(),
            Some("http://c/custom"),
            "the per-signal URL is used as given"
        );
        assert_eq!(
            traces_only.headers,
            HashMap::from([("x-traces".to_owned(), "2".to_owned())])
        );
        assert_eq!(traces_only.service_name.as_deref(), Some("named"));

        let disabled = OtelSettings::from_lookup(
            "svc",
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
                ("OTEL_SDK_DISABLED", "true"),
            ]),
        );
        assert!(!disabled.export);
    }

    /// Keeps every ended span, to look at what would be exported.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

    impl opentelemetry_sdk::trace::SpanProcessor for Recorder {
        fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}
        fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
            self.0.lock().unwrap().push(span);
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }

    #[test]
    fn the_sdks_own_events_are_logged_but_never_exported() {
        let recorder = Recorder::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(recorder.clone())
            .build();
        let capture = Capture::default();
        let sub = subscriber_with_writer(LogFormat::Json, &provider, capture.clone());
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("work");
            let _g = span.enter();
            // What the SDK emits on the caller's thread when its queue is full.
            tracing::warn!(
                target: "opentelemetry_sdk",
                name = "BatchSpanProcessor.SpanDroppingStarted",
                "Beginning to drop span messages due to full/internal errors."
            );
            tracing::warn!(target: "opentelemetry-otlp", name = "HttpClient.Oops", "exporter");
            tracing::info!("app event");
        });
        let spans = recorder.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 1);
        let events: Vec<_> = spans[0].events.iter().map(|e| e.name.to_string()).collect();
        assert_eq!(
            events,
            ["app event"],
            "only the app's own event is exported"
        );
        let out = lines(&capture);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0]["target"], "opentelemetry_sdk");
        assert_eq!(out[0]["level"], "WARN");
        assert_eq!(out[0]["name"], "BatchSpanProcessor.SpanDroppingStarted");
        assert_eq!(out[1]["target"], "opentelemetry-otlp");
    }

    #[test]
    fn an_invalid_endpoint_is_an_error_not_a_panic() {
        let s = OtelSettings::default().exporting_to("not a url at all");
        assert!(matches!(
            build_provider(&s),
            Err(TelemetryError::Exporter(_))
        ));
    }
}
