//! A bounded set of one-time values (DPoP proof `jti`s, single-use token `jti`s), each kept
//! until the instant after which it could no longer be accepted anyway.

use std::collections::{BTreeSet, HashMap};

use crate::crypto::sha256;

/// Values are remembered by a 128-bit digest: memory per entry stays fixed however long the
/// presented value, and a collision needs 2^64 work.
type Key = [u8; 16];

fn key_of(value: &str) -> Key {
    let digest = sha256(value.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&digest[..16]);
    k
}

/// What [`ReplayCache::first_use`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUse {
    /// Not seen before; now remembered.
    Yes,
    /// Seen before: a replay.
    Replay,
    /// The cache is at capacity with values that are all still live. Forgetting one would let
    /// it be replayed, so the caller must refuse.
    Full,
}

#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    expiry: HashMap<Key, i64>,
    /// (expires_at, value), for pruning in expiry order.
    by_expiry: BTreeSet<(i64, Key)>,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            expiry: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Records `value` as used until `expires_at` unless it was already used.
    pub fn first_use(&mut self, value: &str, expires_at: i64, now: i64) -> FirstUse {
        let value = key_of(value);
        if let Some(&seen_until) = self.expiry.get(&value) {
            if seen_until >= now {
                return FirstUse::Replay;
            }
        }
        if self.expiry.len() >= self.capacity {
            self.prune(now);
            if self.expiry.len() >= self.capacity {
                return FirstUse::Full;
            }
        }
        if let Some(old) = self.expiry.insert(value, expires_at) {
            self.by_expiry.remove(&(old, value));
        }
        self.by_expiry.insert((expires_at, value));
        FirstUse::Yes
    }

    /// Forgets values that expired before `now`.
    pub fn prune(&mut self, now: i64) {
        while let Some((at, _)) = self.by_expiry.first() {
            if *at >= now {
                break;
            }
            if let Some((_, value)) = self.by_expiry.pop_first() {
                self.expiry.remove(&value);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_is_a_replay_until_expiry() {
        let mut c = ReplayCache::new(10);
        assert_eq!(c.first_use("a", 100, 0), FirstUse::Yes);
        assert_eq!(c.first_use("a", 100, 50), FirstUse::Replay);
        assert_eq!(c.first_use("a", 100, 100), FirstUse::Replay);
        assert_eq!(c.first_use("a", 300, 101), FirstUse::Yes);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn full_of_live_values_refuses_rather_than_forgets() {
        let mut c = ReplayCache::new(2);
        assert_eq!(c.first_use("a", 100, 0), FirstUse::Yes);
        assert_eq!(c.first_use("b", 200, 0), FirstUse::Yes);
        assert_eq!(c.first_use("c", 200, 50), FirstUse::Full);
        assert_eq!(c.first_use("a", 100, 50), FirstUse::Replay);
        // Once `a` expires there is room again.
        assert_eq!(c.first_use("c", 200, 150), FirstUse::Yes);
        assert_eq!(c.first_use("b", 200, 150), FirstUse::Replay);
    }
}
