//! A webhook receiver for the notification tests: a local axum server (the user's own system, so a
//! local server is the real thing) that checks every signature with the scheme
//! `docs/notifications.md` documents, written here independently of roster's code, and keeps what
//! it was sent. It can be told to answer with an error, to see roster handle a receiver that fails.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The HMAC key the receivers share with roster (written to `webhook.key` by the tests).
pub const KEY: &str = "a-webhook-key-shared-with-the-receiver";

/// One verified delivery: the event, and its `Roster-Event` and `Roster-Delivery` headers.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Value,
    pub kind: String,
    pub id: String,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    /// Deliveries answered with `failing` instead of taken (kept: they show what was sent).
    answered_with_error: Arc<Mutex<Vec<Delivery>>>,
    /// Refused deliveries (bad signature, stale timestamp), with why.
    refused: Arc<Mutex<Vec<String>>>,
    failing: Arc<Mutex<Option<StatusCode>>>,
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
    let delivery = Delivery { event, kind: header("roster-event"), id: header("roster-delivery") };
    if let Some(status) = *r.failing.lock().unwrap() {
        r.answered_with_error.lock().unwrap().push(delivery);
        return status;
    }
    r.got.lock().unwrap().push(delivery);
    StatusCode::NO_CONTENT
}

impl Receiver {
    /// Starts a receiver on a free loopback port in its own thread, at `<url>` = `http://127.0.0.1:PORT/hooks/roster`.
    pub fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let url = format!("http://{}/hooks/roster", listener.local_addr().expect("the listener's address"));
        let receiver = Receiver {
            url,
            got: Arc::default(),
            answered_with_error: Arc::default(),
            refused: Arc::default(),
            failing: Arc::default(),
        };
        let state = receiver.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let app = axum::Router::new().route("/hooks/roster", post(receive)).with_state(state);
                axum::serve(listener, app).await.expect("the receiver");
            });
        });
        receiver
    }

    /// From now on, answer every (correctly signed) delivery with `status`; `None`: take them.
    pub fn fail_with(&self, status: Option<u16>) {
        *self.failing.lock().unwrap() = status.map(|s| StatusCode::from_u16(s).expect("an HTTP status"));
    }

    /// The deliveries taken since the last call; panics if any was refused (a bad signature).
    pub fn take(&self) -> Vec<Delivery> {
        let refused = self.refused.lock().unwrap();
        assert!(refused.is_empty(), "the receiver refused deliveries: {refused:?}");
        std::mem::take(&mut *self.got.lock().unwrap())
    }

    /// The deliveries answered with an error since the last call.
    pub fn take_answered_with_error(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.answered_with_error.lock().unwrap())
    }
}

pub fn of_kind<'a>(got: &'a [Delivery], kind: &str) -> Vec<&'a Delivery> {
    got.iter().filter(|d| d.kind == kind).collect()
}
