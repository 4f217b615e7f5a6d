//! The `warden` command: `serve`, `demo`, and the admin commands of the CLI contract.
//!
//! `main` parses the arguments, runs the command (`cmd`) and turns what it found into the
//! exit code of docs/cli.md; it decides nothing else.

mod admin_client;
mod api_transport;
mod cmd;
mod demo;
mod fdlimit;
mod json;
mod keyfile;
mod oauth_client;
mod report;
mod serve;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cmd::Outcome;

/// The gateway allocates a few short-lived buffers per request on every worker thread;
/// glibc's allocator spends ~9% of a worker's time on them (free-list consolidation
/// included), mimalloc's thread-local pages a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command did what was asked.
const EXIT_OK: u8 = 0;
/// The command ran and a check failed (`audit verify`, `policy test`, `demo`).
const EXIT_CHECK_FAILED: u8 = 1;
/// The command could not do its work: a usage error (clap exits with 2 itself), no running
/// server or none reachable, a request refused, a file that cannot be read.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    ExitCode::from(match runtime.block_on(cmd::run(cli)) {
        Ok(Outcome::Done) => EXIT_OK,
        Ok(Outcome::CheckFailed) => EXIT_CHECK_FAILED,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_ERROR
        }
    })
}
