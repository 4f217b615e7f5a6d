//! The accept loop: hyper HTTP/1.1 with explicit bounds on header size and count, on how
//! long a client may take to send its headers or sit idle (slow-client protection) and on
//! how many connections are open at once, around any router.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use warden_listen::{Acceptor, Admitted, ConnectionLimit};

use crate::config::Limits;

/// Serves `router` on `listener` until `shutdown` completes; then every open connection is
/// closed too, long-lived revocation streams included, so subscribers notice and reconnect.
/// At most `limits.max_connections` are open at once; the acceptor answers any more 503.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut acceptor = Acceptor::new(listener, ConnectionLimit::new(limits.max_connections));
    loop {
        let Admitted {
            stream,
            peer,
            permit,
        } = tokio::select! {
            admitted = acceptor.accept() => admitted,
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
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            // hyper starts the header timer whenever it waits for a request, the first one
            // and each after a keep-alive response: so it also ends a connection left idle.
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
