//! Sessions: server-side, named by an opaque `__Host-` cookie that the store knows only by
//! its SHA-256, new at every sign-in (so no identifier set before sign-in survives it), ended
//! by the idle or the absolute timeout, by signing out, or by the person from another of
//! their sessions.

use axum::http::{HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cookie::SameSite;
use rand_core::OsRng;
use warden_core::crypto::sha256;
use warden_core::id::random_token_id;
use warden_core::PrincipalKind;
use warden_store::{Principal, Session};

use super::forms::{cookie, random_token, set_cookie};
use crate::Authority;

pub const SESSION_COOKIE: &str = "__Host-warden_session";

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ended after this long without a request, seconds.
    pub idle_secs: i64,
    /// Ended this long after sign-in, whatever the activity, seconds.
    pub absolute_secs: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_secs: 30 * 60,
            absolute_secs: 12 * 60 * 60,
        }
    }
}

impl SessionPolicy {
    /// Whether `session` is live at `now`: not revoked, within both timeouts.
    pub fn is_live(&self, session: &Session, now: i64) -> bool {
        session.revoked_at.is_none()
            && now - session.last_seen_at <= self.idle_secs
            && now - session.created_at <= self.absolute_secs
    }
}

/// How often a session's `last_seen_at` is written: not on every request.
const TOUCH_EVERY_SECS: i64 = 60;

fn digest(cookie_value: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(cookie_value.as_bytes()))
}

/// A new session for `user`, stored, and the `Set-Cookie` that hands it to the browser.
pub async fn start(
    a: &Authority,
    user: &Principal,
    amr: &[&str],
    headers: &HeaderMap,
) -> Result<(Session, HeaderValue), warden_store::StoreError> {
    let value = format!("wss_{}", random_token());
    let now = a.now();
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(200).collect());
    let session = Session {
        digest: digest(&value),
        id: random_token_id(&mut OsRng),
        user: user.id.clone(),
        csrf: random_token(),
        amr: amr.iter().map(|m| (*m).to_owned()).collect(),
        auth_time: now,
        created_at: now,
        last_seen_at: now,
        user_agent,
        revoked_at: None,
    };
    a.store.create_session(&session).await?;
    Ok((
        session,
        set_cookie(SESSION_COOKIE, &value, SameSite::Lax, None),
    ))
}

/// The `Set-Cookie` that removes the session cookie from the browser.
pub fn clear() -> HeaderValue {
    set_cookie(SESSION_COOKIE, "", SameSite::Lax, Some(0))
}

/// The live session this request carries, with its person, if there is one: not revoked,
/// within both timeouts, and the person still an enabled, unrevoked user.
pub async fn current(a: &Authority, headers: &HeaderMap) -> Option<(Session, Principal)> {
    let value = cookie(headers, SESSION_COOKIE)?;
    let digest = digest(&value);
    let session = match a.store.session(&digest).await {
        Ok(s) => s?,
        Err(e) => {
            tracing::warn!(error = %e, "reading a session failed");
            return None;
        }
    };
    let now = a.now();
    if !a.config.sessions.is_live(&session, now) {
        return None;
    }
    let user = a.store.principal(&session.user).await.ok()??;
    if user.kind != PrincipalKind::User || user.disabled || user.revoked.is_some() {
        return None;
    }
    if now - session.last_seen_at >= TOUCH_EVERY_SECS {
        if let Err(e) = a.store.touch_session(&digest, now).await {
            tracing::warn!(error = %e, "recording a session's activity failed");
        }
    }
    Some((session, user))
}
