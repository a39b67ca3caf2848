//! Microsoft Entra ID's API-driven inbound provisioning as a target: roster sends each person's
//! record as a SCIM User (the enterprise extension, and any extension a mapping names) to a
//! provisioning job's `bulkUpload` endpoint, and Entra's provisioning service applies its own
//! attribute mappings and scoping rules to it, asynchronously (to Entra ID, or through the
//! provisioning agent to on-premises AD).
//!
//! What this means for roster:
//! - Every write is a `POST /Users` of the whole record in a SCIM BulkRequest of at most 50
//!   operations: Entra decides between create and update by the matching identifier
//!   (`externalId`), and a leaver is the record with `active = false`. There are no groups, no
//!   renames, no passwords and no deletes through this API.
//! - The API is write-only: Entra's users cannot be listed through it. The view is what roster
//!   last sent ([`EntraInboundTarget::recall`] hands it the store's links), so an unchanged person is
//!   not sent again, and a changed one is sent whole (the last values with the changes applied).
//! - Calls are paced to at most `rate_calls` per rolling `rate_window` (40 per 5 s, as documented),
//!   at most `daily_cap` per run; a 429 is tried again after `Retry-After`.
//! - "Applied" is decided by Entra's provisioning logs: after the upload is accepted (202), the
//!   logs (`GET /auditLogs/provisioning`) are read until each record's entry appears, for at most
//!   `log_wait`. `success` (and `warning`) is done; `skipped` is done, with Entra's reason logged;
//!   `failure` is an error carrying Entra's error code and reason; no entry in time is an
//!   [`ErrorKind::Unknown`] error (pending): the person's state is not recorded, so the next run
//!   sends the record again (an upsert by `externalId`, so nothing is duplicated) and checks again.
//!   With `log_wait` zero, an accepted upload is done and the outcome is only in Entra's logs.
//!
//! Users appear to the planner under synthetic DNs `externalId=<key>,ou=Users,<base>`, as for the
//! SCIM target.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::config::TargetConfig;
use roster_core::dn::{Dn, normalize_dn};
use roster_core::plan::{Action, Applied, Operation};
use roster_core::state::{Link, TargetEntry, TargetView};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::scim::resource::{self, get, scalar};
use super::{Capabilities, ErrorKind, Target, TargetError};
use crate::http::{Answer, RetryPolicy, send_retrying, status_text};
use crate::oauth::TokenSource;

/// The most operations Entra takes in one bulk request.
pub const MAX_BATCH: usize = 50;
const MEDIA_TYPE: &str = "application/scim+json";
const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// Log entries asked for per page.
const LOG_PAGE: usize = 500;
/// How far back the first read of the provisioning logs looks, and how far each later read
/// overlaps the one before (entries can be written out of order).
const LOG_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// How to reach a provisioning job, and how hard to use it.
#[derive(Debug, Clone)]
pub struct EntraInboundSettings {
    /// The target's name from the configuration.
    pub name: String,
    /// Microsoft Graph, `https://graph.microsoft.com/v1.0` (or a national cloud's).
    pub graph_url: String,
    /// The object id of the provisioning app's service principal.
    pub service_principal_id: String,
    /// The provisioning job's id (`API2AAD.…` or `API2AD.…`).
    pub job_id: String,
    /// The synthetic suffix of users' DNs. Default `o=entra-inbound`.
    pub base: String,
    /// Operations per bulk request, at most [`MAX_BATCH`].
    pub batch_size: usize,
    /// At most this many calls in any `rate_window`.
    pub rate_calls: usize,
    pub rate_window: Duration,
    /// At most this many bulk requests in one run; records beyond are refused (transient), so the
    /// next run sends them.
    pub daily_cap: u64,
    /// How long to read the provisioning logs for the outcome of what was sent; zero: not at all.
    pub log_wait: Duration,
    /// Pause between two reads of the provisioning logs.
    pub log_poll: Duration,
    /// How a request is tried again on 429, 503 or a connection failure.
    pub retry: RetryPolicy,
}

impl EntraInboundSettings {
    /// Settings with the documented limits and the defaults for everything but the job.
    pub fn new(
        name: impl Into<String>,
        graph_url: impl Into<String>,
        service_principal_id: impl Into<String>,
        job_id: impl Into<String>,
    ) -> EntraInboundSettings {
        EntraInboundSettings {
            name: name.into(),
            graph_url: graph_url.into(),
            service_principal_id: service_principal_id.into(),
            job_id: job_id.into(),
            base: "o=entra-inbound".to_string(),
            batch_size: MAX_BATCH,
            rate_calls: 40,
            rate_window: Duration::from_secs(5),
            daily_cap: 6_000,
            log_wait: Duration::from_secs(300),
            log_poll: Duration::from_secs(15),
            retry: RetryPolicy::default(),
        }
    }
}

/// What roster last sent for one user.
#[derive(Debug, Clone)]
struct Sent {
    object_id: String,
    dn: String,
    values: AttrMap,
    enabled: bool,
}

/// Calls within the rolling window, and calls in this run.
struct Pacer {
    /// Per call: its number, and when its answer came (`None` while in flight). A call leaves the
    /// window a whole window after its answer, not after its sending: Entra counted it somewhere
    /// in between, so only then is it sure to have left Entra's window too.
    calls: Mutex<VecDeque<(u64, Option<Instant>)>>,
    /// Calls made in this run.
    used: Mutex<u64>,
}

/// What the provisioning logs said so far.
#[derive(Default)]
struct Logs {
    /// Read entries after this moment next time.
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Entry ids already seen before the first upload, or already attributed to an upload.
    consumed: BTreeSet<String>,
    /// externalId -> entries not yet attributed, oldest first.
    waiting: BTreeMap<String, Vec<Value>>,
    last_read: Option<Instant>,
    /// Why the last read failed, for the pending records' message.
    last_error: Option<String>,
}

pub struct EntraInboundTarget {
    settings: EntraInboundSettings,
    /// Graph's base, ending in `/`: next links are followed only under it.
    graph: Url,
    bulk_url: Url,
    logs_url: Url,
    users_dn: Dn,
    http: reqwest::Client,
    tokens: TokenSource,
    pacer: Pacer,
    /// Normalized DN -> what roster last sent (from the store's links, then as uploads land).
    sent: Mutex<BTreeMap<String, Sent>>,
    logs: Mutex<Logs>,
    /// One reader of the logs at a time; the others wait for what it finds.
    reading: tokio::sync::Mutex<()>,
    /// The entries present before the first upload are not this run's outcomes.
    baseline: tokio::sync::OnceCell<()>,
}

/// One record to upload for one operation.
struct Record {
    index: usize,
    external_id: String,
    dn: String,
    values: AttrMap,
    enabled: bool,
    user: Value,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EntraInboundTarget {
    /// Sets the target up; nothing is sent until the first upload. `http` carries the TLS
    /// settings; `tokens` the OAuth2 client credentials (scope `https://graph.microsoft.com/.default`).
    pub fn new(
        settings: EntraInboundSettings,
        http: reqwest::Client,
        tokens: TokenSource,
    ) -> Result<EntraInboundTarget, TargetError> {
        let config_error =
            |problem: String| TargetError::new(ErrorKind::Config, format!("target {}: {problem}", settings.name));
        let mut graph = Url::parse(settings.graph_url.trim_end_matches('/')).map_err(|e| {
            config_error(format!(
                "url {:?}: expected Microsoft Graph's URL such as https://graph.microsoft.com/v1.0: {e}",
                settings.graph_url
            ))
        })?;
        let at = |segments: &[&str]| {
            let mut url = graph.clone();
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().extend(segments);
            }
            url
        };
        let bulk_url = at(&[
            "servicePrincipals",
            &settings.service_principal_id,
            "synchronization",
            "jobs",
            &settings.job_id,
            "bulkUpload",
        ]);
        let logs_url = at(&["auditLogs", "provisioning"]);
        graph.set_path(&format!("{}/", graph.path().trim_end_matches('/')));
        let base = Dn::parse(&settings.base).map_err(|e| config_error(format!("base: {e}")))?;
        if !(1..=MAX_BATCH).contains(&settings.batch_size) {
            return Err(config_error(format!(
                "batch_size: expected 1 to {MAX_BATCH} operations per request, found {}",
                settings.batch_size
            )));
        }
        Ok(EntraInboundTarget {
            graph,
            users_dn: base.child("ou", "Users"),
            bulk_url,
            logs_url,
            http,
            tokens,
            pacer: Pacer { calls: Mutex::new(VecDeque::new()), used: Mutex::new(0) },
            sent: Mutex::new(BTreeMap::new()),
            logs: Mutex::new(Logs::default()),
            reading: tokio::sync::Mutex::new(()),
            baseline: tokio::sync::OnceCell::new(),
            settings,
        })
    }

    fn error(&self, kind: ErrorKind, problem: impl std::fmt::Display) -> TargetError {
        TargetError::new(kind, format!("target {}: {problem}", self.settings.name))
    }

    /// What roster last sent, from the store's links of this target: the view the planner diffs
    /// against, since Entra's users cannot be read through this API.
    pub fn recall(&mut self, links: &[Link]) {
        let mut sent = lock(&self.sent);
        for link in links.iter().filter(|l| l.target == self.settings.name) {
            sent.insert(
                normalize_dn(&link.dn),
                Sent {
                    object_id: link.object_id.clone(),
                    dn: link.dn.clone(),
                    values: link.values.clone(),
                    enabled: link.enabled,
                },
            );
        }
    }

    /// The view: what roster last sent, as entries of the synthetic users' subtree.
    pub fn read_view(&self) -> TargetView {
        let sent = lock(&self.sent);
        let mut view = TargetView { target: self.settings.name.clone(), ..TargetView::default() };
        for user in sent.values() {
            if let Some(login) = user.values.get(&AttrName::new("userName")).and_then(|v| v.first()) {
                view.taken_logins.insert(login.to_lowercase());
            }
            view.entries.push(TargetEntry {
                object_id: user.object_id.clone(),
                dn: user.dn.clone(),
                attrs: user.values.clone(),
                protected: false,
            });
        }
        view.containers = [self.users_dn.parent(), Some(self.users_dn.clone())]
            .into_iter()
            .flatten()
            .map(|dn| dn.normalized())
            .collect();
        view
    }

    /// The externalId a user DN names: `externalId=<key>,ou=Users,<base>`.
    fn external_id(&self, dn: &str) -> Result<String, TargetError> {
        let parsed = Dn::parse(dn).map_err(|e| self.error(ErrorKind::Config, format!("{dn}: {e}")))?;
        match (parsed.rdn().and_then(|rdn| rdn.0.first()), parsed.parent()) {
            (Some(ava), Some(parent))
                if ava.attr.eq_ignore_ascii_case("externalId")
                    && parent.normalized() == self.users_dn.normalized()
                    && !ava.value.is_empty() =>
            {
                Ok(ava.value.clone())
            }
            _ => Err(self
                .error(ErrorKind::OutOfScope, format!("{dn}: expected a user DN externalId=<key>,{}", self.users_dn))),
        }
    }

    /// The record an operation sends, `None` for what needs no upload.
    fn record(&self, index: usize, op: &Operation) -> Result<Option<Record>, TargetError> {
        let refuse = |what: &str| {
            Err(self.error(ErrorKind::Permanent, format!("{}: API-driven inbound provisioning {what}", op.action.dn())))
        };
        let (dn, values, enabled) = match &op.action {
            Action::Create { dn, attributes, enabled, .. } => (&**dn, attributes.to_map(), *enabled),
            Action::Update { dn, changes, .. }
            | Action::Enable { dn, changes, .. }
            | Action::Disable { dn, changes, .. } => {
                let Some(last) = lock(&self.sent).get(&normalize_dn(dn)).cloned() else {
                    return Err(self.error(
                        ErrorKind::Conflict,
                        format!("{dn}: roster has no record of what it sent for this user; plan again"),
                    ));
                };
                let mut values = last.values;
                for change in changes {
                    if change.new.is_empty() {
                        values.remove(&change.attr);
                    } else {
                        values.insert(change.attr.clone(), change.new.clone());
                    }
                }
                let enabled = match &op.action {
                    Action::Enable { .. } => true,
                    Action::Disable { .. } => false,
                    _ => last.enabled,
                };
                (dn.as_str(), values, enabled)
            }
            // The users' container exists by construction.
            Action::CreateContainer { .. } => return Ok(None),
            Action::Delete { dn, .. } => {
                tracing::warn!(
                    target_name = %self.settings.name,
                    "{dn}: API-driven inbound provisioning cannot delete; the user stays as last sent (disabled) in Entra ID"
                );
                return Ok(None);
            }
            Action::Adopt { .. } => return refuse("cannot read Entra's users, so it adopts none"),
            Action::Rename { .. } => return refuse("does not rename (the DNs are synthetic); change userName instead"),
            Action::SetPassword { .. } => return refuse("sets no passwords (Entra's own sign-in does)"),
            Action::CreateGroup { .. } | Action::AddMember { .. } | Action::RemoveMember { .. } => {
                return refuse("provisions no groups (Entra's own rules do)");
            }
        };
        let external_id = self.external_id(dn)?;
        let mut user = resource::user_resource(&values, enabled, |manager| self.external_id(manager))
            .map_err(|e| e.unwrap_or_else(|path_error| self.error(ErrorKind::Config, format!("{dn}: {path_error}"))))?;
        if let Value::Object(fields) = &mut user {
            fields.insert("externalId".to_string(), Value::String(external_id.clone()));
        }
        Ok(Some(Record { index, external_id, dn: dn.to_string(), values, enabled, user }))
    }

    /// Waits for a place in the rolling window and takes it; refuses once the run's cap is spent.
    /// Returns the call's number, for [`Self::answered`].
    async fn pace(&self) -> Result<u64, TargetError> {
        let number = {
            let mut used = lock(&self.pacer.used);
            if *used >= self.settings.daily_cap {
                return Err(self.error(
                    ErrorKind::Transient,
                    format!(
                        "daily_cap = {} bulk requests reached in this run: not sent; the next run sends it",
                        self.settings.daily_cap
                    ),
                ));
            }
            *used += 1;
            *used
        };
        loop {
            let wait = {
                let mut calls = lock(&self.pacer.calls);
                let now = Instant::now();
                calls
                    .retain(|(_, answered)| answered.is_none_or(|t| now.duration_since(t) < self.settings.rate_window));
                if calls.len() < self.settings.rate_calls {
                    calls.push_back((number, None));
                    return Ok(number);
                }
                // The first answered call to leave the window; with all in flight, a short while.
                calls.iter().filter_map(|(_, answered)| *answered).min().map_or(Duration::from_millis(50), |t| {
                    self.settings.rate_window.saturating_sub(now.duration_since(t))
                })
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The call `number` came back (or failed): its place frees a window from now.
    fn answered(&self, number: u64) {
        let now = Instant::now();
        for (n, answered) in lock(&self.pacer.calls).iter_mut() {
            if *n == number {
                *answered = Some(now);
            }
        }
    }

    /// A request with a token; a 401 gets one new token and one more try.
    async fn call(&self, method: Method, url: &Url, body: Option<&Value>, what: &str) -> Result<Answer, TargetError> {
        let writes = method != Method::GET;
        let shown = format!("{method} {} for {what}", url.path());
        for fresh_token in [false, true] {
            if fresh_token {
                self.tokens.invalidate();
            }
            let token = self.tokens.token().await?;
            let answer = send_retrying(&self.settings.retry, &[429, 503], writes, &shown, &self.settings.name, || {
                let mut request = self
                    .http
                    .request(method.clone(), url.clone())
                    .bearer_auth(token.expose_secret())
                    .header(ACCEPT, "application/json");
                if let Some(body) = body {
                    request = request.header(CONTENT_TYPE, MEDIA_TYPE).body(body.to_string());
                }
                request
            })
            .await
            .map_err(|(kind, message)| self.error(kind, message))?;
            if answer.status != 401 || fresh_token {
                return Ok(answer);
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    /// The error for an answer that is not a success: Graph's error code and message.
    fn refused(&self, answer: &Answer, what: &str) -> TargetError {
        let body = answer.json();
        let error = body.as_ref().and_then(|b| b.get("error"));
        let code = error.and_then(|e| get(e, "code")).and_then(scalar);
        let message = error
            .and_then(|e| get(e, "message"))
            .or_else(|| body.as_ref().and_then(|b| get(b, "detail")))
            .and_then(scalar);
        let said = match (code, message) {
            (Some(c), Some(m)) => format!(" ({c}: {m})"),
            (None, Some(m)) => format!(" ({m})"),
            (Some(c), None) => format!(" ({c})"),
            (None, None) => String::new(),
        };
        let (kind, hint) = match answer.status {
            401 | 403 => (
                ErrorKind::Auth,
                "; the app needs SynchronizationData-User.Upload (uploads) and AuditLog.Read.All (provisioning logs)",
            ),
            404 => (ErrorKind::Config, "; check service_principal_id and job_id"),
            500..=599 => (ErrorKind::Unknown, "; the upload may have been accepted"),
            _ => (ErrorKind::Permanent, ""),
        };
        self.error(kind, format!("{what}: Entra answered {}{said}{hint}", status_text(answer.status)))
    }

    /// Uploads one bulk request; `Ok` when Entra accepted it.
    async fn upload(&self, chunk: &[Record]) -> Result<(), TargetError> {
        let number = self.pace().await?;
        let operations: Vec<Value> = chunk
            .iter()
            .map(|r| json!({ "method": "POST", "bulkId": format!("roster-{}", r.index), "path": "/Users", "data": r.user }))
            .collect();
        let body = json!({ "schemas": [BULK_REQUEST_SCHEMA], "Operations": operations });
        let what = format!("a bulk upload of {} record(s)", chunk.len());
        let answer = self.call(Method::POST, &self.bulk_url, Some(&body), &what).await;
        self.answered(number);
        let answer = answer?;
        if answer.is_success() { Ok(()) } else { Err(self.refused(&answer, &what)) }
    }

    /// Reads the provisioning log entries of the job written since the last read, page by page.
    async fn read_logs(&self) -> Result<(), TargetError> {
        let since = lock(&self.logs).since.unwrap_or_else(|| chrono::Utc::now() - LOG_OVERLAP);
        let mut url = self.logs_url.clone();
        let filter = format!(
            "jobId eq '{}' and activityDateTime gt {}",
            self.settings.job_id.replace('\'', "''"),
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        url.query_pairs_mut().append_pair("$filter", &filter).append_pair("$top", &LOG_PAGE.to_string());
        let mut latest = since;
        let mut entries = Vec::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let answer = self.call(Method::GET, &url, None, "the provisioning logs").await?;
            if !answer.is_success() {
                return Err(self.refused(&answer, "reading the provisioning logs"));
            }
            let page = answer.json().unwrap_or(Value::Null);
            let Some(values) = page.get("value").and_then(Value::as_array) else {
                return Err(self.error(
                    ErrorKind::Transient,
                    format!("{}: expected a JSON object with a value array", url.path()),
                ));
            };
            entries.extend(values.iter().cloned());
            next = super::graph::next_link(&page, &self.graph)
                .map_err(|problem| self.error(ErrorKind::Permanent, format!("the provisioning logs: {problem}")))?;
        }
        let mut logs = lock(&self.logs);
        for entry in entries {
            let (Some(id), Some(source)) = (
                get(&entry, "id").and_then(scalar),
                get(&entry, "sourceIdentity").and_then(|s| get(s, "id")).and_then(scalar),
            ) else {
                continue;
            };
            if let Some(at) = get(&entry, "activityDateTime")
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            {
                latest = latest.max(at.to_utc());
            }
            if logs.consumed.insert(id) {
                logs.waiting.entry(source).or_default().push(entry);
            }
        }
        logs.since = Some(latest - LOG_OVERLAP);
        logs.last_read = Some(Instant::now());
        Ok(())
    }

    /// Before the first upload: the entries already in the logs are not this run's outcomes.
    async fn mark_baseline(&self) {
        if self.settings.log_wait.is_zero() {
            return;
        }
        self.baseline
            .get_or_init(|| async {
                if let Err(error) = self.read_logs().await {
                    lock(&self.logs).last_error = Some(error.message);
                }
                let mut logs = lock(&self.logs);
                logs.waiting.clear();
            })
            .await;
    }

    /// The provisioning log entry of each of `keys`, as they appear within `log_wait`.
    async fn outcomes(&self, keys: &BTreeSet<String>) -> BTreeMap<String, Value> {
        let deadline = Instant::now() + self.settings.log_wait;
        let mut found = BTreeMap::new();
        loop {
            {
                let mut logs = lock(&self.logs);
                for key in keys {
                    if !found.contains_key(key)
                        && let Some(entries) = logs.waiting.get_mut(key)
                        && !entries.is_empty()
                    {
                        found.insert(key.clone(), entries.remove(0));
                    }
                }
            }
            let now = Instant::now();
            if found.len() == keys.len() || now >= deadline {
                return found;
            }
            let _reader = self.reading.lock().await;
            let due = lock(&self.logs)
                .last_read
                .map_or(Duration::ZERO, |t| self.settings.log_poll.saturating_sub(t.elapsed()));
            if due.is_zero() {
                match self.read_logs().await {
                    Ok(()) => lock(&self.logs).last_error = None,
                    Err(error) => {
                        tracing::warn!(target_name = %self.settings.name, "reading the provisioning logs: {error}");
                        let mut logs = lock(&self.logs);
                        logs.last_error = Some(error.message);
                        logs.last_read = Some(Instant::now());
                    }
                }
            } else {
                drop(_reader);
                tokio::time::sleep(due.min(deadline.saturating_duration_since(now))).await;
            }
        }
    }

    /// What Entra's log entry for `record` means for the operation.
    fn outcome(&self, op: &Operation, record: &Record, entry: Option<&Value>) -> Result<Applied, TargetError> {
        let key = &record.external_id;
        let Some(entry) = entry else {
            let why =
                lock(&self.logs).last_error.clone().map(|e| format!(" (reading them failed: {e})")).unwrap_or_default();
            return Err(self.error(
                ErrorKind::Unknown,
                format!(
                    "{}: the upload was accepted, but Entra's provisioning logs show no outcome for externalId {key} \
                     within log_wait_seconds = {}{why}: pending; the next run sends it again and checks",
                    record.dn,
                    self.settings.log_wait.as_secs()
                ),
            ));
        };
        let info = get(entry, "provisioningStatusInfo");
        let status = info.and_then(|i| get(i, "status")).and_then(scalar).unwrap_or_default();
        let error = info.and_then(|i| get(i, "errorInformation")).filter(|e| e.is_object());
        let field = |name: &str| error.and_then(|e| get(e, name)).and_then(scalar).filter(|v| !v.is_empty());
        let action = get(entry, "provisioningAction").and_then(scalar).unwrap_or_else(|| "?".into());
        let said = [field("errorCode"), field("reason"), field("additionalDetails")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        match status.to_ascii_lowercase().as_str() {
            "success" | "warning" | "skipped" => {
                if status.eq_ignore_ascii_case("skipped") || status.eq_ignore_ascii_case("warning") {
                    tracing::warn!(target_name = %self.settings.name, "{}: Entra's provisioning {status} {action} of externalId {key}: {said}", record.dn);
                }
                let object_id = get(entry, "targetIdentity").and_then(|t| get(t, "id")).and_then(scalar);
                let mut sent = lock(&self.sent);
                let object_id = object_id
                    .or_else(|| sent.get(&normalize_dn(&record.dn)).map(|s| s.object_id.clone()))
                    .unwrap_or_else(|| key.clone());
                sent.insert(
                    normalize_dn(&record.dn),
                    Sent {
                        object_id: object_id.clone(),
                        dn: record.dn.clone(),
                        values: record.values.clone(),
                        enabled: record.enabled,
                    },
                );
                let entry = matches!(op.action, Action::Create { .. }).then(|| TargetEntry {
                    object_id,
                    dn: record.dn.clone(),
                    attrs: record.values.clone(),
                    protected: false,
                });
                Ok(Applied { entry })
            }
            "failure" => Err(self.error(
                ErrorKind::Permanent,
                format!("{}: Entra's provisioning failed to {action} externalId {key}: {said}", record.dn),
            )),
            other => Err(self.error(
                ErrorKind::Unknown,
                format!("{}: Entra's provisioning log says {other:?} for externalId {key}: {said}", record.dn),
            )),
        }
    }

    /// Applies independent operations: their records in bulk requests of at most `batch_size`,
    /// paced, then their outcomes from the provisioning logs. The results are in the order of `ops`.
    pub async fn apply_batch(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        let mut results: Vec<Option<Result<Applied, TargetError>>> = ops.iter().map(|_| None).collect();
        let mut records = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            match self.record(index, op) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => results[index] = Some(Ok(Applied { entry: None })),
                Err(error) => results[index] = Some(Err(error)),
            }
        }
        if !records.is_empty() {
            self.mark_baseline().await;
        }
        let mut accepted = Vec::new();
        for chunk in records.chunks(self.settings.batch_size) {
            match self.upload(chunk).await {
                Ok(()) => accepted.extend(chunk),
                Err(error) => {
                    for record in chunk {
                        results[record.index] = Some(Err(error.clone()));
                    }
                }
            }
        }
        if self.settings.log_wait.is_zero() {
            for record in accepted {
                let entry = json!({ "provisioningStatusInfo": { "status": "success" } });
                results[record.index] = Some(self.outcome(&ops[record.index], record, Some(&entry)));
            }
        } else if !accepted.is_empty() {
            let keys: BTreeSet<String> = accepted.iter().map(|r| r.external_id.clone()).collect();
            let found = self.outcomes(&keys).await;
            for record in accepted {
                results[record.index] = Some(self.outcome(&ops[record.index], record, found.get(&record.external_id)));
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(self.error(ErrorKind::Unknown, "no result: a bug in roster"))))
            .collect()
    }

    pub async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        self.apply_batch(std::slice::from_ref(op))
            .await
            .pop()
            .unwrap_or_else(|| Err(self.error(ErrorKind::Unknown, "no result: a bug in roster")))
    }
}

impl Target for EntraInboundTarget {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { rename: false, disable: true, groups: false, passwords: false }
    }

    async fn read_view(&mut self, _attrs: &[AttrName]) -> Result<TargetView, TargetError> {
        Ok(EntraInboundTarget::read_view(self))
    }

    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        EntraInboundTarget::apply(self, op).await
    }

    async fn set_password(&self, op: &Operation, _password: &SecretString) -> Result<Applied, TargetError> {
        EntraInboundTarget::apply(self, op).await
    }

    fn batch_limit(&self) -> usize {
        self.settings.batch_size
    }

    async fn apply_batch(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        EntraInboundTarget::apply_batch(self, ops).await
    }
}

/// The target a `kind = "entra_inbound"` configuration describes; `secret` is the resolved client
/// secret or, with `entra.client_certificate`, the certificate's private key. Nothing is sent until
/// the first upload.
pub(super) fn connect(
    config: &TargetConfig,
    secret: SecretString,
    config_dir: &std::path::Path,
) -> Result<EntraInboundTarget, TargetError> {
    let (http, tokens, retry) = super::graph::sign_in(config, secret, config_dir)?;
    let inbound = config.inbound.as_ref().ok_or_else(|| {
        TargetError::new(ErrorKind::Config, format!("target {}: expected a [target.inbound] table", config.name))
    })?;
    let mut settings = EntraInboundSettings::new(
        config.name.clone(),
        config.url.clone(),
        inbound.service_principal_id.clone(),
        inbound.job_id.clone(),
    );
    settings.base = config.scim_base().to_string();
    settings.daily_cap = inbound.daily_cap;
    settings.log_wait = Duration::from_secs(inbound.log_wait_seconds);
    settings.log_poll = (settings.log_wait / 10).clamp(Duration::from_millis(200), settings.log_poll);
    settings.retry = retry;
    EntraInboundTarget::new(settings, http, tokens)
}
