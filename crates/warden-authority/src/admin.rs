//! The lifecycle API under `/admin/v1`: tenants, principals, signing keys. Every call needs
//! the admin token; every mutating call honours `Idempotency-Key`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::OsRng;
use serde::de::DeserializeOwned;
use serde_json::json;
use warden_api::admin::{
    self as api, CreatePrincipal, CreateTenant, SetClientKeyAge, SetPublicKey, SetScopes,
    SetTokenTtl,
};
use warden_api::gateway::RegisterGatewayKey;
use warden_core::id::random_token_id;
use warden_core::jwks::Jwk;
use warden_core::{PrincipalId, PrincipalKind, ScopeSet, TenantId};
use warden_store::{Change, Principal, Tenant};

use crate::admin_auth::{self, Caller};
use crate::error::Problem;
use crate::http::{media_type, read_body};
use crate::journal::{self, json, Answer, Journal};
use crate::views;
use crate::{
    admin_client, admin_gateway, admin_honeytoken, admin_invite, admin_report, admin_revocation,
    idempotency, Authority,
};

pub fn routes(a: Arc<Authority>) -> Router<Arc<Authority>> {
    Router::new()
        .route("/tenants", post(create_tenant).get(list_tenants))
        .route("/tenants/{tenant}", get(show_tenant))
        .route("/tenants/{tenant}/disable", post(disable_tenant))
        .route("/tenants/{tenant}/enable", post(enable_tenant))
        .route("/tenants/{tenant}/token-ttl", put(set_tenant_ttl))
        .route("/tenants/{tenant}/client-key-age", put(set_client_key_age))
        .route(
            "/tenants/{tenant}/principals",
            post(create_principal).get(list_principals),
        )
        .route("/principals/{id}", get(show_principal))
        .route("/principals/{id}/disable", post(disable_principal))
        .route("/principals/{id}/enable", post(enable_principal))
        .route(
            "/principals/{id}/reinstate",
            post(admin_revocation::reinstate_principal),
        )
        .route("/principals/{id}/scopes", put(set_scopes))
        .route("/principals/{id}/public-key", put(set_public_key))
        .route("/principals/{id}/secret", post(create_secret))
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/gateway-keys/{kid}", put(register_gateway_key))
        .route("/gateways", post(admin_gateway::enroll))
        .route(
            "/principals/{id}/revoke",
            post(admin_revocation::revoke_principal),
        )
        .route("/delegations", post(admin_revocation::create_grant))
        .route("/delegations/{id}", get(admin_revocation::show_grant))
        .route(
            "/delegations/{id}/revoke",
            post(admin_revocation::revoke_grant),
        )
        .route(
            "/tenants/{tenant}/delegations",
            get(admin_revocation::list_grants),
        )
        .route("/tokens/revoke", post(admin_revocation::revoke_token))
        .route(
            "/tenants/{tenant}/honeytokens",
            post(admin_honeytoken::create),
        )
        .route(
            "/tenants/{tenant}/access-report",
            get(admin_report::access_report),
        )
        .route("/activity", post(admin_report::record_use))
        .route("/tenants/{tenant}/invites", post(admin_invite::create))
        .route(
            "/tenants/{tenant}/clients",
            post(admin_client::create).get(admin_client::list),
        )
        .route(
            "/clients/{id}",
            get(admin_client::show).delete(admin_client::delete),
        )
        .layer(middleware::from_fn_with_state(Arc::clone(&a), audit_change))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&a),
            idempotency::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&a),
            invalidate_caches,
        ))
        // Refused before anything is reserved or applied while the audit log cannot write.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&a),
            crate::readiness::refuse_unrecordable_changes,
        ))
        .layer(middleware::from_fn_with_state(a, admin_auth::middleware))
}

/// Every change is recorded in the audit log. A change that goes through the store writes
/// its entry to the outbox in its own transaction ([`journal`]); once the handler has
/// answered, the entry is appended to the log (durable before the answer leaves) and taken
/// out of the outbox. Should the log fail at that moment the change is still answered: its
/// entry is on durable record in the outbox, and reaches the log when it is drained. A
/// successful call that changed nothing in the store (an activity report) is recorded after
/// the fact; should the log fail then, the caller learns that it is not on record.
async fn audit_change(State(a): State<Arc<Authority>>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    if matches!(method, axum::http::Method::GET | axum::http::Method::HEAD) {
        return next.run(req).await;
    }
    // The full path, as the caller sent it, not the one the nested router sees.
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |u| u.path().to_owned());
    let client = req
        .extensions()
        .get::<crate::server::ClientAddr>()
        .map(|c| c.0.ip());
    let kind = if path.ends_with("/revoke") {
        warden_audit::Kind::Revocation
    } else {
        warden_audit::Kind::Lifecycle
    };
    let mut entry = warden_audit::Entry::new(a.now() * 1000, kind, format!("{method} {path}"));
    entry.actor = req.extensions().get::<Caller>().map(Caller::audit_name);
    entry.resource = Some(path);
    entry.decision = warden_audit::Decision::Allow;
    entry.client_ip = client;
    // The outbox id names the entry in the log too, so that an entry appended twice (a
    // drainer overlapping a call that outlived its grace period) is told apart.
    let outbox_id = format!("aud_{}", random_token_id(&mut OsRng));
    entry.request_id = Some(outbox_id.clone());
    req.extensions_mut().insert(journal::PendingAudit {
        outbox_id: outbox_id.clone(),
        entry: entry.clone(),
    });
    let res = next.run(req).await;
    match a.store.audit_outbox_entry(&outbox_id).await {
        Ok(Some(row)) => {
            if let Err(e) = a.append_outbox_entry(&row).await {
                tracing::warn!(error = %e, "a change's audit entry stays in the outbox until it is drained");
            }
            res
        }
        Ok(None) if res.status().is_success() => {
            entry.time = a.now() * 1000;
            entry.reasons = vec![res.status().as_u16().to_string()];
            match a.audit(entry).await {
                Ok(()) => res,
                Err(e) => {
                    tracing::error!(error = %e, "a call was applied but could not be audited");
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "audit log unavailable",
                        "the call was applied but is not on record; the audit log is failing",
                    )
                    .into_response()
                }
            }
        }
        Ok(None) => res,
        Err(e) => {
            tracing::warn!(error = %e, "a change's audit entry, if any, stays in the outbox until it is drained");
            res
        }
    }
}

/// After any change, the token endpoint must not act on what it cached before it.
async fn invalidate_caches(State(a): State<Arc<Authority>>, req: Request, next: Next) -> Response {
    let mutating = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let res = next.run(req).await;
    if mutating {
        a.clients.invalidate();
    }
    res
}

/// Reads a JSON body into `T`, whose fields are strict (`deny_unknown_fields`).
pub(crate) async fn json_body<T: DeserializeOwned>(
    a: &Authority,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Problem> {
    if media_type(headers).as_deref() != Some("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type",
            "send application/json",
        ));
    }
    let bytes = read_body(headers, body, a.config.limits.max_body_bytes).await?;
    serde_json::from_slice(&bytes).map_err(|e| Problem::bad_request(format!("invalid JSON: {e}")))
}

pub(crate) type ApiResult<T> = Result<T, Problem>;

/// A name stays addressable in a URL path (a tenant is reached by name) only if no client,
/// proxy or router rewrites its segment on the way. `.` and `..` (and `%2e` forms) are dot
/// segments that URL parsers resolve away; trailing dots and edge spaces are trimmed by some
/// servers and proxies; a leading `-` reads as an option on a command line. Requiring a
/// letter or digit at both ends excludes every one of these at once, and the characters
/// between are ones no normaliser touches.
pub(crate) fn validate_name(name: &str) -> ApiResult<()> {
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let ok = (1..=100).contains(&name.len())
        && edge(name.as_bytes().first())
        && edge(name.as_bytes().last())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b' '));
    if ok {
        Ok(())
    } else {
        Err(Problem::unprocessable(format!(
            "name `{}` refused: {NAME_RULE}",
            crate::token_request::truncate(name)
        )))
    }
}

/// The rule [`validate_name`] enforces, as its refusal states it.
const NAME_RULE: &str = "a name is 1 to 100 characters of [A-Za-z0-9 ._@-] \
    that begins and ends with a letter or digit, so that no URL normaliser or router can \
    rewrite it (`.` and `..` are path steps; edge dots and spaces get trimmed)";

/// A tenant named in a path, by id (`tnt_…`) or by name; another tenant than a tenant-bound
/// caller's own is not found, exactly as one that does not exist.
pub(crate) async fn resolve_tenant(a: &Authority, caller: &Caller, key: &str) -> ApiResult<Tenant> {
    let found = match TenantId::parse(key) {
        Ok(id) => a.store.tenant(&id).await?,
        Err(_) => a.store.tenant_by_name(key).await?,
    };
    found
        .filter(|t| caller.sees(&t.id))
        .ok_or_else(|| Problem::not_found(format!("tenant `{key}` not found")))
}

/// A principal named in a path; one of another tenant than a tenant-bound caller's own is
/// not found.
pub(crate) async fn resolve_principal(
    a: &Authority,
    caller: &Caller,
    key: &str,
) -> ApiResult<Principal> {
    let id = PrincipalId::parse(key)
        .map_err(|_| Problem::not_found(format!("principal `{key}` not found")))?;
    a.store
        .principal(&id)
        .await?
        .filter(|p| caller.sees(&p.tenant))
        .ok_or_else(|| Problem::not_found(format!("principal `{key}` not found")))
}

async fn create_tenant(
    State(a): State<Arc<Authority>>,
    journal: Journal,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: CreateTenant = json_body(&a, &headers, body).await?;
    validate_name(&req.name)?;
    if req.name == warden_api::scope::SYSTEM_TENANT {
        return Err(Problem::unprocessable(format!(
            "`{}` is reserved for Warden's own principals",
            req.name
        )));
    }
    if TenantId::parse(&req.name).is_ok() {
        return Err(Problem::unprocessable(
            "a tenant name may not look like a tenant id",
        ));
    }
    let ttl = req
        .max_token_ttl_secs
        .unwrap_or(a.config.max_token_ttl_secs);
    check_ttl(&a, ttl)?;
    let t = Tenant {
        id: TenantId::generate(&mut OsRng),
        name: req.name,
        max_token_ttl_secs: ttl,
        max_client_key_age_secs: None,
        disabled: false,
        created_at: a.now(),
    };
    let (_, answer) = journal
        .commit(&a, Change::CreateTenant(&t), StatusCode::CREATED, &|_| {
            json(&views::tenant(&t))
        })
        .await?;
    tracing::info!(tenant = %t.id, name = %t.name, "tenant created");
    Ok(answer)
}

fn check_ttl(a: &Authority, ttl: i64) -> ApiResult<()> {
    if ttl < 1 || ttl > a.config.max_token_ttl_secs {
        return Err(Problem::unprocessable(format!(
            "max_token_ttl_secs must be between 1 and {}",
            a.config.max_token_ttl_secs
        )));
    }
    Ok(())
}

async fn list_tenants(
    State(a): State<Arc<Authority>>,
    caller: Caller,
) -> ApiResult<Json<Vec<api::Tenant>>> {
    let tenants = a.store.list_tenants().await?;
    Ok(Json(
        tenants
            .iter()
            .filter(|t| caller.sees(&t.id))
            .map(views::tenant)
            .collect(),
    ))
}

async fn show_tenant(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    Path(t): Path<String>,
) -> ApiResult<Json<api::Tenant>> {
    Ok(Json(views::tenant(&resolve_tenant(&a, &caller, &t).await?)))
}

async fn disable_tenant(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(t): Path<String>,
) -> ApiResult<Answer> {
    set_tenant_disabled(&a, &caller, &journal, &t, true).await
}

async fn enable_tenant(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(t): Path<String>,
) -> ApiResult<Answer> {
    set_tenant_disabled(&a, &caller, &journal, &t, false).await
}

async fn set_tenant_disabled(
    a: &Authority,
    caller: &Caller,
    journal: &Journal,
    t: &str,
    disabled: bool,
) -> ApiResult<Answer> {
    let mut t = resolve_tenant(a, caller, t).await?;
    t.disabled = disabled;
    // Disabling ends every token of the tenant already out, pushed to every gateway like a
    // principal's revocation and in the same transaction as the disable. Enabling restores
    // issuance only: the tokens the disable ended stay dead.
    let event = admin_revocation::tokens_of_tenant(a, t.id.clone(), a.now());
    let change = if disabled {
        Change::DisableTenant {
            id: &t.id,
            event: &event,
        }
    } else {
        Change::SetTenantDisabled {
            id: &t.id,
            disabled,
        }
    };
    let (applied, answer) = journal
        .commit(a, change, StatusCode::OK, &|_| json(&views::tenant(&t)))
        .await?;
    if let Some(appended) = &applied.revocation {
        admin_revocation::published(a, appended).await?;
    }
    tracing::info!(tenant = %t.id, disabled, "tenant state changed");
    Ok(answer)
}

async fn set_tenant_ttl(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(t): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: SetTokenTtl = json_body(&a, &headers, body).await?;
    check_ttl(&a, req.max_token_ttl_secs)?;
    let mut t = resolve_tenant(&a, &caller, &t).await?;
    t.max_token_ttl_secs = req.max_token_ttl_secs;
    let change = Change::SetTenantMaxTokenTtl {
        id: &t.id,
        secs: t.max_token_ttl_secs,
    };
    let (_, answer) = journal
        .commit(&a, change, StatusCode::OK, &|_| json(&views::tenant(&t)))
        .await?;
    Ok(answer)
}

/// Shortest `max_client_key_age` a tenant may set: a day, so that no setting locks every
/// client out before an operator can rotate a key.
const MIN_CLIENT_KEY_AGE: i64 = 24 * 3600;

async fn set_client_key_age(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(t): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: SetClientKeyAge = json_body(&a, &headers, body).await?;
    if req
        .max_client_key_age_secs
        .is_some_and(|s| !(MIN_CLIENT_KEY_AGE..=10 * 365 * 24 * 3600).contains(&s))
    {
        return Err(Problem::unprocessable(format!(
            "max_client_key_age_secs must be between {MIN_CLIENT_KEY_AGE} and 315360000, or null"
        )));
    }
    let mut t = resolve_tenant(&a, &caller, &t).await?;
    t.max_client_key_age_secs = req.max_client_key_age_secs;
    let change = Change::SetTenantMaxClientKeyAge {
        id: &t.id,
        secs: t.max_client_key_age_secs,
    };
    let (_, answer) = journal
        .commit(&a, change, StatusCode::OK, &|_| json(&views::tenant(&t)))
        .await?;
    Ok(answer)
}

pub(crate) fn parse_scopes(s: &str) -> ApiResult<ScopeSet> {
    ScopeSet::parse(s).map_err(|e| Problem::unprocessable(e.to_string()))
}

/// A registrable key: a valid Ed25519 public JWK of large order, stored without a `kid`
/// mismatch risk (the `kid`, if any, is kept).
pub(crate) fn validate_jwk(jwk: &Jwk) -> ApiResult<String> {
    jwk.to_public_key()
        .map_err(|e| Problem::unprocessable(format!("public key refused: {e}")))?;
    serde_json::to_string(jwk).map_err(|_| Problem::internal())
}

async fn create_principal(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(t): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: CreatePrincipal = json_body(&a, &headers, body).await?;
    let tenant = resolve_tenant(&a, &caller, &t).await?;
    let kind: PrincipalKind = req
        .kind
        .parse()
        .map_err(|_| Problem::unprocessable("kind must be user, agent or service"))?;
    validate_name(&req.name)?;
    let owner = match req.owner.as_deref() {
        None => None,
        Some(o) => {
            let owner = resolve_principal(&a, &caller, o)
                .await
                .map_err(|_| Problem::unprocessable(format!("owner `{o}` not found")))?;
            if owner.tenant != tenant.id || owner.kind != PrincipalKind::User {
                return Err(Problem::unprocessable(
                    "owner must be a user of the same tenant",
                ));
            }
            Some(owner.id)
        }
    };
    let scopes = parse_scopes(req.scopes.as_deref().unwrap_or(""))?;
    caller.may_grant(&scopes)?;
    let audiences = req.audiences.unwrap_or_default();
    if audiences.len() > 32 || audiences.iter().any(|x| x.is_empty() || x.len() > 200) {
        return Err(Problem::unprocessable(
            "at most 32 audiences of 1 to 200 characters",
        ));
    }
    let public_jwk = req.public_key.as_ref().map(validate_jwk).transpose()?;
    let now = a.now();
    let p = Principal {
        id: PrincipalId::generate(kind, &mut OsRng),
        tenant: tenant.id,
        kind,
        name: req.name,
        owner,
        scopes,
        audiences,
        key_registered_at: public_jwk.as_ref().map(|_| now),
        public_jwk,
        secret_hash: None,
        disabled: false,
        revoked: None,
        created_at: now,
        updated_at: now,
    };
    let (_, answer) = journal
        .commit(
            &a,
            Change::CreatePrincipal(&p),
            StatusCode::CREATED,
            &|_| json(&views::principal(&p)),
        )
        .await?;
    tracing::info!(principal = %p.id, tenant = %p.tenant, kind = %p.kind, "principal created");
    Ok(answer)
}

async fn list_principals(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    Path(t): Path<String>,
) -> ApiResult<Json<Vec<api::Principal>>> {
    let tenant = resolve_tenant(&a, &caller, &t).await?;
    let principals = a.store.list_principals(&tenant.id).await?;
    Ok(Json(principals.iter().map(views::principal).collect()))
}

async fn show_principal(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<api::Principal>> {
    Ok(Json(views::principal(
        &resolve_principal(&a, &caller, &id).await?,
    )))
}

async fn disable_principal(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(id): Path<String>,
) -> ApiResult<Answer> {
    set_principal_disabled(&a, &caller, &journal, &id, true).await
}

async fn enable_principal(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(id): Path<String>,
) -> ApiResult<Answer> {
    set_principal_disabled(&a, &caller, &journal, &id, false).await
}

async fn set_principal_disabled(
    a: &Authority,
    caller: &Caller,
    journal: &Journal,
    id: &str,
    disabled: bool,
) -> ApiResult<Answer> {
    let mut p = resolve_principal(a, caller, id).await?;
    let now = a.now();
    p.disabled = disabled;
    p.updated_at = now;
    // Disabling also ends the tokens already out, wherever the principal appears in them:
    // a disabled agent must not keep acting through a token issued a minute ago. The event
    // commits with the disable, so neither can be left without the other.
    let event =
        admin_revocation::tokens_of(a, p.id.clone(), Some("principal disabled".into()), now);
    let change = if disabled {
        Change::DisablePrincipal {
            id: &p.id,
            now,
            event: &event,
        }
    } else {
        Change::SetPrincipalDisabled {
            id: &p.id,
            disabled,
            now,
        }
    };
    let (applied, answer) = journal
        .commit(a, change, StatusCode::OK, &|_| json(&views::principal(&p)))
        .await?;
    if let Some(appended) = &applied.revocation {
        admin_revocation::published(a, appended).await?;
    }
    reload_gateway_keys(a).await?;
    tracing::info!(principal = %p.id, disabled, "principal state changed");
    Ok(answer)
}

async fn set_scopes(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: SetScopes = json_body(&a, &headers, body).await?;
    let scopes = parse_scopes(&req.scopes)?;
    let mut p = resolve_principal(&a, &caller, &id).await?;
    caller.may_grant(&scopes)?;
    let now = a.now();
    p.scopes = scopes.clone();
    p.updated_at = now;
    let change = Change::SetPrincipalScopes {
        id: &p.id,
        scopes: &scopes,
        now,
    };
    let (_, answer) = journal
        .commit(&a, change, StatusCode::OK, &|_| json(&views::principal(&p)))
        .await?;
    tracing::info!(principal = %p.id, scopes = %scopes, "scope ceiling set");
    Ok(answer)
}

async fn set_public_key(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: SetPublicKey = json_body(&a, &headers, body).await?;
    let jwk = validate_jwk(&req.public_key)?;
    let mut p = resolve_principal(&a, &caller, &id).await?;
    let now = a.now();
    p.public_jwk = Some(jwk.clone());
    p.key_registered_at = Some(now);
    p.updated_at = now;
    let change = Change::SetPrincipalPublicKey {
        id: &p.id,
        jwk: &jwk,
        now,
    };
    let (_, answer) = journal
        .commit(&a, change, StatusCode::OK, &|_| json(&views::principal(&p)))
        .await?;
    tracing::info!(principal = %p.id, "public key registered");
    Ok(answer)
}

/// Creates (or replaces) the client secret; the secret is in this response and nowhere else
/// (but the answer kept for an `Idempotency-Key` retry, which must return the same secret).
async fn create_secret(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(id): Path<String>,
) -> ApiResult<Answer> {
    let p = resolve_principal(&a, &caller, &id).await?;
    let secret = a.secret_key.mint(&mut OsRng);
    let change = Change::SetPrincipalSecretHash {
        id: &p.id,
        hash: &secret.stored,
        now: a.now(),
    };
    let body = warden_api::admin::ClientSecret {
        client_id: p.id.clone(),
        client_secret: secret.secret.as_str().to_owned(),
    };
    let (_, answer) = journal
        .commit(&a, change, StatusCode::CREATED, &|_| json(&body))
        .await?;
    tracing::info!(principal = %p.id, "client secret created");
    Ok(answer)
}

async fn list_keys(State(a): State<Arc<Authority>>) -> Json<Vec<api::SigningKey>> {
    Json(views::signing_keys(&a.keys.current().records))
}

/// Rotates the signing keys (see [`crate::keys`]) and answers with the keys as the rotation
/// left them, read in its own transaction.
async fn rotate_keys(State(a): State<Arc<Authority>>, journal: Journal) -> ApiResult<Answer> {
    let now = a.now();
    let new_next = a.keys.new_next_key(now);
    let change = Change::RotateSigningKeys {
        new_next: &new_next,
        now,
        publish_until: now.saturating_add(a.retired_key_publish_secs()),
        next_created_by: None,
    };
    let (_, answer) = journal
        .commit(&a, change, StatusCode::OK, &|x| {
            json(&views::signing_keys(&x.signing_keys))
        })
        .await?;
    a.keys.reload(a.store.as_ref(), now).await.map_err(|e| {
        tracing::error!(error = %e, "keyring reload after rotation failed");
        Problem::internal()
    })?;
    tracing::info!(active = %a.keys.current().active_kid, "signing keys rotated");
    Ok(answer)
}

/// The JWKS publishes a gateway's keys only while the principal that registered them is in
/// good standing; after that principal's state changes, the keyring reads them again.
pub(crate) async fn reload_gateway_keys(a: &Authority) -> ApiResult<()> {
    a.keys
        .reload(a.store.as_ref(), a.now())
        .await
        .map(drop)
        .map_err(|e| {
            tracing::error!(error = %e, "keyring reload failed");
            Problem::internal()
        })
}

/// Longest a gateway key stays published without being registered again.
const MAX_GATEWAY_KEY_TTL: i64 = 24 * 3600;

/// A gateway publishes the key of its internal tokens through the authority's JWKS.
async fn register_gateway_key(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(kid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: RegisterGatewayKey = json_body(&a, &headers, body).await?;
    let valid_kid = kid.starts_with("gw-")
        && (8..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_kid {
        return Err(Problem::unprocessable(
            "gateway key id must be `gw-` and 5 to 61 characters of [A-Za-z0-9_-]",
        ));
    }
    if a.keys.current().records.iter().any(|r| r.kid == kid) {
        return Err(Problem::conflict("that key id belongs to a signing key"));
    }
    validate_name(&req.gateway)?;
    if !(1..=MAX_GATEWAY_KEY_TTL).contains(&req.ttl_secs) {
        return Err(Problem::unprocessable(format!(
            "ttl_secs must be between 1 and {MAX_GATEWAY_KEY_TTL}"
        )));
    }
    let public = req
        .public_key
        .to_public_key()
        .map_err(|e| Problem::unprocessable(format!("public key refused: {e}")))?;
    let now = a.now();
    let record = warden_store::GatewayKeyRecord {
        kid: kid.clone(),
        public_key: URL_SAFE_NO_PAD.encode(public.to_bytes()),
        gateway: req.gateway,
        principal: caller.principal().map(|p| p.id.clone()),
        registered_at: now,
        expires_at: now + req.ttl_secs,
    };
    let body = json!({ "kid": kid, "expires_at": record.expires_at });
    let (_, answer) = journal
        .commit(
            &a,
            Change::RegisterGatewayKey(&record),
            StatusCode::OK,
            &|_| json(&body),
        )
        .await?;
    a.keys.reload(a.store.as_ref(), now).await.map_err(|e| {
        tracing::error!(error = %e, "keyring reload failed");
        Problem::internal()
    })?;
    tracing::info!(kid = %kid, gateway = %record.gateway, "gateway key registered");
    Ok(answer)
}
