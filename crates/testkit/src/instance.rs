//! The folder a server instance lives in, and the files that every server keeps there:
//! `instance.state` (what `attach` needs to find a running instance again) and password files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

const STATE_FILE: &str = "instance.state";
/// Longest Unix socket path: `sun_path` holds 108 bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Which server an instance folder holds, as messages and temporary folder names say it.
pub(crate) struct ServerKind {
    /// `OpenLDAP`: temporary folders are `roster-openldap-*`.
    pub name: &'static str,
    /// `an OpenLDAP instance`
    pub an_instance: &'static str,
}

pub(crate) enum InstanceDir {
    /// Removed when dropped.
    Temporary(TempDir),
    Kept(PathBuf),
}

impl InstanceDir {
    pub(crate) fn path(&self) -> &Path {
        match self {
            InstanceDir::Temporary(dir) => dir.path(),
            InstanceDir::Kept(path) => path,
        }
    }

    /// Keeps a temporary folder when this is dropped: for an instance that outlives its handle.
    pub(crate) fn keep(&mut self) {
        *self = match std::mem::replace(self, InstanceDir::Kept(PathBuf::new())) {
            InstanceDir::Temporary(temporary) => InstanceDir::Kept(temporary.keep()),
            kept => kept,
        };
    }
}

/// Runs `build` on a new temporary folder, or on `given`: created if missing, made absolute (the
/// servers' configurations name files in it), and empty, so that everything in it is the
/// instance's. A failed build leaves a given folder empty again: half an instance would make it
/// look taken to the next start.
pub(crate) fn build_in<T>(
    given: Option<&Path>,
    kind: &ServerKind,
    build: impl FnOnce(InstanceDir) -> Result<T>,
) -> Result<T> {
    match given {
        None => {
            let dir = tempfile::Builder::new()
                .prefix(&format!("roster-{}-", kind.name.to_ascii_lowercase()))
                .tempdir()
                .with_context(|| format!("could not create a temporary folder for {}", kind.name))?;
            build(InstanceDir::Temporary(dir))
        }
        Some(dir) => {
            let dir = prepare_given_dir(dir, kind)?;
            let built = build(InstanceDir::Kept(dir.clone()));
            if built.is_err() {
                empty_folder(&dir);
            }
            built
        }
    }
}

fn prepare_given_dir(dir: &Path, kind: &ServerKind) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("could not resolve {}", dir.display()))?;
    let mut entries = fs::read_dir(&dir).with_context(|| format!("could not list {}", dir.display()))?;
    if entries.next().is_some() {
        if exists_in(&dir) {
            bail!("{} already holds {}: attach to it, or remove the folder", dir.display(), kind.an_instance);
        }
        bail!("{} is not empty: an instance is built only in an empty or new folder", dir.display());
    }
    Ok(dir)
}

/// Removes what a failed start left in a folder that was empty before.
fn empty_folder(dir: &Path) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
    }
}

/// Refuses a folder too long for `socket`, the deepest Unix socket (relative to the folder) that
/// the server makes in it.
pub(crate) fn check_socket_room(dir: &Path, socket: &str, kind: &ServerKind) -> Result<()> {
    let max_dir = MAX_SOCKET_PATH - 1 - socket.len();
    let length = dir.as_os_str().len();
    if length > max_dir {
        bail!(
            "the {} instance folder {} is {length} bytes long; {} makes the Unix socket {socket} in it, whose \
             path may not exceed {MAX_SOCKET_PATH} bytes: choose a folder of at most {max_dir} bytes",
            kind.name,
            dir.display(),
            kind.name
        );
    }
    Ok(())
}

/// Whether `dir` holds an instance that `attach` can use.
pub(crate) fn exists_in(dir: &Path) -> bool {
    dir.join(STATE_FILE).is_file()
}

/// What `attach` reads back: `key=value` lines.
pub(crate) struct InstanceState {
    path: PathBuf,
    text: String,
}

impl InstanceState {
    /// Writes the state of the instance in `dir`, replacing what was there.
    pub(crate) fn write(dir: &Path, values: &[(&str, String)]) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let text: String = values.iter().map(|(key, value)| format!("{key}={value}\n")).collect();
        fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))
    }

    /// The absolute path of the instance folder `dir`, and the state of the instance in it.
    pub(crate) fn read(dir: &Path, kind: &ServerKind) -> Result<(PathBuf, InstanceState)> {
        let dir = dir.canonicalize().with_context(|| format!("no instance folder {}", dir.display()))?;
        let path = dir.join(STATE_FILE);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("no {} instance in {} (no {STATE_FILE})", kind.name, dir.display()))?;
        Ok((dir, InstanceState { path, text }))
    }

    pub(crate) fn value(&self, key: &str) -> Result<&str> {
        self.text
            .lines()
            .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
            .ok_or_else(|| anyhow!("{} has no {key}= line", self.path.display()))
    }

    /// The value of `key` as a `T`, which the error message calls `what` (`a port`).
    pub(crate) fn parse<T: FromStr>(&self, key: &str, what: &str) -> Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.value(key)?.parse().with_context(|| format!("{}: {key} is not {what}", self.path.display()))
    }
}

/// 32 hex digits from the kernel's random source: no shell or LDIF quoting needed.
pub(crate) fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut bytes)
        .context("could not read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a password file that only its owner may read.
pub(crate) fn write_secret(path: &Path, secret: &str) -> Result<()> {
    // No trailing newline: `ldapsearch -y` and `slappasswd -T` take the whole file as the password.
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(secret.as_bytes()))
        .with_context(|| format!("could not write {}", path.display()))
}

pub(crate) fn read_secret(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: ServerKind = ServerKind { name: "Test", an_instance: "a test instance" };

    #[test]
    fn the_state_reads_back_what_was_written() -> Result<()> {
        let dir = tempfile::tempdir()?;
        InstanceState::write(dir.path(), &[("suffix", "o=Acme".to_owned()), ("port", "389".to_owned())])?;
        assert!(exists_in(dir.path()));
        let (_, state) = InstanceState::read(dir.path(), &KIND)?;
        assert_eq!(state.value("suffix")?, "o=Acme");
        assert_eq!(state.parse::<u16>("port", "a port")?, 389);
        assert!(format!("{:#}", state.value("tls_port").unwrap_err()).contains("has no tls_port= line"));
        assert!(format!("{:#}", state.parse::<u16>("suffix", "a port").unwrap_err()).contains("suffix is not a port"));
        Ok(())
    }

    #[test]
    fn the_deepest_socket_must_fit_in_sun_path() {
        let dir = |length: usize| PathBuf::from(format!("/{}", "d".repeat(length - 1)));
        assert!(check_socket_room(&dir(101), "ldapi", &KIND).is_ok());
        let error = check_socket_room(&dir(102), "ldapi", &KIND).unwrap_err().to_string();
        assert!(error.contains("is 102 bytes long") && error.contains("at most 101 bytes"), "{error}");
    }

    #[test]
    fn a_failed_build_leaves_the_given_folder_empty_and_a_kept_one_stays() -> Result<()> {
        let parent = tempfile::tempdir()?;
        let dir = parent.path().join("instance");
        let failed = build_in(Some(&dir), &KIND, |instance| -> Result<()> {
            InstanceState::write(instance.path(), &[])?;
            bail!("no luck")
        });
        assert!(failed.is_err());
        assert_eq!(fs::read_dir(&dir)?.count(), 0);

        let mut built = build_in(None, &KIND, |instance| {
            InstanceState::write(instance.path(), &[])?;
            Ok(instance)
        })?;
        assert!(built.path().file_name().is_some_and(|name| name.to_string_lossy().starts_with("roster-test-")));
        built.keep();
        let kept = built.path().to_owned();
        drop(built);
        assert!(exists_in(&kept));
        let refused = build_in(Some(&kept), &KIND, |_| Ok(())).unwrap_err();
        assert!(refused.to_string().contains("already holds a test instance"), "{refused}");
        fs::remove_dir_all(kept)?;
        Ok(())
    }
}
