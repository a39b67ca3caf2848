//! Locks that hold across machines, for a store in PostgreSQL: a session advisory lock taken on a
//! connection of its own, held while the [`DatabaseLock`] lives. PostgreSQL frees it when that
//! connection ends, however the holder ends (exit, kill -9, a lost network), so no lock goes stale.
//! A SQLite store has none: its lock is a file beside it (the binary's `lock.rs`).

use sqlx::AnyConnection;

use crate::error::{Doing, Error, Result};
use crate::{Backend, Store};

/// The advisory lock key of `roster apply`, `run` and `reconcile --apply`: one at a time per
/// database. (A constant any roster on this database agrees on: "roster" in ASCII.)
pub const APPLY_LOCK: i64 = 0x726f_7374_6572;

/// The advisory lock of `roster serve`'s leader: the one daemon of those sharing the database that
/// runs the schedule and the job queue. ("leader" in ASCII.)
pub const LEADER_LOCK: i64 = 0x6c65_6164_6572;

/// Held while it lives; dropping it closes its connection, which frees the lock.
pub struct DatabaseLock {
    connection: AnyConnection,
}

impl DatabaseLock {
    /// Whether the session holding the lock still answers. When it does not (the database
    /// restarted, the network dropped), PostgreSQL has freed the lock and another may hold it.
    pub async fn still_held(&mut self) -> bool {
        sqlx::query("SELECT 1").execute(&mut self.connection).await.is_ok()
    }
}

impl std::fmt::Debug for DatabaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseLock")
    }
}

impl Store {
    /// Takes the advisory lock `key` if no other session holds it: `None` when one does. Only a
    /// PostgreSQL store has such locks.
    pub async fn try_lock(&self, key: i64) -> Result<Option<DatabaseLock>> {
        if self.backend != Backend::Postgres {
            return Err(Error::Unsupported("a database lock needs a PostgreSQL store".into()));
        }
        let doing = || format!("taking the advisory lock {key}");
        // Out of the pool: a pooled connection would go back to it, lock and all.
        let mut connection = self.pool.acquire().await.doing(doing)?.detach();
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut connection)
            .await
            .doing(doing)?;
        Ok(taken.then_some(DatabaseLock { connection }))
    }
}
