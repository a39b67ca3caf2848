//! The Microsoft Graph target: users and group memberships of a cloud-only Entra ID organisation,
//! through Graph v1.0 with an application's OAuth2 client credentials ([`crate::oauth`]).
//!
//! As for SCIM, the planner sees DN-shaped entries: a user is `employeeId=<key>,ou=Users,<base>`
//! (`id=<id>,...` while it has no employeeId), its object id the Graph `id`; a group of
//! `groups` (by displayName) is `displayName=<name>,ou=Groups,<base>`. Attribute names are Graph
//! user properties (`displayName`, `usageLocation`, `businessPhones`, ...); `manager` holds the
//! manager's DN, sent and read as the manager's id.
//!
//! Users synced from on-premises AD (`onPremisesSyncEnabled`) are read-only in Graph: they are read
//! as protected, and a write to one is refused before anything is sent. Throttling (429, 503, 504)
//! is waited out as `Retry-After` asks; a 404 about a user created in this run (Entra replicates
//! for a moment) is asked again for up to `consistency_wait`; a 401 fetches a new token once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use ring::rand::{SecureRandom, SystemRandom};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::dn::{Dn, escape_dn_value, normalize_dn};
use roster_core::plan::{Action, Applied, AttrChange, Operation};
use roster_core::state::{TargetEntry, TargetGroup, TargetView};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::{Capabilities, ErrorKind, Target, TargetError};
use crate::http::{Answer, RetryPolicy, send_retrying, status_text};
use crate::oauth::TokenSource;

/// Graph's largest page of users and members.
const PAGE_SIZE: &str = "999";
/// Properties read for every user, whatever the mappings.
const ALWAYS_READ: [&str; 6] =
    ["id", "userPrincipalName", "mailNickname", "accountEnabled", "onPremisesSyncEnabled", "employeeId"];
/// User properties that are collections of strings.
const MULTI_VALUED: [&str; 4] = ["businessPhones", "otherMails", "imAddresses", "proxyAddresses"];
const MANAGER: &str = "manager";
/// Graph's answer to adding a member that is one already.
const ALREADY_MEMBER: &str = "already exist";

/// How to reach Graph and what this target manages.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// The target's name from the configuration.
    pub name: String,
    /// Graph's base, `https://graph.microsoft.com/v1.0`.
    pub url: String,
    /// The suffix of the synthetic DNs. Default `o=entra`.
    pub base: String,
    /// The groups (by displayName) whose memberships roster manages.
    pub groups: Vec<String>,
    /// Those of `groups` that assign licences: a member needs a usageLocation first.
    pub licensing_groups: Vec<String>,
    /// Revoke a disabled user's sign-in sessions (refresh tokens). Default true.
    pub revoke_sessions: bool,
    /// How long a 404 about a user created in this run is asked again (replication).
    pub consistency_wait: Duration,
    pub retry: RetryPolicy,
}

impl GraphSettings {
    /// Settings with the defaults for everything but the name.
    pub fn new(name: impl Into<String>) -> GraphSettings {
        GraphSettings {
            name: name.into(),
            url: "https://graph.microsoft.com/v1.0".to_string(),
            base: "o=entra".to_string(),
            groups: Vec::new(),
            licensing_groups: Vec::new(),
            revoke_sessions: true,
            consistency_wait: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// Ids and DNs of what was read or created.
#[derive(Default)]
struct Directory {
    /// Normalized DN -> id (users and groups).
    ids: BTreeMap<String, String>,
    /// User id -> DN.
    user_dns: BTreeMap<String, String>,
    /// Users synced from AD: never written.
    protected: BTreeSet<String>,
    /// Users created in this run (Graph may not find them for a moment).
    created: BTreeSet<String>,
    /// User id -> whether it has a usageLocation.
    located: BTreeMap<String, bool>,
    /// Ids of the licensing groups.
    licensing: BTreeSet<String>,
}

pub struct GraphTarget {
    settings: GraphSettings,
    base_url: Url,
    users_dn: Dn,
    groups_dn: Dn,
    http: reqwest::Client,
    tokens: TokenSource,
    directory: Mutex<Directory>,
}

impl GraphTarget {
    /// A target over `http` (see [`crate::http::api_client`]) with tokens from `tokens`.
    pub fn new(
        settings: GraphSettings,
        tokens: TokenSource,
        http: reqwest::Client,
    ) -> Result<GraphTarget, TargetError> {
        let config_error =
            |problem: String| TargetError::new(ErrorKind::Config, format!("target {}: {problem}", settings.name));
        let mut base_url = Url::parse(&settings.url).map_err(|e| {
            config_error(format!(
                "url {:?}: expected Graph's base such as https://graph.microsoft.com/v1.0: {e}",
                settings.url
            ))
        })?;
        if !base_url.path().ends_with('/') {
            base_url.set_path(&format!("{}/", base_url.path()));
        }
        let base = Dn::parse(&settings.base).map_err(|e| config_error(format!("base: {e}")))?;
        Ok(GraphTarget {
            users_dn: base.child("ou", "Users"),
            groups_dn: base.child("ou", "Groups"),
            settings,
            base_url,
            http,
            tokens,
            directory: Mutex::new(Directory::default()),
        })
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// `{graph}/directoryObjects/{id}`: how a reference names an object.
    fn reference(&self, kind: &str, id: &str) -> Value {
        json!({ "@odata.id": self.url(&[kind, id], &[]).as_str() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.directory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, kind: ErrorKind, problem: impl std::fmt::Display) -> TargetError {
        TargetError::new(kind, format!("target {}: {problem}", self.settings.name))
    }

    /// Sends a request with a token: throttling waited out, a 401 answered by one new token, a 404
    /// about one of `fresh` (users this run created) asked again until `consistency_wait` is spent.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        what: &str,
        fresh: &[&str],
    ) -> Result<Answer, TargetError> {
        let shown = format!("{method} {} for {what}", url.path());
        let writes = method != Method::GET;
        let lagging = fresh.iter().any(|id| self.lock().created.contains(*id));
        let deadline = Instant::now() + self.settings.consistency_wait;
        let mut lag_wait = self.settings.retry.first_backoff;
        let mut new_token = false;
        loop {
            let token = self.tokens.token().await?;
            let answer =
                send_retrying(&self.settings.retry, &[429, 503, 504], writes, &shown, &self.settings.name, || {
                    let mut request = self
                        .http
                        .request(method.clone(), url.clone())
                        .bearer_auth(token.expose_secret())
                        .header(ACCEPT, "application/json");
                    if let Some(body) = body {
                        request = request.header(CONTENT_TYPE, "application/json").body(body.to_string());
                    }
                    request
                })
                .await
                .map_err(|(kind, message)| self.error(kind, message))?;
            if answer.status == 401 && !new_token {
                self.tokens.invalidate();
                new_token = true;
                continue;
            }
            if answer.status == 404 && lagging && Instant::now() + lag_wait <= deadline {
                tracing::info!(target_name = %self.settings.name, request = %shown, "not found yet (Entra replicates a new user); asking again in {lag_wait:?}");
                tokio::time::sleep(lag_wait).await;
                lag_wait = (lag_wait * 2).min(Duration::from_secs(5));
                continue;
            }
            return Ok(answer);
        }
    }

    /// The error for an answer that is not a success: Graph's error code and message.
    fn refused(&self, answer: &Answer, shown: &str, writes: bool) -> TargetError {
        let body = answer.json();
        let error = body.as_ref().and_then(|b| b.get("error"));
        let text = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str).unwrap_or("").to_string();
        let said = match (text("code"), text("message")) {
            (code, message) if code.is_empty() && message.is_empty() => String::new(),
            (code, message) => format!(" ({code}: {message})"),
        };
        let (kind, hint) = match answer.status {
            401 | 403 => (ErrorKind::Auth, "; check the application's permissions (docs/targets/entra-id.md)"),
            404 => (ErrorKind::Conflict, "; it no longer exists: plan again"),
            409 | 412 => (ErrorKind::Conflict, "; plan again"),
            500..=599 if writes => (ErrorKind::Unknown, "; the change may have happened"),
            500..=599 => (ErrorKind::Transient, ""),
            _ => (ErrorKind::Permanent, ""),
        };
        self.error(kind, format!("{shown}: Graph answered {}{said}{hint}", status_text(answer.status)))
    }

    /// Sends a request and expects a success, or an answer `done` says means done already.
    async fn expect(
        &self,
        request: (Method, Url),
        body: Option<&Value>,
        what: &str,
        fresh: &[&str],
        done: impl Fn(&Answer) -> bool,
    ) -> Result<Answer, TargetError> {
        let (method, url) = request;
        let shown = format!("{method} {} for {what}", url.path());
        let writes = method != Method::GET;
        let answer = self.call(method, url, body, what, fresh).await?;
        if !answer.is_success() && !done(&answer) {
            return Err(self.refused(&answer, &shown, writes));
        }
        Ok(answer)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        what: &str,
        fresh: &[&str],
    ) -> Result<Answer, TargetError> {
        self.expect((method, url), body, what, fresh, |_| false).await
    }

    /// Every object of a collection, following `@odata.nextLink` (only to Graph itself).
    async fn list(&self, first: Url, what: &str) -> Result<Vec<Value>, TargetError> {
        let mut objects = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let answer = self.send(Method::GET, url.clone(), None, what, &[]).await?;
            let page = answer.json().unwrap_or(Value::Null);
            let Some(values) = page.get("value").and_then(Value::as_array) else {
                return Err(self.error(
                    ErrorKind::Permanent,
                    format!("GET {} for {what}: expected a JSON object with a value array", url.path()),
                ));
            };
            objects.extend(values.iter().cloned());
            next = next_link(&page, &self.base_url)
                .map_err(|problem| self.error(ErrorKind::Permanent, format!("{what}: {problem}")))?;
        }
        Ok(objects)
    }

    fn user_dn(&self, user: &Value) -> Option<String> {
        let id = text(user.get("id")?)?;
        Some(match user.get("employeeId").and_then(text).filter(|k| !k.is_empty()) {
            Some(key) => self.users_dn.child("employeeId", &key).to_string(),
            None => self.users_dn.child("id", &id).to_string(),
        })
    }

    /// The user as a planner's entry with the attributes asked for (the manager as a DN).
    fn entry(&self, user: &Value, attrs: &[AttrName], directory: &Directory) -> Option<TargetEntry> {
        let id = user.get("id").and_then(text)?;
        let dn = self.user_dn(user)?;
        let mut values = AttrMap::new();
        for name in attrs {
            let found = if name.is(MANAGER) {
                let manager = user.get(MANAGER).and_then(|m| m.get("id")).and_then(text);
                manager.and_then(|id| directory.user_dns.get(&id).cloned()).into_iter().collect()
            } else {
                user.get(name.as_str()).map(values_of).unwrap_or_default()
            };
            if !found.is_empty() {
                values.insert(name.clone(), found);
            }
        }
        let protected = user.get("onPremisesSyncEnabled") == Some(&Value::Bool(true));
        Some(TargetEntry { object_id: id, dn, attrs: values, protected })
    }

    fn remember_user(directory: &mut Directory, user: &Value, dn: &str) {
        let Some(id) = user.get("id").and_then(text) else { return };
        directory.ids.insert(normalize_dn(dn), id.clone());
        directory.user_dns.insert(id.clone(), dn.to_string());
        if user.get("onPremisesSyncEnabled") == Some(&Value::Bool(true)) {
            directory.protected.insert(id.clone());
        }
        let located = user.get("usageLocation").and_then(text).is_some_and(|l| !l.is_empty());
        directory.located.insert(id, located);
    }

    /// `$select` for users: what is always read and the mapped properties.
    fn select(attrs: &[AttrName]) -> String {
        let mut fields: Vec<&str> = ALWAYS_READ.to_vec();
        fields.push("usageLocation");
        for name in attrs {
            if !name.is("objectClass") && !name.is(MANAGER) && !fields.iter().any(|f| name.is(f)) {
                fields.push(name.as_str());
            }
        }
        fields.join(",")
    }

    /// Reads the users, and the managed groups with their members, as a DN-shaped view.
    pub async fn read_view(&mut self, attrs: &[AttrName]) -> Result<TargetView, TargetError> {
        let select = Self::select(attrs);
        let url =
            self.url(&["users"], &[("$select", &select), ("$expand", "manager($select=id)"), ("$top", PAGE_SIZE)]);
        let users = self.list(url, "the list of users").await?;
        let mut directory = Directory::default();
        for user in &users {
            if let Some(dn) = self.user_dn(user) {
                Self::remember_user(&mut directory, user, &dn);
            }
        }
        let mut view = TargetView { target: self.settings.name.clone(), ..TargetView::default() };
        for user in &users {
            view.entries.extend(self.entry(user, attrs, &directory));
            // The login is the mailNickname, and the userPrincipalName's local part by custom.
            let upn = user.get("userPrincipalName").and_then(text);
            let upn_login = upn.as_deref().and_then(|u| u.split('@').next()).map(str::to_string);
            for login in user.get("mailNickname").and_then(text).into_iter().chain(upn_login) {
                view.taken_logins.insert(login.to_lowercase());
            }
        }
        for name in &self.settings.groups {
            let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
            let url = self.url(&["groups"], &[("$filter", &filter), ("$select", "id,displayName")]);
            let found = self.list(url, &format!("group {name:?}")).await?;
            let id = match found.as_slice() {
                [group] => group.get("id").and_then(text).unwrap_or_default(),
                [] => {
                    return Err(self.error(
                        ErrorKind::Config,
                        format!("group {name:?} (groups) is not in the tenant; create it in Entra ID first"),
                    ));
                }
                _ => {
                    return Err(self.error(
                        ErrorKind::Config,
                        format!("{} groups are named {name:?} (groups); expected one: rename the others", found.len()),
                    ));
                }
            };
            let url = self
                .url(&["groups", &id, "members", "microsoft.graph.user"], &[("$select", "id"), ("$top", PAGE_SIZE)]);
            let members = self.list(url, &format!("the members of group {name:?}")).await?;
            let dn = self.groups_dn.child("displayName", name).to_string();
            directory.ids.insert(normalize_dn(&dn), id.clone());
            if self.settings.licensing_groups.iter().any(|l| l == name) {
                directory.licensing.insert(id.clone());
            }
            let members = members
                .iter()
                .filter_map(|m| m.get("id").and_then(text))
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

    /// The id of the user or group at `dn` (read or created in this run), or the planner's id.
    fn id_of(&self, dn: &str, planned: Option<&String>) -> Result<String, TargetError> {
        if let Some(id) = self.lock().ids.get(&normalize_dn(dn)) {
            return Ok(id.clone());
        }
        planned.cloned().ok_or_else(|| {
            self.error(ErrorKind::Conflict, format!("{dn}: no such user or group was read or created; plan again"))
        })
    }

    /// The id of a user roster may write: a user synced from AD is refused before anything is sent.
    fn writable(&self, dn: &str, planned: Option<&String>) -> Result<String, TargetError> {
        let id = self.id_of(dn, planned)?;
        if self.lock().protected.contains(&id) {
            return Err(self.error(
                ErrorKind::OutOfScope,
                format!(
                    "{dn}: synced from on-premises AD (onPremisesSyncEnabled): read-only in Graph; change it in AD"
                ),
            ));
        }
        Ok(id)
    }

    /// Graph property values from the planner's values.
    fn properties(
        &self,
        dn: &str,
        changes: impl Iterator<Item = (AttrName, Vec<String>)>,
    ) -> Result<Map<String, Value>, TargetError> {
        let mut body = Map::new();
        for (name, values) in changes {
            if name.is("objectClass") || name.is(MANAGER) {
                continue;
            }
            if name.is("passwordProfile") || name.is("id") || name.is("onPremisesSyncEnabled") {
                return Err(self.error(ErrorKind::Config, format!("{dn}: {name} is not written through a mapping")));
            }
            body.insert(name.as_str().to_string(), json_value(name.as_str(), values));
        }
        Ok(body)
    }

    async fn set_manager(&self, dn: &str, id: &str, manager: Option<&String>) -> Result<(), TargetError> {
        let url = self.url(&["users", id, "manager", "$ref"], &[]);
        let what = format!("{dn}'s manager");
        match manager {
            Some(manager_dn) => {
                let manager = self.id_of(manager_dn, None)?;
                let body = self.reference("users", &manager);
                self.send(Method::PUT, url, Some(&body), &what, &[id, &manager]).await?;
            }
            None => {
                self.expect((Method::DELETE, url), None, &what, &[id], gone).await?;
            }
        }
        Ok(())
    }

    async fn create(&self, dn: &str, attributes: &AttrMap, enabled: bool) -> Result<Applied, TargetError> {
        let mut body = self.properties(dn, attributes.iter().map(|(n, v)| (n.clone(), v.clone())))?;
        let upn = body.get("userPrincipalName").and_then(text).ok_or_else(|| {
            self.error(ErrorKind::Config, format!("{dn}: Graph creates a user only with a userPrincipalName; map one"))
        })?;
        if !body.contains_key("mailNickname") {
            let nickname = upn.split('@').next().unwrap_or(&upn).to_string();
            body.insert("mailNickname".into(), Value::String(nickname));
        }
        if !body.contains_key("displayName") {
            body.insert("displayName".into(), Value::String(upn.clone()));
        }
        body.insert("accountEnabled".into(), Value::Bool(enabled));
        // Graph requires a password: one nobody knows, until [target.password] sets one.
        let password = unusable_password().map_err(|e| self.error(ErrorKind::Permanent, format!("{dn}: {e}")))?;
        body.insert(
            "passwordProfile".into(),
            json!({ "forceChangePasswordNextSignIn": true, "password": password.expose_secret() }),
        );
        let body = Value::Object(body);
        let answer = self.send(Method::POST, self.url(&["users"], &[]), Some(&body), dn, &[]).await?;
        let mut user = answer.json().unwrap_or(Value::Null);
        let id = user
            .get("id")
            .and_then(text)
            .ok_or_else(|| self.error(ErrorKind::Unknown, format!("{dn}: Graph created a user but gave no id")))?;
        if let (Some(user), Value::Object(sent)) = (user.as_object_mut(), &body) {
            for (name, value) in sent {
                if name != "passwordProfile" {
                    user.entry(name.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        let dn = self.user_dn(&user).unwrap_or_else(|| dn.to_string());
        {
            let mut directory = self.lock();
            Self::remember_user(&mut directory, &user, &dn);
            directory.created.insert(id.clone());
        }
        let names: Vec<AttrName> = attributes.keys().cloned().collect();
        let mut entry = self.entry(&user, &names, &self.lock());
        // The user exists now, whatever happens to its manager: a manager that could not be set is
        // left out of the entry, so the next plan sets it.
        if let Some(manager) = attributes.get(&AttrName::new(MANAGER)).and_then(|m| m.first()) {
            match self.set_manager(&dn, &id, Some(manager)).await {
                Ok(()) => {
                    if let Some(entry) = entry.as_mut() {
                        entry.attrs.insert(AttrName::new(MANAGER), vec![manager.clone()]);
                    }
                }
                Err(error) => tracing::warn!(target_name = %self.settings.name, "{error}; the next run sets it"),
            }
        }
        Ok(Applied { entry })
    }

    async fn update(
        &self,
        dn: &str,
        planned: Option<&String>,
        changes: &[AttrChange],
        enabled: Option<bool>,
    ) -> Result<Applied, TargetError> {
        let id = self.writable(dn, planned)?;
        let mut body = self.properties(dn, changes.iter().map(|c| (c.attr.clone(), c.new.clone())))?;
        if let Some(enabled) = enabled {
            body.insert("accountEnabled".into(), Value::Bool(enabled));
        }
        if !body.is_empty() {
            let located = body.get("usageLocation").map(|l| !l.is_null());
            let body = Value::Object(body);
            self.send(Method::PATCH, self.url(&["users", &id], &[]), Some(&body), dn, &[&id]).await?;
            if let Some(located) = located {
                self.lock().located.insert(id.clone(), located);
            }
        }
        if let Some(change) = changes.iter().find(|c| c.attr.is(MANAGER)) {
            self.set_manager(dn, &id, change.new.first()).await?;
        }
        if enabled == Some(false) && self.settings.revoke_sessions {
            let url = self.url(&["users", &id, "revokeSignInSessions"], &[]);
            self.send(Method::POST, url, None, &format!("{dn}'s sign-in sessions"), &[&id]).await?;
        }
        Ok(Applied { entry: None })
    }

    async fn delete(&self, dn: &str, planned: Option<&String>) -> Result<Applied, TargetError> {
        let id = self.writable(dn, planned)?;
        self.expect((Method::DELETE, self.url(&["users", &id], &[])), None, dn, &[], gone).await?;
        let mut directory = self.lock();
        directory.ids.remove(&normalize_dn(dn));
        directory.user_dns.remove(&id);
        Ok(Applied { entry: None })
    }

    async fn membership(&self, group: &str, member: &str, add: bool) -> Result<Applied, TargetError> {
        let group_id = self.id_of(group, None)?;
        let member_id = self.writable(member, None)?;
        let what = format!("{member} in {group}");
        if add {
            let unlocated = {
                let directory = self.lock();
                directory.licensing.contains(&group_id) && directory.located.get(&member_id) == Some(&false)
            };
            if unlocated {
                return Err(self.error(
                    ErrorKind::Permanent,
                    format!("{what}: a licensing group, and the user has no usageLocation: map usageLocation so it is set first"),
                ));
            }
            let url = self.url(&["groups", &group_id, "members", "$ref"], &[]);
            let body = self.reference("directoryObjects", &member_id);
            let member_already = |answer: &Answer| {
                answer.status == 400 && String::from_utf8_lossy(&answer.body).contains(ALREADY_MEMBER)
            };
            self.expect((Method::POST, url), Some(&body), &what, &[&member_id], member_already).await?;
        } else {
            let url = self.url(&["groups", &group_id, "members", &member_id, "$ref"], &[]);
            self.expect((Method::DELETE, url), None, &what, &[], gone).await?;
        }
        Ok(Applied { entry: None })
    }

    /// The user as it is now, for an adoption.
    async fn adopt(&self, dn: &str, id: &str) -> Result<Applied, TargetError> {
        let select = Self::select(&[]);
        let url = self.url(&["users", id], &[("$select", &select)]);
        let user = self.send(Method::GET, url, None, dn, &[]).await?.json().unwrap_or(Value::Null);
        let dn = self.user_dn(&user).unwrap_or_else(|| dn.to_string());
        let mut directory = self.lock();
        Self::remember_user(&mut directory, &user, &dn);
        Ok(Applied { entry: self.entry(&user, &[], &directory) })
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
            Action::AddMember { group, member } => self.membership(group, member, true).await,
            Action::RemoveMember { group, member } => self.membership(group, member, false).await,
            // The users' and groups' containers exist by construction.
            Action::CreateContainer { .. } => Ok(Applied { entry: None }),
            Action::CreateGroup { dn, .. } => Err(self.error(
                ErrorKind::Permanent,
                format!(
                    "{dn}: roster does not create groups in Entra ID; create it there and name it in groups \
                     (expected displayName=<one of groups>,{})",
                    self.groups_dn
                ),
            )),
            Action::Rename { dn, .. } => Err(self.error(
                ErrorKind::Permanent,
                format!(
                    "{dn}: an entra target does not rename (its DNs are synthetic); change userPrincipalName instead"
                ),
            )),
            Action::SetPassword { dn, .. } => {
                Err(self.error(ErrorKind::Permanent, format!("{dn}: set_password needs the generated password")))
            }
        }
    }

    /// Sets a generated password (`passwordProfile`), to be changed at the next sign-in when the
    /// operation says so.
    pub async fn set_password(&self, op: &Operation, password: &SecretString) -> Result<Applied, TargetError> {
        let Action::SetPassword { dn, object_id, must_change } = &op.action else {
            return self.apply(op).await;
        };
        let id = self.writable(dn, object_id.as_ref())?;
        let body = json!({ "passwordProfile": {
            "forceChangePasswordNextSignIn": must_change, "password": password.expose_secret() } });
        self.send(Method::PATCH, self.url(&["users", &id], &[]), Some(&body), &format!("{dn}'s password"), &[&id])
            .await?;
        Ok(Applied { entry: None })
    }
}

/// A 404 to a removal: gone already is what it wants.
fn gone(answer: &Answer) -> bool {
    answer.status == 404
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A property's values as the planner holds them.
fn values_of(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        other => text(other).filter(|t| !t.is_empty()).into_iter().collect(),
    }
}

/// The JSON for a property from the planner's values: a collection for multi-valued properties,
/// a boolean for `accountEnabled`, `null` to clear.
fn json_value(name: &str, values: Vec<String>) -> Value {
    if MULTI_VALUED.iter().any(|m| m.eq_ignore_ascii_case(name)) {
        return Value::Array(values.into_iter().map(Value::String).collect());
    }
    match values.into_iter().next() {
        None => Value::Null,
        Some(value) if name.eq_ignore_ascii_case("accountEnabled") => Value::Bool(value.eq_ignore_ascii_case("true")),
        Some(value) => Value::String(value),
    }
}

/// A random password nobody is told, meeting Entra's complexity rules.
fn unusable_password() -> Result<SecretString, String> {
    let mut bytes = [0u8; 24];
    SystemRandom::new().fill(&mut bytes).map_err(|_| "no randomness for a password".to_string())?;
    use base64::Engine as _;
    Ok(SecretString::from(format!("{}aA1!", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))))
}

impl Target for GraphTarget {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { rename: false, disable: true, groups: true, passwords: true }
    }

    fn read_view(&mut self, attrs: &[AttrName]) -> impl Future<Output = Result<TargetView, TargetError>> + Send {
        GraphTarget::read_view(self, attrs)
    }

    fn apply(&self, op: &Operation) -> impl Future<Output = Result<Applied, TargetError>> + Send {
        GraphTarget::apply(self, op)
    }

    fn set_password(
        &self,
        op: &Operation,
        password: &SecretString,
    ) -> impl Future<Output = Result<Applied, TargetError>> + Send {
        GraphTarget::set_password(self, op, password)
    }
}

/// The user DN the planner's `dn` expression should give for the person with `key`.
pub fn user_dn(base: &str, key: &str) -> String {
    format!("employeeId={},ou=Users,{base}", escape_dn_value(key))
}

/// The target a `kind = "entra"` configuration describes; `secret` is the resolved client secret or,
/// with `client_certificate`, the certificate's private key.
pub(super) fn connect(
    config: &roster_core::config::TargetConfig,
    secret: SecretString,
    config_dir: &std::path::Path,
) -> Result<GraphTarget, TargetError> {
    let (http, tokens, retry) = sign_in(config, secret, config_dir)?;
    let entra = config.entra.as_ref().ok_or_else(|| config_error(config, "expected a [target.entra] table".into()))?;
    let mut settings = GraphSettings::new(config.name.clone());
    settings.url = config.url.clone();
    settings.base = config.entra_base().to_string();
    settings.groups = entra.groups.clone();
    settings.licensing_groups = entra.licensing_groups.clone();
    settings.revoke_sessions = entra.revoke_sessions;
    settings.consistency_wait = Duration::from_secs(entra.consistency_seconds);
    settings.retry = retry;
    GraphTarget::new(settings, tokens, http)
}

fn config_error(config: &roster_core::config::TargetConfig, problem: String) -> TargetError {
    TargetError::new(ErrorKind::Config, format!("target {}: {problem}", config.name))
}

/// How a target of the `entra` kinds (`entra`, `entra_inbound`) reaches Graph: the HTTP client with
/// the target's TLS settings, and the tokens of its `[target.entra]` application (`secret`: the
/// client secret, or with `client_certificate` its private key).
pub(super) fn sign_in(
    config: &roster_core::config::TargetConfig,
    secret: SecretString,
    config_dir: &std::path::Path,
) -> Result<(reqwest::Client, TokenSource, RetryPolicy), TargetError> {
    use crate::oauth::{CertificateCredential, ClientCredential, OAuthSettings};
    let config_error = |problem: String| config_error(config, problem);
    let entra = config.entra.as_ref().ok_or_else(|| config_error("expected a [target.entra] table".into()))?;
    let timeout = Duration::from_secs(config.timeout_seconds.max(1));
    let ca_file = config.tls.ca_file.as_ref().map(|file| config_dir.join(file));
    let http = crate::http::api_client(&config.name, ca_file.as_deref(), config.tls.allow_plaintext, timeout)
        .map_err(config_error)?;
    let credential = match &entra.client_certificate {
        None => ClientCredential::Secret(secret),
        Some(file) => {
            let path = config_dir.join(file);
            let certificate = std::fs::read(&path).map_err(|e| {
                config_error(format!("entra.client_certificate {}: cannot read it: {e}", path.display()))
            })?;
            let credential = CertificateCredential::new(&certificate, &secret).map_err(|e| {
                config_error(format!("entra.client_certificate {} and client_key: {e}", path.display()))
            })?;
            ClientCredential::Certificate(credential)
        }
    };
    let token_url = crate::oauth::token_url(&entra.authority, &entra.tenant).map_err(config_error)?;
    let retry = RetryPolicy::default();
    let oauth = OAuthSettings {
        token_url,
        client_id: entra.client_id.clone(),
        scope: GRAPH_SCOPE.to_string(),
        credential,
        retry,
        context: format!("target {}", config.name),
    };
    Ok((http.clone(), TokenSource::new(oauth, http), retry))
}

/// A page's `@odata.nextLink`, followed only under Graph's own base `base` (ending in `/`): the
/// token goes nowhere else.
pub(super) fn next_link(page: &Value, base: &Url) -> Result<Option<Url>, String> {
    let Some(link) = page.get("@odata.nextLink").and_then(Value::as_str) else { return Ok(None) };
    Url::parse(link)
        .ok()
        .filter(|l| l.origin() == base.origin() && l.path().starts_with(base.path()))
        .map(Some)
        .ok_or_else(|| format!("the next page's link {link:?} is not under {base}; not followed"))
}

/// The application permissions granted to the app registration, as a client-credentials scope.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
