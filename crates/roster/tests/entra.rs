//! A configuration whose mappings are written in Microsoft Entra ID's expression syntax
//! (`entra:`), through the real `roster` binary against a real OpenLDAP: the login names
//! come from an Entra `SelectUniqueValue` in the order Microsoft's reference shows
//! (John.Smith, then J.Smith, then Jo.Smith), Entra's NormalizeDiacritics table gives
//! `ø` -> `oe`, PCase capitalises, and `IgnoreFlowIfNullOrEmpty` leaves an attribute alone
//! when the HR value goes empty. Checked by reading the directory back over LDAP.
//!
//! Fails, never skips, when slapd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use support::{Hr, Lab, PEOPLE, Worker};

/// `from` replaced by `to` in `text`, which must hold `from` exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "the fixture holds {from:?} once");
    text.replacen(from, to, 1)
}

/// The fixture's CEL expressions, each with its Entra twin (and a displayName besides).
fn entra_config(lab: &Lab) -> String {
    let replacements = [
        (
            r#"candidates = ['lower(normalize_diacritics(given_name + "." + family_name))',
              'lower(normalize_diacritics(left(given_name, 1) + "." + family_name))']"#,
            r#"candidates = ['''entra: SelectUniqueValue(
    ToLower(NormalizeDiacritics(StripSpaces(Join(".", [given_name], [family_name])))),
    ToLower(NormalizeDiacritics(StripSpaces(Join(".", Mid([given_name], 1, 1), [family_name])))),
    ToLower(NormalizeDiacritics(StripSpaces(Join(".", Mid([given_name], 1, 2), [family_name])))))''']"#,
        ),
        (
            r#"dn = '"uid=" + login + ",ou=" + department + ",ou=people,dc=example,dc=org"'"#,
            r#"dn = 'entra: Join("", "uid=", [login], ",ou=", [department], ",ou=people,dc=example,dc=org")'"#,
        ),
        (
            r#"mail = { value = 'login + "@example.org"', when = "create" }"#,
            r#"mail = { value = 'entra: Join("@", [login], "example.org")', when = "create" }"#,
        ),
        (
            r#"cn = 'given_name + " " + family_name'"#,
            r#"cn = 'entra: Join(" ", [given_name], [family_name])'
displayName = 'entra: PCase(Join(" ", [given_name], [family_name]))'"#,
        ),
        (r#"title = "title""#, r#"title = 'entra: IgnoreFlowIfNullOrEmpty([title])'"#),
        (
            r#"dn = '"cn=staff-" + lower(department) + ",ou=groups,dc=example,dc=org"'"#,
            r#"dn = 'entra: Join("", "cn=staff-", ToLower([department]), ",ou=groups,dc=example,dc=org")'"#,
        ),
    ];
    replacements.iter().fold(lab.config(), |config, (from, to)| replace_once(&config, from, to))
}

fn ops_for<'a>(plan: &'a serde_json::Value, person: &str, op: &str) -> Vec<&'a serde_json::Value> {
    let all = plan["operations"].as_array().map_or(&[][..], Vec::as_slice);
    all.iter().filter(|o| o["person"] == person && o["op"] == op).collect()
}

#[test]
fn a_company_mapped_in_entras_syntax() {
    let lab = Lab::start();
    lab.write_config(&entra_config(&lab));
    let mut hr = Hr::new([
        Worker::new("1001", "John", "Smith", "Engineering").title("Engineer"),
        Worker::new("1002", "John", "Smith", "Sales"),
        Worker::new("1003", "John", "Smith", "Sales"),
        Worker::new("1004", "Søren", "Kierkegård", "Research").title("Philosopher"),
        Worker::new("1005", "GREGORY", "JAMES", "Sales"),
    ]);

    // Day 1: the plan, as JSON, already holds what Entra would have written.
    let day = "2026-03-02";
    lab.export(&hr);
    lab.roster(day, &["check"]).expect_code(0);
    let plan = lab.plan(day);
    let [create] = ops_for(&plan, "1004", "create")[..] else { panic!("one create for 1004: {plan:#}") };
    assert_eq!(create["dn"], format!("uid=soeren.kierkegard,ou=Research,{PEOPLE}"), "{create:#}");
    assert_eq!(create["attributes"]["mail"][0], "soeren.kierkegard@example.org", "{create:#}");

    lab.run(day);
    // SelectUniqueValue: each rule in order, the first one nobody holds.
    for (key, uid, department) in [
        ("1001", "john.smith", "Engineering"),
        ("1002", "j.smith", "Sales"),
        ("1003", "jo.smith", "Sales"),
        // Entra's table: ø -> oe and å -> a, where roster's normalize_diacritics gives soren.
        ("1004", "soeren.kierkegard", "Research"),
        ("1005", "gregory.james", "Sales"),
    ] {
        let account = lab.account(key);
        assert_eq!(account.value("uid"), uid, "{account:#?}");
        assert_eq!(account.value("mail"), format!("{uid}@example.org"), "{account:#?}");
        assert_eq!(account.dn, format!("uid={uid},ou={department},{PEOPLE}"));
    }
    assert_eq!(lab.account("1005").value("cn"), "GREGORY JAMES");
    assert_eq!(lab.account("1005").value("displayName"), "Gregory James");
    assert_eq!(lab.account("1004").value("displayName"), "Søren Kierkegård");
    assert_eq!(lab.account("1001").value("title"), "Engineer");
    assert!(lab.account("1002").values("title").is_empty(), "an empty title is not written");
    assert_eq!(lab.groups_of("1004"), ["all-staff", "staff-research"]);
    lab.assert_nothing_to_do(day);

    // Day 2: HR loses John's title (IgnoreFlowIfNullOrEmpty keeps the directory's), and the
    // second John gets one (a value still flows).
    let day = "2026-03-03";
    hr.worker("1001").title = String::new();
    hr.worker("1002").title = "Account Executive".into();
    lab.export(&hr);
    let plan = lab.plan(day);
    assert!(ops_for(&plan, "1001", "update").is_empty(), "the empty title is not flowed: {plan:#}");
    lab.run(day);
    assert_eq!(lab.account("1001").value("title"), "Engineer");
    assert_eq!(lab.account("1002").value("title"), "Account Executive");
    lab.assert_nothing_to_do(day);
}

#[test]
fn entra_functions_roster_cannot_honour_are_refused_when_the_config_loads() {
    let lab = Lab::start();
    lab.export(&Hr::new([Worker::new("1001", "Ada", "Lovelace", "Engineering")]));
    let refused = [
        ("RandomString(6,3,0,0,3)", "RandomString() is not supported: a random value would change on every run"),
        ("SingleAppRoleAssignment([appRoleAssignments])", "SingleAppRoleAssignment() is not supported"),
        (r#"Join("@", [login], DefaultDomain())"#, "DefaultDomain() is not supported"),
    ];
    for (expression, message) in refused {
        let config = replace_once(&lab.config(), r#"title = "title""#, &format!("title = 'entra: {expression}'"));
        lab.write_config(&config);
        for command in ["check", "plan"] {
            let run = lab.roster("2026-03-02", &[command]).expect_code(2);
            assert!(run.stderr.contains("target[0].attributes.title"), "the message names the key:\n{run}");
            assert!(run.stderr.contains(message), "{run}");
        }
        lab.write_config(&replace_once(&config, &format!("title = 'entra: {expression}'"), r#"title = "title""#));
    }
    assert!(lab.dump().values().all(|entry| !entry.dn.starts_with("uid=")), "nothing was written");
}
