//! CSV exports: an HR export read row by row into validated records; bad rows are quarantined with
//! their file, line, row and reason, and the rest proceed.
//!
//! The whole read fails (nothing is planned from the source) when the file cannot be read or
//! decoded, has no header, or its header lacks a configured column or names one twice. Everything
//! wrong with a single row quarantines that row only; all but the number of fields is checked by
//! the rules every source shares (`super::rows`):
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
mod row;

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use roster_core::config::{SourceConfig, TextEncoding};
use roster_core::source::{Location, SourceRead};

use self::decode::{DecodingReader, MAX_ROW_BYTES, StreamError};
use self::row::{RowEnd, looks_truncated, structural_problem};
use super::rows::{Layout, Outcome, Positions, RawValue, RowRules, Tally};
use crate::error::{Error, Result};

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
    rules: RowRules<'a>,
    delimiter: u8,
}

impl<'a> Settings<'a> {
    fn new(config: &'a SourceConfig) -> Result<Self> {
        let delimiter = u8::try_from(config.delimiter)
            .ok()
            .filter(|d| d.is_ascii() && !matches!(d, b'"' | b'\r' | b'\n'))
            .ok_or_else(|| Error::InvalidDelimiter { source_name: config.name.clone(), delimiter: config.delimiter })?;
        Ok(Settings { rules: RowRules::new(config)?, delimiter })
    }

    fn read<R: Read>(&self, reader: R, file: &str) -> Result<SourceRead> {
        let config = self.rules.config();
        let encoding = match config.encoding {
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
        let layout = Layout::resolve(config, &fields, Positions::Fields, file)?;

        // The rows are parsed here and checked on a second thread, a batch at a time, as they
        // come (a million rows' checks were two thirds of reading them, on one core while the
        // other waited); the batches come back in order, so the read is the same as on one thread.
        std::thread::scope(|scope| {
            let (to_check, unchecked) = mpsc::sync_channel::<Vec<Row>>(BATCHES_AHEAD);
            // Each batch's outcomes, and its rows' records emptied, for the reading thread to read
            // into again.
            let (done, checked) = mpsc::channel::<(Vec<Outcome>, Vec<csv::StringRecord>)>();
            let rules = &self.rules;
            let layout = &layout;
            scope.spawn(move || {
                for batch in unchecked {
                    let mut spent = Vec::with_capacity(batch.len());
                    let outcomes = batch.into_iter().map(|row| row.check(rules, layout, &mut spent)).collect();
                    if done.send((outcomes, spent)).is_err() {
                        return;
                    }
                }
            });
            let mut tally = Tally::default();
            let mut batch = Vec::with_capacity(BATCH);
            let mut spare: Vec<csv::StringRecord> = Vec::new();
            // The row before the one just read, with its number and the parser's line count after
            // it: whether it was the last row is known only once the next read finds the end.
            let mut previous = csv::StringRecord::new();
            let mut previous_row: Option<(u64, u64)> = None;
            let mut rows = 0;
            // One text for every record's location, not a copy each.
            let shared_file: std::sync::Arc<str> = file.into();
            loop {
                let more = next_row(&mut csv, &mut fields, file)?;
                let blank = || previous.iter().all(|field| RawValue::Text(Cow::Borrowed(field)).is_blank());
                if let Some((row, line_after)) = previous_row.take()
                    && !blank()
                {
                    let end = if more { RowEnd::LineBreak } else { last_row_end(&csv.get_ref().end()) };
                    tally.rows_seen += 1;
                    tally.truncated |= looks_truncated(layout, previous.len(), end);
                    let location =
                        Location { file: shared_file.clone(), line: first_line(&previous, line_after, end), row };
                    batch.push(match structural_problem(layout, previous.len(), end) {
                        Some(reason) => {
                            let values = raw_values(&previous);
                            let key = self.rules.readable_key(layout, &values);
                            Row::Checked(Outcome::Quarantined(self.rules.quarantined(key, location, reason)))
                        }
                        None => {
                            let next = spare.pop().unwrap_or_default();
                            Row::Unchecked(std::mem::replace(&mut previous, next), location)
                        }
                    });
                    if batch.len() == BATCH {
                        // The checker is gone only if it panicked: raised when the scope ends.
                        let _ = to_check.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                        for (outcomes, spent) in checked.try_iter() {
                            outcomes.into_iter().for_each(|outcome| tally.push(outcome));
                            spare.extend(spent);
                        }
                    }
                }
                if !more {
                    break;
                }
                rows += 1;
                std::mem::swap(&mut previous, &mut fields);
                previous_row = Some((rows, csv.position().line()));
            }
            let _ = to_check.send(batch);
            drop(to_check);
            for (outcomes, _) in checked {
                outcomes.into_iter().for_each(|outcome| tally.push(outcome));
            }
            Ok(tally.finish(config))
        })
    }
}

/// Rows per batch handed to the checking thread.
const BATCH: usize = 4096;

/// Batches read ahead of the checking thread: what the read holds beyond its records.
const BATCHES_AHEAD: usize = 4;

/// A row read, to be checked by the rules, or already found wrong by its shape.
enum Row {
    Unchecked(csv::StringRecord, Location),
    Checked(Outcome),
}

impl Row {
    /// The row's outcome; its record, once read, goes to `spent`.
    fn check(self, rules: &RowRules, layout: &Layout, spent: &mut Vec<csv::StringRecord>) -> Outcome {
        match self {
            Row::Unchecked(fields, location) => {
                let outcome = rules.check(layout, &raw_values(&fields), location);
                spent.push(fields);
                outcome
            }
            Row::Checked(outcome) => outcome,
        }
    }
}

fn raw_values(fields: &csv::StringRecord) -> Vec<RawValue<'_>> {
    fields.iter().map(|field| RawValue::Text(Cow::Borrowed(field))).collect()
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
    // The fields end to end, counted in one pass.
    let breaks_inside = fields.as_slice().bytes().filter(|&b| b == b'\n').count();
    let ending_break = u64::from(end == RowEnd::LineBreak);
    line_after.saturating_sub(breaks_inside as u64).saturating_sub(ending_break).max(1)
}
