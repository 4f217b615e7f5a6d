//! `verify`: the credential (`Authorization: Bearer` or `DPoP`), then the token — its
//! signature against the cached JWKS and its claims, or a hit in the verified-token cache,
//! re-checked against the clock and the current key set.
//!
//! This phase must not look at the route or the request beyond its credential: what a token
//! may do is for the phases after it.

use std::sync::Arc;

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use warden_core::claims::AccessClaims;
use warden_core::jws::UnverifiedToken;
use warden_core::{TokenError, Validation};

use crate::deny::Deny;
use crate::token_cache::Verified;
use crate::Gateway;

/// How the token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// The credential a request carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credentials<'a> {
    pub scheme: Scheme,
    pub token: &'a str,
}

/// The `Authorization` header's scheme and token.
pub(crate) fn credentials(headers: &HeaderMap) -> Result<Credentials<'_>, Deny> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(Deny::MissingToken);
    };
    let value = value
        .to_str()
        .map_err(|_| Deny::InvalidToken("authorization header is not ASCII".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Deny::InvalidToken("authorization header is malformed".into()))?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(Deny::MissingToken);
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(Deny::InvalidToken("empty token".into()));
    }
    Ok(Credentials { scheme, token })
}

impl Gateway {
    /// Verifies a token, or takes it from the cache of verified tokens. A hit is re-checked
    /// against the clock and the current key set, so it never outlives what a fresh
    /// verification would accept.
    pub(crate) async fn verify(&self, token: &str, now: i64) -> Result<Arc<Verified>, Deny> {
        if token.len() > self.config.max_token_bytes {
            return Err(Deny::InvalidToken("token is too large".into()));
        }
        let leeway = Validation::DEFAULT_LEEWAY;
        if let Some(hit) = self.tokens.get(token) {
            let c = &hit.claims;
            if now > c.exp + leeway {
                self.tokens.remove(token);
                return Err(match self.revocations.honeytoken_in(c) {
                    Some(p) => Deny::Honeytoken(p),
                    None => Deny::InvalidToken(TokenError::Expired.to_string()),
                });
            }
            if c.nbf > now + leeway {
                return Err(Deny::InvalidToken(TokenError::NotYetValid.to_string()));
            }
            if self.jwks.keys().get(&hit.kid).is_some() {
                return Ok(hit);
            }
            // The signing key is no longer published: verify afresh (and fail).
            self.tokens.remove(token);
        }
        let validation =
            Validation::access_token(&self.config.issuer, vec![self.config.audience.clone()]);
        let parsed =
            UnverifiedToken::parse(token).map_err(|e| Deny::InvalidToken(e.to_string()))?;
        let kid = parsed.header().kid.clone();
        let mut keys = self.jwks.keys();
        if let Some(k) = &kid {
            if keys.get(k).is_none() && self.jwks.refresh_for_unknown_kid().await {
                keys = self.jwks.keys();
            }
        }
        let verified = parsed
            .verify_with::<AccessClaims>(&keys, &validation, now)
            .map_err(|e| {
                // An expired token passed the signature check first: a genuine honeytoken,
                // reported even though it would be refused anyway. Its claims are read again
                // only then, not on every fresh token.
                let honeytoken = (e == TokenError::Expired)
                    .then(|| UnverifiedToken::parse(token).ok()?.claims_unverified().ok())
                    .flatten()
                    .and_then(|c: AccessClaims| self.revocations.honeytoken_in(&c));
                match honeytoken {
                    Some(p) => Deny::Honeytoken(p),
                    None => Deny::InvalidToken(e.to_string()),
                }
            })?;
        let access = verified
            .access()
            .map_err(|e| Deny::InvalidToken(e.to_string()))?;
        let claims = verified.into_claims();
        let identity = match access.chain().current() {
            Some(a) => format!("{}~{a}", claims.sub),
            None => claims.sub.clone(),
        };
        let shared = self.identities.get_or_insert(&claims);
        let v = Arc::new(Verified {
            kid: kid.unwrap_or_default(),
            identity,
            claims,
            access,
            shared,
            last_used: std::sync::atomic::AtomicI64::new(0),
        });
        self.tokens.insert(token, Arc::clone(&v));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_and_dpop_schemes_are_told_apart_in_any_case() {
        let h = with("bearer abc");
        let c = credentials(&h).unwrap();
        assert_eq!((c.scheme, c.token), (Scheme::Bearer, "abc"));
        let h = with("DPoP  xyz ");
        let c = credentials(&h).unwrap();
        assert_eq!((c.scheme, c.token), (Scheme::Dpop, "xyz"));
    }

    #[test]
    fn a_missing_or_foreign_credential_is_no_token_and_a_broken_one_invalid() {
        assert!(matches!(
            credentials(&HeaderMap::new()),
            Err(Deny::MissingToken)
        ));
        assert!(matches!(
            credentials(&with("Basic dXNlcjpwdw==")),
            Err(Deny::MissingToken)
        ));
        assert!(matches!(
            credentials(&with("Bearer")),
            Err(Deny::InvalidToken(_))
        ));
        assert!(matches!(
            credentials(&with("Bearer  ")),
            Err(Deny::InvalidToken(_))
        ));
        let deny = credentials(&HeaderMap::new()).unwrap_err();
        assert_eq!(deny.phase(), "verify");
    }
}
