//! Budgets of failed sign-ins, per person named (whether or not they exist, so the budget
//! says nothing of who does) and per address. A spent budget locks the sign-in out until it
//! refills, before any code is checked; every failure and every lockout is audited.

use std::net::IpAddr;
use std::time::Instant;

use crate::auth_throttle::{address_key, retry_after, Budget};
use crate::config::SignInBudgets;

pub struct SignInThrottle {
    people: Budget<String>,
    addresses: Budget<IpAddr>,
}

impl SignInThrottle {
    pub fn new(budgets: &SignInBudgets) -> Self {
        Self {
            people: Budget::new(budgets.per_person, budgets.max_tracked),
            addresses: Budget::new(budgets.per_address, budgets.max_tracked),
        }
    }

    /// Seconds until a sign-in as `person` from `peer` may be tried again, if it may not now.
    pub fn locked(&self, person: &str, peer: Option<IpAddr>) -> Option<u32> {
        let now = Instant::now();
        peer.and_then(|p| self.addresses.blocked(&address_key(p), now))
            .or_else(|| self.people.blocked(person, now))
            .map(retry_after)
    }

    /// Counts a failed sign-in; the seconds of the lockout it started, if it spent a budget.
    pub fn failed(&self, person: &str, peer: Option<IpAddr>) -> Option<u32> {
        let now = Instant::now();
        let address = peer.and_then(|p| self.addresses.fail(address_key(p), now));
        let person = self.people.fail(person.to_owned(), now);
        address.or(person).map(retry_after)
    }

    pub fn prune(&self) {
        let now = Instant::now();
        self.people.prune(now);
        self.addresses.prune(now);
    }
}
