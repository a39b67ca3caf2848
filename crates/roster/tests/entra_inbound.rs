//! A `kind = "entra_inbound"` target (Entra ID API-driven inbound provisioning) through the real
//! `roster` binary, over two days of HR data, against the testkit's fake of the bulkUpload
//! endpoint, the provisioning logs and the token endpoint (Entra ID cannot run here: the fake
//! answers with Microsoft's documented shapes; see crates/connectors/tests/entra_inbound.rs).
//!
//! Day one: three joiners are sent as SCIM Users (the manager as her externalId), and a fourth that
//! Entra's provisioning fails: the run reports Entra's error for that person (output and audit
//! trail) and ends partial. Day two: a mover's whole record is sent again with the new department, a
//! leaver's with `active = false`, and the failed joiner is sent again (Entra's problem fixed) and
//! lands; after that a plan has nothing to do. What was sent is read from the fake's log of requests,
//! never from what roster printed.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::fs;

use roster_testkit::EntraFake;
use roster_testkit::entra::{CLIENT_ID, TENANT};
use roster_testkit::entra_inbound::{EntraInboundFake, JOB, SERVICE_PRINCIPAL};
use serde_json::Value;
use support::{Hr, Worker};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The OpenLDAP fixture's store, source, lifecycle and login rules, with an entra_inbound target.
fn config(entra: &EntraFake, fake: &EntraInboundFake) -> String {
    let fixture = include_str!("fixtures/roster.toml");
    let (head, _ldap_target) = fixture.split_once("[[target]]").expect("the fixture has a target");
    format!(
        r#"{head}[[target]]
name = "entra"
kind = "entra_inbound"
url = "{graph}"
tls = {{ allow_plaintext = true }}
[target.entra]
authority = "{authority}"
tenant = "{TENANT}"
client_id = "{CLIENT_ID}"
client_secret = "file:entra-secret"
[target.inbound]
service_principal_id = "{SERVICE_PRINCIPAL}"
job_id = "{JOB}"
log_wait_seconds = 10
[target.attributes]
"name.givenName" = "given_name"
"name.familyName" = "family_name"
displayName = 'given_name + " " + family_name'
title = "title"
"{ENTERPRISE}:employeeNumber" = "key"
"{ENTERPRISE}:department" = "department"
"{ENTERPRISE}:manager" = "manager_dn"

[safety]
disables = {{ count = 5 }}
"#,
        graph = fake.graph_url(),
        authority = entra.authority(),
    )
}

struct Cloud {
    entra: EntraFake,
    fake: EntraInboundFake,
    dir: tempfile::TempDir,
}

struct Ran {
    code: i32,
    stdout: String,
    text: String,
}

impl Cloud {
    fn start() -> Cloud {
        let entra = EntraFake::start().expect("the Entra stand-in starts");
        let fake = EntraInboundFake::start(&entra).expect("the fake starts");
        let dir = tempfile::Builder::new().prefix("roster-entra-inbound-").tempdir().expect("a temporary folder");
        fs::create_dir(dir.path().join("exports")).expect("the exports folder");
        fs::write(dir.path().join("entra-secret"), entra.client_secret()).expect("the secret file");
        fs::write(dir.path().join("roster.toml"), config(&entra, &fake)).expect("the config");
        Cloud { entra, fake, dir }
    }

    fn roster(&self, as_of: &str, args: &[&str]) -> Ran {
        let (code, stdout, text) = support::run_roster(self.dir.path(), as_of, args);
        assert!(!text.contains(&self.entra.client_secret()), "the client secret leaked: {text}");
        Ran { code, stdout, text }
    }

    fn run(&self, hr: &Hr, as_of: &str) -> Ran {
        fs::write(self.dir.path().join("exports/hr.csv"), hr.to_csv()).expect("the export");
        self.roster(as_of, &["run"])
    }

    fn plan(&self, as_of: &str) -> Value {
        let ran = self.roster(as_of, &["plan", "--format", "json"]);
        assert_eq!(ran.code, 0, "{}", ran.text);
        serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("the plan is JSON ({e}): {}", ran.text))
    }

    /// Every record Entra accepted for `key`, in the order sent.
    fn sent(&self, key: &str) -> Vec<Value> {
        self.fake
            .state()
            .uploads
            .iter()
            .filter(|u| u.status == 202)
            .flat_map(|u| u.operations())
            .map(|o| o["data"].clone())
            .filter(|user| user["externalId"] == key)
            .collect()
    }
}

#[test]
fn two_days_of_hr_data_reach_entra_and_the_run_reports_what_entra_did() {
    let cloud = Cloud::start();
    cloud.fake.state().bad.insert(
        "1004".into(),
        (
            "AzureActiveDirectoryInvalidDomain".into(),
            "The domain of userPrincipalName is not a verified domain.".into(),
        ),
    );
    let mut hr = Hr::new([
        Worker::new("1001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("1002", "Grace", "Hopper", "Engineering").title("Engineer").manager("1001"),
        Worker::new("1003", "Alan", "Turing", "Research").title("Researcher").manager("1001"),
        Worker::new("1004", "Edsger", "Dijkstra", "Research").title("Researcher"),
    ]);

    // Day one: the plan shows the records to send, then the run sends them.
    fs::write(cloud.dir.path().join("exports/hr.csv"), hr.to_csv()).expect("the export");
    let plan = cloud.plan("2026-03-02");
    let creates: Vec<&str> = plan["operations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["op"] == "create")
        .filter_map(|o| o["person"].as_str())
        .collect();
    assert_eq!(creates, ["1001", "1002", "1003", "1004"], "{plan:#}");
    assert!(cloud.fake.state().uploads.is_empty(), "a plan sends nothing");
    let day_one = cloud.run(&hr, "2026-03-02");
    assert_eq!(day_one.code, 4, "applied, one failed in Entra: {}", day_one.text);
    assert!(
        day_one.text.contains(
            "Entra's provisioning failed to create externalId 1004: AzureActiveDirectoryInvalidDomain: The domain of userPrincipalName is not a verified domain."
        ),
        "{}",
        day_one.text
    );
    assert!(day_one.stdout.contains("3 operation(s) applied, 1 failed"), "{}", day_one.text);
    let sizes: Vec<usize> = cloud.fake.state().uploads.iter().map(|u| u.operations().len()).collect();
    assert_eq!(sizes, [4], "the four joiners, ready together, in one bulk request");
    let grace = &cloud.sent("1002")[0];
    assert_eq!(grace["userName"], "grace.hopper");
    assert_eq!(grace["active"], true);
    assert_eq!(grace["displayName"], "Grace Hopper");
    assert_eq!(grace[ENTERPRISE]["department"], "Engineering");
    assert_eq!(grace[ENTERPRISE]["manager"]["value"], "1001", "the manager as Entra matches her: her externalId");
    let audit = cloud.roster("2026-03-02", &["audit", "show", "--format", "json", "--person", "1004"]);
    let entries: Vec<Value> = serde_json::from_str(&audit.stdout).unwrap_or_else(|e| panic!("{e}: {}", audit.text));
    assert_eq!(entries.len(), 1, "{}", audit.text);
    assert_eq!(entries[0]["outcome"], "failed");
    assert!(entries[0]["error"].as_str().unwrap_or("").contains("AzureActiveDirectoryInvalidDomain"), "{entries:#?}");

    // Day two: Grace moves, Alan has left, and Edsger's domain was fixed in Entra.
    cloud.fake.state().bad.clear();
    hr.worker("1002").department = "Research".into();
    hr.worker("1003").last_day = "2026-03-06".into();
    let day_two = cloud.run(&hr, "2026-03-09");
    assert_eq!(day_two.code, 0, "{}", day_two.text);
    let grace = cloud.sent("1002");
    assert_eq!(grace.len(), 2, "created, then updated");
    assert_eq!(grace[1][ENTERPRISE]["department"], "Research");
    assert_eq!(grace[1]["userName"], "grace.hopper", "the whole record, unchanged values too");
    assert_eq!(grace[1][ENTERPRISE]["manager"]["value"], "1001");
    let alan = cloud.sent("1003");
    assert_eq!(alan.len(), 2);
    assert_eq!(alan[1]["active"], false, "a leaver: the record with active = false");
    assert_eq!(alan[1]["name"]["familyName"], "Turing");
    assert_eq!(cloud.sent("1004").len(), 2, "the failed joiner sent again");
    assert_eq!(cloud.sent("1001").len(), 1, "Ada did not change: not sent again");
    let actions: Vec<(String, String, String)> = cloud
        .fake
        .state()
        .logs
        .iter()
        .map(|l| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&l["sourceIdentity"]["id"]),
                text(&l["provisioningAction"]),
                text(&l["provisioningStatusInfo"]["status"]),
            )
        })
        .filter(|(key, _, _)| key != "1001")
        .collect();
    assert!(actions.contains(&("1003".into(), "disable".into(), "success".into())), "{actions:?}");
    assert!(actions.contains(&("1004".into(), "create".into(), "success".into())), "{actions:?}");

    let after = cloud.plan("2026-03-09");
    assert_eq!(after["operations"].as_array().map(Vec::len), Some(0), "nothing left to do: {after:#}");
}
