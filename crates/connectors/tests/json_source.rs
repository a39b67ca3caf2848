//! The JSON and JSON Lines source against real files (`tests/fixtures/json/`), shaped as Workday
//! and SuccessFactors write them among others: each test reads one and compares every record and
//! quarantined row, rendered one per line, with what it must be.

mod source_support;

use std::io::Read;

use roster_connectors::error::Error;
use roster_connectors::source::json::{read_json, read_json_from};
use roster_core::config::{SourceConfig, SourceKind, TextEncoding};
use source_support::{Fixtures, WORKER_COLUMNS, XorShift, assert_accounted_for, rendered, source};

const JSON: Fixtures = Fixtures { kind: "json", read: read_json };

fn json(key: &str, columns: &[(&str, &str)]) -> SourceConfig {
    source(SourceKind::Json, "workers.json", key, columns)
}

fn jsonl(key: &str, columns: &[(&str, &str)]) -> SourceConfig {
    source(SourceKind::Jsonl, "workers.jsonl", key, columns)
}

/// The configuration of `workers.jsonl` and its variants.
fn lines() -> SourceConfig {
    jsonl(
        "Employee_ID",
        &[
            ("given_name", "Name"),
            ("hire_date", "Hire_Date"),
            ("last_day", "Termination_Date"),
            ("department", "Department"),
        ],
    )
}

/// The configuration of the Workday report: names in nested objects.
fn workday() -> SourceConfig {
    let mut config = json(
        "Employee_ID",
        &[
            ("given_name", "Worker.Legal_Name.First"),
            ("family_name", "Worker.Legal_Name.Last"),
            ("hire_date", "Hire_Date"),
            ("last_day", "Termination_Date"),
            ("status", "Worker_Status"),
            ("department", "Supervisory_Organization"),
            ("manager", "Manager_ID"),
            ("fte", "FTE"),
        ],
    );
    config.records = Some("Report_Entry".to_string());
    config
}

fn read_bytes(bytes: &[u8], config: &SourceConfig) -> String {
    rendered(read_json_from(config, bytes, "export.json"), "export.json")
}

const WORKERS: &str = r#"rows_seen 4 complete true
line 2 row 1 "00042": affiliation="employee" department="Engineering" family_name="Müller" given_name="Anna" hire_date=2019-04-01 office="Berlin, Mitte" status="Active"
line 13 row 2 "00043": affiliation="employee" department="Sales \"EMEA\"" family_name="Østergaard" given_name="Björn" hire_date=2021-09-15 last_day=2026-11-30 manager="00042" office="Building 7\nFloor 3" status="Active"
line 24 row 3 "00044": affiliation="employee" department="Finance" given_name="Chloé" hire_date=2026-07-01 manager="00042"
line 25 row 4 "0045": affiliation="employee" department="Engineering" family_name="Sørensen" given_name="Dmitri" hire_date=2024-01-08 manager="00042" office="Hamburg" status="Active"
"#;

#[test]
fn an_array_of_objects_reads_as_its_csv_export_does_with_the_line_each_record_starts_on() {
    assert_eq!(JSON.read("workers.json", &json("Employee_ID", &WORKER_COLUMNS)), WORKERS);
}

#[test]
fn a_utf16_document_reads_as_utf8_does() {
    let text = std::fs::read_to_string(JSON.path("workers.json")).unwrap();
    let mut bytes = vec![0xFE, 0xFF];
    bytes.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    assert_eq!(read_bytes(&bytes, &json("Employee_ID", &WORKER_COLUMNS)).replace("export.json", ""), WORKERS);
}

#[test]
fn a_utf8_bom_is_skipped() {
    assert_eq!(
        JSON.read("bom.json", &json("Employee_ID", &[("given_name", "Name"), ("hire_date", "Hire_Date")])),
        r#"rows_seen 1 complete true
line 1 row 1 "00042": affiliation="employee" given_name="Anna" hire_date=2019-04-01
"#
    );
}

#[test]
fn a_workday_report_reads_nested_names_and_holds_each_hazard_with_its_reason() {
    assert_eq!(
        JSON.read("workday.json", &workday()),
        r#"rows_seen 11 complete true
line 3 row 1 held Some("21001"): key 21001 appears on rows 1 and 9
line 12 row 2 "21002": affiliation="employee" department="Sales" family_name="Østergaard" fte="0.8" given_name="Björn" hire_date=2021-09-15 last_day=2026-11-30 status="Terminated"
line 21 row 3 held Some("21003"): department (column "Supervisory_Organization"): expected text, found an object with keys "Descriptor", "ID"; map one of its fields with a dotted column such as "Supervisory_Organization.Descriptor"; hire_date (column "Hire_Date"): "2026-02-30" is not a valid date; expected the format %Y-%m-%d, e.g. 2026-12-31
line 27 row 4 held Some("21004"): department (column "Supervisory_Organization"): expected text, found an array of 2 values; hire_date (column "Hire_Date"): "01/08/2024" does not match the date format %Y-%m-%d, e.g. 2026-12-31
line 33 row 5 held None: expected a key in column "Employee_ID", but it is missing from the record
line 37 row 6 held None: expected a key in column "Employee_ID", but it is empty
line 42 row 7 held Some("21007"): hire_date (column "Hire_Date") is required, but missing from the record
line 47 row 8 held Some("21008"): family_name (column "Worker.Legal_Name.Last"): expected text, found "Worker" holding the text "Hugo Blanc" instead of an object with "Legal_Name.Last"; given_name (column "Worker.Legal_Name.First"): expected text, found "Worker" holding the text "Hugo Blanc" instead of an object with "Legal_Name.First"
line 53 row 9 held Some("21001"): key 21001 appears on rows 1 and 9
line 59 row 10 held None: expected a JSON object (one record), found the text "21010"
line 60 row 11 "21011": affiliation="employee" department="Sales" hire_date=2023-08-01 status="true"
"#
    );
}

#[test]
fn successfactors_odata_reads_date_milliseconds_whatever_the_date_format() {
    let mut config = json(
        "userId",
        &[
            ("hire_date", "startDate"),
            ("last_day", "endDate"),
            ("department", "jobInfoNav.department"),
            ("manager", "jobInfoNav.managerId"),
            ("note", "customString1"),
        ],
    );
    config.records = Some("d.results".to_string());
    config.date_format = "%d.%m.%Y".to_string();
    assert_eq!(
        JSON.read("successfactors.json", &config),
        r#"rows_seen 4 complete true
line 4 row 1 "00042": affiliation="employee" department="Engineering" hire_date=2019-04-01 manager="NO_MANAGER" note="/Date(1767225600000)/"
line 14 row 2 "00043": affiliation="employee" department="Sales" hire_date=2026-01-01 last_day=2026-12-31 manager="00042"
line 21 row 3 held Some("00044"): hire_date (column "startDate"): "2026-07-01" does not match the date format %d.%m.%Y, e.g. 31.12.2026; last_day (column "endDate"): "/Date(253402300800000)/" is not a date between the years 1000 and 9999
line 28 row 4 held Some("00045"): hire_date (column "startDate"): "/Date(1767225600000" does not match the date format %d.%m.%Y, e.g. 31.12.2026
"#
    );
}

#[test]
fn records_not_where_configured_fail_the_read_suggesting_where_they_are() {
    let messages: Vec<String> = [
        ("workday.json", None),
        ("workday.json", Some("Report_Entries")),
        ("successfactors.json", Some("d.result")),
        ("successfactors.json", Some("d.__next")),
        ("successfactors.json", Some("d.__next.page")),
    ]
    .into_iter()
    .map(|(file, records)| JSON.error(file, &SourceConfig { records: records.map(str::to_string), ..workday() }))
    .collect();
    assert_eq!(
        messages,
        [
            r#"workday.json: expected the document to be an array of records, found an object with key "Report_Entry"; the records are probably at "Report_Entry": set records = "Report_Entry""#,
            r#"workday.json: expected an array of records at "Report_Entries" (records), found no "Report_Entries" in the document; the records are probably at "Report_Entry": set records = "Report_Entry""#,
            r#"successfactors.json: expected an array of records at "d.result" (records), found no "result" in "d"; the records are probably at "d.results": set records = "d.results""#,
            r#"successfactors.json: expected an array of records at "d.__next" (records), found the text "https://api.example.successfactors.eu/odata/v2/EmpEmployment?$sk…"; the records are probably at "d.results": set records = "d.results""#,
            r#"successfactors.json: expected an array of records at "d.__next.page" (records), found the text "https://api.example.successfactors.eu/odata/v2/EmpEmployment?$sk…" at "d.__next"; the records are probably at "d.results": set records = "d.results""#,
        ]
    );
}

#[test]
fn a_document_that_does_not_parse_fails_the_read_with_line_and_column() {
    assert_eq!(
        JSON.error("broken.json", &workday()),
        "broken.json:4:29: the document is not valid JSON: expected `,` or `}`"
    );
    assert_eq!(
        JSON.error("truncated.json", &workday()),
        "truncated.json:3:50: the document is not valid JSON: EOF while parsing a string"
    );
}

#[test]
fn json_lines_hold_each_bad_line_with_its_number_and_the_rest_proceed() {
    assert_eq!(
        JSON.read("workers.jsonl", &lines()),
        r#"rows_seen 10 complete true
line 1 row 1 held Some("00042"): key 00042 appears on rows 1 and 9
line 3 row 2 "43": affiliation="employee" given_name="Björn" hire_date=2021-09-15 last_day=2026-11-30
line 4 row 3 held None: expected a JSON object (one record), but the line is not valid JSON: trailing comma (column 70)
line 5 row 4 held None: expected a JSON object (one record), found an array of 3 values
line 7 row 5 held Some("00046"): hire_date (column "Hire_Date"): "30.02.2026" does not match the date format %Y-%m-%d, e.g. 2026-12-31
line 8 row 6 held Some("00047"): given_name (column "Name"): expected text, found an object with key "Given"; map one of its fields with a dotted column such as "Name.Given"
line 9 row 7 held Some("00048"): hire_date (column "Hire_Date") is required, but empty
line 10 row 8 held None: expected a JSON object (one record), but the line is not valid JSON: trailing characters (column 69)
line 11 row 9 held Some("00042"): key 00042 appears on rows 1 and 9
line 12 row 10 "00050": affiliation="employee" department="Sales" given_name="Ines" hire_date=2023-08-01
"#
    );
}

#[test]
fn a_last_line_cut_short_is_held_and_the_read_is_not_complete() {
    assert_eq!(
        JSON.read("truncated.jsonl", &lines()),
        r#"rows_seen 2 complete false
line 1 row 1 "00042": affiliation="employee" given_name="Anna" hire_date=2019-04-01
line 2 row 2 held None: expected a JSON object (one record), but the line is not valid JSON: EOF while parsing a string (column 36); the file ends in the middle of this line, so it may be truncated
"#
    );
}

#[test]
fn windows_1252_lines_decode_when_configured_and_fail_as_utf8_with_a_suggestion() {
    let config = SourceConfig {
        encoding: TextEncoding::Windows1252,
        ..jsonl("Employee_ID", &[("given_name", "Name"), ("hire_date", "Hire_Date"), ("office", "Office")])
    };
    assert_eq!(
        JSON.read("workers-1252.jsonl", &config),
        r#"rows_seen 2 complete true
line 1 row 1 "00050": affiliation="employee" given_name="Renée Weiß" hire_date=2020-02-01 office="Zürich €-Büro"
line 2 row 2 "00051": affiliation="employee" given_name="Šimková" hire_date=2022-03-01
"#
    );
    assert_eq!(
        JSON.error("workers-1252.jsonl", &SourceConfig { encoding: TextEncoding::Utf8, ..config }),
        "workers-1252.jsonl: invalid UTF-8 on line 1, at byte offset 37 (byte(s) 0xE9); the file is probably in another \
         encoding: if it comes from Excel on Windows, set encoding = \"windows-1252\" for this source"
    );
}

#[test]
fn utf16_lines_fail_the_read_asking_for_utf8() {
    let bytes = [0xFF, 0xFE, b'{', 0, b'}', 0];
    let error = read_json_from(&lines(), bytes.as_slice(), "export.jsonl").unwrap_err();
    assert_eq!(
        error.to_string(),
        "export.jsonl: found a UTF-16LE byte-order mark; expected UTF-8 or Windows-1252: save the file as UTF-8"
    );
}

#[test]
fn a_missing_file_fails_naming_the_path() {
    JSON.assert_missing_file_fails(&lines());
}

#[test]
fn a_line_too_long_to_hold_fails_the_read_instead_of_exhausting_memory() {
    let endless = b"{\"Employee_ID\": \"1\"}\n{\"Name\": \"".chain(std::io::repeat(b'x').take(65 << 20));
    let error = read_json_from(&lines(), endless, "big.jsonl").unwrap_err();
    assert_eq!(error.to_string(), "big.jsonl: line 2 is longer than 64 MiB; expected one record per line");
}

#[test]
fn arbitrary_bytes_never_panic_and_every_line_is_accounted_for() {
    let pieces: [&[u8]; 18] = [
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"\n",
        b"\r\n",
        b"\xE9",
        b"\xEF\xBB\xBF",
        b"null",
        b" ",
        b"\"Id\"",
        b"\"Start\"",
        b"\"2026-02-30\"",
        b"\"/Date(1767225600000)/\"",
        b"{\"Id\": \"00042\", \"Start\": \"2026-01-05\"}\n",
    ];
    let mut random = XorShift(42);
    for case in 0..5000 {
        let mut bytes = Vec::new();
        for _ in 0..random.below(40) {
            bytes.extend(pieces[random.below(pieces.len())]);
        }
        for (kind, encoding) in [
            (SourceKind::Jsonl, TextEncoding::Utf8),
            (SourceKind::Jsonl, TextEncoding::Windows1252),
            (SourceKind::Json, TextEncoding::Utf8),
        ] {
            let config = SourceConfig {
                encoding,
                records: (case % 3 == 0 && kind == SourceKind::Json).then(|| "Report_Entry".to_string()),
                ..source(kind, "export", "Id", &[("hire_date", "Start")])
            };
            if let Ok(read) = read_json_from(&config, bytes.as_slice(), "export") {
                assert_accounted_for(&read, &String::from_utf8_lossy(&bytes));
            }
        }
    }
}

#[test]
fn an_empty_array_is_a_complete_read_of_nobody() {
    let config = json("Id", &[("hire_date", "Start")]);
    assert_eq!(read_bytes(b"[]", &config), "rows_seen 0 complete true\n");
    let config = SourceConfig { records: Some("d.results".to_string()), ..config };
    assert_eq!(read_bytes(br#"{"d": {"results": []}}"#, &config), "rows_seen 0 complete true\n");
}

#[test]
fn numbers_read_as_text_exactly_and_keys_keep_their_leading_zeros() {
    let config = jsonl("Id", &[("hire_date", "Start"), ("cost_center", "Cost_Center")]);
    let text = concat!(
        r#"{"Id": 42, "Start": "2026-01-05", "Cost_Center": 4711.0}"#,
        "\n",
        r#"{"Id": "00043", "Start": "2026-01-05", "Cost_Center": 0.25}"#,
        "\n",
        r#"{"Id": 18446744073709551615, "Start": "2026-01-05", "Cost_Center": -7}"#,
        "\n",
        r#"{"Id": 1e300, "Start": "2026-01-05"}"#,
        "\n",
    );
    assert_eq!(
        read_bytes(text.as_bytes(), &config),
        r#"rows_seen 4 complete true
line 1 row 1 "42": affiliation="employee" cost_center="4711" hire_date=2026-01-05
line 2 row 2 "00043": affiliation="employee" cost_center="0.25" hire_date=2026-01-05
line 3 row 3 "18446744073709551615": affiliation="employee" cost_center="-7" hire_date=2026-01-05
line 4 row 4 held None: expected a key in column "Id", but found the number 1e300, too large to hold an ID exactly; store the IDs as text
"#
    );
}

#[test]
fn invalid_utf8_in_a_document_fails_the_read_with_its_line_and_offset() {
    let bytes = b"[\n{\"Id\": \"1\", \"Start\": \"2026-01-05\"},\n{\"Id\": \"2\xFF\"}]";
    let error = read_json_from(&json("Id", &[("hire_date", "Start")]), bytes.as_slice(), "export.json").unwrap_err();
    assert!(matches!(error, Error::Undecodable { line: 3, byte_offset: 47, .. }), "{error:?}");
}

#[test]
fn a_value_over_one_mebibyte_holds_its_record_naming_the_column() {
    let config = jsonl("Id", &[("hire_date", "Start"), ("notes", "Notes")]);
    let long = "x".repeat((1 << 20) + 1);
    let text = format!(
        "{{\"Id\": \"1\", \"Start\": \"2026-01-05\", \"Notes\": \"{long}\"}}\n{{\"Id\": \"2\", \"Start\": \"2026-01-06\"}}\n"
    );
    assert_eq!(
        read_bytes(text.as_bytes(), &config),
        r#"rows_seen 2 complete true
line 1 row 1 held Some("1"): column "Notes" is 1048577 bytes long; expected at most 1048576 bytes (1 MiB)
line 2 row 2 "2": affiliation="employee" hire_date=2026-01-06
"#
    );
}
