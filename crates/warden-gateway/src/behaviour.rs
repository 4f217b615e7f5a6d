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

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::lock;

const SHARDS: usize = 16;
/// Networks remembered per identity; past this the least recently used is forgotten.
const MAX_NETWORKS: usize = 32;
/// Quarantined tokens remembered per identity until their revocation arrives.
const MAX_QUARANTINED: usize = 16;
/// Idle windows folded into the baseline one by one at most; beyond, the baseline is zero
/// for any sensible `ewma_alpha`.
const MAX_IDLE_WINDOWS: i64 = 10_000;

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

#[derive(Debug, Clone)]
struct Timed {
    since: i64,
    until: i64,
    cause: Anomaly,
}

#[derive(Debug, Clone)]
struct Throttle {
    timed: Timed,
    per_sec: u32,
    /// The second being counted, and the requests let through in it.
    second: i64,
    used: u32,
}

#[derive(Debug, Clone)]
struct Quarantined {
    jti: Box<str>,
    timed: Timed,
}

#[derive(Debug, Default)]
struct Restrictions {
    read_only: Option<Timed>,
    throttle: Option<Throttle>,
    quarantined: Vec<Quarantined>,
}

impl Restrictions {
    fn is_empty(&self) -> bool {
        self.read_only.is_none() && self.throttle.is_none() && self.quarantined.is_empty()
    }

    fn expire(&mut self, now: i64) {
        if self.read_only.as_ref().is_some_and(|t| t.until <= now) {
            self.read_only = None;
        }
        if self.throttle.as_ref().is_some_and(|t| t.timed.until <= now) {
            self.throttle = None;
        }
        self.quarantined.retain(|q| q.timed.until > now);
    }
}

/// What one identity has done.
#[derive(Debug)]
struct IdentityState {
    window_start: i64,
    /// Requests and refusals in the current window.
    count: u32,
    denied: u32,
    /// Already reported in this window.
    velocity_flagged: bool,
    storm_flagged: bool,
    /// Requests per window, learned from windows that were not flagged.
    baseline: f64,
    has_baseline: bool,
    /// Complete windows since first seen.
    windows: u32,
    /// Network prefixes (see [`network_key`]) with when each was last used.
    networks: Vec<(u64, i64)>,
    /// One bit per (route, method).
    seen_routes: Vec<u64>,
    last_seen: i64,
    restrictions: Restrictions,
}

impl IdentityState {
    fn new(now: i64) -> Self {
        Self {
            window_start: now,
            count: 0,
            denied: 0,
            velocity_flagged: false,
            storm_flagged: false,
            baseline: 0.0,
            has_baseline: false,
            windows: 0,
            networks: Vec::new(),
            seen_routes: Vec::new(),
            last_seen: now,
            restrictions: Restrictions::default(),
        }
    }

    /// Closes the windows that ended before `now`, folding them into the baseline.
    fn roll(&mut self, now: i64, cfg: &BehaviourConfig) {
        let elapsed = (now - self.window_start).div_euclid(cfg.window_secs);
        if elapsed <= 0 {
            return;
        }
        let a = cfg.ewma_alpha;
        // A flagged window is not learned from: an attack must not become the baseline.
        if !self.velocity_flagged {
            let count = f64::from(self.count);
            self.baseline = if self.has_baseline {
                a * count + (1.0 - a) * self.baseline
            } else {
                count
            };
            self.has_baseline = true;
        }
        let idle = (elapsed - 1).min(MAX_IDLE_WINDOWS);
        if idle > 0 && self.has_baseline {
            self.baseline *= (1.0 - a).powi(i32::try_from(idle).unwrap_or(i32::MAX));
        }
        let closed = u32::try_from(elapsed).unwrap_or(u32::MAX);
        self.windows = self.windows.saturating_add(closed);
        self.window_start += elapsed.saturating_mul(cfg.window_secs);
        self.count = 0;
        self.denied = 0;
        self.velocity_flagged = false;
        self.storm_flagged = false;
    }

    fn is_mature(&self, cfg: &BehaviourConfig) -> bool {
        self.windows >= cfg.mature_after_windows
    }

    /// Remembers the network; true if it was new.
    fn note_network(&mut self, key: u64, now: i64) -> bool {
        if let Some(n) = self.networks.iter_mut().find(|(k, _)| *k == key) {
            n.1 = now;
            return false;
        }
        if self.networks.len() >= MAX_NETWORKS {
            if let Some(oldest) = self
                .networks
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(i, _)| i)
            {
                self.networks.swap_remove(oldest);
            }
        }
        self.networks.push((key, now));
        true
    }

    /// Remembers the route and method; true if they were new.
    fn note_route(&mut self, route: usize, method: &str) -> bool {
        let bit = route.saturating_mul(8).saturating_add(method_index(method));
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.seen_routes.len() <= word {
            self.seen_routes.resize(word + 1, 0);
        }
        match self.seen_routes.get_mut(word) {
            Some(w) if *w & mask == 0 => {
                *w |= mask;
                true
            }
            _ => false,
        }
    }

    /// Puts the configured response to `anomaly` in place.
    fn impose(
        &mut self,
        anomaly: Anomaly,
        response: Response,
        jti: &str,
        token_expires: i64,
        now: i64,
        cfg: &BehaviourConfig,
    ) -> Option<Imposed> {
        let r = &mut self.restrictions;
        match response {
            Response::Off | Response::Alert => None,
            Response::Downgrade => {
                let until = now + cfg.downgrade_secs;
                let t = r.read_only.get_or_insert(Timed {
                    since: now,
                    until,
                    cause: anomaly,
                });
                t.until = t.until.max(until);
                Some(Imposed::Downgrade { until: t.until })
            }
            Response::Throttle => {
                let until = now + cfg.throttle_secs;
                // The second the anomaly happened in is already used up: the burst stops at
                // the request that crossed the line.
                let t = r.throttle.get_or_insert(Throttle {
                    timed: Timed {
                        since: now,
                        until,
                        cause: anomaly,
                    },
                    per_sec: cfg.throttle_per_sec,
                    second: now,
                    used: cfg.throttle_per_sec,
                });
                t.timed.until = t.timed.until.max(until);
                Some(Imposed::Throttle {
                    until: t.timed.until,
                    per_sec: t.per_sec,
                })
            }
            Response::Quarantine => {
                if !r.quarantined.iter().any(|q| &*q.jti == jti) {
                    if r.quarantined.len() >= MAX_QUARANTINED {
                        // The one closest to expiry goes; its revocation is on its way.
                        if let Some(i) = r
                            .quarantined
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, q)| q.timed.until)
                            .map(|(i, _)| i)
                        {
                            r.quarantined.swap_remove(i);
                        }
                    }
                    r.quarantined.push(Quarantined {
                        jti: jti.into(),
                        timed: Timed {
                            since: now,
                            until: token_expires,
                            cause: anomaly,
                        },
                    });
                }
                Some(Imposed::Quarantine {
                    jti: jti.to_owned(),
                    until: token_expires,
                })
            }
        }
    }

    /// What the restrictions in force say about a request by token `jti`.
    fn verdict(&mut self, jti: &str, safe: bool, now: i64) -> Verdict {
        let r = &mut self.restrictions;
        if r.is_empty() {
            return Verdict::Allow;
        }
        r.expire(now);
        if r.quarantined.iter().any(|q| &*q.jti == jti) {
            return Verdict::Quarantined;
        }
        if let Some(t) = &r.read_only {
            if !safe {
                return Verdict::ReadOnly {
                    until: t.until,
                    cause: t.cause,
                };
            }
        }
        if let Some(t) = &mut r.throttle {
            if t.second != now {
                t.second = now;
                t.used = 0;
            }
            if t.used >= t.per_sec {
                return Verdict::Throttled {
                    retry_after_secs: 1,
                    cause: t.timed.cause,
                };
            }
            t.used += 1;
        }
        Verdict::Allow
    }

    fn views(&self, identity: &str) -> Vec<RestrictionView> {
        let r = &self.restrictions;
        let view = |kind, t: &Timed| RestrictionView {
            identity: identity.to_owned(),
            kind,
            cause: t.cause,
            since: t.since,
            until: t.until,
            per_sec: None,
            jti: None,
        };
        let mut out = Vec::new();
        if let Some(t) = &r.read_only {
            out.push(view("downgrade", t));
        }
        if let Some(t) = &r.throttle {
            out.push(RestrictionView {
                per_sec: Some(t.per_sec),
                ..view("throttle", &t.timed)
            });
        }
        for q in &r.quarantined {
            out.push(RestrictionView {
                jti: Some(q.jti.to_string()),
                ..view("quarantine", &q.timed)
            });
        }
        out
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_900_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    fn obs<'a>(method: &'a str, route: usize, client: &'a str) -> Observation<'a> {
        Observation {
            identity: "agt_A",
            jti: "j1",
            token_expires: T + 100_000,
            route,
            route_prefix: "/crm/",
            method,
            client_ip: ip(client),
        }
    }

    fn cfg() -> BehaviourConfig {
        BehaviourConfig {
            burst_factor: 4.0,
            burst_min_requests: 10,
            mature_after_windows: 5,
            denied_storm: 5,
            on_velocity: Response::Throttle,
            on_new_network: Response::Downgrade,
            on_novelty: Response::Alert,
            on_denied_storm: Response::Quarantine,
            ..BehaviourConfig::default()
        }
    }

    /// `windows` windows of `per_window` GETs on route 0 from one network.
    fn steady(b: &Behaviour, windows: i64, per_window: u32) -> i64 {
        let mut now = T;
        for _ in 0..windows {
            for _ in 0..per_window {
                let a = b.observe(&obs("GET", 0, "203.0.113.7"), now);
                assert_eq!(a.verdict, Verdict::Allow);
                assert!(a.findings.is_empty(), "{:?}", a.findings);
            }
            now += 60;
        }
        now
    }

    #[test]
    fn a_burst_over_the_learned_baseline_throttles_from_the_crossing_request() {
        let b = Behaviour::new(cfg());
        let now = steady(&b, 8, 3);
        // Baseline 3: the 13th request is more than 4 × 3.
        for i in 1..=12 {
            let a = b.observe(&obs("GET", 0, "203.0.113.7"), now);
            assert_eq!((i, a.verdict), (i, Verdict::Allow));
        }
        let a = b.observe(&obs("GET", 0, "203.0.113.7"), now);
        assert_eq!(a.findings.len(), 1);
        assert_eq!(a.findings[0].anomaly, Anomaly::Velocity);
        assert!(matches!(a.verdict, Verdict::Throttled { .. }));
        // Next second: one request per second.
        let a = b.observe(&obs("GET", 0, "203.0.113.7"), now + 1);
        assert_eq!(a.verdict, Verdict::Allow);
        assert!(a.findings.is_empty(), "reported once per window");
        let a = b.observe(&obs("GET", 0, "203.0.113.7"), now + 1);
        assert!(matches!(a.verdict, Verdict::Throttled { .. }));
        assert_eq!(b.restrictions(now + 1).len(), 1);
        assert_eq!(b.lift("agt_A", now + 1).len(), 1);
        assert_eq!(
            b.observe(&obs("GET", 0, "203.0.113.7"), now + 1).verdict,
            Verdict::Allow
        );
        assert!(b.restrictions(now + 1).is_empty());
    }

    #[test]
    fn an_immature_identity_is_only_held_to_the_absolute_cap() {
        let b = Behaviour::new(BehaviourConfig {
            max_requests_per_window: Some(50),
            ..cfg()
        });
        for _ in 0..50 {
            assert!(b
                .observe(&obs("GET", 0, "203.0.113.7"), T)
                .findings
                .is_empty());
        }
        let a = b.observe(&obs("GET", 0, "203.0.113.7"), T);
        assert_eq!(a.findings[0].anomaly, Anomaly::Velocity);
        assert!(a.findings[0].detail.contains("cap of 50"));
    }

    #[test]
    fn a_flagged_window_does_not_become_the_baseline() {
        let b = Behaviour::new(BehaviourConfig {
            on_velocity: Response::Alert,
            ..cfg()
        });
        let mut now = steady(&b, 8, 3);
        for _ in 0..200 {
            b.observe(&obs("GET", 0, "203.0.113.7"), now);
        }
        now += 60;
        // Still judged against a baseline of 3, not 200.
        let found: usize = (0..13)
            .map(|_| b.observe(&obs("GET", 0, "203.0.113.7"), now).findings.len())
            .sum();
        assert_eq!(found, 1);
    }

    #[test]
    fn idle_windows_decay_the_baseline() {
        let mut s = IdentityState::new(T);
        let c = cfg();
        s.count = 10;
        s.roll(T + 60, &c);
        assert!((s.baseline - 10.0).abs() < 1e-9);
        s.count = 0;
        s.roll(T + 60 + 60 * 3, &c);
        // One empty window folded, two idle ones decayed: 10 × 0.8³.
        assert!(
            (s.baseline - 10.0 * 0.8f64.powi(3)).abs() < 1e-9,
            "{}",
            s.baseline
        );
        assert_eq!(s.windows, 4);
    }

    #[test]
    fn a_new_network_for_a_mature_identity_triggers_its_response() {
        let b = Behaviour::new(cfg());
        // Learned while immature.
        assert!(b
            .observe(&obs("POST", 0, "203.0.113.7"), T)
            .findings
            .is_empty());
        let now = steady(&b, 6, 2);
        // Same /24: nothing.
        assert!(b
            .observe(&obs("GET", 0, "203.0.113.200"), now)
            .findings
            .is_empty());
        let a = b.observe(&obs("GET", 0, "198.51.100.9"), now);
        assert_eq!(a.findings.len(), 1);
        assert_eq!(a.findings[0].anomaly, Anomaly::NewNetwork);
        assert!(a.findings[0].detail.contains("198.51.100.0/24"));
        assert!(matches!(
            a.findings[0].imposed,
            Some(Imposed::Downgrade { .. })
        ));
        assert_eq!(a.verdict, Verdict::Allow, "GET is safe");
        let a = b.observe(&obs("POST", 0, "198.51.100.9"), now);
        assert!(matches!(a.verdict, Verdict::ReadOnly { .. }));
        assert!(a.findings.is_empty(), "the network is known now");
        // Downgrades end on their own.
        let later = now + 901;
        assert_eq!(
            b.observe(&obs("POST", 0, "198.51.100.9"), later).verdict,
            Verdict::Allow
        );
    }

    #[test]
    fn network_keys_are_slash_24_and_slash_48() {
        assert_eq!(network_key(ip("10.1.2.3")), network_key(ip("10.1.2.250")));
        assert_ne!(network_key(ip("10.1.2.3")), network_key(ip("10.1.3.3")));
        assert_eq!(
            network_key(ip("::ffff:10.1.2.3")),
            network_key(ip("10.1.2.9"))
        );
        assert_eq!(
            network_key(ip("2001:db8:1::1")),
            network_key(ip("2001:db8:1:ffff::2"))
        );
        assert_ne!(
            network_key(ip("2001:db8:1::1")),
            network_key(ip("2001:db8:2::1"))
        );
        assert_eq!(network_name(ip("2001:db8:1::1")), "2001:db8:1::/48");
    }

    #[test]
    fn novelty_counts_only_once_the_baseline_is_mature() {
        let b = Behaviour::new(cfg());
        // While learning, new routes are simply learned.
        assert!(b
            .observe(&obs("POST", 1, "203.0.113.7"), T)
            .findings
            .is_empty());
        let now = steady(&b, 6, 2);
        assert!(b
            .observe(&obs("POST", 1, "203.0.113.7"), now)
            .findings
            .is_empty());
        let a = b.observe(&obs("DELETE", 1, "203.0.113.7"), now);
        assert_eq!(a.findings[0].anomaly, Anomaly::Novelty);
        assert_eq!(a.findings[0].imposed, None, "alert only");
        assert_eq!(a.verdict, Verdict::Allow);
        assert!(b
            .observe(&obs("DELETE", 1, "203.0.113.7"), now)
            .findings
            .is_empty());
    }

    #[test]
    fn a_denied_storm_quarantines_the_token_and_it_is_refused_locally() {
        let b = Behaviour::new(cfg());
        for _ in 0..4 {
            assert!(b.record_denial("agt_A", "j1", T + 500, T).is_none());
        }
        let f = b.record_denial("agt_A", "j1", T + 500, T);
        let f = f.unwrap_or_else(|| unreachable!("storm expected"));
        assert_eq!(f.anomaly, Anomaly::DeniedStorm);
        assert_eq!(
            f.imposed,
            Some(Imposed::Quarantine {
                jti: "j1".into(),
                until: T + 500
            })
        );
        assert!(b.record_denial("agt_A", "j1", T + 500, T).is_none(), "once");
        assert_eq!(
            b.observe(&obs("GET", 0, "203.0.113.7"), T).verdict,
            Verdict::Quarantined
        );
        // Another token of the same identity is not quarantined.
        let other = Observation {
            jti: "j2",
            ..obs("GET", 0, "203.0.113.7")
        };
        assert_eq!(b.observe(&other, T).verdict, Verdict::Allow);
        // Past the token's expiry the entry is forgotten.
        assert!(b.restrictions(T + 500).is_empty());
    }

    #[test]
    fn off_disables_a_detector() {
        let b = Behaviour::new(BehaviourConfig {
            on_denied_storm: Response::Off,
            ..cfg()
        });
        for _ in 0..50 {
            assert!(b.record_denial("agt_A", "j1", T + 500, T).is_none());
        }
    }

    #[test]
    fn memory_is_bounded_and_idle_identities_are_swept() {
        let b = Behaviour::new(BehaviourConfig {
            max_identities: 16,
            idle_secs: 100,
            ..cfg()
        });
        let names: Vec<String> = (0..200).map(|i| format!("agt_{i}")).collect();
        for n in &names {
            b.observe(
                &Observation {
                    identity: n,
                    ..obs("GET", 0, "203.0.113.7")
                },
                T,
            );
        }
        assert!(b.tracked() <= 16, "{}", b.tracked());
        assert!(b.untracked_total() > 0);
        // A restricted identity survives the sweep; idle ones do not.
        let tracked = names
            .iter()
            .find(|n| b.shard(n).contains_key(n.as_str()))
            .cloned()
            .unwrap_or_default();
        for _ in 0..5 {
            b.record_denial(&tracked, "j1", T + 10_000, T);
        }
        b.sweep(T + 101);
        assert_eq!(b.tracked(), 1);
        assert_eq!(b.restrictions(T + 101).len(), 1);
    }
}
