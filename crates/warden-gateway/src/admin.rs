//! The gateway's own admin surface, for behaviour restrictions: list them, lift them. It is
//! served on the ops listener only ([`crate::ops`]).
//!
//! `GET /_warden/restrictions` lists every restriction in force; `DELETE
//! /_warden/restrictions/{identity}` lifts all of an identity's (a quarantined token stays
//! revoked at the authority). Both need the admin token the gateway already holds, compared
//! in constant time by its SHA-256, as the authority does; every lift is audited.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use warden_core::claims::AccessClaims;
use warden_core::crypto::{constant_time_eq, sha256};
use warden_core::jws::UnverifiedToken;
use warden_core::Validation;

use crate::audit::AuditEvent;
use crate::http_client::{full, Body};
use crate::Gateway;

/// Where the admin surface lives on the ops listener.
pub const PREFIX: &str = "/_warden";
const RESTRICTIONS: &str = "/_warden/restrictions";
/// Longest identity accepted in a path (`sub~actor`).
const MAX_IDENTITY: usize = 512;

/// Why an admin request was refused.
#[derive(Debug)]
enum AdminError {
    Unauthenticated,
    NotFound(String),
    MethodNotAllowed(&'static str),
    BadIdentity(String),
}

impl Gateway {
    /// The break-glass token, when this gateway holds it, or an admin token of the
    /// authority's (`aud` exactly `<issuer>/admin/v1`, `warden:admin` read literally, live,
    /// not delegated, not bound), verified here against the published keys: a gateway
    /// running on its own credentials is administered the way the authority is.
    fn admits(&self, token: &str, now: i64) -> bool {
        if self
            .admin_token_hash
            .is_some_and(|h| constant_time_eq(&sha256(token.as_bytes()), &h))
        {
            return true;
        }
        let audience = warden_api::scope::admin_audience(&self.config.issuer);
        let validation = Validation::access_token(&self.config.issuer, vec![audience]);
        let Ok(parsed) = UnverifiedToken::parse(token) else {
            return false;
        };
        // Gateways publish their internal-token keys in the same set; none of them speaks
        // for the authority.
        if parsed
            .header()
            .kid
            .as_deref()
            .is_none_or(|kid| kid.starts_with("gw-"))
        {
            return false;
        }
        let Ok(verified) = parsed.verify_with::<AccessClaims>(&self.jwks.keys(), &validation, now)
        else {
            return false;
        };
        let claims = verified.claims();
        warden_api::admin_token::check(claims).is_ok()
            && claims
                .scope
                .split(' ')
                .any(|s| s == warden_api::scope::ADMIN)
            && self.revocations.check(claims).is_ok()
    }
}

impl AdminError {
    fn into_response(self) -> Response<Body> {
        let (status, detail) = match &self {
            Self::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "the gateway's admin token is required".to_owned(),
            ),
            Self::NotFound(d) | Self::BadIdentity(d) => (
                if matches!(self, Self::NotFound(_)) {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_REQUEST
                },
                d.clone(),
            ),
            Self::MethodNotAllowed(allow) => (
                StatusCode::METHOD_NOT_ALLOWED,
                format!("only {allow} is allowed here"),
            ),
        };
        let mut res = problem(status, &detail);
        match self {
            Self::Unauthenticated => {
                res.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"warden-admin\""),
                );
            }
            Self::MethodNotAllowed(allow) => {
                res.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        res
    }
}

impl Gateway {
    pub(crate) fn admin(
        &self,
        req: &Request<Incoming>,
        raw: &str,
        peer: SocketAddr,
    ) -> Response<Body> {
        match self.admin_inner(req, raw, peer) {
            Ok(res) => res,
            Err(e) => e.into_response(),
        }
    }

    fn admin_inner(
        &self,
        req: &Request<Incoming>,
        raw: &str,
        peer: SocketAddr,
    ) -> Result<Response<Body>, AdminError> {
        // Authenticate before looking at the path, so probing learns nothing.
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let now = self.now();
        if !presented.is_some_and(|t| self.admits(t, now)) {
            return Err(AdminError::Unauthenticated);
        }
        if raw == RESTRICTIONS {
            if req.method() != Method::GET {
                return Err(AdminError::MethodNotAllowed("GET"));
            }
            let list = self
                .behaviour
                .as_ref()
                .map(|b| b.restrictions(now))
                .unwrap_or_default();
            return Ok(ok_json(&json!({
                "enabled": self.behaviour.is_some(),
                "restrictions": list,
            })));
        }
        let Some(identity) = raw.strip_prefix(&format!("{RESTRICTIONS}/")) else {
            return Err(AdminError::NotFound(format!(
                "no admin endpoint at `{raw}`"
            )));
        };
        if req.method() != Method::DELETE {
            return Err(AdminError::MethodNotAllowed("DELETE"));
        }
        if identity.is_empty() || identity.len() > MAX_IDENTITY || identity.contains('/') {
            return Err(AdminError::BadIdentity(format!(
                "the identity must be 1 to {MAX_IDENTITY} characters without `/`"
            )));
        }
        let lifted = self
            .behaviour
            .as_ref()
            .map(|b| b.lift(identity, now))
            .unwrap_or_default();
        if lifted.is_empty() {
            return Err(AdminError::NotFound(format!(
                "no restriction in force for `{identity}`"
            )));
        }
        for r in &lifted {
            let event = AuditEvent {
                time: now,
                request_id: String::new(),
                decision: "lift",
                phase: "behaviour",
                reason: format!(
                    "an admin lifted `{}` on `{identity}` (imposed at {} after a {} anomaly, until {})",
                    r.kind,
                    r.since,
                    r.cause.name(),
                    r.until
                ),
                sub: Some(identity.split('~').next().unwrap_or(identity).to_owned()),
                act: identity.split_once('~').map(|(_, a)| a.to_owned()),
                jti: r.jti.clone(),
                route: None,
                method: req.method().as_str().to_owned(),
                path: raw.to_owned(),
                client_ip: peer.ip(),
                policy_ids: Vec::new(),
                status: 200,
                dropped: None,
                anomaly: Some(r.cause.name()),
                response: Some(r.kind),
            };
            if self.audit.try_record(event).is_err() {
                self.audit.count_dropped();
            }
            tracing::warn!(identity, kind = r.kind, "restriction lifted by an admin");
        }
        Ok(ok_json(&json!({ "lifted": lifted })))
    }
}

fn ok_json(body: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn problem(status: StatusCode, detail: &str) -> Response<Body> {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("refused"),
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
