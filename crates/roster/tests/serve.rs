//! `roster serve`, the real binary against a real OpenLDAP: health and readiness, bearer tokens
//! and roles, a triggered job recorded as a run (its plan and audit entries through the API),
//! holds through the API in the audit trail under the token's name, a cron schedule that fires,
//! the queue (runs never overlap, a waiting job is not queued twice), a graceful shutdown that
//! lets the running job finish, the OpenAPI document against the routes used, and `/metrics`.
//! Two daemons on one PostgreSQL store: one leads, the other stands by and takes over when the
//! leader is killed in the middle of an apply, which its next run completes with no operation lost
//! or doubled.
//!
//! A job is held "running" for as long as a test needs by making the HR export a named pipe:
//! the run blocks reading it, as it would on a slow HR system, until the test writes the export.
//!
//! Fails, never skips, when slapd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Hr, Lab, Worker};

const AS_OF: &str = "2026-03-02";
const VIEWER: &str = "viewer-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";

use support::daemon::token_sha256 as sha256;

/// The lab's config with a `[serve]` section on a free port, two tokens and these jobs.
fn serve_config(lab: &Lab, jobs: &str) -> String {
    format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\nshutdown_timeout = 120\n{jobs}\n\
         [[serve.token]]\nname = \"helpdesk\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [[serve.token]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{}\"\n",
        lab.config(),
        sha256(VIEWER),
        sha256(OPERATOR)
    )
}

/// A running `roster serve`; killed when dropped.
struct Daemon {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
    http: reqwest::blocking::Client,
    /// Route templates the OpenAPI document lists, to check every request against.
    documented: BTreeSet<(String, String)>,
}

impl Daemon {
    fn start(lab: &Lab) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .current_dir(lab.dir())
            .env_remove("ROSTER_CONFIG")
            .env_remove("ROSTER_LOG")
            .env("ROSTER_LDAP_PASSWORD", lab.ldap.admin_password())
            .args(["--config", "roster.toml", "--as-of", AS_OF, "serve"]);
        let (child, base, log) = support::daemon::spawn_serve(command);
        let mut daemon = Daemon { child, base, log, http: http_client(), documented: BTreeSet::new() };
        let doc = daemon.request("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", None, None);
        assert_eq!(doc.0, 200);
        for (path, item) in doc.1["paths"].as_object().expect("the document has paths") {
            for method in item.as_object().expect("a path item").keys() {
                daemon.documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        daemon
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// One request; `template` is the route as the OpenAPI document names it, which must list it
    /// (once the document is read), so a route served but not documented fails here.
    fn request(
        &self,
        method: &str,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        if !self.documented.is_empty() {
            assert!(
                self.documented.contains(&(method.to_string(), template.to_string())),
                "{method} {template} is served but not in the OpenAPI document: {:?}",
                self.documented
            );
        }
        let mut request = self.http.request(method.parse().expect("a method"), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap_or_else(|e| panic!("{method} {path}: {e}\nlog:\n{}", self.log()));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().expect("a body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, headers)
    }

    fn get(&self, template: &str, path: &str, token: &str) -> Value {
        let (status, body, _) = self.request("GET", template, path, Some(token), None);
        assert_eq!(status, 200, "GET {path}: {body}\nlog:\n{}", self.log());
        body
    }

    fn trigger(&self, job: &str, token: &str) -> (u16, Value) {
        let (status, body, _) = self.request(
            "POST",
            "/api/v1/jobs/{name}/trigger",
            &format!("/api/v1/jobs/{job}/trigger"),
            Some(token),
            None,
        );
        (status, body)
    }

    fn job(&self, name: &str) -> Value {
        let jobs = self.get("/api/v1/jobs", "/api/v1/jobs", VIEWER);
        jobs.as_array().unwrap().iter().find(|j| j["name"] == name).cloned().expect("the job is listed")
    }

    /// Waits (polling, no timing assertion: the deadline only keeps a broken daemon from hanging
    /// the test) until `done` holds.
    fn wait_for(&self, what: &str, mut done: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done(self) {
            assert!(Instant::now() < deadline, "gave up waiting for {what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metrics(&self) -> String {
        let (status, body, _) = self.request("GET", "/metrics", "/metrics", None, None);
        assert_eq!(status, 200);
        body.as_str().expect("metrics are text").to_string()
    }

    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
    }

    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the daemon") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the daemon did not exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn two_people() -> Hr {
    Hr::new([
        Worker::new("7001", "Ada", "Lovelace", "Engineering"),
        Worker::new("7002", "Grace", "Hopper", "Engineering"),
    ])
}

fn manual_job() -> &'static str {
    "[[serve.job]]\nname = \"hr\"\ncommand = \"run\"\n"
}

#[test]
fn the_api_answers_by_role_runs_a_triggered_job_and_records_every_change() {
    let lab = Lab::start();
    lab.export(&two_people());
    lab.write_config(&serve_config(&lab, manual_job()));
    let daemon = Daemon::start(&lab);

    let (status, health, _) = daemon.request("GET", "/health", "/health", None, None);
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, ready, _) = daemon.request("GET", "/ready", "/ready", None, None);
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")), "{ready}");
    // A daemon alone on its store leads (with SQLite, always).
    assert_eq!(ready["role"], "leader", "{ready}");
    assert!(daemon.metrics().contains("roster_leader 1"), "{}", daemon.metrics());

    // Tokens and roles.
    let (status, body, headers) = daemon.request("GET", "/api/v1/runs", "/api/v1/runs", None, None);
    assert_eq!(status, 401, "{body}");
    assert!(headers.get("www-authenticate").is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")));
    assert!(body["error"].is_string(), "{body}");
    let (status, body, _) = daemon.request("GET", "/api/v1/runs", "/api/v1/runs", Some("not-a-token"), None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = daemon.trigger("hr", VIEWER);
    assert_eq!(status, 403, "a viewer cannot trigger: {body}");
    assert!(body["error"].as_str().unwrap().contains("helpdesk"), "{body}");
    let (status, body) = daemon.trigger("nope", OPERATOR);
    assert_eq!(status, 404, "{body}");
    assert!(!daemon.log().contains(VIEWER) && !daemon.log().contains(OPERATOR), "a token in the log");

    // A triggered job runs `roster run` as api:ops, recorded in the store.
    let (status, answer) = daemon.trigger("hr", OPERATOR);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["queued"], true);
    daemon.wait_for("the job to finish", |d| d.job("hr")["last"]["outcome"].is_string());
    let job = daemon.job("hr");
    assert_eq!(job["last"]["outcome"], "success", "{job}\n{}", daemon.log());
    let run_id = job["last"]["runs"][0].as_i64().expect("the job recorded a run");

    let runs = daemon.get("/api/v1/runs", "/api/v1/runs?limit=10", VIEWER);
    let listed = runs.as_array().unwrap().iter().find(|r| r["id"] == run_id).expect("the run is listed");
    assert_eq!((listed["command"].as_str(), listed["actor"].as_str()), (Some("run"), Some("api:ops")), "{listed}");
    let trigger = runs.as_array().unwrap().iter().find(|r| r["command"] == "trigger").expect("the trigger is a run");
    assert_eq!(trigger["actor"], "api:ops");

    let run = daemon.get("/api/v1/runs/{id}", &format!("/api/v1/runs/{run_id}"), VIEWER);
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["summary"]["joiners"], 2, "{run}");
    let plan = daemon.get("/api/v1/runs/{id}/plan", &format!("/api/v1/runs/{run_id}/plan"), VIEWER);
    let creates = plan["operations"].as_array().unwrap().iter().filter(|o| o["op"] == "create").count();
    assert!(creates >= 2, "the plan creates both accounts: {plan:#}");
    let (status, body, _) = daemon.request("GET", "/api/v1/runs/{id}", "/api/v1/runs/999999", Some(VIEWER), None);
    assert_eq!(status, 404, "{body}");

    let entries = daemon.get("/api/v1/audit", &format!("/api/v1/audit?run={run_id}&limit=1000"), VIEWER);
    let entries = entries.as_array().unwrap();
    assert!(entries.iter().any(|e| e["person"] == "7001" && e["kind"] == "create" && e["outcome"] == "done"));
    assert!(entries.iter().all(|e| e["actor"] == "api:ops"), "{entries:?}");
    let (status, body, _) = daemon.request("GET", "/api/v1/audit", "/api/v1/audit?since=yesterday", Some(VIEWER), None);
    assert_eq!(status, 400, "{body}");

    // Holds: operator only, recorded with the token's name.
    let hold = json!({ "reason": "termination disputed (ticket 42)" });
    let (status, body, _) = daemon.request(
        "POST",
        "/api/v1/persons/{key}/hold",
        "/api/v1/persons/7001/hold",
        Some(VIEWER),
        Some(hold.clone()),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body, _) =
        daemon.request("POST", "/api/v1/persons/{key}/hold", "/api/v1/persons/7001/hold", Some(OPERATOR), Some(hold));
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = daemon.request(
        "POST",
        "/api/v1/persons/{key}/hold",
        "/api/v1/persons/9999/hold",
        Some(OPERATOR),
        Some(json!({ "reason": "x" })),
    );
    assert_eq!(status, 404, "{body}");
    let (status, body, _) =
        daemon.request("DELETE", "/api/v1/persons/{key}/hold", "/api/v1/persons/7001/hold", Some(OPERATOR), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["before"]["reason"], "termination disputed (ticket 42)", "{body}");
    let trail = daemon.get("/api/v1/audit", "/api/v1/audit?person=7001", VIEWER);
    let kinds: Vec<(&str, &str)> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "hold" || e["kind"] == "unhold")
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("hold", "api:ops"), ("unhold", "api:ops")], "{trail:#}");
    let triggers = daemon.get("/api/v1/audit", "/api/v1/audit?limit=1000", VIEWER);
    assert!(
        triggers.as_array().unwrap().iter().any(|e| e["kind"] == "trigger" && e["actor"] == "api:ops"),
        "the trigger is in the audit trail"
    );

    // The chain still verifies with the daemon's writes in it.
    lab.roster(AS_OF, &["audit", "verify"]).expect_code(0);

    let metrics = daemon.metrics();
    assert!(metrics.contains("roster_job_runs_total{job=\"hr\",outcome=\"success\"} 1"), "{metrics}");
    assert!(metrics.contains("roster_operations_total{kind=\"create\",outcome=\"done\"}"), "{metrics}");
    assert!(metrics.contains("roster_job_duration_seconds_bucket{job=\"hr\""), "{metrics}");
    assert!(metrics.contains("roster_job_last_success_timestamp_seconds{job=\"hr\"}"), "{metrics}");
}

#[test]
fn a_schedule_fires_and_its_runs_never_overlap() {
    let lab = Lab::start();
    lab.export(&two_people());
    lab.write_config(&serve_config(
        &lab,
        "[[serve.job]]\nname = \"tick\"\nschedule = \"* * * * * *\"\ncommand = \"plan\"\n",
    ));
    let daemon = Daemon::start(&lab);
    let job = daemon.job("tick");
    assert_eq!(job["schedule"], "* * * * * *");
    assert!(job["next_fire"].is_string(), "{job}");

    let scheduled = |d: &Daemon| {
        let runs = d.get("/api/v1/runs", "/api/v1/runs?limit=1000", VIEWER);
        runs.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["actor"] == "serve:tick" && r["status"] == "planned")
            .cloned()
            .collect::<Vec<_>>()
    };
    daemon.wait_for("three scheduled runs", |d| scheduled(d).len() >= 3);
    let mut runs = scheduled(&daemon);
    runs.sort_by_key(|r| r["id"].as_i64());
    for pair in runs.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        assert!(
            earlier["finished_at"].as_str().unwrap() <= later["started_at"].as_str().unwrap(),
            "runs overlap: {earlier} and {later}"
        );
    }
}

#[test]
fn a_waiting_job_is_queued_once_and_a_shutdown_lets_the_running_job_finish() {
    let lab = Lab::start();
    let hr = two_people();
    lab.export(&hr);
    lab.write_config(&serve_config(&lab, manual_job()));
    // The run blocks reading its export until the test writes it.
    let export = lab.dir().join("exports/hr.csv");
    std::fs::remove_file(&export).unwrap();
    assert!(Command::new("mkfifo").arg(&export).status().expect("mkfifo").success());
    let mut daemon = Daemon::start(&lab);

    let (status, first) = daemon.trigger("hr", OPERATOR);
    assert_eq!(status, 202, "{first}");
    daemon.wait_for("the job to run", |d| d.job("hr")["running"].is_object());
    let (status, second) = daemon.trigger("hr", OPERATOR);
    assert_eq!((status, &second["queued"], &second["position"]), (202, &json!(true), &json!(1)), "{second}");
    let (status, third) = daemon.trigger("hr", OPERATOR);
    assert_eq!((status, &third["queued"]), (200, &json!(false)), "{third}");
    assert!(third["reason"].as_str().unwrap().contains("already queued"), "{third}");
    let job = daemon.job("hr");
    assert_eq!(job["queued"]["position"], 1, "{job}");
    let metrics = daemon.metrics();
    assert!(metrics.contains("roster_queue_length 1"), "{metrics}");

    daemon.terminate();
    daemon.wait_for("the shutdown to begin", |d| d.log().contains("shutting down"));
    std::fs::write(&export, hr.to_csv()).expect("writing the export into the pipe");
    assert_eq!(daemon.wait_exit(), 0, "log:\n{}", daemon.log());
    let log = daemon.log();
    assert!(log.contains("the queued job does not run here; it stays in the store's queue"), "{log}");

    // The running job finished and recorded its run; the queued one never started here.
    let show = lab.roster(AS_OF, &["audit", "show", "--limit", "1000", "--format", "json"]).expect_code(0);
    let entries: Value = serde_json::from_str(&show.stdout).unwrap();
    let applied: BTreeSet<i64> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "create" && e["actor"] == "api:ops")
        .map(|e| {
            assert_eq!(e["outcome"], "done", "{e}");
            e["run"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(applied.len(), 1, "one run applied: {entries:#}");
    let triggers = entries.as_array().unwrap().iter().filter(|e| e["kind"] == "trigger").count();
    assert_eq!(triggers, 3, "every trigger is recorded");
}

/// A plain-HTTP client. The workspace builds reqwest without a default TLS crypto provider (roster
/// brings its own ring configuration), so one is installed first, as reqwest requires.
fn http_client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::new()
}

#[test]
fn persons_are_searched_shown_and_explained_through_the_api() {
    let lab = Lab::start();
    lab.export(&two_people());
    lab.write_config(&serve_config(&lab, manual_job()));
    lab.run(AS_OF);
    let daemon = Daemon::start(&lab);

    let found = daemon.get("/api/v1/persons", "/api/v1/persons?q=HOPPER", VIEWER);
    let keys: Vec<&str> = found.as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["7002"], "a family name found case-insensitively: {found:#}");
    let by_login = daemon.get("/api/v1/persons", "/api/v1/persons?q=ada.love", VIEWER);
    assert_eq!(by_login[0]["key"], "7001", "{by_login:#}");
    let everyone = daemon.get("/api/v1/persons", "/api/v1/persons", VIEWER);
    assert_eq!(everyone.as_array().unwrap().len(), 2);
    let nobody = daemon.get("/api/v1/persons", "/api/v1/persons?q=%25", VIEWER);
    assert_eq!(nobody, json!([]), "% is searched for, not a wildcard: {nobody:#}");

    let ada = daemon.get("/api/v1/persons/{key}", "/api/v1/persons/7001", VIEWER);
    assert_eq!((ada["login"].as_str(), ada["state"].as_str()), (Some("ada.lovelace"), Some("active")), "{ada:#}");
    assert_eq!(ada["links"][0]["dn"], "uid=ada.lovelace,ou=Engineering,ou=people,dc=example,dc=org");
    let (status, body, _) = daemon.request("GET", "/api/v1/persons/{key}", "/api/v1/persons/9999", Some(VIEWER), None);
    assert_eq!(status, 404, "{body}");

    let explained = daemon.get("/api/v1/persons/{key}/explain", "/api/v1/persons/7001/explain", VIEWER);
    let cli = lab.roster(AS_OF, &["explain", "7001", "--json"]).expect_code(0);
    let mut cli: Value = serde_json::from_str(&cli.stdout).expect("JSON");
    // The one difference: the export's path, as the daemon and the test's working folder name it.
    let mut explained = explained;
    for e in [&mut explained, &mut cli] {
        assert!(e["rows"][0]["location"]["file"].as_str().unwrap().ends_with("exports/hr.csv"), "{e:#}");
        e["rows"][0]["location"]["file"] = json!("hr.csv");
    }
    assert_eq!(explained, cli, "the API and the CLI explain alike");
    assert_eq!(explained["state"]["state"], "active");
    let (status, body, _) =
        daemon.request("GET", "/api/v1/persons/{key}/explain", "/api/v1/persons/9999/explain", Some(VIEWER), None);
    assert_eq!(status, 404, "{body}");
    let (status, _, _) =
        daemon.request("GET", "/api/v1/persons/{key}/explain", "/api/v1/persons/7001/explain", None, None);
    assert_eq!(status, 401);

    // Provisioning one person on demand: operator only, queued, run as `roster run --person`.
    let mut hr = two_people();
    hr.worker("7001").title = "Countess".into();
    hr.worker("7002").title = "Admiral".into();
    lab.export(&hr);
    let provision = "/api/v1/persons/{key}/provision";
    let (status, body, _) = daemon.request("POST", provision, "/api/v1/persons/7001/provision", Some(VIEWER), None);
    assert_eq!(status, 403, "{body}");
    let (status, body, _) = daemon.request("POST", provision, "/api/v1/persons/7001/provision", Some(OPERATOR), None);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["job"], "provision:7001");
    let trigger = body["recorded_as_run"].as_i64().expect("the request is recorded");
    daemon.wait_for("the provisioning run", |d| {
        let runs = d.get("/api/v1/runs", "/api/v1/runs", VIEWER);
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["command"] == "run" && r["id"].as_i64() > Some(trigger) && r["finished_at"].is_string())
    });
    assert_eq!(lab.account("7001").value("title"), "Countess", "{}", daemon.log());
    assert!(lab.account("7002").values("title").is_empty(), "only 7001 was provisioned");
    let trail = daemon.get("/api/v1/audit", "/api/v1/audit?person=7001", VIEWER);
    assert!(trail.as_array().unwrap().iter().any(|e| e["kind"] == "update" && e["actor"] == "api:ops"), "{trail:#}");
}

const APPROVER: &str = "approver-token-0123456789";

#[test]
fn a_held_plan_is_reviewed_and_approved_through_the_api_then_applied() {
    let lab = Lab::start();
    let mut hr = two_people();
    lab.export(&hr);
    let served = serve_config(&lab, manual_job());
    lab.write_config(&served);
    lab.run(AS_OF);
    // From now on, a change to all-staff's membership needs an approver.
    lab.write_config(&format!(
        "{served}[[serve.token]]\nname = \"boss\"\nrole = \"approver\"\nsha256 = \"{}\"\n\
         [approval]\ngroups = [\"cn=all-staff,ou=groups,dc=example,dc=org\"]\n",
        sha256(APPROVER)
    ));
    hr.add(Worker::new("7003", "Alan", "Turing", "Engineering"));
    lab.export(&hr);
    let blocked = lab.roster(AS_OF, &["run", "--hold-if-blocked"]).expect_code(3);
    assert!(blocked.stderr.contains("Held as plan 1"), "{blocked}");
    let daemon = Daemon::start(&lab);

    let waiting = daemon.get("/api/v1/plans", "/api/v1/plans?status=waiting", VIEWER);
    let waiting = waiting.as_array().expect("a list");
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    assert_eq!((waiting[0]["id"].as_i64(), waiting[0]["status"].as_str()), (Some(1), Some("waiting")));
    assert!(waiting[0]["blocked_by"][0].as_str().unwrap().starts_with("approval"), "{waiting:#?}");
    let (status, body, _) = daemon.request("GET", "/api/v1/plans", "/api/v1/plans?status=later", Some(VIEWER), None);
    assert_eq!(status, 400, "{body}");
    let held = daemon.get("/api/v1/plans/{id}", "/api/v1/plans/1", VIEWER);
    let ops = held["plan"]["operations"].as_array().expect("the operations the approver sees");
    assert!(ops.iter().any(|o| o["person"] == "7003" && o["op"] == "create"), "{held:#}");

    assert!(daemon.metrics().contains("roster_held_plans 1"), "{}", daemon.metrics());

    let approve = "/api/v1/plans/{id}/approve";
    let reason = json!({ "reason": "new hire, ticket 7" });
    let (status, body, _) =
        daemon.request("POST", approve, "/api/v1/plans/1/approve", Some(OPERATOR), Some(reason.clone()));
    assert_eq!(status, 403, "an operator cannot approve: {body}");
    let (status, body, _) =
        daemon.request("POST", approve, "/api/v1/plans/1/approve", Some(APPROVER), Some(json!({ "reason": " " })));
    assert_eq!(status, 400, "a decision needs its reason: {body}");
    let (status, body, _) =
        daemon.request("POST", approve, "/api/v1/plans/1/approve", Some(APPROVER), Some(reason.clone()));
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["status"].as_str(), body["job"].as_str()), (Some("approved"), Some("approved:1")), "{body}");
    daemon.wait_for("the approved plan to be applied", |d| {
        d.get("/api/v1/plans/{id}", "/api/v1/plans/1", VIEWER)["status"] == "applied"
    });
    let alan = lab.account("7003");
    assert!(lab.group("all-staff").unwrap().values("member").contains(&alan.dn), "the approved membership landed");

    assert!(daemon.metrics().contains("roster_held_plans 0"), "{}", daemon.metrics());
    let (status, body, _) = daemon.request("POST", approve, "/api/v1/plans/1/approve", Some(APPROVER), Some(reason));
    assert_eq!(status, 409, "decided once: {body}");
    let (status, body, _) = daemon.request(
        "POST",
        "/api/v1/plans/{id}/reject",
        "/api/v1/plans/9/reject",
        Some(APPROVER),
        Some(json!({ "reason": "no" })),
    );
    assert_eq!(status, 404, "{body}");
    let trail = daemon.get("/api/v1/audit", "/api/v1/audit", VIEWER);
    assert!(
        trail.as_array().unwrap().iter().any(|e| e["kind"] == "approve" && e["actor"] == "api:boss"),
        "the decision and its author are in the audit trail: {trail:#}"
    );
}

/// Two daemons on one PostgreSQL store. Exactly one leads (`/ready`, `/metrics`); the standby
/// serves reads, refuses triggers with 503, and runs nothing, so a triggered job runs once. The
/// leader is then killed (SIGKILL, with its job) in the middle of an apply: the directory frozen
/// (SIGSTOP) as soon as it shows the run at work, so that some creates landed, some were sent
/// without an answer, and the rest were never sent. The standby takes the lead, runs the
/// interrupted job again from the store's queue, and the directory ends with one account per
/// person, each recorded as created (or, for a create whose answer was lost, adopted) exactly
/// once.
#[test]
fn a_standby_takes_over_from_a_killed_leader_and_its_run_converges_without_doubles() {
    const JOINERS: usize = 150;
    let lab = Lab::start_on_postgres();
    let hr = two_people();
    lab.export(&hr);
    let jobs = format!(
        "leader_retry = 1\n{}[[serve.token]]\nname = \"cab\"\nrole = \"approver\"\nsha256 = \"{}\"\n",
        manual_job(),
        sha256(APPROVER)
    );
    lab.write_config(&serve_config(&lab, &jobs));
    let mut first = Daemon::start(&lab);
    let second = Daemon::start(&lab);

    let (status, ready, _) = first.request("GET", "/ready", "/ready", None, None);
    assert_eq!(
        (status, ready["status"].as_str(), ready["role"].as_str()),
        (200, Some("ready"), Some("leader")),
        "{ready}"
    );
    let (status, ready, _) = second.request("GET", "/ready", "/ready", None, None);
    assert_eq!(
        (status, ready["status"].as_str(), ready["role"].as_str()),
        (503, Some("standby"), Some("standby")),
        "{ready}"
    );
    assert!(first.metrics().contains("roster_leader 1"), "{}", first.metrics());
    assert!(second.metrics().contains("roster_leader 0"), "{}", second.metrics());
    let (status, refused) = second.trigger("hr", OPERATOR);
    assert_eq!(status, 503, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("standby"), "{refused}");
    let decision = Some(json!({ "reason": "checked" }));
    let (status, refused, _) =
        second.request("POST", "/api/v1/plans/{id}/approve", "/api/v1/plans/1/approve", Some(APPROVER), decision);
    assert_eq!(status, 503, "an approval on the standby: {refused}");
    assert!(refused["error"].as_str().unwrap().contains("standby"), "{refused}");

    // A job triggered on the leader runs once, there; the standby reads its run from the store.
    let (status, answer) = first.trigger("hr", OPERATOR);
    assert_eq!(status, 202, "{answer}");
    first.wait_for("the job to finish", |d| d.job("hr")["last"]["outcome"].is_string());
    assert_eq!(first.job("hr")["last"]["outcome"], "success", "{}", first.log());
    assert!(second.job("hr")["last"].is_null(), "the standby ran the job: {}", second.job("hr"));
    let runs = second.get("/api/v1/runs", "/api/v1/runs?limit=50", VIEWER);
    let applied = runs.as_array().unwrap().iter().filter(|r| r["command"] == "run").count();
    assert_eq!(applied, 1, "one run of the job: {runs:#}");

    // Day two: many joiners. The leader dies in the middle of applying them.
    let mut hr = hr;
    for i in 0..JOINERS {
        hr.add(Worker::new(&format!("{}", 8000 + i), "Joiner", &format!("Number{i}"), ["Sales", "Legal"][i % 2]));
    }
    lab.export(&hr);
    let accounts = || lab.search(support::PEOPLE, ldap3::Scope::Subtree, "(employeeNumber=*)").len();
    let (status, answer) = first.trigger("hr", OPERATOR);
    assert_eq!(status, 202, "{answer}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while accounts() < 2 + 20 {
        assert!(Instant::now() < deadline, "the run never got going; log:\n{}", first.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let slapd = lab.ldap.running_pid().expect("slapd's pid").to_string();
    signal("STOP", &slapd);
    assert!(
        first.job("hr")["running"].is_object(),
        "the run finished before it could be interrupted: {}",
        first.job("hr")
    );
    // A child is listed under the thread that started it.
    let job_process: String = std::fs::read_dir(format!("/proc/{}/task", first.child.id()))
        .expect("the leader's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string();
    assert!(!job_process.is_empty() && !job_process.contains(' '), "the leader runs one job process: {job_process:?}");
    signal("KILL", &first.child.id().to_string());
    signal("KILL", &job_process);
    let killed = Instant::now();
    let _ = first.wait_exit();
    signal("CONT", &slapd);

    second.wait_for("the standby to take the lead", |d| d.request("GET", "/ready", "/ready", None, None).0 == 200);
    eprintln!("the standby took the lead {:.1} s after the leader was killed", killed.elapsed().as_secs_f64());
    assert!(second.metrics().contains("roster_leader 1"), "{}", second.metrics());
    second.wait_for("the interrupted job to run again", |d| d.job("hr")["last"]["outcome"].is_string());
    let job = second.job("hr");
    assert_eq!(job["last"]["outcome"], "success", "{job}\n{}", second.log());
    assert_eq!(job["last"]["actor"], "api:ops", "the job kept who asked for it: {job}");

    // One account per person, and one create (or adoption) recorded for each.
    assert_eq!(accounts(), 2 + JOINERS, "{}", second.log());
    for i in 0..JOINERS {
        let key = format!("{}", 8000 + i);
        assert_eq!(lab.accounts(&key).len(), 1, "person {key}");
    }
    let postgres = lab.postgres.as_ref().expect("the store's server");
    let recorded = postgres
        .psql(
            "SELECT person, count(*) FROM audit WHERE kind IN ('create', 'adopt') AND outcome = 'done' \
             GROUP BY person HAVING count(*) <> 1",
        )
        .expect("counting the creates");
    assert_eq!(recorded.trim(), "", "persons created or adopted other than once (person|count)");
    let done = postgres
        .psql("SELECT count(DISTINCT person) FROM audit WHERE kind IN ('create', 'adopt') AND outcome = 'done'")
        .expect("counting the persons created");
    assert_eq!(done.trim(), (2 + JOINERS).to_string());
    // The killed run was cut off mid-apply: twenty accounts and more had landed in the directory,
    // and its operations were sent with no outcome recorded (outcomes are recorded by batch).
    let killed_run = postgres
        .psql(
            "SELECT a.outcome, count(*) FROM audit a JOIN runs r ON r.id = a.run WHERE r.status = 'running' \
             GROUP BY a.outcome ORDER BY a.outcome",
        )
        .expect("the killed run's outcomes");
    assert!(killed_run.contains("intent|"), "outcome|count:\n{killed_run}");
    let runs = postgres.psql("SELECT status FROM runs WHERE command = 'run' ORDER BY id").expect("the runs");
    assert_eq!(
        runs.lines().collect::<Vec<_>>(),
        ["success", "running", "success"],
        "day one, the killed run, its rerun"
    );
    let queue = postgres.psql("SELECT count(*) FROM job_queue").expect("the queue");
    assert_eq!(queue.trim(), "0", "the store's queue is empty once the job has run");
    lab.assert_nothing_to_do(AS_OF);
}

fn signal(name: &str, pid: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), pid]).status().expect("running kill");
    assert!(status.success(), "kill -{name} {pid}");
}
