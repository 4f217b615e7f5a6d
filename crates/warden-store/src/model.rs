//! The records the store keeps.

use serde::Serialize;
use warden_core::{PrincipalId, PrincipalKind, ScopeSet, TenantId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// No token issued in this tenant lives longer.
    pub max_token_ttl_secs: i64,
    pub disabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub id: PrincipalId,
    pub tenant: TenantId,
    pub kind: PrincipalKind,
    pub name: String,
    pub owner: Option<PrincipalId>,
    /// The ceiling: no token for this principal carries a scope outside it.
    pub scopes: ScopeSet,
    /// Resource indicators (RFC 8707) this principal may ask tokens for, besides the
    /// deployment's default audience.
    pub audiences: Vec<String>,
    /// The registered public key as a JWK JSON document.
    pub public_jwk: Option<String>,
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Published and signing.
    Active,
    /// Published until `publish_until`, no longer signing.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// A token-signing key: public half in clear, private half sealed with the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// base64url of the 32-byte Ed25519 public key.
    pub public_key: String,
    /// base64url of nonce ‖ ciphertext.
    pub sealed_private: String,
    pub state: KeyState,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub publish_until: Option<i64>,
}

/// A client assertion's `jti`, kept until the assertion could no longer be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionJti {
    pub client_id: String,
    pub jti: String,
    pub expires_at: i64,
}

/// A gateway's public key for the internal tokens it mints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayKeyRecord {
    pub kid: String,
    /// base64url of the 32-byte Ed25519 public key.
    pub public_key: String,
    /// The gateway's name, for operators.
    pub gateway: String,
    pub registered_at: i64,
    pub expires_at: i64,
}
