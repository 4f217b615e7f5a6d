//! Lifecycle calls for delegation and revocation, under `/admin/v1` with the rest of the
//! lifecycle API: delegation grants (a user's consent that an agent acts for them), and
//! revoking a principal, a grant or a single token. A revocation answers only once it is
//! durable and applied to the stream every gateway follows.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rand_core::OsRng;
use warden_api::admin::{CreateGrant, Reason, Reinstate, RevokeToken};
use warden_core::id::random_token_id;
use warden_core::PrincipalKind;
use warden_store::{
    Change, DelegationGrant, NewRevocation, RenderAnswer, Revocation, RevocationTarget, StoreError,
    Supersede,
};

use crate::admin::{json_body, parse_scopes, resolve_principal, resolve_tenant, ApiResult};
use crate::admin_auth::Caller;
use crate::error::Problem;
use crate::journal::{json, Answer, Journal};
use crate::Authority;

pub async fn create_grant(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: CreateGrant = json_body(&a, &headers, body).await?;
    let user = resolve_principal(&a, &caller, &req.user).await?;
    let agent = resolve_principal(&a, &caller, &req.agent).await?;
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
    caller.may_grant(&scopes)?;
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
    let render: RenderAnswer<'_> = &|_| json(&crate::views::grant(&grant));
    let create = |supersede| Change::CreateDelegationGrant {
        grant: &grant,
        supersede,
    };
    let created = journal
        .commit(&a, create(None), StatusCode::CREATED, render)
        .await;
    let (applied, answer) = match created {
        // The store keeps one unrevoked grant per pair, expired or not; an expired one is no
        // longer live, so it is retired, in the same transaction, to make room for the new
        // consent.
        Err(StoreError::Conflict(what)) => match expired_grant(&a, &grant).await? {
            Some((old, event)) => {
                let supersede = Supersede {
                    grant: &old,
                    event: &event,
                };
                journal
                    .commit(&a, create(Some(supersede)), StatusCode::CREATED, render)
                    .await?
            }
            None => return Err(StoreError::Conflict(what).into()),
        },
        other => other?,
    };
    if let Some(retired) = &applied.revocation {
        published(&a, retired).await?;
    }
    tracing::info!(grant = %grant.id, user = %grant.user, agent = %grant.agent, "delegation granted");
    Ok(answer)
}

/// The pair's expired, unrevoked grant, with the event that retires it. Every token it
/// delegated was issued before it expired, so the event ends those and nothing newer.
async fn expired_grant(
    a: &Authority,
    new: &DelegationGrant,
) -> ApiResult<Option<(String, NewRevocation)>> {
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
    Ok(expired.map(|old| {
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
        (old.id, event)
    }))
}

pub async fn list_grants(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    Path(t): Path<String>,
) -> ApiResult<Json<Vec<warden_api::admin::Grant>>> {
    let tenant = resolve_tenant(&a, &caller, &t).await?;
    let grants = a.store.list_delegation_grants(&tenant.id).await?;
    Ok(Json(grants.iter().map(crate::views::grant).collect()))
}

pub async fn show_grant(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<warden_api::admin::Grant>> {
    let grant = visible_grant(&a, &caller, &id).await?;
    Ok(Json(crate::views::grant(&grant)))
}

/// A delegation grant by id; one of another tenant than a tenant-bound caller's own is not
/// found.
async fn visible_grant(a: &Authority, caller: &Caller, id: &str) -> ApiResult<DelegationGrant> {
    a.store
        .delegation_grant(id)
        .await?
        .filter(|g| caller.sees(&g.tenant))
        .ok_or_else(|| Problem::not_found(format!("delegation grant `{id}` not found")))
}

async fn reason(a: &Authority, headers: &HeaderMap, body: Body) -> ApiResult<Option<String>> {
    let r: Reason = optional_json_body(a, headers, body).await?;
    if r.reason.as_ref().is_some_and(|r| r.len() > 500) {
        return Err(Problem::unprocessable(
            "reason is longer than 500 characters",
        ));
    }
    Ok(r.reason)
}

/// A JSON body that may be left out (then `T::default()`); when present it must say what it
/// is.
async fn optional_json_body<T: serde::de::DeserializeOwned + Default>(
    a: &Authority,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    let limit = a.config.limits.max_body_bytes;
    let bytes = crate::http::read_body(headers, body, limit).await?;
    if bytes.is_empty() {
        return Ok(T::default());
    }
    if crate::http::media_type(headers).as_deref() != Some("application/json") {
        return Err(Problem::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
            "send application/json",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| Problem::bad_request(format!("invalid JSON: {e}")))
}

pub async fn revoke_grant(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let reason = reason(&a, &headers, body).await?;
    let grant = visible_grant(&a, &caller, &id).await?;
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
    let change = Change::RevokeDelegationGrant {
        id: &id,
        event: &event,
    };
    let (applied, answer) = journal
        .commit(&a, change, StatusCode::OK, &|x| {
            json(&x.revocation.as_ref().map(crate::revocation::to_event))
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => {
                Problem::conflict(format!("delegation grant `{id}` is already revoked"))
            }
            other => other.into(),
        })?;
    answer_published(&a, &applied.revocation, answer).await
}

pub async fn revoke_principal(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let reason = reason(&a, &headers, body).await?;
    let p = resolve_principal(&a, &caller, &id).await?;
    let now = a.now();
    let event = tokens_of(&a, p.id.clone(), reason.clone(), now);
    let change = Change::RevokePrincipal {
        id: &p.id,
        now,
        reason: reason.as_deref(),
        event: &event,
    };
    let (applied, answer) = journal
        .commit(&a, change, StatusCode::OK, &|x| {
            json(&x.revocation.as_ref().map(crate::revocation::to_event))
        })
        .await?;
    let answer = answer_published(&a, &applied.revocation, answer).await?;
    crate::admin::reload_gateway_keys(&a).await?;
    Ok(answer)
}

/// `POST /admin/v1/principals/{id}/reinstate`: lifts a revocation; the principal may ask for
/// tokens again, with the new key when one is given. Tokens issued before the revocation stay
/// ended.
pub async fn reinstate_principal(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: Reinstate = optional_json_body(&a, &headers, body).await?;
    let mut p = resolve_principal(&a, &caller, &id).await?;
    if p.revoked.is_none() {
        return Err(Problem::conflict(format!(
            "principal `{}` is not revoked",
            p.id
        )));
    }
    let jwk = req
        .public_key
        .as_ref()
        .map(crate::admin::validate_jwk)
        .transpose()?;
    let now = a.now();
    let change = Change::ReinstatePrincipal {
        id: &p.id,
        jwk: jwk.as_deref(),
        now,
    };
    p.revoked = None;
    if let Some(k) = &jwk {
        p.public_jwk = Some(k.clone());
        p.key_registered_at = Some(now);
    }
    p.updated_at = now;
    let (_, answer) = journal
        .commit(&a, change, StatusCode::OK, &|_| {
            json(&crate::views::principal(&p))
        })
        .await?;
    crate::admin::reload_gateway_keys(&a).await?;
    tracing::info!(principal = %p.id, new_key = jwk.is_some(), "principal reinstated");
    Ok(answer)
}

/// The event that ends every token issued so far in which `principal` appears.
pub(crate) fn tokens_of(
    a: &Authority,
    principal: warden_core::PrincipalId,
    reason: Option<String>,
    now: i64,
) -> NewRevocation {
    NewRevocation {
        target: RevocationTarget::Principal { principal },
        issued_before: cutoff(now),
        horizon: a.token_horizon(now),
        reason,
        created_at: now,
    }
}

/// The event that ends every token of a tenant issued up to now (its disable).
pub(crate) fn tokens_of_tenant(
    a: &Authority,
    tenant: warden_core::TenantId,
    now: i64,
) -> NewRevocation {
    NewRevocation {
        target: RevocationTarget::Tenant { tenant },
        issued_before: cutoff(now),
        horizon: a.token_horizon(now),
        reason: Some("tenant disabled".into()),
        created_at: now,
    }
}

pub async fn revoke_token(
    State(a): State<Arc<Authority>>,
    journal: Journal,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
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
    let (applied, answer) = journal
        .commit(&a, Change::AppendRevocation(&event), StatusCode::OK, &|x| {
            json(&x.revocation.as_ref().map(crate::revocation::to_event))
        })
        .await?;
    answer_published(&a, &applied.revocation, answer).await
}

/// `iat` has one-second resolution: everything issued up to and including this second dies,
/// which errs on the side of the revocation.
fn cutoff(now: i64) -> i64 {
    now + 1
}

/// Waits until the appended event is applied to the stream every gateway follows.
pub(crate) async fn published(a: &Authority, appended: &Revocation) -> ApiResult<()> {
    a.revocations
        .applied(appended.seq, a.store.as_ref())
        .await?;
    tracing::info!(seq = appended.seq, target = ?appended.event.target, "revoked");
    Ok(())
}

/// `answer`, once the revocation it reports is published.
async fn answer_published(
    a: &Authority,
    appended: &Option<Revocation>,
    answer: Answer,
) -> ApiResult<Answer> {
    match appended {
        Some(r) => published(a, r).await.map(|()| answer),
        None => {
            tracing::error!("a revocation call appended no revocation");
            Err(Problem::internal())
        }
    }
}
