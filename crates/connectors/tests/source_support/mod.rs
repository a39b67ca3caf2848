//! What the source tests (`csv_source`, `xlsx_source`, `json_source`) share: a configuration to
//! start from, the one-line-per-row rendering of a read they compare, and a small random generator.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use roster_connectors::error::Error;
use roster_core::config::{SourceConfig, SourceKind, TextEncoding};
use roster_core::source::{FieldValue, SourceRead};

/// A source's read of a file: `read_csv`, `read_xlsx`, `read_json`.
pub type ReadFile = fn(&SourceConfig, &Path) -> Result<SourceRead, Error>;

/// The fixtures of one kind of source: `tests/fixtures/<kind>`.
pub fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(kind)
}

/// A complete source named `hr` of `kind` at `path`, with the defaults for everything else.
pub fn source(kind: SourceKind, path: &str, key: &str, columns: &[(&str, &str)]) -> SourceConfig {
    SourceConfig {
        name: "hr".to_string(),
        kind,
        path: Some(PathBuf::from(path)),
        sheet: None,
        header_row: None,
        records: None,
        url: None,
        query: None,
        rest: None,
        scim: None,
        complete: true,
        key: key.to_string(),
        encoding: TextEncoding::Utf8,
        delimiter: ',',
        date_format: "%Y-%m-%d".to_string(),
        affiliation: "employee".to_string(),
        columns: columns.iter().map(|(attribute, column)| (attribute.to_string(), column.to_string())).collect(),
        date_attributes: Vec::new(),
        required: Vec::new(),
        correlate: Vec::new(),
        previous_key: None,
        effective_date: None,
        primary: None,
        modified_column: None,
        full_read_after_hours: None,
    }
}

/// The columns of the `workers.*` fixtures, as they are named in every kind of export.
pub const WORKER_COLUMNS: [(&str, &str); 8] = [
    ("given_name", "Preferred_First_Name"),
    ("family_name", "Legal_Last_Name"),
    ("hire_date", "Hire_Date"),
    ("last_day", "Termination_Date"),
    ("status", "Worker_Status"),
    ("department", "Department"),
    ("manager", "Manager_Employee_ID"),
    ("office", "Office"),
];

/// The fixtures of one kind of source and the function that reads them.
pub struct Fixtures {
    pub kind: &'static str,
    pub read: ReadFile,
}

impl Fixtures {
    pub fn path(&self, name: &str) -> PathBuf {
        fixtures(self.kind).join(name)
    }

    /// Reads the fixture `name` and renders the read.
    pub fn read(&self, name: &str, config: &SourceConfig) -> String {
        let path = self.path(name);
        rendered((self.read)(config, &path), &path.display().to_string())
    }

    /// Reads a fixture that must fail; its message, with the fixtures folder left out.
    pub fn error(&self, name: &str, config: &SourceConfig) -> String {
        match (self.read)(config, &self.path(name)) {
            Ok(read) => panic!("reading {name} should fail, but gave {read:#?}"),
            Err(e) => e.to_string().replace(&format!("{}/", fixtures(self.kind).display()), ""),
        }
    }

    /// A file that is not there fails the read, naming its path.
    pub fn assert_missing_file_fails(&self, config: &SourceConfig) {
        let path = self.path("no-such-export");
        let error = (self.read)(config, &path).unwrap_err();
        assert!(matches!(&error, Error::Open { path: p, .. } if *p == path), "{error:?}");
        assert!(error.to_string().starts_with(&format!("cannot open {}: ", path.display())), "{error}");
    }
}

/// A read that must succeed, rendered; `file` is what its locations name.
pub fn rendered(result: Result<SourceRead, Error>, file: &str) -> String {
    match result {
        Ok(read) => render(&read, file),
        Err(e) => panic!("reading {file}: {e}"),
    }
}

/// One line for the read, then one per row in row order: `line L row R "key": attributes` for a
/// record (text quoted, dates bare), `line L row R held Some("key"): reason` for a quarantined row.
pub fn render(read: &SourceRead, file: &str) -> String {
    let mut rows: BTreeMap<u64, String> = BTreeMap::new();
    for record in &read.records {
        assert_eq!((&*record.source, &*record.location.file), ("hr", file));
        let attrs: Vec<String> = record
            .attrs
            .iter()
            .map(|(name, value)| match value.to_value() {
                FieldValue::Text(text) => format!("{name}={text:?}"),
                FieldValue::Date(date) => format!("{name}={date}"),
            })
            .collect();
        let line =
            format!("line {} row {} {:?}: {}", record.location.line, record.location.row, record.key, attrs.join(" "));
        assert!(rows.insert(record.location.row, line).is_none(), "row {} twice", record.location.row);
    }
    for held in &read.quarantined {
        assert_eq!((held.source.as_str(), &*held.location.file), ("hr", file));
        let line =
            format!("line {} row {} held {:?}: {}", held.location.line, held.location.row, held.key, held.reason);
        assert!(rows.insert(held.location.row, line).is_none(), "row {} twice", held.location.row);
    }
    assert_eq!(read.source, "hr");
    let mut out = format!("rows_seen {} complete {}\n", read.rows_seen, read.complete);
    for line in rows.values() {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// Every row of a read is a record or quarantined, once, in increasing row and line order.
pub fn assert_accounted_for(read: &SourceRead, input: &dyn std::fmt::Debug) {
    let mut places: Vec<(u64, u64)> = read.records.iter().map(|r| (r.location.row, r.location.line)).collect();
    places.extend(read.quarantined.iter().map(|q| (q.location.row, q.location.line)));
    places.sort_unstable();
    assert_eq!(places.len() as u64, read.rows_seen, "{input:?}");
    assert!(places.windows(2).all(|pair| pair[0].0 < pair[1].0), "{input:?}: {places:?}");
    assert!(places.windows(2).all(|pair| pair[0].1 < pair[1].1), "{input:?}: {places:?}");
}

/// A small deterministic generator for the generated-input tests (no dependency needed).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
