//! Every cryptographic operation Warden performs: Ed25519 keys, strict signature
//! verification, RFC 7638 thumbprints, SHA-256, sealing at rest and client-secret digests
//! ([`client_secret`]). Nothing outside this module touches a primitive.
//!
//! Verification is always `verify_strict`: it refuses small-order keys and `R` values and
//! non-canonical `S`, which plain verification accepts (see the speccheck vectors).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use rand_core::CryptoRngCore;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

pub mod client_secret;
pub mod refresh_token;

pub use client_secret::{ClientSecretKey, MintedSecret, StoredSecret, StoredSecretError};
pub use refresh_token::{RefreshTokenError, RefreshTokenKey};

pub const PUBLIC_KEY_LEN: usize = 32;
pub const SECRET_KEY_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("public key is not a valid Ed25519 point encoding")]
    InvalidEncoding,
    #[error("public key has small order; it would accept forged signatures")]
    SmallOrder,
    #[error("key material must be {0} bytes")]
    Length(usize),
}

/// An Ed25519 private key. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(ed25519_dalek::SigningKey::generate(rng))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let seed: &[u8; SECRET_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::Length(SECRET_KEY_LEN))?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(seed)))
    }

    pub fn to_bytes(&self) -> Zeroizing<[u8; SECRET_KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SigningKey").field(&"<redacted>").finish()
    }
}

/// An Ed25519 public key that is safe to verify against: a valid point of large order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Decodes a key from outside (a registration, a JWKS, a DPoP proof); small-order keys are
    /// refused because a forged signature verifies under them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: &[u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::Length(PUBLIC_KEY_LEN))?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(arr).map_err(|_| KeyError::InvalidEncoding)?;
        if key.is_weak() {
            return Err(KeyError::SmallOrder);
        }
        Ok(Self(key))
    }

    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// Strict verification of a detached signature.
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &sig).is_ok()
    }

    /// The RFC 7638 JWK thumbprint of the OKP key, base64url.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(self.to_bytes())
        );
        URL_SAFE_NO_PAD.encode(sha256(canonical.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", URL_SAFE_NO_PAD.encode(self.to_bytes()))
    }
}

/// Strict verification over raw key bytes, for callers that hold only bytes (test vectors,
/// foreign keys). Returns false for anything that is not a valid signature under a valid key.
pub fn verify_strict_raw(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(pk), Ok(sig)) = (
        <&[u8; PUBLIC_KEY_LEN]>::try_from(public_key),
        <&[u8; SIGNATURE_LEN]>::try_from(signature),
    ) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(pk) else {
        return false;
    };
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// Plain (non-strict) verification, exposed only so tests and benchmarks can show what strict
/// verification refuses. Never use it to admit anything.
pub fn verify_lenient_raw(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(pk), Ok(sig)) = (
        <&[u8; PUBLIC_KEY_LEN]>::try_from(public_key),
        <&[u8; SIGNATURE_LEN]>::try_from(signature),
    ) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(pk) else {
        return false;
    };
    key.verify(message, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// A 256-bit key that seals secrets at rest (XChaCha20-Poly1305, random 192-bit nonces).
pub struct SealingKey(Zeroizing<[u8; 32]>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is truncated")]
    Truncated,
    #[error("sealed value does not open with this key (wrong master key, or tampered)")]
    Open,
}

const SEAL_NONCE_LEN: usize = 24;

impl SealingKey {
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(k.as_mut());
        Self(k)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Length(32))?;
        Ok(Self(Zeroizing::new(arr)))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key of its own for one use, HKDF-SHA-256 of this one under `label`: what it seals,
    /// no other use of this key can open.
    pub fn derive(&self, label: &[u8]) -> Self {
        let hkdf = hkdf::Hkdf::<Sha256>::new(None, self.0.as_ref());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA-256's limit: expansion cannot fail.
        if hkdf.expand(label, key.as_mut()).is_err() {
            key.fill(0);
        }
        Self(key)
    }

    /// Returns nonce ‖ ciphertext; `context` is bound as associated data, so a sealed value
    /// cannot be moved to another record.
    pub fn seal(&self, rng: &mut impl CryptoRngCore, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
        let cipher = chacha20poly1305::XChaCha20Poly1305::new(self.0.as_ref().into());
        let mut nonce = [0u8; SEAL_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        // Encryption with a valid key and in-memory buffers cannot fail.
        if let Ok(ct) = cipher.encrypt(
            (&nonce).into(),
            Payload {
                msg: plaintext,
                aad: context,
            },
        ) {
            out.extend_from_slice(&ct);
        }
        out
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
        if sealed.len() < SEAL_NONCE_LEN + 16 {
            return Err(SealError::Truncated);
        }
        let (nonce, ct) = sealed.split_at(SEAL_NONCE_LEN);
        let cipher = chacha20poly1305::XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// Hashes a client secret with Argon2id (default parameters) into a PHC string: how earlier
/// releases stored secrets, kept so that tests can plant one. New secrets are digests
/// ([`ClientSecretKey::mint`]).
pub fn hash_legacy_secret(secret: &[u8], rng: &mut impl CryptoRngCore) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(secret, &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a secret against a PHC string from [`hash_legacy_secret`]; comparison is constant
/// time. Deliberately slow (~20 ms, ~19 MiB): never on an async worker.
pub fn verify_legacy_secret(secret: &[u8], phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(secret, &h)
            .is_ok()
    })
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant-time equality, for comparing secrets and their hashes.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let k = SigningKey::generate(&mut OsRng);
        let sig = k.sign(b"hello");
        assert!(k.public_key().verify(b"hello", &sig));
        assert!(!k.public_key().verify(b"hellp", &sig));
        assert!(format!("{k:?}").contains("redacted"));
    }

    #[test]
    fn sealing_binds_key_and_context() {
        let k = SealingKey::generate(&mut OsRng);
        let sealed = k.seal(&mut OsRng, b"secret", b"kid-1");
        assert_eq!(
            k.open(&sealed, b"kid-1").map(|p| p.to_vec()),
            Ok(b"secret".to_vec())
        );
        assert_eq!(k.open(&sealed, b"kid-2").err(), Some(SealError::Open));
        let other = SealingKey::generate(&mut OsRng);
        assert_eq!(other.open(&sealed, b"kid-1").err(), Some(SealError::Open));
        assert_eq!(
            k.open(&sealed[..10], b"kid-1").err(),
            Some(SealError::Truncated)
        );
    }

    #[test]
    fn legacy_secrets_hash_and_verify() {
        let h = hash_legacy_secret(b"s3cret", &mut OsRng).unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert!(matches!(
            StoredSecret::parse(&h),
            Ok(StoredSecret::Argon2id(_))
        ));
        assert!(verify_legacy_secret(b"s3cret", &h));
        assert!(!verify_legacy_secret(b"s3cre7", &h));
        assert!(!verify_legacy_secret(b"s3cret", "not a hash"));
    }

    #[test]
    fn small_order_keys_are_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity), Err(KeyError::SmallOrder));
        assert_eq!(PublicKey::from_bytes(&[0u8; 31]), Err(KeyError::Length(32)));
        // The forged signature `01 00…00` under the identity key passes lenient verification
        // of any message; strict verification refuses it.
        let mut forged = [0u8; 64];
        forged[0] = 1;
        assert!(verify_lenient_raw(&identity, b"anything", &forged));
        assert!(!verify_strict_raw(&identity, b"anything", &forged));
    }
}
