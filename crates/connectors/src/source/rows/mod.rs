//! The rules every source's rows go through, so that the same problem gets the same reason from a
//! CSV export, a spreadsheet, a JSON file or a database. A source hands over each row as its raw
//! values ([`RawValue`]: text, a number, a date, a boolean, empty, or something else) in the order
//! of a [`Layout`] (a header row's columns, or the configured columns of records with named
//! fields), with its [`Location`]; the rules make it a record, or a quarantined row whose reason
//! says what was expected, what was found and where:
//!
//! - a text value over 1 MiB holds its row;
//! - the key is required and kept as text: trimmed, never stripped of leading zeros (`00042`
//!   stays `00042`), a number without a needless `.0` (`42`); a date or a boolean is no key;
//! - values are trimmed; empty values are absent; an empty required attribute (`hire_date` always
//!   is) holds the row;
//! - date attributes parse strictly ([`DateFormat`]); a date the source holds as a date is taken
//!   as it is;
//! - numbers, booleans and dates become text where text is expected; a nested value (a JSON object
//!   or array) or a spreadsheet error cell holds the row;
//! - `affiliation`, unless mapped and present, is the source's configured one;
//! - a key on more than one row holds all those rows: none wins ([`Tally::finish`]).
//!
//! What only one kind of source can get wrong (a CSV row with too few fields, a line that is not
//! JSON) is that source's to check, and its reason is its own.

mod dates;
mod header;

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use roster_core::config::SourceConfig;
use roster_core::source::{Attrs, FieldValue, Location, NameLists, QuarantinedRow, Record, SourceRead};

pub(crate) use self::dates::DateFormat;
pub(crate) use self::header::{Layout, Positions};
use crate::error::{Error, Result, and_list};

/// A value, or the reason its row is held.
type Checked<T> = std::result::Result<T, String>;

/// Longest text value kept; a longer one holds its row (hostile or broken input).
pub(crate) const MAX_FIELD_BYTES: usize = 1 << 20;
/// Longest value quoted in a message.
const SHOWN_CHARS: usize = 64;
/// Most row numbers a duplicate-key reason lists.
const LISTED_ROWS: usize = 10;
/// 2^53: integers held as floating point (a spreadsheet's numbers) are exact below this only.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// One value of a row, as the source holds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue<'a> {
    /// Nothing: an empty field or cell, JSON `null`, SQL `NULL`.
    Empty,
    /// The record has no such field at all (a JSON object without the key).
    Missing,
    /// Text, untrimmed.
    Text(Cow<'a, str>),
    Integer(i64),
    /// A floating-point number: spreadsheets hold every number so.
    Number(f64),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    Bool(bool),
    /// Anything else, described for a reason: `an object with keys "ID", "Descriptor"`, `the
    /// error value #N/A`.
    Other(String),
}

impl RawValue<'_> {
    /// Empty, missing, or only whitespace.
    pub(crate) fn is_blank(&self) -> bool {
        match self {
            RawValue::Empty | RawValue::Missing => true,
            RawValue::Text(text) => text.trim().is_empty(),
            _ => false,
        }
    }
}

pub(crate) enum Outcome {
    Valid(Record),
    Quarantined(QuarantinedRow),
}

/// What a source's configuration asks of every row, checked before the source is touched.
pub(crate) struct RowRules<'a> {
    config: &'a SourceConfig,
    /// The source's name, shared by its records.
    source: Arc<str>,
    dates: DateFormat,
    /// The records' name lists, shared by the records with the same names, and a row's
    /// attributes as they are gathered (their room kept from row to row). Behind a lock so that
    /// rows can be checked on another thread than the one reading them; one thread checks at a
    /// time.
    shaping: Mutex<(NameLists, Gathered)>,
}

/// A row's attributes as they are checked, before they become a record.
type Gathered = Vec<(Arc<str>, FieldValue)>;

impl<'a> RowRules<'a> {
    /// Fails when the configuration cannot be followed: required attributes without a column, a
    /// date format that does not describe a whole date.
    pub(crate) fn new(config: &'a SourceConfig) -> Result<Self> {
        let unmapped: Vec<String> = std::iter::once("hire_date")
            .chain(config.required.iter().map(String::as_str).filter(|a| *a != "hire_date"))
            .filter(|attribute| !config.columns.contains_key(*attribute) && *attribute != "affiliation")
            .map(str::to_string)
            .collect();
        if !unmapped.is_empty() {
            return Err(Error::RequiredNotMapped { source_name: config.name.clone(), attributes: unmapped });
        }
        Ok(RowRules {
            config,
            source: config.name.as_str().into(),
            dates: DateFormat::new(config)?,
            shaping: Mutex::default(),
        })
    }

    pub(crate) fn config(&self) -> &'a SourceConfig {
        self.config
    }

    /// Checks one row, given as its values in the order of `layout.header` (a short row reads as
    /// empty values at its end).
    pub(crate) fn check(&self, layout: &Layout, values: &[RawValue], location: Location) -> Outcome {
        let key = key(layout, values);
        if let Some(reason) = oversized(layout, values).or_else(|| control_characters(layout, values)) {
            return Outcome::Quarantined(self.quarantined(key.ok(), location, reason));
        }
        let key = match key {
            Ok(key) => key,
            Err(problem) => return Outcome::Quarantined(self.quarantined(None, location, problem)),
        };
        match self.attributes(layout, values) {
            Ok(attrs) => {
                Outcome::Valid(Record { source: Arc::clone(&self.source), key, attrs: attrs.into(), location })
            }
            Err(reason) => Outcome::Quarantined(self.quarantined(Some(key), location, reason)),
        }
    }

    /// The row's key, when it has one that can be read: for a row held for a reason of its source's
    /// own, so its person is held as they were.
    pub(crate) fn readable_key(&self, layout: &Layout, values: &[RawValue]) -> Option<String> {
        key(layout, values).ok()
    }

    pub(crate) fn quarantined(&self, key: Option<String>, location: Location, reason: String) -> QuarantinedRow {
        QuarantinedRow { source: self.config.name.clone(), key, location, reason }
    }

    /// The row's attributes, or every reason it cannot be used.
    fn attributes(&self, layout: &Layout, values: &[RawValue]) -> Checked<Attrs> {
        let mut shaping = self.shaping.lock().unwrap_or_else(|e| e.into_inner());
        let (names, attrs) = &mut *shaping;
        attrs.clear();
        let mut problems = Vec::new();
        for mapped in &layout.attributes {
            let value = values.get(mapped.index).unwrap_or(&RawValue::Empty);
            let described = || format!("{} (column {:?})", mapped.attribute, mapped.column);
            let converted =
                if mapped.is_date { self.date(value) } else { text(value).map(|t| t.map(FieldValue::Text)) };
            match converted {
                Ok(Some(value)) => attrs.push((Arc::clone(&mapped.attribute), value)),
                Ok(None) if mapped.required => {
                    let found = if *value == RawValue::Missing { "missing from the record" } else { "empty" };
                    problems.push(format!("{} is required, but {found}", described()));
                }
                Ok(None) => {}
                Err(why) => problems.push(format!("{}: {why}", described())),
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        if !attrs.iter().any(|(name, _)| *name == layout.affiliation) {
            attrs.push((Arc::clone(&layout.affiliation), FieldValue::Text(self.config.affiliation.clone())));
        }
        Ok(names.attrs(attrs))
    }

    /// A date attribute's value: `None` when empty.
    fn date(&self, value: &RawValue) -> Checked<Option<FieldValue>> {
        let expected = || format!("expected a date in {}", self.dates.described());
        let date = match value {
            RawValue::Empty | RawValue::Missing => return Ok(None),
            RawValue::Text(text) if text.trim().is_empty() => return Ok(None),
            RawValue::Text(text) => self.dates.parse(text.trim())?,
            RawValue::Date(date) => DateFormat::plausible(*date)?,
            RawValue::DateTime(moment) => DateFormat::plausible(moment.date())?,
            RawValue::Integer(n) => return Err(format!("{}, found the number {n}", expected())),
            RawValue::Number(n) => return Err(format!("{}, found the number {}", expected(), number_text(*n))),
            RawValue::Bool(b) => return Err(format!("{}, found the value {b}", expected())),
            RawValue::Other(what) => return Err(format!("{}, found {what}", expected())),
        };
        Ok(Some(FieldValue::Date(date)))
    }
}

/// A text attribute's value: `None` when empty.
fn text(value: &RawValue) -> Checked<Option<String>> {
    Ok(Some(match value {
        RawValue::Empty | RawValue::Missing => return Ok(None),
        RawValue::Text(text) => match text.trim() {
            "" => return Ok(None),
            trimmed => trimmed.to_string(),
        },
        RawValue::Integer(n) => n.to_string(),
        RawValue::Number(n) => number_text(*n),
        RawValue::Bool(b) => b.to_string(),
        RawValue::Date(date) => date.format("%Y-%m-%d").to_string(),
        RawValue::DateTime(moment) if moment.time() == NaiveTime::MIN => moment.format("%Y-%m-%d").to_string(),
        RawValue::DateTime(moment) => moment.format("%Y-%m-%dT%H:%M:%S").to_string(),
        RawValue::Other(what) => return Err(format!("expected text, found {what}")),
    }))
}

/// The row's key, or why it has none.
fn key(layout: &Layout, values: &[RawValue]) -> Checked<String> {
    let found = match values.get(layout.key_index).unwrap_or(&RawValue::Empty) {
        RawValue::Text(raw) if raw.len() > MAX_FIELD_BYTES => "it is over 1 MiB long".to_string(),
        RawValue::Text(raw) => match raw.trim() {
            "" if raw.is_empty() => "it is empty".to_string(),
            "" => "it is blank (only whitespace)".to_string(),
            key => return Ok(key.to_string()),
        },
        RawValue::Integer(n) => return Ok(n.to_string()),
        RawValue::Number(n) if n.is_finite() && n.abs() < EXACT_INTEGERS => return Ok(number_text(*n)),
        RawValue::Number(n) => {
            format!("found the number {n:e}, too large to hold an ID exactly; store the IDs as text")
        }
        RawValue::Empty => "it is empty".to_string(),
        RawValue::Missing => "it is missing from the record".to_string(),
        RawValue::Date(date) => format!("found the date {date} (did a spreadsheet turn the ID into a date?)"),
        RawValue::DateTime(moment) => format!("found the date and time {moment}"),
        RawValue::Bool(b) => format!("found the value {b}"),
        RawValue::Other(what) => format!("found {what}"),
    };
    Err(format!("expected a key in column {:?}, but {found}", layout.key_column))
}

/// Why the row is held, when one of its text values is too long to keep.
fn oversized(layout: &Layout, values: &[RawValue]) -> Option<String> {
    values.iter().enumerate().find_map(|(index, value)| match value {
        RawValue::Text(text) if text.len() > MAX_FIELD_BYTES => Some(format!(
            "{} is {} bytes long; expected at most {MAX_FIELD_BYTES} bytes (1 MiB)",
            layout.describe(index),
            text.len()
        )),
        _ => None,
    })
}

/// Why the row is held, when one of its values holds a NUL or another control character (tab and
/// line breaks aside): C clients cut a value at NUL, so `5005\0x` could pass for person 5005.
fn control_characters(layout: &Layout, values: &[RawValue]) -> Option<String> {
    values.iter().enumerate().find_map(|(index, value)| match value {
        RawValue::Text(text) => control_character(text).map(|c| {
            format!(
                "{} holds the control character U+{:04X}; expected printable text",
                layout.describe(index),
                c as u32
            )
        }),
        _ => None,
    })
}

/// The first control character of `text` but tab and line breaks. The control characters are
/// U+0000-U+001F, U+007F and U+0080-U+009F (0xC2 0x80-0x9F in UTF-8): a text without any of their
/// bytes, as nearly every value is, is not decoded.
fn control_character(text: &str) -> Option<char> {
    if !text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        return None;
    }
    text.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// A number as text: `42`, not `42.0`; `0.5`; never an exponent.
pub(crate) fn number_text(n: f64) -> String {
    if n == 0.0 { "0".to_string() } else { n.to_string() }
}

/// A row whose every value is empty, as spreadsheets leave after the last real row: skipped, not
/// quarantined, and not counted.
pub(crate) fn is_blank_row(values: &[RawValue]) -> bool {
    values.iter().all(RawValue::is_blank)
}

/// The rows of one read, as they are checked.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub records: Vec<Record>,
    pub quarantined: Vec<QuarantinedRow>,
    /// Data rows seen (valid and quarantined).
    pub rows_seen: u64,
    /// The source probably ends early: the read is not complete whatever the configuration says.
    pub truncated: bool,
}

impl Tally {
    pub(crate) fn push(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Valid(record) => self.records.push(record),
            Outcome::Quarantined(held) => self.quarantined.push(held),
        }
    }

    /// The read, once every row is in: rows sharing a key are held, unless the source declares
    /// them versions or appointments (`effective_date`, `primary`), which the planner chooses
    /// among for the day it plans.
    pub(crate) fn finish(mut self, config: &SourceConfig) -> SourceRead {
        if config.effective_date.is_none() && config.primary.is_none() {
            hold_duplicate_keys(&mut self.records, &mut self.quarantined);
        }
        SourceRead {
            source: config.name.clone(),
            complete: config.complete && !self.truncated,
            rows_seen: self.rows_seen,
            records: self.records,
            quarantined: self.quarantined,
        }
    }
}

/// A key on more than one row means the export disagrees with itself about a person: every row
/// with that key is quarantined (with its key, so the person is held as they were), none wins.
fn hold_duplicate_keys(records: &mut Vec<Record>, quarantined: &mut Vec<QuarantinedRow>) {
    // Each key's first row, and the rows of the keys seen again: a list per key only for those
    // (a million keys read daily, a handful repeated).
    let mut first_row: HashMap<&str, u64, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(records.len() + quarantined.len(), Default::default());
    let mut repeated: HashMap<&str, Vec<u64>> = HashMap::new();
    let keyed_rows = records
        .iter()
        .map(|record| (record.key.as_str(), record.location.row))
        .chain(quarantined.iter().filter_map(|q| Some((q.key.as_deref()?, q.location.row))));
    for (key, row) in keyed_rows {
        match first_row.entry(key) {
            Entry::Vacant(first) => {
                first.insert(row);
            }
            Entry::Occupied(first) => repeated.entry(key).or_insert_with(|| vec![*first.get()]).push(row),
        }
    }
    let duplicates: HashMap<String, String> = repeated
        .into_iter()
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
        QuarantinedRow { source: record.source.to_string(), key: Some(record.key), location: record.location, reason }
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
pub(crate) fn abbreviated(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &value[..cut])),
        None => Cow::Borrowed(value),
    }
}

/// A value quoted for a message, shortened when long.
pub(crate) fn shown(value: &str) -> String {
    format!("{:?}", abbreviated(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_as_char_is_control_finds_them() {
        for c in ('\0'..='\u{3000}').chain(['\u{feff}', '\u{1f600}']) {
            let expected = (c.is_control() && !matches!(c, '\t' | '\n' | '\r')).then_some(c);
            for text in [c.to_string(), format!("São {c} Paulo"), format!("{c}§")] {
                assert_eq!(control_character(&text), expected, "{text:?}");
            }
        }
    }

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

    #[test]
    fn numbers_read_as_text_without_a_needless_fraction_or_exponent() {
        let texts: Vec<String> = [42.0, -0.0, 0.5, 1e21, -3.25].into_iter().map(number_text).collect();
        assert_eq!(texts, ["42", "0", "0.5", "1000000000000000000000", "-3.25"]);
    }
}
