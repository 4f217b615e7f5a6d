//! `warden report`: reports for reviews, gathered from the running server. The CSV layout
//! is `crate::report`'s; this module only fetches the rows.

use clap::Subcommand;
use serde_json::json;

use warden_api::admin::{AccessRow, Call, Tenant};

use super::{connect, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct ReportArgs {
    #[command(subcommand)]
    action: ReportAction,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum ReportAction {
    /// Who can do what: principals, kinds, owners, scope ceilings, delegation grants, last
    /// issuance and last use.
    Access {
        /// One tenant (default: all).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: ReportFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Json,
    Csv,
}

pub(super) async fn run(args: ReportArgs) -> anyhow::Result<Outcome> {
    let ReportArgs { action, common } = args;
    let ReportAction::Access { tenant, format } = action;
    let admin = connect(&common)?;
    let tenants: Vec<String> = match tenant {
        Some(t) => vec![t],
        None => admin
            .typed::<Vec<Tenant>>(Call::ListTenants)
            .await?
            .into_iter()
            .map(|t| t.id.to_string())
            .collect(),
    };
    let mut rows = Vec::new();
    for t in &tenants {
        let report = admin
            .call_as::<Vec<AccessRow>>(Call::AccessReport(t.clone()))
            .await?;
        for mut row in report.as_array().cloned().unwrap_or_default() {
            crate::json::set(&mut row, "tenant", json!(t));
            rows.push(row);
        }
    }
    match format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ReportFormat::Csv => print!("{}", crate::report::access_csv(&rows)),
    }
    Ok(Outcome::Done)
}
