//! What signs the tokens the authority issues: the [`Signer`] trait, and the one function
//! that turns claims into a compact JWS through it.
//!
//! The keyring's active key ([`crate::keys::KeyringState`]) is a signer; a key held in a KMS
//! or an HSM is another, implemented outside this crate without touching the issue path.
//! This module must not decide what is signed (the grants do) nor when (the issue path does).

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use warden_core::crypto::SIGNATURE_LEN;
use warden_core::jws::OutHeader;

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the token does not serialize: {0}")]
    Encode(#[from] serde_json::Error),
    /// The key could not be used now (a KMS that does not answer, an HSM session lost).
    #[error("the signing key is unavailable: {0}")]
    Unavailable(String),
}

/// An Ed25519 key that signs tokens (`alg: EdDSA`), wherever it is held.
#[async_trait]
pub trait Signer: Send + Sync {
    /// The key id written into each token's header; verifiers look the key up by it in
    /// the JWKS.
    fn kid(&self) -> &str;

    /// The Ed25519 signature of `message` (a JWS signing input).
    async fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError>;
}

/// Signs `claims` into a compact JWS with `alg: EdDSA`, `typ` and the signer's `kid`: the
/// same bytes [`warden_core::jws::encode`] writes with a local key.
pub async fn sign_token<C: Serialize + ?Sized>(
    signer: &dyn Signer,
    typ: &str,
    claims: &C,
) -> Result<String, SignError> {
    let header = serde_json::to_vec(&OutHeader {
        alg: "EdDSA",
        typ,
        kid: Some(signer.kid()),
        jwk: None,
    })?;
    let claims = serde_json::to_vec(claims)?;
    let mut out = URL_SAFE_NO_PAD.encode(header);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut out);
    let signature = signer.sign(out.as_bytes()).await?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;
    use warden_core::{jws, SigningKey};

    use super::*;

    struct Local {
        kid: String,
        key: SigningKey,
    }

    #[async_trait]
    impl Signer for Local {
        fn kid(&self) -> &str {
            &self.kid
        }

        async fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
            Ok(self.key.sign(message))
        }
    }

    #[tokio::test]
    async fn a_token_signed_through_the_trait_is_the_one_a_local_key_writes() {
        let local = Local {
            kid: "k1".into(),
            key: SigningKey::generate(&mut OsRng),
        };
        let claims = serde_json::json!({ "sub": "agt_1", "scope": "a:b" });
        let through = sign_token(&local, "at+jwt", &claims).await.unwrap();
        let direct = jws::encode("at+jwt", Some("k1"), &claims, &local.key).unwrap();
        // Ed25519 signatures are deterministic: the same input gives the same token.
        assert_eq!(through, direct);
    }
}
