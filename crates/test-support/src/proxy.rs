//! A proxy in front of a real HTTP/1 server that loses the answers: each request is
//! forwarded whole, the whole answer is read (so the server has done the work), and
//! then the client's connection is closed ([`Loss::Close`]) or held open without a
//! byte until the client gives up ([`Loss::Hold`]). The client cannot tell whether
//! its request landed — the case a retry rule for non-idempotent calls is tested on.
//!
//! Rules:
//! - One request per connection, HTTP/1 with `Content-Length` bodies (what reqwest
//!   and actix-web send here); a message without `Content-Length` ends with its
//!   headers.
//! - [`LosingProxy::forwarded`] counts the requests that reached the upstream and
//!   were answered by it (in full), i.e. the work done.
//! - [`LosingProxy::alone`] has no upstream: every whole request read counts as done,
//!   a server that does the work and loses every answer.
//! - The proxy stops accepting when it is dropped.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// What happens to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Close the client's connection without a byte (the client sees a transport error).
    Close,
    /// Keep the client's connection open and silent until the client closes it
    /// (the client sees its own timeout).
    Hold,
}

/// A running proxy; see the module docs.
pub struct LosingProxy {
    url: String,
    forwarded: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl LosingProxy {
    /// A proxy to `upstream` (`http://host:port` or `host:port`).
    pub async fn to(upstream: &str, loss: Loss) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Self::start(Some(upstream), loss).await
    }

    /// No upstream: each request read in full counts as done, then its answer is lost.
    pub async fn alone(loss: Loss) -> Self {
        Self::start(None, loss).await
    }

    async fn start(upstream: Option<String>, loss: Loss) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("proxy: bind: {e}"));
        let url = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}"),
            Err(e) => panic!("proxy: local address: {e}"),
        };
        let forwarded = Arc::new(AtomicUsize::new(0));
        let count = forwarded.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(exchange(client, upstream.clone(), loss, count.clone()));
            }
        });
        Self {
            url,
            forwarded,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`: point the client here.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests done so far (answered by the upstream, or read in full when alone).
    pub fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for LosingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn exchange(
    mut client: TcpStream,
    upstream: Option<String>,
    loss: Loss,
    count: Arc<AtomicUsize>,
) {
    let Some(request) = read_message(&mut client).await else {
        return;
    };
    if let Some(upstream) = upstream {
        let mut server = TcpStream::connect(&upstream)
            .await
            .unwrap_or_else(|e| panic!("proxy: connect to {upstream}: {e}"));
        if let Err(e) = server.write_all(&request).await {
            panic!("proxy: forward to {upstream}: {e}");
        }
        // The whole answer arrived: the upstream has done the work.
        assert!(
            read_message(&mut server).await.is_some(),
            "proxy: {upstream} closed without an answer"
        );
    }
    count.fetch_add(1, Ordering::SeqCst);
    if loss == Loss::Hold {
        // Until the client gives up and closes (read returns 0 or fails).
        let mut rest = [0u8; 1024];
        while matches!(client.read(&mut rest).await, Ok(n) if n > 0) {}
    }
    // Dropping `client` closes it: the answer is lost.
}

/// Reads one HTTP/1 message from `sock`: its headers, then `Content-Length` bytes.
/// `None` if the peer closes first.
pub async fn read_message(sock: &mut TcpStream) -> Option<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A tiny upstream that answers every request `200` with a body, counting them.
    async fn upstream() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    if read_message(&mut sock).await.is_some() {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                    }
                });
            }
        });
        (url, seen)
    }

    async fn post(url: &str, timeout: Duration) -> std::io::Result<Vec<u8>> {
        let addr = url.trim_start_matches("http://");
        let mut sock = TcpStream::connect(addr).await?;
        sock.write_all(b"POST /claim HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
            .await?;
        let mut answer = Vec::new();
        match tokio::time::timeout(timeout, sock.read_to_end(&mut answer)).await {
            Ok(r) => r.map(|_| answer),
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    #[tokio::test]
    async fn the_upstream_does_the_work_and_the_client_gets_nothing() {
        let (up, seen) = upstream().await;
        let proxy = LosingProxy::to(&up, Loss::Close).await;
        let answer = post(proxy.url(), Duration::from_secs(5)).await.unwrap();
        assert!(answer.is_empty(), "the answer was passed on: {answer:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert_eq!(proxy.forwarded(), 1);
    }

    #[tokio::test]
    async fn held_answers_end_in_the_clients_timeout() {
        let proxy = LosingProxy::alone(Loss::Hold).await;
        let err = post(proxy.url(), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(proxy.forwarded(), 1);
    }
}
