//! The token endpoint (`POST /oauth2/token`): client credentials (RFC 6749 §4.4) and token
//! exchange (RFC 8693, in [`crate::exchange`]); scopes within the principal's ceiling,
//! audience from RFC 8707 `resource`, DPoP binding when the client sends a proof.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rand_core::OsRng;
use serde::Serialize;
use warden_core::claims::{AccessClaims, Audience, Confirmation};
use warden_core::id::random_token_id;
use warden_core::{jws, ScopeSet};

use crate::client_auth::{authenticate, AuthenticatedClient};
use crate::error::OAuthError;
use crate::http::{media_type, read_body};
use crate::Authority;

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

pub fn routes() -> Router<Arc<Authority>> {
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/oauth2/introspect", post(crate::introspection::introspect))
        .route("/oauth2/revoke", post(crate::introspection::revoke))
}

#[derive(Serialize)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
    /// What the audit log records of this issuance; never sent.
    #[serde(skip)]
    audit: Option<warden_audit::Entry>,
    /// The token is stamped to begin after a revocation's cut-off in this very second, and is
    /// handed out only once that second has come; never sent.
    #[serde(skip)]
    hold_until: Option<i64>,
}

async fn token(
    State(a): State<Arc<Authority>>,
    peer: Option<axum::Extension<crate::server::ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = peer.map(|p| p.0 .0.ip());
    // No token leaves that is not on record: while the log cannot write, refuse up front
    // (the outage is logged and counted once, by the log).
    if let Some(why) = crate::readiness::audit_down(&a) {
        return OAuthError::unavailable(why).into_response();
    }
    match issue(&a, &headers, body, peer).await {
        Ok(mut t) => {
            if let Some(at) = t.hold_until.take() {
                if !second_has_come(&a, at).await {
                    return OAuthError::unavailable(
                        "a revocation in force cuts this token off; retry in a second",
                    )
                    .into_response();
                }
            }
            if let Some(mut entry) = t.audit.take() {
                entry.client_ip = peer;
                if let Err(e) = a.audit(entry).await {
                    tracing::error!(error = %e, "issuance could not be audited; token withheld");
                    return if e.is_retryable() {
                        OAuthError::unavailable(format!("{e}; the token was withheld, retry later"))
                    } else {
                        OAuthError::server_error()
                    }
                    .into_response();
                }
            }
            let mut res = Json(t).into_response();
            let h = res.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            res
        }
        Err(e) => {
            tracing::info!(error = e.code, reason = %e.description, "token request refused");
            let mut entry = warden_audit::Entry::new(
                a.now() * 1000,
                warden_audit::Kind::Issuance,
                "token.request",
            );
            entry.decision = warden_audit::Decision::Deny;
            entry.reasons = vec![e.code.to_owned(), e.description.clone()];
            entry.client_ip = peer;
            a.audit_nowait(entry);
            e.into_response()
        }
    }
}

async fn issue(
    a: &Authority,
    headers: &HeaderMap,
    body: Body,
    peer: Option<std::net::IpAddr>,
) -> Result<TokenResponse, OAuthError> {
    let params = read_form(a, headers, body).await?;
    if let Some(id) = crate::client_auth::claimed_client_id(headers, &params) {
        if a.revocations.is_honeytoken(&id) {
            a.honeytoken_used(&id, "token_endpoint", peer);
            return Err(OAuthError::invalid_client("client authentication failed"));
        }
    }
    enum Grant {
        ClientCredentials,
        Exchange,
    }
    let grant = match params.get("grant_type").map(String::as_str) {
        Some("client_credentials") => Grant::ClientCredentials,
        Some(TOKEN_EXCHANGE) => Grant::Exchange,
        Some(other) => {
            return Err(OAuthError::unsupported_grant_type(format!(
                "grant_type `{}` is not supported",
                truncate(other)
            )))
        }
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
    };
    let client = authenticate(a, headers, &params).await?;
    let jkt = crate::dpop::proven_key(a, headers)?;
    match grant {
        Grant::ClientCredentials => client_credentials(a, &client, &params, jkt),
        Grant::Exchange => crate::exchange::exchange(a, &client, &params, jkt, peer).await,
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

/// The `scope` parameter, which must lie entirely within `available`: asking for more is
/// refused, never silently narrowed. Without the parameter, all of `available`.
pub fn requested_scopes(
    params: &HashMap<String, String>,
    available: &ScopeSet,
    whose: &str,
) -> Result<ScopeSet, OAuthError> {
    let scopes = match params.get("scope") {
        Some(requested) => {
            let requested =
                ScopeSet::parse(requested).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
            let outside = available.uncovered(&requested);
            if !outside.is_empty() {
                let names: Vec<&str> = outside.iter().map(|s| s.as_str()).collect();
                return Err(OAuthError::invalid_scope(format!(
                    "outside {whose}: `{}`",
                    names.join(" ")
                )));
            }
            requested
        }
        None => available.clone(),
    };
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "no scope requested and {whose} holds none"
        )));
    }
    Ok(scopes)
}

/// Waits, a little over a second at most, until the clock reads `at`.
async fn second_has_come(a: &Authority, at: i64) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(1_500);
    while a.now() < at {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    true
}

/// Claims the revocations in force let through. Cut-offs have the one-second resolution of
/// `iat`: a revocation made in this second ends every token stamped with it, including one
/// issued a moment after the revocation. Such a token is stamped with the next second instead
/// (and held until then), so no token is ever issued that a verifier would refuse; one that
/// no `iat` soon enough would save is refused here rather than issued dead.
fn past_cutoffs<'c>(
    a: &Authority,
    claims: &'c AccessClaims,
) -> Result<(std::borrow::Cow<'c, AccessClaims>, Option<i64>), OAuthError> {
    let refused = |why: warden_core::revocation::Revoked| {
        OAuthError::invalid_grant(format!("{why}: no token can be issued for it now"))
    };
    let from = a.revocations.issuable_from(claims).map_err(refused)?;
    if from <= claims.iat {
        return Ok((std::borrow::Cow::Borrowed(claims), None));
    }
    if from - claims.iat > 1 {
        return Err(match a.revocations.check(claims) {
            Err(why) => refused(why),
            Ok(()) => OAuthError::server_error(),
        });
    }
    let shift = from - claims.iat;
    let mut later = claims.clone();
    later.iat += shift;
    later.nbf += shift;
    later.exp += shift;
    Ok((std::borrow::Cow::Owned(later), Some(from)))
}

/// Signs `claims` and shapes the token response.
pub fn mint(
    a: &Authority,
    claims: &AccessClaims,
    issued_token_type: Option<&'static str>,
) -> Result<TokenResponse, OAuthError> {
    let (claims, hold_until) = past_cutoffs(a, claims)?;
    let claims = claims.as_ref();
    let keys = a.keys.current();
    let access_token = jws::encode("at+jwt", Some(&keys.active_kid), claims, &keys.active)
        .map_err(|e| {
            tracing::error!(error = %e, "token encoding failed");
            OAuthError::server_error()
        })?;
    a.activity.issued(&claims.client_id, claims.iat);
    if claims.sub != claims.client_id {
        a.activity.issued(&claims.sub, claims.iat);
    }
    tracing::info!(
        sub = %claims.sub, client_id = %claims.client_id, jti = %claims.jti,
        scope = %claims.scope, aud = ?claims.aud, act = ?claims.act, bound = claims.cnf.is_some(),
        "token issued"
    );
    let (kind, action) = match issued_token_type {
        Some(_) => (warden_audit::Kind::Exchange, "token.exchange"),
        None => (warden_audit::Kind::Issuance, "token.issue"),
    };
    let mut entry = warden_audit::Entry::new(claims.iat * 1000, kind, action);
    entry.actor = Some(claims.client_id.clone());
    entry.subject = Some(claims.sub.clone());
    entry.act = crate::exchange::chain(claims)
        .skip(1)
        .map(str::to_owned)
        .collect();
    entry.jti = Some(claims.jti.clone());
    entry.resource = Some(claims.aud.iter().collect::<Vec<_>>().join(" "));
    entry.decision = warden_audit::Decision::Allow;
    entry.reasons = vec![format!("scope={}", claims.scope)];
    Ok(TokenResponse {
        audit: Some(entry),
        hold_until,
        access_token,
        token_type: if claims.cnf.is_some() {
            "DPoP"
        } else {
            "Bearer"
        },
        expires_in: claims.exp - claims.iat,
        scope: claims.scope.clone(),
        issued_token_type,
    })
}

fn client_credentials(
    a: &Authority,
    client: &AuthenticatedClient,
    params: &HashMap<String, String>,
    jkt: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    let p = client.principal();
    let scopes = requested_scopes(params, &p.scopes, "the client's ceiling")?;
    let audience = match params.get("resource") {
        None => a.config.default_audience.clone(),
        Some(r) if *r == a.config.default_audience || p.audiences.iter().any(|x| x == r) => {
            r.clone()
        }
        Some(r) => {
            return Err(OAuthError::invalid_target(format!(
                "resource `{}` is not allowed for this client",
                truncate(r)
            )))
        }
    };
    let ttl = a
        .config
        .token_ttl_secs
        .min(client.tenant().max_token_ttl_secs)
        .min(a.config.max_token_ttl_secs);
    let now = a.now();
    let claims = AccessClaims {
        iss: a.config.issuer.clone(),
        sub: p.id.to_string(),
        aud: Audience::One(audience),
        exp: now + ttl,
        iat: now,
        nbf: now,
        jti: random_token_id(&mut OsRng),
        client_id: p.id.to_string(),
        tenant: p.tenant.to_string(),
        scope: scopes.to_string(),
        act: None,
        cnf: jkt.map(|jkt| Confirmation { jkt }),
        allowed_ips: None,
        max_uses: None,
    };
    mint(a, &claims, None)
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

pub fn truncate(s: &str) -> String {
    if s.len() <= 64 {
        s.to_owned()
    } else {
        s.chars().take(64).collect::<String>() + "…"
    }
}
