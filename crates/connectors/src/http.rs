//! What every HTTP connector shares (REST sources, the SCIM target): reading `Retry-After`,
//! naming a status, and describing a failed request without its URL.

use std::time::Duration;

use reqwest::StatusCode;

/// `Retry-After` (RFC 9110 section 10.2.3): a number of seconds, or an HTTP date.
pub(crate) fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// `503 Service Unavailable`.
pub(crate) fn status_text(status: u16) -> String {
    match StatusCode::from_u16(status).ok().and_then(|status| status.canonical_reason()) {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// What went wrong with a request, with its causes, without the URL (messages show it redacted).
pub(crate) fn describe(error: &reqwest::Error) -> String {
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
