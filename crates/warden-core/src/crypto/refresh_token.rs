//! Refresh tokens that rotate (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): each use answers with a
//! successor, a spent token presented again revokes its whole family, and a client that lost
//! the answer to a rotation gets the same successor again for a short grace window, instead
//! of a forced sign-out.
//!
//! A token names its family and generation and carries an HMAC-SHA-256 tag under a key
//! derived from the master key: `wrt_<family>.<generation>.<tag>`. So the store keeps one row
//! per family (its current generation, when that became current, whether it is revoked) and
//! never a token; the token of a generation can be made again, which is what the grace window
//! resends. A tag is checked in constant time before anything is looked up.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{constant_time_eq, SealingKey};

/// Every refresh token starts with this, so a leaked one is recognisable (secret scanners).
pub const REFRESH_TOKEN_PREFIX: &str = "wrt_";

const DERIVATION_LABEL: &[u8] = b"warden/refresh-token/v1";
const TAG_LEN: usize = 32;
/// A family id is an id's random part: 22 base64url characters.
const FAMILY_LEN: usize = 22;

type HmacSha256 = Hmac<Sha256>;

/// The key refresh tokens are tagged with: HKDF-SHA-256 of the master key under its own
/// label, the same on every replica.
pub struct RefreshTokenKey(Zeroizing<[u8; 32]>);

/// A refresh token whose tag checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub family: String,
    pub generation: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshTokenError {
    #[error("not a refresh token of this authority")]
    Malformed,
    #[error("refresh token does not verify")]
    Tag,
}

impl RefreshTokenKey {
    pub fn derive(master: &SealingKey) -> Self {
        Self(Zeroizing::new(*master.derive(DERIVATION_LABEL).as_bytes()))
    }

    /// The token of `family` at `generation`; the same inputs always make the same token.
    pub fn token(&self, family: &str, generation: u32) -> String {
        let body = format!("{family}.{generation}");
        let tag = URL_SAFE_NO_PAD.encode(self.tag(&body));
        format!("{REFRESH_TOKEN_PREFIX}{body}.{tag}")
    }

    /// The family and generation `token` names, once its tag is checked.
    pub fn open(&self, token: &str) -> Result<Presented, RefreshTokenError> {
        let rest = token
            .strip_prefix(REFRESH_TOKEN_PREFIX)
            .ok_or(RefreshTokenError::Malformed)?;
        let (body, tag) = rest.rsplit_once('.').ok_or(RefreshTokenError::Malformed)?;
        let (family, generation) = body.split_once('.').ok_or(RefreshTokenError::Malformed)?;
        let well_formed = family.len() == FAMILY_LEN
            && family
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            && !generation.is_empty()
            && generation.len() <= 10
            && generation.bytes().all(|b| b.is_ascii_digit())
            && !(generation.len() > 1 && generation.starts_with('0'));
        if !well_formed {
            return Err(RefreshTokenError::Malformed);
        }
        let generation: u32 = generation
            .parse()
            .map_err(|_| RefreshTokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| RefreshTokenError::Malformed)?;
        if !constant_time_eq(&tag, &self.tag(body)) {
            return Err(RefreshTokenError::Tag);
        }
        Ok(Presented {
            family: family.to_owned(),
            generation,
        })
    }

    fn tag(&self, body: &str) -> [u8; TAG_LEN] {
        let Ok(mut mac) = HmacSha256::new_from_slice(self.0.as_ref()) else {
            // HMAC takes a key of any length: unreachable, and no tag ever matches zeroes
            // made from a key that was refused.
            return [0; TAG_LEN];
        };
        mac.update(body.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// What the store holds of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The generation whose token is live.
    pub generation: u32,
    /// When `generation` became live (unix seconds).
    pub rotated_at: i64,
    pub revoked: bool,
}

/// What to do with a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The live token: the family moves to `next` (only if it is still at the presented
    /// generation when written: two uses racing make one rotation and one replay), and the
    /// answer carries the token of `next`.
    Rotate { next: u32 },
    /// The token just rotated away, again within the grace window: a client retrying an
    /// answer it lost. Nothing changes; the answer carries the live generation's token again.
    Resend { live: u32 },
    /// A spent token: whoever holds it is not the client that rotated it. The family is
    /// revoked, with every token made from it, and the attempt audited.
    Replay,
    /// A revoked family, or a generation it never reached.
    Refused,
}

/// Decides a use of `presented` against `family` at `now`, with `grace` seconds for retries.
pub fn decide(family: &Family, presented: u32, now: i64, grace: i64) -> Use {
    if family.revoked || presented > family.generation {
        return Use::Refused;
    }
    if presented == family.generation {
        return match presented.checked_add(1) {
            Some(next) => Use::Rotate { next },
            None => Use::Refused,
        };
    }
    let just_rotated = presented.checked_add(1) == Some(family.generation)
        && now >= family.rotated_at
        && now - family.rotated_at <= grace;
    if just_rotated {
        Use::Resend {
            live: family.generation,
        }
    } else {
        Use::Replay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn key(byte: u8) -> RefreshTokenKey {
        RefreshTokenKey::derive(&SealingKey::from_bytes(&[byte; 32]).unwrap())
    }

    #[test]
    fn a_token_opens_to_its_family_and_generation_under_its_key_only() {
        let k = key(1);
        let t = k.token(FAMILY, 7);
        assert!(t.starts_with("wrt_AAAAAAAAAAAAAAAAAAAAAA.7."), "{t}");
        assert_eq!(
            k.token(FAMILY, 7),
            t,
            "the same generation makes the same token"
        );
        assert_eq!(
            k.open(&t),
            Ok(Presented {
                family: FAMILY.into(),
                generation: 7
            })
        );
        assert_eq!(key(2).open(&t), Err(RefreshTokenError::Tag));
        // Another generation with this one's tag: the tag covers the generation.
        let (_, tag) = t.rsplit_once('.').unwrap();
        let forged = format!("wrt_{FAMILY}.8.{tag}");
        assert_eq!(k.open(&forged), Err(RefreshTokenError::Tag));
        for bad in [
            "",
            "wsec_x",
            "wrt_",
            &format!("wrt_{FAMILY}.7"),
            &format!("wrt_short.7.{tag}"),
            &format!("wrt_{FAMILY}.07.{tag}"),
            &format!("wrt_{FAMILY}.-1.{tag}"),
            &format!("wrt_{FAMILY}.99999999999.{tag}"),
            &format!("wrt_{FAMILY}.7.{tag}!"),
        ] {
            assert_eq!(k.open(bad), Err(RefreshTokenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn the_live_token_rotates_and_a_spent_one_revokes_the_family() {
        let f = Family {
            generation: 3,
            rotated_at: 1_000,
            revoked: false,
        };
        assert_eq!(decide(&f, 3, 5_000, 30), Use::Rotate { next: 4 });
        assert_eq!(decide(&f, 1, 1_001, 30), Use::Replay);
        assert_eq!(decide(&f, 0, 1_001, 30), Use::Replay);
        // The one just rotated away, after the grace window: a replay.
        assert_eq!(decide(&f, 2, 1_031, 30), Use::Replay);
        assert_eq!(decide(&f, 4, 1_001, 30), Use::Refused);
        let revoked = Family { revoked: true, ..f };
        assert_eq!(decide(&revoked, 3, 1_001, 30), Use::Refused);
        let last = Family {
            generation: u32::MAX,
            ..f
        };
        assert_eq!(decide(&last, u32::MAX, 1_001, 30), Use::Refused);
    }

    #[test]
    fn a_retry_within_the_grace_window_gets_the_same_successor() {
        let f = Family {
            generation: 3,
            rotated_at: 1_000,
            revoked: false,
        };
        assert_eq!(decide(&f, 2, 1_000, 30), Use::Resend { live: 3 });
        assert_eq!(decide(&f, 2, 1_030, 30), Use::Resend { live: 3 });
        // A clock that went back is no reason to resend.
        assert_eq!(decide(&f, 2, 999, 30), Use::Replay);
        assert_eq!(decide(&f, 2, 1_010, 0), Use::Replay);
    }
}
