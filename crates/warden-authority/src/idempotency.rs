//! `Idempotency-Key` on mutating lifecycle calls: the same key with the same request replays
//! the first answer; with another request it is refused (422); while the first is still
//! running, a duplicate is refused (409). Answers are kept for the configured period (24 h).
//!
//! This middleware reserves the key and hands the reservation to the handler
//! ([`journal::Reservation`]); a call that changes the store records its answer in the
//! transaction of its change ([`journal::Journal::commit`]), so that a process killed
//! between the commit and the answer leaves the answer to replay, never a change to apply a
//! second time. Only the answer of a call that changed nothing (a refusal, say) is recorded
//! here, afterwards.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use warden_core::crypto::sha256;
use warden_store::{IdempotencyBegin, StoreError};

use crate::error::Problem;
use crate::http::read_body;
use crate::{journal, Authority};

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 255;
/// Stored answers larger than this are not replayable; such calls do not exist today.
const MAX_STORED_RESPONSE: usize = 256 * 1024;

pub async fn middleware(State(a): State<Arc<Authority>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k.to_owned(),
        _ => {
            return Problem::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
            .into_response()
        }
    };
    // Keys are the caller's own: another principal sending the same key must neither replay
    // this caller's answer (a client secret, say) nor be refused for it.
    let caller = req
        .extensions()
        .get::<crate::admin_auth::Caller>()
        .map_or_else(
            || "anonymous".to_owned(),
            crate::admin_auth::Caller::audit_name,
        );
    let key = format!("{caller} {key}");
    // The full path, not the one `nest` stripped: keys must not collide across sub-APIs.
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |u| u.path().to_owned());
    let (parts, body) = req.into_parts();
    let bytes = match read_body(&parts.headers, body, a.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return Problem::from(e).into_response(),
    };
    let mut fingerprint = Vec::with_capacity(bytes.len() + 64);
    fingerprint.extend_from_slice(parts.method.as_str().as_bytes());
    fingerprint.push(b' ');
    fingerprint.extend_from_slice(path.as_bytes());
    fingerprint.push(b'\n');
    fingerprint.extend_from_slice(&bytes);
    let hash = URL_SAFE_NO_PAD.encode(sha256(&fingerprint));

    let reserved_at = a.now();
    let begin = a
        .store
        .idempotency_begin(&key, &hash, reserved_at, a.config.idempotency_abandon_secs)
        .await;
    match begin {
        Ok(IdempotencyBegin::Started) => {}
        Ok(IdempotencyBegin::Replay { status, body }) => return replay(status, body),
        Ok(IdempotencyBegin::Mismatch) => {
            return Problem::unprocessable("this Idempotency-Key was used with a different request")
                .into_response()
        }
        Ok(IdempotencyBegin::InFlight) | Err(StoreError::Conflict(_)) => {
            return Problem::conflict("a request with this Idempotency-Key is still in progress")
                .into_response()
        }
        Err(e) => return Problem::from(e).into_response(),
    }

    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(journal::Reservation {
        key: key.clone(),
        reserved_at,
    });
    let res = next.run(req).await;
    let (parts, body) = res.into_parts();
    let body = axum::body::to_bytes(body, MAX_STORED_RESPONSE)
        .await
        .unwrap_or_default();
    let status = parts.status;
    // Both touch only a reservation still pending under this call: a change completed it in
    // its own transaction already, and a caller that took it over owns it now. A server
    // failure after a committed change therefore still replays the change's answer; one
    // before any change is not an answer worth repeating, and the client may retry.
    let stored = if status.is_server_error() {
        a.store.idempotency_release(&key, reserved_at).await
    } else {
        a.store
            .idempotency_complete(
                &key,
                reserved_at,
                status.as_u16(),
                &String::from_utf8_lossy(&body),
            )
            .await
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "idempotency record not saved");
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}
