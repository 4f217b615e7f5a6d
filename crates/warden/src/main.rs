//! The `warden` command: `serve`, `demo`, and the admin commands of the CLI contract.

mod admin_client;
mod cli;
mod demo;
mod fdlimit;
mod json;
mod keyfile;
mod oauth_client;
mod report;
mod serve;

use std::process::ExitCode;

use clap::Parser as _;

/// The gateway allocates a few short-lived buffers per request on every worker thread;
/// glibc's allocator spends ~9% of a worker's time on them (free-list consolidation
/// included), mimalloc's thread-local pages a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
