//! The LDAP target's Active Directory dialect against a real, private Samba AD DC (Debian's
//! samba-ad-dc, started by roster-testkit on a loopback address of its own). Fails, never skips,
//! when Samba is missing: run `scripts/install-test-deps.sh`.
//!
//! Each test starts its own DC (AD's ports cannot move, so each DC takes a 127.0.0.X) and keeps to
//! its own OUs; password-setting operations are few, as each costs tens of milliseconds on Samba.
//! Samba returns as many values as asked for, so range retrieval is exercised by asking in
//! windows of 1,500 as for real AD, on a group of more than two windows.

use std::collections::HashSet;

use ldap3::{LdapConnAsync, Mod};
use roster_connectors::target::{Capabilities, ErrorKind, LdapTarget, Target, TargetError};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::config::TargetConfig;
use roster_core::dn::normalize_dn;
use roster_core::plan::{Action, Applied, AttrChange, Category, Operation};
use roster_core::state::{TargetEntry, TargetView};
use roster_testkit::{BindOutcome, OpenLdap, OpenLdapOptions, SambaDc, SambaOptions};
use secrecy::SecretString;

const PEOPLE: &str = "OU=People,DC=example,DC=test";
const GROUPS: &str = "OU=Groups,DC=example,DC=test";
/// Outside the managed OUs: where the big group's contacts live.
const BULK: &str = "OU=Bulk,DC=example,DC=test";
const ACCOUNTDISABLE: i64 = 0x2;
const DONT_EXPIRE_PASSWORD: i64 = 0x10000;

fn start_dc() -> SambaDc {
    SambaDc::start(SambaOptions {
        base_ous: vec!["OU=People".into(), "OU=Groups".into(), "OU=Bulk".into()],
        ..SambaOptions::default()
    })
    .expect("starting a Samba AD DC (install it with scripts/install-test-deps.sh)")
}

/// An AD target over ldaps, verifying the DC against its CA, bound as the domain admin, managing
/// People and Groups.
fn config(dc: &SambaDc) -> TargetConfig {
    let mut config: TargetConfig = toml::from_str(&format!(
        r#"
        name = "ad"
        kind = "active_directory"
        url = "{url}"
        bind_dn = "{bind_dn}"
        bind_password = "env:NOT_USED_BY_THE_CONNECTOR"
        timeout_seconds = 20
        managed = ["{PEOPLE}", "{GROUPS}"]
        dn = '"CN=" + login + ",{PEOPLE}"'
        [attributes]
        sAMAccountName = "login"
        "#,
        url = dc.ldaps_url(),
        bind_dn = dc.admin_dn(),
    ))
    .expect("test config parses");
    config.tls.ca_file = Some(dc.ca_cert_path());
    config
}

async fn connect(config: &TargetConfig, password: &str) -> Result<LdapTarget, TargetError> {
    LdapTarget::connect(config, SecretString::from(password), std::path::Path::new("/nonexistent")).await
}

async fn connect_admin(dc: &SambaDc) -> LdapTarget {
    connect(&config(dc), dc.admin_password()).await.expect("connect as the domain admin over ldaps")
}

fn op(action: Action) -> Operation {
    Operation {
        id: 3,
        person: None,
        target: "ad".into(),
        category: Category::Directory,
        reason: "test".into(),
        depends_on: vec![],
        action,
    }
}

fn attrs(pairs: &[(&str, &[&str])]) -> AttrMap {
    pairs.iter().map(|(attr, values)| (AttrName::new(*attr), values.iter().map(|v| v.to_string()).collect())).collect()
}

/// A new account as the planner creates it for AD: disabled, with a password to follow.
fn create_user(dn: &str, login: &str, employee_id: &str) -> Operation {
    let cn = dn.split(',').next().and_then(|rdn| rdn.strip_prefix("CN=")).unwrap_or(login);
    op(Action::Create {
        dn: dn.into(),
        attributes: attrs(&[
            ("objectClass", &["user"]),
            ("CN", &[cn]),
            ("sAMAccountName", &[login]),
            ("userPrincipalName", &[&format!("{login}@example.test")]),
            ("userAccountControl", &["514"]),
            ("employeeID", &[employee_id]),
            ("givenName", &["Test"]),
            ("sn", &[cn]),
            ("displayName", &[cn]),
            ("department", &["Sales"]),
            ("accountExpires", &["9223372036854775807"]),
        ])
        .try_into()
        .unwrap(),
        enabled: false,
        password: true,
    })
}

fn set_password_op(dn: &str, object_id: Option<&str>, must_change: bool) -> Operation {
    op(Action::SetPassword { dn: dn.to_string(), object_id: object_id.map(str::to_string), must_change })
}

fn change(attr: &str, old: &[String], new: &[&str]) -> AttrChange {
    AttrChange { attr: AttrName::new(attr), old: old.to_vec(), new: new.iter().map(|v| v.to_string()).collect() }
}

fn created(applied: Applied) -> TargetEntry {
    applied.entry.expect("a create reports the new entry")
}

fn view_attrs() -> Vec<AttrName> {
    ["sAMAccountName", "userPrincipalName", "employeeID", "userAccountControl", "displayName", "objectClass"]
        .into_iter()
        .map(AttrName::new)
        .collect()
}

fn find<'a>(view: &'a TargetView, dn: &str) -> Option<&'a TargetEntry> {
    view.entries.iter().find(|e| normalize_dn(&e.dn) == normalize_dn(dn))
}

fn values<'a>(entry: &'a TargetEntry, attr: &str) -> &'a [String] {
    entry.attrs.get(&AttrName::new(attr)).map(Vec::as_slice).unwrap_or_default()
}

fn uac(entry: &TargetEntry) -> i64 {
    values(entry, "userAccountControl").first().and_then(|v| v.parse().ok()).expect("userAccountControl is read")
}

/// Enable or disable as the planner does: from the flags read, only ACCOUNTDISABLE changes.
async fn switch(target: &mut LdapTarget, dn: &str, enable: bool) -> Result<Applied, TargetError> {
    let view = target.read_view(&view_attrs()).await.unwrap();
    let entry = find(&view, dn).expect("the account is in the view");
    let flags = uac(entry);
    let new = if enable { flags & !ACCOUNTDISABLE } else { flags | ACCOUNTDISABLE };
    let changes = vec![change("userAccountControl", values(entry, "userAccountControl"), &[&new.to_string()])];
    let object_id = Some(entry.object_id.clone());
    let action = if enable {
        Action::Enable { dn: dn.to_string(), object_id, changes }
    } else {
        Action::Disable { dn: dn.to_string(), object_id, changes }
    };
    target.apply(&op(action)).await
}

fn assert_kind<T: std::fmt::Debug>(result: Result<T, TargetError>, kind: ErrorKind) -> TargetError {
    match result {
        Err(e) if e.kind == kind => e,
        other => panic!("expected a {kind} error, got {other:?}"),
    }
}

/// The objectGUID of `login` as `samba-tool user show` prints it.
fn printed_guid(dc: &SambaDc, login: &str) -> String {
    let shown = dc.samba_tool(&["user", "show", login, "--attributes=objectGUID"]).unwrap();
    shown
        .lines()
        .find_map(|line| line.strip_prefix("objectGUID: "))
        .expect("samba-tool prints the objectGUID")
        .to_string()
}

/// Adds `count` contacts below `ou` over four connections at once (Samba takes adds one at a time
/// per connection), and returns their DNs.
async fn add_contacts(dc: &SambaDc, ou: &str, count: usize) -> Vec<String> {
    let dns: Vec<String> = (0..count).map(|i| format!("CN=Contact {i:05},{ou}")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in dns.chunks(count.div_ceil(4)) {
        let (chunk, url, admin, password) =
            (chunk.to_vec(), dc.ldap_url(), dc.admin_dn().to_string(), dc.admin_password().to_string());
        tasks.spawn(async move {
            let (conn, mut ldap) = LdapConnAsync::new(&url).await.unwrap();
            ldap3::drive!(conn);
            ldap.simple_bind(&admin, &password).await.unwrap().success().unwrap();
            for dn in chunk {
                ldap.add(&dn, vec![("objectClass", HashSet::from(["contact"]))]).await.unwrap().success().unwrap();
            }
            ldap.unbind().await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    dns
}

/// Adds `members` to `group`, a few hundred values per modify.
async fn add_members(dc: &SambaDc, group: &str, members: &[String]) {
    let (conn, mut ldap) = LdapConnAsync::new(&dc.ldap_url()).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(dc.admin_dn(), dc.admin_password()).await.unwrap().success().unwrap();
    for batch in members.chunks(500) {
        let values: HashSet<&str> = batch.iter().map(String::as_str).collect();
        ldap.modify(group, vec![Mod::Add("member", values)]).await.unwrap().success().unwrap();
    }
    ldap.unbind().await.unwrap();
}

#[tokio::test]
async fn read_view_reads_accounts_ranged_groups_containers_logins_and_protected_entries() {
    let dc = start_dc();
    dc.ldapadd(&format!(
        "dn: CN=Alice Able,{PEOPLE}\nobjectClass: user\nsAMAccountName: aable\nemployeeID: 1001\n\n\
         dn: CN=Root Like,{PEOPLE}\nobjectClass: user\nsAMAccountName: rootlike\nadminCount: 1\n\n\
         dn: CN=WS01,{PEOPLE}\nobjectClass: computer\nsAMAccountName: WS01$\n\n\
         dn: CN=Things,{PEOPLE}\nobjectClass: container\n\n\
         dn: OU=Sales,{PEOPLE}\nobjectClass: organizationalUnit\n\n\
         dn: CN=Big,{GROUPS}\nobjectClass: group\nsAMAccountName: big\n\n"
    ))
    .unwrap();
    let big = format!("CN=Big,{GROUPS}");
    let contacts = add_contacts(&dc, BULK, 3_100).await;
    add_members(&dc, &big, &contacts).await;

    let mut target = connect_admin(&dc).await;
    assert_eq!(target.capabilities(), Capabilities { rename: true, disable: true, groups: true, passwords: true });
    let view = target.read_view(&view_attrs()).await.unwrap();

    // Accounts: users of the person category only, never the computer; adminCount=1 flagged.
    let dns: Vec<String> = view.entries.iter().map(|e| normalize_dn(&e.dn)).collect();
    assert_eq!(
        dns,
        vec![normalize_dn(&format!("CN=Alice Able,{PEOPLE}")), normalize_dn(&format!("CN=Root Like,{PEOPLE}"))]
    );
    let alice = find(&view, &format!("CN=Alice Able,{PEOPLE}")).unwrap();
    assert!(!alice.protected);
    assert_eq!(values(alice, "employeeID"), ["1001"]);
    assert!(values(alice, "userAccountControl").first().is_some_and(|v| v.parse::<i64>().is_ok()));
    assert!(find(&view, &format!("CN=Root Like,{PEOPLE}")).unwrap().protected);

    // objectGUID reads as AD tools print it.
    assert_eq!(alice.object_id, printed_guid(&dc, "aable"));

    // Groups: every member of a group of more than two range windows, exactly once.
    let group = view.groups.iter().find(|g| normalize_dn(&g.dn) == normalize_dn(&big)).expect("the big group");
    assert_eq!(group.members.len(), 3_100);
    let distinct: HashSet<String> = group.members.iter().map(|m| normalize_dn(m)).collect();
    let expected: HashSet<String> = contacts.iter().map(|m| normalize_dn(m)).collect();
    assert_eq!(distinct, expected);

    // Containers: the managed OUs, OUs and plain containers below them.
    for container in [PEOPLE, GROUPS, &format!("OU=Sales,{PEOPLE}"), &format!("CN=Things,{PEOPLE}")] {
        assert!(view.containers.contains(&normalize_dn(container)), "{container} in {:?}", view.containers);
    }
    // Taken logins: every sAMAccountName in the domain, of users, computers and groups alike.
    for login in ["aable", "rootlike", "ws01$", "big", "administrator", "domain admins", "dc1$"] {
        assert!(view.taken_logins.contains(login), "{login} in {:?}", view.taken_logins);
    }

    // The object id is what identity checks compare: the right GUID passes, another is a conflict.
    let alice_dn = format!("CN=Alice Able,{PEOPLE}");
    let update = |object_id: &str, new: &str| {
        op(Action::Update {
            dn: alice_dn.clone(),
            object_id: Some(object_id.to_string()),
            changes: vec![change("description", &[], &[new])],
        })
    };
    target.apply(&update(&alice.object_id.to_uppercase(), "checked")).await.unwrap();
    let root_like = find(&view, &format!("CN=Root Like,{PEOPLE}")).unwrap().object_id.clone();
    assert_kind(target.apply(&update(&root_like, "other")).await, ErrorKind::Conflict);

    // A protected account is never written to, whatever the plan says.
    let protected_update = op(Action::Update {
        dn: format!("CN=Root Like,{PEOPLE}"),
        object_id: Some(root_like.clone()),
        changes: vec![change("description", &[], &["touched"])],
    });
    let err = assert_kind(target.apply(&protected_update).await, ErrorKind::OutOfScope);
    assert!(err.message.contains("(adminCount=1)"), "{err}");
    assert!(
        !dc.search(&format!("CN=Root Like,{PEOPLE}"), "(objectClass=*)", &["description"]).unwrap().contains("touched")
    );
    let root_like_dn = format!("CN=Root Like,{PEOPLE}");
    let protected_move = op(Action::Rename {
        dn: root_like_dn.clone(),
        object_id: None,
        new_dn: format!("CN=Root Like,OU=Sales,{PEOPLE}"),
    });
    assert_kind(target.apply(&protected_move).await, ErrorKind::OutOfScope);
    let protected_password = set_password_op(&root_like_dn, None, false);
    let err = assert_kind(
        target.set_password(&protected_password, &SecretString::from("Never-Sent-1")).await,
        ErrorKind::OutOfScope,
    );
    assert!(err.message.contains("nothing was sent"), "{err}");
    assert_kind(target.apply(&op(Action::Delete { dn: root_like_dn, object_id: None })).await, ErrorKind::OutOfScope);

    // Membership changes on the big group, each tolerant of having happened already.
    let add = op(Action::AddMember { group: big.clone(), member: alice_dn.clone() });
    target.apply(&add).await.unwrap();
    target.apply(&add).await.unwrap();
    let remove = op(Action::RemoveMember { group: big.clone(), member: contacts[1_600].clone() });
    target.apply(&remove).await.unwrap();
    target.apply(&remove).await.unwrap();
    let missing = op(Action::AddMember { group: big.clone(), member: format!("CN=Nobody,{PEOPLE}") });
    let err = assert_kind(target.apply(&missing).await, ErrorKind::Conflict);
    assert!(err.message.contains("the member does not exist"), "{err}");

    // Groups: AD groups may start empty; the planner's attributes name the class and type.
    let group_attrs = |login: &str| {
        attrs(&[("objectClass", &["group"]), ("sAMAccountName", &[login]), ("groupType", &["-2147483646"])])
            .try_into()
            .unwrap()
    };
    let empty = format!("CN=Empty Group,{GROUPS}");
    let with_members = format!("CN=Staff Sales,{GROUPS}");
    let created_empty = created(
        target
            .apply(&op(Action::CreateGroup {
                dn: empty.clone(),
                members: vec![],
                attributes: group_attrs("emptygroup"),
            }))
            .await
            .unwrap(),
    );
    let create_staff = Action::CreateGroup {
        dn: with_members.clone(),
        members: vec![alice_dn.clone().into()],
        attributes: group_attrs("staffsales"),
    };
    target.apply(&op(create_staff.clone())).await.unwrap();
    // Created before (an answer lost): the same group, its members added.
    target.apply(&op(create_staff)).await.unwrap();

    let view = target.read_view(&view_attrs()).await.unwrap();
    let group_of = |dn: &str| view.groups.iter().find(|g| normalize_dn(&g.dn) == normalize_dn(dn)).unwrap().clone();
    let big_now = group_of(&big);
    assert_eq!(big_now.members.len(), 3_100);
    assert!(big_now.members.iter().any(|m| normalize_dn(m) == normalize_dn(&alice_dn)));
    assert!(!big_now.members.iter().any(|m| normalize_dn(m) == normalize_dn(&contacts[1_600])));
    assert_eq!(group_of(&empty).members, Vec::<String>::new());
    assert_eq!(group_of(&empty).object_id, created_empty.object_id);
    assert_eq!(group_of(&with_members).members.len(), 1);
    assert!(view.taken_logins.contains("emptygroup") && view.taken_logins.contains("staffsales"));
    let ldif = dc.search(&with_members, "(objectClass=*)", &["groupType", "sAMAccountName"]).unwrap();
    assert!(ldif.contains("groupType: -2147483646") && ldif.contains("sAMAccountName: staffsales"), "{ldif}");
}

#[tokio::test]
async fn accounts_are_created_disabled_given_a_password_enabled_disabled_and_moved() {
    let dc = start_dc();
    dc.ldapadd(&format!(
        "dn: OU=Sales,{PEOPLE}\nobjectClass: organizationalUnit\n\n\
         dn: CN=Held Name,{PEOPLE}\nobjectClass: user\nsAMAccountName: taken\n\n"
    ))
    .unwrap();
    let mut target = connect_admin(&dc).await;

    // Create, disabled, exactly as planned; its id is the objectGUID as AD tools print it.
    let dn = format!("CN=Jose Garcia,OU=Sales,{PEOPLE}");
    let entry = created(target.apply(&create_user(&dn, "jgarcia", "00001")).await.unwrap());
    assert_eq!(entry.object_id, printed_guid(&dc, "jgarcia"));
    assert_eq!(values(&entry, "userAccountControl"), ["514"]);
    assert_eq!(values(&entry, "userPrincipalName"), ["jgarcia@example.test"]);
    assert_eq!(values(&entry, "accountExpires"), ["9223372036854775807"]);

    // Its password, set over ldaps: right (the bind gets as far as "disabled"), then enabled.
    let password = "Tr0ub4dor&3-horse";
    let applied = target.set_password(&set_password_op(&dn, None, false), &SecretString::from(password)).await.unwrap();
    assert_eq!(applied.entry.unwrap().object_id, entry.object_id);
    assert_eq!(dc.check_bind(&dn, password).unwrap(), BindOutcome::Disabled);
    // The planner's enable right after a create: no object id yet, the flags it created with.
    let enable_after_create = op(Action::Enable {
        dn: dn.clone(),
        object_id: None,
        changes: vec![change("userAccountControl", &["514".to_string()], &["512"])],
    });
    target.apply(&enable_after_create).await.unwrap();
    assert_eq!(dc.check_bind(&dn, password).unwrap(), BindOutcome::Ok);

    // An operation for set_password never goes through apply, which has no password to send.
    let err = assert_kind(target.apply(&set_password_op(&dn, None, false)).await, ErrorKind::Permanent);
    assert!(err.message.contains("set_password"), "{err}");

    // Disable, then the flags an administrator set by hand survive disable and enable.
    switch(&mut target, &dn, false).await.unwrap();
    assert_eq!(dc.check_bind(&dn, password).unwrap(), BindOutcome::Disabled);
    dc.ldapmodify(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {}\n",
        0x200 | ACCOUNTDISABLE | DONT_EXPIRE_PASSWORD
    ))
    .unwrap();
    switch(&mut target, &dn, true).await.unwrap();
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert_eq!(uac(find(&view, &dn).unwrap()), 0x200 | DONT_EXPIRE_PASSWORD);
    assert_eq!(dc.check_bind(&dn, password).unwrap(), BindOutcome::Ok);
    switch(&mut target, &dn, false).await.unwrap();
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert_eq!(uac(find(&view, &dn).unwrap()), 0x200 | ACCOUNTDISABLE | DONT_EXPIRE_PASSWORD);

    // A switch planned against flags that changed since is a conflict, and nothing changes: the
    // delete of the old value and the add of the new go in one modify.
    let stale = op(Action::Enable {
        dn: dn.clone(),
        object_id: Some(entry.object_id.clone()),
        changes: vec![change("userAccountControl", &["514".to_string()], &["512"])],
    });
    assert_kind(target.apply(&stale).await, ErrorKind::Conflict);
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert_eq!(uac(find(&view, &dn).unwrap()), 0x200 | ACCOUNTDISABLE | DONT_EXPIRE_PASSWORD);
    switch(&mut target, &dn, true).await.unwrap();

    // Must change at first logon: the right password, refused until changed.
    let second = format!("CN=Ada Lovelace,OU=Sales,{PEOPLE}");
    let second_entry = created(target.apply(&create_user(&second, "alovelace", "00002")).await.unwrap());
    let second_password = "Analytical-Engine-1843";
    target
        .set_password(
            &set_password_op(&second, Some(&second_entry.object_id), true),
            &SecretString::from(second_password),
        )
        .await
        .unwrap();
    switch(&mut target, &second, true).await.unwrap();
    assert_eq!(dc.check_bind(&second, second_password).unwrap(), BindOutcome::MustChangePassword);

    // A password the domain's policy refuses: permanent, saying so, without the password.
    let weak = "aaaaaaaa1";
    let err = assert_kind(
        target.set_password(&set_password_op(&second, None, false), &SecretString::from(weak)).await,
        ErrorKind::Permanent,
    );
    assert!(err.message.contains("does not meet the domain's password policy"), "{err}");
    assert!(!err.message.contains(weak) && !format!("{err:?}").contains(weak), "{err:?}");
    assert_eq!(dc.check_bind(&second, second_password).unwrap(), BindOutcome::MustChangePassword);

    // Over plain LDAP (which this Samba would accept), roster refuses to send a password at all.
    let mut plain = config(&dc);
    plain.url = dc.ldap_url();
    plain.tls.allow_plaintext = true;
    let plain_target = connect(&plain, dc.admin_password()).await.unwrap();
    let in_clear = "Sent-In-Clear-99";
    let err = assert_kind(
        plain_target.set_password(&set_password_op(&dn, None, false), &SecretString::from(in_clear)).await,
        ErrorKind::Config,
    );
    assert!(err.message.contains("not encrypted") && err.message.contains("nothing was sent"), "{err}");
    assert!(!format!("{err:?}{plain_target:?}").contains(in_clear));
    assert_eq!(dc.check_bind(&dn, in_clear).unwrap(), BindOutcome::BadPassword);
    assert_eq!(dc.check_bind(&dn, password).unwrap(), BindOutcome::Ok);

    // A move to another OU (created first, as the planner does) keeps the object and its password.
    let leavers = format!("OU=Leavers,{PEOPLE}");
    target.apply(&op(Action::CreateContainer { dn: leavers.clone() })).await.unwrap();
    let moved = format!("CN=Jose Garcia,{leavers}");
    let rename = op(Action::Rename { dn: dn.clone(), object_id: Some(entry.object_id.clone()), new_dn: moved.clone() });
    assert_eq!(created(target.apply(&rename).await.unwrap()).object_id, entry.object_id);
    // Answered before (an answer lost): found moved already.
    target.apply(&rename).await.unwrap();
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert_eq!(find(&view, &moved).unwrap().object_id, entry.object_id);
    assert!(find(&view, &dn).is_none());
    assert!(view.containers.contains(&normalize_dn(&leavers)));
    assert_eq!(dc.check_bind(&moved, password).unwrap(), BindOutcome::Ok);

    // A create whose sAMAccountName is taken elsewhere in the domain is a conflict that says so; a
    // create that landed before (answer lost) is recognised by its employeeID.
    let clash = format!("CN=Someone Else,OU=Sales,{PEOPLE}");
    let err = assert_kind(target.apply(&create_user(&clash, "taken", "00003")).await, ErrorKind::Conflict);
    assert!(err.message.contains("taken elsewhere"), "{err}");
    let again = created(target.apply(&create_user(&second, "alovelace", "00002")).await.unwrap());
    assert_eq!(again.object_id, second_entry.object_id);

    // Deleted, once, then gone.
    let delete = op(Action::Delete { dn: moved.clone(), object_id: Some(entry.object_id.clone()) });
    target.apply(&delete).await.unwrap();
    target.apply(&delete).await.unwrap();
    assert!(find(&target.read_view(&view_attrs()).await.unwrap(), &moved).is_none());
}

#[tokio::test]
async fn a_service_account_without_rights_is_told_which_right_it_lacks() {
    let dc = start_dc();
    let password = "Limited-Service-42";
    let service = format!("CN=svc-roster,{BULK}");
    dc.ldapadd(&format!("dn: {service}\nobjectClass: user\nsAMAccountName: svc-roster\n\n")).unwrap();
    let unicode_pwd: Vec<u8> = format!("\"{password}\"").encode_utf16().flat_map(u16::to_le_bytes).collect();
    let (conn, mut ldap) = LdapConnAsync::new(&dc.ldap_url()).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(dc.admin_dn(), dc.admin_password()).await.unwrap().success().unwrap();
    let mods: Vec<Mod<Vec<u8>>> = vec![
        Mod::Replace(b"unicodePwd".to_vec(), HashSet::from([unicode_pwd])),
        Mod::Replace(b"userAccountControl".to_vec(), HashSet::from([b"512".to_vec()])),
    ];
    ldap.modify(&service, mods).await.unwrap().success().unwrap();
    ldap.unbind().await.unwrap();

    let mut limited = config(&dc);
    limited.bind_dn = service;
    let target = connect(&limited, password).await.unwrap();
    let err = assert_kind(
        target.apply(&create_user(&format!("CN=New Person,{PEOPLE}"), "newperson", "9")).await,
        ErrorKind::Permanent,
    );
    assert!(err.message.contains("the service account lacks the right to create objects here"), "{err}");

    // A refused bind says what AD's sub-code means.
    let err = assert_kind(connect(&limited, "Wrong-Password-1").await, ErrorKind::Auth);
    assert!(err.message.contains("wrong password"), "{err}");
    assert!(!err.message.contains("Wrong-Password-1"), "{err}");
}

/// The LDAP dialect of the same call: RFC 3062 Password Modify, so OpenLDAP hashes the password
/// itself, and ppolicy's pwdReset for must-change.
#[tokio::test]
async fn set_password_on_openldap_uses_password_modify_so_the_server_hashes_it() {
    let server = OpenLdap::start(OpenLdapOptions { tls: true, ..Default::default() }).expect("starting slapd");
    let people = format!("ou=people,{}", server.suffix());
    let mut config: TargetConfig = toml::from_str(&format!(
        r#"
        name = "ad"
        kind = "ldap"
        url = "{url}"
        bind_dn = "{bind_dn}"
        bind_password = "env:NOT_USED_BY_THE_CONNECTOR"
        managed = ["{people}"]
        dn = '"uid=" + login + ",{people}"'
        disable = {{ lock = true }}
        password = {{ delivery = "none" }}
        [attributes]
        uid = "login"
        "#,
        url = server.ldaps_url().unwrap(),
        bind_dn = server.admin_dn(),
    ))
    .unwrap();
    config.tls.ca_file = server.ca_cert_path();
    let target = connect(&config, server.admin_password()).await.unwrap();
    assert!(target.capabilities().passwords);

    let dn = format!("uid=pat,{people}");
    let person = attrs(&[("objectClass", &["inetOrgPerson"]), ("uid", &["pat"]), ("cn", &["Pat"]), ("sn", &["P"])]);
    target
        .apply(&op(Action::Create {
            dn: dn.as_str().into(),
            attributes: person.try_into().unwrap(),
            enabled: true,
            password: true,
        }))
        .await
        .unwrap();
    let password = "Correct-Horse-7";
    target.set_password(&set_password_op(&dn, None, false), &SecretString::from(password)).await.unwrap();
    assert!(server.check_bind(&dn, password).unwrap());
    let stored = server.search(&dn, "(objectClass=*)", &["userPassword"]).unwrap();
    assert!(!stored.contains(password), "stored in clear: {stored}");

    target.set_password(&set_password_op(&dn, None, true), &SecretString::from(password)).await.unwrap();
    let reset = server.search(&dn, "(objectClass=*)", &["pwdReset"]).unwrap();
    assert!(reset.contains("pwdReset: TRUE"), "{reset}");
}

/// Membership changes of one group in a batch go to AD as one modify, and each operation gets its
/// own outcome: a member already there or already gone counts as done, a member that does not
/// exist is refused on its own (AD refuses the one modify as a whole: each change then goes
/// again alone), and an AD group may lose its last member.
#[tokio::test]
async fn membership_changes_of_one_group_go_in_one_modify_each_with_its_own_outcome() {
    let dc = start_dc();
    let contacts = add_contacts(&dc, BULK, 16).await;
    let target = connect_admin(&dc).await;
    let team = format!("CN=Team,{GROUPS}");
    let members = vec![contacts[0].as_str().into(), contacts[1].as_str().into()];
    target.apply(&op(Action::CreateGroup { dn: team.clone(), members, attributes: Default::default() })).await.unwrap();
    let add = |member: &str| op(Action::AddMember { group: team.clone(), member: member.to_string() });
    let remove = |member: &str| op(Action::RemoveMember { group: team.clone(), member: member.to_string() });
    // The group's members, and the update sequence number of its last change: the DC counts one
    // for each write that changed something.
    let read_team = || {
        let ldif = dc.search(&team, "(objectClass=*)", &["member", "uSNChanged"]).unwrap();
        let mut members: Vec<String> =
            ldif.lines().filter_map(|line| line.strip_prefix("member: ")).map(normalize_dn).collect();
        members.sort();
        let usn: u64 = ldif.lines().find_map(|line| line.strip_prefix("uSNChanged: ")).unwrap().parse().unwrap();
        (members, usn)
    };
    let expected = |of: std::ops::Range<usize>| -> Vec<String> {
        let mut members: Vec<String> = contacts[of].iter().map(|dn| normalize_dn(dn)).collect();
        members.sort();
        members
    };

    // Ten additions: one write (ten modifies would move the sequence number by ten).
    let (_, before) = read_team();
    let batch: Vec<Operation> = contacts[2..12].iter().map(|dn| add(dn)).collect();
    let results = target.apply_batch(&batch).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let (members, after) = read_team();
    assert_eq!(members, expected(0..12));
    assert!(after - before < 10, "uSNChanged went from {before} to {after}: one modify per member");

    let nobody = format!("CN=Nobody,{BULK}");
    let results = target.apply_batch(&[add(&contacts[1]), add(&nobody), add(&contacts[12])]).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let refused = results[1].as_ref().unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Conflict, "{refused}");
    assert!(refused.message.contains("the member does not exist") && refused.message.contains("Nobody"), "{refused}");
    assert_eq!(read_team().0, expected(0..13));

    let results = target.apply_batch(&[remove(&contacts[0]), remove(&contacts[15]), remove(&contacts[1])]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(read_team().0, expected(2..13));

    let batch: Vec<Operation> = contacts[2..13].iter().map(|dn| remove(dn)).collect();
    let results = target.apply_batch(&batch).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(read_team().0, expected(0..0));
}
