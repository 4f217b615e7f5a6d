//! TOTP (RFC 6238) through `totp-rs`: SHA-1, 6 digits, 30-second steps, one step of skew
//! either way — what every authenticator app does. A secret is 160 random bits (RFC 4226
//! §4), sealed at rest under a key of its own derived from the master key, bound to its user.
//! A code is accepted once: the step it matched must be later than the last one accepted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::{OsRng, RngCore as _};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use warden_core::crypto::SealingKey;
use warden_core::PrincipalId;
use zeroize::Zeroizing;

const SECRET_BYTES: usize = 20;
const DERIVATION_LABEL: &[u8] = b"warden/totp-secret/v1";

/// Seals and opens TOTP secrets.
pub struct TotpSealer(SealingKey);

/// A TOTP secret in the clear, for the moment it is used.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSealer {
    pub fn derive(master: &SealingKey) -> Self {
        Self(master.derive(DERIVATION_LABEL))
    }

    pub fn generate(&self) -> TotpSecret {
        let mut raw = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        OsRng.fill_bytes(raw.as_mut_slice());
        TotpSecret(raw)
    }

    pub fn seal(&self, user: &PrincipalId, secret: &TotpSecret) -> String {
        URL_SAFE_NO_PAD.encode(self.0.seal(&mut OsRng, &secret.0, &context(user)))
    }

    /// `None` when the sealed value does not open for this user under this key.
    pub fn open(&self, user: &PrincipalId, sealed: &str) -> Option<TotpSecret> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let opened = self.0.open(&bytes, &context(user)).ok()?;
        Some(TotpSecret(Zeroizing::new(opened.to_vec())))
    }
}

fn context(user: &PrincipalId) -> Vec<u8> {
    [DERIVATION_LABEL, b":", user.as_str().as_bytes()].concat()
}

impl TotpSecret {
    fn totp(&self, account: &str, issuer: &str) -> Option<Totp> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(30)
            .with_skew(1)
            .with_secret(Secret::from(self.0.to_vec()))
            .with_account_name(account.replace(':', "-"))
            .with_issuer(Some(issuer.replace(':', "-")))
            .build()
            .ok()
    }

    /// The step `code` matches at `now` (unix seconds), if it matches one.
    pub fn check(&self, code: &str, now: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = u64::try_from(now).ok()?;
        let step = self.totp("x", "Warden")?.check(code, now)?;
        i64::try_from(step).ok()
    }

    /// The `otpauth://` URI an authenticator app takes.
    pub fn otpauth_uri(&self, account: &str, issuer: &str) -> Option<String> {
        self.totp(account, issuer)?.to_url().ok()
    }

    /// The secret as a person types it: base32 in groups of four.
    pub fn for_typing(&self) -> String {
        let b32 = Secret::from(self.0.to_vec()).to_base32();
        b32.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The current code (tests and the demo stand in for an app with it).
    pub fn code_at(&self, now: i64) -> Option<String> {
        let now = u64::try_from(now).ok()?;
        Some(self.totp("x", "Warden")?.generate(now).to_string())
    }
}
