//! The accept loop: hyper HTTP/1.1 with explicit bounds on header size and count and on how
//! long a client may take to send its headers (slow-client protection), around any router.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::config::Limits;

/// Serves `router` on `listener` until `shutdown` completes; then every open connection is
/// closed too, long-lived revocation streams included, so subscribers notice and reconnect.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => {
                let _ = stop.send(true);
                return Ok(());
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                tower::Service::call(&mut router.clone(), req)
            },
        );
        let limits = limits.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes)
                .max_headers(limits.max_headers);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection closed with error");
                    }
                }
                _ = stopped.wait_for(|s| *s) => {}
            }
        });
    }
}

/// The TCP peer of a request.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);
