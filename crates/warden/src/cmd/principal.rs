//! `warden principal`: users, agents and services on the running server — their creation,
//! state, scope ceiling, public key and client secret.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::{connect, print, seg, Common, Outcome};
use crate::keyfile;

#[derive(Debug, clap::Args)]
pub(super) struct PrincipalArgs {
    #[command(subcommand)]
    action: PrincipalAction,
    #[command(flatten)]
    common: Common,
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
    /// Lift a revocation (`warden revoke --principal`, or a quarantine): the principal may ask
    /// for tokens again. Tokens ended by the revocation stay ended.
    Reinstate {
        id: String,
        /// A new public JWK file, replacing the key the principal had when it was revoked.
        #[arg(long)]
        public_key: Option<PathBuf>,
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
    /// Replace the principal's key with a fresh one written to --out (private JWK, 0600)
    /// and --out.pub, and register it: the old key stops working at once.
    RotateKey {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) async fn run(args: PrincipalArgs) -> anyhow::Result<Outcome> {
    let PrincipalArgs { action, common } = args;
    let admin = connect(&common)?;
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
        PrincipalAction::Show { id } => admin.get(&format!("/principals/{}", seg(&id))).await?,
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
        PrincipalAction::Reinstate { id, public_key } => {
            let body = match public_key {
                Some(path) => json!({ "public_key": keyfile::read_public(&path)? }),
                None => json!({}),
            };
            admin
                .post(&format!("/principals/{}/reinstate", seg(&id)), Some(&body))
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
        PrincipalAction::RotateKey { id, out } => {
            let mut public_path = out.clone().into_os_string();
            public_path.push(".pub");
            let jwk = keyfile::generate(&out, std::path::Path::new(&public_path))?;
            admin
                .put(
                    &format!("/principals/{}/public-key", seg(&id)),
                    &json!({ "public_key": jwk }),
                )
                .await?
        }
    };
    print(&out, common.json);
    Ok(Outcome::Done)
}
