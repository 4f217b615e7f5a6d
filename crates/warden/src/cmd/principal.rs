//! `warden principal`: users, agents and services on the running server — their creation,
//! state, scope ceiling, public key and client secret.

use std::path::PathBuf;

use clap::Subcommand;
use warden_api::admin::{
    Call, ClientSecret, CreatePrincipal, Principal, Reinstate, SetPublicKey, SetScopes,
};

use super::{connect, print, Common, Outcome};
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
            let public_key = public_key.map(|p| keyfile::read_public(&p)).transpose()?;
            let body = CreatePrincipal {
                kind,
                name,
                owner,
                scopes,
                audiences: (!audiences.is_empty()).then_some(audiences),
                public_key,
            };
            admin
                .call_as::<Principal>(Call::CreatePrincipal(tenant, body))
                .await?
        }
        PrincipalAction::List { tenant } => {
            admin
                .call_as::<Vec<Principal>>(Call::ListPrincipals(tenant))
                .await?
        }
        PrincipalAction::Show { id } => admin.call_as::<Principal>(Call::ShowPrincipal(id)).await?,
        PrincipalAction::Disable { id } => {
            admin
                .call_as::<Principal>(Call::DisablePrincipal(id))
                .await?
        }
        PrincipalAction::Enable { id } => {
            admin
                .call_as::<Principal>(Call::EnablePrincipal(id))
                .await?
        }
        PrincipalAction::Reinstate { id, public_key } => {
            let public_key = public_key.map(|p| keyfile::read_public(&p)).transpose()?;
            admin
                .call_as::<Principal>(Call::ReinstatePrincipal(id, Reinstate { public_key }))
                .await?
        }
        PrincipalAction::SetScopes { id, scopes } => {
            admin
                .call_as::<Principal>(Call::SetScopes(id, SetScopes { scopes }))
                .await?
        }
        PrincipalAction::SetKey { id, public_key } => {
            let public_key = keyfile::read_public(&public_key)?;
            admin
                .call_as::<Principal>(Call::SetPublicKey(id, SetPublicKey { public_key }))
                .await?
        }
        PrincipalAction::Secret { id } => {
            admin.call_as::<ClientSecret>(Call::NewSecret(id)).await?
        }
        PrincipalAction::RotateKey { id, out } => {
            let mut public_path = out.clone().into_os_string();
            public_path.push(".pub");
            let public_key = keyfile::generate(&out, std::path::Path::new(&public_path))?;
            admin
                .call_as::<Principal>(Call::SetPublicKey(id, SetPublicKey { public_key }))
                .await?
        }
    };
    print(&out, common.json);
    Ok(Outcome::Done)
}
