//! Sign-in with a name and a TOTP code. Whatever is wrong — no such organisation, no such
//! person, no credential, a wrong or reused code — the page says the same words, so it tells
//! no one who has an account.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use warden_core::PrincipalKind;
use warden_store::Principal;

use super::enroll::locked_out;
use super::{forms, pages, session};
use crate::Authority;

const NO_MATCH: &str =
    "That organisation, name and code do not match. Check them and enter the code your app shows now.";

/// Longest organisation or name looked up.
const MAX_NAME: usize = 200;

pub async fn show(
    State(a): State<Arc<Authority>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if session::current(&a, &headers).await.is_some() {
        return Redirect::to("/account").into_response();
    }
    let tenant = q.get("tenant").map_or("", String::as_str);
    let (csrf, set) = forms::pre_session_token(&headers);
    render(tenant, "", &csrf, None, StatusCode::OK, set)
}

fn render(
    tenant: &str,
    name: &str,
    csrf: &str,
    error: Option<&str>,
    status: StatusCode,
    set_csrf: Option<axum::http::HeaderValue>,
) -> Response {
    let mut res = pages::page(
        status,
        &pages::SignIn {
            tenant,
            name,
            csrf,
            error,
        },
    );
    if let Some(c) = set_csrf {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

pub async fn submit(State(a): State<Arc<Authority>>, req: Request) -> Response {
    let forms::Posted {
        headers,
        peer,
        form,
    } = match forms::posted(&a, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    if !form.carries_pre_session(&headers) {
        return pages::message_with_link(
            StatusCode::FORBIDDEN,
            "This page had expired",
            "Nothing was sent. Open the sign-in page again.",
            "/signin",
            "Sign in",
        );
    }
    let (tenant, name) = (form.get("tenant").trim(), form.get("name").trim());
    let person = format!("{tenant}\u{0}{name}");
    if let Some(secs) = a.sign_in_throttle.locked(&person, peer) {
        return locked_out(secs);
    }
    let csrf = form.get("csrf").to_owned();
    let user = match check(&a, tenant, name, form.get("code")).await {
        Ok(user) => user,
        Err(refused) => {
            if let Some(user) = &refused {
                a.audit_sign_in(user, peer, false, "sign-in: wrong code");
            }
            if let Some(secs) = a.sign_in_throttle.failed(&person, peer) {
                if let Some(user) = &refused {
                    a.audit_sign_in(user, peer, false, "sign-in: locked out");
                }
                return locked_out(secs);
            }
            return render(
                tenant,
                name,
                &csrf,
                Some(NO_MATCH),
                StatusCode::UNAUTHORIZED,
                None,
            );
        }
    };
    // A session this browser had is over: every sign-in gets a new one.
    if let Some((old, old_user)) = session::current(&a, &headers).await {
        let _ = a.store.revoke_session(&old_user.id, &old.id, a.now()).await;
    }
    match session::start(&a, &user, &["otp"], &headers).await {
        Ok((s, cookie)) => {
            a.audit_sign_in(&user, peer, true, &format!("sign-in: session {}", s.id));
            let mut res = Redirect::to("/account").into_response();
            res.headers_mut().append(header::SET_COOKIE, cookie);
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, "starting a session failed");
            pages::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong on our side",
                "You are not signed in. Try again in a moment.",
            )
        }
    }
}

/// The person `tenant`/`name` names, if `code` is a fresh code of their credential;
/// `Err(Some(user))` when the person exists but the code is not good, `Err(None)` when no
/// such person can sign in.
async fn check(
    a: &Authority,
    tenant: &str,
    name: &str,
    code: &str,
) -> Result<Principal, Option<Principal>> {
    if tenant.is_empty() || name.is_empty() || tenant.len() > MAX_NAME || name.len() > MAX_NAME {
        return Err(None);
    }
    let tenant = a.store.tenant_by_name(tenant).await.ok().flatten();
    let tenant = tenant.filter(|t| !t.disabled).ok_or(None)?;
    let user = a
        .store
        .principal_by_name(&tenant.id, name)
        .await
        .ok()
        .flatten();
    let user = user
        .filter(|u| u.kind == PrincipalKind::User && !u.disabled && u.revoked.is_none())
        .ok_or(None)?;
    let Ok(Some(credential)) = a.store.totp(&user.id).await else {
        return Err(Some(user));
    };
    let step = a
        .totp
        .open(&user.id, &credential.sealed)
        .and_then(|s| s.check(code, a.now()));
    let Some(step) = step else {
        return Err(Some(user));
    };
    // RFC 6238 §5.2: a code is good once; the step moves forward or the code is refused.
    match a.store.accept_totp_step(&user.id, step).await {
        Ok(true) => Ok(user),
        _ => Err(Some(user)),
    }
}
