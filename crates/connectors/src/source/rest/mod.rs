//! REST sources (`kind = "rest"`): a JSON API read page by page, every record through the rules
//! every source's rows go through (`super::rows`), by way of the JSON source's record reading
//! (`super::json`): dotted columns, `/Date(ms)/` dates, nested values described.
//!
//! - Paging ([`paging`]): none (one document, such as a Workday report-as-a-service URL answering
//!   `{"Report_Entry": [...]}`), offset/limit, a page token from the body sent back as a query
//!   parameter, a next link (from the body or the `Link: <...>; rel="next"` header), and OData v2
//!   (`d.results`, `d.__next`, as SuccessFactors pages) and v4 (`value`, `@odata.nextLink`). A next
//!   link may not leave the first URL's scheme, host and port (it would take the credentials along);
//!   the same link or token twice is a paging loop and fails the read.
//! - Authentication ([`auth`]): basic, a bearer token, or OAuth 2.0 client credentials, the token
//!   kept until it expires or the API answers 401 (once), then fetched again.
//! - Requests ([`client`]): TLS verified (the system's roots, or `ca_file`), `https://` only unless
//!   `allow_plaintext`; 429, 5xx and unreachable answers retried with exponential backoff (or as
//!   `Retry-After` asks, in seconds or as an HTTP date) within `max_attempts` per request and
//!   `max_retry_wait_seconds` per read; each answer within `timeout_seconds` and `max_page_bytes`;
//!   at most `max_pages` pages.
//!
//! Any failure fails the whole read: records from the pages before it are never used, so a read cut
//! short can never pass for a read that ended. Messages name the source, the page and its URL
//! (never credentials; query values other than paging parameters are shown as `***`), and say what
//! was expected and found.
//!
//! Completeness: a read is complete only when the source is declared `complete` and its paging can
//! guarantee one consistent snapshot: a single document always can, offset paging never can (rows
//! shift between pages as people are added or removed), and token, next-link and OData paging only
//! when `consistent_snapshot = true` says the vendor guarantees it. Stage two of the configuration
//! refuses `complete = true` otherwise; [`read_rest`] enforces it again.
//!
//! Locations: `file` is the page's URL (as messages show it) and ` page N`, `line` the record's
//! 1-based position within that page, `row` its 1-based position in the whole read.

mod auth;
mod client;
mod paging;

use std::path::Path;
use std::time::Duration;

use roster_core::config::{RestPaging, RestSourceConfig, SourceConfig};
use roster_core::source::{Location, SourceRead};
use secrecy::SecretString;
use serde_json::Value;
use serde_json::value::RawValue as RawJson;

use self::client::{Client, Page};
use self::paging::Pager;
use super::json::{check_record, find_records, unplaced};
use super::rows::{Layout, RowRules, Tally};
use crate::error::{Error, Result};

/// Default most pages a read may take.
pub const DEFAULT_MAX_PAGES: u32 = 10_000;
/// Default largest page body.
pub const DEFAULT_MAX_PAGE_BYTES: u64 = 64 << 20;
/// Default longest wait for an answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default attempts per request.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default longest total wait between retries in one read.
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(300);

/// How a REST source is read, beyond its configuration.
#[derive(Debug, Clone)]
pub struct RestReadOptions {
    /// The wait before the first retry when the API does not say (`Retry-After`); it doubles with
    /// each retry, up to [`RestReadOptions::max_backoff`]. Default 1 s.
    pub first_backoff: Duration,
    /// The longest wait between two attempts that roster chooses itself. Default 30 s.
    pub max_backoff: Duration,
}

impl Default for RestReadOptions {
    fn default() -> Self {
        RestReadOptions { first_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(30) }
    }
}

/// Reads every page of the REST source `config`. `secret` is the resolved secret its `auth` names
/// (the password, the bearer token or the client secret); `config_dir` is where a relative
/// `ca_file` is.
pub async fn read_rest(config: &SourceConfig, secret: Option<SecretString>, config_dir: &Path) -> Result<SourceRead> {
    read_rest_with(config, secret, config_dir, &RestReadOptions::default()).await
}

/// [`read_rest`] with other retry waits (tests wait less).
pub async fn read_rest_with(
    config: &SourceConfig,
    secret: Option<SecretString>,
    config_dir: &Path,
    options: &RestReadOptions,
) -> Result<SourceRead> {
    let rules = RowRules::new(config)?;
    let rest = config.rest.as_ref().ok_or_else(|| Error::Rest {
        source_name: config.name.clone(),
        url: "(no url)".to_string(),
        page: None,
        problem: "expected a [source.rest] table with the url of the API".to_string(),
        status: None,
    })?;
    let mut client = Client::new(config, rest, secret, config_dir, options)?;
    let mut pager = Pager::new(rest, client.parse_url(&rest.url, None)?);
    let layout = Layout::named(config);
    let mut tally = Tally::default();
    let max_pages = rest.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
    let mut number = 0;
    while let Some(url) = pager.next_url() {
        number += 1;
        if number > max_pages {
            return Err(client.error(
                &url,
                Some(number),
                format!(
                    "the API has more than {max_pages} pages (max_pages); expected at most that many: raise \
                     max_pages if the source really is that large"
                ),
                None,
            ));
        }
        let page = client.get(&url, number).await?;
        let label = format!("{} page {number}", client.shown(&url));
        let text = page_text(&client, &page, number)?;
        let document: &RawJson = serde_json::from_str(text).map_err(|error| {
            let content_type = match page.content_type.as_deref() {
                Some(kind) if !kind.contains("json") => format!(" (its Content-Type is {kind:?})"),
                _ => String::new(),
            };
            client.error(
                &url,
                Some(number),
                format!(
                    "expected a JSON document{content_type}, but it does not parse at line {} column {}: {}",
                    error.line(),
                    error.column(),
                    unplaced(&error)
                ),
                Some(page.status),
            )
        })?;
        let path = records_path(config, rest, document);
        let records = find_records(document, path.as_deref(), &label).map_err(|error| {
            client.error(&url, Some(number), strip_file(&error.to_string(), &label), Some(page.status))
        })?;
        let count = records.len();
        for (index, record) in records.into_iter().enumerate() {
            tally.rows_seen += 1;
            let location = Location { file: label.as_str().into(), line: index as u64 + 1, row: tally.rows_seen };
            // The document parsed, so its parts do too.
            let value: Value = serde_json::from_str(record.get()).unwrap_or(Value::Null);
            tally.push(check_record(&rules, &layout, &value, location));
        }
        pager
            .advance(document, &page, count, number)
            .map_err(|problem| client.error(&url, Some(number), problem, Some(page.status)))?;
    }
    let mut read = tally.finish(config);
    read.complete &= may_be_complete(rest);
    Ok(read)
}

/// Whether a read with this paging can tell who has gone: see the module's documentation.
pub fn may_be_complete(rest: &RestSourceConfig) -> bool {
    match rest.paging {
        RestPaging::None => true,
        RestPaging::Offset => false,
        RestPaging::PageToken | RestPaging::NextLink | RestPaging::Odata => rest.consistent_snapshot,
    }
}

/// Where a page's records are: `records`, or for OData the place its version puts them.
fn records_path(config: &SourceConfig, rest: &RestSourceConfig, document: &RawJson) -> Option<String> {
    if config.records.is_some() || rest.paging != RestPaging::Odata {
        return config.records.clone();
    }
    let v2 = paging::raw_at(document, "d").is_some();
    Some(if v2 { "d.results" } else { "value" }.to_string())
}

/// The page's body as text: JSON is UTF-8 (RFC 8259), a byte-order mark aside.
fn page_text<'p>(client: &Client, page: &'p Page, number: u32) -> Result<&'p str> {
    let body = page.body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&page.body);
    std::str::from_utf8(body).map_err(|error| {
        client.error(
            &page.url,
            Some(number),
            format!("expected JSON in UTF-8, but byte {} is not valid UTF-8", error.valid_up_to()),
            Some(page.status),
        )
    })
}

/// A file source's message about a document, without the file label it starts with (the REST
/// message names the page itself).
fn strip_file(message: &str, label: &str) -> String {
    message.strip_prefix(label).map(|rest| rest.trim_start_matches(": ")).unwrap_or(message).to_string()
}
