//! Which handler a request on the public listener goes to — forward auth or the reverse
//! proxy — and, for the proxy, the path normalized, the client address found, the pipeline
//! asked, and the allowed request forwarded. `/healthz`, `/metrics` and `/_warden` are not
//! served here but on the ops listener ([`crate::ops`]): here they are paths like any other.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::deny::Deny;
use crate::http_client::Body;
use crate::net::{client_ip, forwarded_for};
use crate::pipeline::{next_request_id, Facts};
use crate::proxy::Origin;
use crate::upstream::Upstreams;
use crate::Gateway;

impl Gateway {
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        upstream: &Arc<Upstreams>,
    ) -> Response<Body> {
        let raw = req.uri().path().to_owned();
        let authz = &self.config.authz_path;
        if raw == *authz
            || raw
                .strip_prefix(authz.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        {
            return self.forward_auth(&req, peer).await;
        }
        let path = match crate::path::normalize(&raw) {
            Ok(p) => p,
            Err(reason) => return Deny::BadPath(reason).into_response(),
        };
        // The upstream gets the path that was decided on, not the raw one.
        if path != raw {
            let query = req
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            match format!("{path}{query}").parse() {
                Ok(uri) => *req.uri_mut() = uri,
                Err(_) => {
                    return Deny::BadPath("the path cannot be normalized".into()).into_response()
                }
            }
        }
        let client = client_ip(
            peer.ip(),
            forwarded_for(req.headers()),
            &self.config.trusted_proxies,
        );
        let facts = Facts {
            method: req.method().as_str(),
            path: &path,
            raw_path: &raw,
            headers: req.headers(),
            client_ip: client,
            request_id: next_request_id(),
        };
        let request_id = facts.request_id.clone();
        match self.decide(&facts).await {
            Ok(allowed) => {
                let route = allowed.route;
                let token = allowed.internal_token;
                // Until the upstream's answer head: both bounds are 504, so one timer.
                let limit = self
                    .config
                    .request_timeout
                    .min(self.config.upstream_timeout);
                let res = tokio::time::timeout(
                    limit,
                    self.forward(
                        upstream,
                        req,
                        route,
                        token,
                        &Origin {
                            client,
                            peer: peer.ip(),
                            request_id: &request_id,
                        },
                    ),
                )
                .await
                .unwrap_or(Err(Deny::UpstreamTimeout));
                match res {
                    Ok(res) => res,
                    Err(deny) => {
                        // The decision was allowed and audited; the forward failure is logged,
                        // as the client's fault or the upstream's.
                        if matches!(deny, Deny::IncompleteBody) {
                            tracing::info!(request_id = %request_id, route = %route.prefix, reason = %deny.reason(), "client cut its request body short");
                        } else {
                            tracing::warn!(request_id = %request_id, route = %route.prefix, reason = %deny.reason(), "upstream failure");
                        }
                        deny.into_response()
                    }
                }
            }
            Err(deny) => deny.into_response(),
        }
    }
}
