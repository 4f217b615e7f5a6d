//! What the gateway remembers per identity — the learned baseline (an EWMA of requests per
//! window, networks, routes and methods) and the restrictions in force — and how a finding
//! becomes a restriction and a restriction a verdict. Pure: `now` is a parameter.

use super::*;

/// Networks remembered per identity; past this the least recently used is forgotten.
pub(super) const MAX_NETWORKS: usize = 32;
/// Quarantined tokens remembered per identity until their revocation arrives.
pub(super) const MAX_QUARANTINED: usize = 16;
/// Idle windows folded into the baseline one by one at most; beyond, the baseline is zero
/// for any sensible `ewma_alpha`.
pub(super) const MAX_IDLE_WINDOWS: i64 = 10_000;

#[derive(Debug, Clone)]
pub(super) struct Timed {
    pub(super) since: i64,
    pub(super) until: i64,
    pub(super) cause: Anomaly,
}

#[derive(Debug, Clone)]
pub(super) struct Throttle {
    pub(super) timed: Timed,
    pub(super) per_sec: u32,
    /// The second being counted, and the requests let through in it.
    pub(super) second: i64,
    pub(super) used: u32,
}

#[derive(Debug, Clone)]
pub(super) struct Quarantined {
    pub(super) jti: Box<str>,
    pub(super) timed: Timed,
}

#[derive(Debug, Default)]
pub(super) struct Restrictions {
    pub(super) read_only: Option<Timed>,
    pub(super) throttle: Option<Throttle>,
    pub(super) quarantined: Vec<Quarantined>,
}

impl Restrictions {
    pub(super) fn is_empty(&self) -> bool {
        self.read_only.is_none() && self.throttle.is_none() && self.quarantined.is_empty()
    }

    pub(super) fn expire(&mut self, now: i64) {
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
pub(super) struct IdentityState {
    pub(super) window_start: i64,
    /// Requests and refusals in the current window.
    pub(super) count: u32,
    pub(super) denied: u32,
    /// Already reported in this window.
    pub(super) velocity_flagged: bool,
    pub(super) storm_flagged: bool,
    /// Requests per window, learned from windows that were not flagged.
    pub(super) baseline: f64,
    pub(super) has_baseline: bool,
    /// Complete windows since first seen.
    pub(super) windows: u32,
    /// Network prefixes (see [`network_key`]) with when each was last used.
    pub(super) networks: Vec<(u64, i64)>,
    /// One bit per (route, method).
    pub(super) seen_routes: Vec<u64>,
    pub(super) last_seen: i64,
    pub(super) restrictions: Restrictions,
}

impl IdentityState {
    pub(super) fn new(now: i64) -> Self {
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
    pub(super) fn roll(&mut self, now: i64, cfg: &BehaviourConfig) {
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

    pub(super) fn is_mature(&self, cfg: &BehaviourConfig) -> bool {
        self.windows >= cfg.mature_after_windows
    }

    /// Remembers the network; true if it was new.
    pub(super) fn note_network(&mut self, key: u64, now: i64) -> bool {
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
    pub(super) fn note_route(&mut self, route: usize, method: &str) -> bool {
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
    pub(super) fn impose(
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
    pub(super) fn verdict(&mut self, jti: &str, safe: bool, now: i64) -> Verdict {
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

    pub(super) fn views(&self, identity: &str) -> Vec<RestrictionView> {
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
