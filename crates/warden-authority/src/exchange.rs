//! Token exchange (RFC 8693): delegation and attenuation.
//!
//! The authenticated client presents a token it holds as `subject_token`:
//! - its own token (it is the token's holder: `sub` without `act`, or the outermost actor):
//!   attenuation — the same identity and chain with less power;
//! - a principal's own token, to act for that principal: delegation — the result has
//!   `sub` = the principal and `act` = {`sub`: the client}; the principal must have granted
//!   the client (a live delegation grant);
//! - a delegated token handed down by its holder: sub-delegation — the client is nested as the
//!   new outermost actor.
//!
//! Whatever the case, the result never holds more than the subject token: scopes are the
//! requested ones, which must lie within subject token ∩ the client's ceiling ∩ the subject's
//! current ceiling (∩ the grant, when delegating); the audience is one of the subject token's;
//! the lifetime ends no later than the subject token's; `allowed_ips` carries over. Asking for
//! more than that is refused, not narrowed.

use rand_core::OsRng;
use warden_core::access::AccessError;
use warden_core::claims::{AccessClaims, Actor, Audience, Confirmation};
use warden_core::id::random_token_id;

use crate::client_auth::AuthenticatedClient;
use crate::error::OAuthError;
use crate::grant::{GrantType, Issue};
use crate::token_request::{truncate, within, ExchangeRequest};
use crate::Authority;

pub async fn grant(
    a: &Authority,
    client: &AuthenticatedClient,
    request: ExchangeRequest<'_>,
    jkt: Option<String>,
    peer: Option<std::net::IpAddr>,
) -> Result<Issue, OAuthError> {
    let subject_token = request.subject_token?;
    let now = a.now();
    let verified = a
        .verify_own_token(subject_token, now)
        .map_err(|e| OAuthError::invalid_grant(format!("subject_token: {e}")))?;
    let parent = verified.claims();
    if let Err(why) = a.revocations.check(parent) {
        if let warden_core::revocation::Revoked::Honeytoken(p) = &why {
            a.honeytoken_used(p, "token_exchange", peer);
        }
        return Err(OAuthError::invalid_grant(format!("subject_token: {why}")));
    }
    a.activity.used(&parent.sub, now);
    if parent.max_uses.is_some() {
        return Err(OAuthError::invalid_grant(
            "subject_token is single-use and cannot be exchanged",
        ));
    }
    let access = verified.access().map_err(|e| match e {
        AccessError::Subject(_) => OAuthError::invalid_grant("subject_token has an invalid `sub`"),
        AccessError::Scope(_) => OAuthError::invalid_grant("subject_token has an invalid `scope`"),
        e => OAuthError::invalid_grant(format!("subject_token: {e}")),
    })?;
    // A bound token is exchanged only by the holder of its key, and stays bound to it.
    if let Some(cnf) = access.cnf() {
        if jkt.as_deref() != Some(cnf) {
            return Err(OAuthError::invalid_grant(
                "subject_token is DPoP-bound: send a DPoP proof signed with its key",
            ));
        }
    }

    let me = client.principal();
    if access.tenant() != &me.tenant {
        return Err(OAuthError::invalid_grant(
            "subject_token belongs to another tenant",
        ));
    }
    // The party that holds the token: its outermost actor, or its principal.
    let holder = access.chain().current().unwrap_or(access.principal());
    let subject = a
        .store
        .principal(access.principal())
        .await?
        .filter(|p| !p.disabled && p.revoked.is_none())
        .ok_or_else(|| {
            OAuthError::invalid_grant("the token's subject is unknown, disabled or revoked")
        })?;

    let mut available = access
        .scopes()
        .intersect(&me.scopes)
        .intersect(&subject.scopes);
    // When delegating, the grant's end: consent that has ended delegates nothing.
    let mut grant_end = None;
    // Levels of delegation of the token to issue: the subject token's, one more when the
    // client joins the chain.
    let mut depth = access.chain().depth();
    let act = if holder == &me.id {
        parent.act.clone()
    } else {
        if access.parties().any(|p| p == &me.id) {
            return Err(OAuthError::invalid_grant(
                "the client already appears in the subject token's delegation chain",
            ));
        }
        if access.chain().is_empty() {
            let grant = a
                .store
                .live_delegation_grant(&subject.id, &me.id, now)
                .await?
                .ok_or_else(|| {
                    OAuthError::invalid_grant(format!(
                        "{} has not granted {} to act for them",
                        subject.id, me.id
                    ))
                })?;
            available = available.intersect(&grant.scopes);
            grant_end = grant.expires_at;
        }
        depth = depth.saturating_add(1);
        Some(Actor {
            sub: me.id.to_string(),
            act: parent.act.clone().map(Box::new),
        })
    };
    if usize::try_from(depth).map_or(true, |d| d > a.config.max_delegation_depth) {
        return Err(OAuthError::invalid_grant(format!(
            "the delegation chain would be {depth} deep; the limit is {}",
            a.config.max_delegation_depth
        )));
    }
    let scopes = within(
        request.scope?,
        &available,
        "what the subject token and client hold",
    )?;

    let audience = match request.target? {
        Some(r) => {
            if !parent.aud.contains(r) {
                return Err(OAuthError::invalid_target(format!(
                    "`{}` is not an audience of the subject token",
                    truncate(r)
                )));
            }
            Audience::One(r.to_owned())
        }
        None => parent.aud.clone(),
    };
    let ttl = a
        .config
        .token_ttl_secs
        .min(client.tenant().max_token_ttl_secs);
    let mut exp = parent.exp.min(now + ttl);
    if let Some(end) = grant_end {
        exp = exp.min(end);
    }
    if let Some(asked) = request.expires_in? {
        exp = exp.min(now.saturating_add(asked));
    }
    if exp <= now {
        return Err(OAuthError::invalid_grant("subject_token has expired"));
    }
    let max_uses = request.max_uses?;
    let claims = AccessClaims {
        iss: a.config.issuer.clone(),
        sub: parent.sub.clone(),
        aud: audience,
        exp,
        iat: now,
        nbf: now,
        jti: random_token_id(&mut OsRng),
        client_id: me.id.to_string(),
        tenant: parent.tenant.clone(),
        scope: scopes.to_string(),
        act,
        cnf: jkt.map(|jkt| Confirmation { jkt }),
        allowed_ips: parent.allowed_ips.clone(),
        max_uses,
    };
    Ok(Issue {
        claims,
        by: GrantType::Exchange,
    })
}
