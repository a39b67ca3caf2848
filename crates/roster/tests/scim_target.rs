//! A `kind = "scim"` target through the real `roster` binary, against a real, independent SCIM 2.0
//! server (the python-scim project's `scim2-server`, started by the test kit): joiners become Users
//! with the enterprise extension and a manager, department groups are created with their members, a
//! mover changes department and groups, a leaver is deactivated (`active: false`) and leaves the
//! groups, and every run after that plans nothing. What the server holds is read back over SCIM,
//! never taken from what roster printed.
//!
//! Fails, never skips, when `.venv-test` (scim2-server) is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::fs;

use roster_testkit::ScimServer;
use serde_json::Value;
use support::{Hr, Worker};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The OpenLDAP fixture's store, source, lifecycle and login rules, with a SCIM target instead.
fn config(server: &ScimServer) -> String {
    let fixture = include_str!("fixtures/roster.toml");
    let (head, _ldap_target) = fixture.split_once("[[target]]").expect("the fixture has a target");
    format!(
        r#"{head}[[target]]
name = "cloud"
kind = "scim"
url = "{url}"
token = "file:scim-token"
tls = {{ allow_plaintext = true }}
[target.attributes]
"name.givenName" = "given_name"
"name.familyName" = "family_name"
displayName = 'given_name + " " + family_name'
title = "title"
"{ENTERPRISE}:employeeNumber" = "key"
"{ENTERPRISE}:department" = "department"
"{ENTERPRISE}:manager" = "manager_dn"
[[target.groups]]
dn = '"displayName=staff-" + lower(department) + ",ou=Groups,o=scim"'

[safety]
disables = {{ count = 5 }}
group_removals = {{ count = 5 }}
"#,
        url = server.base_url()
    )
}

struct Cloud {
    server: ScimServer,
    dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl Cloud {
    fn start() -> Cloud {
        let server = ScimServer::start()
            .unwrap_or_else(|e| panic!("could not start scim2-server (run scripts/install-test-deps.sh): {e:#}"));
        let dir = tempfile::Builder::new().prefix("roster-scim-").tempdir().expect("a temporary folder");
        fs::create_dir(dir.path().join("exports")).expect("the exports folder");
        fs::write(dir.path().join("scim-token"), server.token()).expect("the token file");
        fs::write(dir.path().join("roster.toml"), config(&server)).expect("the config");
        // reqwest is built without a default crypto provider (plain HTTP here, but it insists).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Cloud { server, dir, http: reqwest::blocking::Client::new() }
    }

    /// Runs roster; the exit code, its standard output, and all it printed for messages.
    fn roster(&self, as_of: &str, args: &[&str]) -> (i32, String, String) {
        support::run_roster(self.dir.path(), as_of, args)
    }

    fn run(&self, hr: &Hr, as_of: &str) {
        fs::write(self.dir.path().join("exports/hr.csv"), hr.to_csv()).expect("the export");
        let (code, _, text) = self.roster(as_of, &["run"]);
        assert_eq!(code, 0, "{text}");
        let (code, stdout, text) = self.roster(as_of, &["plan", "--format", "json"]);
        assert_eq!(code, 0, "{text}");
        let plan: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("the plan is JSON ({e}): {text}"));
        assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "after the run, nothing to do: {plan:#}");
    }

    fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.server.base_url()))
            .bearer_auth(self.server.token())
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().expect("a JSON answer")
    }

    /// The User whose externalId is `key`.
    fn user(&self, key: &str) -> Value {
        let found = self.get(&format!("/Users?filter=externalId%20eq%20%22{key}%22"));
        let resources = found["Resources"].as_array().cloned().unwrap_or_default();
        assert_eq!(resources.len(), 1, "one user with externalId {key}: {found:#}");
        resources[0].clone()
    }

    /// The displayNames of the groups `key`'s user is a member of, sorted.
    fn groups_of(&self, key: &str) -> Vec<String> {
        let id = self.user(key)["id"].as_str().expect("an id").to_owned();
        let groups = self.get("/Groups");
        let mut names: Vec<String> = groups["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["members"].as_array().into_iter().flatten().any(|m| m["value"] == id.as_str()))
            .map(|g| g["displayName"].as_str().unwrap_or_default().to_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn joiners_movers_and_leavers_reach_a_scim_service() {
    let cloud = Cloud::start();
    let mut hr = Hr::new([
        Worker::new("1001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("1002", "Grace", "Hopper", "Engineering").title("Engineer").manager("1001"),
        Worker::new("1003", "Alan", "Turing", "Research").title("Researcher").manager("1001"),
    ]);

    // Day one: three joiners, the manager created in the same run as her reports.
    cloud.run(&hr, "2026-03-02");
    let ada = cloud.user("1001");
    let grace = cloud.user("1002");
    assert_eq!(grace["userName"], "grace.hopper");
    assert_eq!(grace["name"]["givenName"], "Grace");
    assert_eq!(grace["displayName"], "Grace Hopper");
    assert_eq!(grace["active"], true);
    assert_eq!(grace[ENTERPRISE]["employeeNumber"], "1002");
    assert_eq!(grace[ENTERPRISE]["department"], "Engineering");
    assert_eq!(grace[ENTERPRISE]["manager"]["value"], ada["id"], "{grace:#}");
    assert_eq!(cloud.groups_of("1002"), ["staff-engineering"]);
    assert_eq!(cloud.groups_of("1003"), ["staff-research"]);
    // The server offers bulk: the three creates, being independent, went in one bulk request, the
    // two manager references (which wait for the creates) in a second.
    let requests = cloud.server.requests().expect("the server's access log");
    assert_eq!(requests.iter().filter(|r| *r == "POST /v2/Bulk").count(), 2, "{requests:#?}");
    assert!(!requests.iter().any(|r| r == "POST /v2/Users"), "no create on its own: {requests:#?}");

    // Day two: Grace moves to Research: the same user, a new department and group.
    hr.worker("1002").department = "Research".into();
    cloud.run(&hr, "2026-03-09");
    let moved = cloud.user("1002");
    assert_eq!(moved["id"], grace["id"], "updated, not recreated");
    assert_eq!(moved[ENTERPRISE]["department"], "Research");
    assert_eq!(cloud.groups_of("1002"), ["staff-research"]);

    // Day three: Alan left on the 13th: deactivated, out of his groups, still there.
    hr.worker("1003").last_day = "2026-03-13".into();
    cloud.run(&hr, "2026-03-16");
    let alan = cloud.user("1003");
    assert_eq!(alan["active"], false, "{alan:#}");
    assert!(cloud.groups_of("1003").is_empty(), "a leaver leaves the groups");
    assert_eq!(cloud.user("1001")["active"], true);
}

#[test]
fn a_user_that_already_has_the_persons_external_id_is_adopted_not_duplicated() {
    let cloud = Cloud::start();
    // Before roster: the service already has Ada, with her employee number as externalId (as another
    // provisioning tool or an import would have left her), an older userName, and no department.
    let response = cloud
        .http
        .post(format!("{}/Users", cloud.server.base_url()))
        .bearer_auth(cloud.server.token())
        .header("Content-Type", "application/scim+json")
        .body(
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "alovelace",
                "externalId": "1001",
                "displayName": "A. Lovelace",
                "active": true,
            })
            .to_string(),
        )
        .send()
        .expect("POST /Users");
    assert!(response.status().is_success(), "the existing user is created: {}", response.status());
    let before = cloud.user("1001");

    let hr = Hr::new([
        Worker::new("1001", "Ada", "Lovelace", "Engineering").title("Head of Engineering"),
        Worker::new("1002", "Grace", "Hopper", "Engineering").title("Engineer").manager("1001"),
    ]);
    cloud.run(&hr, "2026-03-02");
    let ada = cloud.user("1001");
    assert_eq!(ada["id"], before["id"], "adopted, not created again: {ada:#}");
    assert_eq!(ada["userName"], "alovelace", "an adopted user keeps the login it had");
    assert_eq!(ada["displayName"], "Ada Lovelace");
    assert_eq!(ada[ENTERPRISE]["department"], "Engineering");
    assert_eq!(cloud.groups_of("1001"), ["staff-engineering"]);
    let grace = cloud.user("1002");
    assert_eq!(grace[ENTERPRISE]["manager"]["value"], ada["id"], "{grace:#}");
    assert_eq!(cloud.get("/Users")["totalResults"], 2, "no second Ada");
}
