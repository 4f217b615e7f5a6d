//! The admin API's answers ([`warden_api::admin`]) made from the store's rows: what a caller
//! sees of a row is decided here, once, and never by a row's own serialization (a secret
//! digest, say, cannot leak through a field added to the store).

use warden_api::admin as api;
use warden_store::{DelegationGrant, OAuthClient, Principal, SigningKeyRecord, Tenant};

pub fn tenant(t: &Tenant) -> api::Tenant {
    api::Tenant {
        id: t.id.clone(),
        name: t.name.clone(),
        max_token_ttl_secs: t.max_token_ttl_secs,
        max_client_key_age_secs: t.max_client_key_age_secs,
        disabled: t.disabled,
        created_at: t.created_at,
    }
}

pub fn principal(p: &Principal) -> api::Principal {
    api::Principal {
        id: p.id.clone(),
        tenant: p.tenant.clone(),
        kind: p.kind,
        name: p.name.clone(),
        owner: p.owner.clone(),
        scopes: p.scopes.clone(),
        audiences: p.audiences.clone(),
        public_jwk: p.public_jwk.clone(),
        key_registered_at: p.key_registered_at,
        disabled: p.disabled,
        revoked: p.revoked.as_ref().map(|r| api::Revoked {
            at: r.at,
            reason: r.reason.clone(),
        }),
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// Without its secret: only the answer that creates a client carries that.
pub fn client(c: &OAuthClient) -> api::Client {
    api::Client {
        client_id: c.id.clone(),
        tenant: c.tenant.clone(),
        name: c.name.clone(),
        redirect_uris: c
            .redirect_uris
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect(),
        public: c.public,
        token_endpoint_auth_method: if c.public {
            "none"
        } else {
            "client_secret_basic"
        }
        .into(),
        created_at: c.created_at,
        client_secret: None,
    }
}

pub fn grant(g: &DelegationGrant) -> api::Grant {
    api::Grant {
        id: g.id.clone(),
        tenant: g.tenant.clone(),
        user: g.user.clone(),
        agent: g.agent.clone(),
        scopes: g.scopes.clone(),
        created_at: g.created_at,
        expires_at: g.expires_at,
        revoked_at: g.revoked_at,
    }
}

pub fn signing_keys(records: &[SigningKeyRecord]) -> Vec<api::SigningKey> {
    records
        .iter()
        .map(|r| api::SigningKey {
            kid: r.kid.clone(),
            state: r.state.as_str().to_owned(),
            created_at: r.created_at,
            activated_at: r.activated_at,
            publish_until: r.publish_until,
        })
        .collect()
}
