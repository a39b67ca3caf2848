//! Signed webhooks from the real `roster` binary against a real OpenLDAP: the receiver is a local
//! axum server (the user's own system, so a local server is the real thing), which checks every
//! signature with the scheme `docs/notifications.md` documents, written here independently of
//! roster's code.
//!
//! Fails, never skips, when slapd is missing: run `scripts/install-test-deps.sh`.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use support::{Hr, Lab, Worker};

const KEY: &str = "a-webhook-key-shared-with-the-receiver";

/// One verified delivery: the event, and its `Roster-Event` and `Roster-Delivery` headers.
#[derive(Debug, Clone)]
struct Delivery {
    event: Value,
    kind: String,
    id: String,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    /// Refused deliveries (bad signature, stale timestamp), with why.
    refused: Arc<Mutex<Vec<String>>>,
}

/// What a receiver does (`docs/notifications.md`): recompute HMAC-SHA256(key, "<t>.<body>"),
/// compare in constant time, and refuse a timestamp more than five minutes away.
fn verify(headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let header = headers.get("roster-signature").and_then(|v| v.to_str().ok()).ok_or("no Roster-Signature")?;
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_string()),
            _ => {}
        }
    }
    let (t, v1) = (t.ok_or("no t=")?, v1.ok_or("no v1=")?);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
    if (now.as_secs() as i64 - t).abs() > 300 {
        return Err(format!("timestamp {t} is more than 5 minutes away"));
    }
    let expected: Vec<u8> = (0..v1.len() / 2)
        .map(|i| u8::from_str_radix(v1.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("v1 is not hex: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| "the signature does not match".to_string())
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    if let Err(why) = verify(&headers, &body) {
        r.refused.lock().unwrap().push(why);
        return StatusCode::UNAUTHORIZED;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.got.lock().unwrap().push(Delivery { event, kind: header("roster-event"), id: header("roster-delivery") });
    StatusCode::NO_CONTENT
}

/// Starts the receiver on a free loopback port in its own thread; returns it and its URL.
fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let url = format!("http://{}/hooks/roster", listener.local_addr().expect("the listener's address"));
    let state = receiver.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            let app = axum::Router::new().route("/hooks/roster", post(receive)).with_state(state);
            axum::serve(listener, app).await.expect("the receiver");
        });
    });
    (receiver, url)
}

impl Receiver {
    fn take(&self) -> Vec<Delivery> {
        let refused = self.refused.lock().unwrap();
        assert!(refused.is_empty(), "the receiver refused deliveries: {refused:?}");
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

fn of_kind<'a>(got: &'a [Delivery], kind: &str) -> Vec<&'a Delivery> {
    got.iter().filter(|d| d.kind == kind).collect()
}

fn lab_with_webhook(url: &str) -> Lab {
    let lab = Lab::start();
    std::fs::write(lab.dir().join("webhook.key"), format!("{KEY}\n")).expect("writing the key file");
    let config = lab.config();
    lab.write_config(&format!(
        "{config}\n[[notify.webhook]]\nname = \"ops\"\nurl = \"{url}\"\nsecret = \"file:webhook.key\"\n"
    ));
    lab
}

/// Joiners created, a plan held by the safety limits, leavers disabled once allowed, and a run
/// that fails because the directory is down: each told to the webhook, signed, once.
#[test]
fn a_run_tells_the_webhook_what_landed_and_what_failed() {
    let (receiver, url) = start_receiver();
    let mut lab = lab_with_webhook(&url);
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

    // Four of five gone from a complete export: blocked by the safety limits.
    let full = hr.to_csv();
    let truncated: String = full.lines().take(1 + 1).map(|line| format!("{line}\n")).collect();
    lab.export_text(&truncated);
    lab.roster("2026-03-03", &["run"]).expect_code(3);
    let got = receiver.take();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].kind, "plan_held");
    let violations = got[0].event["violations"].as_array().cloned().unwrap_or_default();
    assert!(!violations.is_empty(), "{:#?}", got[0]);

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

    // The directory is down: the run fails and says so.
    lab.ldap.stop().expect("stopping slapd");
    lab.export(&hr);
    let failed = lab.roster("2026-03-04", &["run"]);
    assert_ne!(failed.code, 0, "{failed}");
    let got = receiver.take();
    assert_eq!(got.len(), 1, "{got:#?}\n{failed}");
    assert_eq!(got[0].kind, "run_failed");
    let e = &got[0].event;
    let said_why = e["error"].as_str().is_some_and(|s| !s.is_empty()) || e["failed"].as_u64().is_some_and(|n| n > 0);
    assert!(said_why, "{e}");
}

/// A receiver that is down does not fail the run: it is retried, then logged.
#[test]
fn a_webhook_that_is_down_does_not_fail_the_run() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let lab = lab_with_webhook(&format!("http://127.0.0.1:{port}/nobody-listens"));
    lab.export(&Hr::new([Worker::new("4000", "Grace", "Hopper", "Engineering")]));
    let run = lab.run("2026-03-02");
    assert!(run.stderr.contains("notify: webhook ops: 1 event(s) not delivered"), "{run}");
    assert_eq!(lab.accounts("4000").len(), 1, "the account was created all the same");
}
