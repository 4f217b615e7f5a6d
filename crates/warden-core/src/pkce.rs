//! Proof Key for Code Exchange (RFC 7636), as OAuth 2.1 requires it of every client: a code
//! is redeemed only with the verifier whose SHA-256 the authorization request committed to.
//! `S256` is the only method: `plain` sends the secret itself through the browser, and a
//! request without a challenge is refused rather than read as `plain` (RFC 7636 §4.3's
//! default), so no downgrade is left to try.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::crypto::{constant_time_eq, sha256};

/// Length of an `S256` challenge: 32 bytes in unpadded base64url.
const CHALLENGE_LEN: usize = 43;
/// RFC 7636 §4.1: a verifier is 43 to 128 unreserved characters.
const VERIFIER_LEN: std::ops::RangeInclusive<usize> = 43..=128;

/// The `code_challenge` of an authorization request, checked to be an `S256` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    #[error("code_challenge is required (PKCE, S256)")]
    MissingChallenge,
    #[error("code_challenge_method must be S256")]
    Method,
    #[error("code_challenge must be 43 base64url characters (the SHA-256 of the verifier)")]
    MalformedChallenge,
    #[error("code_verifier is required")]
    MissingVerifier,
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    MalformedVerifier,
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

impl CodeChallenge {
    /// From the request's `code_challenge` and `code_challenge_method`, both required.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, PkceError> {
        let challenge = challenge.ok_or(PkceError::MissingChallenge)?;
        if method != Some("S256") {
            return Err(PkceError::Method);
        }
        let decodes = URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|d| d.len() == 32);
        if challenge.len() != CHALLENGE_LEN || !decodes {
            return Err(PkceError::MalformedChallenge);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// A challenge read back from where pending codes are kept; it passed [`Self::parse`].
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The challenge a verifier commits to (what a client sends).
    pub fn of_verifier(verifier: &str) -> Self {
        Self(URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes())))
    }

    /// Whether `verifier`, as the token request sent it, is the one committed to.
    pub fn verify(&self, verifier: Option<&str>) -> Result<(), PkceError> {
        let verifier = verifier.ok_or(PkceError::MissingVerifier)?;
        let well_formed = VERIFIER_LEN.contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !well_formed {
            return Err(PkceError::MalformedVerifier);
        }
        let computed = Self::of_verifier(verifier);
        if constant_time_eq(computed.0.as_bytes(), self.0.as_bytes()) {
            Ok(())
        } else {
            Err(PkceError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_7636_example_verifies() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert_eq!(CodeChallenge::of_verifier(VERIFIER), c);
        assert_eq!(c.verify(Some(VERIFIER)), Ok(()));
    }

    #[test]
    fn no_challenge_or_another_method_is_a_refused_downgrade() {
        assert_eq!(
            CodeChallenge::parse(None, None),
            Err(PkceError::MissingChallenge)
        );
        for method in [None, Some("plain"), Some("s256"), Some("S512")] {
            assert_eq!(
                CodeChallenge::parse(Some(CHALLENGE), method),
                Err(PkceError::Method),
                "{method:?}"
            );
        }
        for bad in [
            "",
            "short",
            &format!("{CHALLENGE}A"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
        ] {
            assert_eq!(
                CodeChallenge::parse(Some(bad), Some("S256")),
                Err(PkceError::MalformedChallenge),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_wrong_missing_or_malformed_verifier_is_refused() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert_eq!(c.verify(None), Err(PkceError::MissingVerifier));
        let other = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK";
        assert_eq!(c.verify(Some(other)), Err(PkceError::Mismatch));
        for bad in [
            "tooshort",
            &"a".repeat(129),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX+",
            "dBjftJeZ4CVP mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ] {
            assert_eq!(
                c.verify(Some(bad)),
                Err(PkceError::MalformedVerifier),
                "{bad}"
            );
        }
        // The challenge itself is not its own verifier.
        assert_eq!(c.verify(Some(CHALLENGE)), Err(PkceError::Mismatch));
    }
}
