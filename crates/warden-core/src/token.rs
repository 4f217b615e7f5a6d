//! Token verification: an [`UnverifiedToken`] becomes a [`VerifiedToken`] only here, after a
//! strict signature check and the registered-claim checks of a [`Validation`].

use std::collections::HashMap;

use serde::de::DeserializeOwned;

use crate::claims::RegisteredClaims;
use crate::crypto::PublicKey;
use crate::jwks::{JwkError, JwkSet};
use crate::jws::{UnverifiedToken, MAX_TOKEN_BYTES};

/// Why a token was refused. Messages are safe to show the presenter.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is {0} bytes; the limit is {MAX_TOKEN_BYTES}")]
    TooLarge(usize),
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token {0} is not unpadded base64url")]
    Base64(&'static str),
    #[error("token header is invalid: {0}")]
    Header(String),
    #[error("algorithm `{0}` is not accepted; only EdDSA (Ed25519)")]
    Algorithm(String),
    #[error("token header has `crit`; no critical extension is supported")]
    Critical,
    #[error("token header references keys (`jku`, `x5u`, `x5c`), which are never honoured")]
    KeyReference,
    #[error("token header embeds a `jwk`, which is not honoured here")]
    EmbeddedKey,
    #[error("token type `{found}` where `{expected}` is required")]
    Type {
        expected: &'static str,
        found: String,
    },
    #[error("token header has no `kid`")]
    MissingKid,
    #[error("no key with `kid` `{0}`")]
    UnknownKid(String),
    #[error("signature does not verify")]
    Signature,
    #[error("token claims are invalid: {0}")]
    Claims(String),
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token lives longer than the {0} s allowed")]
    LifetimeTooLong(i64),
    #[error("issuer `{0}` is not accepted")]
    Issuer(String),
    #[error("audience is not accepted")]
    Audience,
    #[error("token could not be encoded: {0}")]
    Encode(String),
}

/// What the `typ` header must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeRule {
    /// Exactly this media type (with or without `application/`, case-insensitive).
    Exactly(&'static str),
    /// Absent or `JWT`: a client assertion. Refusing explicit other types stops an access
    /// token or a DPoP proof being replayed as an assertion.
    PlainJwt,
}

impl TypeRule {
    fn check(self, typ: Option<&str>) -> Result<(), TokenError> {
        let normalized = typ.map(|t| {
            let t = t.to_ascii_lowercase();
            t.strip_prefix("application/")
                .map(str::to_owned)
                .unwrap_or(t)
        });
        let (ok, expected) = match self {
            Self::Exactly(want) => (normalized.as_deref() == Some(want), want),
            Self::PlainJwt => (matches!(normalized.as_deref(), None | Some("jwt")), "JWT"),
        };
        if ok {
            Ok(())
        } else {
            Err(TokenError::Type {
                expected,
                found: typ.unwrap_or("").to_owned(),
            })
        }
    }
}

/// The checks a verified token must pass besides its signature.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Accepted `iss` values; empty accepts any (for assertions, whose `iss` is the client).
    pub issuers: Vec<String>,
    /// `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    pub typ: TypeRule,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: i64,
    /// Refuse tokens whose `exp` lies further than this from now.
    pub max_lifetime: Option<i64>,
}

impl Validation {
    pub const DEFAULT_LEEWAY: i64 = 30;

    /// Access tokens: `typ: at+jwt`, from `issuer`, for one of `audiences`.
    pub fn access_token(issuer: &str, audiences: Vec<String>) -> Self {
        Self {
            issuers: vec![issuer.to_owned()],
            audiences,
            typ: TypeRule::Exactly("at+jwt"),
            leeway: Self::DEFAULT_LEEWAY,
            max_lifetime: None,
        }
    }

    fn check(&self, claims: &impl RegisteredClaims, now: i64) -> Result<(), TokenError> {
        if now > claims.exp().saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf()
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(TokenError::NotYetValid);
        }
        if claims
            .iat()
            .is_some_and(|iat| iat > now.saturating_add(self.leeway))
        {
            return Err(TokenError::IssuedInFuture);
        }
        if let Some(max) = self.max_lifetime {
            if claims.exp().saturating_sub(now) > max.saturating_add(self.leeway) {
                return Err(TokenError::LifetimeTooLong(max));
            }
        }
        if !self.issuers.is_empty() && !self.issuers.iter().any(|i| i == claims.iss()) {
            return Err(TokenError::Issuer(claims.iss().to_owned()));
        }
        if !self.audiences.iter().any(|a| claims.aud().contains(a)) {
            return Err(TokenError::Audience);
        }
        Ok(())
    }
}

/// Public keys by `kid`, as published in a JWKS.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, PublicKey>,
}

impl KeySet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, kid: impl Into<String>, key: PublicKey) {
        self.keys.insert(kid.into(), key);
    }

    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every key of the set must be a valid Ed25519 key with a `kid`.
    pub fn from_jwks(jwks: &JwkSet) -> Result<Self, JwkError> {
        let mut set = Self::new();
        for jwk in &jwks.keys {
            let key = jwk.to_public_key()?;
            if let Some(kid) = &jwk.kid {
                set.insert(kid.clone(), key);
            }
        }
        Ok(set)
    }
}

/// A token whose signature and registered claims have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedToken<C> {
    kid: Option<String>,
    claims: C,
}

impl<C> VerifiedToken<C> {
    pub fn claims(&self) -> &C {
        &self.claims
    }

    pub fn into_claims(self) -> C {
        self.claims
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

impl UnverifiedToken<'_> {
    /// Verifies against one known key (a client's registered key).
    pub fn verify<C: DeserializeOwned + RegisteredClaims>(
        self,
        key: &PublicKey,
        validation: &Validation,
        now: i64,
    ) -> Result<VerifiedToken<C>, TokenError> {
        validation.typ.check(self.header.typ.as_deref())?;
        if self.header.jwk.is_some() {
            return Err(TokenError::EmbeddedKey);
        }
        if !key.verify(self.signing_input, &self.signature) {
            return Err(TokenError::Signature);
        }
        let claims: C =
            serde_json::from_slice(&self.payload).map_err(|e| TokenError::Claims(e.to_string()))?;
        validation.check(&claims, now)?;
        Ok(VerifiedToken {
            kid: self.header.kid,
            claims,
        })
    }

    /// Verifies against the key the header's `kid` names in `keys`.
    pub fn verify_with<C: DeserializeOwned + RegisteredClaims>(
        self,
        keys: &KeySet,
        validation: &Validation,
        now: i64,
    ) -> Result<VerifiedToken<C>, TokenError> {
        let kid = self.header.kid.as_deref().ok_or(TokenError::MissingKid)?;
        let key = *keys
            .get(kid)
            .ok_or_else(|| TokenError::UnknownKid(kid.to_owned()))?;
        self.verify(&key, validation, now)
    }
}

/// Parses and verifies an access token in one step.
pub fn verify_access_token(
    token: &str,
    keys: &KeySet,
    validation: &Validation,
    now: i64,
) -> Result<VerifiedToken<crate::AccessClaims>, TokenError> {
    UnverifiedToken::parse(token)?.verify_with(keys, validation, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{AccessClaims, Audience};
    use crate::crypto::SigningKey;
    use crate::jws;
    use rand_core::OsRng;

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://warden.test".into(),
            sub: "agt_x".into(),
            aud: Audience::One("api".into()),
            exp: now + 900,
            iat: now,
            nbf: now,
            jti: "j".into(),
            client_id: "agt_x".into(),
            tenant: "tnt_x".into(),
            scope: "a:read".into(),
            act: None,
            cnf: None,
            allowed_ips: None,
            max_uses: None,
        }
    }

    fn setup() -> (SigningKey, KeySet, Validation) {
        let k = SigningKey::generate(&mut OsRng);
        let mut ks = KeySet::new();
        ks.insert("k1", k.public_key());
        let v = Validation::access_token("https://warden.test", vec!["api".into()]);
        (k, ks, v)
    }

    #[test]
    fn round_trip_and_time_checks() {
        let (k, ks, v) = setup();
        let now = 1_700_000_000;
        let t = jws::encode("at+jwt", Some("k1"), &claims(now), &k).unwrap_or_default();
        let ok = verify_access_token(&t, &ks, &v, now);
        assert_eq!(ok.map(|t| t.into_claims()), Ok(claims(now)));
        assert_eq!(
            verify_access_token(&t, &ks, &v, now + 900 + 31).err(),
            Some(TokenError::Expired)
        );
        assert!(verify_access_token(&t, &ks, &v, now + 900 + 30).is_ok());
        assert_eq!(
            verify_access_token(&t, &ks, &v, now - 31).err(),
            Some(TokenError::NotYetValid)
        );
    }

    #[test]
    fn wrong_issuer_audience_type_kid() {
        let (k, ks, v) = setup();
        let now = 1_700_000_000;
        let mut c = claims(now);
        c.iss = "https://evil".into();
        let t = jws::encode("at+jwt", Some("k1"), &c, &k).unwrap_or_default();
        assert!(matches!(
            verify_access_token(&t, &ks, &v, now),
            Err(TokenError::Issuer(_))
        ));
        let mut c = claims(now);
        c.aud = Audience::Many(vec!["other".into(), "x".into()]);
        let t = jws::encode("at+jwt", Some("k1"), &c, &k).unwrap_or_default();
        assert_eq!(
            verify_access_token(&t, &ks, &v, now).err(),
            Some(TokenError::Audience)
        );
        let t = jws::encode("JWT", Some("k1"), &claims(now), &k).unwrap_or_default();
        assert!(matches!(
            verify_access_token(&t, &ks, &v, now),
            Err(TokenError::Type { .. })
        ));
        let t = jws::encode("application/AT+JWT", Some("k1"), &claims(now), &k).unwrap_or_default();
        assert!(verify_access_token(&t, &ks, &v, now).is_ok());
        let t = jws::encode("at+jwt", Some("k2"), &claims(now), &k).unwrap_or_default();
        assert_eq!(
            verify_access_token(&t, &ks, &v, now).err(),
            Some(TokenError::UnknownKid("k2".into()))
        );
    }

    #[test]
    fn oversized_token_is_refused_before_parsing() {
        let (_, ks, v) = setup();
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            verify_access_token(&big, &ks, &v, 0).err(),
            Some(TokenError::TooLarge(MAX_TOKEN_BYTES + 1))
        );
    }
}
