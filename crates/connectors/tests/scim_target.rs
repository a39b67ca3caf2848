//! The SCIM target against a real, independent SCIM 2.0 server (the python-scim project's
//! `scim2-server`, started by the test kit): joiner, mover, leaver, groups, adoption and ETags. The
//! throttling tests use a small local axum server that answers 429 first, since the real server
//! never does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use roster_connectors::target::scim::{ScimSettings, ScimTarget};
use roster_connectors::target::{ErrorKind, Target};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::plan::{Action, AttrChange, Category, Operation};
use roster_core::state::TargetView;
use roster_testkit::ScimServer;
use secrecy::SecretString;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn settings(url: String, token: &str) -> ScimSettings {
    let mut settings = ScimSettings::new("cloud", url, SecretString::from(token.to_string()));
    settings.allow_plaintext = true;
    settings.first_backoff = Duration::from_millis(20);
    settings
}

async fn connect(server: &ScimServer) -> ScimTarget {
    ScimTarget::connect(settings(server.base_url(), server.token())).await.expect("connects")
}

fn op(action: Action) -> Operation {
    Operation {
        id: 0,
        person: None,
        target: "cloud".into(),
        category: Category::Joiner,
        reason: "test".into(),
        depends_on: Vec::new(),
        action,
    }
}

fn attrs(pairs: &[(&str, &str)]) -> AttrMap {
    pairs.iter().map(|(name, value)| (AttrName::new(*name), vec![value.to_string()])).collect()
}

fn ext(name: &str) -> String {
    format!("{ENTERPRISE}:{name}")
}

fn asked() -> Vec<AttrName> {
    ["userName", "externalId", "name.givenName", "emails[type eq \"work\"].value", "active"]
        .into_iter()
        .map(String::from)
        .chain(["employeeNumber", "department", "manager"].map(ext))
        .map(AttrName::new)
        .collect()
}

fn values<'v>(view: &'v TargetView, dn: &str, attr: &str) -> Vec<&'v str> {
    let entry =
        view.entries.iter().find(|e| e.dn.eq_ignore_ascii_case(dn)).unwrap_or_else(|| panic!("{dn} not in view"));
    entry.attrs.get(&AttrName::new(attr)).map(|v| v.iter().map(String::as_str).collect()).unwrap_or_default()
}

fn create(dn: &str, attributes: AttrMap) -> Operation {
    op(Action::Create { dn: dn.into(), attributes: attributes.try_into().unwrap(), enabled: true, password: false })
}

const BOSS: &str = "externalId=1000,ou=Users,o=scim";
const ADA: &str = "externalId=1001,ou=Users,o=scim";
const STAFF: &str = "displayName=Staff,ou=Groups,o=scim";

#[tokio::test]
async fn joiner_mover_leaver_and_groups() {
    let server = ScimServer::start().expect("scim2-server starts");
    let mut target = connect(&server).await;
    assert!(target.features().patch, "scim2-server advertises PATCH");
    assert!(!target.capabilities().rename, "synthetic DNs: a userName change is an update");

    // Joiners: the manager first, then her report, with the enterprise extension.
    let boss = [("userName", "grace"), ("externalId", "1000"), ("name.givenName", "Grace")];
    let mut boss = attrs(&boss);
    boss.insert(AttrName::new(ext("employeeNumber")), vec!["1000".into()]);
    let created = target.apply(&create(BOSS, boss)).await.expect("manager created");
    let boss_id = created.entry.expect("the new entry").object_id;
    let mut ada = attrs(&[
        ("userName", "ada"),
        ("externalId", "1001"),
        ("name.givenName", "Ada"),
        ("emails[type eq \"work\"].value", "ada@example.org"),
    ]);
    ada.insert(AttrName::new(ext("employeeNumber")), vec!["1001".into()]);
    ada.insert(AttrName::new(ext("department")), vec!["Ops".into()]);
    ada.insert(AttrName::new(ext("manager")), vec![BOSS.into()]);
    let created = target.apply(&create(ADA, ada)).await.expect("report created");
    let ada_entry = created.entry.expect("the new entry");
    assert_eq!(ada_entry.dn, ADA);
    assert_ne!(ada_entry.object_id, boss_id);

    let view = target.read_view(&asked()).await.expect("view");
    assert_eq!(view.entries.len(), 2);
    assert_eq!(values(&view, ADA, &ext("manager")), [BOSS], "the manager reads back as a DN");
    assert_eq!(values(&view, ADA, &ext("department")), ["Ops"]);
    assert_eq!(values(&view, ADA, "emails[type eq \"work\"].value"), ["ada@example.org"]);
    assert_eq!(values(&view, ADA, "active"), ["true"]);
    assert!(view.taken_logins.contains("ada") && view.taken_logins.contains("grace"));

    // Mover: one PATCH with only what changed.
    let changes = vec![
        AttrChange { attr: AttrName::new(ext("department")), old: vec!["Ops".into()], new: vec!["Sales".into()] },
        AttrChange { attr: AttrName::new("userName"), old: vec!["ada".into()], new: vec!["ada.l".into()] },
        AttrChange { attr: AttrName::new(ext("manager")), old: vec![BOSS.into()], new: vec![] },
    ];
    let id = Some(ada_entry.object_id.clone());
    target.apply(&op(Action::Update { dn: ADA.into(), object_id: id.clone(), changes })).await.expect("moved");
    let view = target.read_view(&asked()).await.expect("view");
    assert_eq!(values(&view, ADA, &ext("department")), ["Sales"]);
    assert_eq!(values(&view, ADA, "userName"), ["ada.l"], "a userName change keeps the DN");
    assert!(values(&view, ADA, &ext("manager")).is_empty());
    assert_eq!(values(&view, ADA, "name.givenName"), ["Ada"], "untouched attributes stay");

    // Groups: created with a member, then membership by PATCH.
    let group = op(Action::CreateGroup { dn: STAFF.into(), members: vec![ADA.into()], attributes: Default::default() });
    target.apply(&group).await.expect("group created");
    target.apply(&op(Action::AddMember { group: STAFF.into(), member: BOSS.into() })).await.expect("added");
    let view = target.read_view(&asked()).await.expect("view");
    let mut members = view.groups.iter().find(|g| g.dn == STAFF).expect("group read").members.clone();
    members.sort();
    assert_eq!(members, [BOSS, ADA]);
    target.apply(&op(Action::RemoveMember { group: STAFF.into(), member: ADA.into() })).await.expect("removed");
    let view = target.read_view(&asked()).await.expect("view");
    assert_eq!(view.groups[0].members, [BOSS]);

    // Leaver: disabled by `active: false`, later deleted; a second delete finds it gone.
    let disable = op(Action::Disable { dn: ADA.into(), object_id: id.clone(), changes: Vec::new() });
    target.apply(&disable).await.expect("disabled");
    let view = target.read_view(&asked()).await.expect("view");
    assert_eq!(values(&view, ADA, "active"), ["false"]);
    let delete = op(Action::Delete { dn: ADA.into(), object_id: id.clone() });
    target.apply(&delete).await.expect("deleted");
    target.apply(&delete).await.expect("deleting what is gone is done");
    let view = target.read_view(&asked()).await.expect("view");
    assert!(view.entries.iter().all(|e| e.dn != ADA));

    // A userName taken is a conflict, not a failure to retry.
    let taken = create("externalId=1002,ou=Users,o=scim", attrs(&[("userName", "grace"), ("externalId", "1002")]));
    let error = target.apply(&taken).await.expect_err("userName taken");
    assert_eq!(error.kind, ErrorKind::Conflict, "{error}");
    assert!(!error.message.contains(server.token()), "no token in messages");
}

#[tokio::test]
async fn an_existing_user_is_found_by_external_id_or_user_name_and_adopted() {
    let server = ScimServer::start().expect("scim2-server starts");
    let mut target = connect(&server).await;
    // Accounts made before roster: one without an externalId, one with.
    target.apply(&create("ignored", attrs(&[("userName", "linus")]))).await.expect("created");
    target.apply(&create("ignored", attrs(&[("userName", "ken"), ("externalId", "2002")]))).await.expect("created");

    let found = target.find_users("userName", "linus", &asked()).await.expect("found");
    assert_eq!(found.len(), 1);
    assert!(found[0].dn.starts_with("id="), "no externalId yet: {}", found[0].dn);
    let found_ken = target.find_users("externalId", "2002", &asked()).await.expect("found");
    assert_eq!(found_ken.len(), 1);
    assert_eq!(found_ken[0].dn, "externalId=2002,ou=Users,o=scim");
    assert!(target.find_users("userName", "nobody\"", &asked()).await.expect("asked").is_empty());

    // Adopt linus, then give him his key: from then on his DN is the planner's.
    let linus = &found[0];
    let adopted = target
        .apply(&op(Action::Adopt { dn: linus.dn.clone(), object_id: linus.object_id.clone() }))
        .await
        .expect("adopted");
    assert_eq!(adopted.entry.expect("entry").object_id, linus.object_id);
    let changes = vec![AttrChange { attr: AttrName::new("externalId"), old: vec![], new: vec!["2001".into()] }];
    let update = op(Action::Update { dn: linus.dn.clone(), object_id: Some(linus.object_id.clone()), changes });
    target.apply(&update).await.expect("keyed");
    let view = target.read_view(&asked()).await.expect("view");
    assert_eq!(values(&view, "externalId=2001,ou=Users,o=scim", "userName"), ["linus"]);
}

#[tokio::test]
async fn a_change_made_since_the_read_is_a_conflict_when_the_server_offers_etags() {
    let server = ScimServer::start().expect("scim2-server starts");
    let mut first = connect(&server).await;
    assert!(first.features().etag, "scim2-server advertises ETags");
    first.apply(&create(ADA, attrs(&[("userName", "ada"), ("externalId", "1001")]))).await.expect("created");
    first.read_view(&asked()).await.expect("view");

    let mut second = connect(&server).await;
    second.read_view(&asked()).await.expect("view");
    let rename = |to: &str| {
        let changes =
            vec![AttrChange { attr: AttrName::new("userName"), old: vec!["ada".into()], new: vec![to.into()] }];
        op(Action::Update { dn: ADA.into(), object_id: None, changes })
    };
    second.apply(&rename("ada.b")).await.expect("the other writer");
    let error = first.apply(&rename("ada.c")).await.expect_err("stale version");
    assert_eq!(error.kind, ErrorKind::Conflict, "{error}");
    assert!(error.message.contains("412"), "{error}");
}

/// A SCIM server that answers `throttled` requests for `/v2/Users` with 429 first, then as the
/// RFC's examples do.
async fn throttling_server(throttled: usize, retry_after: &'static str) -> (String, Arc<AtomicUsize>) {
    let posts = Arc::new(AtomicUsize::new(0));
    let seen = posts.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v2", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            assert_eq!(headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer t0k"));
            if uri.path() == "/v2/ServiceProviderConfig" {
                let config = serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                    "patch": {"supported": true}, "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
                    "etag": {"supported": false}, "filter": {"supported": true, "maxResults": 200},
                });
                return (StatusCode::OK, config.to_string()).into_response();
            }
            assert_eq!((method, uri.path()), (Method::POST, "/v2/Users"));
            if seen.fetch_add(1, Ordering::SeqCst) < throttled {
                return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after)], "{}").into_response();
            }
            let user = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "2819c223-7f76-453a-919d-413861904646", "externalId": "1001", "userName": "ada",
                "meta": {"resourceType": "User", "version": "W/\"1\""},
            });
            (StatusCode::CREATED, [("content-type", "application/scim+json")], user.to_string()).into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, posts)
}

#[tokio::test]
async fn a_429_is_tried_again_after_retry_after() {
    let (url, posts) = throttling_server(2, "1").await;
    let target = ScimTarget::connect(settings(url, "t0k")).await.expect("connects");
    let created = target.apply(&create(ADA, attrs(&[("userName", "ada"), ("externalId", "1001")]))).await;
    assert_eq!(created.expect("created after two 429s").entry.expect("entry").dn, ADA);
    assert_eq!(posts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_server_that_keeps_answering_429_is_transient_and_nothing_was_done() {
    let (url, posts) = throttling_server(usize::MAX, "0").await;
    let mut settings = settings(url, "t0k");
    settings.max_attempts = 3;
    let target = ScimTarget::connect(settings).await.expect("connects");
    let error = target.apply(&create(ADA, attrs(&[("userName", "ada")]))).await.expect_err("throttled");
    assert_eq!(error.kind, ErrorKind::Transient, "{error}");
    assert!(error.message.contains("429") && error.message.contains("3 attempt"), "{error}");
    assert_eq!(posts.load(Ordering::SeqCst), 3);

    let (url, _) = throttling_server(usize::MAX, "3600").await;
    let target = ScimTarget::connect(settings_with_wait(url)).await.expect("connects");
    let error = target.apply(&create(ADA, attrs(&[("userName", "ada")]))).await.expect_err("too long a wait");
    assert_eq!(error.kind, ErrorKind::Transient);
    assert!(error.message.contains("max_retry_wait"), "{error}");
}

fn settings_with_wait(url: String) -> ScimSettings {
    let mut settings = settings(url, "t0k");
    settings.max_retry_wait = Duration::from_secs(10);
    settings
}

#[tokio::test]
async fn plaintext_is_refused_unless_allowed() {
    let mut plain = settings("http://127.0.0.1:9/v2".into(), "secret-token");
    plain.allow_plaintext = false;
    let error = ScimTarget::connect(plain).await.err().expect("refused");
    assert_eq!(error.kind, ErrorKind::Config);
    assert!(error.message.contains("https://") && !error.message.contains("secret-token"), "{error}");
}

#[tokio::test]
async fn independent_operations_go_in_bulk_requests_when_the_server_offers_them() {
    let server = ScimServer::start().expect("scim2-server starts");
    let mut target = connect(&server).await;
    let (max_operations, max_payload) = target.features().bulk.expect("scim2-server advertises bulk");
    assert!(max_operations > 0 && max_payload > 0);
    target.apply(&create(BOSS, attrs(&[("userName", "grace"), ("externalId", "1000")]))).await.expect("created");
    target.read_view(&asked()).await.expect("view");

    let joiners: Vec<Operation> = (0..5)
        .map(|n| {
            let key = format!("{}", 3000 + n);
            let login = format!("user{n}");
            create(&format!("externalId={key},ou=Users,o=scim"), attrs(&[("userName", &login), ("externalId", &key)]))
        })
        .collect();
    let mut batch = joiners;
    let changes = vec![AttrChange { attr: AttrName::new(ext("department")), old: vec![], new: vec!["Board".into()] }];
    batch.push(op(Action::Update { dn: BOSS.into(), object_id: None, changes }));
    batch.push(create("externalId=3009,ou=Users,o=scim", attrs(&[("userName", "grace"), ("externalId", "3009")])));
    let results = target.apply_batch(&batch).await;
    assert_eq!(results.len(), batch.len());
    for (n, result) in results.iter().take(6).enumerate() {
        assert!(result.is_ok(), "operation {n}: {result:?}");
    }
    let created = results[2].as_ref().unwrap().entry.as_ref().expect("the created entry");
    assert_eq!(created.dn, "externalId=3002,ou=Users,o=scim");
    assert_eq!(results[6].as_ref().expect_err("userName taken").kind, ErrorKind::Conflict);

    let view = target.read_view(&asked()).await.expect("view");
    assert_eq!(view.entries.len(), 6);
    assert_eq!(values(&view, BOSS, &ext("department")), ["Board"]);
    let leavers: Vec<Operation> = view
        .entries
        .iter()
        .filter(|e| e.dn != BOSS)
        .map(|e| op(Action::Delete { dn: e.dn.clone(), object_id: Some(e.object_id.clone()) }))
        .collect();
    assert!(target.apply_batch(&leavers).await.iter().all(Result::is_ok));
    assert_eq!(target.read_view(&asked()).await.expect("view").entries.len(), 1);
}
