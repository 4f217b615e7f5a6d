//! `POST /admin/v1/gateways`: a gateway enrolled as a service principal of Warden's own
//! system tenant, holding `warden:gateway` and the public key it will sign its client
//! assertions with. A gateway serves every tenant, so its principal belongs to none of them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rand_core::OsRng;
use warden_api::gateway::{EnrollGateway, EnrolledGateway};
use warden_api::scope::{GATEWAY, SYSTEM_TENANT};
use warden_core::{PrincipalId, PrincipalKind, ScopeSet, TenantId};
use warden_store::{Change, Principal, StoreError, Tenant};

use crate::admin::{json_body, validate_jwk, validate_name, ApiResult};
use crate::error::Problem;
use crate::journal::{json, Answer, Journal};
use crate::Authority;

pub async fn enroll(
    State(a): State<Arc<Authority>>,
    journal: Journal,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: EnrollGateway = json_body(&a, &headers, body).await?;
    validate_name(&req.name)?;
    let jwk = validate_jwk(&req.public_key)?;
    let tenant = system_tenant(&a).await?;
    let taken = a
        .store
        .list_principals(&tenant.id)
        .await?
        .into_iter()
        .any(|p| p.name == req.name);
    if taken {
        return Err(Problem::conflict(format!(
            "a gateway named `{}` is enrolled already; give the new one another name, or \
             rotate that one's key",
            req.name
        )));
    }
    let scopes = ScopeSet::parse(GATEWAY).map_err(|_| Problem::internal())?;
    let now = a.now();
    let p = Principal {
        id: PrincipalId::generate(PrincipalKind::Service, &mut OsRng),
        tenant: tenant.id.clone(),
        kind: PrincipalKind::Service,
        name: req.name,
        owner: None,
        scopes,
        audiences: Vec::new(),
        public_jwk: Some(jwk),
        key_registered_at: Some(now),
        secret_hash: None,
        disabled: false,
        revoked: None,
        created_at: now,
        updated_at: now,
    };
    let enrolled = EnrolledGateway {
        client_id: p.id.to_string(),
        tenant: tenant.id.to_string(),
        scopes: GATEWAY.into(),
    };
    let (_, answer) = journal
        .commit(
            &a,
            Change::CreatePrincipal(&p),
            StatusCode::CREATED,
            &|_| json(&enrolled),
        )
        .await?;
    tracing::info!(principal = %p.id, name = %p.name, "gateway enrolled");
    Ok(answer)
}

/// The system tenant, made on first use; two replicas making it at once agree on one.
pub(crate) async fn system_tenant(a: &Authority) -> ApiResult<Tenant> {
    if let Some(t) = a.store.tenant_by_name(SYSTEM_TENANT).await? {
        return Ok(t);
    }
    let t = Tenant {
        id: TenantId::generate(&mut OsRng),
        name: SYSTEM_TENANT.into(),
        max_token_ttl_secs: a.config.max_token_ttl_secs,
        max_client_key_age_secs: None,
        disabled: false,
        created_at: a.now(),
    };
    match a.store.create_tenant(&t).await {
        Ok(()) => {
            tracing::info!(tenant = %t.id, "system tenant created");
            Ok(t)
        }
        Err(StoreError::Conflict(_)) => a
            .store
            .tenant_by_name(SYSTEM_TENANT)
            .await?
            .ok_or_else(Problem::internal),
        Err(e) => Err(e.into()),
    }
}
