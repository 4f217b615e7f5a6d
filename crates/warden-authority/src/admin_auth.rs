//! Who calls the admin API and what they may do there, decided in this one place.
//!
//! A caller is either the break-glass credential (the bootstrap token in the data dir, for
//! local recovery) or a principal presenting one of this authority's own access tokens,
//! requested with `resource=<issuer>/admin/v1` (RFC 8707) so that `aud` is exactly that URL.
//! A principal's powers come from the `warden:` scopes its token carries, read literally: a
//! wildcard granted for other reasons (`*:*`) confers none of them.
//!
//! Every route names the [`Action`] it performs; a tenant-bound caller reaches only its own
//! tenant's objects, and another tenant's answer 404 as if they did not exist
//! ([`Caller::sees`]). Granting a `warden:` scope needs that scope ([`Caller::may_grant`]).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use warden_api::admin_token::NotAnAdminToken;
use warden_core::{PrincipalId, Scope, ScopeSet, TenantId};

use crate::error::Problem;
use crate::Authority;

pub use warden_api::scope::{
    ADMIN, ADMIN_PATH, AUDIT_READ, GATEWAY, RESERVED, REVOKE, TENANT_ADMIN,
};

/// What a route does, as far as who may call it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Tenants' existence and state, signing keys, tokens revoked by `jti` alone.
    Platform,
    /// Reading a tenant's record.
    ReadTenant,
    /// Creating, changing and reading a tenant's principals, grants and honeytokens.
    Manage,
    /// Revoking a principal, a grant or a token of a tenant.
    Revoke,
    /// Revoking a principal, as a gateway's quarantine does.
    RevokePrincipal,
    /// Reading a tenant's access report.
    ReadAudit,
    /// Registering a gateway key, following the revocation stream, reporting use.
    Gateway,
}

/// The powers a token's `warden:` scopes confer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Powers {
    admin: bool,
    tenant_admin: bool,
    revoke: bool,
    audit_read: bool,
    gateway: bool,
}

impl Powers {
    pub fn of(scopes: &ScopeSet) -> Self {
        let has = |name: &str| scopes.iter().any(|s| s.as_str() == name);
        Self {
            admin: has(ADMIN),
            tenant_admin: has(TENANT_ADMIN),
            revoke: has(REVOKE),
            audit_read: has(AUDIT_READ),
            gateway: has(GATEWAY),
        }
    }

    /// Whether any power is conferred at all.
    pub fn any(self) -> bool {
        self.admin || self.tenant_admin || self.revoke || self.audit_read || self.gateway
    }

    fn permits(self, action: Action) -> bool {
        let Self {
            admin,
            tenant_admin,
            revoke,
            audit_read,
            gateway,
        } = self;
        match action {
            Action::Platform => admin,
            Action::ReadTenant => admin || tenant_admin || revoke || audit_read || gateway,
            Action::Manage => admin || tenant_admin,
            Action::Revoke => admin || tenant_admin || revoke,
            Action::RevokePrincipal => admin || tenant_admin || revoke || gateway,
            Action::ReadAudit => admin || tenant_admin || audit_read,
            Action::Gateway => gateway,
        }
    }

    /// A gateway serves every tenant; an admin administers every tenant.
    fn all_tenants(self) -> bool {
        self.admin || self.gateway
    }
}

/// A principal calling with an admin token.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    pub id: PrincipalId,
    pub tenant: TenantId,
    pub scopes: ScopeSet,
    pub powers: Powers,
    /// The token's `exp`: a long-lived call (the revocation stream) ends then.
    pub expires_at: i64,
}

/// Who is calling the admin API.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The bootstrap token from the data dir: every power, for local recovery.
    BreakGlass,
    Principal(AdminPrincipal),
}

impl Caller {
    /// The name the audit log records.
    pub fn audit_name(&self) -> String {
        match self {
            Self::BreakGlass => "break-glass".into(),
            Self::Principal(p) => p.id.to_string(),
        }
    }

    pub fn principal(&self) -> Option<&AdminPrincipal> {
        match self {
            Self::BreakGlass => None,
            Self::Principal(p) => Some(p),
        }
    }

    /// 403 unless the caller's scopes permit `action` somewhere.
    pub fn permit(&self, action: Action) -> Result<(), Problem> {
        match self {
            Self::BreakGlass => Ok(()),
            Self::Principal(p) if p.powers.permits(action) => Ok(()),
            Self::Principal(_) => Err(forbidden(match action {
                Action::Platform => format!("this call needs `{ADMIN}`"),
                Action::Manage => format!("this call needs `{ADMIN}` or `{TENANT_ADMIN}`"),
                Action::Revoke | Action::RevokePrincipal => {
                    format!("this call needs `{ADMIN}`, `{TENANT_ADMIN}` or `{REVOKE}`")
                }
                Action::ReadAudit => {
                    format!("this call needs `{ADMIN}`, `{TENANT_ADMIN}` or `{AUDIT_READ}`")
                }
                Action::ReadTenant => "this call needs a `warden:` administration scope".into(),
                Action::Gateway => format!("this call is for gateways (`{GATEWAY}`)"),
            })),
        }
    }

    /// Whether `tenant`'s objects exist for this caller: a tenant-bound caller sees only
    /// the tenant in its token's `tenant` claim.
    pub fn sees(&self, tenant: &TenantId) -> bool {
        match self {
            Self::BreakGlass => true,
            Self::Principal(p) => p.powers.all_tenants() || &p.tenant == tenant,
        }
    }

    /// Whether the caller may hand out `scopes` (to a principal's ceiling, a honeytoken, a
    /// delegation grant): each reserved scope a granted one covers must be held by the
    /// caller, or the caller must be an admin of every tenant. A granted scope in the
    /// `warden` namespace that names no known power is an admin's alone to grant, so that a
    /// power added later is not already out.
    pub fn may_grant(&self, scopes: &ScopeSet) -> Result<(), Problem> {
        let p = match self {
            Self::BreakGlass => return Ok(()),
            Self::Principal(p) if p.powers.admin => return Ok(()),
            Self::Principal(p) => p,
        };
        for granted in scopes.iter() {
            let covered = RESERVED
                .iter()
                .filter(|r| Scope::parse(r).is_ok_and(|reserved| granted.covers(&reserved)));
            for reserved in covered {
                if !p.scopes.iter().any(|s| s.as_str() == *reserved) {
                    return Err(forbidden(format!(
                        "granting `{granted}` needs `{reserved}`, which this caller does not hold",
                        granted = granted.as_str()
                    )));
                }
            }
            let namespace = granted.segments().next();
            if namespace == Some("warden") && !RESERVED.contains(&granted.as_str()) {
                return Err(forbidden(format!(
                    "granting `{}` needs `{ADMIN}`",
                    granted.as_str()
                )));
            }
        }
        Ok(())
    }
}

fn forbidden(detail: String) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!("an admin route ran without an authenticated caller");
            Problem::internal()
        })
    }
}

/// Authenticates the caller, refuses what its scopes never permit on this route, and hands
/// the [`Caller`] to the handler (and to the audit entry).
pub async fn middleware(State(a): State<Arc<Authority>>, mut req: Request, next: Next) -> Response {
    let caller = match authenticate(&a, req.headers()) {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let action = route
        .as_deref()
        .map(|r| action_of(req.method(), r.strip_prefix(ADMIN_PATH).unwrap_or(r)));
    // Unrouted, the router answers 404 or 405 as it would to anyone authenticated.
    if let Some(Some(action)) = action {
        if let Err(p) = caller.permit(action) {
            return p.into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The action each admin route performs; `None` for a path no route serves.
fn action_of(method: &axum::http::Method, route: &str) -> Option<Action> {
    use axum::http::Method;
    let get = *method == Method::GET || *method == Method::HEAD;
    Some(match route {
        "/tenants" if get => Action::ReadTenant,
        "/tenants" => Action::Platform,
        "/tenants/{tenant}" => Action::ReadTenant,
        "/tenants/{tenant}/disable" | "/tenants/{tenant}/enable" => Action::Platform,
        "/tenants/{tenant}/token-ttl" => Action::Platform,
        "/keys" | "/keys/rotate" => Action::Platform,
        "/tokens/revoke" => Action::Platform,
        "/gateways" => Action::Platform,
        "/gateway-keys/{kid}" | "/activity" | "/revocations/stream" => Action::Gateway,
        "/principals/{id}/revoke" => Action::RevokePrincipal,
        "/delegations/{id}/revoke" => Action::Revoke,
        "/tenants/{tenant}/access-report" => Action::ReadAudit,
        "/tenants/{tenant}/principals"
        | "/tenants/{tenant}/client-key-age"
        | "/tenants/{tenant}/delegations"
        | "/tenants/{tenant}/honeytokens"
        | "/delegations"
        | "/delegations/{id}"
        | "/principals/{id}"
        | "/principals/{id}/disable"
        | "/principals/{id}/enable"
        | "/principals/{id}/reinstate"
        | "/principals/{id}/scopes"
        | "/principals/{id}/public-key"
        | "/principals/{id}/secret"
        | "/tenants/{tenant}/invites"
        | "/tenants/{tenant}/clients"
        | "/clients/{id}" => Action::Manage,
        _ => return None,
    })
}

/// The caller behind an `Authorization: Bearer` header: the break-glass token, or an admin
/// token that verifies, is live and names a principal still in good standing.
pub fn authenticate(a: &Authority, headers: &axum::http::HeaderMap) -> Result<Caller, Problem> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Problem::unauthorized(format!(
                "an admin token is required (Authorization: Bearer …, requested with \
                 resource={})",
                a.admin_audience()
            ))
        })?;
    if a.is_admin_token(presented) {
        return Ok(Caller::BreakGlass);
    }
    let now = a.now();
    let verified = a
        .verify_admin_token(presented, now)
        .map_err(|e| Problem::unauthorized(format!("admin token refused: {e}")))?;
    let claims = verified.claims();
    warden_api::admin_token::check(claims).map_err(|e| match e {
        NotAnAdminToken::Audience => Problem::unauthorized(format!(
            "admin token refused: its audience must be exactly `{}`",
            a.admin_audience()
        )),
        other => Problem::unauthorized(format!("admin token refused: {other}")),
    })?;
    match a.revocations.check(claims) {
        Ok(()) => {}
        Err(warden_core::revocation::Revoked::Honeytoken(p)) => {
            a.honeytoken_used(&p, "admin", None);
            return Err(Problem::unauthorized(
                "admin token refused: token is revoked",
            ));
        }
        Err(_) => {
            return Err(Problem::unauthorized(
                "admin token refused: token is revoked",
            ))
        }
    }
    let access = verified
        .access()
        .map_err(|e| Problem::unauthorized(format!("admin token refused: {e}")))?;
    let powers = Powers::of(access.scopes());
    if !powers.any() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token carries no `warden:` administration scope",
        ));
    }
    Ok(Caller::Principal(AdminPrincipal {
        id: access.principal().clone(),
        tenant: access.tenant().clone(),
        scopes: access.scopes().clone(),
        powers,
        expires_at: claims.exp,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(scopes: &str) -> Caller {
        let scopes = ScopeSet::parse(scopes).unwrap();
        Caller::Principal(AdminPrincipal {
            id: PrincipalId::generate(warden_core::PrincipalKind::Service, &mut rand_core::OsRng),
            tenant: TenantId::generate(&mut rand_core::OsRng),
            powers: Powers::of(&scopes),
            scopes,
            expires_at: 0,
        })
    }

    #[test]
    fn a_gateway_token_permits_the_gateway_calls_and_a_quarantine_only() {
        let gw = caller(GATEWAY);
        for ok in [Action::Gateway, Action::RevokePrincipal, Action::ReadTenant] {
            assert!(gw.permit(ok).is_ok(), "{ok:?}");
        }
        for refused in [
            Action::Platform,
            Action::Manage,
            Action::Revoke,
            Action::ReadAudit,
        ] {
            assert_eq!(
                gw.permit(refused).unwrap_err().status,
                StatusCode::FORBIDDEN
            );
        }
    }

    #[test]
    fn an_admin_is_no_gateway_and_a_tenant_admin_no_platform_admin() {
        assert!(caller(ADMIN).permit(Action::Gateway).is_err());
        assert!(caller(TENANT_ADMIN).permit(Action::Platform).is_err());
        assert!(caller(TENANT_ADMIN).permit(Action::Manage).is_ok());
        assert!(caller(REVOKE).permit(Action::Manage).is_err());
        assert!(caller(AUDIT_READ).permit(Action::Revoke).is_err());
    }

    #[test]
    fn a_tenant_bound_caller_sees_only_its_tenant() {
        let t = caller(TENANT_ADMIN);
        let own = t.principal().unwrap().tenant.clone();
        assert!(t.sees(&own));
        assert!(!t.sees(&TenantId::generate(&mut rand_core::OsRng)));
        assert!(caller(ADMIN).sees(&TenantId::generate(&mut rand_core::OsRng)));
    }

    #[test]
    fn only_a_holder_grants_a_reserved_scope_and_wildcards_do_not_smuggle_one() {
        let t = caller(TENANT_ADMIN);
        let grant = |s: &str| t.may_grant(&ScopeSet::parse(s).unwrap());
        assert!(grant("crm:contacts:read warden:tenant:admin").is_ok());
        for escalation in [
            "warden:admin",
            "warden:gateway",
            "*:admin",
            "*:*",
            "warden:*",
            "warden:*:admin",
            "warden:console",
        ] {
            assert!(grant(escalation).is_err(), "{escalation}");
        }
        assert!(caller(ADMIN)
            .may_grant(&ScopeSet::parse("warden:gateway *:*").unwrap())
            .is_ok());
    }

    #[test]
    fn literal_scopes_confer_powers_and_wildcards_none() {
        assert_eq!(
            Powers::of(&ScopeSet::parse("*:*").unwrap()),
            Powers::default()
        );
        assert!(Powers::of(&ScopeSet::parse("warden:revoke").unwrap()).revoke);
    }
}
