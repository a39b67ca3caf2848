//! `[notify.smtp]`: one plain-text mail per event, through the configured mail server, over
//! STARTTLS or TLS with the certificate verified (plain SMTP only to a loopback relay). A mail never
//! carries a password: the events hold none.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use roster_core::config::{SmtpConfig, SmtpTls};
use roster_store::{RunId, Undelivered};
use secrecy::ExposeSecret;

use super::Event;

const RECEIVER: &str = "smtp";

/// Mails each event; returns those that were not sent, with why.
pub(super) async fn send(smtp: &SmtpConfig, config_dir: &Path, events: &[&Event]) -> Vec<Undelivered> {
    let undelivered = |event: &Event, error: &anyhow::Error| Undelivered {
        event: event.kind.as_str().to_string(),
        delivery: event.id.clone(),
        receiver: RECEIVER.to_string(),
        about: event.run.map(RunId),
        person: event.person.clone(),
        error: format!("{error:#}"),
    };
    let transport = match transport(smtp, config_dir) {
        Ok(t) => t,
        Err(e) => return events.iter().map(|event| undelivered(event, &e)).collect(),
    };
    let mut failed = Vec::new();
    for event in events {
        let sent = match message(smtp, event) {
            Ok(message) => {
                transport.send(message).await.map(|_| ()).with_context(|| format!("the mail server {}", smtp.host))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            failed.push(undelivered(event, &e));
        }
    }
    failed
}

fn transport(smtp: &SmtpConfig, config_dir: &Path) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let tls = if smtp.allow_plaintext {
        Tls::None
    } else {
        let mut params = TlsParameters::builder(smtp.host.clone());
        if let Some(file) = &smtp.ca_file {
            let path = config_dir.join(file);
            let pem = std::fs::read(&path).with_context(|| format!("notify.smtp.ca_file {}", path.display()))?;
            let ca = Certificate::from_pem(&pem).with_context(|| format!("notify.smtp.ca_file {}", path.display()))?;
            params = params.add_root_certificate(ca);
        }
        let params = params.build_rustls().context("setting up TLS to the mail server")?;
        match smtp.tls {
            SmtpTls::Starttls => Tls::Required(params),
            SmtpTls::Tls => Tls::Wrapper(params),
        }
    };
    let port = smtp.port.unwrap_or(match (smtp.allow_plaintext, smtp.tls) {
        (true, _) => 25,
        (false, SmtpTls::Starttls) => 587,
        (false, SmtpTls::Tls) => 465,
    });
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(smtp.timeout_seconds)));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        let password = crate::secrets::resolve(password, config_dir)?;
        builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_string()));
    }
    Ok(builder.build())
}

fn message(smtp: &SmtpConfig, event: &Event) -> Result<Message> {
    let mailbox =
        |text: &str| text.parse::<Mailbox>().with_context(|| format!("{text:?} is not a mail address (notify.smtp)"));
    let mut builder = Message::builder().from(mailbox(&smtp.from)?).header(ContentType::TEXT_PLAIN);
    for to in &smtp.to {
        builder = builder.to(mailbox(to)?);
    }
    builder
        .subject(subject(event))
        .message_id(Some(format!("<{}@roster>", event.id)))
        .body(text(event))
        .context("composing the mail")
}

fn subject(event: &Event) -> String {
    let about = match (&event.login, &event.person, event.run) {
        (Some(login), _, _) => format!(": {login}"),
        (None, Some(person), _) => format!(": {person}"),
        (None, None, Some(run)) => format!(": run #{run}"),
        (None, None, None) => String::new(),
    };
    format!("roster {}{about}", event.kind.as_str().replace('_', " "))
}

/// The event as `field: value` lines, in the order of its JSON.
fn text(event: &Event) -> String {
    let fields = serde_json::to_value(event).ok();
    let mut text = String::new();
    for (name, value) in fields.iter().filter_map(|v| v.as_object()).flatten() {
        match value {
            serde_json::Value::String(s) => text.push_str(&format!("{name}: {s}\n")),
            serde_json::Value::Array(items) => {
                text.push_str(&format!("{name}:\n"));
                for item in items {
                    text.push_str(&format!("  - {}\n", item.as_str().map_or_else(|| item.to_string(), str::to_string)));
                }
            }
            other => text.push_str(&format!("{name}: {other}\n")),
        }
    }
    text
}
