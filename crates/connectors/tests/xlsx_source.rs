//! The XLSX source against real workbooks (`tests/fixtures/xlsx/`, written by `make.py` there):
//! each test reads one and compares every record and quarantined row, rendered one per line, with
//! what it must be.

mod source_support;

use std::io::Cursor;

use roster_connectors::error::Error;
use roster_connectors::source::xlsx::{read_xlsx, read_xlsx_from};
use roster_core::config::{SourceConfig, SourceKind};
use source_support::{Fixtures, WORKER_COLUMNS, XorShift, assert_accounted_for, source};

const XLSX: Fixtures = Fixtures { kind: "xlsx", read: read_xlsx };

fn config(key: &str, columns: &[(&str, &str)]) -> SourceConfig {
    source(SourceKind::Xlsx, "workers.xlsx", key, columns)
}

/// The configuration of `workers.xlsx`, as for `workers.csv`.
fn workers() -> SourceConfig {
    config("Employee_ID", &WORKER_COLUMNS)
}

/// The configuration of `report.xlsx`: its header is on row 3.
fn report() -> SourceConfig {
    let mut config = config(
        "Employee_ID",
        &[
            ("given_name", "Name"),
            ("hire_date", "Hire_Date"),
            ("last_day", "Termination_Date"),
            ("cost_center", "Cost_Center"),
            ("fte", "FTE"),
            ("active", "Active"),
        ],
    );
    config.header_row = Some(3);
    config
}

#[test]
fn a_workbook_reads_as_its_csv_export_does_with_sheet_rows_as_lines() {
    assert_eq!(
        XLSX.read("workers.xlsx", &workers()),
        r#"rows_seen 4 complete true
line 2 row 1 "00042": affiliation="employee" department="Engineering" family_name="Müller" given_name="Anna" hire_date=2019-04-01 office="Berlin, Mitte" status="Active"
line 3 row 2 "00043": affiliation="employee" department="Sales \"EMEA\"" family_name="Østergaard" given_name="Björn" hire_date=2021-09-15 last_day=2026-11-30 manager="00042" office="Building 7\nFloor 3" status="Active"
line 4 row 3 "00044": affiliation="employee" department="Finance" given_name="Chloé" hire_date=2026-07-01 manager="00042"
line 5 row 4 "0045": affiliation="employee" department="Engineering" family_name="Sørensen" given_name="Dmitri" hire_date=2024-01-08 manager="00042" office="Hamburg" status="Active"
"#
    );
}

#[test]
fn a_sheet_is_chosen_by_name_and_text_dates_parse_in_the_date_format() {
    let mut config = config("Id", &[("given_name", "Name"), ("hire_date", "Start"), ("affiliation", "Kind")]);
    config.sheet = Some("Contractors".to_string());
    config.affiliation = "student".to_string();
    assert_eq!(
        XLSX.read("workers.xlsx", &config),
        r#"rows_seen 2 complete true
line 2 row 1 "C-1": affiliation="contractor" given_name="Ola" hire_date=2026-01-05
line 3 row 2 "C-2": affiliation="student" given_name="Per" hire_date=2026-01-05
"#
    );
}

#[test]
fn a_missing_sheet_fails_the_read_naming_the_sheets_there_are() {
    let config = SourceConfig { sheet: Some("Staff".to_string()), ..workers() };
    assert_eq!(
        XLSX.error("workers.xlsx", &config),
        r#"workers.xlsx: expected a sheet named "Staff", found the sheets "Workers", "Contractors""#
    );
}

#[test]
fn a_report_with_its_header_on_row_3_holds_each_hazard_with_its_reason() {
    assert_eq!(
        XLSX.read("report.xlsx", &report()),
        r#"rows_seen 13 complete true
line 4 row 1 "42": active="true" affiliation="employee" cost_center="4711" fte="1" given_name="Anna" hire_date=2019-04-01
line 5 row 2 "00043": active="false" affiliation="employee" cost_center="C-12" fte="0.5" given_name="Björn" hire_date=2023-03-15 last_day=2026-11-30
line 6 row 3 held Some("44"): key 44 appears on rows 3 and 9
line 7 row 4 held None: expected a key in column "Employee_ID", but found the number 1.234567890123457e18, too large to hold an ID exactly; store the IDs as text
line 8 row 5 held None: expected a key in column "Employee_ID", but found the date 2026-03-12 (did a spreadsheet turn the ID into a date?)
line 9 row 6 held Some("46"): hire_date (column "Hire_Date"): "2026-02-30" is not a valid date; expected the format %Y-%m-%d, e.g. 2026-12-31
line 10 row 7 held Some("47"): hire_date (column "Hire_Date"): "01.03.2026" does not match the date format %Y-%m-%d, e.g. 2026-12-31
line 11 row 8 held None: expected a key in column "Employee_ID", but it is empty
line 12 row 9 held Some("44"): key 44 appears on rows 3 and 9
line 13 row 10 held Some("48"): given_name (column "Name"): expected text, found the error value #N/A
line 14 row 11 held Some("49"): hire_date (column "Hire_Date") is required, but empty
line 15 row 12 held Some("50"): hire_date (column "Hire_Date"): expected a date in the format %Y-%m-%d, e.g. 2026-12-31, found the Excel date serial 60, which is 1900-02-29, a day that never was (Excel counts 1900 as a leap year)
line 16 row 13 held Some("51"): hire_date (column "Hire_Date"): expected a date in the format %Y-%m-%d, e.g. 2026-12-31, found the number -5
"#
    );
}

#[test]
fn the_1904_date_system_reads_date_cells_and_serial_numbers() {
    let config = config("Id", &[("hire_date", "Start")]);
    assert_eq!(
        XLSX.read("dates-1904.xlsx", &SourceConfig { sheet: Some("Staff".to_string()), ..config }),
        r#"rows_seen 2 complete true
line 2 row 1 "1": affiliation="employee" hire_date=2026-03-01
line 3 row 2 "2": affiliation="employee" hire_date=2026-03-01
"#
    );
}

#[test]
fn a_missing_or_renamed_column_fails_the_read_naming_the_columns_there_are() {
    assert_eq!(
        XLSX.error("renamed-column.xlsx", &workers()),
        r#"renamed-column.xlsx (sheet "Workers", header row 1): the header lacks column "Hire_Date" (for hire_date; renamed to "HireDate"?), column "Office" (for office); the header has 8 columns: "Employee_ID", "Preferred_First_Name", "Legal_Last_Name", "HireDate", "Termination_Date", "Worker_Status", "Department", "Manager_Employee_ID""#
    );
}

#[test]
fn a_configured_column_twice_in_the_header_fails_the_read() {
    assert_eq!(
        XLSX.error("duplicate-header.xlsx", &workers()),
        r#"duplicate-header.xlsx (sheet "Sheet", header row 1): column "Department" appears 2 times (columns 7 and 10); expected each column the configuration uses to appear once, so its value is not ambiguous"#
    );
}

#[test]
fn an_empty_header_row_fails_the_read() {
    let config = SourceConfig { header_row: Some(20), ..report() };
    assert_eq!(
        XLSX.error("report.xlsx", &config),
        r#"report.xlsx: sheet "Headcount" has nothing on row 20; expected the header row naming the columns there (header_row = 20)"#
    );
}

#[test]
fn a_missing_file_fails_naming_the_path() {
    XLSX.assert_missing_file_fails(&workers());
}

#[test]
fn a_file_that_is_no_workbook_fails_the_read() {
    let csv = std::fs::read(source_support::fixtures("csv").join("workers.csv")).unwrap();
    let error = read_xlsx_from(&workers(), Cursor::new(csv), "workers.xlsx").unwrap_err();
    assert!(matches!(error, Error::Workbook { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "workers.xlsx: cannot read the workbook: Zip error: invalid Zip archive: Could not find EOCD; expected an Excel \
         workbook (.xlsx)"
    );
}

#[test]
fn damaged_workbooks_never_panic_and_either_fail_or_account_for_every_row() {
    let original = std::fs::read(XLSX.path("workers.xlsx")).unwrap();
    let mut random = XorShift(0x5EED);
    for case in 0..3000 {
        let mut bytes = original.clone();
        match case % 3 {
            0 => bytes.truncate(random.below(bytes.len())),
            1 => {
                for _ in 0..=random.below(8) {
                    let at = random.below(bytes.len());
                    bytes[at] ^= 1 << random.below(8);
                }
            }
            _ => {
                let at = random.below(bytes.len());
                let length = random.below(64).min(bytes.len() - at);
                bytes.drain(at..at + length);
            }
        }
        if let Ok(read) = read_xlsx_from(&workers(), Cursor::new(&bytes), "damaged.xlsx") {
            assert_accounted_for(&read, &case);
        }
    }
}
