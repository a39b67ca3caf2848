//! Incremental reads of a SQL source through the real binary, against a real PostgreSQL and a real
//! OpenLDAP: after a full first read, a run reads only the rows changed since the stored watermark
//! (a change lands; a row deleted meanwhile goes unnoticed, since an incremental read says nothing
//! about who is missing); a full read (`--full-read`, or `full_read_after_hours`) notices the
//! deletion. The watermark moves only when a run fully landed.
//!
//! Fails, never skips, when slapd or PostgreSQL is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use roster_testkit::Postgres;
use support::{LEAVERS, Lab};

const SQL_SOURCE: &str = r#"[[source]]
name = "hr"
kind = "sql"
url = "file:hr-database-url"
query = "SELECT id, first, last, hire, dept, '' AS title, NULL AS manager, updated_at FROM workers WHERE updated_at >= :since ORDER BY id"
modified_column = "updated_at"
complete = true
key = "id"
[source.columns]
given_name = "first"
family_name = "last"
hire_date = "hire"
department = "dept"
title = "title"
manager = "manager"
"#;

/// The lab's configuration with its CSV source replaced by the SQL one.
fn sql_lab(pg: &Postgres) -> Lab {
    let lab = Lab::start();
    let config = lab.config();
    let start = config.find("[[source]]").expect("the fixture has a source");
    let end = config.find("[lifecycle]").expect("the fixture has a lifecycle");
    lab.write_config(&format!("{}{SQL_SOURCE}\n{}", &config[..start], &config[end..]));
    std::fs::write(lab.dir().join("hr-database-url"), pg.url()).unwrap();
    lab
}

fn psql(pg: &Postgres, sql: &str) {
    pg.psql(sql).unwrap_or_else(|e| panic!("{sql}: {e:#}"));
}

fn persons_planned(plan: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .chain(plan["notices"].as_array().unwrap())
        .filter_map(|o| o["person"].as_str().map(str::to_string))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn only_changed_rows_are_read_until_a_full_read_notices_who_has_gone() {
    let pg = Postgres::start().unwrap_or_else(|e| panic!("could not start PostgreSQL: {e:#}"));
    let lab = sql_lab(&pg);
    psql(
        &pg,
        "CREATE TABLE workers (id text PRIMARY KEY, first text, last text, hire date, dept text,
                               updated_at timestamp NOT NULL);
         INSERT INTO workers VALUES
           ('1001', 'Ada', 'Lovelace', '2020-01-06', 'Engineering', '2026-03-01 09:00'),
           ('1002', 'Grace', 'Hopper', '2020-01-06', 'Engineering', '2026-03-01 09:00'),
           ('1003', 'Alan', 'Turing', '2020-01-06', 'Research', '2026-03-01 10:30');",
    );
    lab.run("2026-03-02");
    for key in ["1001", "1002", "1003"] {
        lab.account(key);
    }

    // Grace moves (her row changes after the watermark); Alan's row is deleted; Ada's is untouched.
    psql(
        &pg,
        "UPDATE workers SET dept = 'Research', updated_at = '2026-03-02 15:00' WHERE id = '1002';
         DELETE FROM workers WHERE id = '1003';",
    );
    let plan = lab.plan("2026-03-03");
    assert_eq!(persons_planned(&plan), ["1002"], "only the changed row is planned: {plan:#}");
    assert!(plan["source_counts"].as_object().unwrap().is_empty(), "an incremental read is not complete: {plan:#}");
    lab.run("2026-03-03");
    assert!(lab.is_below("1002", "ou=Research,ou=people,dc=example,dc=org"), "the change landed");
    assert!(!lab.is_below("1003", LEAVERS), "a deletion is not noticed by an incremental read");
    lab.assert_nothing_to_do("2026-03-03");

    // A full read notices Alan has gone, and nothing else changes. One leaver among three people
    // trips the safety limits: allowed here, as an operator would after reading the plan.
    let full = lab.roster("2026-03-04", &["--full-read", "plan", "--format", "json"]).expect_code(3);
    let plan: serde_json::Value = serde_json::from_str(&full.stdout).unwrap();
    assert_eq!(persons_planned(&plan), ["1003"], "{plan:#}");
    let limits: Vec<&str> = plan["safety"].as_array().unwrap().iter().filter_map(|l| l["limit"].as_str()).collect();
    let allow = limits.iter().map(|l| l.split('(').next().unwrap_or(l)).collect::<Vec<_>>().join(",");
    lab.roster("2026-03-04", &["--full-read", "run", "--allow", &allow]).expect_code(0);
    assert!(lab.is_below("1003", LEAVERS), "the full read made Alan a leaver");
    assert!(!lab.is_below("1001", LEAVERS) && !lab.is_below("1002", LEAVERS));
}

#[test]
fn the_query_must_take_the_watermark() {
    let pg = Postgres::start().unwrap();
    let lab = sql_lab(&pg);
    lab.write_config(&lab.config().replace(" WHERE updated_at >= :since", ""));
    let check = lab.roster("2026-03-02", &["check"]).expect_code(2);
    assert!(check.stderr.contains("source[0].query") && check.stderr.contains(":since"), "{check}");
}
