//! Token introspection (RFC 7662) and revocation (RFC 7009). Both need client
//! authentication and see only tokens of the client's own tenant, and within it only those
//! the caller has business with: introspection answers the token's client, its resource and
//! holders of `warden:introspect`; revocation the token's client, subject and actors.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use warden_store::{NewRevocation, RevocationTarget};

use crate::client_auth::{authenticate, ClientAuthentication};
use crate::error::OAuthError;
use crate::oauth::read_form;
use crate::Authority;

/// `POST /oauth2/introspect`: `{"active": false}` for anything not currently usable.
pub async fn introspect(
    State(a): State<Arc<Authority>>,
    peer: Option<axum::Extension<crate::server::ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = peer.map(|p| p.0 .0.ip());
    let answer = async {
        let params = read_form(&a, &headers, body).await?;
        let credentials = ClientAuthentication::parse(&headers, &params);
        let client = authenticate(&a, credentials, peer).await?;
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let now = a.now();
        let inactive = json!({ "active": false });
        let Ok(verified) = a.verify_own_token(token, now) else {
            return Ok(inactive);
        };
        let claims = verified.claims();
        if let Err(warden_core::revocation::Revoked::Honeytoken(p)) = a.revocations.check(claims) {
            a.honeytoken_used(&p, "introspection", peer);
            return Ok(inactive);
        }
        // A token whose claims do not read as access is no more active than a forged one.
        let Ok(access) = verified.access() else {
            return Ok(inactive);
        };
        // Verification tolerates clock skew; "active" means usable now, without it.
        if claims.exp <= now
            || access.tenant() != &client.principal().tenant
            || a.revocations.check(claims).is_err()
        {
            return Ok(inactive);
        }
        // A caller with no business with the token learns no more than of a dead one.
        if !may_introspect(client.principal(), claims) {
            tracing::debug!(caller = %client.principal().id, jti = %claims.jti, "introspection not permitted");
            return Ok(inactive);
        }
        a.activity.used(access.principal().as_str(), now);
        let mut body = serde_json::to_value(claims).map_err(|_| OAuthError::server_error())?;
        if let Some(o) = body.as_object_mut() {
            o.insert("active".into(), true.into());
            let token_type = if claims.cnf.is_some() {
                "DPoP"
            } else {
                "Bearer"
            };
            o.insert("token_type".into(), token_type.into());
        }
        Ok::<_, OAuthError>(body)
    }
    .await;
    respond(answer)
}

/// The scope that lets a principal introspect any token of its tenant.
pub const INTROSPECT_SCOPE: &str = warden_api::scope::INTROSPECT;

/// Least privilege: the token's own client, the resource it is for (the caller's id is one
/// of its `aud` values), or a principal whose ceiling names [`INTROSPECT_SCOPE`] — literally,
/// so a wildcard granted for other reasons (`*:*`) never confers the power to read every
/// token of the tenant. Tenant, expiry and revocation are checked before this.
fn may_introspect(caller: &warden_store::Principal, claims: &warden_core::AccessClaims) -> bool {
    let me = caller.id.as_str();
    claims.client_id == me
        || claims.aud.iter().any(|aud| aud == me)
        || caller.scopes.iter().any(|s| s.as_str() == INTROSPECT_SCOPE)
}

/// `POST /oauth2/revoke`: the token's client, subject or any actor in its chain may revoke
/// it. An invalid or unknown token is answered 200, as RFC 7009 §2.2 asks.
pub async fn revoke(
    State(a): State<Arc<Authority>>,
    peer: Option<axum::Extension<crate::server::ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = peer.map(|p| p.0 .0.ip());
    let answer = async {
        let params = read_form(&a, &headers, body).await?;
        let credentials = ClientAuthentication::parse(&headers, &params);
        let client = authenticate(&a, credentials, peer).await?;
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        // RFC 7009 §2.1: a hint that does not fit only widens the search; only access
        // tokens exist here, so any hint leads to the same place.
        let now = a.now();
        // An expired token needs no revocation; a forged one is nobody's business.
        let Ok(verified) = a.verify_own_token(token, now) else {
            return Ok(json!({}));
        };
        let claims = verified.claims();
        if let Err(warden_core::revocation::Revoked::Honeytoken(p)) = a.revocations.check(claims) {
            a.honeytoken_used(&p, "revocation", peer);
            return Ok(json!({}));
        }
        // Claims that do not read as access name nobody; like a forged token, no business.
        let Ok(access) = verified.access() else {
            return Ok(json!({}));
        };
        let caller = client.principal();
        let me = caller.id.as_str();
        if access.tenant() != &caller.tenant
            || (claims.client_id != me && !access.parties().any(|p| p == &caller.id))
        {
            return Err(OAuthError::unauthorized_client(
                "the token was not issued to this client, nor does it name it",
            ));
        }
        // Revoking twice changes nothing and must not grow the log every gateway replays.
        if matches!(
            a.revocations.check(claims),
            Err(warden_core::revocation::Revoked::Token)
        ) {
            return Ok(json!({}));
        }
        let event = NewRevocation {
            target: RevocationTarget::Token {
                jti: claims.jti.clone(),
            },
            issued_before: 0,
            horizon: claims.exp + a.config.leeway_secs,
            reason: Some(format!("revoked by {me}")),
            created_at: now,
        };
        let appended = a.store.append_revocation(&event).await?;
        a.revocations
            .applied(appended.seq, a.store.as_ref())
            .await?;
        tracing::info!(jti = %claims.jti, by = me, seq = appended.seq, "token revoked");
        Ok(json!({}))
    }
    .await;
    respond(answer)
}

fn respond(answer: Result<serde_json::Value, OAuthError>) -> Response {
    match answer {
        Ok(v) => {
            let mut res = Json(v).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => e.into_response(),
    }
}
