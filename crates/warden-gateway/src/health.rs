//! `/healthz` on the ops listener (JSON, 503 once the revocation view is stale): the
//! gateway's health figures, read without taking any lock a request path holds long.

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use serde_json::json;

use crate::http_client::{full, Body};
use crate::Gateway;

impl Gateway {
    /// 200 while the gateway can enforce revocation; 503 once its view is stale, so a load
    /// balancer can send traffic to a gateway that still can.
    pub(crate) fn health(&self) -> Response<Body> {
        let fresh = self.revocations.is_fresh();
        let body = json!({
            "status": if fresh { "ok" } else { "revocation_view_stale" },
            "revocation": {
                "fresh": fresh,
                "cursor": self.revocations.cursor(),
                "age_ms": self.revocations.age().map(|a| a.as_millis() as u64),
                "max_staleness_ms": self.config.revocation_max_staleness.as_millis() as u64,
                "entries": self.revocations.entries(),
                "reconnects": self.revocations.reconnects(),
            },
            "jwks_keys": self.jwks.keys().len(),
            "jwks_age_secs": self.jwks.age().map(|d| d.as_secs()),
            "policies": self.policies.as_ref().map(|p| p.current().len()),
            "verified_tokens_cached": self.tokens.len(),
            "identities_cached": self.identities.len(),
            "workers": self.config.workers,
            "audit_dropped_total": self.audit.dropped_total(),
            "behaviour": self.behaviour.as_ref().zip(self.alerts.as_ref()).map(|(b, a)| json!({
                "identities": b.tracked(),
                "alerts_raised_total": a.raised_total(),
                "alerts_dropped_total": a.dropped_total(),
            })),
            "gateway_key": self.key_id(),
        });
        let mut res = Response::new(full(serde_json::to_vec(&body).unwrap_or_default()));
        if !fresh {
            *res.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
        }
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }
}
