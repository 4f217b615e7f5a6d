//! Access review: who (principal, kind, owner) can do what (scope ceilings, audiences,
//! delegation grants in both directions), and when they last obtained and used a token. One
//! call per tenant; `warden report access` renders it as JSON or CSV.
//!
//! Gateways report use (`POST /admin/v1/activity`), since requests never reach the authority.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use warden_api::admin::{AccessRow, GrantRef};
use warden_api::gateway::{UsageAccepted, UsageReport};
use warden_core::PrincipalId;
use warden_store::DelegationGrant;

use crate::admin::{json_body, resolve_tenant, ApiResult};
use crate::error::Problem;
use crate::Authority;

pub async fn access_report(
    State(a): State<Arc<Authority>>,
    caller: crate::admin_auth::Caller,
    Path(t): Path<String>,
) -> ApiResult<Json<Vec<AccessRow>>> {
    let tenant = resolve_tenant(&a, &caller, &t).await?;
    // What happened up to this call counts.
    a.flush_activity().await?;
    let now = a.now();
    let live = |g: &DelegationGrant| g.revoked_at.is_none() && g.expires_at.is_none_or(|e| e > now);
    let grants: Vec<DelegationGrant> = a
        .store
        .list_delegation_grants(&tenant.id)
        .await?
        .into_iter()
        .filter(live)
        .collect();
    let activity: HashMap<PrincipalId, (Option<i64>, Option<i64>)> = a
        .store
        .activity(&tenant.id)
        .await?
        .into_iter()
        .map(|x| (x.principal, (x.last_issued_at, x.last_used_at)))
        .collect();
    let view = |g: &DelegationGrant, other: &PrincipalId| GrantRef {
        grant: g.id.clone(),
        principal: other.clone(),
        scopes: g.scopes.to_string(),
        expires_at: g.expires_at,
    };
    let rows = a
        .store
        .list_principals(&tenant.id)
        .await?
        .into_iter()
        .map(|p| {
            let (last_issued_at, last_used_at) = activity.get(&p.id).copied().unwrap_or_default();
            AccessRow {
                acts_for: grants
                    .iter()
                    .filter(|g| g.agent == p.id)
                    .map(|g| view(g, &g.user))
                    .collect(),
                delegates_to: grants
                    .iter()
                    .filter(|g| g.user == p.id)
                    .map(|g| view(g, &g.agent))
                    .collect(),
                principal: p.id,
                kind: p.kind.to_string(),
                name: p.name,
                owner: p.owner,
                disabled: p.disabled,
                scopes: p.scopes.to_string(),
                audiences: p.audiences,
                last_issued_at,
                last_used_at,
            }
        })
        .collect();
    Ok(Json(rows))
}

/// `POST /admin/v1/activity`: a gateway's summary of which principals it served, and when.
pub async fn record_use(
    State(a): State<Arc<Authority>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UsageAccepted>> {
    let report: UsageReport = json_body(&a, &headers, body).await?;
    if report.used.len() > 100_000 {
        return Err(Problem::unprocessable(
            "at most 100000 principals per report",
        ));
    }
    let now = a.now();
    let mut accepted = 0;
    for (principal, at) in &report.used {
        // A gateway's clock may run ahead; a report never claims use in the future.
        if PrincipalId::parse(principal).is_ok() && *at > 0 {
            a.activity.used(principal, (*at).min(now));
            accepted += 1;
        }
    }
    Ok(Json(UsageAccepted { accepted }))
}
