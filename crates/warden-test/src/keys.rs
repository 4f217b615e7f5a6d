//! Keys and what a client signs with them.

use rand_core::OsRng;
use warden_core::claims::{AssertionClaims, Audience};
use warden_core::dpop::{access_token_hash, create_proof, ProofClaims};
use warden_core::id::random_token_id;
use warden_core::jwks::Jwk;
use warden_core::{jws, AccessClaims, SigningKey};

/// A fresh Ed25519 key.
pub fn new_key() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}

/// The public half of `key` as a JWK without `kid`, as a principal is registered with.
pub fn public_jwk(key: &SigningKey) -> Jwk {
    Jwk::from_public_key(&key.public_key(), None)
}

/// The claims of a `private_key_jwt` assertion by `client_id` for `token_endpoint` at `now`,
/// valid for a minute, with a fresh `jti`.
pub fn assertion_claims(client_id: &str, token_endpoint: &str, now: i64) -> AssertionClaims {
    AssertionClaims {
        iss: client_id.to_owned(),
        sub: client_id.to_owned(),
        aud: Audience::One(token_endpoint.to_owned()),
        exp: now + 60,
        iat: Some(now),
        nbf: None,
        jti: random_token_id(&mut OsRng),
    }
}

/// A signed `private_key_jwt` assertion (RFC 7523).
pub fn assertion(client_id: &str, key: &SigningKey, token_endpoint: &str, now: i64) -> String {
    sign_assertion(&assertion_claims(client_id, token_endpoint, now), key)
}

/// `claims` signed as a client assertion with `key`.
pub fn sign_assertion(claims: &AssertionClaims, key: &SigningKey) -> String {
    jws::encode("JWT", None, claims, key).unwrap()
}

/// A DPoP proof (RFC 9449) by `key` for `htm` `htu` at `iat`, bound to `access_token` when
/// given (`ath`), with a fresh `jti`.
pub fn dpop_proof(
    key: &SigningKey,
    htm: &str,
    htu: &str,
    iat: i64,
    access_token: Option<&str>,
) -> String {
    create_proof(
        key,
        &ProofClaims {
            jti: random_token_id(&mut OsRng),
            htm: htm.into(),
            htu: htu.into(),
            iat,
            ath: access_token.map(access_token_hash),
            nonce: None,
        },
    )
    .unwrap()
}

/// A token's claims, read without verification: the tests inspect what the authority signed.
pub fn claims_of(token: &str) -> AccessClaims {
    jws::UnverifiedToken::parse(token)
        .unwrap()
        .claims_unverified()
        .unwrap()
}
