//! Contract tests of the REST source. Workday, SuccessFactors and the other vendors' services
//! cannot be reached from here, so each test starts a local HTTP server (axum, on a free loopback
//! port) that answers as the vendors document: Workday's report-as-a-service JSON
//! (`{"Report_Entry": [...]}`), SuccessFactors' OData v2 (`d.results`, `d.__next`, `/Date(ms)/`),
//! OData v4 (`value`, `@odata.nextLink`), and generic APIs paged by offset, page token and next
//! link. The pages are fixtures (`tests/fixtures/rest/`) or slices of `people.json`; the server
//! logs every request, so retries and token refreshes are asserted by counting them, never by
//! timing.

mod source_support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, Uri};
use roster_connectors::error::Error;
use roster_connectors::source::rest::{RestReadOptions, read_rest_with};
use roster_core::config::{RestSourceConfig, SourceConfig, SourceKind};
use roster_core::source::SourceRead;
use secrecy::SecretString;
use serde_json::{Value, json};
use source_support::{fixtures, render, source};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    params: HashMap<String, String>,
    authorization: Option<String>,
    body: String,
}

/// The server's answer.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn json(body: impl Into<String>) -> Reply {
        Reply { status: 200, headers: vec![("content-type", "application/json".to_string())], body: body.into() }
    }

    fn status(status: u16, body: &str) -> Reply {
        Reply { status, headers: Vec::new(), body: body.to_string() }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

type Script = dyn Fn(&Seen, &[Seen], &str) -> Reply + Send + Sync;

/// A local server answering each request by `script(request, the requests before it, base URL)`.
struct Server {
    base: String,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(script: impl Fn(&Seen, &[Seen], &str) -> Reply + Send + Sync + 'static) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let (handler_log, handler_base) = (log.clone(), base.clone());
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let (log, script, base) = (handler_log.clone(), script.clone(), handler_base.clone());
            async move {
                let params = uri
                    .query()
                    .map(|query| url_pairs(query).into_iter().collect::<HashMap<String, String>>())
                    .unwrap_or_default();
                let seen = Seen {
                    method: method.to_string(),
                    path: uri.path().to_string(),
                    params,
                    authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
                    body,
                };
                let reply = {
                    let mut log = log.lock().unwrap();
                    let reply = script(&seen, &log, &base);
                    log.push(seen);
                    reply
                };
                let mut response = Response::builder().status(reply.status);
                for (name, value) in reply.headers {
                    response = response.header(name, value);
                }
                response.body(Body::from(reply.body)).unwrap()
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { base, log }
    }

    fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests went to `path`.
    fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|seen| seen.path == path).count()
    }
}

/// Query pairs, percent-decoded.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// A fixture page with the server's address put in its links.
fn fixture(name: &str, base: &str) -> String {
    std::fs::read_to_string(fixtures("rest").join(name)).unwrap().replace("{base}", base)
}

/// `people.json`'s records from `start`, at most `count` of them.
fn people(start: usize, count: usize) -> Vec<Value> {
    let all: Vec<Value> = serde_json::from_str(&fixture("people.json", "")).unwrap();
    all.into_iter().skip(start).take(count).collect()
}

const PEOPLE_COLUMNS: [(&str, &str); 4] =
    [("given_name", "first_name"), ("family_name", "last_name"), ("hire_date", "start_date"), ("department", "team")];

/// A REST source named `hr` reading `rest` (a `[source.rest]` table in TOML, `url` relative to
/// the server), not complete unless a test says so.
fn config(server: &Server, key: &str, columns: &[(&str, &str)], rest: &str) -> SourceConfig {
    let mut config = source(SourceKind::Rest, "", key, columns);
    config.path = None;
    config.complete = false;
    let rest = rest.replace("url = \"", &format!("url = \"{}", server.base));
    let rest: RestSourceConfig = toml::from_str(&format!("allow_plaintext = true\n{rest}")).unwrap();
    // `token_url = "` got the server's address above too.
    config.rest = Some(rest);
    config
}

/// Retries wait 10 ms unless the API says otherwise: the tests count retries, they do not time them.
fn quick() -> RestReadOptions {
    RestReadOptions { first_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(50) }
}

async fn read(config: &SourceConfig, secret: Option<&str>) -> Result<SourceRead, Error> {
    read_rest_with(config, secret.map(|s| SecretString::from(s.to_string())), Path::new("."), &quick()).await
}

/// The read rendered as the other source tests render theirs, one line per row, with every
/// location's file checked to be a page of the server.
fn rendered(read: &SourceRead, server: &Server) -> String {
    let mut read = read.clone();
    for location in
        read.records.iter_mut().map(|r| &mut r.location).chain(read.quarantined.iter_mut().map(|q| &mut q.location))
    {
        assert!(location.file.starts_with(&server.base), "{}", location.file);
        location.file = "page".into();
    }
    render(&read, "page")
}

fn error_text(result: Result<SourceRead, Error>) -> String {
    match result {
        Ok(read) => panic!("the read should fail, but gave {read:#?}"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn a_workday_report_is_one_document_and_a_bad_date_is_quarantined_with_its_page_and_position() {
    let server = Server::start(|seen, _, base| match seen.path.as_str() {
        "/ccx/service/customreport2/acme/ISU_Roster/Workers" => Reply::json(fixture("workday-raas.json", base)),
        _ => Reply::status(404, "no such report"),
    })
    .await;
    let mut config = config(
        &server,
        "Employee_ID",
        &[
            ("given_name", "Legal_Name_-_First_Name"),
            ("family_name", "Legal_Name_-_Last_Name"),
            ("hire_date", "Hire_Date"),
            ("last_day", "Termination_Date"),
            ("department", "Supervisory_Organization"),
            ("manager", "Manager_ID"),
            ("fte", "FTE"),
        ],
        r#"url = "/ccx/service/customreport2/acme/ISU_Roster/Workers?format=json""#,
    );
    config.records = Some("Report_Entry".to_string());
    config.complete = true;
    let read = read(&config, None).await.unwrap();
    assert_eq!(
        rendered(&read, &server),
        r#"rows_seen 3 complete true
line 1 row 1 "21001": affiliation="employee" department="Global Human Resources (Logan McNeil)" family_name="McNeil" fte="1" given_name="Logan" hire_date=2019-03-11
line 2 row 2 "21002": affiliation="employee" department="Finance (Teresa Serrano)" family_name="Serrano" fte="0.8" given_name="Teresa" hire_date=2020-07-01 manager="21001"
line 3 row 3 held Some("21003"): hire_date (column "Hire_Date"): "2026-31-12" is not a valid date; expected the format %Y-%m-%d, e.g. 2026-12-31
"#
    );
    let held = &read.quarantined[0].location;
    assert_eq!(
        held.to_string(),
        format!("{}/ccx/service/customreport2/acme/ISU_Roster/Workers?format=json page 1:3 (row 3)", server.base)
    );
    assert_eq!(server.hits("/ccx/service/customreport2/acme/ISU_Roster/Workers"), 1);
}

/// The SuccessFactors OData v2 source of several tests.
fn successfactors(server: &Server, rest: &str) -> SourceConfig {
    config(
        server,
        "userId",
        &[
            ("given_name", "firstName"),
            ("family_name", "lastName"),
            ("hire_date", "hireDate"),
            ("last_day", "lastDateWorked"),
            ("department", "department"),
        ],
        &format!("url = \"/odata/v2/User?$format=json\"\npaging = \"odata\"\n{rest}"),
    )
}

/// Serves the two SuccessFactors pages: the first without `$skiptoken`, the second with it.
fn successfactors_page(seen: &Seen, base: &str) -> Reply {
    match seen.params.get("$skiptoken").map(String::as_str) {
        None => Reply::json(fixture("successfactors-user-page1.json", base)),
        Some("eyJzdGFydFJvdyI6Mn0") => Reply::json(fixture("successfactors-user-page2.json", base)),
        Some(other) => Reply::status(400, &format!("unknown skiptoken {other}")),
    }
}

const SUCCESSFACTORS_READ: &str = r#"line 1 row 1 "1001": affiliation="employee" department="Sales" family_name="Hoff" given_name="Marcus" hire_date=2018-01-01
line 2 row 2 "1002": affiliation="employee" department="Engineering" family_name="Bhatt" given_name="Aanya" hire_date=2026-01-01
line 1 row 3 "1003": affiliation="employee" department="Sales" family_name="Weber" given_name="Jonas" hire_date=2021-01-01 last_day=2026-12-31
"#;

#[tokio::test]
async fn successfactors_odata_v2_pages_follow_next_and_read_date_milliseconds() {
    let server = Server::start(|seen, _, base| successfactors_page(seen, base)).await;
    let read = read(&successfactors(&server, ""), None).await.unwrap();
    assert_eq!(rendered(&read, &server), format!("rows_seen 3 complete false\n{SUCCESSFACTORS_READ}"));
    let pages: Vec<Option<String>> =
        server.requests().iter().map(|seen| seen.params.get("$skiptoken").cloned()).collect();
    assert_eq!(pages, [None, Some("eyJzdGFydFJvdyI6Mn0".to_string())]);
    assert!(read.records[2].location.file.ends_with("page 2"), "{}", read.records[2].location.file);
}

#[tokio::test]
async fn a_consistent_snapshot_odata_read_declared_complete_is_complete() {
    let server = Server::start(|seen, _, base| successfactors_page(seen, base)).await;
    let mut config = successfactors(&server, "consistent_snapshot = true");
    config.complete = true;
    let read = read(&config, None).await.unwrap();
    assert!(read.complete);
    assert_eq!(read.records.len(), 3);
}

#[tokio::test]
async fn odata_v4_pages_follow_a_relative_next_link() {
    let server = Server::start(|seen, _, base| match seen.params.get("$skiptoken") {
        None => Reply::json(fixture("odata-v4-page1.json", base)),
        Some(_) => Reply::json(fixture("odata-v4-page2.json", base)),
    })
    .await;
    let config = config(
        &server,
        "WorkerId",
        &[("given_name", "GivenName"), ("family_name", "FamilyName"), ("hire_date", "HireDate")],
        "url = \"/odata/v4/Workers\"\npaging = \"odata\"",
    );
    let read = read(&config, None).await.unwrap();
    assert_eq!(
        rendered(&read, &server),
        r#"rows_seen 3 complete false
line 1 row 1 "5001": affiliation="employee" family_name="Duarte" given_name="Ines" hire_date=2022-02-01
line 2 row 2 "5002": affiliation="employee" family_name="Mori" given_name="Kenji" hire_date=2023-09-15
line 1 row 3 "5003": affiliation="employee" family_name="Nowak" given_name="Zofia" hire_date=2024-04-02
"#
    );
    let paths: Vec<String> = server.requests().iter().map(|seen| seen.path.clone()).collect();
    assert_eq!(paths, ["/odata/v4/Workers", "/odata/v4/Workers"]);
}

const PEOPLE_READ: &str = r#"line 1 row 1 "00101": affiliation="employee" department="Research" family_name="Lovelace" given_name="Ada" hire_date=2021-01-04
line 2 row 2 "00102": affiliation="employee" department="Research" family_name="Turing" given_name="Alan" hire_date=2021-02-01
line 1 row 3 "00103": affiliation="employee" department="Platform" family_name="Hopper" given_name="Grace" hire_date=2021-03-01
line 2 row 4 "00104": affiliation="employee" department="Platform" family_name="Dijkstra" given_name="Edsger" hire_date=2021-04-01
line 1 row 5 "00105": affiliation="employee" department="Platform" family_name="Liskov" given_name="Barbara" hire_date=2021-05-03
"#;

/// An API paged by offset and limit: `{"data": [...], "total": 5}`.
fn offset_page(seen: &Seen) -> Reply {
    let number = |name: &str| seen.params.get(name).and_then(|v| v.parse::<usize>().ok());
    match (number("offset"), number("limit")) {
        (Some(offset), Some(limit)) => Reply::json(json!({"data": people(offset, limit), "total": 5}).to_string()),
        _ => Reply::status(400, "offset and limit are required"),
    }
}

#[tokio::test]
async fn offset_paging_reads_until_an_empty_page_and_is_never_complete() {
    let server = Server::start(|seen, _, _| offset_page(seen)).await;
    let mut config =
        config(&server, "id", &PEOPLE_COLUMNS, "url = \"/api/people\"\npaging = \"offset\"\npage_size = 2");
    config.records = Some("data".to_string());
    // The configuration check refuses this; the reader does not trust it either.
    config.complete = true;
    let read = read(&config, None).await.unwrap();
    assert_eq!(rendered(&read, &server), format!("rows_seen 5 complete false\n{PEOPLE_READ}"));
    let asked: Vec<(String, String)> =
        server.requests().iter().map(|seen| (seen.params["offset"].clone(), seen.params["limit"].clone())).collect();
    let expected: Vec<(String, String)> =
        [("0", "2"), ("2", "2"), ("4", "2"), ("5", "2")].iter().map(|(o, l)| (o.to_string(), l.to_string())).collect();
    assert_eq!(asked, expected);
}

#[tokio::test]
async fn an_api_that_ignores_the_offset_fails_the_read_instead_of_reading_forever() {
    let server = Server::start(|_, _, _| Reply::json(json!({"data": people(0, 2)}).to_string())).await;
    let mut config =
        config(&server, "id", &PEOPLE_COLUMNS, "url = \"/api/people\"\npaging = \"offset\"\npage_size = 2");
    config.records = Some("data".to_string());
    let message = error_text(read(&config, None).await);
    assert!(message.contains("page 2 ("), "{message}");
    assert!(
        message.contains("the page is the same as page 1: expected the API to honour the \"offset\" parameter"),
        "{message}"
    );
    assert_eq!(server.hits("/api/people"), 2);
}

/// An API paged by token: `{"items": [...], "nextPageToken": "..."}`, two records a page.
fn token_page(seen: &Seen) -> Reply {
    let start = match seen.params.get("pageToken") {
        None => 0,
        Some(token) => match token.strip_prefix("after/") {
            Some(n) => n.parse().unwrap(),
            None => return Reply::status(400, "bad token"),
        },
    };
    let items = people(start, 2);
    let mut body = json!({"items": items});
    if start + 2 < 5 {
        body["nextPageToken"] = json!(format!("after/{}", start + 2));
    }
    Reply::json(body.to_string())
}

#[tokio::test]
async fn page_tokens_from_the_body_are_sent_back_as_a_query_parameter() {
    let server = Server::start(|seen, _, _| token_page(seen)).await;
    let mut config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/v1/people?view=full\"\npaging = \"page_token\"");
    config.records = Some("items".to_string());
    let read = read(&config, None).await.unwrap();
    assert_eq!(rendered(&read, &server), format!("rows_seen 5 complete false\n{PEOPLE_READ}"));
    let tokens: Vec<Option<String>> =
        server.requests().iter().map(|seen| seen.params.get("pageToken").cloned()).collect();
    assert_eq!(tokens, [None, Some("after/2".to_string()), Some("after/4".to_string())]);
    assert!(server.requests().iter().all(|seen| seen.params.get("view").map(String::as_str) == Some("full")));
}

#[tokio::test]
async fn a_page_token_that_comes_back_is_a_loop_that_fails_the_read() {
    let server =
        Server::start(|_, _, _| Reply::json(json!({"items": people(0, 1), "nextPageToken": "same"}).to_string())).await;
    let mut config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/v1/people\"\npaging = \"page_token\"");
    config.records = Some("items".to_string());
    let message = error_text(read(&config, None).await);
    assert!(
        message.contains("page 2 (")
            && message.contains("the page token at \"nextPageToken\" is the one that led to page 2 already")
            && message.ends_with("nothing from this source is used"),
        "{message}"
    );
    assert_eq!(server.hits("/v1/people"), 2);
}

/// An API that links each page to the next, in the body (`links.next`) or in a `Link` header.
fn linked_page(seen: &Seen, base: &str, in_header: bool) -> Reply {
    let start: usize = seen.params.get("from").map_or(0, |from| from.parse().unwrap());
    let mut body = json!({"results": people(start, 2), "links": {"self": format!("{base}{}", seen.path)}});
    let next = (start + 2 < 5).then(|| format!("{base}/api/v2/people?from={}", start + 2));
    match (next, in_header) {
        (Some(next), true) => Reply::json(body.to_string()).with("link", format!("<{next}>; rel=\"next\"")),
        (Some(next), false) => {
            body["links"]["next"] = json!(next);
            Reply::json(body.to_string())
        }
        (None, _) => Reply::json(body.to_string()),
    }
}

#[tokio::test]
async fn next_links_are_followed_from_the_body_or_the_link_header() {
    for in_header in [false, true] {
        let server = Server::start(move |seen, _, base| linked_page(seen, base, in_header)).await;
        let next_field = if in_header { "" } else { "next_field = \"links.next\"" };
        let mut config = config(
            &server,
            "id",
            &PEOPLE_COLUMNS,
            &format!("url = \"/api/v2/people\"\npaging = \"next_link\"\n{next_field}"),
        );
        config.records = Some("results".to_string());
        let read = read(&config, None).await.unwrap();
        assert_eq!(
            rendered(&read, &server),
            format!("rows_seen 5 complete false\n{PEOPLE_READ}"),
            "in header: {in_header}"
        );
        assert_eq!(server.hits("/api/v2/people"), 3, "in header: {in_header}");
    }
}

#[tokio::test]
async fn a_next_link_to_another_server_is_refused_before_any_credentials_go_there() {
    let server = Server::start(|_, _, _| {
        Reply::json(json!({"results": people(0, 1), "links": {"next": "http://127.0.0.2:9/steal"}}).to_string())
    })
    .await;
    let mut config = config(
        &server,
        "id",
        &PEOPLE_COLUMNS,
        "url = \"/api/v2/people\"\npaging = \"next_link\"\nnext_field = \"links.next\"\nauth = { kind = \"bearer\", token = \"env:T\" }",
    );
    config.records = Some("results".to_string());
    let message = error_text(read(&config, Some("tok-123")).await);
    assert!(message.contains("the next link leads to http://127.0.0.2:9; expected a page on"), "{message}");
}

#[tokio::test]
async fn the_page_bound_fails_a_read_with_more_pages() {
    let server = Server::start(|seen, _, base| linked_page(seen, base, true)).await;
    let mut config =
        config(&server, "id", &PEOPLE_COLUMNS, "url = \"/api/v2/people\"\npaging = \"next_link\"\nmax_pages = 2");
    config.records = Some("results".to_string());
    let message = error_text(read(&config, None).await);
    assert!(message.contains("page 3 (") && message.contains("more than 2 pages (max_pages)"), "{message}");
    assert_eq!(server.hits("/api/v2/people"), 2, "page 3 is never asked for");
}

#[tokio::test]
async fn a_page_over_the_byte_bound_fails_the_read() {
    let server = Server::start(|_, _, _| Reply::json(json!({"Report_Entry": people(0, 5)}).to_string())).await;
    let mut config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/report\"\nmax_page_bytes = 100");
    config.records = Some("Report_Entry".to_string());
    let message = error_text(read(&config, None).await);
    assert!(
        message.contains("page 1 (") && message.contains("expected at most 100 bytes (max_page_bytes)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_page_that_is_not_json_fails_the_read_with_where_it_breaks() {
    let server = Server::start(|seen, _, _| match seen.params.get("from") {
        None => Reply::json(json!({"results": people(0, 2)}).to_string()).with("link", "</api?from=2>; rel=\"next\""),
        Some(_) => Reply {
            status: 200,
            headers: vec![("content-type", "text/html".to_string())],
            body: "<html>Maintenance</html>".to_string(),
        },
    })
    .await;
    let mut config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/api\"\npaging = \"next_link\"");
    config.records = Some("results".to_string());
    let message = error_text(read(&config, None).await);
    assert!(
        message.contains("page 2 (")
            && message.contains(
                "expected a JSON document (its Content-Type is \"text/html\"), but it does not parse at line 1 column 1"
            ),
        "{message}"
    );
}

#[tokio::test]
async fn a_page_without_the_records_says_where_they_probably_are() {
    let server = Server::start(|_, _, _| Reply::json(json!({"Report_Entry": people(0, 1)}).to_string())).await;
    let mut config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/report\"");
    config.records = Some("data".to_string());
    let message = error_text(read(&config, None).await);
    assert!(message.contains("expected an array of records at \"data\" (records), found no \"data\" in the document; the records are probably at \"Report_Entry\""), "{message}");
}

#[tokio::test]
async fn too_many_requests_is_retried_after_what_retry_after_asks() {
    let server = Server::start(|seen, before, _| {
        let tries = before.iter().filter(|earlier| earlier.params == seen.params).count();
        match (seen.params.get("from"), tries) {
            // Each page is refused once: the retry must come back for the same page.
            (_, 0) => Reply::status(429, "slow down").with("retry-after", "0"),
            (None, _) => {
                Reply::json(json!({"results": people(0, 2)}).to_string()).with("link", "</api?from=2>; rel=\"next\"")
            }
            (Some(_), _) => Reply::json(json!({"results": people(2, 3)}).to_string()),
        }
    })
    .await;
    let mut config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/api\"\npaging = \"next_link\"");
    config.records = Some("results".to_string());
    let read = read(&config, None).await.unwrap();
    assert_eq!(read.records.len(), 5);
    let pages: Vec<Option<String>> = server.requests().iter().map(|seen| seen.params.get("from").cloned()).collect();
    assert_eq!(pages, [None, None, Some("2".to_string()), Some("2".to_string())]);
}

#[tokio::test]
async fn a_retry_after_beyond_the_read_s_wait_budget_fails_at_once() {
    let server = Server::start(|_, _, _| Reply::status(429, "").with("retry-after", "3600")).await;
    let config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/api\"\nmax_retry_wait_seconds = 60");
    let message = error_text(read(&config, None).await);
    assert!(message.contains("the API answered 429 Too Many Requests and asked to wait 3600 s before trying again, more than the 60 s left"), "{message}");
    assert_eq!(server.hits("/api"), 1);
}

#[tokio::test]
async fn a_transient_503_recovers_and_the_read_goes_on() {
    let server = Server::start(|seen, before, _| match (seen.params.get("from"), before.len()) {
        (None, _) => {
            Reply::json(json!({"results": people(0, 2)}).to_string()).with("link", "</api?from=2>; rel=\"next\"")
        }
        (Some(_), 1 | 2) => Reply::status(503, "busy"),
        (Some(_), _) => Reply::json(json!({"results": people(2, 3)}).to_string()),
    })
    .await;
    let mut config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/api\"\npaging = \"next_link\"");
    config.records = Some("results".to_string());
    let read = read(&config, None).await.unwrap();
    assert_eq!(
        rendered(&read, &server),
        format!("rows_seen 5 complete false\n{}", PEOPLE_READ.replace("line 1 row 5", "line 3 row 5"))
    );
    assert_eq!(server.hits("/api"), 4, "page 1, page 2 refused twice, page 2");
}

#[tokio::test]
async fn a_500_that_persists_in_the_middle_of_paging_fails_the_whole_read() {
    let server = Server::start(|seen, _, _| match seen.params.get("from") {
        None => Reply::json(json!({"results": people(0, 2)}).to_string()).with("link", "</api?from=2>; rel=\"next\""),
        Some(_) => Reply::status(500, "Internal Server Error"),
    })
    .await;
    let mut config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/api\"\npaging = \"next_link\"\nmax_attempts = 3");
    config.records = Some("results".to_string());
    config.complete = true;
    let result = read(&config, None).await;
    let Err(Error::Rest { page, status, .. }) = &result else { panic!("expected a REST error, got {result:?}") };
    assert_eq!((*page, *status), (Some(2), Some(500)));
    let message = error_text(result);
    assert!(
        message.contains("page 2 (")
            && message.contains(
                "?from=***): the API answered 500 Internal Server Error on each of 3 attempt(s) (max_attempts)"
            ),
        "{message}"
    );
    assert_eq!(server.hits("/api"), 4, "page 1 once, page 2 three times");
}

#[tokio::test]
async fn an_unreachable_api_fails_after_its_attempts_naming_the_url() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server { base: format!("http://127.0.0.1:{port}"), log: Arc::default() };
    let config = config(&server, "id", &PEOPLE_COLUMNS, "url = \"/api\"\nmax_attempts = 2");
    let message = error_text(read(&config, None).await);
    assert!(
        message
            .contains(&format!("http://127.0.0.1:{port}/api): the API could not be reached on each of 2 attempt(s)")),
        "{message}"
    );
}

#[tokio::test]
async fn basic_authentication_sends_the_user_and_password() {
    let server = Server::start(|seen, _, _| match seen.authorization.as_deref() {
        // "roster:pa55 word" in base64.
        Some("Basic cm9zdGVyOnBhNTUgd29yZA==") => Reply::json(json!({"Report_Entry": people(0, 1)}).to_string()),
        _ => Reply::status(401, "who are you?"),
    })
    .await;
    let mut config = config(
        &server,
        "id",
        &PEOPLE_COLUMNS,
        "url = \"/report\"\nauth = { kind = \"basic\", username = \"roster\", password = \"env:P\" }",
    );
    config.records = Some("Report_Entry".to_string());
    assert_eq!(read(&config, Some("pa55 word")).await.unwrap().records.len(), 1);
    let message = error_text(read(&config, Some("wrong")).await);
    assert!(
        message.contains(
            "the API answered 401 Unauthorized (\"who are you?\"); expected a success (2xx); check the credentials"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn secrets_never_show_in_messages_even_when_the_api_echoes_them() {
    let server = Server::start(|seen, _, _| {
        Reply::status(
            403,
            &format!("forbidden for {} at ?api_key=k3y-s3cret", seen.authorization.clone().unwrap_or_default()),
        )
    })
    .await;
    let mut config = config(
        &server,
        "id",
        &PEOPLE_COLUMNS,
        "url = \"/report?api_key=k3y-s3cret&format=json\"\nauth = { kind = \"bearer\", token = \"env:T\" }",
    );
    config.records = Some("Report_Entry".to_string());
    let message = error_text(read(&config, Some("tok-s3cret-value")).await);
    assert!(!message.contains("tok-s3cret-value"), "{message}");
    assert!(message.contains("/report?api_key=***&format=json"), "{message}");
    assert!(message.contains("forbidden for Bearer ***"), "{message}");
}

/// An OAuth 2.0 token endpoint that hands out `token-1`, `token-2`, ... for client `roster` with
/// secret `cl1ent-s3cret`, each valid for `lifetime` seconds as far as it says, and an API that
/// accepts only the latest token and, when `expire_after_first_page`, declares the first token
/// expired after one page.
fn oauth(seen: &Seen, before: &[Seen], lifetime: u64, expire_after_first_page: bool) -> Reply {
    let tokens_issued = before.iter().filter(|earlier| earlier.path == "/oauth2/token").count();
    if seen.path == "/oauth2/token" {
        let form: HashMap<String, String> = url_pairs(&seen.body).into_iter().collect();
        // "roster:cl1ent-s3cret" in base64.
        let client_ok = seen.authorization.as_deref() == Some("Basic cm9zdGVyOmNsMWVudC1zM2NyZXQ=");
        if !client_ok || form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return Reply::status(
                401,
                r#"{"error": "invalid_client", "error_description": "Client authentication failed"}"#,
            );
        }
        assert_eq!(form.get("scope").map(String::as_str), Some("workers.read"));
        return Reply::json(
            json!({"access_token": format!("token-{}", tokens_issued + 1), "token_type": "Bearer", "expires_in": lifetime})
                .to_string(),
        );
    }
    let pages_served_with_token_1 = before
        .iter()
        .filter(|earlier| earlier.authorization.as_deref() == Some("Bearer token-1") && earlier.path == "/api")
        .count();
    let current = format!("Bearer token-{tokens_issued}");
    let expired = expire_after_first_page
        && seen.authorization.as_deref() == Some("Bearer token-1")
        && pages_served_with_token_1 >= 1;
    if seen.authorization.as_deref() != Some(current.as_str()) || expired {
        return Reply::status(401, r#"{"error": "invalid_token"}"#)
            .with("www-authenticate", "Bearer error=\"invalid_token\"");
    }
    let start: usize = seen.params.get("from").map_or(0, |from| from.parse().unwrap());
    let reply = Reply::json(json!({"results": people(start, 2)}).to_string());
    match start + 2 < 5 {
        true => reply.with("link", format!("</api?from={}>; rel=\"next\"", start + 2)),
        false => reply,
    }
}

fn oauth_config(server: &Server) -> SourceConfig {
    let mut config = config(
        server,
        "id",
        &PEOPLE_COLUMNS,
        r#"url = "/api"
paging = "next_link"
auth = { kind = "oauth2", token_url = "/oauth2/token", client_id = "roster", client_secret = "env:S", scope = "workers.read" }"#,
    );
    config.records = Some("results".to_string());
    config
}

fn sequence(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|seen| match seen.path.as_str() {
            "/oauth2/token" => "token".to_string(),
            _ => format!(
                "{} {}",
                seen.params.get("from").map_or("page 1", |_| "next"),
                seen.authorization.clone().unwrap_or_default()
            ),
        })
        .collect()
}

#[tokio::test]
async fn oauth2_client_credentials_get_a_token_once_and_keep_it() {
    let server = Server::start(|seen, before, _| oauth(seen, before, 3600, false)).await;
    let read = read(&oauth_config(&server), Some("cl1ent-s3cret")).await.unwrap();
    assert_eq!(rendered(&read, &server), format!("rows_seen 5 complete false\n{PEOPLE_READ}"));
    assert_eq!(sequence(&server), ["token", "page 1 Bearer token-1", "next Bearer token-1", "next Bearer token-1"]);
    assert!(server.requests().iter().all(|seen| seen.method == "GET" || seen.path == "/oauth2/token"));
}

#[tokio::test]
async fn a_token_refused_mid_read_is_refreshed_once_and_the_page_asked_again() {
    let server = Server::start(|seen, before, _| oauth(seen, before, 3600, true)).await;
    let read = read(&oauth_config(&server), Some("cl1ent-s3cret")).await.unwrap();
    assert_eq!(read.records.len(), 5);
    assert_eq!(
        sequence(&server),
        [
            "token",
            "page 1 Bearer token-1",
            "next Bearer token-1",
            "token",
            "next Bearer token-2",
            "next Bearer token-2"
        ]
    );
}

#[tokio::test]
async fn a_token_that_expires_is_renewed_before_the_next_page() {
    // A lifetime within roster's safety margin: each page needs a new token.
    let server = Server::start(|seen, before, _| oauth(seen, before, 10, false)).await;
    let read = read(&oauth_config(&server), Some("cl1ent-s3cret")).await.unwrap();
    assert_eq!(read.records.len(), 5);
    assert_eq!(
        sequence(&server),
        ["token", "page 1 Bearer token-1", "token", "next Bearer token-2", "token", "next Bearer token-3"]
    );
}

#[tokio::test]
async fn a_refused_client_secret_fails_the_read_with_the_endpoint_s_reason_and_no_secret() {
    let server = Server::start(|seen, before, _| oauth(seen, before, 3600, false)).await;
    let message = error_text(read(&oauth_config(&server), Some("wr0ng-s3cret")).await);
    assert!(
        message.contains("/oauth2/token): while getting an access token for the page: the token endpoint (auth.token_url) answered 401 Unauthorized")
            && message.contains("(invalid_client: Client authentication failed); check auth.client_id and auth.client_secret"),
        "{message}"
    );
    assert!(!message.contains("wr0ng-s3cret"), "{message}");
    assert_eq!(server.hits("/api"), 0);
}

#[tokio::test]
async fn an_api_that_refuses_even_a_new_token_fails_the_read() {
    let server = Server::start(|seen, before, _| match seen.path.as_str() {
        "/oauth2/token" => oauth(seen, before, 3600, false),
        _ => Reply::status(401, ""),
    })
    .await;
    let message = error_text(read(&oauth_config(&server), Some("cl1ent-s3cret")).await);
    assert!(
        message.contains(
            "the API answered 401 Unauthorized; expected a success (2xx); the API refused a new access token too"
        ),
        "{message}"
    );
    // A token fetched for this very request and refused is the API's last word: no second token.
    assert_eq!(sequence(&server), ["token", "page 1 Bearer token-1"]);
}
