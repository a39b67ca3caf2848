//! Which page comes next: each paging style's rule, the checks that keep a read from running in a
//! loop or leaving the API's server, and how URLs are shown in messages.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use reqwest::Url;
use roster_core::config::{RestPaging, RestSourceConfig};
use serde_json::Value;
use serde_json::value::RawValue as RawJson;

use super::client::Page;
use crate::source::json::described;

const DEFAULT_OFFSET_PARAM: &str = "offset";
const DEFAULT_LIMIT_PARAM: &str = "limit";
const DEFAULT_PAGE_SIZE: u32 = 100;
const DEFAULT_TOKEN_FIELD: &str = "nextPageToken";
const DEFAULT_TOKEN_PARAM: &str = "pageToken";
/// Where OData puts the next page's link: v2 (SuccessFactors), v4, and v3's JSON light.
const ODATA_NEXT_FIELDS: [&str; 3] = ["d.__next", "@odata.nextLink", "odata.nextLink"];
/// Query parameters whose values messages show besides the paging parameters and OData's `$`
/// options: common ones that never hold a secret.
const SHOWN_PARAMS: [&str; 8] = ["format", "page", "per_page", "page_size", "limit", "offset", "cursor", "fields"];

/// The pages of one read, one after the other.
pub(super) struct Pager {
    style: RestPaging,
    first: Url,
    next: Option<Url>,
    offset_param: String,
    limit_param: String,
    page_size: u32,
    offset: u64,
    token_field: String,
    token_param: String,
    next_field: Option<String>,
    /// Each link or token followed, with the page it led to.
    seen: HashMap<String, u32>,
    /// Offset paging: the previous page's body, hashed, to notice an API that ignores the offset.
    previous_body: Option<u64>,
}

impl Pager {
    pub(super) fn new(rest: &RestSourceConfig, first: Url) -> Pager {
        let mut pager = Pager {
            style: rest.paging,
            first: first.clone(),
            next: None,
            offset_param: rest.offset_param.clone().unwrap_or_else(|| DEFAULT_OFFSET_PARAM.to_string()),
            limit_param: rest.limit_param.clone().unwrap_or_else(|| DEFAULT_LIMIT_PARAM.to_string()),
            page_size: rest.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
            offset: 0,
            token_field: rest.token_field.clone().unwrap_or_else(|| DEFAULT_TOKEN_FIELD.to_string()),
            token_param: rest.token_param.clone().unwrap_or_else(|| DEFAULT_TOKEN_PARAM.to_string()),
            next_field: rest.next_field.clone(),
            seen: HashMap::new(),
            previous_body: None,
        };
        pager.next = Some(match pager.style {
            RestPaging::Offset => pager.offset_url(),
            _ => first,
        });
        pager
    }

    /// The URL of the next page to read; `None` once the last page was read.
    pub(super) fn next_url(&mut self) -> Option<Url> {
        self.next.take()
    }

    /// Finds the page after page `number`, which held `records` records; an error says why the
    /// paging cannot go on.
    pub(super) fn advance(
        &mut self,
        document: &RawJson,
        page: &Page,
        records: usize,
        number: u32,
    ) -> Result<(), String> {
        self.next = match self.style {
            RestPaging::None => None,
            RestPaging::Offset => self.after_offset_page(page, records, number)?,
            RestPaging::PageToken => self.after_token_page(document, number)?,
            RestPaging::NextLink => {
                let link = match &self.next_field {
                    Some(field) => text_at(document, field, "the next page's link")?,
                    None => page.link_next.clone(),
                };
                self.follow(link, page, number, "next link")?
            }
            RestPaging::Odata => {
                let mut link = None;
                for field in ODATA_NEXT_FIELDS {
                    link = text_at(document, field, "the next page's link")?;
                    if link.is_some() {
                        break;
                    }
                }
                self.follow(link, page, number, "OData next link")?
            }
        };
        Ok(())
    }

    /// Offset paging goes on until a page holds no records: a page shorter than asked for may
    /// only mean the API caps the page size.
    fn after_offset_page(&mut self, page: &Page, records: usize, number: u32) -> Result<Option<Url>, String> {
        if records == 0 {
            return Ok(None);
        }
        let mut hasher = DefaultHasher::new();
        page.body.hash(&mut hasher);
        let body = hasher.finish();
        if self.previous_body.replace(body) == Some(body) {
            return Err(format!(
                "the page is the same as page {}: expected the API to honour the {:?} parameter (offset_param), \
                 but it answers the same records whatever the offset",
                number - 1,
                self.offset_param
            ));
        }
        self.offset += records as u64;
        Ok(Some(self.offset_url()))
    }

    fn after_token_page(&mut self, document: &RawJson, number: u32) -> Result<Option<Url>, String> {
        let Some(token) = text_at(document, &self.token_field, "the next page's token")? else {
            return Ok(None);
        };
        if let Some(earlier) = self.seen.insert(token.clone(), number + 1) {
            return Err(format!(
                "the page token at {:?} is the one that led to page {earlier} already; expected a new token \
                 for each page: the API is paging in a loop",
                self.token_field
            ));
        }
        let mut url = self.first.clone();
        set_param(&mut url, &self.token_param, &token);
        Ok(Some(url))
    }

    /// The next link, checked: it stays on the API's server, and was not followed before.
    fn follow(&mut self, link: Option<String>, page: &Page, number: u32, what: &str) -> Result<Option<Url>, String> {
        let Some(link) = link else { return Ok(None) };
        let url = page.url.join(&link).map_err(|error| {
            format!("the {what} {:?} is not a URL ({error}); expected the next page's URL", shorten(&link))
        })?;
        if url.origin() != self.first.origin() {
            return Err(format!(
                "the {what} leads to {}; expected a page on {} itself: roster does not send its credentials \
                 to another server",
                url.origin().ascii_serialization(),
                self.first.origin().ascii_serialization()
            ));
        }
        if let Some(earlier) = self.seen.insert(url.as_str().to_string(), number + 1) {
            return Err(format!(
                "the {what} is the one that led to page {earlier} already; expected a new page each time: \
                 the API is paging in a loop"
            ));
        }
        Ok(Some(url))
    }

    fn offset_url(&self) -> Url {
        let mut url = self.first.clone();
        set_param(&mut url, &self.offset_param, &self.offset.to_string());
        set_param(&mut url, &self.limit_param, &self.page_size.to_string());
        url
    }
}

/// `url` with the query parameter `name` set to `value` (replacing any it had). The other
/// parameters are kept exactly as written: an OData server may not decode `%24format` as `$format`.
fn set_param(url: &mut Url, name: &str, value: &str) {
    let mut query: Vec<String> = url
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .map(str::to_string)
        .collect();
    query.push(format!("{name}={}", percent_encoded(value)));
    url.set_query(Some(&query.join("&")));
}

/// `value` with everything but RFC 3986's unreserved characters percent-encoded.
fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The text at the dotted `path` of the document: `None` when absent, `null` or empty; an error
/// when something other than text (or a number) is there.
fn text_at(document: &RawJson, path: &str, what: &str) -> Result<Option<String>, String> {
    let Some(raw) = raw_at(document, path) else { return Ok(None) };
    match serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null) {
        Value::Null => Ok(None),
        Value::String(text) if text.is_empty() => Ok(None),
        Value::String(text) => Ok(Some(text)),
        Value::Number(number) => Ok(Some(number.to_string())),
        other => Err(format!("expected {what} at {path:?} to be text, found {}", described(&other))),
    }
}

/// The part of the document at the dotted `path`: a field of that whole name (`@odata.nextLink`),
/// or else a field of a nested object (`d.__next`).
pub(super) fn raw_at<'d>(document: &'d RawJson, path: &str) -> Option<&'d RawJson> {
    let object: HashMap<String, &'d RawJson> = serde_json::from_str(document.get()).ok()?;
    if let Some(found) = object.get(path) {
        return Some(found);
    }
    path.match_indices('.').find_map(|(dot, _)| raw_at(object.get(&path[..dot])?, &path[dot + 1..]))
}

/// A URL as messages show it: no user or password, and the values of query parameters that may
/// hold a secret replaced by `***` (shown: paging parameters, OData's `$` options, a few common
/// harmless ones).
pub(super) fn shown_url(url: &Url, rest: &RestSourceConfig) -> String {
    let paging_params = [&rest.offset_param, &rest.limit_param, &rest.token_param];
    let shown_value = |name: &str| {
        name.starts_with('$')
            || SHOWN_PARAMS.contains(&name)
            || [DEFAULT_TOKEN_PARAM].contains(&name)
            || paging_params.iter().any(|param| param.as_deref() == Some(name))
    };
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    shown.set_query(None);
    let mut text = shown.to_string();
    let pairs: Vec<String> = url
        .query_pairs()
        .map(|(name, value)| {
            let value = if shown_value(&name) { shorten(&value) } else { "***".to_string() };
            format!("{name}={value}")
        })
        .collect();
    if !pairs.is_empty() {
        text.push('?');
        text.push_str(&pairs.join("&"));
    }
    text
}

/// A long value cut for a message.
fn shorten(text: &str) -> String {
    crate::source::rows::abbreviated(text).into_owned()
}

/// The `rel="next"` link of `Link` header values (RFC 8288): `<https://...?page=2>; rel="next"`.
pub(super) fn link_next<'h>(values: impl Iterator<Item = &'h str>) -> Option<String> {
    values.flat_map(|value| value.split(',')).find_map(|link| {
        let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').filter_map(|param| param.trim().split_once('=')).any(|(name, value)| {
            name.trim().eq_ignore_ascii_case("rel")
                && value.trim().trim_matches('"').split_whitespace().any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        is_next.then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_several_links_and_relations() {
        let header = r#"<https://api.example/w?page=1>; rel="first", <https://api.example/w?page=3>; rel="prev next""#;
        assert_eq!(link_next([header].into_iter()).as_deref(), Some("https://api.example/w?page=3"));
        assert_eq!(link_next([r#"<https://api.example/w?page=1>; rel="prev""#].into_iter()), None);
        assert_eq!(
            link_next(["<https://api.example/w?page=2>; rel=next"].into_iter()).as_deref(),
            Some("https://api.example/w?page=2")
        );
    }

    #[test]
    fn fields_are_found_by_whole_name_or_through_nested_objects() {
        let document: &RawJson =
            serde_json::from_str(r#"{"@odata.nextLink": "a", "d": {"__next": "b"}, "links": {"next": null}}"#).unwrap();
        assert_eq!(raw_at(document, "@odata.nextLink").map(RawJson::get), Some(r#""a""#));
        assert_eq!(raw_at(document, "d.__next").map(RawJson::get), Some(r#""b""#));
        assert_eq!(text_at(document, "links.next", "link"), Ok(None));
        assert_eq!(text_at(document, "missing.field", "link"), Ok(None));
        assert!(text_at(document, "d", "link").unwrap_err().contains("an object with key \"__next\""));
    }

    #[test]
    fn a_set_parameter_replaces_its_old_value_and_keeps_the_others_as_written() {
        let mut url = Url::parse("https://api.example/odata/v2/User?$format=json&$skip=0").unwrap();
        set_param(&mut url, "$skip", "200");
        set_param(&mut url, "pageToken", "a+b/c=");
        assert_eq!(url.as_str(), "https://api.example/odata/v2/User?$format=json&$skip=200&pageToken=a%2Bb%2Fc%3D");
    }

    #[test]
    fn shown_urls_hide_credentials_and_query_values_that_may_be_secret() {
        let rest: RestSourceConfig =
            toml::from_str("url = \"https://x\"\npaging = \"offset\"\noffset_param = \"$skip\"").unwrap();
        let url = Url::parse("https://u:p@api.example/w?$skip=20&api_key=s3cret&format=json#frag").unwrap();
        assert_eq!(shown_url(&url, &rest), "https://api.example/w?$skip=20&api_key=***&format=json");
    }
}
