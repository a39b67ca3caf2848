//! The Entra ID API-driven inbound provisioning target against the testkit's fake
//! (`roster_testkit::entra_inbound`). Entra ID cannot run here: these are contract tests built from
//! the request and response shapes and the limits Microsoft documents, on learn.microsoft.com:
//!
//! - "API-driven inbound provisioning concepts" and "Perform bulkUpload"
//!   (graph/api/synchronization-synchronizationjob-post-bulkupload):
//!   `POST {graph}/servicePrincipals/{servicePrincipalId}/synchronization/jobs/{jobId}/bulkUpload`,
//!   `Content-Type: application/scim+json`, permission `SynchronizationData-User.Upload`; the body
//!   a SCIM BulkRequest:
//!   `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [{"method":
//!   "POST", "bulkId": "…", "path": "/Users", "data": {"schemas": ["urn:…:core:2.0:User",
//!   "urn:…:extension:enterprise:2.0:User"], "externalId": "…", "userName": "…", "active": true,
//!   …}}]}`, at most 50 operations; answered `202 Accepted` with no per-record result. The rate
//!   limit is 40 calls per 5 seconds (the concepts page; the bulkUpload page now says 40 per
//!   second: roster keeps to the stricter), beyond which `429` with `Retry-After`.
//! - "Troubleshoot inbound provisioning API issues": a wrong content type or a payload off the spec
//!   is `400 Bad Request` "Invalid Data Format".
//! - "List provisioningObjectSummary" (graph/api/provisioningobjectsummary-list), permission
//!   `AuditLog.Read.All`: `GET {graph}/auditLogs/provisioning?$filter=jobId eq '…' and
//!   activityDateTime gt …`, `{"value": [...], "@odata.nextLink": "…"}`; each entry
//!   (provisioningObjectSummary): `id`, `activityDateTime`, `jobId`, `cycleId`, `changeId`,
//!   `provisioningAction` (create, update, disable, …), `provisioningStatusInfo` {`status`:
//!   success | warning | failure | skipped, `errorInformation` (provisioningErrorInfo: `errorCode`,
//!   `errorCategory`, `reason`, `additionalDetails`, `recommendedAction`)}, `sourceIdentity` and
//!   `targetIdentity` (provisionedIdentity: `id`, `displayName`, `identityType`, `details`),
//!   `provisioningSteps`, `modifiedProperties`.
//!
//! The rate is checked from the fake's own log of requests (never by timing roster).

use std::collections::BTreeMap;
use std::time::Duration;

use roster_connectors::http::RetryPolicy;
use roster_connectors::oauth::{self, ClientCredential, OAuthSettings, TokenSource};
use roster_connectors::target::{EntraInboundSettings, EntraInboundTarget, ErrorKind};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::plan::{Action, AttrChange, Category, Operation};
use roster_core::state::Link;
use roster_testkit::EntraFake;
use roster_testkit::entra::{CLIENT_ID, TENANT};
use roster_testkit::entra_inbound::{EntraInboundFake, JOB, MAX_OPERATIONS, RATE_LIMIT, SERVICE_PRINCIPAL};
use secrecy::SecretString;
use serde_json::Value;

const BASE: &str = "o=entra-inbound";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

struct Lab {
    /// The token endpoint (the Graph stand-in's, shared).
    entra: EntraFake,
    fake: EntraInboundFake,
}

impl Lab {
    fn start() -> Lab {
        let entra = EntraFake::start().expect("the Entra stand-in starts");
        let fake = EntraInboundFake::start(&entra).expect("the fake starts");
        Lab { entra, fake }
    }

    /// A token from the token endpoint, for requests made by hand.
    async fn token(&self) -> String {
        let form = [
            ("grant_type", "client_credentials".to_string()),
            ("client_id", CLIENT_ID.to_string()),
            ("client_secret", self.entra.client_secret()),
            ("scope", "https://graph.microsoft.com/.default".to_string()),
        ];
        let answer = client().post(self.entra.token_url()).form(&form).send().await.expect("a token answer");
        let body: Value = serde_json::from_str(&answer.text().await.expect("a body")).expect("JSON");
        body["access_token"].as_str().expect("a token").to_string()
    }

    fn target(&self, tune: impl FnOnce(&mut EntraInboundSettings)) -> EntraInboundTarget {
        let http = client();
        let tokens = TokenSource::new(
            OAuthSettings {
                token_url: oauth::token_url(&self.entra.authority(), TENANT).expect("a token URL"),
                client_id: CLIENT_ID.to_string(),
                scope: "https://graph.microsoft.com/.default".to_string(),
                credential: ClientCredential::Secret(SecretString::from(self.entra.client_secret())),
                retry: RetryPolicy::default(),
                context: "target hr-cloud".to_string(),
            },
            http.clone(),
        );
        let mut settings = EntraInboundSettings::new("hr-cloud", self.fake.graph_url(), SERVICE_PRINCIPAL, JOB);
        settings.log_wait = Duration::from_secs(20);
        settings.log_poll = Duration::from_millis(50);
        settings.retry.first_backoff = Duration::from_millis(50);
        tune(&mut settings);
        EntraInboundTarget::new(settings, http, tokens).expect("valid settings")
    }
}

/// A client as roster builds them (rustls with ring; reqwest has no default crypto provider).
fn client() -> reqwest::Client {
    let tls = roster_core::config::TlsConfig::default();
    roster_connectors::http::client("test", &tls, std::path::Path::new("."), Duration::from_secs(10)).expect("a client")
}

fn dn(key: &str) -> String {
    format!("externalId={key},ou=Users,{BASE}")
}

fn attrs(pairs: &[(&str, &str)]) -> AttrMap {
    pairs.iter().map(|(name, value)| (AttrName::new(*name), vec![value.to_string()])).collect()
}

fn person(key: &str) -> AttrMap {
    attrs(&[
        ("objectClass", "User"),
        ("userName", &format!("user{key}@example.org")),
        ("name.givenName", "Ada"),
        ("name.familyName", &format!("Lovelace{key}")),
        ("displayName", &format!("Ada Lovelace{key}")),
        (&format!("{ENTERPRISE}:employeeNumber"), key),
        (&format!("{ENTERPRISE}:department"), "Research"),
    ])
}

fn op(id: usize, key: &str, action: Action) -> Operation {
    Operation {
        id,
        person: Some(key.to_string()),
        target: "hr-cloud".into(),
        category: Category::Joiner,
        reason: "test".into(),
        depends_on: vec![],
        action,
    }
}

fn create(id: usize, key: &str, attributes: AttrMap) -> Operation {
    op(
        id,
        key,
        Action::Create {
            dn: dn(key).into(),
            attributes: attributes.try_into().unwrap(),
            enabled: true,
            password: false,
        },
    )
}

fn uploaded_records(fake: &EntraInboundFake) -> Vec<Value> {
    fake.state()
        .uploads
        .iter()
        .filter(|u| u.status == 202)
        .flat_map(|u| u.operations())
        .map(|o| o["data"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_and_twenty_records_go_in_three_requests_of_fifty_fifty_and_twenty() {
    let lab = Lab::start();
    let target = lab.target(|_| {});
    let keys: Vec<String> = (0..120).map(|i| format!("E{i:04}")).collect();
    let ops: Vec<Operation> = keys.iter().enumerate().map(|(i, key)| create(i, key, person(key))).collect();
    let results = target.apply_batch(&ops).await;
    for (result, key) in results.iter().zip(&keys) {
        let applied = result.as_ref().unwrap_or_else(|e| panic!("{key}: {e}"));
        let entry = applied.entry.as_ref().expect("a create reports the new user");
        assert!(entry.object_id.starts_with("00000000-0000-4000-8000-"), "Entra's object id: {}", entry.object_id);
        assert_eq!(entry.dn, dn(key));
    }
    let state = lab.fake.state();
    let sizes: Vec<usize> = state.uploads.iter().map(|u| u.operations().len()).collect();
    assert_eq!(sizes, [MAX_OPERATIONS, MAX_OPERATIONS, 20]);
    for upload in &state.uploads {
        assert_eq!(upload.status, 202);
        assert_eq!(upload.content_type.as_deref(), Some("application/scim+json"));
        let token = upload.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")).expect("a bearer token");
        assert!((lab.entra.token_checker())(token), "the token endpoint's token: {token}");
        assert_eq!(upload.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:BulkRequest");
        for operation in upload.operations() {
            assert_eq!(operation["method"], "POST");
            assert_eq!(operation["path"], "/Users");
            assert!(operation["bulkId"].as_str().is_some_and(|b| !b.is_empty()));
        }
    }
    drop(state);
    let tokens_asked = lab.entra.requests().iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token")).count();
    assert_eq!(tokens_asked, 1, "one token, kept for the run");
    let records = uploaded_records(&lab.fake);
    let first = &records[0];
    assert_eq!(first["externalId"], "E0000");
    assert_eq!(first["userName"], "userE0000@example.org");
    assert_eq!(first["name"]["familyName"], "LovelaceE0000");
    assert_eq!(first["active"], true);
    assert_eq!(first[ENTERPRISE]["department"], "Research");
    assert!(first["schemas"].as_array().unwrap().iter().any(|s| s == ENTERPRISE));
    assert!(first.get("objectClass").is_none(), "objectClass is the planner's, not a SCIM attribute");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_more_than_forty_requests_go_out_in_any_five_seconds() {
    let lab = Lab::start();
    let target = lab.target(|_| {});
    let count = RATE_LIMIT + 5;
    let ops: Vec<Operation> = (0..count).map(|i| create(i, &format!("R{i}"), person(&format!("R{i}")))).collect();
    // One record per call, all at once: only the pacing keeps them under the rate.
    let results = futures_util::future::join_all(ops.iter().map(|op| target.apply(op))).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let state = lab.fake.state();
    assert_eq!(state.uploads.len(), count, "each record its own request, none refused and sent again");
    assert!(state.uploads.iter().all(|u| u.status == 202), "the fake never had to answer 429");
    drop(state);
    assert!(lab.fake.busiest_window() <= RATE_LIMIT, "{} requests in one 5 s window", lab.fake.busiest_window());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_is_sent_again_after_retry_after() {
    let lab = Lab::start();
    {
        let mut state = lab.fake.state();
        state.throttle_next = 1;
        state.retry_after_seconds = 1;
    }
    let target = lab.target(|_| {});
    let result = target.apply(&create(0, "T1", person("T1"))).await;
    assert!(result.is_ok(), "{result:?}");
    let statuses: Vec<u16> = lab.fake.state().uploads.iter().map(|u| u.status).collect();
    assert_eq!(statuses, [429, 202]);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_record_gets_the_outcome_entra_logged_for_it() {
    let lab = Lab::start();
    {
        let mut state = lab.fake.state();
        state.page_size = 2;
        state.bad.insert(
            "B1".into(),
            ("AzureActiveDirectoryInvalidDomain".into(), "The domain of userPrincipalName is not verified.".into()),
        );
        state.skip.insert("S1".into(), "The user is out of the job's scope (scoping filter: employeeType).".into());
        state.withhold.insert("P1".into());
    }
    let target = lab.target(|settings| settings.log_wait = Duration::from_secs(2));
    let mut missing = person("M1");
    missing.remove(&AttrName::new("userName"));
    let ops = vec![
        create(0, "G1", person("G1")),
        create(1, "B1", person("B1")),
        create(2, "M1", missing),
        create(3, "S1", person("S1")),
        create(4, "P1", person("P1")),
    ];
    let results = target.apply_batch(&ops).await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let failure = results[1].as_ref().expect_err("Entra failed it");
    assert_eq!(failure.kind, ErrorKind::Permanent);
    assert!(
        failure.message.contains("AzureActiveDirectoryInvalidDomain: The domain of userPrincipalName is not verified."),
        "{failure}"
    );
    let required = results[2].as_ref().expect_err("a record without userName fails in Entra");
    assert!(required.message.contains("AzureActiveDirectoryRequiredAttributeMissing"), "{required}");
    assert!(results[3].is_ok(), "skipped by Entra's own scoping is its decision, not an error: {:?}", results[3]);
    let pending = results[4].as_ref().expect_err("no log entry yet");
    assert_eq!(pending.kind, ErrorKind::Unknown, "pending: may have happened, sent again next run");
    assert!(pending.message.contains("pending"), "{pending}");
    let state = lab.fake.state();
    assert_eq!(state.uploads.len(), 1, "five records, one request");
    assert!(state.log_reads.len() >= 3, "the log was read page by page: {:?}", state.log_reads);
    assert!(state.log_reads.iter().any(|q| q.contains("$skiptoken")), "the nextLink was followed");
    assert!(state.log_reads.iter().all(|q| q.contains(&format!("jobId eq '{JOB}'"))), "{:?}", state.log_reads);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_sends_the_whole_record_as_last_sent_and_a_leaver_active_false() {
    let lab = Lab::start();
    let mut target = lab.target(|_| {});
    let mut values = person("U1");
    values.remove(&AttrName::new("objectClass"));
    target.recall(&[Link {
        person: "U1".into(),
        target: "hr-cloud".into(),
        object_id: "entra-U1".into(),
        dn: dn("U1"),
        enabled: true,
        values: values.clone(),
        password_pending: false,
        values_omitted: false,
    }]);
    let view = roster_connectors::target::Target::read_view(&mut target, &[]).await.expect("a view");
    assert_eq!(view.entries.len(), 1, "the view is what roster last sent");
    assert_eq!(view.entries[0].attrs, values);
    assert!(view.taken_logins.contains("useru1@example.org"));
    let department = AttrName::new(format!("{ENTERPRISE}:department"));
    let change =
        |new: &str| AttrChange { attr: department.clone(), old: vec!["Research".into()], new: vec![new.into()] };
    let mover = op(
        0,
        "U1",
        Action::Update { dn: dn("U1"), object_id: Some("entra-U1".into()), changes: vec![change("Finance")] },
    );
    assert!(target.apply(&mover).await.is_ok());
    let leaver = op(1, "U1", Action::Disable { dn: dn("U1"), object_id: Some("entra-U1".into()), changes: vec![] });
    assert!(target.apply(&leaver).await.is_ok());
    let records = uploaded_records(&lab.fake);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0][ENTERPRISE]["department"], "Finance");
    assert_eq!(records[0]["userName"], "userU1@example.org", "unchanged values are sent too");
    assert_eq!(records[0]["active"], true);
    assert_eq!(records[1][ENTERPRISE]["department"], "Finance", "the leaver's record as last sent");
    assert_eq!(records[1]["active"], false);
    let actions: Vec<String> =
        lab.fake.state().logs.iter().map(|l| l["provisioningAction"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(actions, ["create", "disable"], "Entra's own decision from the same POST");
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_api_cannot_do_is_refused_before_anything_is_sent() {
    let lab = Lab::start();
    let target = lab.target(|settings| settings.daily_cap = 1);
    let group = op(0, "X", Action::AddMember { group: "cn=staff".into(), member: dn("X") });
    let rename = op(1, "X", Action::Rename { dn: dn("X"), object_id: None, new_dn: dn("Y") });
    let password = op(2, "X", Action::SetPassword { dn: dn("X"), object_id: None, must_change: true });
    let outside = create(3, "X", person("X"));
    let outside = Operation {
        action: Action::Create {
            dn: "cn=X,ou=elsewhere".into(),
            attributes: person("X").try_into().unwrap(),
            enabled: true,
            password: false,
        },
        ..outside
    };
    let unknown = op(4, "Z", Action::Update { dn: dn("Z"), object_id: None, changes: vec![] });
    for (operation, kind) in [
        (&group, ErrorKind::Permanent),
        (&rename, ErrorKind::Permanent),
        (&password, ErrorKind::Permanent),
        (&outside, ErrorKind::OutOfScope),
        (&unknown, ErrorKind::Conflict),
    ] {
        let error = target.apply(operation).await.expect_err("refused");
        assert_eq!(error.kind, kind, "{error}");
    }
    assert!(lab.fake.state().uploads.is_empty(), "nothing was sent");
    assert!(target.apply(&create(5, "C1", person("C1"))).await.is_ok());
    let capped = target.apply(&create(6, "C2", person("C2"))).await.expect_err("over the cap");
    assert_eq!(capped.kind, ErrorKind::Transient);
    assert!(capped.message.contains("daily_cap = 1"), "{capped}");
    assert_eq!(lab.fake.state().uploads.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fake_refuses_what_microsoft_documents_as_refused() {
    let lab = Lab::start();
    let url =
        format!("{}/servicePrincipals/{SERVICE_PRINCIPAL}/synchronization/jobs/{JOB}/bulkUpload", lab.fake.graph_url());
    let http = client();
    let token = lab.token().await;
    let operation = |i: usize| {
        serde_json::json!({"method": "POST", "bulkId": format!("b{i}"), "path": "/Users",
            "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "externalId": format!("K{i}"), "userName": "u"}})
    };
    let body = |n: usize| {
        serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": (0..n).map(operation).collect::<Vec<_>>()})
        .to_string()
    };
    let send = |content_type: &'static str, body: String| {
        http.post(&url).bearer_auth(&token).header("content-type", content_type).body(body).send()
    };
    let too_many = send("application/scim+json", body(MAX_OPERATIONS + 1)).await.expect("an answer");
    assert_eq!(too_many.status(), 400);
    let said: Value = serde_json::from_str(&too_many.text().await.expect("a body")).expect("a SCIM error");
    assert!(said["detail"].as_str().unwrap_or("").contains("at most 50"), "{said}");
    assert_eq!(send("application/json", body(1)).await.expect("an answer").status(), 400, "the content type matters");
    assert_eq!(send("application/scim+json", body(1)).await.expect("an answer").status(), 202);
    let statuses: BTreeMap<u16, usize> = lab.fake.state().uploads.iter().fold(BTreeMap::new(), |mut m, u| {
        *m.entry(u.status).or_default() += 1;
        m
    });
    assert_eq!(statuses, BTreeMap::from([(400, 2), (202, 1)]));
}
