//! Socket options for accepted HTTP connections.
//!
//! Rules: every service that serves HTTP passes [`on_connect`] to
//! `HttpServer::on_connect`, so each accepted TCP socket gets `TCP_NODELAY`.
//! Without it, Nagle's algorithm holds a small second segment (an SSE event
//! after the response headers, a chunk after the head) until the peer's
//! delayed ACK, which costs ~40 ms per MCP tool call on loopback.

use std::any::Any;

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;

/// The `HttpServer::on_connect` hook: turns on `TCP_NODELAY` for a plain TCP
/// connection. Other connection types (TLS, Unix sockets) are left alone.
pub fn on_connect(conn: &dyn Any, _ext: &mut Extensions) {
    if let Some(stream) = conn.downcast_ref::<TcpStream>()
        && let Err(error) = stream.set_nodelay(true)
    {
        tracing::warn!(%error, "could not set TCP_NODELAY on an accepted connection");
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[tokio::test]
    async fn sets_nodelay_on_a_tcp_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (server_side, _) = listener.accept().await.unwrap();
        let _client = client.await.unwrap();
        assert!(!server_side.nodelay().unwrap());
        on_connect(&server_side, &mut Extensions::new());
        assert!(server_side.nodelay().unwrap());
    }

    #[test]
    fn ignores_other_connection_types() {
        on_connect(&42u32, &mut Extensions::new());
    }
}
