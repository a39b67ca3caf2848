use std::path::PathBuf;

use chrono::NaiveDate;

use crate::runs::RunId;

pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot open the state store {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },

    #[error("cannot bring the state store {path} up to date: {source}")]
    Migrate { path: PathBuf, source: sqlx::migrate::MigrateError },

    #[error("state store: {doing}: {source}")]
    Database { doing: String, source: sqlx::Error },

    /// A row that cannot be read back: the store never panics on one, it names it.
    #[error("state store: table {table}, row {key}, column {column}: {message}")]
    Corrupt { table: &'static str, key: String, column: &'static str, message: String },

    #[error("cannot encode {what} as JSON: {source}")]
    Encode { what: String, source: serde_json::Error },

    #[error("login {login:?} belongs to person {owner}: refusing to give it to person {person}")]
    LoginTaken { login: String, owner: String, person: String },

    #[error(
        "login {login:?} is kept for person {owner} (tombstoned on {purged_on}): refusing to give it to person {person}"
    )]
    LoginTombstoned { login: String, owner: String, purged_on: NaiveDate, person: String },

    #[error("person {person} has login {current:?}, theirs for good: refusing to change it to {requested:?}")]
    LoginChanged { person: String, current: String, requested: Option<String> },

    #[error("state store: {0}")]
    Unsupported(String),

    #[error("no run {0} in the state store")]
    UnknownRun(RunId),

    #[error("run {0} is already finished")]
    RunFinished(RunId),

    /// The audit chain's key cannot be had. Names the key file, never the key.
    #[error("audit key{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    AuditKey { path: Option<PathBuf>, message: String },
}

/// Names what the store was doing when the database failed.
pub(crate) trait Doing<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Doing<T> for std::result::Result<T, sqlx::Error> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Database { doing: what(), source })
    }
}
