//! How values are written to columns and read back. Every read goes through [`Cells`], so a bad
//! value becomes an [`Error::Corrupt`] naming its table, row and column, never a panic.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use roster_core::attr::AttrMap;
use roster_core::source::Records;
use serde::de::{self, DeserializeOwned};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::Sql;

use crate::error::{Error, Result};

/// Timestamps are stored to the microsecond; `now` is truncated to match, so what is read back
/// equals what was handed out.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// RFC 3339 in UTC with a fixed six fractional digits: text order is time order.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn date(day: NaiveDate) -> String {
    day.to_string()
}

/// Counts are `u64` in the model and INTEGER (signed 64-bit) in SQL; no real count reaches 2^63.
pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An attribute map as a JSON object (attribute name to its values), serialized straight from
/// the map (a create's values are written for its audit intent, its outcome and its link).
pub(crate) struct AttrsJson<'a>(pub(crate) &'a AttrMap);

impl serde::Serialize for AttrsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, values)| (name.as_str(), values)))
    }
}

/// An attribute map as JSON text.
pub(crate) fn attr_map_json(map: &AttrMap) -> String {
    serde_json::to_string(&AttrsJson(map)).expect("attribute names and string values always serialize to JSON")
}

/// Appends `($1, $2, ...)` binding `items`, for an `IN` list.
pub(crate) fn push_list<'a>(query: &mut Sql, items: impl Iterator<Item = &'a str>) {
    query.push("(");
    let mut list = query.separated(", ");
    for item in items {
        list.push_bind(item.to_string());
    }
    query.push(")");
}

/// A person's records as JSON (`FieldValue`'s own form: a text is a string, a date
/// `{"date": "YYYY-MM-DD"}`).
pub(crate) fn records_json(records: &Records) -> String {
    serde_json::to_string(records).unwrap_or_else(|_| "{}".to_string())
}

/// The names of the sources a person has records of, as a JSON array (the `sources` column: a
/// daily run's snapshot reads it instead of the records).
pub(crate) fn sources_json(records: &Records) -> String {
    serde_json::to_string(&records.keys().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".to_string())
}

/// A map of texts (record keys, provenance) as a JSON object.
pub(crate) fn json_text(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_string())
}

/// The cells of one row of one table, read with the row's identity at hand for error messages.
pub(crate) struct Cells<'r> {
    row: &'r AnyRow,
    table: &'static str,
    key: String,
}

impl<'r> Cells<'r> {
    pub(crate) fn new(row: &'r AnyRow, table: &'static str, key: String) -> Cells<'r> {
        Cells { row, table, key }
    }

    /// Reads the row's own key column first, so later errors can name the row.
    pub(crate) fn keyed_by(row: &'r AnyRow, table: &'static str, column: &'static str) -> Result<Cells<'r>> {
        let unnamed = Cells::new(row, table, "?".to_string());
        let key = unnamed.text(column)?;
        Ok(Cells::new(row, table, key))
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn corrupt(&self, column: &'static str, message: impl fmt::Display) -> Error {
        Error::Corrupt { table: self.table, key: self.key.clone(), column, message: message.to_string() }
    }

    /// A text cell borrowed from the row: parsed values need no copy of their text.
    pub(crate) fn opt_str(&self, column: &'static str) -> Result<Option<&'r str>> {
        self.row.try_get::<Option<&str>, _>(column).map_err(|e| self.corrupt(column, e))
    }

    fn str(&self, column: &'static str) -> Result<&'r str> {
        self.opt_str(column)?.ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }

    pub(crate) fn opt_text(&self, column: &'static str) -> Result<Option<String>> {
        Ok(self.opt_str(column)?.map(str::to_string))
    }

    pub(crate) fn text(&self, column: &'static str) -> Result<String> {
        Ok(self.str(column)?.to_string())
    }

    pub(crate) fn opt_int(&self, column: &'static str) -> Result<Option<i64>> {
        self.row.try_get::<Option<i64>, _>(column).map_err(|e| self.corrupt(column, e))
    }

    pub(crate) fn int(&self, column: &'static str) -> Result<i64> {
        self.opt_int(column)?.ok_or_else(|| self.corrupt(column, "unexpected NULL"))
    }

    pub(crate) fn unsigned<T: TryFrom<i64>>(&self, column: &'static str) -> Result<T> {
        let n = self.int(column)?;
        T::try_from(n).map_err(|_| self.corrupt(column, format!("{n} is out of range")))
    }

    pub(crate) fn blob(&self, column: &'static str) -> Result<Vec<u8>> {
        self.row.try_get::<Vec<u8>, _>(column).map_err(|e| self.corrupt(column, e))
    }

    pub(crate) fn boolean(&self, column: &'static str) -> Result<bool> {
        match self.int(column)? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(self.corrupt(column, format!("expected 0 or 1, found {n}"))),
        }
    }

    fn parse_date(&self, column: &'static str, text: &str) -> Result<NaiveDate> {
        text.parse().map_err(|e| self.corrupt(column, format!("{text:?} is not a date: {e}")))
    }

    pub(crate) fn opt_date(&self, column: &'static str) -> Result<Option<NaiveDate>> {
        self.opt_str(column)?.map(|t| self.parse_date(column, t)).transpose()
    }

    pub(crate) fn date(&self, column: &'static str) -> Result<NaiveDate> {
        self.parse_date(column, self.str(column)?)
    }

    fn parse_timestamp(&self, column: &'static str, text: &str) -> Result<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| self.corrupt(column, format!("{text:?} is not a timestamp: {e}")))
    }

    pub(crate) fn opt_timestamp(&self, column: &'static str) -> Result<Option<DateTime<Utc>>> {
        self.opt_str(column)?.map(|t| self.parse_timestamp(column, t)).transpose()
    }

    pub(crate) fn timestamp(&self, column: &'static str) -> Result<DateTime<Utc>> {
        self.parse_timestamp(column, self.str(column)?)
    }

    pub(crate) fn parse_json<T: DeserializeOwned>(&self, column: &'static str, text: &str) -> Result<T> {
        serde_json::from_str(text).map_err(|e| self.corrupt(column, format!("invalid JSON: {e}")))
    }

    pub(crate) fn opt_json<T: DeserializeOwned>(&self, column: &'static str) -> Result<Option<T>> {
        self.opt_str(column)?.map(|t| self.parse_json(column, t)).transpose()
    }

    pub(crate) fn json<T: DeserializeOwned>(&self, column: &'static str) -> Result<T> {
        self.parse_json(column, self.str(column)?)
    }

    pub(crate) fn records(&self, column: &'static str) -> Result<Records> {
        self.json(column)
    }

    /// A string column holding one of a serde enum's unit variant names.
    pub(crate) fn variant<T: DeserializeOwned>(&self, column: &'static str) -> Result<T> {
        let text = self.str(column)?;
        T::deserialize(de::value::StrDeserializer::<de::value::Error>::new(text))
            .map_err(|e| self.corrupt(column, format!("{text:?}: {e}")))
    }
}
