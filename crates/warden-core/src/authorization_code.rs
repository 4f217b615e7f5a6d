//! Authorization codes (OAuth 2.1 §4.1.2–4.1.3): a random handle the browser carries from
//! the authorization endpoint to the client, redeemed once, within a minute, by the client it
//! was issued to, at the redirect URI it was sent to, with the PKCE verifier it was bound to.
//!
//! The store keeps a code's SHA-256, never the code: it has 256 random bits, so the digest is
//! beyond search, and a copy of the database hands out no live code. A code presented a
//! second time is refused and tells the caller to revoke what the first redemption issued
//! (RFC 6749 §4.1.2): one of the two presenters stole it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::CryptoRngCore;

use crate::crypto::sha256;
use crate::pkce::{CodeChallenge, PkceError};
use crate::ClientId;

/// A code lives at most this long (OAuth 2.1 §4.1.2 recommends at most 10 minutes; a
/// browser hop takes seconds).
pub const CODE_LIFETIME_SECS: i64 = 60;

/// Every code starts with this, so a leaked one is recognisable.
pub const CODE_PREFIX: &str = "wac_";

/// A freshly minted code and the digest the store keeps.
pub struct MintedCode {
    pub code: String,
    pub digest: String,
}

/// What a code was issued for, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub code_challenge: CodeChallenge,
    pub issued_at: i64,
    /// Redeemed already.
    pub used: bool,
}

/// The token request's side of a redemption.
#[derive(Debug, Clone, Copy)]
pub struct Redemption<'a> {
    /// The authenticated client (confidential) or the `client_id` sent (public).
    pub client_id: &'a ClientId,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

/// Why a code is not redeemed; each is `invalid_grant` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Presented before: revoke everything its first redemption issued.
    #[error("authorization code was already used")]
    Replayed,
    #[error("authorization code was issued to another client")]
    OtherClient,
    #[error("authorization code has expired")]
    Expired,
    #[error("redirect_uri is not the one the code was sent to")]
    RedirectUri,
    #[error("{0}")]
    Pkce(PkceError),
}

/// A new code: `wac_` and 256 random bits, base64url.
pub fn mint(rng: &mut impl CryptoRngCore) -> MintedCode {
    let mut raw = [0u8; 32];
    rng.fill_bytes(&mut raw);
    let code = format!("{CODE_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    MintedCode {
        digest: digest(&code),
        code,
    }
}

/// The key under which the store finds a presented code.
pub fn digest(code: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(code.as_bytes()))
}

impl IssuedCode {
    /// Whether `r` may redeem this code at `now`. A replay is told first, whoever presents
    /// it: a second presentation means the code is out, whoever holds it.
    pub fn redeem(&self, r: &Redemption<'_>, now: i64) -> Result<(), CodeError> {
        if self.used {
            return Err(CodeError::Replayed);
        }
        if r.client_id != &self.client_id {
            return Err(CodeError::OtherClient);
        }
        if now < self.issued_at || now - self.issued_at > CODE_LIFETIME_SECS {
            return Err(CodeError::Expired);
        }
        if r.redirect_uri != Some(self.redirect_uri.as_str()) {
            return Err(CodeError::RedirectUri);
        }
        self.code_challenge
            .verify(r.code_verifier)
            .map_err(CodeError::Pkce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn issued(client: &ClientId) -> IssuedCode {
        IssuedCode {
            client_id: client.clone(),
            redirect_uri: "https://app.example/cb".into(),
            code_challenge: CodeChallenge::of_verifier(VERIFIER),
            issued_at: 1_000,
            used: false,
        }
    }

    #[test]
    fn codes_are_unguessable_handles_kept_as_digests() {
        let a = mint(&mut OsRng);
        let b = mint(&mut OsRng);
        assert!(
            a.code.starts_with("wac_") && a.code.len() == 4 + 43,
            "{}",
            a.code
        );
        assert_ne!(a.code, b.code);
        assert_eq!(digest(&a.code), a.digest);
        assert!(!a.digest.contains(a.code.strip_prefix("wac_").unwrap()));
    }

    #[test]
    fn the_client_redeems_once_within_a_minute_at_its_uri_with_its_verifier() {
        let client = ClientId::generate(&mut OsRng);
        let code = issued(&client);
        let ok = Redemption {
            client_id: &client,
            redirect_uri: Some("https://app.example/cb"),
            code_verifier: Some(VERIFIER),
        };
        assert_eq!(code.redeem(&ok, 1_060), Ok(()));
        assert_eq!(code.redeem(&ok, 1_061), Err(CodeError::Expired));
        assert_eq!(code.redeem(&ok, 999), Err(CodeError::Expired));
        let used = IssuedCode {
            used: true,
            ..code.clone()
        };
        assert_eq!(used.redeem(&ok, 1_001), Err(CodeError::Replayed));

        let thief = ClientId::generate(&mut OsRng);
        let cases = [
            (
                Redemption {
                    client_id: &thief,
                    ..ok
                },
                CodeError::OtherClient,
            ),
            (
                Redemption {
                    redirect_uri: Some("https://app.example/cb/"),
                    ..ok
                },
                CodeError::RedirectUri,
            ),
            (
                Redemption {
                    redirect_uri: None,
                    ..ok
                },
                CodeError::RedirectUri,
            ),
            (
                Redemption {
                    code_verifier: None,
                    ..ok
                },
                CodeError::Pkce(PkceError::MissingVerifier),
            ),
            (
                Redemption {
                    code_verifier: Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"),
                    ..ok
                },
                CodeError::Pkce(PkceError::Mismatch),
            ),
        ];
        for (r, want) in cases {
            assert_eq!(code.redeem(&r, 1_001), Err(want));
        }
        // A stolen code presented by the thief after the client redeemed it is a replay.
        assert_eq!(
            used.redeem(
                &Redemption {
                    client_id: &thief,
                    ..ok
                },
                1_001
            ),
            Err(CodeError::Replayed)
        );
    }
}
