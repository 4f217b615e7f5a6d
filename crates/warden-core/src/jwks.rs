//! JSON Web Keys (RFC 7517) for Ed25519 (RFC 8037 OKP keys).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::crypto::{KeyError, PublicKey};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwkError {
    #[error("JWK is not an Ed25519 OKP key (`kty` `{kty}`, `crv` `{crv}`)")]
    NotEd25519 { kty: String, crv: String },
    #[error("JWK `alg` `{0}` is not EdDSA")]
    Algorithm(String),
    #[error("JWK carries a private key (`d`); send only the public key")]
    PrivateKey,
    #[error("JWK `x` is not unpadded base64url")]
    Encoding,
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A public JWK. Deserialization notes, but never keeps, a private `d` member so that it can
/// be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, rename = "d", skip_serializing, deserialize_with = "present")]
    has_private_part: bool,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// The two spellings of the Ed25519 JWS algorithm: RFC 8037 `EdDSA` and RFC 9864 `Ed25519`.
pub fn is_ed25519_alg(alg: &str) -> bool {
    alg == "EdDSA" || alg == "Ed25519"
}

impl Jwk {
    pub fn from_public_key(key: &PublicKey, kid: Option<String>) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.to_bytes()),
            kid,
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
            has_private_part: false,
        }
    }

    /// Validates the JWK and decodes its key; small-order keys are refused.
    pub fn to_public_key(&self) -> Result<PublicKey, JwkError> {
        if self.has_private_part {
            return Err(JwkError::PrivateKey);
        }
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(JwkError::NotEd25519 {
                kty: self.kty.clone(),
                crv: self.crv.clone(),
            });
        }
        if let Some(alg) = self.alg.as_deref().filter(|a| !is_ed25519_alg(a)) {
            return Err(JwkError::Algorithm(alg.to_owned()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|_| JwkError::Encoding)?;
        Ok(PublicKey::from_bytes(&bytes)?)
    }
}

/// A JWK Set document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_foreign_jwks_are_refused() {
        let with_d: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(with_d.to_public_key(), Err(JwkError::PrivateKey));
        assert!(!serde_json::to_string(&with_d)
            .unwrap_or_default()
            .contains("\"d\""));

        let ec: Jwk = serde_json::from_str(r#"{"kty":"EC","crv":"P-256","x":"AAAA"}"#)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(
            ec.to_public_key(),
            Err(JwkError::NotEd25519 { .. })
        ));
    }
}
