//! Each database's values as [`RawValue`]s: how a result column's type is read, and the decoding
//! of one value. A value that cannot be decoded becomes [`RawValue::Other`], which holds its row
//! with a reason; it never fails the read or panics.
//!
//! PostgreSQL's binary values are decoded here from their documented wire format rather than by
//! sqlx's decoders, which panic on `infinity` dates and need extra features for NUMERIC.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta};
use sqlx::error::{BoxDynError, UnexpectedNullError};
use sqlx::mysql::{MySql, MySqlRow, MySqlTypeInfo, MySqlValueRef};
use sqlx::postgres::{PgRow, PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef};
use sqlx::sqlite::{Sqlite, SqliteRow, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Row, TypeInfo, ValueRef};

use super::{SqlLayout, row_values};
use crate::source::rows::RawValue;

/// How a result column's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Character data.
    Text,
    /// MariaDB's binary strings (a binary collation gives text these types too): text when it is
    /// UTF-8.
    Bytes,
    Integer,
    /// MariaDB's unsigned integers, which may exceed an `i64`.
    Unsigned,
    /// A decimal number, kept as the database prints it.
    Decimal,
    Float4,
    Float8,
    Bool,
    Uuid,
    Date,
    /// A timestamp, in UTC when it has a time zone.
    Timestamp,
    /// MariaDB's type of a column that is always NULL.
    Null,
    /// SQLite: each value's own storage class says how to read it.
    Dynamic,
    /// SQLite, in a column declared DATE, DATETIME or TIMESTAMP: as [`Kind::Dynamic`], but text
    /// that is an ISO 8601 date or date and time is read as one.
    DynamicDate,
    /// Anything else: binary data, JSON, intervals, times of day, arrays, geometry.
    Unsupported,
}

/// Decodes the values of the columns a row's layout uses.
pub(super) type ValuesOf<R> = for<'r> fn(&'r R, &SqlLayout) -> Vec<RawValue<'r>>;

fn unreadable<'r>(error: impl std::fmt::Display) -> RawValue<'r> {
    RawValue::Other(format!("a value that cannot be read ({error})"))
}

/// A 4-byte float as the decimal it was written as (`0.1`, not `0.10000000149011612`).
fn float4(value: f32) -> RawValue<'static> {
    RawValue::Number(value.to_string().parse().unwrap_or(f64::from(value)))
}

// PostgreSQL

pub(super) fn pg_kind(type_info: &PgTypeInfo) -> Kind {
    match type_info.kind() {
        PgTypeKind::Domain(base) => return pg_kind(base),
        PgTypeKind::Enum(_) => return Kind::Text,
        _ => {}
    }
    match type_info.name() {
        "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "\"CHAR\"" | "UNKNOWN" | "citext" => Kind::Text,
        "INT2" | "INT4" | "INT8" => Kind::Integer,
        "NUMERIC" => Kind::Decimal,
        "FLOAT4" => Kind::Float4,
        "FLOAT8" => Kind::Float8,
        "BOOL" => Kind::Bool,
        "UUID" => Kind::Uuid,
        "DATE" => Kind::Date,
        "TIMESTAMP" | "TIMESTAMPTZ" => Kind::Timestamp,
        _ => Kind::Unsupported,
    }
}

pub(super) fn pg_values<'r>(row: &'r PgRow, layout: &SqlLayout) -> Vec<RawValue<'r>> {
    row_values(layout, |index, kind| match row.try_get_raw(index) {
        Ok(value) if value.is_null() => RawValue::Empty,
        Ok(value) => pg_value(value, kind).unwrap_or_else(unreadable),
        Err(error) => unreadable(error),
    })
}

fn pg_value(value: PgValueRef<'_>, kind: Kind) -> Result<RawValue<'_>, BoxDynError> {
    if value.format() == PgValueFormat::Text {
        return Ok(RawValue::Text(Cow::Borrowed(value.as_str()?)));
    }
    let bytes = value.as_bytes()?;
    let wrong_size = || format!("{} bytes for a {kind:?} value", bytes.len());
    Ok(match kind {
        Kind::Text => RawValue::Text(Cow::Borrowed(value.as_str()?)),
        Kind::Integer => RawValue::Integer(match *bytes {
            [a, b] => i16::from_be_bytes([a, b]).into(),
            [a, b, c, d] => i32::from_be_bytes([a, b, c, d]).into(),
            _ => i64::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?),
        }),
        Kind::Decimal => RawValue::Text(Cow::Owned(pg_numeric(bytes).ok_or_else(wrong_size)?)),
        Kind::Float4 => float4(f32::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)),
        Kind::Float8 => RawValue::Number(f64::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)),
        Kind::Bool => RawValue::Bool(*bytes.first().ok_or_else(wrong_size)? != 0),
        Kind::Uuid => RawValue::Text(Cow::Owned(uuid_text(bytes).ok_or_else(wrong_size)?)),
        Kind::Date => pg_date(i32::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)),
        Kind::Timestamp => pg_timestamp(i64::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)),
        _ => RawValue::Other(format!("a value of a type roster does not read ({kind:?})")),
    })
}

/// PostgreSQL's dates count days from 2000-01-01; `infinity` and `-infinity` are the extremes.
fn pg_date(days: i32) -> RawValue<'static> {
    if days == i32::MAX || days == i32::MIN {
        return RawValue::Empty;
    }
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date");
    match TimeDelta::try_days(days.into()).and_then(|delta| epoch.checked_add_signed(delta)) {
        Some(date) => RawValue::Date(date),
        None => RawValue::Other(format!("a date {days} days from 2000-01-01, beyond what roster can hold")),
    }
}

/// PostgreSQL's timestamps count microseconds from 2000-01-01 00:00 (UTC for TIMESTAMPTZ);
/// `infinity` and `-infinity` are the extremes.
fn pg_timestamp(micros: i64) -> RawValue<'static> {
    if micros == i64::MAX || micros == i64::MIN {
        return RawValue::Empty;
    }
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|date| date.and_hms_opt(0, 0, 0)).expect("a valid time");
    match epoch.checked_add_signed(TimeDelta::microseconds(micros)) {
        Some(moment) => RawValue::DateTime(moment),
        None => RawValue::Other(format!("a timestamp {micros} µs from 2000-01-01, beyond what roster can hold")),
    }
}

/// PostgreSQL's binary NUMERIC as the decimal it prints: digit count, weight (of the first
/// base-10000 digit), sign, display scale, then the base-10000 digits.
fn pg_numeric(bytes: &[u8]) -> Option<String> {
    let word = |at: usize| bytes.get(at..at + 2).map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let count = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let scale = usize::from(word(6)?);
    let digits: Vec<u16> = (0..count).map(|i| word(8 + 2 * i)).collect::<Option<_>>()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".to_owned()),
        0xD000 => return Some("Infinity".to_owned()),
        0xF000 => return Some("-Infinity".to_owned()),
        _ => return None,
    }
    let digit = |position: i32| usize::try_from(position).ok().and_then(|i| digits.get(i)).copied().unwrap_or(0);
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    }
    for position in 0..=weight {
        let _ = if position == 0 { write!(text, "{}", digit(0)) } else { write!(text, "{:04}", digit(position)) };
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut position = weight + 1;
        while fraction.len() < scale {
            let _ = write!(fraction, "{:04}", digit(position));
            position += 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Some(text)
}

fn uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Some(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

// MariaDB and MySQL

pub(super) fn mysql_kind(type_info: &MySqlTypeInfo) -> Kind {
    match type_info.name() {
        "VARCHAR" | "CHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => Kind::Text,
        "VARBINARY" | "BINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => Kind::Bytes,
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "BOOLEAN" | "YEAR" => Kind::Integer,
        name if name.ends_with(" UNSIGNED") => Kind::Unsigned,
        "DECIMAL" => Kind::Decimal,
        "FLOAT" => Kind::Float4,
        "DOUBLE" => Kind::Float8,
        "DATE" => Kind::Date,
        "DATETIME" | "TIMESTAMP" => Kind::Timestamp,
        "NULL" => Kind::Null,
        _ => Kind::Unsupported,
    }
}

pub(super) fn mysql_values<'r>(row: &'r MySqlRow, layout: &SqlLayout) -> Vec<RawValue<'r>> {
    row_values(layout, |index, kind| match row.try_get_raw(index) {
        Ok(value) if value.is_null() => RawValue::Empty,
        Ok(value) => mysql_value(value, kind).unwrap_or_else(unreadable),
        Err(error) => unreadable(error),
    })
}

fn mysql_value(value: MySqlValueRef<'_>, kind: Kind) -> Result<RawValue<'_>, BoxDynError> {
    Ok(match kind {
        Kind::Text | Kind::Decimal => RawValue::Text(Cow::Borrowed(<&str as Decode<MySql>>::decode(value)?)),
        Kind::Bytes => match std::str::from_utf8(<&[u8] as Decode<MySql>>::decode(value)?) {
            Ok(text) => RawValue::Text(Cow::Borrowed(text)),
            Err(_) => RawValue::Other("binary data that is not UTF-8 text".to_owned()),
        },
        Kind::Integer => RawValue::Integer(<i64 as Decode<MySql>>::decode(value)?),
        Kind::Unsigned => {
            let unsigned = <u64 as Decode<MySql>>::decode(value)?;
            i64::try_from(unsigned).map_or_else(|_| RawValue::Text(Cow::Owned(unsigned.to_string())), RawValue::Integer)
        }
        Kind::Float4 => float4(<f32 as Decode<MySql>>::decode(value)?),
        Kind::Float8 => RawValue::Number(<f64 as Decode<MySql>>::decode(value)?),
        // The zero date `0000-00-00` is MariaDB's "no date"; sqlx reads it as NULL.
        Kind::Date => match <NaiveDate as Decode<MySql>>::decode(value) {
            Ok(date) => RawValue::Date(date),
            Err(error) if error.is::<UnexpectedNullError>() => RawValue::Empty,
            Err(error) => return Err(error),
        },
        Kind::Timestamp => match <NaiveDateTime as Decode<MySql>>::decode(value) {
            Ok(moment) => RawValue::DateTime(moment),
            Err(error) if error.is::<UnexpectedNullError>() => RawValue::Empty,
            Err(error) => return Err(error),
        },
        Kind::Null => RawValue::Empty,
        _ => RawValue::Other(format!("a value of a type roster does not read ({kind:?})")),
    })
}

// SQLite

pub(super) fn sqlite_kind(type_info: &SqliteTypeInfo) -> Kind {
    match type_info.name() {
        "DATE" | "DATETIME" => Kind::DynamicDate,
        _ => Kind::Dynamic,
    }
}

pub(super) fn sqlite_values<'r>(row: &'r SqliteRow, layout: &SqlLayout) -> Vec<RawValue<'r>> {
    row_values(layout, |index, kind| match row.try_get_raw(index) {
        Ok(value) if value.is_null() => RawValue::Empty,
        Ok(value) => sqlite_value(value, kind).unwrap_or_else(unreadable),
        Err(error) => unreadable(error),
    })
}

fn sqlite_value(value: SqliteValueRef<'_>, kind: Kind) -> Result<RawValue<'_>, BoxDynError> {
    // The value's storage class, whatever the column was declared as.
    let storage_class = value.type_info().name().to_owned();
    Ok(match storage_class.as_str() {
        "INTEGER" => RawValue::Integer(<i64 as Decode<Sqlite>>::decode(value)?),
        "REAL" => RawValue::Number(<f64 as Decode<Sqlite>>::decode(value)?),
        "TEXT" => {
            let text = <&str as Decode<Sqlite>>::decode(value)?;
            match kind {
                Kind::DynamicDate => iso_date(text).unwrap_or(RawValue::Text(Cow::Borrowed(text))),
                _ => RawValue::Text(Cow::Borrowed(text)),
            }
        }
        other => RawValue::Other(format!("a {other} value")),
    })
}

/// Text as SQLite's date functions write it: `2026-03-01`, `2026-03-01 08:30:00`, with `T` or an
/// offset (then the date in UTC).
pub(super) fn iso_date(text: &str) -> Option<RawValue<'static>> {
    let text = text.trim();
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        return Some(RawValue::DateTime(moment.naive_utc()));
    }
    const FORMATS: [&str; 4] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"];
    if let Some(moment) = FORMATS.iter().find_map(|format| NaiveDateTime::parse_from_str(text, format).ok()) {
        return Some(RawValue::DateTime(moment));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(RawValue::Date)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NUMERIC's wire format: count, weight, sign, scale, then base-10000 digits.
    fn numeric(weight: i16, sign: u16, scale: u16, digits: &[u16]) -> Vec<u8> {
        let count = u16::try_from(digits.len()).unwrap();
        [count, weight as u16, sign, scale].iter().chain(digits).flat_map(|word| word.to_be_bytes()).collect()
    }

    #[test]
    fn numerics_read_as_postgres_prints_them() {
        assert_eq!(pg_numeric(&numeric(0, 0, 0, &[42])).as_deref(), Some("42"));
        assert_eq!(pg_numeric(&numeric(1, 0, 0, &[1234, 5678])).as_deref(), Some("12345678"));
        assert_eq!(pg_numeric(&numeric(1, 0, 0, &[1])).as_deref(), Some("10000"));
        assert_eq!(pg_numeric(&numeric(-1, 0, 2, &[5000])).as_deref(), Some("0.50"));
        assert_eq!(pg_numeric(&numeric(-2, 0, 5, &[1000])).as_deref(), Some("0.00001"));
        assert_eq!(pg_numeric(&numeric(0, 0x4000, 3, &[7, 2500])).as_deref(), Some("-7.250"));
        assert_eq!(pg_numeric(&numeric(0, 0, 2, &[])).as_deref(), Some("0.00"));
        assert_eq!(pg_numeric(&numeric(0, 0xC000, 0, &[])).as_deref(), Some("NaN"));
        assert_eq!(pg_numeric(&[0, 1]), None, "too short");
    }

    #[test]
    fn postgres_dates_count_from_2000_and_infinity_is_empty() {
        assert_eq!(pg_date(0), RawValue::Date(NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()));
        assert_eq!(pg_date(-1), RawValue::Date(NaiveDate::from_ymd_opt(1999, 12, 31).unwrap()));
        assert_eq!(pg_date(i32::MAX), RawValue::Empty);
        assert_eq!(pg_date(i32::MIN), RawValue::Empty);
        assert_eq!(pg_timestamp(i64::MAX), RawValue::Empty);
        let moment = NaiveDate::from_ymd_opt(2000, 1, 2).unwrap().and_hms_opt(0, 0, 1).unwrap();
        assert_eq!(pg_timestamp(86_401_000_000), RawValue::DateTime(moment));
    }

    #[test]
    fn uuids_read_in_their_usual_form() {
        let bytes: Vec<u8> = (0..16).collect();
        assert_eq!(uuid_text(&bytes).as_deref(), Some("00010203-0405-0607-0809-0a0b0c0d0e0f"));
        assert_eq!(uuid_text(&bytes[..4]), None);
    }

    #[test]
    fn sqlite_dates_are_iso_8601_text_in_utc() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(iso_date("2026-03-01"), Some(RawValue::Date(day(2026, 3, 1))));
        assert_eq!(
            iso_date("2026-03-01 08:30:00"),
            Some(RawValue::DateTime(day(2026, 3, 1).and_hms_opt(8, 30, 0).unwrap()))
        );
        assert_eq!(
            iso_date("2026-03-01T01:00:00+02:00"),
            Some(RawValue::DateTime(day(2026, 2, 28).and_hms_opt(23, 0, 0).unwrap()))
        );
        assert_eq!(iso_date("01.03.2026"), None);
    }

    #[test]
    fn four_byte_floats_read_as_written() {
        assert_eq!(float4(0.1), RawValue::Number(0.1));
    }
}
