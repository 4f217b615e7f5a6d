//! OAuth clients people sign in through (`/tenants/{tenant}/clients`, `/clients/{id}`):
//! registered by a tenant's admin, each with the redirect URIs it may receive codes at. A
//! confidential client's secret is in the answer that creates it and nowhere else.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rand_core::OsRng;
use warden_api::admin::{self as api, CreateClient};
use warden_core::{ClientId, RedirectUri};
use warden_store::{Change, OAuthClient};

use crate::admin::{json_body, resolve_tenant, validate_name, ApiResult};
use crate::admin_auth::Caller;
use crate::error::Problem;
use crate::journal::{json, Answer, Journal};
use crate::{views, Authority};

/// Most redirect URIs one client registers.
const MAX_REDIRECT_URIS: usize = 16;

pub async fn create(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(t): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Answer> {
    let req: CreateClient = json_body(&a, &headers, body).await?;
    let tenant = resolve_tenant(&a, &caller, &t).await?;
    validate_name(&req.name)?;
    let redirect_uris = redirect_uris(&req.redirect_uris, req.public)?;
    let secret = (!req.public).then(|| a.secret_key.mint(&mut OsRng));
    let client = OAuthClient {
        id: ClientId::generate(&mut OsRng),
        tenant: tenant.id,
        name: req.name,
        redirect_uris,
        public: req.public,
        secret_hash: secret.as_ref().map(|s| s.stored.clone()),
        created_at: a.now(),
    };
    let mut shown = views::client(&client);
    shown.client_secret = secret.as_ref().map(|s| s.secret.as_str().to_owned());
    let (_, answer) = journal
        .commit(
            &a,
            Change::CreateOAuthClient(&client),
            StatusCode::CREATED,
            &|_| json(&shown),
        )
        .await?;
    tracing::info!(client = %client.id, tenant = %client.tenant, public = client.public, "OAuth client registered");
    Ok(answer)
}

pub async fn list(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    Path(t): Path<String>,
) -> ApiResult<Json<Vec<api::Client>>> {
    let tenant = resolve_tenant(&a, &caller, &t).await?;
    let clients = a.store.list_oauth_clients(&tenant.id).await?;
    Ok(Json(clients.iter().map(views::client).collect()))
}

pub async fn show(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<api::Client>> {
    Ok(Json(views::client(&resolve(&a, &caller, &id).await?)))
}

pub async fn delete(
    State(a): State<Arc<Authority>>,
    caller: Caller,
    journal: Journal,
    Path(id): Path<String>,
) -> ApiResult<Answer> {
    let client = resolve(&a, &caller, &id).await?;
    let shown = views::client(&client);
    let (_, answer) = journal
        .commit(
            &a,
            Change::DeleteOAuthClient(&client.id),
            StatusCode::OK,
            &|_| json(&shown),
        )
        .await?;
    tracing::info!(client = %client.id, "OAuth client deleted");
    Ok(answer)
}

/// A client named in a path; one of another tenant than a tenant-bound caller's own is not
/// found.
async fn resolve(a: &Authority, caller: &Caller, key: &str) -> ApiResult<OAuthClient> {
    let not_found = || Problem::not_found(format!("client `{key}` not found"));
    let id = ClientId::parse(key).map_err(|_| not_found())?;
    a.store
        .oauth_client(&id)
        .await?
        .filter(|c| caller.sees(&c.tenant))
        .ok_or_else(not_found)
}

/// Each URI held to the registration rules, at least one and no repeats.
fn redirect_uris(given: &[String], public: bool) -> ApiResult<Vec<RedirectUri>> {
    if given.is_empty() || given.len() > MAX_REDIRECT_URIS {
        return Err(Problem::unprocessable(format!(
            "a client registers 1 to {MAX_REDIRECT_URIS} redirect URIs"
        )));
    }
    let mut uris: Vec<RedirectUri> = Vec::with_capacity(given.len());
    for s in given {
        let uri = RedirectUri::register(s, public)
            .map_err(|e| Problem::unprocessable(format!("redirect_uris: {e}")))?;
        if uris.contains(&uri) {
            return Err(Problem::unprocessable(format!(
                "redirect_uris: `{s}` is listed twice"
            )));
        }
        uris.push(uri);
    }
    Ok(uris)
}
