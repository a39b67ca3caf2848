//! CSV exports: an HR export read row by row into validated records; bad rows are quarantined with
//! their file, line, row and reason, and the rest proceed.
//!
//! The whole read fails (nothing is planned from the source) when the file cannot be read or
//! decoded, has no header, or its header lacks a configured column or names one twice. Everything
//! wrong with a single row quarantines that row only:
//!
//! - more or fewer fields than the header (a short last row without a line break, or a file ending
//!   inside a quoted value, is called a probable truncation, and makes the read not complete);
//! - a field over 1 MiB;
//! - an empty or blank key; a key on more than one row (all those rows are held, none wins);
//! - an empty required attribute (`hire_date` always is);
//! - a date that does not parse strictly with the configured format.
//!
//! Text is UTF-8 (with or without a byte-order mark) or Windows-1252, decoded as it streams; a
//! byte-order mark (UTF-8, or UTF-16 as Excel's "Unicode text" writes) overrides the configured
//! encoding. Line breaks may be CRLF, LF or CR; inside quoted values they read as LF. Values are
//! trimmed; empty values are absent. Keys are kept as text (`00042` stays `00042`).

mod decode;
mod header;
mod row;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use roster_core::config::{SourceConfig, TextEncoding};
use roster_core::source::{Location, QuarantinedRow, Record, SourceRead};

use self::decode::{DecodingReader, MAX_ROW_BYTES, StreamError};
use self::header::Layout;
use self::row::{DateFormat, Outcome, RowEnd, Rules};
use crate::error::{Error, Result, and_list};

/// Longest field kept; a longer one quarantines its row (hostile or broken input).
const MAX_FIELD_BYTES: usize = 1 << 20;
/// Longest value quoted in a message.
const SHOWN_CHARS: usize = 64;
/// Most row numbers a duplicate-key reason lists.
const LISTED_ROWS: usize = 10;

/// Reads the export at `path` (already resolved against the config file's folder) per `config`.
pub fn read_csv(config: &SourceConfig, path: &Path) -> Result<SourceRead> {
    let settings = Settings::new(config)?;
    let file = File::open(path).map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
    settings.read(file, &path.display().to_string())
}

/// Reads an export from any reader (tests, sources that hand over bytes); `file_label` names it
/// in locations and messages.
pub fn read_csv_from<R: Read>(config: &SourceConfig, reader: R, file_label: &str) -> Result<SourceRead> {
    Settings::new(config)?.read(reader, file_label)
}

/// The parts of the configuration checked before the file is touched.
struct Settings<'a> {
    config: &'a SourceConfig,
    delimiter: u8,
    dates: DateFormat,
}

impl<'a> Settings<'a> {
    fn new(config: &'a SourceConfig) -> Result<Self> {
        let delimiter = u8::try_from(config.delimiter)
            .ok()
            .filter(|d| d.is_ascii() && !matches!(d, b'"' | b'\r' | b'\n'))
            .ok_or_else(|| Error::InvalidDelimiter { source_name: config.name.clone(), delimiter: config.delimiter })?;
        let unmapped: Vec<String> = std::iter::once("hire_date")
            .chain(config.required.iter().map(String::as_str).filter(|a| *a != "hire_date"))
            .filter(|attribute| !config.columns.contains_key(*attribute) && *attribute != "affiliation")
            .map(str::to_string)
            .collect();
        if !unmapped.is_empty() {
            return Err(Error::RequiredNotMapped { source_name: config.name.clone(), attributes: unmapped });
        }
        Ok(Settings { config, delimiter, dates: DateFormat::new(config)? })
    }

    fn read<R: Read>(&self, reader: R, file: &str) -> Result<SourceRead> {
        let encoding = match self.config.encoding {
            TextEncoding::Utf8 => encoding_rs::UTF_8,
            TextEncoding::Windows1252 => encoding_rs::WINDOWS_1252,
        };
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.delimiter)
            .from_reader(DecodingReader::new(reader, encoding, self.delimiter));

        let mut fields = csv::StringRecord::new();
        if !next_row(&mut csv, &mut fields, file)? {
            return Err(Error::NoHeader { file: file.to_string() });
        }
        let layout = Layout::resolve(self.config, &fields, file)?;
        let rules = Rules { config: self.config, layout: &layout, dates: &self.dates };

        let mut records = Vec::new();
        let mut quarantined = Vec::new();
        let mut truncated = false;
        // The row before the one just read, with its number and the parser's line count after it:
        // whether it was the last row is known only once the next read finds the end.
        let mut previous = csv::StringRecord::new();
        let mut previous_row: Option<(u64, u64)> = None;
        let mut rows_seen = 0;
        let mut blank_rows = 0;
        loop {
            let more = next_row(&mut csv, &mut fields, file)?;
            if let Some((row, line_after)) = previous_row.take().filter(|_| !is_blank(&previous)) {
                let end = if more { RowEnd::LineBreak } else { last_row_end(&csv.get_ref().end()) };
                truncated |= rules.looks_truncated(previous.len(), end);
                let location = Location { file: file.to_string(), line: first_line(&previous, line_after, end), row };
                match rules.check(&previous, location, end) {
                    Outcome::Valid(record) => records.push(record),
                    Outcome::Quarantined(held) => quarantined.push(held),
                }
            }
            if !more {
                break;
            }
            rows_seen += 1;
            if is_blank(&fields) {
                blank_rows += 1;
            }
            std::mem::swap(&mut previous, &mut fields);
            previous_row = Some((rows_seen, csv.position().line()));
        }

        hold_duplicate_keys(&mut records, &mut quarantined);
        Ok(SourceRead {
            source: self.config.name.clone(),
            complete: self.config.complete && !truncated,
            rows_seen: rows_seen - blank_rows,
            records,
            quarantined,
        })
    }
}

fn next_row<R: Read>(
    csv: &mut csv::Reader<DecodingReader<R>>,
    fields: &mut csv::StringRecord,
    file: &str,
) -> Result<bool> {
    csv.read_record(fields).map_err(|error| stream_failure(error, file))
}

fn stream_failure(error: csv::Error, file: &str) -> Error {
    let file = file.to_string();
    let io = match error.into_kind() {
        csv::ErrorKind::Io(io) => io,
        // The stream hands the parser valid UTF-8 only, and flexible rows cannot have the wrong
        // length, so this is not expected.
        other => io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
    };
    match io.downcast::<StreamError>() {
        Ok(StreamError::Undecodable { encoding, line, byte_offset, bytes }) => {
            Error::Undecodable { file, encoding, line, byte_offset, bytes }
        }
        Ok(StreamError::RowTooLong { line }) => Error::RowTooLong { file, line, limit_mib: MAX_ROW_BYTES >> 20 },
        Err(source) => Error::Read { file, source },
    }
}

/// A row whose every field is empty, as spreadsheets write after the last real row
/// (`,,,,,,`): skipped, not quarantined, and not counted.
fn is_blank(fields: &csv::StringRecord) -> bool {
    fields.iter().all(|f| f.trim().is_empty())
}

fn last_row_end(end: &decode::StreamEnd) -> RowEnd {
    match end.open_quote_line {
        Some(opened_line) => RowEnd::InsideQuotes { opened_line, last_line: end.lines },
        None if end.ends_with_line_break => RowEnd::LineBreak,
        None => RowEnd::EndOfFile,
    }
}

/// The row's first line: the parser's line count after the row, less the line breaks inside its
/// quoted values and the one that ended it.
fn first_line(fields: &csv::StringRecord, line_after: u64, end: RowEnd) -> u64 {
    let breaks_inside: usize = fields.iter().map(|field| field.bytes().filter(|&b| b == b'\n').count()).sum();
    let ending_break = u64::from(end == RowEnd::LineBreak);
    line_after.saturating_sub(breaks_inside as u64).saturating_sub(ending_break).max(1)
}

/// A key on more than one row means the export disagrees with itself about a person: every row
/// with that key is quarantined (with its key, so the person is held as they were), none wins.
fn hold_duplicate_keys(records: &mut Vec<Record>, quarantined: &mut Vec<QuarantinedRow>) {
    let mut rows_by_key: HashMap<&str, Vec<u64>> = HashMap::new();
    let keyed_rows = records
        .iter()
        .map(|record| (record.key.as_str(), record.location.row))
        .chain(quarantined.iter().filter_map(|q| Some((q.key.as_deref()?, q.location.row))));
    for (key, row) in keyed_rows {
        rows_by_key.entry(key).or_default().push(row);
    }
    let duplicates: HashMap<String, String> = rows_by_key
        .into_iter()
        .filter(|(_, rows)| rows.len() > 1)
        .map(|(key, mut rows)| {
            rows.sort_unstable();
            (key.to_string(), format!("key {} appears on {}", abbreviated(key), rows_list(&rows)))
        })
        .collect();
    if duplicates.is_empty() {
        return;
    }

    for row in quarantined.iter_mut() {
        if let Some(reason) = row.key.as_ref().and_then(|key| duplicates.get(key)) {
            row.reason.push_str("; ");
            row.reason.push_str(reason);
        }
    }
    let (held, kept): (Vec<Record>, Vec<Record>) =
        std::mem::take(records).into_iter().partition(|record| duplicates.contains_key(&record.key));
    *records = kept;
    quarantined.extend(held.into_iter().map(|record| {
        let reason = duplicates.get(&record.key).cloned().unwrap_or_default();
        QuarantinedRow { source: record.source, key: Some(record.key), location: record.location, reason }
    }));
    quarantined.sort_by_key(|row| row.location.row);
}

/// `rows 3 and 17`, `rows 3, 9 and 17`, or for many: `1200 rows: 3, 9, ... and 1190 more`.
fn rows_list(rows: &[u64]) -> String {
    let numbers: Vec<String> = rows.iter().take(LISTED_ROWS).map(ToString::to_string).collect();
    if rows.len() > LISTED_ROWS {
        return format!("{} rows: {} and {} more", rows.len(), numbers.join(", "), rows.len() - LISTED_ROWS);
    }
    let plural = if rows.len() == 1 { "" } else { "s" };
    format!("row{plural} {}", and_list(&numbers))
}

/// A value for a message: as is, or its first characters and an ellipsis.
fn abbreviated(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &value[..cut])),
        None => Cow::Borrowed(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_rows_are_listed_in_words_and_capped_when_many() {
        assert_eq!(rows_list(&[3, 17]), "rows 3 and 17");
        assert_eq!(rows_list(&[3, 9, 17]), "rows 3, 9 and 17");
        let many: Vec<u64> = (1..=1200).collect();
        assert_eq!(rows_list(&many), "1200 rows: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 1190 more");
    }

    #[test]
    fn long_values_are_abbreviated_on_a_character_boundary() {
        assert_eq!(abbreviated("short"), "short");
        let long = "é".repeat(100);
        assert_eq!(abbreviated(&long), format!("{}…", "é".repeat(SHOWN_CHARS)));
    }
}
