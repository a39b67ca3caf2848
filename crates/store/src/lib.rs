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
mod jobs;
mod links;
pub mod lock;
pub mod notifications;
mod persons;
mod plan_parts;
mod runs;
pub mod scim;
mod snapshot;
mod sql;
pub mod triggers;
pub mod watermarks;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Transaction};

pub use apply::Outcome;
pub use audit::{AuditEntry, AuditQuery};
pub use chain::{AuditKey, ChainHead, ChainProblem, Verification};
pub use error::{Error, Result};
pub use failures::Released;
pub use held_plans::{Decided, HeldPlan, HeldStatus};
pub use holds::HoldChange;
pub use jobs::StoredJob;
pub use notifications::Undelivered;
pub use plan_parts::split as split_plan;
pub use runs::{RunFinish, RunId, RunRecord, RunStart, RunStatus};
pub use scim::{ScimUser, ScimWrite};
pub use watermarks::{TargetFullRead, Watermark, WatermarkUpdate};

/// How long a connection waits for another writer (another roster process, or this one's other
/// connection) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections per file store: SQLite has one writer at a time; the others read alongside it (WAL).
const MAX_CONNECTIONS: u32 = 4;

/// Connections to a PostgreSQL store: the planner reads and the apply writes, a few at a time.
const MAX_POSTGRES_CONNECTIONS: u32 = 8;

/// Every SQLite connection's settings. Every commit reaches the disk (`synchronous = FULL`, not the
/// `NORMAL` that WAL allows, which survives a crash of the process but not a power cut): an intent
/// recorded before an operation is sent must survive a power cut, or the next run cannot know what
/// may have been done. Statement journals (the undo of one statement inside a transaction, which
/// the store's multi-row upserts need) stay in memory (`temp_store`): they matter only until the
/// statement ends, and written to a temporary file they were a tenth of an apply's CPU.
const SQLITE_SETTINGS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;";

/// The database a store lives in. The queries are the same on both (portable SQL with `$n`
/// placeholders through sqlx's `Any` driver); the schema has one migration set each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the state store; cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Chains the audit entries this handle writes.
    audit_key: Arc<AuditKey>,
}

/// A snapshot of a million persons is one statement streamed for seconds: sqlx's warning of a
/// statement slower than a second would greet every large daily run. It is logged at debug level
/// (`-vv`) instead.
fn quiet(options: AnyConnectOptions) -> AnyConnectOptions {
    options.log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
}

impl Store {
    /// Opens the store at `path`, creating the file if missing, and brings its schema up to date.
    /// The audit trail is chained with the key [`AuditKey::beside`] the file, generated on first
    /// use: for a store whose configuration names no key.
    pub async fn open(path: &Path) -> Result<Store> {
        let pool = Store::open_pool(path).await?;
        let key = AuditKey::load_or_create(&AuditKey::beside(path))?;
        Ok(Store { pool, backend: Backend::Sqlite, audit_key: Arc::new(key) })
    }

    /// Opens the store at `path` as [`Store::open`] does, chaining the audit trail with `audit_key`.
    pub async fn open_with_key(path: &Path, audit_key: AuditKey) -> Result<Store> {
        let pool = Store::open_pool(path).await?;
        Ok(Store { pool, backend: Backend::Sqlite, audit_key: Arc::new(audit_key) })
    }

    /// Opens the PostgreSQL store at `url` (`postgres://user:password@host/database`, with
    /// `sslmode` and the other parameters libpq knows; `sslmode=verify-full` unless given), brings its schema up to date, and chains
    /// the audit trail with `audit_key`. Errors name the URL without its password.
    pub async fn open_postgres(url: &str, audit_key: AuditKey) -> Result<Store> {
        install_drivers();
        let shown = shown_url(url);
        let options: AnyConnectOptions =
            verifying(url).parse().map_err(|source| Error::Open { path: shown.clone().into(), source })?;
        let options = quiet(options);
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_POSTGRES_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| Error::Open { path: shown.clone().into(), source })?;
        let pool = migrated(pool, Backend::Postgres, Path::new(&shown)).await?;
        Ok(Store { pool, backend: Backend::Postgres, audit_key: Arc::new(audit_key) })
    }

    async fn open_pool(path: &Path) -> Result<AnyPool> {
        install_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let options: AnyConnectOptions =
            url.parse().map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
        let options = quiet(options);
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SQLITE_SETTINGS).await?;
                    conn.execute(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {};", BUSY_TIMEOUT.as_millis())))
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
        migrated(pool, Backend::Sqlite, path).await
    }

    /// A private store in memory, for tests. The pool holds exactly one connection and never lets
    /// it go: an in-memory SQLite database belongs to its connection and dies with it. Its audit
    /// key is random and dies with it too.
    pub async fn open_in_memory() -> Result<Store> {
        install_drivers();
        let path = Path::new(":memory:");
        let options: AnyConnectOptions =
            "sqlite::memory:".parse().map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
        let pool = AnyPoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|conn, _| Box::pin(async move { conn.execute("PRAGMA foreign_keys = ON;").await.map(drop) }))
            .connect_with(options)
            .await
            .map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
        Ok(Store {
            pool: migrated(pool, Backend::Sqlite, path).await?,
            backend: Backend::Sqlite,
            audit_key: Arc::new(AuditKey::random()?),
        })
    }

    /// Which database this store lives in.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The key this handle chains the audit trail with (its check value can be shown; the key
    /// cannot).
    pub fn audit_key(&self) -> &AuditKey {
        &self.audit_key
    }

    /// Closes every connection (on SQLite, checkpointing the write-ahead log into the file).
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// A write transaction. On SQLite it takes the write lock up front: a transaction that starts
    /// reading and then writes can fail at once with "database is locked" instead of waiting its
    /// turn. PostgreSQL locks rows as they are written.
    async fn write(&self) -> sqlx::Result<Transaction<'static, Any>> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}

/// sqlx's `Any` driver finds the database's driver by the URL's scheme among those installed.
fn install_drivers() {
    sqlx::any::install_default_drivers();
}

/// The URL as messages show it: scheme, host, port and database, without the user and password,
/// nor the parameters after `?`, which may hold a password too. The password may hold unescaped
/// `/`, `?` or `@`, so the credentials are cut at the last `@` first.
fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    format!("{scheme}://{rest}")
}

/// `url`, verifying the server's certificate and name unless it sets `sslmode` itself
/// (sqlx's default, `prefer`, would accept any certificate, or none).
fn verifying(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_string()
    } else {
        format!("{url}{}sslmode=verify-full", if url.contains('?') { '&' } else { '?' })
    }
}

async fn migrated(pool: AnyPool, backend: Backend, path: &Path) -> Result<AnyPool> {
    let migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations"),
        Backend::Postgres => sqlx::migrate!("./migrations-pg"),
    };
    migrator.run(&pool).await.map_err(|source| Error::Migrate { path: path.to_path_buf(), source })?;
    Ok(pool)
}
