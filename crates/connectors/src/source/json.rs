//! JSON exports: a JSON document holding an array of records (`kind = "json"`), or JSON Lines, one
//! record per line (`kind = "jsonl"`). Every record is an object whose fields go through the rules
//! every source shares (`super::rows`).
//!
//! The records of a document are at the dotted path `records`: `Report_Entry` for a Workday
//! report-as-a-service export (`{"Report_Entry": [...]}`), `d.results` for SuccessFactors' OData v2
//! (`{"d": {"results": [...]}}`); without it, the document itself is the array. A document is read
//! whole into memory and parsed with serde_json, as JSON cannot be checked before its end; each
//! record keeps its place in the text, so messages give the line it starts on. JSON Lines are
//! streamed: one line is held at a time.
//!
//! `columns` name a record's fields; a dotted name reaches into nested objects
//! (`Worker.Legal_Name.Last`), unless the record has a field with the dotted name itself. A field
//! that is absent or `null` is empty; numbers read as text (an integer ID `42` as `42`); a nested
//! object or array where a value is expected holds the record, saying what it holds. Dates are text
//! in `date_format`, or SuccessFactors' `/Date(1767225600000)/` whatever the format.
//!
//! The whole read fails when the file cannot be read, is not in its encoding (UTF-8 with or without
//! a byte-order mark, or Windows-1252 when configured), or, for a document, does not parse (the
//! message gives line and column) or holds no array at `records`. A JSON Lines line that is not a
//! JSON object holds that line only, with its line number; the rest proceed. A last line that is
//! cut short (no line break, and not valid JSON) means the file may be truncated: the read is then
//! not complete. Blank lines are skipped and not counted.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use roster_core::config::{SourceConfig, SourceKind, TextEncoding};
use roster_core::source::{Location, SourceRead};
use serde_json::value::RawValue as RawJson;
use serde_json::{Map, Value};

use super::rows::{Layout, Outcome, RawValue, RowRules, Tally, shown};
use crate::error::{Error, Result};

/// Longest JSON Lines line held in memory; a longer one ends the read.
const MAX_LINE_BYTES: usize = 64 << 20;
/// How many keys of an object a message lists.
const LISTED_KEYS: usize = 5;
/// How deep the search for a `records` path to suggest looks into a document.
const SUGGESTION_DEPTH: usize = 3;

/// Reads the JSON document or JSON Lines file (per `config.kind`) at `path`, already resolved
/// against the config file's folder.
pub fn read_json(config: &SourceConfig, path: &Path) -> Result<SourceRead> {
    let rules = RowRules::new(config)?;
    let file = File::open(path).map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
    read(&rules, BufReader::new(file), &path.display().to_string())
}

/// Reads JSON from any reader (tests, sources that hand over bytes); `file_label` names it in
/// locations and messages.
pub fn read_json_from<R: Read>(config: &SourceConfig, reader: R, file_label: &str) -> Result<SourceRead> {
    read(&RowRules::new(config)?, BufReader::new(reader), file_label)
}

fn read<R: BufRead>(rules: &RowRules, reader: R, file: &str) -> Result<SourceRead> {
    match rules.config().kind {
        SourceKind::Jsonl => read_lines(rules, reader, file),
        _ => read_document(rules, reader, file),
    }
}

fn read_document<R: Read>(rules: &RowRules, mut reader: R, file: &str) -> Result<SourceRead> {
    let config = rules.config();
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|source| Error::Read { file: file.to_string(), source })?;
    let text = decode_document(&bytes, config.encoding, file)?;
    let document: &RawJson = serde_json::from_str(&text).map_err(|error| Error::InvalidJson {
        file: file.to_string(),
        line: error.line() as u64,
        column: error.column() as u64,
        reason: unplaced(&error),
    })?;
    let records = find_records(document, config.records.as_deref(), file)?;

    let layout = Layout::named(config);
    let mut tally = Tally::default();
    let mut lines = LineCounter::new(&text);
    let shared_file: std::sync::Arc<str> = file.into();
    for (index, record) in records.into_iter().enumerate() {
        let location = Location { file: shared_file.clone(), line: lines.line_of(record.get()), row: index as u64 + 1 };
        tally.rows_seen += 1;
        // The document parsed, so its parts do too.
        let value: Value = serde_json::from_str(record.get()).unwrap_or(Value::Null);
        tally.push(check_record(rules, &layout, &value, location));
    }
    Ok(tally.finish(config))
}

fn read_lines<R: BufRead>(rules: &RowRules, mut reader: R, file: &str) -> Result<SourceRead> {
    let config = rules.config();
    let read_failure = |source| Error::Read { file: file.to_string(), source };
    let start = reader.fill_buf().map_err(read_failure)?;
    let (encoding, bom_length) = match Encoding::for_bom(start) {
        Some((encoding, length)) if encoding == UTF_8 => (UTF_8, length),
        Some((encoding, _)) => {
            return Err(Error::UnsupportedEncoding { file: file.to_string(), found: encoding.name() });
        }
        None => (configured_encoding(config.encoding), 0),
    };
    reader.consume(bom_length);

    let layout = Layout::named(config);
    let mut tally = Tally::default();
    let mut bytes = Vec::new();
    let mut byte_offset = bom_length as u64;
    let mut line_number = 0;
    loop {
        bytes.clear();
        let length =
            reader.by_ref().take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut bytes).map_err(read_failure)?;
        if length == 0 {
            break;
        }
        line_number += 1;
        let ended = bytes.last() == Some(&b'\n');
        if !ended && length > MAX_LINE_BYTES {
            return Err(Error::LineTooLong {
                file: file.to_string(),
                line: line_number,
                limit_mib: MAX_LINE_BYTES >> 20,
            });
        }
        let content = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let text = decode_line(content, encoding, byte_offset, line_number, file)?;
        byte_offset += length as u64;
        if text.trim().is_empty() {
            continue;
        }
        tally.rows_seen += 1;
        let location = Location { file: file.into(), line: line_number, row: tally.rows_seen };
        let outcome = match serde_json::from_str::<Value>(&text) {
            Ok(value) => check_record(rules, &layout, &value, location),
            Err(error) => {
                let mut reason = format!(
                    "expected a JSON object (one record), but the line is not valid JSON: {} (column {})",
                    unplaced(&error),
                    error.column()
                );
                if !ended {
                    reason.push_str("; the file ends in the middle of this line, so it may be truncated");
                    tally.truncated = true;
                }
                Outcome::Quarantined(rules.quarantined(None, location, reason))
            }
        };
        tally.push(outcome);
    }
    Ok(tally.finish(config))
}

/// One record: an object whose configured fields are the row's values.
pub(super) fn check_record(rules: &RowRules, layout: &Layout, record: &Value, location: Location) -> Outcome {
    match record {
        Value::Object(object) => {
            let values: Vec<RawValue> = layout.header.iter().map(|column| field(object, column)).collect();
            rules.check(layout, &values, location)
        }
        other => Outcome::Quarantined(rules.quarantined(
            None,
            location,
            format!("expected a JSON object (one record), found {}", described(other)),
        )),
    }
}

/// The field `column` of `object`: a field of that name, or else, for a dotted name, the field of a
/// nested object (`Worker.Legal_Name.Last`).
fn field<'v>(object: &'v Map<String, Value>, column: &str) -> RawValue<'v> {
    if let Some(value) = object.get(column) {
        return raw_value(value, column);
    }
    for (dot, _) in column.match_indices('.') {
        let (outer, inner) = (&column[..dot], &column[dot + 1..]);
        match object.get(outer) {
            None => continue,
            Some(Value::Object(nested)) => return field(nested, inner),
            Some(Value::Null) => return RawValue::Empty,
            Some(other) => {
                return RawValue::Other(format!(
                    "{outer:?} holding {} instead of an object with {inner:?}",
                    described(other)
                ));
            }
        }
    }
    RawValue::Missing
}

fn raw_value<'v>(value: &'v Value, column: &str) -> RawValue<'v> {
    match value {
        Value::Null => RawValue::Empty,
        Value::Bool(b) => RawValue::Bool(*b),
        Value::String(text) => RawValue::Text(Cow::Borrowed(text)),
        Value::Number(number) => match (number.as_i64(), number.as_f64().filter(|_| number.is_f64())) {
            (Some(integer), _) => RawValue::Integer(integer),
            (None, Some(float)) => RawValue::Number(float),
            // An integer beyond i64 is exact only as text.
            (None, None) => RawValue::Text(Cow::Owned(number.to_string())),
        },
        Value::Array(_) => RawValue::Other(described(value)),
        Value::Object(object) => {
            let mut what = described(value);
            if let Some(first) = object.keys().next() {
                what.push_str(&format!(
                    "; map one of its fields with a dotted column such as {:?}",
                    format!("{column}.{first}")
                ));
            }
            RawValue::Other(what)
        }
    }
}

/// A JSON value in a few words: `an object with keys "ID", "Descriptor"`, `an array of 2 values`.
pub(super) fn described(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the value {b}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the text {}", shown(text)),
        Value::Array(items) if items.len() == 1 => "an array of 1 value".to_string(),
        Value::Array(items) => format!("an array of {} values", items.len()),
        Value::Object(object) if object.is_empty() => "an empty object".to_string(),
        Value::Object(object) => {
            let keys: Vec<String> = object.keys().take(LISTED_KEYS).map(|key| shown(key)).collect();
            let more = object.len().saturating_sub(LISTED_KEYS);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            let plural = if object.len() == 1 { "" } else { "s" };
            format!("an object with key{plural} {}{more}", keys.join(", "))
        }
    }
}

/// The array of records at the dotted `path` of the document (the document itself without one).
pub(super) fn find_records<'d>(document: &'d RawJson, path: Option<&str>, file: &str) -> Result<Vec<&'d RawJson>> {
    let mut current = document;
    let mut walked = Vec::new();
    for step in path.into_iter().flat_map(|path| path.split('.')) {
        let object: Option<HashMap<String, &RawJson>> = serde_json::from_str(current.get()).ok();
        let next = object.as_ref().and_then(|object| object.get(step).copied());
        let Some(next) = next else {
            let found = match object {
                Some(_) if walked.is_empty() => format!("no {step:?} in the document"),
                Some(_) => format!("no {step:?} in {:?}", walked.join(".")),
                None => format!("{} at {:?}", described_raw(current), walked.join(".")),
            };
            return Err(no_records(document, path, found, file));
        };
        walked.push(step);
        current = next;
    }
    serde_json::from_str(current.get()).map_err(|_| no_records(document, path, described_raw(current), file))
}

fn no_records(document: &RawJson, path: Option<&str>, found: String, file: &str) -> Error {
    let parsed: Value = serde_json::from_str(document.get()).unwrap_or(Value::Null);
    Error::NoRecords {
        file: file.to_string(),
        path: path.map(str::to_string),
        found,
        suggestion: array_of_objects(&parsed),
    }
}

fn described_raw(value: &RawJson) -> String {
    described(&serde_json::from_str(value.get()).unwrap_or(Value::Null))
}

/// The shallowest dotted path to an array of objects in `document`, if there is one near the top.
fn array_of_objects(document: &Value) -> Option<String> {
    let mut queue = VecDeque::from([(Vec::<&str>::new(), document)]);
    while let Some((path, value)) = queue.pop_front() {
        match value {
            Value::Array(items) if !path.is_empty() && items.first().is_some_and(Value::is_object) => {
                return Some(path.join("."));
            }
            Value::Object(object) if path.len() < SUGGESTION_DEPTH => {
                for (key, nested) in object {
                    let mut deeper = path.clone();
                    deeper.push(key);
                    queue.push_back((deeper, nested));
                }
            }
            _ => {}
        }
    }
    None
}

/// serde_json's message without the ` at line L column C` it ends with.
pub(super) fn unplaced(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let place = format!(" at line {} column {}", error.line(), error.column());
    message.strip_suffix(&place).map_or(message.clone(), str::to_string)
}

fn configured_encoding(encoding: TextEncoding) -> &'static Encoding {
    match encoding {
        TextEncoding::Utf8 => UTF_8,
        TextEncoding::Windows1252 => WINDOWS_1252,
    }
}

/// A whole document as text: a byte-order mark (UTF-8 or UTF-16) wins over the configured encoding.
fn decode_document<'b>(bytes: &'b [u8], configured: TextEncoding, file: &str) -> Result<Cow<'b, str>> {
    let (encoding, bom_length) = Encoding::for_bom(bytes).unwrap_or((configured_encoding(configured), 0));
    let body = &bytes[bom_length..];
    if let Some(text) = encoding.decode_without_bom_handling_and_without_replacement(body) {
        return Ok(text);
    }
    // Where it breaks: decode again up to the first invalid bytes.
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut decoded =
        String::with_capacity(decoder.max_utf8_buffer_length_without_replacement(body.len()).unwrap_or(0));
    let (result, read) = decoder.decode_to_string_without_replacement(body, &mut decoded, true);
    let (bad, after) = match result {
        encoding_rs::DecoderResult::Malformed(bad, after) => (usize::from(bad), usize::from(after)),
        _ => (0, 0),
    };
    let end = read.saturating_sub(after);
    Err(Error::Undecodable {
        file: file.to_string(),
        encoding: encoding.name(),
        line: decoded.matches('\n').count() as u64 + 1,
        byte_offset: (bom_length + end.saturating_sub(bad)) as u64,
        bytes: body.get(end.saturating_sub(bad)..end).unwrap_or_default().to_vec(),
    })
}

/// One JSON Lines line as text; `byte_offset` is where it starts in the file.
fn decode_line<'b>(
    bytes: &'b [u8],
    encoding: &'static Encoding,
    byte_offset: u64,
    line: u64,
    file: &str,
) -> Result<Cow<'b, str>> {
    if encoding != UTF_8 {
        return Ok(encoding.decode_without_bom_handling(bytes).0);
    }
    std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|error| {
        let start = error.valid_up_to();
        let end = start + error.error_len().unwrap_or(bytes.len() - start);
        Error::Undecodable {
            file: file.to_string(),
            encoding: UTF_8.name(),
            line,
            byte_offset: byte_offset + start as u64,
            bytes: bytes[start..end].to_vec(),
        }
    })
}

/// The line a part of a document starts on, for parts met in the order of the text.
struct LineCounter<'t> {
    text: &'t str,
    offset: usize,
    line: u64,
}

impl<'t> LineCounter<'t> {
    fn new(text: &'t str) -> Self {
        LineCounter { text, offset: 0, line: 1 }
    }

    /// `part` is a slice of the text at or after the last one asked about.
    fn line_of(&mut self, part: &str) -> u64 {
        let start = (part.as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize).min(self.text.len());
        if start > self.offset {
            let passed = self.text.as_bytes()[self.offset..start].iter().filter(|&&b| b == b'\n').count();
            self.line += passed as u64;
            self.offset = start;
        }
        self.line
    }
}
