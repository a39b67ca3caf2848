//! Daily runs that read only part of the directory, against a real OpenLDAP: after a full read,
//! a run that evaluates few persons reads their accounts and what their plan needs, and plans
//! exactly what a full read would (`--full-read`), day after day of joiners, movers, leavers,
//! renames, group and manager changes and login collisions; what changed outside roster in the
//! accounts of the others waits for the next full read.
//!
//! Fails, never skips, when slapd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use serde_json::Value;
use support::{Hr, Lab, PEOPLE, Worker};

const DEPARTMENTS: [&str; 3] = ["Engineering", "Sales", "Research"];

/// Forty people in three departments, each department head reporting to 3000.
fn forty_people() -> Hr {
    let first = ["Ada", "Grace", "Alan", "Hedy", "Edsger", "Barbara", "John", "Margaret", "Claude", "Kurt"];
    let last = ["Lovelace", "Hopper", "Turing", "Lamarr"];
    let mut hr = Hr::new([Worker::new("3000", "Frances", "Allen", "Engineering").title("Chief")]);
    for i in 1..40 {
        let department = DEPARTMENTS[i % 3];
        let key = format!("{}", 3000 + i);
        let manager = if i < 3 { "3000".to_string() } else { format!("{}", 3000 + i % 3) };
        let worker = Worker::new(&key, first[i % 10], last[i / 10], department).title("Staff").manager(&manager);
        hr.add(worker);
    }
    hr
}

/// `roster plan --format json` for the day, with `--full-read` or not, parsed.
fn plan(lab: &Lab, day: &str, full: bool) -> Value {
    let args: &[&str] = if full { &["plan", "--format", "json", "--full-read"] } else { &["plan", "--format", "json"] };
    let run = lab.roster(day, args).expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("the plan is not JSON ({e}):\n{run}"))
}

/// Plans the day both ways; the partial read must plan what the full read plans, having read only
/// the accounts of the persons it evaluates and the groups around them. Returns the partial plan.
fn same_plan_both_ways(lab: &Lab, day: &str) -> Value {
    let full = plan(lab, day, true);
    let part = plan(lab, day, false);
    assert_eq!(full["summary"]["partial_read"], false, "{:#}", full["summary"]);
    assert_eq!(part["summary"]["partial_read"], true, "{:#}", part["summary"]);
    for field in ["operations", "person_updates", "safety"] {
        assert_eq!(part[field], full[field], "{day}: the partial read plans other {field}");
    }
    assert_eq!(part["summary"]["evaluated"], full["summary"]["evaluated"]);
    let evaluated = part["summary"]["evaluated"].as_u64().expect("a count");
    let read = part["summary"]["entries_read"].as_u64().expect("a count");
    let everything = full["summary"]["entries_read"].as_u64().expect("a count");
    assert!(everything >= 40, "the full read reads every account: {:#}", full["summary"]);
    // The evaluated persons' accounts, the accounts found at the DNs the plan takes, and the
    // (at most four) groups: never the whole directory.
    let ops = part["operations"].as_array().map_or(0, Vec::len) as u64;
    assert!(read <= evaluated + ops + 4, "{day}: read {read} entries for {evaluated} evaluated: {:#}", part["summary"]);
    assert!(read < everything, "{day}: read {read} of {everything}");
    part
}

fn has_op(plan: &Value, person: &str, kind: &str) -> bool {
    plan["operations"].as_array().into_iter().flatten().any(|op| op["person"] == person && op["op"] == kind)
}

#[test]
fn a_partial_read_plans_what_a_full_read_plans_day_after_day() {
    day_after_day(false);
}

/// The same days with `member_of`: each account's groups come from its `memberOf` (the test
/// server runs the memberof overlay), not from a search of the groups per account.
#[test]
fn a_partial_read_taking_groups_from_member_of_plans_what_a_full_read_plans() {
    day_after_day(true);
}

fn day_after_day(member_of: bool) {
    let lab = Lab::start();
    if member_of {
        let config = lab.config();
        assert!(config.contains("kind = \"ldap\"\n"), "the fixture's target: {config}");
        lab.write_config(&config.replace("kind = \"ldap\"\n", "kind = \"ldap\"\nmember_of = true\n"));
    }
    let mut hr = forty_people();
    // An account an administrator made before roster, without an employee number, holding a
    // login roster's rules would give: the directory, not the store, knows it is taken.
    lab.ldap
        .ldapadd(&format!(
            "dn: ou=Engineering,{PEOPLE}\nobjectClass: organizationalUnit\nou: Engineering\n\n\
             dn: uid=katherine.johnson,ou=Engineering,{PEOPLE}\nobjectClass: inetOrgPerson\n\
             uid: katherine.johnson\ncn: Katherine Johnson\nsn: Johnson\n"
        ))
        .expect("the administrator's account");

    let day = "2026-03-02";
    lab.export(&hr);
    let first = lab.run(day);
    assert!(first.stdout.contains("targets read in full"), "the first run reads in full:\n{first}");
    lab.assert_nothing_to_do(day);

    // Day 2: a joiner whose first login is taken in the directory only, one whose login a settled
    // person holds, a mover (new OU and group), a leaver, a manager change, a rename.
    let day = "2026-03-03";
    hr.add(Worker::new("3100", "Katherine", "Johnson", "Sales").title("Analyst").manager("3001").hired(day));
    hr.add(Worker::new("3101", "Grace", "Hopper", "Research").hired(day));
    hr.worker("3003").department = "Sales".into();
    hr.worker("3005").last_day = "2026-03-02".into();
    hr.worker("3007").manager = "3002".into();
    hr.worker("3008").last = "Lamarr-Markey".into();
    lab.export(&hr);
    let part = same_plan_both_ways(&lab, day);
    for (person, kind) in [("3100", "create"), ("3101", "create"), ("3003", "rename"), ("3005", "disable")] {
        assert!(has_op(&part, person, kind), "{person}: no {kind} in {:#}", part["operations"]);
    }
    let run = lab.run(day);
    assert!(run.stdout.contains("targets read in part"), "{run}");
    assert_eq!(lab.account("3100").value("uid"), "k.johnson", "katherine.johnson is taken in the directory");
    assert_ne!(lab.account("3101").value("uid"), "grace.hopper", "grace.hopper belongs to a settled person");
    assert_eq!(lab.groups_of("3003"), ["all-staff", "staff-sales"]);
    assert!(lab.is_below("3005", support::LEAVERS));
    assert!(lab.manager_is("3007", "3002"));
    assert_eq!(lab.account("3008").value("cn"), "Claude Lamarr-Markey");
    lab.assert_nothing_to_do(day);

    // Day 3: the leaver's groups go, a department head moves (their reports follow), and a mover
    // leaves the last group it was in.
    let day = "2026-03-04";
    hr.worker("3001").department = "Research".into();
    hr.worker("3010").department = "Marketing".into();
    hr.worker("3002").title = "Head of Sales".into();
    lab.export(&hr);
    same_plan_both_ways(&lab, day);
    lab.run(day);
    assert_eq!(lab.groups_of("3010"), ["all-staff", "staff-marketing"]);
    lab.assert_nothing_to_do(day);

    // Changed outside roster: a settled person's title. A partial read does not see it; the next
    // full read restores it.
    let admin = lab.account("3020");
    lab.ldap
        .ldapmodify(&format!("dn: {}\nchangetype: modify\nreplace: title\ntitle: Changed by hand\n", admin.dn))
        .expect("the administrator's edit");
    let day = "2026-03-05";
    let part = plan(&lab, day, false);
    assert!(!has_op(&part, "3020", "update"), "a partial read does not judge 3020: {:#}", part["operations"]);
    let run = lab.roster(day, &["run", "--full-read"]).expect_code(0);
    assert!(run.stdout.contains("targets read in full"), "{run}");
    assert_eq!(lab.account("3020").value("title"), "Staff", "the full read restores what roster wrote");

    // A new configuration is read in full once, then in part again.
    lab.write_config(&lab.config().replace("purge_after_days = 30", "purge_after_days = 31"));
    let run = lab.run(day);
    assert!(run.stdout.contains("targets read in full"), "a changed configuration reads in full:\n{run}");
    let run = lab.run(day);
    assert!(run.stdout.contains("targets read in part"), "{run}");
}
