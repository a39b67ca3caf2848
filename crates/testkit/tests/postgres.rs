//! The private PostgreSQL answers as the SQL source's tests rely on: over TCP with its password
//! only, with statements run through `psql`, side by side with another, and gone when dropped.

use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, ensure};
use roster_testkit::Postgres;

/// Logs in over TCP as `psql` does with a connection URL; returns what the query printed, or the
/// error.
fn over_tcp(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["--no-psqlrc", "--tuples-only", "--no-align", url, "--command", sql])
        .env_remove("PGPASSWORD")
        .output()
        .map_err(|error| format!("could not run psql: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[test]
fn postgres_answers_over_tcp_with_its_password_runs_psql_and_is_gone_when_dropped() -> Result<()> {
    let started = Instant::now();
    let pg = Postgres::start()?;
    eprintln!("PostgreSQL started in {:?}", started.elapsed());
    let other = Postgres::start()?;
    ensure!(pg.port() != other.port() && pg.dir() != other.dir(), "two instances share nothing");

    pg.psql("CREATE TABLE workers (id VARCHAR(10) PRIMARY KEY, hired DATE);\nINSERT INTO workers VALUES ('00042', '2026-03-01');")?;
    assert_eq!(pg.psql("SELECT id, hired FROM workers")?.trim(), "00042|2026-03-01");
    assert!(pg.psql("SELECT * FROM no_such_table").unwrap_err().to_string().contains("no_such_table"));

    assert_eq!(over_tcp(&pg.url(), "SELECT current_user || '@' || current_database()"), Ok("roster@roster".to_owned()));
    assert_eq!(over_tcp(&pg.url(), "SELECT count(*) FROM workers"), Ok("1".to_owned()), "the role owns the tables");
    let wrong = format!("postgres://{}:wrong@127.0.0.1:{}/{}", pg.user(), pg.port(), pg.database());
    let refused = over_tcp(&wrong, "SELECT 1").unwrap_err();
    assert!(refused.contains("password authentication failed"), "{refused}");
    let superuser = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    assert!(over_tcp(&superuser, "SELECT 1").is_err(), "the superuser has no way in over TCP");
    assert!(over_tcp(&other.url(), "SELECT count(*) FROM workers").is_err(), "the other instance has its own data");

    let (dir, port) = (pg.dir().to_owned(), pg.port());
    drop(pg);
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(), "nothing listens on {port} any more");
    Ok(())
}
