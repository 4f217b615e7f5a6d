//! Bounds a hostile client cannot talk past: header size, slow headers.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{Env, Options};

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
