//! Compact JWS (RFC 7515) with EdDSA only: encoding, and parsing into an unverified token.
//!
//! Parsing refuses before any signature work: tokens over [`MAX_TOKEN_BYTES`], anything but
//! three base64url parts, every `alg` but `EdDSA`/`Ed25519`, any `crit`, and key material
//! carried in the header (`jku`, `x5u`, `x5c`), which Warden never honours. An embedded
//! `jwk` is kept for callers that define its meaning (DPoP proofs); others refuse it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::crypto::{SigningKey, SIGNATURE_LEN};
use crate::jwks::{is_ed25519_alg, Jwk};
use crate::token::TokenError;

/// Largest compact JWS accepted, checked before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The protected header of a token being verified.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub jwk: Option<Jwk>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    jku: Option<IgnoredAny>,
    #[serde(default)]
    x5u: Option<IgnoredAny>,
    #[serde(default)]
    x5c: Option<IgnoredAny>,
}

/// The header Warden writes.
#[derive(Debug, Clone, Serialize)]
pub struct OutHeader<'a> {
    pub alg: &'static str,
    pub typ: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwk: Option<&'a Jwk>,
}

/// Signs `claims` into a compact JWS with `alg: EdDSA`.
pub fn encode(
    typ: &str,
    kid: Option<&str>,
    claims: &impl Serialize,
    key: &SigningKey,
) -> Result<String, TokenError> {
    encode_with_header(
        &OutHeader {
            alg: "EdDSA",
            typ,
            kid,
            jwk: None,
        },
        claims,
        key,
    )
}

pub fn encode_with_header(
    header: &OutHeader<'_>,
    claims: &impl Serialize,
    key: &SigningKey,
) -> Result<String, TokenError> {
    let header = serde_json::to_vec(header).map_err(|e| TokenError::Encode(e.to_string()))?;
    let claims = serde_json::to_vec(claims).map_err(|e| TokenError::Encode(e.to_string()))?;
    let mut out = URL_SAFE_NO_PAD.encode(header);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut out);
    let signature = key.sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut out);
    Ok(out)
}

/// A structurally valid EdDSA compact JWS whose signature has not been checked yet.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    pub(crate) header: Header,
    pub(crate) signing_input: &'a [u8],
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: [u8; SIGNATURE_LEN],
}

impl<'a> UnverifiedToken<'a> {
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(token.len()));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        let header_bytes = decode(h, "header")?;
        let header: Header =
            serde_json::from_slice(&header_bytes).map_err(|e| TokenError::Header(e.to_string()))?;
        if !is_ed25519_alg(&header.alg) {
            return Err(TokenError::Algorithm(header.alg));
        }
        if header.crit.is_some() {
            return Err(TokenError::Critical);
        }
        if header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some() {
            return Err(TokenError::KeyReference);
        }
        let signature: [u8; SIGNATURE_LEN] = decode(s, "signature")?
            .try_into()
            .map_err(|_| TokenError::Malformed("signature is not 64 bytes"))?;
        let payload = decode(p, "payload")?;
        let signing_input = token
            .as_bytes()
            .get(..h.len() + 1 + p.len())
            .ok_or(TokenError::Malformed("token is shorter than its parts"))?;
        Ok(Self {
            header,
            signing_input,
            payload,
            signature,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The claims, read without any check. Only for finding which key to verify with (a
    /// client assertion names its client in `iss`); never for a decision.
    pub fn claims_unverified<C: DeserializeOwned>(&self) -> Result<C, TokenError> {
        serde_json::from_slice(&self.payload).map_err(|e| TokenError::Claims(e.to_string()))
    }
}

fn decode(part: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Base64(what))
}
