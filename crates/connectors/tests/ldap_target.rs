//! The LDAP target against a real, private OpenLDAP (slapd from Debian's packages, started by
//! roster-testkit on free ports). Fails, never skips, when slapd is missing: run
//! `scripts/install-test-deps.sh`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_connectors::target::{Capabilities, ErrorKind, LdapTarget, Target, TargetError};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::config::TargetConfig;
use roster_core::dn::{Dn, escape_filter_value, normalize_dn};
use roster_core::plan::{Action, Applied, AttrChange, Category, Operation};
use roster_core::state::{TargetEntry, TargetView};
use roster_testkit::{OpenLdap, OpenLdapOptions};
use secrecy::SecretString;

const PEOPLE: &str = "ou=people,dc=example,dc=org";
const GROUPS: &str = "ou=groups,dc=example,dc=org";
const LOCKED: &str = "000001010000Z";

fn start_server(opts: OpenLdapOptions) -> OpenLdap {
    OpenLdap::start(opts).expect("starting slapd (install it with scripts/install-test-deps.sh)")
}

fn start_tls_server() -> OpenLdap {
    start_server(OpenLdapOptions { tls: true, ..Default::default() })
}

/// A target over ldaps, verifying the server against the instance's CA, bound as the admin.
fn config(server: &OpenLdap) -> TargetConfig {
    let mut config: TargetConfig = toml::from_str(&format!(
        r#"
        name = "directory"
        kind = "ldap"
        url = "{url}"
        bind_dn = "{bind_dn}"
        bind_password = "env:NOT_USED_BY_THE_CONNECTOR"
        timeout_seconds = 10
        managed = ["{PEOPLE}", "{GROUPS}"]
        dn = '"uid=" + login + ",{PEOPLE}"'
        disable = {{ lock = true }}
        [attributes]
        uid = "login"
        "#,
        url = server.ldaps_url().expect("the server was started with TLS"),
        bind_dn = server.admin_dn(),
    ))
    .expect("test config parses");
    config.tls.ca_file = server.ca_cert_path();
    config
}

async fn connect(config: &TargetConfig, password: &str) -> Result<LdapTarget, TargetError> {
    LdapTarget::connect(config, SecretString::from(password), std::path::Path::new("/nonexistent")).await
}

async fn connect_admin(server: &OpenLdap) -> LdapTarget {
    connect(&config(server), server.admin_password()).await.expect("connect as admin")
}

fn op(action: Action) -> Operation {
    Operation {
        id: 7,
        person: None,
        target: "directory".into(),
        category: Category::Directory,
        reason: "test".into(),
        depends_on: vec![],
        action,
    }
}

fn attrs(pairs: &[(&str, &[&str])]) -> AttrMap {
    pairs.iter().map(|(attr, values)| (AttrName::new(*attr), values.iter().map(|v| v.to_string()).collect())).collect()
}

fn person(uid: &str, employee_number: &str) -> AttrMap {
    attrs(&[
        ("objectClass", &["inetOrgPerson"]),
        ("uid", &[uid]),
        ("cn", &[&format!("{uid} Test")]),
        ("sn", &["Test"]),
        ("employeeNumber", &[employee_number]),
    ])
}

fn create(dn: &str, attributes: AttrMap) -> Operation {
    op(Action::Create { dn: dn.into(), attributes: attributes.try_into().unwrap(), enabled: true, password: false })
}

fn change(attr: &str, old: &[&str], new: &[&str]) -> AttrChange {
    AttrChange {
        attr: AttrName::new(attr),
        old: old.iter().map(|v| v.to_string()).collect(),
        new: new.iter().map(|v| v.to_string()).collect(),
    }
}

fn created_entry(applied: Applied) -> TargetEntry {
    applied.entry.expect("a create reports the new entry")
}

fn values<'a>(entry: &'a TargetEntry, attr: &str) -> &'a [String] {
    entry.attrs.get(&AttrName::new(attr)).map(Vec::as_slice).unwrap_or_default()
}

fn view_attrs() -> Vec<AttrName> {
    ["uid", "cn", "sn", "mail", "employeeNumber", "description", "title", "pwdAccountLockedTime"]
        .into_iter()
        .map(AttrName::new)
        .collect()
}

fn find<'a>(view: &'a TargetView, dn: &str) -> Option<&'a TargetEntry> {
    view.entries.iter().find(|e| normalize_dn(&e.dn) == normalize_dn(dn))
}

/// The entryUUID of `dn` as the server's own ldapsearch sees it.
fn uuid_of(server: &OpenLdap, dn: &str) -> Option<String> {
    let ldif = server.search(dn, "(objectClass=*)", &["entryUUID"]).ok()?;
    ldif.lines().find_map(|line| line.strip_prefix("entryUUID: ")).map(str::to_string)
}

fn assert_kind<T: std::fmt::Debug>(result: Result<T, TargetError>, kind: ErrorKind) -> TargetError {
    match result {
        Err(e) if e.kind == kind => e,
        other => panic!("expected a {kind} error, got {other:?}"),
    }
}

#[tokio::test]
async fn connects_over_ldaps_trusting_only_the_configured_ca() {
    let server = start_tls_server();
    let target = connect_admin(&server).await;
    assert_eq!(Target::name(&target), "directory");
    assert_eq!(target.capabilities(), Capabilities { rename: true, disable: true, groups: true, passwords: false });
    target.close().await.unwrap();

    // A relative ca_file is resolved against the config file's folder.
    let mut relative = config(&server);
    let ca = server.ca_cert_path().unwrap();
    relative.tls.ca_file = Some(ca.file_name().unwrap().into());
    LdapTarget::connect(&relative, SecretString::from(server.admin_password()), ca.parent().unwrap()).await.unwrap();

    // The certificate of another CA is refused.
    let other = start_tls_server();
    let mut wrong_ca = config(&server);
    wrong_ca.tls.ca_file = other.ca_cert_path();
    let err = assert_kind(connect(&wrong_ca, server.admin_password()).await, ErrorKind::Tls);
    assert!(err.message.contains(&server.ldaps_url().unwrap()), "{err}");

    // Unless verification is switched off.
    let mut insecure = wrong_ca.clone();
    insecure.tls.insecure_skip_verify = true;
    connect(&insecure, server.admin_password()).await.unwrap();
}

#[tokio::test]
async fn starttls_upgrades_plain_ldap_and_plaintext_is_refused_unless_allowed() {
    let server = start_tls_server();
    let mut starttls = config(&server);
    starttls.url = server.url();
    starttls.tls.starttls = true;
    connect(&starttls, server.admin_password()).await.unwrap();

    let mut plain = config(&server);
    plain.url = server.url();
    let err = assert_kind(connect(&plain, server.admin_password()).await, ErrorKind::Config);
    assert!(err.message.contains("bind password") && err.message.contains("in clear"), "{err}");

    plain.tls.allow_plaintext = true;
    connect(&plain, server.admin_password()).await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_that_names_the_bind_dn_and_not_the_password() {
    let server = start_tls_server();
    let err = assert_kind(connect(&config(&server), "not-the-password-Zq9").await, ErrorKind::Auth);
    assert!(err.message.contains(server.admin_dn()) && err.message.contains("49"), "{err}");
    assert!(!err.message.contains("not-the-password-Zq9"), "{err}");
    assert!(!format!("{err:?}").contains("not-the-password-Zq9"), "{err:?}");

    // An empty password would bind anonymously and hide a missing secret.
    assert_kind(connect(&config(&server), "").await, ErrorKind::Config);
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_a_connect_error_within_the_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let server = start_tls_server();
    let mut config = config(&server);
    config.url = format!("ldaps://127.0.0.1:{port}");
    config.timeout_seconds = 1;
    let started = Instant::now();
    let err = assert_kind(connect(&config, server.admin_password()).await, ErrorKind::Connect);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(err.message.contains("within 1 s"), "{err}");

    drop(silent);
    assert_kind(connect(&config, server.admin_password()).await, ErrorKind::Connect);
}

#[tokio::test]
async fn read_view_reads_accounts_groups_containers_and_every_taken_login() {
    let server = start_tls_server();
    server
        .ldapadd(
            "dn: ou=staff,ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: staff\n\n\
             dn: uid=ada,ou=staff,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada Lovelace\nsn: Lovelace\n\
             employeeNumber: 1001\nmail: ada@example.org\nmail: a.lovelace@example.org\nuserPassword: secret\n\n\
             dn: uid=Grace,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: Grace\ncn: Grace Hopper\nsn: Hopper\n\n\
             dn: cn=printer,ou=people,dc=example,dc=org\nobjectClass: device\ncn: printer\n\n\
             dn: cn=staff,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: staff\n\
             member: uid=ada,ou=staff,ou=people,dc=example,dc=org\nmember: uid=Grace,ou=people,dc=example,dc=org\n\n\
             dn: uid=outsider,ou=services,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: Outsider\ncn: Out Sider\nsn: Sider\n",
        )
        .unwrap();
    let mut target = connect_admin(&server).await;
    let view = target.read_view(&view_attrs()).await.unwrap();

    assert_eq!(view.target, "directory");
    let dns: Vec<String> = view.entries.iter().map(|e| normalize_dn(&e.dn)).collect();
    assert_eq!(dns, ["uid=ada,ou=staff,ou=people,dc=example,dc=org", "uid=grace,ou=people,dc=example,dc=org"]);
    let ada = &view.entries[0];
    assert_eq!(Some(ada.object_id.clone()), uuid_of(&server, "uid=ada,ou=staff,ou=people,dc=example,dc=org"));
    assert_eq!(values(ada, "employeenumber"), ["1001"]);
    let mut mail = values(ada, "mail").to_vec();
    mail.sort();
    assert_eq!(mail, ["a.lovelace@example.org", "ada@example.org"]);
    assert!(
        !ada.attrs.contains_key(&AttrName::new("userPassword")) && !ada.attrs.contains_key(&AttrName::new("entryUUID"))
    );

    assert_eq!(view.groups.len(), 1);
    assert_eq!(normalize_dn(&view.groups[0].dn), "cn=staff,ou=groups,dc=example,dc=org");
    assert_eq!(view.groups[0].members.len(), 2);
    assert!(!view.groups[0].object_id.is_empty());

    let containers: Vec<&str> = view.containers.iter().map(String::as_str).collect();
    assert_eq!(
        containers,
        ["ou=groups,dc=example,dc=org", "ou=people,dc=example,dc=org", "ou=staff,ou=people,dc=example,dc=org"]
    );

    // Logins are unique in the whole directory, not only in the managed subtrees.
    let taken: Vec<&str> = view.taken_logins.iter().map(String::as_str).collect();
    assert_eq!(taken, ["ada", "grace", "outsider"]);
}

#[tokio::test]
async fn read_view_pages_past_the_servers_size_limit() {
    let server = start_server(OpenLdapOptions { tls: true, size_limit_for_service: Some(3), ..Default::default() });
    let ldif: String = (0..12)
        .map(|i| format!("dn: uid=u{i},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: u{i}\ncn: U {i}\nsn: U\n\n"))
        .collect();
    server.ldapadd(&ldif).unwrap();
    let mut config = config(&server);
    config.bind_dn = server.service_dn().to_string();
    let mut target = connect(&config, server.service_password()).await.unwrap();
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert_eq!(view.entries.len(), 12);
    assert_eq!(view.taken_logins.len(), 12);
}

#[tokio::test]
async fn a_missing_managed_subtree_is_read_as_empty() {
    let server = start_tls_server();
    let mut config = config(&server);
    config.managed.push("ou=contractors,dc=example,dc=org".to_string());
    let mut target = connect(&config, server.admin_password()).await.unwrap();
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert!(!view.containers.contains("ou=contractors,dc=example,dc=org"));
    target.apply(&op(Action::CreateContainer { dn: "ou=contractors,dc=example,dc=org".into() })).await.unwrap();
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert!(view.containers.contains("ou=contractors,dc=example,dc=org"));
}

#[tokio::test]
async fn every_action_kind_does_what_the_plan_says() {
    let server = start_tls_server();
    let mut target = connect_admin(&server).await;
    let staff = format!("ou=staff,{PEOPLE}");
    let jdoe = format!("uid=jdoe,{staff}");

    // CreateContainer, twice: the second finds it there.
    for _ in 0..2 {
        assert_eq!(
            target.apply(&op(Action::CreateContainer { dn: staff.clone() })).await.unwrap(),
            Applied { entry: None }
        );
    }

    // Create, disabled: it starts out locked; the create reports the new entry's entryUUID alone
    // (so never the password), and the entry holds what was planned.
    let mut attributes = person("jdoe", "2001");
    attributes.insert(AttrName::new("userPassword"), vec!["Secret-1".into()]);
    let create_disabled = op(Action::Create {
        dn: jdoe.as_str().into(),
        attributes: attributes.try_into().unwrap(),
        enabled: false,
        password: false,
    });
    let created = created_entry(target.apply(&create_disabled).await.unwrap());
    assert_eq!(Some(created.object_id.clone()), uuid_of(&server, &jdoe));
    assert_eq!(normalize_dn(&created.dn), normalize_dn(&jdoe));
    assert!(created.attrs.is_empty(), "{created:?}");
    let view = target.read_view(&view_attrs()).await.unwrap();
    let read = find(&view, &jdoe).expect("the created entry is read back");
    assert_eq!(read.object_id, created.object_id);
    assert_eq!(values(read, "employeeNumber"), ["2001"]);
    assert_eq!(values(read, "pwdAccountLockedTime"), [LOCKED]);
    assert!(!server.check_bind(&jdoe, "Secret-1").unwrap(), "a disabled create must not be able to log in");

    // The same create again (its first answer was lost): the same entry, no error.
    let again = created_entry(target.apply(&create_disabled).await.unwrap());
    assert_eq!(again.object_id, created.object_id);
    let id = created.object_id.clone();

    // Adopt: reads it, checks it is the same object, writes nothing.
    let adopted =
        created_entry(target.apply(&op(Action::Adopt { dn: jdoe.clone(), object_id: id.clone() })).await.unwrap());
    assert_eq!(values(&adopted, "cn"), ["jdoe Test"]);
    assert_eq!(values(&adopted, "pwdAccountLockedTime"), [LOCKED]);
    assert!(!adopted.attrs.contains_key(&AttrName::new("userPassword")));
    assert_kind(
        target
            .apply(&op(Action::Adopt { dn: jdoe.clone(), object_id: "00000000-0000-0000-0000-000000000000".into() }))
            .await,
        ErrorKind::Conflict,
    );

    // Enable: the lock goes, the password works.
    let enable = op(Action::Enable {
        dn: jdoe.clone(),
        object_id: Some(id.clone()),
        changes: vec![change("pwdAccountLockedTime", &[LOCKED], &[])],
    });
    let enabled = created_entry(target.apply(&enable).await.unwrap());
    assert_eq!((enabled.object_id.as_str(), enabled.dn.as_str()), (id.as_str(), jdoe.as_str()));
    assert!(server.check_bind(&jdoe, "Secret-1").unwrap());

    // Update: add, replace and delete in one modify.
    let update = op(Action::Update {
        dn: jdoe.clone(),
        object_id: Some(id.clone()),
        changes: vec![
            change("mail", &[], &["jdoe@example.org", "john.doe@example.org"]),
            change("cn", &["jdoe Test"], &["John Doe"]),
            change("employeeNumber", &["2001"], &[]),
        ],
    });
    let updated = created_entry(target.apply(&update).await.unwrap());
    assert_eq!(values(&updated, "cn"), ["John Doe"]);
    let view = target.read_view(&view_attrs()).await.unwrap();
    let entry = find(&view, &jdoe).unwrap();
    assert_eq!(values(entry, "cn"), ["John Doe"]);
    assert_eq!(values(entry, "mail").len(), 2);
    assert!(values(entry, "employeeNumber").is_empty());

    // Disable: locked again.
    let disable = op(Action::Disable {
        dn: jdoe.clone(),
        object_id: Some(id.clone()),
        changes: vec![change("pwdAccountLockedTime", &[], &[LOCKED])],
    });
    target.apply(&disable).await.unwrap();
    assert!(!server.check_bind(&jdoe, "Secret-1").unwrap());

    // Rename and move in one modify DN; the old RDN value goes. Retried, it is already done.
    let moved_dn = format!("uid=john.doe,{PEOPLE}");
    let rename = op(Action::Rename { dn: jdoe.clone(), object_id: Some(id.clone()), new_dn: moved_dn.clone() });
    for _ in 0..2 {
        let renamed = created_entry(target.apply(&rename).await.unwrap());
        assert_eq!((renamed.object_id.as_str(), renamed.dn.as_str()), (id.as_str(), moved_dn.as_str()));
    }
    assert_eq!(uuid_of(&server, &moved_dn), Some(id.clone()));
    assert_eq!(uuid_of(&server, &jdoe), None);
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert_eq!(values(find(&view, &moved_dn).unwrap(), "uid"), ["john.doe"]);

    // Groups: create, create again with one more member, add and remove members (each twice).
    let other_dn = format!("uid=other,{PEOPLE}");
    target.apply(&create(&other_dn, person("other", "2002"))).await.unwrap();
    let group = format!("cn=staff,{GROUPS}");
    let made = created_entry(
        target
            .apply(&op(Action::CreateGroup {
                dn: group.clone(),
                members: vec![moved_dn.clone().into()],
                attributes: Default::default(),
            }))
            .await
            .unwrap(),
    );
    assert_eq!(Some(made.object_id.clone()), uuid_of(&server, &group));
    let again = created_entry(
        target
            .apply(&op(Action::CreateGroup {
                dn: group.clone(),
                members: vec![moved_dn.clone().into(), other_dn.clone().into()],
                attributes: Default::default(),
            }))
            .await
            .unwrap(),
    );
    assert_eq!(again.object_id, made.object_id);
    let members = |view: &TargetView| -> Vec<String> {
        let mut members: Vec<String> = view.groups[0].members.iter().map(|m| normalize_dn(m)).collect();
        members.sort();
        members
    };
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert_eq!(members(&view), [normalize_dn(&moved_dn), normalize_dn(&other_dn)]);
    let third = format!("uid=third,{PEOPLE}");
    for _ in 0..2 {
        target.apply(&op(Action::AddMember { group: group.clone(), member: third.clone() })).await.unwrap();
    }
    for _ in 0..2 {
        target.apply(&op(Action::RemoveMember { group: group.clone(), member: other_dn.clone() })).await.unwrap();
    }
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert_eq!(members(&view), [normalize_dn(&moved_dn), normalize_dn(&third)]);

    // Delete, twice: the second finds it gone, which is what was wanted.
    let delete = op(Action::Delete { dn: moved_dn.clone(), object_id: Some(id.clone()) });
    for _ in 0..2 {
        assert_eq!(target.apply(&delete).await.unwrap(), Applied { entry: None });
    }
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert!(find(&view, &moved_dn).is_none());
}

#[tokio::test]
async fn an_update_planned_against_a_value_that_changed_since_is_a_conflict() {
    let server = start_tls_server();
    let target = connect_admin(&server).await;
    let dn = format!("uid=alice,{PEOPLE}");
    let mut attributes = person("alice", "3001");
    attributes.insert(AttrName::new("description"), vec!["first".into()]);
    let id = created_entry(target.apply(&create(&dn, attributes)).await.unwrap()).object_id;

    server
        .ldapmodify(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: description\ndescription: edited by an administrator\n"
        ))
        .unwrap();
    let update = op(Action::Update {
        dn: dn.clone(),
        object_id: Some(id.clone()),
        changes: vec![change("title", &[], &["Engineer"]), change("description", &["first"], &["second"])],
    });
    let err = assert_kind(target.apply(&update).await, ErrorKind::Conflict);
    assert!(err.message.contains("description") && err.message.contains(&dn), "{err}");
    // The modify is all or nothing: the administrator's value stays, the title was not added either.
    let ldif = server.search(&dn, "(objectClass=*)", &["description", "title"]).unwrap();
    assert!(ldif.contains("description: edited by an administrator") && !ldif.contains("title:"), "{ldif}");
}

#[tokio::test]
async fn operations_on_an_entry_replaced_since_planning_are_conflicts() {
    let server = start_tls_server();
    let target = connect_admin(&server).await;
    let dn = format!("uid=bob,{PEOPLE}");
    let planned_id = created_entry(target.apply(&create(&dn, person("bob", "4001"))).await.unwrap()).object_id;
    // Someone deletes bob and creates another entry under the same name.
    server.ldapmodify(&format!("dn: {dn}\nchangetype: delete\n")).unwrap();
    let replacement = created_entry(target.apply(&create(&dn, person("bob", "4002"))).await.unwrap()).object_id;

    let planned = Some(planned_id.clone());
    let actions = [
        Action::Update { dn: dn.clone(), object_id: planned.clone(), changes: vec![change("title", &[], &["x"])] },
        Action::Disable {
            dn: dn.clone(),
            object_id: planned.clone(),
            changes: vec![change("pwdAccountLockedTime", &[], &[LOCKED])],
        },
        Action::Rename { dn: dn.clone(), object_id: planned.clone(), new_dn: format!("uid=robert,{PEOPLE}") },
        Action::Delete { dn: dn.clone(), object_id: planned.clone() },
    ];
    for action in actions {
        let err = assert_kind(target.apply(&op(action)).await, ErrorKind::Conflict);
        assert!(err.message.contains(&planned_id) && err.message.contains(&replacement), "{err}");
    }
    assert_eq!(uuid_of(&server, &dn), Some(replacement));

    // An entry that is gone is a conflict for an update, and done for a delete.
    server.ldapmodify(&format!("dn: {dn}\nchangetype: delete\n")).unwrap();
    let update =
        Action::Update { dn: dn.clone(), object_id: planned.clone(), changes: vec![change("title", &[], &["x"])] };
    assert_kind(target.apply(&op(update)).await, ErrorKind::Conflict);
    target.apply(&op(Action::Delete { dn: dn.clone(), object_id: planned })).await.unwrap();
}

#[tokio::test]
async fn a_create_recognises_its_own_entry_by_the_correlation_value_and_nothing_else() {
    let server = start_tls_server();
    let target = connect_admin(&server).await;
    let dn = format!("uid=carol,{PEOPLE}");
    target.apply(&create(&dn, person("carol", "5001"))).await.unwrap();

    // Someone else's create at the same name is a conflict, whatever its correlation value holds.
    for hostile in ["5002", "*", "*)(uid=*", "5001)(|(uid=*", "\\2a"] {
        let err = assert_kind(target.apply(&create(&dn, person("carol", hostile))).await, ErrorKind::Conflict);
        assert!(err.message.contains(&dn) && err.message.contains("68"), "{err}");
    }
    let ldif = server.search(&dn, "(objectClass=*)", &["employeeNumber"]).unwrap();
    assert!(ldif.contains("employeeNumber: 5001"), "{ldif}");

    // A value full of filter syntax is matched exactly, so its own retried create is recognised.
    let star = format!("uid=star,{PEOPLE}");
    let first = created_entry(target.apply(&create(&star, person("star", "*)(uid=*"))).await.unwrap());
    let retried = created_entry(target.apply(&create(&star, person("star", "*)(uid=*"))).await.unwrap());
    assert_eq!(first.object_id, retried.object_id);

    // Without a correlation value, an existing entry cannot be recognised.
    let mut anonymous = person("carol", "5001");
    anonymous.remove(&AttrName::new("employeeNumber"));
    assert_kind(target.apply(&create(&dn, anonymous)).await, ErrorKind::Conflict);
}

#[tokio::test]
async fn writes_outside_the_managed_subtrees_are_refused_before_anything_is_sent() {
    let server = start_tls_server();
    server
        .ldapadd("dn: uid=svc,ou=services,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: svc\ncn: svc\nsn: svc\n")
        .unwrap();
    let target = connect_admin(&server).await;
    let inside = format!("uid=dave,{PEOPLE}");
    let id = created_entry(target.apply(&create(&inside, person("dave", "6001"))).await.unwrap()).object_id;
    let outside = "uid=svc,ou=services,dc=example,dc=org".to_string();
    let outside_group = "cn=admins,ou=services,dc=example,dc=org".to_string();

    let refused = [
        Action::CreateContainer { dn: "ou=evil,dc=example,dc=org".into() },
        Action::Create {
            dn: "uid=mallory,ou=services,dc=example,dc=org".into(),
            attributes: person("mallory", "6002").try_into().unwrap(),
            enabled: true,
            password: false,
        },
        // A value that looks like a DN inside the managed scope, escaped, stays one RDN outside it.
        Action::Create {
            dn: Dn::parse("dc=example,dc=org").unwrap().child("uid", &format!("x,{PEOPLE}")).to_string().into(),
            attributes: person("x", "6003").try_into().unwrap(),
            enabled: true,
            password: false,
        },
        Action::Adopt { dn: outside.clone(), object_id: id.clone() },
        Action::Update { dn: outside.clone(), object_id: None, changes: vec![change("description", &[], &["owned"])] },
        Action::Disable {
            dn: outside.clone(),
            object_id: None,
            changes: vec![change("pwdAccountLockedTime", &[], &[LOCKED])],
        },
        Action::Rename {
            dn: inside.clone(),
            object_id: Some(id.clone()),
            new_dn: "uid=dave,ou=services,dc=example,dc=org".into(),
        },
        Action::Rename { dn: outside.clone(), object_id: None, new_dn: format!("uid=svc,{PEOPLE}") },
        Action::CreateGroup {
            dn: outside_group.clone(),
            members: vec![inside.clone().into()],
            attributes: Default::default(),
        },
        Action::AddMember { group: outside_group.clone(), member: inside.clone() },
        Action::RemoveMember { group: outside_group, member: inside.clone() },
        Action::Delete { dn: outside.clone(), object_id: None },
        Action::Delete { dn: "dc=example,dc=org".into(), object_id: None },
    ];
    for action in refused {
        let kind = action.kind();
        let err = assert_kind(target.apply(&op(action)).await, ErrorKind::OutOfScope);
        assert!(err.message.contains("outside the managed subtrees"), "{kind}: {err}");
    }
    assert!(uuid_of(&server, &outside).is_some());
    assert_eq!(uuid_of(&server, &inside), Some(id));
    let ldif = server
        .search("dc=example,dc=org", "(|(uid=mallory)(uid=x*)(ou=evil)(cn=admins)(description=owned))", &["1.1"])
        .unwrap();
    assert!(ldif.trim().is_empty(), "{ldif}");

    // An operation for another target is refused too.
    let mut foreign = op(Action::Delete { dn: inside.clone(), object_id: None });
    foreign.target = "other".into();
    assert_kind(target.apply(&foreign).await, ErrorKind::Permanent);
}

#[tokio::test]
async fn names_and_values_full_of_special_characters_land_exactly() {
    let server = start_tls_server();
    let mut target = connect_admin(&server).await;
    let hostile =
        ["#Smith, \"J\" + Co; <x> back\\slash ", " leading space=equals,comma", "Łukasz Żółć ß 山田 \u{202e}rtl"];
    let people = Dn::parse(PEOPLE).unwrap();
    let group = people.parent().unwrap().child("ou", "groups").child("cn", "#weird, \"group\" + ; <>\\ ");
    let (mut dns, mut ids) = (Vec::new(), Vec::new());
    for (i, value) in hostile.iter().enumerate() {
        let dn = people.child("uid", value).to_string();
        let mut attributes = person(value, &format!("7{i:03}"));
        attributes.insert(AttrName::new("description"), vec![value.to_string(), format!("*)(uid=*{value}")]);
        let created = created_entry(target.apply(&create(&dn, attributes)).await.unwrap());
        dns.push(dn);
        ids.push(created.object_id);
    }
    let view = target.read_view(&view_attrs()).await.unwrap();
    assert_eq!(view.entries.len(), hostile.len());
    for ((dn, object_id), value) in dns.iter().zip(&ids).zip(hostile) {
        let entry = find(&view, dn).unwrap_or_else(|| panic!("{dn} not read back in {view:#?}"));
        assert_eq!(&entry.object_id, object_id, "the create reported the entry's own id");
        let read_dn = Dn::parse(&entry.dn).unwrap();
        assert_eq!(read_dn.rdn().unwrap().0[0].value, value, "{}", entry.dn);
        assert_eq!(read_dn.parent().unwrap().normalized(), people.normalized());
        assert_eq!(values(entry, "uid"), [value]);
        let mut description = values(entry, "description").to_vec();
        description.sort();
        let mut expected = vec![value.to_string(), format!("*)(uid=*{value}")];
        expected.sort();
        assert_eq!(description, expected);
        // The server finds each by its exact value through an escaped filter, and only that one.
        let filter = format!("(uid={})", escape_filter_value(value));
        let ldif = server.search(PEOPLE, &filter, &["1.1"]).unwrap();
        assert_eq!(ldif.lines().filter(|l| l.starts_with("dn")).count(), 1, "{filter}: {ldif}");
    }
    assert!(view.taken_logins.contains(&hostile[0].to_lowercase()));

    // Rename to another hostile name, update, group membership and delete all address them exactly.
    let renamed = people.child("uid", "#new, \"name\" + ; < > \\ ").to_string();
    let id = find(&view, &dns[0]).unwrap().object_id.clone();
    target
        .apply(&op(Action::Rename { dn: dns[0].clone(), object_id: Some(id.clone()), new_dn: renamed.clone() }))
        .await
        .unwrap();
    let update = op(Action::Update {
        dn: renamed.clone(),
        object_id: Some(id.clone()),
        changes: vec![change("description", &[hostile[0]], &["plain"])],
    });
    target.apply(&update).await.unwrap();
    target
        .apply(&op(Action::CreateGroup {
            dn: group.to_string(),
            members: vec![renamed.clone().into(), dns[1].clone().into()],
            attributes: Default::default(),
        }))
        .await
        .unwrap();
    target.apply(&op(Action::RemoveMember { group: group.to_string(), member: dns[1].clone() })).await.unwrap();
    let view = target.read_view(&view_attrs()).await.unwrap();
    let entry = find(&view, &renamed).unwrap();
    assert_eq!(entry.object_id, id);
    assert!(values(entry, "description").contains(&"plain".to_string()));
    assert_eq!(view.groups.len(), 1);
    assert_eq!(Dn::parse(&view.groups[0].dn).unwrap().rdn().unwrap().0[0].value, "#weird, \"group\" + ; <>\\ ");
    assert_eq!(view.groups[0].members.iter().map(|m| normalize_dn(m)).collect::<Vec<_>>(), [normalize_dn(&renamed)]);
    target.apply(&op(Action::Delete { dn: renamed.clone(), object_id: Some(id) })).await.unwrap();
    assert!(uuid_of(&server, &renamed).is_none());
}

#[tokio::test]
async fn many_operations_run_at_once_on_one_connection() {
    let server = start_tls_server();
    let target = Arc::new(connect_admin(&server).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let target = Arc::clone(&target);
        tasks.spawn(async move {
            let dn = format!("uid=bulk{i},{PEOPLE}");
            target
                .apply(&create(&dn, person(&format!("bulk{i}"), &format!("9{i:03}"))))
                .await
                .map(|a| a.entry.map(|e| e.object_id))
        });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        ids.insert(done.unwrap().unwrap().unwrap());
    }
    assert_eq!(ids.len(), 60);
}

#[tokio::test]
async fn a_connection_closed_by_a_server_restart_is_opened_again() {
    let mut server = start_tls_server();
    let target = connect_admin(&server).await;
    target.apply(&create(&format!("uid=before,{PEOPLE}"), person("before", "8001"))).await.unwrap();

    server.stop().unwrap();
    // Let the connection's reader see the server hang up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let down = target.apply(&create(&format!("uid=down,{PEOPLE}"), person("down", "8002"))).await;
    assert_kind(down, ErrorKind::Transient);

    server.start_again().unwrap();
    let after = format!("uid=after,{PEOPLE}");
    target.apply(&create(&after, person("after", "8003"))).await.unwrap();
    assert!(uuid_of(&server, &after).is_some());
}

#[tokio::test]
async fn removing_the_last_member_of_a_group_is_refused_with_a_reason() {
    let server = start_tls_server();
    let target = connect_admin(&server).await;
    let group = format!("cn=solo,{GROUPS}");
    let member = format!("uid=solo,{PEOPLE}");
    target
        .apply(&op(Action::CreateGroup {
            dn: group.clone(),
            members: vec![member.clone().into()],
            attributes: Default::default(),
        }))
        .await
        .unwrap();
    let err = assert_kind(target.apply(&op(Action::RemoveMember { group, member })).await, ErrorKind::Permanent);
    assert!(err.message.contains("at least one member"), "{err}");
}

#[tokio::test]
async fn the_target_trait_is_usable_generically() {
    async fn read<T: Target>(target: &mut T) -> Result<TargetView, TargetError> {
        target.read_view(&[AttrName::new("uid")]).await
    }
    let server = start_tls_server();
    let mut target = connect_admin(&server).await;
    let view = read(&mut target).await.unwrap();
    assert!(view.entries.is_empty());
    // OpenLDAP advertises the assertion control: writes also assert the entryUUID they checked.
    assert!(format!("{target:?}").contains("assertion_control: true"), "{target:?}");
}

#[tokio::test]
async fn a_create_learns_its_entry_uuid_from_the_adds_own_answer() {
    // The post-read control (RFC 4527): one request per create, no search to read the entry back;
    // it asks for the entryUUID alone (the store links it; the values are the planned ones).
    let server = start_server(OpenLdapOptions { tls: true, log_level: "stats".to_owned(), ..Default::default() });
    let target = connect_admin(&server).await;
    let dn = format!("uid=postread,{PEOPLE}");
    let created = created_entry(target.apply(&create(&dn, person("postread", "3001"))).await.unwrap());
    let log = std::fs::read_to_string(server.log_path()).expect("reading slapd's log");
    assert!(log.contains("ADD dn=\"uid=postread,"), "the add is in slapd's log:\n{log}");
    assert!(
        !log.lines().any(|line| line.contains("SRCH base=\"uid=postread,")),
        "the create read its entry back with a search:\n{log}"
    );
    assert!(created.attrs.is_empty(), "{created:?}");
    assert_eq!(Some(created.object_id), uuid_of(&server, &dn));
    let ldif = server.search(&dn, "(objectClass=*)", &["employeeNumber"]).unwrap();
    assert!(ldif.lines().any(|line| line == "employeeNumber: 3001"), "{ldif}");
}

/// A plain LDAP target spreads its operations over one connection per 8 of its `concurrency`,
/// handed out in turn (slapd defers a connection's operations beyond half its threads): the
/// default 32 over four, 8 over one.
#[tokio::test]
async fn operations_go_over_one_connection_per_eight_in_flight() {
    let server = start_server(OpenLdapOptions { tls: true, log_level: "stats".to_owned(), ..Default::default() });
    for (concurrency, connections) in [(32, 4), (8, 1)] {
        let mut config = config(&server);
        config.concurrency = concurrency;
        let target = connect(&config, server.admin_password()).await.expect("connect as admin");
        for i in 0..8 {
            let uid = format!("spread{concurrency}x{i}");
            target
                .apply(&create(&format!("uid={uid},{PEOPLE}"), person(&uid, &format!("7{concurrency}{i}"))))
                .await
                .unwrap();
        }
        target.close().await.unwrap();
        let log = std::fs::read_to_string(server.log_path()).expect("reading slapd's log");
        let used: std::collections::BTreeSet<&str> = log
            .lines()
            .filter(|line| line.contains(&format!("ADD dn=\"uid=spread{concurrency}x")))
            .filter_map(|line| line.split_whitespace().find(|word| word.starts_with("conn=")))
            .collect();
        assert_eq!(used.len(), connections, "concurrency {concurrency}: the adds came over {used:?}");
    }
}

/// A small group learns its entryUUID from the add's own answer, as an account does; a group of more
/// than 32 members reads it with a search after the add instead (slapd's memberof overlay would
/// answer the post-read once more for every member it writes `memberOf` to).
#[tokio::test]
async fn a_large_groups_create_reads_its_id_back_rather_than_asking_the_add_for_it() {
    let server = start_server(OpenLdapOptions { tls: true, log_level: "stats".to_owned(), ..Default::default() });
    let target = connect_admin(&server).await;
    let members = |n: usize| (0..n).map(|i| format!("uid=member{i},{PEOPLE}").into()).collect::<Vec<_>>();
    let (small, large) = (format!("cn=small,{GROUPS}"), format!("cn=large,{GROUPS}"));
    let mut made = Vec::new();
    for (group, count) in [(&small, 32), (&large, 33)] {
        let action = Action::CreateGroup { dn: group.clone(), members: members(count), attributes: Default::default() };
        made.push((group, created_entry(target.apply(&op(action)).await.unwrap()).object_id));
    }
    // Read before the checks below search the groups themselves.
    let log = std::fs::read_to_string(server.log_path()).expect("reading slapd's log");
    let searched = |group: &str| log.lines().any(|line| line.contains(&format!("SRCH base=\"{group}\"")));
    assert!(log.contains("ADD dn=\"cn=large,"), "the adds are in slapd's log:\n{log}");
    assert!(!searched(&small), "the small group's create read its entry back with a search:\n{log}");
    assert!(searched(&large), "the large group's create did not search for its id:\n{log}");
    for (group, id) in made {
        assert_eq!(Some(id), uuid_of(&server, group), "{group}");
    }
}

/// OpenLDAP's refint rewrites a renamed member in its groups in a task of its own, after the rename
/// has answered. Leavers are moved and then removed from their groups under their new DN: a removal
/// that arrives before refint's rewrite must still leave the group without them, under either DN.
#[tokio::test]
async fn a_member_removed_right_after_its_rename_is_gone_under_both_names() {
    let server = start_tls_server();
    let target = Arc::new(connect_admin(&server).await);
    let leavers = format!("ou=leavers,{PEOPLE}");
    target.apply(&op(Action::CreateContainer { dn: leavers.clone() })).await.unwrap();
    let keeper = format!("uid=keeper,{PEOPLE}");
    target.apply(&create(&keeper, person("keeper", "7000"))).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let dn = format!("uid=gone{i},{PEOPLE}");
        ids.push((
            dn.clone(),
            created_entry(target.apply(&create(&dn, person(&format!("gone{i}"), &format!("7{i:03}")))).await.unwrap())
                .object_id,
        ));
    }
    let group = format!("cn=all,{GROUPS}");
    let mut members: Vec<String> = ids.iter().map(|(dn, _)| dn.clone()).collect();
    members.push(keeper.clone());
    target
        .apply(&op(Action::CreateGroup {
            dn: group.clone(),
            members: members.iter().map(|m| m.as_str().into()).collect(),
            attributes: Default::default(),
        }))
        .await
        .unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for (i, (dn, id)) in ids.into_iter().enumerate() {
        let (target, group, new_dn) = (Arc::clone(&target), group.clone(), format!("uid=gone{i},{leavers}"));
        tasks.spawn(async move {
            target.apply(&op(Action::Rename { dn, object_id: Some(id), new_dn: new_dn.clone() })).await?;
            target.apply(&op(Action::RemoveMember { group, member: new_dn })).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    // Whatever refint still had to do has had time to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ldif = server.search(&group, "(objectClass=*)", &["member"]).unwrap();
    let left: Vec<&str> = ldif.lines().filter_map(|line| line.strip_prefix("member: ")).collect();
    assert_eq!(left, [keeper.as_str()], "{ldif}");
}

/// A group larger than one request may carry (`max_request_bytes` at its least, about 90 of these
/// DNs) is created with its first members and given the rest in later requests: every member is
/// there. Created again over the existing group (an earlier create whose outcome was lost), the
/// members it lacks are added, those it has are kept.
#[tokio::test]
async fn a_group_of_more_members_than_one_request_carries_gets_them_all() {
    let server = start_tls_server();
    let mut config = config(&server);
    config.max_request_bytes = Some(roster_core::config::MIN_REQUEST_BYTES);
    let target = connect(&config, server.admin_password()).await.expect("connect as admin");
    let group = format!("cn=everyone,{GROUPS}");
    let members = |n: usize| (0..n).map(|i| format!("uid=member{i},{PEOPLE}").into()).collect::<Vec<_>>();
    let count = |ldif: &str| ldif.lines().filter(|line| line.starts_with("member: ")).count();

    target
        .apply(&op(Action::CreateGroup { dn: group.clone(), members: members(2500), attributes: Default::default() }))
        .await
        .unwrap();
    assert_eq!(count(&server.search(&group, "(objectClass=*)", &["member"]).unwrap()), 2500);

    target
        .apply(&op(Action::CreateGroup { dn: group.clone(), members: members(3100), attributes: Default::default() }))
        .await
        .unwrap();
    let ldif = server.search(&group, "(objectClass=*)", &["member"]).unwrap();
    assert_eq!(count(&ldif), 3100);
    assert!(ldif.contains(&format!("member: uid=member3099,{PEOPLE}")), "the last member is missing");
}

/// A modify of many members that slapd refuses because one of them is already there is halved,
/// and each half sent again: every addition lands with its own outcome, in a few dozen modifies
/// rather than one per member (200 before halving was done).
#[tokio::test]
async fn a_refused_modify_of_many_members_is_halved_not_sent_member_by_member() {
    let server = start_server(OpenLdapOptions { tls: true, log_level: "stats".to_owned(), ..Default::default() });
    let target = connect_admin(&server).await;
    let group = format!("cn=crowd,{GROUPS}");
    let member = |i: usize| format!("uid=crowd{i},{PEOPLE}");
    target
        .apply(&op(Action::CreateGroup {
            dn: group.clone(),
            members: vec![member(137).into()],
            attributes: Default::default(),
        }))
        .await
        .unwrap();
    let batch: Vec<Operation> =
        (0..200).map(|i| op(Action::AddMember { group: group.clone(), member: member(i) })).collect();
    let log = server.log_path();
    let before = std::fs::read_to_string(&log).unwrap().len();
    let results = target.apply_batch(&batch).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let modifies = text[before..].lines().filter(|l| l.contains("MOD dn=\"cn=crowd,ou=groups")).count();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let ldif = server.search(&group, "(objectClass=*)", &["member"]).unwrap();
    assert_eq!(ldif.lines().filter(|line| line.starts_with("member: ")).count(), 200, "{ldif}");
    // One refused modify of 200, then halves of 100, 50, 25 and 12 or 13 (one of each pair
    // refused), then at most 13 one by one.
    assert!((10..=30).contains(&modifies), "{modifies} modifies");
}

/// The membership changes of one group in a batch, all additions or all removals, go to slapd as
/// one modify (back-mdb rewrites a group entry whole for each); every operation still gets its own
/// outcome: when the one modify is refused (a member already gone, the last member of a
/// groupOfNames), each change goes again on its own, as it would alone.
#[tokio::test]
async fn membership_changes_of_one_group_go_in_one_modify_each_with_its_own_outcome() {
    let server = start_server(OpenLdapOptions { tls: true, log_level: "stats".to_owned(), ..Default::default() });
    let target = connect_admin(&server).await;
    let team = format!("cn=team,{GROUPS}");
    let other = format!("cn=other,{GROUPS}");
    let member = |name: &str| format!("uid={name},{PEOPLE}");
    for (group, names) in [(&team, ["a", "b", "c"]), (&other, ["a", "z", "y"])] {
        let members = names.iter().map(|n| member(n).into()).collect();
        target
            .apply(&op(Action::CreateGroup { dn: group.clone(), members, attributes: Default::default() }))
            .await
            .unwrap();
    }
    let add = |group: &str, name: &str| op(Action::AddMember { group: group.to_string(), member: member(name) });
    let remove = |group: &str, name: &str| op(Action::RemoveMember { group: group.to_string(), member: member(name) });
    let members_of = |group: &str| -> Vec<String> {
        let ldif = server.search(group, "(objectClass=*)", &["member"]).unwrap();
        let mut members: Vec<String> =
            ldif.lines().filter_map(|line| line.strip_prefix("member: ")).map(normalize_dn).collect();
        members.sort();
        members
    };
    let expected = |names: &[&str]| -> Vec<String> {
        let mut members: Vec<String> = names.iter().map(|n| normalize_dn(&member(n))).collect();
        members.sort();
        members
    };
    // The modifies of `team` slapd logs while `batch` is applied, and the batch's results.
    let log = server.log_path();
    let modifies_of_team = |ops: Vec<Operation>| {
        let target = &target;
        let log = log.clone();
        async move {
            let before = std::fs::read_to_string(&log).unwrap().len();
            let results = target.apply_batch(&ops).await;
            let text = std::fs::read_to_string(&log).unwrap();
            let modifies = text[before..].lines().filter(|l| l.contains("MOD dn=\"cn=team,ou=groups")).count();
            (modifies, results)
        }
    };
    assert!(target.members_per_request() > 1);

    // Three additions to `team`, spelled two ways, with one to another group and a create among
    // them: one modify of `team`.
    let batch = vec![
        add(&team, "d"),
        add(&other, "d"),
        add(&team.to_uppercase(), "e"),
        create(&member("f"), person("f", "6001")),
        add(&team, "f"),
    ];
    let (modifies, results) = modifies_of_team(batch).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(modifies, 1);
    assert_eq!(members_of(&team), expected(&["a", "b", "c", "d", "e", "f"]));
    assert_eq!(members_of(&other), expected(&["a", "d", "y", "z"]));

    // Removals, one of a member already gone and one of an already present addition: each counts as
    // done, the others are removed; the refused modify, then one per member.
    let (modifies, results) =
        modifies_of_team(vec![remove(&team, "b"), remove(&team, "gone"), remove(&team, "c")]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(modifies, 4);
    assert_eq!(members_of(&team), expected(&["a", "d", "e", "f"]));
    let (modifies, results) = modifies_of_team(vec![add(&team, "a"), add(&team, "g")]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(modifies, 3);
    assert_eq!(members_of(&team), expected(&["a", "d", "e", "f", "g"]));

    // Removing every member: all go but the last, which a groupOfNames must keep, refused with its
    // reason; an operation outside the managed subtrees is refused on its own.
    let outside = op(Action::RemoveMember { group: "cn=x,ou=elsewhere,dc=example,dc=org".into(), member: member("a") });
    let batch = vec![
        remove(&team, "a"),
        remove(&team, "d"),
        outside,
        remove(&team, "e"),
        remove(&team, "f"),
        remove(&team, "g"),
    ];
    let (_, results) = modifies_of_team(batch).await;
    let kinds: Vec<Option<ErrorKind>> = results.iter().map(|r| r.as_ref().err().map(|e| e.kind)).collect();
    assert_eq!(kinds, [None, None, Some(ErrorKind::OutOfScope), None, None, Some(ErrorKind::Permanent)]);
    let last = results[5].as_ref().unwrap_err();
    assert!(last.message.contains("at least one member") && last.message.contains("uid=g,"), "{last}");
    assert_eq!(members_of(&team), expected(&["g"]));
}
