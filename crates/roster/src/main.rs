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

// mimalloc is linked into this binary by the `mimalloc` crate; its option setter is not among the
// crate's bindings.
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (`mimalloc.h`, version 3).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// A one-shot command keeps the memory it frees for its next allocations instead of handing it
/// back to the system a second later: planning frees and allocates large blocks all along, and each
/// block handed back was zeroed again by the kernel when taken anew (a fifth of a daily run's CPU
/// at 100,000 persons; `docs/benchmarks.md`). `roster serve` runs for weeks and keeps the default,
/// so a run's peak is handed back between runs.
fn keep_freed_memory() {
    // SAFETY: a plain setter of an integer option, safe to call at any time from any thread.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Every page this process takes from the kernel is 4 KiB, not a transparent huge page of 2 MiB.
/// mimalloc asks for huge pages for its arenas, and the kernel zeroes each one whole at its first
/// touch: on the project's benchmark machine (a virtual machine; `docs/benchmarks.md`, eighteenth
/// pass) that was a third of a 100-change daily run's CPU at 100,000 persons, and small pages took
/// the run's system time from 0.7-1.3 s to 0.35-0.5 s and its wall time down by 0.4-0.6 s, with
/// no change to a first load or a million-record plan. Set first, for every command: the kernel
/// checks it at each page fault, whatever mimalloc asked for. The processes roster starts (its own
/// jobs, a password program) inherit it.
#[cfg(target_os = "linux")]
fn small_pages() {
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integers only and changes only this process's
    // page-size policy; a kernel without it returns an error, and roster then runs as before.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn small_pages() {}

fn main() -> ExitCode {
    small_pages();
    let cli = cli::Cli::parse();
    if !matches!(cli.command, cli::Command::Serve) {
        keep_freed_memory();
    }
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

#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    /// The option number names the purge delay in the mimalloc linked here, the one option whose
    /// default is 1,000 ms (a later mimalloc renumbering its options would make
    /// `keep_freed_memory` set another one).
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: a plain getter of an integer option.
        assert_eq!(unsafe { mi_option_get(super::MI_OPTION_PURGE_DELAY) }, 1000);
        super::keep_freed_memory();
        assert_eq!(unsafe { mi_option_get(super::MI_OPTION_PURGE_DELAY) }, -1);
    }

    /// The process's pages are small after `small_pages` (as the kernel reports it back).
    #[cfg(target_os = "linux")]
    #[test]
    fn transparent_huge_pages_are_off() {
        super::small_pages();
        // SAFETY: a getter of this process's own flag.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1);
    }
}
