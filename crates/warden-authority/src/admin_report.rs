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
use serde::{Deserialize, Serialize};
use warden_core::PrincipalId;
use warden_store::DelegationGrant;

use crate::admin::{json_body, resolve_tenant, ApiResult};
use crate::error::Problem;
use crate::Authority;

#[derive(Serialize)]
pub struct AccessRow {
    principal: PrincipalId,
    kind: String,
    name: String,
    owner: Option<PrincipalId>,
    disabled: bool,
    /// The ceiling: the most any token for this principal can carry.
    scopes: String,
    audiences: Vec<String>,
    /// Live grants under which this principal acts for users.
    acts_for: Vec<GrantView>,
    /// Live grants this principal (a user) gave to agents.
    delegates_to: Vec<GrantView>,
    last_issued_at: Option<i64>,
    last_used_at: Option<i64>,
}

#[derive(Serialize)]
pub struct GrantView {
    grant: String,
    principal: PrincipalId,
    scopes: String,
    expires_at: Option<i64>,
}

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
    let view = |g: &DelegationGrant, other: &PrincipalId| GrantView {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// Principal id → the last time a gateway let one of its tokens through.
    used: HashMap<String, i64>,
}

/// `POST /admin/v1/activity`: a gateway's summary of which principals it served, and when.
pub async fn record_use(
    State(a): State<Arc<Authority>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
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
    Ok(Json(serde_json::json!({ "accepted": accepted })))
}
