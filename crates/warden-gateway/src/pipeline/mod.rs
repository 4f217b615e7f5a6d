//! The decision pipeline, shared by the reverse proxy and the forward-auth endpoint: named
//! phases over one per-request context ([`RequestCtx`]), in this order:
//!
//! `verify` (credentials, then the token) → `revocation` → `possession` (DPoP) → `route` →
//! `tenant` → `behaviour` → `scope` → `network` → `policy` → (a place in the audit queue is
//! held) → `rate` → `spend` (one-time values) → `swap` (the internal token) → `audit`; the
//! proxy then does `forward`. Nothing is spent — rate budget, a DPoP proof, a single-use
//! token — before the request's audit entry is sure to be taken: a request refused for an
//! audit backlog can be sent again.
//!
//! Each phase is a module with one function over the context that returns `Err(Deny)` to
//! refuse; the refusal names its phase ([`Deny::phase`]). The outcome, allowed or not, is
//! audited in one place ([`outcome`]). This module must not do I/O of its own beyond what
//! a phase needs (a JWKS refresh for an unknown `kid`).

mod behaviour;
mod network;
mod outcome;
mod policy;
mod possession;
mod rate;
mod revocation;
mod route;
mod scope;
mod spend;
mod swap;
mod tenant;
mod verify;

use std::net::IpAddr;
use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::HeaderMap;
use rand_core::OsRng;
use warden_core::id::random_token_id;
use warden_core::Scope;

use crate::audit::AuditSlot;
use crate::config::Route;
use crate::deny::Deny;
use crate::token_cache::Verified;
use crate::Gateway;

pub(crate) use verify::Scheme;

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
    /// The place held for its audit entry.
    pub(crate) audit_slot: Option<AuditSlot<'g>>,
}

/// One request as the phases after `verify` see it: the facts, the verified token, and what
/// earlier phases established. `'r` is the request's, `'g` the gateway's.
pub struct RequestCtx<'r, 'g> {
    pub facts: &'r Facts<'r>,
    pub now: i64,
    /// How the token was presented.
    pub scheme: Scheme,
    /// The token exactly as presented (a DPoP proof's `ath` names it).
    pub token: &'r str,
    pub verified: Arc<Verified>,
    /// Set by `route`.
    pub route: Option<&'g Route>,
    /// Set by `possession`: a verified DPoP proof, spent by `spend`.
    pub proof: Option<SpentProof>,
    /// Set by `policy`: the policies that determined the decision.
    pub policy_ids: Vec<String>,
    /// Held before anything is spent; the outcome's entry goes there.
    pub(crate) audit_slot: Option<AuditSlot<'g>>,
}

/// What `route` found: the route and the scope the method needs on it.
#[derive(Debug, Clone, Copy)]
pub struct Routed<'g> {
    pub route: &'g Route,
    pub required: &'g Scope,
}

/// A verified DPoP proof, to be remembered once its request is allowed.
#[derive(Debug)]
pub struct SpentProof {
    /// `jkt:jti`: a proof's `jti` is unique only per key.
    pub key: String,
    pub remember_until: i64,
}

/// A refusal and what the pipeline knew when it was made, for the audit entry.
pub(crate) struct Refusal<'g> {
    pub verified: Option<Arc<Verified>>,
    pub route: Option<&'g Route>,
    pub deny: Deny,
    pub audit_slot: Option<AuditSlot<'g>>,
}

impl Gateway {
    /// Runs every phase; the outcome is audited before it is returned.
    pub async fn decide<'g>(&'g self, facts: &Facts<'_>) -> Result<Allowed<'g>, Deny> {
        let now = self.now();
        let outcome = self.phases(facts, now).await;
        self.audit_outcome(outcome, facts, now)
    }

    async fn phases<'g>(&'g self, facts: &Facts<'_>, now: i64) -> Result<Allowed<'g>, Refusal<'g>> {
        let unknown = |deny| Refusal {
            verified: None,
            route: None,
            deny,
            audit_slot: None,
        };
        let credentials = verify::credentials(facts.headers).map_err(unknown)?;
        let verified = self.verify(credentials.token, now).await.map_err(unknown)?;
        let mut ctx = RequestCtx {
            facts,
            now,
            scheme: credentials.scheme,
            token: credentials.token,
            verified,
            route: None,
            proof: None,
            policy_ids: Vec::new(),
            audit_slot: None,
        };
        match self.run_phases(&mut ctx) {
            Ok((at, internal_token)) => Ok(Allowed {
                route: at.route,
                verified: ctx.verified,
                internal_token,
                policy_ids: ctx.policy_ids,
                audit_slot: ctx.audit_slot,
            }),
            Err(deny) => Err(Refusal {
                verified: Some(ctx.verified),
                route: ctx.route,
                deny,
                audit_slot: ctx.audit_slot,
            }),
        }
    }

    /// The phases after `verify`, in order.
    fn run_phases<'g>(
        &'g self,
        ctx: &mut RequestCtx<'_, 'g>,
    ) -> Result<(Routed<'g>, HeaderValue), Deny> {
        revocation::check(ctx, &self.revocations)?;
        possession::check(
            ctx,
            self.config.public_url.as_deref(),
            self.config.dpop_max_skew_secs,
            |host| self.is_own_authority(host),
        )?;
        let at = route::check(ctx, &self.config, || self.revocations.is_fresh())?;
        tenant::check(ctx, at)?;
        if let Some(b) = &self.behaviour {
            behaviour::check(ctx, at, b, |c, finding| {
                self.raise(finding, &c.verified, c.route, c.facts, c.now)
            })?;
        }
        scope::check(ctx, at)?;
        network::check(ctx)?;
        if let Some(policies) = &self.policies {
            policy::check(ctx, at, policies.current())?;
        }
        ctx.audit_slot = self.audit.try_reserve();
        if ctx.audit_slot.is_none() && at.route.fail_mode == crate::config::FailMode::Closed {
            return Err(Deny::AuditBacklog);
        }
        if let Some(limiter) = self.limiters.get(&at.route.prefix) {
            rate::check(ctx, limiter)?;
        }
        spend::check(ctx, &self.dpop_replay, &self.single_use)?;
        let token = swap::check(ctx, at, &self.config, &self.key)?;
        Ok((at, token))
    }
}

/// A unique id per request: a random per-process prefix and a counter. Request ids name
/// requests in logs; they need to be unique, not secret, so no system call per request.
pub(crate) fn next_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| random_token_id(&mut OsRng).chars().take(10).collect());
    format!("{prefix}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A method's position in [`crate::config::METHODS`] (every routed method is there).
fn method_index(method: &str) -> usize {
    crate::config::METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(crate::config::METHODS.len())
}

/// What the phases' unit tests share: a request context without a server.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::AtomicI64;
    use std::sync::Arc;

    use rand_core::OsRng;
    use warden_core::claims::{AccessClaims, Audience};
    use warden_core::jws::{self, UnverifiedToken};
    use warden_core::{SigningKey, Validation};

    use super::{Facts, RequestCtx, Routed, Scheme};
    use crate::config::GatewayConfig;
    use crate::token_cache::{Identity, Verified};

    pub const NOW: i64 = 1_900_000_000;
    pub const TENANT: &str = "tnt_AAAAAAAAAAAAAAAAAAAAAA";
    pub const AGENT: &str = "agt_AAAAAAAAAAAAAAAAAAAAAA";

    pub const CONFIG: &str = r#"
[gateway]
listen = "127.0.0.1:8443"
authority = "http://127.0.0.1:8080"

[[gateway.route]]
prefix = "/crm/"
upstream = "http://127.0.0.1:9001"
audience = "crm"
[gateway.route.scopes]
GET = "crm:contacts:read"
POST = "crm:contacts:write"
"#;

    pub fn config() -> GatewayConfig {
        GatewayConfig::parse(CONFIG, "test.toml", None).unwrap()
    }

    pub fn claims() -> AccessClaims {
        AccessClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: AGENT.into(),
            aud: Audience::One("warden".into()),
            exp: NOW + 300,
            iat: NOW,
            nbf: NOW,
            jti: "jti-1".into(),
            client_id: AGENT.into(),
            tenant: TENANT.into(),
            scope: "crm:contacts:read".into(),
            act: None,
            cnf: None,
            allowed_ips: None,
            max_uses: None,
        }
    }

    /// A token as `verify` would have left it: signed, verified, read.
    pub fn verified(claims: AccessClaims) -> Arc<Verified> {
        let key = SigningKey::generate(&mut OsRng);
        let token = jws::encode("at+jwt", Some("k1"), &claims, &key).unwrap();
        let validation = Validation::access_token(&claims.iss, vec!["warden".into()]);
        let verified = UnverifiedToken::parse(&token)
            .unwrap()
            .verify::<AccessClaims>(&key.public_key(), &validation, NOW)
            .unwrap();
        let access = verified.access().unwrap();
        Arc::new(Verified {
            kid: "k1".into(),
            identity: claims.sub.clone(),
            claims,
            access,
            shared: Arc::new(Identity::default()),
            last_used: AtomicI64::new(0),
        })
    }

    pub fn facts<'a>(method: &'a str, path: &'a str, headers: &'a hyper::HeaderMap) -> Facts<'a> {
        Facts {
            method,
            path,
            raw_path: path,
            headers,
            client_ip: "203.0.113.7".parse().unwrap(),
            request_id: "test-1".into(),
        }
    }

    pub fn ctx<'r, 'g>(facts: &'r Facts<'r>, claims: AccessClaims) -> RequestCtx<'r, 'g> {
        RequestCtx {
            facts,
            now: NOW,
            scheme: Scheme::Bearer,
            token: "token",
            verified: verified(claims),
            route: None,
            proof: None,
            policy_ids: Vec::new(),
            audit_slot: None,
        }
    }

    /// The route `path` falls on, with the scope `method` needs there.
    pub fn routed<'g>(config: &'g GatewayConfig, path: &str, method: &str) -> Routed<'g> {
        let route = config.route_for(path).unwrap();
        Routed {
            route,
            required: route.scopes.get(method).unwrap(),
        }
    }
}
