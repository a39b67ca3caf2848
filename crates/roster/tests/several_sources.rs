//! Several sources through the real `roster` binary against a real OpenLDAP: a contractor
//! database and HR, a Workday-style conversion that issues a new worker ID, and a second human
//! joined by a national ID that roster only ever holds as a keyed hash.
//!
//! Fails, never skips, when slapd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::fs;

use support::Lab;

const CONFIG: &str = r#"
[store]
path = "roster.db"

[time]
zone = "Europe/Berlin"

[[source]]
name = "hr"
kind = "csv"
path = "exports/hr.csv"
complete = true
key = "Employee_ID"
previous_key = "previous_id"
correlate = ["national_id"]
[source.columns]
given_name = "First_Name"
family_name = "Last_Name"
hire_date = "Hire_Date"
last_day = "Termination_Date"
department = "Department"
previous_id = "Previous_ID"
national_id = "National_ID"

[[source]]
name = "contractors"
kind = "csv"
path = "exports/contractors.csv"
complete = false
key = "Contractor_No"
delimiter = ";"
date_format = "%d.%m.%Y"
affiliation = "contractor"
correlate = ["national_id"]
[source.columns]
given_name = "Vorname"
family_name = "Nachname"
hire_date = "Beginn"
last_day = "Ende"
department = "Abteilung"
national_id = "Ausweis"

[correlation]
hash_key = "file:id-hash-key"
hashed = ["national_id"]

[precedence]
department = ["hr", "contractors"]

[lifecycle]
prehire_days = 7
purge_after_days = 30

[login]
candidates = ['lower(normalize_diacritics(given_name + "." + family_name))']

[[target]]
name = "directory"
kind = "ldap"
url = "@LDAPS_URL@"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password = "env:ROSTER_LDAP_PASSWORD"
tls = { ca_file = '@CA_FILE@' }
managed = ["ou=people,dc=example,dc=org", "ou=groups,dc=example,dc=org"]
dn = '"uid=" + login + ",ou=people,dc=example,dc=org"'
object_classes = ["inetOrgPerson"]
correlate = "employeeNumber"
disable = { lock = true, move_to = "ou=leavers,ou=people,dc=example,dc=org" }
[target.attributes]
uid = { value = "login", when = "create" }
cn = 'given_name + " " + family_name'
sn = "family_name"
givenName = "given_name"
departmentNumber = "department"
# Mapped only to prove that even a mapped national ID leaves roster as its keyed hash.
description = "national_id"
[target.password]
must_change = false
delivery = { folder = { path = "passwords" } }
[[target.groups]]
dn = '"cn=contractors,ou=groups,dc=example,dc=org"'
when = '"contractor" in affiliations'
[[target.groups]]
dn = '"cn=employees,ou=groups,dc=example,dc=org"'
when = '"employee" in affiliations'

[safety]
group_removals = { count = 5 }
"#;

const HR_HEADER: &str =
    "Employee_ID,First_Name,Last_Name,Hire_Date,Termination_Date,Department,Previous_ID,National_ID\n";
const CONTRACTORS: &str = "Contractor_No;Vorname;Nachname;Beginn;Ende;Abteilung;Ausweis
C-17;Linus;Pauling;01.01.2025;31.03.2026;Research;111-22-3333
C-20;Ada;Byron;01.06.2025;31.03.2026;Analytics;987-65-4321
";
/// The national IDs as the exports write them, and as a differently formatted export might.
const CLEAR_IDS: [&str; 4] = ["111-22-3333", "111223333", "987-65-4321", "987654321"];

fn setup() -> Lab {
    let lab = Lab::start();
    let url = lab.ldap.ldaps_url().expect("the server was started with TLS");
    let ca = lab.ldap.ca_cert_path().expect("the server was started with TLS");
    lab.write_config(&CONFIG.replace("@LDAPS_URL@", &url).replace("@CA_FILE@", &ca.to_string_lossy()));
    fs::write(lab.dir().join("id-hash-key"), "5f1c0e9a7b3d4c2e8f6a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e\n")
        .expect("writing the hash key");
    lab
}

fn export(lab: &Lab, hr_rows: &str, contractors: &str) {
    lab.export_text(&format!("{HR_HEADER}{hr_rows}"));
    fs::write(lab.dir().join("exports/contractors.csv"), contractors).expect("writing the contractor export");
}

/// Every file roster keeps beside its config (the store, its journal), as text.
fn stored_bytes(lab: &Lab) -> String {
    let mut all = String::new();
    for entry in fs::read_dir(lab.dir()).expect("listing the roster folder") {
        let path = entry.expect("a folder entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if path.is_file() && name.starts_with("roster.db") {
            all.push_str(&String::from_utf8_lossy(&fs::read(&path).expect("reading a store file")));
        }
    }
    all
}

/// A contractor converted to an employee under a new worker ID keeps the person, login, account
/// and password; only the contractor affiliation's group goes. Another contractor hired by HR
/// without a previous ID is joined by her national ID, which exists only hashed beyond the reader.
#[test]
fn a_contractor_becomes_an_employee_under_a_new_worker_id() {
    let lab = setup();

    // Two contractors, and one employee of long standing.
    let day = "2026-03-02";
    let mary = "W-10,Mary,Jackson,2020-01-01,,Engineering,,555-00-1111\n";
    export(&lab, mary, CONTRACTORS);
    lab.run(day);
    let linus = lab.account("C-17");
    let ada = lab.account("C-20");
    assert_eq!(linus.value("uid"), "linus.pauling");
    assert_eq!(lab.groups_of("C-17"), ["contractors"]);
    assert_eq!(lab.groups_of("C-20"), ["contractors"]);
    assert_eq!(lab.groups_of("W-10"), ["employees"]);
    assert!(ada.value("description").starts_with("hmac:"), "{ada:#?}");
    lab.assert_nothing_to_do(day);

    // HR hires both from April: Linus under a new ID naming his contractor number, Ada by her
    // national ID only (written without dashes in HR). Neither becomes a joiner.
    let day = "2026-03-25";
    let hired = format!(
        "{mary}W-30,Linus,Pauling,2026-04-01,,Chemistry,C-17,999-99-9999\nW-40,Ada,Byron,2026-04-01,,Engineering,,987654321\n"
    );
    export(&lab, &hired, CONTRACTORS);
    let plan = lab.plan(day);
    let creates: Vec<&serde_json::Value> =
        plan["operations"].as_array().expect("operations").iter().filter(|o| o["op"] == "create").collect();
    assert!(creates.is_empty(), "no new account for a converted contractor: {creates:#?}");
    assert_eq!(plan["provenance"]["C-17"]["department"], "hr", "{plan:#}");
    assert_eq!(plan["provenance"]["C-17"]["last_day"], "contractors", "{plan:#}");
    lab.run(day);
    assert!(lab.accounts("W-30").is_empty() && lab.accounts("W-40").is_empty());
    assert_eq!(lab.account("C-17").value("departmentNumber"), "Chemistry", "HR wins the department");
    assert_eq!(lab.account("C-20").value("departmentNumber"), "Engineering");
    lab.assert_nothing_to_do(day);

    // The contracts ended yesterday, the employments begin today: same accounts, never disabled,
    // out of the contractors group and into the employees group.
    let day = "2026-04-01";
    lab.run(day);
    for (key, before) in [("C-17", &linus), ("C-20", &ada)] {
        let now = lab.account(key);
        assert_eq!(now.uuid(), before.uuid(), "the same account");
        assert_eq!(now.value("uid"), before.value("uid"), "the same login");
        assert!(!now.locked(), "{now:#?}");
        assert!(lab.can_log_in(key), "{key} still logs in");
        assert_eq!(lab.groups_of(key), ["employees"], "{key}");
    }
    lab.assert_nothing_to_do(day);

    // The contractor database drops them; HR stops naming the previous ID: nothing changes.
    let day = "2026-04-08";
    let hired = format!(
        "{mary}W-30,Linus,Pauling,2026-04-01,,Chemistry,,999-99-9999\nW-40,Ada,Byron,2026-04-01,,Engineering,,987654321\n"
    );
    export(&lab, &hired, "Contractor_No;Vorname;Nachname;Beginn;Ende;Abteilung;Ausweis\n");
    lab.assert_nothing_to_do(day);

    // The national IDs never left the readers in clear: not in the store (persons, plans of
    // every run, the audit trail), not in a plan, not in the directory.
    let store = stored_bytes(&lab);
    assert!(store.contains("hmac:"), "the store holds the hashed IDs");
    let plan_json = lab.roster(day, &["plan", "--format", "json"]).expect_code(0).stdout;
    let audit = lab.roster(day, &["audit", "show", "--limit", "1000"]).expect_code(0);
    assert!(audit.stdout.contains("hmac:"), "the audit trail shows the hashed description:\n{audit}");
    let directory = format!("{:?}", lab.dump());
    for clear in CLEAR_IDS {
        assert!(!store.contains(clear), "{clear} is in the store");
        assert!(!plan_json.contains(clear), "{clear} is in the plan");
        assert!(!audit.stdout.contains(clear), "{clear} is in the audit output");
        assert!(!directory.contains(clear), "{clear} is in the directory");
    }
}
