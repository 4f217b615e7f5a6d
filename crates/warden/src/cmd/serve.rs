//! `warden serve`, `warden gateway` and `warden demo`: the commands that run servers. What a
//! server is and how it starts lives in `crate::serve`; this module only turns arguments into
//! its options, announces the addresses, and waits for the stop signal.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;

use super::{init_logging, shutdown_signal, Common, Outcome};
use crate::{demo, fdlimit};

#[derive(Debug, clap::Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Address of the authority (OAuth endpoints, JWKS, lifecycle API).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The `iss` of issued tokens (default: http://LISTEN).
    #[arg(long)]
    issuer: Option<String>,
    /// Access-token lifetime in seconds (default 900; never above a tenant's ceiling).
    #[arg(long)]
    token_ttl: Option<i64>,
    /// Mirror every durable audit batch to stdout as JSON lines (for a SIEM pipeline).
    #[arg(long)]
    audit_stdout: bool,
    #[command(flatten)]
    witnesses: WitnessArgs,
    /// The store: `postgres://USER:PASS@HOST/DB` for replicas sharing one PostgreSQL
    /// (they must share WARDEN_MASTER_KEY too); default: SQLite in the data directory.
    #[arg(long, env = "WARDEN_DATABASE_URL")]
    database: Option<String>,
    /// Run the gateway too, with the routes of this file (`[gateway]` table).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address of the gateway (default: the config's `listen`, else 127.0.0.1:8443).
    #[arg(long, requires = "config")]
    gateway_listen: Option<SocketAddr>,
    /// Connections the authority holds open at once (default 10000, lowered to fit the
    /// open-file limit); one more is answered 503 and closed. The gateway's cap is
    /// `max_connections` in its config.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_connections: Option<usize>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct GatewayArgs {
    /// Base URL of the authority.
    #[arg(long)]
    authority: String,
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// File holding the admin token used to publish the gateway's key (or env
    /// WARDEN_ADMIN_TOKEN).
    #[arg(long, env = "WARDEN_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    #[arg(long)]
    log_json: bool,
    /// Keep the gateway's decisions in its own hash-chained, checkpointed audit log in this
    /// directory (signing key `audit.key` created there, 0600); verify it with
    /// `warden audit verify --log-dir DIR`. Without it, the config's `audit_log` file (plain
    /// JSON lines) or the process log.
    #[arg(long, env = "WARDEN_GATEWAY_AUDIT_DIR")]
    audit_dir: Option<PathBuf>,
    #[command(flatten)]
    witnesses: WitnessArgs,
}

/// Where each audit checkpoint is handed besides the log: `warden audit verify --witness`
/// checks the log against them.
#[derive(Debug, clap::Args)]
struct WitnessArgs {
    /// Append every signed audit checkpoint to this file, outside the data directory (make
    /// it append-only, or keep it on another machine's mount). Repeatable.
    #[arg(long = "audit-witness-file", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// POST every signed audit checkpoint (JSON) to this URL; a failure is retried a few
    /// times, then logged and counted, and never holds the log. Repeatable.
    #[arg(long = "audit-witness-url", value_name = "URL")]
    urls: Vec<String>,
}

impl From<WitnessArgs> for crate::serve::Witnesses {
    fn from(w: WitnessArgs) -> Self {
        Self {
            files: w.files,
            urls: w.urls,
        }
    }
}

/// Runs the authority (and the gateway with `--config`) until Ctrl-C or SIGTERM.
pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<Outcome> {
    let ServeArgs {
        common,
        listen,
        issuer,
        token_ttl,
        audit_stdout,
        witnesses,
        database,
        config,
        gateway_listen,
        max_connections,
        log_json,
    } = args;
    init_logging(log_json);
    fdlimit::raise();
    let running = crate::serve::start(
        &common.data_dir,
        crate::serve::ServeOptions {
            audit_stdout,
            witnesses: witnesses.into(),
            database,
            listen,
            issuer,
            token_ttl_secs: token_ttl,
            config,
            gateway_listen,
            max_connections,
        },
    )
    .await?;
    if let Some(g) = &running.gateway_url {
        eprintln!("warden gateway on {g}");
    }
    tracing::info!(authority = %running.authority_url, data_dir = %common.data_dir.display(), "warden serving");
    eprintln!(
        "warden authority on {}  (data: {}, admin token: {}/admin.token)",
        running.authority_url,
        common.data_dir.display(),
        common.data_dir.display()
    );
    let crate::serve::Running {
        shutdown, mut task, ..
    } = running;
    tokio::select! {
        r = &mut task => r??,
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            let _ = shutdown.send(());
            // Returning here would end the process under the audit writer: the final
            // checkpoint is durable, and handed to the witnesses, only once the task ends.
            task.await??;
        }
    }
    Ok(Outcome::Done)
}

/// Runs a gateway alone against a running authority until Ctrl-C or SIGTERM.
pub(super) async fn gateway(args: GatewayArgs) -> anyhow::Result<Outcome> {
    let GatewayArgs {
        authority,
        config,
        listen,
        admin_token_file,
        log_json,
        audit_dir,
        witnesses,
    } = args;
    init_logging(log_json);
    fdlimit::raise();
    let token = match (admin_token_file, std::env::var("WARDEN_ADMIN_TOKEN").ok()) {
        (Some(f), _) => std::fs::read_to_string(&f)
            .with_context(|| format!("cannot read `{}`", f.display()))?
            .trim()
            .to_owned(),
        (None, Some(t)) => t,
        (None, None) => anyhow::bail!(
            "the gateway needs the admin token to publish its key: --admin-token-file or WARDEN_ADMIN_TOKEN"
        ),
    };
    let audit = match &audit_dir {
        Some(dir) => Some(crate::serve::open_gateway_audit(dir, &witnesses.into())?),
        None => None,
    };
    let mut started =
        crate::serve::start_gateway(&config, &authority, &token, listen, audit.clone(), 1).await?;
    eprintln!("warden gateway on {} (authority {authority})", started.url);
    let served = tokio::select! {
        r = &mut started.handle => r.map_err(anyhow::Error::from).and_then(|r| r.map_err(Into::into)),
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            started.stop().await;
            Ok(())
        }
    };
    if let Some(log) = audit {
        // As for `warden serve`: the final checkpoint is durable before the process exits.
        match log.close().await {
            Ok(entries) => tracing::info!(entries, "audit log closed under a final checkpoint"),
            Err(e) => tracing::error!(error = %e, "closing the audit log failed"),
        }
    }
    served?;
    Ok(Outcome::Done)
}

/// The end-to-end walk-through: [`Outcome::CheckFailed`] if any step did not hold.
pub(super) async fn demo() -> anyhow::Result<Outcome> {
    fdlimit::raise();
    demo::run().await
}
