//! Refusals and how they answer: 401 with an RFC 6750 challenge for missing or bad tokens,
//! 403 problem+json for tenant, scope, network, policy and a read-only downgrade, 429 with
//! `Retry-After`, 400 for a body the client cut short, 502/504 for an upstream's failure. The reason a client reads never contains
//! a token.

use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::http_client::{full, Body};

#[derive(Debug, Clone)]
pub enum Deny {
    /// A path that could mean something else to the upstream (dot segments, encoded slashes).
    BadPath(String),
    /// Forward auth asked by a peer that is not a trusted proxy.
    UntrustedCaller,
    /// No `Authorization: Bearer` credential.
    MissingToken,
    /// The credential is not a valid token for this gateway.
    InvalidToken(String),
    /// A honeytoken, naming this principal: refused like a revoked token, and reported.
    Honeytoken(String),
    /// The token, a principal it names, a grant it rests on or its tenant was revoked.
    Revoked(String),
    NoRoute,
    MethodNotAllowed(String),
    /// The route belongs to a tenant, and the token to another one.
    OtherTenant,
    InsufficientScope(String),
    Network(String),
    Policy {
        policy_ids: Vec<String>,
        reason: String,
    },
    RateLimited {
        retry_after_secs: u64,
    },
    /// A DPoP proof is missing, invalid, replayed, or for another key or request.
    InvalidDpop(String),
    /// The revocation view is older than its bound and the route fails closed.
    RevocationStale,
    /// The replay cache is full of live values; accepting more would forget some.
    ReplayCacheFull,
    /// The DPoP proof was spent by an earlier request.
    ProofReplayed,
    /// The single-use token was spent by an earlier request.
    TokenSpent,
    AuditBacklog,
    /// Behaviour: the token is quarantined (its revocation is on its way, or has arrived).
    Quarantined,
    /// Behaviour: the identity is downgraded to safe methods.
    ReadOnly {
        until: i64,
        cause: &'static str,
    },
    /// Behaviour: the identity is throttled.
    Throttled {
        retry_after_secs: u64,
        cause: &'static str,
    },
    /// The client's body broke off before its declared end while it was being forwarded.
    IncompleteBody,
    UpstreamUnreachable(String),
    UpstreamTimeout,
}

impl Deny {
    /// The pipeline phase that refused, as it appears in the audit log.
    pub fn phase(&self) -> &'static str {
        match self {
            Self::BadPath(_) | Self::UntrustedCaller => "request",
            Self::MissingToken | Self::InvalidToken(_) => "verify",
            Self::InvalidDpop(_) => "possession",
            // A honeytoken is found in the revocation view, even when `verify` looks (an
            // expired one is still reported).
            Self::Revoked(_) | Self::Honeytoken(_) | Self::RevocationStale => "revocation",
            Self::ReplayCacheFull | Self::ProofReplayed | Self::TokenSpent => "spend",
            Self::NoRoute | Self::MethodNotAllowed(_) => "route",
            Self::OtherTenant => "tenant",
            Self::InsufficientScope(_) => "scope",
            Self::Network(_) => "network",
            Self::Policy { .. } => "policy",
            Self::RateLimited { .. } => "rate",
            Self::AuditBacklog => "audit",
            Self::Quarantined | Self::ReadOnly { .. } | Self::Throttled { .. } => "behaviour",
            Self::IncompleteBody | Self::UpstreamUnreachable(_) | Self::UpstreamTimeout => {
                "forward"
            }
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadPath(_) | Self::IncompleteBody => StatusCode::BAD_REQUEST,
            Self::UntrustedCaller => StatusCode::FORBIDDEN,
            Self::MissingToken
            | Self::InvalidToken(_)
            | Self::Revoked(_)
            | Self::InvalidDpop(_)
            | Self::ProofReplayed
            | Self::TokenSpent
            | Self::Honeytoken(_)
            | Self::Quarantined => StatusCode::UNAUTHORIZED,
            Self::RevocationStale | Self::ReplayCacheFull => StatusCode::SERVICE_UNAVAILABLE,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::InsufficientScope(_)
            | Self::OtherTenant
            | Self::Network(_)
            | Self::Policy { .. }
            | Self::ReadOnly { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } | Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::AuditBacklog => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Self::BadPath(r) => r.clone(),
            Self::UntrustedCaller => "forward auth answers only trusted proxies".into(),
            Self::MissingToken => "no bearer token".into(),
            Self::InvalidToken(r) | Self::Revoked(r) | Self::InvalidDpop(r) => r.clone(),
            Self::ProofReplayed => "DPoP proof was already used".into(),
            Self::TokenSpent => "single-use token was already used".into(),
            // The presenter must not learn that it was a trap.
            Self::Honeytoken(_) => "token was revoked".into(),
            Self::RevocationStale => {
                "the gateway cannot confirm the token is not revoked; retry shortly".into()
            }
            Self::ReplayCacheFull => "too many one-time values in flight; retry shortly".into(),
            Self::NoRoute => "no route for this path".into(),
            Self::MethodNotAllowed(m) => format!("method {m} is not allowed on this route"),
            // Neither tenant is named: the caller knows its own, and need not learn the route's.
            Self::OtherTenant => "the token belongs to another tenant than this route's".into(),
            Self::InsufficientScope(s) => format!("the token lacks scope `{s}`"),
            Self::Network(r) => r.clone(),
            Self::Policy { reason, .. } => reason.clone(),
            Self::RateLimited { retry_after_secs } => {
                format!("rate limit exceeded; retry after {retry_after_secs} s")
            }
            Self::AuditBacklog => "the audit log cannot take more entries; retry shortly".into(),
            Self::Quarantined => {
                "token is quarantined after anomalous behaviour and is being revoked".into()
            }
            Self::ReadOnly { until, cause } => format!(
                "restriction `downgrade`: this identity may only use GET, HEAD and OPTIONS until {until} (after a {cause} anomaly)"
            ),
            Self::Throttled {
                retry_after_secs,
                cause,
            } => format!(
                "restriction `throttle`: this identity is throttled (after a {cause} anomaly); retry after {retry_after_secs} s"
            ),
            Self::IncompleteBody => "request body ended before its declared length".into(),
            Self::UpstreamUnreachable(_) => "the upstream could not be reached".into(),
            Self::UpstreamTimeout => "the upstream did not answer in time".into(),
        }
    }

    /// A refusal that suggests probing — authorization and proof failures, not back-pressure
    /// or the gateway's own trouble — counts toward a denied storm.
    pub fn suggests_probing(&self) -> bool {
        matches!(
            self,
            Self::NoRoute
                | Self::MethodNotAllowed(_)
                | Self::OtherTenant
                | Self::InsufficientScope(_)
                | Self::Network(_)
                | Self::Policy { .. }
                | Self::InvalidDpop(_)
                | Self::ProofReplayed
        )
    }

    /// The behaviour restriction behind the refusal, named in the problem body.
    fn restriction(&self) -> Option<&'static str> {
        match self {
            Self::Quarantined => Some("quarantine"),
            Self::ReadOnly { .. } => Some("downgrade"),
            Self::Throttled { .. } => Some("throttle"),
            _ => None,
        }
    }

    pub fn policy_ids(&self) -> &[String] {
        match self {
            Self::Policy { policy_ids, .. } => policy_ids,
            _ => &[],
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        self.into_response_with(status)
    }

    /// For nginx `auth_request`, which treats anything but 2xx, 401 and 403 as an error
    /// (500): 401 stays, every other refusal becomes 403, and the real status travels in
    /// `X-Warden-Status`.
    pub fn into_nginx_response(self) -> Response<Body> {
        let real = self.status();
        let status = if real == StatusCode::UNAUTHORIZED {
            real
        } else {
            StatusCode::FORBIDDEN
        };
        let mut res = self.into_response_with(status);
        res.headers_mut()
            .insert("x-warden-status", HeaderValue::from(real.as_u16()));
        res
    }

    fn into_response_with(self, status: StatusCode) -> Response<Body> {
        let reason = self.reason();
        let mut body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("refused"),
            "status": status.as_u16(),
            "detail": reason,
        });
        if let Self::Policy { policy_ids, .. } = &self {
            if let Some(fields) = body.as_object_mut() {
                fields.insert("policy_ids".into(), json!(policy_ids));
            }
        }
        if let Some(r) = self.restriction() {
            if let Some(fields) = body.as_object_mut() {
                fields.insert("restriction".into(), json!(r));
            }
        }
        let mut res = Response::new(full(serde_json::to_vec(&body).unwrap_or_default()));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let challenge = match &self {
            Self::MissingToken => Some("Bearer realm=\"warden\"".to_owned()),
            Self::Quarantined => Some(
                "Bearer realm=\"warden\", error=\"invalid_token\", error_description=\"token is quarantined\""
                    .to_owned(),
            ),
            Self::InvalidToken(_) | Self::Revoked(_) | Self::TokenSpent => Some(format!(
                "Bearer realm=\"warden\", error=\"invalid_token\", error_description=\"{}\"",
                quote_safe(&reason)
            )),
            Self::Honeytoken(_) => Some(
                "Bearer realm=\"warden\", error=\"invalid_token\", error_description=\"token was revoked\""
                    .to_owned(),
            ),
            Self::InvalidDpop(_) | Self::ProofReplayed => Some(format!(
                "DPoP algs=\"EdDSA\", error=\"invalid_dpop_proof\", error_description=\"{}\"",
                quote_safe(&reason)
            )),
            Self::InsufficientScope(s) => Some(format!(
                "Bearer realm=\"warden\", error=\"insufficient_scope\", scope=\"{}\"",
                quote_safe(s)
            )),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(WWW_AUTHENTICATE, v);
        }
        match &self {
            Self::RateLimited { retry_after_secs }
            | Self::Throttled {
                retry_after_secs, ..
            } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    h.insert(RETRY_AFTER, v);
                }
            }
            Self::AuditBacklog | Self::RevocationStale | Self::ReplayCacheFull => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}

/// RFC 6750 error descriptions are quoted strings of printable ASCII without `"` or `\`.
fn quote_safe(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect()
}
