//! A collector that is gone or refuses the credentials shows up in the service's own log:
//! the SDK's export error (feature `internal-logs`) reaches the log through `tracing`.
//!
//! Its own test binary: the SDK reports from the batch processor's thread, which only the
//! global subscriber sees, and this is the one test here that installs it.

#![expect(
    clippy::unwrap_used,
    reason = "the fake collector's set-up outside the #[test] fn panics on a broken set-up"
)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use service_kit::telemetry::{LogFormat, OtelSettings, build_provider, subscriber_with_writer};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A collector that answers every export `401 Unauthorized` (wrong `authorization` header).
fn rejecting_collector() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    format!("http://{addr}/v1/traces")
}

#[test]
fn telemetry_export_to_a_dead_or_refusing_collector_logs_the_error() {
    let capture = Capture::default();
    let logging = build_provider(&OtelSettings::default()).unwrap();
    let writer = capture.clone();
    tracing::subscriber::set_global_default(subscriber_with_writer(
        LogFormat::Json,
        &logging,
        move || writer.clone(),
    ))
    .unwrap();

    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1/traces", l.local_addr().unwrap())
    };
    for (url, what) in [(closed, "dead"), (rejecting_collector(), "401")] {
        let mut settings = OtelSettings::from_lookup("svc", |_| None).exporting_to(&url);
        settings.timeout = Some(Duration::from_secs(5));
        settings.batch_delay = Some(Duration::from_secs(3600));
        let provider = build_provider(&settings).unwrap();
        provider.tracer("probe").start("probe").end();
        assert!(provider.force_flush().is_err(), "{what}: the export failed");
        let _ = provider.shutdown();

        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let errors: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|l: &serde_json::Value| l["name"] == "BatchSpanProcessor.ExportError")
            .collect();
        assert!(!errors.is_empty(), "{what}: no export error logged: {text}");
        let last = errors.last().unwrap();
        assert_eq!(last["level"], "ERROR", "{last}");
        assert_eq!(last["target"], "opentelemetry_sdk", "{last}");
        if what == "401" {
            assert!(
                last["error"].as_str().is_some_and(|e| e.contains("401")),
                "the status is in the message: {last}"
            );
        }
        capture.0.lock().unwrap().clear();
    }
}
