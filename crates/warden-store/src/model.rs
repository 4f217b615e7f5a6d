//! The records the store keeps.

use serde::Serialize;
use warden_core::{ClientId, PrincipalId, PrincipalKind, RedirectUri, ScopeSet, TenantId};

/// An OAuth client that people sign in through. It is not a principal: it holds no scopes,
/// and what it obtains it obtains for the person who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: ClientId,
    pub tenant: TenantId,
    /// Unique within the tenant.
    pub name: String,
    /// Where codes may be sent; a request names one of them exactly.
    pub redirect_uris: Vec<RedirectUri>,
    /// A public client (a native or browser app) holds no secret and must use PKCE alone.
    pub public: bool,
    /// A confidential client's secret, as its digest; `None` for a public client.
    pub secret_hash: Option<String>,
    pub created_at: i64,
}

/// An invitation that enrolls one user, kept by the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub digest: String,
    pub user: PrincipalId,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The sealed TOTP secret the enrollment page showed, so a reload shows the same one.
    pub totp_pending: Option<String>,
}

/// A user's TOTP credential (RFC 6238).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpCredential {
    pub user: PrincipalId,
    /// The secret, sealed under the authority's key.
    pub sealed: String,
    pub created_at: i64,
    /// The last time step accepted: a code is accepted once.
    pub last_step: i64,
}

/// A person's session, kept by the SHA-256 of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub digest: String,
    /// The `sid` tokens minted from it carry.
    pub id: String,
    pub user: PrincipalId,
    /// The token every form of this session carries (CSRF).
    pub csrf: String,
    /// How the person signed in (RFC 8176 values: `otp`, `hwk`, `user`, …).
    pub amr: Vec<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub user_agent: Option<String>,
    pub revoked_at: Option<i64>,
}

/// An authorization code as issued, kept by its digest (`warden_core::authorization_code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub digest: String,
    pub client_id: ClientId,
    /// The person who approved it.
    pub user: PrincipalId,
    pub redirect_uri: String,
    /// The `S256` challenge it is bound to.
    pub code_challenge: String,
    pub scopes: ScopeSet,
    pub nonce: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    /// When it was redeemed; a code is redeemed once.
    pub used_at: Option<i64>,
    /// The refresh family its redemption started: revoked should the code come back.
    pub family: Option<String>,
}

/// One sign-in's chain of rotating refresh tokens (`warden_core::crypto::refresh_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    /// The random part of an id (22 base64url characters).
    pub id: String,
    pub client_id: ClientId,
    pub user: PrincipalId,
    pub scopes: ScopeSet,
    /// The live generation.
    pub generation: u32,
    /// When the live generation became live.
    pub rotated_at: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// No token issued in this tenant lives longer.
    pub max_token_ttl_secs: i64,
    /// A client key older than this is refused until rotated; `None`: the authority's
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_client_key_age_secs: Option<i64>,
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
    /// When the public key was registered, for its tenant's `max_client_key_age`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_registered_at: Option<i64>,
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub disabled: bool,
    /// Set by a revocation of the principal (an operator's, or a quarantine's): refused new
    /// tokens and exchanges until reinstated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revoked>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// When and why a principal was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revoked {
    pub at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
    /// The service principal that registered it; `None` for the break-glass credential.
    pub principal: Option<PrincipalId>,
    pub registered_at: i64,
    pub expires_at: i64,
}

/// A user's consent that an agent may act for them (RFC 8693 token exchange with `act`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DelegationGrant {
    /// `dlg_…`
    pub id: String,
    pub tenant: TenantId,
    pub user: PrincipalId,
    pub agent: PrincipalId,
    /// The most the agent may hold while acting for the user; the user's and the agent's own
    /// ceilings narrow it further at every exchange.
    pub scopes: ScopeSet,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What a revocation ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RevocationTarget {
    /// Every token issued before `issued_before` in which the principal appears, as `sub` or at
    /// any level of the `act` chain.
    Principal { principal: PrincipalId },
    /// One token, by `jti`.
    Token { jti: String },
    /// A honeytoken principal: any token naming it, at any time, is an attack to report.
    Honeytoken { principal: PrincipalId },
    /// Every token issued before `issued_before` in which `agent` acts for `user`.
    Grant {
        grant: String,
        user: PrincipalId,
        agent: PrincipalId,
    },
    /// Every token of the tenant issued before `issued_before` (the tenant was disabled).
    Tenant { tenant: TenantId },
}

/// A revocation to append; the store gives it its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewRevocation {
    #[serde(flatten)]
    pub target: RevocationTarget,
    /// Tokens with `iat` before this instant are dead (unused for [`RevocationTarget::Token`]).
    pub issued_before: i64,
    /// After this instant no token the event could affect is still alive, so the event can be
    /// forgotten by the store and by every gateway's view.
    pub horizon: i64,
    pub reason: Option<String>,
    pub created_at: i64,
}

/// An appended revocation. `seq` grows strictly in commit order: a reader that has seen `seq`
/// has seen every earlier event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocation {
    pub seq: i64,
    #[serde(flatten)]
    pub event: NewRevocation,
}

impl RevocationTarget {
    /// The stored form: `(kind, target, grant_user, grant_agent)`.
    pub fn to_columns(&self) -> (&'static str, &str, Option<&str>, Option<&str>) {
        match self {
            Self::Principal { principal } => ("principal", principal.as_str(), None, None),
            Self::Token { jti } => ("token", jti, None, None),
            Self::Honeytoken { principal } => ("honeytoken", principal.as_str(), None, None),
            Self::Grant { grant, user, agent } => {
                ("grant", grant, Some(user.as_str()), Some(agent.as_str()))
            }
            Self::Tenant { tenant } => ("tenant", tenant.as_str(), None, None),
        }
    }

    /// The inverse of [`Self::to_columns`].
    pub fn from_columns(
        kind: &str,
        target: &str,
        grant_user: Option<&str>,
        grant_agent: Option<&str>,
    ) -> Result<Self, String> {
        let principal = |s: &str| PrincipalId::parse(s).map_err(|e| e.to_string());
        match (kind, grant_user, grant_agent) {
            ("principal", _, _) => Ok(Self::Principal {
                principal: principal(target)?,
            }),
            ("token", _, _) => Ok(Self::Token { jti: target.into() }),
            ("honeytoken", _, _) => Ok(Self::Honeytoken {
                principal: principal(target)?,
            }),
            ("tenant", _, _) => Ok(Self::Tenant {
                tenant: TenantId::parse(target).map_err(|e| e.to_string())?,
            }),
            ("grant", Some(user), Some(agent)) => Ok(Self::Grant {
                grant: target.into(),
                user: principal(user)?,
                agent: principal(agent)?,
            }),
            _ => Err(format!("revocation kind `{kind}` with these columns")),
        }
    }
}

/// When a principal last obtained and last used a token (`None`: not since records began).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    pub principal: PrincipalId,
    pub last_issued_at: Option<i64>,
    pub last_used_at: Option<i64>,
}
