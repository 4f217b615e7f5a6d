//! Budgets of failed client authentication at the token endpoint: per client id and per
//! client address, GCRA through `governor`. Only failures spend a budget; once one is spent,
//! requests naming that client, or coming from that address, are answered `429` before any
//! secret or assertion is checked, until the budget has refilled by one failure.
//!
//! governor has no way to ask whether a key is over budget without spending from it, so a
//! failure that finds its budget spent marks its key blocked until the next failure would be
//! let through; the check before authentication reads only those marks. Memory is bounded
//! both ways: only ids of clients that exist are counted (an unknown id is a failure of the
//! address alone), an IPv6 address counts by its /64, idle keys are dropped, and each map
//! holds at most `max_tracked` keys.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use warden_core::PrincipalId;

use crate::config::{ClientAuthBudgets, FailureBudget};
use crate::error::OAuthError;

/// Both budgets of one authority.
pub struct AuthThrottle {
    clients: Budget<String>,
    addresses: Budget<IpAddr>,
}

impl AuthThrottle {
    pub fn new(budgets: &ClientAuthBudgets) -> Self {
        Self {
            clients: Budget::new(budgets.per_client, budgets.max_tracked),
            addresses: Budget::new(budgets.per_address, budgets.max_tracked),
        }
    }

    /// Before any credential is checked: `429` if the address, or the client the request
    /// claims to be, has spent its budget.
    pub fn check(&self, claimed: Option<&str>, peer: Option<IpAddr>) -> Result<(), OAuthError> {
        let now = Instant::now();
        if let Some(wait) = peer.and_then(|p| self.addresses.blocked(&address_key(p), now)) {
            return Err(from_address(wait));
        }
        if let Some(wait) = claimed.and_then(|c| self.clients.blocked(c, now)) {
            return Err(as_client(wait));
        }
        Ok(())
    }

    /// A failed authentication from `peer`, as `client` when the client exists: `429` if it
    /// spent the last of a budget.
    pub fn failed(
        &self,
        client: Option<&PrincipalId>,
        peer: Option<IpAddr>,
    ) -> Result<(), OAuthError> {
        let now = Instant::now();
        let address = peer.and_then(|p| self.addresses.fail(address_key(p), now));
        let client = client.and_then(|c| self.clients.fail(c.to_string(), now));
        match (address, client) {
            (Some(wait), _) => Err(from_address(wait)),
            (None, Some(wait)) => Err(as_client(wait)),
            (None, None) => Ok(()),
        }
    }

    /// Forgets keys whose budgets are full again and blocks that have ended.
    pub fn prune(&self) {
        let now = Instant::now();
        self.clients.prune(now);
        self.addresses.prune(now);
    }
}

fn from_address(wait: Duration) -> OAuthError {
    let secs = retry_after(wait);
    OAuthError::throttled(
        format!("too many failed client authentications from this address; retry in {secs} s"),
        secs,
    )
}

fn as_client(wait: Duration) -> OAuthError {
    let secs = retry_after(wait);
    OAuthError::throttled(
        format!("too many failed authentications as this client; retry in {secs} s"),
        secs,
    )
}

pub(crate) fn retry_after(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX).max(1)
}

/// An IPv4 address as it is (an IPv4-mapped IPv6 one too); an IPv6 address by its /64, the
/// block one host is usually given.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// One kind of budget: the failures counted per key, and the keys blocked until when.
pub(crate) struct Budget<K: Hash + Eq + Clone> {
    quota: Quota,
    max_tracked: usize,
    /// Replaced by a fresh one when it tracks `max_tracked` keys that are all busy.
    failures: RwLock<DefaultKeyedRateLimiter<K>>,
    blocked: Mutex<HashMap<K, Instant>>,
    /// When the failure counts were last swept, so a flood sweeps at most once a second.
    swept: Mutex<Instant>,
}

impl<K: Hash + Eq + Clone> Budget<K> {
    pub(crate) fn new(budget: FailureBudget, max_tracked: usize) -> Self {
        let one = NonZeroU32::MIN;
        let quota = Quota::per_minute(NonZeroU32::new(budget.per_minute).unwrap_or(one))
            .allow_burst(NonZeroU32::new(budget.burst).unwrap_or(one));
        Self {
            quota,
            max_tracked,
            failures: RwLock::new(RateLimiter::keyed(quota)),
            blocked: Mutex::new(HashMap::new()),
            swept: Mutex::new(Instant::now()),
        }
    }

    /// How long `key` stays blocked, if it is.
    pub(crate) fn blocked<Q>(&self, key: &Q, now: Instant) -> Option<Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut blocked = lock(&self.blocked);
        let until = *blocked.get(key)?;
        if until > now {
            return Some(until - now);
        }
        blocked.remove(key);
        None
    }

    /// Counts a failure of `key`; how long it is blocked if that spent its budget.
    pub(crate) fn fail(&self, key: K, now: Instant) -> Option<Duration> {
        let (outcome, tracked) = {
            let failures = read(&self.failures);
            (failures.check_key(&key), failures.len())
        };
        if tracked > self.max_tracked {
            self.sweep(now);
        }
        let not_until = outcome.err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut blocked = lock(&self.blocked);
        if blocked.len() >= self.max_tracked {
            blocked.retain(|_, until| *until > now);
        }
        // With every slot held by a live block, this key's failures are still counted (its
        // next ones are refused after the check); it is only not refused up front.
        if blocked.len() < self.max_tracked {
            blocked.insert(key, now.checked_add(wait).unwrap_or(now));
        }
        Some(wait)
    }

    /// Drops failure counts that have refilled; if the limiter is still over its bound,
    /// starts it afresh, at most once a second.
    fn sweep(&self, now: Instant) {
        {
            let mut swept = lock(&self.swept);
            if now.saturating_duration_since(*swept) < Duration::from_secs(1) {
                return;
            }
            *swept = now;
        }
        let tracked = {
            let failures = read(&self.failures);
            failures.retain_recent();
            failures.len()
        };
        if tracked > self.max_tracked {
            tracing::warn!(
                tracked,
                "failed client authentications from more keys than tracked at once; their counts start afresh"
            );
            *write(&self.failures) = RateLimiter::keyed(self.quota);
        }
    }

    pub(crate) fn prune(&self, now: Instant) {
        lock(&self.blocked).retain(|_, until| *until > now);
        let failures = read(&self.failures);
        failures.retain_recent();
        failures.shrink_to_fit();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn budgets(burst: u32, max_tracked: usize) -> ClientAuthBudgets {
        let b = FailureBudget {
            burst,
            per_minute: 1,
        };
        ClientAuthBudgets {
            per_client: b,
            per_address: b,
            max_tracked,
        }
    }

    #[test]
    fn past_its_burst_an_address_is_refused_up_front_and_others_are_not() {
        let t = AuthThrottle::new(&budgets(2, 100));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(t.failed(None, Some(a)).is_ok());
        assert!(t.failed(None, Some(a)).is_ok());
        assert!(t.check(None, Some(a)).is_ok());
        let e = t.failed(None, Some(a)).unwrap_err();
        assert_eq!(e.status.as_u16(), 429);
        assert!(e.retry_after.is_some_and(|s| s >= 1));
        assert!(t.check(Some("agt_x"), Some(a)).is_err());
        assert!(t.check(Some("agt_x"), Some(b)).is_ok());
        assert!(t.check(None, None).is_ok());
    }

    #[test]
    fn a_client_is_blocked_across_addresses() {
        let t = AuthThrottle::new(&budgets(1, 100));
        let id = PrincipalId::parse("agt_AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        assert!(t.failed(Some(&id), Some(a)).is_ok());
        assert!(t.failed(Some(&id), Some(b)).is_err());
        let e = t.check(Some(id.as_str()), Some(c)).unwrap_err();
        assert!(
            e.description.contains("as this client"),
            "{}",
            e.description
        );
        assert!(t.check(Some("agt_BBBBBBBBBBBBBBBBBBBBBB"), Some(c)).is_ok());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let one: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let same: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(one.into()), address_key(same.into()));
        assert_ne!(address_key(one.into()), address_key(other.into()));
        let mapped: Ipv6Addr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            address_key(mapped.into()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_flood_of_keys_stays_within_its_bound() {
        let t = AuthThrottle::new(&budgets(1, 50));
        for i in 0..2_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = t.failed(None, Some(ip));
            let _ = t.failed(None, Some(ip));
        }
        assert!(lock(&t.addresses.blocked).len() <= 50);
        // Swept at most once a second: the bound holds up to one second's worth of keys.
        t.addresses.sweep(Instant::now() + Duration::from_secs(2));
        assert!(read(&t.addresses.failures).len() <= 50);
    }
}
