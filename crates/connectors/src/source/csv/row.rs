//! One data row: checked against the header and the configuration, it becomes a record, or a
//! quarantined row whose reason says what was expected and what was found.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::format::ParseErrorKind;
use chrono::{Datelike, NaiveDate};
use roster_core::config::SourceConfig;
use roster_core::source::{FieldValue, Location, QuarantinedRow, Record};

use super::header::Layout;
use super::{MAX_FIELD_BYTES, abbreviated};
use crate::error::Error;

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RowEnd {
    /// A line break ends the row (every row but perhaps the last).
    LineBreak,
    /// The file ends right after the row, without a line break.
    EndOfFile,
    /// The file, `last_line` lines long, ends inside a quoted value that opened on `opened_line`.
    InsideQuotes { opened_line: u64, last_line: u64 },
}

pub(super) enum Outcome {
    Valid(Record),
    Quarantined(QuarantinedRow),
}

/// The configured date format, checked once, with an example date to show in messages.
pub(super) struct DateFormat {
    format: String,
    example: String,
}

/// Shown in messages, in the configured format: its day and month cannot be mistaken for each other.
const EXAMPLE_DATE: (i32, u32, u32) = (2026, 12, 31);

impl DateFormat {
    pub(super) fn new(config: &SourceConfig) -> Result<Self, Error> {
        let invalid =
            || Error::InvalidDateFormat { source_name: config.name.clone(), format: config.date_format.clone() };
        let (year, month, day) = EXAMPLE_DATE;
        let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(invalid)?;
        let mut example = String::new();
        // chrono reports a format it cannot apply to a date (`%H`, `%Q`) as a formatting error.
        write!(example, "{}", date.format(&config.date_format)).map_err(|_| invalid())?;
        if NaiveDate::parse_from_str(&example, &config.date_format).ok() != Some(date) {
            return Err(invalid());
        }
        Ok(DateFormat { format: config.date_format.clone(), example })
    }

    /// Parses strictly: an impossible date (2026-02-30) is an error, never the next month; so is a
    /// year outside 1000-9999, which is what `%Y` makes of a two-digit year (`26` -> year 26).
    fn parse(&self, value: &str) -> Result<NaiveDate, String> {
        let DateFormat { format, example } = self;
        match NaiveDate::parse_from_str(value, format) {
            Ok(date) if (1000..=9999).contains(&date.year()) => Ok(date),
            Ok(date) => Err(format!(
                "{} reads as the year {}; expected a four-digit year in the format {format}, e.g. {example}",
                shown(value),
                date.year()
            )),
            Err(e) if matches!(e.kind(), ParseErrorKind::OutOfRange | ParseErrorKind::Impossible) => {
                Err(format!("{} is not a valid date; expected the format {format}, e.g. {example}", shown(value)))
            }
            Err(_) => Err(format!("{} does not match the date format {format}, e.g. {example}", shown(value))),
        }
    }
}

/// What a row is checked against.
pub(super) struct Rules<'a> {
    pub config: &'a SourceConfig,
    pub layout: &'a Layout,
    pub dates: &'a DateFormat,
}

impl Rules<'_> {
    /// Whether the file probably ends early: it ends inside a quoted value, or in the middle of a
    /// row that lacks fields.
    pub(super) fn looks_truncated(&self, field_count: usize, end: RowEnd) -> bool {
        match end {
            RowEnd::InsideQuotes { .. } => true,
            RowEnd::EndOfFile => field_count < self.layout.header.len(),
            RowEnd::LineBreak => false,
        }
    }

    pub(super) fn check(&self, fields: &csv::StringRecord, location: Location, end: RowEnd) -> Outcome {
        let key = self.readable_key(fields);
        match self.attributes(fields, end) {
            Ok(attrs) => match key {
                Some(key) => Outcome::Valid(Record { source: self.config.name.clone(), key, attrs, location }),
                None => Outcome::Quarantined(self.quarantined(None, location, self.key_problem(fields))),
            },
            Err(reason) => Outcome::Quarantined(self.quarantined(key, location, reason)),
        }
    }

    fn quarantined(&self, key: Option<String>, location: Location, reason: String) -> QuarantinedRow {
        QuarantinedRow { source: self.config.name.clone(), key, location, reason }
    }

    /// The trimmed key, when the row has one that fits the field size limit.
    fn readable_key(&self, fields: &csv::StringRecord) -> Option<String> {
        let raw = fields.get(self.layout.key_index)?;
        let key = raw.trim();
        (!key.is_empty() && raw.len() <= MAX_FIELD_BYTES).then(|| key.to_string())
    }

    fn key_problem(&self, fields: &csv::StringRecord) -> String {
        let raw = fields.get(self.layout.key_index).unwrap_or_default();
        let found = if raw.is_empty() { "it is empty" } else { "it is blank (only whitespace)" };
        format!("expected a key in column {:?}, but {found}", self.layout.key_column)
    }

    /// The row's attributes, or why the row cannot be used.
    fn attributes(&self, fields: &csv::StringRecord, end: RowEnd) -> Result<BTreeMap<String, FieldValue>, String> {
        let header = &self.layout.header;
        let column_name =
            |index: usize| header.get(index).map(|name| format!(" ({})", shown(name))).unwrap_or_default();
        if let RowEnd::InsideQuotes { opened_line, last_line } = end {
            let field = fields.len();
            return Err(format!(
                "a quoted value opened on line {opened_line} in field {field}{} is never closed: expected a \
                 closing quote, found the end of the file (line {last_line}); the file may be truncated, \
                 or a quote is missing",
                column_name(field.saturating_sub(1))
            ));
        }
        if fields.len() != header.len() {
            let mut reason = format!("expected {} fields as in the header, found {}", header.len(), fields.len());
            if self.looks_truncated(fields.len(), end) {
                reason.push_str(": the file ends in the middle of this row, so it may be truncated");
            }
            return Err(reason);
        }
        if let Some((index, field)) = fields.iter().enumerate().find(|(_, field)| field.len() > MAX_FIELD_BYTES) {
            return Err(format!(
                "field {}{} is {} bytes long; expected at most {} bytes (1 MiB)",
                index + 1,
                column_name(index),
                field.len(),
                MAX_FIELD_BYTES
            ));
        }
        if fields.get(self.layout.key_index).unwrap_or_default().trim().is_empty() {
            return Err(self.key_problem(fields));
        }

        let mut attrs = BTreeMap::new();
        let mut problems = Vec::new();
        for mapped in &self.layout.attributes {
            let value = fields.get(mapped.index).unwrap_or_default().trim();
            let described = || format!("{} (column {:?})", mapped.attribute, mapped.column);
            if value.is_empty() {
                if mapped.required {
                    problems.push(format!("{} is required, but empty", described()));
                }
                continue;
            }
            let value = if mapped.is_date {
                match self.dates.parse(value) {
                    Ok(date) => FieldValue::Date(date),
                    Err(why) => {
                        problems.push(format!("{}: {why}", described()));
                        continue;
                    }
                }
            } else {
                FieldValue::Text(value.to_string())
            };
            attrs.insert(mapped.attribute.clone(), value);
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        attrs.entry("affiliation".to_string()).or_insert_with(|| FieldValue::Text(self.config.affiliation.clone()));
        Ok(attrs)
    }
}

/// A value quoted for a message, shortened when long.
fn shown(value: &str) -> String {
    format!("{:?}", abbreviated(value))
}
