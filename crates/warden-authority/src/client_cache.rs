//! A short-lived cache of token-endpoint clients: the principal, its tenant and its decoded
//! public key, so that issuing a token costs no lookup and no point decompression.
//!
//! Every lifecycle change made through this authority invalidates the entry before it
//! answers, so on one node a disabled client is refused at once. The TTL bounds staleness
//! for changes this node did not make (another replica's, or a direct database edit). A
//! generation counter stops a lookup that raced with an invalidation from caching the old
//! state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warden_core::jwks::Jwk;
use warden_core::{PrincipalId, PublicKey};
use warden_store::{Principal, Store, StoreError, Tenant};

pub struct Client {
    pub principal: Principal,
    pub tenant: Tenant,
    /// The registered key, decoded once: its `kid` (if registered with one) and the key.
    pub key: Option<(Option<String>, PublicKey)>,
}

pub struct ClientCache {
    ttl: Duration,
    max_entries: usize,
    generation: AtomicU64,
    entries: Mutex<HashMap<PrincipalId, (Instant, Arc<Client>)>>,
    /// How long a miss's store lookup took.
    lookups: prometheus_client::metrics::histogram::Histogram,
}

impl ClientCache {
    pub fn new(
        ttl: Duration,
        max_entries: usize,
        lookups: prometheus_client::metrics::histogram::Histogram,
    ) -> Self {
        Self {
            ttl,
            max_entries,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
            lookups,
        }
    }

    /// The client and its tenant, from cache or store; `None` if either does not exist.
    pub async fn get(
        &self,
        store: &dyn Store,
        id: &PrincipalId,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(hit) = self.lookup(id) {
            return Ok(Some(hit));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let started = Instant::now();
        let found = match store.principal(id).await? {
            Some(principal) => store
                .tenant(&principal.tenant)
                .await?
                .map(|tenant| (principal, tenant)),
            None => None,
        };
        self.lookups.observe(started.elapsed().as_secs_f64());
        let Some((principal, tenant)) = found else {
            return Ok(None);
        };
        let key = principal
            .public_jwk
            .as_deref()
            .and_then(|j| serde_json::from_str::<Jwk>(j).ok())
            .and_then(|jwk| jwk.to_public_key().ok().map(|k| (jwk.kid, k)));
        let client = Arc::new(Client {
            principal,
            tenant,
            key,
        });
        if self.ttl > Duration::ZERO {
            let mut entries = self.lock();
            if self.generation.load(Ordering::Acquire) == generation {
                if entries.len() >= self.max_entries {
                    let now = Instant::now();
                    entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
                    if entries.len() >= self.max_entries {
                        entries.clear();
                    }
                }
                entries.insert(id.clone(), (Instant::now(), Arc::clone(&client)));
            }
        }
        Ok(Some(client))
    }

    fn lookup(&self, id: &PrincipalId) -> Option<Arc<Client>> {
        let entries = self.lock();
        let (at, client) = entries.get(id)?;
        (at.elapsed() < self.ttl).then(|| Arc::clone(client))
    }

    /// Forgets everything; called after every lifecycle change.
    pub fn invalidate(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Forgets one client, after a change to it that is not a lifecycle change (a legacy
    /// secret hash replaced by its digest).
    pub fn forget(&self, id: &PrincipalId) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PrincipalId, (Instant, Arc<Client>)>> {
        match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
