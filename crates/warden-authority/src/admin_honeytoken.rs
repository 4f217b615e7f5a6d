//! Honeytokens: credentials that look like any agent's — a client id with a secret and an
//! access token — bound to no power, planted where an attacker would look. The principal has
//! no scopes, and a `honeytoken` event in the revocation log makes every gateway and this
//! authority refuse anything naming it, whenever issued, and raise a high-severity alert with
//! the caller's address. The presenter sees an ordinary refusal.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use rand_core::OsRng;
use serde::Deserialize;
use serde_json::json;
use warden_core::claims::{AccessClaims, Audience};
use warden_core::id::random_token_id;
use warden_core::{jws, PrincipalId, PrincipalKind, ScopeSet};
use warden_store::{NewRevocation, Principal, RevocationTarget};

use crate::admin::{
    created, json_body, new_client_secret, resolve_tenant, validate_name, ApiResult,
};
use crate::error::Problem;
use crate::Authority;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHoneytoken {
    /// A name an attacker would find plausible, e.g. `billing-export`.
    name: String,
    /// Scopes the bait token claims to carry; it is refused everywhere regardless.
    #[serde(default)]
    scopes: Option<String>,
}

pub async fn create(
    State(a): State<Arc<Authority>>,
    Path(t): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: CreateHoneytoken = json_body(&a, &headers, body).await?;
    let tenant = resolve_tenant(&a, &t).await?;
    validate_name(&req.name)?;
    let bait_scope = req.scopes.unwrap_or_else(|| "reports:read".into());
    ScopeSet::parse(&bait_scope).map_err(|e| Problem::unprocessable(format!("scopes: {e}")))?;
    let now = a.now();
    let p = Principal {
        id: PrincipalId::generate(PrincipalKind::Agent, &mut OsRng),
        tenant: tenant.id.clone(),
        kind: PrincipalKind::Agent,
        name: req.name,
        owner: None,
        scopes: ScopeSet::default(),
        audiences: Vec::new(),
        public_jwk: None,
        secret_hash: None,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    a.store.create_principal(&p).await?;
    // Flagged before any credential for it exists.
    let event = NewRevocation {
        target: RevocationTarget::Honeytoken {
            principal: p.id.clone(),
        },
        issued_before: i64::MAX,
        horizon: i64::MAX,
        reason: Some("honeytoken".into()),
        created_at: now,
    };
    let appended = a.store.append_revocation(&event).await?;
    a.revocations
        .applied(appended.seq, a.store.as_ref())
        .await?;
    let secret = new_client_secret(&a, &p.id).await?;
    let claims = AccessClaims {
        iss: a.config.issuer.clone(),
        sub: p.id.to_string(),
        aud: Audience::One(a.config.default_audience.clone()),
        exp: now + a.config.token_ttl_secs,
        iat: now,
        nbf: now,
        jti: random_token_id(&mut OsRng),
        client_id: p.id.to_string(),
        tenant: tenant.id.to_string(),
        scope: bait_scope,
        act: None,
        cnf: None,
        allowed_ips: None,
        max_uses: None,
    };
    let keys = a.keys.current();
    let access_token = jws::encode("at+jwt", Some(&keys.active_kid), &claims, &keys.active)
        .map_err(|_| Problem::internal())?;
    tracing::info!(principal = %p.id, tenant = %tenant.id, "honeytoken created");
    Ok(created(json!({
        "principal": p.id,
        "name": p.name,
        "client_id": p.id,
        "client_secret": secret,
        "access_token": access_token,
        "token_endpoint": a.config.token_endpoint(),
    })))
}
