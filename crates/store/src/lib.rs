//! roster's state store: the persons roster knows, their links to target objects with the values
//! roster last wrote, the tombstones that keep purged logins, the runs, and the audit trail.
//!
//! SQLite through sqlx. Writes that come in batches (the outcomes of many operations, the persons
//! of a whole run) take one transaction each; nothing here issues a query per person when reading.
//! The schema lives in `migrations/`, applied on open.
//!
//! Every write of an audit entry extends a keyed hash chain (see [`chain`]), so the trail is
//! tamper-evident; a run's finish counts, per person and target, the consecutive runs whose
//! operations did not all land (see [`failures`]), which the planner quarantines.

mod apply;
mod audit;
pub mod chain;
mod codec;
mod error;
pub mod failures;
pub mod held_plans;
pub mod holds;
mod links;
pub mod notifications;
mod persons;
mod runs;
pub mod scim;
mod snapshot;
pub mod triggers;
pub mod watermarks;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

pub use apply::Outcome;
pub use audit::{AuditEntry, AuditQuery};
pub use chain::{AuditKey, ChainHead, ChainProblem, Verification};
pub use error::{Error, Result};
pub use failures::Released;
pub use held_plans::{Decided, HeldPlan, HeldStatus};
pub use holds::HoldChange;
pub use notifications::Undelivered;
pub use runs::{RunFinish, RunId, RunRecord, RunStart, RunStatus};
pub use scim::{ScimUser, ScimWrite};
pub use watermarks::{Watermark, WatermarkUpdate};

/// How long a connection waits for another writer (another roster process, or this one's other
/// connection) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections per file store: SQLite has one writer at a time; the others read alongside it (WAL).
const MAX_CONNECTIONS: u32 = 4;

/// A handle on the state store; cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Chains the audit entries this handle writes.
    audit_key: Arc<AuditKey>,
}

impl Store {
    /// Opens the store at `path`, creating the file if missing, and brings its schema up to date.
    /// The audit trail is chained with the key [`AuditKey::beside`] the file, generated on first
    /// use: for a store whose configuration names no key.
    pub async fn open(path: &Path) -> Result<Store> {
        let pool = Store::open_pool(path).await?;
        let key = AuditKey::load_or_create(&AuditKey::beside(path))?;
        Ok(Store { pool, audit_key: Arc::new(key) })
    }

    /// Opens the store at `path` as [`Store::open`] does, chaining the audit trail with `audit_key`.
    pub async fn open_with_key(path: &Path, audit_key: AuditKey) -> Result<Store> {
        let pool = Store::open_pool(path).await?;
        Ok(Store { pool, audit_key: Arc::new(audit_key) })
    }

    async fn open_pool(path: &Path) -> Result<SqlitePool> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit reaches the disk: an intent recorded before an operation is sent must
            // survive a power cut, or the next run cannot know what may have been done.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
        migrated(pool, path).await
    }

    /// A private store in memory, for tests. The pool holds exactly one connection and never lets
    /// it go: an in-memory SQLite database belongs to its connection and dies with it. Its audit
    /// key is random and dies with it too.
    pub async fn open_in_memory() -> Result<Store> {
        let path = Path::new(":memory:");
        let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
        Ok(Store { pool: migrated(pool, path).await?, audit_key: Arc::new(AuditKey::random()?) })
    }

    /// The key this handle chains the audit trail with (its check value can be shown; the key
    /// cannot).
    pub fn audit_key(&self) -> &AuditKey {
        &self.audit_key
    }

    /// Closes every connection, checkpointing the write-ahead log into the database file.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// A write transaction that takes the write lock up front: a transaction that starts reading
    /// and then writes can fail at once with "database is locked" instead of waiting its turn.
    async fn write(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

async fn migrated(pool: SqlitePool, path: &Path) -> Result<SqlitePool> {
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|source| Error::Migrate { path: path.to_path_buf(), source })?;
    Ok(pool)
}
