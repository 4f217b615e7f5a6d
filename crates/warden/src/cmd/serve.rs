//! `warden serve`, `warden gateway` and `warden demo`: the commands that run servers. What a
//! server is and how it starts lives in `crate::serve`; this module only turns arguments into
//! its options, announces the addresses, and waits for the stop signal.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;

use super::{init_logging, Common, Outcome, StopSignal};
use crate::{demo, fdlimit};

#[derive(Debug, clap::Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Address of the authority (OAuth endpoints, JWKS, lifecycle API).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the authority's ops endpoints (`/healthz`, `/readyz`, `/metrics`); keep it
    /// off the public network. Port 0 picks a free port, printed at start.
    #[arg(long, default_value = "127.0.0.1:9900")]
    ops_listen: SocketAddr,
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
    /// Address of the gateway's ops endpoints (`/healthz`, `/metrics`, `/_warden`; default:
    /// the config's `ops_listen`, else 127.0.0.1:9901).
    #[arg(long, requires = "config")]
    gateway_ops_listen: Option<SocketAddr>,
    /// Connections the authority holds open at once (default 10000, lowered to fit the
    /// open-file limit); one more is answered 503 and closed. The gateway's cap is
    /// `max_connections` in its config.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_connections: Option<usize>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

/// `warden gateway --authority URL --credentials FILE --config FILE` runs a gateway as the
/// service principal of its credential file; `warden gateway enroll` makes that file.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct GatewayArgs {
    #[command(subcommand)]
    action: Option<GatewayAction>,
    /// `--credentials FILE`: the gateway's own credential file (`warden gateway enroll`).
    #[command(flatten)]
    common: Common,
    /// Base URL of the authority.
    #[arg(long, required = true)]
    authority: Option<String>,
    #[arg(long, required = true)]
    config: Option<PathBuf>,
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of the ops endpoints (`/healthz`, `/metrics`, `/_warden`; default: the
    /// config's `ops_listen`, else 127.0.0.1:9901). Port 0 picks a free port, printed at
    /// start.
    #[arg(long)]
    ops_listen: Option<SocketAddr>,
    /// Break-glass instead of credentials: a file holding the authority's bootstrap admin
    /// token (or env WARDEN_ADMIN_TOKEN).
    #[arg(long, env = "WARDEN_ADMIN_TOKEN_FILE", conflicts_with = "credentials")]
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

#[derive(Debug, clap::Subcommand)]
enum GatewayAction {
    /// Enroll a gateway: a service principal of the system tenant with `warden:gateway`, and
    /// its credential file (mode 0600).
    Enroll(EnrollArgs),
}

/// `--data-dir`, `--credentials` and `--json` are the parent's, global.
#[derive(Debug, clap::Args)]
struct EnrollArgs {
    /// The gateway's name, unique among gateways.
    #[arg(long)]
    name: String,
    /// Where to write the credential file; an existing file is never overwritten.
    #[arg(long)]
    out: PathBuf,
}

/// Runs the authority (and the gateway with `--config`) until Ctrl-C or SIGTERM.
pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<Outcome> {
    let ServeArgs {
        common,
        listen,
        ops_listen,
        issuer,
        token_ttl,
        audit_stdout,
        witnesses,
        database,
        config,
        gateway_listen,
        gateway_ops_listen,
        max_connections,
        log_json,
    } = args;
    init_logging(log_json);
    fdlimit::raise();
    let stop = StopSignal::listen();
    let running = crate::serve::start(
        &common.data_dir,
        crate::serve::ServeOptions {
            audit_stdout,
            witnesses: witnesses.into(),
            database,
            listen,
            ops_listen,
            issuer,
            token_ttl_secs: token_ttl,
            config,
            gateway_listen,
            gateway_ops_listen,
            max_connections,
        },
    )
    .await?;
    if let Some(g) = &running.gateway {
        eprintln!("warden gateway on {}  (ops: {})", g.url, g.ops_url);
    }
    tracing::info!(authority = %running.authority_url, data_dir = %common.data_dir.display(), "warden serving");
    eprintln!(
        "warden authority on {}  (ops: {}, data: {}, admin token: {}/admin.token)",
        running.authority_url,
        running.ops_url,
        common.data_dir.display(),
        common.data_dir.display()
    );
    let crate::serve::Running {
        shutdown, mut task, ..
    } = running;
    tokio::select! {
        r = &mut task => r??,
        () = stop.wait() => {
            tracing::info!("shutting down");
            let _ = shutdown.send(());
            // Returning here would end the process under the audit writer: the final
            // checkpoint is durable, and handed to the witnesses, only once the task ends.
            task.await??;
        }
    }
    Ok(Outcome::Done)
}

/// Runs a gateway alone against a running authority until Ctrl-C or SIGTERM, or enrolls one.
pub(super) async fn gateway(args: GatewayArgs) -> anyhow::Result<Outcome> {
    let GatewayArgs {
        action,
        common,
        authority,
        config,
        listen,
        ops_listen,
        admin_token_file,
        log_json,
        audit_dir,
        witnesses,
    } = args;
    if let Some(GatewayAction::Enroll(args)) = action {
        return enroll(args, &common).await;
    }
    let (Some(authority), Some(config)) = (authority, config) else {
        anyhow::bail!("a gateway needs --authority URL and --config FILE");
    };
    init_logging(log_json);
    fdlimit::raise();
    let stop = StopSignal::listen();
    let auth = match (
        common.credentials,
        admin_token_file,
        std::env::var("WARDEN_ADMIN_TOKEN").ok(),
    ) {
        (Some(path), _, _) => warden_api::client::Auth::Principal {
            credentials: Box::new(warden_api::Credentials::read(&path)?),
            scope: Some(warden_api::scope::GATEWAY.into()),
        },
        (None, Some(f), _) => warden_api::client::Auth::BreakGlass(
            std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read `{}`", f.display()))?
                .trim()
                .to_owned()
                .into(),
        ),
        (None, None, Some(t)) => warden_api::client::Auth::BreakGlass(t.into()),
        (None, None, None) => anyhow::bail!(
            "the gateway needs its credentials (--credentials FILE, from `warden gateway enroll`), \
             or break-glass: --admin-token-file or WARDEN_ADMIN_TOKEN"
        ),
    };
    let listen = crate::serve::Listen {
        public: listen,
        ops: ops_listen,
    };
    let audit = match &audit_dir {
        Some(dir) => Some(crate::serve::open_gateway_audit(dir, &witnesses.into())?),
        None => None,
    };
    let mut running =
        crate::serve::start_gateway(&config, &authority, auth, listen, audit.clone(), 1).await?;
    eprintln!(
        "warden gateway on {} (ops: {}, authority {authority})",
        running.urls.url, running.urls.ops_url
    );
    let served = tokio::select! {
        r = &mut running.handle => r.map_err(anyhow::Error::from).and_then(|r| r.map_err(Into::into)),
        () = stop.wait() => {
            tracing::info!("shutting down");
            running.stop().await;
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

/// `warden gateway enroll`: the principal at the authority, then its credential file.
async fn enroll(args: EnrollArgs, common: &Common) -> anyhow::Result<Outcome> {
    let minting = super::minted::Minting::begin(&args.out)?;
    let admin = super::connect(common)?;
    let req = warden_api::gateway::EnrollGateway {
        name: args.name,
        public_key: minting.public_key(),
    };
    let enrolled = admin.api().enroll_gateway(&req).await?;
    let made = super::minted::Minted {
        client_id: enrolled.client_id,
        tenant: serde_json::to_value(&enrolled.tenant)?,
        scopes: serde_json::to_value(&enrolled.scopes)?,
    };
    minting.finish(&admin, made, common.json)?;
    Ok(Outcome::Done)
}

/// The end-to-end walk-through: [`Outcome::CheckFailed`] if any step did not hold.
pub(super) async fn demo() -> anyhow::Result<Outcome> {
    fdlimit::raise();
    demo::run().await
}
