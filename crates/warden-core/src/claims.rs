//! The claims Warden issues and accepts: access tokens (RFC 9068 profile) and client
//! assertions (RFC 7523).

use serde::{Deserialize, Serialize};

/// `aud`: a single string or an array, per RFC 7519 §4.1.3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Self::One(a) => a == aud,
            Self::Many(v) => v.iter().any(|a| a == aud),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            Self::One(a) => std::slice::from_ref(a),
            Self::Many(v) => v,
        };
        slice.iter().map(String::as_str)
    }
}

/// The registered claims every verification checks.
pub trait RegisteredClaims {
    fn iss(&self) -> &str;
    fn aud(&self) -> &Audience;
    fn exp(&self) -> i64;
    fn nbf(&self) -> Option<i64>;
    fn iat(&self) -> Option<i64>;
}

/// One level of a delegation chain (RFC 8693 §4.1): who acts, and for whom they act in turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// Proof-of-possession confirmation (RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// An access token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub tenant: String,
    /// Space separated, RFC 6749 §3.3.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
}

impl RegisteredClaims for AccessClaims {
    fn iss(&self) -> &str {
        &self.iss
    }
    fn aud(&self) -> &Audience {
        &self.aud
    }
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> Option<i64> {
        Some(self.nbf)
    }
    fn iat(&self) -> Option<i64> {
        Some(self.iat)
    }
}

/// A client assertion's claims (RFC 7523 §3): `iss` and `sub` are the client id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
}

impl RegisteredClaims for AssertionClaims {
    fn iss(&self) -> &str {
        &self.iss
    }
    fn aud(&self) -> &Audience {
        &self.aud
    }
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> Option<i64> {
        self.nbf
    }
    fn iat(&self) -> Option<i64> {
        self.iat
    }
}
