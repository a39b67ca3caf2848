//! Entra-syntax expressions in a whole configuration: checked by the settings stage with
//! key and line as CEL ones are, and planned by the engine to the same operations as
//! their CEL twins.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use roster_core::attr::{AttrMap, AttrName};
use roster_core::engine::{PlanInput, plan};
use roster_core::plan::{Action, Plan};
use roster_core::settings::{Settings, load};
use roster_core::source::{FieldValue, Location, Record, SourceRead};
use roster_core::state::{Snapshot, TargetEntry, TargetView};

const CONFIG: &str = r#"
[time]
zone = "Europe/Berlin"

[[source]]
name = "hr"
kind = "csv"
path = "hr.csv"
key = "id"
[source.columns]
given_name = "First"
family_name = "Last"
hire_date = "Hire"
department = "Dept"
job_title = "Title"

[login]
candidates = [LOGIN]

[[target]]
name = "ldap"
kind = "ldap"
url = "ldaps://ldap.example.org"
bind_dn = "cn=roster,dc=example,dc=org"
bind_password = "env:PW"
managed = ["ou=people,dc=example,dc=org", "ou=groups,dc=example,dc=org"]
dn = DN
disable = { lock = true }
[target.attributes]
cn = CN
description = DESCRIPTION
title = TITLE
[[target.groups]]
dn = GROUP
when = WHEN
"#;

/// (placeholder, CEL, Entra) for every expression of the configuration.
const TWINS: &[(&str, &str, &str)] = &[
    (
        "LOGIN",
        r#"'lower(normalize_diacritics(given_name + "." + family_name))', 'lower(normalize_diacritics(left(given_name, 1) + "." + family_name))'"#,
        r#"'entra: SelectUniqueValue(ToLower(NormalizeDiacritics(Join(".", [given_name], [family_name]))), ToLower(NormalizeDiacritics(Join(".", Left([given_name], 1), [family_name]))))'"#,
    ),
    (
        "DN",
        r#"'"uid=" + login + ",ou=people,dc=example,dc=org"'"#,
        r#"'entra: Join("", "uid=", [login], ",ou=people,dc=example,dc=org")'"#,
    ),
    ("CN", r#"'join(" ", given_name, family_name)'"#, r#"'entra: Join(" ", [given_name], [family_name])'"#),
    (
        "DESCRIPTION",
        r#"'switch(department, "Staff", "R&D", "Research", "Ops", "Operations")'"#,
        r#"'entra: Switch([department], "Staff", "R&D", "Research", "Ops", "Operations")'"#,
    ),
    ("TITLE", "'upper(job_title)'", "'entra: ToUpper([job_title])'"),
    (
        "GROUP",
        r#"'"cn=" + lower(department) + ",ou=groups,dc=example,dc=org"'"#,
        r#"'entra: Join("", "cn=", ToLower([department]), ",ou=groups,dc=example,dc=org")'"#,
    ),
    ("WHEN", r#"'state == "active"'"#, r#"'entra: [state] = "active"'"#),
];

fn config(entra: bool, overrides: &[(&str, &str)]) -> String {
    let mut text = CONFIG.to_owned();
    for (placeholder, cel, twin) in TWINS {
        let chosen =
            overrides.iter().find(|(p, _)| p == placeholder).map_or(if entra { twin } else { cel }, |(_, e)| e);
        text = text.replace(placeholder, chosen);
    }
    text
}

fn settings(text: &str) -> Settings {
    load(text, "roster.toml").unwrap_or_else(|errors| panic!("{errors:?}\n{text}"))
}

fn record(key: &str, given: &str, family: &str, department: &str, title: &str) -> Record {
    let mut attrs = BTreeMap::new();
    for (name, value) in
        [("given_name", given), ("family_name", family), ("department", department), ("job_title", title)]
    {
        if !value.is_empty() {
            attrs.insert(name.into(), FieldValue::Text(value.to_owned()));
        }
    }
    attrs.insert("hire_date".into(), FieldValue::Date(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()));
    attrs.insert("affiliation".into(), FieldValue::Text("employee".into()));
    Record {
        source: "hr".into(),
        key: key.into(),
        attrs: std::sync::Arc::new(roster_core::source::Attrs::from(attrs)),
        location: Location { file: "hr.csv".into(), line: 2, row: 1 },
    }
}

fn plan_for(settings: &Settings, records: Vec<Record>, view: TargetView) -> Plan {
    let read = SourceRead {
        source: "hr".into(),
        complete: true,
        rows_seen: records.len() as u64,
        records,
        quarantined: vec![],
    };
    let views = BTreeMap::from([("ldap".to_owned(), view)]);
    let snapshot = Snapshot::default();
    plan(&PlanInput {
        settings,
        as_of: NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
        reads: &[read],
        snapshot: &snapshot,
        views: &views,
        evaluate_all: false,
    })
}

fn directory() -> TargetView {
    TargetView {
        target: "ldap".into(),
        containers: ["ou=people,dc=example,dc=org", "ou=groups,dc=example,dc=org"]
            .into_iter()
            .map(String::from)
            .collect(),
        ..TargetView::default()
    }
}

fn actions(plan: &Plan) -> Vec<(Option<String>, Action)> {
    plan.operations.iter().map(|op| (op.person.clone(), op.action.clone())).collect()
}

#[test]
fn entra_mappings_plan_what_their_cel_twins_plan() {
    let people = || {
        vec![
            record("1", "José", "García", "R&D", "Engineer"),
            record("2", "José", "García", "Ops", ""),
            record("3", "José", "García", "Sales", "Director"),
            record("4", "Zoë", "Ångström", "R&D", "Chemist"),
        ]
    };
    let cel = plan_for(&settings(&config(false, &[])), people(), directory());
    let entra = plan_for(&settings(&config(true, &[])), people(), directory());
    assert_eq!(actions(&entra), actions(&cel));
    let creates: Vec<String> = actions(&entra)
        .into_iter()
        .filter_map(|(_, action)| match action {
            Action::Create { dn, .. } if dn.starts_with("uid=") => Some(dn.to_string()),
            _ => None,
        })
        .collect();
    // SelectUniqueValue's rules are the login candidates, tried in order; when all are
    // taken, roster numbers the first.
    assert_eq!(
        creates,
        [
            "uid=jose.garcia,ou=people,dc=example,dc=org",
            "uid=j.garcia,ou=people,dc=example,dc=org",
            "uid=jose.garcia2,ou=people,dc=example,dc=org",
            "uid=zoe.angstrom,ou=people,dc=example,dc=org",
        ]
    );
}

#[test]
fn entras_normalize_diacritics_keeps_entras_names() {
    let people = || vec![record("1", "Søren", "Ørsted", "R&D", "")];
    let cel = plan_for(&settings(&config(false, &[])), people(), directory());
    let entra = plan_for(&settings(&config(true, &[])), people(), directory());
    let dns = |plan: &Plan| {
        actions(plan).into_iter().find_map(|(_, action)| match action {
            Action::Create { dn, .. } if dn.starts_with("uid=") => Some(dn),
            _ => None,
        })
    };
    // Entra's table: ø -> oe, so a mapping moved from Entra renames nobody.
    assert_eq!(dns(&entra).as_deref(), Some("uid=soeren.oersted,ou=people,dc=example,dc=org"));
    assert_eq!(dns(&cel).as_deref(), Some("uid=soren.orsted,ou=people,dc=example,dc=org"));
}

#[test]
fn ignore_flow_if_null_or_empty_leaves_the_attribute_alone() {
    let existing = || {
        let mut view = directory();
        let mut attrs = AttrMap::new();
        for (name, value) in [
            ("objectClass", "inetOrgPerson"),
            ("uid", "ada.lovelace"),
            ("employeeNumber", "1"),
            ("cn", "Ada Lovelace"),
            ("description", "Research"),
            ("title", "COUNTESS"),
        ] {
            attrs.insert(AttrName::new(name), vec![value.to_owned()]);
        }
        view.entries.push(TargetEntry {
            object_id: "uuid-1".into(),
            dn: "uid=ada.lovelace,ou=people,dc=example,dc=org".into(),
            attrs,
            protected: false,
        });
        view
    };
    let people = || vec![record("1", "Ada", "Lovelace", "R&D", "")];
    let title_changes = |plan: &Plan| {
        actions(plan)
            .into_iter()
            .filter_map(|(_, action)| match action {
                Action::Update { changes, .. } => Some(changes),
                _ => None,
            })
            .flatten()
            .filter(|change| change.attr.is("title"))
            .count()
    };
    let cleared = plan_for(&settings(&config(true, &[])), people(), existing());
    assert_eq!(title_changes(&cleared), 1, "{:#?}", actions(&cleared));
    let ignoring = settings(&config(true, &[("TITLE", "'entra: IgnoreFlowIfNullOrEmpty(ToUpper([job_title]))'")]));
    assert_eq!(title_changes(&plan_for(&ignoring, people(), existing())), 0);
}

#[test]
fn entra_expressions_are_checked_with_key_and_line() {
    let text = config(true, &[("CN", r#"'entra: Join(" ", [givenName], [family_name])'"#)]);
    let errors = load(&text, "roster.toml").unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let line = text.lines().position(|l| l.starts_with("cn = ")).unwrap() + 1;
    assert_eq!(errors[0].line, Some(line));
    assert_eq!(errors[0].key, "target[0].attributes.cn");
    assert!(
        errors[0].message.starts_with("unknown variable `givenName` (did you mean `given_name`?)"),
        "{}",
        errors[0].message
    );

    let text = config(true, &[("TITLE", r#"'entra: Left([job_title]'"#)]);
    let errors = load(&text, "roster.toml").unwrap_err();
    assert!(
        errors[0].message.contains("1:24: expected `,` or `)` after an argument of Left()"),
        "{}",
        errors[0].message
    );

    // Evaluated on the sample person, as CEL expressions are.
    let text = config(true, &[("TITLE", r#"'entra: CDate([job_title])'"#)]);
    let errors = load(&text, "roster.toml").unwrap_err();
    assert!(errors[0].message.contains("fails on a sample person: CDate(): expected a date"), "{}", errors[0].message);

    // SelectUniqueValue outside the login candidates says where uniqueness lives.
    let text = config(true, &[("CN", r#"'entra: SelectUniqueValue([given_name], [family_name])'"#)]);
    let errors = load(&text, "roster.toml").unwrap_err();
    assert!(errors[0].message.contains("use it as a [login] candidate"), "{}", errors[0].message);

    // A login candidate rule reading the login is refused, rule by rule.
    let text = config(true, &[("LOGIN", r#"'entra: SelectUniqueValue([given_name], [login])'"#)]);
    let errors = load(&text, "roster.toml").unwrap_err();
    assert_eq!(errors[0].key, "login.candidates[0]");
    assert!(errors[0].message.starts_with("unknown variable `login`"), "{}", errors[0].message);
}
