//! Notifications: signed webhooks and, optionally, mail for what a run did (joiner created, leaver
//! disabled, run failed, plan held), sent by the run itself after its outcomes are recorded. A
//! receiver that cannot be reached does not fail the run: a webhook is retried a few times, then
//! the failure is printed, logged and recorded in the audit trail. One exception: the initial
//! password handed to a webhook (`delivery = { webhook = "name" }`, [`hand_off`]) is part of its
//! `set_password` operation, which fails when the hand-off does. See `docs/notifications.md`.

mod mail;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use roster_core::config::{NotifyEvent, PasswordDelivery, WebhookConfig};
use roster_core::plan::{Action, Operation};
use roster_store::{AuditQuery, RunId, Store, Undelivered};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Serialize;
use sha2::Sha256;

use crate::run::{Fresh, Loaded};

/// Attempts per event and webhook; the waits between them double from [`FIRST_BACKOFF`].
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// One event, as POSTed (JSON) and mailed (text). Never a secret: the password of a hand-off is
/// added to the webhook's body only, by [`hand_off`].
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
    /// `plan_held`: the safety limits and approval rules the plan exceeds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    /// `plan_held`: the held plan's id (`roster plans show ID`), when it was held for an approver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_plan: Option<i64>,
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
            held_plan: None,
        })
    }

    /// An event about one operation of the plan.
    fn of_operation(kind: NotifyEvent, run: RunId, fresh: &Fresh, op: &Operation) -> Result<Event> {
        let mut event = Event::new(kind, Some(run))?;
        event.login = op
            .person
            .as_ref()
            .and_then(|p| fresh.plan.person_updates.iter().find(|u| &u.key == p))
            .and_then(|u| u.login.clone());
        event.person = op.person.clone();
        event.target = Some(op.target.to_string());
        event.dn = Some(op.action.dn().to_string());
        event.reason = Some(op.reason.to_string());
        Ok(event)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn configured(loaded: &Loaded) -> bool {
    !loaded.settings.notify.webhook.is_empty() || loaded.settings.notify.smtp.is_some()
}

/// The `Roster-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`.
pub fn signature(key: &[u8], t: i64, body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).context("webhook secret")?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("t={t},v1={}", hex(&mac.finalize().into_bytes())))
}

/// `plan_held`: the plan of `run` was blocked by these limits or rules and nothing was applied;
/// `held` is the held plan's id when it waits for an approver.
pub async fn plan_held(loaded: &Loaded, store: &Store, run: RunId, violations: Vec<String>, held: Option<i64>) {
    if !configured(loaded) {
        return;
    }
    let event = Event::new(NotifyEvent::PlanHeld, Some(run)).map(|mut e| {
        e.reason = Some(match held {
            Some(id) => format!("blocked: nothing was applied; held as plan {id} for an approver"),
            None => "blocked: nothing was applied".to_string(),
        });
        e.violations = violations;
        e.held_plan = held;
        e
    });
    match event {
        Ok(e) => send(loaded, Some(store), vec![e], &[]).await,
        Err(e) => eprintln!("notify: {e:#}"),
    }
}

/// After a run's outcomes are recorded: `joiner_created` for each create that landed,
/// `leaver_disabled` for each leaver's disable that landed (read back from the store, so nothing is
/// told that was not recorded), and `run_failed` when operations failed or `error` ended the run.
/// A webhook that takes a target's password hand-offs was told of that target's joiners when
/// their passwords were set, and is not told again.
pub async fn after_run(fresh: &Fresh, run: RunId, failed: u64, error: Option<String>) {
    if !configured(&fresh.loaded) {
        return;
    }
    match events_of(fresh, run, failed, error).await {
        Ok(events) => {
            let handed_off: Vec<(&str, &str)> = fresh
                .loaded
                .settings
                .targets
                .iter()
                .filter_map(|t| match t.config.password.as_ref().map(|p| &p.delivery) {
                    Some(PasswordDelivery::Webhook(hook)) => Some((t.name(), hook.as_str())),
                    _ => None,
                })
                .collect();
            send(&fresh.loaded, Some(&fresh.store), events, &handed_off).await;
        }
        Err(e) => eprintln!("notify: collecting the events of run {run}: {e:#}"),
    }
}

async fn events_of(fresh: &Fresh, run: RunId, failed: u64, error: Option<String>) -> Result<Vec<Event>> {
    let query = AuditQuery { run: Some(run), limit: u32::MAX, ..AuditQuery::default() };
    let entries = fresh.store.audit(&query).await.context("reading the run's outcomes")?;
    let mut events = Vec::new();
    for entry in entries.iter().rev().filter(|e| e.outcome == "done") {
        let Some(op) = fresh.plan.operations.get(entry.op_id) else { continue };
        let kind = match &op.action {
            Action::Create { .. } if entry.kind == "create" => NotifyEvent::JoinerCreated,
            Action::Disable { .. } if entry.kind == "disable" && op.reason.starts_with("leaver") => {
                NotifyEvent::LeaverDisabled
            }
            _ => continue,
        };
        events.push(Event::of_operation(kind, run, fresh, op)?);
    }
    if failed > 0 || error.is_some() {
        let mut event = Event::new(NotifyEvent::RunFailed, Some(run))?;
        event.failed = Some(failed);
        event.error = error;
        events.push(event);
    }
    Ok(events)
}

/// Sends `run_failed` when a command that applies (`run`, `apply`, `reconcile`) ends with an
/// error before it planned: a source or target that could not be read. Keeps what it needs of the
/// configuration before the planning consumes it.
pub struct BeforePlanning(Option<Loaded>);

impl BeforePlanning {
    pub fn of(loaded: &Loaded) -> BeforePlanning {
        BeforePlanning(configured(loaded).then(|| loaded.clone()))
    }

    /// `planned` as it is, after telling the receivers when it is an error.
    pub async fn told<T>(self, planned: Result<T>) -> Result<T> {
        if let (Err(error), Some(loaded)) = (&planned, &self.0) {
            match Event::new(NotifyEvent::RunFailed, None) {
                Ok(mut event) => {
                    event.error = Some(format!("{error:#}"));
                    send(loaded, None, vec![event], &[]).await;
                }
                Err(e) => eprintln!("notify: {e:#}"),
            }
        }
        planned
    }
}

/// The initial-password hand-off: the `joiner_created` event of the account `op` set a password
/// for, with `password`, POSTed to webhook `hook` only. An error means it was not delivered (the
/// caller fails the operation, and the next run sets a new password); it never holds the body.
pub async fn hand_off(fresh: &Fresh, run: RunId, op: &Operation, hook: &str, password: &SecretString) -> Result<()> {
    let Some(webhook) = fresh.loaded.settings.notify.webhook.iter().find(|h| h.name == hook) else {
        bail!("no [[notify.webhook]] named {hook:?}");
    };
    let event = Event::of_operation(NotifyEvent::JoinerCreated, run, fresh, op)?;
    let mut body = serde_json::to_value(&event).context("serializing the event")?;
    if let Some(fields) = body.as_object_mut() {
        fields.insert("password".to_string(), password.expose_secret().into());
    }
    let body = SecretSlice::from(serde_json::to_vec(&body).context("serializing the event")?);
    let key = crate::secrets::resolve(&webhook.secret, &fresh.loaded.config_dir)?;
    let client = client(webhook, &fresh.loaded)?;
    post(&client, webhook, key.expose_secret().as_bytes(), &event, body.expose_secret())
        .await
        .with_context(|| format!("joiner_created event to webhook {hook}"))
}

fn client(hook: &WebhookConfig, loaded: &Loaded) -> Result<reqwest::Client> {
    let timeout = Duration::from_secs(hook.timeout_seconds);
    roster_connectors::http::client(&format!("webhook {}", hook.name), &hook.tls, &loaded.config_dir, timeout)
        .map_err(|e| anyhow::anyhow!(e))
}

/// Sends each event to every receiver that takes it (but not a target's joiners to the webhook
/// that took their password hand-offs: `handed_off` holds (target, webhook) pairs). Failures are
/// printed, logged, and recorded in the audit trail, never returned.
async fn send(loaded: &Loaded, store: Option<&Store>, events: Vec<Event>, handed_off: &[(&str, &str)]) {
    let mut undelivered = Vec::new();
    for hook in &loaded.settings.notify.webhook {
        let told_already = |e: &Event| {
            e.kind == NotifyEvent::JoinerCreated
                && handed_off.iter().any(|(t, h)| *h == hook.name && e.target.as_deref() == Some(*t))
        };
        let mine: Vec<&Event> = events.iter().filter(|e| hook.events.contains(&e.kind) && !told_already(e)).collect();
        if mine.is_empty() {
            continue;
        }
        let receiver = format!("webhook {}", hook.name);
        match webhook_key_and_client(hook, loaded) {
            Ok((key, client)) => {
                for event in mine {
                    let sent = match serde_json::to_vec(event) {
                        Ok(body) => post(&client, hook, key.expose_secret().as_bytes(), event, &body).await,
                        Err(e) => Err(e.into()),
                    };
                    if let Err(e) = sent {
                        undelivered.push(undelivered_of(event, &receiver, &e));
                    }
                }
            }
            Err(e) => undelivered.extend(mine.into_iter().map(|event| undelivered_of(event, &receiver, &e))),
        }
    }
    if let Some(smtp) = &loaded.settings.notify.smtp {
        let mine: Vec<&Event> = events.iter().filter(|e| smtp.events.contains(&e.kind)).collect();
        if !mine.is_empty() {
            undelivered.extend(mail::send(smtp, &loaded.config_dir, &mine).await);
        }
    }
    if undelivered.is_empty() {
        return;
    }
    for u in &undelivered {
        eprintln!("notify: {}: {} event {} not delivered: {}", u.receiver, u.event, u.delivery, u.error);
        tracing::warn!(
            receiver = u.receiver.as_str(),
            event = u.event.as_str(),
            "notification not delivered: {}",
            u.error
        );
    }
    if let Err(e) = record(loaded, store, &undelivered).await {
        eprintln!("notify: recording the undelivered notifications in the audit trail: {e:#}");
    }
}

fn webhook_key_and_client(hook: &WebhookConfig, loaded: &Loaded) -> Result<(SecretString, reqwest::Client)> {
    let key = crate::secrets::resolve(&hook.secret, &loaded.config_dir)?;
    Ok((key, client(hook, loaded)?))
}

fn undelivered_of(event: &Event, receiver: &str, error: &anyhow::Error) -> Undelivered {
    Undelivered {
        event: event.kind.as_str().to_string(),
        delivery: event.id.clone(),
        receiver: receiver.to_string(),
        about: event.run.map(RunId),
        person: event.person.clone(),
        error: format!("{error:#}"),
    }
}

async fn record(loaded: &Loaded, store: Option<&Store>, undelivered: &[Undelivered]) -> Result<()> {
    let opened;
    let store = match store {
        Some(store) => store,
        None => {
            opened = crate::audit::open_store(&loaded.settings, &loaded.config_dir).await?;
            &opened
        }
    };
    let start = roster_store::RunStart {
        command: "notify".to_string(),
        as_of: loaded.as_of,
        config_hash: loaded.settings.hash.clone(),
        actor: crate::run::actor(),
        overrides: Vec::new(),
        plan_json: None,
    };
    store.record_undelivered(&start, undelivered).await?;
    Ok(())
}

/// POSTs one event's `body`, retrying a connection error, a 429 or a 5xx; any other answer but
/// 2xx ends it. An error never holds the body.
async fn post(client: &reqwest::Client, hook: &WebhookConfig, key: &[u8], event: &Event, body: &[u8]) -> Result<()> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let t = chrono::Utc::now().timestamp();
        let answer = client
            .post(&hook.url)
            .header("Content-Type", "application/json")
            .header("Roster-Event", event.kind.as_str())
            .header("Roster-Delivery", &event.id)
            .header("Roster-Signature", signature(key, t, body)?)
            .body(body.to_vec())
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                last = format!("the receiver answered {}", roster_connectors::http::status_text(r.status().as_u16()));
            }
            Ok(r) => bail!(
                "the receiver answered {} (not retried)",
                roster_connectors::http::status_text(r.status().as_u16())
            ),
            Err(e) => last = roster_connectors::http::describe(&e),
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
        let sig = signature(b"Jefe", 1_700_000_000, b"{}").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1700000000.{}");
        assert_eq!(sig, format!("t=1700000000,v1={}", hex(&mac.finalize().into_bytes())));
        assert_ne!(sig, signature(b"Jefe", 1_700_000_001, b"{}").unwrap());
        assert_ne!(sig, signature(b"other", 1_700_000_000, b"{}").unwrap());
    }
}
