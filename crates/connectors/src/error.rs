//! The connectors' one error type. An `Err` from a source means nothing from that source may be
//! planned on; problems with single rows are not errors but quarantined rows
//! ([`roster_core::source::QuarantinedRow`]).

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

/// Why a connector failed as a whole. Every message says what was expected, what was found and
/// where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source file could not be opened (missing, no permission, ...).
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },

    /// Reading the source failed part-way.
    #[error("cannot read {file}: {source}")]
    Read { file: String, source: io::Error },

    /// The file holds no header row (it is empty, or holds only blank lines).
    #[error("{file} is empty: expected a header row naming the columns")]
    NoHeader { file: String },

    /// Columns the configuration names are not in the header.
    #[error("{}", missing_columns_message(file, missing, header, *delimiter_hint))]
    MissingColumns {
        file: String,
        missing: Vec<MissingColumn>,
        /// The header's column names, as found.
        header: Vec<String>,
        /// When the header is one column that contains this character, the probable delimiter.
        delimiter_hint: Option<char>,
    },

    /// A column the configuration uses appears more than once in the header.
    #[error("{}", duplicate_columns_message(file, duplicates))]
    DuplicateColumns { file: String, duplicates: Vec<DuplicateColumn> },

    /// Bytes that are not valid in the file's encoding.
    #[error("{}", undecodable_message(file, encoding, *line, *byte_offset, bytes))]
    Undecodable {
        file: String,
        /// The encoding the file was read as (a byte-order mark can override the configured one).
        encoding: &'static str,
        line: u64,
        /// Offset of the first invalid byte from the start of the file, counting from 0.
        byte_offset: u64,
        /// The invalid bytes, when known.
        bytes: Vec<u8>,
    },

    /// A row so long that reading it would hold an unreasonable amount of memory: not an HR
    /// export, or a quote that is never closed.
    #[error(
        "{file}: the row starting on line {line} is longer than {limit_mib} MiB; \
         expected rows of an HR export (is a quote never closed?)"
    )]
    RowTooLong { file: String, line: u64, limit_mib: usize },

    /// The configured delimiter cannot separate CSV fields.
    #[error(
        "source {source_name}: delimiter {delimiter:?} cannot be used; expected one ASCII character \
         other than a quote or a line break, such as \",\", \";\" or \"\\t\""
    )]
    InvalidDelimiter { source_name: String, delimiter: char },

    /// The configured date format cannot express a whole date.
    #[error(
        "source {source_name}: date_format {format:?} does not describe a date with year, month and \
         day; expected a chrono strftime format such as \"%Y-%m-%d\" or \"%d.%m.%Y\""
    )]
    InvalidDateFormat { source_name: String, format: String },

    /// A SQL source without a query.
    #[error("source {source_name}: no query; set query = \"SELECT ...\" for this source")]
    SqlNoQuery { source_name: String },

    /// A SQL source's URL names no database roster reads.
    #[error(
        "source {source_name}: cannot read the database at {database}: expected a URL starting with \
         postgres://, postgresql://, mysql://, mariadb:// or sqlite://"
    )]
    SqlUnsupportedUrl {
        source_name: String,
        /// The URL without its password or parameters.
        database: String,
    },

    /// An incremental read of a query that has no `:since` for the watermark.
    #[error(
        "source {source_name}: an incremental read needs the query to compare its modified column with :since \
         (e.g. WHERE updated_at >= :since), but the query has no :since"
    )]
    SqlNoSinceParameter { source_name: String },

    /// The database could not be reached, or refused the login.
    #[error("source {source_name}: cannot connect to {database}: {reason}")]
    SqlConnect {
        source_name: String,
        /// The URL without its password or parameters.
        database: String,
        /// What the driver or the server said, without the password.
        reason: String,
    },

    /// The query failed: refused by the server (bad SQL, no permission), or broken off part-way.
    #[error("{}", sql_query_message(source_name, database, *rows_read, reason))]
    SqlQuery {
        source_name: String,
        database: String,
        /// Rows received before the failure: the read is never partly used.
        rows_read: u64,
        reason: String,
    },

    /// The database did not answer in time.
    #[error(
        "source {source_name}: {database} did not answer within {} while {waiting_for}; nothing from this \
         source is used",
        duration_text(*timeout)
    )]
    SqlTimeout {
        source_name: String,
        database: String,
        /// `connecting`, `preparing the query`, `waiting for row 1`, ...
        waiting_for: String,
        timeout: std::time::Duration,
    },

    /// Columns the configuration names are not in the query's result.
    #[error("{}", sql_missing_columns_message(source_name, missing, returned))]
    SqlMissingColumns {
        source_name: String,
        missing: Vec<MissingColumn>,
        /// The result's column names, in order.
        returned: Vec<String>,
    },

    /// A configured column of the query's result has a type that roster does not read as a value.
    #[error(
        "source {source_name}: the query's column {column:?} (for {used_for}) is of type {type_name}; expected \
         text, a number, a boolean, a date or a timestamp: convert it in the query (PostgreSQL: \
         CAST({column} AS TEXT) AS {column}; MariaDB and MySQL: CAST({column} AS CHAR) AS {column})"
    )]
    SqlUnsupportedType { source_name: String, column: String, used_for: String, type_name: String },

    /// Attributes that must not be empty (`hire_date`, `required`) have no column.
    #[error(
        "source {source_name}: required attribute(s) {} not mapped to a column; add them to \
         [source.columns]",
        quoted_list(attributes)
    )]
    RequiredNotMapped { source_name: String, attributes: Vec<String> },

    /// The file is not a workbook that can be read: not an XLSX file, encrypted, or damaged.
    #[error("{file}: cannot read the workbook: {reason}; expected an Excel workbook (.xlsx)")]
    Workbook { file: String, reason: String },

    /// The configured sheet is not in the workbook (or the workbook has no sheet at all).
    #[error("{}", missing_sheet_message(file, sheet.as_deref(), sheets))]
    MissingSheet {
        file: String,
        /// The configured sheet; `None` when the first was wanted.
        sheet: Option<String>,
        /// The sheets the workbook has.
        sheets: Vec<String>,
    },

    /// The sheet's header row (`header_row`) holds nothing.
    #[error(
        "{file}: sheet {sheet:?} has nothing on row {row}; expected the header row naming the columns there \
         (header_row = {row})"
    )]
    NoHeaderRow { file: String, sheet: String, row: u32 },

    /// A JSON document that does not parse.
    #[error("{file}:{line}:{column}: the document is not valid JSON: {reason}")]
    InvalidJson { file: String, line: u64, column: u64, reason: String },

    /// The JSON document does not hold an array of records where the configuration says.
    #[error("{}", no_records_message(file, path.as_deref(), found, suggestion.as_deref()))]
    NoRecords {
        file: String,
        /// The configured `records` path; `None`: the document itself.
        path: Option<String>,
        /// What is there instead: `an object with keys "d"`, `nothing`.
        found: String,
        /// A path to an array of objects in the document, when there is one.
        suggestion: Option<String>,
    },

    /// A JSON Lines line so long that reading it would hold an unreasonable amount of memory.
    #[error("{file}: line {line} is longer than {limit_mib} MiB; expected one record per line")]
    LineTooLong { file: String, line: u64, limit_mib: usize },

    /// A REST source failed: its configuration cannot be followed (a CA file, a URL), a page could
    /// not be fetched (refused, unreachable, retries spent), or a page is not what its paging
    /// expects. No partial read is ever planned on.
    #[error("{}", rest_message(source_name, url, *page, problem))]
    Rest {
        source_name: String,
        /// The URL concerned, without credentials and with query values that may be secret hidden.
        url: String,
        /// The 1-based page being read, when the problem is with one.
        page: Option<u32>,
        /// What was expected and what was found, without any secret.
        problem: String,
        /// The HTTP status of the last answer, when one came.
        status: Option<u16>,
    },

    /// A SCIM source's key or column that is not a SCIM attribute path.
    #[error(
        "source {source_name}: {column:?} is not a SCIM attribute path (e.g. name.givenName, emails[type eq \"work\"].value, urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber): {reason}"
    )]
    ScimColumn { source_name: String, column: String, reason: String },

    /// A byte-order mark of an encoding the source cannot read as it streams.
    #[error("{file}: found a {found} byte-order mark; expected UTF-8 or Windows-1252: save the file as UTF-8")]
    UnsupportedEncoding { file: String, found: &'static str },
}

/// A configured column that the header lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingColumn {
    pub column: String,
    /// What the column is for: `the key`, or the attribute it is mapped to.
    pub used_for: String,
    /// A header column with a similar name (a renamed column?).
    pub close_match: Option<String>,
}

/// A configured column that appears more than once in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateColumn {
    pub column: String,
    /// 1-based positions in the header.
    pub positions: Vec<usize>,
}

/// How many header columns a message lists before it says how many more there are.
const LISTED_COLUMNS: usize = 40;

fn missing_columns_message(
    file: &str,
    missing: &[MissingColumn],
    header: &[String],
    delimiter_hint: Option<char>,
) -> String {
    let mut message = format!("{file}: the header lacks ");
    for (i, column) in missing.iter().enumerate() {
        if i > 0 {
            message.push_str(", ");
        }
        let _ = write!(message, "column {:?} (for {}", column.column, column.used_for);
        if let Some(close) = &column.close_match {
            let _ = write!(message, "; renamed to {close:?}?");
        }
        message.push(')');
    }
    let plural = if header.len() == 1 { "" } else { "s" };
    let _ = write!(message, "; the header has {} column{plural}: ", header.len());
    let listed: Vec<String> = header.iter().take(LISTED_COLUMNS).map(|c| format!("{c:?}")).collect();
    message.push_str(&listed.join(", "));
    if header.len() > LISTED_COLUMNS {
        let _ = write!(message, " and {} more", header.len() - LISTED_COLUMNS);
    }
    if let Some(delimiter) = delimiter_hint {
        let _ = write!(
            message,
            "; the header is a single column containing {delimiter:?}: is the file delimited by \
             {delimiter:?} (delimiter = {:?})?",
            delimiter.to_string()
        );
    }
    message
}

fn duplicate_columns_message(file: &str, duplicates: &[DuplicateColumn]) -> String {
    let described: Vec<String> = duplicates
        .iter()
        .map(|d| {
            let positions: Vec<String> = d.positions.iter().map(ToString::to_string).collect();
            format!("column {:?} appears {} times (columns {})", d.column, d.positions.len(), and_list(&positions))
        })
        .collect();
    format!(
        "{file}: {}; expected each column the configuration uses to appear once, so its value is not ambiguous",
        described.join("; ")
    )
}

fn undecodable_message(file: &str, encoding: &str, line: u64, byte_offset: u64, bytes: &[u8]) -> String {
    let mut message = format!("{file}: invalid {encoding} on line {line}, at byte offset {byte_offset}");
    if !bytes.is_empty() {
        let hex: Vec<String> = bytes.iter().map(|b| format!("0x{b:02X}")).collect();
        let _ = write!(message, " (byte(s) {})", hex.join(" "));
    }
    if encoding == "UTF-8" {
        message.push_str(
            "; the file is probably in another encoding: if it comes from Excel on Windows, set \
             encoding = \"windows-1252\" for this source",
        );
    }
    message
}

fn missing_sheet_message(file: &str, sheet: Option<&str>, sheets: &[String]) -> String {
    let wanted = match sheet {
        Some(sheet) => format!("a sheet named {sheet:?}"),
        None => "a sheet".to_string(),
    };
    let found = match sheets {
        [] => "none".to_string(),
        [only] => format!("only {only:?}"),
        many => format!("the sheets {}", quoted_list(many)),
    };
    format!("{file}: expected {wanted}, found {found}")
}

fn no_records_message(file: &str, path: Option<&str>, found: &str, suggestion: Option<&str>) -> String {
    let mut message = match path {
        Some(path) => format!("{file}: expected an array of records at {path:?} (records), found {found}"),
        None => format!("{file}: expected the document to be an array of records, found {found}"),
    };
    if let Some(suggestion) = suggestion {
        let _ = write!(message, "; the records are probably at {suggestion:?}: set records = {suggestion:?}");
    }
    message
}

fn quoted_list(items: &[String]) -> String {
    items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ")
}

/// `a`, `a and b`, `a, b and c`.
pub(crate) fn and_list(items: &[String]) -> String {
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn sql_query_message(source_name: &str, database: &str, rows_read: u64, reason: &str) -> String {
    let when = match rows_read {
        0 => String::new(),
        1 => " after 1 row".to_string(),
        n => format!(" after {n} rows"),
    };
    format!(
        "source {source_name}: the query against {database} failed{when}: {reason}; nothing from this source is used"
    )
}

fn sql_missing_columns_message(source_name: &str, missing: &[MissingColumn], returned: &[String]) -> String {
    let mut message = format!("source {source_name}: the query returns no ");
    for (i, column) in missing.iter().enumerate() {
        if i > 0 {
            message.push_str(", ");
        }
        let _ = write!(message, "column {:?} (for {}", column.column, column.used_for);
        if let Some(close) = &column.close_match {
            let _ = write!(message, "; is it {close:?}?");
        }
        message.push(')');
    }
    match returned.len() {
        0 => message.push_str("; it returns no columns at all"),
        n => {
            let plural = if n == 1 { "" } else { "s" };
            let listed: Vec<String> = returned.iter().take(LISTED_COLUMNS).map(|c| format!("{c:?}")).collect();
            let _ = write!(message, "; it returns {n} column{plural}: {}", listed.join(", "));
            if n > LISTED_COLUMNS {
                let _ = write!(message, " and {} more", n - LISTED_COLUMNS);
            }
        }
    }
    if let Some(first) = missing.first() {
        let source = first.close_match.as_deref().unwrap_or("...");
        let _ = write!(
            message,
            "; name the columns in the query as the configuration does (SELECT {source} AS {})",
            first.column
        );
    }
    message
}

fn rest_message(source_name: &str, url: &str, page: Option<u32>, problem: &str) -> String {
    let place = match page {
        Some(page) => format!("page {page} ({url})"),
        None => url.to_string(),
    };
    format!("source {source_name}: {place}: {problem}; nothing from this source is used")
}

/// `60 s`, `1.5 s`, `300 ms`.
pub(crate) fn duration_text(duration: std::time::Duration) -> String {
    match duration.as_millis() {
        millis if millis < 1000 => format!("{millis} ms"),
        millis if millis % 1000 == 0 => format!("{} s", millis / 1000),
        _ => format!("{} s", duration.as_secs_f64()),
    }
}
