//! Keep-alive HTTP/1.1 connections to upstreams, one pool per worker thread.
//!
//! A connection goes back to its pool when the upstream's answer has been read to its end,
//! so the next request finds it ready without waiting; one whose answer is abandoned
//! midway (the client went away) is not reused, because HTTP/1.1 cannot skip the rest.
//! A request that a pooled connection could not take (the upstream closed it while it was
//! idle, which hyper reports before writing a byte) is retried on the next one, then on a
//! new connection: it was never sent, so no upstream sees it twice.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::http::uri::Authority;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::http_client::Body;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {0}: {1}")]
    Connect(Authority, std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

type Idle = HashMap<Authority, Vec<SendRequest<Body>>>;

/// Idle connections by upstream authority. Every request that leaves a worker thread for
/// an upstream goes through its pool.
pub struct Upstreams {
    idle: Mutex<Idle>,
    max_idle_per_host: usize,
}

impl Upstreams {
    pub fn new(max_idle_per_host: usize) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::new()),
            max_idle_per_host,
        })
    }

    /// Sends `req` (origin-form URI, `Host` set) to `authority` over a pooled connection,
    /// or a new one.
    pub async fn send(
        self: &Arc<Self>,
        authority: &Authority,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, UpstreamError> {
        while let Some(mut sender) = self.checkout(authority) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(res) => return Ok(self.lend(authority, sender, res)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = connect(authority).await?;
        let res = sender.send_request(req).await?;
        Ok(self.lend(authority, sender, res))
    }

    /// Idle connections held (for health figures).
    pub fn idle(&self) -> usize {
        crate::lock(&self.idle).values().map(Vec::len).sum()
    }

    fn checkout(&self, authority: &Authority) -> Option<SendRequest<Body>> {
        let mut idle = crate::lock(&self.idle);
        let list = idle.get_mut(authority)?;
        while let Some(sender) = list.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, authority: &Authority, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = crate::lock(&self.idle);
        let list = idle.entry(authority.clone()).or_default();
        if list.len() < self.max_idle_per_host {
            list.push(sender);
        }
    }

    /// The response, holding its connection until its body has been read to the end.
    fn lend(
        self: &Arc<Self>,
        authority: &Authority,
        sender: SendRequest<Body>,
        res: Response<Incoming>,
    ) -> Response<Body> {
        use http_body_util::BodyExt as _;
        res.map(|body| {
            let mut lent = Lent {
                body,
                loan: Some(Loan {
                    pool: Arc::downgrade(self),
                    authority: authority.clone(),
                    sender,
                }),
            };
            if lent.body.is_end_stream() {
                lent.give_back();
            }
            lent.boxed()
        })
    }
}

async fn connect(authority: &Authority) -> Result<SendRequest<Body>, UpstreamError> {
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| UpstreamError::Connect(authority.clone(), e))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "upstream connection closed with error");
        }
    });
    Ok(sender)
}

struct Loan {
    pool: Weak<Upstreams>,
    authority: Authority,
    sender: SendRequest<Body>,
}

/// An upstream response body that returns its connection to the pool at its end.
struct Lent {
    body: Incoming,
    loan: Option<Loan>,
}

impl Lent {
    fn give_back(&mut self) {
        if let Some(loan) = self.loan.take() {
            if let Some(pool) = loan.pool.upgrade() {
                pool.checkin(&loan.authority, loan.sender);
            }
        }
    }
}

impl hyper::body::Body for Lent {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.loan = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;
    use crate::http_client::full;

    fn get(authority: &Authority) -> Request<Body> {
        Request::builder()
            .uri("/x")
            .header(hyper::header::HOST, authority.as_str())
            .body(full(Bytes::new()))
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// The body of a GET through `pool`, read to the end.
    async fn fetch(pool: &Arc<Upstreams>, authority: &Authority) -> Vec<u8> {
        let res = pool.send(authority, get(authority)).await;
        body_of(res.unwrap_or_else(|e| unreachable!("{e}"))).await
    }

    async fn body_of(res: Response<Body>) -> Vec<u8> {
        let collected = res.into_body().collect().await;
        collected
            .unwrap_or_else(|e| unreachable!("{e}"))
            .to_bytes()
            .to_vec()
    }

    async fn listen() -> (TcpListener, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| unreachable!("{e}"));
        (listener, addr)
    }

    /// An upstream that answers `body` to every request on a connection until the client
    /// closes it, counting connections; `close_after_each` closes after every answer and
    /// reports each close.
    async fn upstream(
        body: Vec<u8>,
        close_after_each: bool,
    ) -> (
        Authority,
        Arc<AtomicUsize>,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    ) {
        let (listener, addr) = listen().await;
        let connections = Arc::new(AtomicUsize::new(0));
        let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                let closed_tx = closed_tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                                body.len()
                            );
                            if stream.write_all(head.as_bytes()).await.is_err()
                                || stream.write_all(&body).await.is_err()
                            {
                                return;
                            }
                            if close_after_each {
                                drop(stream);
                                let _ = closed_tx.send(());
                                return;
                            }
                        }
                    }
                });
            }
        });
        let authority =
            Authority::try_from(addr.to_string().as_str()).unwrap_or_else(|e| unreachable!("{e}"));
        (authority, connections, closed)
    }

    #[tokio::test]
    async fn answers_read_to_the_end_leave_their_connection_for_the_next_request() {
        let (authority, connections, _) = upstream(b"ok".to_vec(), false).await;
        let pool = Upstreams::new(8);
        for _ in 0..20 {
            assert_eq!(fetch(&pool, &authority).await, b"ok");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle(), 1);
    }

    #[tokio::test]
    async fn an_upstream_closing_idle_connections_costs_no_request() {
        let (authority, connections, mut closed) = upstream(b"ok".to_vec(), true).await;
        let pool = Upstreams::new(8);
        for _ in 0..20 {
            assert_eq!(fetch(&pool, &authority).await, b"ok");
            // The pooled connection is dead before the next request is sent.
            assert!(closed.recv().await.is_some());
        }
        assert_eq!(connections.load(Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn an_abandoned_answer_never_leaks_into_the_next_one() {
        let big = vec![b'a'; 1 << 20];
        let (authority, connections, _) = upstream(big.clone(), false).await;
        let pool = Upstreams::new(8);
        let res = pool
            .send(&authority, get(&authority))
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut body = res.into_body();
        let first = body.frame().await;
        assert!(matches!(first, Some(Ok(_))));
        drop(body);
        assert_eq!(pool.idle(), 0, "a half-read connection is not pooled");
        assert_eq!(fetch(&pool, &authority).await, big);
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_an_error_naming_it() {
        let (listener, addr) = listen().await;
        drop(listener);
        let authority =
            Authority::try_from(addr.to_string().as_str()).unwrap_or_else(|e| unreachable!("{e}"));
        let err = Upstreams::new(8)
            .send(&authority, get(&authority))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&addr.to_string()), "{err}");
    }
}
