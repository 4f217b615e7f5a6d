//! Command-line surface (the CLI contract in the design): parsed raw by clap, then run.
//!
//! This module owns the top-level `Cli` and `Command` types, the dispatch to one module per
//! command group, and the helpers those modules share (finding the running server, printing
//! answers, logging, the stop signal). A group's own arguments and behaviour live in its
//! module; nothing here decides an exit code — commands say what they found as an
//! [`Outcome`] and `main` turns that into the code docs/cli.md documents.

mod admin;
mod audit;
mod client;
mod delegation;
mod honeytoken;
mod keys;
mod minted;
mod policy;
mod principal;
mod report;
mod revoke;
mod serve;
mod tenant;
mod token;
mod user;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::Value;
use warden_authority::data_dir::DataDir;

use crate::admin_client::AdminClient;

/// What a command found once it ran to its end. An error (usage, no server, a refused
/// request, a file that cannot be read) is not an outcome: it is the `Err` beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The command did what was asked.
    Done,
    /// The command ran and a check it makes failed: `audit verify` found a break, `policy
    /// test` a decision other than expected, a `demo` step did not hold.
    CheckFailed,
}

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "Zero-trust identity for AI agents, services and people"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Where the server keeps its state; admin commands find the running server here.
    #[arg(
        long,
        global = true,
        default_value = "./warden-data",
        env = "WARDEN_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Act as the principal in this credential file (`warden admin create`), with the
    /// scopes it holds; without it, admin commands use the break-glass token in the data
    /// directory.
    #[arg(long, global = true, env = "WARDEN_CREDENTIALS")]
    credentials: Option<PathBuf>,
}

// The order of the variants is the order `warden --help` lists them in.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the authority on the embedded store.
    Serve(serve::ServeArgs),
    /// Run a gateway alone, against a running authority.
    Gateway(serve::GatewayArgs),
    /// Policy tools.
    Policy(policy::PolicyArgs),
    /// Walk through issuing and verifying a token on temporary ports; exit 0 if every step held.
    Demo,
    /// Administrators: principals that act on the admin API with `--credentials`.
    Admin(admin::AdminArgs),
    /// Manage tenants.
    Tenant(tenant::TenantArgs),
    /// Manage users, agents and services.
    Principal(principal::PrincipalArgs),
    /// Manage the OAuth clients people sign in through (web, native and browser apps).
    Client(client::ClientArgs),
    /// Invite people: each gets a single-use link that sets up their sign-in.
    User(user::UserArgs),
    /// Revoke every token of a principal (as subject or anywhere in a delegation chain)
    /// issued before now, or one token by its `jti`. Gateways refuse them within milliseconds.
    Revoke(revoke::RevokeArgs),
    /// Manage delegation grants: a user's consent that an agent acts for them.
    Delegation(delegation::DelegationArgs),
    /// Make DPoP proofs (RFC 9449) for requests with a DPoP-bound token, one per line.
    DpopProof(token::DpopProofArgs),
    /// The tamper-evident audit log.
    Audit(audit::AuditArgs),
    /// Reports for reviews.
    Report(report::ReportArgs),
    /// Create honeytokens: credentials bound to no power whose use raises an alert.
    Honeytoken(honeytoken::HoneytokenArgs),
    /// Manage the token-signing keys.
    Keys(keys::KeysArgs),
    /// Generate an Ed25519 key pair for an agent or service (private JWK, mode 0600).
    Keygen(token::KeygenArgs),
    /// Obtain an access token with client credentials and private_key_jwt.
    Token(token::TokenArgs),
}

/// Runs the parsed command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Gateway(args) => serve::gateway(args).await,
        Command::Policy(args) => policy::run(args),
        Command::Demo => serve::demo().await,
        Command::Admin(args) => admin::run(args).await,
        Command::Tenant(args) => tenant::run(args).await,
        Command::Principal(args) => principal::run(args).await,
        Command::Client(args) => client::run(args).await,
        Command::User(args) => user::run(args).await,
        Command::Revoke(args) => revoke::run(args).await,
        Command::Delegation(args) => delegation::run(args).await,
        Command::DpopProof(args) => token::dpop_proof(args),
        Command::Audit(args) => audit::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Honeytoken(args) => honeytoken::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Keygen(args) => token::keygen(args),
        Command::Token(args) => token::token(args).await,
    }
}

/// The authority to administer, as the principal of `--credentials` (at the authority its
/// file names, else the one recorded in the data directory), or else with the break-glass
/// token of the server running from the data directory.
fn connect(common: &Common) -> anyhow::Result<AdminClient> {
    let dir = DataDir::existing(&common.data_dir);
    match &common.credentials {
        Some(path) => {
            let credentials = warden_api::Credentials::read(path)?;
            let url = match credentials.issuer() {
                Some(issuer) => issuer.to_owned(),
                None => dir.server_info()?.authority_url,
            };
            let auth = warden_api::client::Auth::Principal {
                credentials: Box::new(credentials),
                scope: None,
            };
            Ok(AdminClient::with_auth(&url, auth))
        }
        None => {
            let info = dir.server_info()?;
            let token = dir.read_admin_token()?;
            Ok(AdminClient::new(&info.authority_url, &token))
        }
    }
}

/// An admin answer on stdout: compact JSON with `--json`, else a list one item a line and
/// anything else pretty-printed.
fn print(v: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string(v).unwrap_or_default());
        return;
    }
    match v {
        Value::Array(items) => {
            for item in items {
                println!("{}", one_line(item));
            }
        }
        other => println!(
            "{}",
            serde_json::to_string_pretty(other).unwrap_or_default()
        ),
    }
}

/// One item of a list: the fields a reader scans for, `key=value` apart by two spaces.
fn one_line(v: &Value) -> String {
    let field = |k: &str| {
        v.get(k).map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    [
        "id",
        "client_id",
        "kid",
        "kind",
        "name",
        "state",
        "scopes",
        "redirect_uris",
    ]
    .iter()
    .filter_map(|k| field(k).map(|x| format!("{k}={x}")))
    .collect::<Vec<_>>()
    .join("  ")
}

pub fn unix_now() -> i64 {
    use warden_core::time::Clock as _;
    warden_core::time::SystemClock.now()
}

/// Logs to stderr at `RUST_LOG`'s level (default `info`), as JSON lines with `--log-json`.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Ctrl-C, or SIGTERM on Unix, listened for from the moment it is made: made before a
/// server starts, a signal that arrives while it is still starting (its address already
/// published) is kept and stops it cleanly once it runs, instead of killing the process
/// before its final audit checkpoint.
struct StopSignal {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignal {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                .ok();
            Self { signals }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.signals {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
