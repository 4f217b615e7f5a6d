//! Forward auth for proxies that keep their own routing: nginx `auth_request`, Traefik
//! ForwardAuth and Envoy ext_authz (HTTP). The original request is read from the headers of
//! the one convention the config names, then decided by the same pipeline as the proxy.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Request, Response};

use crate::config::ForwardAuth;
use crate::deny::Deny;
use crate::http_client::{full, Body};
use crate::net::{client_ip, forwarded_for};
use crate::pipeline::{next_request_id, Facts};
use crate::Gateway;

impl Gateway {
    /// Forward-auth for nginx `auth_request`, Traefik ForwardAuth and Envoy ext_authz (HTTP),
    /// in the one convention the config names (see [`ForwardAuth`]). Only trusted proxies
    /// may ask: anyone else could mint internal tokens for any route's audience. 200 carries
    /// the internal token.
    pub(crate) async fn forward_auth(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let mode = self.config.forward_auth;
        let answer = |deny: Deny| match mode {
            ForwardAuth::Nginx => deny.into_nginx_response(),
            ForwardAuth::Traefik | ForwardAuth::Envoy => deny.into_response(),
        };
        if !self
            .config
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&peer.ip()))
        {
            return answer(Deny::UntrustedCaller);
        }
        let h = req.headers();
        let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (method, uri) = match mode {
            ForwardAuth::Nginx => (header("x-original-method"), header("x-original-uri")),
            ForwardAuth::Traefik => (header("x-forwarded-method"), header("x-forwarded-uri")),
            ForwardAuth::Envoy => {
                let p = req.uri().path();
                let rest = p.strip_prefix(self.config.authz_path.as_str()).unwrap_or(p);
                (
                    Some(req.method().as_str().to_owned()),
                    Some(rest.to_owned()),
                )
            }
        };
        let (Some(method), Some(uri)) = (method, uri) else {
            return answer(Deny::BadPath(
                "the original method and URI are missing".into(),
            ));
        };
        let method = method.to_ascii_uppercase();
        let raw = uri.split('?').next().unwrap_or_default();
        let path = match crate::path::normalize(if raw.is_empty() { "/" } else { raw }) {
            Ok(p) => p,
            Err(reason) => return answer(Deny::BadPath(reason)),
        };
        let client = client_ip(peer.ip(), forwarded_for(h), &self.config.trusted_proxies);
        let facts = Facts {
            method: &method,
            path: &path,
            raw_path: if raw.is_empty() { "/" } else { raw },
            headers: h,
            client_ip: client,
            request_id: next_request_id(),
        };
        match self.decide(&facts).await {
            Ok(allowed) => {
                let mut res = Response::new(full(""));
                let v = allowed.internal_token;
                res.headers_mut().insert(AUTHORIZATION, v.clone());
                res.headers_mut().insert("x-warden-authorization", v);
                if let Ok(v) = HeaderValue::from_str(&allowed.verified.claims.sub) {
                    res.headers_mut().insert("x-warden-subject", v);
                }
                res
            }
            Err(deny) => answer(deny),
        }
    }
}
