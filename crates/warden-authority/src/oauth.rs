//! The token endpoint (`POST /oauth2/token`), read top-down as its phases: refuse while the
//! audit log is down; read the form and parse it once into a [`TokenRequest`]; spot
//! honeytoken credentials before anything is verified; authenticate the client; take the
//! DPoP proof; run the grant — client credentials ([`crate::client_credentials`]) or token
//! exchange ([`crate::exchange`]) — which says what to issue; and hand that to the one issue
//! path ([`crate::issue`]), which signs, records and answers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::client_auth::authenticate;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::grant::Issue;
use crate::http::{media_type, read_body};
use crate::metrics::GrantLabel;
use crate::token_request::{truncate, Grant, TokenRequest};
use crate::Authority;

pub fn routes() -> Router<Arc<Authority>> {
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/oauth2/introspect", post(crate::introspection::introspect))
        .route("/oauth2/revoke", post(crate::introspection::revoke))
}

async fn token(
    State(a): State<Arc<Authority>>,
    peer: Option<axum::Extension<crate::server::ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    let peer = peer.map(|p| p.0 .0.ip());
    let mut grant = GrantLabel::None;
    // No token leaves that is not on record: while the log cannot write, refuse up front
    // (the outage is logged and counted once, by the log).
    let res = if let Some(why) = crate::readiness::audit_down(&a) {
        OAuthError::unavailable(why).into_response()
    } else {
        match decide(&a, &headers, body, peer, &mut grant).await {
            Ok(issue) => crate::issue::issue(&a, issue, peer).await,
            Err(e) => crate::issue::refuse(&a, e, peer),
        }
    };
    // Every answer that is not a token is an `OAuthError`'s, and says which.
    let error = res
        .extensions()
        .get::<OAuthErrorCode>()
        .map(|c| c.0)
        .or_else(|| (!res.status().is_success()).then_some("server_error"));
    a.metrics.token_answered(grant, error, started.elapsed());
    res
}

/// Every phase before the issue path: what the request, once authenticated, is to get;
/// `grant` is set as soon as the grant is known.
async fn decide(
    a: &Authority,
    headers: &HeaderMap,
    body: Body,
    peer: Option<std::net::IpAddr>,
    grant_read: &mut GrantLabel,
) -> Result<Issue, OAuthError> {
    let form = read_form(a, headers, body).await?;
    let request = TokenRequest::parse(headers, &form);
    if let Some(id) = request.client.claimed_id() {
        if a.revocations.is_honeytoken(id) {
            a.honeytoken_used(id, "token_endpoint", peer);
            return Err(OAuthError::invalid_client("client authentication failed"));
        }
    }
    let grant = request.grant?;
    *grant_read = match &grant {
        Grant::ClientCredentials(_) => GrantLabel::ClientCredentials,
        Grant::Exchange(_) => GrantLabel::Exchange,
    };
    let client = authenticate(a, request.client, peer).await?;
    let jkt = crate::dpop::proven_key(a, headers)?;
    match grant {
        Grant::ClientCredentials(r) => crate::client_credentials::grant(a, &client, r, jkt),
        Grant::Exchange(r) => crate::exchange::grant(a, &client, r, jkt, peer).await,
    }
}

/// Reads a form-encoded OAuth request body.
pub async fn read_form(
    a: &Authority,
    headers: &HeaderMap,
    body: Body,
) -> Result<HashMap<String, String>, OAuthError> {
    if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "this endpoint takes application/x-www-form-urlencoded",
        ));
    }
    let body = read_body(headers, body, a.config.limits.max_body_bytes).await?;
    parse_form(&body)
}

/// RFC 6749 §3.2: parameters sent without a value are omitted, and none may repeat.
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| OAuthError::invalid_request("body is not valid form encoding"))?;
    let mut params = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if v.is_empty() {
            continue;
        }
        if params.contains_key(&k) {
            return Err(if k == "resource" {
                OAuthError::invalid_target("one resource per token")
            } else {
                OAuthError::invalid_request(format!("parameter `{}` is repeated", truncate(&k)))
            });
        }
        params.insert(k, v);
    }
    Ok(params)
}
