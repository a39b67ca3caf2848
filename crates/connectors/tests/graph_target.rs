//! Contract tests of the Microsoft Graph target and its OAuth2 client credentials. Entra ID cannot
//! run here: these run against `roster_testkit::EntraFake`, a local server built from the request
//! and response shapes and the throttling that Microsoft documents on learn.microsoft.com
//! ("Microsoft identity platform and the OAuth 2.0 client credentials flow", "Microsoft identity
//! platform application authentication certificate credentials", Graph v1.0 "List users", "Create
//! user", "Update user", "user: revokeSignInSessions", "Assign manager", "Add members", "Remove
//! member", "Microsoft Graph error responses", "Microsoft Graph throttling guidance"). What they
//! prove is that roster speaks those shapes; they were never run against a real tenant.

use std::time::Duration;

use reqwest::Url;
use roster_connectors::http::RetryPolicy;
use roster_connectors::oauth::{CertificateCredential, ClientCredential, OAuthSettings, TokenSource};
use roster_connectors::target::{ErrorKind, GraphSettings, GraphTarget};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::plan::{Action, AttrChange, Category, Operation};
use roster_core::state::TargetView;
use roster_testkit::EntraFake;
use roster_testkit::entra::{CLIENT_ID, SCOPE};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

fn quick_retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, max_wait: Duration::from_secs(10), first_backoff: Duration::from_millis(10) }
}

fn client() -> reqwest::Client {
    roster_connectors::http::api_client("entra", None, true, Duration::from_secs(10)).unwrap()
}

fn token_source(fake: &EntraFake, credential: ClientCredential) -> TokenSource {
    let settings = OAuthSettings {
        token_url: Url::parse(&fake.token_url()).unwrap(),
        client_id: CLIENT_ID.to_string(),
        scope: SCOPE.to_string(),
        credential,
        retry: quick_retry(),
        context: "target entra".to_string(),
    };
    TokenSource::new(settings, client())
}

fn certificate(fake: &EntraFake) -> ClientCredential {
    let cert = std::fs::read(fake.certificate_file()).unwrap();
    let key = SecretString::from(std::fs::read_to_string(fake.key_file()).unwrap());
    ClientCredential::Certificate(CertificateCredential::new(&cert, &key).unwrap())
}

fn token_requests(fake: &EntraFake) -> Vec<roster_testkit::entra::Recorded> {
    fake.requests().into_iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token")).collect()
}

#[tokio::test]
async fn a_token_by_client_secret_is_fetched_once_and_kept() {
    let fake = EntraFake::start().unwrap();
    let tokens = token_source(&fake, ClientCredential::Secret(SecretString::from(fake.client_secret())));
    let first = tokens.token().await.unwrap();
    let again = tokens.clone().token().await.unwrap();
    assert_eq!(first.expose_secret(), again.expose_secret(), "the token is kept while valid");
    let sent = token_requests(&fake);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let form: Vec<&str> = sent[0].body.split('&').collect();
    assert!(form.contains(&"grant_type=client_credentials"), "{form:?}");
    assert!(form.iter().any(|f| f.starts_with("client_secret=")), "{form:?}");
    assert_eq!(sent[0].headers.get("content-type").map(String::as_str), Some("application/x-www-form-urlencoded"));
}

#[tokio::test]
async fn a_token_by_certificate_is_a_client_assertion_the_endpoint_verifies() {
    let fake = EntraFake::start().unwrap();
    let tokens = token_source(&fake, certificate(&fake));
    tokens.token().await.unwrap();
    let sent = token_requests(&fake);
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].body.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer")
    );
    assert!(!sent[0].body.contains("client_secret"), "{}", sent[0].body);
    // Each fetch signs a new assertion (a jti is accepted once).
    tokens.invalidate();
    tokens.token().await.unwrap();
    assert_eq!(token_requests(&fake).len(), 2);
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_with_the_aadsts_code_and_without_the_secret() {
    let fake = EntraFake::start().unwrap();
    let tokens = token_source(&fake, ClientCredential::Secret(SecretString::from("wrong-secret-value")));
    let error = tokens.token().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Auth, "{error}");
    assert!(error.message.contains("invalid_client: AADSTS7000215: Invalid client secret provided"), "{error}");
    assert!(error.message.starts_with("target entra: POST /"), "{error}");
    assert!(!error.message.contains("wrong-secret-value"), "{error}");
}

#[tokio::test]
async fn a_certificate_the_app_does_not_have_is_refused() {
    let fake = EntraFake::start().unwrap();
    let other = EntraFake::start().unwrap();
    let tokens = token_source(&fake, certificate(&other));
    let error = tokens.token().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Auth, "{error}");
    assert!(error.message.contains("AADSTS700027"), "{error}");
}

#[tokio::test]
async fn a_token_about_to_expire_is_fetched_anew() {
    let fake = EntraFake::start().unwrap();
    // Shorter than the five-minute margin: kept for half its life, here one second.
    fake.set_token_lifetime(2);
    let tokens = token_source(&fake, ClientCredential::Secret(SecretString::from(fake.client_secret())));
    let first = tokens.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = tokens.token().await.unwrap();
    assert_ne!(first.expose_secret(), second.expose_secret());
    assert_eq!(token_requests(&fake).len(), 2);
}

const SALES: &str = "Sales";
const E3: &str = "Licence E3";
const SALES_DN: &str = "displayName=Sales,ou=Groups,o=entra";
const E3_DN: &str = "displayName=Licence E3,ou=Groups,o=entra";
const BOSS: &str = "employeeId=1000,ou=Users,o=entra";
const ADA: &str = "employeeId=1001,ou=Users,o=entra";

fn graph(fake: &EntraFake, credential: ClientCredential) -> GraphTarget {
    let mut settings = GraphSettings::new("entra");
    settings.url = fake.graph_url();
    settings.groups = vec![SALES.into(), E3.into()];
    settings.licensing_groups = vec![E3.into()];
    settings.retry = quick_retry();
    settings.consistency_wait = Duration::from_secs(10);
    GraphTarget::new(settings, token_source(fake, credential), client()).unwrap()
}

fn by_secret(fake: &EntraFake) -> GraphTarget {
    graph(fake, ClientCredential::Secret(SecretString::from(fake.client_secret())))
}

fn op(action: Action) -> Operation {
    Operation {
        id: 0,
        person: None,
        target: "entra".into(),
        category: Category::Joiner,
        reason: "test".into(),
        depends_on: Vec::new(),
        action,
    }
}

fn attrs(pairs: &[(&str, &str)]) -> AttrMap {
    pairs.iter().map(|(name, value)| (AttrName::new(*name), vec![value.to_string()])).collect()
}

fn person(key: &str, login: &str, extra: &[(&str, &str)]) -> AttrMap {
    let upn = format!("{login}@contoso.onmicrosoft.com");
    let mut all = vec![("employeeId", key), ("userPrincipalName", upn.as_str()), ("displayName", login)];
    all.extend_from_slice(extra);
    attrs(&all)
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

fn asked() -> Vec<AttrName> {
    ["employeeId", "userPrincipalName", "displayName", "department", "usageLocation", "manager", "businessPhones"]
        .map(AttrName::new)
        .to_vec()
}

fn values<'v>(view: &'v TargetView, dn: &str, attr: &str) -> Vec<&'v str> {
    let entry =
        view.entries.iter().find(|e| e.dn.eq_ignore_ascii_case(dn)).unwrap_or_else(|| panic!("{dn} not in view"));
    entry.attrs.get(&AttrName::new(attr)).map(|v| v.iter().map(String::as_str).collect()).unwrap_or_default()
}

fn members<'v>(view: &'v TargetView, group: &str) -> Vec<&'v str> {
    let group = view.groups.iter().find(|g| g.dn == group).unwrap_or_else(|| panic!("{group} not in view"));
    group.members.iter().map(String::as_str).collect()
}

fn id(fake: &EntraFake, key: &str) -> String {
    let user = fake.user_by("employeeId", key).unwrap_or_else(|| panic!("no user with employeeId {key}"));
    user["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn joiner_mover_leaver_with_manager_licence_group_and_sessions_revoked() {
    let fake = EntraFake::start().unwrap();
    fake.set_page_size(2);
    let sales = fake.add_group(SALES, false);
    let e3 = fake.add_group(E3, true);
    fake.add_user(json!({ "userPrincipalName": "admin@contoso.onmicrosoft.com", "displayName": "Admin",
        "accountEnabled": true, "mailNickname": "admin" }));
    let mut target = by_secret(&fake);
    let view = target.read_view(&asked()).await.unwrap();
    assert_eq!(view.entries.len(), 1, "{view:?}");
    assert!(view.taken_logins.contains("admin"), "{:?}", view.taken_logins);
    assert_eq!(view.groups.len(), 2);

    // Joiners: the create carries usageLocation; the manager follows (it needs the boss's id).
    target.apply(&create(BOSS, person("1000", "boss", &[("usageLocation", "DE")]))).await.unwrap();
    let applied = target
        .apply(&create(
            ADA,
            person("1001", "ada", &[("usageLocation", "DE"), ("department", "Sales"), ("manager", BOSS)]),
        ))
        .await
        .unwrap();
    let entry = applied.entry.expect("a created user is returned");
    assert_eq!(entry.dn, ADA);
    assert_eq!(entry.object_id, id(&fake, "1001"));
    let created = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/v1.0/users" && r.body.contains("ada@"))
        .unwrap();
    let body = created.json();
    assert_eq!(body["usageLocation"], "DE");
    assert_eq!(body["accountEnabled"], true);
    assert_eq!(body["mailNickname"], "ada", "derived from the userPrincipalName");
    assert!(body["passwordProfile"]["password"].as_str().is_some_and(|p| p.len() >= 16), "{body}");
    assert_eq!(fake.manager_of(&id(&fake, "1001")), Some(id(&fake, "1000")));
    let manager_ref = fake.requests().into_iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(manager_ref.path, format!("/v1.0/users/{}/manager/$ref", id(&fake, "1001")));
    assert_eq!(manager_ref.json()["@odata.id"], format!("{}/users/{}", fake.graph_url(), id(&fake, "1000")));

    // Memberships come after the creates: the licence group finds a usageLocation.
    for group in [SALES_DN, E3_DN] {
        target.apply(&op(Action::AddMember { group: group.into(), member: ADA.into() })).await.unwrap();
    }
    // Adding again is done already (Graph answers 400 "already exist").
    target.apply(&op(Action::AddMember { group: SALES_DN.into(), member: ADA.into() })).await.unwrap();
    assert_eq!(fake.members(&sales), vec![id(&fake, "1001")]);
    assert_eq!(fake.members(&e3), vec![id(&fake, "1001")]);
    assert!(fake.license_errors().is_empty(), "{:?}", fake.license_errors());

    // A fresh read sees all of it, paged two at a time.
    let view = target.read_view(&asked()).await.unwrap();
    assert_eq!(values(&view, ADA, "manager"), vec![BOSS]);
    assert_eq!(values(&view, ADA, "department"), vec!["Sales"]);
    assert_eq!(members(&view, SALES_DN), vec![ADA]);
    let lists = fake.requests().into_iter().filter(|r| r.method == "GET" && r.path == "/v1.0/users").count();
    assert_eq!(lists, 3, "one page for the first read's one user, two for three users at two a page");

    // Mover: only the changed properties are sent.
    fake.clear_requests();
    let moved = op(Action::Update {
        dn: ADA.into(),
        object_id: Some(entry.object_id.clone()),
        changes: vec![change("department", &["Sales"], &["Marketing"]), change("businessPhones", &[], &["+49 30 1"])],
    });
    target.apply(&moved).await.unwrap();
    let patch = fake.requests().into_iter().find(|r| r.method == "PATCH").unwrap();
    assert_eq!(patch.json(), json!({ "department": "Marketing", "businessPhones": ["+49 30 1"] }));

    // Leaver: disabled, sessions revoked, out of the groups, then deleted.
    fake.clear_requests();
    let ada_id = id(&fake, "1001");
    target
        .apply(&op(Action::Disable { dn: ADA.into(), object_id: Some(ada_id.clone()), changes: vec![] }))
        .await
        .unwrap();
    assert_eq!(fake.user_by("employeeId", "1001").unwrap()["accountEnabled"], false);
    assert_eq!(fake.revoked_sessions(&ada_id), 1);
    assert_eq!(
        fake.graph_lines(),
        vec![format!("PATCH /v1.0/users/{ada_id}"), format!("POST /v1.0/users/{ada_id}/revokeSignInSessions")]
    );
    for group in [SALES_DN, E3_DN] {
        target.apply(&op(Action::RemoveMember { group: group.into(), member: ADA.into() })).await.unwrap();
    }
    assert!(fake.members(&sales).is_empty() && fake.members(&e3).is_empty());
    // Removing again is done already (404).
    target.apply(&op(Action::RemoveMember { group: SALES_DN.into(), member: ADA.into() })).await.unwrap();
    target.apply(&op(Action::Delete { dn: ADA.into(), object_id: Some(ada_id.clone()) })).await.unwrap();
    assert!(fake.user_by("employeeId", "1001").is_none());
    target.apply(&op(Action::Delete { dn: ADA.into(), object_id: Some(ada_id) })).await.unwrap();
}

#[tokio::test]
async fn a_user_synced_from_ad_is_read_as_protected_and_never_written() {
    let fake = EntraFake::start().unwrap();
    let sales = fake.add_group(SALES, false);
    fake.add_group(E3, true);
    let synced = fake.add_user(json!({ "userPrincipalName": "grace@contoso.onmicrosoft.com", "displayName": "Grace",
        "employeeId": "2000", "accountEnabled": true, "onPremisesSyncEnabled": true }));
    let mut target = by_secret(&fake);
    let view = target.read_view(&asked()).await.unwrap();
    let grace = "employeeId=2000,ou=Users,o=entra";
    let entry = view.entries.iter().find(|e| e.dn == grace).unwrap();
    assert!(entry.protected, "{entry:?}");
    fake.clear_requests();
    let writes = [
        op(Action::Update {
            dn: grace.into(),
            object_id: Some(synced.clone()),
            changes: vec![change("department", &[], &["X"])],
        }),
        op(Action::Disable { dn: grace.into(), object_id: Some(synced.clone()), changes: vec![] }),
        op(Action::Delete { dn: grace.into(), object_id: Some(synced.clone()) }),
        op(Action::AddMember { group: SALES_DN.into(), member: grace.into() }),
    ];
    for write in &writes {
        let error = target.apply(write).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::OutOfScope, "{error}");
        assert!(error.message.contains("onPremisesSyncEnabled"), "{error}");
    }
    assert!(fake.graph_lines().is_empty(), "nothing sent: {:?}", fake.graph_lines());
    assert!(fake.members(&sales).is_empty());
}

#[tokio::test]
async fn throttling_is_waited_out_as_retry_after_asks() {
    let fake = EntraFake::start().unwrap();
    fake.add_group(SALES, false);
    fake.add_group(E3, true);
    let target = by_secret(&fake);
    fake.throttle(2, 429, 1);
    target.apply(&create(ADA, person("1001", "ada", &[]))).await.unwrap();
    let posts: Vec<_> = fake.requests().into_iter().filter(|r| r.method == "POST" && r.path == "/v1.0/users").collect();
    assert_eq!(posts.len(), 3, "two 429s, then the create");
    assert!(fake.user_by("employeeId", "1001").is_some());

    // More than the policy's attempts: transient, nothing changed.
    fake.throttle(10, 503, 0);
    let error = target
        .apply(&op(Action::Update {
            dn: ADA.into(),
            object_id: Some(id(&fake, "1001")),
            changes: vec![change("department", &[], &["Sales"])],
        }))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Transient, "{error}");
    assert!(error.message.contains("503 Service Unavailable on each of 3 attempt(s)"), "{error}");
}

#[tokio::test]
async fn a_user_not_yet_replicated_is_asked_for_again() {
    let fake = EntraFake::start().unwrap();
    fake.add_group(SALES, false);
    let e3 = fake.add_group(E3, true);
    let mut target = by_secret(&fake);
    target.read_view(&asked()).await.unwrap();
    target.apply(&create(BOSS, person("1000", "boss", &[("usageLocation", "FR")]))).await.unwrap();
    fake.lag_after_create(2);
    target.apply(&create(ADA, person("1001", "ada", &[("usageLocation", "FR"), ("manager", BOSS)]))).await.unwrap();
    let ada = id(&fake, "1001");
    assert_eq!(fake.manager_of(&ada), Some(id(&fake, "1000")), "set once Graph found her");
    let puts = fake.requests().into_iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 3, "two 404s while replicating, then the manager");
    target.apply(&op(Action::AddMember { group: E3_DN.into(), member: ADA.into() })).await.unwrap();
    assert_eq!(fake.members(&e3), vec![ada.clone()]);

    // A 404 about a user this run did not create is not waited for: it is gone.
    let error = target
        .apply(&op(Action::Update {
            dn: "employeeId=9,ou=Users,o=entra".into(),
            object_id: Some("00000000-0000-4000-8000-0000000000ff".into()),
            changes: vec![change("department", &[], &["X"])],
        }))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Conflict, "{error}");
    assert!(error.message.contains("Request_ResourceNotFound"), "{error}");
}

#[tokio::test]
async fn a_licence_group_member_needs_a_usage_location() {
    let fake = EntraFake::start().unwrap();
    fake.add_group(SALES, false);
    let e3 = fake.add_group(E3, true);
    let mut target = by_secret(&fake);
    target.read_view(&asked()).await.unwrap();
    target.apply(&create(ADA, person("1001", "ada", &[]))).await.unwrap();
    let error = target.apply(&op(Action::AddMember { group: E3_DN.into(), member: ADA.into() })).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Permanent, "{error}");
    assert!(error.message.contains("usageLocation"), "{error}");
    assert!(fake.members(&e3).is_empty());
    // Once it is set, the membership goes through.
    target
        .apply(&op(Action::Update {
            dn: ADA.into(),
            object_id: None,
            changes: vec![change("usageLocation", &[], &["NL"])],
        }))
        .await
        .unwrap();
    target.apply(&op(Action::AddMember { group: E3_DN.into(), member: ADA.into() })).await.unwrap();
    assert_eq!(fake.members(&e3).len(), 1);
    assert!(fake.license_errors().is_empty());
}

#[tokio::test]
async fn a_refused_token_is_fetched_anew_once() {
    let fake = EntraFake::start().unwrap();
    fake.add_group(SALES, false);
    fake.add_group(E3, true);
    let mut target = graph(&fake, certificate(&fake));
    target.read_view(&asked()).await.unwrap();
    fake.revoke_tokens();
    target.read_view(&asked()).await.unwrap();
    assert_eq!(token_requests(&fake).len(), 2, "one token, then one after the 401");
    let unauthorized = fake.requests().iter().filter(|r| r.path == "/v1.0/users").count();
    assert_eq!(unauthorized, 3, "a read, a refused read, the read again");
}

#[tokio::test]
async fn a_group_that_is_not_in_the_tenant_is_a_configuration_error() {
    let fake = EntraFake::start().unwrap();
    fake.add_group(SALES, false);
    let mut target = by_secret(&fake);
    let error = target.read_view(&asked()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Config, "{error}");
    assert!(error.message.contains("group \"Licence E3\" (groups) is not in the tenant"), "{error}");
}
