//! What operators use day to day, through the real binary against a real OpenLDAP: `roster
//! explain` (every value and decision for one person), provisioning one person on demand, and
//! approvals of held plans.
//!
//! Fails, never skips, when slapd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use serde_json::Value;
use support::{Hr, Lab, Worker};

fn two_people() -> Hr {
    Hr::new([
        Worker::new("7001", "Ada", "Lovelace", "Engineering"),
        Worker::new("7002", "Grace", "Hopper", "Engineering"),
    ])
}

fn explain(lab: &Lab, as_of: &str, key: &str) -> Value {
    let run = lab.roster(as_of, &["explain", key, "--json"]).expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("explain is not JSON ({e}):\n{run}"))
}

fn mapped<'a>(explanation: &'a Value, attr: &str) -> &'a Value {
    explanation["targets"][0]["attributes"]
        .as_array()
        .expect("the target's attributes")
        .iter()
        .find(|a| a["attr"] == attr)
        .unwrap_or_else(|| panic!("no attribute {attr} in {explanation:#}"))
}

#[test]
fn explain_shows_each_value_with_its_source_expression_state_link_and_planned_operation() {
    let lab = Lab::start();
    let mut hr = two_people();
    lab.export(&hr);
    lab.run("2026-03-02");

    hr.worker("7001").title = "Countess".into();
    hr.worker("7001").last_day = "2026-03-31".into();
    lab.export(&hr);
    let e = explain(&lab, "2026-03-09", "7001");
    assert_eq!(e["key"], "7001");
    assert_eq!(e["login"], "ada.lovelace");
    let row = &e["rows"][0];
    assert_eq!((row["source"].as_str(), row["key"].as_str()), (Some("hr"), Some("7001")), "{e:#}");
    assert_eq!(row["location"]["row"], 1, "Ada is the export's first row: {e:#}");
    assert_eq!(row["values"]["title"], "Countess");
    let title = e["attributes"].as_array().unwrap().iter().find(|a| a["name"] == "title").expect("title");
    assert_eq!((title["value"].as_str(), title["source"].as_str()), (Some("Countess"), Some("hr")));

    let cn = mapped(&e, "cn");
    assert_eq!(cn["values"], serde_json::json!(["Ada Lovelace"]));
    assert_eq!(cn["config_key"], "target.directory.attributes.cn");
    assert_eq!(cn["expression"], r#"given_name + " " + family_name"#);
    assert_eq!(cn["sources"]["given_name"], "hr");
    assert_eq!(mapped(&e, "uid")["on_create_only"], true);

    assert_eq!(e["state"]["state"], "active");
    assert!(e["state"]["because"].as_str().unwrap().contains("hired 2020-01-06"), "{e:#}");
    assert_eq!(e["affiliations"][0]["decision"]["state"], "active");
    assert_eq!(e["next_transition"], "2026-04-01", "the day after the last day worked: {e:#}");
    assert_eq!(e["next_state"], "leaver");

    let link = &e["links"][0];
    assert_eq!(link["dn"], "uid=ada.lovelace,ou=Engineering,ou=people,dc=example,dc=org");
    assert_eq!(link["object_id"], lab.account("7001").uuid());
    assert_eq!(e["targets"][0]["dn"]["Ok"], "uid=ada.lovelace,ou=Engineering,ou=people,dc=example,dc=org");

    let operations = e["operations"].as_array().expect("operations");
    assert!(!operations.is_empty(), "{e:#}");
    assert!(operations.iter().all(|o| o["person"] == "7001"), "only Ada's operations: {e:#}");
    let update = operations.iter().find(|o| o["op"] == "update").expect("an update of the title");
    assert!(update["changes"].to_string().contains("Countess"), "{update:#}");
    assert!(!update["reason"].as_str().unwrap_or_default().is_empty(), "{update:#}");

    let text = lab.roster("2026-03-09", &["explain", "7001"]).expect_code(0);
    for expected in [
        "Person 7001 (login ada.lovelace)",
        "title = \"Countess\" <- hr",
        "cn = [\"Ada Lovelace\"] <- target.directory.attributes.cn: given_name + \" \" + family_name",
        "next transition 2026-04-01: leaver",
        "linked to uid=ada.lovelace,ou=Engineering",
        "update uid=ada.lovelace",
    ] {
        assert!(text.stdout.contains(expected), "missing {expected:?}:\n{text}");
    }

    // Explaining changes nothing: the title is still to be written by a run.
    assert!(lab.account("7001").values("title").is_empty());
    assert!(lab.plan("2026-03-09")["operations"].as_array().unwrap().iter().any(|o| o["person"] == "7001"));
}

#[test]
fn explain_says_a_person_is_on_hold_and_plans_nothing_for_them() {
    let lab = Lab::start();
    let mut hr = two_people();
    lab.export(&hr);
    lab.run("2026-03-02");
    lab.roster("2026-03-02", &["hold", "7002", "--reason", "ticket 42", "--until", "2026-03-20"]).expect_code(0);
    hr.worker("7002").department = "Navy".into();
    lab.export(&hr);

    let e = explain(&lab, "2026-03-09", "7002");
    assert_eq!(e["hold"]["reason"], "ticket 42", "{e:#}");
    assert_eq!(e["hold"]["until"], "2026-03-20");
    assert_eq!(e["operations"], serde_json::json!([]), "{e:#}");
    assert!(e["notices"].as_array().unwrap().iter().any(|n| n["kind"] == "on_hold"), "{e:#}");
    // Regression: a held person's memberships of authoritative groups were removed, as if no
    // rule granted them.
    let plan = lab.plan("2026-03-09");
    let touching_grace = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["member"].as_str().is_some_and(|m| m.starts_with("uid=grace.hopper")));
    assert_eq!(touching_grace.count(), 0, "{plan:#}");
    let text = lab.roster("2026-03-09", &["explain", "7002"]).expect_code(0);
    assert!(text.stdout.contains("ON HOLD until 2026-03-20 (inclusive): ticket 42"), "{text}");

    let unknown = lab.roster("2026-03-09", &["explain", "9999"]).expect_code(2);
    assert!(unknown.stderr.contains("no person \"9999\""), "{unknown}");
}

fn people_with_operations(plan: &Value) -> Vec<String> {
    let mut people: Vec<String> = plan["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(|o| o["person"].as_str().map(str::to_string))
        .collect();
    people.dedup();
    people
}

#[test]
fn run_person_applies_only_that_persons_changes_under_the_safety_limits() {
    let lab = Lab::start();
    let mut hr = two_people();
    lab.export(&hr);
    lab.run("2026-03-02");
    hr.worker("7001").title = "Countess".into();
    hr.worker("7002").title = "Admiral".into();
    hr.add(Worker::new("7003", "Alan", "Turing", "Research"));
    lab.export(&hr);

    let only = lab.roster("2026-03-03", &["plan", "--person", "7003", "--format", "json"]).expect_code(0);
    let only: Value = serde_json::from_str(&only.stdout).expect("JSON");
    assert_eq!(people_with_operations(&only), ["7003"], "{only:#}");
    let kinds: Vec<&str> = only["operations"].as_array().unwrap().iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"create") && kinds.contains(&"create_group"), "the joiner and their new group: {kinds:?}");
    assert!(kinds.contains(&"add_member"), "and their membership of all-staff: {kinds:?}");

    lab.roster("2026-03-03", &["run", "--person", "7003"]).expect_code(0);
    let alan = lab.account("7003");
    assert_eq!(alan.value("cn"), "Alan Turing");
    let all_staff = lab.group("all-staff").expect("all-staff");
    assert!(all_staff.values("member").iter().any(|m| m == &alan.dn), "{all_staff:?}");
    assert!(lab.group("staff-research").is_some(), "the group the joiner needs is created");
    assert!(lab.account("7001").values("title").is_empty(), "nobody else's change is applied");
    assert!(lab.account("7002").values("title").is_empty());

    let rest = lab.plan("2026-03-03");
    assert_eq!(people_with_operations(&rest), ["7001", "7002"], "the others are still to do: {rest:#}");
    let runs = lab.roster("2026-03-03", &["audit", "show", "--person", "7003", "--format", "json"]).expect_code(0);
    assert!(runs.stdout.contains("\"kind\": \"create\""), "recorded in the audit trail: {runs}");

    let unknown = lab.roster("2026-03-03", &["run", "--person", "9999"]).expect_code(2);
    assert!(unknown.stderr.contains("--person 9999: no such person"), "{unknown}");

    // Safety limits still apply to one person.
    lab.write_config(&lab.config().replace("disables = { count = 5 }", "disables = { count = 0 }"));
    hr.worker("7002").last_day = "2026-03-02".into();
    lab.export(&hr);
    let blocked = lab.roster("2026-03-04", &["run", "--person", "7002"]).expect_code(3);
    assert!(blocked.stdout.contains("safety.disables") || blocked.stderr.contains("safety.disables"), "{blocked}");
    assert!(!lab.account("7002").locked());
}

fn held_plan(lab: &Lab, as_of: &str, id: &str) -> Value {
    let run = lab.roster(as_of, &["plans", "show", id, "--format", "json"]).expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{run}"))
}

#[test]
fn an_approved_plan_applies_what_the_approver_saw_and_holds_what_changed_since() {
    let lab = Lab::start();
    let mut hr = two_people();
    lab.export(&hr);
    lab.run("2026-03-02");
    lab.write_config(&format!(
        "{}\n[approval]\ngroups = [\"cn=all-staff,ou=groups,dc=example,dc=org\"]\n",
        lab.config()
    ));
    hr.add(Worker::new("7003", "Alan", "Turing", "Engineering"));
    hr.worker("7001").title = "Countess".into();
    lab.export(&hr);

    let blocked = lab.roster("2026-03-03", &["run", "--hold-if-blocked"]).expect_code(3);
    assert!(blocked.stderr.contains("need an approver"), "{blocked}");
    assert!(blocked.stderr.contains("Held as plan 1"), "{blocked}");
    assert!(lab.accounts("7003").is_empty(), "nothing applied while held");
    let listed = lab.roster("2026-03-03", &["plans", "list", "--status", "waiting"]).expect_code(0);
    assert!(listed.stdout.starts_with("#1 waiting"), "{listed}");
    let apply_early = lab.roster("2026-03-03", &["apply", "--approved", "1"]).expect_code(2);
    assert!(apply_early.stderr.contains("is waiting: only an approved plan is applied"), "{apply_early}");

    lab.roster("2026-03-03", &["plans", "approve", "1", "--reason", "new hire, ticket 7"]).expect_code(0);
    let again = lab.roster("2026-03-03", &["plans", "approve", "1", "--reason", "twice"]).expect_code(2);
    assert!(again.stderr.contains("is approved: only a waiting plan"), "{again}");

    // Since the approval: another joiner (whose all-staff membership needs approval too) and a
    // change that needs none.
    hr.add(Worker::new("7004", "Edsger", "Dijkstra", "Engineering"));
    hr.worker("7002").title = "Admiral".into();
    lab.export(&hr);
    let applied = lab.roster("2026-03-03", &["apply", "--approved", "1"]).expect_code(0);
    assert!(applied.stdout.contains("are new or changed since"), "{applied}");
    assert!(applied.stdout.contains("held as plan 2"), "{applied}");
    let alan = lab.account("7003");
    assert!(lab.group("all-staff").unwrap().values("member").contains(&alan.dn), "the approved membership landed");
    assert_eq!(lab.account("7001").value("title"), "Countess");
    assert!(lab.accounts("7004").is_empty(), "what changed since was not approved: {applied}");
    assert!(lab.account("7002").values("title").is_empty(), "not what the approver saw: {applied}");

    let first = held_plan(&lab, "2026-03-03", "1");
    assert_eq!(first["status"], "applied", "{first:#}");
    assert_eq!(first["decided_by"], "integration-test");
    assert!(first["applied_run"].is_i64());
    let second = held_plan(&lab, "2026-03-03", "2");
    assert_eq!((second["status"].as_str(), second["follows"].as_i64()), (Some("waiting"), Some(1)), "{second:#}");
    let ops = second["plan"]["operations"].as_array().unwrap();
    assert!(ops.iter().any(|o| o["person"] == "7004" && o["op"] == "create"), "{second:#}");
    assert!(ops.iter().all(|o| o["person"] != "7003"), "nothing already applied: {second:#}");

    lab.roster("2026-03-03", &["plans", "reject", "2", "--reason", "not yet"]).expect_code(0);
    let trail = lab.roster("2026-03-03", &["audit", "show", "--format", "json"]).expect_code(0);
    let entries: Vec<Value> = serde_json::from_str(&trail.stdout).expect("audit JSON");
    let decisions: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["kind"] == "approve" || e["kind"] == "reject")
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(decisions, [("approve", "integration-test"), ("reject", "integration-test")], "{trail}");
    lab.roster("2026-03-03", &["audit", "verify"]).expect_code(0);
}
