//! What every HTTP client of roster shares (REST sources, the SCIM and Graph targets, OAuth2 tokens,
//! webhooks): a client with a target's TLS settings, reading `Retry-After`, sending a request again
//! while the server is busy, naming a status, and describing a failed request without its URL.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use roster_core::config::TlsConfig;

use crate::target::ErrorKind;

/// A client for `name` (a webhook) with the LDAP target's TLS settings (`tls.ca_file`,
/// `tls.insecure_skip_verify`), each request limited to `timeout`, redirects not followed (a
/// signed event goes to the configured URL or nowhere).
pub fn client(name: &str, tls: &TlsConfig, config_dir: &Path, timeout: Duration) -> Result<reqwest::Client, String> {
    let config = crate::target::ldap::tls::client_config(name, tls, config_dir).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .use_preconfigured_tls(Arc::unwrap_or_clone(config))
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("{name}: cannot set up the HTTP client: {}", describe(&e)))
}

/// A client for an HTTPS API (the SCIM and Graph targets, OAuth2 tokens) named `name`: the server
/// verified against the CA(s) in `ca_file`, else the system's roots; `allow_plaintext` permits
/// `http://` (tests, a loopback gateway); redirects not followed (a bearer token goes to the
/// configured URL or nowhere). An error says what is wrong; the caller names the target.
pub fn api_client(
    name: &str,
    ca_file: Option<&Path>,
    allow_plaintext: bool,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let roots = match ca_file {
        Some(path) => {
            crate::tls::roots_from_file(path).map_err(|what| format!("ca_file {}: {what}", path.display()))?
        }
        None => match crate::tls::system_roots(name) {
            Some(roots) => roots,
            None if !allow_plaintext => return Err("no system CA certificates found; expected them, or ca_file".into()),
            None => rustls::RootCertStore::empty(),
        },
    };
    let tls = crate::tls::verifying_config(roots)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(!allow_plaintext)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", describe(&e)))
}

/// `Retry-After` (RFC 9110 section 10.2.3): a number of seconds, or an HTTP date.
pub(crate) fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// How a request is sent again while the server is busy or cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Longest total wait for one request's retries.
    pub max_wait: Duration,
    /// The first wait when the server gives no `Retry-After`; doubles each time.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { max_attempts: 5, max_wait: Duration::from_secs(120), first_backoff: Duration::from_secs(1) }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` when the server did not say.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.first_backoff.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
    }
}

/// An answer: its status, headers and body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub(crate) fn header(&self, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends the request `build` makes (anew for each attempt) until an answer comes whose status is
/// not one of `busy` (429, 503, ...) or the policy's attempts or wait are spent, waiting as
/// `Retry-After` asks or doubling. `shown` (`PATCH /Users/1 for <dn>`) begins every message;
/// `writes`: a request whose answer broke off may have happened. `log_name` names the connection
/// in the log's warnings.
pub(crate) async fn send_retrying(
    policy: &RetryPolicy,
    busy: &[u16],
    writes: bool,
    shown: &str,
    log_name: &str,
    mut build: impl FnMut() -> reqwest::RequestBuilder,
) -> Result<Answer, (ErrorKind, String)> {
    let mut attempt = 1;
    let mut waited = Duration::ZERO;
    loop {
        let (wait, why) = match build().send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = response.bytes().await.map_err(|e| {
                    let kind = if writes { ErrorKind::Unknown } else { ErrorKind::Transient };
                    (kind, format!("{shown}: the answer broke off: {}", describe(&e)))
                })?;
                let answer = Answer { status, headers, body: body.to_vec() };
                if !busy.contains(&status) {
                    return Ok(answer);
                }
                if attempt >= policy.max_attempts {
                    return Err((
                        ErrorKind::Transient,
                        format!(
                            "{shown}: the server answered {} on each of {attempt} attempt(s); nothing was changed, \
                             try again later",
                            status_text(status)
                        ),
                    ));
                }
                let asked = answer.header(RETRY_AFTER).and_then(|v| retry_after(v, chrono::Utc::now()));
                (
                    asked.unwrap_or_else(|| policy.backoff(attempt)),
                    format!("the server answered {}", status_text(status)),
                )
            }
            Err(error) if error.is_connect() => {
                if attempt >= policy.max_attempts {
                    return Err((
                        ErrorKind::Connect,
                        format!("{shown}: cannot reach the server: {}", describe(&error)),
                    ));
                }
                (policy.backoff(attempt), format!("cannot reach the server: {}", describe(&error)))
            }
            Err(error) => {
                let kind = if writes { ErrorKind::Unknown } else { ErrorKind::Transient };
                let may = if writes { "; the change may have happened" } else { "" };
                return Err((kind, format!("{shown}: {}{may}", describe(&error))));
            }
        };
        let left = policy.max_wait.saturating_sub(waited);
        if wait > left {
            return Err((
                ErrorKind::Transient,
                format!(
                    "{shown}: {why} and asked to wait {wait:?}, more than the {left:?} left of max_retry_wait; \
                     nothing was changed"
                ),
            ));
        }
        tracing::warn!(target_name = %log_name, request = %shown, attempt, "{why}; trying again in {wait:?}");
        tokio::time::sleep(wait).await;
        waited += wait;
        attempt += 1;
    }
}

/// `503 Service Unavailable`.
pub fn status_text(status: u16) -> String {
    match StatusCode::from_u16(status).ok().and_then(|status| status.canonical_reason()) {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// What went wrong with a request, with its causes, without the URL (messages show it redacted).
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "no answer in time (timeout_seconds)".to_string() } else { String::new() };
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(error);
    if text.is_empty() {
        text = match (error.is_connect(), error.is_body(), error.is_redirect()) {
            (true, _, _) => "cannot connect".to_string(),
            (_, true, _) => "the answer broke off".to_string(),
            (_, _, true) => "refused a redirect".to_string(),
            _ => "the request failed".to_string(),
        };
    }
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z").unwrap().to_utc();
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Thu, 26 Nov 2026 12:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("Thu, 26 Nov 2026 11:00:00 GMT", now), Some(Duration::ZERO), "a date passed: now");
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn statuses_read_with_their_reason() {
        assert_eq!(status_text(503), "503 Service Unavailable");
        assert_eq!(status_text(599), "599");
    }
}
