//! Whether the authority can do its work, for orchestrators and operators: `/healthz` (the
//! process answers), `/readyz` (it can issue and record: 503 with the reasons when not) and
//! `/metrics` (Prometheus text, [`crate::metrics`]). All three are on the ops listener
//! ([`ops_router`], loopback by default); the public router keeps only `/healthz`, which says
//! nothing but `ok`, for load balancers that probe the port they send traffic to. Readiness
//! names internal causes (store errors, the audit log's) and the figures describe traffic, so
//! neither is served to clients. Also the gate that refuses changes the audit log could not
//! record, before they are applied.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use warden_audit::LogStatus;

use crate::error::Problem;
use crate::Authority;

/// Seconds a client is told to wait before retrying what an outage refused: about the
/// longest gap between two of the audit log's recovery probes.
pub const RETRY_AFTER_SECS: u32 = 2;

/// What the public router serves of this module: the plain liveness answer.
pub fn routes() -> Router<Arc<Authority>> {
    Router::new().route("/healthz", get(healthz))
}

/// The authority's ops listener: `/healthz`, `/readyz` and `/metrics`; anything else 404.
pub fn ops_router(authority: Arc<Authority>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(crate::http::not_found)
        .with_state(authority)
}

async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    reasons: Vec<String>,
}

async fn readyz(State(a): State<Arc<Authority>>) -> Response {
    let mut reasons = Vec::new();
    if let Some(why) = audit_down(&a) {
        reasons.push(why);
    }
    let started = Instant::now();
    let probe = a.store.revocations_since(i64::MAX, 1).await;
    a.metrics
        .store_histogram(crate::metrics::StoreOp::Readiness)
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = probe {
        reasons.push(format!("the store does not answer: {e}"));
    }
    if let Some(why) = signing_key_unusable(&a).await {
        reasons.push(why);
    }
    let ready = reasons.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut res = (status, Json(Readiness { ready, reasons })).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Why the active signing key cannot sign tokens verifiers accept, if it cannot: a probe
/// message is signed through the same [`crate::Signer`] the issue path uses (a key held in a
/// KMS is asked, too), and the key must be among those the JWKS publishes.
async fn signing_key_unusable(a: &Authority) -> Option<String> {
    let state = a.keys.current();
    let signer = a.keys.signer();
    let kid = signer.kid().to_owned();
    if state.signing.get(&kid).is_none() {
        return Some(format!(
            "the active signing key `{kid}` is not among the published keys"
        ));
    }
    match signer.sign(b"warden readiness probe").await {
        Ok(_) => None,
        Err(e) => Some(format!("the signing key `{kid}` cannot sign: {e}")),
    }
}

/// Why the audit log cannot record now, if it cannot.
pub fn audit_down(a: &Authority) -> Option<String> {
    match a.audit_status() {
        LogStatus::Writable => None,
        LogStatus::Unwritable { since_ms, cause } => {
            let secs = (a.now().saturating_mul(1000) - since_ms).max(0) / 1000;
            Some(format!(
                "the audit log cannot write ({cause}) for {secs} s; issuance and changes are refused until it can"
            ))
        }
    }
}

async fn metrics(State(a): State<Arc<Authority>>) -> Response {
    let mut res = crate::metrics::text(&a).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE_TEXT),
    );
    res
}

/// Refuses a change before it is applied while the audit log cannot record it: nothing is
/// changed that is not on record. (A change whose log fails in the moment after this check is
/// kept on record by the store's audit outbox.)
pub async fn refuse_unrecordable_changes(
    State(a): State<Arc<Authority>>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    match audit_down(&a) {
        None => next.run(req).await,
        Some(why) => Problem::unavailable(
            "audit log unavailable",
            format!("{why}; nothing was changed"),
        )
        .into_response(),
    }
}
