//! SQL sources: one configured query against PostgreSQL, MariaDB/MySQL or SQLite, its rows
//! streamed into records through the rules every source's rows go through ([`super::rows`]).
//!
//! The connection is read-only (a PostgreSQL or MariaDB session whose transactions are read only,
//! a SQLite file opened read-only): a source never writes. The query's result columns are matched
//! to the configured ones by name, exactly or else ignoring case when only one fits (PostgreSQL
//! folds unquoted names to lower case: `SELECT Employee_ID` returns `employee_id`).
//!
//! The whole read fails, and nothing from the source is planned on, when the URL names no database
//! roster reads, the connection or the login fails, the query is refused or breaks off part-way, the
//! database does not answer within the timeout (60 s by default, for the connection and for each
//! next row), a configured column is missing from the result or appears in it twice, or one holds a
//! type roster does not read (binary data, JSON, intervals, arrays: cast them in the query). No
//! message ever holds the URL's password: the database is named by scheme, host, port and name.
//!
//! Values: text as text; integers as text (`42`, a key stays text and keeps its leading zeros
//! when the column holds text); decimals as the database prints them; booleans as `true` and
//! `false` (MariaDB's BOOLEAN is a TINYINT: `1` and `0`); DATE values as dates and timestamps as
//! their date (a time-zoned timestamp's date in UTC; a MariaDB TIMESTAMP is read in UTC); text in
//! a date attribute parsed with `date_format`; SQLite text in a column declared DATE, DATETIME or
//! TIMESTAMP as an ISO 8601 date when it is one. NULL, PostgreSQL's `infinity` and MariaDB's zero
//! date `0000-00-00` are empty. Each row's location is `<source>(query)`, with the 1-based row
//! number as both line and row.
//!
//! Incremental reads ([`read_sql_with`], [`SqlReadOptions::since`]): the query names the
//! parameter `:since` where the watermark of the last read goes (`WHERE updated_at >= :since`;
//! `>=` re-reads the rows changed at that very moment, which is harmless, where `>` could miss
//! some), and [`SqlReadOptions::modified_column`] names the result column whose latest value is
//! the next watermark. Such a read is never complete: someone missing from it has merely not
//! changed, so only a full read (which binds `:since` to the year 1000) notices who has gone, or
//! a row changed inside a transaction that committed after a later one was read.

mod since;
mod values;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDateTime;
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use roster_core::config::SourceConfig;
use roster_core::source::{Location, SourceRead};
use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgErrorPosition, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteConnection};
use sqlx::{
    AssertSqlSafe, Column, ConnectOptions, Connection, Database, Executor, IntoArguments, SqlSafeStr, SqlStr,
    Statement, TypeInfo,
};

use self::since::{BindSince, Dialect, MYSQL, POSTGRES, SQLITE, mysql_bind, pg_bind, sqlite_bind};
use self::values::{Kind, ValuesOf, mysql_kind, mysql_values, pg_kind, pg_values, sqlite_kind, sqlite_values};
use super::rows::{Layout, Positions, RawValue, RowRules, Tally};
use crate::error::{Error, MissingColumn, Result};

/// How long the database may take to accept the connection, and then to send each next row (the
/// first one included, which is when a slow query shows).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How a SQL source is read, beyond its configuration.
#[derive(Debug, Clone)]
pub struct SqlReadOptions {
    /// Longest wait for the connection, and then for each next row. Default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// The result column holding when each row last changed (a timestamp, a date, or ISO 8601
    /// text): the read's [`SqlRead::watermark`] is its latest value.
    pub modified_column: Option<String>,
    /// Reads only what changed since this watermark (the latest [`SqlRead::watermark`]), bound to
    /// the query's `:since`: an incremental read, which is never complete. `None`: a full read.
    pub since: Option<NaiveDateTime>,
}

impl Default for SqlReadOptions {
    fn default() -> Self {
        SqlReadOptions { timeout: DEFAULT_TIMEOUT, modified_column: None, since: None }
    }
}

/// A read, with where the next incremental read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlRead {
    pub read: SourceRead,
    /// The latest modification time among the rows read (valid or quarantined), or the `since`
    /// asked for when none is later; `None` without a modified column, or when nothing was read.
    pub watermark: Option<NaiveDateTime>,
}

/// Reads the source's whole query from the database at `url` (the resolved secret: it may hold a
/// password) per `config`, waiting at most [`DEFAULT_TIMEOUT`] at each step.
pub async fn read_sql(config: &SourceConfig, url: &SecretString) -> Result<SourceRead> {
    Ok(read_sql_with(config, url, &SqlReadOptions::default()).await?.read)
}

/// [`read_sql`] with another timeout, or incrementally: see [`SqlReadOptions`].
pub async fn read_sql_with(config: &SourceConfig, url: &SecretString, options: &SqlReadOptions) -> Result<SqlRead> {
    let rules = RowRules::new(config)?;
    let query = config.query.as_deref().filter(|query| !query.trim().is_empty());
    let query = query.ok_or_else(|| Error::SqlNoQuery { source_name: config.name.clone() })?;
    let url = url.expose_secret();
    let database = shown_url(url);
    let Some(backend) = Backend::of(url) else {
        return Err(Error::SqlUnsupportedUrl { source_name: config.name.clone(), database });
    };
    let (query, placeholders) = since::with_placeholders(query, backend.dialect());
    if options.since.is_some() && placeholders == 0 {
        return Err(Error::SqlNoSinceParameter { source_name: config.name.clone() });
    }
    let reader = Reader {
        rules,
        query: AssertSqlSafe(query).into_sql_str(),
        placeholders,
        options,
        database,
        secrets: url_secrets(url),
        timeout: options.timeout,
    };
    match backend {
        Backend::Postgres => reader.read_postgres(url).await,
        Backend::MySql => reader.read_mysql(url).await,
        Backend::Sqlite => reader.read_sqlite(url).await,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    MySql,
    Sqlite,
}

impl Backend {
    fn of(url: &str) -> Option<Backend> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Backend::Postgres),
            "mysql" | "mariadb" => Some(Backend::MySql),
            "sqlite" => Some(Backend::Sqlite),
            _ => None,
        }
    }

    fn dialect(self) -> &'static Dialect {
        match self {
            Backend::Postgres => &POSTGRES,
            Backend::MySql => &MYSQL,
            Backend::Sqlite => &SQLITE,
        }
    }
}

/// One read: the configuration checked, the query, and how messages name the database.
struct Reader<'a> {
    rules: RowRules<'a>,
    /// The configured query, `:since` replaced by the database's placeholder.
    query: SqlStr,
    /// How many placeholders the query holds.
    placeholders: usize,
    options: &'a SqlReadOptions,
    /// The URL without its password or parameters.
    database: String,
    /// What must never show in a message: the password, as written in the URL and decoded.
    secrets: Vec<String>,
    timeout: Duration,
}

/// A result column: its name, its type's name and how its values are read.
struct ResultColumn {
    name: String,
    type_name: String,
    kind: Kind,
}

impl Reader<'_> {
    async fn read_postgres(&self, url: &str) -> Result<SqlRead> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|error| self.connect_error(&error))?
            .options([("default_transaction_read_only", "on")]);
        if options.get_application_name().is_none() {
            options = options.application_name("roster");
        }
        let mut connection: PgConnection = self.connect(options.disable_statement_logging().connect()).await?;
        let read = self.query::<Postgres>(&mut connection, pg_kind, pg_bind, pg_values).await;
        self.close(connection, &read).await;
        read
    }

    async fn read_mysql(&self, url: &str) -> Result<SqlRead> {
        let options = MySqlConnectOptions::from_str(url).map_err(|error| self.connect_error(&error))?;
        let mut connection: MySqlConnection = self.connect(options.disable_statement_logging().connect()).await?;
        let read_only = connection.execute("SET SESSION TRANSACTION READ ONLY");
        self.within("starting a read-only session", read_only).await?;
        let read = self.query::<MySql>(&mut connection, mysql_kind, mysql_bind, mysql_values).await;
        self.close(connection, &read).await;
        read
    }

    async fn read_sqlite(&self, url: &str) -> Result<SqlRead> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| self.connect_error(&error))?
            .read_only(true)
            .create_if_missing(false);
        let mut connection: SqliteConnection = self.connect(options.disable_statement_logging().connect()).await?;
        let read = self.query::<Sqlite>(&mut connection, sqlite_kind, sqlite_bind, sqlite_values).await;
        self.close(connection, &read).await;
        read
    }

    /// Prepares the query to learn its result columns, checks them against the configuration,
    /// then runs it, the watermark bound to its placeholders, and reads its rows.
    async fn query<DB: Database>(
        &self,
        connection: &mut DB::Connection,
        kind_of: fn(&DB::TypeInfo) -> Kind,
        bind_since: BindSince<DB>,
        values_of: ValuesOf<DB::Row>,
    ) -> Result<SqlRead>
    where
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        DB::Arguments: IntoArguments<DB>,
    {
        let statement = self.within("preparing the query", connection.prepare(self.query.clone())).await?;
        let columns = statement
            .columns()
            .iter()
            .map(|column| ResultColumn {
                name: column.name().to_owned(),
                type_name: column.type_info().name().to_owned(),
                kind: kind_of(column.type_info()),
            })
            .collect();
        let layout = self.layout(columns)?;
        let mut query = sqlx::query::<DB>(self.query.clone());
        if self.placeholders > 0 {
            let since = self.options.since.unwrap_or_else(since::before_any_record);
            query = bind_since(query, &statement, since, self.placeholders);
        }
        self.read_rows(connection.fetch(query), &layout, values_of).await
    }

    /// Ends the session politely after a read (a server logs a connection that just drops); after
    /// a failure the connection is dropped, since it may be in the middle of a query.
    async fn close<C: Connection, T>(&self, connection: C, read: &Result<T>) {
        if read.is_ok() {
            let _ = tokio::time::timeout(self.timeout, connection.close()).await;
        }
    }

    async fn connect<C>(&self, connecting: impl Future<Output = sqlx::Result<C>>) -> Result<C> {
        match tokio::time::timeout(self.timeout, connecting).await {
            Ok(connected) => connected.map_err(|error| self.connect_error(&error)),
            Err(_) => Err(self.timed_out("connecting")),
        }
    }

    /// Awaits a step of the read that is not the connection, within the timeout.
    async fn within<T>(&self, waiting_for: &str, step: impl Future<Output = sqlx::Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, step).await {
            Ok(done) => done.map_err(|error| self.query_error(&error, 0)),
            Err(_) => Err(self.timed_out(waiting_for)),
        }
    }

    /// Finds the configured columns (and the modified column) among the result's; fails when one
    /// is missing or ambiguous, or holds a type roster cannot read.
    fn layout(&self, mut columns: Vec<ResultColumn>) -> Result<SqlLayout> {
        let config = self.rules.config();
        let returned: Vec<String> = columns.iter().map(|column| column.name.clone()).collect();
        let modified_column = self.options.modified_column.as_deref().map(str::trim);
        let configured = std::iter::once(&config.key).chain(config.columns.values()).map(|column| column.trim());
        for wanted in configured.chain(modified_column) {
            if columns.iter().any(|column| column.name == wanted) {
                continue;
            }
            let mut folded = columns.iter_mut().filter(|column| column.name.eq_ignore_ascii_case(wanted));
            if let (Some(only), None) = (folded.next(), folded.next()) {
                only.name = wanted.to_owned();
            }
        }
        let modified_index = modified_column.map(|wanted| columns.iter().position(|column| column.name == wanted));
        let modified_missing = match (modified_column, modified_index) {
            (Some(wanted), Some(None)) => vec![MissingColumn {
                column: wanted.to_owned(),
                used_for: "modified_column".to_owned(),
                close_match: None,
            }],
            _ => Vec::new(),
        };
        let missing_columns = |missing: Vec<MissingColumn>| Error::SqlMissingColumns {
            source_name: config.name.clone(),
            missing: missing.into_iter().chain(modified_missing.clone()).collect(),
            returned: returned.clone(),
        };
        let names = columns.iter().map(|column| column.name.as_str());
        let layout = Layout::resolve(config, names, Positions::Names, &self.file()).map_err(|error| match error {
            Error::MissingColumns { missing, .. } => missing_columns(missing),
            other => other,
        })?;
        if !modified_missing.is_empty() {
            return Err(missing_columns(Vec::new()));
        }
        let modified_index = modified_index.flatten();

        let mut used = vec![(layout.key_column.as_str(), layout.key_index, "the key")];
        used.extend(layout.attributes.iter().map(|mapped| (mapped.column.as_str(), mapped.index, &*mapped.attribute)));
        used.extend(modified_column.zip(modified_index).map(|(column, index)| (column, index, "modified_column")));
        if let Some((column, index, used_for)) =
            used.into_iter().find(|(_, index, _)| columns[*index].kind == Kind::Unsupported)
        {
            return Err(Error::SqlUnsupportedType {
                source_name: config.name.clone(),
                column: column.to_owned(),
                used_for: used_for.to_owned(),
                type_name: columns[index].type_name.clone(),
            });
        }
        Ok(SqlLayout { layout, modified_index, kinds: columns.iter().map(|column| column.kind).collect() })
    }

    /// Checks each row as it arrives; any failure of the stream fails the whole read.
    async fn read_rows<R>(
        &self,
        mut rows: BoxStream<'_, sqlx::Result<R>>,
        layout: &SqlLayout,
        values_of: ValuesOf<R>,
    ) -> Result<SqlRead> {
        let file = self.file();
        let mut tally = Tally::default();
        let mut latest = None;
        loop {
            let next = match tokio::time::timeout(self.timeout, rows.try_next()).await {
                Ok(next) => next.map_err(|error| self.query_error(&error, tally.rows_seen))?,
                Err(_) => return Err(self.timed_out(&format!("waiting for row {}", tally.rows_seen + 1))),
            };
            let Some(row) = next else { break };
            tally.rows_seen += 1;
            let values = values_of(&row, layout);
            if let Some(modified) = layout.modified_index.and_then(|index| since::moment(&values[index])) {
                latest = latest.max(Some(modified));
            }
            let location = Location { file: file.as_str().into(), line: tally.rows_seen, row: tally.rows_seen };
            tally.push(self.rules.check(&layout.layout, &values, location));
        }
        let mut read = tally.finish(self.rules.config());
        // Someone missing from an incremental read has merely not changed.
        read.complete &= self.options.since.is_none();
        Ok(SqlRead { read, watermark: latest.max(self.options.since) })
    }

    /// How locations name the source: `hr(query)`.
    fn file(&self) -> String {
        format!("{}(query)", self.rules.config().name)
    }

    fn connect_error(&self, error: &sqlx::Error) -> Error {
        Error::SqlConnect {
            source_name: self.rules.config().name.clone(),
            database: self.database.clone(),
            reason: self.scrubbed(describe(error)),
        }
    }

    fn query_error(&self, error: &sqlx::Error, rows_read: u64) -> Error {
        Error::SqlQuery {
            source_name: self.rules.config().name.clone(),
            database: self.database.clone(),
            rows_read,
            reason: self.scrubbed(describe(error)),
        }
    }

    fn timed_out(&self, waiting_for: &str) -> Error {
        Error::SqlTimeout {
            source_name: self.rules.config().name.clone(),
            database: self.database.clone(),
            waiting_for: waiting_for.to_owned(),
            timeout: self.timeout,
        }
    }

    /// `message` with every trace of the password replaced, in case a driver quoted the URL.
    fn scrubbed(&self, message: String) -> String {
        self.secrets.iter().fold(message, |message, secret| message.replace(secret.as_str(), "***"))
    }
}

/// The layout of the configured columns in the result, with how each result column is read.
pub(super) struct SqlLayout {
    layout: Layout,
    /// Where the modified column is, when there is one.
    modified_index: Option<usize>,
    kinds: Vec<Kind>,
}

impl SqlLayout {
    /// The result columns the configuration uses, with how each is read: the others are never
    /// decoded.
    fn used(&self) -> impl Iterator<Item = (usize, Kind)> + '_ {
        std::iter::once(self.layout.key_index)
            .chain(self.layout.attributes.iter().map(|mapped| mapped.index))
            .chain(self.modified_index)
            .map(|index| (index, self.kinds[index]))
    }

    fn width(&self) -> usize {
        self.kinds.len()
    }
}

/// A row's values in the order of the result's columns: those the configuration uses decoded by
/// `value`, the others empty.
fn row_values<'r>(layout: &SqlLayout, mut value: impl FnMut(usize, Kind) -> RawValue<'r>) -> Vec<RawValue<'r>> {
    let mut values = vec![RawValue::Empty; layout.width()];
    for (index, kind) in layout.used() {
        values[index] = value(index, kind);
    }
    values
}

/// What a driver or a server said: the server's message with its code (and, from PostgreSQL, the
/// position in the query, the detail and the hint).
fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(database) => {
            let mut message = database.message().to_owned();
            if let Some(postgres) = database.try_downcast_ref::<PgDatabaseError>() {
                if let Some(PgErrorPosition::Original(position)) = postgres.position() {
                    let _ = write!(message, " at character {position} of the query");
                }
                if let Some(detail) = postgres.detail() {
                    let _ = write!(message, "; {detail}");
                }
                if let Some(hint) = postgres.hint() {
                    let _ = write!(message, "; hint: {hint}");
                }
            }
            if let Some(code) = database.code() {
                let _ = write!(message, " (error code {code})");
            }
            message
        }
        sqlx::Error::Configuration(problem) => {
            format!("the URL is not valid: {}", problem.to_string().trim_start_matches("error with configuration: "))
        }
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        other => other.to_string(),
    }
}

/// The URL as messages show it: scheme, host, port and database (SQLite: the file), without
/// the user and password, nor the parameters after `?`, which may hold a password too. The
/// password may hold unescaped `/`, `?` or `@`, so the credentials are cut at the last `@` first.
fn shown_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    format!("{scheme}{rest}")
}

/// The URL's password, as written and percent-decoded, and the values of `password` parameters:
/// what a message must never show.
fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some((_, rest)) = url.split_once("://")
        && let Some((credentials, _)) = rest.rsplit_once('@')
        && let Some((_, password)) = credentials.split_once(':')
    {
        secrets.push(password.to_owned());
    }
    if let Some((_, parameters)) = url.split_once('?') {
        let passwords = parameters
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(name, _)| name.eq_ignore_ascii_case("password"))
            .map(|(_, value)| value.to_owned());
        secrets.extend(passwords);
    }
    let decoded: Vec<String> = secrets.iter().map(|secret| percent_decoded(secret).into_owned()).collect();
    secrets.extend(decoded);
    secrets.retain(|secret| !secret.is_empty());
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.dedup();
    secrets
}

fn percent_decoded(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok()))
            .flatten();
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&decoded).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_keeps_scheme_host_and_database_but_never_the_credentials_or_parameters() {
        assert_eq!(shown_url("postgres://roster:s3cret@db.example.org:5432/hr"), "postgres://db.example.org:5432/hr");
        assert_eq!(shown_url("mysql://roster:p@ss/w?rd@10.0.0.5/hr?ssl-mode=required"), "mysql://10.0.0.5/hr");
        assert_eq!(shown_url("postgres://db/hr?user=roster&password=s3cret"), "postgres://db/hr");
        assert_eq!(shown_url("sqlite://exports/hr.db?mode=ro"), "sqlite://exports/hr.db");
        assert_eq!(shown_url("sqlite:hr.db"), "sqlite:hr.db");
    }

    #[test]
    fn the_secrets_are_the_password_as_written_and_decoded_and_password_parameters() {
        assert_eq!(url_secrets("postgres://roster:p%40ss%2Fw@db/hr"), ["p%40ss%2Fw", "p@ss/w"]);
        assert_eq!(url_secrets("postgres://db/hr?user=roster&password=s3cret"), ["s3cret"]);
        assert!(url_secrets("postgres://roster@db/hr").is_empty());
        assert!(url_secrets("sqlite://hr.db").is_empty());
    }

    #[test]
    fn backends_are_told_by_the_scheme() {
        assert_eq!(Backend::of("postgresql://db/hr"), Some(Backend::Postgres));
        assert_eq!(Backend::of("MariaDB://db/hr"), Some(Backend::MySql));
        assert_eq!(Backend::of("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::of("oracle://db/hr"), None);
        assert_eq!(Backend::of("hr.db"), None);
    }
}
