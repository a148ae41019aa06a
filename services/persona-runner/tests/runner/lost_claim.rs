//! A claim whose answer is lost after auth-internal committed it is not sent again:
//! a proxy in front of the real auth-internal forwards each request, reads the whole
//! answer (the claim is committed by then) and closes the runner's connection without
//! passing the answer on.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

use persona_runner::api::PersonaApi;
use runner_kit::{ClientError, InternalClient, RetryPolicy};
use secrecy::SecretString;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::helpers::*;

/// Reads one HTTP message (headers, then `Content-Length` bytes) from `sock`.
async fn read_message(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(buf);
            }
        }
    }
}

/// A proxy to `upstream` that loses every answer; returns its URL and the number of
/// requests it forwarded (each one answered by auth-internal).
async fn answer_losing_proxy(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let forwarded = Arc::new(AtomicUsize::new(0));
    let count = forwarded.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let Some(request) = read_message(&mut client).await else {
                    return;
                };
                let mut server = TcpStream::connect(&upstream).await.unwrap();
                server.write_all(&request).await.unwrap();
                // The whole answer arrived: auth-internal has committed the claim.
                let answer = read_message(&mut server).await;
                assert!(answer.is_some(), "auth-internal answered");
                count.fetch_add(1, Ordering::SeqCst);
                drop(client);
            });
        }
    });
    (url, forwarded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_is_lost_reaches_auth_internal_once() {
    let auth = Auth::spawn().await;
    auth.seed("lost", 4, "de").await;
    let upstream = auth.base.trim_start_matches("http://").to_owned();
    let (proxy, forwarded) = answer_losing_proxy(upstream).await;
    let api = PersonaApi::new(
        InternalClient::new(
            reqwest::Client::new(),
            &proxy,
            Some(SERVICE_KEY),
            RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                timeout: Duration::from_secs(10),
                budget: Duration::ZERO,
            },
        ),
        SecretString::from(SEED_SECRET),
    );

    let err = api.claim("runner-a", 2, 600).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    assert_eq!(
        forwarded.load(Ordering::SeqCst),
        1,
        "exactly one claim reached auth-internal"
    );
    // One batch of two is leased (to the runner that never heard of it, until the lease
    // expires); a retry would have leased the other two as well.
    assert_eq!(
        auth.sql_count("SELECT count(*) AS n FROM personas WHERE lease_owner IS NOT NULL")
            .await,
        2
    );

    // The same loss on an idempotent read is retried to the limit.
    let before = forwarded.load(Ordering::SeqCst);
    let id = uuid::Uuid::new_v4();
    assert!(api.profile(id).await.is_err());
    assert_eq!(forwarded.load(Ordering::SeqCst) - before, 4);
}
