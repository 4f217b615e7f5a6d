//! Honeytokens: credentials that look like any agent's — a client id with a secret and an
//! access token — bound to no power, planted where an attacker would look. The principal has
//! no scopes, and a `honeytoken` event in the revocation log makes every gateway and this
//! authority refuse anything naming it, whenever issued, and raise a high-severity alert with
//! the caller's address. The presenter sees an ordinary refusal.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use rand_core::OsRng;
use warden_api::admin::CreateHoneytoken;
use warden_core::claims::{AccessClaims, Audience};
use warden_core::id::random_token_id;
use warden_core::{jws, PrincipalId, PrincipalKind, ScopeSet};
use warden_store::{Change, NewRevocation, Principal, RevocationTarget};

use crate::admin::{json_body, resolve_tenant, validate_name, ApiResult};
use crate::error::Problem;
use crate::journal::{json, Answer, Journal};
use crate::Authority;

pub async fn create(
    State(a): State<Arc<Authority>>,
    caller: crate::admin_auth::Caller,
    journal: Journal,
    Path(t): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: CreateHoneytoken = json_body(&a, &headers, body).await?;
    let tenant = resolve_tenant(&a, &caller, &t).await?;
    validate_name(&req.name)?;
    let bait_scope = req.scopes.unwrap_or_else(|| "reports:read".into());
    ScopeSet::parse(&bait_scope).map_err(|e| Problem::unprocessable(format!("scopes: {e}")))?;
    let now = a.now();
    let secret = a.secret_key.mint(&mut OsRng);
    let p = Principal {
        id: PrincipalId::generate(PrincipalKind::Agent, &mut OsRng),
        tenant: tenant.id.clone(),
        kind: PrincipalKind::Agent,
        name: req.name,
        owner: None,
        scopes: ScopeSet::default(),
        audiences: Vec::new(),
        public_jwk: None,
        key_registered_at: None,
        secret_hash: Some(secret.stored.clone()),
        disabled: false,
        revoked: None,
        created_at: now,
        updated_at: now,
    };
    // Flagged in the transaction that creates it: it never exists unflagged, with or
    // without a credential.
    let flag = NewRevocation {
        target: RevocationTarget::Honeytoken {
            principal: p.id.clone(),
        },
        issued_before: i64::MAX,
        horizon: i64::MAX,
        reason: Some("honeytoken".into()),
        created_at: now,
    };
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
    let body = warden_api::admin::Honeytoken {
        principal: p.id.clone(),
        name: p.name.clone(),
        client_id: p.id.clone(),
        client_secret: secret.secret.as_str().to_owned(),
        access_token,
        token_endpoint: a.config.token_endpoint(),
    };
    let change = Change::CreateHoneytoken {
        principal: &p,
        flag: &flag,
    };
    let (applied, answer) = journal
        .commit(&a, change, StatusCode::CREATED, &|_| json(&body))
        .await?;
    if let Some(flagged) = &applied.revocation {
        a.revocations.applied(flagged.seq, a.store.as_ref()).await?;
    }
    tracing::info!(principal = %p.id, tenant = %tenant.id, "honeytoken created");
    Ok(answer)
}
