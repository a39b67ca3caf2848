//! The real `roster` binary against a real Active Directory: a private Samba AD domain controller
//! (Debian's samba-ad-dc, started by `roster-testkit` on a 127.0.0.x of its own, since AD's ports
//! cannot move). Each test writes a config and one HR export per day, runs roster `--as-of` that
//! day, and checks what the domain holds by reading it back over LDAP and by binding as the
//! people, never by trusting what roster printed. The planner's AD story
//! (`crates/core/tests/stories/active_directory.toml`) proves the same rules against a simulated
//! directory; these prove them on AD's own schema, flags, password rules and linked attributes.
//!
//! One DC per test function (a few seconds each); passwords are few, as each costs tens of
//! milliseconds on Samba. Range retrieval of groups above 1,500 members is proven by the connector's
//! own tests (`crates/connectors/tests/ad_target.rs`), not here: through roster, every member would
//! be an account with a password.
//!
//! Fails, never skips, when Samba is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

#[path = "support/ad_lab.rs"]
mod ad_lab;

use ad_lab::{
    ACCOUNTDISABLE, AdLab, DOMAIN, GLOBAL_SECURITY, GROUPS, LEAVERS, NEVER_EXPIRES, NORMAL_ACCOUNT, PEOPLE,
    RosterFolder, UNIVERSAL_DISTRIBUTION, filetime, guid, notices, operations, ops_for, uac,
};
use ldap3::Scope;
use roster_testkit::BindOutcome;
use support::{Hr, Worker};

const ENABLED: i64 = NORMAL_ACCOUNT;
const DISABLED: i64 = NORMAL_ACCOUNT | ACCOUNTDISABLE;
/// userAccountControl DONT_EXPIRE_PASSWORD: a flag administrators set, which roster leaves alone.
const DONT_EXPIRE_PASSWORD: i64 = 0x10000;

fn ou(department: &str) -> String {
    format!("OU={department},{PEOPLE}")
}

/// A small company over two months, day by day, in AD: joiners created disabled, given a delivered
/// password, then enabled; a pre-hire that stays disabled until day one; two John Smiths in one OU;
/// a move between OUs; a legal name change (a rename, with the logins kept); a termination date
/// that sets accountExpires; a leaver disabled (keeping a flag an administrator set), stamped with
/// the date, moved and taken out of the groups; groups of both kinds and scopes; the purge, and a
/// newcomer of the same name who gets the first CN but not the purged login. After every day,
/// running again plans nothing.
#[test]
fn joiners_movers_and_leavers_over_two_months() {
    let lab = AdLab::start();
    let mut hr = Hr::new([
        Worker::new("1001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("1002", "Grace", "Hopper", "Engineering").title("Engineer").manager("1001"),
        Worker::new("1003", "Edsger", "Dijkstra", "Sales").title("Sales Lead").manager("1001"),
        Worker::new("1004", "Hedy", "Lamarr", "Engineering")
            .title("Radio Engineer")
            .manager("1001")
            .hired("2026-03-09"),
        Worker::new("1005", "John", "Smith", "Sales").title("Sales Representative").manager("1001"),
        Worker::new("1006", "John", "Smith", "Sales").title("Account Executive").manager("1001"),
    ]);

    // Day 1: everyone arrives; Hedy starts in a week.
    let day = "2026-03-02";
    lab.export(&hr);
    let plan = lab.plan(day);
    for key in ["1001", "1002", "1003", "1005", "1006"] {
        let [create] = ops_for(&plan, key, "create")[..] else { panic!("one create for {key}: {plan:#}") };
        let [password] = ops_for(&plan, key, "set_password")[..] else { panic!("one password for {key}: {plan:#}") };
        let [enable] = ops_for(&plan, key, "enable")[..] else { panic!("one enable for {key}: {plan:#}") };
        assert_eq!(create["enabled"], false, "AD accounts are created disabled: {create:#}");
        assert_eq!(create["attributes"]["userAccountControl"][0], DISABLED.to_string(), "{create:#}");
        assert_eq!(password["must_change"], false, "{password:#}");
        assert!(create["id"].as_u64() < password["id"].as_u64(), "{plan:#}");
        assert!(password["depends_on"].as_array().is_some_and(|d| d.contains(&create["id"])), "{password:#}");
        assert!(enable["depends_on"].as_array().is_some_and(|d| d.contains(&password["id"])), "{enable:#}");
    }
    assert_eq!(ops_for(&plan, "1004", "set_password").len(), 1, "a pre-hire account gets its password: {plan:#}");
    assert!(ops_for(&plan, "1004", "enable").is_empty(), "but is not enabled before day one: {plan:#}");
    lab.run(day);

    let expected = [
        ("1001", "ada.lovelace", "CN=Ada Lovelace", "Engineering", "Head of Engineering"),
        ("1002", "grace.hopper", "CN=Grace Hopper", "Engineering", "Engineer"),
        ("1003", "edsger.dijkstra", "CN=Edsger Dijkstra", "Sales", "Sales Lead"),
        ("1004", "hedy.lamarr", "CN=Hedy Lamarr", "Engineering", "Radio Engineer"),
        ("1005", "john.smith", "CN=John Smith", "Sales", "Sales Representative"),
        ("1006", "j.smith", "CN=John Smith (2)", "Sales", "Account Executive"),
    ];
    let mut passwords = std::collections::BTreeMap::new();
    for (key, login, rdn, department, title) in expected {
        let account = lab.account(key);
        assert_eq!(account.dn, format!("{rdn},{}", ou(department)), "{account:#?}");
        assert_eq!(account.value("sAMAccountName"), login);
        assert_eq!(account.value("userPrincipalName"), format!("{login}@example.test"));
        assert_eq!(account.value("mail"), format!("{login}@example.test"));
        assert_eq!(account.value("title"), title);
        assert_eq!(account.value("department"), department);
        assert_eq!(account.value("company"), "Example Corp");
        assert_eq!(account.value("accountExpires"), NEVER_EXPIRES);
        assert_ne!(account.value("pwdLastSet"), "0", "must_change = false: {account:#?}");
        assert_eq!(uac(&account), if key == "1004" { DISABLED } else { ENABLED }, "{key}: {account:#?}");
        passwords.insert(key, lab.folder.delivered_password(login));
    }
    assert_eq!(lab.account("1002").value("displayName"), "Grace Hopper");
    assert_eq!(lab.account("1002").value("givenName"), "Grace");
    assert_eq!(lab.account("1002").value("sn"), "Hopper");
    for key in ["1001", "1002", "1003", "1005", "1006"] {
        let dn = lab.account(key).dn;
        assert_eq!(lab.bind(&dn, &passwords[key]), BindOutcome::Ok, "{key} logs in with the delivered password");
    }
    assert_eq!(lab.bind(&lab.account("1004").dn, &passwords["1004"]), BindOutcome::Disabled, "a pre-hire cannot");
    assert_eq!(lab.groups_of("1002"), ["All Staff", "Staff Engineering"]);
    assert_eq!(lab.groups_of("1004"), Vec::<String>::new(), "a pre-hire gets no access yet");
    assert_eq!(lab.groups_of("1005"), ["All Staff", "Staff Sales"]);
    assert_eq!(lab.groups_of("1006"), ["All Staff", "Staff Sales"]);
    let group_type = |cn: &str| lab.group(cn).unwrap_or_else(|| panic!("group {cn}")).value("groupType").to_owned();
    assert_eq!(group_type("Staff Sales"), GLOBAL_SECURITY);
    assert_eq!(group_type("All Staff"), UNIVERSAL_DISTRIBUTION);
    for report in ["1002", "1003", "1004", "1005", "1006"] {
        let manager = "1001";
        assert!(lab.manager_is(report, manager), "{report}'s manager is not {manager}: {:#?}", lab.account(report));
    }
    lab.assert_nothing_to_do(day);

    // Day 2: Hedy's first day; Edsger moves to Research; Grace's legal name changes; HR records John
    // Smith's last day.
    let day = "2026-03-09";
    let edsger = lab.account("1003");
    let grace = lab.account("1002");
    hr.worker("1003").department = "Research".into();
    hr.worker("1003").title = "Research Lead".into();
    hr.worker("1002").last = "Murray".into();
    hr.worker("1005").last_day = "2026-03-31".into();
    lab.export(&hr);
    lab.run(day);
    let hedy = lab.account("1004");
    assert_eq!(uac(&hedy), ENABLED, "enabled on day one: {hedy:#?}");
    assert_eq!(lab.bind(&hedy.dn, &passwords["1004"]), BindOutcome::Ok, "with the password delivered a week ago");
    assert_eq!(lab.groups_of("1004"), ["All Staff", "Staff Engineering"]);
    let moved = lab.account("1003");
    assert_eq!(moved.dn, format!("CN=Edsger Dijkstra,{}", ou("Research")));
    assert_eq!(guid(&moved), guid(&edsger), "moved, not recreated");
    assert_eq!(moved.value("title"), "Research Lead");
    assert_eq!(lab.groups_of("1003"), ["All Staff", "Staff Research"]);
    assert!(lab.manager_is("1003", "1001"), "{moved:#?}");
    let renamed = lab.account("1002");
    assert_eq!(renamed.dn, format!("CN=Grace Murray,{}", ou("Engineering")));
    assert_eq!(guid(&renamed), guid(&grace));
    assert_eq!(renamed.value("cn"), "Grace Murray");
    assert_eq!(renamed.value("displayName"), "Grace Murray");
    assert_eq!(renamed.value("sn"), "Murray");
    assert_eq!(renamed.value("sAMAccountName"), "grace.hopper", "the login is the person's for good");
    assert_eq!(renamed.value("userPrincipalName"), "grace.hopper@example.test", "create-only");
    assert_eq!(renamed.value("mail"), "grace.hopper@example.test", "create-only");
    assert_eq!(lab.groups_of("1002"), ["All Staff", "Staff Engineering"]);
    assert_eq!(lab.bind("grace.hopper@example.test", &passwords["1002"]), BindOutcome::Ok, "same sign-on");
    // The end of 31 March in Berlin (summer time from 29 March): 22:00 UTC.
    assert_eq!(lab.account("1005").value("accountExpires"), filetime("2026-04-01", 2));
    lab.assert_nothing_to_do(day);
    // An administrator exempts John's password from expiry: a flag that is not roster's.
    let john = lab.account("1005");
    lab.dc
        .ldapmodify(&format!(
            "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {}\n",
            john.dn,
            ENABLED | DONT_EXPIRE_PASSWORD
        ))
        .expect("the administrator's flag");
    lab.assert_nothing_to_do(day);

    // Day 3: John Smith left yesterday.
    let day = "2026-04-01";
    lab.run(day);
    let john = lab.account("1005");
    assert_eq!(john.dn, format!("CN=John Smith,{LEAVERS}"));
    assert_eq!(uac(&john), DISABLED | DONT_EXPIRE_PASSWORD, "only ACCOUNTDISABLE is roster's: {john:#?}");
    assert_eq!(john.value("description"), "Left 2026-03-31");
    assert_eq!(john.value("sAMAccountName"), "john.smith");
    assert_eq!(lab.groups_of("1005"), Vec::<String>::new());
    assert_eq!(lab.bind(&john.dn, &passwords["1005"]), BindOutcome::Disabled, "a leaver cannot log in");
    let namesake = lab.account("1006");
    assert_eq!(namesake.dn, format!("CN=John Smith (2),{}", ou("Sales")), "the other John Smith stays");
    assert_eq!(uac(&namesake), ENABLED);
    lab.assert_nothing_to_do(day);

    // Day 4: thirty days on, John's account is deleted; a new John Smith joins Sales and gets the
    // first name in the OU, but not the purged login.
    let day = "2026-05-01";
    hr.add(Worker::new("1007", "John", "Smith", "Sales").title("Sales Representative").manager("1001").hired(day));
    lab.export(&hr);
    lab.run(day);
    assert!(lab.accounts("1005").is_empty(), "purged: {:#?}", lab.accounts("1005"));
    assert!(lab.search(DOMAIN, Scope::Subtree, "(sAMAccountName=john.smith)").is_empty());
    let newcomer = lab.account("1007");
    assert_eq!(newcomer.dn, format!("CN=John Smith,{}", ou("Sales")));
    assert_eq!(newcomer.value("sAMAccountName"), "john.smith2", "the tombstone keeps john.smith and j.smith is taken");
    assert_eq!(uac(&newcomer), ENABLED);
    let password = lab.folder.delivered_password("john.smith2");
    assert_eq!(lab.bind(&newcomer.dn, &password), BindOutcome::Ok);
    assert_eq!(lab.groups_of("1007"), ["All Staff", "Staff Sales"]);
    lab.assert_nothing_to_do(day);
}

/// The first run against an AD that already has users: those carrying a person's key in employeeID
/// are adopted (no duplicate; their sAMAccountName and UPN kept, no new password, renamed to the DN
/// template), one an administrator disabled stays disabled with a notice on every run, an
/// `adminCount=1` account with a person's key is never touched, an account that is no one's is
/// reported as an orphan, and two accounts with one key are a dispute with nothing done. A joiner
/// with `must_change = true` has a password that is right but must be changed. Later a title
/// changed by hand is put back, and an account an administrator deleted is reported, not recreated.
#[test]
fn existing_accounts_are_adopted_protected_and_disputes_held() {
    let lab = AdLab::start();
    lab.folder.write_config(&lab.folder.config().replace("must_change = false", "must_change = true"));
    let engineering = ou("Engineering");
    let (ada_password, grace_password, alan_password) =
        ("Adopted-Ada-4001!", "Adopted-Grace-4002!", "Admin-Alan-4003!");
    lab.dc
        .ldapadd(&format!(
            "dn: {engineering}\nobjectClass: organizationalUnit\n\n\
             dn: CN=Ada L.,{engineering}\nobjectClass: user\nsAMAccountName: alovelace\n\
             userPrincipalName: alovelace@example.test\ngivenName: Ada\nsn: Lovelace\nemployeeID: 4001\n\
             unicodePwd:: {ada}\nuserAccountControl: 512\n\n\
             dn: CN=Grace Hopper,{engineering}\nobjectClass: user\nsAMAccountName: ghopper\n\
             userPrincipalName: ghopper@example.test\nemployeeID: 4002\nunicodePwd:: {grace}\nuserAccountControl: 514\n\n\
             dn: CN=Alan Turing,{engineering}\nobjectClass: user\nsAMAccountName: aturing.admin\nemployeeID: 4003\n\
             adminCount: 1\ndescription: break-glass admin\nunicodePwd:: {alan}\nuserAccountControl: 512\n\n\
             dn: CN=Old Printer,{PEOPLE}\nobjectClass: user\nsAMAccountName: printer\nuserAccountControl: 514\n\n\
             dn: CN=Emmy Noether,{engineering}\nobjectClass: user\nsAMAccountName: enoether\nemployeeID: 4005\n\
             userAccountControl: 514\n\n\
             dn: CN=E. Noether,{PEOPLE}\nobjectClass: user\nsAMAccountName: noether\nemployeeID: 4005\n\
             userAccountControl: 514\n",
            ada = unicode_pwd(ada_password),
            grace = unicode_pwd(grace_password),
            alan = unicode_pwd(alan_password),
        ))
        .expect("accounts made before roster");
    let before = lab.dump(PEOPLE);
    let hr = Hr::new([
        Worker::new("4001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("4002", "Grace", "Hopper", "Engineering").title("Engineer").manager("4001"),
        Worker::new("4003", "Alan", "Turing", "Engineering").title("Engineer").manager("4001"),
        Worker::new("4004", "Claude", "Shannon", "Engineering").title("Engineer").manager("4001"),
        Worker::new("4005", "Emmy", "Noether", "Engineering").title("Mathematician").manager("4001"),
    ]);
    lab.export(&hr);
    let day = "2026-03-02";
    let check = lab.roster(day, &["check"]).expect_code(0);
    assert!(check.stdout.contains("target ad: connected; 6 account(s), 0 group(s)"), "{check}");

    let plan = lab.plan(day);
    for key in ["4001", "4002"] {
        assert_eq!(ops_for(&plan, key, "adopt").len(), 1, "{key} is adopted: {plan:#}");
        assert!(ops_for(&plan, key, "create").is_empty(), "{key} is not created again: {plan:#}");
        assert!(ops_for(&plan, key, "set_password").is_empty(), "an adopted account keeps its password: {plan:#}");
    }
    assert_eq!(notices(&plan, Some("4002"), "disabled_outside_roster").len(), 1, "{plan:#}");
    assert_eq!(notices(&plan, Some("4003"), "protected").len(), 1, "{plan:#}");
    assert_eq!(notices(&plan, Some("4005"), "disputed").len(), 1, "{plan:#}");
    for key in ["4003", "4005"] {
        assert!(operations(&plan).iter().all(|op| op["person"] != key), "nothing for {key}: {plan:#}");
    }
    let orphan = |plan: &serde_json::Value| {
        let printer = format!("CN=Old Printer,{PEOPLE} belongs to no person (disabled)");
        notices(plan, None, "orphan").iter().filter(|n| n["message"] == printer.as_str()).count()
    };
    assert_eq!(orphan(&plan), 1, "{plan:#}");
    let [password] = ops_for(&plan, "4004", "set_password")[..] else { panic!("a password for 4004: {plan:#}") };
    assert_eq!(password["must_change"], true, "{password:#}");
    lab.run(day);

    let original = |rdn: &str, parent: &str| {
        before.get(&format!("{rdn},{parent}").to_lowercase()).unwrap_or_else(|| panic!("{rdn} made before")).clone()
    };
    let ada = lab.account("4001");
    assert_eq!(guid(&ada), guid(&original("CN=Ada L.", &engineering)), "adopted, not duplicated");
    assert_eq!(ada.dn, format!("CN=Ada Lovelace,{engineering}"), "renamed to the DN template");
    assert_eq!(ada.value("sAMAccountName"), "alovelace", "the login that was there is kept");
    assert_eq!(ada.value("userPrincipalName"), "alovelace@example.test", "create-only: not written on adoption");
    assert!(ada.values("mail").is_empty(), "create-only: not written on adoption: {ada:#?}");
    assert_eq!(ada.value("displayName"), "Ada Lovelace", "mapped attributes are roster's after adoption");
    assert_eq!(ada.value("title"), "Head of Engineering");
    assert_eq!(uac(&ada), ENABLED);
    assert_eq!(lab.bind("alovelace@example.test", ada_password), BindOutcome::Ok, "adopting locks no one out");
    let grace = lab.account("4002");
    assert_eq!(guid(&grace), guid(&original("CN=Grace Hopper", &engineering)));
    assert_eq!(grace.value("sAMAccountName"), "ghopper");
    assert_eq!(uac(&grace), DISABLED, "an administrator's disable is not lifted: {grace:#?}");
    assert_eq!(lab.bind(&grace.dn, grace_password), BindOutcome::Disabled);
    assert!(lab.manager_is("4002", "4001"), "{grace:#?}");
    let claude = lab.account("4004");
    assert_eq!(claude.value("sAMAccountName"), "claude.shannon");
    assert_eq!(claude.value("pwdLastSet"), "0", "must change at first logon");
    assert_eq!(uac(&claude), ENABLED);
    let delivered = lab.folder.delivered_password("claude.shannon");
    assert_eq!(lab.bind(&claude.dn, &delivered), BindOutcome::MustChangePassword, "right, but to be changed");
    assert_eq!(lab.groups_of("4004"), ["All Staff", "Staff Engineering"]);
    assert_eq!(lab.groups_of("4001"), ["All Staff", "Staff Engineering"]);

    let users = lab.search(PEOPLE, Scope::Subtree, "(objectClass=user)");
    assert_eq!(users.len(), 7, "the six that were there and Claude's: {users:#?}");
    let after = lab.dump(PEOPLE);
    for (rdn, parent) in [
        ("CN=Alan Turing", engineering.as_str()),
        ("CN=Old Printer", PEOPLE),
        ("CN=Emmy Noether", engineering.as_str()),
        ("CN=E. Noether", PEOPLE),
    ] {
        let dn = format!("{rdn},{parent}").to_lowercase();
        assert_eq!(after.get(&dn), before.get(&dn), "{dn} is no one's to change");
    }
    assert_eq!(lab.bind(&format!("CN=Alan Turing,{engineering}"), alan_password), BindOutcome::Ok);
    let alan = format!("(member={})", ldap3::ldap_escape(format!("CN=Alan Turing,{engineering}")));
    assert!(lab.search(GROUPS, Scope::Subtree, &alan).is_empty(), "a protected account gets no groups");

    // Next day: nothing new, and the same notices from the periodic full read (a daily run that
    // reads in part sees only the accounts of the persons it evaluates).
    let day = "2026-03-03";
    let plan = full_read_plan(&lab, day);
    assert!(operations(&plan).is_empty(), "{plan:#}");
    for (person, kind) in [("4002", "disabled_outside_roster"), ("4003", "protected"), ("4005", "disputed")] {
        assert_eq!(notices(&plan, Some(person), kind).len(), 1, "{kind} for {person} again: {plan:#}");
    }
    assert_eq!(orphan(&plan), 1, "{plan:#}");

    // An administrator edits Ada's title and deletes Claude's account.
    lab.dc
        .ldapmodify(&format!(
            "dn: {}\nchangetype: modify\nreplace: title\ntitle: Chief Everything\n\n\
             dn: {}\nchangetype: delete\n",
            ada.dn, claude.dn
        ))
        .expect("the administrator's changes");
    let day = "2026-03-04";
    let plan = full_read_plan(&lab, day);
    let [restore] = ops_for(&plan, "4001", "update")[..] else { panic!("one update for 4001: {plan:#}") };
    assert!(restore["reason"].as_str().is_some_and(|r| r.starts_with("restore: title")), "{restore:#}");
    assert_eq!(notices(&plan, Some("4004"), "linked_entry_deleted").len(), 1, "{plan:#}");
    assert!(ops_for(&plan, "4004", "create").is_empty(), "not recreated: a new objectGUID is a new cloud user");
    lab.roster(day, &["run", "--full-read"]).expect_code(0);
    assert_eq!(lab.account("4001").value("title"), "Head of Engineering");
    assert!(lab.accounts("4004").is_empty());
    lab.assert_nothing_to_do(day);
}

/// `roster plan --format json --full-read` for the day, parsed: the plan of the periodic full read.
fn full_read_plan(lab: &AdLab, day: &str) -> serde_json::Value {
    let run = lab.roster(day, &["plan", "--format", "json", "--full-read"]).expect_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("the plan is not JSON ({e}):\n{run}"))
}

/// A manager moves to another OU. AD keeps every DN-valued reference to a moved object right by
/// itself (it stores the object, not its name), so the reports' `manager` already names the new DN
/// when roster's planned update of it arrives; that update, which deletes exactly the old DN,
/// must not end the run as a conflict (exit code 4) on every manager move or rename.
#[test]
fn a_managers_move_is_followed_by_the_reports_references() {
    let lab = AdLab::start();
    let mut hr = Hr::new([
        Worker::new("2001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("2002", "Grace", "Hopper", "Engineering").title("Engineer").manager("2001"),
    ]);
    lab.export(&hr);
    lab.run("2026-03-02");
    assert!(lab.manager_is("2002", "2001"));

    let day = "2026-03-03";
    hr.worker("2001").department = "Management".into();
    lab.export(&hr);
    lab.run(day);
    assert_eq!(lab.account("2001").dn, format!("CN=Ada Lovelace,{}", ou("Management")));
    assert!(lab.manager_is("2002", "2001"), "{:#?}", lab.account("2002"));
    lab.assert_nothing_to_do(day);
}

/// Two enabled accounts carry one person's key: a dispute, held for a person to resolve. They are
/// the person's accounts, not orphans: with `orphans = "disable"`, neither may be disabled (nor
/// reported as belonging to no person). A real orphan next to them is disabled.
#[test]
fn disputed_accounts_are_not_orphans() {
    let lab = AdLab::start();
    lab.folder.write_config(&lab.folder.config().replace(r#"orphans = "report""#, r#"orphans = "disable""#));
    let password = unicode_pwd("Disputed-Pass-5002!");
    lab.dc
        .ldapadd(&format!(
            "dn: CN=Emmy Noether,{PEOPLE}\nobjectClass: user\nsAMAccountName: enoether\nemployeeID: 5002\n\
             unicodePwd:: {password}\nuserAccountControl: 512\n\n\
             dn: CN=E. Noether,{PEOPLE}\nobjectClass: user\nsAMAccountName: noether\nemployeeID: 5002\n\
             unicodePwd:: {password}\nuserAccountControl: 512\n\n\
             dn: CN=Old Printer,{PEOPLE}\nobjectClass: user\nsAMAccountName: printer\n\
             unicodePwd:: {password}\nuserAccountControl: 512\n"
        ))
        .expect("accounts made before roster");
    lab.export(&Hr::new([
        Worker::new("5001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("5002", "Emmy", "Noether", "Engineering").title("Mathematician").manager("5001"),
    ]));
    let day = "2026-03-02";
    let plan = lab.plan(day);
    assert_eq!(notices(&plan, Some("5002"), "disputed").len(), 1, "{plan:#}");
    let disables: Vec<&str> =
        operations(&plan).iter().filter(|op| op["op"] == "disable").filter_map(|op| op["dn"].as_str()).collect();
    assert_eq!(disables, [format!("CN=Old Printer,{PEOPLE}")], "only the real orphan is disabled: {plan:#}");
    lab.run(day);
    for account in lab.accounts("5002") {
        assert_eq!(uac(&account), ENABLED, "a disputed account is held, not disabled: {account:#?}");
    }
    let printer = lab.search(PEOPLE, Scope::Subtree, "(sAMAccountName=printer)");
    assert_eq!(printer.iter().map(uac).collect::<Vec<_>>(), [DISABLED], "{printer:#?}");
    lab.assert_nothing_to_do(day);
}

/// Managers and their reports created on the same day. AD refuses a reference to an entry that
/// does not exist yet, yet each report's manager goes into its own create: the create waits for
/// the manager's, which the plan orders first (here the reports' keys sort before their managers'),
/// so a new account costs one request, as an `ldapadd` of the final entries does. A reporting cycle
/// (two people named as each other's manager) is created all the same, one of the two getting its
/// reference from a later update. A manager whose create fails keeps no report waiting: the
/// report's account is made without the reference, which the next run sets once the manager's
/// account exists.
#[test]
fn managers_and_reports_created_the_same_day_carry_the_reference_in_the_create() {
    let lab = AdLab::start();
    let hr = Hr::new([
        Worker::new("6001", "Alan", "Turing", "Engineering").title("Engineer").manager("6002"),
        Worker::new("6002", "Grace", "Hopper", "Engineering").title("Lead").manager("6003"),
        Worker::new("6003", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("6004", "Claude", "Shannon", "Research").title("Researcher").manager("6005"),
        Worker::new("6005", "Emmy", "Noether", "Research").title("Researcher").manager("6004"),
        Worker::new("6006", "Edsger", "Dijkstra", "Sales").title("Sales Lead").manager("6007"),
        Worker::new("6007", "Barbara", "Liskov", "Sales").title("Head of Sales"),
    ]);
    lab.export(&hr);
    // The Sales OU exists already, so that the foreign entry below can be put at Barbara's DN.
    let sales = ou("Sales");
    lab.dc.ldapadd(&format!("dn: {sales}\nobjectClass: organizationalUnit\n")).expect("the Sales OU");
    let day = "2026-03-02";
    let plan = lab.plan(day);
    let create = |key: &str| {
        let [create] = ops_for(&plan, key, "create")[..] else { panic!("one create for {key}: {plan:#}") };
        create
    };
    let reference_updates = |key: &str| {
        ops_for(&plan, key, "update").into_iter().filter(|op| op["changes"].to_string().contains("manager")).count()
    };
    for (report, manager) in [("6001", "6002"), ("6002", "6003"), ("6006", "6007")] {
        let (report_create, manager_create) = (create(report), create(manager));
        assert_eq!(report_create["attributes"]["manager"][0], manager_create["dn"], "{report_create:#}");
        assert!(manager_create["id"].as_u64() < report_create["id"].as_u64(), "{plan:#}");
        assert!(
            report_create["depends_on"].as_array().is_some_and(|d| d.contains(&manager_create["id"])),
            "{report}'s create waits for {manager}'s: {report_create:#}"
        );
        assert_eq!(reference_updates(report), 0, "no separate manager reference for {report}: {plan:#}");
    }
    assert!(create("6003")["attributes"].get("manager").is_none(), "{plan:#}");
    let in_create = ["6004", "6005"].map(|key| create(key)["attributes"].get("manager").is_some());
    let updates = ["6004", "6005"].map(reference_updates);
    assert!(
        in_create == [true, false] && updates == [0, 1] || in_create == [false, true] && updates == [1, 0],
        "a cycle: one reference in its create, the other in a later update ({in_create:?}, {updates:?}): {plan:#}"
    );

    // Between the plan and its apply, someone else's entry takes Barbara's DN: her create fails.
    let saved = lab.folder.dir().join("plan.json").to_string_lossy().into_owned();
    lab.roster(day, &["plan", "--out", &saved]).expect_code(0);
    let barbara = format!("CN=Barbara Liskov,{sales}");
    lab.dc.ldapadd(&format!("dn: {barbara}\nobjectClass: contact\n")).expect("a foreign entry at Barbara's DN");
    let applied = lab.roster(day, &["apply", &saved]);
    assert_ne!(applied.code, 0, "Barbara's create cannot land:\n{applied}");
    for (report, manager) in [("6001", "6002"), ("6002", "6003"), ("6004", "6005"), ("6005", "6004")] {
        assert!(lab.manager_is(report, manager), "{report}'s manager is not {manager}: {:#?}", lab.account(report));
    }
    assert!(lab.accounts("6007").is_empty(), "{applied}");
    let edsger = lab.account("6006");
    assert_eq!(edsger.dn, format!("CN=Edsger Dijkstra,{sales}"), "created without the reference: {applied}");
    assert!(edsger.values("manager").is_empty(), "{edsger:#?}");

    // The foreign entry is gone: the next run makes Barbara's account and sets Edsger's manager.
    lab.dc.ldapmodify(&format!("dn: {barbara}\nchangetype: delete\n")).expect("removing the foreign entry");
    lab.run(day);
    assert!(lab.manager_is("6006", "6007"), "{:#?}", lab.account("6006"));
    lab.assert_nothing_to_do(day);
}

/// A target that would send initial passwords over a plain `ldap://` connection is refused by the
/// configuration check (exit code 2), even with `tls.allow_plaintext` set for the bind: nothing is
/// read or connected, so no directory is needed. (The connector refuses again by itself; its own
/// tests prove that.)
#[test]
fn a_password_over_a_plain_connection_is_refused() {
    let folder = RosterFolder::new();
    folder.write_fixture_config("ldap://127.0.0.1:389", std::path::Path::new("unused-ca.pem"), "CN=roster,DC=x");
    let config = folder
        .config()
        .replace("tls = { ca_file = 'unused-ca.pem' }", "tls = { starttls = false, allow_plaintext = true }");
    assert_ne!(config, folder.config());
    folder.write_config(&config);
    folder.export(&Hr::new([Worker::new("1001", "Ada", "Lovelace", "Engineering")]));
    for command in ["check", "plan", "run"] {
        let run = folder.roster("not-used", "2026-03-02", &[command]).expect_code(2);
        assert!(run.stderr.contains("target[0].password"), "the message names the key:\n{run}");
        assert!(run.stderr.contains("roster sends passwords only over LDAPS or StartTLS"), "{run}");
    }
    assert!(!folder.dir().join("roster.db").exists(), "nothing was opened");
    assert!(!folder.dir().join("passwords").exists());
}

/// The value of `unicodePwd::` in LDIF: the password in double quotes, as UTF-16LE, in base64.
fn unicode_pwd(password: &str) -> String {
    let utf16: Vec<u8> = format!("\"{password}\"").encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64(&utf16)
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
