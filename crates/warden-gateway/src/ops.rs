//! The operators' listener (`ops_listen`, loopback by default): `/healthz`, `/metrics`, the
//! authority's audit checkpoints this gateway witnessed (`/audit/checkpoint`) and the
//! `/_warden` admin API, on an address of their own. On the public listener these paths are
//! ordinary paths like any other, so a client can neither read the gateway's figures nor
//! reach its admin API, whatever the network in front of it lets through.
//!
//! It must not serve anything a client needs: nothing here is on the request path, and it
//! runs on the runtime that calls it, not on the workers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use warden_listen::{Acceptor, Admitted, ConnectionLimit};

use crate::http_client::{full, Body};
use crate::Gateway;

/// Connections the ops listener holds open at once: scrapers and probes, a handful each.
const MAX_OPS_CONNECTIONS: usize = 64;

impl Gateway {
    /// Serves the ops endpoints on `listener` until `shutdown` completes (or this future is
    /// dropped), with the public listener's header bounds and at most 64 connections.
    pub async fn serve_ops(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        let mut acceptor = Acceptor::new(listener, ConnectionLimit::new(MAX_OPS_CONNECTIONS));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .max_buf_size(self.config.max_header_bytes)
            .max_headers(100);
        loop {
            let Admitted {
                stream,
                peer,
                permit,
            } = tokio::select! {
                admitted = acceptor.accept() => admitted,
                () = &mut shutdown => return Ok(()),
            };
            let gw = Arc::clone(&self);
            let connection = builder.serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(move |req: Request<Incoming>| {
                    let answer = gw.ops(&req, peer);
                    async move { Ok::<_, Infallible>(answer) }
                }),
            );
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, %peer, "ops connection closed with error");
                }
            });
        }
    }

    /// Which ops endpoint a request is for.
    fn ops(&self, req: &Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path();
        match path {
            "/healthz" => self.health(),
            "/metrics" => self.metrics(),
            "/audit/checkpoint" => self.checkpoint(),
            p if p
                .strip_prefix(crate::admin::PREFIX)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) =>
            {
                self.admin(req, p, peer)
            }
            _ => not_found(),
        }
    }
}

impl Gateway {
    /// The authority's latest audit checkpoints as this gateway heard them, one line per
    /// log: what `warden audit verify --witness URL` reads.
    fn checkpoint(&self) -> Response<Body> {
        let Some(lines) = self.revocations.checkpoints() else {
            return problem(
                StatusCode::NOT_FOUND,
                "no audit checkpoint has reached this gateway yet",
            );
        };
        let mut res = Response::new(full(lines));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }
}

fn not_found() -> Response<Body> {
    problem(
        StatusCode::NOT_FOUND,
        "the ops listener serves /healthz, /metrics, /audit/checkpoint and /_warden/",
    )
}

fn problem(status: StatusCode, detail: &str) -> Response<Body> {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or_default(),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut res = Response::new(full(serde_json::to_vec(&body).unwrap_or_default()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}
