//! Lifecycle calls for delegation and revocation, under `/admin/v1` with the rest of the
//! lifecycle API: delegation grants (a user's consent that an agent acts for them), and
//! revoking a principal, a grant or a single token. A revocation answers only once it is
//! durable and applied to the stream every gateway follows.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use rand_core::OsRng;
use serde::Deserialize;
use warden_core::id::random_token_id;
use warden_core::PrincipalKind;
use warden_store::{DelegationGrant, NewRevocation, Revocation, RevocationTarget};

use crate::admin::{
    created, json_body, parse_scopes, resolve_principal, resolve_tenant, ApiResult,
};
use crate::error::Problem;
use crate::Authority;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    user: String,
    agent: String,
    scopes: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

pub async fn create_grant(
    State(a): State<Arc<Authority>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let req: CreateGrant = json_body(&a, &headers, body).await?;
    let user = resolve_principal(&a, &req.user).await?;
    let agent = resolve_principal(&a, &req.agent).await?;
    if user.kind != PrincipalKind::User {
        return Err(Problem::unprocessable("`user` must be a user"));
    }
    if agent.kind == PrincipalKind::User {
        return Err(Problem::unprocessable(
            "`agent` must be an agent or a service",
        ));
    }
    if user.tenant != agent.tenant {
        return Err(Problem::unprocessable(
            "user and agent must be in the same tenant",
        ));
    }
    let scopes = parse_scopes(&req.scopes)?;
    if scopes.is_empty() {
        return Err(Problem::unprocessable("a grant needs at least one scope"));
    }
    let now = a.now();
    let expires_at = match req.expires_in {
        None => None,
        Some(s) if s > 0 => Some(now.saturating_add(s)),
        Some(_) => return Err(Problem::unprocessable("expires_in must be positive")),
    };
    let grant = DelegationGrant {
        id: format!("dlg_{}", random_token_id(&mut OsRng)),
        tenant: user.tenant.clone(),
        user: user.id,
        agent: agent.id,
        scopes,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    match a.store.create_delegation_grant(&grant).await {
        // The store keeps one unrevoked grant per pair, expired or not; an expired one is no
        // longer live, so it is retired to make room for the new consent.
        Err(warden_store::StoreError::Conflict(_)) if retire_expired_grant(&a, &grant).await? => {
            a.store.create_delegation_grant(&grant).await?;
        }
        other => other?,
    }
    tracing::info!(grant = %grant.id, user = %grant.user, agent = %grant.agent, "delegation granted");
    Ok(created(grant))
}

/// Marks the pair's expired, unrevoked grant revoked; whether there was one. Every token it
/// delegated was issued before it expired, so the event ends those and nothing newer.
async fn retire_expired_grant(a: &Authority, new: &DelegationGrant) -> ApiResult<bool> {
    let now = a.now();
    let expired = a
        .store
        .list_delegation_grants(&new.tenant)
        .await?
        .into_iter()
        .find(|g| {
            g.user == new.user
                && g.agent == new.agent
                && g.revoked_at.is_none()
                && g.expires_at.is_some_and(|e| e <= now)
        });
    let Some(old) = expired else {
        return Ok(false);
    };
    let event = NewRevocation {
        target: RevocationTarget::Grant {
            grant: old.id.clone(),
            user: old.user,
            agent: old.agent,
        },
        issued_before: old.expires_at.unwrap_or(now),
        horizon: a.token_horizon(now),
        reason: Some("expired; superseded by a new grant".into()),
        created_at: now,
    };
    match a.store.revoke_delegation_grant(&old.id, &event).await {
        Ok(appended) => {
            let _ = published(a, appended).await?;
        }
        // Retired concurrently by another request.
        Err(warden_store::StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(true)
}

pub async fn list_grants(
    State(a): State<Arc<Authority>>,
    Path(t): Path<String>,
) -> ApiResult<Json<Vec<DelegationGrant>>> {
    let tenant = resolve_tenant(&a, &t).await?;
    Ok(Json(a.store.list_delegation_grants(&tenant.id).await?))
}

pub async fn show_grant(
    State(a): State<Arc<Authority>>,
    Path(id): Path<String>,
) -> ApiResult<Json<DelegationGrant>> {
    a.store
        .delegation_grant(&id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("delegation grant `{id}` not found")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[serde(default)]
    reason: Option<String>,
}

async fn reason(a: &Authority, headers: &HeaderMap, body: Body) -> ApiResult<Option<String>> {
    let limit = a.config.limits.max_body_bytes;
    let bytes = crate::http::read_body(headers, body, limit)
        .await
        .map_err(|limit| {
            Problem::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large",
                format!("request body exceeds {limit} bytes"),
            )
        })?;
    // The body is optional; when present it must say what it is.
    if bytes.is_empty() {
        return Ok(None);
    }
    if crate::http::media_type(headers).as_deref() != Some("application/json") {
        return Err(Problem::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
            "send application/json",
        ));
    }
    let r: Reason = serde_json::from_slice(&bytes)
        .map_err(|e| Problem::bad_request(format!("invalid JSON: {e}")))?;
    if r.reason.as_ref().is_some_and(|r| r.len() > 500) {
        return Err(Problem::unprocessable(
            "reason is longer than 500 characters",
        ));
    }
    Ok(r.reason)
}

pub async fn revoke_grant(
    State(a): State<Arc<Authority>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Revocation>> {
    let reason = reason(&a, &headers, body).await?;
    let grant = a
        .store
        .delegation_grant(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("delegation grant `{id}` not found")))?;
    let now = a.now();
    let event = NewRevocation {
        target: RevocationTarget::Grant {
            grant: grant.id.clone(),
            user: grant.user,
            agent: grant.agent,
        },
        issued_before: cutoff(now),
        horizon: a.token_horizon(now),
        reason,
        created_at: now,
    };
    let appended = a
        .store
        .revoke_delegation_grant(&id, &event)
        .await
        .map_err(|e| match e {
            warden_store::StoreError::NotFound(_) => {
                Problem::conflict(format!("delegation grant `{id}` is already revoked"))
            }
            other => other.into(),
        })?;
    published(&a, appended).await
}

pub async fn revoke_principal(
    State(a): State<Arc<Authority>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Revocation>> {
    let reason = reason(&a, &headers, body).await?;
    let p = resolve_principal(&a, &id).await?;
    revoke_tokens_of(&a, p.id, reason).await
}

/// Ends every token issued so far in which `principal` appears.
pub(crate) async fn revoke_tokens_of(
    a: &Authority,
    principal: warden_core::PrincipalId,
    reason: Option<String>,
) -> ApiResult<Json<Revocation>> {
    let now = a.now();
    let event = NewRevocation {
        target: RevocationTarget::Principal { principal },
        issued_before: cutoff(now),
        horizon: a.token_horizon(now),
        reason,
        created_at: now,
    };
    let appended = a.store.append_revocation(&event).await?;
    published(a, appended).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeToken {
    jti: String,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn revoke_token(
    State(a): State<Arc<Authority>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Revocation>> {
    let req: RevokeToken = json_body(&a, &headers, body).await?;
    if req.jti.is_empty() || req.jti.len() > 256 {
        return Err(Problem::unprocessable("jti must be 1 to 256 characters"));
    }
    let now = a.now();
    // The token itself is not at hand, so it is remembered as long as any token can live.
    let event = NewRevocation {
        target: RevocationTarget::Token { jti: req.jti },
        issued_before: 0,
        horizon: a.token_horizon(now),
        reason: req.reason,
        created_at: now,
    };
    let appended = a.store.append_revocation(&event).await?;
    published(&a, appended).await
}

/// `iat` has one-second resolution: everything issued up to and including this second dies,
/// which errs on the side of the revocation.
fn cutoff(now: i64) -> i64 {
    now + 1
}

async fn published(a: &Authority, appended: Revocation) -> ApiResult<Json<Revocation>> {
    a.revocations
        .applied(appended.seq, a.store.as_ref())
        .await?;
    tracing::info!(seq = appended.seq, target = ?appended.event.target, "revoked");
    Ok(Json(appended))
}
