//! An in-process OTLP/HTTP trace receiver: `POST /v1/traces` with an
//! `ExportTraceServiceRequest` (protobuf), decoded with `opentelemetry-proto` and kept in
//! memory so tests can assert on the spans a service exported, and on the headers each
//! export arrived with.
//!
//! Rules: binds 127.0.0.1 on a free port; answers every well-formed export 200 (an empty
//! `ExportTraceServiceResponse`) and anything else 400; waiting for spans uses a notifier,
//! never a sleep loop.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
};
use prost::Message;
use serde_json::Value;
use tokio::sync::Notify;

/// One received span, flattened for assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSpan {
    /// `service.name` of the resource that sent it.
    pub service: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP span kind (1 internal, 2 server, 3 client, …).
    pub kind: i32,
    pub attributes: BTreeMap<String, Value>,
    pub events: Vec<RecordedEvent>,
    /// Trace ids of the span's links.
    pub links: Vec<String>,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

/// A span event.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub name: String,
    pub attributes: BTreeMap<String, Value>,
}

impl RecordedSpan {
    /// An attribute as a string (`None` if absent or not a string).
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    /// An attribute as an integer.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }
}

fn value(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| value(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex::encode(b)),
        _ => Value::Null,
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
        .collect()
}

fn flatten(req: ExportTraceServiceRequest) -> Vec<RecordedSpan> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let resource = rs
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(RecordedSpan {
                    service: service.clone(),
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent_span_id: hex::encode(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    attributes: attributes(&s.attributes),
                    events: s
                        .events
                        .into_iter()
                        .map(|e| RecordedEvent {
                            name: e.name,
                            attributes: attributes(&e.attributes),
                        })
                        .collect(),
                    links: s.links.iter().map(|l| hex::encode(&l.trace_id)).collect(),
                    status: s.status.map_or(0, |st| st.code),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                });
            }
        }
    }
    out
}

#[derive(Default)]
struct Shared {
    spans: Mutex<Vec<RecordedSpan>>,
    exports: Mutex<u64>,
    headers: Mutex<Vec<BTreeMap<String, String>>>,
    notify: Notify,
}

/// A running receiver; stopped when dropped.
pub struct OtlpReceiver {
    shared: Arc<Shared>,
    port: u16,
    handle: actix_web::dev::ServerHandle,
}

async fn export(
    shared: web::Data<Arc<Shared>>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    match ExportTraceServiceRequest::decode(body.as_ref()) {
        Ok(req) => {
            let spans = flatten(req);
            let headers = request
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            if let Ok(mut all) = shared.headers.lock() {
                all.push(headers);
            }
            if let Ok(mut all) = shared.spans.lock() {
                all.extend(spans);
            }
            if let Ok(mut n) = shared.exports.lock() {
                *n += 1;
            }
            shared.notify.notify_waiters();
            HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .body(Vec::<u8>::new())
        }
        Err(e) => HttpResponse::BadRequest().body(format!("not an ExportTraceServiceRequest: {e}")),
    }
}

impl OtlpReceiver {
    /// Starts the receiver on the current tokio runtime.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/v1/traces", web::post().to(export))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind OTLP receiver");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            shared,
            port,
            handle,
        }
    }

    /// The full traces URL (`http://127.0.0.1:PORT/v1/traces`).
    pub fn traces_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<RecordedSpan> {
        self.shared
            .spans
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The headers of each well-formed export request so far, in arrival order (names
    /// lowercase; a repeated header keeps its last value).
    pub fn export_headers(&self) -> Vec<BTreeMap<String, String>> {
        self.shared
            .headers
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// Export requests received so far.
    pub fn exports(&self) -> u64 {
        self.shared.exports.lock().map(|n| *n).unwrap_or_default()
    }

    /// Waits until `cond` holds over the received spans (woken by each export), at most
    /// `timeout`; returns the spans either way.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&[RecordedSpan]) -> bool,
    ) -> Vec<RecordedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            let spans = self.spans();
            if cond(&spans) {
                return spans;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.spans();
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}
