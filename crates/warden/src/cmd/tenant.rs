//! `warden tenant`: create, list, show, disable and enable tenants on the running server.

use clap::Subcommand;
use warden_api::admin::{Call, CreateTenant, SetClientKeyAge, Tenant};

use super::{connect, print, Common, Outcome};

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
            admin
                .call_as::<Tenant>(Call::CreateTenant(CreateTenant {
                    name,
                    max_token_ttl_secs: max_token_ttl,
                }))
                .await?
        }
        TenantAction::List => admin.call_as::<Vec<Tenant>>(Call::ListTenants).await?,
        TenantAction::Show { tenant } => admin.call_as::<Tenant>(Call::ShowTenant(tenant)).await?,
        TenantAction::Disable { tenant } => {
            admin.call_as::<Tenant>(Call::DisableTenant(tenant)).await?
        }
        TenantAction::Enable { tenant } => {
            admin.call_as::<Tenant>(Call::EnableTenant(tenant)).await?
        }
        TenantAction::SetKeyAge { tenant, secs } => {
            let secs = match secs.as_str() {
                "default" => None,
                n => Some(
                    n.parse::<i64>()
                        .map_err(|_| anyhow::anyhow!("`{n}` is neither seconds nor `default`"))?,
                ),
            };
            admin
                .call_as::<Tenant>(Call::SetClientKeyAge(
                    tenant,
                    SetClientKeyAge {
                        max_client_key_age_secs: secs,
                    },
                ))
                .await?
        }
    };
    print(&out, common.json);
    Ok(Outcome::Done)
}
