//! A stand-in for Microsoft Entra ID's API-driven inbound provisioning, which cannot run here: the
//! `bulkUpload` endpoint of a provisioning job and the provisioning logs, answering with the request
//! and response shapes and the throttling that Microsoft documents:
//!
//! - "Perform bulkUpload" (learn.microsoft.com/graph/api/synchronization-synchronizationjob-post-bulkupload)
//!   and "bulkUpload resource type" (learn.microsoft.com/graph/api/resources/synchronization-bulkupload):
//!   `POST /servicePrincipals/{id}/synchronization/jobs/{jobId}/bulkUpload`, `Content-Type:
//!   application/scim+json`, a SCIM BulkRequest of at most 50 `POST /Users` operations, answered
//!   `202 Accepted` with no body; a malformed request is a 400 (as "Troubleshoot inbound provisioning
//!   API issues" describes: wrong content type, a payload that does not follow the spec).
//! - "API-driven inbound provisioning concepts": 40 calls per 5 seconds, beyond which 429 with
//!   `Retry-After`.
//! - "List provisioningObjectSummary" (learn.microsoft.com/graph/api/provisioningobjectsummary-list)
//!   and the `provisioningObjectSummary`, `provisioningStatusInfo`, `provisioningErrorInfo` and
//!   `provisionedIdentity` resource types: `GET /auditLogs/provisioning?$filter=...`, paged with
//!   `@odata.nextLink`.
//!
//! Tokens come from the token endpoint of the Graph stand-in ([`crate::entra::EntraFake`]), which
//! this fake asks whether a bearer token is one it issued.
//!
//! It runs in a thread of its own (so a test can start the `roster` binary against it), records every
//! request, and writes one provisioning log entry per uploaded record once the upload is accepted:
//! `success`, or `failure` for a record without `userName` or one the test marked bad, or `skipped`
//! for a record the test marked so. A record the test withholds gets no entry (still pending).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The documented most operations in one bulk request.
pub const MAX_OPERATIONS: usize = 50;
/// The documented rate: this many calls per [`RATE_WINDOW`].
pub const RATE_LIMIT: usize = 40;
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// One request to the bulkUpload endpoint, as it came and as it was answered.
#[derive(Debug, Clone)]
pub struct Upload {
    pub at: Instant,
    pub status: u16,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    /// The request body, parsed (Null when it was not JSON).
    pub body: Value,
}

impl Upload {
    /// The operations of the request.
    pub fn operations(&self) -> Vec<Value> {
        self.body.get("Operations").and_then(Value::as_array).cloned().unwrap_or_default()
    }
}

/// What the test sets and what the fake saw.
#[derive(Default)]
pub struct FakeState {
    /// Every bulkUpload request, answered or refused, in order.
    pub uploads: Vec<Upload>,
    /// Every provisioning log request (its query string).
    pub log_reads: Vec<String>,
    /// Answer this many of the next uploads with 429 and `Retry-After: retry_after_seconds`,
    /// whatever the rate.
    pub throttle_next: u32,
    pub retry_after_seconds: u64,
    /// externalId -> (errorCode, reason): the record fails in Entra.
    pub bad: BTreeMap<String, (String, String)>,
    /// externalId -> reason: Entra skips the record.
    pub skip: BTreeMap<String, String>,
    /// externalIds whose log entries are not written (yet): their outcome stays unknown.
    pub withhold: BTreeSet<String>,

    /// Entries per log page.
    pub page_size: usize,
    /// The provisioning log, oldest first.
    pub logs: Vec<Value>,
    /// externalIds Entra holds a user for, with the user's object id.
    pub users: BTreeMap<String, String>,
    /// Times of the calls counted against the rate.
    calls: VecDeque<Instant>,
    next_id: u64,
}

/// The running fake.
pub struct EntraInboundFake {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

/// Whether a bearer token was issued by the shared token endpoint.
type TokenCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<FakeState>>,
    issued: TokenCheck,
}

pub const SERVICE_PRINCIPAL: &str = "sp-0001";

pub const JOB: &str = "API2AAD.0a1b2c3d.4e5f";

impl EntraInboundFake {
    /// Starts the fake on a free loopback port, in a thread with its own runtime, taking the
    /// tokens that `tokens`' endpoint issues.
    pub fn start(tokens: &crate::entra::EntraFake) -> anyhow::Result<EntraInboundFake> {
        let state = Arc::new(Mutex::new(FakeState { page_size: 20, retry_after_seconds: 1, ..FakeState::default() }));
        let shared = Shared { state: state.clone(), issued: Arc::new(tokens.token_checker()) };
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/v1.0/servicePrincipals/{sp}/synchronization/jobs/{job}/bulkUpload", post(bulk_upload))
            .route("/v1.0/auditLogs/provisioning", get(provisioning_logs))
            .with_state(shared);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        std::thread::spawn(move || {
            runtime.block_on(async move {
                if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                    let _ = axum::serve(listener, app).await;
                }
            })
        });
        Ok(EntraInboundFake { addr, state })
    }

    /// The Graph base URL, as the target's `url` takes it.
    pub fn graph_url(&self) -> String {
        format!("http://{}/v1.0", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most uploads the fake's own log holds within any [`RATE_WINDOW`].
    pub fn busiest_window(&self) -> usize {
        let times: Vec<Instant> = self.state().uploads.iter().map(|u| u.at).collect();
        (0..times.len())
            .map(|start| times[start..].iter().take_while(|t| t.duration_since(times[start]) < RATE_WINDOW).count())
            .max()
            .unwrap_or(0)
    }
}

fn scim_error(status: StatusCode, scim_type: &str, detail: &str) -> Response {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_u16().to_string(),
        "scimType": scim_type,
        "detail": detail,
    });
    (status, [(header::CONTENT_TYPE, "application/scim+json")], body.to_string()).into_response()
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    given.and_then(|v| v.strip_prefix("Bearer ")).is_some_and(|token| (shared.issued)(token))
}

/// Why a bulk request does not follow the documented shape, if it does not.
fn malformed(body: &Value) -> Option<String> {
    let schemas = body.get("schemas").and_then(Value::as_array)?;
    if !schemas.iter().any(|s| s == BULK_REQUEST_SCHEMA) {
        return Some(format!("schemas must hold {BULK_REQUEST_SCHEMA}"));
    }
    let Some(operations) = body.get("Operations").and_then(Value::as_array) else {
        return Some("Operations must be an array".into());
    };
    if operations.is_empty() {
        return Some("Operations is empty".into());
    }
    if operations.len() > MAX_OPERATIONS {
        return Some(format!(
            "the request holds {} operations; at most {MAX_OPERATIONS} are allowed in one request",
            operations.len()
        ));
    }
    for (i, op) in operations.iter().enumerate() {
        let data = op.get("data");
        let problem = if op.get("method").and_then(Value::as_str) != Some("POST") {
            "method must be POST"
        } else if op.get("path").and_then(Value::as_str) != Some("/Users") {
            "path must be /Users"
        } else if op.get("bulkId").and_then(Value::as_str).is_none_or(str::is_empty) {
            "bulkId is required"
        } else if !data
            .and_then(|d| d.get("schemas"))
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|s| s == USER_SCHEMA))
        {
            "data.schemas must hold the core User schema"
        } else if data.and_then(|d| d.get("externalId")).and_then(Value::as_str).is_none_or(str::is_empty) {
            "data.externalId is required (the matching identifier)"
        } else {
            continue;
        };
        return Some(format!("Operations[{i}]: {problem}"));
    }
    None
}

async fn bulk_upload(
    State(shared): State<Shared>,
    Path((sp, job)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let record = |s: &mut FakeState, status: u16| {
        s.uploads.push(Upload {
            at: now,
            status,
            content_type: content_type.clone(),
            authorization: authorization.clone(),
            body: parsed.clone(),
        })
    };
    if !authorized(&shared, &headers) {
        record(&mut s, 401);
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty or invalid.",
        );
    }
    if sp != SERVICE_PRINCIPAL || job != JOB {
        record(&mut s, 404);
        return graph_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "No such service principal or synchronization job.",
        );
    }
    while s.calls.front().is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW) {
        s.calls.pop_front();
    }
    let over_rate = s.calls.len() >= RATE_LIMIT;
    s.calls.push_back(now);
    if s.throttle_next > 0 || over_rate {
        s.throttle_next = s.throttle_next.saturating_sub(u32::from(!over_rate));
        let wait = if over_rate {
            let oldest = s.calls.front().copied().unwrap_or(now);
            RATE_WINDOW.saturating_sub(now.duration_since(oldest)).as_secs().max(1)
        } else {
            s.retry_after_seconds
        };
        record(&mut s, 429);
        let mut response = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests: 40 calls per 5 seconds are allowed.",
        );
        if let Ok(value) = wait.to_string().parse() {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    if content_type.as_deref().is_none_or(|t| !t.starts_with("application/scim+json")) {
        record(&mut s, 400);
        return scim_error(
            StatusCode::BAD_REQUEST,
            "invalidSyntax",
            "Invalid Data Format: Content-Type must be application/scim+json",
        );
    }
    if let Some(problem) = malformed(&parsed) {
        record(&mut s, 400);
        return scim_error(StatusCode::BAD_REQUEST, "invalidSyntax", &format!("Invalid Data Format: {problem}"));
    }
    record(&mut s, 202);
    let operations = parsed.get("Operations").and_then(Value::as_array).cloned().unwrap_or_default();
    let cycle = format!("cycle-{}", s.uploads.len());
    for op in &operations {
        log_entry(&mut s, &cycle, &op["data"]);
    }
    StatusCode::ACCEPTED.into_response()
}

/// Writes the provisioning log entry for one uploaded record, as Entra would once it processed it.
fn log_entry(s: &mut FakeState, cycle: &str, user: &Value) {
    let external = user.get("externalId").and_then(Value::as_str).unwrap_or_default().to_string();
    if s.withhold.contains(&external) {
        return;
    }
    s.next_id += 1;
    let display = user.get("displayName").and_then(Value::as_str).unwrap_or(&external).to_string();
    let missing_user_name = user.get("userName").and_then(Value::as_str).is_none_or(str::is_empty);
    let (status, error) = if let Some((code, reason)) = s.bad.get(&external) {
        ("failure", Some((code.clone(), reason.clone())))
    } else if missing_user_name {
        (
            "failure",
            Some((
                "AzureActiveDirectoryRequiredAttributeMissing".to_string(),
                "The required attribute userPrincipalName has no value: the source attribute userName is empty."
                    .to_string(),
            )),
        )
    } else if let Some(reason) = s.skip.get(&external) {
        ("skipped", Some(("SkipReason".to_string(), reason.clone())))
    } else {
        ("success", None)
    };
    let existing = s.users.get(&external).cloned();
    let action = match (&existing, user.get("active").and_then(Value::as_bool)) {
        (None, _) => "create",
        (Some(_), Some(false)) => "disable",
        (Some(_), _) => "update",
    };
    let object_id = match (status, existing) {
        (_, Some(id)) => Some(id),
        ("success", None) => {
            let id = format!("00000000-0000-4000-8000-{:012}", s.next_id);
            s.users.insert(external.clone(), id.clone());
            Some(id)
        }
        _ => None,
    };
    let at: chrono::DateTime<chrono::Utc> = SystemTime::now().into();
    s.logs.push(json!({
        "id": format!("prov-{:06}", s.next_id),
        "activityDateTime": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "jobId": JOB,
        "cycleId": cycle,
        "changeId": format!("change-{}", s.next_id),
        "durationInMilliseconds": 120,
        "provisioningAction": action,
        "provisioningStatusInfo": {
            "status": status,
            "errorInformation": error.map(|(code, reason)| json!({
                "errorCode": code,
                "errorCategory": "nonServiceFailure",
                "reason": reason,
                "additionalDetails": null,
                "recommendedAction": null,
            })),
        },
        "sourceIdentity": { "id": external, "displayName": display, "identityType": "User", "details": {} },
        "targetIdentity": { "id": object_id, "displayName": display, "identityType": "User", "details": {} },
        "servicePrincipal": { "id": SERVICE_PRINCIPAL, "displayName": "API-driven provisioning to Microsoft Entra ID" },
        "provisioningSteps": [],
        "modifiedProperties": [],
    }));
}

/// `$filter=jobId eq '<job>' [and activityDateTime gt <moment>]`: the clauses this fake understands.
fn parse_filter(filter: &str) -> Result<(String, Option<chrono::DateTime<chrono::Utc>>), String> {
    let mut job = None;
    let mut after = None;
    for clause in filter.split(" and ") {
        let words: Vec<&str> = clause.trim().splitn(3, ' ').collect();
        match words.as_slice() {
            ["jobId", "eq", value] => {
                job = Some(value.trim_matches('\'').to_string());
            }
            ["activityDateTime", "gt", value] => {
                let at = chrono::DateTime::parse_from_rfc3339(value)
                    .map_err(|e| format!("activityDateTime gt {value}: not a DateTimeOffset: {e}"))?;
                after = Some(at.to_utc());
            }
            _ => return Err(format!("unsupported filter clause {clause:?}")),
        }
    }
    job.map(|job| (job, after)).ok_or_else(|| "the filter must name the jobId".to_string())
}

async fn provisioning_logs(
    State(shared): State<Shared>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut s = shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    s.log_reads.push(serde_json::to_string(&query).unwrap_or_default());
    if !authorized(&shared, &headers) {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty or invalid.",
        );
    }
    let (job, after) = match query.get("$filter").map(|f| parse_filter(f)) {
        Some(Ok(parsed)) => parsed,
        Some(Err(problem)) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &problem),
        None => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "expected a $filter naming the jobId"),
    };
    let skip: usize = query.get("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let top = query.get("$top").and_then(|t| t.parse().ok()).unwrap_or(s.page_size).clamp(1, s.page_size.max(1));
    let matching: Vec<&Value> = s
        .logs
        .iter()
        .filter(|entry| entry["jobId"] == job.as_str())
        .filter(|entry| {
            let at = entry["activityDateTime"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            after.is_none_or(|after| at.is_some_and(|at| at.to_utc() > after))
        })
        .collect();
    let page: Vec<Value> = matching.iter().skip(skip).take(top).map(|v| (*v).clone()).collect();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/provisioning",
        "value": page,
    });
    if skip + top < matching.len() {
        let mut next = url_of(&headers, &query);
        next.query_pairs_mut().append_pair("$skiptoken", &(skip + top).to_string());
        body["@odata.nextLink"] = Value::String(next.to_string());
    }
    axum::Json(body).into_response()
}

/// This request's URL without its `$skiptoken`, for the next page's link.
fn url_of(headers: &HeaderMap, query: &BTreeMap<String, String>) -> url::Url {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    let mut url = url::Url::parse(&format!("http://{host}/v1.0/auditLogs/provisioning"))
        .unwrap_or_else(|_| url::Url::parse("http://127.0.0.1/v1.0/auditLogs/provisioning").expect("a URL"));
    for (key, value) in query.iter().filter(|(k, _)| k.as_str() != "$skiptoken") {
        url.query_pairs_mut().append_pair(key, value);
    }
    url
}
