//! The web console end to end in a real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver`'s W3C WebDriver protocol), against the real `roster serve` and OpenLDAP: log in
//! with a token, the dashboard with its charts, a run's plan, a person found by search and put on
//! hold through the form (recorded in the audit trail under the console's actor), the audit
//! search; a plan held for approval, approved through the run page's form and then applied by the
//! daemon; and, over plain HTTP, the session cookie's flags, CSRF and roles.
//!
//! Screenshots of every page are kept in `target/console-screenshots/`.
//!
//! Fails, never skips, when chromium, chromedriver or slapd is missing: run
//! `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::{Hr, Lab, Worker};

const AS_OF: &str = "2026-03-02";
const VIEWER: &str = "viewer-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";
const APPROVER: &str = "approver-token-0123456789";

use support::daemon::token_sha256 as sha256;

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `roster serve` on a free port; its base URL and its log.
fn start_daemon(lab: &Lab) -> (Killed, String, Arc<Mutex<String>>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roster"));
    command
        .current_dir(lab.dir())
        .env_remove("ROSTER_CONFIG")
        .env_remove("ROSTER_LOG")
        .env("ROSTER_LDAP_PASSWORD", lab.ldap.admin_password())
        .args(["--config", "roster.toml", "--as-of", AS_OF, "serve"]);
    let (child, base, log) = support::daemon::spawn_serve(command);
    (Killed(child), base, log)
}

/// Just enough of a W3C WebDriver client for this test.
struct Browser {
    http: reqwest::blocking::Client,
    session: String,
    shots: PathBuf,
    _driver: Killed,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting chromedriver: {e}; run scripts/install-test-deps.sh (chromium-driver)")
            });
        let driver = Killed(driver);
        let http = client();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("a browser profile folder");
        let capabilities = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1100", format!("--user-data-dir={}", profile.path().display())]}}}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .and_then(|r| r.json())
            .expect("a WebDriver session");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromium did not start (is Debian's chromium installed?): {answer}"))
            .to_string();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        let shots = target.join("console-screenshots");
        std::fs::create_dir_all(&shots).expect("creating target/console-screenshots");
        Browser { http, session: format!("{base}/session/{session}"), shots, _driver: driver, _profile: profile }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let request = self.http.request(method.parse().unwrap(), &url);
        let request = if method == "GET" { request } else { request.json(&body) };
        let answer: Value = request.send().and_then(|r| r.json()).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(answer["value"].get("error").is_none(), "{method} {path}: {answer}");
        answer["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url}));
    }

    fn element(&self, css: &str) -> String {
        let found = self.call("POST", "/element", json!({"using": "css selector", "value": css}));
        found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element id").to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css);
        self.call("POST", &format!("/element/{element}/value"), json!({"text": text}));
    }

    /// Clicks a link or a form's button and waits for the page it leads to: until the clicked
    /// element is gone with the old page (WebDriver's "stale element reference"). The deadline
    /// only keeps a broken page from hanging the test.
    fn click(&self, css: &str) {
        let element = self.element(css);
        self.call("POST", &format!("/element/{element}/click"), json!({}));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let url = format!("{}/element/{element}/name", self.session);
            let answer: Value =
                self.http.get(&url).send().and_then(|r| r.json()).expect("asking for the clicked element");
            if answer["value"]["error"] == "stale element reference" {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "clicking {css} led to no new page: {answer}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn source(&self) -> String {
        self.call("GET", "/source", Value::Null).as_str().expect("the page source").to_string()
    }

    fn url(&self) -> String {
        self.call("GET", "/url", Value::Null).as_str().expect("the url").to_string()
    }

    fn screenshot(&self, name: &str) {
        let png = self.call("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("base64")).expect("a PNG");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).expect("saving the screenshot");
    }

    fn cookie(&self, name: &str) -> Value {
        self.call("GET", &format!("/cookie/{name}"), Value::Null)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.session).send();
    }
}

fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("an HTTP client")
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[test]
fn the_console_in_chromium_shows_runs_and_persons_and_puts_a_person_on_hold() {
    let lab = Lab::start();
    lab.export(&Hr::new([
        Worker::new("7001", "Ada", "Lovelace", "Engineering"),
        Worker::new("7002", "Grace", "Hopper", "Engineering"),
    ]));
    lab.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\n\
         [[serve.token]]\nname = \"helpdesk\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [[serve.token]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{}\"\n",
        lab.config(),
        sha256(VIEWER),
        sha256(OPERATOR)
    ));
    lab.run(AS_OF).expect_code(0);
    let (_daemon, base, log) = start_daemon(&lab);
    let browser = Browser::start();

    browser.open(&format!("{base}/"));
    assert!(browser.url().ends_with("/login"), "without a session the console asks to log in: {}", browser.url());
    browser.screenshot("01-login");
    browser.type_into("#token", OPERATOR);
    browser.click("#login");
    let dashboard = browser.source();
    assert!(dashboard.contains("<h1>Dashboard</h1>"), "{dashboard}\nlog:\n{}", log.lock().unwrap());
    assert!(dashboard.contains("ops (operator)"));
    assert!(dashboard.contains("<svg"), "the dashboard draws its charts");
    assert!(
        dashboard.contains("2026-03-02: joiners 2, movers 0, leavers 0"),
        "the first run's two joiners: {dashboard}"
    );
    browser.screenshot("02-dashboard");

    let cookie = browser.cookie("roster_session");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    let session = cookie["value"].as_str().expect("a session id").to_string();
    assert!(!session.contains(OPERATOR), "the cookie holds a session id, not the token");

    browser.open(&format!("{base}/runs/1"));
    let run = browser.source();
    assert!(run.contains("<h1>Run 1</h1>") && run.contains("<h3>create (2)</h3>"), "{run}");
    assert!(run.contains("href=\"/persons/7001\""), "{run}");
    browser.screenshot("03-run");

    browser.open(&format!("{base}/persons?q=lovelace"));
    let found = browser.source();
    assert!(found.contains("href=\"/persons/7001\"") && !found.contains("href=\"/persons/7002\""), "{found}");
    browser.click("a[href='/persons/7001']");
    assert!(browser.source().contains("Not on hold."));
    browser.type_into("#reason", "investigation <HR-42>");
    browser.click("form[action='/persons/7001/hold'] button");
    let person = browser.source();
    assert!(person.contains("On hold: investigation &lt;HR-42&gt;"), "the hold, escaped: {person}");
    assert!(person.contains("hold done"), "the hold in the history timeline: {person}");
    assert!(
        person.contains("<pre class=\"explain\">Person 7001 (login ada.lovelace)")
            && person.contains("ON HOLD until lifted: investigation &lt;HR-42&gt;"),
        "the explanation, escaped, says the person is held: {person}"
    );
    browser.screenshot("04-person-on-hold");

    browser.open(&format!("{base}/audit"));
    browser.type_into("#audit-person", "7001");
    browser.click("#search");
    let audit = browser.source();
    assert!(audit.contains("console:ops"), "the hold is recorded under the console's actor: {audit}");
    assert!(audit.contains("<td>hold</td>") && audit.contains("<td>create</td>"), "{audit}");
    browser.screenshot("05-audit");
    for shot in ["01-login", "02-dashboard", "03-run", "04-person-on-hold", "05-audit"] {
        assert!(browser.shots.join(format!("{shot}.png")).is_file(), "{shot}.png kept");
    }

    // Over plain HTTP: a form without the session's CSRF token is refused, and a viewer cannot hold.
    let http = client();
    let with = |cookie: &str| format!("roster_session={cookie}");
    let refused = http
        .post(format!("{base}/persons/7002/hold"))
        .header("cookie", with(&session))
        .form(&[("csrf", "not-the-token"), ("reason", "x")])
        .send()
        .expect("a POST");
    assert_eq!(refused.status().as_u16(), 403);
    let login = http.post(format!("{base}/login")).form(&[("token", VIEWER)]).send().expect("a login");
    assert_eq!(login.status().as_u16(), 303);
    let set = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains(VIEWER), "{set}");
    let viewer = set.split(';').next().unwrap().trim_start_matches("roster_session=").to_string();
    let page = http.get(format!("{base}/persons/7002")).header("cookie", with(&viewer)).send().unwrap().text().unwrap();
    assert!(!page.contains("Put on hold"), "a viewer is offered no hold form");
    let forbidden = http
        .post(format!("{base}/persons/7002/hold"))
        .header("cookie", with(&viewer))
        .form(&[("csrf", csrf_of(&page).as_str()), ("reason", "x")])
        .send()
        .unwrap();
    assert_eq!(forbidden.status().as_u16(), 403, "a viewer cannot put a person on hold");
    let bad = http.post(format!("{base}/login")).form(&[("token", "not-a-token")]).send().unwrap();
    assert_eq!(bad.status().as_u16(), 401);
}

/// A plan held because it changes a group that needs approval: an approver opens the blocked run,
/// gives a reason and approves; the daemon applies what was approved, the accounts and the
/// membership land in the directory, and the decision is in the audit trail under the approver.
#[test]
fn a_held_plan_is_approved_in_chromium_and_then_applied() {
    let lab = Lab::start();
    lab.export(&Hr::new([Worker::new("7101", "Ada", "Lovelace", "Engineering")]));
    lab.write_config(&format!(
        "{}\n[approval]\ngroups = [\"cn=all-staff,ou=groups,dc=example,dc=org\"]\n\
         [serve]\nlisten = \"127.0.0.1:0\"\n\
         [[serve.token]]\nname = \"ciso\"\nrole = \"approver\"\nsha256 = \"{}\"\n",
        lab.config(),
        sha256(APPROVER)
    ));
    let blocked = lab.roster(AS_OF, &["run", "--hold-if-blocked"]).expect_code(3);
    assert!(lab.accounts("7101").is_empty(), "nothing is applied before the approval:\n{blocked}");
    let (_daemon, base, log) = start_daemon(&lab);
    let browser = Browser::start();
    browser.open(&format!("{base}/login"));
    browser.type_into("#token", APPROVER);
    browser.click("#login");
    browser.open(&format!("{base}/runs/1"));
    let run = browser.source();
    assert!(run.contains("<h2>Review</h2>") && run.contains("cn=all-staff"), "the approver sees the plan: {run}");
    browser.screenshot("06-held-plan");
    browser.type_into("form[action='/runs/1/approve'] input[name='reason']", "new hire, ticket HR-7");
    browser.click("form[action='/runs/1/approve'] button");
    let after = browser.source();
    assert!(!after.contains("<h2>Review</h2>"), "a decided plan offers no second decision: {after}");
    browser.screenshot("07-approved");

    let deadline = Instant::now() + Duration::from_secs(60);
    while lab.accounts("7101").is_empty() || lab.groups_of("7101").is_empty() {
        assert!(Instant::now() < deadline, "the approved plan was not applied; daemon log:\n{}", log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lab.groups_of("7101"), ["all-staff", "staff-engineering"]);
    let audit = lab.roster(AS_OF, &["audit", "show"]).expect_code(0);
    assert!(
        audit.stdout.contains("approved by console:ciso: new hire, ticket HR-7"),
        "the approval, its author and reason: {audit}"
    );
}
