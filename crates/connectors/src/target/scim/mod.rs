//! The SCIM 2.0 target (RFC 7643, RFC 7644): Users with the enterprise extension, and Groups.
//!
//! The planner is DN-centric, so this connector makes SCIM look DN-shaped to it: a User is an
//! entry whose synthetic DN is `externalId=<key>,ou=Users,<base>` (`id=<id>,...` while it has no
//! externalId), so a userName change is an attribute update, never a rename; a Group is
//! `displayName=<name>,ou=Groups,<base>`. Attribute names are SCIM paths ([`resource::AttrPath`]);
//! the enterprise `manager` holds the manager's DN, which the connector maps to and from SCIM ids.
//!
//! Writes: create is a POST; changes are PATCH with one operation per changed attribute (200 and
//! 204 both accepted); disable and enable set `active`; delete is a DELETE; group membership is a
//! PATCH of `members`. When the server's ServiceProviderConfig says it supports ETags, a PATCH of
//! an object read in this run carries `If-Match`, and a 412 is a [`ErrorKind::Conflict`]. A 429 or
//! 503 is tried again after `Retry-After` (or a doubling wait) within the configured bounds.

pub(crate) mod resource;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_MATCH};
use reqwest::{Method, Url};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::dn::{Dn, escape_dn_value, normalize_dn};
use roster_core::plan::{Action, Applied, AttrChange, Operation};
use roster_core::state::{TargetEntry, TargetGroup, TargetView};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use self::resource::{AttrPath, GROUP_SCHEMA, LIST_SCHEMA, PATCH_SCHEMA, filter_string, get, scalar};
use super::{Capabilities, ErrorKind, Target, TargetError};
use crate::http::{RetryPolicy, send_retrying, status_text};

/// Resources asked for per page of a list.
const PAGE_SIZE: usize = 200;
const MEDIA_TYPE: &str = "application/scim+json";
const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// How to reach a SCIM service and where its objects appear in the planner's DN space.
#[derive(Debug, Clone)]
pub struct ScimSettings {
    /// The target's name from the configuration.
    pub name: String,
    /// The SCIM base URL, under which `/Users`, `/Groups` and `/ServiceProviderConfig` are.
    pub url: String,
    /// The bearer token.
    pub token: SecretString,
    /// The synthetic suffix of users' and groups' DNs. Default `o=scim`.
    pub base: String,
    /// PEM file of the CA(s) to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` (tests, a loopback gateway). Off: only `https://`.
    pub allow_plaintext: bool,
    pub timeout: Duration,
    /// Attempts per request when the server answers 429 or 503 or cannot be reached.
    pub max_attempts: u32,
    /// Longest total wait for one request's retries.
    pub max_retry_wait: Duration,
    /// The first wait when the server gives no `Retry-After`; doubles each time.
    pub first_backoff: Duration,
}

impl ScimSettings {
    /// Settings with the defaults for everything but the name, URL and token.
    pub fn new(name: impl Into<String>, url: impl Into<String>, token: SecretString) -> ScimSettings {
        ScimSettings {
            name: name.into(),
            url: url.into(),
            token,
            base: "o=scim".to_string(),
            ca_file: None,
            allow_plaintext: false,
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            max_retry_wait: Duration::from_secs(120),
            first_backoff: Duration::from_secs(1),
        }
    }
}

/// What the server's ServiceProviderConfig (RFC 7643 §5) says it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerFeatures {
    pub etag: bool,
    pub patch: bool,
    /// `Some((maxOperations, maxPayloadSize))` when bulk requests are supported.
    pub bulk: Option<(u64, u64)>,
}

/// SCIM ids and DNs of what was read or created, and the versions read (for `If-Match`).
#[derive(Default)]
struct Directory {
    /// Normalized DN -> SCIM id (users and groups).
    ids: BTreeMap<String, String>,
    /// User id -> DN.
    user_dns: BTreeMap<String, String>,
    /// Id -> the version (`ETag`) last seen.
    versions: BTreeMap<String, String>,
}

pub struct ScimTarget {
    settings: ScimSettings,
    base_url: Url,
    users_dn: Dn,
    groups_dn: Dn,
    http: reqwest::Client,
    features: ServerFeatures,
    directory: Mutex<Directory>,
}

/// An answer: status, `ETag`, body.
struct Answer {
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl ScimTarget {
    /// Sets up the HTTP client and reads the server's ServiceProviderConfig.
    pub async fn connect(settings: ScimSettings) -> Result<ScimTarget, TargetError> {
        let config_error =
            |problem: String| TargetError::new(ErrorKind::Config, format!("target {}: {problem}", settings.name));
        let mut base_url = Url::parse(&settings.url).map_err(|e| {
            config_error(format!("url {:?}: expected a URL such as https://idp.example.org/scim/v2: {e}", settings.url))
        })?;
        if !base_url.path().ends_with('/') {
            base_url.set_path(&format!("{}/", base_url.path()));
        }
        if base_url.scheme() != "https" && !settings.allow_plaintext {
            return Err(config_error(format!(
                "url {}: expected https:// (the bearer token would travel in clear); allow_plaintext = true \
                 permits http://",
                base_url
            )));
        }
        let base = Dn::parse(&settings.base).map_err(|e| config_error(format!("base: {e}")))?;
        let http = crate::http::api_client(
            &settings.name,
            settings.ca_file.as_deref(),
            settings.allow_plaintext,
            settings.timeout,
        )
        .map_err(config_error)?;
        let mut target = ScimTarget {
            users_dn: base.child("ou", "Users"),
            groups_dn: base.child("ou", "Groups"),
            settings,
            base_url,
            http,
            features: ServerFeatures::default(),
            directory: Mutex::new(Directory::default()),
        };
        target.features = target.read_features().await?;
        Ok(target)
    }

    pub fn features(&self) -> ServerFeatures {
        self.features
    }

    async fn read_features(&self) -> Result<ServerFeatures, TargetError> {
        let url = self.url(&["ServiceProviderConfig"]);
        let answer = self.call(Method::GET, url.clone(), None, None, "the ServiceProviderConfig").await?;
        let config = self.expect_json(&answer, &url, "the ServiceProviderConfig")?;
        let supported =
            |name: &str| get(&config, name).and_then(|f| get(f, "supported")).and_then(Value::as_bool) == Some(true);
        let bulk = get(&config, "bulk").filter(|_| supported("bulk")).map(|bulk| {
            let number = |name| get(bulk, name).and_then(Value::as_u64).unwrap_or(0);
            (number("maxOperations"), number("maxPayloadSize"))
        });
        Ok(ServerFeatures { etag: supported("etag"), patch: supported("patch"), bulk })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.directory.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn error(&self, kind: ErrorKind, problem: impl std::fmt::Display) -> TargetError {
        TargetError::new(kind, format!("target {}: {problem}", self.settings.name))
    }

    /// Sends a request until an answer comes that is not a 429 or 503 (or the attempts or the wait
    /// are spent). `what` names the object for messages.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        if_match: Option<&str>,
        what: &str,
    ) -> Result<Answer, TargetError> {
        let shown = format!("{method} {} for {what}", url.path());
        let writes = method != Method::GET;
        let answer = send_retrying(&self.retry(), &[429, 503], writes, &shown, &self.settings.name, || {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.settings.token.expose_secret())
                .header(ACCEPT, MEDIA_TYPE);
            if let Some(body) = body {
                request = request.header(CONTENT_TYPE, MEDIA_TYPE).body(body.to_string());
            }
            if let Some(version) = if_match {
                request = request.header(IF_MATCH, version);
            }
            request
        })
        .await
        .map_err(|(kind, message)| self.error(kind, message))?;
        Ok(Answer { status: answer.status, etag: answer.header(ETAG).map(str::to_string), body: answer.body })
    }

    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.settings.max_attempts,
            max_wait: self.settings.max_retry_wait,
            first_backoff: self.settings.first_backoff,
        }
    }

    /// The error for an answer that is not a success, by its status.
    fn refused(&self, answer: &Answer, url: &Url, what: &str) -> TargetError {
        let body = answer.json();
        let detail = body.as_ref().and_then(|b| get(b, "detail")).and_then(scalar);
        let scim_type = body.as_ref().and_then(|b| get(b, "scimType")).and_then(scalar);
        let said = match (scim_type, detail) {
            (Some(t), Some(d)) => format!(" ({t}: {d})"),
            (None, Some(d)) => format!(" ({d})"),
            (Some(t), None) => format!(" ({t})"),
            (None, None) => String::new(),
        };
        let (kind, hint) = match answer.status {
            401 | 403 => (ErrorKind::Auth, "; check the token and its rights"),
            404 => (ErrorKind::Conflict, "; it no longer exists: plan again"),
            409 => (ErrorKind::Conflict, "; a unique value is taken: plan again"),
            412 => (ErrorKind::Conflict, "; it changed since it was read: plan again"),
            500..=599 => (ErrorKind::Unknown, "; the change may have happened"),
            _ => (ErrorKind::Permanent, ""),
        };
        self.error(
            kind,
            format!("{} for {what}: the server answered {}{said}{hint}", url.path(), status_text(answer.status)),
        )
    }

    fn expect_json(&self, answer: &Answer, url: &Url, what: &str) -> Result<Value, TargetError> {
        if !(200..300).contains(&answer.status) {
            return Err(self.refused(answer, url, what));
        }
        answer.json().filter(Value::is_object).ok_or_else(|| {
            self.error(ErrorKind::Permanent, format!("{} for {what}: expected a JSON object in the answer", url.path()))
        })
    }

    /// Every resource of `/Users` or `/Groups` (optionally filtered), page by page.
    async fn list(&self, endpoint: &str, filter: Option<&str>) -> Result<Vec<Value>, TargetError> {
        let mut resources = Vec::new();
        let mut start = 1usize;
        loop {
            let mut url = self.url(&[endpoint]);
            url.query_pairs_mut()
                .append_pair("startIndex", &start.to_string())
                .append_pair("count", &PAGE_SIZE.to_string());
            if let Some(filter) = filter {
                url.query_pairs_mut().append_pair("filter", filter);
            }
            let what = format!("the list of {endpoint}");
            let answer = self.call(Method::GET, url.clone(), None, None, &what).await?;
            let page = self.expect_json(&answer, &url, &what)?;
            if !get(&page, "schemas").and_then(Value::as_array).is_some_and(|s| s.iter().any(|s| s == LIST_SCHEMA)) {
                return Err(self.error(ErrorKind::Permanent, format!("{}: expected a ListResponse", url.path())));
            }
            let total = get(&page, "totalResults").and_then(Value::as_u64).unwrap_or(0) as usize;
            let items = get(&page, "Resources").and_then(Value::as_array).cloned().unwrap_or_default();
            let got = items.len();
            resources.extend(items);
            if got == 0 || resources.len() >= total {
                return Ok(resources);
            }
            start += got;
        }
    }

    fn user_dn(&self, user: &Value) -> Option<String> {
        let id = get(user, "id").and_then(scalar)?;
        Some(match get(user, "externalId").and_then(scalar) {
            Some(external) => self.users_dn.child("externalId", &external).to_string(),
            None => self.users_dn.child("id", &id).to_string(),
        })
    }

    /// The user as a planner's entry, with the attributes asked for (the manager as a DN).
    fn entry(&self, user: &Value, attrs: &[(AttrName, AttrPath)], directory: &Directory) -> Option<TargetEntry> {
        let id = get(user, "id").and_then(scalar)?;
        let dn = self.user_dn(user)?;
        let mut values = AttrMap::new();
        for (name, path) in attrs {
            let mut found = path.read(user);
            if path.is_manager() {
                found = found.iter().filter_map(|id| directory.user_dns.get(id).cloned()).collect();
            }
            if !found.is_empty() {
                values.insert(name.clone(), found);
            }
        }
        Some(TargetEntry { object_id: id, dn, attrs: values, protected: false })
    }

    fn remember(directory: &mut Directory, id: &str, dn: &str, user: bool, version: Option<String>) {
        directory.ids.insert(normalize_dn(dn), id.to_string());
        if user {
            directory.user_dns.insert(id.to_string(), dn.to_string());
        }
        match version {
            Some(version) => directory.versions.insert(id.to_string(), version),
            None => directory.versions.remove(id),
        };
    }

    fn version_of(resource: &Value, answer: &Answer) -> Option<String> {
        answer.etag.clone().or_else(|| get(resource, "meta").and_then(|m| get(m, "version")).and_then(scalar))
    }

    /// Reads the users and groups as a DN-shaped view.
    pub async fn read_view(&mut self, attrs: &[AttrName]) -> Result<TargetView, TargetError> {
        let paths = parse_paths(&self.settings.name, attrs)?;
        let users = self.list("Users", None).await?;
        let groups = self.list("Groups", None).await?;
        let mut directory = Directory::default();
        for user in &users {
            if let (Some(id), Some(dn)) = (get(user, "id").and_then(scalar), self.user_dn(user)) {
                let version = get(user, "meta").and_then(|m| get(m, "version")).and_then(scalar);
                Self::remember(&mut directory, &id, &dn, true, version);
            }
        }
        let mut view = TargetView { target: self.settings.name.clone(), ..TargetView::default() };
        for user in &users {
            if let Some(entry) = self.entry(user, &paths, &directory) {
                view.entries.push(entry);
            }
            if let Some(login) = get(user, "userName").and_then(scalar) {
                view.taken_logins.insert(login.to_lowercase());
            }
        }
        for group in &groups {
            let (Some(id), Some(name)) =
                (get(group, "id").and_then(scalar), get(group, "displayName").and_then(scalar))
            else {
                continue;
            };
            let dn = self.groups_dn.child("displayName", &name).to_string();
            let version = get(group, "meta").and_then(|m| get(m, "version")).and_then(scalar);
            Self::remember(&mut directory, &id, &dn, false, version);
            let members = get(group, "members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| get(m, "value").and_then(scalar))
                .map(|id| {
                    directory.user_dns.get(&id).cloned().unwrap_or_else(|| self.users_dn.child("id", &id).to_string())
                })
                .collect();
            view.groups.push(TargetGroup { object_id: id, dn, members });
        }
        view.containers = [self.users_dn.parent(), Some(self.users_dn.clone()), Some(self.groups_dn.clone())]
            .into_iter()
            .flatten()
            .map(|dn| dn.normalized())
            .collect();
        *self.lock() = directory;
        Ok(view)
    }

    /// Users whose `attr` (a SCIM path such as `externalId` or `userName`) equals `value`, found
    /// with a filter: how an existing account is found for adoption.
    pub async fn find_users(
        &self,
        attr: &str,
        value: &str,
        attrs: &[AttrName],
    ) -> Result<Vec<TargetEntry>, TargetError> {
        let path = AttrPath::parse(attr).map_err(|e| self.error(ErrorKind::Config, e))?;
        let paths = parse_paths(&self.settings.name, attrs)?;
        let filter = format!("{path} eq {}", filter_string(value));
        let users = self.list("Users", Some(&filter)).await?;
        let mut directory = self.lock();
        let mut entries = Vec::new();
        for user in &users {
            if let (Some(id), Some(dn)) = (get(user, "id").and_then(scalar), self.user_dn(user)) {
                let version = get(user, "meta").and_then(|m| get(m, "version")).and_then(scalar);
                Self::remember(&mut directory, &id, &dn, true, version);
            }
            entries.extend(self.entry(user, &paths, &directory));
        }
        Ok(entries)
    }

    /// The SCIM id of the object at `dn` (read or created in this run), or the planner's id.
    fn id_of(&self, dn: &str, planned: Option<&String>) -> Result<String, TargetError> {
        if let Some(id) = self.lock().ids.get(&normalize_dn(dn)) {
            return Ok(id.clone());
        }
        planned.cloned().ok_or_else(|| {
            self.error(ErrorKind::Conflict, format!("{dn}: no such user or group was read or created; plan again"))
        })
    }

    /// The resource for a new user from the planned attributes.
    fn user_resource(&self, dn: &str, attributes: &AttrMap, enabled: bool) -> Result<Value, TargetError> {
        resource::user_resource(attributes, enabled, |manager| self.id_of(manager, None))
            .map_err(|e| e.unwrap_or_else(|path_error| self.error(ErrorKind::Config, format!("{dn}: {path_error}"))))
    }

    async fn create(&self, dn: &str, attributes: &AttrMap, enabled: bool) -> Result<Applied, TargetError> {
        let body = self.user_resource(dn, attributes, enabled)?;
        let url = self.url(&["Users"]);
        let answer = self.call(Method::POST, url.clone(), Some(&body), None, dn).await?;
        let user = self.expect_json(&answer, &url, dn)?;
        let id = get(&user, "id")
            .and_then(scalar)
            .ok_or_else(|| self.error(ErrorKind::Unknown, format!("{dn}: the server created a user but gave no id")))?;
        let dn = self.user_dn(&user).unwrap_or_else(|| dn.to_string());
        let paths = parse_paths(&self.settings.name, &attributes.keys().cloned().collect::<Vec<_>>())?;
        let mut directory = self.lock();
        Self::remember(&mut directory, &id, &dn, true, Self::version_of(&user, &answer));
        Ok(Applied { entry: self.entry(&user, &paths, &directory) })
    }

    /// PATCH of `endpoint/id` with `ops`, with `If-Match` when the server supports ETags and the
    /// object's version is known; 200 and 204 are both success.
    async fn patch(&self, endpoint: &str, id: &str, ops: Vec<Value>, what: &str) -> Result<(), TargetError> {
        if ops.is_empty() {
            return Ok(());
        }
        let body = json!({ "schemas": [PATCH_SCHEMA], "Operations": ops });
        let url = self.url(&[endpoint, id]);
        let version = if self.features.etag { self.lock().versions.get(id).cloned() } else { None };
        let answer = self.call(Method::PATCH, url.clone(), Some(&body), version.as_deref(), what).await?;
        if !(200..300).contains(&answer.status) {
            return Err(self.refused(&answer, &url, what));
        }
        let resource = answer.json();
        let version = resource.as_ref().and_then(|r| Self::version_of(r, &answer)).or(answer.etag);
        let mut directory = self.lock();
        match version {
            Some(version) => directory.versions.insert(id.to_string(), version),
            None => directory.versions.remove(id),
        };
        Ok(())
    }

    fn patch_ops(&self, dn: &str, changes: &[AttrChange]) -> Result<Vec<Value>, TargetError> {
        changes
            .iter()
            .map(|change| {
                let path = AttrPath::parse(change.attr.as_str())
                    .map_err(|e| self.error(ErrorKind::Config, format!("{dn}: {e}")))?;
                if path.is_manager() {
                    let ids = |dns: &[String]| dns.iter().map(|m| self.id_of(m, None)).collect::<Result<Vec<_>, _>>();
                    return Ok(path.patch_op(&ids(&change.old).unwrap_or_default(), &ids(&change.new)?));
                }
                Ok(path.patch_op(&change.old, &change.new))
            })
            .collect()
    }

    async fn update(
        &self,
        dn: &str,
        planned: Option<&String>,
        changes: &[AttrChange],
        active: Option<bool>,
    ) -> Result<Applied, TargetError> {
        let id = self.id_of(dn, planned)?;
        let mut ops = self.patch_ops(dn, changes)?;
        if let Some(active) = active {
            ops.retain(|op| !op["path"].as_str().is_some_and(|p| p.eq_ignore_ascii_case("active")));
            ops.push(json!({ "op": "replace", "path": "active", "value": active }));
        }
        self.patch("Users", &id, ops, dn).await?;
        Ok(Applied { entry: None })
    }

    async fn delete(&self, dn: &str, planned: Option<&String>) -> Result<Applied, TargetError> {
        let id = self.id_of(dn, planned)?;
        let url = self.url(&["Users", &id]);
        let answer = self.call(Method::DELETE, url.clone(), None, None, dn).await?;
        // Gone already is what a delete wants.
        if !(200..300).contains(&answer.status) && answer.status != 404 {
            return Err(self.refused(&answer, &url, dn));
        }
        let mut directory = self.lock();
        directory.ids.remove(&normalize_dn(dn));
        directory.user_dns.remove(&id);
        directory.versions.remove(&id);
        Ok(Applied { entry: None })
    }

    fn group_name(&self, dn: &str) -> Result<String, TargetError> {
        let parsed = Dn::parse(dn).map_err(|e| self.error(ErrorKind::Config, e))?;
        match (parsed.rdn().and_then(|rdn| rdn.0.first()), parsed.parent()) {
            (Some(ava), Some(parent))
                if ava.attr.eq_ignore_ascii_case("displayName")
                    && parent.normalized() == self.groups_dn.normalized() =>
            {
                Ok(ava.value.clone())
            }
            _ => Err(self.error(
                ErrorKind::OutOfScope,
                format!("{dn}: expected a group DN displayName=<name>,{}", self.groups_dn),
            )),
        }
    }

    async fn create_group(&self, dn: &str, members: &[std::sync::Arc<str>]) -> Result<Applied, TargetError> {
        let name = self.group_name(dn)?;
        let members = members
            .iter()
            .map(|member| Ok(json!({ "value": self.id_of(member, None)? })))
            .collect::<Result<Vec<_>, TargetError>>()?;
        let body = json!({ "schemas": [GROUP_SCHEMA], "displayName": name, "members": members });
        let url = self.url(&["Groups"]);
        let answer = self.call(Method::POST, url.clone(), Some(&body), None, dn).await?;
        let group = self.expect_json(&answer, &url, dn)?;
        let id = get(&group, "id").and_then(scalar).ok_or_else(|| {
            self.error(ErrorKind::Unknown, format!("{dn}: the server created a group but gave no id"))
        })?;
        Self::remember(&mut self.lock(), &id, dn, false, Self::version_of(&group, &answer));
        Ok(Applied {
            entry: Some(TargetEntry { object_id: id, dn: dn.to_string(), attrs: AttrMap::new(), protected: false }),
        })
    }

    async fn membership(&self, group: &str, member: &str, add: bool) -> Result<Applied, TargetError> {
        let group_id = self.id_of(group, None)?;
        let member_id = self.id_of(member, None)?;
        let op = if add {
            json!({ "op": "add", "path": "members", "value": [{ "value": member_id }] })
        } else {
            json!({ "op": "remove", "path": format!("members[value eq {}]", filter_string(&member_id)) })
        };
        self.patch("Groups", &group_id, vec![op], group).await?;
        Ok(Applied { entry: None })
    }

    /// The user as it is now, for an adoption.
    async fn adopt(&self, dn: &str, id: &str) -> Result<Applied, TargetError> {
        let url = self.url(&["Users", id]);
        let answer = self.call(Method::GET, url.clone(), None, None, dn).await?;
        let user = self.expect_json(&answer, &url, dn)?;
        let dn = self.user_dn(&user).unwrap_or_else(|| dn.to_string());
        let mut directory = self.lock();
        Self::remember(&mut directory, id, &dn, true, Self::version_of(&user, &answer));
        Ok(Applied { entry: self.entry(&user, &[], &directory) })
    }

    /// One bulk operation (RFC 7644 §3.7) for `op`, or `None` when it is sent on its own.
    fn bulk_operation(&self, index: usize, op: &Operation) -> Result<Option<Value>, TargetError> {
        let patch = |dn: &str, planned: Option<&String>, changes: &[AttrChange], active: Option<bool>| {
            let id = self.id_of(dn, planned)?;
            let mut ops = self.patch_ops(dn, changes)?;
            if let Some(active) = active {
                ops.push(json!({ "op": "replace", "path": "active", "value": active }));
            }
            Ok::<_, TargetError>(Some(json!({
                "method": "PATCH", "path": format!("/Users/{id}"),
                "data": { "schemas": [PATCH_SCHEMA], "Operations": ops },
            })))
        };
        match &op.action {
            Action::Create { dn, attributes, enabled, .. } => Ok(Some(json!({
                "method": "POST", "path": "/Users", "bulkId": format!("op{index}"),
                "data": self.user_resource(dn, &attributes.to_map(), *enabled)?,
            }))),
            Action::Update { dn, object_id, changes } => patch(dn, object_id.as_ref(), changes, None),
            Action::Enable { dn, object_id, changes } => patch(dn, object_id.as_ref(), changes, Some(true)),
            Action::Disable { dn, object_id, changes } => patch(dn, object_id.as_ref(), changes, Some(false)),
            Action::Delete { dn, object_id } => {
                let id = self.id_of(dn, object_id.as_ref())?;
                Ok(Some(json!({ "method": "DELETE", "path": format!("/Users/{id}") })))
            }
            _ => Ok(None),
        }
    }

    /// Applies independent operations (none depends on another in the batch), in bulk requests when
    /// the server advertises bulk support, each within its `maxOperations` and `maxPayloadSize`;
    /// what bulk cannot carry (groups, adoptions) and every operation on a server without bulk is
    /// applied one by one. The results are in the order of `ops`.
    pub async fn apply_batch(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        let mut results: Vec<Option<Result<Applied, TargetError>>> = ops.iter().map(|_| None).collect();
        let mut pending: Vec<(usize, Value)> = Vec::new();
        if let Some((max_operations, max_payload)) = self.features.bulk.filter(|(ops, size)| *ops > 0 && *size > 0) {
            for (index, op) in ops.iter().enumerate() {
                match self.bulk_operation(index, op) {
                    Ok(Some(operation)) => pending.push((index, operation)),
                    Ok(None) => {}
                    Err(error) => results[index] = Some(Err(error)),
                }
            }
            let mut chunk: Vec<(usize, Value)> = Vec::new();
            let mut size = 0u64;
            for (index, operation) in pending.drain(..) {
                let length = operation.to_string().len() as u64 + 1;
                if !chunk.is_empty() && (chunk.len() as u64 >= max_operations || size + length + 200 > max_payload) {
                    self.send_bulk(ops, std::mem::take(&mut chunk), &mut results).await;
                    size = 0;
                }
                size += length;
                chunk.push((index, operation));
            }
            if !chunk.is_empty() {
                self.send_bulk(ops, chunk, &mut results).await;
            }
        }
        // What bulk did not carry goes one by one, all in flight at once.
        let singles: Vec<usize> = (0..ops.len()).filter(|index| results[*index].is_none()).collect();
        let answers = futures_util::future::join_all(singles.iter().map(|index| self.apply(&ops[*index]))).await;
        for (index, result) in singles.into_iter().zip(answers) {
            results[index] = Some(result);
        }
        results.into_iter().flatten().collect()
    }

    async fn send_bulk(
        &self,
        ops: &[Operation],
        chunk: Vec<(usize, Value)>,
        results: &mut [Option<Result<Applied, TargetError>>],
    ) {
        let body = json!({
            "schemas": [BULK_REQUEST_SCHEMA],
            "Operations": chunk.iter().map(|(_, operation)| operation.clone()).collect::<Vec<_>>(),
        });
        let url = self.url(&["Bulk"]);
        let what = format!("a bulk request of {} operation(s)", chunk.len());
        let answer = match self.call(Method::POST, url.clone(), Some(&body), None, &what).await {
            Ok(answer) => answer,
            Err(error) => {
                for (index, _) in &chunk {
                    results[*index] = Some(Err(error.clone()));
                }
                return;
            }
        };
        let answered = self.expect_json(&answer, &url, &what);
        let answers: Vec<Value> = match &answered {
            Ok(page) => get(page, "Operations").and_then(Value::as_array).cloned().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for (position, (index, sent)) in chunk.iter().enumerate() {
            let op = &ops[*index];
            let dn = op.action.dn();
            let reply = match sent.get("bulkId") {
                Some(bulk_id) => answers.iter().find(|a| a.get("bulkId") == Some(bulk_id)),
                None => answers.get(position),
            };
            let result = match (reply, &answered) {
                (_, Err(error)) => Err(error.clone()),
                (None, _) => Err(self.error(
                    ErrorKind::Unknown,
                    format!("{dn}: the bulk answer has no result for this operation; it may have happened"),
                )),
                (Some(reply), _) => self.bulk_result(op, dn, reply),
            };
            results[*index] = Some(result);
        }
    }

    /// The outcome of one operation of a bulk answer.
    fn bulk_result(&self, op: &Operation, dn: &str, reply: &Value) -> Result<Applied, TargetError> {
        let status = get(reply, "status").and_then(scalar).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        let response = get(reply, "response").cloned().unwrap_or(Value::Null);
        let answer =
            Answer { status, etag: get(reply, "version").and_then(scalar), body: response.to_string().into_bytes() };
        let gone_already = status == 404 && matches!(op.action, Action::Delete { .. });
        if !(200..300).contains(&status) && !gone_already {
            return Err(self.refused(&answer, &self.url(&["Bulk"]), dn));
        }
        match &op.action {
            Action::Create { attributes, .. } => {
                let id = get(&response, "id").and_then(scalar).or_else(|| {
                    get(reply, "location").and_then(scalar).and_then(|l| l.rsplit('/').next().map(str::to_string))
                });
                let Some(id) = id else {
                    return Err(
                        self.error(ErrorKind::Unknown, format!("{dn}: the server created a user but gave no id"))
                    );
                };
                let paths = parse_paths(&self.settings.name, &attributes.keys().cloned().collect::<Vec<_>>())?;
                // A bulk answer's `response` may be partial: the planned DN is the one sent.
                let user = if response.is_object() { response } else { json!({ "id": id }) };
                let dn = dn.to_string();
                let mut directory = self.lock();
                Self::remember(&mut directory, &id, &dn, true, Self::version_of(&user, &answer));
                let entry = self.entry(&user, &paths, &directory).map(|mut entry| {
                    entry.object_id = id.clone();
                    entry.dn = dn.clone();
                    entry
                });
                Ok(Applied { entry })
            }
            _ => Ok(Applied { entry: None }),
        }
    }

    pub async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        match &op.action {
            Action::Create { dn, attributes, enabled, .. } => self.create(dn, &attributes.to_map(), *enabled).await,
            Action::Update { dn, object_id, changes } => self.update(dn, object_id.as_ref(), changes, None).await,
            Action::Enable { dn, object_id, changes } => self.update(dn, object_id.as_ref(), changes, Some(true)).await,
            Action::Disable { dn, object_id, changes } => {
                self.update(dn, object_id.as_ref(), changes, Some(false)).await
            }
            Action::Delete { dn, object_id } => self.delete(dn, object_id.as_ref()).await,
            Action::Adopt { dn, object_id } => self.adopt(dn, object_id).await,
            Action::CreateGroup { dn, members, .. } => self.create_group(dn, members).await,
            Action::AddMember { group, member } => self.membership(group, member, true).await,
            Action::RemoveMember { group, member } => self.membership(group, member, false).await,
            // The users' and groups' containers exist by construction.
            Action::CreateContainer { .. } => Ok(Applied { entry: None }),
            Action::Rename { dn, .. } => Err(self.error(
                ErrorKind::Permanent,
                format!("{dn}: a SCIM target does not rename (its DNs are synthetic); change userName instead"),
            )),
            Action::SetPassword { dn, .. } => Err(self.error(
                ErrorKind::Permanent,
                format!("{dn}: a SCIM target does not set passwords (the identity provider's sign-in does)"),
            )),
        }
    }
}

fn parse_paths(target: &str, attrs: &[AttrName]) -> Result<Vec<(AttrName, AttrPath)>, TargetError> {
    attrs
        .iter()
        .filter(|name| !name.is("objectClass"))
        .map(|name| {
            AttrPath::parse(name.as_str())
                .map(|path| (name.clone(), path))
                .map_err(|e| TargetError::new(ErrorKind::Config, format!("target {target}: {e}")))
        })
        .collect()
}

impl Target for ScimTarget {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { rename: false, disable: true, groups: true, passwords: false }
    }

    fn read_view(&mut self, attrs: &[AttrName]) -> impl Future<Output = Result<TargetView, TargetError>> + Send {
        ScimTarget::read_view(self, attrs)
    }

    fn apply(&self, op: &Operation) -> impl Future<Output = Result<Applied, TargetError>> + Send {
        ScimTarget::apply(self, op)
    }

    fn set_password(
        &self,
        op: &Operation,
        _password: &SecretString,
    ) -> impl Future<Output = Result<Applied, TargetError>> + Send {
        ScimTarget::apply(self, op)
    }

    /// The server's `maxOperations` when it offers bulk requests (at most a thousand a request).
    fn batch_limit(&self) -> usize {
        match self.features.bulk {
            Some((max_operations, max_payload)) if max_operations > 0 && max_payload > 0 => {
                usize::try_from(max_operations).unwrap_or(usize::MAX).min(MAX_BATCH)
            }
            _ => 1,
        }
    }

    fn apply_batch(&self, ops: &[Operation]) -> impl Future<Output = Vec<Result<Applied, TargetError>>> + Send {
        ScimTarget::apply_batch(self, ops)
    }
}

/// The most operations the runner hands over at once, whatever the server's `maxOperations`: a
/// bulk request is answered as a whole, and a thousand answers at a time is plenty.
const MAX_BATCH: usize = 1000;

/// The user DN the planner's `dn` expression should give for the person with `key`.
pub fn user_dn(base: &str, key: &str) -> String {
    format!("externalId={},ou=Users,{base}", escape_dn_value(key))
}
