//! `warden honeytoken`: bait credentials, minted by the running server, whose use anywhere
//! is refused and raises an alert.

use clap::Subcommand;
use warden_api::admin::{Call, CreateHoneytoken, Honeytoken};

use super::{connect, print, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct HoneytokenArgs {
    #[command(subcommand)]
    action: HoneytokenAction,
    #[command(flatten)]
    common: Common,
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

pub(super) async fn run(args: HoneytokenArgs) -> anyhow::Result<Outcome> {
    let HoneytokenArgs { action, common } = args;
    let HoneytokenAction::Create {
        tenant,
        name,
        scopes,
    } = action;
    let admin = connect(&common)?;
    let out = admin
        .call_as::<Honeytoken>(Call::CreateHoneytoken(
            tenant,
            CreateHoneytoken { name, scopes },
        ))
        .await?;
    print(&out, common.json);
    Ok(Outcome::Done)
}
