//! The inbound SCIM endpoint of `roster serve` (`/scim/v2`), the real binary: the python-scim
//! project's compliance checker `scim2-tester` (PyPI, in `.venv-test/`) run against it, and HR
//! pushes that become accounts in a real OpenLDAP: a User and a Bulk become joiners, a PATCHed
//! department a mover, a DELETE a leaver under the shrink safety limit, a pushed User with a date
//! roster cannot read a quarantined row with its reason.
//!
//! Fails, never skips, when `.venv-test` or slapd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{LEAVERS, Lab, PEOPLE};

const AS_OF: &str = "2026-03-02";
const TOKEN: &str = "scim-push-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const HR_EXTENSION: &str = "urn:example:params:scim:schemas:extension:hr:1.0:User";

use support::daemon::token_sha256 as sha256;

/// A `kind = "scim"` source: the key is the enterprise employeeNumber, the dates come from an
/// extension of the HR system's own.
fn scim_source(job: Option<&str>) -> String {
    format!(
        r#"[[source]]
name = "hr"
kind = "scim"
complete = true
key = "{ENTERPRISE}:employeeNumber"
[source.scim]
token_sha256 = "{}"
{}
[source.columns]
given_name = "name.givenName"
family_name = "name.familyName"
hire_date = "{HR_EXTENSION}:hireDate"
last_day = "{HR_EXTENSION}:lastDay"
department = "{ENTERPRISE}:department"
title = "title"
"#,
        sha256(TOKEN),
        job.map(|j| format!("job = {j:?}")).unwrap_or_default()
    )
}

/// A running `roster serve`; killed when dropped.
struct Daemon {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
    http: reqwest::blocking::Client,
}

impl Daemon {
    fn start(dir: &Path, ldap_password: Option<&str>) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roster"));
        command.current_dir(dir).env_remove("ROSTER_CONFIG").env_remove("ROSTER_LOG").args([
            "--config",
            "roster.toml",
            "--as-of",
            AS_OF,
            "serve",
        ]);
        if let Some(password) = ldap_password {
            command.env("ROSTER_LDAP_PASSWORD", password);
        }
        let (child, base, log) = support::daemon::spawn_serve(command);
        // reqwest is built without a default crypto provider (plain HTTP here, but it insists).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("a client");
        Daemon { child, base, log, http }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn scim(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, &format!("/scim/v2{path}"), TOKEN, body)
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.http.request(method.parse().expect("a method"), format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.header("content-type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().unwrap_or_else(|e| panic!("{method} {path}: {e}\nlog:\n{}", self.log()));
        let status = response.status().as_u16();
        let text = response.text().expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Waits until the job `name` has finished a run begun after `after` (its `last.started_at`)
    /// and nothing of it runs or waits; polling, no timing assertion: the deadline only keeps a
    /// broken daemon from hanging the test. Returns the job's last outcome.
    fn settled(&self, name: &str, after: &Value) -> String {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (status, jobs) = self.call("GET", "/api/v1/jobs", VIEWER, None);
            assert_eq!(status, 200, "{jobs}");
            let job = jobs.as_array().and_then(|j| j.iter().find(|j| j["name"] == name)).cloned().expect("the job");
            let last = &job["last"];
            if job["running"].is_null() && job["queued"].is_null() && !last.is_null() && last["started_at"] != *after {
                return last["outcome"].as_str().unwrap_or_default().to_string();
            }
            assert!(Instant::now() < deadline, "gave up waiting for job {name}: {job}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn last_started(&self, name: &str) -> Value {
        let (_, jobs) = self.call("GET", "/api/v1/jobs", VIEWER, None);
        jobs.as_array()
            .and_then(|j| j.iter().find(|j| j["name"] == name))
            .map(|j| j["last"]["started_at"].clone())
            .unwrap_or(Value::Null)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: scim2-tester runs from the test venv; install it with `sudo scripts/install-test-deps.sh`",
        python.display()
    );
    python
}

/// scim2-tester's every check against the endpoint: each must succeed, none may fail. The one it
/// skips (`POST /.search` across resource types, which this endpoint answers 501, as RFC 7644
/// §3.4.3 allows) is named in docs/sources/scim-inbound.md.
#[test]
fn scim2_tester_finds_the_endpoint_compliant() {
    let python = venv_python();
    let dir = tempfile::Builder::new().prefix("roster-scim-").tempdir().expect("a temporary folder");
    let config = format!(
        "[store]\npath = \"roster.db\"\n[time]\nzone = \"Europe/Berlin\"\n{}\n\
         [login]\ncandidates = ['lower(given_name + \".\" + family_name)']\n\
         [serve]\nlisten = \"127.0.0.1:0\"\n",
        scim_source(None)
    );
    std::fs::write(dir.path().join("roster.toml"), config).expect("writing roster.toml");
    let daemon = Daemon::start(dir.path(), None);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scim_compliance.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(format!("{}/scim/v2", daemon.base))
        .env("SCIM_TOKEN", TOKEN)
        .output()
        .expect("running scim2-tester");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "scim2-tester did not run:\n{stderr}\nlog:\n{}", daemon.log());
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).expect("scim2-tester's results as JSON");
    let failed: Vec<&Value> = results
        .iter()
        .filter(|r| !["SUCCESS", "COMPLIANT", "ACCEPTABLE", "SKIPPED"].contains(&r["status"].as_str().unwrap_or("")))
        .collect();
    assert!(failed.is_empty(), "scim2-tester found {} problem(s):\n{failed:#?}\nlog:\n{}", failed.len(), daemon.log());
    let skipped: Vec<&str> =
        results.iter().filter(|r| r["status"] == "SKIPPED").filter_map(|r| r["title"].as_str()).collect();
    assert_eq!(skipped, ["search_with_attributes"], "only the documented check is skipped: {results:#?}");
    let succeeded = results.iter().filter(|r| r["status"] == "SUCCESS").count();
    assert!(succeeded > 100, "scim2-tester ran its checks ({succeeded} succeeded): {results:#?}");
    for tag in [
        "discovery",
        "crud:create",
        "crud:read",
        "crud:update",
        "crud:delete",
        "patch:add",
        "patch:remove",
        "patch:replace",
        "misc",
    ] {
        assert!(
            results
                .iter()
                .any(|r| r["status"] == "SUCCESS" && r["tags"].as_array().is_some_and(|t| t.iter().any(|x| x == tag))),
            "no successful check tagged {tag}: {results:#?}"
        );
    }
}

fn user(number: &str, given: &str, family: &str, department: &str, hire: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, HR_EXTENSION],
        "userName": format!("{}.{}@hr.example", given.to_lowercase(), family.to_lowercase()),
        "externalId": number,
        "name": {"givenName": given, "familyName": family},
        "title": "Engineer",
        ENTERPRISE: {"employeeNumber": number, "department": department},
        HR_EXTENSION: {"hireDate": hire}
    })
}

/// Pushes become joiners, a mover and a leaver in OpenLDAP, through the job a push queues; a
/// mass departure is held by the shrink limit; a bad date is quarantined with its reason.
#[test]
fn pushed_users_become_accounts() {
    let lab = Lab::start();
    let config = lab.config();
    let start = config.find("[[source]]").expect("the lab's source");
    let end = config.find("[lifecycle]").expect("the lab's lifecycle");
    let config = format!(
        "{}{}\n{}\n[serve]\nlisten = \"127.0.0.1:0\"\n[[serve.job]]\nname = \"sync\"\ncommand = \"run\"\n\
         [[serve.token]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        &config[..start],
        scim_source(Some("sync")),
        &config[end..],
        sha256(VIEWER)
    );
    lab.write_config(&config);
    let daemon = Daemon::start(lab.dir(), Some(lab.ldap.admin_password()));

    // A User, then a Bulk of two (the second refers to nothing; both are created).
    let before = daemon.last_started("sync");
    let (status, alice) = daemon.scim("POST", "/Users", Some(user("1001", "Alice", "Archer", "Sales", "2024-01-08")));
    assert_eq!(status, 201, "{alice}");
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": user("1002", "Bruno", "Baker", "Sales", "2024-02-05")},
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": user("1003", "Chloe", "Chen", "Support", "2024-03-04")},
            {"method": "PATCH", "path": "/Users/bulkId:c", "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]}}
        ]
    });
    let (status, answer) = daemon.scim("POST", "/Bulk", Some(bulk));
    assert_eq!(status, 200, "{answer}");
    let statuses: Vec<&str> =
        answer["Operations"].as_array().unwrap().iter().filter_map(|o| o["status"].as_str()).collect();
    assert_eq!(statuses, ["201", "201", "200"], "{answer}");
    assert_eq!(daemon.settled("sync", &before), "success", "log:\n{}", daemon.log());
    for key in ["1001", "1002", "1003"] {
        assert!(!lab.account(key).locked(), "{key} has an enabled account");
    }
    assert_eq!(lab.account("1003").value("title"), "Lead");
    assert!(lab.is_below("1001", &format!("ou=Sales,{PEOPLE}")));

    // A PATCH of the department: a mover.
    let before = daemon.last_started("sync");
    let id = alice["id"].as_str().expect("an id");
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Support"}]
    });
    let (status, patched) = daemon.scim("PATCH", &format!("/Users/{id}"), Some(patch));
    assert_eq!(status, 200, "{patched}");
    assert_eq!(daemon.settled("sync", &before), "success", "log:\n{}", daemon.log());
    assert!(lab.is_below("1001", &format!("ou=Support,{PEOPLE}")), "{}", lab.account("1001").dn);

    // A pushed User whose date roster cannot read: accepted by SCIM (a string is a string), then
    // quarantined by the row rules, its reason naming the User and the attribute.
    let (status, bad) = daemon.scim("POST", "/Users", Some(user("1004", "Dora", "Diaz", "Sales", "01/03/2026")));
    assert_eq!(status, 201, "{bad}");
    let plan = lab.roster(AS_OF, &["plan"]).expect_code(0);
    let bad_id = bad["id"].as_str().expect("an id");
    assert!(plan.stdout.contains(&format!("SCIM User {bad_id}")), "{plan}");
    assert!(plan.stdout.contains("hire_date"), "{plan}");
    assert!(lab.accounts("1004").is_empty());
    let (status, _) = daemon.scim("DELETE", &format!("/Users/{bad_id}"), None);
    assert_eq!(status, 204);

    // What the SCIM schema rejects is refused before it is stored.
    let mut wrong = user("1005", "Emil", "Egger", "Sales", "2024-01-08");
    wrong["active"] = json!("yes");
    let (status, error) = daemon.scim("POST", "/Users", Some(wrong));
    assert_eq!((status, error["scimType"].as_str()), (400, Some("invalidValue")), "{error}");

    // A DELETE: the person is missing from a complete source. One of three is more than the
    // shrink limit (10%): the job's run is blocked; allowed by a person, Alice becomes a leaver.
    let before = daemon.last_started("sync");
    let (status, _) = daemon.scim("DELETE", &format!("/Users/{id}"), None);
    assert_eq!(status, 204);
    assert_eq!(daemon.settled("sync", &before), "blocked", "log:\n{}", daemon.log());
    assert!(!lab.account("1001").locked());
    lab.roster(AS_OF, &["run", "--allow", "source_shrink"]).expect_code(0);
    assert!(lab.is_below("1001", LEAVERS), "{}", lab.account("1001").dn);
    assert!(lab.account("1001").locked());
    assert!(!lab.account("1002").locked());
}
