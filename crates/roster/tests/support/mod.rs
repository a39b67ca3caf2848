//! What the OpenLDAP integration tests share: a private server and a roster folder per test
//! ([`Lab`]), HR exports built in code ([`Hr`]), and the directory read back over LDAP
//! ([`Entry`]), so that assertions rest on what the server holds, not on what roster printed.

pub mod daemon;
mod directory;
mod hr;
mod lab;

pub use directory::{Entry, LOCKED};
pub use hr::{Hr, Worker};
pub use lab::{BASE, LEAVERS, Lab, PEOPLE, Run};

/// Runs the `roster` binary in `dir` (its `roster.toml`, dated `as_of`) with `args`: the exit code,
/// its standard output, and a text with the command and all it printed, for assertion messages.
pub fn run_roster(dir: &std::path::Path, as_of: &str, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .current_dir(dir)
        .env_remove("ROSTER_CONFIG")
        .env_remove("ROSTER_LOG")
        .env("ROSTER_ACTOR", "integration-test")
        .args(["--config", "roster.toml", "--as-of", as_of])
        .args(args)
        .output()
        .expect("running roster");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let text = format!(
        "roster --as-of {as_of} {}\n--- stdout\n{stdout}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), stdout, text)
}
