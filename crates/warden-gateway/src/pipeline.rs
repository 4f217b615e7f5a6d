//! The decision pipeline, shared by the reverse proxy and the forward-auth endpoint.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{HeaderMap, Request, Response};
use rand_core::OsRng;
use serde_json::json;
use warden_core::claims::{AccessClaims, Actor, Audience};
use warden_core::dpop::{verify_proof, DpopError, ProofRequest};
use warden_core::id::random_token_id;
use warden_core::jws::{self, UnverifiedToken};
use warden_core::replay::{FirstUse, ReplayCache};
use warden_core::revocation::Revoked;
use warden_core::{ScopeSet, TokenError, Validation};
use warden_policy::{Decision, Effect, PolicyRequest, PolicySet};

use crate::alert::Revoke;
use crate::audit::AuditEvent;
use crate::behaviour::{Finding, Imposed, Observation, Verdict};
use crate::config::{FailMode, ForwardAuth, Route};
use crate::deny::Deny;
use crate::http_client::{full, Body};
use crate::net::{client_ip, parse_networks};
use crate::proxy::Origin;
use crate::token_cache::{Verified, MAX_CACHED_DECISIONS};
use crate::upstream::Upstreams;
use crate::Gateway;

/// What the pipeline knows about a request before deciding.
pub struct Facts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The path exactly as the client sent it, which a DPoP proof's `htu` names.
    pub raw_path: &'a str,
    pub headers: &'a HeaderMap,
    pub client_ip: IpAddr,
    pub request_id: String,
}

/// An allowed request: the route, the verified token, and the internal token to forward.
pub struct Allowed<'g> {
    pub route: &'g Route,
    pub verified: Arc<Verified>,
    /// `Bearer <internal token>`, ready for the upstream's `Authorization` header.
    pub internal_token: HeaderValue,
    pub policy_ids: Vec<String>,
}

impl Gateway {
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        upstream: &Arc<Upstreams>,
    ) -> Response<Body> {
        let raw = req.uri().path().to_owned();
        let authz = &self.config.authz_path;
        if raw == *authz
            || raw
                .strip_prefix(authz.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        {
            return self.forward_auth(&req, peer).await;
        }
        if raw == "/healthz" {
            return self.health();
        }
        if raw == "/metrics" {
            return self.metrics();
        }
        if raw
            .strip_prefix(crate::admin::PREFIX)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        {
            return self.admin(&req, &raw, peer);
        }
        let path = match crate::path::normalize(&raw) {
            Ok(p) => p,
            Err(reason) => return Deny::BadPath(reason).into_response(),
        };
        // The upstream gets the path that was decided on, not the raw one.
        if path != raw {
            let query = req
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            match format!("{path}{query}").parse() {
                Ok(uri) => *req.uri_mut() = uri,
                Err(_) => {
                    return Deny::BadPath("the path cannot be normalized".into()).into_response()
                }
            }
        }
        let client = client_ip(
            peer.ip(),
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
            &self.config.trusted_proxies,
        );
        let facts = Facts {
            method: req.method().as_str(),
            path: &path,
            raw_path: &raw,
            headers: req.headers(),
            client_ip: client,
            request_id: next_request_id(),
        };
        let request_id = facts.request_id.clone();
        match self.decide(&facts).await {
            Ok(allowed) => {
                let route = allowed.route;
                let token = allowed.internal_token;
                // Until the upstream's answer head: both bounds are 504, so one timer.
                let limit = self
                    .config
                    .request_timeout
                    .min(self.config.upstream_timeout);
                let res = tokio::time::timeout(
                    limit,
                    self.forward(
                        upstream,
                        req,
                        route,
                        token,
                        &Origin {
                            client,
                            peer: peer.ip(),
                            request_id: &request_id,
                        },
                    ),
                )
                .await
                .unwrap_or(Err(Deny::UpstreamTimeout));
                match res {
                    Ok(res) => res,
                    Err(deny) => {
                        // The decision was allowed and audited; the forward failure is logged,
                        // as the client's fault or the upstream's.
                        if matches!(deny, Deny::IncompleteBody) {
                            tracing::info!(request_id = %request_id, route = %route.prefix, reason = %deny.reason(), "client cut its request body short");
                        } else {
                            tracing::warn!(request_id = %request_id, route = %route.prefix, reason = %deny.reason(), "upstream failure");
                        }
                        deny.into_response()
                    }
                }
            }
            Err(deny) => deny.into_response(),
        }
    }

    /// Forward-auth for nginx `auth_request`, Traefik ForwardAuth and Envoy ext_authz (HTTP),
    /// in the one convention the config names (see [`ForwardAuth`]). Only trusted proxies
    /// may ask: anyone else could mint internal tokens for any route's audience. 200 carries
    /// the internal token.
    async fn forward_auth(&self, req: &Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let mode = self.config.forward_auth;
        let answer = |deny: Deny| match mode {
            ForwardAuth::Nginx => deny.into_nginx_response(),
            ForwardAuth::Traefik | ForwardAuth::Envoy => deny.into_response(),
        };
        if !self
            .config
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&peer.ip()))
        {
            return answer(Deny::UntrustedCaller);
        }
        let h = req.headers();
        let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (method, uri) = match mode {
            ForwardAuth::Nginx => (header("x-original-method"), header("x-original-uri")),
            ForwardAuth::Traefik => (header("x-forwarded-method"), header("x-forwarded-uri")),
            ForwardAuth::Envoy => {
                let p = req.uri().path();
                let rest = p.strip_prefix(self.config.authz_path.as_str()).unwrap_or(p);
                (
                    Some(req.method().as_str().to_owned()),
                    Some(rest.to_owned()),
                )
            }
        };
        let (Some(method), Some(uri)) = (method, uri) else {
            return answer(Deny::BadPath(
                "the original method and URI are missing".into(),
            ));
        };
        let method = method.to_ascii_uppercase();
        let raw = uri.split('?').next().unwrap_or_default();
        let path = match crate::path::normalize(if raw.is_empty() { "/" } else { raw }) {
            Ok(p) => p,
            Err(reason) => return answer(Deny::BadPath(reason)),
        };
        let client = client_ip(
            peer.ip(),
            h.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
            &self.config.trusted_proxies,
        );
        let facts = Facts {
            method: &method,
            path: &path,
            raw_path: if raw.is_empty() { "/" } else { raw },
            headers: h,
            client_ip: client,
            request_id: next_request_id(),
        };
        match self.decide(&facts).await {
            Ok(allowed) => {
                let mut res = Response::new(full(""));
                let v = allowed.internal_token;
                res.headers_mut().insert(AUTHORIZATION, v.clone());
                res.headers_mut().insert("x-warden-authorization", v);
                if let Ok(v) = HeaderValue::from_str(&allowed.verified.claims.sub) {
                    res.headers_mut().insert("x-warden-subject", v);
                }
                res
            }
            Err(deny) => answer(deny),
        }
    }

    /// 200 while the gateway can enforce revocation; 503 once its view is stale, so a load
    /// balancer can send traffic to a gateway that still can.
    fn health(&self) -> Response<Body> {
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
    fn metrics(&self) -> Response<Body> {
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
                    "quarantined tokens revoked at the authority",
                    a.revoked_total() as f64,
                ),
                (
                    "warden_gateway_quarantine_revocations_failed_total",
                    "quarantined tokens that could not be revoked",
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

    /// Runs every phase; the outcome is audited before it is returned.
    pub async fn decide<'g>(&'g self, facts: &Facts<'_>) -> Result<Allowed<'g>, Deny> {
        let now = self.now();
        let mut outcome = self.phases(facts, now).await;
        if let Err((_, _, Deny::Honeytoken(principal))) = &outcome {
            self.honeytoken_used(principal, facts, now);
        }
        let (verified, route) = match &outcome {
            Ok(a) => (Some(Arc::clone(&a.verified)), Some(a.route)),
            Err((v, r, _)) => (v.clone(), *r),
        };
        let event = AuditEvent {
            time: now,
            request_id: facts.request_id.clone(),
            decision: if outcome.is_ok() { "allow" } else { "deny" },
            phase: match &outcome {
                Ok(_) => "forward",
                Err((_, _, d)) => d.phase(),
            },
            reason: match &outcome {
                Ok(_) => "allowed".into(),
                Err((_, _, d)) => d.reason(),
            },
            sub: verified.as_ref().map(|v| v.claims.sub.clone()),
            act: verified.as_ref().and_then(|v| v.actor.clone()),
            jti: verified.as_ref().map(|v| v.claims.jti.clone()),
            route: route.map(|r| r.prefix.clone()),
            method: facts.method.to_owned(),
            path: facts.path.to_owned(),
            client_ip: facts.client_ip,
            policy_ids: match &outcome {
                Ok(a) => a.policy_ids.clone(),
                Err((_, _, d)) => d.policy_ids().to_vec(),
            },
            status: match &outcome {
                Ok(_) => 200,
                Err((_, _, d)) => d.status().as_u16(),
            },
            dropped: None,
            anomaly: None,
            response: None,
        };
        if self.audit.try_record(event).is_err() {
            match route.map_or(FailMode::Closed, |r| r.fail_mode) {
                FailMode::Closed => outcome = Err((verified.clone(), route, Deny::AuditBacklog)),
                FailMode::Open => self.audit.count_dropped(),
            }
        }
        // behaviour: refusals that suggest probing feed the storm detector
        if let (Some(b), Some(v), Err((_, _, deny))) = (&self.behaviour, &verified, &outcome) {
            if deny.suggests_probing() {
                let expires = v.claims.exp + Validation::DEFAULT_LEEWAY;
                if let Some(f) = b.record_denial(&v.identity, &v.claims.jti, expires, now) {
                    self.raise(f, v, route, facts, now);
                }
            }
        }
        outcome.map_err(|(_, _, d)| d)
    }

    async fn phases<'g>(
        &'g self,
        facts: &Facts<'_>,
        now: i64,
    ) -> Result<Allowed<'g>, (Option<Arc<Verified>>, Option<&'g Route>, Deny)> {
        // verify
        let (scheme, token) = credentials(facts.headers).map_err(|d| (None, None, d))?;
        let verified = self.verify(token, now).await.map_err(|d| (None, None, d))?;
        let fail = |route: Option<&'g Route>, d: Deny| (Some(Arc::clone(&verified)), route, d);

        // revocation: every level of the delegation chain, on cache hits too
        match self.revocations.check(&verified.claims) {
            Ok(()) => {}
            Err(Revoked::Honeytoken(p)) => return Err(fail(None, Deny::Honeytoken(p))),
            Err(why) => return Err(fail(None, Deny::InvalidToken(why.to_string()))),
        }

        // possession
        let proof = self
            .check_possession(facts, scheme, token, &verified.claims, now)
            .map_err(|d| fail(None, d))?;

        // route
        let route = self
            .config
            .route_for(facts.path)
            .ok_or_else(|| fail(None, Deny::NoRoute))?;
        if route.fail_mode == FailMode::Closed && !self.revocations.is_fresh() {
            return Err(fail(Some(route), Deny::RevocationStale));
        }
        let Some(required) = route.scopes.get(facts.method) else {
            return Err(fail(
                Some(route),
                Deny::MethodNotAllowed(facts.method.to_owned()),
            ));
        };

        // tenant: a route of one tenant serves only its tokens, whether or not any policy
        // says so (policies are optional, and a missing file must not open the route)
        if !route.serves_tenant(&verified.claims.tenant) {
            return Err(fail(Some(route), Deny::OtherTenant));
        }

        // behaviour: learn from the request, then enforce the restrictions in force
        if let Some(b) = &self.behaviour {
            let assessment = b.observe(
                &Observation {
                    identity: &verified.identity,
                    jti: &verified.claims.jti,
                    token_expires: verified.claims.exp + Validation::DEFAULT_LEEWAY,
                    route: route.index,
                    route_prefix: &route.prefix,
                    method: facts.method,
                    client_ip: facts.client_ip,
                },
                now,
            );
            for f in assessment.findings {
                self.raise(f, &verified, Some(route), facts, now);
            }
            let refusal = match assessment.verdict {
                Verdict::Allow => None,
                Verdict::Quarantined => Some(Deny::Quarantined),
                Verdict::ReadOnly { until, cause } => Some(Deny::ReadOnly {
                    until,
                    cause: cause.name(),
                }),
                Verdict::Throttled {
                    retry_after_secs,
                    cause,
                } => Some(Deny::Throttled {
                    retry_after_secs,
                    cause: cause.name(),
                }),
            };
            if let Some(d) = refusal {
                return Err(fail(Some(route), d));
            }
        }

        // scope
        if !verified.scopes.covers(required) {
            return Err(fail(
                Some(route),
                Deny::InsufficientScope(required.to_string()),
            ));
        }

        // network
        if let Some(nets) = &verified.allowed_ips {
            if !nets.iter().any(|n| n.contains(&facts.client_ip)) {
                return Err(fail(
                    Some(route),
                    Deny::Network(format!(
                        "client address {} is outside the token's allowed_ips",
                        facts.client_ip
                    )),
                ));
            }
        }

        // policy
        let mut policy_ids = Vec::new();
        if let Some(policies) = &self.policies {
            let decision = self.policy_decision(&verified, route, facts, policies.current(), now);
            policy_ids = decision.policy_ids;
            if !matches!(decision.effect, Effect::Allow) {
                let reason = if policy_ids.is_empty() {
                    "no policy permits this request".to_owned()
                } else {
                    format!("denied by policy {}", policy_ids.join(", "))
                };
                return Err(fail(Some(route), Deny::Policy { policy_ids, reason }));
            }
        }

        // rate
        if let Some(limiter) = self.limiters.get(&route.prefix) {
            if let Err(not_until) = limiter.check_key(&verified.claims.sub) {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Err(fail(
                    Some(route),
                    Deny::RateLimited {
                        retry_after_secs: secs.max(1),
                    },
                ));
            }
        }

        // one-time values, spent only by a request that is otherwise allowed: the DPoP
        // proof, then a single-use token
        if let Some(p) = proof {
            spend(&self.dpop_replay, &p.key, p.remember_until, now, || {
                Deny::InvalidDpop("DPoP proof was already used".into())
            })
            .map_err(|d| fail(Some(route), d))?;
        }
        if verified.claims.max_uses.is_some() {
            let until = verified.claims.exp + Validation::DEFAULT_LEEWAY;
            spend(&self.single_use, &verified.claims.jti, until, now, || {
                Deny::InvalidToken("single-use token was already used".into())
            })
            .map_err(|d| fail(Some(route), d))?;
        }

        // swap
        verified
            .last_used
            .store(now, std::sync::atomic::Ordering::Relaxed);
        let internal_token = self
            .internal_token(&verified, route, required, facts.method, now)
            .map_err(|d| fail(Some(route), d))?;
        Ok(Allowed {
            route,
            verified,
            internal_token,
            policy_ids,
        })
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
            phase: "verify",
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
    fn raise(&self, f: Finding, v: &Verified, route: Option<&Route>, facts: &Facts<'_>, now: i64) {
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
            act: v.actor.clone(),
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
                "act": v.actor,
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
                alerts.revoke(Revoke { jti, reason });
            }
        }
    }

    /// Cedar's decision, or the same decision made earlier for this identity by the same
    /// policy set for an identical request in the same time bucket.
    fn policy_decision(
        &self,
        verified: &Verified,
        route: &Route,
        facts: &Facts<'_>,
        set: Arc<PolicySet>,
        now: i64,
    ) -> Decision {
        let key = (route.index, method_index(facts.method), facts.client_ip);
        let bucket = set.time_bucket(now);
        let mut cache = crate::lock(&verified.shared.decisions);
        if let Some((s, b, d)) = cache.get(&key).and_then(|paths| paths.get(facts.path)) {
            if Arc::ptr_eq(s, &set) && *b == bucket {
                return d.clone();
            }
        }
        let scopes: Vec<&str> = verified.scopes.iter().map(|s| s.as_str()).collect();
        let c = &verified.claims;
        let decision = set.decide(&PolicyRequest {
            tenant: &c.tenant,
            principal: &c.sub,
            principal_kind: kind_of(&c.sub),
            owner: None,
            actor: verified.actor.as_deref(),
            method: facts.method,
            route: &route.prefix,
            route_tenant: route.tenant_id(),
            path: facts.path,
            client_ip: facts.client_ip,
            time: now,
            scopes: &scopes,
            delegation_depth: verified.delegation_depth,
        });
        if cache.values().map(HashMap::len).sum::<usize>() >= MAX_CACHED_DECISIONS {
            cache.clear();
        }
        cache
            .entry(key)
            .or_default()
            .insert(facts.path.into(), (set, bucket, decision.clone()));
        decision
    }

    /// Verifies a token, or takes it from the cache of verified tokens. A hit is re-checked
    /// against the clock and the current key set, so it never outlives what a fresh
    /// verification would accept.
    async fn verify(&self, token: &str, now: i64) -> Result<Arc<Verified>, Deny> {
        if token.len() > self.config.max_token_bytes {
            return Err(Deny::InvalidToken("token is too large".into()));
        }
        let leeway = Validation::DEFAULT_LEEWAY;
        if let Some(hit) = self.tokens.get(token) {
            let c = &hit.claims;
            if now > c.exp + leeway {
                self.tokens.remove(token);
                return Err(match self.revocations.honeytoken_in(c) {
                    Some(p) => Deny::Honeytoken(p),
                    None => Deny::InvalidToken(TokenError::Expired.to_string()),
                });
            }
            if c.nbf > now + leeway {
                return Err(Deny::InvalidToken(TokenError::NotYetValid.to_string()));
            }
            if self.jwks.keys().get(&hit.kid).is_some() {
                return Ok(hit);
            }
            // The signing key is no longer published: verify afresh (and fail).
            self.tokens.remove(token);
        }
        let validation =
            Validation::access_token(&self.config.issuer, vec![self.config.audience.clone()]);
        let parsed =
            UnverifiedToken::parse(token).map_err(|e| Deny::InvalidToken(e.to_string()))?;
        let kid = parsed.header().kid.clone();
        let mut keys = self.jwks.keys();
        if let Some(k) = &kid {
            if keys.get(k).is_none() && self.jwks.refresh_for_unknown_kid().await {
                keys = self.jwks.keys();
            }
        }
        let unverified: Option<AccessClaims> = parsed.claims_unverified().ok();
        let verified = parsed
            .verify_with::<AccessClaims>(&keys, &validation, now)
            .map_err(|e| {
                // An expired token passed the signature check first: a genuine honeytoken,
                // reported even though it would be refused anyway.
                let honeytoken = (e == TokenError::Expired)
                    .then_some(unverified.as_ref())
                    .flatten()
                    .and_then(|c| self.revocations.honeytoken_in(c));
                match honeytoken {
                    Some(p) => Deny::Honeytoken(p),
                    None => Deny::InvalidToken(e.to_string()),
                }
            })?;
        let claims = verified.into_claims();
        let scopes = ScopeSet::parse(&claims.scope)
            .map_err(|e| Deny::InvalidToken(format!("token scope: {e}")))?;
        let allowed_ips = match &claims.allowed_ips {
            None => None,
            Some(list) => Some(
                parse_networks(list)
                    .ok_or_else(|| Deny::InvalidToken("token allowed_ips is malformed".into()))?,
            ),
        };
        let (actor, delegation_depth) = chain(claims.act.as_ref());
        let identity = match &actor {
            Some(a) => format!("{}~{a}", claims.sub),
            None => claims.sub.clone(),
        };
        let shared = self.identities.get_or_insert(&claims);
        let v = Arc::new(Verified {
            kid: kid.unwrap_or_default(),
            identity,
            claims,
            scopes,
            allowed_ips,
            actor,
            delegation_depth,
            shared,
            last_used: std::sync::atomic::AtomicI64::new(0),
        });
        self.tokens.insert(token, Arc::clone(&v));
        Ok(v)
    }

    /// RFC 9449 §7: a bound token comes with the `DPoP` scheme and a proof, signed by the
    /// bound key, for this very request and token. The proof is spent (its `jti` remembered)
    /// only by a request that every other phase allows, so proofs sent where they are
    /// refused cannot fill the replay cache.
    fn check_possession(
        &self,
        facts: &Facts<'_>,
        scheme: Scheme,
        token: &str,
        claims: &AccessClaims,
        now: i64,
    ) -> Result<Option<SpentProof>, Deny> {
        let Some(cnf) = &claims.cnf else {
            return match scheme {
                Scheme::Bearer => Ok(None),
                Scheme::Dpop => Err(Deny::InvalidToken(
                    "the DPoP scheme needs a DPoP-bound token".into(),
                )),
            };
        };
        if scheme != Scheme::Dpop {
            return Err(Deny::InvalidToken(
                "token is DPoP-bound: present it with the DPoP scheme and a proof".into(),
            ));
        }
        let mut proofs = facts.headers.get_all("dpop").iter();
        let proof = match (proofs.next(), proofs.next()) {
            (Some(p), None) => p
                .to_str()
                .map_err(|_| Deny::InvalidDpop("DPoP header is not ASCII".into()))?,
            (None, _) => return Err(Deny::InvalidDpop("DPoP proof is missing".into())),
            (Some(_), Some(_)) => {
                return Err(Deny::InvalidDpop("more than one DPoP header".into()))
            }
        };
        let url = match &self.config.public_url {
            Some(base) => format!("{base}{}", facts.raw_path),
            None => {
                let host = facts
                    .headers
                    .get(hyper::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .ok_or_else(|| Deny::InvalidDpop("request has no Host".into()))?;
                // A proof names the resource server it was made for; taking that name from
                // the request itself would let a proof made for another server be replayed
                // here under its name.
                if !self.is_own_authority(host) {
                    return Err(Deny::InvalidDpop(format!(
                        "the gateway does not know itself as `{host}`: set public_url"
                    )));
                }
                format!("http://{host}{}", facts.raw_path)
            }
        };
        let skew = self.config.dpop_max_skew_secs;
        let verified = verify_proof(
            proof,
            &ProofRequest {
                method: facts.method,
                url: &url,
                access_token: Some(token),
                now,
                max_skew: skew,
            },
        )
        .map_err(|e| Deny::InvalidDpop(e.to_string()))?;
        if verified.jkt != cnf.jkt {
            return Err(Deny::InvalidDpop(DpopError::KeyMismatch.to_string()));
        }
        Ok(Some(SpentProof {
            key: format!("{}:{}", verified.jkt, verified.jti),
            remember_until: verified.iat + skew,
        }))
    }

    /// The token the upstream sees: this route's audience, only the scope this method needs,
    /// `sub` and `act` preserved, at most `internal_token_ttl_secs` and never past the
    /// external token's expiry. Reused, for any token of the same identity, while it has more
    /// than half its life left and does not outlive the token presented.
    fn internal_token(
        &self,
        v: &Verified,
        route: &Route,
        scope: &warden_core::Scope,
        method: &str,
        now: i64,
    ) -> Result<HeaderValue, Deny> {
        let key = (route.index, method_index(method));
        let ttl = self.config.internal_token_ttl_secs;
        let mut minted = crate::lock(&v.shared.internal);
        if let Some((t, exp)) = minted.get(&key) {
            if exp - now > ttl / 2 && *exp <= v.claims.exp {
                return Ok(t.clone());
            }
        }
        let exp = (now + ttl).min(v.claims.exp);
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            sub: v.claims.sub.clone(),
            aud: Audience::One(route.audience.clone()),
            exp,
            iat: now,
            nbf: now,
            jti: random_token_id(&mut OsRng),
            client_id: v.claims.client_id.clone(),
            tenant: v.claims.tenant.clone(),
            scope: scope.to_string(),
            act: v.claims.act.clone(),
            cnf: None,
            allowed_ips: None,
            max_uses: None,
        };
        // A JWS is base64url and dots: always a valid header value.
        let bearer = jws::encode("at+jwt", Some(&self.key.kid), &claims, &self.key.key)
            .ok()
            .and_then(|t| HeaderValue::try_from(format!("Bearer {t}")).ok())
            .ok_or_else(|| {
                Deny::UpstreamUnreachable("the internal token could not be made".into())
            })?;
        minted.insert(key, (bearer.clone(), exp));
        Ok(bearer)
    }
}

/// A unique id per request: a random per-process prefix and a counter. Request ids name
/// requests in logs; they need to be unique, not secret, so no system call per request.
fn next_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| random_token_id(&mut OsRng).chars().take(10).collect());
    format!("{prefix}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Spends a one-time value, remembered until `until`; `replayed` is the refusal when it
/// was spent before.
fn spend(
    cache: &std::sync::Mutex<ReplayCache>,
    value: &str,
    until: i64,
    now: i64,
    replayed: impl FnOnce() -> Deny,
) -> Result<(), Deny> {
    match crate::lock(cache).first_use(value, until, now) {
        FirstUse::Yes => Ok(()),
        FirstUse::Replay => Err(replayed()),
        FirstUse::Full => Err(Deny::ReplayCacheFull),
    }
}

/// A method's position in [`crate::config::METHODS`] (every routed method is there).
fn method_index(method: &str) -> usize {
    crate::config::METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(crate::config::METHODS.len())
}

/// A verified DPoP proof, to be remembered once its request is allowed.
struct SpentProof {
    /// `jkt:jti`: a proof's `jti` is unique only per key.
    key: String,
    remember_until: i64,
}

/// How the token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

fn credentials(headers: &HeaderMap) -> Result<(Scheme, &str), Deny> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(Deny::MissingToken);
    };
    let value = value
        .to_str()
        .map_err(|_| Deny::InvalidToken("authorization header is not ASCII".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Deny::InvalidToken("authorization header is malformed".into()))?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(Deny::MissingToken);
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(Deny::InvalidToken("empty token".into()));
    }
    Ok((scheme, token))
}

/// The current actor (the outermost `act`, RFC 8693 §4.1) and the chain's length.
fn chain(act: Option<&Actor>) -> (Option<String>, u32) {
    let mut depth = 0;
    let mut first = None;
    let mut cur = act;
    while let Some(a) = cur {
        if first.is_none() {
            first = Some(a.sub.clone());
        }
        depth += 1;
        cur = a.act.as_deref();
    }
    (first, depth)
}

fn kind_of(sub: &str) -> &'static str {
    match sub.get(..4) {
        Some("usr_") => "user",
        Some("svc_") => "service",
        _ => "agent",
    }
}
