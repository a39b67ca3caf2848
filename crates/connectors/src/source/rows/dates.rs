//! Dates in rows: text in the source's `date_format`, parsed strictly, or SuccessFactors' OData
//! `/Date(ms)/`; dates the source already holds as dates (spreadsheet cells) only need a plausible
//! year.

use std::fmt::Write as _;

use chrono::format::{Item, ParseErrorKind, ParseResult, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta};
use roster_core::config::SourceConfig;

use super::shown;
use crate::error::Error;

/// The configured date format, checked once, with an example date to show in messages.
pub(crate) struct DateFormat {
    format: String,
    /// `format` parsed once: parsing it again for each date was a tenth of reading a CSV export.
    items: Vec<Item<'static>>,
    example: String,
}

/// Shown in messages, in the configured format: its day and month cannot be mistaken for each other.
const EXAMPLE_DATE: (i32, u32, u32) = (2026, 12, 31);

/// The years a date may have: `%Y` reads `26` as the year 26, and a date that far off is a mistake.
const PLAUSIBLE_YEARS: std::ops::RangeInclusive<i32> = 1000..=9999;

impl DateFormat {
    pub(crate) fn new(config: &SourceConfig) -> Result<Self, Error> {
        let invalid =
            || Error::InvalidDateFormat { source_name: config.name.clone(), format: config.date_format.clone() };
        let (year, month, day) = EXAMPLE_DATE;
        let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(invalid)?;
        let mut example = String::new();
        // chrono reports a format it cannot apply to a date (`%H`, `%Q`) as a formatting error.
        write!(example, "{}", date.format(&config.date_format)).map_err(|_| invalid())?;
        let items = StrftimeItems::new(&config.date_format).parse_to_owned().map_err(|_| invalid())?;
        let format = DateFormat { format: config.date_format.clone(), items, example };
        if format.parse_date(&format.example).ok() != Some(date) {
            return Err(invalid());
        }
        Ok(format)
    }

    /// `NaiveDate::parse_from_str(value, format)`, with the format parsed once.
    fn parse_date(&self, value: &str) -> ParseResult<NaiveDate> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, value, self.items.iter())?;
        parsed.to_naive_date()
    }

    /// `the format %d.%m.%Y, e.g. 31.12.2026`.
    pub(crate) fn described(&self) -> String {
        format!("the format {}, e.g. {}", self.format, self.example)
    }

    /// Parses text strictly: an impossible date (2026-02-30) is an error, never the next month; so
    /// is a year outside 1000-9999, which is what `%Y` makes of a two-digit year (`26` -> year 26).
    /// SuccessFactors' `/Date(ms)/` is read whatever the format.
    pub(crate) fn parse(&self, value: &str) -> Result<NaiveDate, String> {
        let DateFormat { format, example, .. } = self;
        if let Some(date) = odata_date(value) {
            return date
                .filter(|date| PLAUSIBLE_YEARS.contains(&date.year()))
                .ok_or_else(|| format!("{} is not a date between the years 1000 and 9999", shown(value)));
        }
        match self.parse_date(value) {
            Ok(date) if PLAUSIBLE_YEARS.contains(&date.year()) => Ok(date),
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

    /// A date the source held as a date.
    pub(crate) fn plausible(date: NaiveDate) -> Result<NaiveDate, String> {
        match PLAUSIBLE_YEARS.contains(&date.year()) {
            true => Ok(date),
            false => Err(format!("the date {date} is not between the years 1000 and 9999")),
        }
    }
}

/// OData v2's JSON date, as SuccessFactors writes it: `/Date(1767225600000)/`, milliseconds since
/// 1970-01-01 UTC, optionally followed by an offset in minutes (`/Date(1767225600000+0060)/`,
/// DateTimeOffset) that gives the local day. `None` when `value` is not in this form;
/// `Some(None)` when it is but names no representable date.
fn odata_date(value: &str) -> Option<Option<NaiveDate>> {
    let inner = value.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let (millis, offset) = match inner.char_indices().skip(1).find(|(_, c)| matches!(c, '+' | '-')) {
        Some((at, _)) => (&inner[..at], Some(&inner[at..])),
        None => (inner, None),
    };
    let digits = |text: &str, signed: bool| {
        let unsigned = if signed { text.strip_prefix(['+', '-']).unwrap_or(text) } else { text };
        !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(millis, true) || offset.is_some_and(|offset| !digits(offset, true)) {
        return None;
    }
    let offset_minutes = match offset {
        Some(offset) => offset.parse::<i64>().ok().and_then(TimeDelta::try_minutes),
        None => Some(TimeDelta::zero()),
    };
    let date = millis
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .zip(offset_minutes)
        .and_then(|(utc, offset)| utc.checked_add_signed(offset))
        .map(|local| local.date_naive());
    Some(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn odata_dates_are_milliseconds_since_1970_utc_with_an_optional_offset_in_minutes() {
        assert_eq!(odata_date("/Date(1767225600000)/"), Some(Some(day(2026, 1, 1))));
        assert_eq!(odata_date("/Date(1767225600000+0000)/"), Some(Some(day(2026, 1, 1))));
        assert_eq!(
            odata_date("/Date(1767222000000+0060)/"),
            Some(Some(day(2026, 1, 1))),
            "23:00 UTC is 00:00 at +01:00"
        );
        assert_eq!(odata_date("/Date(1767225600000-0060)/"), Some(Some(day(2025, 12, 31))));
        assert_eq!(odata_date("/Date(-86400000)/"), Some(Some(day(1969, 12, 31))));
        assert_eq!(odata_date("/Date(99999999999999999999)/"), Some(None));
        assert_eq!(odata_date("/Date(9223372036854775807)/"), Some(None));
        for not_odata in ["/Date()/", "/Date(12a)/", "/Date(1+)/", "Date(1)", "/Date(1)", "/Date(+)/", "2026-01-01"] {
            assert_eq!(odata_date(not_odata), None, "{not_odata}");
        }
    }
}
