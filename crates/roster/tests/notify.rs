//! Notifications from the real `roster` binary against a real OpenLDAP: signed webhooks (the
//! receiver in `support/receiver.rs` checks every signature independently of roster's code), the
//! initial-password hand-off to a webhook, undelivered events in the audit trail, and mail through
//! a real SMTP server (aiosmtpd, STARTTLS required, its certificate verified).
//!
//! Fails, never skips, when slapd or aiosmtpd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

#[path = "support/receiver.rs"]
mod receiver;

use receiver::{KEY, Receiver, of_kind};
use roster_testkit::SmtpServer;
use serde_json::Value;
use support::{Hr, Lab, Worker};

fn webhook(name: &str, url: &str) -> String {
    format!("\n[[notify.webhook]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"file:webhook.key\"\n")
}

fn lab_with(extra: &str) -> Lab {
    let lab = Lab::start();
    std::fs::write(lab.dir().join("webhook.key"), format!("{KEY}\n")).expect("writing the key file");
    let config = lab.config();
    lab.write_config(&format!("{config}{extra}"));
    lab
}

/// The audit entries of `roster audit show` (JSON), oldest first.
fn audit(lab: &Lab) -> Vec<Value> {
    let shown = lab.roster("2026-03-02", &["audit", "show", "--limit", "10000", "--format", "json"]).expect_code(0);
    let entries: Value = serde_json::from_str(&shown.stdout).unwrap_or_else(|e| panic!("{e}: {shown}"));
    entries.as_array().cloned().unwrap_or_default()
}

/// Joiners created, a plan held by the safety limits (and held for an approver), leavers disabled
/// once allowed, and a run that fails because the directory is down: each told to the webhook,
/// signed, once.
#[test]
fn a_run_tells_the_webhook_what_landed_and_what_failed() {
    let receiver = Receiver::start();
    let mut lab = lab_with(&webhook("ops", &receiver.url));
    let hr = Hr::new((0..5).map(|i| Worker::new(&format!("30{i:02}"), "Ada", &format!("Test{i}"), "Engineering")));
    lab.export(&hr);
    lab.run("2026-03-02");
    let got = receiver.take();
    let joiners = of_kind(&got, "joiner_created");
    assert_eq!(joiners.len(), 5, "{got:#?}");
    assert_eq!(got.len(), 5, "only the joiners: {got:#?}");
    for d in &joiners {
        let e = &d.event;
        assert_eq!(e["type"], "joiner_created");
        assert_eq!(e["id"].as_str(), Some(d.id.as_str()), "the delivery header names the event");
        assert!(e["run"].as_i64().is_some() && e["time"].is_string(), "{e}");
        assert!(e["person"].as_str().is_some_and(|p| p.starts_with("30")), "{e}");
        let dn = e["dn"].as_str().unwrap_or_default();
        assert!(lab.account(e["person"].as_str().unwrap_or_default()).dn.eq_ignore_ascii_case(dn), "{e}");
        assert!(e["login"].is_string() && e["target"].is_string(), "{e}");
        assert!(!e.to_string().contains("password"), "no secret in an event: {e}");
    }
    let mut ids: Vec<&str> = got.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each event has its own id");

    // Four of five gone from a complete export: blocked by the safety limits; then held.
    let full = hr.to_csv();
    let truncated: String = full.lines().take(1 + 1).map(|line| format!("{line}\n")).collect();
    lab.export_text(&truncated);
    lab.roster("2026-03-03", &["run"]).expect_code(3);
    let got = receiver.take();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].kind, "plan_held");
    let violations = got[0].event["violations"].as_array().cloned().unwrap_or_default();
    assert!(!violations.is_empty(), "{:#?}", got[0]);
    assert!(got[0].event.get("held_plan").is_none(), "not held for an approver: {:#?}", got[0]);
    let held = lab.roster("2026-03-03", &["run", "--hold-if-blocked"]).expect_code(3);
    let got = receiver.take();
    assert_eq!(got.len(), 1, "{got:#?}");
    let id = got[0].event["held_plan"].as_i64().unwrap_or_else(|| panic!("no held_plan: {:#?}", got[0]));
    assert!(held.stderr.contains(&format!("Held as plan {id}")), "{held}");
    lab.roster("2026-03-03", &["plans", "show", &id.to_string()]).expect_code(0);

    lab.roster("2026-03-03", &["run", "--allow", "all"]).expect_code(0);
    let got = receiver.take();
    let leavers = of_kind(&got, "leaver_disabled");
    assert_eq!(leavers.len(), 4, "{got:#?}");
    for d in &leavers {
        assert!(d.event["reason"].as_str().is_some_and(|r| r.starts_with("leaver")), "{:#?}", d);
        let person = d.event["person"].as_str().unwrap_or_default();
        assert!(lab.account(person).locked(), "told disabled, but {person} is not locked in the directory");
    }
    assert_eq!(got.len(), 4, "only the leavers: {got:#?}");

    // The directory is down: `run`, `apply` and `reconcile` fail before they plan, and say so.
    lab.ldap.stop().expect("stopping slapd");
    lab.export(&hr);
    for command in [&["run"][..], &["apply"][..], &["reconcile", "--apply"][..]] {
        let failed = lab.roster("2026-03-04", command);
        assert_ne!(failed.code, 0, "{failed}");
        let got = receiver.take();
        assert_eq!(got.len(), 1, "{command:?}: {got:#?}\n{failed}");
        assert_eq!(got[0].kind, "run_failed");
        let e = &got[0].event;
        assert!(e["error"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
        assert!(e.get("run").is_none(), "no run was recorded: {e}");
    }
}

/// A receiver that is down (a webhook, a mail server) does not fail the run: it is retried, then
/// printed and recorded in the audit trail (the event, the receiver, the error; never the body).
#[test]
fn receivers_that_are_down_do_not_fail_the_run_and_are_recorded() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let mail = format!(
        "\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nallow_plaintext = true\nfrom = \"roster@example.org\"\nto = [\"ops@example.org\"]\n"
    );
    let lab = lab_with(&format!("{}{mail}", webhook("ops", &format!("http://127.0.0.1:{port}/nobody-listens"))));
    lab.export(&Hr::new([Worker::new("4000", "Grace", "Hopper", "Engineering")]));
    let run = lab.run("2026-03-02");
    assert!(run.stderr.contains("notify: webhook ops: joiner_created event"), "{run}");
    assert!(run.stderr.contains("notify: smtp: joiner_created event"), "{run}");
    assert_eq!(lab.accounts("4000").len(), 1, "the account was created all the same");
    let entries = audit(&lab);
    let notify: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "notify").collect();
    assert_eq!(notify.len(), 2, "{entries:#?}");
    let receivers: Vec<&str> = notify.iter().filter_map(|e| e["after"]["receiver"].as_str()).collect();
    assert!(receivers.contains(&"webhook ops") && receivers.contains(&"smtp"), "{notify:#?}");
    for e in notify {
        assert_eq!(e["outcome"], "failed");
        assert_eq!(e["person"], "4000");
        assert_eq!(e["after"]["event"], "joiner_created");
        assert!(e["after"]["run"].as_i64().is_some(), "{e}");
        assert!(e["error"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
        assert!(!e.to_string().contains("Hopper"), "no body in the audit entry: {e}");
    }
}

/// `delivery = { webhook = "keys" }`: the joiner's event carries the initial password to that
/// webhook only (not to the other webhook, not in the mail), sent when the password is set. A
/// receiver that fails makes the set_password fail; the next run sets a new password and delivers
/// it, and that password is the one the account has.
#[test]
fn the_initial_password_goes_to_its_webhook_only_and_a_failed_hand_off_is_redone() {
    let keys = Receiver::start();
    let ops = Receiver::start();
    let mut smtp = SmtpServer::start().unwrap_or_else(|e| panic!("could not start aiosmtpd: {e:#}"));
    let mail = format!(
        "\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{}\"\nfrom = \"Roster <roster@example.org>\"\nto = [\"it@example.org\", \"hr@example.org\"]\n",
        smtp.port(),
        smtp.ca_cert().display()
    );
    let only_joiners = format!("{}events = [\"joiner_created\"]\n", webhook("keys", &keys.url));
    let lab = lab_with(&format!("{only_joiners}{}{mail}", webhook("ops", &ops.url)));
    let folder = r#"delivery = { folder = { path = "passwords" } }"#;
    let config = lab.config();
    assert!(config.contains(folder), "{config}");
    lab.write_config(&config.replace(folder, r#"delivery = { webhook = "keys" }"#));

    keys.fail_with(Some(503));
    lab.export(&Hr::new([Worker::new("5000", "Hedy", "Lamarr", "Engineering")]));
    let first = lab.roster("2026-03-02", &["run"]).expect_code(4);
    let refused = keys.take_answered_with_error();
    assert_eq!(refused.len(), 3, "three attempts: {refused:#?}\n{first}");
    let lost = refused[0].event["password"].as_str().expect("the hand-off carries the password").to_string();
    assert!(
        refused.iter().all(|d| d.event["password"] == lost.as_str()),
        "the same password is retried within the operation"
    );
    assert!(keys.take().is_empty());
    assert!(lab.can_bind("5000", &lost), "the password was set before its hand-off failed");
    let told = ops.take();
    assert_eq!(of_kind(&told, "joiner_created").len(), 1, "{told:#?}");
    assert_eq!(of_kind(&told, "run_failed").len(), 1, "{told:#?}");
    assert!(told.iter().all(|d| d.event.get("password").is_none()), "{told:#?}");
    let entries = audit(&lab);
    let set = entries.iter().find(|e| e["kind"] == "set_password").expect("a set_password entry");
    assert_eq!(set["outcome"], "failed", "{set}");
    assert!(set["error"].as_str().is_some_and(|s| s.contains("webhook keys")), "{set}");

    keys.fail_with(None);
    lab.roster("2026-03-02", &["run"]).expect_code(0);
    let got = keys.take();
    assert_eq!(got.len(), 1, "{got:#?}");
    let e = &got[0].event;
    assert_eq!(got[0].kind, "joiner_created");
    assert_eq!(e["person"], "5000");
    assert_eq!(e["login"], "hedy.lamarr");
    let password = e["password"].as_str().expect("the password").to_string();
    assert_ne!(password, lost, "a new password, not the one that was not delivered");
    assert!(lab.can_bind("5000", &password), "the delivered password is the account's");
    assert!(!lab.can_bind("5000", &lost), "the undelivered password no longer works");
    assert!(ops.take().iter().all(|d| d.event.get("password").is_none()));

    let mails = smtp.messages().expect("the mails the server received");
    smtp.stop().expect("stopping aiosmtpd");
    assert!(mails.iter().any(|m| m.contains("Subject: roster joiner created: hedy.lamarr")), "{mails:#?}");
    assert!(mails.iter().any(|m| m.contains("Subject: roster run failed")), "{mails:#?}");
    for m in &mails {
        assert!(m.contains("To: it@example.org, hr@example.org"), "{m}");
        assert!(m.contains("From: Roster <roster@example.org>"), "{m}");
        assert!(!m.contains(&password) && !m.contains(&lost), "a mail never carries a password: {m}");
    }
    let joiner_mail = mails.iter().find(|m| m.contains("joiner created")).expect("the joiner's mail");
    assert!(joiner_mail.contains("type: joiner_created") && joiner_mail.contains("person: 5000"), "{joiner_mail}");
    let entries = audit(&lab);
    for secret in [&password, &lost] {
        let found: Vec<&Value> = entries.iter().filter(|e| e.to_string().contains(secret.as_str())).collect();
        assert!(found.is_empty(), "a password in the audit trail: {found:#?}");
    }
}
