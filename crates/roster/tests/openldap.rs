//! The real `roster` binary against a real OpenLDAP: each test starts its own slapd (TLS on, free
//! ports, a temporary folder) with the harness in `roster-testkit`, writes a config and one HR
//! export per day, runs roster `--as-of` that day, and checks what the directory holds by reading
//! it back over LDAP, never by trusting what roster printed. The planner's own stories
//! (`crates/core/tests/stories`) prove the same lifecycle against a simulated directory; these prove
//! it holds on a server with its own schema, DN rules, ppolicy and refint.
//!
//! Fails, never skips, when slapd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use roster_testkit::OpenLdapOptions;
use support::{BASE, Entry, Hr, LEAVERS, LOCKED, Lab, PEOPLE, Worker};

/// The password an administrator gave an entry made before roster.
fn existing_password(key: &str) -> String {
    format!("Existing-{key}")
}

fn ou(department: &str) -> String {
    format!("ou={department},{PEOPLE}")
}

/// One company over two months, day by day: pre-hires (one starts, two are rescinded), a mover, a
/// manager who moves OU, leave and return, leavers (one a manager), a purge and its tombstone, a
/// rehire onto the old account and one after the purge; after every day, running again plans
/// nothing.
#[test]
fn a_company_over_two_months() {
    let lab = Lab::start();
    let mut hr = Hr::new([
        Worker::new("1001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("1002", "Grace", "Hopper", "Engineering").title("Engineer").manager("1001"),
        Worker::new("1003", "Alan", "Turing", "Research").title("Researcher").manager("1001"),
        Worker::new("1004", "Hedy", "Lamarr", "Engineering")
            .title("Radio Engineer")
            .manager("1001")
            .hired("2026-03-09"),
        Worker::new("1005", "Edsger", "Dijkstra", "Sales").title("Account Executive").manager("1001"),
        Worker::new("1006", "Barbara", "Liskov", "Engineering").title("Engineer").manager("1001"),
        Worker::new("1007", "John", "Smith", "Sales").title("Sales Representative").manager("1005"),
        Worker::new("1008", "Margaret", "Hamilton", "Research").title("Scientist").manager("1003"),
        Worker::new("1010", "Claude", "Shannon", "Sales").title("Sales Representative").manager("1007"),
    ]);

    // Day 1: everyone arrives; Hedy starts in a week, so her account exists but is locked.
    let day = "2026-03-02";
    lab.export(&hr);
    let check = lab.roster(day, &["check"]).expect_code(0);
    assert!(check.stdout.contains("target directory: connected; 0 account(s)"), "{check}");
    lab.run(day);
    for (key, uid, department) in [
        ("1001", "ada.lovelace", "Engineering"),
        ("1002", "grace.hopper", "Engineering"),
        ("1003", "alan.turing", "Research"),
        ("1004", "hedy.lamarr", "Engineering"),
        ("1005", "edsger.dijkstra", "Sales"),
        ("1006", "barbara.liskov", "Engineering"),
        ("1007", "john.smith", "Sales"),
        ("1008", "margaret.hamilton", "Research"),
        ("1010", "claude.shannon", "Sales"),
    ] {
        let account = lab.account(key);
        assert_eq!(account.value("uid"), uid, "{account:#?}");
        assert_eq!(account.value("mail"), format!("{uid}@example.org"));
        assert!(lab.is_below(key, &ou(department)), "{key} is not below {}: {}", ou(department), account.dn);
        assert_eq!(account.locked(), key == "1004", "{key}: {account:#?}");
    }
    assert_eq!(lab.account("1002").value("cn"), "Grace Hopper");
    assert_eq!(lab.account("1002").value("title"), "Engineer");
    assert_eq!(lab.groups_of("1002"), ["all-staff", "staff-engineering"]);
    assert_eq!(lab.groups_of("1004"), Vec::<String>::new(), "a pre-hire gets no access yet");
    assert_eq!(lab.groups_of("1007"), ["all-staff", "staff-sales"]);
    for (report, manager) in
        [("1002", "1001"), ("1004", "1001"), ("1005", "1001"), ("1007", "1005"), ("1008", "1003"), ("1010", "1007")]
    {
        assert!(lab.manager_is(report, manager), "{report}'s manager is not {manager}: {:#?}", lab.account(report));
    }
    assert!(lab.account("1001").values("manager").is_empty());
    assert!(lab.can_log_in("1002"), "an active account logs in");
    assert!(lab.can_log_in("1007"));
    assert!(!lab.can_log_in("1004"), "a locked pre-hire account cannot log in");
    lab.assert_nothing_to_do(day);
    let hedy = lab.account("1004").uuid().to_owned();

    // Day 2: Hedy's first day; Edsger moves from Sales to Research with a new title; two hires for
    // next week get their locked accounts.
    let day = "2026-03-09";
    let edsger = lab.account("1005");
    hr.worker("1005").department = "Research".into();
    hr.worker("1005").title = "Research Lead".into();
    hr.add(Worker::new("1011", "Kurt", "Goedel", "Research").manager("1005").hired("2026-03-16"));
    hr.add(Worker::new("1012", "Emmy", "Noether", "Research").manager("1005").hired("2026-03-16"));
    lab.export(&hr);
    lab.run(day);
    let hedy_now = lab.account("1004");
    assert!(!hedy_now.locked(), "unlocked on day one: {hedy_now:#?}");
    assert_eq!(hedy_now.uuid(), hedy);
    assert!(lab.can_log_in("1004"), "day one: Hedy logs in");
    assert_eq!(lab.groups_of("1004"), ["all-staff", "staff-engineering"]);
    let moved = lab.account("1005");
    assert!(lab.is_below("1005", &ou("Research")), "{}", moved.dn);
    assert_eq!(moved.uuid(), edsger.uuid(), "moved, not recreated");
    assert_eq!(moved.value("uid"), "edsger.dijkstra");
    assert_eq!(moved.value("title"), "Research Lead");
    assert_eq!(moved.value("departmentNumber"), "Research");
    assert_eq!(lab.groups_of("1005"), ["all-staff", "staff-research"]);
    assert!(lab.manager_is("1007", "1005"), "John's manager moved: {:#?}", lab.account("1007"));
    for key in ["1011", "1012"] {
        assert!(lab.account(key).locked(), "{:#?}", lab.account(key));
    }
    lab.assert_nothing_to_do(day);

    // Day 3: Ada, manager of five, moves to a new department (an OU that does not exist yet). The
    // server's refint covers member only: the reports' manager references are roster's to fix.
    // Both hires for Monday are off: one is rescinded in HR, the other vanishes from the export.
    let day = "2026-03-13";
    hr.worker("1001").department = "Management".into();
    hr.worker("1011").status = "Rescinded".into();
    hr.remove("1012");
    lab.export(&hr);
    lab.run(day);
    assert!(lab.is_below("1001", &ou("Management")), "{}", lab.account("1001").dn);
    for report in ["1002", "1003", "1004", "1005", "1006"] {
        assert!(lab.manager_is(report, "1001"), "{report} still points at Ada's old DN: {:#?}", lab.account(report));
    }
    assert_eq!(lab.groups_of("1001"), ["all-staff", "staff-management"]);
    for key in ["1011", "1012"] {
        assert!(lab.accounts(key).is_empty(), "a rescinded hire's account is removed: {:#?}", lab.accounts(key));
    }
    lab.assert_nothing_to_do(day);

    // Day 4: Barbara goes on leave (keeps her account, loses group access); John, Claude's manager,
    // and Margaret left on the 31st.
    let day = "2026-04-01";
    let margaret = lab.account("1008");
    hr.worker("1006").status = "On Leave".into();
    hr.worker("1007").last_day = "2026-03-31".into();
    hr.worker("1008").last_day = "2026-03-31".into();
    lab.export(&hr);
    lab.run(day);
    let barbara = lab.account("1006");
    assert!(!barbara.locked());
    assert!(lab.is_below("1006", &ou("Engineering")), "{}", barbara.dn);
    assert_eq!(lab.groups_of("1006"), Vec::<String>::new(), "on leave: no group access");
    assert!(lab.can_log_in("1006"), "on leave, still able to log in");
    for leaver in ["1007", "1008"] {
        let account = lab.account(leaver);
        assert!(account.locked(), "{account:#?}");
        assert!(lab.is_below(leaver, LEAVERS), "{}", account.dn);
        assert_eq!(lab.groups_of(leaver), Vec::<String>::new());
        assert!(account.values("memberOf").is_empty(), "{account:#?}");
    }
    assert!(!lab.can_log_in("1007"), "a leaver cannot log in");
    assert!(lab.manager_is("1010", "1007"), "the reference follows the manager's move: {:#?}", lab.account("1010"));
    lab.assert_nothing_to_do(day);

    // Day 5: Barbara is back; Margaret is rehired, onto the same account.
    let day = "2026-04-15";
    hr.worker("1006").status = "Active".into();
    hr.worker("1008").last_day = String::new();
    hr.worker("1008").hire = day.into();
    lab.export(&hr);
    lab.run(day);
    assert_eq!(lab.groups_of("1006"), ["all-staff", "staff-engineering"]);
    let rehired = lab.account("1008");
    assert_eq!(rehired.uuid(), margaret.uuid(), "a rehire gets the same account back");
    assert_eq!(rehired.value("uid"), "margaret.hamilton");
    assert!(!rehired.locked(), "{rehired:#?}");
    assert!(lab.is_below("1008", &ou("Research")), "{}", rehired.dn);
    assert_eq!(lab.groups_of("1008"), ["all-staff", "staff-research"]);
    assert!(lab.can_log_in("1008"), "the rehire logs in again");
    assert!(lab.manager_is("1008", "1003"));
    lab.assert_nothing_to_do(day);

    // Day 6: thirty days after John left, his account is deleted, and no reference to it is left.
    let day = "2026-05-01";
    let john = lab.account("1007");
    lab.run(day);
    assert!(lab.accounts("1007").is_empty(), "purged: {:#?}", lab.accounts("1007"));
    assert!(lab.search(BASE, ldap3::Scope::Subtree, "(uid=john.smith)").is_empty());
    let dangling = format!("(|(manager={0})(member={0}))", ldap3::ldap_escape(john.dn.as_str()));
    assert_eq!(lab.search(BASE, ldap3::Scope::Subtree, &dangling), [], "references to the purged account");
    assert!(lab.account("1010").values("manager").is_empty(), "{:#?}", lab.account("1010"));
    lab.assert_nothing_to_do(day);

    // Day 7: another John Smith joins Sales; the purged John's login stays his. Namesakes of the
    // two rescinded hires join too: their logins were never used, but were handed out once.
    let day = "2026-05-04";
    hr.add(Worker::new("1009", "John", "Smith", "Sales").title("Sales Representative").manager("1005").hired(day));
    hr.add(Worker::new("1013", "Kurt", "Goedel", "Research").manager("1005").hired(day));
    hr.add(Worker::new("1014", "Emmy", "Noether", "Research").manager("1005").hired(day));
    lab.export(&hr);
    lab.run(day);
    let newcomer = lab.account("1009");
    assert_ne!(newcomer.value("uid"), "john.smith", "the tombstone keeps the old login: {newcomer:#?}");
    assert_eq!(newcomer.value("uid"), "j.smith");
    assert_eq!(lab.groups_of("1009"), ["all-staff", "staff-sales"]);
    assert_eq!(lab.account("1013").value("uid"), "k.goedel");
    assert_eq!(lab.account("1014").value("uid"), "e.noether");
    lab.assert_nothing_to_do(day);

    // Day 8: the first John Smith comes back. His login was kept for him: a new account under it.
    let day = "2026-05-11";
    hr.worker("1007").last_day = String::new();
    hr.worker("1007").hire = day.into();
    lab.export(&hr);
    lab.run(day);
    let back = lab.account("1007");
    assert_eq!(back.value("uid"), "john.smith", "{back:#?}");
    assert_ne!(back.uuid(), john.uuid());
    assert!(!back.locked());
    assert!(lab.is_below("1007", &ou("Sales")), "{}", back.dn);
    assert_eq!(lab.groups_of("1007"), ["all-staff", "staff-sales"]);
    assert!(lab.manager_is("1010", "1007"), "{:#?}", lab.account("1010"));
    assert!(lab.can_log_in("1007"));
    lab.assert_nothing_to_do(day);
    lab.assert_nothing_to_do("2026-05-12");
}

/// Ten people in two departments, all active.
fn ten_people() -> Hr {
    let names = [
        ("Ada", "Lovelace"),
        ("Grace", "Hopper"),
        ("Alan", "Turing"),
        ("Hedy", "Lamarr"),
        ("Edsger", "Dijkstra"),
        ("Barbara", "Liskov"),
        ("Claude", "Shannon"),
        ("Margaret", "Hamilton"),
        ("Dorothy", "Vaughan"),
        ("Tim", "Berners-Lee"),
    ];
    Hr::new(names.iter().enumerate().map(|(i, (first, last))| {
        let department = if i % 2 == 0 { "Engineering" } else { "Sales" };
        Worker::new(&format!("20{i:02}"), first, last, department).title("Engineer")
    }))
}

/// The limits `roster run` names in "apply with `--allow a,b` if it is right".
fn suggested_allow(run: &support::Run) -> String {
    let (_, rest) = run.stderr.split_once("--allow ").unwrap_or_else(|| panic!("no --allow suggestion:\n{run}"));
    rest.split('`').next().unwrap_or_default().to_owned()
}

/// An export cut to three of its ten rows would make seven people leavers: the run is blocked with
/// the numbers, and nothing in the directory changes, down to the operational attributes, whether
/// run directly or from a saved plan. The next full export plans nothing; a person who allows the
/// limits the message names gets the cut applied.
#[test]
fn a_truncated_export_is_blocked_until_allowed() {
    let lab = Lab::start();
    let hr = ten_people();
    lab.export(&hr);
    lab.run("2026-03-02");
    let before = lab.dump();

    let full = hr.to_csv();
    let truncated: String = full.lines().take(1 + 3).map(|line| format!("{line}\n")).collect();
    lab.export_text(&truncated);
    let day = "2026-03-03";
    let saved = lab.dir().join("cut-plan.json");
    let saved = saved.to_string_lossy();
    let plan = lab.roster(day, &["plan", "--out", &saved]).expect_code(3);
    let blocked = lab.roster(day, &["run"]).expect_code(3);
    assert!(blocked.stderr.contains("BLOCKED"), "{blocked}");
    assert!(
        blocked.stderr.contains("source hr has 3 rows, 70.0% fewer than the 10 of the last good read"),
        "the message gives the numbers:\n{blocked}"
    );
    assert!(blocked.stderr.contains("7 persons disabled"), "{blocked}");
    let from_saved = lab.roster(day, &["apply", &saved]).expect_code(3);
    assert!(lab.dump() == before, "a blocked run changed the directory:\n{plan}\n{blocked}\n{from_saved}");

    lab.export(&hr);
    lab.assert_nothing_to_do(day);

    lab.export_text(&truncated);
    let allow = suggested_allow(&blocked);
    let mut limits: Vec<&str> = allow.split(',').collect();
    limits.sort_unstable();
    assert_eq!(limits, ["disables", "group_removals", "renames", "source_shrink"], "{blocked}");
    lab.roster(day, &["run", "--allow", &allow]).expect_code(0);
    for i in 0..10 {
        let key = format!("20{i:02}");
        let account = lab.account(&key);
        assert_eq!(account.locked(), i >= 3, "{account:#?}");
        assert_eq!(lab.is_below(&key, LEAVERS), i >= 3, "{}", account.dn);
    }
    lab.assert_nothing_to_do(day);
}

/// Damaged rows hold their persons as they were: a file that ends in the middle of a row is not a
/// complete export (nobody missing from it has left), and a row whose date does not parse is
/// quarantined instead of making its person a leaver. Nothing in the directory changes.
#[test]
fn damaged_rows_hold_their_people() {
    let lab = Lab::start();
    let hr = ten_people();
    lab.export(&hr);
    lab.run("2026-03-02");
    let before = lab.dump();

    let full = hr.to_csv();
    let cut = full.match_indices('\n').nth(4).map_or(0, |(i, _)| i) + 12;
    lab.export_text(&full[..cut]);
    let run = lab.roster("2026-03-03", &["run"]).expect_code(0);
    assert!(run.stdout.contains("may be truncated"), "the cut row is quarantined as a probable truncation:\n{run}");
    assert!(lab.dump() == before, "a run on a cut export changed the directory:\n{run}");

    let grace = "2001,Grace,Hopper,2020-01-06,";
    assert!(full.contains(grace), "{full}");
    lab.export_text(&full.replace(grace, "2001,Grace,Hopper,06/01/2020,"));
    let run = lab.roster("2026-03-04", &["run"]).expect_code(0);
    assert!(run.stdout.contains("2001: row"), "Grace's row is quarantined:\n{run}");
    assert!(lab.dump() == before, "a run with a quarantined row changed the directory:\n{run}");
}

/// A renamed column stops `check`, `plan` and `run` before anything is planned (exit 1: a source
/// could not be read), with a message naming the column the configuration expects; nothing changes.
#[test]
fn an_export_with_a_renamed_column_changes_nothing() {
    let lab = Lab::start();
    let hr = ten_people();
    lab.export(&hr);
    lab.run("2026-03-02");
    let before = lab.dump();

    let csv = hr.to_csv();
    let (header, rows) = csv.split_once('\n').expect("a header line");
    lab.export_text(&format!("{}\n{rows}", header.replace("Department", "Dept_Name")));
    for command in ["check", "plan", "run"] {
        let run = lab.roster("2026-03-03", &[command]).expect_code(1);
        assert!(run.stderr.contains(r#"lacks column "Department""#), "the message names the missing column:\n{run}");
        assert!(run.stderr.contains("Dept_Name"), "and shows the header it found:\n{run}");
    }
    assert!(lab.dump() == before, "a run on an export with a renamed column changed the directory");
}

/// The operations of a plan as JSON values, with the person each is for.
fn operations(plan: &serde_json::Value) -> &[serde_json::Value] {
    plan["operations"].as_array().map_or(&[], Vec::as_slice)
}

fn ops_for<'a>(plan: &'a serde_json::Value, person: &str, op: &str) -> Vec<&'a serde_json::Value> {
    operations(plan).iter().filter(|o| o["person"] == person && o["op"] == op).collect()
}

/// `roster plan --out FILE` in the lab's folder: the file's path, and the plan it holds.
fn save_plan(lab: &Lab, day: &str, file: &str) -> (String, serde_json::Value) {
    let saved = lab.dir().join(file).to_string_lossy().into_owned();
    lab.roster(day, &["plan", "--out", &saved]).expect_code(0);
    let plan = serde_json::from_str(&std::fs::read_to_string(&saved).expect("the saved plan"))
        .expect("the saved plan is JSON");
    (saved, plan)
}

/// A plan saved for review is applied later, each operation only where what it was planned against
/// still holds: a title an administrator changed in between, and an entry an administrator deleted
/// and made again under the same DN, are conflicts, skipped and reported, not overwritten; the rest
/// lands; the exit code says "partial". A plan edited to write outside the managed subtrees writes
/// nothing there, and a saved plan made with another configuration is refused outright.
#[test]
fn a_saved_plan_skips_what_an_administrator_changed_since() {
    let lab = Lab::start();
    let mut hr = ten_people();
    lab.export(&hr);
    lab.run("2026-03-02");

    let day = "2026-03-09";
    hr.worker("2000").title = "Staff Engineer".into();
    hr.worker("2001").title = "Sales Lead".into();
    hr.worker("2002").title = "Lead Engineer".into();
    hr.add(Worker::new("2010", "Katherine", "Johnson", "Engineering").title("Engineer").hired(day));
    lab.export(&hr);
    let (saved, plan) = save_plan(&lab, day, "reviewed-plan.json");
    let [edited] = ops_for(&plan, "2000", "update")[..] else { panic!("one update for 2000: {plan:#}") };
    let [replaced] = ops_for(&plan, "2002", "update")[..] else { panic!("one update for 2002: {plan:#}") };

    let admin_title = "Principal Engineer (set by IT)";
    let ada = lab.account("2000");
    lab.ldap
        .ldapmodify(&format!("dn: {}\nchangetype: modify\nreplace: title\ntitle: {admin_title}\n", ada.dn))
        .expect("the administrator's edit");
    let alan = lab.account("2002");
    lab.ldap.ldapmodify(&format!("dn: {}\nchangetype: delete\n", alan.dn)).expect("the administrator's delete");
    lab.ldap
        .ldapadd(&format!(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: alan.turing\ncn: Alan Turing\nsn: Turing\ntitle: Engineer\nemployeeNumber: 2002\n",
            alan.dn
        ))
        .expect("the administrator's new entry");
    let applied = lab.roster(day, &["apply", &saved]).expect_code(4);
    for op in [edited, replaced] {
        let reported = format!("skipped: #{} update {}: conflict", op["id"], op["dn"].as_str().unwrap_or_default());
        assert!(applied.stderr.contains(&reported), "the conflicting update is reported ({reported}):\n{applied}");
    }
    assert!(applied.stdout.contains("2 skipped"), "{applied}");
    assert_eq!(lab.account("2000").value("title"), admin_title, "the administrator's value is not overwritten blind");
    assert_eq!(lab.account("2002").value("title"), "Engineer", "an entry replaced since planning is not touched");
    assert_eq!(lab.account("2001").value("title"), "Sales Lead", "the rest of the plan landed");
    assert_eq!(lab.account("2010").value("uid"), "katherine.johnson", "the rest of the plan landed");
    assert_eq!(lab.groups_of("2010"), ["all-staff", "staff-engineering"]);

    // The next plan shows the difference again, against the administrator's value, for a person to
    // decide.
    let next = lab.dir().join("next-plan.json");
    let next = next.to_string_lossy();
    let text = lab.roster(day, &["plan", "--format", "json", "--out", &next]).expect_code(0);
    let mut plan: serde_json::Value = serde_json::from_str(&text.stdout).expect("the plan is JSON");
    let [retry] = ops_for(&plan, "2000", "update")[..] else { panic!("one update for 2000: {plan:#}") };
    assert_eq!(retry["changes"][0]["old"][0], admin_title, "{retry:#}");

    // Someone edits the saved plan to aim that update at an entry outside the managed subtrees.
    let service = lab.ldap.service_dn().to_owned();
    let before = lab.dump();
    for op in plan["operations"].as_array_mut().into_iter().flatten() {
        op["dn"] = serde_json::Value::from(service.as_str());
    }
    let tampered = lab.dir().join("tampered-plan.json");
    std::fs::write(&tampered, plan.to_string()).expect("writing the edited plan");
    let refused = lab.roster(day, &["apply", &tampered.to_string_lossy()]).expect_code(4);
    assert!(refused.stderr.contains("outside the managed subtrees"), "{refused}");
    assert!(lab.dump() == before, "an edited plan wrote outside the managed subtrees:\n{refused}");

    // After the configuration changed, the saved plan is refused before anything is read.
    lab.write_config(&lab.config().replace("purge_after_days = 30", "purge_after_days = 60"));
    let refused = lab.roster(day, &["apply", &next]).expect_code(2);
    assert!(refused.stderr.contains("another configuration"), "{refused}");
    assert!(lab.dump() == before, "a refused plan changed the directory:\n{refused}");
}

/// Names that need escaping in a DN (`,` `+` `"` `\` `#` `;` `<` `>` `=`), in the names that make
/// up the account's RDN and in the department that makes its OU (one of them shaped like a DN
/// of another subtree), and LDAP filter injection text in every field (the key included):
/// everything lands as exactly the text HR sent, trimmed of surrounding spaces as the CSV reader
/// does; nothing else in the directory changes, and running again plans nothing.
#[test]
fn hostile_names_land_escaped_and_harmless() {
    let lab = Lab::start();
    // Names in the RDN, where they are most exposed.
    lab.write_config(&lab.config().replace(
        r#"dn = '"uid=" + login + ",ou=" + department + ",ou=people,dc=example,dc=org"'"#,
        r#"dn = '"cn=" + given_name + " " + family_name + ",ou=" + department + ",ou=people,dc=example,dc=org"'"#,
    ));
    lab.ldap
        .ldapadd(&format!(
            "dn: uid=admin,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: admin\ncn: admin\nsn: admin\nemployeeNumber: admin\n\n\
             dn: uid=uid,ou=services,{BASE}\nobjectClass: inetOrgPerson\nuid: uid\ncn: uid\nsn: uid\nemployeeNumber: *\n"
        ))
        .expect("entries that are not roster's");
    let before = lab.dump();

    let emea = r#"Sales, EMEA + "Partners""#;
    let west = r"#Ops\Team; <West>";
    let injected = "*)(uid=*";
    let escalate = "admin)(|(uid=*";
    let mut hr = Hr::new([
        Worker::new("3001", r#"Zoë "Z""#, "O'Neil, Jr.", emea).title(escalate),
        Worker::new("3002", "#Hash", r"Back\slash", west).title("a=b").manager("3001"),
        Worker::new(injected, injected, "Semi;colon <Angle>", injected).title(injected).manager(escalate),
        Worker::new(escalate, escalate, "Plus+Equals=", " Padded ").title(escalate).manager(injected),
        Worker::new("3005", " Lead", "Trail ", emea).title(" spaced ").manager("3002"),
        Worker::new("3006", "Eve", "Dropper", "x,ou=groups").title("Auditor"),
    ]);
    lab.export(&hr);
    let day = "2026-03-02";
    lab.run(day);

    let expected = [
        ("3001", r#"Zoë "Z""#, "O'Neil, Jr.", emea, escalate),
        ("3002", "#Hash", r"Back\slash", west, "a=b"),
        (injected, injected, "Semi;colon <Angle>", injected, injected),
        (escalate, escalate, "Plus+Equals=", "Padded", escalate),
        ("3005", "Lead", "Trail", emea, "spaced"),
        ("3006", "Eve", "Dropper", "x,ou=groups", "Auditor"),
    ];
    for (key, first, last, department, title) in expected {
        let account = lab.account(key);
        assert_eq!(account.value("employeeNumber"), key);
        assert_eq!(account.value("givenName"), first, "{account:#?}");
        assert_eq!(account.value("sn"), last, "{account:#?}");
        assert_eq!(account.value("cn"), format!("{first} {last}"), "{account:#?}");
        assert_eq!(account.value("departmentNumber"), department, "{account:#?}");
        assert_eq!(account.value("title"), title, "{account:#?}");
        let parent = format!("ou={},{PEOPLE}", ldap3::dn_escape(department));
        assert!(lab.is_below(key, &parent), "{key} is not below {parent}: {}", account.dn);
        let staff = format!("staff-{}", department.to_lowercase());
        assert_eq!(lab.groups_of(key), ["all-staff".to_owned(), staff], "{account:#?}");
        assert!(account.value("uid").chars().all(|c| c.is_ascii_lowercase() || c == '.'), "{account:#?}");
    }
    for (report, manager) in [("3002", "3001"), (injected, escalate), (escalate, injected), ("3005", "3002")] {
        assert!(lab.manager_is(report, manager), "{report}'s manager is not {manager}: {:#?}", lab.account(report));
    }
    let accounts = lab.search(BASE, ldap3::Scope::Subtree, "(objectClass=inetOrgPerson)");
    assert_eq!(accounts.len(), expected.len() + 2, "one per person and the two that were there: {accounts:#?}");
    // Every entry that was there is as it was; hasSubordinates is computed, and ou=groups now has
    // children.
    let stored = |entry: &Entry| {
        let mut entry = entry.clone();
        entry.attrs.remove("hassubordinates");
        entry
    };
    let after = lab.dump();
    for (dn, entry) in &before {
        assert_eq!(after.get(dn).map(stored), Some(stored(entry)), "{dn} changed");
    }
    lab.assert_nothing_to_do(day);

    // The next day Zoë moves to the other hostile department and a surname changes: both renames.
    let day = "2026-03-03";
    hr.worker("3001").department = west.into();
    hr.worker("3002").last = r#"Back\slash, "Q""#.into();
    lab.export(&hr);
    lab.run(day);
    assert!(lab.is_below("3001", &format!("ou={},{PEOPLE}", ldap3::dn_escape(west))), "{}", lab.account("3001").dn);
    assert_eq!(lab.account("3002").value("cn"), r#"#Hash Back\slash, "Q""#);
    assert_eq!(lab.account("3002").value("sn"), r#"Back\slash, "Q""#);
    assert!(lab.manager_is("3002", "3001"), "{:#?}", lab.account("3002"));
    assert!(lab.manager_is("3005", "3002"), "{:#?}", lab.account("3005"));
    assert_eq!(lab.groups_of("3001"), ["all-staff".to_owned(), format!("staff-{}", west.to_lowercase())]);
    assert_eq!(lab.account("3001").values("cn"), [r#"Zoë "Z" O'Neil, Jr."#]);
    lab.assert_nothing_to_do(day);
}

fn notices<'a>(plan: &'a serde_json::Value, person: &str, kind: &str) -> Vec<&'a serde_json::Value> {
    let all = plan["notices"].as_array().map_or(&[][..], Vec::as_slice);
    all.iter().filter(|n| n["person"] == person && n["kind"] == kind).collect()
}

/// Entries that existed before roster, carrying the person's key in employeeNumber, are adopted on
/// the first run (no duplicate, their uid kept, moved where the DN template puts them), and one an
/// administrator disabled stays disabled, with a notice in every plan; so does an account roster
/// made that an administrator locks later. Two entries with one person's key are a dispute held
/// for a person, and a login held by an entry that is no one's in HR is not handed out again.
#[test]
fn existing_entries_are_adopted_and_an_admins_lock_is_kept() {
    let lab = Lab::start();
    lab.ldap
        .ldapadd(&format!(
            "dn: ou=Engineering,{PEOPLE}\nobjectClass: organizationalUnit\nou: Engineering\n\n\
             dn: uid=ada,ou=Engineering,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada L.\nsn: Lovelace\n\
             employeeNumber: 4001\nmail: ada@corp.example\nuserPassword: {ada}\n\n\
             dn: uid=grace,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: grace\ncn: Grace\nsn: Hopper\nemployeeNumber: 4002\n\n\
             dn: uid=alan,ou=Engineering,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: alan\ncn: Alan Turing\nsn: Turing\n\
             employeeNumber: 4003\nuserPassword: {alan}\npwdAccountLockedTime: {LOCKED}\n\n\
             dn: uid=claude.shannon,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: claude.shannon\ncn: Claude Shannon\n\
             sn: Shannon\nemployeeNumber: 9999\n\n\
             dn: uid=emmy,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: emmy\ncn: Emmy\nsn: Noether\nemployeeNumber: 4005\n\n\
             dn: uid=noether,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: noether\ncn: E. Noether\nsn: Noether\n\
             employeeNumber: 4005\n",
            ada = existing_password("4001"),
            alan = existing_password("4003"),
        ))
        .expect("entries made before roster");
    let before = lab.dump();
    let hr = Hr::new([
        Worker::new("4001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("4002", "Grace", "Hopper", "Engineering").title("Engineer").manager("4001"),
        Worker::new("4003", "Alan", "Turing", "Engineering").title("Engineer").manager("4001"),
        Worker::new("4004", "Claude", "Shannon", "Engineering").title("Engineer").manager("4001"),
        Worker::new("4005", "Emmy", "Noether", "Engineering").title("Mathematician").manager("4001"),
    ]);
    lab.export(&hr);
    let day = "2026-03-02";
    let plan = lab.plan(day);
    for key in ["4001", "4002", "4003"] {
        assert_eq!(ops_for(&plan, key, "adopt").len(), 1, "{key} is adopted: {plan:#}");
        assert!(ops_for(&plan, key, "create").is_empty(), "{key} is not created again: {plan:#}");
    }
    assert_eq!(notices(&plan, "4003", "disabled_outside_roster").len(), 1, "{plan:#}");
    assert_eq!(notices(&plan, "4005", "disputed").len(), 1, "{plan:#}");
    assert!(operations(&plan).iter().all(|op| op["person"] != "4005"), "nothing for a disputed person: {plan:#}");
    lab.run(day);

    let original = |uid: &str| before.values().find(|e| e.values("uid") == [uid]).expect("made before roster").clone();
    for (key, uid, mail) in [("4001", "ada", "ada@corp.example"), ("4002", "grace", ""), ("4003", "alan", "")] {
        let account = lab.account(key);
        assert_eq!(account.uuid(), original(uid).uuid(), "{key} adopted, not duplicated");
        assert_eq!(account.value("uid"), uid, "the uid that was there is kept");
        assert_eq!(
            account.values("mail"),
            original(uid).values("mail"),
            "create-only attributes are left alone ({mail})"
        );
        assert!(lab.is_below(key, &ou("Engineering")), "{}", account.dn);
        assert_eq!(account.value("title"), if key == "4001" { "Head of Engineering" } else { "Engineer" });
    }
    assert_eq!(lab.account("4001").value("cn"), "Ada Lovelace", "mapped attributes are roster's after adoption");
    assert!(lab.can_bind("4001", &existing_password("4001")), "adopting does not lock anyone out");
    assert!(lab.account("4003").locked(), "an administrator's lock is not lifted");
    assert!(!lab.can_bind("4003", &existing_password("4003")));
    assert_eq!(lab.account("4004").value("uid"), "c.shannon", "claude.shannon belongs to another entry");
    let after = lab.dump();
    let untouched: Vec<&String> = before
        .keys()
        .filter(|dn| ["uid=claude.shannon,", "uid=emmy,", "uid=noether,"].iter().any(|p| dn.starts_with(p)))
        .collect();
    assert_eq!(untouched.len(), 3);
    for dn in untouched {
        assert_eq!(after.get(dn), before.get(dn), "{dn} is no one's to change");
    }
    assert!(lab.manager_is("4002", "4001"));

    // Later an administrator locks Claude, whom roster made. roster leaves it locked, and the
    // reconciliation report (which evaluates everyone; a daily run evaluates only the persons
    // whose records changed) names both locked accounts.
    let claude = lab.account("4004");
    lab.ldap
        .ldapmodify(&format!(
            "dn: {}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: {LOCKED}\n",
            claude.dn
        ))
        .expect("the administrator's lock");
    for day in ["2026-03-03", "2026-03-04"] {
        let report = lab.roster(day, &["reconcile"]).expect_code(0);
        assert!(report.stdout.contains("Enabled or disabled outside roster (2)"), "{report}");
        assert!(report.stdout.contains(&claude.dn), "{report}");
        lab.assert_nothing_to_do(day);
        lab.run(day);
        assert!(lab.account("4003").locked());
        assert!(lab.account("4004").locked());
    }
}

/// A groupOfNames cannot be empty: when its last member leaves, the group keeps a placeholder
/// member (by default its own DN) and stays valid, and the placeholder goes when a real member comes.
#[test]
fn a_group_whose_last_member_leaves_stays_valid() {
    let lab = Lab::start();
    let mut hr = Hr::new([
        Worker::new("5001", "Ada", "Lovelace", "Legal").title("Counsel"),
        Worker::new("5002", "Grace", "Hopper", "Engineering").title("Engineer"),
    ]);
    lab.export(&hr);
    lab.run("2026-03-02");
    assert_eq!(lab.groups_of("5001"), ["all-staff", "staff-legal"]);

    let day = "2026-04-01";
    hr.worker("5001").last_day = "2026-03-31".into();
    lab.export(&hr);
    lab.run(day);
    let legal = lab.group("staff-legal").expect("the group stays");
    assert_eq!(legal.values("objectClass"), ["groupOfNames"]);
    let [placeholder] = legal.values("member") else { panic!("one placeholder member: {legal:#?}") };
    assert!(placeholder.eq_ignore_ascii_case(&legal.dn), "the placeholder is the group itself: {legal:#?}");
    assert_eq!(lab.groups_of("5001"), Vec::<String>::new());
    lab.assert_nothing_to_do(day);

    let day = "2026-04-13";
    hr.add(Worker::new("5003", "Claude", "Shannon", "Legal").title("Counsel").hired(day));
    lab.export(&hr);
    lab.run(day);
    let legal = lab.group("staff-legal").expect("the group stays");
    assert_eq!(legal.values("member"), [lab.account("5003").dn], "a real member again, placeholder gone");
    lab.assert_nothing_to_do(day);
}

/// The server refuses one create (HR left the surname empty, and inetOrgPerson requires sn): that
/// operation fails alone, what depends on it is skipped, everything else lands, and the exit code
/// says "partial". An account an administrator deleted is made again. Each run retries the failed
/// create, and once HR fixes the row it lands.
#[test]
fn a_create_the_server_refuses_fails_alone_and_is_retried() {
    let lab = Lab::start();
    let mut hr = ten_people();
    lab.export(&hr);
    lab.run("2026-03-02");
    let grace = lab.account("2001");
    lab.ldap.ldapmodify(&format!("dn: {}\nchangetype: delete\n", grace.dn)).expect("the administrator's delete");

    hr.add(Worker::new("2020", "Cher", "", "Sales").title("Singer"));
    hr.worker("2003").title = "Staff Engineer".into();
    lab.export(&hr);
    for day in ["2026-03-03", "2026-03-04"] {
        // The full read finds the account deleted outside roster (a daily run reads in part).
        let run = lab.roster(day, &["run", "--full-read"]).expect_code(4);
        assert!(run.stderr.contains("requires attribute 'sn'"), "the server's reason is reported:\n{run}");
        assert!(lab.accounts("2020").is_empty());
    }
    let recreated = lab.account("2001");
    assert_eq!(recreated.value("uid"), "grace.hopper", "made again under the person's login");
    assert_ne!(recreated.uuid(), grace.uuid());
    assert_eq!(lab.groups_of("2001"), ["all-staff", "staff-sales"]);
    assert_eq!(lab.account("2003").value("title"), "Staff Engineer");

    hr.worker("2020").last = "Sarkisian".into();
    lab.export(&hr);
    let day = "2026-03-05";
    lab.run(day);
    assert_eq!(lab.account("2020").value("uid"), "cher.sarkisian", "{:#?}", lab.account("2020"));
    assert_eq!(lab.groups_of("2020"), ["all-staff", "staff-sales"]);
    lab.assert_nothing_to_do(day);
}

/// A person whose department is empty would get a DN with an empty OU name: roster reports them
/// (a notice saying why) and plans nothing for them, rather than sending a container and an
/// account the server refuses on every run; everyone else proceeds.
#[test]
fn a_person_without_a_department_is_reported_not_sent() {
    let lab = Lab::start();
    let mut hr = ten_people();
    hr.add(Worker::new("2021", "Nadia", "Boulanger", "").title("Conductor"));
    lab.export(&hr);
    let day = "2026-03-02";
    let plan = lab.plan(day);
    assert_eq!(notices(&plan, "2021", "evaluation_failed").len(), 1, "{plan:#}");
    let empty_names: Vec<&serde_json::Value> =
        operations(&plan).iter().filter(|op| op["dn"].as_str().is_some_and(|dn| dn.contains("=,"))).collect();
    assert_eq!(empty_names, Vec::<&serde_json::Value>::new(), "operations on DNs with an empty name");
    lab.run(day);
    assert!(lab.accounts("2021").is_empty());
    assert_eq!(lab.search(BASE, ldap3::Scope::Subtree, "(objectClass=inetOrgPerson)").len(), 10);
    lab.assert_nothing_to_do(day);
}

/// Runs that cannot start change nothing, and say why with the exit code a scheduler can act on:
/// a configuration error (2, with the file and line), a bind password that is missing or wrong (1,
/// and the password never printed), the directory down (1). Once it is back, the run converges.
#[test]
fn runs_that_cannot_start_change_nothing() {
    let mut lab = Lab::start();
    let mut hr = ten_people();
    lab.export(&hr);
    lab.run("2026-03-02");
    hr.worker("2004").department = "Research".into();
    lab.export(&hr);
    let before = lab.dump();
    let day = "2026-03-03";

    let config = lab.config();
    lab.write_config(&config.replace("purge_after_days = 30", "purge_after_dayz = 30"));
    let run = lab.roster(day, &["run"]).expect_code(2);
    assert!(run.stderr.contains("purge_after_dayz"), "{run}");
    assert!(run.stderr.contains("roster.toml:"), "the message names the file and line:\n{run}");
    lab.write_config(&config.replace(r#"title = "title""#, r#"title = "titel""#));
    let run = lab.roster(day, &["run"]).expect_code(2);
    assert!(run.stderr.contains("titel"), "{run}");
    lab.write_config(&config);

    let run = lab.roster_with_password(None, day, &["run"]).expect_code(1);
    assert!(run.stderr.contains("ROSTER_LDAP_PASSWORD is not set"), "{run}");
    let wrong = "not-the-Password-42";
    let run = lab.roster_with_password(Some(wrong), day, &["run"]).expect_code(1);
    assert!(run.stderr.contains("invalidCredentials") || run.stderr.contains("(49)"), "{run}");
    assert!(!run.stderr.contains(wrong) && !run.stdout.contains(wrong), "the password is printed:\n{run}");
    assert!(lab.dump() == before, "a run that could not start changed the directory");

    lab.ldap.stop().expect("stopping slapd");
    let run = lab.roster(day, &["run"]).expect_code(1);
    assert!(run.stderr.contains("target directory"), "{run}");
    lab.ldap.start_again().expect("starting slapd again");
    assert!(lab.dump() == before, "a run against a stopped directory changed it");
    lab.run(day);
    assert!(lab.is_below("2004", &ou("Research")), "{}", lab.account("2004").dn);
    lab.assert_nothing_to_do(day);
}

/// With `on_leave = "disable"`, leave locks the account and moves it to the leavers OU, and the
/// return brings the same account back, unlocked, to its department and groups; the reports'
/// manager references follow it both ways.
#[test]
fn leave_under_the_disable_policy_locks_and_returns() {
    let lab = Lab::start();
    lab.write_config(&lab.config().replace(r#"on_leave = "remove_groups""#, r#"on_leave = "disable""#));
    let mut hr = Hr::new([
        Worker::new("6001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("6002", "Grace", "Hopper", "Engineering").title("Engineer").manager("6001"),
    ]);
    lab.export(&hr);
    lab.run("2026-03-02");
    let ada = lab.account("6001");

    let day = "2026-04-01";
    hr.worker("6001").status = "On Leave".into();
    lab.export(&hr);
    lab.run(day);
    let away = lab.account("6001");
    assert!(away.locked(), "{away:#?}");
    assert!(lab.is_below("6001", LEAVERS), "{}", away.dn);
    assert_eq!(lab.groups_of("6001"), Vec::<String>::new());
    assert!(!lab.can_log_in("6001"));
    assert!(lab.manager_is("6002", "6001"), "{:#?}", lab.account("6002"));
    lab.assert_nothing_to_do(day);

    let day = "2026-05-04";
    hr.worker("6001").status = "Active".into();
    lab.export(&hr);
    lab.run(day);
    let back = lab.account("6001");
    assert_eq!(back.uuid(), ada.uuid());
    assert!(!back.locked(), "{back:#?}");
    assert!(lab.is_below("6001", &ou("Engineering")), "{}", back.dn);
    assert_eq!(lab.groups_of("6001"), ["all-staff", "staff-engineering"]);
    assert!(lab.can_log_in("6001"));
    assert!(lab.manager_is("6002", "6001"), "{:#?}", lab.account("6002"));
    lab.assert_nothing_to_do(day);
}

/// A person's login is theirs for good. When the DN a mover should get is taken by an entry made
/// outside roster (here a test account an administrator made with the same uid in the new OU),
/// roster must not rename the account to a numbered form of its uid RDN: with a `uid=<login>` DN
/// template that rewrites the uid, the login itself, to `ada.lovelace (2)`.
#[test]
fn a_move_onto_a_taken_dn_keeps_the_login() {
    let lab = Lab::start();
    let mut hr = Hr::new([
        Worker::new("7001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("7002", "Grace", "Hopper", "Engineering").title("Engineer").manager("7001"),
    ]);
    lab.export(&hr);
    lab.run("2026-03-02");
    lab.ldap
        .ldapadd(&format!(
            "dn: ou=Management,{PEOPLE}\nobjectClass: organizationalUnit\nou: Management\n\n\
             dn: uid=ada.lovelace,ou=Management,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: ada.lovelace\n\
             cn: Test account\nsn: Test\n"
        ))
        .expect("an administrator's test account");
    let before = lab.dump();

    let day = "2026-03-03";
    hr.worker("7001").department = "Management".into();
    lab.export(&hr);
    lab.roster(day, &["run"]);
    assert_eq!(lab.account("7001").values("uid"), ["ada.lovelace"], "the login changed: {:#?}", lab.account("7001"));
    assert!(lab.can_log_in("7001"));
    assert!(lab.manager_is("7002", "7001"), "{:#?}", lab.account("7002"));
    let test_account = format!("uid=ada.lovelace,ou=management,{PEOPLE}");
    assert_eq!(lab.dump().get(&test_account), before.get(&test_account), "the administrator's entry is not roster's");
}

/// A read-only account for `roster plan`, held to a size limit of three entries per search (as AD
/// holds everyone to MaxPageSize): roster pages through all ten accounts and their groups, so the
/// plan after a run is still empty rather than seven creates.
#[test]
fn a_size_limited_read_only_account_sees_everything() {
    let lab = Lab::start_with(OpenLdapOptions { size_limit_for_service: Some(3), ..OpenLdapOptions::default() });
    lab.export(&ten_people());
    let day = "2026-03-02";
    lab.run(day);
    let config = lab.config();
    let read_only = config
        .replace(r#"bind_dn = "cn=admin,dc=example,dc=org""#, &format!("bind_dn = \"{}\"", lab.ldap.service_dn()));
    assert_ne!(read_only, config);
    lab.write_config(&read_only);
    let run =
        lab.roster_with_password(Some(lab.ldap.service_password()), day, &["plan", "--format", "json"]).expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("the plan is JSON");
    assert!(operations(&plan).is_empty(), "{plan:#}");
}

/// Initial passwords from `[target.password]`, delivered to files: the active account logs in with
/// its password; the pre-hire account, created locked, stays locked although its password was set
/// right after the create (OpenLDAP's ppolicy drops `pwdAccountLockedTime` whenever a password
/// changes), and logs in from day one.
#[test]
fn an_initial_password_does_not_unlock_a_pre_hire() {
    let lab = Lab::start();
    assert!(lab.config().contains("[target.password]"), "the fixture generates initial passwords");
    let mut hr = Hr::new([
        Worker::new("8001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("8002", "Hedy", "Lamarr", "Engineering").title("Radio Engineer").hired("2026-03-09"),
    ]);
    lab.export(&hr);
    lab.run("2026-03-02");
    assert!(lab.can_log_in("8001"), "the active account logs in with its password");
    let hedy = lab.account("8002");
    assert!(hedy.locked(), "a pre-hire account is locked until day one: {hedy:#?}");
    assert!(!lab.can_log_in("8002"), "a pre-hire logs in a week early");

    let day = "2026-03-09";
    hr.worker("8002").title = "Engineer".into();
    lab.export(&hr);
    lab.run(day);
    assert!(!lab.account("8002").locked());
    assert!(lab.can_log_in("8002"), "day one: Hedy logs in");
    lab.assert_nothing_to_do(day);
}

/// `roster reconcile` reports a title changed by hand and an account no person owns (orphans are
/// reported even though the configuration ignores them), changes nothing without `--apply`, and
/// with it restores the title; the orphan stays, reported.
#[test]
fn reconcile_reports_drift_and_orphans_and_restores_on_request() {
    let lab = Lab::start();
    let hr = Hr::new([Worker::new("5001", "Ada", "Lovelace", "Legal").title("Counsel")]);
    lab.export(&hr);
    lab.run("2026-03-02");
    let ada = lab.account("5001");
    lab.ldap
        .ldapmodify(&format!("dn: {}\nchangetype: modify\nreplace: title\ntitle: Hacked\n", ada.dn))
        .expect("the administrator's edit");
    let stray = format!("uid=stray,{}", ou("Legal"));
    lab.ldap
        .ldapmodify(&format!(
            "dn: {stray}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: stray\ncn: Stray\nsn: Stray\n"
        ))
        .expect("an account roster does not know");

    let report = lab.roster("2026-03-02", &["reconcile"]).expect_code(0);
    assert!(
        report.stdout.contains("Accounts no person owns (1)") && report.stdout.contains(&stray),
        "{}",
        report.stdout
    );
    assert!(report.stdout.contains("restore: title changed outside roster"), "{}", report.stdout);
    assert_eq!(lab.account("5001").values("title"), ["Hacked"], "a report changes nothing");

    lab.roster("2026-03-02", &["reconcile", "--apply"]).expect_code(0);
    assert_eq!(lab.account("5001").values("title"), ["Counsel"]);
    let again = lab.roster("2026-03-02", &["reconcile"]).expect_code(0);
    assert!(again.stdout.contains(&stray) && !again.stdout.contains("To restore"), "{}", again.stdout);
}

/// Three leavers' removals from the groups they leave go to slapd as one modify per group (slapd
/// rewrites a group whole for each modify). One of them an administrator took out of `all-staff`
/// by hand after the plan was saved: that group's one modify is refused as a whole, and each
/// removal goes again on its own. Every removal is done, each with its own row in the audit trail,
/// and the groups hold exactly who stays.
#[test]
fn the_removals_from_one_group_go_in_one_modify_each_with_its_own_outcome() {
    let lab = Lab::start_with(OpenLdapOptions { log_level: "stats".to_owned(), ..OpenLdapOptions::default() });
    let mut hr = ten_people();
    lab.export(&hr);
    lab.run("2026-03-02");

    let day = "2026-04-01";
    let leavers = ["2001", "2003", "2005"];
    for key in leavers {
        hr.worker(key).last_day = "2026-03-31".into();
    }
    lab.export(&hr);
    let (saved, plan) = save_plan(&lab, day, "leavers-plan.json");
    let group_dn = |cn: &str| lab.group(cn).expect("the group exists").dn;
    let (all_staff, staff_sales) = (group_dn("all-staff"), group_dn("staff-sales"));
    let removals = |group: &str| -> Vec<u64> {
        operations(&plan)
            .iter()
            .filter(|o| {
                o["op"] == "remove_member" && o["group"].as_str().is_some_and(|g| g.eq_ignore_ascii_case(group))
            })
            .filter_map(|o| o["id"].as_u64())
            .collect()
    };
    assert_eq!((removals(&all_staff).len(), removals(&staff_sales).len()), (3, 3), "{plan:#}");

    let gone = lab.account("2003");
    lab.ldap
        .ldapmodify(&format!("dn: {all_staff}\nchangetype: modify\ndelete: member\nmember: {}\n", gone.dn))
        .expect("the administrator's removal");
    let log = lab.ldap.log_path();
    let logged = std::fs::read_to_string(&log).expect("slapd's log").len();
    lab.roster(day, &["apply", &saved]).expect_code(0);
    let text = std::fs::read_to_string(&log).expect("slapd's log");
    let modifies = |group: &str| {
        let logged_dn = format!("MOD dn=\"{group}\"");
        text[logged..].lines().filter(|line| line.contains(&logged_dn)).count()
    };
    assert_eq!(modifies(&staff_sales), 1, "one modify for the three removals");
    assert_eq!(modifies(&all_staff), 4, "the refused modify, then one per removal");

    let audit = lab.roster(day, &["audit", "show", "--format", "json"]).expect_code(0);
    let audit: Vec<serde_json::Value> = serde_json::from_str(&audit.stdout).expect("the audit trail as JSON");
    for id in [removals(&all_staff), removals(&staff_sales)].concat() {
        let rows: Vec<&serde_json::Value> = audit
            .iter()
            .filter(|row| row["op_id"].as_u64() == Some(id) && row["kind"] == "remove_member")
            .filter(|row| row["run"] == audit.iter().filter_map(|r| r["run"].as_i64()).max().unwrap_or_default())
            .collect();
        let outcomes: Vec<&str> = rows.iter().filter_map(|row| row["outcome"].as_str()).collect();
        assert_eq!(outcomes, ["done"], "operation #{id}: {rows:#?}");
    }
    for key in leavers {
        assert_eq!(lab.groups_of(key), Vec::<String>::new());
    }
    let staff = lab.group("all-staff").expect("all-staff stays");
    assert_eq!(staff.values("member").len(), 7, "{staff:#?}");
    assert_eq!(lab.group("staff-sales").expect("staff-sales stays").values("member").len(), 2);
    lab.assert_nothing_to_do(day);
}
