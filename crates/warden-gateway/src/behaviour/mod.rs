//! Behavioural defence: what each identity normally does, and what happens when it stops
//! doing that.
//!
//! Per identity (the token's `sub`, with the acting party when the token is delegated) the
//! gateway learns a baseline — requests per window as an EWMA, the networks it comes from,
//! the routes and methods it uses — and reports four anomalies: a **velocity** burst far
//! above the baseline (or over an absolute cap), a request from a **new network** (/24 for
//! IPv4, /48 for IPv6), **novelty** (a route or method never used before), and a **denied
//! storm** (many refused requests in one window). Each anomaly is answered as the config
//! says: an alert only, a read-only **downgrade**, a **throttle**, or a **quarantine** of the
//! token.
//!
//! This module owns the detectors and the per-identity state machine. It performs no I/O and
//! reads no clock: `now` (Unix seconds) is a parameter, and it returns findings for the
//! pipeline to act on (alert, audit, revoke). Learning is per identity, not per token, so a
//! baseline outlives the short-lived tokens that carry it; a quarantine names one token.
//!
//! Cost per request: one shard lock, one hash-map lookup, a few comparisons; no lock is held
//! across an await. Memory is bounded by `max_identities`; idle identities are swept.
//!
//! Here: the vocabulary (anomalies, responses, findings, verdicts), the config, and the
//! detectors over the sharded table; `state` holds one identity's baseline and restrictions
//! and how a finding becomes a restriction and a restriction a verdict.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::lock;

const SHARDS: usize = 16;

/// What was unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    Velocity,
    NewNetwork,
    Novelty,
    DeniedStorm,
}

impl Anomaly {
    pub fn name(self) -> &'static str {
        match self {
            Self::Velocity => "velocity",
            Self::NewNetwork => "new_network",
            Self::Novelty => "novelty",
            Self::DeniedStorm => "denied_storm",
        }
    }
}

/// How an anomaly is answered. Every answer but `off` also raises an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// The detector is disabled.
    Off,
    Alert,
    /// Safe methods only (GET, HEAD, OPTIONS) for `downgrade_secs`.
    Downgrade,
    /// At most `throttle_per_sec` requests per second for `throttle_secs`.
    Throttle,
    /// The token is revoked through the authority and refused here at once.
    Quarantine,
}

impl Response {
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Alert => "alert",
            Self::Downgrade => "downgrade",
            Self::Throttle => "throttle",
            Self::Quarantine => "quarantine",
        }
    }
}

/// `[gateway.behaviour]`, validated.
#[derive(Debug, Clone)]
pub struct BehaviourConfig {
    pub window_secs: i64,
    /// Weight of the newest window in the baseline.
    pub ewma_alpha: f64,
    /// A window with more than `burst_factor` × baseline requests is a burst …
    pub burst_factor: f64,
    /// … if it has at least this many requests (small numbers are never a burst).
    pub burst_min_requests: u32,
    /// Absolute cap per window, whatever the baseline; also for identities still learning.
    pub max_requests_per_window: Option<u32>,
    /// Windows an identity is observed before its baseline counts (velocity, network,
    /// novelty).
    pub mature_after_windows: u32,
    /// Refused requests in one window that make a storm.
    pub denied_storm: u32,
    pub on_velocity: Response,
    pub on_new_network: Response,
    pub on_novelty: Response,
    pub on_denied_storm: Response,
    pub downgrade_secs: i64,
    pub throttle_secs: i64,
    pub throttle_per_sec: u32,
    pub max_identities: usize,
    /// An identity unseen this long, with no restriction in force, is forgotten.
    pub idle_secs: i64,
    pub alert_webhook: Option<String>,
    pub alert_queue: usize,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            ewma_alpha: 0.2,
            burst_factor: 5.0,
            burst_min_requests: 20,
            max_requests_per_window: None,
            mature_after_windows: 10,
            denied_storm: 20,
            on_velocity: Response::Throttle,
            on_new_network: Response::Alert,
            on_novelty: Response::Alert,
            on_denied_storm: Response::Throttle,
            downgrade_secs: 900,
            throttle_secs: 900,
            throttle_per_sec: 1,
            max_identities: 100_000,
            idle_secs: 7 * 24 * 3600,
            alert_webhook: None,
            alert_queue: 1024,
        }
    }
}

impl BehaviourConfig {
    fn response_to(&self, anomaly: Anomaly) -> Response {
        match anomaly {
            Anomaly::Velocity => self.on_velocity,
            Anomaly::NewNetwork => self.on_new_network,
            Anomaly::Novelty => self.on_novelty,
            Anomaly::DeniedStorm => self.on_denied_storm,
        }
    }
}

/// One request as the detectors see it; the route and method were already matched.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub identity: &'a str,
    pub jti: &'a str,
    /// Until when a quarantine of this token must be remembered (its expiry plus leeway).
    pub token_expires: i64,
    /// The route's position in the config, and its prefix for messages.
    pub route: usize,
    pub route_prefix: &'a str,
    pub method: &'a str,
    pub client_ip: IpAddr,
}

/// A restriction put in place by a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imposed {
    Downgrade { until: i64 },
    Throttle { until: i64, per_sec: u32 },
    Quarantine { jti: String, until: i64 },
}

/// An anomaly and what was done about it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub anomaly: Anomaly,
    pub response: Response,
    pub detail: String,
    pub imposed: Option<Imposed>,
}

/// What the restrictions in force say about this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The token is quarantined: refuse it as revoked.
    Quarantined,
    /// Only safe methods until `until`.
    ReadOnly {
        until: i64,
        cause: Anomaly,
    },
    Throttled {
        retry_after_secs: u64,
        cause: Anomaly,
    },
}

#[derive(Debug)]
pub struct Assessment {
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
}

/// A restriction as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestrictionView {
    pub identity: String,
    pub kind: &'static str,
    pub cause: Anomaly,
    pub since: i64,
    pub until: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_sec: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

mod state;
#[cfg(test)]
mod tests;

use state::{IdentityState, Restrictions};

/// Per-identity state for the whole gateway, in shards.
pub struct Behaviour {
    config: BehaviourConfig,
    shards: Vec<Mutex<HashMap<Box<str>, IdentityState>>>,
    per_shard: usize,
    /// Requests of identities not tracked because the table was full.
    untracked: AtomicU64,
}

impl Behaviour {
    pub fn new(config: BehaviourConfig) -> Self {
        Self {
            per_shard: (config.max_identities / SHARDS).max(1),
            config,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            untracked: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &BehaviourConfig {
        &self.config
    }

    fn shard(&self, identity: &str) -> std::sync::MutexGuard<'_, HashMap<Box<str>, IdentityState>> {
        let mut h = DefaultHasher::new();
        identity.hash(&mut h);
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        #[expect(
            clippy::indexing_slicing,
            reason = "`i` is below SHARDS, the length of `shards`"
        )]
        lock(&self.shards[i.min(SHARDS - 1)])
    }

    /// Runs `f` on the identity's state, creating it if there is room.
    fn with_state<R>(
        &self,
        identity: &str,
        now: i64,
        f: impl FnOnce(&mut IdentityState) -> R,
    ) -> Option<R> {
        let mut shard = self.shard(identity);
        if let Some(s) = shard.get_mut(identity) {
            return Some(f(s));
        }
        if shard.len() >= self.per_shard {
            // Full: this identity goes unobserved until the sweep makes room. Counted, so
            // the gap is visible (`/metrics`).
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let s = shard
            .entry(identity.into())
            .or_insert_with(|| IdentityState::new(now));
        Some(f(s))
    }

    /// Learns from a request whose route is known, reports anomalies, puts the configured
    /// responses in place, and says whether the restrictions in force let it through.
    pub fn observe(&self, o: &Observation<'_>, now: i64) -> Assessment {
        let cfg = &self.config;
        let safe = is_safe(o.method);
        let outcome = self.with_state(o.identity, now, |s| {
            s.roll(now, cfg);
            s.last_seen = now;
            let mut findings = Vec::new();
            // A quarantined token teaches nothing.
            if s.restrictions.quarantined.iter().any(|q| &*q.jti == o.jti) {
                return (s.verdict(o.jti, safe, now), findings);
            }
            s.count = s.count.saturating_add(1);
            let mature = s.is_mature(cfg);

            let mut found = |s: &mut IdentityState, anomaly: Anomaly, detail: String| {
                let response = cfg.response_to(anomaly);
                if response == Response::Off {
                    return;
                }
                let imposed = s.impose(anomaly, response, o.jti, o.token_expires, now, cfg);
                findings.push(Finding {
                    anomaly,
                    response,
                    detail,
                    imposed,
                });
            };

            if !s.velocity_flagged {
                let over_cap = cfg.max_requests_per_window.is_some_and(|cap| s.count > cap);
                let limit = cfg.burst_factor * s.baseline.max(1.0);
                let burst =
                    mature && s.count >= cfg.burst_min_requests && f64::from(s.count) > limit;
                if over_cap || burst {
                    s.velocity_flagged = true;
                    let detail = if over_cap {
                        format!(
                            "{} requests in this {} s window, over the cap of {}",
                            s.count,
                            cfg.window_secs,
                            cfg.max_requests_per_window.unwrap_or_default()
                        )
                    } else {
                        format!(
                            "{} requests in this {} s window against a baseline of {:.1}",
                            s.count, cfg.window_secs, s.baseline
                        )
                    };
                    found(s, Anomaly::Velocity, detail);
                }
            }

            let net = network_key(o.client_ip);
            if s.note_network(net, now) && mature {
                let detail = format!(
                    "request from {}, a network this identity has not used",
                    network_name(o.client_ip)
                );
                found(s, Anomaly::NewNetwork, detail);
            }

            if s.note_route(o.route, o.method) && mature {
                let detail = format!(
                    "first {} on route `{}` by this identity",
                    o.method, o.route_prefix
                );
                found(s, Anomaly::Novelty, detail);
            }

            (s.verdict(o.jti, safe, now), findings)
        });
        match outcome {
            Some((verdict, findings)) => Assessment { verdict, findings },
            None => Assessment {
                verdict: Verdict::Allow,
                findings: Vec::new(),
            },
        }
    }

    /// Counts a refusal that suggests probing (authorization, not back-pressure); reports a
    /// storm once per window.
    pub fn record_denial(
        &self,
        identity: &str,
        jti: &str,
        token_expires: i64,
        now: i64,
    ) -> Option<Finding> {
        let cfg = &self.config;
        self.with_state(identity, now, |s| {
            s.roll(now, cfg);
            s.last_seen = now;
            s.denied = s.denied.saturating_add(1);
            if s.storm_flagged || s.denied < cfg.denied_storm {
                return None;
            }
            s.storm_flagged = true;
            let response = cfg.on_denied_storm;
            if response == Response::Off {
                return None;
            }
            let imposed = s.impose(Anomaly::DeniedStorm, response, jti, token_expires, now, cfg);
            Some(Finding {
                anomaly: Anomaly::DeniedStorm,
                response,
                detail: format!(
                    "{} refused requests in this {} s window (storm threshold {})",
                    s.denied, cfg.window_secs, cfg.denied_storm
                ),
                imposed,
            })
        })
        .flatten()
    }

    /// Every restriction in force, identities in no particular order.
    pub fn restrictions(&self, now: i64) -> Vec<RestrictionView> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(shard);
            for (identity, s) in shard.iter_mut() {
                s.restrictions.expire(now);
                out.extend(s.views(identity));
            }
        }
        out
    }

    /// Lifts every restriction on `identity` (its quarantined tokens stay revoked at the
    /// authority); returns what was lifted.
    pub fn lift(&self, identity: &str, now: i64) -> Vec<RestrictionView> {
        let mut shard = self.shard(identity);
        let Some(s) = shard.get_mut(identity) else {
            return Vec::new();
        };
        s.restrictions.expire(now);
        let lifted = s.views(identity);
        s.restrictions = Restrictions::default();
        lifted
    }

    /// Forgets identities idle for `idle_secs` with nothing in force, and expired
    /// restrictions.
    pub fn sweep(&self, now: i64) {
        let idle = self.config.idle_secs;
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.retain(|_, s| {
                s.restrictions.expire(now);
                !(s.restrictions.is_empty() && now - s.last_seen > idle)
            });
        }
    }

    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    pub fn untracked_total(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }
}

/// GET, HEAD and OPTIONS: what a downgraded identity may still do.
pub fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

fn method_index(method: &str) -> usize {
    crate::config::METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(7)
}

/// The /24 (IPv4, also IPv4-mapped IPv6) or /48 (IPv6) an address belongs to, as one key;
/// the top bit tells the families apart.
fn network_key(ip: IpAddr) -> u64 {
    match canonical(ip) {
        IpAddr::V4(v4) => (1 << 63) | u64::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => u64::try_from(u128::from(v6) >> 80).unwrap_or(u64::MAX >> 1),
    }
}

fn network_name(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
