//! The provisioned domain that every DC on the machine starts as a copy of.
//!
//! `samba-tool domain provision` takes 5-8 s of Python; copying its result takes milliseconds. No
//! database in a provision names its folder or an address (only the generated smb.conf does,
//! and each instance writes its own), so a copy is a working DC of the same domain: same SID,
//! same admin password, same host name `DC1`, which tests that start one DC each do not notice.
//!
//! The template lives in `/tmp/roster-samba-template-<key>/`, the key being a hash of the Samba
//! version and the provision's arguments: an upgraded Samba provisions a new one. It is built
//! under an exclusive lock in a `.partial` folder and renamed into place when complete, so a
//! folder under the final name is always whole and needs no lock to copy.

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{ADMIN_PASSWORD_FILE, DOMAIN, HOST_NAME, REALM, random_password};
use crate::instance::write_secret;
use crate::process::run;

/// Shared by all processes whatever their `TMPDIR`, as the lock that guards it must be.
const TEMPLATE_ROOT: &str = "/tmp";
/// Changed when what a template holds changes, so that older templates are not used.
const TEMPLATE_FORMAT: &str = "1: provision, Administrator's password never expires";

pub(super) struct Template {
    pub dir: PathBuf,
    pub admin_password: String,
}

/// `samba-tool domain provision` minus the admin password and target folder.
fn provision_args() -> Vec<String> {
    [
        "domain",
        "provision",
        &format!("--realm={REALM}"),
        &format!("--domain={DOMAIN}"),
        "--server-role=dc",
        "--dns-backend=NONE",
        "--use-rfc2307",
        &format!("--host-name={HOST_NAME}"),
        "--backend-store=mdb",
        // Only for what provision guesses about the host; each instance sets its own address.
        "--option=interfaces = 127.0.0.1",
        "--option=bind interfaces only = yes",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The template for this machine's Samba, provisioned first if there is none yet.
pub(super) fn ensure(samba: &Path, samba_tool: &Path) -> Result<Template> {
    let version = run(Command::new(samba).arg("--version"), None)?;
    let key = fnv1a(&format!("{TEMPLATE_FORMAT}\n{}\n{}", version.trim(), provision_args().join("\n")));
    let dir = Path::new(TEMPLATE_ROOT).join(format!("roster-samba-template-{key:016x}"));
    if !dir.is_dir() {
        let lock_path = dir.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("could not open the lock file {}", lock_path.display()))?;
        // Waits while another process provisions; it then finds the template made.
        lock.lock().with_context(|| format!("could not lock {}", lock_path.display()))?;
        if !dir.is_dir() {
            provision(samba_tool, &dir)?;
        }
    }
    let password_path = dir.join(ADMIN_PASSWORD_FILE);
    let admin_password = fs::read_to_string(&password_path).with_context(|| {
        format!(
            "the Samba template {} has no {ADMIN_PASSWORD_FILE}: remove the folder to provision again",
            dir.display()
        )
    })?;
    Ok(Template { dir, admin_password })
}

/// Provisions into `<dir>.partial` and renames it to `dir` when complete. The caller holds the lock.
fn provision(samba_tool: &Path, dir: &Path) -> Result<()> {
    let partial = dir.with_extension("partial");
    if partial.exists() {
        // Left by a process that died while provisioning: nobody else builds without the lock.
        fs::remove_dir_all(&partial).with_context(|| format!("could not remove {}", partial.display()))?;
    }
    // 0700: the folder holds the admin password and the domain's keys.
    DirBuilder::new()
        .mode(0o700)
        .create(&partial)
        .with_context(|| format!("could not create {}", partial.display()))?;
    eprintln!(
        "roster-testkit: provisioning the Samba domain {REALM} once for this machine into {} (5-8 s)",
        dir.display()
    );
    let started = Instant::now();
    let admin_password = random_password()?;
    let mut command = Command::new(samba_tool);
    command.args(provision_args()).arg(format!("--targetdir={}", partial.display()));
    let described = crate::process::describe(&command);
    // The password goes in last, after the command line was taken for error messages.
    command.arg(format!("--adminpass={admin_password}"));
    run(&mut command, None).with_context(|| format!("could not provision a Samba domain with `{described}`"))?;

    // With AD's default maximum password age (42 days), a template older than that would hold an
    // admin who can no longer bind.
    let mut no_expiry = Command::new(samba_tool);
    no_expiry.args(["user", "setexpiry", "Administrator", "--noexpiry", "-s"]).arg(partial.join("etc/smb.conf"));
    run(&mut no_expiry, None).context("could not make the template's admin password never expire")?;

    write_secret(&partial.join(ADMIN_PASSWORD_FILE), &admin_password)?;
    fs::rename(&partial, dir)
        .with_context(|| format!("could not rename {} to {}", partial.display(), dir.display()))?;
    eprintln!("roster-testkit: provisioned {} in {:.1?}", dir.display(), started.elapsed());
    Ok(())
}

/// Copies the template into the empty folder `dir`, keeping permissions. LMDB's `-lock` files are
/// left out: LMDB makes them anew, and each is 6 MB of nothing.
pub(super) fn copy_into(template: &Path, dir: &Path) -> Result<()> {
    for entry in fs::read_dir(template).with_context(|| format!("could not list {}", template.display()))? {
        let entry = entry?;
        let (from, to) = (entry.path(), dir.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            fs::create_dir(&to).with_context(|| format!("could not create {}", to.display()))?;
            fs::set_permissions(&to, entry.metadata()?.permissions())?;
            copy_into(&from, &to)?;
        } else if kind.is_file() && !entry.file_name().to_string_lossy().ends_with("-lock") {
            fs::copy(&from, &to).with_context(|| format!("could not copy {} to {}", from.display(), to.display()))?;
        } else if !kind.is_file() {
            bail!("the Samba template holds {}, which is neither a file nor a folder", from.display());
        }
    }
    Ok(())
}

/// FNV-1a: a stable hash (std's `DefaultHasher` may change between Rust releases, and the key
/// names a folder that outlives them).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stable_fnv1a() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn copies_files_and_folders_but_not_lmdb_lock_files() -> Result<()> {
        let (template, copy) = (tempfile::tempdir()?, tempfile::tempdir()?);
        fs::create_dir(template.path().join("private"))?;
        fs::write(template.path().join("private/sam.ldb"), "data")?;
        fs::write(template.path().join("private/sam.ldb-lock"), "lock")?;
        copy_into(template.path(), copy.path())?;
        assert_eq!(fs::read_to_string(copy.path().join("private/sam.ldb"))?, "data");
        assert!(!copy.path().join("private/sam.ldb-lock").exists());
        Ok(())
    }
}
