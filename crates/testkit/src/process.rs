//! Finding the servers' programs, running them, waiting until a server answers, and stopping the
//! processes they leave.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// Where a program is looked for after `PATH`: a non-root user's `PATH` on Debian lacks the
/// `sbin` folders that hold `slapd` and `slapadd`.
const EXTRA_PROGRAM_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/bin"];
/// How much of what a server printed an error message quotes.
const LOG_LINES_IN_ERRORS: usize = 40;

/// The absolute path of `program`, or an error that says which package is missing and how to
/// install it.
pub(crate) fn require_program(program: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(EXTRA_PROGRAM_DIRS.iter().map(PathBuf::from));
    find_program_in(program, dirs).ok_or_else(|| missing_program(program, package))
}

fn find_program_in(program: &str, dirs: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.into_iter()
        .map(|dir| dir.join(program))
        .find(|path| path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn missing_program(program: &str, package: &str) -> anyhow::Error {
    anyhow!(
        "`{program}` is not installed (looked in PATH and {}): the Debian package `{package}` is \
         missing; install what the tests need with `sudo scripts/install-test-deps.sh`",
        EXTRA_PROGRAM_DIRS.join(", ")
    )
}

/// The command line as a person would type it, for error messages. Callers keep secrets out of
/// arguments (password files instead), so it is safe to show.
pub(crate) fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .map(|arg| if arg.contains([' ', '\'', '"', '>', '&', ';']) { format!("'{arg}'") } else { arg.into_owned() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command` to completion with `stdin` as its input and returns its standard output; a
/// non-zero exit is an error that carries the command line and what the program printed.
pub(crate) fn run(command: &mut Command, stdin: Option<&str>) -> Result<String> {
    let described = describe(command);
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("could not run `{described}`"))?;
    // Written from another thread: a program may print a lot before it has read all its input.
    let writer = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_owned();
            Some(thread::spawn(move || pipe.write_all(input.as_bytes())))
        }
        _ => None,
    };
    let output = child.wait_with_output().with_context(|| format!("could not wait for `{described}`"))?;
    let write_result = writer.map(|writer| writer.join().expect("stdin writer thread panicked"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "`{described}` failed ({}):\n{}{}",
            output.status,
            stderr.trim_end(),
            if stdout.trim().is_empty() { String::new() } else { format!("\nits output:\n{}", stdout.trim_end()) }
        );
    }
    if let Some(Err(error)) = write_result {
        return Err(error).with_context(|| format!("could not write the input of `{described}`"));
    }
    Ok(stdout)
}

/// A server started in a child process, printing to its log file.
pub(crate) struct Spawned {
    pub child: Child,
    /// The command line, for error messages.
    pub described: String,
    pub log: LogTail,
}

/// Where in a log file a server's start began.
pub(crate) struct LogTail {
    path: PathBuf,
    start: u64,
}

impl LogTail {
    /// The last lines the server printed since its start, for an error message.
    pub(crate) fn read(&self) -> String {
        log_since(&self.path, self.start, LOG_LINES_IN_ERRORS)
    }
}

/// Starts `command` with its standard output and error appended to `log_path`, so that what
/// earlier starts printed stays there.
pub(crate) fn spawn_logging_to(command: &mut Command, log_path: &Path) -> Result<Spawned> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("could not open {}", log_path.display()))?;
    let start = log.metadata()?.len();
    command.stdout(log.try_clone()?).stderr(log);
    let described = describe(command);
    let child = command.spawn().with_context(|| format!("could not run `{described}`"))?;
    Ok(Spawned { child, described, log: LogTail { path: log_path.to_owned(), start } })
}

/// How a server's start ended.
pub(crate) enum Startup {
    Answering,
    Exited(ExitStatus),
    TimedOut,
}

/// Polls every `poll` until the server in `child` exits or `answers` says it answers, or
/// `timeout` has passed.
pub(crate) fn wait_for_answer(
    child: &mut Child,
    timeout: Duration,
    poll: Duration,
    mut answers: impl FnMut() -> bool,
) -> Result<Startup> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Startup::Exited(status));
        }
        if answers() {
            return Ok(Startup::Answering);
        }
        if Instant::now() >= deadline {
            return Ok(Startup::TimedOut);
        }
        thread::sleep(poll);
    }
}

/// Whether the child has exited (or can no longer be asked).
pub(crate) fn has_exited(child: &mut Child) -> bool {
    !matches!(child.try_wait(), Ok(None))
}

/// The process id in a server's pid file, if there is one; whether it is still the server's is
/// for the caller to check.
pub(crate) fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether a process with this id exists and has not exited (a zombie, exited but not yet
/// reaped by its parent, counts as gone).
pub(crate) fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|stat| !stat.zombie)
}

/// The live (not zombie) processes whose process group is `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|stat| !stat.zombie && stat.group == Some(pgid)))
        .collect()
}

/// What the testkit reads of `/proc/PID/stat`.
struct Stat {
    /// Exited but not yet reaped by its parent.
    zombie: bool,
    group: Option<u32>,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name, which may itself hold spaces: state, ppid, pgrp.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let zombie = fields.next() == Some("Z");
    let group = fields.nth(1).and_then(|field| field.parse().ok());
    Some(Stat { zombie, group })
}

/// The process's command line, arguments separated by spaces; None when it is gone.
pub(crate) fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(raw.split(|&b| b == 0).map(String::from_utf8_lossy).collect::<Vec<_>>().join(" ").trim_end().to_owned())
}

/// Sends `signal` (`TERM`, `KILL`) with the shell's `kill`, which every system has, where the
/// `kill` program is not part of a minimal Debian.
pub(crate) fn send_signal(pid: u32, signal: &str) -> Result<()> {
    shell_kill(signal, &pid.to_string()).with_context(|| format!("could not send SIG{signal} to process {pid}"))
}

/// Sends `signal` to every process of the group `pgid`.
pub(crate) fn send_signal_to_group(pgid: u32, signal: &str) -> Result<()> {
    shell_kill(signal, &format!("-{pgid}"))
        .with_context(|| format!("could not send SIG{signal} to process group {pgid}"))
}

fn shell_kill(signal: &str, target: &str) -> Result<()> {
    run(Command::new("sh").args(["-c", r#"kill -s "$1" -- "$2""#, "kill", signal, target]), None).map(drop)
}

/// Polls `done` every few milliseconds until it holds or `timeout` has passed; returns whether it
/// held.
pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `path` from byte `offset` on, keeping at most the last `max_lines` lines: what a program
/// logged since a given moment.
fn log_since(path: &Path, offset: u64, max_lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else { return format!("(no log at {})", path.display()) };
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// A program of the test virtual environment: `env_var` when set, else `.venv-test/bin/<name>` at
/// the repository root, where `scripts/install-test-deps.sh` installs the PyPI servers.
pub(crate) fn venv_program(name: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(path));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin").join(name);
    if venv.is_file() {
        return Ok(venv);
    }
    bail!(
        "`{name}` is not installed (looked for {} and {env_var}): install what the tests need with \
         `sudo scripts/install-test-deps.sh`, which puts it in .venv-test/",
        venv.display()
    )
}

/// Stops a server started as `child` (SIGTERM, then SIGKILL after `timeout`) and waits until it is
/// gone; nothing when there is none or it has exited.
pub(crate) fn stop_child(child: Option<Child>, name: &str, timeout: Duration) -> Result<()> {
    let Some(mut child) = child else { return Ok(()) };
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    send_signal(child.id(), "TERM")?;
    if !wait_until(timeout, || child.try_wait().is_ok_and(|s| s.is_some())) {
        child.kill().with_context(|| format!("could not kill {name}"))?;
        child.wait().with_context(|| format!("could not wait for {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_package_and_the_install_script() {
        assert_eq!(find_program_in("no-such-program-here", [PathBuf::from("/usr/bin")]), None);
        let message = missing_program("slapd", "slapd").to_string();
        assert!(message.contains("`slapd` is not installed"), "{message}");
        assert!(message.contains("scripts/install-test-deps.sh"), "{message}");
    }

    #[test]
    fn finds_programs_outside_path() {
        assert_eq!(
            find_program_in("sh", [PathBuf::from("/nonexistent"), PathBuf::from("/bin")]),
            Some("/bin/sh".into())
        );
    }

    #[test]
    fn a_failing_command_reports_its_line_and_stderr() {
        let error = run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]), None).unwrap_err().to_string();
        assert!(error.contains("sh -c 'echo oops >&2; exit 3'"), "{error}");
        assert!(error.contains("oops"), "{error}");
    }

    #[test]
    fn stdin_reaches_the_program() {
        assert_eq!(run(&mut Command::new("cat"), Some("hello")).unwrap(), "hello");
    }

    #[test]
    fn a_server_that_exits_is_reported_with_what_it_printed_this_time() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let log_path = dir.path().join("server.log");
        std::fs::write(&log_path, "an earlier start\n")?;
        let mut command = Command::new("sh");
        command.args(["-c", "echo failing; exit 3"]);
        let Spawned { mut child, log, .. } = spawn_logging_to(&mut command, &log_path)?;
        let startup = wait_for_answer(&mut child, Duration::from_secs(10), Duration::from_millis(5), || false)?;
        assert!(matches!(startup, Startup::Exited(status) if status.code() == Some(3)));
        assert_eq!(log.read(), "failing");
        Ok(())
    }

    #[test]
    fn this_process_is_in_its_group() {
        let group = stat(std::process::id()).and_then(|stat| stat.group).expect("this process's group");
        assert!(group_members(group).contains(&std::process::id()));
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_one_is_not() {
        assert!(is_alive(std::process::id()));
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }
}
