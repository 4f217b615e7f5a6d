//! Tokens already verified, keyed by their exact bytes. A hit skips the signature check and
//! claim decoding only; expiry, the key still being published, and every per-request check
//! (route, scope, network, policy, rate) run again, so a hit never allows more than a fresh
//! verification would.
//!
//! What depends only on who a token speaks for — its policy decisions and the internal
//! tokens minted from it — is kept per [`Identity`]: every claim either can see, fingerprinted.
//! Agents that fetch a new token every few minutes (or every request) then pay the signature
//! check alone, not Cedar and a signature of their own as well.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher as _};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::net::IpAddr;

use sha2::{Digest as _, Sha256};
use warden_core::{AccessClaims, PrincipalId, VerifiedAccess};
use warden_policy::{Decision, PolicySet};

const SHARDS: usize = 16;

/// Internal tokens minted for one identity, by (route index, method index in
/// [`crate::config::METHODS`]): `Bearer <token>` as a header value, and its expiry.
pub type MintedTokens = HashMap<(usize, usize), (hyper::header::HeaderValue, i64)>;

/// Policy decisions made for one identity, by (route index, method index, client address),
/// then path (looked up without copying it): the set that decided, its time bucket, and the
/// decision. Everything else a policy sees is fixed by the identity.
pub type CachedDecisions =
    HashMap<(usize, usize, IpAddr), HashMap<Box<str>, (Arc<PolicySet>, i64, Decision)>>;

/// Most decisions kept per identity.
pub const MAX_CACHED_DECISIONS: usize = 128;

/// What verification established about a token, parsed once: a hit in the cache costs no
/// parsing at all.
#[derive(Debug)]
pub struct Verified {
    pub kid: String,
    /// Who the behaviour detectors learn about: `sub`, or `sub~actor` for a delegated token,
    /// so an agent acting for a user has a baseline of its own.
    pub identity: String,
    /// The claims as signed, for what is re-issued from them (the internal token) and
    /// checked against them (revocation).
    pub claims: AccessClaims,
    /// What the token grants, typed: principal, tenant, scopes, delegation chain,
    /// `allowed_ips`, `cnf`.
    pub access: VerifiedAccess,
    /// Shared with every token that speaks for the same identity.
    pub shared: Arc<Identity>,
    /// When a request with this token was last allowed (unix seconds; 0: never), reported
    /// to the authority for access reviews.
    pub last_used: std::sync::atomic::AtomicI64,
}

impl Verified {
    /// The party acting now (the outermost `act`), if the token is delegated.
    pub fn actor(&self) -> Option<&str> {
        self.access.chain().current().map(PrincipalId::as_str)
    }
}

/// What tokens with the same fingerprint (see [`Identity::fingerprint`]) share.
#[derive(Debug, Default)]
pub struct Identity {
    pub internal: Mutex<MintedTokens>,
    pub decisions: Mutex<CachedDecisions>,
    /// The latest expiry of a token seen for this identity: past it, the entry is swept.
    expires: AtomicI64,
}

impl Identity {
    /// SHA-256 over every claim a policy decision or an internal token is built from:
    /// tenant, subject, client, scope and the whole delegation chain. Two tokens with the
    /// same fingerprint get the same decisions and the same internal tokens; what differs
    /// between them (expiry, `allowed_ips`, `cnf`, `max_uses`, `jti`) is checked per
    /// token and per request.
    pub fn fingerprint(c: &AccessClaims) -> [u8; 32] {
        let act = c
            .act
            .as_ref()
            .and_then(|a| serde_json::to_vec(a).ok())
            .unwrap_or_default();
        let mut h = Sha256::new();
        for field in [
            c.tenant.as_bytes(),
            c.sub.as_bytes(),
            c.client_id.as_bytes(),
            c.scope.as_bytes(),
            &act,
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field);
        }
        h.finalize().into()
    }
}

/// A map in [`SHARDS`] shards, each behind its own lock and bounded: inserting into a full
/// shard drops an arbitrary entry (O(1); its owner pays one more computation), never scans.
struct Sharded<K, V> {
    shards: Vec<Mutex<HashMap<K, V>>>,
    per_shard: usize,
}

impl<K: Hash + Eq + Clone, V> Sharded<K, V> {
    fn new(entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (entries / SHARDS).max(1),
        }
    }

    /// The shard `key` belongs to, locked. `Q` is how the key is looked up (`str` for a
    /// `Box<str>`); both hash alike.
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, HashMap<K, V>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        #[expect(
            clippy::indexing_slicing,
            reason = "`i` is below SHARDS, the length of `shards`"
        )]
        crate::lock(&self.shards[i.min(SHARDS - 1)])
    }

    /// Inserts into `shard` (the one `key` belongs to), making room first.
    fn insert_into(&self, shard: &mut HashMap<K, V>, key: K, value: V) {
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            if let Some(victim) = shard.keys().next().cloned() {
                shard.remove(&victim);
            }
        }
        shard.insert(key, value);
    }

    fn retain(&self, mut keep: impl FnMut(&V) -> bool) {
        for s in &self.shards {
            crate::lock(s).retain(|_, v| keep(v));
        }
    }

    /// Visits every value, holding one shard's lock at a time.
    fn for_each(&self, mut f: impl FnMut(&V)) {
        for s in &self.shards {
            for v in crate::lock(s).values() {
                f(v);
            }
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| crate::lock(s).len()).sum()
    }
}

/// Identities by fingerprint, bounded like the token cache.
pub struct IdentityCache(Sharded<[u8; 32], Arc<Identity>>);

impl IdentityCache {
    pub fn new(entries: usize) -> Self {
        Self(Sharded::new(entries))
    }

    /// The shared state for `claims`' identity, created on first sight.
    pub fn get_or_insert(&self, claims: &AccessClaims) -> Arc<Identity> {
        let fp = Identity::fingerprint(claims);
        let mut shard = self.0.shard(&fp);
        let identity = match shard.get(&fp) {
            Some(i) => Arc::clone(i),
            None => {
                let i = Arc::new(Identity::default());
                self.0.insert_into(&mut shard, fp, Arc::clone(&i));
                i
            }
        };
        identity.expires.fetch_max(claims.exp, Ordering::Relaxed);
        identity
    }

    /// Drops identities whose every token expired before `now`.
    pub fn sweep(&self, now: i64) {
        self.0.retain(|i| i.expires.load(Ordering::Relaxed) >= now);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Verified tokens by their exact bytes.
pub struct TokenCache(Sharded<Box<str>, Arc<Verified>>);

impl TokenCache {
    pub fn new(entries: usize) -> Self {
        Self(Sharded::new(entries))
    }

    pub fn get(&self, token: &str) -> Option<Arc<Verified>> {
        self.0.shard(token).get(token).cloned()
    }

    /// Adds a verified token. Expired entries are swept by [`TokenCache::sweep`], never by
    /// a scan on this path.
    pub fn insert(&self, token: &str, verified: Arc<Verified>) {
        let mut shard = self.0.shard(token);
        self.0.insert_into(&mut shard, token.into(), verified);
    }

    /// Drops entries that expired before `now`, one shard at a time.
    pub fn sweep(&self, now: i64) {
        self.0.retain(|v| v.claims.exp >= now);
    }

    pub fn remove(&self, token: &str) {
        self.0.shard(token).remove(token);
    }

    /// Visits every cached token (for periodic reports; holds one shard's lock at a time).
    pub fn for_each(&self, mut f: impl FnMut(&Verified)) {
        self.0.for_each(|v| f(v));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::claims::{Actor, Audience, Confirmation};

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://warden.example".into(),
            sub: "usr_A".into(),
            aud: Audience::One("warden".into()),
            exp: 1_000,
            iat: 900,
            nbf: 900,
            jti: "j1".into(),
            client_id: "agt_B".into(),
            tenant: "tnt_T".into(),
            scope: "crm:read".into(),
            act: Some(Actor {
                sub: "agt_B".into(),
                act: Some(Box::new(Actor {
                    sub: "agt_C".into(),
                    act: None,
                })),
            }),
            cnf: None,
            allowed_ips: None,
            max_uses: None,
        }
    }

    #[test]
    fn every_claim_a_decision_or_internal_token_uses_changes_the_fingerprint() {
        let base = Identity::fingerprint(&claims());
        let edits: [fn(&mut AccessClaims); 6] = [
            |c| c.tenant = "tnt_U".into(),
            |c| c.sub = "usr_Z".into(),
            |c| c.client_id = "agt_Z".into(),
            |c| c.scope = "crm:read crm:write".into(),
            |c| c.act = None,
            |c| {
                if let Some(inner) = c.act.as_mut().and_then(|a| a.act.as_mut()) {
                    inner.sub = "agt_Z".into();
                }
            },
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut c = claims();
            edit(&mut c);
            assert_ne!(Identity::fingerprint(&c), base, "edit {i}");
        }
        // Field boundaries count: moving a byte between fields is another identity.
        let mut shifted = claims();
        shifted.tenant = "tnt_Tu".into();
        shifted.sub = "sr_A".into();
        assert_ne!(Identity::fingerprint(&shifted), base);
    }

    #[test]
    fn per_token_claims_do_not_split_an_identity() {
        let base = Identity::fingerprint(&claims());
        let mut c = claims();
        c.jti = "j2".into();
        c.exp = 2_000;
        c.iat = 1_500;
        c.nbf = 1_500;
        c.allowed_ips = Some(vec!["10.0.0.0/8".into()]);
        c.max_uses = Some(1);
        c.cnf = Some(Confirmation {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        });
        assert_eq!(Identity::fingerprint(&c), base);
    }

    #[test]
    fn identities_are_shared_bounded_and_swept() {
        let cache = IdentityCache::new(SHARDS);
        let a = cache.get_or_insert(&claims());
        let mut later = claims();
        later.exp = 5_000;
        let b = cache.get_or_insert(&later);
        assert!(Arc::ptr_eq(&a, &b));
        cache.sweep(4_000);
        assert_eq!(cache.len(), 1, "the later token keeps it");
        cache.sweep(5_001);
        assert!(cache.is_empty());
        for i in 0..10 * SHARDS {
            let mut c = claims();
            c.sub = format!("usr_{i}");
            cache.get_or_insert(&c);
        }
        assert!(cache.len() <= SHARDS);
    }
}
