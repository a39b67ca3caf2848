//! `roster`: HR-driven identity provisioning. See `roster --help` and the README.

mod apply;
mod approvals;
mod audit;
mod cli;
mod correlation;
mod exit;
mod explain;
mod init;
mod lock;
mod notify;
mod password;
mod run;
mod secrets;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// Planning makes and frees many small values per person (records, expression values, the plan's
/// attributes): mimalloc does that in about half the time of the system allocator, with less
/// memory left in fragments (`docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::ERROR.into();
        }
    };
    let code = runtime.block_on(cli::dispatch(cli));
    ExitCode::from(code)
}
