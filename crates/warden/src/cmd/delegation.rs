//! `warden delegation`: a user's consent that an agent acts for them — granted, listed,
//! shown and revoked on the running server.

use clap::Subcommand;
use warden_api::admin::{Call, CreateGrant, Grant, Reason, Revocation};

use super::{connect, print, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct DelegationArgs {
    #[command(subcommand)]
    action: DelegationAction,
    #[command(flatten)]
    common: Common,
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

pub(super) async fn run(args: DelegationArgs) -> anyhow::Result<Outcome> {
    let DelegationArgs { action, common } = args;
    let admin = connect(&common)?;
    let out = match action {
        DelegationAction::Grant {
            user,
            agent,
            scopes,
            expires_in,
        } => {
            admin
                .call_as::<Grant>(Call::CreateGrant(CreateGrant {
                    user,
                    agent,
                    scopes,
                    expires_in,
                }))
                .await?
        }
        DelegationAction::Revoke { id, reason } => {
            admin
                .call_as::<Revocation>(Call::RevokeGrant(id, Reason { reason }))
                .await?
        }
        DelegationAction::List { tenant } => {
            admin
                .call_as::<Vec<Grant>>(Call::ListGrants(tenant))
                .await?
        }
        DelegationAction::Show { id } => admin.call_as::<Grant>(Call::ShowGrant(id)).await?,
    };
    print(&out, common.json);
    Ok(Outcome::Done)
}
