//! Operator holds through the real binary against a real OpenLDAP: a held person's HR changes
//! (here a leaver's termination) change nothing in the directory until the hold ends, by
//! `roster unhold` or on its last day; the plan says why; every hold and lift is in the audit
//! trail with who did it; and a hold needs a person roster knows.
//!
//! Fails, never skips, when slapd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use support::{Hr, LEAVERS, Lab, Worker};

fn two_people() -> Hr {
    Hr::new([
        Worker::new("7001", "Ada", "Lovelace", "Engineering"),
        Worker::new("7002", "Grace", "Hopper", "Engineering"),
    ])
}

fn held_notice(plan: &serde_json::Value, key: &str) -> Option<String> {
    plan["notices"]
        .as_array()
        .expect("the plan has notices")
        .iter()
        .find(|n| n["person"] == key && n["kind"] == "on_hold")
        .map(|n| n["message"].as_str().unwrap_or_default().to_string())
}

fn operations_for(plan: &serde_json::Value, key: &str) -> usize {
    plan["operations"].as_array().expect("the plan has operations").iter().filter(|op| op["person"] == key).count()
}

#[test]
fn a_held_leaver_keeps_the_account_until_the_hold_is_lifted() {
    let lab = Lab::start();
    let mut hr = two_people();
    lab.export(&hr);
    lab.run("2026-03-02");

    let unknown = lab.roster("2026-03-02", &["hold", "9999", "--reason", "typo"]).expect_code(2);
    assert!(unknown.stderr.contains("knows no person 9999"), "{unknown}");
    let empty = lab.roster("2026-03-02", &["hold", "7001", "--reason", " "]).expect_code(2);
    assert!(empty.stderr.contains("--reason is empty"), "{empty}");
    let past = lab.roster("2026-03-02", &["hold", "7001", "--reason", "x", "--until", "2026-03-01"]).expect_code(2);
    assert!(past.stderr.contains("before today"), "{past}");

    let held =
        lab.roster("2026-03-02", &["hold", "7001", "--reason", "termination disputed (ticket 42)"]).expect_code(0);
    assert!(held.stdout.contains("person 7001 is on hold until lifted"), "{held}");

    hr.worker("7001").last_day = "2026-03-05".into();
    hr.worker("7002").title = "Admiral".into();
    lab.export(&hr);
    let plan = lab.plan("2026-03-09");
    let message = held_notice(&plan, "7001").unwrap_or_else(|| panic!("no held notice for 7001: {plan:#}"));
    assert!(message.contains("termination disputed (ticket 42)"), "{message}");
    assert_eq!(operations_for(&plan, "7001"), 0, "nothing planned for a held person: {plan:#}");
    assert!(operations_for(&plan, "7002") > 0, "others are planned as usual: {plan:#}");
    lab.run("2026-03-09");
    assert!(!lab.is_below("7001", LEAVERS), "a held leaver is not moved");
    assert!(!lab.account("7001").locked(), "a held leaver is not disabled");
    assert_eq!(lab.account("7002").value("title"), "Admiral");
    assert!(held_notice(&lab.plan("2026-03-10"), "7001").is_some(), "the hold outlives the runs made meanwhile");

    lab.roster("2026-03-10", &["unhold", "7001"]).expect_code(0);
    let plan = lab.plan("2026-03-10");
    assert!(held_notice(&plan, "7001").is_none(), "{plan:#}");
    lab.run("2026-03-10");
    assert!(lab.is_below("7001", LEAVERS), "once lifted, the leaver is handled");
    assert!(lab.account("7001").locked());

    let trail = lab.roster("2026-03-10", &["audit", "show", "--person", "7001", "--format", "json"]).expect_code(0);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&trail.stdout).expect("audit JSON");
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["kind"] == "hold" || e["kind"] == "unhold")
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(kinds, [("hold", "integration-test"), ("unhold", "integration-test")], "{trail}");
    lab.roster("2026-03-10", &["audit", "verify"]).expect_code(0);
}

#[test]
fn a_hold_ends_after_its_last_day() {
    let lab = Lab::start();
    let mut hr = two_people();
    lab.export(&hr);
    lab.run("2026-03-02");
    lab.roster("2026-03-02", &["hold", "7002", "--reason", "name check", "--until", "2026-03-04"]).expect_code(0);
    hr.worker("7002").title = "Rear Admiral".into();
    lab.export(&hr);
    let plan = lab.plan("2026-03-04");
    assert!(held_notice(&plan, "7002").is_some_and(|m| m.contains("name check")), "held on its last day: {plan:#}");
    assert_eq!(operations_for(&plan, "7002"), 0, "{plan:#}");
    lab.run("2026-03-05");
    assert_eq!(lab.account("7002").value("title"), "Rear Admiral", "the day after, the change lands");
}
