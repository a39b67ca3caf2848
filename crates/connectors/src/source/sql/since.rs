//! Incremental reads: the query's `:since` parameter, bound to the watermark of the last read (or,
//! on a full read, to a time before any record), and the watermark a read leaves: the latest
//! modification among its rows.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use sqlx::mysql::{MySql, MySqlArguments, MySqlStatement};
use sqlx::postgres::{PgArguments, PgStatement, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteStatement};
use sqlx::{Database, Either, Statement, TypeInfo};

use super::values::iso_date;
use crate::source::rows::RawValue;

/// The parameter a query names where the watermark goes.
pub(super) const PARAMETER: &str = ":since";

/// Binds the watermark to each of the `count` placeholders of a prepared query.
pub(super) type BindSince<DB> = for<'q> fn(
    Query<'q, DB, <DB as Database>::Arguments>,
    &<DB as Database>::Statement,
    NaiveDateTime,
    usize,
) -> Query<'q, DB, <DB as Database>::Arguments>;

/// What a full read binds to `:since`: a time before any record, which every database can hold
/// (MariaDB's DATETIME starts at the year 1000).
pub(super) fn before_any_record() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1000, 1, 1).expect("a valid date").and_time(NaiveTime::MIN)
}

/// How a database writes a parameter, and whether its strings escape with backslashes.
pub(super) struct Dialect {
    pub placeholder: &'static str,
    pub backslash_escapes: bool,
}

pub(super) const POSTGRES: Dialect = Dialect { placeholder: "$1", backslash_escapes: false };
/// MariaDB's `?` is positional: one value is bound for each.
pub(super) const MYSQL: Dialect = Dialect { placeholder: "?", backslash_escapes: true };
pub(super) const SQLITE: Dialect = Dialect { placeholder: "?1", backslash_escapes: false };

/// The query with each `:since` outside quotes and comments replaced by the dialect's
/// placeholder, and how many there were. `::since` (a PostgreSQL cast) and `:since_at` are not
/// the parameter.
pub(super) fn with_placeholders(query: &str, dialect: &Dialect) -> (String, usize) {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Code,
        Quoted(char),
        LineComment,
        BlockComment,
    }
    let is_name = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut out = String::with_capacity(query.len());
    let mut count = 0;
    let mut state = State::Code;
    let mut previous = None;
    let mut rest = query;
    while let Some(c) = rest.chars().next() {
        let mut taken = c.len_utf8();
        match state {
            State::Code if rest.starts_with(PARAMETER) && previous != Some(':') => {
                let after = rest[PARAMETER.len()..].chars().next();
                if after.is_some_and(is_name) {
                    out.push(c);
                } else {
                    out.push_str(dialect.placeholder);
                    count += 1;
                    taken = PARAMETER.len();
                }
            }
            State::Code => {
                out.push(c);
                state = match c {
                    '\'' | '"' | '`' => State::Quoted(c),
                    '-' if rest.starts_with("--") => State::LineComment,
                    '#' if dialect.backslash_escapes => State::LineComment,
                    '/' if rest.starts_with("/*") => State::BlockComment,
                    _ => State::Code,
                };
                if state == State::BlockComment {
                    out.push('*');
                    taken = 2;
                }
            }
            State::Quoted(quote) => {
                out.push(c);
                if c == '\\' && dialect.backslash_escapes {
                    if let Some(escaped) = rest[1..].chars().next() {
                        out.push(escaped);
                        taken += escaped.len_utf8();
                    }
                } else if c == quote {
                    // A doubled quote is one quote inside the string; the scan goes on there.
                    state = State::Code;
                }
            }
            State::LineComment => {
                out.push(c);
                if c == '\n' {
                    state = State::Code;
                }
            }
            State::BlockComment => {
                out.push(c);
                if rest.starts_with("*/") {
                    out.push('/');
                    taken = 2;
                    state = State::Code;
                }
            }
        }
        previous = rest[..taken].chars().last();
        rest = &rest[taken..];
    }
    (out, count)
}

/// PostgreSQL infers the parameter's type from the query: the watermark is bound as that type, so
/// that a DATE column compares with a date and a TIMESTAMPTZ column with the same instant.
pub(super) fn pg_bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    statement: &PgStatement,
    since: NaiveDateTime,
    _count: usize,
) -> Query<'q, Postgres, PgArguments> {
    let parameter = match statement.parameters() {
        Some(Either::Left(types)) => types.first().map(|parameter| parameter.name().to_owned()),
        _ => None,
    };
    match parameter.as_deref() {
        Some("DATE") => query.bind(since.date()),
        Some("TIMESTAMPTZ") => query.bind(since.and_utc()),
        Some("TEXT" | "VARCHAR" | "CHAR" | "UNKNOWN") => query.bind(text(since)),
        _ => query.bind(since),
    }
}

/// MariaDB compares a DATETIME with DATE, DATETIME and TIMESTAMP columns (TIMESTAMP in the
/// session's time zone, UTC).
pub(super) fn mysql_bind<'q>(
    query: Query<'q, MySql, MySqlArguments>,
    _statement: &MySqlStatement,
    since: NaiveDateTime,
    count: usize,
) -> Query<'q, MySql, MySqlArguments> {
    (0..count).fold(query, |query, _| query.bind(since))
}

/// SQLite compares text: the watermark is bound as ISO 8601 text, a date alone at midnight, so
/// that `2026-03-01` and `2026-03-01 00:00:00` both count as changed on that day.
pub(super) fn sqlite_bind<'q>(
    query: Query<'q, Sqlite, SqliteArguments>,
    _statement: &SqliteStatement,
    since: NaiveDateTime,
    _count: usize,
) -> Query<'q, Sqlite, SqliteArguments> {
    query.bind(text(since))
}

fn text(moment: NaiveDateTime) -> String {
    if moment.time() == NaiveTime::MIN {
        moment.format("%Y-%m-%d").to_string()
    } else {
        moment.format("%Y-%m-%d %H:%M:%S%.f").to_string()
    }
}

/// A modification time read from a row: a date (at midnight), a timestamp, or ISO 8601 text.
pub(super) fn moment(value: &RawValue) -> Option<NaiveDateTime> {
    match value {
        RawValue::Date(date) => Some(date.and_time(NaiveTime::MIN)),
        RawValue::DateTime(moment) => Some(*moment),
        RawValue::Text(text) => match iso_date(text)? {
            RawValue::Date(date) => Some(date.and_time(NaiveTime::MIN)),
            RawValue::DateTime(moment) => Some(moment),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_replaced_outside_quotes_and_comments_only() {
        let query = "SELECT id, ':since' AS note, \"a:since\" FROM t -- since :since\n\
                     WHERE updated >= :since /* :since */ OR created::since = :since_at OR x>=:since";
        let (replaced, count) = with_placeholders(query, &POSTGRES);
        assert_eq!(
            replaced,
            "SELECT id, ':since' AS note, \"a:since\" FROM t -- since :since\n\
             WHERE updated >= $1 /* :since */ OR created::since = :since_at OR x>=$1"
        );
        assert_eq!(count, 2);
    }

    #[test]
    fn mariadb_strings_escape_with_backslashes_and_each_placeholder_counts() {
        let (replaced, count) =
            with_placeholders("SELECT 'it\\'s :since' # :since\nWHERE a > :since OR b > :since", &MYSQL);
        assert_eq!(replaced, "SELECT 'it\\'s :since' # :since\nWHERE a > ? OR b > ?");
        assert_eq!(count, 2);
        let (replaced, count) = with_placeholders("SELECT 'don''t :since' WHERE a > :since", &SQLITE);
        assert_eq!((replaced.as_str(), count), ("SELECT 'don''t :since' WHERE a > ?1", 1));
        assert_eq!(with_placeholders("SELECT 1", &POSTGRES), ("SELECT 1".to_owned(), 0));
    }

    #[test]
    fn watermarks_come_from_dates_timestamps_and_iso_text() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(moment(&RawValue::Date(day)), Some(day.and_time(NaiveTime::MIN)));
        assert_eq!(moment(&RawValue::Text("2026-03-01 08:15:00".into())), day.and_hms_opt(8, 15, 0));
        assert_eq!(moment(&RawValue::Text("yesterday".into())), None);
        assert_eq!(moment(&RawValue::Empty), None);
        assert_eq!(text(day.and_time(NaiveTime::MIN)), "2026-03-01");
        assert_eq!(text(day.and_hms_milli_opt(8, 15, 0, 250).unwrap()), "2026-03-01 08:15:00.250");
    }
}
