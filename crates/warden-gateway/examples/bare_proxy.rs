//! The gateway's HTTP stack with nothing of Warden in it: a single-threaded event loop, as
//! each gateway worker runs, accepting, parsing, forwarding through the gateway's upstream
//! pool, answering. `bench/gateway.sh` runs it to split the gateway's cost into what the
//! stack (tokio + hyper) costs and what verification, policy, audit and the token swap add.
//!
//!     cargo run --release -p warden-gateway --example bare_proxy -- LISTEN UPSTREAM
//!     (e.g. 127.0.0.1:8081 127.0.0.1:8080)

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt as _;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, HOST};
use hyper::http::uri::Authority;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use warden_gateway::upstream::Upstreams;

type Body = BoxBody<Bytes, hyper::Error>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: bare_proxy LISTEN UPSTREAM_HOST:PORT".into());
    };
    let authority: Authority = upstream.parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, authority))
}

async fn serve(listen: String, authority: Authority) -> Result<(), Box<dyn std::error::Error>> {
    let pool = Upstreams::new(256);
    let host = HeaderValue::from_str(authority.as_str())?;
    let listener = TcpListener::bind(&listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (pool, authority, host) = (Arc::clone(&pool), authority.clone(), host.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (pool, authority, host) = (Arc::clone(&pool), authority.clone(), host.clone());
                async move { Ok::<_, Infallible>(forward(&pool, &authority, host, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    pool: &Arc<Upstreams>,
    authority: &Authority,
    host: HeaderValue,
    req: Request<Incoming>,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
    parts.headers.insert(HOST, host);
    match pool
        .send(authority, Request::from_parts(parts, body.boxed()))
        .await
    {
        Ok(res) => res,
        Err(_) => {
            let mut res = Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed(),
            );
            *res.status_mut() = StatusCode::BAD_GATEWAY;
            res
        }
    }
}
