//! `warden revoke`: end every token of a principal, or one token by its `jti`. The command
//! answers once the server has made the revocation durable and pushed it to the gateways.

use warden_api::admin::{Call, Reason, Revocation, RevokeToken};

use super::{connect, print, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct RevokeArgs {
    #[arg(long, conflicts_with = "token", required_unless_present = "token")]
    principal: Option<String>,
    #[arg(long)]
    token: Option<String>,
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub(super) async fn run(args: RevokeArgs) -> anyhow::Result<Outcome> {
    let RevokeArgs {
        principal,
        token,
        reason,
        common,
    } = args;
    let admin = connect(&common)?;
    let out = match (principal, token) {
        (Some(p), _) => {
            admin
                .call_as::<Revocation>(Call::RevokePrincipal(p, Reason { reason }))
                .await?
        }
        (None, Some(jti)) => {
            admin
                .call_as::<Revocation>(Call::RevokeToken(RevokeToken { jti, reason }))
                .await?
        }
        (None, None) => anyhow::bail!("give --principal ID or --token JTI"),
    };
    print(&out, common.json);
    Ok(Outcome::Done)
}
