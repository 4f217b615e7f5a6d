//! Client secrets for `client_secret_basic`: minted with 256 bits of randomness, stored as
//! an HMAC-SHA-256 digest under a key derived from the master key, and checked in constant
//! time. A secret that cannot be guessed needs no slow password hash: the digest only has to
//! be useless without the server's key, so a check costs one HMAC, not an Argon2id run that
//! anyone naming a client id could make the server pay for.
//!
//! Secrets stored by earlier releases are Argon2id PHC strings; [`StoredSecret`] tells the
//! two apart by their prefix, so a caller can check an old one the slow way (off any async
//! worker) and replace it with a digest once it has matched.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{constant_time_eq, SealingKey};

/// Bytes of randomness in a minted secret: 256 bits, beyond any search.
pub const CLIENT_SECRET_BYTES: usize = 32;

/// Every minted secret starts with this, so a leaked one is recognisable (secret scanners).
pub const CLIENT_SECRET_PREFIX: &str = "wsec_";

/// The stored form of a digest: this prefix, then the base64url digest.
pub const DIGEST_PREFIX: &str = "$hmac-sha256$";

/// The prefix of the Argon2id PHC strings earlier releases stored.
const ARGON2ID_PREFIX: &str = "$argon2id$";

/// What the key is derived for, so that no other use of the master key can produce it.
const DERIVATION_LABEL: &[u8] = b"warden/client-secret-digest/v1";

const DIGEST_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The key client-secret digests are made with: HKDF-SHA-256 of the master key, expanded
/// with its own label. Every replica on the same master key derives the same one.
pub struct ClientSecretKey(Zeroizing<[u8; 32]>);

/// A minted secret, shown to its client once, and the digest the store keeps.
pub struct MintedSecret {
    pub secret: Zeroizing<String>,
    pub stored: String,
}

/// What the store holds for a client's secret, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredSecret<'s> {
    /// A digest under [`ClientSecretKey`].
    Digest([u8; DIGEST_LEN]),
    /// A legacy Argon2id PHC string, checked with [`super::verify_legacy_secret`].
    Argon2id(&'s str),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoredSecretError {
    #[error("stored client secret has an unknown format")]
    UnknownFormat,
    #[error("stored client secret digest is not {DIGEST_LEN} bytes of base64url")]
    MalformedDigest,
}

impl ClientSecretKey {
    pub fn derive(master: &SealingKey) -> Self {
        Self(Zeroizing::new(*master.derive(DERIVATION_LABEL).as_bytes()))
    }

    /// A new secret (`wsec_` and 256 random bits, base64url) and its stored digest.
    pub fn mint(&self, rng: &mut impl CryptoRngCore) -> MintedSecret {
        let mut raw = Zeroizing::new([0u8; CLIENT_SECRET_BYTES]);
        rng.fill_bytes(raw.as_mut());
        let secret = Zeroizing::new(format!(
            "{CLIENT_SECRET_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(raw.as_ref())
        ));
        let stored = self.digest(secret.as_bytes());
        MintedSecret { secret, stored }
    }

    /// The stored form of `secret`'s digest: `$hmac-sha256$` and the base64url digest.
    pub fn digest(&self, secret: &[u8]) -> String {
        format!(
            "{DIGEST_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.tag(secret))
        )
    }

    /// Whether `secret` has `digest`, compared in constant time.
    pub fn verify(&self, secret: &[u8], digest: &[u8; DIGEST_LEN]) -> bool {
        constant_time_eq(&self.tag(secret), digest)
    }

    fn tag(&self, secret: &[u8]) -> [u8; DIGEST_LEN] {
        // HMAC takes a key of any length: a 32-byte one never fails.
        let Ok(mut mac) = HmacSha256::new_from_slice(self.0.as_ref()) else {
            return [0u8; DIGEST_LEN];
        };
        mac.update(secret);
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for ClientSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecretKey(<redacted>)")
    }
}

impl std::fmt::Debug for MintedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedSecret")
            .field("secret", &"<redacted>")
            .field("stored", &self.stored)
            .finish()
    }
}

impl<'s> StoredSecret<'s> {
    pub fn parse(stored: &'s str) -> Result<Self, StoredSecretError> {
        if let Some(b64) = stored.strip_prefix(DIGEST_PREFIX) {
            let bytes = URL_SAFE_NO_PAD
                .decode(b64)
                .map_err(|_| StoredSecretError::MalformedDigest)?;
            let digest = bytes
                .try_into()
                .map_err(|_| StoredSecretError::MalformedDigest)?;
            return Ok(Self::Digest(digest));
        }
        if stored.starts_with(ARGON2ID_PREFIX) {
            return Ok(Self::Argon2id(stored));
        }
        Err(StoredSecretError::UnknownFormat)
    }
}

/// Whether `secret` has the form [`ClientSecretKey::mint`] gives, so carries 256 random
/// bits: only such a secret may move from a legacy Argon2id hash to a digest, since a
/// guessable one (set by hand, say) would lose the protection the slow hash gave it.
pub fn is_minted(secret: &str) -> bool {
    secret
        .strip_prefix(CLIENT_SECRET_PREFIX)
        .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
        .is_some_and(|raw| raw.len() == CLIENT_SECRET_BYTES)
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;

    use super::*;

    fn key(byte: u8) -> ClientSecretKey {
        ClientSecretKey::derive(&SealingKey::from_bytes(&[byte; 32]).unwrap())
    }

    fn digest_of(stored: &str) -> [u8; DIGEST_LEN] {
        match StoredSecret::parse(stored) {
            Ok(StoredSecret::Digest(d)) => d,
            other => panic!("not a digest: {other:?}"),
        }
    }

    #[test]
    fn a_minted_secret_carries_256_bits_and_verifies_against_its_digest() {
        let k = key(1);
        let m = k.mint(&mut OsRng);
        assert!(is_minted(&m.secret));
        let raw = URL_SAFE_NO_PAD
            .decode(m.secret.strip_prefix(CLIENT_SECRET_PREFIX).unwrap())
            .unwrap();
        assert_eq!(raw.len() * 8, 256);
        assert!(m.stored.starts_with(DIGEST_PREFIX));
        assert!(!m.stored.contains(m.secret.as_str()));
        assert!(k.verify(m.secret.as_bytes(), &digest_of(&m.stored)));
        assert_ne!(k.mint(&mut OsRng).secret, m.secret);
    }

    #[test]
    fn a_wrong_secret_or_a_wrong_key_fails() {
        let k = key(1);
        let m = k.mint(&mut OsRng);
        let d = digest_of(&m.stored);
        let mut wrong = m.secret.to_string();
        wrong.push('x');
        assert!(!k.verify(wrong.as_bytes(), &d));
        assert!(!k.verify(b"", &d));
        assert!(!key(2).verify(m.secret.as_bytes(), &d));
        // One flipped bit of the digest is a mismatch too.
        let mut flipped = d;
        flipped[31] ^= 1;
        assert!(!k.verify(m.secret.as_bytes(), &flipped));
    }

    #[test]
    fn the_key_is_derived_not_the_master_key_itself() {
        let master = SealingKey::from_bytes(&[7; 32]).unwrap();
        let derived = ClientSecretKey::derive(&master);
        assert_ne!(derived.0.as_ref(), master.as_bytes());
        assert_eq!(
            derived.0.as_ref(),
            ClientSecretKey::derive(&master).0.as_ref()
        );
        assert!(format!("{derived:?}").contains("redacted"));
    }

    #[test]
    fn stored_formats_are_told_apart() {
        let k = key(1);
        let stored = k.digest(b"wsec_x");
        assert!(matches!(
            StoredSecret::parse(&stored),
            Ok(StoredSecret::Digest(_))
        ));
        let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
        assert_eq!(StoredSecret::parse(phc), Ok(StoredSecret::Argon2id(phc)));
        for bad in [
            "",
            "plain",
            "$argon2i$v=19$x",
            "$hmac-sha512$abc",
            "hmac-sha256$abc",
        ] {
            assert_eq!(
                StoredSecret::parse(bad),
                Err(StoredSecretError::UnknownFormat),
                "{bad}"
            );
        }
        let short = format!("{DIGEST_PREFIX}{}", URL_SAFE_NO_PAD.encode([0u8; 31]));
        let long = format!("{DIGEST_PREFIX}{}", URL_SAFE_NO_PAD.encode([0u8; 33]));
        for bad in [
            DIGEST_PREFIX.to_owned(),
            format!("{DIGEST_PREFIX}!!"),
            short,
            long,
        ] {
            assert_eq!(
                StoredSecret::parse(&bad),
                Err(StoredSecretError::MalformedDigest),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_minted_secrets_count_as_minted() {
        let m = key(1).mint(&mut OsRng);
        assert!(is_minted(&m.secret));
        let short = format!(
            "{CLIENT_SECRET_PREFIX}{}",
            URL_SAFE_NO_PAD.encode([1u8; 16])
        );
        for not in ["", "wsec_", "hunter2", "wsec_!!!!", short.as_str()] {
            assert!(!is_minted(not), "{not}");
        }
        assert!(!is_minted(&m.secret.replace(CLIENT_SECRET_PREFIX, "xsec_")));
    }
}
