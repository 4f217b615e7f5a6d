//! Command-line surface (the CLI contract in the design): parsed raw by clap, then run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use warden_authority::data_dir::DataDir;

use crate::admin_client::AdminClient;
use crate::oauth_client::{discover_token_endpoint, obtain_token, Client};
use crate::{demo, fdlimit, keyfile, serve};

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
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the authority on the embedded store.
    Serve {
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
    },
    /// Run a gateway alone, against a running authority.
    Gateway {
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
    },
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Walk through issuing and verifying a token on temporary ports; exit 0 if every step held.
    Demo,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
        #[command(flatten)]
        common: Common,
    },
    /// Manage users, agents and services.
    Principal {
        #[command(subcommand)]
        action: PrincipalAction,
        #[command(flatten)]
        common: Common,
    },
    /// Revoke every token of a principal (as subject or anywhere in a delegation chain)
    /// issued before now, or one token by its `jti`. Gateways refuse them within milliseconds.
    Revoke {
        #[arg(long, conflicts_with = "token", required_unless_present = "token")]
        principal: Option<String>,
        #[arg(long)]
        token: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Manage delegation grants: a user's consent that an agent acts for them.
    Delegation {
        #[command(subcommand)]
        action: DelegationAction,
        #[command(flatten)]
        common: Common,
    },
    /// Make DPoP proofs (RFC 9449) for requests with a DPoP-bound token, one per line.
    DpopProof {
        /// The key the token is bound to (private JWK, as `warden keygen` writes).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The request's URL as the client addresses it (query ignored).
        #[arg(long)]
        url: String,
        /// The access token the proofs accompany (their `ath`).
        #[arg(long)]
        token: Option<String>,
        /// How many distinct proofs (each is single-use), e.g. for load tests.
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
        #[command(flatten)]
        common: Common,
    },
    /// Reports for reviews.
    Report {
        #[command(subcommand)]
        action: ReportAction,
        #[command(flatten)]
        common: Common,
    },
    /// Create honeytokens: credentials bound to no power whose use raises an alert.
    Honeytoken {
        #[command(subcommand)]
        action: HoneytokenAction,
        #[command(flatten)]
        common: Common,
    },
    /// Manage the token-signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        #[command(flatten)]
        common: Common,
    },
    /// Generate an Ed25519 key pair for an agent or service (private JWK, mode 0600).
    Keygen {
        /// Private key file to create.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Obtain an access token with client credentials and private_key_jwt.
    Token {
        #[arg(long)]
        client_id: String,
        /// Private key file (as written by `warden keygen`).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        resource: Option<String>,
        /// Obtain this many distinct tokens (one per line), e.g. for load tests.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Bind the token to this key (DPoP, RFC 9449): a private JWK as `warden keygen` writes.
        #[arg(long)]
        dpop_key: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Check the whole chain and every checkpoint signature; name the first break.
    Verify {
        /// The audit public key (JWK) to trust; default: the data directory's
        /// `audit.pub.jwk`. Pin a copy elsewhere: whoever can rewrite the log can rewrite
        /// that file too.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Print entries as JSON lines, exactly as stored.
    Export {
        /// Unix seconds, or a duration ago such as `30m`, `24h`, `7d` (default: everything).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
}

#[derive(Debug, Subcommand)]
enum ReportAction {
    /// Who can do what: principals, kinds, owners, scope ceilings, delegation grants, last
    /// issuance and last use.
    Access {
        /// One tenant (default: all).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: ReportFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
enum HoneytokenAction {
    /// Mint a realistic-looking credential (client id, secret, access token) bound to no
    /// power; its use anywhere is refused and raises a high-severity alert.
    Create {
        #[arg(long)]
        tenant: String,
        /// A name an attacker would find plausible.
        #[arg(long)]
        name: String,
        /// Scopes the bait token claims (cosmetic).
        #[arg(long)]
        scopes: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DelegationAction {
    /// Allow an agent to act for a user, within these scopes.
    Grant {
        #[arg(long)]
        user: String,
        #[arg(long)]
        agent: String,
        #[arg(long)]
        scopes: String,
        /// Seconds until the grant lapses (default: until revoked).
        #[arg(long)]
        expires_in: Option<i64>,
    },
    /// Withdraw a grant; tokens issued under it stop working.
    Revoke {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Show {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum TenantAction {
    /// Create a tenant.
    Create {
        name: String,
        /// Ceiling on token lifetime in this tenant, seconds.
        #[arg(long)]
        max_token_ttl: Option<i64>,
    },
    List,
    Show {
        tenant: String,
    },
    Disable {
        tenant: String,
    },
    Enable {
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
enum PrincipalAction {
    /// Create a user, agent or service.
    Create {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        #[arg(long, value_parser = ["agent", "service", "user"])]
        kind: String,
        #[arg(long)]
        name: String,
        /// The user who owns this agent or service.
        #[arg(long)]
        owner: Option<String>,
        /// Scope ceiling, space separated.
        #[arg(long)]
        scopes: Option<String>,
        /// Public JWK file to register (as written by `warden keygen`).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Resource indicator this principal may request tokens for (repeatable).
        #[arg(long = "audience")]
        audiences: Vec<String>,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Show {
        id: String,
    },
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
    /// Replace the scope ceiling.
    SetScopes {
        id: String,
        scopes: String,
    },
    /// Register or replace the public key.
    SetKey {
        id: String,
        public_key: PathBuf,
    },
    /// Create a client secret for client_secret_basic; shown once.
    Secret {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyAction {
    /// Run the policy test cases in DIR/tests/*.json against the policies in DIR.
    Test {
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Promote the published next key, retire the active one, publish a new next key.
    Rotate,
    List,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            common,
            listen,
            issuer,
            token_ttl,
            audit_stdout,
            database,
            config,
            gateway_listen,
            max_connections,
            log_json,
        } => {
            init_logging(log_json);
            fdlimit::raise();
            let running = serve::start(
                &common.data_dir,
                serve::ServeOptions {
                    audit_stdout,
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
            tokio::select! {
                r = running.task => r??,
                () = shutdown_signal() => {
                    let _ = running.shutdown.send(());
                    tracing::info!("shutting down");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            fdlimit::raise();
            demo::run().await
        }
        Command::Gateway {
            authority,
            config,
            listen,
            admin_token_file,
            log_json,
        } => {
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
            let (url, handle) =
                serve::start_gateway(&config, &authority, &token, listen, None, 1).await?;
            eprintln!("warden gateway on {url} (authority {authority})");
            tokio::select! {
                r = handle => { r??; }
                () = shutdown_signal() => tracing::info!("shutting down"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy {
            action: PolicyAction::Test { dir },
        } => {
            let report = warden_policy::run_tests(&dir)?;
            println!("{report}");
            Ok(if report.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Tenant { action, common } => {
            let admin = connect(&common.data_dir)?;
            let out = match action {
                TenantAction::Create {
                    name,
                    max_token_ttl,
                } => {
                    let mut body = json!({ "name": name });
                    if let Some(t) = max_token_ttl {
                        crate::json::set(&mut body, "max_token_ttl_secs", json!(t));
                    }
                    admin.post("/tenants", Some(&body)).await?
                }
                TenantAction::List => admin.get("/tenants").await?,
                TenantAction::Show { tenant } => {
                    admin.get(&format!("/tenants/{}", seg(&tenant))).await?
                }
                TenantAction::Disable { tenant } => {
                    admin
                        .post(&format!("/tenants/{}/disable", seg(&tenant)), None)
                        .await?
                }
                TenantAction::Enable { tenant } => {
                    admin
                        .post(&format!("/tenants/{}/enable", seg(&tenant)), None)
                        .await?
                }
            };
            print(&out, common.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Principal { action, common } => {
            let admin = connect(&common.data_dir)?;
            let out = match action {
                PrincipalAction::Create {
                    tenant,
                    kind,
                    name,
                    owner,
                    scopes,
                    public_key,
                    audiences,
                } => {
                    let mut body = json!({ "kind": kind, "name": name });
                    if let Some(o) = owner {
                        crate::json::set(&mut body, "owner", json!(o));
                    }
                    if let Some(s) = scopes {
                        crate::json::set(&mut body, "scopes", json!(s));
                    }
                    if !audiences.is_empty() {
                        crate::json::set(&mut body, "audiences", json!(audiences));
                    }
                    if let Some(path) = public_key {
                        crate::json::set(
                            &mut body,
                            "public_key",
                            serde_json::to_value(keyfile::read_public(&path)?)?,
                        );
                    }
                    admin
                        .post(
                            &format!("/tenants/{}/principals", seg(&tenant)),
                            Some(&body),
                        )
                        .await?
                }
                PrincipalAction::List { tenant } => {
                    admin
                        .get(&format!("/tenants/{}/principals", seg(&tenant)))
                        .await?
                }
                PrincipalAction::Show { id } => {
                    admin.get(&format!("/principals/{}", seg(&id))).await?
                }
                PrincipalAction::Disable { id } => {
                    admin
                        .post(&format!("/principals/{}/disable", seg(&id)), None)
                        .await?
                }
                PrincipalAction::Enable { id } => {
                    admin
                        .post(&format!("/principals/{}/enable", seg(&id)), None)
                        .await?
                }
                PrincipalAction::SetScopes { id, scopes } => {
                    admin
                        .put(
                            &format!("/principals/{}/scopes", seg(&id)),
                            &json!({ "scopes": scopes }),
                        )
                        .await?
                }
                PrincipalAction::SetKey { id, public_key } => {
                    let jwk = keyfile::read_public(&public_key)?;
                    admin
                        .put(
                            &format!("/principals/{}/public-key", seg(&id)),
                            &json!({ "public_key": jwk }),
                        )
                        .await?
                }
                PrincipalAction::Secret { id } => {
                    admin
                        .post(&format!("/principals/{}/secret", seg(&id)), None)
                        .await?
                }
            };
            print(&out, common.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke {
            principal,
            token,
            reason,
            common,
        } => {
            let admin = connect(&common.data_dir)?;
            let out = match (principal, token) {
                (Some(p), _) => {
                    admin
                        .post(
                            &format!("/principals/{}/revoke", seg(&p)),
                            Some(&json!({ "reason": reason })),
                        )
                        .await?
                }
                (None, Some(jti)) => {
                    admin
                        .post(
                            "/tokens/revoke",
                            Some(&json!({ "jti": jti, "reason": reason })),
                        )
                        .await?
                }
                (None, None) => anyhow::bail!("give --principal ID or --token JTI"),
            };
            print(&out, common.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Delegation { action, common } => {
            let admin = connect(&common.data_dir)?;
            let out = match action {
                DelegationAction::Grant {
                    user,
                    agent,
                    scopes,
                    expires_in,
                } => {
                    let mut body = json!({ "user": user, "agent": agent, "scopes": scopes });
                    if let Some(e) = expires_in {
                        crate::json::set(&mut body, "expires_in", json!(e));
                    }
                    admin.post("/delegations", Some(&body)).await?
                }
                DelegationAction::Revoke { id, reason } => {
                    admin
                        .post(
                            &format!("/delegations/{}/revoke", seg(&id)),
                            Some(&json!({ "reason": reason })),
                        )
                        .await?
                }
                DelegationAction::List { tenant } => {
                    admin
                        .get(&format!("/tenants/{}/delegations", seg(&tenant)))
                        .await?
                }
                DelegationAction::Show { id } => {
                    admin.get(&format!("/delegations/{}", seg(&id))).await?
                }
            };
            print(&out, common.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::DpopProof {
            key,
            method,
            url,
            token,
            count,
        } => {
            let key = keyfile::read_private(&key)?;
            if warden_core::dpop::normalize_htu(&url).is_none() {
                anyhow::bail!("--url `{url}` must be an absolute http(s) URL");
            }
            let method = method.to_ascii_uppercase();
            let now = unix_now();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for _ in 0..count {
                let proof =
                    crate::oauth_client::dpop_proof(&key, &method, &url, token.as_deref(), now)?;
                writeln!(out, "{proof}")?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { action, common } => {
            let dir = DataDir::existing(&common.data_dir);
            match action {
                AuditAction::Verify { key } => {
                    let key_file = key.unwrap_or_else(|| {
                        dir.path()
                            .join(warden_authority::data_dir::AUDIT_PUBLIC_KEY_FILE)
                    });
                    let text = std::fs::read_to_string(&key_file)
                        .with_context(|| format!("cannot read `{}`", key_file.display()))?;
                    let jwk: warden_core::jwks::Jwk = serde_json::from_str(&text)
                        .with_context(|| format!("`{}` is not a JWK", key_file.display()))?;
                    let keys = warden_audit::KeyRing::new().with(jwk.to_public_key()?);
                    match warden_audit::verify_dir(&dir.audit_dir(), &keys) {
                        Ok(report) => {
                            let out = json!({
                                "status": "ok",
                                "entries": report.entries,
                                "checkpoints": report.checkpoints,
                                "signed_entries": report.signed_entries,
                                "head": report.head.to_b64(),
                                "torn_tail": report.torn_tail.map(|t| t.line),
                            });
                            print(&out, common.json);
                            Ok(ExitCode::SUCCESS)
                        }
                        Err(warden_audit::VerifyError::Tampered(finding)) => {
                            eprintln!("audit log does not verify: {finding}");
                            Ok(ExitCode::FAILURE)
                        }
                        Err(e) => Err(e.into()),
                    }
                }
                AuditAction::Export { since, format: _ } => {
                    let since_ms = match since {
                        None => i64::MIN,
                        Some(s) => parse_since(&s, unix_now())? * 1000,
                    };
                    let log = dir.audit_dir().join("audit.jsonl");
                    let stdout = std::io::stdout();
                    warden_audit::export(&log, since_ms, std::io::BufWriter::new(stdout.lock()))?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Report {
            action: ReportAction::Access { tenant, format },
            common,
        } => {
            let admin = connect(&common.data_dir)?;
            let tenants: Vec<String> = match tenant {
                Some(t) => vec![t],
                None => admin
                    .get("/tenants")
                    .await?
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| crate::json::field(t, "id").as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let mut rows = Vec::new();
            for t in &tenants {
                let report = admin
                    .get(&format!("/tenants/{}/access-report", seg(t)))
                    .await?;
                for mut row in report.as_array().cloned().unwrap_or_default() {
                    crate::json::set(&mut row, "tenant", json!(t));
                    rows.push(row);
                }
            }
            match format {
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                ReportFormat::Csv => print!("{}", crate::report::access_csv(&rows)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Honeytoken {
            action:
                HoneytokenAction::Create {
                    tenant,
                    name,
                    scopes,
                },
            common,
        } => {
            let admin = connect(&common.data_dir)?;
            let mut body = json!({ "name": name });
            if let Some(s) = scopes {
                crate::json::set(&mut body, "scopes", json!(s));
            }
            let out = admin
                .post(
                    &format!("/tenants/{}/honeytokens", seg(&tenant)),
                    Some(&body),
                )
                .await?;
            print(&out, common.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { action, common } => {
            let admin = connect(&common.data_dir)?;
            let out = match action {
                KeysAction::Rotate => admin.post("/keys/rotate", None).await?,
                KeysAction::List => admin.get("/keys").await?,
            };
            print(&out, common.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen { out, common } => {
            let public_path = public_path_for(&out);
            let jwk = keyfile::generate(&out, &public_path)?;
            if common.json {
                print(
                    &json!({ "private_key_file": out, "public_key_file": public_path, "public_key": jwk }),
                    true,
                );
            } else {
                println!(
                    "private key: {} (mode 0600; keep it with the agent)",
                    out.display()
                );
                println!("public key:  {}", public_path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            client_id,
            key,
            scope,
            resource,
            count,
            dpop_key,
            common,
        } => {
            let info = DataDir::existing(&common.data_dir).server_info()?;
            let http = reqwest::Client::new();
            let endpoint = discover_token_endpoint(&http, &info.authority_url).await?;
            let key = std::sync::Arc::new(keyfile::read_private(&key)?);
            let dpop_key = dpop_key
                .map(|f| keyfile::read_private(&f))
                .transpose()?
                .map(std::sync::Arc::new);
            if count <= 1 {
                let client = Client {
                    id: &client_id,
                    key: &key,
                    dpop_key: dpop_key.as_deref(),
                };
                let t = obtain_token(
                    &http,
                    &endpoint,
                    &client,
                    scope.as_deref(),
                    resource.as_deref(),
                    unix_now(),
                )
                .await?;
                if common.json {
                    print(
                        &json!({ "access_token": t.access_token, "token_type": t.token_type, "expires_in": t.expires_in, "scope": t.scope }),
                        true,
                    );
                } else {
                    println!("{}", t.access_token);
                }
                return Ok(ExitCode::SUCCESS);
            }
            // Many distinct tokens (load tests): 32 requests in flight.
            let mut set = tokio::task::JoinSet::new();
            let mut tokens = Vec::with_capacity(count);
            let mut next = 0;
            while tokens.len() < count {
                while next < count && set.len() < 32 {
                    next += 1;
                    let (http, endpoint, key, client_id) = (
                        http.clone(),
                        endpoint.clone(),
                        key.clone(),
                        client_id.clone(),
                    );
                    let (scope, resource) = (scope.clone(), resource.clone());
                    let dpop_key = dpop_key.clone();
                    set.spawn(async move {
                        let client = Client {
                            id: &client_id,
                            key: &key,
                            dpop_key: dpop_key.as_deref(),
                        };
                        obtain_token(
                            &http,
                            &endpoint,
                            &client,
                            scope.as_deref(),
                            resource.as_deref(),
                            unix_now(),
                        )
                        .await
                        .map(|t| t.access_token)
                    });
                }
                match set.join_next().await {
                    Some(r) => tokens.push(r??),
                    None => break,
                }
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for t in tokens {
                use std::io::Write as _;
                writeln!(out, "{t}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn connect(data_dir: &Path) -> anyhow::Result<AdminClient> {
    let dir = DataDir::existing(data_dir);
    let info = dir.server_info()?;
    let token = dir.read_admin_token()?;
    Ok(AdminClient::new(&info.authority_url, &token))
}

/// A path segment: ids and names never contain `/`, but a user-typed value might.
fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn public_path_for(private: &Path) -> PathBuf {
    let mut name = private
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".pub");
    private.with_file_name(name)
}

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

fn one_line(v: &Value) -> String {
    let field = |k: &str| {
        v.get(k).map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    ["id", "kid", "kind", "name", "state", "scopes"]
        .iter()
        .filter_map(|k| field(k).map(|x| format!("{k}={x}")))
        .collect::<Vec<_>>()
        .join("  ")
}

/// `--since`: unix seconds, or a duration ago (`90s`, `30m`, `24h`, `7d`).
fn parse_since(s: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(t) = s.parse::<i64>() {
        return Ok(t);
    }
    let (digits, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("--since `{s}`: give unix seconds or e.g. 30m, 24h, 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("--since `{s}`: the unit must be s, m, h or d"),
    };
    Ok(now - n.saturating_mul(secs))
}

pub fn unix_now() -> i64 {
    use warden_core::time::Clock as _;
    warden_core::time::SystemClock.now()
}

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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
