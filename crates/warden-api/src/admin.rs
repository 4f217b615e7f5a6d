//! The admin API (`/admin/v1`): every call as a value of [`Call`], which knows its method,
//! path and body; the request bodies the authority reads; and the objects it answers with.
//! Request bodies are strict (`deny_unknown_fields`), optional fields a caller leaves out
//! are not sent; answers are read leniently, so an authority can add fields.
//!
//! Path segments are percent-encoded here, so an id or name can never reach another route.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use warden_core::jwks::Jwk;
use warden_core::{ClientId, PrincipalId, PrincipalKind, ScopeSet, TenantId};

use crate::client::Method;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_ttl_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTokenTtl {
    pub max_token_ttl_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetClientKeyAge {
    /// `null` returns the tenant to the authority's default (sent, never left out).
    pub max_client_key_age_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipal {
    /// `agent`, `service` or `user`.
    pub kind: String,
    pub name: String,
    /// The user an agent acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The scope ceiling, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// The Ed25519 key its `private_key_jwt` assertions are signed with; without one, a
    /// client secret is issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<Jwk>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetScopes {
    pub scopes: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPublicKey {
    pub public_key: Jwk,
}

/// Why a revocation was made; recorded with it and in the audit log (at most 500 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reinstate {
    /// A new public key, replacing the one the principal had when it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<Jwk>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeToken {
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    pub user: String,
    pub agent: String,
    pub scopes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHoneytoken {
    /// A name an attacker would find plausible, e.g. `billing-export`.
    pub name: String,
    /// Scopes the bait token claims to carry; it is refused everywhere regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
}

/// A tenant, as every tenant call answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// No token issued in this tenant lives longer.
    pub max_token_ttl_secs: i64,
    /// A client key older than this is refused until rotated; absent: the authority's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_client_key_age_secs: Option<i64>,
    pub disabled: bool,
    pub created_at: i64,
}

/// A user, agent or service, as every principal call answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: PrincipalId,
    pub tenant: TenantId,
    pub kind: PrincipalKind,
    pub name: String,
    pub owner: Option<PrincipalId>,
    /// The ceiling: no token for this principal carries a scope outside it.
    pub scopes: ScopeSet,
    /// Resource indicators (RFC 8707) it may ask tokens for, besides the default audience.
    pub audiences: Vec<String>,
    /// The registered public key, a JWK as JSON text.
    pub public_jwk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_registered_at: Option<i64>,
    pub disabled: bool,
    /// Set by a revocation (an operator's or a quarantine's) until reinstated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revoked>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /principals/{id}/secret`: shown once, never stored in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecret {
    pub client_id: PrincipalId,
    pub client_secret: String,
}

/// `POST /tenants/{tenant}/invites`: a person, and the link that enrolls them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    /// Their name in the tenant, which they sign in with.
    pub name: String,
    /// Their ceiling, space-separated: what they can delegate to agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
}

/// The user an invitation enrolls, and the link, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub user: Principal,
    /// Single use; the person opens it to set up their sign-in.
    pub invite_url: String,
    pub expires_at: i64,
}

/// `POST /tenants/{tenant}/clients`: an OAuth client people sign in through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    pub name: String,
    /// Where codes may be sent, each written as it will be compared.
    pub redirect_uris: Vec<String>,
    /// A public client (native or browser app) gets no secret; a confidential one gets its
    /// secret in this call's answer, once.
    #[serde(default)]
    pub public: bool,
}

/// An OAuth client, as every client call answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// `cli_…`
    pub client_id: ClientId,
    pub tenant: TenantId,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    /// `none` for a public client, else `client_secret_basic`.
    pub token_endpoint_auth_method: String,
    pub created_at: i64,
    /// A confidential client's secret, in the answer that created it and nowhere else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A delegation grant: a user's consent that an agent acts for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `dlg_…`
    pub id: String,
    pub tenant: TenantId,
    pub user: PrincipalId,
    pub agent: PrincipalId,
    pub scopes: ScopeSet,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A token-signing key as `GET /keys` and a rotation list it (never its private half).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    pub kid: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub publish_until: Option<i64>,
}

/// A revocation, as revoking a principal, a token or a grant answers: the event exactly as
/// the revocation stream carries it.
pub use warden_core::revocation::RevocationEvent as Revocation;

/// `POST /tenants/{t}/honeytokens`: a bait credential and a token for it, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Honeytoken {
    pub principal: PrincipalId,
    pub name: String,
    pub client_id: PrincipalId,
    pub client_secret: String,
    pub access_token: String,
    pub token_endpoint: String,
}

/// One principal of a tenant's access report: what it may do, for whom, and when it last did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRow {
    pub principal: PrincipalId,
    pub kind: String,
    pub name: String,
    pub owner: Option<PrincipalId>,
    pub disabled: bool,
    /// The ceiling: the most any token for this principal can carry.
    pub scopes: String,
    pub audiences: Vec<String>,
    /// Live grants under which this principal acts for users.
    pub acts_for: Vec<GrantRef>,
    /// Live grants this principal (a user) gave to agents.
    pub delegates_to: Vec<GrantRef>,
    pub last_issued_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A live grant in an access report, seen from one side: `principal` is the other party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRef {
    pub grant: String,
    pub principal: PrincipalId,
    pub scopes: String,
    pub expires_at: Option<i64>,
}

/// Every admin call the CLI makes. Ids and names are a tenant's or principal's id or name
/// as the API accepts them.
#[derive(Debug, Clone)]
pub enum Call {
    CreateTenant(CreateTenant),
    ListTenants,
    ShowTenant(String),
    DisableTenant(String),
    EnableTenant(String),
    SetTokenTtl(String, SetTokenTtl),
    SetClientKeyAge(String, SetClientKeyAge),
    AccessReport(String),
    CreatePrincipal(String, CreatePrincipal),
    ListPrincipals(String),
    ShowPrincipal(String),
    DisablePrincipal(String),
    EnablePrincipal(String),
    RevokePrincipal(String, Reason),
    ReinstatePrincipal(String, Reinstate),
    SetScopes(String, SetScopes),
    SetPublicKey(String, SetPublicKey),
    NewSecret(String),
    RevokeToken(RevokeToken),
    CreateGrant(CreateGrant),
    RevokeGrant(String, Reason),
    ListGrants(String),
    ShowGrant(String),
    CreateHoneytoken(String, CreateHoneytoken),
    RotateKeys,
    ListKeys,
    InviteUser(String, CreateInvite),
    CreateClient(String, CreateClient),
    ListClients(String),
    ShowClient(String),
    DeleteClient(String),
}

impl Call {
    pub fn method(&self) -> Method {
        use Call::*;
        match self {
            ListTenants | ShowTenant(_) | AccessReport(_) | ListPrincipals(_)
            | ShowPrincipal(_) | ListGrants(_) | ShowGrant(_) | ListKeys | ListClients(_)
            | ShowClient(_) => Method::Get,
            DeleteClient(_) => Method::Delete,
            SetTokenTtl(..) | SetClientKeyAge(..) | SetScopes(..) | SetPublicKey(..) => Method::Put,
            _ => Method::Post,
        }
    }

    /// The path under `/admin/v1`.
    pub fn path(&self) -> String {
        use Call::*;
        let t = |id: &str, rest: &str| format!("/tenants/{}{rest}", segment(id));
        let p = |id: &str, rest: &str| format!("/principals/{}{rest}", segment(id));
        let d = |id: &str, rest: &str| format!("/delegations/{}{rest}", segment(id));
        let c = |id: &str| format!("/clients/{}", segment(id));
        match self {
            CreateTenant(_) | ListTenants => "/tenants".into(),
            ShowTenant(id) => t(id, ""),
            DisableTenant(id) => t(id, "/disable"),
            EnableTenant(id) => t(id, "/enable"),
            SetTokenTtl(id, _) => t(id, "/token-ttl"),
            SetClientKeyAge(id, _) => t(id, "/client-key-age"),
            AccessReport(id) => t(id, "/access-report"),
            CreatePrincipal(id, _) | ListPrincipals(id) => t(id, "/principals"),
            ShowPrincipal(id) => p(id, ""),
            DisablePrincipal(id) => p(id, "/disable"),
            EnablePrincipal(id) => p(id, "/enable"),
            RevokePrincipal(id, _) => p(id, "/revoke"),
            ReinstatePrincipal(id, _) => p(id, "/reinstate"),
            SetScopes(id, _) => p(id, "/scopes"),
            SetPublicKey(id, _) => p(id, "/public-key"),
            NewSecret(id) => p(id, "/secret"),
            RevokeToken(_) => "/tokens/revoke".into(),
            CreateGrant(_) => "/delegations".into(),
            RevokeGrant(id, _) => d(id, "/revoke"),
            ListGrants(id) => t(id, "/delegations"),
            ShowGrant(id) => d(id, ""),
            CreateHoneytoken(id, _) => t(id, "/honeytokens"),
            RotateKeys => "/keys/rotate".into(),
            ListKeys => "/keys".into(),
            InviteUser(id, _) => t(id, "/invites"),
            CreateClient(id, _) | ListClients(id) => t(id, "/clients"),
            ShowClient(id) | DeleteClient(id) => c(id),
        }
    }

    /// The JSON body, if the call has one.
    pub fn body(&self) -> Result<Option<Vec<u8>>, serde_json::Error> {
        use Call::*;
        let json = |v: Result<Vec<u8>, serde_json::Error>| v.map(Some);
        match self {
            CreateTenant(b) => json(serde_json::to_vec(b)),
            SetTokenTtl(_, b) => json(serde_json::to_vec(b)),
            SetClientKeyAge(_, b) => json(serde_json::to_vec(b)),
            CreatePrincipal(_, b) => json(serde_json::to_vec(b)),
            RevokePrincipal(_, b) | RevokeGrant(_, b) => json(serde_json::to_vec(b)),
            ReinstatePrincipal(_, b) => json(serde_json::to_vec(b)),
            SetScopes(_, b) => json(serde_json::to_vec(b)),
            SetPublicKey(_, b) => json(serde_json::to_vec(b)),
            RevokeToken(b) => json(serde_json::to_vec(b)),
            CreateGrant(b) => json(serde_json::to_vec(b)),
            CreateHoneytoken(_, b) => json(serde_json::to_vec(b)),
            CreateClient(_, b) => json(serde_json::to_vec(b)),
            InviteUser(_, b) => json(serde_json::to_vec(b)),
            _ => Ok(None),
        }
    }

    /// Whether the call changes something (and so carries an `Idempotency-Key`).
    pub fn mutates(&self) -> bool {
        self.method() != Method::Get
    }
}

/// Everything but RFC 3986's unreserved characters.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_cannot_reach_another_route() {
        assert_eq!(segment("acme"), "acme");
        assert_eq!(segment("../keys/rotate"), "..%2Fkeys%2Frotate");
        assert_eq!(segment("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(
            Call::ShowPrincipal("x/../../keys".into()).path(),
            "/principals/x%2F..%2F..%2Fkeys"
        );
    }

    #[test]
    fn left_out_fields_are_not_sent_and_a_reset_is() {
        let body = Call::CreateTenant(CreateTenant {
            name: "acme".into(),
            max_token_ttl_secs: None,
        })
        .body()
        .ok()
        .flatten();
        assert_eq!(body.as_deref(), Some(&br#"{"name":"acme"}"#[..]));
        let reset = Call::SetClientKeyAge(
            "acme".into(),
            SetClientKeyAge {
                max_client_key_age_secs: None,
            },
        );
        assert_eq!(
            reset.body().ok().flatten().as_deref(),
            Some(&br#"{"max_client_key_age_secs":null}"#[..])
        );
        assert_eq!(reset.method(), Method::Put);
        assert!(Call::ListKeys.body().ok().flatten().is_none());
        assert!(!Call::ListKeys.mutates());
    }

    #[test]
    fn a_misspelt_field_is_refused() {
        let r = serde_json::from_str::<CreateTenant>(r#"{"name":"a","max_ttl":5}"#);
        assert!(r.is_err());
        let r = serde_json::from_str::<Reason>(r#"{"reasons":"x"}"#);
        assert!(r.is_err());
    }
}
