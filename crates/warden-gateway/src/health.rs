//! `/healthz` (JSON, 503 once the revocation view is stale) and `/metrics` (Prometheus text):
//! the gateway's health figures, read without taking any lock a request path holds long.

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

    /// Prometheus text exposition of the gateway's health figures.
    pub(crate) fn metrics(&self) -> Response<Body> {
        let r = &self.revocations;
        let mut gauges: Vec<(&str, &str, f64)> = vec![
            (
                "warden_gateway_revocation_view_fresh",
                "1 while the revocation view is within its staleness bound",
                f64::from(u8::from(r.is_fresh())),
            ),
            (
                "warden_gateway_revocation_view_age_seconds",
                "time since the revocation stream last spoke (-1: never)",
                r.age().map_or(-1.0, |a| a.as_secs_f64()),
            ),
            (
                "warden_gateway_revocation_cursor",
                "sequence number of the last revocation applied",
                r.cursor() as f64,
            ),
            (
                "warden_gateway_revocation_entries",
                "revocations held in memory",
                r.entries() as f64,
            ),
            (
                "warden_gateway_revocation_reconnects_total",
                "revocation stream reconnections",
                r.reconnects() as f64,
            ),
            (
                "warden_gateway_verified_tokens_cached",
                "verified tokens in the cache",
                self.tokens.len() as f64,
            ),
            (
                "warden_gateway_dpop_proofs_remembered",
                "DPoP proofs remembered against replay",
                self.dpop_proofs_remembered() as f64,
            ),
            (
                "warden_gateway_identities_cached",
                "identities whose decisions and internal tokens are cached",
                self.identities.len() as f64,
            ),
            (
                "warden_gateway_audit_dropped_total",
                "decisions not audited on fail-open routes",
                self.audit.dropped_total() as f64,
            ),
            (
                "warden_gateway_connections_open",
                "client connections open",
                self.connections.open() as f64,
            ),
            (
                "warden_gateway_connections_max",
                "client connections allowed open at once",
                self.connections.max() as f64,
            ),
            (
                "warden_gateway_connections_refused_total",
                "client connections answered 503 at the connection cap",
                self.connections.refused_total() as f64,
            ),
        ];
        if let (Some(b), Some(a)) = (&self.behaviour, &self.alerts) {
            gauges.extend([
                (
                    "warden_gateway_behaviour_identities",
                    "identities whose behaviour is tracked",
                    b.tracked() as f64,
                ),
                (
                    "warden_gateway_behaviour_untracked_total",
                    "requests not observed because the identity table was full",
                    b.untracked_total() as f64,
                ),
                (
                    "warden_gateway_behaviour_restrictions",
                    "restrictions in force",
                    b.restrictions(self.now()).len() as f64,
                ),
                (
                    "warden_gateway_alerts_raised_total",
                    "behaviour anomalies reported",
                    a.raised_total() as f64,
                ),
                (
                    "warden_gateway_alerts_dropped_total",
                    "alerts lost to a full alert queue",
                    a.dropped_total() as f64,
                ),
                (
                    "warden_gateway_alerts_delivered_total",
                    "alerts the webhook accepted",
                    a.delivered_total() as f64,
                ),
                (
                    "warden_gateway_alerts_failed_total",
                    "alerts the webhook did not accept",
                    a.failed_total() as f64,
                ),
                (
                    "warden_gateway_quarantine_revocations_total",
                    "quarantines carried out at the authority (the acting principal revoked)",
                    a.revoked_total() as f64,
                ),
                (
                    "warden_gateway_quarantine_revocations_failed_total",
                    "quarantines the authority could not be told of (the token refused here only)",
                    a.revoke_failed_total() as f64,
                ),
            ]);
        }
        let mut text = String::new();
        for (name, help, value) in gauges {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        }
        let mut res = Response::new(full(text));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        res
    }
}
