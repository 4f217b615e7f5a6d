//! `warden user`: invite people. The link an invitation prints enrolls the person: they
//! open it, add Warden to their authenticator app, and are signed in.

use clap::Subcommand;
use warden_api::admin::{Call, CreateInvite, Invitation};

use super::{connect, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct UserArgs {
    #[command(subcommand)]
    action: UserAction,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Create a person and print the single-use link that enrolls them (valid 7 days).
    Invite {
        #[arg(long)]
        tenant: String,
        /// The name they will sign in with, unique in the tenant.
        #[arg(long)]
        name: String,
        /// Their ceiling, space-separated: what they can delegate to agents.
        #[arg(long)]
        scopes: Option<String>,
    },
}

pub(super) async fn run(args: UserArgs) -> anyhow::Result<Outcome> {
    let UserArgs { action, common } = args;
    let UserAction::Invite {
        tenant,
        name,
        scopes,
    } = action;
    let admin = connect(&common)?;
    let body = CreateInvite { name, scopes };
    let out: Invitation = admin.typed(Call::InviteUser(tenant, body)).await?;
    if common.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("{}", out.invite_url);
        eprintln!(
            "invited {} ({}); the link works once, until {}",
            out.user.name, out.user.id, out.expires_at
        );
    }
    Ok(Outcome::Done)
}
