//! Connections as a hostile client holds them: one that never sends a request, one left
//! idle after an answer, and one too many.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::Harness;

/// Sends `request` (maybe nothing) and reads until the server closes; the answer and how
/// long the server took to close. The 5 s bound only stops a hung test.
async fn until_closed(addr: &str, request: &[u8]) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 5 s");
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn an_idle_connection_is_closed_before_its_first_request_and_between_requests() {
    let h =
        Harness::start_with(|c| c.limits.header_read_timeout = Duration::from_millis(300)).await;
    let addr = h.url.trim_start_matches("http://");
    let (answer, took) = until_closed(addr, b"").await;
    assert!(answer.is_empty(), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let keep_alive = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n";
    let (answer, took) = until_closed(addr, keep_alive).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_connection_beyond_the_cap_is_answered_503_and_closed() {
    let h = Harness::start_with(|c| c.limits.max_connections = 2).await;
    let addr = h.url.trim_start_matches("http://");
    let _held = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    let close = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (answer, _) = until_closed(addr, close).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
}
