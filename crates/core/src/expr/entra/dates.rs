//! Dates as Entra's functions see them: .NET `DateTime` values, .NET custom format strings
//! (`yyyy-MM-dd`, `M/d/yyyy h:mm:ss tt`) in the invariant culture, and Visual Basic's
//! `DateAdd`/`DateDiff` arithmetic. Entra's service runs in UTC, so an offset in the input
//! is turned into the UTC time, and "local" is UTC.

use chrono::{Datelike, Months, NaiveDate, NaiveDateTime, TimeDelta, Timelike};

/// A .NET `DateTime`: a moment without a zone, and what it knows about its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DateTime {
    pub at: NaiveDateTime,
    pub kind: Kind,
}

/// .NET's `DateTimeKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Unspecified,
    Utc,
    /// Read with an offset and turned into the service's local time, which is UTC.
    Local,
}

/// How Entra writes a DateTime as text (CDate, DateAdd, Now): `M/d/yyyy h:mm:ss tt`.
pub(super) const DISPLAY: &str = "M/d/yyyy h:mm:ss tt";

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Year(usize),
    Month(usize),
    Day(usize),
    Hour12(usize),
    Hour24(usize),
    Minute(usize),
    Second(usize),
    /// `f` (exact digits) or `F` (trailing zeros dropped) repeated.
    Fraction(usize, bool),
    AmPm(usize),
    Offset(usize),
    ZoneKind,
    Era,
    Literal(char),
}

/// .NET's standard format strings (one letter) as the invariant culture spells them out.
fn standard(format: &str) -> Option<&'static str> {
    Some(match format {
        "d" => "MM/dd/yyyy",
        "D" => "dddd, dd MMMM yyyy",
        "f" => "dddd, dd MMMM yyyy HH:mm",
        "F" | "U" => "dddd, dd MMMM yyyy HH:mm:ss",
        "g" => "MM/dd/yyyy HH:mm",
        "G" => "MM/dd/yyyy HH:mm:ss",
        "M" | "m" => "MMMM dd",
        "O" | "o" => "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
        "R" | "r" => "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
        "s" => "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
        "t" => "HH:mm",
        "T" => "HH:mm:ss",
        "u" => "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
        "Y" | "y" => "yyyy MMMM",
        _ => return None,
    })
}

fn tokens(format: &str) -> Result<Vec<Token>, String> {
    if format.is_empty() {
        return Err("expected a date format such as \"yyyy-MM-dd\", found \"\"".to_owned());
    }
    let pattern = if format.chars().count() == 1 {
        standard(format).ok_or_else(|| {
            format!("expected a date format, found {format:?}, which is no .NET standard format (write %{format} for the single specifier)")
        })?
    } else {
        format
    };
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let mut take = run;
        match c {
            'y' => out.push(Token::Year(run)),
            'M' => out.push(Token::Month(run.min(4))),
            'd' => out.push(Token::Day(run.min(4))),
            'h' => out.push(Token::Hour12(run.min(2))),
            'H' => out.push(Token::Hour24(run.min(2))),
            'm' => out.push(Token::Minute(run.min(2))),
            's' => out.push(Token::Second(run.min(2))),
            'f' | 'F' if run > 7 => {
                return Err(format!("expected at most 7 `{c}` in a date format, found {run} in {format:?}"));
            }
            'f' | 'F' => out.push(Token::Fraction(run, c == 'F')),
            't' => out.push(Token::AmPm(run.min(2))),
            'z' => out.push(Token::Offset(run.min(3))),
            'g' => out.push(Token::Era),
            'K' => {
                out.push(Token::ZoneKind);
                take = 1;
            }
            '\'' | '"' => {
                let Some(len) = chars[i + 1..].iter().position(|&d| d == c) else {
                    return Err(format!("expected the closing {c} of a quoted part of the date format {format:?}"));
                };
                out.extend(chars[i + 1..i + 1 + len].iter().map(|&d| Token::Literal(d)));
                take = len + 2;
            }
            '\\' | '%' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err(format!("expected a character after {c} at the end of the date format {format:?}"));
                };
                if c == '\\' {
                    out.push(Token::Literal(next));
                    take = 2;
                } else {
                    take = 1;
                }
            }
            other => {
                out.push(Token::Literal(other));
                take = 1;
            }
        }
        i += take;
    }
    Ok(out)
}

/// Writes `dt` in a .NET date format.
pub(super) fn format(dt: DateTime, format: &str) -> Result<String, String> {
    let at = dt.at;
    let mut out = String::new();
    for token in tokens(format)? {
        match token {
            Token::Year(1) => out.push_str(&(at.year() % 100).to_string()),
            Token::Year(2) => out.push_str(&format!("{:02}", at.year() % 100)),
            Token::Year(n) => out.push_str(&format!("{:0n$}", at.year())),
            Token::Month(1) => out.push_str(&at.month().to_string()),
            Token::Month(2) => out.push_str(&format!("{:02}", at.month())),
            Token::Month(3) => out.push_str(&MONTHS[at.month0() as usize][..3]),
            Token::Month(_) => out.push_str(MONTHS[at.month0() as usize]),
            Token::Day(1) => out.push_str(&at.day().to_string()),
            Token::Day(2) => out.push_str(&format!("{:02}", at.day())),
            Token::Day(3) => out.push_str(&DAYS[at.weekday().num_days_from_sunday() as usize][..3]),
            Token::Day(_) => out.push_str(DAYS[at.weekday().num_days_from_sunday() as usize]),
            Token::Hour12(n) => out.push_str(&format!("{:0n$}", (at.hour() + 11) % 12 + 1)),
            Token::Hour24(n) => out.push_str(&format!("{:0n$}", at.hour())),
            Token::Minute(n) => out.push_str(&format!("{:0n$}", at.minute())),
            Token::Second(n) => out.push_str(&format!("{:0n$}", at.second())),
            Token::Fraction(n, trim) => {
                let digits = format!("{:09}", at.nanosecond() % 1_000_000_000);
                let digits = &digits[..n];
                if trim {
                    let kept = digits.trim_end_matches('0');
                    // .NET drops the decimal point before an `F` that writes nothing.
                    if kept.is_empty() && out.ends_with('.') {
                        out.pop();
                    }
                    out.push_str(kept);
                } else {
                    out.push_str(digits);
                }
            }
            Token::AmPm(n) => {
                let marker = if at.hour() < 12 { "AM" } else { "PM" };
                out.push_str(&marker[..n]);
            }
            Token::Offset(n) => out.push_str(match n {
                1 => "+0",
                2 => "+00",
                _ => "+00:00",
            }),
            Token::ZoneKind => out.push_str(match dt.kind {
                Kind::Unspecified => "",
                Kind::Utc => "Z",
                Kind::Local => "+00:00",
            }),
            Token::Era => out.push_str("A.D."),
            Token::Literal(c) => out.push(c),
        }
    }
    Ok(out)
}

/// The text of a DateTime as Entra shows one: `3/16/2020 7:00:00 AM`.
pub(super) fn display(dt: DateTime) -> String {
    format(dt, DISPLAY).unwrap_or_default()
}

#[derive(Default)]
struct Fields {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    pm: Option<bool>,
    offset_seconds: Option<i32>,
    utc: bool,
}

struct Reader<'a> {
    rest: &'a str,
}

impl Reader<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let len = self.rest.bytes().take(max).take_while(u8::is_ascii_digit).count();
        if len < min {
            return None;
        }
        let value = if len == 0 { 0 } else { self.rest[..len].parse().ok()? };
        self.rest = &self.rest[len..];
        Some(value)
    }

    fn word(&mut self, words: &[&str], abbreviated: bool) -> Option<u32> {
        for (i, word) in words.iter().enumerate() {
            let word = if abbreviated { &word[..3] } else { word };
            if self.rest.get(..word.len()).is_some_and(|start| start.eq_ignore_ascii_case(word)) {
                self.rest = &self.rest[word.len()..];
                return u32::try_from(i).ok();
            }
        }
        None
    }

    fn sign(&mut self) -> Option<i32> {
        let sign = match self.rest.chars().next()? {
            '+' => 1,
            '-' => -1,
            _ => return None,
        };
        self.rest = &self.rest[1..];
        Some(sign)
    }

    fn literal(&mut self, c: char) -> Option<()> {
        self.rest = self.rest.strip_prefix(c)?;
        Some(())
    }

    fn offset(&mut self, width: usize) -> Option<i32> {
        let sign = self.sign()?;
        let hours = self.digits(if width == 1 { 1 } else { 2 }, 2)?;
        let minutes = if width == 3 {
            self.literal(':')?;
            self.digits(2, 2)?
        } else {
            0
        };
        Some(sign * i32::try_from(hours * 3600 + minutes * 60).ok()?)
    }
}

fn read(text: &str, tokens: &[Token]) -> Option<Fields> {
    let mut fields = Fields::default();
    let mut reader = Reader { rest: text.trim() };
    for (i, token) in tokens.iter().enumerate() {
        match *token {
            Token::Year(n) if n <= 2 => {
                let year = reader.digits(n, 2)?;
                // .NET's two-digit year window: up to 49 is this century.
                fields.year = Some(i32::try_from(if year < 50 { 2000 + year } else { 1900 + year }).ok()?);
            }
            Token::Year(n) => fields.year = Some(i32::try_from(reader.digits(n, n.max(4))?).ok()?),
            Token::Month(n) if n <= 2 => fields.month = Some(reader.digits(n, 2)?),
            Token::Month(n) => fields.month = Some(reader.word(&MONTHS, n == 3)? + 1),
            Token::Day(n) if n <= 2 => fields.day = Some(reader.digits(n, 2)?),
            Token::Day(n) => {
                reader.word(&DAYS, n == 3)?;
            }
            Token::Hour12(n) | Token::Hour24(n) => fields.hour = reader.digits(n, 2)?,
            Token::Minute(n) => fields.minute = reader.digits(n, 2)?,
            Token::Second(n) => fields.second = reader.digits(n, 2)?,
            Token::Fraction(n, optional) => {
                let before = reader.rest.len();
                let value = reader.digits(if optional { 0 } else { n }, n)?;
                let read = before - reader.rest.len();
                fields.nanos = value * 10u32.pow(u32::try_from(9 - read).ok()?);
            }
            Token::AmPm(n) => {
                let first = reader.rest.chars().next()?.to_ascii_uppercase();
                let pm = match first {
                    'A' => false,
                    'P' => true,
                    _ => return None,
                };
                let len =
                    if n == 2 && reader.rest.get(1..2).is_some_and(|m| m.eq_ignore_ascii_case("m")) { 2 } else { 1 };
                reader.rest = &reader.rest[len..];
                fields.pm = Some(pm);
            }
            Token::Offset(n) => fields.offset_seconds = Some(reader.offset(n)?),
            Token::ZoneKind => {
                if reader.literal('Z').is_some() {
                    fields.utc = true;
                } else if reader.rest.starts_with(['+', '-']) {
                    fields.offset_seconds = Some(reader.offset(3)?);
                }
            }
            Token::Era => {
                reader.rest = reader.rest.strip_prefix("A.D.").or_else(|| reader.rest.strip_prefix("AD"))?;
            }
            // `.` before `F`s that read nothing is optional, as in .NET.
            Token::Literal('.')
                if matches!(tokens.get(i + 1), Some(Token::Fraction(_, true))) && !reader.rest.starts_with('.') => {}
            Token::Literal(c) if c.is_whitespace() => {
                let trimmed = reader.rest.trim_start();
                if trimmed.len() == reader.rest.len() {
                    return None;
                }
                reader.rest = trimmed;
            }
            Token::Literal(c) => reader.literal(c)?,
        }
    }
    reader.rest.is_empty().then_some(fields)
}

fn build(fields: Fields) -> Option<DateTime> {
    let mut hour = fields.hour;
    match fields.pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let date = NaiveDate::from_ymd_opt(fields.year?, fields.month.unwrap_or(1), fields.day.unwrap_or(1))?;
    let at = date.and_hms_nano_opt(hour, fields.minute, fields.second, fields.nanos)?;
    Some(match fields.offset_seconds {
        Some(offset) => {
            DateTime { at: at.checked_sub_signed(TimeDelta::seconds(i64::from(offset)))?, kind: Kind::Local }
        }
        None if fields.utc => DateTime { at, kind: Kind::Utc },
        None => DateTime { at, kind: Kind::Unspecified },
    })
}

/// Reads `text` written in the .NET date format `format` (ParseExact).
pub(super) fn parse_exact(text: &str, format: &str) -> Result<DateTime, String> {
    let tokens = tokens(format)?;
    read(text, &tokens).and_then(build).ok_or_else(|| format!("expected a date like {format:?}, found {text:?}"))
}

/// The forms CDate reads: ISO 8601 (with a time, an offset, or Workday's offset straight
/// after the date: `2012-03-16-07:00`) and Entra's own `M/d/yyyy h:mm:ss tt`.
const LOOSE_FORMATS: &[&str] = &[
    "yyyy-MM-ddTHH:mm:ss.FFFFFFFK",
    "yyyy-MM-ddTHH:mmK",
    "yyyy-MM-dd HH:mm:ss.FFFFFFFK",
    "yyyy-MM-dd HH:mmK",
    "yyyy-MM-ddK",
    "M/d/yyyy h:mm:ss tt",
    "M/d/yyyy h:mm tt",
    "M/d/yyyy H:mm:ss",
    "M/d/yyyy H:mm",
    "M/d/yyyy",
];

/// CDate: a date in any of [`LOOSE_FORMATS`], as UTC.
pub(super) fn parse_loose(text: &str) -> Result<DateTime, String> {
    LOOSE_FORMATS
        .iter()
        .find_map(|format| tokens(format).ok().and_then(|tokens| read(text, &tokens)).and_then(build))
        .map(|dt| DateTime { at: dt.at, kind: Kind::Utc })
        .ok_or_else(|| {
            format!("expected a date such as \"2024-03-01\", \"2024-03-01T08:00:00Z\" or \"3/1/2024 8:00:00 AM\", found {text:?}")
        })
}

fn months(at: NaiveDateTime, n: i64) -> Option<NaiveDateTime> {
    let count = Months::new(u32::try_from(n.unsigned_abs()).ok()?);
    if n >= 0 { at.checked_add_months(count) } else { at.checked_sub_months(count) }
}

const INTERVALS: &str = "\"yyyy\" (years), \"q\" (quarters), \"m\" (months), \"d\" (days), \"ww\" (weeks), \"h\" (hours), \"n\" (minutes) or \"s\" (seconds)";

/// Visual Basic's DateAdd: months keep the day, or take the month's last one.
pub(super) fn add(interval: &str, n: i64, dt: DateTime) -> Result<DateTime, String> {
    let seconds =
        |unit: i64| n.checked_mul(unit).and_then(TimeDelta::try_seconds).and_then(|d| dt.at.checked_add_signed(d));
    let at = match interval.to_ascii_lowercase().as_str() {
        "yyyy" => n.checked_mul(12).and_then(|m| months(dt.at, m)),
        "q" => n.checked_mul(3).and_then(|m| months(dt.at, m)),
        "m" => months(dt.at, n),
        "d" | "y" | "w" => seconds(86_400),
        "ww" => seconds(7 * 86_400),
        "h" => seconds(3600),
        "n" => seconds(60),
        "s" => seconds(1),
        _ => return Err(format!("expected the interval {INTERVALS}, found {interval:?}")),
    };
    at.map(|at| DateTime { at, kind: dt.kind }).ok_or_else(|| format!("the date {} is out of range", display(dt)))
}

/// Visual Basic's DateDiff: calendar years, quarters and months; whole days, hours, minutes
/// and seconds (cut toward zero); weeks between the Sundays before each date.
pub(super) fn diff(interval: &str, first: DateTime, second: DateTime) -> Result<i64, String> {
    let (a, b) = (first.at, second.at);
    let seconds = (b - a).num_seconds();
    Ok(match interval.to_ascii_lowercase().as_str() {
        "yyyy" => i64::from(b.year() - a.year()),
        "q" => i64::from(b.year() - a.year()) * 4 + i64::from(b.month0() / 3) - i64::from(a.month0() / 3),
        "m" => i64::from(b.year() - a.year()) * 12 + i64::from(b.month()) - i64::from(a.month()),
        "d" | "y" => seconds / 86_400,
        "w" => seconds / 86_400 / 7,
        "ww" => {
            // VB's GetDayOfWeek(date, vbSunday): Sunday is 1, so a Sunday goes back a day.
            let back = |at: NaiveDateTime| {
                let days = (i64::from(at.weekday().num_days_from_sunday()) + 7) % 7 + 1;
                at.checked_sub_signed(TimeDelta::days(days)).ok_or_else(|| format!("the date {at} is out of range"))
            };
            (back(b)? - back(a)?).num_seconds() / 86_400 / 7
        }
        "h" => seconds / 3600,
        "n" => seconds / 60,
        "s" => seconds,
        _ => return Err(format!("expected the interval {INTERVALS}, found {interval:?}")),
    })
}

/// 100-nanosecond ticks from 1601-01-01 UTC to the Unix epoch: Windows FILETIME.
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// DateFromNum: an Active Directory date (FILETIME) as a DateTime.
pub(super) fn from_filetime(ticks: i64) -> Result<DateTime, String> {
    // From 0 up, subtracting the epoch cannot overflow.
    let unix = ticks.max(0) - FILETIME_UNIX_EPOCH;
    chrono::DateTime::from_timestamp(
        unix.div_euclid(10_000_000),
        u32::try_from(unix.rem_euclid(10_000_000) * 100).unwrap_or(0),
    )
    .filter(|_| ticks >= 0)
    .map(|moment| DateTime { at: moment.naive_utc(), kind: Kind::Utc })
    .ok_or_else(|| format!("expected an Active Directory date (100-nanosecond intervals since 1601), found {ticks}"))
}

/// NumFromDate: a DateTime as an Active Directory date (FILETIME).
pub(super) fn to_filetime(dt: DateTime) -> Result<i64, String> {
    let moment = dt.at.and_utc();
    moment
        .timestamp()
        .checked_mul(10_000_000)
        .and_then(|ticks| ticks.checked_add(i64::from(moment.timestamp_subsec_nanos() / 100)))
        .and_then(|ticks| ticks.checked_add(FILETIME_UNIX_EPOCH))
        .filter(|ticks| *ticks >= 0)
        .ok_or_else(|| format!("{} has no Active Directory date", display(dt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime {
        DateTime { at: NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap(), kind: Kind::Utc }
    }

    #[test]
    fn formats_as_dotnet_does() {
        let dt = at("2021-07-02 15:33:38");
        assert_eq!(display(dt), "7/2/2021 3:33:38 PM");
        assert_eq!(format(dt, "yyyy-MM-dd'T'HH:mm:ssK").unwrap(), "2021-07-02T15:33:38Z");
        assert_eq!(format(dt, "dddd, d MMMM yy").unwrap(), "Friday, 2 July 21");
        assert_eq!(format(dt, "s").unwrap(), "2021-07-02T15:33:38");
        assert_eq!(format(dt, "HH:mm:ss.FFF").unwrap(), "15:33:38");
        assert_eq!(display(at("2021-07-02 00:05:00")), "7/2/2021 12:05:00 AM");
    }

    #[test]
    fn reads_exact_formats() {
        let dt = parse_exact("20150123105347.1Z", "yyyyMMddHHmmss.fZ").unwrap();
        assert_eq!(format(dt, "yyyy-MM-dd HH:mm:ss.fff").unwrap(), "2015-01-23 10:53:47.100");
        let dt = parse_exact("12/31/2020 11:59:59 PM", "M/d/yyyy hh:mm:ss tt").unwrap();
        assert_eq!(format(dt, "yyyy-MM-dd HH:mm").unwrap(), "2020-12-31 23:59");
        assert!(parse_exact("2020-13-01", "yyyy-MM-dd").is_err());
        assert!(parse_exact("2020-12-01x", "yyyy-MM-dd").is_err());
    }

    #[test]
    fn unknown_intervals_and_bad_formats_say_what_is_expected() {
        assert!(add("x", 1, at("2021-01-01 00:00:00")).unwrap_err().contains("\"yyyy\" (years)"));
        assert!(tokens("'open").unwrap_err().contains("closing"));
        assert!(tokens("Q").unwrap_err().contains("standard format"));
    }
}
