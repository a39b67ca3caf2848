//! One apply at a time per store: an exclusive lock on a file beside the store, held for the whole
//! command. A second `apply` or `run` refuses at once and says who holds the lock; the operating
//! system releases it when the holder exits, however it exits.
//!
//! A store in PostgreSQL (`[store] url`) may be shared by several machines: there the lock is a
//! session advisory lock in the database ([`roster_store::lock`]), which PostgreSQL frees when the
//! holder's connection ends.
//!
//! `--lock-wait SECONDS` waits that long for a held lock before refusing: `roster serve` runs its
//! jobs so, because a leader killed in the middle of a run leaves its job's database session to
//! be noticed gone a moment after its own, and the standby resuming the run would otherwise find
//! the lock still held and give up.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub struct ApplyLock {
    _file: File,
}

/// The lock `apply`, `run` and `reconcile --apply` hold for the whole command: a file beside a
/// SQLite store, or the database's advisory lock for a PostgreSQL one.
pub enum CommandLock {
    File { _lock: ApplyLock },
    Database { _lock: roster_store::lock::DatabaseLock },
}

/// Another roster holds the lock: which lock, and who holds it where that is known.
#[derive(Debug)]
struct Held {
    lock: String,
    holder: Option<String>,
}

impl Held {
    /// "another roster is applying changes with this store (LOCK): HOLDER".
    fn who(&self) -> String {
        let holder = self.holder.as_ref().map(|h| format!(": {h}")).unwrap_or_default();
        format!("another roster is applying changes with this store ({}){holder}", self.lock)
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; nothing was done. Run again when it has finished.", self.who())
    }
}

impl std::error::Error for Held {}

/// How often a held lock is tried again while waiting for it.
const RETRY: Duration = Duration::from_millis(250);

/// Takes the lock of the store `loaded` names. When another roster holds it, waits up to `wait`
/// for it (trying again every quarter of a second), then refuses, as [`acquire`] does.
pub async fn acquire_for(loaded: &crate::run::Loaded, command: &str, wait: Duration) -> Result<CommandLock> {
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        match try_acquire_for(loaded, command).await {
            Err(e) if e.is::<Held>() && Instant::now() + RETRY <= deadline => {
                if !told && let Some(held) = e.downcast_ref::<Held>() {
                    tracing::warn!("{}; waiting up to {} s for it to finish (--lock-wait)", held.who(), wait.as_secs());
                    told = true;
                }
                tokio::time::sleep(RETRY).await;
            }
            taken => return taken,
        }
    }
}

async fn try_acquire_for(loaded: &crate::run::Loaded, command: &str) -> Result<CommandLock> {
    if loaded.settings.store.url.is_none() {
        return acquire(&crate::run::store_path(loaded), command).map(|lock| CommandLock::File { _lock: lock });
    }
    let store = crate::audit::open_store(&loaded.settings, &loaded.config_dir).await?;
    let lock = store.try_lock(roster_store::lock::APPLY_LOCK).await?;
    store.close().await;
    match lock {
        Some(lock) => Ok(CommandLock::Database { _lock: lock }),
        None => Err(Held {
            lock: format!("its PostgreSQL advisory lock {} is held", roster_store::lock::APPLY_LOCK),
            holder: None,
        }
        .into()),
    }
}

fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    store.with_file_name(name)
}

pub fn acquire(store: &Path, command: &str) -> Result<ApplyLock> {
    let path = lock_path(store);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() { "holder unknown" } else { holder };
            return Err(Held { lock: path.display().to_string(), holder: Some(holder.to_string()) }.into());
        }
        Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
    }
    let holder = format!(
        "`roster {command}` (process {}) since {}",
        std::process::id(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    );
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(holder.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(ApplyLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("roster.db");
        let first = acquire(&store, "run").unwrap();
        let err = acquire(&store, "apply").err().unwrap().to_string();
        assert!(err.contains("another roster is applying") && err.contains("`roster run`"), "{err}");
        drop(first);
        acquire(&store, "apply").unwrap();
    }
}
