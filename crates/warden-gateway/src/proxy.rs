//! Forwarding an allowed request: the upstream never sees the external token, hop-by-hop
//! headers, or identity headers a client could have forged; it gets the internal token and
//! the standard forwarding headers.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, HOST, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, UPGRADE,
};
use hyper::http::uri::PathAndQuery;
use hyper::{HeaderMap, Request, Response, Uri};

use crate::config::Route;
use crate::deny::Deny;
use crate::http_client::Body;
use crate::net::forwarded_for;
use crate::upstream::Upstreams;
use crate::Gateway;

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction. Names, not
/// strings: removing by a string parses it on every request.
const HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    UPGRADE,
];

/// Identity headers some upstreams trust; only the gateway may set identity, so any a client
/// sends are removed. A DPoP proof goes too: it belongs with the external token, which the
/// upstream never sees.
const SPOOFABLE_PREFIXES: [&str; 5] = [
    "x-warden-",
    "x-auth-request-",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-consumer-",
];
const SPOOFABLE: [&str; 7] = [
    "dpop",
    "x-remote-user",
    "remote-user",
    "x-user",
    "x-user-id",
    "x-client-id",
    "x-forwarded-preferred-username",
];

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

fn strip_identity(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            SPOOFABLE.contains(&k) || SPOOFABLE_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    headers.remove(AUTHORIZATION);
}

/// Where a request came from, as the upstream is told.
pub(crate) struct Origin<'a> {
    /// The client's address (from a trusted proxy's `X-Forwarded-For`, else the peer).
    pub client: IpAddr,
    /// The address of the connection's other end.
    pub peer: IpAddr,
    pub request_id: &'a str,
}

impl Gateway {
    pub(crate) async fn forward(
        &self,
        upstream: &Arc<Upstreams>,
        req: Request<Incoming>,
        route: &Route,
        internal_token: HeaderValue,
        origin: &Origin<'_>,
    ) -> Result<Response<Body>, Deny> {
        let Origin {
            client,
            peer,
            request_id,
        } = *origin;
        let (mut parts, body) = req.into_parts();
        let up = &route.upstream;
        // Origin-form: the upstream is named by the connection and `Host`.
        parts.uri = match (up.base_path.as_str(), parts.uri.path_and_query()) {
            ("", Some(pq)) => Uri::from(pq.clone()),
            (base, pq) => Uri::try_from(format!("{base}{}", pq.map_or("/", PathAndQuery::as_str)))
                .map_err(|_| Deny::UpstreamUnreachable("bad upstream URI".into()))?,
        };
        let original_host = parts.headers.get(HOST).cloned();
        let h = &mut parts.headers;
        strip_hop_by_hop(h);
        strip_identity(h);
        h.insert(AUTHORIZATION, internal_token);
        // A trusted proxy's chain is extended by the hop we saw; anyone else's is replaced.
        let peer_trusted = self
            .config
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&peer));
        // Read only for a trusted peer: anyone else's lines are dropped unread.
        let prev = peer_trusted
            .then(|| forwarded_for(h).collect::<Option<Vec<&str>>>())
            .flatten()
            .filter(|prev| !prev.is_empty());
        let forwarded_for = match prev {
            Some(prev) => format!("{}, {peer}", prev.join(", ")),
            None => client.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
            h.insert("x-forwarded-for", v);
        }
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        if let Some(host) = original_host {
            h.insert("x-forwarded-host", host);
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-request-id", v);
        }
        h.insert(HOST, up.host.clone());
        let client_failed = Arc::new(AtomicBool::new(false));
        let body = Watched {
            body,
            failed: Arc::clone(&client_failed),
        };
        let upstream_req = Request::from_parts(parts, body.boxed());
        // The caller bounds this by the upstream and request timeouts (one timer for both).
        let res = upstream
            .send(&up.authority, upstream_req)
            .await
            .map_err(|e| {
                // hyper says only that the upstream request failed; when it was the client's
                // body that broke, the fault is the client's, not the upstream's.
                if client_failed.load(Ordering::Relaxed) {
                    Deny::IncompleteBody
                } else {
                    Deny::UpstreamUnreachable(e.to_string())
                }
            })?;
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }
}

/// The client's request body on its way upstream, noting whether reading it from the client
/// failed (the client closed the connection before sending all it declared).
struct Watched {
    body: Incoming,
    failed: Arc<AtomicBool>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.failed.store(true, Ordering::Relaxed);
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
