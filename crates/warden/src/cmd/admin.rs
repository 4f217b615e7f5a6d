//! `warden admin create`: an administrator principal and its credential file. The principal
//! is a service of its tenant holding `warden:tenant:admin` (that tenant only) or, with
//! `--all-tenants`, `warden:admin`; `--credentials FILE` on any admin command then acts as it.

use std::path::PathBuf;

use clap::Subcommand;
use warden_api::admin::{Call, CreatePrincipal, Principal};
use warden_api::scope::{ADMIN, TENANT_ADMIN};

use super::minted::{Minted, Minting};
use super::{connect, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct AdminArgs {
    #[command(subcommand)]
    action: AdminAction,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Create an administrator principal and write its credential file (mode 0600).
    Create {
        /// The tenant the administrator belongs to (and, without --all-tenants, administers).
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Administer every tenant (`warden:admin`), not only its own.
        #[arg(long)]
        all_tenants: bool,
        /// Where to write the credential file; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) async fn run(args: AdminArgs) -> anyhow::Result<Outcome> {
    let AdminArgs { action, common } = args;
    let AdminAction::Create {
        tenant,
        name,
        all_tenants,
        out,
    } = action;
    let minting = Minting::begin(&out)?;
    let admin = connect(&common)?;
    let scopes = if all_tenants { ADMIN } else { TENANT_ADMIN };
    let body = CreatePrincipal {
        kind: "service".into(),
        name,
        owner: None,
        scopes: Some(scopes.into()),
        audiences: None,
        public_key: Some(minting.public_key()),
    };
    let created: Principal = admin.typed(Call::CreatePrincipal(tenant, body)).await?;
    let made = Minted {
        client_id: created.id.to_string(),
        tenant: serde_json::to_value(&created.tenant)?,
        scopes: scopes.into(),
    };
    minting.finish(&admin, made, common.json)?;
    Ok(Outcome::Done)
}
