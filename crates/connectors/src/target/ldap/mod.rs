//! The LDAP target (OpenLDAP and other RFC 4511 directories with RFC 4530 `entryUUID`).
//!
//! Architecture invariants:
//! - Nothing is written outside `managed`: every write's DN (a rename's new DN, a membership's
//!   group) is checked here before anything is sent, whatever the planner already checked.
//! - An operation on an existing entry first reads the entry's `entryUUID` and refuses with
//!   [`ErrorKind::Conflict`] when it is not the object the plan was made against; where the server
//!   supports the assertion control (RFC 4528) the write itself also asserts it, so an entry replaced
//!   between the read and the write is not touched either.
//! - Attribute changes delete exactly the old values and add the new ones in one modify, so a value
//!   an administrator changed since planning makes the modify fail rather than be overwritten.
//! - Every filter value goes through [`escape_filter_value`]; DNs are parsed and rebuilt by
//!   [`roster_core::dn`], never spliced together here.

mod errors;
mod search;
mod session;
mod tls;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use ldap3::controls::{Assertion, MakeCritical, RawControl};
use ldap3::{Ldap, Mod};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::config::TargetConfig;
use roster_core::dn::{Dn, escape_filter_value, normalize_dn};
use roster_core::plan::{Action, Applied, AttrChange, Operation};
use roster_core::state::{TargetEntry, TargetGroup, TargetView};
use secrecy::SecretString;

use self::errors::{
    ALREADY_EXISTS, ASSERTION_FAILED, Effect, NO_SUCH_ATTRIBUTE, NO_SUCH_OBJECT, SUCCESS, TYPE_OR_VALUE_EXISTS,
    describe, ldap_error, result_error,
};
use self::search::{Entry, PagedReader, read_entry};
use self::session::Session;
use crate::target::{Capabilities, ErrorKind, Target, TargetError};

const ENTRY_UUID: &str = "entryUUID";
const ASSERTION_OID: &str = "1.3.6.1.1.12";
/// Object classes whose entries count as containers in the view.
const CONTAINER_CLASSES: [&str; 5] = ["organizationalUnit", "organization", "domain", "dcObject", "container"];
/// OpenLDAP ppolicy's administrative lock: a lock that never expires.
const LOCK_ATTRIBUTE: &str = "pwdAccountLockedTime";
const LOCKED_FOREVER: &str = "000001010000Z";
/// Attributes never read back into an [`Applied`] entry (which ends up in the store and the audit trail).
const SECRET_ATTRIBUTES: [&str; 5] =
    ["userPassword", "authPassword", "unicodePwd", "sambaNTPassword", "sambaLMPassword"];

/// A connected, bound LDAP directory. See the module documentation for what it guarantees.
pub struct LdapTarget {
    name: String,
    session: Session,
    /// The managed subtrees, as configured.
    managed: Vec<Dn>,
    /// The managed subtrees that do not lie inside another one: where the view is read.
    search_bases: Vec<Dn>,
    unique_base: Dn,
    account_filter: String,
    login_attribute: String,
    correlate: String,
    /// `disable.lock`: disabled accounts carry ppolicy's administrative lock.
    ppolicy_lock: bool,
    /// Whether the server advertises the assertion control.
    assertion: bool,
    /// Entries per page of the view's searches: [`search::PAGE_SIZE`] unless the server allows fewer.
    page_size: i32,
}

impl fmt::Debug for LdapTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapTarget")
            .field("name", &self.name)
            .field("url", &self.session.url())
            .field("managed", &self.managed.iter().map(Dn::to_string).collect::<Vec<_>>())
            .field("assertion_control", &self.assertion)
            .finish_non_exhaustive()
    }
}

impl LdapTarget {
    /// Connects and binds. `password` is already resolved from `env:`/`file:` by the caller;
    /// `config_dir` resolves a relative `tls.ca_file`.
    pub async fn connect(
        config: &TargetConfig,
        password: SecretString,
        config_dir: &Path,
    ) -> Result<LdapTarget, TargetError> {
        let mut resolved = config.clone();
        resolved.resolve_defaults();
        let config = &resolved;
        let name = config.name.clone();
        let config_error = |what: String| TargetError::new(ErrorKind::Config, format!("target {name}: {what}"));

        if config.object_classes.is_empty() {
            return Err(config_error("object_classes is empty".to_string()));
        }
        for class in &config.object_classes {
            if !is_attribute_description(class) {
                return Err(config_error(format!("object_classes: {class:?} is not an object class name")));
            }
        }
        for (key, attr) in [("login_attribute", &config.login_attribute), ("correlate", &config.correlate)] {
            if !is_attribute_description(attr) {
                return Err(config_error(format!("{key}: {attr:?} is not an attribute name")));
            }
        }
        if config.managed.is_empty() {
            return Err(config_error("managed lists no subtree: roster would have nowhere to write".to_string()));
        }
        let mut managed = Vec::new();
        for text in &config.managed {
            let dn = Dn::parse(text).map_err(|e| config_error(format!("managed: {e}")))?;
            if dn.is_root() {
                return Err(config_error(format!("managed: {text:?} is the whole directory; name a subtree")));
            }
            managed.push(dn);
        }
        let unique_base = match &config.unique_base {
            Some(text) => Dn::parse(text).map_err(|e| config_error(format!("unique_base: {e}")))?,
            None => common_suffix(&managed).ok_or_else(|| {
                config_error(
                    "the managed subtrees share no suffix: set unique_base to where login names must be unique"
                        .to_string(),
                )
            })?,
        };
        let search_bases = outermost(&managed);

        let session = Session::open(config, password, config_dir).await?;
        let assertion = supports_control(&session, ASSERTION_OID).await;
        if !assertion {
            tracing::info!(
                target_name = name,
                "the server does not advertise the assertion control; identity checks rely on a read before each write"
            );
        }
        Ok(LdapTarget {
            account_filter: all_classes_filter(&config.object_classes),
            login_attribute: config.login_attribute.clone(),
            correlate: config.correlate.clone(),
            ppolicy_lock: config.disable.lock,
            name,
            session,
            managed,
            search_bases,
            unique_base,
            assertion,
            page_size: search::PAGE_SIZE,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads the target as the planner needs it: paged subtree searches of every managed subtree for
    /// accounts (entries with all of `object_classes`, with `attrs`), groups (groupOfNames with their
    /// members) and containers, and the login names taken anywhere under the uniqueness base.
    pub async fn read_view(&mut self, attrs: &[AttrName]) -> Result<TargetView, TargetError> {
        let mut requested: Vec<String> = Vec::new();
        for attr in attrs {
            if !is_attribute_description(attr.as_str()) {
                return Err(TargetError::new(
                    ErrorKind::Config,
                    format!("target {}: {:?} is not an attribute name", self.name, attr.as_str()),
                ));
            }
            if !attr.is(ENTRY_UUID) && !requested.iter().any(|r| attr.is(r)) {
                requested.push(attr.as_str().to_string());
            }
        }
        requested.push(ENTRY_UUID.to_string());

        let mut reader = PagedReader {
            ldap: self.session.handle().await?,
            timeout: self.session.timeout(),
            page_size: &mut self.page_size,
        };
        let mut view = TargetView { target: self.name.clone(), ..TargetView::default() };
        for base in &self.search_bases {
            let base_text = base.to_string();
            let Some(accounts) = reader.subtree(&base_text, &self.account_filter, requested.clone()).await? else {
                tracing::info!(target_name = self.name, "managed subtree {base_text} does not exist yet");
                continue;
            };
            view.containers.insert(base.normalized());
            for entry in accounts {
                view.entries.push(into_target_entry(entry)?);
            }
            let vanished = || {
                TargetError::new(
                    ErrorKind::Transient,
                    format!("target {}: {base_text} disappeared while it was read", self.name),
                )
            };
            let group_attrs = vec!["member".to_string(), ENTRY_UUID.to_string()];
            let groups =
                reader.subtree(&base_text, "(objectClass=groupOfNames)", group_attrs).await?.ok_or_else(vanished)?;
            for mut entry in groups {
                let members = entry.attrs.remove(&AttrName::new("member")).unwrap_or_default();
                let group = into_target_entry(entry)?;
                view.groups.push(TargetGroup { object_id: group.object_id, dn: group.dn, members });
            }
            let no_attrs = vec!["1.1".to_string()];
            let containers = reader
                .subtree(&base_text, &any_class_filter(&CONTAINER_CLASSES), no_attrs)
                .await?
                .ok_or_else(vanished)?;
            view.containers.extend(containers.iter().map(|entry| normalize_dn(&entry.dn)));
        }

        let unique_base = self.unique_base.to_string();
        let login_filter = format!("({}=*)", self.login_attribute);
        let holders = reader
            .subtree(&unique_base, &login_filter, vec![self.login_attribute.clone()])
            .await?
            .ok_or_else(|| {
                TargetError::new(
                    ErrorKind::Permanent,
                    format!(
                        "target {}: unique_base {unique_base} does not exist, so taken login names cannot be read",
                        self.name
                    ),
                )
            })?;
        for entry in holders {
            for values in entry.attrs.into_values() {
                view.taken_logins.extend(values.iter().map(|login| login.to_lowercase()));
            }
        }
        view.entries.sort_by_cached_key(|e| normalize_dn(&e.dn));
        view.groups.sort_by_cached_key(|g| normalize_dn(&g.dn));
        Ok(view)
    }

    /// Applies one operation. Safe to call concurrently: each call clones the connection handle, and
    /// ldap3 multiplexes the requests on one connection.
    pub async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        if op.target != self.name {
            return Err(TargetError::new(
                ErrorKind::Permanent,
                format!("operation {} is for target {}, not {}", op.id, op.target, self.name),
            ));
        }
        self.check_scope(&op.action)?;
        let mut what = format!("target {}: {} {}", self.name, op.action.kind(), op.action.dn());
        if let Action::AddMember { member, .. } | Action::RemoveMember { member, .. } = &op.action {
            what.push_str(&format!(" (member {member})"));
        }
        let mut ldap = self.session.handle().await?;
        let ldap = &mut ldap;
        match &op.action {
            Action::CreateContainer { dn } => self.create_container(ldap, &what, dn).await,
            Action::Create { dn, attributes, enabled, .. } => self.create(ldap, &what, dn, attributes, *enabled).await,
            Action::SetPassword { .. } => Err(TargetError::new(
                ErrorKind::Permanent,
                format!("{what}: setting passwords is not supported by the LDAP target yet"),
            )),
            Action::Adopt { dn, object_id } => self.adopt(ldap, &what, dn, object_id).await,
            Action::Update { dn, object_id, changes }
            | Action::Enable { dn, object_id, changes }
            | Action::Disable { dn, object_id, changes } => {
                self.modify(ldap, &what, dn, object_id.as_deref(), changes).await
            }
            Action::Rename { dn, object_id, new_dn } => {
                self.rename(ldap, &what, dn, object_id.as_deref(), new_dn).await
            }
            Action::CreateGroup { dn, members, attributes } => {
                self.create_group(ldap, &what, dn, members, attributes).await
            }
            Action::AddMember { group, member } => {
                self.add_member(ldap, &what, group, member).await?;
                Ok(Applied { entry: None })
            }
            Action::RemoveMember { group, member } => self.remove_member(ldap, &what, group, member).await,
            Action::Delete { dn, object_id } => self.delete(ldap, &what, dn, object_id.as_deref()).await,
        }
    }

    /// Unbinds and closes the connection.
    pub async fn close(self) -> Result<(), TargetError> {
        self.session.close().await
    }

    /// Refuses, before anything is sent, an action that would write outside the managed subtrees.
    fn check_scope(&self, action: &Action) -> Result<(), TargetError> {
        let mut written = vec![action.dn()];
        if let Action::Rename { new_dn, .. } = action {
            written.push(new_dn);
        }
        if let Action::AddMember { member, .. } | Action::RemoveMember { member, .. } = action {
            parse_dn(&format!("target {}: {}", self.name, action.kind()), member)?;
        }
        for dn in written {
            let what = format!("target {}: {} {dn}", self.name, action.kind());
            let parsed = parse_dn(&what, dn)?;
            if !self.managed.iter().any(|base| parsed.is_within(base)) {
                let managed: Vec<String> = self.managed.iter().map(Dn::to_string).collect();
                return Err(TargetError::new(
                    ErrorKind::OutOfScope,
                    format!("{what}: outside the managed subtrees ({}); nothing was sent", managed.join("; ")),
                ));
            }
        }
        Ok(())
    }

    async fn create_container(&self, ldap: &mut Ldap, what: &str, dn: &str) -> Result<Applied, TargetError> {
        let parsed = parse_dn(what, dn)?;
        let value = match parsed.rdn().map(|rdn| rdn.0.as_slice()) {
            Some([ava]) if ava.attr.eq_ignore_ascii_case("ou") => ava.value.clone(),
            _ => {
                return Err(TargetError::new(
                    ErrorKind::Permanent,
                    format!("{what}: a container is created as an organizationalUnit and needs an ou=... name"),
                ));
            }
        };
        let attrs = vec![value_set("objectClass", ["organizationalUnit"]), value_set("ou", [value.as_str()])];
        let result = self.send(ldap.with_timeout(self.timeout()).add(dn, attrs).await, what)?;
        match result.rc {
            SUCCESS | ALREADY_EXISTS => Ok(Applied { entry: None }),
            _ => Err(result_error(what, &result)),
        }
    }

    async fn create(
        &self,
        ldap: &mut Ldap,
        what: &str,
        dn: &str,
        attributes: &AttrMap,
        enabled: bool,
    ) -> Result<Applied, TargetError> {
        parse_dn(what, dn)?;
        let mut attributes: AttrMap =
            attributes.iter().filter(|(_, values)| !values.is_empty()).map(|(a, v)| (a.clone(), v.clone())).collect();
        check_attribute_names(what, attributes.keys())?;
        if !enabled && self.ppolicy_lock {
            // Defense in depth: an account planned disabled must never start out able to log in.
            attributes.entry(AttrName::new(LOCK_ATTRIBUTE)).or_insert_with(|| vec![LOCKED_FOREVER.to_string()]);
        }
        let read_back: Vec<String> = attributes
            .keys()
            .filter(|attr| !is_secret(attr))
            .map(|attr| attr.as_str().to_string())
            .chain([ENTRY_UUID.to_string()])
            .collect();
        let entry: Vec<(String, HashSet<String>)> = attributes
            .iter()
            .map(|(attr, values)| (attr.as_str().to_string(), values.iter().cloned().collect()))
            .collect();
        let result = self.send(ldap.with_timeout(self.timeout()).add(dn, entry).await, what)?;
        match result.rc {
            SUCCESS => {
                let created = read_entry(ldap, self.timeout(), dn, "(objectClass=*)", read_back).await;
                let entry = created.map_err(|e| written_but_unread(what, &e.message))?;
                let entry = entry.ok_or_else(|| written_but_unread(what, "it was not found"))?;
                Ok(Applied { entry: Some(into_target_entry(entry).map_err(|e| written_but_unread(what, &e.message))?) })
            }
            ALREADY_EXISTS => {
                // Either an earlier attempt whose answer was lost created it (then it holds this
                // person's correlation value), or the name belongs to someone else.
                let values = attributes.get(&AttrName::new(&self.correlate)).cloned().unwrap_or_default();
                if values.is_empty() {
                    return Err(TargetError::new(
                        ErrorKind::Conflict,
                        format!(
                            "{what}: {}; the create carries no {} to recognise it as this person's",
                            describe(&result),
                            self.correlate
                        ),
                    ));
                }
                let filter = all_values_filter(&self.correlate, &values);
                match read_entry(ldap, self.timeout(), dn, &filter, read_back).await? {
                    Some(existing) => {
                        tracing::info!(
                            target_name = self.name,
                            "{what}: already exists with the same {}; counted as created",
                            self.correlate
                        );
                        Ok(Applied { entry: Some(into_target_entry(existing)?) })
                    }
                    None => Err(TargetError::new(
                        ErrorKind::Conflict,
                        format!(
                            "{what}: {}; the existing entry does not hold this person's {}",
                            describe(&result),
                            self.correlate
                        ),
                    )),
                }
            }
            _ => Err(result_error(what, &result)),
        }
    }

    async fn adopt(&self, ldap: &mut Ldap, what: &str, dn: &str, object_id: &str) -> Result<Applied, TargetError> {
        parse_dn(what, dn)?;
        let mut attrs = vec!["*".to_string(), ENTRY_UUID.to_string()];
        if self.ppolicy_lock {
            // Operational, so not among "*"; the planner reads whether the account is enabled from it.
            attrs.push(LOCK_ATTRIBUTE.to_string());
        }
        let entry = read_entry(ldap, self.timeout(), dn, "(objectClass=*)", attrs).await?.ok_or_else(|| gone(what))?;
        let mut entry = into_target_entry(entry)?;
        check_identity(what, &entry.object_id, Some(object_id))?;
        entry.attrs.retain(|attr, _| !is_secret(attr));
        Ok(Applied { entry: Some(entry) })
    }

    /// Update, Enable and Disable: one modify that deletes exactly the old values and adds the new.
    async fn modify(
        &self,
        ldap: &mut Ldap,
        what: &str,
        dn: &str,
        object_id: Option<&str>,
        changes: &[AttrChange],
    ) -> Result<Applied, TargetError> {
        parse_dn(what, dn)?;
        check_attribute_names(what, changes.iter().map(|c| &c.attr))?;
        let uuid = self.current_id(ldap, what, dn).await?.ok_or_else(|| gone(what))?;
        check_identity(what, &uuid, object_id)?;
        let mods = modifications(changes);
        if !mods.is_empty() {
            self.assert_identity(ldap, &uuid);
            let result = self.send(ldap.with_timeout(self.timeout()).modify(dn, mods).await, what)?;
            match result.rc {
                SUCCESS => {}
                NO_SUCH_ATTRIBUTE | TYPE_OR_VALUE_EXISTS => {
                    let attrs: Vec<&str> = changes.iter().map(|c| c.attr.as_str()).collect();
                    return Err(TargetError::new(
                        ErrorKind::Conflict,
                        format!(
                            "{what}: {}; the values of {} changed since planning (nothing was written)",
                            describe(&result),
                            attrs.join(", ")
                        ),
                    ));
                }
                NO_SUCH_OBJECT | ASSERTION_FAILED => return Err(replaced(what, &result)),
                _ => return Err(result_error(what, &result)),
            }
        }
        let attrs = changes.iter().map(|c| (c.attr.clone(), c.new.clone())).collect();
        Ok(Applied { entry: Some(TargetEntry { object_id: uuid, dn: dn.to_string(), attrs, protected: false }) })
    }

    async fn rename(
        &self,
        ldap: &mut Ldap,
        what: &str,
        dn: &str,
        object_id: Option<&str>,
        new_dn: &str,
    ) -> Result<Applied, TargetError> {
        let old = parse_dn(what, dn)?;
        let new = parse_dn(what, new_dn)?;
        let (Some(new_rdn), Some(new_parent)) = (new.rdn(), new.parent()) else {
            return Err(TargetError::new(ErrorKind::Permanent, format!("{what}: the new name {new_dn:?} has no RDN")));
        };
        let moved = |uuid: String| Applied {
            entry: Some(TargetEntry { object_id: uuid, dn: new_dn.to_string(), attrs: AttrMap::new(), protected: false }),
        };
        let uuid = match self.current_id(ldap, what, dn).await? {
            Some(uuid) => uuid,
            None => {
                // An earlier attempt whose answer was lost may already have moved it.
                if let Some(expected) = object_id
                    && let Some(there) = self.current_id(ldap, what, new_dn).await?
                    && there.eq_ignore_ascii_case(expected)
                {
                    return Ok(moved(there));
                }
                return Err(gone(what));
            }
        };
        check_identity(what, &uuid, object_id)?;
        let new_superior = old
            .parent()
            .filter(|parent| parent.normalized() == new_parent.normalized())
            .is_none()
            .then(|| new_parent.to_string());
        self.assert_identity(ldap, &uuid);
        let result = self.send(
            ldap.with_timeout(self.timeout()).modifydn(dn, &new_rdn.to_string(), true, new_superior.as_deref()).await,
            what,
        )?;
        match result.rc {
            SUCCESS => Ok(moved(uuid)),
            ALREADY_EXISTS => Err(TargetError::new(
                ErrorKind::Conflict,
                format!("{what}: {}; {new_dn} is already taken", describe(&result)),
            )),
            NO_SUCH_OBJECT | ASSERTION_FAILED => Err(replaced(what, &result)),
            _ => Err(result_error(what, &result)),
        }
    }

    async fn create_group(
        &self,
        ldap: &mut Ldap,
        what: &str,
        dn: &str,
        members: &[String],
        attributes: &AttrMap,
    ) -> Result<Applied, TargetError> {
        let parsed = parse_dn(what, dn)?;
        for member in members {
            parse_dn(what, member)?;
        }
        if members.is_empty() {
            return Err(TargetError::new(
                ErrorKind::Permanent,
                format!("{what}: a groupOfNames needs at least one member"),
            ));
        }
        let rdn = parsed.rdn().map(|rdn| rdn.0.clone()).unwrap_or_default();
        let mut entry: AttrMap = attributes.clone();
        entry.entry(AttrName::new("objectClass")).or_insert_with(|| vec!["groupOfNames".to_string()]);
        for ava in &rdn {
            entry.entry(AttrName::new(ava.attr.as_str())).or_default().push(ava.value.clone());
        }
        if let Some(first) = rdn.first() {
            entry.entry(AttrName::new("cn")).or_insert_with(|| vec![first.value.clone()]);
        }
        entry.insert(AttrName::new("member"), members.to_vec());
        let entry: Vec<(String, HashSet<String>)> =
            entry.into_iter().map(|(attr, values)| (attr.as_str().to_string(), values.into_iter().collect())).collect();
        let result = self.send(ldap.with_timeout(self.timeout()).add(dn, entry).await, what)?;
        let uuid = match result.rc {
            SUCCESS => self
                .current_id(ldap, what, dn)
                .await
                .map_err(|e| written_but_unread(what, &e.message))?
                .ok_or_else(|| written_but_unread(what, "it was not found"))?,
            ALREADY_EXISTS => {
                let existing =
                    read_entry(ldap, self.timeout(), dn, "(objectClass=groupOfNames)", vec![ENTRY_UUID.into()]).await?;
                let uuid = existing.and_then(|mut e| e.take_first(ENTRY_UUID)).ok_or_else(|| {
                    TargetError::new(
                        ErrorKind::Conflict,
                        format!("{what}: {}; the entry there is not a groupOfNames", describe(&result)),
                    )
                })?;
                for member in members {
                    self.add_member(ldap, what, dn, member).await?;
                }
                uuid
            }
            _ => return Err(result_error(what, &result)),
        };
        let mut attrs = AttrMap::new();
        attrs.insert(AttrName::new("member"), members.to_vec());
        Ok(Applied { entry: Some(TargetEntry { object_id: uuid, dn: dn.to_string(), attrs, protected: false }) })
    }

    async fn add_member(&self, ldap: &mut Ldap, what: &str, group: &str, member: &str) -> Result<(), TargetError> {
        let mods = vec![Mod::Add("member".to_string(), HashSet::from([member.to_string()]))];
        let result = self.send(ldap.with_timeout(self.timeout()).modify(group, mods).await, what)?;
        match result.rc {
            SUCCESS | TYPE_OR_VALUE_EXISTS => Ok(()),
            NO_SUCH_OBJECT => Err(TargetError::new(
                ErrorKind::Conflict,
                format!("{what}: {}; the group does not exist", describe(&result)),
            )),
            _ => Err(result_error(what, &result)),
        }
    }

    async fn remove_member(
        &self,
        ldap: &mut Ldap,
        what: &str,
        group: &str,
        member: &str,
    ) -> Result<Applied, TargetError> {
        let mods = vec![Mod::Delete("member".to_string(), HashSet::from([member.to_string()]))];
        let result = self.send(ldap.with_timeout(self.timeout()).modify(group, mods).await, what)?;
        match result.rc {
            SUCCESS | NO_SUCH_ATTRIBUTE | NO_SUCH_OBJECT => Ok(Applied { entry: None }),
            65 => Err(TargetError::new(
                ErrorKind::Permanent,
                format!(
                    "{what}: {}; a groupOfNames must keep at least one member (see empty_group_member)",
                    describe(&result)
                ),
            )),
            _ => Err(result_error(what, &result)),
        }
    }

    async fn delete(
        &self,
        ldap: &mut Ldap,
        what: &str,
        dn: &str,
        object_id: Option<&str>,
    ) -> Result<Applied, TargetError> {
        parse_dn(what, dn)?;
        let Some(uuid) = self.current_id(ldap, what, dn).await? else {
            return Ok(Applied { entry: None });
        };
        check_identity(what, &uuid, object_id)?;
        self.assert_identity(ldap, &uuid);
        let result = self.send(ldap.with_timeout(self.timeout()).delete(dn).await, what)?;
        match result.rc {
            SUCCESS | NO_SUCH_OBJECT => Ok(Applied { entry: None }),
            ASSERTION_FAILED => Err(replaced(what, &result)),
            _ => Err(result_error(what, &result)),
        }
    }

    /// The entryUUID of the entry at `dn`, or `None` when there is none.
    async fn current_id(&self, ldap: &mut Ldap, what: &str, dn: &str) -> Result<Option<String>, TargetError> {
        let entry = read_entry(ldap, self.timeout(), dn, "(objectClass=*)", vec![ENTRY_UUID.into()]).await?;
        match entry {
            None => Ok(None),
            Some(mut entry) => entry.take_first(ENTRY_UUID).map(Some).ok_or_else(|| no_entry_uuid(what, dn)),
        }
    }

    /// Makes the next request on `ldap` fail with assertionFailed unless the entry still is `uuid`.
    fn assert_identity(&self, ldap: &mut Ldap, uuid: &str) {
        if !self.assertion {
            return;
        }
        let filter = format!("({ENTRY_UUID}={})", escape_filter_value(uuid));
        // ldap3 encodes the control with a panicking parse: only hand it filters that parse.
        if ldap3::parse_filter(&filter).is_ok() {
            let control: RawControl = Assertion { filter }.critical().into();
            ldap.with_controls(control);
        }
    }

    fn send(
        &self,
        sent: Result<ldap3::LdapResult, ldap3::LdapError>,
        what: &str,
    ) -> Result<ldap3::LdapResult, TargetError> {
        sent.map_err(|e| ldap_error(what, e, Effect::Write, self.timeout()))
    }

    fn timeout(&self) -> Duration {
        self.session.timeout()
    }
}

impl Target for LdapTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { rename: true, disable: true, groups: true, passwords: false }
    }

    fn read_view(&mut self, attrs: &[AttrName]) -> impl Future<Output = Result<TargetView, TargetError>> + Send {
        LdapTarget::read_view(self, attrs)
    }

    fn apply(&self, op: &Operation) -> impl Future<Output = Result<Applied, TargetError>> + Send {
        LdapTarget::apply(self, op)
    }
}

/// Whether the root DSE lists `oid` among the supported controls. A server that hides its root DSE
/// is taken not to support it.
async fn supports_control(session: &Session, oid: &str) -> bool {
    let Ok(mut ldap) = session.handle().await else { return false };
    match read_entry(&mut ldap, session.timeout(), "", "(objectClass=*)", vec!["supportedControl".into()]).await {
        Ok(Some(root)) => {
            root.attrs.get(&AttrName::new("supportedControl")).is_some_and(|oids| oids.iter().any(|o| o == oid))
        }
        _ => false,
    }
}

/// The per-change modifications: old empty -> add new; new empty -> delete exactly old; both ->
/// delete exactly old and add new, in this order, in the same modify. Unchanged attributes are left
/// out; a delete never goes out without values (which would delete every value).
fn modifications(changes: &[AttrChange]) -> Vec<Mod<String>> {
    let mut mods = Vec::new();
    for change in changes {
        let old: HashSet<String> = change.old.iter().cloned().collect();
        let new: HashSet<String> = change.new.iter().cloned().collect();
        if old == new {
            continue;
        }
        let attr = change.attr.as_str().to_string();
        if !old.is_empty() {
            mods.push(Mod::Delete(attr.clone(), old));
        }
        if !new.is_empty() {
            mods.push(Mod::Add(attr, new));
        }
    }
    mods
}

fn into_target_entry(mut entry: Entry) -> Result<TargetEntry, TargetError> {
    let object_id = entry.take_first(ENTRY_UUID).ok_or_else(|| no_entry_uuid("read", &entry.dn))?;
    Ok(TargetEntry { object_id, dn: entry.dn, attrs: entry.attrs, protected: false })
}

fn check_identity(what: &str, found: &str, expected: Option<&str>) -> Result<(), TargetError> {
    match expected {
        Some(expected) if !found.eq_ignore_ascii_case(expected) => Err(TargetError::new(
            ErrorKind::Conflict,
            format!(
                "{what}: the entry there is {found}, not {expected} that the plan was made against (replaced since planning)"
            ),
        )),
        _ => Ok(()),
    }
}

fn parse_dn(what: &str, dn: &str) -> Result<Dn, TargetError> {
    Dn::parse(dn).map_err(|e| TargetError::new(ErrorKind::Permanent, format!("{what}: {e}")))
}

fn check_attribute_names<'a>(what: &str, names: impl IntoIterator<Item = &'a AttrName>) -> Result<(), TargetError> {
    for name in names {
        if !is_attribute_description(name.as_str()) {
            return Err(TargetError::new(
                ErrorKind::Permanent,
                format!("{what}: {:?} is not an attribute name", name.as_str()),
            ));
        }
    }
    Ok(())
}

fn gone(what: &str) -> TargetError {
    TargetError::new(
        ErrorKind::Conflict,
        format!("{what}: the entry no longer exists (deleted or renamed since planning)"),
    )
}

fn replaced(what: &str, result: &ldap3::LdapResult) -> TargetError {
    TargetError::new(
        ErrorKind::Conflict,
        format!("{what}: {}; the entry was deleted or replaced since planning (nothing was written)", describe(result)),
    )
}

fn written_but_unread(what: &str, why: &str) -> TargetError {
    TargetError::new(ErrorKind::Unknown, format!("{what}: created, but reading it back failed: {why}"))
}

fn no_entry_uuid(what: &str, dn: &str) -> TargetError {
    TargetError::new(
        ErrorKind::Permanent,
        format!(
            "{what}: {dn} has no entryUUID (RFC 4530), which roster needs to recognise it; is the bind DN allowed to read it?"
        ),
    )
}

fn is_secret(attr: &AttrName) -> bool {
    SECRET_ATTRIBUTES.iter().any(|secret| attr.is(secret))
}

fn value_set<const N: usize>(attr: &str, values: [&str; N]) -> (String, HashSet<String>) {
    (attr.to_string(), values.iter().map(|v| v.to_string()).collect())
}

/// An attribute description (RFC 4512): a name or an OID, with options (`cn;lang-de`). Anything else
/// is refused before it can reach a filter or a request.
fn is_attribute_description(text: &str) -> bool {
    let mut parts = text.split(';');
    let base = parts.next().unwrap_or_default();
    let is_name = base.starts_with(|c: char| c.is_ascii_alphabetic())
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let is_oid =
        !base.is_empty() && base.split('.').all(|arc| !arc.is_empty() && arc.chars().all(|c| c.is_ascii_digit()));
    (is_name || is_oid)
        && parts.all(|option| !option.is_empty() && option.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// `(&(objectClass=a)(objectClass=b))`, or `(objectClass=a)` for one class.
fn all_classes_filter(classes: &[String]) -> String {
    let terms: Vec<String> =
        classes.iter().map(|class| format!("(objectClass={})", escape_filter_value(class))).collect();
    match terms.as_slice() {
        [one] => one.clone(),
        _ => format!("(&{})", terms.concat()),
    }
}

/// `(|(objectClass=a)(objectClass=b)...)`.
fn any_class_filter(classes: &[&str]) -> String {
    let terms: String = classes.iter().map(|class| format!("(objectClass={})", escape_filter_value(class))).collect();
    format!("(|{terms})")
}

/// `(attr=v1)` or `(&(attr=v1)(attr=v2))`, every value escaped.
fn all_values_filter(attr: &str, values: &[String]) -> String {
    let terms: Vec<String> = values.iter().map(|value| format!("({attr}={})", escape_filter_value(value))).collect();
    match terms.as_slice() {
        [one] => one.clone(),
        _ => format!("(&{})", terms.concat()),
    }
}

/// The longest suffix that every DN lies within; `None` when they share none.
fn common_suffix(dns: &[Dn]) -> Option<Dn> {
    let first = dns.first()?;
    let rdns = first.rdns();
    (1..=rdns.len())
        .rev()
        .filter_map(|len| {
            let text: Vec<String> = rdns[rdns.len() - len..].iter().map(ToString::to_string).collect();
            Dn::parse(&text.join(",")).ok()
        })
        .find(|suffix| dns.iter().all(|dn| dn.is_within(suffix)))
}

/// The DNs that do not lie within another one of the list (duplicates kept once).
fn outermost(dns: &[Dn]) -> Vec<Dn> {
    let mut out: Vec<Dn> = Vec::new();
    for (i, dn) in dns.iter().enumerate() {
        let inside_other = dns
            .iter()
            .enumerate()
            .any(|(j, other)| i != j && dn.is_within(other) && (dn.normalized() != other.normalized() || j < i));
        if !inside_other {
            out.push(dn.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(text: &str) -> Dn {
        Dn::parse(text).unwrap()
    }

    fn change(attr: &str, old: &[&str], new: &[&str]) -> AttrChange {
        AttrChange {
            attr: AttrName::new(attr),
            old: old.iter().map(|v| v.to_string()).collect(),
            new: new.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn set(values: &[&str]) -> HashSet<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn changes_delete_exactly_the_old_values_and_add_the_new_in_one_modify() {
        let mods = modifications(&[
            change("mail", &[], &["a@x"]),
            change("description", &["old"], &[]),
            change("title", &["Engineer"], &["Lead"]),
            change("cn", &["Same"], &["Same"]),
            change("ou", &[], &[]),
        ]);
        assert_eq!(
            mods,
            vec![
                Mod::Add("mail".to_string(), set(&["a@x"])),
                Mod::Delete("description".to_string(), set(&["old"])),
                Mod::Delete("title".to_string(), set(&["Engineer"])),
                Mod::Add("title".to_string(), set(&["Lead"])),
            ]
        );
    }

    #[test]
    fn the_uniqueness_base_defaults_to_the_longest_common_suffix() {
        let managed = [dn("ou=people,dc=example,dc=org"), dn("OU=Groups, DC=Example,DC=org")];
        assert_eq!(common_suffix(&managed).unwrap().normalized(), "dc=example,dc=org");
        let one = [dn("ou=staff,ou=people,dc=example,dc=org")];
        assert_eq!(common_suffix(&one).unwrap().normalized(), "ou=staff,ou=people,dc=example,dc=org");
        assert_eq!(common_suffix(&[dn("ou=a,dc=one"), dn("ou=b,dc=two")]), None);
    }

    #[test]
    fn nested_and_repeated_managed_subtrees_are_searched_once() {
        let managed = [dn("ou=staff,ou=people,dc=x"), dn("ou=people,dc=x"), dn("ou=groups,dc=x"), dn("OU=Groups,dc=x")];
        let bases: Vec<String> = outermost(&managed).iter().map(Dn::normalized).collect();
        assert_eq!(bases, vec!["ou=people,dc=x", "ou=groups,dc=x"]);
    }

    #[test]
    fn filters_escape_every_value() {
        assert_eq!(
            all_values_filter("employeeNumber", &["*)(uid=*".to_string()]),
            "(employeeNumber=\\2a\\29\\28uid=\\2a)"
        );
        assert_eq!(
            all_values_filter("employeeNumber", &["a".to_string(), "b\\".to_string()]),
            "(&(employeeNumber=a)(employeeNumber=b\\5c))"
        );
        assert_eq!(all_classes_filter(&["inetOrgPerson".to_string()]), "(objectClass=inetOrgPerson)");
        assert_eq!(
            all_classes_filter(&["inetOrgPerson".to_string(), "posixAccount".to_string()]),
            "(&(objectClass=inetOrgPerson)(objectClass=posixAccount))"
        );
        assert!(ldap3::parse_filter(any_class_filter(&CONTAINER_CLASSES)).is_ok());
    }

    #[test]
    fn only_attribute_descriptions_pass() {
        for good in ["uid", "employeeNumber", "cn;lang-de", "2.5.4.3", "x-custom-1"] {
            assert!(is_attribute_description(good), "{good}");
        }
        for bad in ["", "uid=*", "uid)(cn", "1uid", "cn;", "2.5..4", "*", "e\u{301}"] {
            assert!(!is_attribute_description(bad), "{bad}");
        }
    }

    #[test]
    fn identity_checks_compare_uuids_case_insensitively() {
        assert!(check_identity("x", "ABC-1", Some("abc-1")).is_ok());
        assert!(check_identity("x", "abc-1", None).is_ok());
        assert_eq!(check_identity("x", "abc-2", Some("abc-1")).unwrap_err().kind, ErrorKind::Conflict);
    }
}
