//! The HTTP side of a REST source: one reqwest client over roster's rustls configuration, requests
//! retried with backoff within the configured bounds, bodies read within `max_page_bytes`, and
//! every message scrubbed of secrets.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LINK, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url, redirect};
use roster_core::config::{RestAuthConfig, RestSourceConfig, SourceConfig};
use secrecy::SecretString;

use super::auth::Auth;
use super::paging::{link_next, shown_url};
use super::{DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_PAGE_BYTES, DEFAULT_MAX_RETRY_WAIT, DEFAULT_TIMEOUT, RestReadOptions};
use crate::error::{Error, Result, duration_text};
use crate::http::{describe, retry_after, status_text};

/// Most redirects one request follows.
const MAX_REDIRECTS: usize = 5;
/// Most characters of an error answer's body quoted in a message.
const QUOTED_BODY_CHARS: usize = 200;

/// A page as the API answered it.
pub(super) struct Page {
    /// Where it came from, after any redirect: relative next links are relative to it.
    pub url: Url,
    pub status: u16,
    pub content_type: Option<String>,
    /// The `Link` header's `rel="next"`, if any.
    pub link_next: Option<String>,
    pub body: Vec<u8>,
}

pub(super) struct Client {
    source_name: String,
    rest: RestSourceConfig,
    http: reqwest::Client,
    auth: Auth,
    max_attempts: u32,
    max_page_bytes: u64,
    retry_budget: Duration,
    waited: Duration,
    options: RestReadOptions,
}

/// What one request is, for messages.
struct Request<'u> {
    url: &'u Url,
    page: Option<u32>,
    /// `the API`, `the token endpoint (auth.token_url)`.
    what: &'static str,
}

impl Client {
    pub(super) fn new(
        config: &SourceConfig,
        rest: &RestSourceConfig,
        secret: Option<SecretString>,
        config_dir: &Path,
        options: &RestReadOptions,
    ) -> Result<Client> {
        let http = build_http(&config.name, rest, config_dir).map_err(|problem| Error::Rest {
            source_name: config.name.clone(),
            url: "(the configured url)".to_string(),
            page: None,
            problem,
            status: None,
        })?;
        let mut client = Client {
            source_name: config.name.clone(),
            rest: rest.clone(),
            http,
            auth: Auth::None,
            max_attempts: rest.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1),
            max_page_bytes: rest.max_page_bytes.unwrap_or(DEFAULT_MAX_PAGE_BYTES),
            retry_budget: rest.max_retry_wait_seconds.map_or(DEFAULT_MAX_RETRY_WAIT, Duration::from_secs),
            waited: Duration::ZERO,
            options: options.clone(),
        };
        let first = client.parse_url(&rest.url, None)?;
        let token_url = match &rest.auth {
            Some(RestAuthConfig::Oauth2 { token_url, .. }) => Some(client.parse_url(token_url, None)?),
            _ => None,
        };
        client.auth = Auth::new(rest.auth.as_ref(), secret, token_url)
            .map_err(|problem| client.error(&first, None, problem, None))?;
        Ok(client)
    }

    pub(super) fn parse_url(&self, url: &str, page: Option<u32>) -> Result<Url> {
        Url::parse(url).map_err(|error| Error::Rest {
            source_name: self.source_name.clone(),
            url: "(the configured url)".to_string(),
            page,
            problem: format!("expected a URL such as https://hr.example.org/api/workers: {error}"),
            status: None,
        })
    }

    /// The URL as messages show it.
    pub(super) fn shown(&self, url: &Url) -> String {
        shown_url(url, &self.rest)
    }

    /// The read's error about `url`, scrubbed of every secret.
    pub(super) fn error(&self, url: &Url, page: Option<u32>, problem: String, status: Option<u16>) -> Error {
        Error::Rest {
            source_name: self.source_name.clone(),
            url: self.shown(url),
            page,
            problem: self.auth.scrub(problem),
            status,
        }
    }

    /// Page `number` at `url`: fetched with the credentials (a new access token first when the
    /// old one expired or the API refused it), retried as configured, and checked to be a success.
    pub(super) async fn get(&mut self, url: &Url, number: u32) -> Result<Page> {
        let mut fresh_token = false;
        loop {
            if let Some(token_url) = self.auth.token_due(Instant::now()).cloned() {
                self.fetch_token(&token_url, number).await?;
                fresh_token = true;
            }
            let request = Request { url, page: Some(number), what: "the API" };
            let page = self
                .send(&request, |http, auth| auth.apply(http.get(url.clone()).header(ACCEPT, "application/json")))
                .await?;
            if page.status == StatusCode::UNAUTHORIZED.as_u16() && self.auth.is_oauth() && !fresh_token {
                // The token expired early, or was revoked: one new token, then the API's word stands.
                self.auth.forget_token();
                continue;
            }
            if !(200..300).contains(&page.status) {
                let hint = match page.status {
                    401 if self.auth.is_oauth() => "; the API refused a new access token too",
                    401 | 403 => "; check the credentials in [source.rest.auth] and their rights",
                    404 => "; check the url",
                    _ => "",
                };
                let problem = format!("{}{hint}", self.refused(&request, &page));
                return Err(self.error(url, Some(number), problem, Some(page.status)));
            }
            return Ok(page);
        }
    }

    async fn fetch_token(&mut self, token_url: &Url, number: u32) -> Result<()> {
        let request = Request { url: token_url, page: Some(number), what: "the token endpoint (auth.token_url)" };
        let answer = self
            .send(&request, |http, auth| auth.token_request(http).unwrap_or_else(|| http.post(token_url.clone())))
            .await?;
        let failed = |client: &Client, problem: String| {
            let problem = format!("while getting an access token for the page: {problem}");
            client.error(token_url, Some(number), problem, Some(answer.status))
        };
        if !(200..300).contains(&answer.status) {
            let problem = match Auth::refusal(&answer.body) {
                Some(refusal) => format!("{} answered {} ({refusal})", request.what, status_text(answer.status)),
                None => self.refused(&request, &answer),
            };
            return Err(failed(self, format!("{problem}; check auth.client_id and auth.client_secret")));
        }
        self.auth.keep_token(&answer.body, Instant::now()).map_err(|problem| failed(self, problem))
    }

    /// `the API answered 404 Not Found ("..."); expected a success (2xx)`.
    fn refused(&self, request: &Request, answer: &Page) -> String {
        let status = status_text(answer.status);
        let body = String::from_utf8_lossy(&answer.body);
        let body = body.trim();
        let quoted = match body.char_indices().nth(QUOTED_BODY_CHARS) {
            Some((cut, _)) => format!(" ({:?}…)", &body[..cut]),
            None if body.is_empty() => String::new(),
            None => format!(" ({body:?})"),
        };
        format!("{} answered {status}{quoted}; expected a success (2xx)", request.what)
    }

    /// Sends the request `build` makes until an answer comes that is not worth retrying (or the
    /// attempts or the wait are spent), and reads its body.
    async fn send(
        &mut self,
        request: &Request<'_>,
        build: impl Fn(&reqwest::Client, &Auth) -> RequestBuilder,
    ) -> Result<Page> {
        let mut attempt = 1;
        loop {
            let outcome = match build(&self.http, &self.auth).send().await {
                Ok(response) => self.read_answer(request, response).await?,
                Err(error) => Err(error),
            };
            let (wait, why) = match outcome {
                Ok(page) if page.status == 429 || (500..600).contains(&page.status) => {
                    let status = status_text(page.status);
                    let wait = match page.retry_after {
                        Some(wait) => wait,
                        None => self.backoff(attempt),
                    };
                    if attempt >= self.max_attempts {
                        let problem = format!(
                            "{} answered {status} on each of {} attempt(s) (max_attempts); expected a success (2xx) \
                             once it recovered",
                            request.what, self.max_attempts
                        );
                        return Err(self.error(request.url, request.page, problem, Some(page.status)));
                    }
                    (wait, format!("{} answered {status}", request.what))
                }
                Ok(page) => return Ok(page.into_page()),
                Err(error) if error.is_redirect() || error.is_builder() => {
                    let problem = format!("{} cannot be asked: {}", request.what, describe(&error));
                    return Err(self.error(request.url, request.page, problem, None));
                }
                Err(error) => {
                    if attempt >= self.max_attempts {
                        let problem = format!(
                            "{} could not be reached on each of {} attempt(s) (max_attempts): {}",
                            request.what,
                            self.max_attempts,
                            describe(&error)
                        );
                        return Err(self.error(request.url, request.page, problem, None));
                    }
                    (self.backoff(attempt), format!("{} could not be reached: {}", request.what, describe(&error)))
                }
            };
            let left = self.retry_budget.saturating_sub(self.waited);
            if wait > left {
                let problem = format!(
                    "{why} and asked to wait {} before trying again, more than the {} left of the read's \
                     max_retry_wait_seconds",
                    duration_text(wait),
                    duration_text(left)
                );
                return Err(self.error(request.url, request.page, problem, None));
            }
            tracing::warn!(
                source = %self.source_name,
                url = %self.shown(request.url),
                attempt,
                "{}; trying again in {}",
                self.auth.scrub(why),
                duration_text(wait)
            );
            tokio::time::sleep(wait).await;
            self.waited += wait;
            attempt += 1;
        }
    }

    /// The answer with its body, read within `max_page_bytes`; a body broken off is an `Err` to
    /// retry.
    async fn read_answer(
        &self,
        request: &Request<'_>,
        mut response: reqwest::Response,
    ) -> Result<std::result::Result<Answer, reqwest::Error>> {
        let status = response.status().as_u16();
        let too_large = |size: String| {
            let problem = format!(
                "{} sent a body of {size}; expected at most {} bytes (max_page_bytes)",
                request.what, self.max_page_bytes
            );
            self.error(request.url, request.page, problem, Some(status))
        };
        let declared = response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(length) = declared.filter(|length| *length > self.max_page_bytes) {
            return Err(too_large(format!("{length} bytes")));
        }
        let head = Head::of(&response);
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if (body.len() + chunk.len()) as u64 > self.max_page_bytes {
                        return Err(too_large(format!("more than {} bytes", self.max_page_bytes)));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => return Ok(Err(error)),
            }
        }
        Ok(Ok(Answer { head, body }))
    }

    /// The wait before retry `attempt` + 1 when the API does not say: doubling from the first.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.options.first_backoff.saturating_mul(factor).min(self.options.max_backoff)
    }
}

fn build_http(
    source_name: &str,
    rest: &RestSourceConfig,
    config_dir: &Path,
) -> std::result::Result<reqwest::Client, String> {
    let config_error = |problem: String| problem;
    let https = rest.url.to_ascii_lowercase().starts_with("https:");
    let roots = match &rest.ca_file {
        Some(file) => {
            let path = config_dir.join(file);
            crate::tls::roots_from_file(&path)
                .map_err(|what| config_error(format!("ca_file {}: {what}", path.display())))?
        }
        None => match crate::tls::system_roots(source_name) {
            Some(roots) => roots,
            None if https => {
                return Err(config_error(
                    "no system CA certificates found; expected them, or ca_file naming the PEM file of the \
                     API's CA"
                        .to_string(),
                ));
            }
            None => rustls::RootCertStore::empty(),
        },
    };
    let tls = crate::tls::verifying_config(roots).map_err(config_error)?;
    let timeout = rest.timeout_seconds.map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(!rest.allow_plaintext)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
        .redirect(redirect::Policy::custom(|attempt| {
            let first = attempt.previous().first().map(Url::origin);
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if first.is_some_and(|origin| origin != attempt.url().origin()) {
                let to = attempt.url().origin().ascii_serialization();
                attempt.error(format!("a redirect to {to}, another server, which roster does not follow"))
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|error| config_error(format!("cannot set up the HTTP client: {}", describe(&error))))
}

/// An answer's status and the headers a read uses.
struct Head {
    url: Url,
    status: u16,
    content_type: Option<String>,
    link_next: Option<String>,
    /// How long `Retry-After` asks to wait.
    retry_after: Option<Duration>,
}

impl Head {
    fn of(response: &reqwest::Response) -> Head {
        let headers = response.headers();
        Head {
            url: response.url().clone(),
            status: response.status().as_u16(),
            content_type: header_text(headers, CONTENT_TYPE),
            link_next: link_next(headers.get_all(LINK).iter().filter_map(|value| value.to_str().ok())),
            retry_after: header_text(headers, RETRY_AFTER).and_then(|value| retry_after(&value, chrono::Utc::now())),
        }
    }
}

struct Answer {
    head: Head,
    body: Vec<u8>,
}

impl std::ops::Deref for Answer {
    type Target = Head;
    fn deref(&self) -> &Head {
        &self.head
    }
}

impl Answer {
    fn into_page(self) -> Page {
        let Head { url, status, content_type, link_next, .. } = self.head;
        Page { url, status, content_type, link_next, body: self.body }
    }
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}
