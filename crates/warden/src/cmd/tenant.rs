//! `warden tenant`: create, list, show, disable and enable tenants on the running server.

use clap::Subcommand;
use serde_json::json;

use super::{connect, print, seg, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct TenantArgs {
    #[command(subcommand)]
    action: TenantAction,
    #[command(flatten)]
    common: Common,
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
    /// How old a client's registered key may get before it is refused (`default`: the
    /// authority's, 90 days).
    SetKeyAge {
        tenant: String,
        /// Seconds (at least a day), or `default`.
        secs: String,
    },
}

pub(super) async fn run(args: TenantArgs) -> anyhow::Result<Outcome> {
    let TenantArgs { action, common } = args;
    let admin = connect(&common)?;
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
        TenantAction::Show { tenant } => admin.get(&format!("/tenants/{}", seg(&tenant))).await?,
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
        TenantAction::SetKeyAge { tenant, secs } => {
            let secs = match secs.as_str() {
                "default" => serde_json::Value::Null,
                n => json!(n
                    .parse::<i64>()
                    .map_err(|_| anyhow::anyhow!("`{n}` is neither seconds nor `default`"))?),
            };
            admin
                .put(
                    &format!("/tenants/{}/client-key-age", seg(&tenant)),
                    &json!({ "max_client_key_age_secs": secs }),
                )
                .await?
        }
    };
    print(&out, common.json);
    Ok(Outcome::Done)
}
