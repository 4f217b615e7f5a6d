//! Inviting a person (`POST /tenants/{tenant}/invites`): the user is created with the
//! invitation that enrolls them, in one change. The link is in this answer and nowhere else;
//! the store keeps only its digest.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use rand_core::OsRng;
use warden_api::admin::{CreateInvite, Invitation};
use warden_core::{PrincipalId, PrincipalKind};
use warden_store::{Change, Invite, Principal};

use crate::admin::{json_body, parse_scopes, resolve_tenant, validate_name, ApiResult};
use crate::admin_auth::Caller;
use crate::journal::{json, Answer, Journal};
use crate::people::{invite_digest, INVITE_PREFIX};
use crate::{views, Authority};

pub async fn create(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(t): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: CreateInvite = json_body(&a, &headers, body).await?;
    let tenant = resolve_tenant(&a, &caller, &t).await?;
    validate_name(&req.name)?;
    let scopes = parse_scopes(req.scopes.as_deref().unwrap_or(""))?;
    caller.may_grant(&scopes)?;
    let now = a.now();
    let user = Principal {
        id: PrincipalId::generate(PrincipalKind::User, &mut OsRng),
        tenant: tenant.id,
        kind: PrincipalKind::User,
        name: req.name,
        owner: None,
        scopes,
        audiences: Vec::new(),
        public_jwk: None,
        key_registered_at: None,
        secret_hash: None,
        disabled: false,
        revoked: None,
        created_at: now,
        updated_at: now,
    };
    let token = format!("{INVITE_PREFIX}{}", crate::people::random_token());
    let invite = Invite {
        digest: invite_digest(&token),
        user: user.id.clone(),
        created_at: now,
        expires_at: now + a.config.invite_ttl_secs,
        used_at: None,
        totp_pending: None,
    };
    let shown = Invitation {
        user: views::principal(&user),
        invite_url: format!("{}/enroll/{token}", a.config.issuer),
        expires_at: invite.expires_at,
    };
    let change = Change::CreateInvite {
        user: &user,
        invite: &invite,
    };
    let (_, answer) = journal
        .commit(&a, change, StatusCode::CREATED, &|_| json(&shown))
        .await?;
    tracing::info!(user = %user.id, tenant = %user.tenant, "person invited");
    Ok(answer)
}
