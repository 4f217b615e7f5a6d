//! The outcome of the pipeline, audited in one place: every decision's entry, the fail mode
//! when the audit queue cannot take it, the honeytoken alert, and the behaviour findings
//! (audit entry, signed webhook alert, quarantine revocation). Nothing here waits.

use std::sync::Arc;

use rand_core::OsRng;
use serde_json::json;
use warden_core::id::random_token_id;
use warden_core::Validation;

use super::{Allowed, Facts, Refusal};
use crate::alert::Revoke;
use crate::audit::AuditEvent;
use crate::behaviour::{Finding, Imposed};
use crate::config::{FailMode, Route};
use crate::deny::Deny;
use crate::token_cache::Verified;
use crate::Gateway;

impl Gateway {
    /// Audits the outcome and returns it: a decision the audit log cannot take is refused
    /// on a route that fails closed. Refusals that suggest probing feed the storm detector.
    pub(super) fn audit_outcome<'g>(
        &'g self,
        mut outcome: Result<Allowed<'g>, Refusal<'g>>,
        facts: &Facts<'_>,
        now: i64,
    ) -> Result<Allowed<'g>, Deny> {
        if let Err(Refusal {
            deny: Deny::Honeytoken(principal),
            ..
        }) = &outcome
        {
            self.honeytoken_used(principal, facts, now);
        }
        let (verified, route) = match &outcome {
            Ok(a) => (Some(Arc::clone(&a.verified)), Some(a.route)),
            Err(r) => (r.verified.clone(), r.route),
        };
        let event = AuditEvent {
            time: now,
            request_id: facts.request_id.clone(),
            decision: if outcome.is_ok() { "allow" } else { "deny" },
            phase: match &outcome {
                Ok(_) => "forward",
                Err(r) => r.deny.phase(),
            },
            reason: match &outcome {
                Ok(_) => "allowed".into(),
                Err(r) => r.deny.reason(),
            },
            sub: verified.as_ref().map(|v| v.claims.sub.clone()),
            act: verified.as_ref().and_then(|v| v.actor().map(str::to_owned)),
            jti: verified.as_ref().map(|v| v.claims.jti.clone()),
            route: route.map(|r| r.prefix.clone()),
            method: facts.method.to_owned(),
            path: facts.path.to_owned(),
            client_ip: facts.client_ip,
            policy_ids: match &outcome {
                Ok(a) => a.policy_ids.clone(),
                Err(r) => r.deny.policy_ids().to_vec(),
            },
            status: match &outcome {
                Ok(_) => 200,
                Err(r) => r.deny.status().as_u16(),
            },
            dropped: None,
            anomaly: None,
            response: None,
        };
        let slot = match &mut outcome {
            Ok(a) => a.audit_slot.take(),
            Err(r) => r.audit_slot.take(),
        };
        let recorded = match slot {
            Some(slot) => {
                slot.record(event);
                Ok(())
            }
            None => self.audit.try_record(event),
        };
        if recorded.is_err() {
            match route.map_or(FailMode::Closed, |r| r.fail_mode) {
                FailMode::Closed => {
                    outcome = Err(Refusal {
                        verified: verified.clone(),
                        route,
                        deny: Deny::AuditBacklog,
                        audit_slot: None,
                    })
                }
                FailMode::Open => self.audit.count_dropped(),
            }
        }
        if let (Some(b), Some(v), Err(r)) = (&self.behaviour, &verified, &outcome) {
            if r.deny.suggests_probing() {
                let expires = v.claims.exp + Validation::DEFAULT_LEEWAY;
                if let Some(f) = b.record_denial(&v.identity, &v.claims.jti, expires, now) {
                    self.raise(f, v, route, facts, now);
                }
            }
        }
        match &outcome {
            Ok(_) => self.decisions.allowed(),
            Err(r) => self.decisions.denied(r.deny.phase()),
        }
        outcome.map_err(|r| r.deny)
    }

    /// A honeytoken was presented: a high-severity alert (log, audit entry, signed webhook
    /// when one is configured). Never waits.
    fn honeytoken_used(&self, principal: &str, facts: &Facts<'_>, now: i64) {
        tracing::error!(
            target: "warden::alert", severity = "high", kind = "honeytoken_used",
            principal, client_ip = %facts.client_ip, path = facts.path, "security alert"
        );
        let event = AuditEvent {
            time: now,
            request_id: facts.request_id.clone(),
            decision: "alert",
            phase: "revocation",
            reason: format!("honeytoken {principal} presented"),
            sub: Some(principal.to_owned()),
            act: None,
            jti: None,
            route: None,
            method: facts.method.to_owned(),
            path: facts.path.to_owned(),
            client_ip: facts.client_ip,
            policy_ids: Vec::new(),
            status: 401,
            dropped: None,
            anomaly: Some("honeytoken"),
            response: Some("refuse"),
        };
        if self.audit.try_record(event).is_err() {
            self.audit.count_dropped();
        }
        if let Some(alerts) = &self.alerts {
            alerts.send(&json!({
                "type": "warden.honeytoken.used",
                "id": random_token_id(&mut OsRng),
                "severity": "high",
                "time": now,
                "gateway": self.key_id(),
                "principal": principal,
                "request": {
                    "id": facts.request_id,
                    "method": facts.method,
                    "path": facts.path,
                    "client_ip": facts.client_ip,
                },
            }));
        }
    }

    /// Reports a behaviour finding: an audit entry, a signed webhook alert (queued), and for
    /// a quarantine the revocation at the authority (queued). Never waits.
    pub(super) fn raise(
        &self,
        f: Finding,
        v: &Verified,
        route: Option<&Route>,
        facts: &Facts<'_>,
        now: i64,
    ) {
        let anomaly = f.anomaly.name();
        let response = f.response.name();
        tracing::warn!(
            identity = %v.identity, jti = %v.claims.jti, anomaly, response,
            detail = %f.detail, "behaviour anomaly"
        );
        let restriction = match &f.imposed {
            None => serde_json::Value::Null,
            Some(Imposed::Downgrade { until }) => json!({ "kind": "downgrade", "until": until }),
            Some(Imposed::Throttle { until, per_sec }) => {
                json!({ "kind": "throttle", "until": until, "per_sec": per_sec })
            }
            Some(Imposed::Quarantine { jti, until }) => {
                json!({ "kind": "quarantine", "jti": jti, "until": until })
            }
        };
        let event = AuditEvent {
            time: now,
            request_id: facts.request_id.clone(),
            decision: "alert",
            phase: "behaviour",
            reason: format!("{anomaly}: {}; response: {response}", f.detail),
            sub: Some(v.claims.sub.clone()),
            act: v.actor().map(str::to_owned),
            jti: Some(v.claims.jti.clone()),
            route: route.map(|r| r.prefix.clone()),
            method: facts.method.to_owned(),
            path: facts.path.to_owned(),
            client_ip: facts.client_ip,
            policy_ids: Vec::new(),
            status: 0,
            dropped: None,
            anomaly: Some(anomaly),
            response: Some(response),
        };
        if self.audit.try_record(event).is_err() {
            self.audit.count_dropped();
        }
        if let Some(alerts) = &self.alerts {
            alerts.send(&json!({
                "type": "warden.behaviour.alert",
                "id": random_token_id(&mut OsRng),
                "time": now,
                "gateway": self.key_id(),
                "identity": v.identity,
                "sub": v.claims.sub,
                "act": v.actor(),
                "jti": v.claims.jti,
                "anomaly": anomaly,
                "detail": f.detail,
                "response": response,
                "restriction": restriction,
                "request": {
                    "id": facts.request_id,
                    "method": facts.method,
                    "path": facts.path,
                    "route": route.map(|r| r.prefix.as_str()),
                    "client_ip": facts.client_ip,
                },
            }));
            if let Some(Imposed::Quarantine { jti, .. }) = f.imposed {
                let mut reason = format!(
                    "quarantined by gateway {}: {anomaly}: {}",
                    self.key_id(),
                    f.detail
                );
                if reason.len() > 500 {
                    let cut = (0..=500)
                        .rev()
                        .find(|i| reason.is_char_boundary(*i))
                        .unwrap_or(0);
                    reason.truncate(cut);
                }
                // The party acting misbehaved: the agent of a delegated token, not the
                // person it acts for.
                let principal = v.actor().unwrap_or(&v.claims.sub).to_owned();
                alerts.revoke(Revoke {
                    jti,
                    principal,
                    reason,
                });
            }
        }
    }
}
