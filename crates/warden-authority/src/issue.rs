//! The one path a token takes out of the authority: a grant's [`Issue`] is held to the
//! revocations in force, signed through the [`Signer`](crate::signer::Signer), counted as
//! activity, recorded in the audit log, and answered only once its entry is durable. A
//! refusal is recorded too, without holding the caller ([`refuse`]).
//!
//! This module must not decide what a token holds: the grants do.

use std::borrow::Cow;
use std::net::IpAddr;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use warden_core::claims::AccessClaims;
use warden_core::DelegationChain;

use crate::error::OAuthError;
use crate::grant::Issue;
use crate::signer::sign_token;
use crate::Authority;

/// RFC 6749 §5.1, with RFC 8693's `issued_token_type` for an exchange.
#[derive(Serialize)]
struct TokenResponse<'c> {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: &'c str,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}

/// Signs, records and answers `issue` for a client at `peer`.
pub async fn issue(a: &Authority, issue: Issue, peer: Option<IpAddr>) -> Response {
    let (claims, hold_until) = match past_cutoffs(a, &issue.claims) {
        Ok(c) => c,
        Err(e) => return refuse(a, e, peer),
    };
    let claims = claims.as_ref();
    let signer = a.keys.signer();
    let access_token = match sign_token(signer.as_ref(), "at+jwt", claims).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "token encoding failed");
            return refuse(a, OAuthError::server_error(), peer);
        }
    };
    a.activity.issued(&claims.client_id, claims.iat);
    if claims.sub != claims.client_id {
        a.activity.issued(&claims.sub, claims.iat);
    }
    // The audit log records every issuance; a process-log line per token at `info` cost a
    // busy authority a sizable share of its CPU.
    tracing::debug!(
        sub = %claims.sub, client_id = %claims.client_id, jti = %claims.jti,
        scope = %claims.scope, aud = ?claims.aud, act = ?claims.act, bound = claims.cnf.is_some(),
        "token issued"
    );
    if let Some(at) = hold_until {
        if !second_has_come(a, at).await {
            return OAuthError::unavailable(
                "a revocation in force cuts this token off; retry in a second",
            )
            .into_response();
        }
    }
    if let Err(e) = a.audit(entry(claims, &issue, peer)).await {
        tracing::error!(error = %e, "issuance could not be audited; token withheld");
        return if e.is_retryable() {
            OAuthError::unavailable(format!("{e}; the token was withheld, retry later"))
        } else {
            OAuthError::server_error()
        }
        .into_response();
    }
    let mut res = Json(TokenResponse {
        access_token,
        token_type: if claims.cnf.is_some() {
            "DPoP"
        } else {
            "Bearer"
        },
        expires_in: claims.exp - claims.iat,
        scope: &claims.scope,
        issued_token_type: issue.by.issued_token_type(),
    })
    .into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// Answers a refused token request, recorded without waiting: refusals are what an
/// attacker can multiply.
pub fn refuse(a: &Authority, e: OAuthError, peer: Option<IpAddr>) -> Response {
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

/// What the audit log records of an issuance: as the token was signed.
fn entry(claims: &AccessClaims, issue: &Issue, peer: Option<IpAddr>) -> warden_audit::Entry {
    let (kind, action) = issue.by.audit_action();
    let mut entry = warden_audit::Entry::new(claims.iat * 1000, kind, action);
    entry.actor = Some(claims.client_id.clone());
    entry.subject = Some(claims.sub.clone());
    entry.act = DelegationChain::walk(claims.act.as_ref())
        .map(|a| a.sub.clone())
        .collect();
    entry.jti = Some(claims.jti.clone());
    entry.resource = Some(claims.aud.iter().collect::<Vec<_>>().join(" "));
    entry.decision = warden_audit::Decision::Allow;
    entry.reasons = vec![format!("scope={}", claims.scope)];
    entry.client_ip = peer;
    entry
}

/// Claims the revocations in force let through, and the second to hold the answer until.
/// Cut-offs have the one-second resolution of `iat`: a revocation made in this second ends
/// every token stamped with it, including one issued a moment after the revocation. Such a
/// token is stamped with the next second instead (and held until then), so no token is ever
/// issued that a verifier would refuse; one that no `iat` soon enough would save is refused
/// here rather than issued dead.
fn past_cutoffs<'c>(
    a: &Authority,
    claims: &'c AccessClaims,
) -> Result<(Cow<'c, AccessClaims>, Option<i64>), OAuthError> {
    let refused = |why: warden_core::revocation::Revoked| {
        OAuthError::invalid_grant(format!("{why}: no token can be issued for it now"))
    };
    let from = a.revocations.issuable_from(claims).map_err(refused)?;
    if from <= claims.iat {
        return Ok((Cow::Borrowed(claims), None));
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
    Ok((Cow::Owned(later), Some(from)))
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
