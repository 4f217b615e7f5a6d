//! DPoP proofs (RFC 9449): a client proves, request by request, that it holds the private key
//! a token is bound to.
//!
//! A proof is a JWS of type `dpop+jwt` signed by the key carried in its own `jwk` header. It
//! names the request (`htm`, `htu`), is fresh (`iat`), unique (`jti`, which the caller checks
//! against a replay cache) and, when presented with an access token, commits to that token
//! (`ath`). The token commits to the key through `cnf.jkt`, the key's RFC 7638 thumbprint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::crypto::{sha256, SigningKey};
use crate::jwks::{Jwk, JwkError};
use crate::jws::{encode_with_header, OutHeader, UnverifiedToken};
use crate::token::TokenError;

/// The media type of a proof's `typ` header.
pub const PROOF_TYPE: &str = "dpop+jwt";

/// Why a proof was refused. Messages are safe to show the presenter.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DpopError {
    #[error("DPoP proof: {0}")]
    Token(#[from] TokenError),
    #[error("DPoP proof must have typ `dpop+jwt`")]
    Type,
    #[error("DPoP proof carries no `jwk` header")]
    MissingKey,
    #[error("DPoP proof key: {0}")]
    Key(#[from] JwkError),
    #[error("DPoP proof signature does not verify")]
    Signature,
    #[error("DPoP proof claims are invalid: {0}")]
    Claims(String),
    #[error("DPoP proof is for method `{0}`, not this request's")]
    Method(String),
    #[error("DPoP proof is for `{0}`, not this request's URL")]
    Url(String),
    #[error("DPoP proof is too old or from the future")]
    Stale,
    #[error("DPoP proof has no `ath`, which a request with an access token requires")]
    MissingTokenHash,
    #[error("DPoP proof `ath` does not match the access token")]
    TokenHash,
    #[error("DPoP proof key is not the key the token is bound to")]
    KeyMismatch,
}

/// A proof's claims (RFC 9449 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    pub method: &'a str,
    /// The request's absolute URL as the client addressed it; query and fragment are ignored.
    pub url: &'a str,
    /// The access token presented with the proof, if any; the proof's `ath` must hash it.
    pub access_token: Option<&'a str>,
    pub now: i64,
    /// How far `iat` may lie from `now`, either way, in seconds.
    pub max_skew: i64,
}

/// A proof that verified: the key's thumbprint, and what the caller must remember so the
/// proof cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof key; equals `cnf.jkt` of a token bound to it.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

/// Verifies a proof against the request it came with.
pub fn verify_proof(proof: &str, request: &ProofRequest<'_>) -> Result<VerifiedProof, DpopError> {
    let token = UnverifiedToken::parse(proof)?;
    let header = token.header();
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYPE))
    {
        return Err(DpopError::Type);
    }
    let key = header
        .jwk
        .as_ref()
        .ok_or(DpopError::MissingKey)?
        .to_public_key()?;
    if !key.verify(token.signing_input, &token.signature) {
        return Err(DpopError::Signature);
    }
    let claims: ProofClaims =
        serde_json::from_slice(&token.payload).map_err(|e| DpopError::Claims(e.to_string()))?;
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(DpopError::Claims(
            "`jti` must be 1 to 256 characters".into(),
        ));
    }
    if claims.htm != request.method {
        return Err(DpopError::Method(claims.htm));
    }
    if normalize_htu(&claims.htu) != Some(normalize_htu(request.url).unwrap_or_default()) {
        return Err(DpopError::Url(claims.htu));
    }
    // abs_diff: an `iat` near i64::MIN must not overflow into "fresh".
    if claims.iat.abs_diff(request.now) > request.max_skew.unsigned_abs() {
        return Err(DpopError::Stale);
    }
    match (request.access_token, claims.ath.as_deref()) {
        (Some(_), None) => return Err(DpopError::MissingTokenHash),
        (Some(at), Some(ath)) if ath != access_token_hash(at) => return Err(DpopError::TokenHash),
        _ => {}
    }
    Ok(VerifiedProof {
        jkt: key.thumbprint(),
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// `ath`: base64url SHA-256 of the access token's ASCII bytes.
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(access_token.as_bytes()))
}

/// Signs a proof, for Warden's own clients (CLI, tests, benchmarks).
pub fn create_proof(key: &SigningKey, claims: &ProofClaims) -> Result<String, TokenError> {
    let jwk = Jwk::from_public_key(&key.public_key(), None);
    encode_with_header(
        &OutHeader {
            alg: "EdDSA",
            typ: PROOF_TYPE,
            kid: None,
            jwk: Some(&jwk),
        },
        claims,
        key,
    )
}

/// The RFC 9449 §4.3 comparison form of a URL: scheme and host lowercased, default port
/// dropped, query and fragment removed, empty path as `/`. `None` when it is not an absolute
/// http(s) URL.
pub fn normalize_htu(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const URL: &str = "https://api.example/crm/contacts";

    fn claims(now: i64) -> ProofClaims {
        ProofClaims {
            jti: "p-1".into(),
            htm: "GET".into(),
            htu: URL.into(),
            iat: now,
            ath: Some(access_token_hash("tok")),
            nonce: None,
        }
    }

    fn request(now: i64) -> ProofRequest<'static> {
        ProofRequest {
            method: "GET",
            url: URL,
            access_token: Some("tok"),
            now,
            max_skew: 60,
        }
    }

    #[test]
    fn accepts_a_matching_proof_and_reports_the_thumbprint() {
        let key = SigningKey::generate(&mut OsRng);
        let proof = create_proof(&key, &claims(1_000)).unwrap();
        let verified = verify_proof(&proof, &request(1_010)).unwrap();
        assert_eq!(verified.jkt, key.public_key().thumbprint());
        assert_eq!(verified.jti, "p-1");
    }

    #[test]
    fn refuses_each_mismatch() {
        let key = SigningKey::generate(&mut OsRng);
        let check = |c: ProofClaims, r: ProofRequest<'_>| {
            verify_proof(&create_proof(&key, &c).unwrap(), &r).unwrap_err()
        };
        let now = 1_000;
        assert!(matches!(
            check(
                ProofClaims {
                    htm: "POST".into(),
                    ..claims(now)
                },
                request(now)
            ),
            DpopError::Method(_)
        ));
        assert!(matches!(
            check(
                ProofClaims {
                    htu: "https://api.example/other".into(),
                    ..claims(now)
                },
                request(now)
            ),
            DpopError::Url(_)
        ));
        assert_eq!(check(claims(now - 61), request(now)), DpopError::Stale);
        assert_eq!(check(claims(now + 61), request(now)), DpopError::Stale);
        assert_eq!(
            check(claims(i64::MIN + now), request(now)),
            DpopError::Stale
        );
        assert_eq!(check(claims(i64::MAX), request(now)), DpopError::Stale);
        assert_eq!(
            check(
                ProofClaims {
                    ath: None,
                    ..claims(now)
                },
                request(now)
            ),
            DpopError::MissingTokenHash
        );
        assert_eq!(
            check(
                claims(now),
                ProofRequest {
                    access_token: Some("other"),
                    ..request(now)
                }
            ),
            DpopError::TokenHash
        );
    }

    #[test]
    fn refuses_a_proof_signed_by_another_key_than_its_header_names() {
        let key = SigningKey::generate(&mut OsRng);
        let other = SigningKey::generate(&mut OsRng);
        let jwk = Jwk::from_public_key(&other.public_key(), None);
        let forged = encode_with_header(
            &OutHeader {
                alg: "EdDSA",
                typ: PROOF_TYPE,
                kid: None,
                jwk: Some(&jwk),
            },
            &claims(1_000),
            &key,
        )
        .unwrap();
        assert_eq!(
            verify_proof(&forged, &request(1_000)).unwrap_err(),
            DpopError::Signature
        );
    }

    #[test]
    fn refuses_wrong_type_and_missing_key() {
        let key = SigningKey::generate(&mut OsRng);
        let jwk = Jwk::from_public_key(&key.public_key(), None);
        let typed = |typ, jwk| {
            encode_with_header(
                &OutHeader {
                    alg: "EdDSA",
                    typ,
                    kid: None,
                    jwk,
                },
                &claims(1_000),
                &key,
            )
            .unwrap()
        };
        assert_eq!(
            verify_proof(&typed("at+jwt", Some(&jwk)), &request(1_000)).unwrap_err(),
            DpopError::Type
        );
        assert_eq!(
            verify_proof(&typed(PROOF_TYPE, None), &request(1_000)).unwrap_err(),
            DpopError::MissingKey
        );
    }

    #[test]
    fn htu_comparison_follows_rfc_9449() {
        assert_eq!(
            normalize_htu("HTTPS://API.Example:443/a?q=1#f").as_deref(),
            Some("https://api.example/a")
        );
        assert_eq!(normalize_htu("http://h:80").as_deref(), Some("http://h/"));
        assert_eq!(
            normalize_htu("http://h:8080/x").as_deref(),
            Some("http://h:8080/x")
        );
        assert_eq!(normalize_htu("ftp://h/x"), None);
        assert_eq!(normalize_htu("/relative"), None);
        assert_eq!(normalize_htu("http://user@h/x"), None);
    }
}
