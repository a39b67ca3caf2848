//! The SQL source against real PostgreSQL and MariaDB servers (the testkit's private instances)
//! and a SQLite file: the same HR table with the same hazards in each, every type each database
//! hands over, a deleted row noticed by the next full read, and the failures that must stop the
//! whole read (without ever showing the password). One test function per database, so each server
//! starts once.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDateTime;

use roster_connectors::error::Error;
use roster_connectors::source::sql::{SqlRead, SqlReadOptions, read_sql, read_sql_with};
use roster_core::config::SourceConfig;
use roster_core::source::{FieldValue, SourceRead};
use roster_testkit::{MariaDb, Postgres};
use secrecy::SecretString;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

/// A SQL source named `hr`; `rest` adds `query`, `key`, ... and ends with its `[columns]`.
fn config(rest: &str) -> SourceConfig {
    let text = format!("name = \"hr\"\nkind = \"sql\"\nurl = \"env:HR_DATABASE_URL\"\ncomplete = true\n{rest}");
    toml::from_str(&text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

/// The HR table's source: every hazard column mapped.
fn workers(query: &str) -> SourceConfig {
    config(&format!(
        "query = '''{query}'''\n\
         key = \"employee_id\"\n\
         date_attributes = [\"contract_end\"]\n\
         [columns]\n\
         badge = \"badge\"\n\
         given_name = \"given_name\"\n\
         family_name = \"family_name\"\n\
         hire_date = \"hire_date\"\n\
         last_day = \"last_day\"\n\
         contract_end = \"contract_end\"\n\
         department = \"department\"\n"
    ))
}

const WORKER_COLUMNS: &str =
    "employee_id, badge, given_name, family_name, hire_date, last_day, contract_end, department";

fn select_workers() -> String {
    format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY seq")
}

/// The rows of the HR table, in every database: `last_day` of 00043 is 2026-12-01 01:30 at +02:00,
/// which is 2026-11-30 in UTC; each database's column types are its own.
const WORKER_ROWS: &str = "\
    (1, '00042', 42, 'Zoë', 'Łukasiewicz', '2026-03-01', NULL, '2027-02-28', 'Research'),
    (2, '00043', 43, 'Ana', 'Silva', '2025-01-15', LAST_DAY_OF_ANA, NULL, NULL),
    (3, '00044', 44, 'Bad', 'Date', '2024-05-01', NULL, '31.12.2026', 'Sales'),
    (4, '00045', 45, 'Dup', 'One', '2024-01-01', NULL, NULL, 'Sales'),
    (5, '00045', 46, 'Dup', 'Two', '2024-02-01', NULL, NULL, 'Sales'),
    (6, NULL, 47, 'No', 'Key', '2024-03-01', NULL, NULL, NULL),
    (7, '  00046 ', 48, 'Pad', 'Ded', NULL, NULL, NULL, NULL)";

fn insert_workers(last_day_of_ana: &str) -> String {
    format!(
        "INSERT INTO workers (seq, employee_id, badge, given_name, family_name, hire_date, last_day, contract_end, \
         department) VALUES {};\n",
        WORKER_ROWS.replace("LAST_DAY_OF_ANA", last_day_of_ana)
    )
}

/// Every record, one a line, then every quarantined row.
fn render(read: &SourceRead) -> String {
    let mut out = format!("complete={} rows_seen={}\n", read.complete, read.rows_seen);
    for record in &read.records {
        let attrs: Vec<String> = record
            .attrs
            .iter()
            .map(|(name, value)| match value.to_value() {
                FieldValue::Text(text) => format!("{name}={text}"),
                FieldValue::Date(date) => format!("{name}={date}(date)"),
            })
            .collect();
        let _ = writeln!(out, "{} {}: {}", record.location, record.key, attrs.join(" "));
    }
    for held in &read.quarantined {
        let _ = writeln!(out, "{} held {:?}: {}", held.location, held.key, held.reason);
    }
    out
}

fn secret(url: &str) -> SecretString {
    SecretString::from(url.to_owned())
}

fn within(timeout: Duration) -> SqlReadOptions {
    SqlReadOptions { timeout, ..SqlReadOptions::default() }
}

fn moment(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
}

/// The `changes` table's source, read by the modified column `modified`.
fn changes(query: &str) -> SourceConfig {
    config(&format!("query = \"{query}\"\nkey = \"id\"\n[columns]\ngiven_name = \"name\"\nhire_date = \"hire_date\"\n"))
}

async fn read_changes(url: &str, query: &str, modified: &str, since: Option<&str>) -> SqlRead {
    let options = SqlReadOptions {
        modified_column: Some(modified.to_owned()),
        since: since.map(moment),
        ..SqlReadOptions::default()
    };
    read_sql_with(&changes(query), &secret(url), &options).await.unwrap_or_else(|error| panic!("{error}"))
}

/// Keys and names of a read, its completeness and its watermark.
fn summary(read: &SqlRead) -> String {
    let records: Vec<String> = read
        .read
        .records
        .iter()
        .map(|record| format!("{}={}", record.key, record.attrs.get("given_name").unwrap().to_text()))
        .collect();
    let watermark = read.watermark.map_or("none".to_owned(), |moment| moment.to_string());
    format!("{} complete={} watermark={watermark}", records.join(" "), read.read.complete)
}

/// Full and incremental reads of the `changes` table (`id`, `name`, `hire_date`, a timestamp
/// `updated_at` and a DATE `changed_on`), which `exec` writes to.
async fn assert_incremental_reads(url: &str, exec: impl AsyncFn(&str)) {
    exec(
        "INSERT INTO changes (id, name, hire_date, updated_at, changed_on) VALUES \
          ('001', 'Ann', '2024-01-01', '2026-03-01 08:00:00', '2026-03-01'), \
          ('002', 'Bob', '2024-01-01', '2026-03-02 09:30:00', '2026-03-02'), \
          ('003', 'Cy', '2024-01-01', '2026-03-03 10:45:00', '2026-03-03')",
    )
    .await;
    let query = "SELECT id, name, hire_date, updated_at FROM changes WHERE updated_at >= :since ORDER BY id";
    let full = read_changes(url, query, "updated_at", None).await;
    assert_eq!(summary(&full), "001=Ann 002=Bob 003=Cy complete=true watermark=2026-03-03 10:45:00");

    exec(
        "UPDATE changes SET name = 'Bobby', updated_at = '2026-03-04 11:00:00', changed_on = '2026-03-04' \
          WHERE id = '002'",
    )
    .await;
    exec(
        "INSERT INTO changes (id, name, hire_date, updated_at, changed_on) VALUES \
          ('004', 'Dee', '2024-01-01', '2026-03-05 12:00:00', '2026-03-05')",
    )
    .await;
    exec("DELETE FROM changes WHERE id = '001'").await;

    // The rows changed since the watermark (the one changed at that very moment again); Ann's
    // deletion says nothing in an incremental read, which is never complete.
    let changed = read_changes(url, query, "updated_at", Some("2026-03-03 10:45:00")).await;
    assert_eq!(summary(&changed), "002=Bobby 003=Cy 004=Dee complete=false watermark=2026-03-05 12:00:00");
    let nothing_new = read_changes(url, query, "updated_at", Some("2026-03-05 12:00:01")).await;
    assert_eq!(summary(&nothing_new), " complete=false watermark=2026-03-05 12:00:01", "the watermark stays");
    // A full read with the same query notices that Ann has gone.
    let full = read_changes(url, query, "updated_at", None).await;
    assert_eq!(summary(&full), "002=Bobby 003=Cy 004=Dee complete=true watermark=2026-03-05 12:00:00");

    // A DATE column: the watermark is a day.
    let by_day = "SELECT id, name, hire_date, changed_on FROM changes WHERE changed_on >= :since ORDER BY id";
    let changed = read_changes(url, by_day, "changed_on", Some("2026-03-04 00:00:00")).await;
    assert_eq!(summary(&changed), "002=Bobby 004=Dee complete=false watermark=2026-03-05 00:00:00");

    let without_since = SqlReadOptions { since: Some(moment("2026-03-04 00:00:00")), ..SqlReadOptions::default() };
    let error = read_sql_with(&changes("SELECT * FROM changes"), &secret(url), &without_since).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "source hr: an incremental read needs the query to compare its modified column with :since (e.g. WHERE \
         updated_at >= :since), but the query has no :since"
    );
    let error = read_sql_with(
        &changes("SELECT id, name, hire_date FROM changes"),
        &secret(url),
        &SqlReadOptions { modified_column: Some("updated_at".to_owned()), ..SqlReadOptions::default() },
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().starts_with("source hr: the query returns no column \"updated_at\" (for modified_column)"),
        "{error}"
    );
}

/// What the HR table must read as in every database.
async fn assert_hazards_read_alike(url: &str, delete_00042: impl AsyncFnOnce()) {
    let read = read_sql(&workers(&select_workers()), &secret(url)).await.expect("the read succeeds");
    let rendered = render(&read);
    let lines: Vec<&str> = rendered.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "complete=true rows_seen=7",
            "hr(query):1 (row 1) 00042: affiliation=employee badge=42 contract_end=2027-02-28(date) \
             department=Research family_name=Łukasiewicz given_name=Zoë hire_date=2026-03-01(date)",
            "hr(query):2 (row 2) 00043: affiliation=employee badge=43 family_name=Silva given_name=Ana \
             hire_date=2025-01-15(date) last_day=2026-11-30(date)",
        ],
        "{rendered}"
    );
    let held = &lines[3..];
    assert_eq!(held.len(), 5, "{rendered}");
    let expected = [
        ("hr(query):3 (row 3) held Some(\"00044\"): ", "contract_end (column \"contract_end\")"),
        ("hr(query):4 (row 4) held Some(\"00045\"): ", "key 00045 appears on rows 4 and 5"),
        ("hr(query):5 (row 5) held Some(\"00045\"): ", "key 00045 appears on rows 4 and 5"),
        ("hr(query):6 (row 6) held None: ", "expected a key in column \"employee_id\""),
        ("hr(query):7 (row 7) held Some(\"00046\"): ", "hire_date (column \"hire_date\") is required, but empty"),
    ];
    for (line, (start, reason)) in held.iter().zip(expected) {
        assert!(line.starts_with(start) && line.contains(reason), "expected {start}...{reason}, found:\n{rendered}");
    }
    assert!(held[0].contains("\"31.12.2026\""), "the reason quotes the text: {}", held[0]);

    // An integer key reads as text, without a fraction.
    let by_badge =
        config(&format!("query = '''{}'''\nkey = \"badge\"\n[columns]\nhire_date = \"hire_date\"\n", select_workers()));
    let read = read_sql(&by_badge, &secret(url)).await.expect("the read by badge succeeds");
    let keys: Vec<&str> = read.records.iter().map(|record| record.key.as_str()).collect();
    assert_eq!(keys, ["42", "43", "44", "45", "46", "47"], "{}", render(&read));

    // The next full read notices a deleted row: the person is absent, and the read is complete.
    delete_00042().await;
    let read = read_sql(&workers(&select_workers()), &secret(url)).await.expect("the second read succeeds");
    assert!(read.complete && read.rows_seen == 6, "{}", render(&read));
    assert!(read.records.iter().all(|record| record.key != "00042"), "{}", render(&read));
    assert!(read.records.iter().any(|record| record.key == "00043"), "{}", render(&read));

    // A partial source stays partial even when its read reaches the end.
    let mut partial = workers(&select_workers());
    partial.complete = false;
    assert!(!read_sql(&partial, &secret(url)).await.expect("the partial read succeeds").complete);
}

/// The whole read fails when a configured column is not in the result, naming what it returns.
async fn assert_missing_column_fails_the_read(url: &str) {
    let mut config = workers(&select_workers());
    config.columns.insert("department".to_owned(), "Department_Name".to_owned());
    let error = read_sql(&config, &secret(url)).await.expect_err("a missing column fails the read");
    let message = error.to_string();
    assert!(matches!(error, Error::SqlMissingColumns { .. }), "{message}");
    assert!(
        message.starts_with(
            "source hr: the query returns no column \"Department_Name\" (for department; is it \"department\"?); \
             it returns 8 columns: \"employee_id\", \"badge\""
        ),
        "{message}"
    );

    // A configured column twice in the result is ambiguous: the read fails too.
    let twice = workers(&format!("SELECT {WORKER_COLUMNS}, badge AS department FROM workers"));
    let error = read_sql(&twice, &secret(url)).await.expect_err("a column twice fails the read");
    assert!(matches!(error, Error::DuplicateColumns { .. }), "{error}");
    assert!(
        error.to_string().starts_with("hr(query): column \"department\" appears 2 times (columns 8 and 9)"),
        "{error}"
    );
}

/// Bad SQL, a wrong password, a write, and a query slower than the timeout fail the whole read,
/// and no message holds a password.
async fn assert_failures_are_clear_and_keep_the_password(
    url: &str,
    password: &str,
    wrong_password_url: &str,
    refused_login: &str,
    writing_query: &str,
    slow_query: &str,
) {
    let bad_sql = workers("SELEC employee_id FROM workers");
    let error = read_sql(&bad_sql, &secret(url)).await.expect_err("bad SQL fails the read");
    let message = error.to_string();
    assert!(matches!(error, Error::SqlQuery { rows_read: 0, .. }), "{message}");
    assert!(message.starts_with("source hr: the query against ") && message.contains("syntax"), "{message}");
    assert!(!message.contains(password), "{message}");

    let error = read_sql(&workers(&select_workers()), &secret(wrong_password_url)).await.expect_err("a wrong password");
    let message = error.to_string();
    assert!(matches!(error, Error::SqlConnect { .. }), "{message}");
    assert!(message.contains(refused_login), "{message}");
    assert!(!message.contains("Wr0ng-Passw0rd") && !message.contains(password), "{message}");
    assert!(message.contains("://127.0.0.1:"), "the message names the server: {message}");

    let error = read_sql(&workers(writing_query), &secret(url)).await.expect_err("a source never writes");
    let message = error.to_string();
    assert!(matches!(error, Error::SqlQuery { .. }), "{message}");
    assert!(message.to_lowercase().contains("read"), "the server refuses the write as read-only: {message}");

    let error = read_sql_with(&workers(slow_query), &secret(url), &within(Duration::from_millis(700)))
        .await
        .expect_err("a slow query times out");
    let message = error.to_string();
    assert!(matches!(error, Error::SqlTimeout { .. }), "{message}");
    assert!(message.contains("did not answer within 700 ms while waiting for row 1"), "{message}");
}

#[tokio::test]
async fn postgres_reads_hazards_every_type_a_deletion_and_fails_clearly() {
    let pg = Postgres::start().expect("PostgreSQL starts (run scripts/install-test-deps.sh)");
    pg.psql(&format!(
        "CREATE TABLE workers (seq INTEGER, employee_id VARCHAR(10), badge INTEGER, given_name VARCHAR(50), \
         family_name VARCHAR(50), hire_date DATE, last_day TIMESTAMPTZ, contract_end VARCHAR(20), department TEXT);\n{}",
        insert_workers("'2026-12-01 01:30:00+02'")
    ))
    .unwrap();
    let url = pg.url();
    assert_hazards_read_alike(&url, async || drop(pg.psql("DELETE FROM workers WHERE employee_id = '00042'").unwrap()))
        .await;
    assert_missing_column_fails_the_read(&url).await;

    pg.psql("CREATE TABLE changes (id VARCHAR(5), name TEXT, hire_date DATE, updated_at TIMESTAMP, changed_on DATE)")
        .unwrap();
    assert_incremental_reads(&url, async |sql: &str| drop(pg.psql(sql).unwrap())).await;
    // A TIMESTAMPTZ column: the watermark is the same instant, in UTC.
    pg.psql(
        "ALTER TABLE changes ADD COLUMN updated_tz TIMESTAMPTZ;\n\
             UPDATE changes SET updated_tz = updated_at AT TIME ZONE 'UTC';",
    )
    .unwrap();
    let by_instant = "SELECT id, name, hire_date, updated_tz FROM changes WHERE updated_tz >= :since ORDER BY id";
    let changed = read_changes(&url, by_instant, "updated_tz", Some("2026-03-04 11:00:00")).await;
    assert_eq!(summary(&changed), "002=Bobby 004=Dee complete=false watermark=2026-03-05 12:00:00");

    pg.psql(
        "CREATE TYPE mood AS ENUM ('happy', 'sad');\n\
         CREATE DOMAIN code AS VARCHAR(10);",
    )
    .unwrap();
    // PostgreSQL folds the unquoted ID to `id`: the configured `ID` still finds it.
    let every_type = config(
        "query = '''SELECT '1' AS ID, DATE '2026-03-01' AS hire_date, 7::int2 AS small, \
         9007199254740993::int8 AS big, 0.80::numeric(3,2) AS fte, 12345678.5::numeric AS decimal, \
         0.00001::numeric AS tiny, 0.1::float4 AS ratio, 3::float8 AS whole, true AS active, \
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS uid, 'ab'::char(5) AS padded, 'happy'::mood AS mood, \
         'X1'::code AS code, 'infinity'::date AS last_day, TIMESTAMPTZ '2026-03-01 00:30:00+02' AS leave_start, \
         TIMESTAMP '2026-03-01 08:15:00' AS stamp, '{}'::jsonb AS ignored'''\n\
         key = \"ID\"\n\
         [columns]\n\
         hire_date = \"hire_date\"\nsmall = \"small\"\nbig = \"big\"\nfte = \"fte\"\ndecimal = \"decimal\"\n\
         tiny = \"tiny\"\nratio = \"ratio\"\nwhole = \"whole\"\nactive = \"active\"\nuid = \"uid\"\n\
         padded = \"padded\"\nmood = \"mood\"\ncode = \"code\"\nlast_day = \"last_day\"\n\
         leave_start = \"leave_start\"\nstamp = \"stamp\"\n",
    );
    let read = read_sql(&every_type, &secret(&url)).await.expect("every type reads");
    assert_eq!(
        render(&read),
        "complete=true rows_seen=1\n\
         hr(query):1 (row 1) 1: active=true affiliation=employee big=9007199254740993 code=X1 decimal=12345678.5 \
         fte=0.80 hire_date=2026-03-01(date) leave_start=2026-02-28(date) mood=happy padded=ab ratio=0.1 small=7 \
         stamp=2026-03-01T08:15:00 tiny=0.00001 uid=a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 whole=3\n"
    );

    let mut json_mapped = every_type.clone();
    json_mapped.columns.insert("extra".to_owned(), "ignored".to_owned());
    let error = read_sql(&json_mapped, &secret(&url)).await.expect_err("a JSONB column cannot be mapped");
    assert_eq!(
        error.to_string(),
        "source hr: the query's column \"ignored\" (for extra) is of type JSONB; expected text, a number, a \
         boolean, a date or a timestamp: convert it in the query (PostgreSQL: CAST(ignored AS TEXT) AS ignored; \
         MariaDB and MySQL: CAST(ignored AS CHAR) AS ignored)"
    );

    let wrong = format!("postgres://{}:Wr0ng-Passw0rd@127.0.0.1:{}/{}", pg.user(), pg.port(), pg.database());
    assert_failures_are_clear_and_keep_the_password(
        &url,
        pg.password(),
        &wrong,
        "password authentication failed for user \"roster\"",
        &format!("WITH gone AS (DELETE FROM workers RETURNING *) {}", select_workers()),
        &format!("SELECT w.* FROM ({}) AS w, pg_sleep(3)", select_workers()),
    )
    .await;
}

#[tokio::test]
async fn mariadb_reads_hazards_every_type_a_deletion_and_fails_clearly() {
    let db = MariaDb::start().expect("MariaDB starts (run scripts/install-test-deps.sh)");
    // The TIMESTAMP is written at +02:00 and kept in UTC; the source reads it in UTC.
    db.sql(&format!(
        "CREATE TABLE workers (seq INTEGER, employee_id VARCHAR(10), badge INTEGER, given_name VARCHAR(50), \
         family_name VARCHAR(50), hire_date DATE, last_day TIMESTAMP NULL, contract_end VARCHAR(20), department TEXT);\n\
         SET time_zone = '+02:00';\n{}",
        insert_workers("'2026-12-01 01:30:00'")
    ))
    .unwrap();
    let url = db.url();
    assert_hazards_read_alike(&url, async || drop(db.sql("DELETE FROM workers WHERE employee_id = '00042'").unwrap()))
        .await;
    assert_missing_column_fails_the_read(&url).await;

    db.sql("CREATE TABLE changes (id VARCHAR(5), name TEXT, hire_date DATE, updated_at DATETIME, changed_on DATE)")
        .unwrap();
    assert_incremental_reads(&url, async |sql: &str| drop(db.sql(sql).unwrap())).await;

    db.sql(
        "SET sql_mode = '';\n\
         CREATE TABLE types (id VARCHAR(5), hire_date DATE, small TINYINT, big BIGINT, huge BIGINT UNSIGNED, \
         fte DECIMAL(3,2), ratio FLOAT, whole DOUBLE, active BOOLEAN, year YEAR, padded CHAR(5), \
         mood ENUM('happy', 'sad'), bytes VARBINARY(10), last_day DATE, leave_start DATETIME, note TEXT, \
         photo BLOB);\n\
         INSERT INTO types VALUES ('1', '2026-03-01', 7, 9007199254740993, 18446744073709551615, 0.80, 0.1, 3, TRUE, \
         2026, 'ab', 'happy', 'bytes', '0000-00-00', '2026-03-01 08:15:00', 'Zoë', x'00ff');",
    )
    .unwrap();
    let every_type = config(
        "query = '''SELECT * FROM types'''\n\
         key = \"id\"\n\
         [columns]\n\
         hire_date = \"hire_date\"\nsmall = \"small\"\nbig = \"big\"\nhuge = \"huge\"\nfte = \"fte\"\n\
         ratio = \"ratio\"\nwhole = \"whole\"\nactive = \"active\"\nyear = \"year\"\npadded = \"padded\"\n\
         mood = \"mood\"\nbytes = \"bytes\"\nlast_day = \"last_day\"\nleave_start = \"leave_start\"\n\
         note = \"note\"\n",
    );
    let read = read_sql(&every_type, &secret(&url)).await.expect("every type reads");
    assert_eq!(
        render(&read),
        "complete=true rows_seen=1\n\
         hr(query):1 (row 1) 1: active=1 affiliation=employee big=9007199254740993 bytes=bytes fte=0.80 \
         hire_date=2026-03-01(date) huge=18446744073709551615 leave_start=2026-03-01(date) mood=happy note=Zoë \
         padded=ab ratio=0.1 small=7 whole=3 year=2026\n"
    );
    let mut photo_mapped = every_type.clone();
    photo_mapped.columns.insert("photo".to_owned(), "photo".to_owned());
    let read = read_sql(&photo_mapped, &secret(&url)).await.expect("binary data holds its row only");
    assert!(
        read.records.is_empty() && read.quarantined[0].reason.contains("binary data that is not UTF-8 text"),
        "{}",
        render(&read)
    );

    let wrong = format!("mariadb://{}:Wr0ng-Passw0rd@127.0.0.1:{}/{}", db.user(), db.port(), db.database());
    assert_failures_are_clear_and_keep_the_password(
        &url,
        db.password(),
        &wrong,
        "Access denied for user 'roster'",
        &format!("DELETE FROM workers RETURNING {WORKER_COLUMNS}"),
        &format!("SELECT w.* FROM ({}) AS w JOIN (SELECT SLEEP(3) AS slept) AS s", select_workers()),
    )
    .await;
}

/// Runs `sql` on the SQLite file at `path` through a connection of its own, which may write.
async fn sqlite_exec(path: &Path, sql: &str) {
    let mut writer = SqliteConnectOptions::new().filename(path).create_if_missing(true).connect().await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(&mut writer).await.unwrap();
    writer.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_reads_hazards_every_type_and_a_deletion_and_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hr.db");
    let url = format!("sqlite://{}", path.display());
    sqlite_exec(
        &path,
        &format!(
            "CREATE TABLE workers (seq INTEGER, employee_id VARCHAR(10), badge INTEGER, given_name VARCHAR(50), \
             family_name VARCHAR(50), hire_date DATE, last_day DATETIME, contract_end VARCHAR(20), department TEXT);\n{}",
            insert_workers("'2026-12-01T01:30:00+02:00'")
        ),
    )
    .await;
    assert_hazards_read_alike(&url, async || {
        sqlite_exec(&path, "DELETE FROM workers WHERE employee_id = '00042'").await
    })
    .await;
    assert_missing_column_fails_the_read(&url).await;

    sqlite_exec(
        &path,
        "CREATE TABLE changes (id TEXT, name TEXT, hire_date DATE, updated_at DATETIME, changed_on DATE)",
    )
    .await;
    assert_incremental_reads(&url, async |sql: &str| sqlite_exec(&path, sql).await).await;

    // SQLite has no date type: text in a column declared as a date is read as an ISO 8601 date
    // when it is one, and with date_format otherwise.
    sqlite_exec(
        &path,
        "CREATE TABLE types (id TEXT, hire_date DATE, whole REAL, half REAL, big INTEGER, photo BLOB, \
         leave_start TIMESTAMP);\n\
         INSERT INTO types VALUES ('1', '2026-03-01 08:15:00', 3.0, 0.5, 9007199254740993, NULL, '01.03.2026'), \
         ('2', '2026-03-02', 1.0, NULL, 1, x'00ff', NULL);",
    )
    .await;
    let every_type = config(
        "query = 'SELECT * FROM types ORDER BY id'\n\
         key = \"id\"\n\
         date_format = \"%d.%m.%Y\"\n\
         [columns]\n\
         hire_date = \"hire_date\"\nwhole = \"whole\"\nhalf = \"half\"\nbig = \"big\"\nphoto = \"photo\"\n\
         leave_start = \"leave_start\"\n",
    );
    let read = read_sql(&every_type, &secret(&url)).await.expect("every type reads");
    let rendered = render(&read);
    assert!(
        rendered.starts_with(
            "complete=true rows_seen=2\n\
             hr(query):1 (row 1) 1: affiliation=employee big=9007199254740993 half=0.5 hire_date=2026-03-01(date) \
             leave_start=2026-03-01(date) whole=3\n\
             hr(query):2 (row 2) held Some(\"2\"): photo (column \"photo\"): expected text, found a BLOB value"
        ),
        "{rendered}"
    );

    let writing = workers(&format!("DELETE FROM workers RETURNING {WORKER_COLUMNS}"));
    let error = read_sql(&writing, &secret(&url)).await.expect_err("a source never writes");
    assert!(error.to_string().contains("readonly"), "{error}");
    assert_eq!(read_sql(&workers(&select_workers()), &secret(&url)).await.unwrap().rows_seen, 6, "nothing was deleted");
}

#[tokio::test]
async fn failures_before_the_query_fail_the_whole_read_and_never_show_the_password() {
    let source = workers(&select_workers());

    let error = read_sql(&source, &secret("oracle://roster:s3cret-pw@db.example.org/hr")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "source hr: cannot read the database at oracle://db.example.org/hr: expected a URL starting with \
         postgres://, postgresql://, mysql://, mariadb:// or sqlite://"
    );

    // Nothing listens on a port just freed: the connection is refused at once.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://roster:s3cret-pw@127.0.0.1:{closed}/hr");
        let message = read_sql(&source, &secret(&url)).await.unwrap_err().to_string();
        let expected_start = format!("source hr: cannot connect to {scheme}://127.0.0.1:{closed}/hr: ");
        assert!(message.starts_with(&expected_start), "{message}");
        assert!(message.contains("refused") && !message.contains("s3cret-pw"), "{message}");
    }

    // A server that takes the connection and never answers: the read gives up after the timeout.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = silent.local_addr().unwrap().port();
    for scheme in ["postgres", "mariadb"] {
        let url = format!("{scheme}://roster:s3cret-pw@127.0.0.1:{port}/hr");
        let error = read_sql_with(&source, &secret(&url), &within(Duration::from_millis(300))).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "source hr: {scheme}://127.0.0.1:{port}/hr did not answer within 300 ms while connecting; nothing \
                 from this source is used"
            )
        );
    }

    let missing: PathBuf = tempfile::tempdir().unwrap().path().join("no-such.db");
    let message = read_sql(&source, &secret(&format!("sqlite://{}", missing.display()))).await.unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("source hr: cannot connect to sqlite://{}: ", missing.display())),
        "{message}"
    );
    assert!(!missing.exists(), "a source never creates the database");

    let mut no_query = source.clone();
    no_query.query = Some("  ".to_owned());
    let message = read_sql(&no_query, &secret("sqlite://hr.db")).await.unwrap_err().to_string();
    assert_eq!(message, "source hr: no query; set query = \"SELECT ...\" for this source");
}
