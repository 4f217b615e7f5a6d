//! Enrollment by invitation: the link an admin created (`warden user invite`) shows the
//! person a TOTP secret for their authenticator app; the first code it makes proves the app
//! holds it, uses the invitation up, stores the credential and signs the person in.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use warden_core::crypto::sha256;
use warden_core::PrincipalKind;
use warden_store::{Change, ChangeRecord, Invite, Principal, StoreError, TotpCredential};

use super::{forms, pages, session};
use crate::Authority;

/// Every invitation token starts with this.
pub const INVITE_PREFIX: &str = "winv_";

/// The store's key for an invitation token.
pub fn invite_digest(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(token.as_bytes()))
}

fn invalid() -> Response {
    pages::message(
        StatusCode::NOT_FOUND,
        "This invitation cannot be used",
        "The link is wrong, has been used already, or has expired. Ask your administrator for a new one.",
    )
}

fn unavailable() -> Response {
    pages::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Something went wrong on our side",
        "Nothing was changed. Try again in a moment.",
    )
}

/// The unused, unexpired invitation `token` names, and the user it enrolls.
async fn live(a: &Authority, token: &str) -> Result<Option<(Invite, Principal)>, StoreError> {
    if !token.starts_with(INVITE_PREFIX) || token.len() > 100 {
        return Ok(None);
    }
    let Some(invite) = a.store.invite(&invite_digest(token)).await? else {
        return Ok(None);
    };
    if invite.used_at.is_some() || invite.expires_at < a.now() {
        return Ok(None);
    }
    let user = a.store.principal(&invite.user).await?;
    Ok(user
        .filter(|u| u.kind == PrincipalKind::User && !u.disabled && u.revoked.is_none())
        .map(|u| (invite, u)))
}

pub async fn show(
    State(a): State<Arc<Authority>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (invite, user) = match live(&a, &token).await {
        Ok(Some(found)) => found,
        Ok(None) => return invalid(),
        Err(e) => {
            tracing::warn!(error = %e, "reading an invitation failed");
            return unavailable();
        }
    };
    let sealed = match invite.totp_pending {
        Some(s) => s,
        None => {
            let fresh = a.totp.seal(&user.id, &a.totp.generate());
            match a.store.pend_invite_totp(&invite.digest, &fresh).await {
                Ok(Some(Invite {
                    totp_pending: Some(s),
                    ..
                })) => s,
                Ok(_) => return invalid(),
                Err(e) => {
                    tracing::warn!(error = %e, "keeping an invitation's secret failed");
                    return unavailable();
                }
            }
        }
    };
    let (csrf, set_csrf) = forms::pre_session_token(&headers);
    let tenant = tenant_name(&a, &user).await;
    render(
        &a,
        &tenant,
        &token,
        &user,
        &sealed,
        &csrf,
        None,
        StatusCode::OK,
        set_csrf,
    )
}

#[expect(
    clippy::too_many_arguments,
    reason = "one page's inputs, each of its own kind; a struct would only name them twice"
)]
fn render(
    a: &Authority,
    tenant: &str,
    token: &str,
    user: &Principal,
    sealed: &str,
    csrf: &str,
    error: Option<&str>,
    status: StatusCode,
    set_csrf: Option<axum::http::HeaderValue>,
) -> Response {
    let Some(secret) = a.totp.open(&user.id, sealed) else {
        tracing::error!(user = %user.id, "an invitation's pending secret does not open");
        return unavailable();
    };
    let issuer = format!("Warden ({tenant})");
    let otpauth = secret.otpauth_uri(&user.name, &issuer).unwrap_or_default();
    let mut res = pages::page(
        status,
        &pages::Enroll {
            name: &user.name,
            token,
            secret: &secret.for_typing(),
            otpauth: &otpauth,
            csrf,
            error,
        },
    );
    if let Some(c) = set_csrf {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

pub async fn submit(
    State(a): State<Arc<Authority>>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let forms::Posted {
        headers,
        peer,
        form,
    } = match forms::posted(&a, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    if !form.carries_pre_session(&headers) {
        return pages::message(
            StatusCode::FORBIDDEN,
            "This page had expired",
            "Nothing was changed. Open the invitation link again and enter a new code.",
        );
    }
    let (invite, user) = match live(&a, &token).await {
        Ok(Some(found)) => found,
        Ok(None) => return invalid(),
        Err(e) => {
            tracing::warn!(error = %e, "reading an invitation failed");
            return unavailable();
        }
    };
    let Some(sealed) = invite.totp_pending.clone() else {
        return invalid();
    };
    let throttle_key = format!("invite:{}", invite.digest);
    if let Some(secs) = a.sign_in_throttle.locked(&throttle_key, peer) {
        return locked_out(secs);
    }
    let now = a.now();
    let step = a
        .totp
        .open(&user.id, &sealed)
        .and_then(|s| s.check(form.get("code"), now));
    let Some(step) = step else {
        a.audit_sign_in(&user, peer, false, "enrollment: wrong code");
        if let Some(secs) = a.sign_in_throttle.failed(&throttle_key, peer) {
            return locked_out(secs);
        }
        let csrf = form.get("csrf").to_owned();
        let tenant = tenant_name(&a, &user).await;
        let error = "That code is not right. Check that your device's time is correct and enter the code the app shows now.";
        return render(
            &a,
            &tenant,
            &token,
            &user,
            &sealed,
            &csrf,
            Some(error),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        );
    };
    let totp = TotpCredential {
        user: user.id.clone(),
        sealed,
        created_at: now,
        last_step: step,
    };
    let change = Change::CompleteEnrollment {
        invite: &invite.digest,
        totp: &totp,
        now,
    };
    match a.store.apply(change, &ChangeRecord::default()).await {
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => return invalid(),
        Err(e) => {
            tracing::warn!(error = %e, "completing an enrollment failed");
            return unavailable();
        }
    }
    a.audit_sign_in(&user, peer, true, "enrollment: TOTP registered");
    tracing::info!(user = %user.id, "person enrolled");
    match session::start(&a, &user, &["otp"], &headers).await {
        Ok((_, cookie)) => {
            let mut res = Redirect::to("/account").into_response();
            res.headers_mut().append(header::SET_COOKIE, cookie);
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, "starting a session failed");
            pages::message_with_link(
                StatusCode::SERVICE_UNAVAILABLE,
                "You are set up",
                "Your authenticator app is registered, but signing you in failed. Sign in with a new code.",
                "/signin",
                "Sign in",
            )
        }
    }
}

/// How the person's authenticator app will label the entry: the tenant's name.
async fn tenant_name(a: &Authority, user: &Principal) -> String {
    match a.store.tenant(&user.tenant).await {
        Ok(Some(t)) => t.name,
        _ => user.tenant.to_string(),
    }
}

pub fn locked_out(secs: u32) -> Response {
    let minutes = secs.div_ceil(60);
    let mut res = pages::message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        &format!(
            "For your safety, try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        ),
    );
    if let Ok(v) = secs.to_string().parse() {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}
