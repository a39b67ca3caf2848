//! XLSX workbooks (Excel 2007 and later), read with calamine: one sheet (`sheet`, by default the
//! first), its header on `header_row` (by default 1; rows above it are ignored, as report titles
//! often stand there), and every row below it a data row that goes through the rules every source
//! shares (`super::rows`).
//!
//! The sheet's cells are streamed in the order the file stores them; only the row being read is
//! held. What a cell holds becomes a value for the rules:
//!
//! - text as it is: a key stored as text (`00042`) stays `00042`;
//! - numbers as text without a needless `.0`: a key stored as the number 42 reads `42` (a display
//!   format such as `00000` is not applied: store keys with leading zeros as text);
//! - in a date column: a cell formatted as a date, which Excel holds as a serial day number
//!   converted by calamine (1900 or 1904 date system, and the 1900 leap-year bug: serial 60, the
//!   29 February 1900 that never was, holds its row); a plain number, read as such a serial (as
//!   when a column loses its date format); or text in `date_format`;
//! - an error cell (`#N/A`) or a duration in a mapped column holds its row.
//!
//! Rows whose every cell is empty (spreadsheets keep formatted empty rows after the last one) are
//! skipped and not counted; cells right of the header's last column are ignored. The whole read
//! fails when the file is not a readable workbook, the sheet does not exist (the message names the
//! sheets that do), the header row is empty, or it lacks a configured column (the message names
//! the columns it has). A record's location is the file, the sheet's row number as Excel shows it
//! (`line`), and the data row (the row under the header is row 1).

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use calamine::{DataRef, ExcelDateTime, ExcelDateTimeType, Reader, Xlsx, XlsxError};
use chrono::{NaiveDate, NaiveDateTime};
use roster_core::config::SourceConfig;
use roster_core::source::{Location, SourceRead};

use super::rows::{Layout, Positions, RawValue, RowRules, Tally, is_blank_row, number_text};
use crate::error::{Error, Result};

/// Excel's last column, XFD: a cell further right is not from a sheet Excel wrote.
const MAX_COLUMNS: u32 = 16_384;
/// Serial day numbers of Excel's dates, 1900-01-01 to 9999-12-31 (the 1904 system: from 1904-01-01).
const SERIALS_1900: std::ops::Range<f64> = 1.0..2_958_466.0;
const SERIALS_1904: std::ops::Range<f64> = 0.0..2_957_004.0;

/// Reads the workbook at `path` (already resolved against the config file's folder) per `config`.
pub fn read_xlsx(config: &SourceConfig, path: &Path) -> Result<SourceRead> {
    let rules = RowRules::new(config)?;
    let file = File::open(path).map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
    read(&rules, BufReader::new(file), &path.display().to_string())
}

/// Reads a workbook from any seekable reader (tests, sources that hand over bytes); `file_label`
/// names it in locations and messages.
pub fn read_xlsx_from<R: Read + Seek>(config: &SourceConfig, reader: R, file_label: &str) -> Result<SourceRead> {
    read(&RowRules::new(config)?, reader, file_label)
}

fn read<R: Read + Seek>(rules: &RowRules, reader: R, file: &str) -> Result<SourceRead> {
    let config = rules.config();
    let unreadable = |error: XlsxError| Error::Workbook { file: file.to_string(), reason: error.to_string() };
    let mut workbook: Xlsx<R> = Xlsx::new(reader).map_err(unreadable)?;
    let sheets = workbook.sheet_names();
    let found = match &config.sheet {
        Some(wanted) => sheets.iter().find(|name| *name == wanted),
        None => sheets.first(),
    };
    let Some(sheet) = found.cloned() else {
        return Err(Error::MissingSheet { file: file.to_string(), sheet: config.sheet.clone(), sheets });
    };
    let mut sheet_reader = SheetReader {
        rules,
        file,
        sheet: &sheet,
        header_row: config.header_row.unwrap_or(1).max(1),
        is_1904: workbook.has_1904_epoch(),
        layout: None,
        date_columns: Vec::new(),
        tally: Tally::default(),
    };

    let mut cells = workbook.worksheet_cells_reader(&sheet).map_err(unreadable)?;
    let mut row_cells: Vec<(u32, DataRef)> = Vec::new();
    let mut current_row: Option<u32> = None;
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let (row, column) = cell.get_position();
        if current_row != Some(row) {
            if let Some(done) = current_row {
                if row < done {
                    let reason = format!(
                        "sheet {sheet:?} stores row {} after row {}; expected rows in order (is the file damaged?)",
                        u64::from(row) + 1,
                        u64::from(done) + 1
                    );
                    return Err(Error::Workbook { file: file.to_string(), reason });
                }
                sheet_reader.row(done, &row_cells)?;
                row_cells.clear();
            }
            current_row = Some(row);
        }
        if sheet_reader.wants(row, column) {
            row_cells.push((column, cell.get_value().clone()));
        }
    }
    if let Some(done) = current_row {
        sheet_reader.row(done, &row_cells)?;
    }
    sheet_reader.finish()
}

/// Turns a sheet's rows, as they stream by, into records.
struct SheetReader<'a> {
    rules: &'a RowRules<'a>,
    file: &'a str,
    sheet: &'a str,
    /// 1-based, as Excel shows it.
    header_row: u32,
    is_1904: bool,
    /// Found on the header row.
    layout: Option<Layout>,
    /// Which of the header's columns hold dates.
    date_columns: Vec<bool>,
    tally: Tally,
}

impl SheetReader<'_> {
    /// Whether the cell at 0-based `row` and `column` is to be kept: rows above the header are
    /// ignored, and so are cells right of the header (or of Excel's last column).
    fn wants(&self, row: u32, column: u32) -> bool {
        let number = u64::from(row) + 1;
        match &self.layout {
            _ if number < u64::from(self.header_row) => false,
            None => column < MAX_COLUMNS,
            Some(layout) => (column as usize) < layout.header.len(),
        }
    }

    /// One row's kept cells, in column order; `row` is 0-based.
    fn row(&mut self, row: u32, cells: &[(u32, DataRef)]) -> Result<()> {
        let number = u64::from(row) + 1;
        let header_row = u64::from(self.header_row);
        if number < header_row {
            return Ok(());
        }
        let Some(layout) = &self.layout else {
            if number > header_row {
                return Err(self.no_header());
            }
            return self.header(cells);
        };
        let mut values = vec![RawValue::Empty; layout.header.len()];
        for (column, cell) in cells {
            let index = *column as usize;
            if let (Some(slot), Some(is_date)) = (values.get_mut(index), self.date_columns.get(index)) {
                *slot = raw_value(cell, *is_date, self.is_1904);
            }
        }
        if is_blank_row(&values) {
            return Ok(());
        }
        self.tally.rows_seen += 1;
        let location = Location { file: self.file.to_string().into(), line: number, row: number - header_row };
        let outcome = self.rules.check(layout, &values, location);
        self.tally.push(outcome);
        Ok(())
    }

    fn header(&mut self, cells: &[(u32, DataRef)]) -> Result<()> {
        let width = cells.iter().filter(|(_, cell)| !is_blank_cell(cell)).map(|(column, _)| *column as usize + 1).max();
        let Some(width) = width else {
            return Err(self.no_header());
        };
        let mut names = vec![String::new(); width];
        for (column, cell) in cells {
            if let Some(name) = names.get_mut(*column as usize) {
                *name = header_name(cell);
            }
        }
        let label = format!("{} (sheet {:?}, header row {})", self.file, self.sheet, self.header_row);
        let layout =
            Layout::resolve(self.rules.config(), names.iter().map(String::as_str), Positions::Letters, &label)?;
        self.date_columns = vec![false; layout.header.len()];
        for mapped in layout.attributes.iter().filter(|mapped| mapped.is_date) {
            self.date_columns[mapped.index] = true;
        }
        self.layout = Some(layout);
        Ok(())
    }

    fn no_header(&self) -> Error {
        Error::NoHeaderRow { file: self.file.to_string(), sheet: self.sheet.to_string(), row: self.header_row }
    }

    fn finish(self) -> Result<SourceRead> {
        if self.layout.is_none() {
            return Err(self.no_header());
        }
        Ok(self.tally.finish(self.rules.config()))
    }
}

fn is_blank_cell(cell: &DataRef) -> bool {
    match cell {
        DataRef::Empty => true,
        DataRef::String(text) => text.trim().is_empty(),
        DataRef::SharedString(text) => text.trim().is_empty(),
        _ => false,
    }
}

/// A header cell as a column name.
fn header_name(cell: &DataRef) -> String {
    match raw_value(cell, false, false) {
        RawValue::Text(text) => text.into_owned(),
        RawValue::Integer(n) => n.to_string(),
        RawValue::Number(n) => number_text(n),
        RawValue::Date(date) => date.to_string(),
        RawValue::DateTime(moment) => moment.to_string(),
        RawValue::Bool(b) => b.to_string().to_uppercase(),
        RawValue::Empty | RawValue::Missing => String::new(),
        RawValue::Other(what) => what,
    }
}

/// A cell as a value for the row rules; a number in a date column is read as an Excel serial date.
fn raw_value<'a>(cell: &'a DataRef, date_column: bool, is_1904: bool) -> RawValue<'a> {
    match cell {
        DataRef::Empty => RawValue::Empty,
        DataRef::String(text) => RawValue::Text(Cow::Borrowed(text)),
        DataRef::SharedString(text) => RawValue::Text(Cow::Borrowed(text)),
        DataRef::Bool(b) => RawValue::Bool(*b),
        DataRef::Int(n) if date_column => serial_date(*n as f64, is_1904).unwrap_or(RawValue::Integer(*n)),
        DataRef::Float(n) if date_column => serial_date(*n, is_1904).unwrap_or(RawValue::Number(*n)),
        DataRef::Int(n) => RawValue::Integer(*n),
        DataRef::Float(n) => RawValue::Number(*n),
        DataRef::DateTime(excel) if excel.is_duration() => {
            RawValue::Other(format!("a duration cell ({} days), not a date", number_text(excel.as_f64())))
        }
        DataRef::DateTime(excel) => serial_date(excel.as_f64(), is_1904).unwrap_or_else(|| {
            RawValue::Other(format!("a date cell holding {}, outside Excel's dates", number_text(excel.as_f64())))
        }),
        DataRef::DateTimeIso(text) => iso_date(text).unwrap_or(RawValue::Text(Cow::Borrowed(text))),
        DataRef::DurationIso(text) => RawValue::Other(format!("a duration cell ({text}), not a date")),
        DataRef::Error(error) => RawValue::Other(format!("the error value {error}")),
    }
}

/// An Excel serial date (days since 1899-12-30, or 1904-01-01 in the 1904 system, with the time
/// of day as the fraction); `None` outside Excel's dates.
fn serial_date(serial: f64, is_1904: bool) -> Option<RawValue<'static>> {
    let serials = if is_1904 { SERIALS_1904 } else { SERIALS_1900 };
    if !serials.contains(&serial) {
        return None;
    }
    let excel = ExcelDateTime::new(serial, ExcelDateTimeType::DateTime, is_1904);
    let (year, month, day, hour, minute, second, milli) = excel.to_ymd_hms_milli();
    let Some(date) = NaiveDate::from_ymd_opt(year.into(), month.into(), day.into()) else {
        return Some(RawValue::Other(format!(
            "the Excel date serial {}, which is {year}-{month:02}-{day:02}, a day that never was (Excel counts 1900 as a leap year)",
            number_text(serial)
        )));
    };
    if (hour, minute, second, milli) == (0, 0, 0, 0) {
        return Some(RawValue::Date(date));
    }
    let moment = date.and_hms_milli_opt(hour.into(), minute.into(), second.into(), milli.into());
    Some(moment.map_or(RawValue::Date(date), RawValue::DateTime))
}

/// An ISO 8601 date cell (`t="d"`), as some writers store dates.
fn iso_date(text: &str) -> Option<RawValue<'static>> {
    if let Ok(moment) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(RawValue::DateTime(moment));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(RawValue::Date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> RawValue<'static> {
        RawValue::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    #[test]
    fn serial_dates_follow_excel_including_its_1900_leap_year() {
        assert_eq!(serial_date(1.0, false), Some(day(1900, 1, 1)));
        assert_eq!(serial_date(59.0, false), Some(day(1900, 2, 28)));
        assert!(matches!(serial_date(60.0, false), Some(RawValue::Other(why)) if why.contains("never was")));
        assert_eq!(serial_date(61.0, false), Some(day(1900, 3, 1)));
        assert_eq!(serial_date(46_082.0, false), Some(day(2026, 3, 1)));
        assert_eq!(serial_date(2_958_465.0, false), Some(day(9999, 12, 31)));
        assert_eq!(serial_date(0.0, true), Some(day(1904, 1, 1)));
        assert_eq!(serial_date(44_620.0, true), Some(day(2026, 3, 1)));
        for outside in [0.0, -1.0, 2_958_466.0, f64::NAN, f64::INFINITY, -1e300] {
            assert_eq!(serial_date(outside, false), None, "{outside}");
        }
        let half_past_nine = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap().and_hms_opt(9, 30, 0).unwrap();
        assert_eq!(serial_date(46_082.395_833_333_33, false), Some(RawValue::DateTime(half_past_nine)));
    }
}
