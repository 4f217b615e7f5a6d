//! The token endpoint (`POST /oauth2/token`): client credentials (RFC 6749 §4.4), scopes
//! narrowed to the principal's ceiling, audience from RFC 8707 `resource`.

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
use warden_core::claims::{AccessClaims, Audience};
use warden_core::id::random_token_id;
use warden_core::{jws, ScopeSet};

use crate::client_auth::{authenticate, AuthenticatedClient};
use crate::error::OAuthError;
use crate::http::{media_type, read_body};
use crate::Authority;

pub fn routes() -> Router<Arc<Authority>> {
    Router::new().route("/oauth2/token", post(token))
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
}

async fn token(State(a): State<Arc<Authority>>, headers: HeaderMap, body: Body) -> Response {
    match issue(&a, &headers, body).await {
        Ok(t) => {
            let mut res = Json(t).into_response();
            let h = res.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            res
        }
        Err(e) => {
            tracing::info!(error = e.code, reason = %e.description, "token request refused");
            e.into_response()
        }
    }
}

async fn issue(
    a: &Authority,
    headers: &HeaderMap,
    body: Body,
) -> Result<TokenResponse, OAuthError> {
    if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the token endpoint takes application/x-www-form-urlencoded",
        ));
    }
    let body = read_body(headers, body, a.config.limits.max_body_bytes)
        .await
        .map_err(OAuthError::payload_too_large)?;
    let params = parse_form(&body)?;
    match params.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::unsupported_grant_type(format!(
                "grant_type `{}` is not supported",
                truncate(other)
            )))
        }
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
    }
    let client = authenticate(a, headers, &params).await?;
    client_credentials(a, &client, &params)
}

fn client_credentials(
    a: &Authority,
    client: &AuthenticatedClient,
    params: &HashMap<String, String>,
) -> Result<TokenResponse, OAuthError> {
    let p = client.principal();
    let scopes = match params.get("scope") {
        Some(requested) => {
            let requested =
                ScopeSet::parse(requested).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
            let outside = p.scopes.uncovered(&requested);
            if !outside.is_empty() {
                let names: Vec<&str> = outside.iter().map(|s| s.as_str()).collect();
                return Err(OAuthError::invalid_scope(format!(
                    "outside the client's ceiling: `{}`",
                    names.join(" ")
                )));
            }
            requested
        }
        None => p.scopes.clone(),
    };
    if scopes.is_empty() {
        return Err(OAuthError::invalid_scope(
            "no scope requested and the client has none",
        ));
    }
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
        cnf: None,
        allowed_ips: None,
        max_uses: None,
    };
    let keys = a.keys.current();
    let access_token = jws::encode("at+jwt", Some(&keys.active_kid), &claims, &keys.active)
        .map_err(|e| {
            tracing::error!(error = %e, "token encoding failed");
            OAuthError::server_error()
        })?;
    tracing::info!(sub = %claims.sub, jti = %claims.jti, scope = %claims.scope, aud = ?claims.aud, "token issued");
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: claims.scope,
    })
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

fn truncate(s: &str) -> String {
    if s.len() <= 64 {
        s.to_owned()
    } else {
        s.chars().take(64).collect::<String>() + "…"
    }
}
