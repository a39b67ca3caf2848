//! The private MariaDB answers as the SQL source's tests rely on: over TCP with its password only,
//! with statements run through the `mariadb` client, side by side with another, and gone when
//! dropped.

use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, ensure};
use roster_testkit::MariaDb;

/// Logs in over TCP as `user` with `password`; returns what the query printed, or the error.
fn over_tcp(db: &MariaDb, user: &str, password: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("mariadb")
        .args(["--no-defaults", "--protocol=TCP", "--host=127.0.0.1", "--batch", "--skip-column-names"])
        .arg(format!("--port={}", db.port()))
        .arg(format!("--user={user}"))
        .arg(format!("--database={}", db.database()))
        .args(["--execute", sql])
        .env("MYSQL_PWD", password)
        .output()
        .map_err(|error| format!("could not run mariadb: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn mariadb_answers_over_tcp_with_its_password_runs_sql_and_is_gone_when_dropped() -> Result<()> {
    let started = Instant::now();
    let db = MariaDb::start()?;
    eprintln!("MariaDB started in {:?}", started.elapsed());
    let other = MariaDb::start()?;
    ensure!(db.port() != other.port() && db.dir() != other.dir(), "two instances share nothing");

    db.sql(
        "CREATE TABLE workers (id VARCHAR(10) PRIMARY KEY, name VARCHAR(50), hired DATE);\n\
            INSERT INTO workers VALUES ('00042', 'Zoë Łukasiewicz', '2026-03-01');",
    )?;
    assert_eq!(db.sql("SELECT id, name, hired FROM workers")?.trim(), "00042\tZoë Łukasiewicz\t2026-03-01");
    assert!(db.sql("SELECT * FROM no_such_table").unwrap_err().to_string().contains("no_such_table"));
    assert_eq!(db.sql("SELECT @@character_set_server")?.trim(), "utf8mb4");

    let (user, password) = (db.user(), db.password());
    assert_eq!(over_tcp(&db, user, password, "SELECT CURRENT_USER(), DATABASE()"), Ok("roster@%\troster".to_owned()));
    assert_eq!(over_tcp(&db, user, password, "SELECT name FROM workers"), Ok("Zoë Łukasiewicz".to_owned()));
    let refused = over_tcp(&db, user, "wrong", "SELECT 1").unwrap_err();
    assert!(refused.contains("Access denied"), "{refused}");
    assert!(over_tcp(&db, "root", "", "SELECT 1").is_err(), "the administrator has no way in over TCP");
    assert!(over_tcp(&other, user, other.password(), "SELECT * FROM workers").is_err(), "the other has its own data");

    let (dir, port) = (db.dir().to_owned(), db.port());
    drop(db);
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(), "nothing listens on {port} any more");
    Ok(())
}
