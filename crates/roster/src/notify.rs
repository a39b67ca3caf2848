//! Notifications: signed webhooks for what a run did (joiner created, leaver disabled, run failed,
//! plan held), sent by the run itself after its outcomes are recorded. A webhook that cannot be
//! reached does not fail the run: it is retried a few times, then logged. See
//! `docs/notifications.md` for the event shape and how a receiver checks the signature.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use roster_core::config::{NotifyConfig, NotifyEvent, WebhookConfig};
use roster_core::plan::{Action, SafetyViolation};
use roster_store::{AuditQuery, RunId};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::Sha256;

use crate::run::Fresh;

/// Attempts per event and webhook; the waits between them double from [`FIRST_BACKOFF`].
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// One event, as POSTed (JSON). Never a secret.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: NotifyEvent,
    /// Unique per event (also the `Roster-Delivery` header): a receiver drops one it has seen.
    pub id: String,
    /// The run's id in the store; absent for a run that failed before it was recorded (a source
    /// or target that could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `run_failed`: how many operations failed or were skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    /// `run_failed`: the error that ended the run, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `plan_held`: the safety limits the plan exceeds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
}

impl Event {
    fn new(kind: NotifyEvent, run: Option<RunId>) -> Result<Event> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the system's random source failed: {e}"))?;
        Ok(Event {
            kind,
            id: hex(&bytes),
            run: run.map(|r| r.0),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            person: None,
            target: None,
            dn: None,
            login: None,
            reason: None,
            failed: None,
            error: None,
            violations: Vec::new(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Roster-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`.
pub fn signature(key: &[u8], t: i64, body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).context("webhook secret")?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("t={t},v1={}", hex(&mac.finalize().into_bytes())))
}

/// `plan_held`: the plan was blocked by these limits and nothing was applied.
pub async fn plan_held(fresh: &Fresh, run: RunId, blocking: &[&SafetyViolation]) {
    if fresh.loaded.settings.notify.webhook.is_empty() {
        return;
    }
    let event = Event::new(NotifyEvent::PlanHeld, Some(run)).map(|mut e| {
        e.reason = Some("blocked by safety limits: nothing was applied".to_string());
        e.violations = blocking.iter().map(|v| v.message.clone()).collect();
        e
    });
    match event {
        Ok(e) => send(&fresh.loaded.settings.notify, &fresh.loaded.config_dir, vec![e]).await,
        Err(e) => eprintln!("notify: {e:#}"),
    }
}

/// After a run's outcomes are recorded: `joiner_created` for each create that landed,
/// `leaver_disabled` for each leaver's disable that landed (read back from the store, so nothing is
/// told that was not recorded), and `run_failed` when operations failed or `error` ended the run.
pub async fn after_run(fresh: &Fresh, run: RunId, failed: u64, error: Option<String>) {
    if fresh.loaded.settings.notify.webhook.is_empty() {
        return;
    }
    match events_of(fresh, run, failed, error).await {
        Ok(events) => send(&fresh.loaded.settings.notify, &fresh.loaded.config_dir, events).await,
        Err(e) => eprintln!("notify: collecting the events of run {run}: {e:#}"),
    }
}

async fn events_of(fresh: &Fresh, run: RunId, failed: u64, error: Option<String>) -> Result<Vec<Event>> {
    let query = AuditQuery { run: Some(run), limit: u32::MAX, ..AuditQuery::default() };
    let entries = fresh.store.audit(&query).await.context("reading the run's outcomes")?;
    let mut events = Vec::new();
    for entry in entries.iter().filter(|e| e.outcome == "done") {
        let Some(op) = fresh.plan.operations.get(entry.op_id) else { continue };
        let kind = match &op.action {
            Action::Create { .. } => NotifyEvent::JoinerCreated,
            Action::Disable { .. } if op.reason.starts_with("leaver") => NotifyEvent::LeaverDisabled,
            _ => continue,
        };
        let mut event = Event::new(kind, Some(run))?;
        event.login = op
            .person
            .as_ref()
            .and_then(|p| fresh.plan.person_updates.iter().find(|u| &u.key == p))
            .and_then(|u| u.login.clone());
        event.person = op.person.clone();
        event.target = Some(op.target.clone());
        event.dn = Some(op.action.dn().to_string());
        event.reason = Some(op.reason.clone());
        events.push(event);
    }
    if failed > 0 || error.is_some() {
        let mut event = Event::new(NotifyEvent::RunFailed, Some(run))?;
        event.failed = Some(failed);
        event.error = error;
        events.push(event);
    }
    Ok(events)
}

/// `run_failed` for a run that ended with an error before it applied anything (reading a source,
/// connecting to a target): there is no run in the store yet.
pub async fn run_errored(notify: &NotifyConfig, config_dir: &Path, error: &anyhow::Error) {
    if notify.webhook.is_empty() {
        return;
    }
    match Event::new(NotifyEvent::RunFailed, None) {
        Ok(mut event) => {
            event.error = Some(format!("{error:#}"));
            send(notify, config_dir, vec![event]).await;
        }
        Err(e) => eprintln!("notify: {e:#}"),
    }
}

/// Sends each event to every webhook that takes it. Failures are logged, never returned.
async fn send(notify: &NotifyConfig, config_dir: &Path, events: Vec<Event>) {
    for hook in &notify.webhook {
        let mine: Vec<&Event> = events.iter().filter(|e| hook.events.contains(&e.kind)).collect();
        if mine.is_empty() {
            continue;
        }
        if let Err(e) = send_to(hook, config_dir, &mine).await {
            eprintln!("notify: webhook {}: {e:#}", hook.name);
            tracing::warn!(webhook = hook.name.as_str(), "notification not delivered: {e:#}");
        }
    }
}

async fn send_to(hook: &WebhookConfig, config_dir: &Path, events: &[&Event]) -> Result<()> {
    let key = crate::secrets::resolve(&hook.secret, config_dir)?;
    let timeout = Duration::from_secs(hook.timeout_seconds);
    let client = roster_connectors::http::client(&format!("webhook {}", hook.name), &hook.tls, config_dir, timeout)
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut undelivered = Vec::new();
    for event in events {
        if let Err(e) = post(&client, hook, key.expose_secret().as_bytes(), event).await {
            undelivered.push(format!("{} {}: {e:#}", event.kind.as_str(), event.id));
        }
    }
    if !undelivered.is_empty() {
        bail!("{} event(s) not delivered: {}", undelivered.len(), undelivered.join("; "));
    }
    Ok(())
}

/// POSTs one event, retrying a connection error, a 429 or a 5xx; any other answer but 2xx ends it.
pub async fn post(client: &reqwest::Client, hook: &WebhookConfig, key: &[u8], event: &Event) -> Result<()> {
    let body = serde_json::to_vec(event).context("serializing the event")?;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let t = chrono::Utc::now().timestamp();
        let answer = client
            .post(&hook.url)
            .header("Content-Type", "application/json")
            .header("Roster-Event", event.kind.as_str())
            .header("Roster-Delivery", &event.id)
            .header("Roster-Signature", signature(key, t, &body)?)
            .body(body.clone())
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                last = format!("the receiver answered {}", r.status());
            }
            Ok(r) => bail!("the receiver answered {} (not retried)", r.status()),
            Err(e) => last = e.without_url().to_string(),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(FIRST_BACKOFF * 2u32.pow(attempt - 1)).await;
        }
    }
    bail!("{ATTEMPTS} attempts failed, the last: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe"; message "1700000000.{}".
        let sig = signature(b"Jefe", 1_700_000_000, b"{}").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1700000000.{}");
        assert_eq!(sig, format!("t=1700000000,v1={}", hex(&mac.finalize().into_bytes())));
        assert_ne!(sig, signature(b"Jefe", 1_700_000_001, b"{}").unwrap());
        assert_ne!(sig, signature(b"other", 1_700_000_000, b"{}").unwrap());
    }
}
