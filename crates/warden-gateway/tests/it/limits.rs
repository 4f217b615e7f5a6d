//! Bounds a hostile client cannot talk past: header size, slow headers.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{eventually, metric, Env, Options};

#[tokio::test]
async fn oversized_headers_get_431() {
    let (env, _) = Env::start(Options::default()).await;
    let res = env
        .http
        .get(format!("{}/crm/a", env.gateway_url))
        .header("x-pad", "p".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 431);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let (env, _) = Env::start(Options {
        extra_toml: "header_read_timeout_ms = 300",
        ..Options::default()
    })
    .await;
    let addr = env.gateway_url.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /crm/a HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // The server must close the connection by itself; the 5 s bound only stops a hung test.
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// One request over a fresh connection with `Connection: close`; the whole answer.
async fn request(addr: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 5 s");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_disconnected() {
    let (env, _) = Env::start(Options {
        extra_toml: "header_read_timeout_ms = 300",
        ..Options::default()
    })
    .await;
    let addr = env.gateway_url.trim_start_matches("http://").to_owned();
    for request in [&b""[..], b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"] {
        // Before any request, and idle after a keep-alive answer.
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "connection still open after 5 s");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(buf.is_empty(), request.is_empty());
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_get_503_and_are_counted() {
    let (env, _) = Env::start(Options {
        extra_toml: "max_connections = 3",
        ..Options::default()
    })
    .await;
    let addr = env.gateway_url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let answer = request(&addr, "/crm/a").await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    // The ops listener has a cap of its own: the figures are there while clients are not.
    let metrics = env.metrics().await;
    assert_eq!(metric(&metrics, "warden_gateway_connections_max"), 3.0);
    assert_eq!(metric(&metrics, "warden_gateway_connections_open"), 3.0);
    assert!(metric(&metrics, "warden_gateway_connections_refused_total") >= 1.0);

    held.pop();
    // The place is free once a worker has seen that connection close.
    assert!(eventually(|| env.gateway.connections.open() == 2).await);
    let answer = request(&addr, "/crm/a").await;
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
}
