//! One benchmark's world: a private OpenLDAP (no-sync, indexed, from `roster-testkit`), a folder
//! with the generated export and configuration, and the real `roster` binary run in it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use roster_testkit::{OpenLdap, OpenLdapOptions};
use tempfile::TempDir;

use crate::generate::{self, Directory, Spec};
use crate::measure::{self, Measured};

pub const PASSWORD_VARIABLE: &str = "ROSTER_BENCH_LDAP_PASSWORD";
pub const EXPORT: &str = "hr.csv";

pub struct Lab {
    pub ldap: OpenLdap,
    folder: TempDir,
    roster: PathBuf,
    pub spec: Spec,
}

impl Lab {
    /// Starts an empty directory and writes the export of `spec` and its configuration.
    pub fn start(work: &Path, roster: &Path, spec: Spec) -> Result<Lab> {
        let ldap = OpenLdap::start(OpenLdapOptions::default()).context("starting OpenLDAP")?;
        let folder = tempfile::Builder::new().prefix("roster-bench-").tempdir_in(work).context("a bench folder")?;
        let directory = Directory {
            url: ldap.url(),
            suffix: ldap.suffix().to_owned(),
            bind_dn: ldap.admin_dn().to_owned(),
            password_variable: PASSWORD_VARIABLE.to_owned(),
        };
        std::fs::write(folder.path().join("roster.toml"), generate::config(&directory, EXPORT))?;
        let lab = Lab { ldap, folder, roster: roster.to_owned(), spec };
        lab.export(&lab.spec)?;
        Ok(lab)
    }

    pub fn dir(&self) -> &Path {
        self.folder.path()
    }

    /// Writes the export of `spec` over the current one.
    pub fn export(&self, spec: &Spec) -> Result<()> {
        generate::write_export(spec, &self.dir().join(EXPORT)).map(drop)
    }

    /// Runs `roster --as-of <spec's day> ARGS`, which must succeed; standard output to `stdout_to`
    /// (relative to the folder) when given.
    pub fn roster(&self, args: &[&str], stdout_to: Option<&str>) -> Result<Measured> {
        let password = (PASSWORD_VARIABLE, self.ldap.admin_password());
        run_roster(&self.roster, self.dir(), password, self.spec.as_of, args, stdout_to)
    }

    /// Stops the directory and keeps a copy of its database and of the store, for
    /// [`Lab::restore`], which starts it again.
    pub fn keep(&mut self) -> Result<Kept> {
        self.ldap.stop().context("stopping OpenLDAP")?;
        let folder =
            tempfile::Builder::new().prefix("kept-").tempdir_in(self.dir()).context("a folder for the copies")?;
        copy_files(&self.ldap.data_dir(), &folder.path().join("data"), |_| true)?;
        copy_files(self.dir(), &folder.path().join("store"), is_store_file)?;
        Ok(Kept { folder })
    }

    /// Puts the directory and the store back as [`Lab::keep`] kept them, starts the directory
    /// and reads all of it once (a restarted slapd holds nothing of its database in memory, where
    /// a daily run meets a directory that has been serving), then writes every file's pages to
    /// disk, so that the next run's own syncs do not pay for the copies.
    pub fn restore(&mut self, kept: &Kept) -> Result<()> {
        self.ldap.stop().context("stopping OpenLDAP")?;
        put_back(&kept.folder.path().join("data"), &self.ldap.data_dir(), |_| true)?;
        put_back(&kept.folder.path().join("store"), self.dir(), is_store_file)?;
        self.ldap.start_again().context("starting OpenLDAP again")?;
        self.ldap.search(self.ldap.suffix(), "(objectClass=*)", &["*", "memberOf"]).context("reading the directory")?;
        sync();
        Ok(())
    }

    /// Entries under the suffix created or modified at or after `since` (an LDAP generalized
    /// time): the writes a run made, as the directory itself saw them.
    pub fn entries_written_since(&self, since: &str) -> Result<u64> {
        let filter = format!("(modifyTimestamp>={since})");
        let ldif = self.ldap.search(self.ldap.suffix(), &filter, &["1.1"])?;
        Ok(ldif.lines().filter(|l| l.starts_with("dn:")).count() as u64)
    }
}

/// A copy of a lab's directory database and store ([`Lab::keep`]), removed with it.
pub struct Kept {
    folder: TempDir,
}

/// The store's files: the SQLite database and the files beside it (its journal, lock, audit key).
fn is_store_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("roster.db"))
}

/// The files (not the folders) of `dir` that `wanted` takes.
fn files_in(dir: &Path, wanted: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let reading = || format!("reading {}", dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(reading)? {
        let path = entry.with_context(reading)?.path();
        if path.is_file() && wanted(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

/// Copies the files of `from` that `wanted` takes into `to`, made if missing.
fn copy_files(from: &Path, to: &Path, wanted: impl Fn(&Path) -> bool) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for path in files_in(from, wanted)? {
        let copy = to.join(path.file_name().unwrap_or_default());
        std::fs::copy(&path, &copy).with_context(|| format!("copying {} to {}", path.display(), copy.display()))?;
    }
    Ok(())
}

/// Replaces the files of `live` that `wanted` takes with those [`copy_files`] kept in `kept`.
/// They are removed first: a file the copy lacks (a SQLite `-wal` or `-shm`) must not survive.
fn put_back(kept: &Path, live: &Path, wanted: impl Fn(&Path) -> bool) -> Result<()> {
    for path in files_in(live, wanted)? {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    copy_files(kept, live, |_| true)
}

/// Writes every file's changed pages to disk (`sync(2)`).
fn sync() {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() }
}

/// Runs `roster --config roster.toml --as-of AS_OF ARGS` in `dir`, which must succeed, with the bind
/// password in the environment variable `password.0`; standard output to `stdout_to` (relative to
/// `dir`) when given.
pub fn run_roster(
    roster: &Path,
    dir: &Path,
    password: (&str, &str),
    as_of: chrono::NaiveDate,
    args: &[&str],
    stdout_to: Option<&str>,
) -> Result<Measured> {
    let mut command = Command::new(roster);
    command
        .current_dir(dir)
        .env(password.0, password.1)
        .env_remove("ROSTER_CONFIG")
        .env_remove("ROSTER_LOG")
        .args(["--config", "roster.toml", "--as-of"])
        .arg(as_of.format("%Y-%m-%d").to_string())
        .args(args);
    let out = stdout_to.map(|f| dir.join(f));
    let measured = measure::run(command, out.as_deref())?;
    if measured.code != 0 {
        bail!("roster {} exited with {}:\n{}{}", args.join(" "), measured.code, measured.stdout, measured.stderr);
    }
    Ok(measured)
}

/// The directory's clock as an LDAP generalized time, one second ahead, after waiting for that
/// second to come: every write after this returns carries a later or equal timestamp.
pub fn generalized_time_now() -> String {
    let now = chrono::Utc::now() + chrono::Duration::seconds(1);
    let wait = 1000 - u64::from(now.timestamp_subsec_millis());
    std::thread::sleep(std::time::Duration::from_millis(wait));
    now.format("%Y%m%d%H%M%SZ").to_string()
}

/// The number in "N operation(s) applied" of `roster run`'s summary line.
pub fn operations_applied(run: &Measured) -> Result<u64> {
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("operation(s) applied"))
        .with_context(|| format!("no summary line in roster's output:\n{}", run.stdout))?;
    let before = line.split(" operation(s) applied").next().unwrap_or_default();
    before.rsplit(' ').next().unwrap_or_default().parse().with_context(|| format!("reading {line:?}"))
}
