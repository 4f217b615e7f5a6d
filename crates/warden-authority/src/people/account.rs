//! The account page: who is signed in, where else they are signed in, and signing out of
//! this session, another one, or every other one. Every post carries the session's token.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::time::OffsetDateTime;
use warden_store::{Principal, Session};

use super::{forms, pages, session};
use crate::Authority;

pub async fn show(State(a): State<Arc<Authority>>, headers: HeaderMap) -> Response {
    let Some((current, user)) = session::current(&a, &headers).await else {
        return Redirect::to("/signin").into_response();
    };
    let sessions = match a.store.sessions_of(&user.id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "listing sessions failed");
            return pages::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong on our side",
                "Try again in a moment.",
            );
        }
    };
    let tenant = match a.store.tenant(&user.tenant).await {
        Ok(Some(t)) => t.name,
        _ => String::new(),
    };
    let now = a.now();
    let rows = sessions
        .iter()
        .filter(|s| a.config.sessions.is_live(s, now))
        .map(|s| pages::SessionRow {
            id: s.id.clone(),
            signed_in: when(s.created_at),
            last_seen: when(s.last_seen_at),
            browser: s.user_agent.clone().unwrap_or_else(|| "unknown".into()),
            current: s.id == current.id,
        })
        .collect();
    pages::page(
        StatusCode::OK,
        &pages::Account {
            name: &user.name,
            tenant: &tenant,
            sessions: rows,
            csrf: &current.csrf,
        },
    )
}

/// A time as people read it, in UTC.
fn when(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => "unknown".into(),
    }
}

/// The signed-in person behind a post that carries its session's token; else the page to
/// answer with.
async fn posted(
    a: &Authority,
    req: Request,
) -> Result<(Session, Principal, Option<std::net::IpAddr>), Response> {
    let forms::Posted {
        headers,
        peer,
        form,
    } = forms::posted(a, req).await?;
    let Some((s, user)) = session::current(a, &headers).await else {
        return Err(Redirect::to("/signin").into_response());
    };
    if !form.carries(&s.csrf) {
        return Err(pages::message_with_link(
            StatusCode::FORBIDDEN,
            "This page had expired",
            "Nothing was changed. Open your account page again.",
            "/account",
            "Your account",
        ));
    }
    Ok((s, user, peer))
}

pub async fn sign_out(State(a): State<Arc<Authority>>, req: Request) -> Response {
    let (s, user, peer) = match posted(&a, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    if let Err(e) = a.store.revoke_session(&user.id, &s.id, a.now()).await {
        tracing::warn!(error = %e, "ending a session failed");
    }
    a.audit_sign_in(&user, peer, true, &format!("sign-out: session {}", s.id));
    let mut res = pages::message_with_link(
        StatusCode::OK,
        "You are signed out",
        "You can close this page.",
        "/signin",
        "Sign in again",
    );
    res.headers_mut()
        .append(header::SET_COOKIE, session::clear());
    res
}

pub async fn sign_out_session(
    State(a): State<Arc<Authority>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (s, user, peer) = match posted(&a, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    if id == s.id {
        return Redirect::to("/account").into_response();
    }
    match a.store.revoke_session(&user.id, &id, a.now()).await {
        Ok(true) => {
            a.audit_sign_in(
                &user,
                peer,
                true,
                &format!("sign-out: session {id}, from {}", s.id),
            );
            Redirect::to("/account").into_response()
        }
        Ok(false) => pages::message_with_link(
            StatusCode::NOT_FOUND,
            "That session has ended already",
            "Nothing was changed.",
            "/account",
            "Your account",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "ending a session failed");
            pages::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong on our side",
                "Nothing was changed. Try again in a moment.",
            )
        }
    }
}

pub async fn sign_out_others(State(a): State<Arc<Authority>>, req: Request) -> Response {
    let (s, user, peer) = match posted(&a, req).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let now = a.now();
    let others = match a.store.sessions_of(&user.id).await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "listing sessions failed");
            return pages::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong on our side",
                "Nothing was changed. Try again in a moment.",
            );
        }
    };
    let mut ended = 0;
    for other in others
        .iter()
        .filter(|o| o.id != s.id && o.revoked_at.is_none())
    {
        if matches!(
            a.store.revoke_session(&user.id, &other.id, now).await,
            Ok(true)
        ) {
            ended += 1;
        }
    }
    a.audit_sign_in(
        &user,
        peer,
        true,
        &format!("sign-out: {ended} other sessions, from {}", s.id),
    );
    Redirect::to("/account").into_response()
}
