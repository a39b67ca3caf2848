//! Faults for the crash, outage and secret tests: the real binary run with extra environment (a
//! failpoint, a secret), or started in the background to be killed or to lose its server; the
//! directory reduced to what two servers can share (no ids, no timestamps), to compare a crashed
//! and rerun directory with one that an uninterrupted run made; and a small seeded random source,
//! so that a failing random case can be run again.
//!
//! Included with `#[path]` by the test binaries that use it, after `support/mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ldap3::Scope;

use crate::support::{BASE, Entry, Lab, Run};

/// Attributes that differ between two servers, or between two runs, whatever roster does: ids,
/// change sequence numbers and timestamps; and memberOf, which the server derives from the groups'
/// `member` (compared in the groups themselves). OpenLDAP's memberOf overlay writes it while it
/// answers the group's modify; a client killed in the middle of that modify can leave the group
/// changed and memberOf not (seen in the random-kill test), whoever the client is.
const VOLATILE: [&str; 7] =
    ["entryuuid", "entrycsn", "createtimestamp", "modifytimestamp", "pwdchangedtime", "contextcsn", "memberof"];

/// The environment variable that names the crash tests' failpoint (see `run.rs`).
pub const FAILPOINT: &str = "ROSTER_FAILPOINT";

impl Lab {
    /// The command [`Lab::roster`] runs (same environment: the bind password in
    /// ROSTER_LDAP_PASSWORD, nothing inherited that would change what roster does), started
    /// through `sh` only to turn core dumps off: the crash tests abort it on purpose.
    pub fn roster_command(&self, as_of: &str, args: &[&str]) -> Command {
        let mut command = Command::new("/bin/sh");
        command
            .current_dir(self.dir())
            .env_remove("ROSTER_CONFIG")
            .env_remove("ROSTER_LOG")
            .env_remove(FAILPOINT)
            .env("ROSTER_ACTOR", "integration-test")
            .env("ROSTER_LDAP_PASSWORD", self.ldap.admin_password())
            .args(["-c", r#"ulimit -c 0; exec "$0" "$@""#, env!("CARGO_BIN_EXE_roster")])
            .arg("--config")
            .arg(self.config_path())
            .args(["--as-of", as_of])
            .args(args);
        command
    }

    /// [`Lab::roster`] with these extra environment variables.
    pub fn roster_env(&self, as_of: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.roster_command(as_of, args);
        command.envs(env.iter().copied());
        let output = command.output().expect("running the roster binary");
        Run {
            command: describe(as_of, args, env),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts roster in the background, its output going to files in a folder of its own.
    pub fn spawn(&self, as_of: &str, args: &[&str], env: &[(&str, &str)]) -> Background {
        let outputs = tempfile::Builder::new().prefix("roster-output-").tempdir().expect("a folder for the output");
        let stdout = outputs.path().join("stdout");
        let stderr = outputs.path().join("stderr");
        let mut command = self.roster_command(as_of, args);
        command
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("the stdout file"))
            .stderr(File::create(&stderr).expect("the stderr file"));
        let child = command.spawn().expect("starting the roster binary");
        Background { child, command: describe(as_of, args, env), stdout, stderr, _outputs: outputs }
    }

    /// Every entry of the database by lowercased DN, without the attributes that differ between
    /// servers or runs whatever roster does ([`VOLATILE`]) nor those named in `ignore`: what an
    /// uninterrupted run and a crashed-and-rerun one must agree on, entry for entry and value for
    /// value (DNs, owned attributes, locks, group members, the entries roster left alone).
    /// Generated initial passwords differ from run to run: `userPassword` compares by presence.
    pub fn comparable(&self, ignore: &[&str]) -> BTreeMap<String, Entry> {
        let mut dump = self.dump();
        let service = self.ldap.service_dn().to_lowercase();
        for (dn, entry) in &mut dump {
            entry.attrs.retain(|name, _| !VOLATILE.contains(&name.as_str()) && !ignore.contains(&name.as_str()));
            if *dn == service {
                // The harness gives every server's service account a random password.
                entry.attrs.remove("userpassword");
            } else if let Some(values) = entry.attrs.get_mut("userpassword") {
                *values = vec!["(a password)".to_owned()];
            }
        }
        dump
    }

    /// How many entries the database holds (the admin sees them all).
    pub fn entry_count(&self) -> usize {
        self.search(BASE, Scope::Subtree, "(objectClass=*)").len()
    }
}

fn describe(as_of: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let env: Vec<String> = env.iter().map(|(name, value)| format!("{name}={value} ")).collect();
    format!("{}roster --as-of {as_of} {}", env.concat(), args.join(" "))
}

/// A roster process started by [`Lab::spawn`].
pub struct Background {
    pub child: Child,
    command: String,
    stdout: PathBuf,
    stderr: PathBuf,
    _outputs: tempfile::TempDir,
}

impl Background {
    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What it has written to its standard error so far.
    pub fn stderr_so_far(&self) -> String {
        read(&self.stderr)
    }

    /// SIGKILL, unless it has exited already.
    pub fn kill(&mut self) {
        if self.running() {
            // It may exit between the check and the signal; then there is nothing to kill.
            let _ = self.child.kill();
        }
    }

    /// Waits for it to exit (at most `limit`, then kills it and fails the test) and returns what it
    /// printed. A process ended by a signal has code -1.
    pub fn finish(mut self, limit: Duration) -> Run {
        let started = Instant::now();
        while self.running() {
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("`{}` did not finish within {limit:?}:\n{}", self.command, read(&self.stderr));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let status = self.child.wait().expect("waiting for roster");
        Run {
            command: self.command.clone(),
            code: status.code().unwrap_or(-1),
            stdout: read(&self.stdout),
            stderr: read(&self.stderr),
        }
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// Polls `condition` every 10 ms for at most `limit`; whether it became true.
pub fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    condition()
}

/// What differs between two directories made by [`Lab::comparable`], one line per entry or
/// attribute, for a failure message; empty when they are the same.
pub fn differences(expected: &BTreeMap<String, Entry>, actual: &BTreeMap<String, Entry>) -> Vec<String> {
    let mut out = Vec::new();
    let dns: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    for dn in dns {
        match (expected.get(dn), actual.get(dn)) {
            (Some(_), None) => out.push(format!("missing: {dn}")),
            (None, Some(entry)) => out.push(format!("extra: {dn} {:?}", entry.attrs)),
            (Some(want), Some(got)) => {
                let names: BTreeSet<&String> = want.attrs.keys().chain(got.attrs.keys()).collect();
                for name in names {
                    let (w, g) = (want.attrs.get(name), got.attrs.get(name));
                    if w != g {
                        out.push(format!("{dn}: {name}: expected {w:?}, found {g:?}"));
                    }
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// A seed for the random cases: `ROSTER_TEST_SEED` when set (to run a failing case again), else
/// taken from the clock. Tests print it in every failure message.
pub fn seed() -> u64 {
    match std::env::var("ROSTER_TEST_SEED") {
        Ok(text) => text.parse().unwrap_or_else(|e| panic!("ROSTER_TEST_SEED={text:?}: {e}")),
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            now.as_nanos() as u64 | 1
        }
    }
}

/// xorshift64*: small, seeded, good enough to pick kill moments.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}
