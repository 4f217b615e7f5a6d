//! Whether the authority can do its work, for orchestrators and operators: `/healthz` (the
//! process answers), `/readyz` (it can issue and record: 503 with the reasons when not) and
//! `/metrics` (Prometheus text). Also the gate that refuses changes the audit log could not
//! record, before they are applied.

use std::fmt::Write as _;
use std::sync::Arc;

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

pub fn routes() -> Router<Arc<Authority>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
    if let Err(e) = a.store.revocations_since(i64::MAX, 1).await {
        reasons.push(format!("the store does not answer: {e}"));
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
    let mut out = String::new();
    {
        let log = a.audit_log();
        let stats = log.stats();
        let writable = u8::from(log.status().is_writable());
        let _ = write!(
            out,
            "# HELP warden_audit_writable 1 when the audit log can write, 0 during an outage.\n\
             # TYPE warden_audit_writable gauge\n\
             warden_audit_writable {writable}\n\
             # HELP warden_audit_outages_total Times the audit log could not write and refused entries.\n\
             # TYPE warden_audit_outages_total counter\n\
             warden_audit_outages_total {}\n\
             # HELP warden_audit_failed_writes_total Audit writes (batches and recovery probes) that failed.\n\
             # TYPE warden_audit_failed_writes_total counter\n\
             warden_audit_failed_writes_total {}\n\
             # HELP warden_audit_refused_entries_total Audit entries refused while the log could not write.\n\
             # TYPE warden_audit_refused_entries_total counter\n\
             warden_audit_refused_entries_total {}\n\
             # HELP warden_audit_durable_entries Entries durable in the audit log.\n\
             # TYPE warden_audit_durable_entries gauge\n\
             warden_audit_durable_entries {}\n\
             # HELP warden_audit_witness_failures_total Checkpoints an audit witness did not take or was not delivered.\n\
             # TYPE warden_audit_witness_failures_total counter\n\
             warden_audit_witness_failures_total {}\n",
            stats.outages,
            stats.failed_writes,
            stats.refused_entries,
            log.durable_seq().0,
            log.witness_failures(),
        );
    }
    let _ = write!(
        out,
        "# HELP warden_revocation_cursor The newest revocation event this authority has applied.\n\
         # TYPE warden_revocation_cursor gauge\n\
         warden_revocation_cursor {}\n",
        a.revocations.head()
    );
    let mut res = out.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
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
