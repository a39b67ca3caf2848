//! The CSV source against real export files (`tests/fixtures/csv/`): each test reads one and
//! compares every record and quarantined row, rendered one per line, with what it must be.

mod source_support;

use std::io::Read;
use std::path::PathBuf;

use roster_connectors::error::Error;
use roster_connectors::source::csv::{read_csv, read_csv_from};
use roster_core::config::{SourceConfig, SourceKind, TextEncoding};
use source_support::{Fixtures, WORKER_COLUMNS, XorShift, rendered, source};

fn fixtures() -> PathBuf {
    source_support::fixtures("csv")
}

fn config(key: &str, columns: &[(&str, &str)]) -> SourceConfig {
    source(SourceKind::Csv, "workers.csv", key, columns)
}

/// The configuration of the `workers*.csv` exports.
fn workers() -> SourceConfig {
    config("Employee_ID", &WORKER_COLUMNS)
}

const CSV: Fixtures = Fixtures { kind: "csv", read: read_csv };

fn read(name: &str, config: &SourceConfig) -> String {
    CSV.read(name, config)
}

fn read_error(name: &str, config: &SourceConfig) -> String {
    CSV.error(name, config)
}

fn read_bytes(bytes: &[u8], config: &SourceConfig) -> String {
    rendered(read_csv_from(config, bytes, "export.csv"), "export.csv")
}

const WORKERS: &str = r#"rows_seen 4 complete true
line 2 row 1 "00042": affiliation="employee" department="Engineering" family_name="Müller" given_name="Anna" hire_date=2019-04-01 office="Berlin, Mitte" status="Active"
line 3 row 2 "00043": affiliation="employee" department="Sales \"EMEA\"" family_name="Østergaard" given_name="Björn" hire_date=2021-09-15 last_day=2026-11-30 manager="00042" office="Building 7\nFloor 3" status="Active"
line 5 row 3 "00044": affiliation="employee" department="Finance" given_name="Chloé" hire_date=2026-07-01 manager="00042"
line 6 row 4 "0045": affiliation="employee" department="Engineering" family_name="Sørensen" given_name="Dmitri" hire_date=2024-01-08 manager="00042" office="Hamburg" status="Active"
"#;

#[test]
fn utf8_without_bom_keeps_leading_zeros_trims_values_and_drops_empty_ones() {
    assert_eq!(read("workers.csv", &workers()), WORKERS);
}

#[test]
fn utf8_bom_is_removed_before_the_first_column_name() {
    assert_eq!(read("workers-bom.csv", &workers()), WORKERS);
}

#[test]
fn crlf_line_breaks_read_like_lf_also_inside_quoted_values() {
    assert_eq!(read("workers-crlf.csv", &workers()), WORKERS);
}

#[test]
fn a_whole_last_row_without_a_final_line_break_is_valid() {
    assert_eq!(read("workers-no-final-line-break.csv", &workers()), WORKERS);
}

#[test]
fn a_utf8_bom_wins_over_a_configured_windows_1252() {
    let config = SourceConfig { encoding: TextEncoding::Windows1252, ..workers() };
    assert_eq!(read("workers-bom.csv", &config), WORKERS);
}

#[test]
fn a_utf16_bom_is_honoured() {
    let text = std::fs::read_to_string(fixtures().join("workers.csv")).unwrap();
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(read_bytes(&bytes, &workers()), WORKERS);
}

#[test]
fn windows_1252_decodes_accents_and_the_0x80_to_0x9f_range() {
    let config = SourceConfig { encoding: TextEncoding::Windows1252, ..workers() };
    assert_eq!(
        read("workers-1252.csv", &config),
        r#"rows_seen 2 complete true
line 2 row 1 "00050": affiliation="employee" department="Küche & Café" family_name="Weiß" given_name="Renée" hire_date=2020-02-01 office="Zürich" status="Active"
line 3 row 2 "00051": affiliation="employee" department="Finance" family_name="Šimková" given_name="Søren" hire_date=2022-03-01 manager="00050" office="Aarhus, €-Büro" status="Active"
"#
    );
}

#[test]
fn windows_1252_read_as_utf8_fails_with_line_offset_and_a_suggestion() {
    assert_eq!(
        read_error("workers-1252.csv", &workers()),
        "workers-1252.csv: invalid UTF-8 on line 2, at byte offset 138 (byte(s) 0xE9); the file is probably in \
         another encoding: if it comes from Excel on Windows, set encoding = \"windows-1252\" for this source"
    );
}

#[test]
fn invalid_utf8_deep_in_the_file_is_located_exactly() {
    let mut bytes = b"Employee_ID,Hire_Date\n".to_vec();
    for i in 0..5000 {
        bytes.extend(format!("{i:05},2026-01-01\n").as_bytes());
    }
    let offset = bytes.len() + 3;
    bytes.extend(b"123\xFC4,2026-01-01\n");
    let config = config("Employee_ID", &[("hire_date", "Hire_Date")]);
    let error = read_csv_from(&config, bytes.as_slice(), "export.csv").unwrap_err();
    assert!(
        matches!(error, Error::Undecodable { line: 5002, byte_offset, .. } if byte_offset == offset as u64),
        "{error:?}, expected line 5002 and byte offset {offset}"
    );
}

#[test]
fn dates_parse_strictly_in_the_configured_format() {
    let mut config = config(
        "Employee_ID",
        &[
            ("given_name", "Name"),
            ("hire_date", "Hire_Date"),
            ("last_day", "Termination_Date"),
            ("contract_end", "Contract_End"),
        ],
    );
    config.date_format = "%d.%m.%Y".to_string();
    config.date_attributes = vec!["contract_end".to_string()];
    assert_eq!(
        read("dates-dotted.csv", &config),
        r#"rows_seen 6 complete true
line 2 row 1 "1": affiliation="employee" contract_end=2027-06-30 given_name="Anna" hire_date=2019-04-01 last_day=2026-12-31
line 3 row 2 held Some("2"): hire_date (column "Hire_Date"): "30.02.2026" is not a valid date; expected the format %d.%m.%Y, e.g. 31.12.2026
line 4 row 3 held Some("3"): hire_date (column "Hire_Date"): "2026-03-01" does not match the date format %d.%m.%Y, e.g. 31.12.2026
line 5 row 4 held Some("4"): hire_date (column "Hire_Date"): "01.02.26" reads as the year 26; expected a four-digit year in the format %d.%m.%Y, e.g. 31.12.2026
line 6 row 5 held Some("5"): contract_end (column "Contract_End"): "2027/06/30" does not match the date format %d.%m.%Y, e.g. 31.12.2026
line 7 row 6 "6": affiliation="employee" given_name="Fay" hire_date=2025-05-15
"#
    );
}

#[test]
fn bad_rows_are_quarantined_with_their_reason_and_the_rest_proceed() {
    let config = SourceConfig { required: vec!["department".to_string()], ..workers() };
    assert_eq!(
        read("bad-rows.csv", &config),
        r#"rows_seen 11 complete true
line 2 row 1 held Some("00042"): key 00042 appears on rows 1 and 8
line 3 row 2 held Some("00043"): expected 9 fields as in the header, found 8; key 00043 appears on rows 2 and 11
line 4 row 3 held None: expected a key in column "Employee_ID", but it is empty
line 5 row 4 held None: expected a key in column "Employee_ID", but it is blank (only whitespace)
line 7 row 5 held Some("00046"): hire_date (column "Hire_Date"): "2026-02-30" is not a valid date; expected the format %Y-%m-%d, e.g. 2026-12-31
line 8 row 6 held Some("00047"): hire_date (column "Hire_Date") is required, but empty
line 9 row 7 held Some("00048"): department (column "Department") is required, but empty; last_day (column "Termination_Date"): "30/11/2026" does not match the date format %Y-%m-%d, e.g. 2026-12-31
line 10 row 8 held Some("00042"): key 00042 appears on rows 1 and 8
line 11 row 9 held Some("00049"): expected 9 fields as in the header, found 10
line 12 row 10 "00050": affiliation="employee" department="Sales" family_name="Costa" given_name="Ines" hire_date=2023-08-01 manager="00042" office="Lisbon" status="Active"
line 13 row 11 held Some("00043"): key 00043 appears on rows 2 and 11
"#
    );
}

#[test]
fn a_last_row_cut_short_is_held_and_the_read_is_not_complete() {
    assert_eq!(
        read("truncated-short.csv", &workers()),
        r#"rows_seen 2 complete false
line 2 row 1 "00042": affiliation="employee" department="Engineering" family_name="Müller" given_name="Anna" hire_date=2019-04-01 office="Berlin" status="Active"
line 3 row 2 held Some("00043"): expected 9 fields as in the header, found 6: the file ends in the middle of this row, so it may be truncated
"#
    );
}

#[test]
fn a_file_ending_inside_quotes_is_held_and_the_read_is_not_complete() {
    assert_eq!(
        read("truncated-quote.csv", &workers()),
        r#"rows_seen 2 complete false
line 2 row 1 "00042": affiliation="employee" department="Engineering" family_name="Müller" given_name="Anna" hire_date=2019-04-01 office="Berlin" status="Active"
line 3 row 2 held Some("00043"): a quoted value opened on line 3 in field 9 ("Office") is never closed: expected a closing quote, found the end of the file (line 4); the file may be truncated, or a quote is missing
"#
    );
}

#[test]
fn a_missing_or_renamed_column_fails_the_read_naming_it() {
    assert_eq!(
        read_error("renamed-column.csv", &workers()),
        r#"renamed-column.csv: the header lacks column "Hire_Date" (for hire_date; renamed to "HireDate"?), column "Office" (for office); the header has 8 columns: "Employee_ID", "Preferred_First_Name", "Legal_Last_Name", "HireDate", "Termination_Date", "Worker_Status", "Department", "Manager_Employee_ID""#
    );
}

#[test]
fn a_missing_key_column_fails_the_read() {
    let config = SourceConfig { key: "Worker_ID".to_string(), ..workers() };
    let error = read_error("workers.csv", &config);
    assert!(error.starts_with(r#"workers.csv: the header lacks column "Worker_ID" (for the key); the header has 9 columns: "Employee_ID", "#), "{error}");
}

#[test]
fn semicolons_read_with_the_semicolon_delimiter() {
    let config = SourceConfig { delimiter: ';', ..workers() };
    assert_eq!(
        read("semicolon.csv", &config),
        r#"rows_seen 2 complete true
line 2 row 1 "00042": affiliation="employee" department="Research, Development" family_name="Müller" given_name="Anna" hire_date=2019-04-01 office="Berlin" status="Active"
line 3 row 2 "00043": affiliation="employee" department="Sales" family_name="Østergaard" given_name="Björn" hire_date=2021-09-15 last_day=2026-11-30 manager="00042" office="Aarhus; DK" status="Active"
"#
    );
}

#[test]
fn semicolons_read_with_a_comma_fail_naming_every_column_and_the_likely_delimiter() {
    assert_eq!(
        read_error("semicolon.csv", &workers()),
        r#"semicolon.csv: the header lacks column "Employee_ID" (for the key), column "Department" (for department), column "Legal_Last_Name" (for family_name), column "Preferred_First_Name" (for given_name), column "Hire_Date" (for hire_date), column "Termination_Date" (for last_day), column "Manager_Employee_ID" (for manager), column "Office" (for office), column "Worker_Status" (for status); the header has 1 column: "Employee_ID;Preferred_First_Name;Legal_Last_Name;Hire_Date;Termination_Date;Worker_Status;Department;Manager_Employee_ID;Office"; the header is a single column containing ';': is the file delimited by ';' (delimiter = ";")?"#
    );
}

#[test]
fn a_configured_column_twice_in_the_header_fails_the_read() {
    assert_eq!(
        read_error("duplicate-header.csv", &workers()),
        r#"duplicate-header.csv: column "Department" appears 2 times (columns 7 and 10); expected each column the configuration uses to appear once, so its value is not ambiguous"#
    );
}

#[test]
fn an_empty_file_has_no_header() {
    assert_eq!(read_error("empty.csv", &workers()), "empty.csv is empty: expected a header row naming the columns");
    let error = read_csv_from(&workers(), "\r\n\n".as_bytes(), "blank.csv").unwrap_err();
    assert!(matches!(error, Error::NoHeader { .. }), "{error:?}");
}

#[test]
fn a_header_only_file_is_a_complete_read_of_nobody() {
    assert_eq!(read("header-only.csv", &workers()), "rows_seen 0 complete true\n");
}

#[test]
fn a_missing_file_fails_naming_the_path() {
    let path = fixtures().join("no-such-export.csv");
    let error = read_csv(&workers(), &path).unwrap_err();
    assert!(matches!(&error, Error::Open { path: p, .. } if *p == path), "{error:?}");
    assert!(error.to_string().starts_with(&format!("cannot open {}: ", path.display())), "{error}");
}

#[test]
fn an_affiliation_column_replaces_the_configured_affiliation_and_an_empty_one_falls_back_to_it() {
    let mut config = config("Id", &[("given_name", "Name"), ("hire_date", "Start"), ("affiliation", "Kind")]);
    config.affiliation = "student".to_string();
    assert_eq!(
        read("contractors.csv", &config),
        r#"rows_seen 2 complete true
line 2 row 1 "C-1": affiliation="contractor" given_name="Ola" hire_date=2026-01-05
line 3 row 2 "C-2": affiliation="student" given_name="Per" hire_date=2026-01-05
"#
    );
    config.columns.remove("affiliation");
    assert_eq!(
        read("contractors.csv", &config),
        r#"rows_seen 2 complete true
line 2 row 1 "C-1": affiliation="student" given_name="Ola" hire_date=2026-01-05
line 3 row 2 "C-2": affiliation="student" given_name="Per" hire_date=2026-01-05
"#
    );
}

#[test]
fn blank_lines_are_skipped_but_counted_in_line_numbers() {
    let config = config("Id", &[("hire_date", "Start")]);
    assert_eq!(
        read_bytes(b"\n\r\nId,Start\r\n\r\n1,2026-01-05\n\n\n2,\"2026-01-06\"\n", &config),
        r#"rows_seen 2 complete true
line 5 row 1 "1": affiliation="employee" hire_date=2026-01-05
line 8 row 2 "2": affiliation="employee" hire_date=2026-01-06
"#
    );
}

#[test]
fn a_field_over_one_mebibyte_holds_its_row_without_keeping_the_field() {
    let config = config("Id", &[("hire_date", "Start"), ("notes", "Notes")]);
    let mut bytes = b"Id,Start,Notes\n1,2026-01-05,\"".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', (1 << 20) + 1));
    bytes.extend(b"\"\n2,2026-01-06,short\n");
    assert_eq!(
        read_bytes(&bytes, &config),
        r#"rows_seen 2 complete true
line 2 row 1 held Some("1"): field 3 ("Notes") is 1048577 bytes long; expected at most 1048576 bytes (1 MiB)
line 3 row 2 "2": affiliation="employee" hire_date=2026-01-06 notes="short"
"#
    );
}

#[test]
fn a_row_too_long_to_hold_fails_the_read_instead_of_exhausting_memory() {
    let config = config("Id", &[("hire_date", "Start")]);
    let endless_quote = b"Id,Start\n1,\"".chain(std::io::repeat(b'x').take(65 << 20));
    let error = read_csv_from(&config, endless_quote, "big.csv").unwrap_err();
    assert_eq!(
        error.to_string(),
        "big.csv: the row starting on line 2 is longer than 64 MiB; expected rows of an HR export (is a quote never closed?)"
    );
}

#[test]
fn a_configuration_the_reader_cannot_follow_fails_before_reading() {
    let messages: Vec<String> = [
        SourceConfig { delimiter: 'é', ..workers() },
        SourceConfig { date_format: "%Y-%m".to_string(), ..workers() },
        SourceConfig { required: vec!["email".to_string(), "affiliation".to_string()], ..workers() },
        config("Employee_ID", &[("given_name", "Preferred_First_Name")]),
    ]
    .iter()
    .map(|config| read_csv_from(config, std::io::empty(), "unread.csv").unwrap_err().to_string())
    .collect();
    assert_eq!(
        messages,
        [
            r#"source hr: delimiter 'é' cannot be used; expected one ASCII character other than a quote or a line break, such as ",", ";" or "\t""#,
            r#"source hr: date_format "%Y-%m" does not describe a date with year, month and day; expected a chrono strftime format such as "%Y-%m-%d" or "%d.%m.%Y""#,
            r#"source hr: required attribute(s) "email" not mapped to a column; add them to [source.columns]"#,
            r#"source hr: required attribute(s) "hire_date" not mapped to a column; add them to [source.columns]"#,
        ]
    );
}

#[test]
fn line_numbers_are_exact_with_any_line_breaks_blank_lines_and_quoted_line_breaks() {
    let config = config("Id", &[("hire_date", "Start"), ("notes", "Notes")]);
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..500 {
        let line_break: &[u8] = [&b"\n"[..], b"\r\n", b"\r"][random.below(3)];
        let mut bytes = Vec::new();
        let mut line = 1;
        let push_line_break = |bytes: &mut Vec<u8>, line: &mut u64| {
            bytes.extend(line_break);
            *line += 1;
        };
        for _ in 0..random.below(3) {
            push_line_break(&mut bytes, &mut line);
        }
        bytes.extend(b"Id,Start,Notes");
        push_line_break(&mut bytes, &mut line);
        let rows = random.below(8);
        let mut expected = Vec::new();
        for row in 0..rows {
            for _ in 0..random.below(2) {
                push_line_break(&mut bytes, &mut line);
            }
            expected.push(line);
            bytes.extend(format!("{row},2026-01-05,\"").as_bytes());
            for _ in 0..random.below(5) {
                match random.below(4) {
                    0 => push_line_break(&mut bytes, &mut line),
                    1 => bytes.extend(b"\"\""),
                    2 => bytes.push(b','),
                    _ => bytes.push(b'x'),
                }
            }
            bytes.push(b'"');
            if row + 1 < rows || random.below(2) == 0 {
                push_line_break(&mut bytes, &mut line);
            }
        }
        let read = read_csv_from(&config, bytes.as_slice(), "export.csv").unwrap();
        let lines: Vec<u64> = read.records.iter().map(|record| record.location.line).collect();
        let shown = String::from_utf8_lossy(&bytes);
        assert_eq!((lines, read.quarantined.len(), read.complete), (expected, 0, true), "{shown:?}");
    }
}

#[test]
fn arbitrary_bytes_never_panic_and_every_row_is_accounted_for() {
    let pieces: [&[u8]; 16] = [
        b"\"",
        b",",
        b"\r",
        b"\n",
        b";",
        b"\xE9",
        b"\xC3",
        b"\xA9",
        b"\xEF\xBB\xBF",
        b"\xFF\xFE",
        b"\0",
        b" ",
        b"x",
        b"00042",
        b"2026-02-30",
        b"Id,Start\n",
    ];
    let config = config("Id", &[("hire_date", "Start")]);
    let mut random = XorShift(42);
    for case in 0..5000 {
        let mut bytes = if case % 2 == 0 { b"Id,Start\n".to_vec() } else { Vec::new() };
        for _ in 0..random.below(40) {
            bytes.extend(pieces[random.below(pieces.len())]);
        }
        for encoding in [TextEncoding::Utf8, TextEncoding::Windows1252] {
            let config = SourceConfig { encoding, ..config.clone() };
            if let Ok(read) = read_csv_from(&config, bytes.as_slice(), "export.csv") {
                let mut lines: Vec<(u64, u64)> =
                    read.records.iter().map(|r| (r.location.row, r.location.line)).collect();
                lines.extend(read.quarantined.iter().map(|q| (q.location.row, q.location.line)));
                lines.sort_unstable();
                let rows: Vec<u64> = lines.iter().map(|(row, _)| *row).collect();
                // Every row that is not all-empty is a record or quarantined, once: rows of empty
                // fields are skipped and not counted.
                assert_eq!(rows.len() as u64, read.rows_seen, "{bytes:?}");
                assert!(rows.windows(2).all(|pair| pair[0] < pair[1]), "{bytes:?}: {rows:?}");
                assert!(lines.windows(2).all(|pair| pair[0].1 < pair[1].1), "{bytes:?}: {lines:?}");
            }
        }
    }
}

#[test]
fn rows_of_empty_fields_that_spreadsheets_append_are_skipped_and_not_counted() {
    let text = "Employee_ID,Preferred_First_Name,Hire_Date\n1,Ann,2020-01-01\n,,\n , ,\n2,Bob,2020-01-01\n,,\n";
    let config = config("Employee_ID", &[("given_name", "Preferred_First_Name"), ("hire_date", "Hire_Date")]);
    assert_eq!(
        read_bytes(text.as_bytes(), &config),
        r#"rows_seen 2 complete true
line 2 row 1 "1": affiliation="employee" given_name="Ann" hire_date=2020-01-01
line 5 row 4 "2": affiliation="employee" given_name="Bob" hire_date=2020-01-01
"#
    );
}

/// A Workday-style effective-dated export: past, current and future versions of a worker, and
/// concurrent appointments of another, read with `effective_date` and `primary`. The reader keeps
/// every row; the planner's choice for a day (`roster_core::effective::choose`) keeps the version
/// in effect and the primary appointment, and quarantines only what the rule cannot tell apart.
#[test]
fn effective_dated_rows_are_versions_and_appointments_not_duplicates() {
    let csv = "\
Employee_ID,First,Hire,Title,Effective,Primary
100,Ada,2020-01-01,Engineer,2020-01-01,Y
100,Ada,2020-01-01,Senior Engineer,2026-03-01,Y
100,Ada,2020-01-01,Lead Engineer,2026-09-01,Y
200,Grace,2021-05-01,Lecturer,2021-05-01,N
200,Grace,2021-05-01,Researcher,2021-05-01,Y
300,Alan,2022-02-01,Analyst,2022-02-01,
300,Alan,2022-02-01,Statistician,2022-02-01,
";
    let config = SourceConfig {
        effective_date: Some("effective".to_string()),
        primary: Some("primary".to_string()),
        ..config(
            "Employee_ID",
            &[
                ("given_name", "First"),
                ("hire_date", "Hire"),
                ("title", "Title"),
                ("effective", "Effective"),
                ("primary", "Primary"),
            ],
        )
    };
    let read = read_csv_from(&config, csv.as_bytes(), "export.csv").unwrap();
    assert_eq!((read.records.len(), read.quarantined.len()), (7, 0), "the reader keeps every row");

    let today = chrono::NaiveDate::from_ymd_opt(2026, 4, 15).unwrap();
    let mut notices = Vec::new();
    let chosen = roster_core::effective::choose(std::slice::from_ref(&config), &read, today, &mut notices);
    assert_eq!(
        rendered(Ok(chosen.into_owned()), "export.csv"),
        r#"rows_seen 7 complete true
line 3 row 2 "100": affiliation="employee" effective=2026-03-01 given_name="Ada" hire_date=2020-01-01 primary="Y" title="Senior Engineer"
line 6 row 5 "200": affiliation="employee" effective=2021-05-01 given_name="Grace" hire_date=2021-05-01 primary="Y" title="Researcher"
line 7 row 6 held Some("300"): key 300 appears on rows 6, 7: 2 rows are in effect and none is marked primary in primary
line 8 row 7 held Some("300"): key 300 appears on rows 6, 7: 2 rows are in effect and none is marked primary in primary
"#
    );
    let upcoming: Vec<&str> = notices.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(upcoming, ["source hr: a version effective 2026-09-01 follows (row 3); row 2 is in effect now"]);
}

/// An export longer than the batches the rows are checked in, on a thread of their own: every
/// record and every held row comes back in the file's order, with its own row number.
#[test]
fn a_long_export_reads_in_order_across_the_checked_batches() {
    let mut text = String::from(
        "Employee_ID,Preferred_First_Name,Legal_Last_Name,Hire_Date,Termination_Date,Worker_Status,Department,Manager_Employee_ID,Office\n",
    );
    for n in 1..=10_000u64 {
        if n == 5_000 {
            text.push_str(&format!("{n:05},Short,Row\n"));
            continue;
        }
        let hire = if n % 997 == 0 { "" } else { "2020-01-01" };
        text.push_str(&format!("{n:05},Given{n},Family{n},{hire},,Active,Dept,,Office\n"));
    }
    let read = read_csv_from(&workers(), text.as_bytes(), "export.csv").unwrap();
    assert_eq!(read.rows_seen, 10_000);
    let held_rows: Vec<u64> = (1..=10_000).filter(|n| n % 997 == 0 || *n == 5_000).collect();
    assert_eq!(read.quarantined.iter().map(|q| q.location.row).collect::<Vec<_>>(), held_rows);
    assert!(read.quarantined.iter().all(|q| q.key == Some(format!("{:05}", q.location.row))));
    let rows: Vec<u64> = read.records.iter().map(|r| r.location.row).collect();
    assert_eq!(rows, (1..=10_000).filter(|n| !held_rows.contains(n)).collect::<Vec<_>>());
    assert!(
        read.records.iter().all(|r| r.key == format!("{:05}", r.location.row) && r.location.line == r.location.row + 1)
    );
}
