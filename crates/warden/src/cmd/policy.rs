//! `warden policy`: policy tools that need no server.

use std::path::PathBuf;

use clap::Subcommand;

use super::Outcome;

#[derive(Debug, clap::Args)]
pub(super) struct PolicyArgs {
    #[command(subcommand)]
    action: PolicyAction,
}

#[derive(Debug, Subcommand)]
enum PolicyAction {
    /// Run the policy test cases in DIR/tests/*.json against the policies in DIR.
    Test {
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
}

/// [`Outcome::CheckFailed`] if any case's decision differs from its expectation.
pub(super) fn run(args: PolicyArgs) -> anyhow::Result<Outcome> {
    match args.action {
        PolicyAction::Test { dir } => {
            let report = warden_policy::run_tests(&dir)?;
            println!("{report}");
            Ok(if report.is_success() {
                Outcome::Done
            } else {
                Outcome::CheckFailed
            })
        }
    }
}
