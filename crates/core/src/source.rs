//! What a source (system of record) yields: records keyed by a source key, and the rows it had to
//! quarantine. Every kind of source (CSV today; SQL, XLSX, JSON, REST later) produces a [`SourceRead`].

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One value of a record's attribute, already validated by the source. In JSON (plans, the
/// store) a text is a string and a date is `{"date": "YYYY-MM-DD"}`, so a date never comes back
/// as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldValue {
    Text(String),
    Date(NaiveDate),
}

impl Serialize for FieldValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            FieldValue::Text(text) => s.serialize_str(text),
            FieldValue::Date(day) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("date", &day.format("%Y-%m-%d").to_string())?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = FieldValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a string or {"date": "YYYY-MM-DD"}"#)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(text.to_string()))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(text))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldValue, A::Error> {
                let mut day = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "date" || day.is_some() {
                        return Err(de::Error::custom(format!("unexpected key {key:?} in a field value")));
                    }
                    day = Some(map.next_value::<NaiveDate>()?);
                }
                day.map(FieldValue::Date).ok_or_else(|| de::Error::missing_field("date"))
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}

impl FieldValue {
    /// The value as text: dates as `YYYY-MM-DD`, which also sorts in date order.
    pub fn to_text(&self) -> String {
        self.as_text().into_owned()
    }

    /// The value as text without a copy where it is text already: dates as `YYYY-MM-DD`.
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            FieldValue::Text(s) => std::borrow::Cow::Borrowed(s),
            FieldValue::Date(d) => std::borrow::Cow::Owned(d.format("%Y-%m-%d").to_string()),
        }
    }

    pub fn as_date(&self) -> Option<NaiveDate> {
        match self {
            FieldValue::Date(d) => Some(*d),
            FieldValue::Text(_) => None,
        }
    }
}

/// Where a record or a quarantined row came from, for messages a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The file (or table, or URL) read.
    pub file: String,
    /// 1-based line of the row's first physical line in the file (the header is line 1 in a CSV).
    pub line: u64,
    /// 1-based data row number (the first row after the header is row 1).
    pub row: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} (row {})", self.file, self.line, self.row)
    }
}

/// A record's attributes: person attribute name -> value. A name is shared (`Arc<str>`) by every record a source reader
/// makes, not copied into each: a million records of seventeen attributes held 17 million names.
pub type Attrs = BTreeMap<Arc<str>, FieldValue>;

/// One valid row of a source, with its attributes named as person attributes (the config maps the
/// export's column names to these). Empty optional fields are absent from `attrs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The source's name in the config.
    pub source: String,
    /// The source key (e.g. `Employee_ID`), exactly as read: never trimmed of leading zeros.
    pub key: String,
    /// Shared, not copied, with the person the record belongs to and their store update: at a
    /// million records a copy per person was a fifth of the planner's memory.
    pub attrs: Arc<Attrs>,
    pub location: Location,
}

/// A row that could not be used, with why. When `key` could be read, the person it belongs to is
/// held as they were: a quarantined row never makes its person "missing".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedRow {
    pub source: String,
    pub key: Option<String>,
    pub location: Location,
    pub reason: String,
}

/// The result of reading one source once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRead {
    pub source: String,
    /// True when the source is declared complete (someone missing from it has gone) and the read
    /// reached its end. A partial read says nothing about who is missing.
    pub complete: bool,
    /// Number of data rows seen (valid and quarantined).
    pub rows_seen: u64,
    pub records: Vec<Record>,
    pub quarantined: Vec<QuarantinedRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_texts_survive_json() {
        let mut attrs = BTreeMap::new();
        attrs.insert("hire_date".to_string(), FieldValue::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()));
        attrs.insert("note".to_string(), FieldValue::Text("2026-03-01".to_string()));
        let json = serde_json::to_string(&attrs).unwrap();
        assert_eq!(json, r#"{"hire_date":{"date":"2026-03-01"},"note":"2026-03-01"}"#);
        let back: BTreeMap<String, FieldValue> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, attrs);
    }
}
