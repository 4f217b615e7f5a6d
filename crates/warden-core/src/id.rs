//! Identifiers: a kind prefix and 128 random bits, URL-safe, so an id says what it names and
//! cannot be guessed.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize};

/// Random bytes in every generated id.
const ID_RANDOM_BYTES: usize = 16;
/// Length of the encoded random part: 16 bytes in unpadded base64url.
const ID_RANDOM_CHARS: usize = 22;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("`{0}` is not a {1} id")]
    Malformed(String, &'static str),
}

/// What a principal is; the prefix of its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    User,
    Agent,
    Service,
}

impl PrincipalKind {
    pub const ALL: [PrincipalKind; 3] = [Self::User, Self::Agent, Self::Service];

    pub fn prefix(self) -> &'static str {
        match self {
            Self::User => "usr",
            Self::Agent => "agt",
            Self::Service => "svc",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
            Self::Service => "service",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PrincipalKind {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| IdError::Malformed(s.to_owned(), "principal kind"))
    }
}

fn random_part(rng: &mut impl CryptoRngCore) -> String {
    let mut bytes = [0u8; ID_RANDOM_BYTES];
    rng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn is_random_part(s: &str) -> bool {
    s.len() == ID_RANDOM_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A principal: `usr_…`, `agt_…` or `svc_…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PrincipalId(String);

impl PrincipalId {
    pub fn generate(kind: PrincipalKind, rng: &mut impl CryptoRngCore) -> Self {
        Self(format!("{}_{}", kind.prefix(), random_part(rng)))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let malformed = || IdError::Malformed(s.to_owned(), "principal");
        let (prefix, rest) = s.split_once('_').ok_or_else(malformed)?;
        if !PrincipalKind::ALL.iter().any(|k| k.prefix() == prefix) || !is_random_part(rest) {
            return Err(malformed());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn kind(&self) -> PrincipalKind {
        match self.0.get(..3) {
            Some("usr") => PrincipalKind::User,
            Some("svc") => PrincipalKind::Service,
            // INVARIANT: `parse` and `generate` admit only the three prefixes.
            _ => PrincipalKind::Agent,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant: `tnt_…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(format!("tnt_{}", random_part(rng)))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        match s.strip_prefix("tnt_") {
            Some(rest) if is_random_part(rest) => Ok(Self(s.to_owned())),
            _ => Err(IdError::Malformed(s.to_owned(), "tenant")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An OAuth client that people sign in through (a web, native or single-page app): `cli_…`.
/// Not a principal: it holds no scopes of its own, and every token it obtains is a person's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(format!("cli_{}", random_part(rng)))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        match s.strip_prefix("cli_") {
            Some(rest) if is_random_part(rest) => Ok(Self(s.to_owned())),
            _ => Err(IdError::Malformed(s.to_owned(), "client")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fresh random token or key identifier (`jti`, `kid`), 128 bits, base64url.
pub fn random_token_id(rng: &mut impl CryptoRngCore) -> String {
    random_part(rng)
}

macro_rules! id_traits {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $t {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
id_traits!(PrincipalId);
id_traits!(TenantId);
id_traits!(ClientId);

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn generated_ids_round_trip_and_name_their_kind() {
        for kind in PrincipalKind::ALL {
            let id = PrincipalId::generate(kind, &mut OsRng);
            assert!(id.as_str().starts_with(kind.prefix()));
            assert_eq!(PrincipalId::parse(id.as_str()), Ok(id.clone()));
            assert_eq!(id.kind(), kind);
        }
        let t = TenantId::generate(&mut OsRng);
        assert_eq!(TenantId::parse(t.as_str()), Ok(t));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "agt_",
            "agt_short",
            "xyz_AAAAAAAAAAAAAAAAAAAAAA",
            "agt_AAAAAAAAAAAAAAAAAAAAA/",
            "agt_AAAAAAAAAAAAAAAAAAAAAAA",
            "tnt_AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(PrincipalId::parse(bad).is_err(), "{bad}");
        }
        assert!(TenantId::parse("agt_AAAAAAAAAAAAAAAAAAAAAA").is_err());
    }
}
