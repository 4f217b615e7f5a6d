//! Running the all-in-one server: data directory, store, authority, HTTP listener, and the
//! ops listeners (the authority's `--ops-listen`, the gateway's `ops_listen`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use warden_api::admin::{Call, SetPublicKey};
use warden_authority::config::Fault;
use warden_authority::config::Limits;
use warden_authority::data_dir::{DataDir, ServerInfo, MASTER_KEY_ENV};
use warden_authority::journal::OutboxDrain;
use warden_authority::readiness::ops_router;
use warden_authority::{router, server, Authority, AuthorityConfig};
use warden_core::time::SystemClock;
use warden_gateway::{AuditTarget, Gateway, GatewayConfig, StartOptions};
use warden_store::sqlite::SqliteStore;

/// Arms a [`Fault`] (`hold-answer-after-commit:KEY_PREFIX`), for tests that crash a real
/// server at an exact point.
pub const FAULT_ENV: &str = "WARDEN_FAULT";

pub struct ServeOptions {
    /// Mirror every durable audit batch to stdout as JSON lines (for a SIEM pipeline).
    pub audit_stdout: bool,
    /// Where every audit checkpoint is handed, besides the log itself.
    pub witnesses: Witnesses,
    /// A `postgres://` (or `sqlite://`) URL; default: SQLite in the data directory.
    pub database: Option<String>,
    pub listen: SocketAddr,
    /// The authority's ops listener: `/healthz`, `/readyz`, `/metrics`.
    pub ops_listen: SocketAddr,
    pub issuer: Option<String>,
    pub token_ttl_secs: Option<i64>,
    /// `warden.toml` with a `[gateway]` table: runs the gateway in the same process.
    pub config: Option<PathBuf>,
    pub gateway_listen: Option<SocketAddr>,
    /// The gateway's ops listener, in place of the config's `ops_listen`.
    pub gateway_ops_listen: Option<SocketAddr>,
    /// The authority's connection cap (default [`Limits::DEFAULT_MAX_CONNECTIONS`]), lowered
    /// to fit the open-file limit.
    pub max_connections: Option<usize>,
}

/// A started server; dropping `shutdown` or sending on it stops the listener.
pub struct Running {
    pub authority_url: String,
    pub ops_url: String,
    pub gateway: Option<GatewayUrls>,
    pub admin_token: String,
    pub shutdown: oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The witnesses an operator named: files to append each checkpoint to, URLs to POST it to.
#[derive(Debug, Clone, Default)]
pub struct Witnesses {
    pub files: Vec<PathBuf>,
    pub urls: Vec<String>,
}

impl Witnesses {
    /// Opens each witness. A file inside `log_home` (the data directory, or the gateway's
    /// audit directory) is refused: whoever can cut the log there can cut its witness too.
    pub fn open(&self, log_home: &Path) -> anyhow::Result<Vec<Arc<dyn warden_audit::Witness>>> {
        let mut out: Vec<Arc<dyn warden_audit::Witness>> = Vec::new();
        let home = std::fs::canonicalize(log_home)
            .with_context(|| format!("cannot resolve `{}`", log_home.display()))?;
        for file in &self.files {
            let parent = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let parent = std::fs::canonicalize(parent).with_context(|| {
                format!(
                    "audit witness `{}`: its directory must exist",
                    file.display()
                )
            })?;
            if parent.starts_with(&home) {
                anyhow::bail!(
                    "audit witness `{}` is inside `{}`: a witness must live where the log's host cannot cut it with the log",
                    file.display(),
                    log_home.display()
                );
            }
            let w = warden_audit::FileWitness::open(file)
                .with_context(|| format!("cannot open audit witness `{}`", file.display()))?;
            out.push(Arc::new(w));
        }
        for url in &self.urls {
            // The HTTP client is built without TLS: an https witness would fail every POST.
            if !url.starts_with("http://") {
                anyhow::bail!("audit witness URL `{url}` must start with http://");
            }
            let w = warden_audit::UrlWitness::spawn(url, warden_audit::witness::Retry::default())
                .with_context(|| format!("cannot start audit witness `{url}`"))?;
            out.push(Arc::new(w));
        }
        Ok(out)
    }
}

pub async fn start(data_dir: &Path, opts: ServeOptions) -> anyhow::Result<Running> {
    let dir = DataDir::create(data_dir)?;
    let master = dir.master_key(std::env::var(MASTER_KEY_ENV).ok().as_deref())?;
    let admin_token = dir.admin_token()?;
    let store: Arc<dyn warden_store::Store> = match &opts.database {
        // The URL may hold a password: errors name the backend, not the URL.
        Some(url) => warden_store::connect_url(url)
            .await
            .context("cannot open the store named by --database")?,
        None => Arc::new(
            SqliteStore::open(&dir.database())
                .await
                .with_context(|| format!("cannot open the store in `{}`", data_dir.display()))?,
        ),
    };
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let local = listener.local_addr()?;
    let ops_listener = TcpListener::bind(opts.ops_listen)
        .await
        .with_context(|| format!("cannot listen on {} for the ops endpoints", opts.ops_listen))?;
    let ops_url = format!("http://{}", ops_listener.local_addr()?);
    let issuer = opts.issuer.unwrap_or_else(|| format!("http://{local}"));
    let mut config = AuthorityConfig::new(issuer.clone());
    if let Some(ttl) = opts.token_ttl_secs {
        config.token_ttl_secs = ttl;
    }
    // For crash tests only: see `Fault`. Unset in any deployment.
    if let Ok(fault) = std::env::var(FAULT_ENV) {
        config.fault = Some(
            fault
                .parse::<Fault>()
                .map_err(|e| anyhow::anyhow!("{FAULT_ENV}: {e}"))?,
        );
    }
    let fault = config.fault.clone();
    // With a gateway the process's descriptors are shared between two listeners.
    let listeners = if opts.config.is_some() { 2 } else { 1 };
    config.limits.max_connections = crate::fdlimit::fit(
        "authority",
        opts.max_connections
            .unwrap_or(Limits::DEFAULT_MAX_CONNECTIONS),
        1,
        listeners,
    );
    let limits = config.limits.clone();
    let witnesses = opts.witnesses.open(dir.path())?;
    let audit = open_audit(&dir, &master, opts.audit_stdout, witnesses)?;
    let authority = Authority::start(
        config,
        store,
        master,
        &admin_token,
        Arc::new(SystemClock),
        audit.clone(),
    )
    .await?;
    // Audit entries of changes whose call never appended them: the last run was killed
    // between commit and answer, or its log was failing. An embedded store has no other
    // writer and nothing is served yet, so every entry is such a one; on a shared database
    // only those past the grace period are, since a live replica may be appending the rest.
    let embedded = opts
        .database
        .as_deref()
        .is_none_or(|url| url.starts_with("sqlite:"));
    let which = if embedded {
        OutboxDrain::All
    } else {
        OutboxDrain::Due
    };
    match authority.drain_audit_outbox(which).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(entries = n, "appended audit entries left in the outbox"),
        Err(e) => {
            tracing::warn!(error = %e, "draining the audit outbox failed; maintenance retries")
        }
    }
    authority.maintain().await;
    let maintenance = authority.spawn_maintenance(Duration::from_secs(60));
    dir.write_server_info(&ServerInfo {
        authority_url: format!("http://{local}"),
        ops_url: Some(ops_url.clone()),
        pid: std::process::id(),
    })?;
    if let Some(Fault::HoldAfterPublish { ms }) = fault {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (tx, rx) = oneshot::channel::<()>();
    let (gw_tx, gw_rx) = oneshot::channel::<()>();
    let relay = Arc::clone(&authority);
    let ops = ops_router(Arc::clone(&authority));
    let app = router(authority);
    let authority_url = format!("http://{local}");
    let ops_limits = Limits {
        max_connections: OPS_MAX_CONNECTIONS,
        ..limits.clone()
    };
    let authority_task = tokio::spawn(server::serve(listener, app, limits, async {
        let _ = rx.await;
    }));
    let ops_task = tokio::spawn(server::serve(
        ops_listener,
        ops,
        ops_limits,
        std::future::pending(),
    ));
    let gateway = match &opts.config {
        Some(path) => Some(
            start_gateway(
                path,
                &authority_url,
                builtin_gateway_auth(&dir, &authority_url, &admin_token).await?,
                Listen {
                    public: opts.gateway_listen,
                    ops: opts.gateway_ops_listen,
                },
                Some(audit.clone()),
                listeners,
            )
            .await?,
        ),
        None => None,
    };
    let gateway_urls = gateway.as_ref().map(|g| g.urls.clone());
    let task = tokio::spawn(async move {
        let _ = gw_rx.await;
        // The gateways following the stream witness the log as it stands at the stop.
        relay.checkpoint_to_gateways(GATEWAY_CHECKPOINT_WAIT).await;
        drop(relay);
        let _ = tx.send(());
        if let Some(g) = gateway {
            g.stop().await;
        }
        let result = authority_task.await;
        ops_task.abort();
        maintenance.abort();
        // A final signed checkpoint covers everything written, and has been handed to the
        // witnesses, before this task ends (and `warden serve` waits for it to end).
        match audit.close().await {
            Ok(entries) => tracing::info!(entries, "audit log closed under a final checkpoint"),
            Err(e) => tracing::error!(error = %e, "closing the audit log failed"),
        }
        dir.remove_server_info();
        result
            .context("server task failed")?
            .context("server failed")
    });
    Ok(Running {
        gateway: gateway_urls,
        authority_url,
        ops_url,
        admin_token: admin_token.to_string(),
        shutdown: gw_tx,
        task,
    })
}

/// How long a stop waits for its last checkpoint to reach every gateway on the stream.
const GATEWAY_CHECKPOINT_WAIT: Duration = Duration::from_secs(2);

/// The file in the data directory holding the built-in gateway's credentials.
const BUILTIN_GATEWAY_CREDENTIALS: &str = "gateway.credentials.json";
/// The built-in gateway's name among the enrolled gateways.
const BUILTIN_GATEWAY: &str = "builtin-gateway";

/// The built-in gateway runs as a service principal of its own, like any other gateway: on
/// first start it is enrolled (with the break-glass token, over loopback, audited like any
/// enrollment) and its credentials kept in the data directory (0600). Should the file be
/// lost, the enrolled principal is given a fresh key; a principal an operator disabled or
/// revoked stays so, and the gateway then fails to start with the authority's reason.
async fn builtin_gateway_auth(
    dir: &DataDir,
    authority_url: &str,
    admin_token: &str,
) -> anyhow::Result<warden_api::client::Auth> {
    let path = dir.path().join(BUILTIN_GATEWAY_CREDENTIALS);
    let scope = Some(warden_api::scope::GATEWAY.to_owned());
    if path.exists() {
        let credentials = warden_api::Credentials::read(&path)?;
        return Ok(warden_api::client::Auth::Principal {
            credentials: Box::new(credentials),
            scope,
        });
    }
    let admin = crate::admin_client::AdminClient::new(authority_url, admin_token);
    let key = warden_core::SigningKey::generate(&mut rand_core::OsRng);
    let public_key = warden_core::jwks::Jwk::from_public_key(&key.public_key(), None);
    let req = warden_api::gateway::EnrollGateway {
        name: BUILTIN_GATEWAY.into(),
        public_key: public_key.clone(),
    };
    let client_id = match admin.api().enroll_gateway(&req).await {
        Ok(enrolled) => enrolled.client_id,
        Err(e) if e.status() == Some(409) => {
            let listed = admin
                .call(Call::ListPrincipals(
                    warden_api::scope::SYSTEM_TENANT.into(),
                ))
                .await?;
            let id = listed
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| {
                    p.get("name").and_then(serde_json::Value::as_str) == Some(BUILTIN_GATEWAY)
                })
                .and_then(|p| p.get("id").and_then(serde_json::Value::as_str))
                .ok_or_else(|| anyhow::anyhow!("the built-in gateway is enrolled but not listed"))?
                .to_owned();
            admin
                .call(Call::SetPublicKey(id.clone(), SetPublicKey { public_key }))
                .await
                .context("giving the built-in gateway a fresh key")?;
            tracing::warn!(principal = %id, "the built-in gateway's credential file was missing: it has a fresh key");
            id
        }
        Err(e) => return Err(e).context("enrolling the built-in gateway"),
    };
    let credentials = warden_api::Credentials::new(client_id, Some(authority_url.to_owned()), key);
    credentials.write_new(&path)?;
    Ok(warden_api::client::Auth::Principal {
        credentials: Box::new(credentials),
        scope,
    })
}

/// Opens the audit log in the data directory, cutting a torn tail a crash left behind.
fn open_audit(
    dir: &DataDir,
    master: &warden_core::crypto::SealingKey,
    to_stdout: bool,
    witnesses: Vec<Arc<dyn warden_audit::Witness>>,
) -> anyhow::Result<warden_audit::AuditLog> {
    let key = dir.audit_key(master)?;
    open_log(&dir.audit_dir(), Arc::new(key), to_stdout, witnesses)
}

/// A standalone gateway's own audit log in `dir`: `audit.jsonl`, `checkpoints.jsonl`, and
/// its signing key `audit.key` (a private JWK, 0600, created on first use) with the public
/// half in `audit.pub.jwk`, which `warden audit verify --log-dir DIR` reads.
pub fn open_gateway_audit(
    dir: &Path,
    witnesses: &Witnesses,
) -> anyhow::Result<warden_audit::AuditLog> {
    create_private_dir(dir)?;
    let private = dir.join("audit.key");
    let public = dir.join(warden_authority::data_dir::AUDIT_PUBLIC_KEY_FILE);
    if !private.exists() {
        crate::keyfile::generate(&private, &public)?;
    }
    let key = crate::keyfile::read_private(&private)?;
    let jwk = warden_core::jwks::Jwk::from_public_key(&key.public_key(), None);
    std::fs::write(&public, serde_json::to_vec_pretty(&jwk)?)
        .with_context(|| format!("cannot write `{}`", public.display()))?;
    open_log(dir, Arc::new(key), false, witnesses.open(dir)?)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))
}

fn open_log(
    path: &Path,
    key: Arc<dyn warden_audit::CheckpointSigner>,
    to_stdout: bool,
    witnesses: Vec<Arc<dyn warden_audit::Witness>>,
) -> anyhow::Result<warden_audit::AuditLog> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create `{}`", path.display()))?;
    let mut options = warden_audit::Options {
        witnesses,
        ..warden_audit::Options::default()
    };
    if to_stdout {
        options
            .sinks
            .push(Box::new(warden_audit::JsonLinesSink(std::io::stdout())));
    }
    let (log, report) = warden_audit::AuditLog::open(path, key, options)
        .with_context(|| format!("cannot open the audit log in `{}`", path.display()))?;
    if let Some(torn) = report.torn_tail {
        tracing::warn!(
            line = torn.line,
            bytes = torn.len,
            "cut the audit log's incomplete last line: a write that failed (a full disk, say) or was interrupted, never acknowledged, so nothing on record is lost"
        );
    }
    Ok(log)
}

/// Where a gateway listens, in place of its config's `listen` and `ops_listen`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listen {
    pub public: Option<SocketAddr>,
    pub ops: Option<SocketAddr>,
}

/// The addresses a gateway answers on, as bound (so a port 0 reads as the one chosen).
#[derive(Debug, Clone)]
pub struct GatewayUrls {
    pub url: String,
    /// `/healthz`, `/metrics` and `/_warden`.
    pub ops_url: String,
}

/// A started gateway: its addresses and the task serving both listeners.
pub struct RunningGateway {
    pub urls: GatewayUrls,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
    gateway: Arc<Gateway>,
}

/// How long a stop waits for the gateway's queued decisions to reach the audit log.
const DRAIN_DECISIONS: Duration = Duration::from_secs(5);

impl RunningGateway {
    /// Stops accepting connections, then waits (bounded) until the decisions queued so far
    /// are handed to the audit log, so that the final checkpoint covers them.
    pub async fn stop(self) {
        self.handle.abort();
        let gateway = self.gateway;
        let drained =
            tokio::task::spawn_blocking(move || gateway.audit.drain(DRAIN_DECISIONS)).await;
        if !matches!(drained, Ok(true)) {
            tracing::warn!("the gateway's last decisions did not reach the audit log in time");
        }
    }
}

/// Connections an ops listener holds open at once: scrapers and probes, a handful each.
const OPS_MAX_CONNECTIONS: usize = 64;

/// Starts a gateway against `authority_url` with the routes of `config`; `listeners` is how
/// many listeners (this one included) share the process's descriptors.
pub async fn start_gateway(
    config: &Path,
    authority_url: &str,
    auth: warden_api::client::Auth,
    listen: Listen,
    audit: Option<warden_audit::AuditLog>,
    listeners: u64,
) -> anyhow::Result<RunningGateway> {
    let mut config = GatewayConfig::load(config, Some(authority_url))?;
    // A client connection may hold an upstream connection too: two descriptors.
    config.max_connections = crate::fdlimit::fit("gateway", config.max_connections, 2, listeners);
    if let (Some(_), Some(file)) = (&audit, &config.audit_log) {
        tracing::warn!(
            file = %file.display(),
            "audit_log is not used: gateway decisions join the chained audit log"
        );
    }
    if let Some(l) = listen.public {
        config.listen = l;
    }
    if let Some(l) = listen.ops {
        config.ops_listen = l;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} for the gateway", config.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    let ops_listener = TcpListener::bind(config.ops_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the gateway's ops endpoints",
                config.ops_listen
            )
        })?;
    let ops_url = format!("http://{}", ops_listener.local_addr()?);
    let gateway = Gateway::start(
        config,
        StartOptions {
            auth,
            clock: Arc::new(SystemClock),
            // All-in-one: decisions join the authority's chain. Alone: its own chain with
            // `--audit-dir`, else the config's file.
            audit: audit.map_or(AuditTarget::Config, AuditTarget::Chained),
            name: format!("gateway-{}", std::process::id()),
        },
    )
    .await?;
    let ops = Arc::clone(&gateway).serve_ops(ops_listener, std::future::pending());
    let public = Arc::clone(&gateway).serve(listener, std::future::pending());
    // Either listener failing ends both: a gateway nobody can probe is not left serving.
    let handle = tokio::spawn(async move {
        tokio::select! {
            r = public => r,
            r = ops => r,
        }
    });
    Ok(RunningGateway {
        urls: GatewayUrls { url, ops_url },
        handle,
        gateway,
    })
}
