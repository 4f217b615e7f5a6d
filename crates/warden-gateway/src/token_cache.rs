//! Tokens already verified, keyed by their exact bytes. A hit skips the signature check and
//! claim decoding only; expiry, the key still being published, and every per-request check
//! (route, scope, network, policy, rate) run again, so a hit never allows more than a fresh
//! verification would.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};

use std::net::IpAddr;

use ipnet::IpNet;
use warden_core::{AccessClaims, ScopeSet};
use warden_policy::{Decision, PolicySet};

const SHARDS: usize = 16;

/// Internal tokens minted for one external token, by (route prefix, method): the token and
/// its expiry.
pub type MintedTokens = HashMap<(String, String), (Arc<str>, i64)>;

/// Policy decisions made for one token, by (route prefix, method, path, client address):
/// the set that decided, its time bucket, and the decision. Everything else a policy sees is
/// fixed by the token.
pub type CachedDecisions =
    HashMap<(String, String, String, IpAddr), (Arc<PolicySet>, i64, Decision)>;

/// Most decisions kept per token.
pub const MAX_CACHED_DECISIONS: usize = 64;

/// What verification established about a token, parsed once.
#[derive(Debug)]
pub struct Verified {
    pub kid: String,
    /// Who the behaviour detectors learn about: `sub`, or `sub~actor` for a delegated token,
    /// so an agent acting for a user has a baseline of its own.
    pub identity: String,
    pub claims: AccessClaims,
    pub scopes: ScopeSet,
    /// `allowed_ips`, parsed; `None` when the token has no restriction.
    pub allowed_ips: Option<Vec<IpNet>>,
    /// The innermost acting party and the chain's length.
    pub actor: Option<String>,
    pub delegation_depth: u32,
    pub internal: Mutex<MintedTokens>,
    pub decisions: Mutex<CachedDecisions>,
    /// When a request with this token was last allowed (unix seconds; 0: never), reported
    /// to the authority for access reviews.
    pub last_used: std::sync::atomic::AtomicI64,
}

pub struct TokenCache {
    shards: Vec<Mutex<HashMap<Box<str>, Arc<Verified>>>>,
    per_shard: usize,
}

impl TokenCache {
    pub fn new(entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (entries / SHARDS).max(1),
        }
    }

    fn shard(&self, token: &str) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<Verified>>> {
        let mut h = DefaultHasher::new();
        token.hash(&mut h);
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        let m = &self.shards[i.min(SHARDS - 1)];
        crate::lock(m)
    }

    pub fn get(&self, token: &str) -> Option<Arc<Verified>> {
        self.shard(token).get(token).cloned()
    }

    /// Adds a verified token. A full shard drops an arbitrary entry (its holder pays one
    /// more verification); expired entries are swept by [`TokenCache::sweep`], never by a
    /// scan on this path.
    pub fn insert(&self, token: &str, verified: Arc<Verified>) {
        let mut shard = self.shard(token);
        if shard.len() >= self.per_shard {
            if let Some(k) = shard.keys().next().cloned() {
                shard.remove(&k);
            }
        }
        shard.insert(token.into(), verified);
    }

    /// Drops entries that expired before `now`, one shard at a time.
    pub fn sweep(&self, now: i64) {
        for s in &self.shards {
            let mut shard = crate::lock(s);
            shard.retain(|_, v| v.claims.exp >= now);
        }
    }

    pub fn remove(&self, token: &str) {
        self.shard(token).remove(token);
    }

    /// Visits every cached token (for periodic reports; holds one shard's lock at a time).
    pub fn for_each(&self, mut f: impl FnMut(&Verified)) {
        for s in &self.shards {
            for v in crate::lock(s).values() {
                f(v);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| crate::lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
