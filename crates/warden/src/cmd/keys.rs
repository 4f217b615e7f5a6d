//! `warden keys`: the token-signing keys of the running server.

use clap::Subcommand;

use warden_api::admin::{Call, SigningKey};

use super::{connect, print, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Promote the published next key, retire the active one, publish a new next key.
    Rotate,
    List,
}

pub(super) async fn run(args: KeysArgs) -> anyhow::Result<Outcome> {
    let KeysArgs { action, common } = args;
    let admin = connect(&common)?;
    let out = match action {
        KeysAction::Rotate => admin.call_as::<Vec<SigningKey>>(Call::RotateKeys).await?,
        KeysAction::List => admin.call_as::<Vec<SigningKey>>(Call::ListKeys).await?,
    };
    print(&out, common.json);
    Ok(Outcome::Done)
}
