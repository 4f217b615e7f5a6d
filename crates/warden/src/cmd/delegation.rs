//! `warden delegation`: a user's consent that an agent acts for them — granted, listed,
//! shown and revoked on the running server.

use clap::Subcommand;
use serde_json::json;

use super::{connect, print, seg, Common, Outcome};

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
        DelegationAction::Show { id } => admin.get(&format!("/delegations/{}", seg(&id))).await?,
    };
    print(&out, common.json);
    Ok(Outcome::Done)
}
