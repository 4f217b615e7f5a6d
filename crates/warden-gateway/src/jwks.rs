//! The authority's keys, cached: fetched at start, refreshed on an interval, and refreshed
//! early when a token names an unknown `kid` — at most once per `min_refresh`, so a flood of
//! forged `kid`s cannot turn into a flood of fetches.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use warden_core::jwks::JwkSet;
use warden_core::KeySet;

use crate::http_client::{json_request, HttpClient};
use crate::lock;

pub struct JwksCache {
    url: String,
    client: HttpClient,
    keys: RwLock<Arc<KeySet>>,
    fetched_at: Mutex<Option<Instant>>,
    last_attempt: Mutex<Option<Instant>>,
    min_refresh: Duration,
    refreshing: tokio::sync::Mutex<()>,
    fetches: std::sync::atomic::AtomicU64,
}

impl JwksCache {
    pub fn new(url: String, client: HttpClient, min_refresh: Duration) -> Self {
        Self {
            url,
            client,
            keys: RwLock::new(Arc::new(KeySet::new())),
            fetched_at: Mutex::new(None),
            last_attempt: Mutex::new(None),
            min_refresh,
            refreshing: tokio::sync::Mutex::new(()),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => Arc::clone(&k),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// How many fetches were attempted since start.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Seconds since the last successful fetch.
    pub fn age(&self) -> Option<Duration> {
        lock(&self.fetched_at).map(|t| t.elapsed())
    }

    pub async fn refresh(&self) -> Result<usize, String> {
        let _single = self.refreshing.lock().await;
        *lock(&self.last_attempt) = Some(Instant::now());
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (status, body) =
            json_request(&self.client, hyper::Method::GET, &self.url, None, None).await?;
        if status != 200 {
            return Err(format!("{}: status {status}", self.url));
        }
        let set: JwkSet = serde_json::from_value(body).map_err(|e| format!("{}: {e}", self.url))?;
        let keys = KeySet::from_jwks(&set).map_err(|e| format!("{}: {e}", self.url))?;
        let n = keys.len();
        match self.keys.write() {
            Ok(mut k) => *k = Arc::new(keys),
            Err(p) => *p.into_inner() = Arc::new(keys),
        }
        *lock(&self.fetched_at) = Some(Instant::now());
        Ok(n)
    }

    /// Refreshes for an unknown `kid` unless a fetch happened within `min_refresh`; true if
    /// the key set may have changed.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let recent = lock(&self.last_attempt).is_some_and(|t| t.elapsed() < self.min_refresh);
        if recent {
            return false;
        }
        match self.refresh().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh for an unknown kid failed");
                false
            }
        }
    }

    /// Keeps the cache fresh until the process ends.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "JWKS refresh failed; verifying with cached keys");
                }
            }
        })
    }
}
