//! Warden's gateway: no request reaches an upstream unless its identity is proven and a
//! policy allows it.
//!
//! Each request runs a pipeline of named phases over one request context (see [`pipeline`]),
//! all local (no store, no authority call on the hot path): `verify` (the credential, then
//! the token: EdDSA against the cached JWKS, claims) → `revocation` → `possession` (DPoP) →
//! `route` (longest prefix) → `tenant` (a route of one tenant takes only its tokens) →
//! `behaviour` (with `[gateway.behaviour]`: the restrictions anomalies put in place, and
//! learning from every request; see [`behaviour`]) → `scope` → `network` (`allowed_ips`
//! against the client address) → `policy` (Cedar) → `rate` (GCRA per identity) → `spend`
//! (one-time values) → `swap` (a short internal token for that upstream) → `audit` →
//! `forward`. Every decision is handed to the audit sink without waiting on disk. The same
//! pipeline answers forward-auth requests (`/authz`) for nginx, Traefik and Envoy
//! (`forward_auth`); the choice between them is in `dispatch`. `/healthz` (`health`),
//! `/metrics` (`metrics`) and the `/_warden` admin API (`admin`) are served only on the ops
//! listener (`ops`, [`Gateway::serve_ops`]), never on the public one.

mod admin;
pub mod alert;
pub mod audit;
pub mod authority;
pub mod behaviour;
pub mod config;
mod deny;
mod dispatch;
mod forward_auth;
mod health;
mod http_client;
pub mod jwks;
mod metrics;
pub mod net;
mod ops;
mod path;
pub mod pipeline;
mod proxy;
pub mod revocation;
pub mod token_cache;
pub mod upstream;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use rand_core::OsRng;
use tokio::net::TcpListener;
use warden_core::crypto::sha256;
use warden_core::id::random_token_id;
use warden_core::jwks::Jwk;
use warden_core::time::Clock;
use warden_core::SigningKey;
use warden_listen::{Acceptor, Admitted, ConnectionLimit, Permit};
use warden_policy::PolicyStore;

pub use config::{ConfigError, GatewayConfig};
pub use deny::Deny;

use crate::audit::AuditSink;
use crate::http_client::HttpClient;
use crate::jwks::JwksCache;
use crate::revocation::RevocationFeed;
use crate::token_cache::{IdentityCache, TokenCache};
use warden_core::replay::ReplayCache;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("policy: {0}")]
    Policy(String),
    #[error("authority at {0} is unreachable or refused: {1}")]
    Authority(String, String),
    #[error("audit log: {0}")]
    Audit(String),
    /// The configuration names something the authority does not know (a route's tenant).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// How long a registered gateway key stays published without re-registration, and how
/// often the gateway re-registers it.
const KEY_TTL_SECS: i64 = 3600;
const KEY_RENEW_EVERY: Duration = Duration::from_secs(600);
const MAINTENANCE_EVERY: Duration = Duration::from_secs(30);
/// Idle keep-alive connections a worker keeps to each upstream.
const MAX_IDLE_PER_UPSTREAM: usize = 256;

/// The gateway's own signing identity for internal tokens; the private key lives only here.
pub struct GatewayKey {
    pub kid: String,
    key: SigningKey,
}

pub struct Gateway {
    pub config: GatewayConfig,
    pub jwks: Arc<JwksCache>,
    pub policies: Option<Arc<PolicyStore>>,
    pub tokens: TokenCache,
    /// What tokens speaking for the same identity share: decisions and internal tokens.
    pub identities: IdentityCache,
    pub audit: AuditSink,
    audit_log: Option<warden_audit::AuditLog>,
    pub revocations: Arc<RevocationFeed>,
    /// DPoP proof `jti`s (per key) seen within the proof window.
    dpop_replay: std::sync::Mutex<ReplayCache>,
    /// `jti`s of single-use (`max_uses: 1`) tokens already spent.
    single_use: std::sync::Mutex<ReplayCache>,
    limiters: HashMap<String, DefaultKeyedRateLimiter<String>>,
    /// Behavioural defence, when `[gateway.behaviour]` is enabled.
    pub behaviour: Option<behaviour::Behaviour>,
    pub alerts: Option<alert::Alerts>,
    /// SHA-256 of the break-glass token, when the gateway holds it, for its own admin
    /// endpoints.
    admin_token_hash: Option<[u8; 32]>,
    /// The authority's API, as this gateway's principal (or break-glass).
    pub authority: Arc<authority::AuthorityClient>,
    key: GatewayKey,
    /// The address `serve` listens on.
    bound: std::sync::OnceLock<SocketAddr>,
    /// Client connections open, against `config.max_connections` (read by `/metrics`).
    pub connections: ConnectionLimit,
    /// Pipeline decisions by phase, for `/metrics`.
    decisions: metrics::Decisions,
    client: HttpClient,
    clock: Arc<dyn Clock>,
}

/// What a gateway needs from outside its config.
pub struct StartOptions {
    /// How the gateway authenticates to the authority: its own credentials (a service
    /// principal with `warden:gateway`) or the break-glass token.
    pub auth: warden_api::client::Auth,
    pub clock: Arc<dyn Clock>,
    /// Where audit entries go.
    pub audit: AuditTarget,
    /// A name for this gateway in the authority's records.
    pub name: String,
}

/// Where a gateway's decisions are recorded.
pub enum AuditTarget {
    /// The config's `audit_log` file (JSON lines), else the process log.
    Config,
    /// A hash-chained, checkpointed log: the authority's, when both run in one process, or
    /// the gateway's own (`warden gateway --audit-dir`). Its state is on `/metrics`.
    Chained(warden_audit::AuditLog),
    /// Any other writer (tests, embedding programs).
    Writer(Box<dyn audit::AuditWriter>),
}

/// What a gateway is made of besides its config, each already opened or started: `start`
/// makes them, and a test or an embedding program can make its own.
pub struct Parts {
    pub key: GatewayKey,
    pub jwks: Arc<JwksCache>,
    pub revocations: Arc<RevocationFeed>,
    pub policies: Option<Arc<PolicyStore>>,
    pub audit: AuditSink,
    /// The chained log `audit` writes to, if it is one, for `/metrics`.
    pub audit_log: Option<warden_audit::AuditLog>,
    /// Where behaviour alerts go, with `[gateway.behaviour]`.
    pub alerts: Option<alert::Alerts>,
    /// The authority's API client.
    pub authority: Arc<authority::AuthorityClient>,
    /// The break-glass token, when the gateway holds it: its own admin surface accepts it.
    pub admin_token: Option<String>,
    pub clock: Arc<dyn Clock>,
}

impl GatewayKey {
    /// A fresh key for internal tokens, with a `kid` of its own.
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        Self {
            kid: format!("gw-{}", random_token_id(rng)),
            key: SigningKey::generate(rng),
        }
    }
}

impl Gateway {
    /// Assembles a gateway from its config and parts. Pure: no I/O, no task spawned; the
    /// caches, replay windows, rate limiters and behaviour state start empty.
    pub fn new(config: GatewayConfig, parts: Parts) -> Self {
        let limiters = config
            .routes
            .iter()
            .filter_map(|r| {
                let (rate, burst) = r.rate?;
                let quota = Quota::per_second(std::num::NonZeroU32::new(rate)?)
                    .allow_burst(std::num::NonZeroU32::new(burst)?);
                Some((r.prefix.clone(), RateLimiter::keyed(quota)))
            })
            .collect();
        Self {
            tokens: TokenCache::new(config.token_cache_entries),
            identities: IdentityCache::new(config.token_cache_entries),
            revocations: parts.revocations,
            dpop_replay: std::sync::Mutex::new(ReplayCache::new(config.replay_cache_entries)),
            single_use: std::sync::Mutex::new(ReplayCache::new(config.replay_cache_entries)),
            jwks: parts.jwks,
            policies: parts.policies,
            audit: parts.audit,
            audit_log: parts.audit_log,
            limiters,
            behaviour: config.behaviour.clone().map(behaviour::Behaviour::new),
            alerts: parts.alerts,
            admin_token_hash: parts.admin_token.as_deref().map(|t| sha256(t.as_bytes())),
            authority: parts.authority,
            key: parts.key,
            bound: std::sync::OnceLock::new(),
            connections: ConnectionLimit::new(config.max_connections),
            decisions: metrics::Decisions::new(),
            // Building a client does no I/O; it connects when first used.
            client: http_client::new_client(),
            clock: parts.clock,
            config,
        }
    }

    /// Does the I/O a gateway needs before it serves: loads policies (and watches them),
    /// registers a fresh internal-token key with the authority, confirms the routes'
    /// tenants, fetches the JWKS, follows the revocation stream, opens the audit log; then
    /// [`Gateway::new`], and starts the alert sender and the maintenance task.
    pub async fn start(
        mut config: GatewayConfig,
        opts: StartOptions,
    ) -> Result<Arc<Self>, StartError> {
        let client = http_client::new_client();
        let admin_token = match &opts.auth {
            warden_api::client::Auth::BreakGlass(t) => Some(t.to_string()),
            warden_api::client::Auth::Principal { .. } => None,
        };
        let clock = Arc::clone(&opts.clock);
        let api = Arc::new(authority::AuthorityClient::new(
            authority::HyperTransport(client.clone()),
            &config.authority,
            opts.auth,
            Arc::new(move || clock.now()),
        ));
        let policies = match &config.policy_dir {
            Some(dir) => {
                let store = PolicyStore::open(dir.clone())
                    .map_err(|e| StartError::Policy(e.to_string()))?;
                store.spawn_watcher(Duration::from_secs(1));
                Some(store)
            }
            None => None,
        };
        let key = GatewayKey::generate(&mut OsRng);
        register_key(&api, &opts.name, &key).await?;
        resolve_tenants(&api, &mut config.routes).await?;
        let jwks = Arc::new(JwksCache::new(
            format!("{}/.well-known/jwks.json", config.authority),
            client.clone(),
            config.jwks_min_refresh,
        ));
        jwks.refresh()
            .await
            .map_err(|e| StartError::Authority(config.authority.clone(), e))?;
        jwks.spawn_refresher(config.jwks_refresh);
        let revocations = Arc::new(RevocationFeed::new(config.revocation_max_staleness));
        revocations.spawn(client.clone(), Arc::clone(&api));
        if !revocations.wait_caught_up(Duration::from_secs(5)).await {
            tracing::warn!(
                "revocation stream not caught up yet; fail-closed routes refuse until it is"
            );
        }
        let mut audit_log = None;
        let writer: Box<dyn audit::AuditWriter> = match opts.audit {
            AuditTarget::Writer(w) => w,
            AuditTarget::Chained(log) => {
                audit_log = Some(log.clone());
                Box::new(audit::ChainedLog::new(
                    log,
                    tokio::runtime::Handle::current(),
                ))
            }
            AuditTarget::Config => match &config.audit_log {
                Some(path) => Box::<audit::JsonlFile>::new(
                    audit::JsonlFile::open(path)
                        .map_err(|e| StartError::Audit(format!("`{}`: {e}", path.display())))?,
                ),
                None => Box::new(audit::TracingWriter),
            },
        };
        let audit = AuditSink::spawn(config.audit_queue, writer);
        let (alerts, receivers) = match &config.behaviour {
            Some(b) => {
                let (alerts, receivers) =
                    alert::Alerts::new(b.alert_webhook.as_deref(), b.alert_queue);
                (Some(alerts), Some(receivers))
            }
            None => (None, None),
        };
        let gateway = Arc::new(Self::new(
            config,
            Parts {
                key,
                jwks,
                revocations,
                policies,
                audit,
                audit_log,
                alerts,
                authority: api,
                admin_token,
                clock: opts.clock,
            },
        ));
        if let Some(receivers) = receivers {
            alert::Alerts::spawn(&gateway, receivers);
        }
        gateway.spawn_key_renewal(opts.name);
        Ok(gateway)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn key_id(&self) -> &str {
        &self.key.kid
    }

    /// Without `public_url`, whether a request's Host names this gateway (see
    /// [`net::names_listener`]).
    pub(crate) fn is_own_authority(&self, host: &str) -> bool {
        self.bound
            .get()
            .is_some_and(|bound| net::names_listener(host, *bound))
    }

    /// DPoP proofs remembered against replay (each spent by an allowed request).
    pub fn dpop_proofs_remembered(&self) -> usize {
        lock(&self.dpop_replay).len()
    }

    /// Every 30 s: sweep expired tokens, idle rate-limit state, revocations, one-time values
    /// past their horizon and idle behaviour state; every 10 min: renew the
    /// gateway key's registration.
    fn spawn_key_renewal(self: &Arc<Self>, name: String) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
            tick.tick().await;
            let mut last_renewal = std::time::Instant::now();
            let mut reported_until = 0;
            loop {
                tick.tick().await;
                let Some(g) = weak.upgrade() else { return };
                let horizon = g.now() - warden_core::Validation::DEFAULT_LEEWAY;
                g.tokens.sweep(horizon);
                g.identities.sweep(horizon);
                for l in g.limiters.values() {
                    l.retain_recent();
                }
                let now = g.now();
                g.revocations.prune(now);
                lock(&g.dpop_replay).prune(now);
                lock(&g.single_use).prune(now);
                if let Some(b) = &g.behaviour {
                    b.sweep(now);
                }
                g.report_use(&mut reported_until).await;
                if last_renewal.elapsed() >= KEY_RENEW_EVERY {
                    match register_key(&g.authority, &name, &g.key).await {
                        Ok(()) => last_renewal = std::time::Instant::now(),
                        Err(e) => {
                            tracing::warn!(error = %e, "gateway key renewal failed; will retry")
                        }
                    }
                }
            }
        });
    }

    /// Tells the authority which principals this gateway served since the last report, and
    /// when (for access reviews: requests never reach the authority). Best effort: a failed
    /// report is retried with the next one.
    pub async fn report_use(&self, reported_until: &mut i64) {
        let mut used: HashMap<String, i64> = HashMap::new();
        self.tokens.for_each(|v| {
            let at = v.last_used.load(std::sync::atomic::Ordering::Relaxed);
            if at > *reported_until {
                for p in std::iter::once(v.claims.sub.as_str()).chain(v.actor()) {
                    let e = used.entry(p.to_owned()).or_insert(at);
                    *e = (*e).max(at);
                }
            }
        });
        let Some(&newest) = used.values().max() else {
            return;
        };
        let report = warden_api::gateway::UsageReport { used };
        match self.authority.report_use(&report).await {
            Ok(_) => *reported_until = newest,
            Err(e) => tracing::warn!(error = %e, "usage report failed; will retry"),
        }
    }

    /// Serves until `shutdown` completes: this task accepts, and hands each connection to
    /// one of `workers` threads, each running its own single-threaded event loop with its
    /// own upstream connections (the way nginx and Envoy use their cores), so a request is
    /// parsed, decided and forwarded without crossing threads. At most
    /// `config.max_connections` are open at once; the acceptor answers any more 503. When
    /// `shutdown` completes (or this future is dropped) the workers stop and close their
    /// connections.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        let _ = self.bound.set(listener.local_addr()?);
        let mut workers = Vec::with_capacity(self.config.workers);
        for i in 0..self.config.workers {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let gw = Arc::clone(&self);
            std::thread::Builder::new()
                .name(format!("warden-gw-{i}"))
                .spawn(move || runtime.block_on(gw.work(rx)))?;
            workers.push(tx);
        }
        let mut acceptor = Acceptor::new(listener, self.connections.clone());
        let mut next = 0;
        loop {
            let Admitted {
                stream,
                peer,
                permit,
            } = tokio::select! {
                admitted = acceptor.accept() => admitted,
                () = &mut shutdown => return Ok(()),
            };
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, %peer, "cannot hand over a connection");
                    continue;
                }
            };
            next = (next + 1) % workers.len();
            let worker = workers
                .get(next)
                .ok_or_else(|| std::io::Error::other("the gateway has no worker threads"))?;
            if worker.send((stream, peer, permit)).is_err() {
                return Err(std::io::Error::other("a gateway worker thread stopped"));
            }
        }
    }

    /// One worker: serves the connections it is handed until the acceptor goes away.
    async fn work(
        self: Arc<Self>,
        mut connections: tokio::sync::mpsc::UnboundedReceiver<(
            std::net::TcpStream,
            SocketAddr,
            Permit,
        )>,
    ) {
        let upstream = upstream::Upstreams::new(MAX_IDLE_PER_UPSTREAM);
        let mut builder = hyper::server::conn::http1::Builder::new();
        // hyper starts the header timer whenever it waits for a request, the first one and
        // each after a keep-alive response: so it also ends a connection left idle.
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .max_buf_size(self.config.max_header_bytes)
            .max_headers(100);
        while let Some((stream, peer, permit)) = connections.recv().await {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, %peer, "cannot serve a connection");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let gw = Arc::clone(&self);
            let upstream = Arc::clone(&upstream);
            let connection = builder.serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(move |req: Request<Incoming>| {
                    let gw = Arc::clone(&gw);
                    let upstream = Arc::clone(&upstream);
                    async move {
                        Ok::<_, std::convert::Infallible>(gw.handle(req, peer, &upstream).await)
                    }
                }),
            );
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, %peer, "connection closed with error");
                }
            });
        }
    }
}

/// Locks a mutex, taking the data even if a panicking holder poisoned it: every value the
/// gateway guards stays consistent between statements, and a request must not fail for it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Confirms every route's tenant with the authority and puts its id in place of what the
/// file wrote (an id or a name). A tenant the authority does not know fails the start with
/// the line that names it: a route that silently refused everyone would be found in
/// production, not here.
async fn resolve_tenants(
    api: &authority::AuthorityClient,
    routes: &mut [config::Route],
) -> Result<(), StartError> {
    for route in routes {
        let Some(config::RouteTenant::Written {
            value,
            origin,
            line,
        }) = &route.tenant
        else {
            continue;
        };
        let invalid = |reason: String| {
            StartError::Config(ConfigError::Invalid {
                origin: origin.clone(),
                line: *line,
                reason: format!("route `{}`: tenant `{value}`: {reason}", route.prefix),
            })
        };
        let tenant = match api.tenant(&path_segment(value)).await {
            Ok(t) => t,
            Err(e) if e.status() == Some(404) => {
                return Err(invalid("no such tenant at the authority".into()))
            }
            Err(e) => {
                return Err(StartError::Authority(
                    api.authority().to_owned(),
                    format!("looking up tenant `{value}`: {e}"),
                ))
            }
        };
        if warden_core::TenantId::parse(&tenant.id).is_err() {
            return Err(StartError::Authority(
                api.authority().to_owned(),
                format!("tenant `{value}` answered without a tenant id"),
            ));
        }
        if tenant.disabled {
            tracing::warn!(route = %route.prefix, tenant = %tenant.id, "the route's tenant is disabled: its principals get no tokens");
        }
        tracing::info!(route = %route.prefix, written = %value, tenant = %tenant.id, "route tenant confirmed");
        route.tenant = Some(config::RouteTenant::Id(tenant.id));
    }
    Ok(())
}

/// `s` as one URL path segment: everything but letters, digits, `-`, `_` and `~` is
/// percent-encoded — dots too, so a name made of dots stays a name, not a path step.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn register_key(
    api: &authority::AuthorityClient,
    name: &str,
    key: &GatewayKey,
) -> Result<(), StartError> {
    let req = warden_api::gateway::RegisterGatewayKey {
        gateway: name.to_owned(),
        public_key: Jwk::from_public_key(&key.key.public_key(), Some(key.kid.clone())),
        ttl_secs: KEY_TTL_SECS,
    };
    api.register_gateway_key(&key.kid, &req)
        .await
        .map(drop)
        .map_err(|e| {
            StartError::Authority(api.authority().to_owned(), format!("key registration: {e}"))
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Keeps what it is handed, for the test to read.
    struct Kept(Arc<Mutex<Vec<audit::AuditEvent>>>);

    impl audit::AuditWriter for Kept {
        fn write_batch(&mut self, events: Vec<audit::AuditEvent>) -> std::io::Result<()> {
            self.0.lock().unwrap().extend(events);
            Ok(())
        }
    }

    #[test]
    fn a_gateway_is_assembled_without_io_and_decides_and_audits_at_once() {
        let config = crate::pipeline::testing::config();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let gateway = Gateway::new(
            config,
            Parts {
                key: GatewayKey::generate(&mut OsRng),
                // Nothing listens there, and nothing is fetched: `new` does no I/O.
                jwks: Arc::new(JwksCache::new(
                    "http://127.0.0.1:9/.well-known/jwks.json".into(),
                    http_client::new_client(),
                    Duration::from_secs(60),
                )),
                revocations: Arc::new(RevocationFeed::new(Duration::from_secs(10))),
                policies: None,
                audit: AuditSink::spawn(16, Box::new(Kept(Arc::clone(&kept)))),
                audit_log: None,
                alerts: None,
                authority: Arc::new(authority::AuthorityClient::new(
                    authority::HyperTransport(http_client::new_client()),
                    "http://127.0.0.1:9",
                    warden_api::client::Auth::BreakGlass("wadm_test".to_owned().into()),
                    Arc::new(|| 1_900_000_000),
                )),
                admin_token: Some("wadm_test".into()),
                clock: Arc::new(warden_core::time::ManualClock::new(1_900_000_000)),
            },
        );
        assert!(gateway.key_id().starts_with("gw-"));
        assert!(gateway.tokens.is_empty() && gateway.behaviour.is_none());
        let headers = hyper::HeaderMap::new();
        let facts = crate::pipeline::testing::facts("GET", "/crm/a", &headers);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let deny = runtime.block_on(gateway.decide(&facts)).err().unwrap();
        assert!(matches!(deny, Deny::MissingToken));
        for _ in 0..200 {
            if !kept.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let events = kept.lock().unwrap().clone();
        let entry = events.first().unwrap();
        assert_eq!(
            (entry.decision, entry.phase, entry.status),
            ("deny", "verify", 401)
        );
    }

    #[test]
    fn a_tenant_name_is_one_path_segment_whatever_it_holds() {
        assert_eq!(path_segment("acme"), "acme");
        assert_eq!(path_segment("tnt_AbC-9~"), "tnt_AbC-9~");
        assert_eq!(path_segment("acme corp.eu"), "acme%20corp%2Eeu");
        assert_eq!(path_segment(".."), "%2E%2E");
        assert_eq!(path_segment("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
        assert_eq!(path_segment("é"), "%C3%A9");
    }
}
