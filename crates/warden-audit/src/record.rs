//! The on-disk format: one JSON record per line, entries chained by SHA-256 over the exact
//! line bytes, checkpoints signed over the exact bytes of their `checkpoint` object.
//!
//! Because hashes and signatures cover the bytes as written, nothing is ever re-serialized
//! to check them: there is no canonicalization step to get wrong. This module builds and
//! parses lines; it performs no I/O.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use warden_core::crypto::{sha256, SIGNATURE_LEN};
use warden_core::{PublicKey, SigningKey};

/// The log file's name inside the log directory.
pub const LOG_FILE: &str = "audit.jsonl";
/// Copies of every checkpoint line, kept apart from the log so that cutting the log's tail
/// leaves a signed witness of what was there (see [`crate::verify::verify_dir`]).
pub const CHECKPOINT_FILE: &str = "checkpoints.jsonl";

/// Domain separation: a checkpoint signature can never be mistaken for a JWS or any other
/// signature made with the same key.
pub(crate) const CHECKPOINT_CONTEXT: &[u8] = b"warden-audit checkpoint v1\n";

/// A SHA-256 digest, written base64url without padding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The `prev` of entry 1.
    pub const GENESIS: Digest = Digest([0u8; 32]);

    /// The hash of one line, without its newline.
    pub fn of_line(line: &[u8]) -> Self {
        Self(sha256(line))
    }

    pub fn to_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn from_b64(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut out) {
            Ok(32) => Some(Self(out)),
            _ => None,
        }
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_b64())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_b64())
    }
}

/// Appends the entry line `{"seq":N,"prev":"…","entry":…}` (no newline) to `out`.
/// `entry_json` must be a serialized [`crate::Entry`]: JSON without raw newlines.
pub(crate) fn write_entry_line(out: &mut Vec<u8>, seq: u64, prev: &Digest, entry_json: &[u8]) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"prev\":\"");
    let mut b64 = [0u8; 43];
    // 32 bytes always encode to 43 base64url characters.
    if URL_SAFE_NO_PAD.encode_slice(prev.0, &mut b64).is_ok() {
        out.extend_from_slice(&b64);
    }
    out.extend_from_slice(b"\",\"entry\":");
    out.extend_from_slice(entry_json);
    out.push(b'}');
}

/// What a checkpoint asserts: after `count` entries, the head of the chain was `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The checkpoint's own number, starting at 1; a gap means a checkpoint was removed.
    pub seq: u64,
    /// How many entries precede it: the `seq` of the last entry covered.
    pub count: u64,
    /// The hash of entry `count`'s line ([`Digest::GENESIS`] when `count` is 0).
    pub head: String,
    /// Unix milliseconds at signing, from the injected clock.
    pub time: i64,
    /// The signing key's RFC 7638 thumbprint.
    pub kid: String,
}

/// A checkpoint line as read: the checkpoint and its signature, not yet verified.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The exact bytes of the `checkpoint` object, which the signature covers.
    raw: Box<RawValue>,
    sig: String,
}

impl SignedCheckpoint {
    /// Parses a checkpoint line (as found in the log or in `checkpoints.jsonl`).
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Line {
            checkpoint: Box<RawValue>,
            sig: String,
        }
        let l: Line = serde_json::from_str(line)?;
        let checkpoint = serde_json::from_str(l.checkpoint.get())?;
        Ok(Self {
            checkpoint,
            raw: l.checkpoint,
            sig: l.sig,
        })
    }

    /// The line exactly as signed (no newline): what witnesses keep, and serve on `GET`.
    pub fn line(&self) -> Vec<u8> {
        frame(self.raw.get().as_bytes(), &self.sig)
    }

    /// Checks the signature under the key its `kid` names.
    pub fn verify(&self, keys: &KeyRing) -> Result<&Checkpoint, SignatureProblem> {
        let key = keys
            .find(&self.checkpoint.kid)
            .ok_or(SignatureProblem::UnknownKey)?;
        if verify_checkpoint(key, self.raw.get().as_bytes(), &self.sig) {
            Ok(&self.checkpoint)
        } else {
            Err(SignatureProblem::BadSignature)
        }
    }
}

/// Why a checkpoint's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureProblem {
    UnknownKey,
    BadSignature,
}

pub(crate) fn verify_checkpoint(key: &PublicKey, raw: &[u8], sig_b64: &str) -> bool {
    let mut sig = [0u8; SIGNATURE_LEN];
    match URL_SAFE_NO_PAD.decode_slice(sig_b64, &mut sig) {
        Ok(SIGNATURE_LEN) => key.verify(&signing_input(raw), &sig),
        _ => false,
    }
}

fn signing_input(raw: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_CONTEXT.len() + raw.len());
    m.extend_from_slice(CHECKPOINT_CONTEXT);
    m.extend_from_slice(raw);
    m
}

impl Checkpoint {
    /// The signed checkpoint line, as the writer appends it (no newline).
    pub fn signed_line(&self, signer: &dyn CheckpointSigner) -> Vec<u8> {
        checkpoint_line(signer, self)
    }
}

/// Builds a signed checkpoint line (no newline).
pub(crate) fn checkpoint_line(signer: &dyn CheckpointSigner, cp: &Checkpoint) -> Vec<u8> {
    // A struct of strings and integers always serializes.
    let raw = serde_json::to_vec(cp).unwrap_or_default();
    let sig = URL_SAFE_NO_PAD.encode(signer.sign(&signing_input(&raw)));
    frame(&raw, &sig)
}

/// `{"checkpoint":RAW,"sig":"SIG"}`, the one shape of a checkpoint line.
fn frame(raw: &[u8], sig: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(raw.len() + sig.len() + 32);
    line.extend_from_slice(b"{\"checkpoint\":");
    line.extend_from_slice(raw);
    line.extend_from_slice(b",\"sig\":\"");
    line.extend_from_slice(sig.as_bytes());
    line.extend_from_slice(b"\"}");
    line
}

/// Signs checkpoints. Implemented for [`SigningKey`]; a KMS-held key implements it too.
pub trait CheckpointSigner: Send + Sync {
    /// The key id written into each checkpoint; verifiers look the key up by it.
    fn kid(&self) -> String;
    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN];
}

impl CheckpointSigner for SigningKey {
    fn kid(&self) -> String {
        self.public_key().thumbprint()
    }

    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        SigningKey::sign(self, message)
    }
}

/// The audit keys a verifier trusts, by `kid` (RFC 7638 thumbprint). Old keys stay in the
/// ring after rotation so older checkpoints still verify.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: HashMap<String, PublicKey>,
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn with(mut self, key: PublicKey) -> Self {
        self.insert(key);
        self
    }

    pub fn insert(&mut self, key: PublicKey) {
        self.keys.insert(key.thumbprint(), key);
    }

    pub fn find(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_b64_round_trip() {
        let d = Digest::of_line(b"x");
        assert_eq!(Digest::from_b64(&d.to_b64()), Some(d));
        assert_eq!(d.to_b64().len(), 43);
        assert_eq!(Digest::from_b64("AAAA"), None);
    }

    #[test]
    fn entry_line_shape() {
        let mut out = Vec::new();
        write_entry_line(&mut out, 7, &Digest::GENESIS, br#"{"a":1}"#);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            format!(
                r#"{{"seq":7,"prev":"{}","entry":{{"a":1}}}}"#,
                "A".repeat(43)
            )
        );
    }

    #[test]
    fn checkpoint_signature_covers_the_written_bytes() {
        let key = SigningKey::from_bytes(&[7u8; 32]).unwrap();
        let cp = Checkpoint {
            seq: 1,
            count: 3,
            head: Digest::GENESIS.to_b64(),
            time: 5,
            kid: CheckpointSigner::kid(&key),
        };
        let line = String::from_utf8(checkpoint_line(&key, &cp)).unwrap();
        let ring = KeyRing::new().with(key.public_key());
        let parsed = SignedCheckpoint::parse(&line).unwrap();
        assert_eq!(parsed.verify(&ring).unwrap(), &cp);
        assert_eq!(
            parsed.line(),
            line.as_bytes(),
            "witnesses get the exact bytes"
        );
        let forged =
            SignedCheckpoint::parse(&line.replace(r#""count":3"#, r#""count":2"#)).unwrap();
        assert_eq!(
            forged.verify(&ring).err(),
            Some(SignatureProblem::BadSignature)
        );
        assert_eq!(
            parsed.verify(&KeyRing::new()).err(),
            Some(SignatureProblem::UnknownKey)
        );
    }
}
