//! Running the all-in-one server: data directory, store, authority, HTTP listener.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use warden_authority::data_dir::{DataDir, ServerInfo, MASTER_KEY_ENV};
use warden_authority::{router, server, Authority, AuthorityConfig};
use warden_core::time::SystemClock;
use warden_store::sqlite::SqliteStore;

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub issuer: Option<String>,
    pub token_ttl_secs: Option<i64>,
}

/// A started server; dropping `shutdown` or sending on it stops the listener.
pub struct Running {
    pub authority_url: String,
    pub admin_token: String,
    pub shutdown: oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn start(data_dir: &Path, opts: ServeOptions) -> anyhow::Result<Running> {
    let dir = DataDir::create(data_dir)?;
    let master = dir.master_key(std::env::var(MASTER_KEY_ENV).ok().as_deref())?;
    let admin_token = dir.admin_token()?;
    let store = SqliteStore::open(&dir.database())
        .await
        .with_context(|| format!("cannot open the store in `{}`", data_dir.display()))?;
    let listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let local = listener.local_addr()?;
    let issuer = opts.issuer.unwrap_or_else(|| format!("http://{local}"));
    let mut config = AuthorityConfig::new(issuer.clone());
    if let Some(ttl) = opts.token_ttl_secs {
        config.token_ttl_secs = ttl;
    }
    let limits = config.limits.clone();
    let authority = Authority::start(
        config,
        Arc::new(store),
        master,
        &admin_token,
        Arc::new(SystemClock),
    )
    .await?;
    authority.maintain().await;
    let maintenance = authority.spawn_maintenance(Duration::from_secs(60));
    dir.write_server_info(&ServerInfo {
        authority_url: format!("http://{local}"),
        pid: std::process::id(),
    })?;
    let (tx, rx) = oneshot::channel::<()>();
    let app = router(authority);
    let task = tokio::spawn(async move {
        let result = server::serve(listener, app, limits, async {
            let _ = rx.await;
        })
        .await;
        maintenance.abort();
        dir.remove_server_info();
        result.context("server failed")
    });
    Ok(Running {
        authority_url: format!("http://{local}"),
        admin_token: admin_token.to_string(),
        shutdown: tx,
        task,
    })
}
