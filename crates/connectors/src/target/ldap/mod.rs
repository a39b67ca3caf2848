//! The LDAP target, in two dialects: RFC 4511 directories with RFC 4530 `entryUUID` (OpenLDAP), and
//! Active Directory (and Samba AD), whose differences live in [`dialect`] and `ad.rs`.
//!
//! Architecture invariants:
//! - Nothing is written outside `managed`: every write's DN (a rename's new DN, a membership's
//!   group) is checked here before anything is sent, whatever the planner already checked. Nor to
//!   an entry that matches `protect`: each write to an existing entry checks it first.
//! - An operation on an existing entry first reads the entry's object id (`entryUUID`, AD's
//!   `objectGUID`) and refuses with [`ErrorKind::Conflict`] when it is not the object the plan was
//!   made against; where the server supports the assertion control (RFC 4528; AD does not) the write
//!   itself also asserts it, so an entry replaced between the read and the write is not touched
//!   either.
//! - Attribute changes delete exactly the old values and add the new ones in one modify, so a value
//!   an administrator changed since planning makes the modify fail rather than be overwritten. AD
//!   (and Samba) accept this on single-valued attributes too, `userAccountControl` included: the
//!   enable/disable flags change only if they still are what the plan was made against.
//! - Passwords travel only over TLS, whatever the server would accept, and never appear in an
//!   error, a log line or a `Debug` output.
//! - Every filter value goes through [`escape_filter_value`]; DNs are parsed and rebuilt by
//!   [`roster_core::dn`], never spliced together here.

mod ad;
mod dialect;
mod errors;
mod partial;
mod password;
mod search;
mod session;
pub(crate) mod tls;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldap3::controls::{Assertion, MakeCritical, PostRead, RawControl};
use ldap3::{Ldap, Mod};
use roster_core::attr::{AttrMap, AttrName, Attributes};
use roster_core::config::TargetConfig;
use roster_core::dn::{Dn, escape_filter_value, normalize_dn};
use roster_core::plan::{Action, Applied, AttrChange, Operation};
use roster_core::state::{TargetEntry, TargetGroup, TargetView, ViewRequest};
use secrecy::SecretString;

use self::dialect::Dialect;
use self::errors::{
    ALREADY_EXISTS, ASSERTION_FAILED, Effect, NO_SUCH_ATTRIBUTE, NO_SUCH_OBJECT, OBJECT_CLASS_VIOLATION, Right,
    SUCCESS, TYPE_OR_VALUE_EXISTS, UNWILLING_TO_PERFORM, describe, ldap_error, result_error,
};
use self::search::{Entry, POST_READ_OID, PagedReader, post_read_entry, ranged_values, read_entry};
use self::session::Session;
use crate::target::{Capabilities, ErrorKind, Target, TargetError};

const ASSERTION_OID: &str = "1.3.6.1.1.12";
/// OpenLDAP ppolicy's administrative lock: a lock that never expires.
const LOCK_ATTRIBUTE: &str = "pwdAccountLockedTime";
const LOCKED_FOREVER: &str = "000001010000Z";
/// Ask for no attributes (RFC 4511 4.5.1.8).
const NO_ATTRIBUTES: &str = "1.1";

/// Member DNs in the order slapd keeps a group's members with `olcSortVals: member`, which large
/// directories set: `dnMatch`, by normalized length and then bytes, the normalized DN taken to be
/// the DN in lower case (roster's DNs carry no spaces or escapes to normalize; where one differs,
/// only the speed below is lost). A modify inserts each value it adds into the sorted list, moving
/// every value after it: a group created in requests of this order gets each later request's
/// members after all the earlier ones', every insertion an append. A group of 300,000 in a
/// directory of a million accounts, in three requests of 100,000 (`ldapadd`, then two
/// `ldapmodify`): the modifies took 12.4 and 20.2 s with the members in plan order, 8.2 and 8.7 s
/// in this order.
fn in_sorted_values_order(members: &[Arc<str>]) -> Vec<Arc<str>> {
    let mut sorted = members.to_vec();
    sorted.sort_by(|a, b| {
        a.len()
            .cmp(&b.len())
            .then_with(|| a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes().map(|c| c.to_ascii_lowercase())))
    });
    sorted
}

/// What a member DN adds to the size of a request.
fn member_bytes(member: &str) -> usize {
    member.len() + MEMBER_ENCODING_BYTES
}

/// A connected, bound LDAP directory or AD domain. See the module documentation for what it
/// guarantees.
pub struct LdapTarget {
    name: String,
    dialect: Dialect,
    session: Session,
    /// The managed subtrees, as configured.
    managed: Vec<Dn>,
    /// The managed subtrees that do not lie inside another one: where the view is read.
    search_bases: Vec<Dn>,
    unique_base: Dn,
    account_filter: String,
    /// `protect`, checked: accounts matching it are flagged in the view and never written to.
    protect: Option<String>,
    login_attribute: String,
    correlate: String,
    /// `disable.lock`: disabled accounts carry ppolicy's administrative lock.
    ppolicy_lock: bool,
    /// The target sets initial passwords: always for AD (an account cannot be enabled without
    /// one), for LDAP when `password` is configured.
    passwords: bool,
    /// Whether the server advertises the assertion control.
    assertion: bool,
    /// Whether the server advertises the post-read control: a create's answer then carries the
    /// new entry's id, with no second request to read it back.
    post_read: bool,
    /// Entries per page of the view's searches: [`search::PAGE_SIZE`] unless the server allows fewer.
    page_size: i32,
    /// `member_of`: a partial read takes each account's groups from its `memberOf`.
    member_of: bool,
    /// The most bytes of member values one request carries (`max_request_bytes`; at most
    /// [`Dialect::members_per_request`] of them): see [`LdapTarget::member_requests`].
    max_request_bytes: usize,
    /// The accounts this connection renamed: normalized new DN → old DN. OpenLDAP's refint rewrites
    /// group members after a rename in a task of its own, after the rename has answered; a removal
    /// of the new DN can arrive before that rewrite (see [`LdapTarget::remove_member`]).
    renamed: Mutex<HashMap<String, String>>,
    /// Set once a renamed member's old DN stayed in a group past [`REFINT_WAIT`]: the directory
    /// keeps no referential integrity, and later removals take the old DN at once.
    no_refint: AtomicBool,
}

/// What a member value costs in a request besides its text: the BER tag and length of the value.
const MEMBER_ENCODING_BYTES: usize = 4;

/// A refused modify of more members than this (one already there or already gone) is halved and
/// each half sent again, so that a refusal among many thousands costs a few dozen requests, not a
/// request per member; at most this many go one by one.
const ONE_BY_ONE_UP_TO: usize = 16;

/// A new group's create asks for its id with the post-read control up to this many members, and
/// a larger group's id is read by a search after the add. OpenLDAP's `memberof` overlay copies the
/// control into the modify it makes of each member, so a post-read there costs one entry read and
/// one line of slapd's log per member, inside the write transaction every write waits for (about
/// 8 µs of slapd's time per member: 1 ms for a group of 100, 7 ms for one of 1,000), where the
/// search costs a round trip beside the writes (about 0.3 ms a group in a first load).
const POST_READ_MEMBERS_UP_TO: usize = 32;

/// How long a removal waits for the directory's referential integrity to rewrite a renamed
/// member's old DN in a group before it concludes that nothing will.
const REFINT_WAIT: Duration = Duration::from_secs(5);

impl fmt::Debug for LdapTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapTarget")
            .field("name", &self.name)
            .field("dialect", &self.dialect)
            .field("url", &self.session.url())
            .field("managed", &self.managed.iter().map(Dn::to_string).collect::<Vec<_>>())
            .field("assertion_control", &self.assertion)
            .field("post_read_control", &self.post_read)
            .finish_non_exhaustive()
    }
}

/// The configuration's values that do not need the server, checked.
#[derive(Debug)]
struct Checked {
    dialect: Dialect,
    managed: Vec<Dn>,
    search_bases: Vec<Dn>,
    unique_base: Dn,
    account_filter: String,
    protect: Option<String>,
}

/// Checks `config` (with its kind's defaults resolved) without touching the network.
fn check_config(config: &TargetConfig) -> Result<Checked, TargetError> {
    let name = &config.name;
    let config_error = |what: String| TargetError::new(ErrorKind::Config, format!("target {name}: {what}"));
    let dialect = Dialect::of(config.kind)
        .ok_or_else(|| config_error(format!("a {:?} target is not an LDAP directory", config.kind)))?;

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
    let protect = match &config.protect {
        None => None,
        Some(filter) => Some(check_filter(filter).map_err(|why| config_error(format!("protect: {why}")))?),
    };
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
        None => {
            let suffix = common_suffix(&managed).ok_or_else(|| {
                config_error(
                    "the managed subtrees share no suffix: set unique_base to where login names must be unique"
                        .to_string(),
                )
            })?;
            // sAMAccountName is unique in the whole domain, not just below the managed OUs.
            match dialect {
                Dialect::ActiveDirectory => ad::domain_of(&suffix).unwrap_or(suffix),
                Dialect::Ldap => suffix,
            }
        }
    };
    Ok(Checked {
        dialect,
        search_bases: outermost(&managed),
        managed,
        unique_base,
        account_filter: dialect.account_filter(&config.object_classes),
        protect,
    })
}

/// A filter from the configuration, trimmed, when it is one parenthesized filter that parses.
fn check_filter(text: &str) -> Result<String, String> {
    let filter = text.trim();
    if !(filter.starts_with('(') && filter.ends_with(')')) || ldap3::parse_filter(filter).is_err() {
        return Err(format!("{text:?} is not an LDAP filter such as \"(adminCount=1)\""));
    }
    Ok(filter.to_string())
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
        let checked = check_config(config)?;
        let name = config.name.clone();

        let session = Session::open(config, password, config_dir).await?;
        let assertion = supports_control(&session, ASSERTION_OID).await;
        let post_read = supports_control(&session, POST_READ_OID).await;
        if !assertion {
            tracing::info!(
                target_name = name,
                "the server does not advertise the assertion control; identity checks rely on a read before each write"
            );
        }
        Ok(LdapTarget {
            dialect: checked.dialect,
            account_filter: checked.account_filter,
            protect: checked.protect,
            login_attribute: config.login_attribute.clone(),
            correlate: config.correlate.clone(),
            ppolicy_lock: config.disable.lock,
            passwords: checked.dialect == Dialect::ActiveDirectory || config.password.is_some(),
            name,
            session,
            managed: checked.managed,
            search_bases: checked.search_bases,
            unique_base: checked.unique_base,
            assertion,
            post_read,
            page_size: search::PAGE_SIZE,
            member_of: config.member_of.unwrap_or(checked.dialect == Dialect::ActiveDirectory),
            max_request_bytes: config
                .max_request_bytes
                .unwrap_or(roster_core::config::DEFAULT_MAX_REQUEST_BYTES)
                .max(roster_core::config::MIN_REQUEST_BYTES),
            renamed: Mutex::default(),
            no_refint: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads the target as the planner needs it: paged subtree searches of every managed subtree for
    /// accounts (entries with all of `object_classes`, with `attrs`; in AD only of the person
    /// category), the accounts among them that match `protect`, groups (groupOfNames, or AD groups
    /// with their members read in ranged windows) and containers, and the login names taken anywhere
    /// under the uniqueness base.
    pub async fn read_view(&mut self, attrs: &[AttrName]) -> Result<TargetView, TargetError> {
        let id_attr = self.dialect.id_attribute();
        let requested = self.requested(attrs)?;
        let timeout = self.session.timeout();
        let mut reader = PagedReader { ldap: self.session.handle().await?, timeout, page_size: &mut self.page_size };
        let mut view = TargetView { target: self.name.clone(), ..TargetView::default() };
        for base in &self.search_bases {
            let base_text = base.to_string();
            let Some(accounts) = reader.subtree(&base_text, &self.account_filter, requested.clone()).await? else {
                tracing::info!(target_name = self.name, "managed subtree {base_text} does not exist yet");
                continue;
            };
            let vanished = || {
                TargetError::new(
                    ErrorKind::Transient,
                    format!("target {}: {base_text} disappeared while it was read", self.name),
                )
            };
            let mut protected = HashSet::new();
            if let Some(protect) = &self.protect {
                let filter = format!("(&{}{protect})", self.account_filter);
                for mut entry in
                    reader.subtree(&base_text, &filter, vec![id_attr.to_string()]).await?.ok_or_else(vanished)?
                {
                    protected.insert(take_id(self.dialect, "read", &mut entry)?);
                }
            }
            view.containers.insert(base.normalized());
            for entry in accounts {
                let mut entry = target_entry(self.dialect, "read", entry)?;
                entry.protected = protected.contains(&entry.object_id);
                view.entries.push(entry);
            }
            let group_filter = format!("(objectClass={})", self.dialect.group_class());
            let group_attrs = vec![self.dialect.member_request(), id_attr.to_string()];
            let groups = reader.subtree(&base_text, &group_filter, group_attrs).await?.ok_or_else(vanished)?;
            for mut entry in groups {
                let members = ranged_values(&mut reader.ldap, timeout, &mut entry, "member").await?;
                let group = target_entry(self.dialect, "read", entry)?;
                view.groups.push(TargetGroup { object_id: group.object_id, dn: group.dn, members });
            }
            let no_attrs = vec![NO_ATTRIBUTES.to_string()];
            let containers =
                reader.subtree(&base_text, &self.dialect.container_filter(), no_attrs).await?.ok_or_else(vanished)?;
            view.containers.extend(containers.iter().map(|entry| normalize_dn(&entry.dn)));
        }

        let login_filter = format!("({}=*)", self.login_attribute);
        view.taken_logins =
            taken_logins(&mut reader, &self.name, &self.unique_base, &self.login_attribute, &login_filter).await?;
        view.entries.sort_by_cached_key(|e| normalize_dn(&e.dn));
        view.groups.sort_by_cached_key(|g| normalize_dn(&g.dn));
        Ok(view)
    }

    /// The attributes an account is read with: those the planner asks for, and the object id.
    fn requested(&self, attrs: &[AttrName]) -> Result<Vec<String>, TargetError> {
        let id_attr = self.dialect.id_attribute();
        let mut requested: Vec<String> = Vec::new();
        for attr in attrs {
            if !is_attribute_description(attr.as_str()) {
                return Err(TargetError::new(
                    ErrorKind::Config,
                    format!("target {}: {:?} is not an attribute name", self.name, attr.as_str()),
                ));
            }
            if !attr.is(id_attr) && !requested.iter().any(|r| attr.is(r)) {
                requested.push(attr.as_str().to_string());
            }
        }
        requested.push(id_attr.to_string());
        Ok(requested)
    }

    /// Applies one operation. Safe to call concurrently: each call clones a connection's handle (the
    /// session hands out its connections in turn), and ldap3 multiplexes the requests on it. A
    /// `set_password` operation goes to [`LdapTarget::set_password`] instead, with the password.
    pub async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        let what = self.check_operation(op)?;
        let mut ldap = self.session.handle().await?;
        let ldap = &mut ldap;
        match &op.action {
            Action::CreateContainer { dn } => self.create_container(ldap, &what, dn).await,
            Action::Create { dn, attributes, enabled, .. } => {
                self.create(ldap, &what, dn, &attributes.to_map(), *enabled).await
            }
            Action::SetPassword { .. } => Err(TargetError::new(
                ErrorKind::Permanent,
                format!("{what}: a set_password operation carries no password; the runner calls set_password with one"),
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

    /// Applies independent operations: the membership changes of one group, all additions or all
    /// removals, as one modify of as many values as one request carries (see
    /// [`LdapTarget::member_requests`] and [`LdapTarget::change_members`]: a directory such as
    /// OpenLDAP's back-mdb rewrites a group entry whole for every modify, some megabytes for a
    /// group of 100,000); every other operation on its own. All in flight at once; the results are
    /// in the order of `ops`.
    pub async fn apply_batch(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        let mut units: Vec<Vec<(usize, MemberChange<'_>)>> = Vec::new();
        let mut unit_bytes: Vec<usize> = Vec::new();
        let mut singles = Vec::new();
        let mut open: HashMap<(String, bool), usize> = HashMap::new();
        for (index, op) in ops.iter().enumerate() {
            let Some(change) = MemberChange::of(op) else {
                singles.push(index);
                continue;
            };
            let key = (normalize_dn(change.group), change.add);
            let bytes = member_bytes(change.member);
            match open.get(&key) {
                Some(&unit)
                    if units[unit].len() < self.dialect.members_per_request()
                        && unit_bytes[unit] + bytes <= self.max_request_bytes =>
                {
                    units[unit].push((index, change));
                    unit_bytes[unit] += bytes;
                }
                _ => {
                    open.insert(key, units.len());
                    units.push(vec![(index, change)]);
                    unit_bytes.push(bytes);
                }
            }
        }
        let members = futures_util::future::join_all(units.iter().map(|unit| async move {
            let changes: Vec<MemberChange<'_>> = unit.iter().map(|(_, change)| *change).collect();
            self.change_members(&changes).await
        }));
        let others = futures_util::future::join_all(singles.iter().map(|&index| self.apply(&ops[index])));
        let (members, others) = futures_util::future::join(members, others).await;
        let mut results: Vec<Option<Result<Applied, TargetError>>> = ops.iter().map(|_| None).collect();
        for (unit, answers) in units.iter().zip(members) {
            for ((index, _), answer) in unit.iter().zip(answers) {
                results[*index] = Some(answer);
            }
        }
        for (index, answer) in singles.into_iter().zip(others) {
            results[index] = Some(answer);
        }
        every_result(results)
    }

    /// Membership changes of one group, all additions or all removals, as one modify of every
    /// member value: one rewrite of the group entry instead of one per member. When the directory
    /// refuses it (a member already there or already gone, a groupOfNames losing its last member,
    /// AD's unwillingToPerform, ...), nothing was changed, since a modify is atomic, and each change
    /// goes again on its own, one after the other, as [`LdapTarget::apply`] sends it, for its own
    /// outcome and error. When no answer came, each change gets that error. The results are in the
    /// order of `changes`.
    async fn change_members(&self, changes: &[MemberChange<'_>]) -> Vec<Result<Applied, TargetError>> {
        let mut results: Vec<Option<Result<Applied, TargetError>>> = changes.iter().map(|_| None).collect();
        let mut checked = Vec::new();
        for (index, change) in changes.iter().enumerate() {
            match self.check_operation(change.op) {
                Ok(what) => checked.push((index, what)),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        let mut ldap = match self.session.handle().await {
            Ok(ldap) => ldap,
            Err(e) => {
                for (index, _) in checked {
                    results[index] = Some(Err(e.clone()));
                }
                return every_result(results);
            }
        };
        let ldap = &mut ldap;
        // The changes still to make together; a refused modify of many is halved, each half tried
        // again, and what is left of a refusal goes one by one below, in the order of `changes`.
        let mut together = vec![std::mem::take(&mut checked)];
        while let Some(mut part) = together.pop() {
            let Some(first) = part.first().map(|(index, _)| changes[*index]).filter(|_| part.len() > 1) else {
                checked.append(&mut part);
                continue;
            };
            let what = format!("one modify with {} other member(s)", part.len() - 1);
            let members = part.iter().map(|(index, _)| changes[*index].member);
            match self.modify_members(ldap, &what, first.group, members, first.add).await {
                Ok(result) if result.rc == SUCCESS => {
                    for (index, _) in part {
                        results[index] = Some(Ok(Applied { entry: None }));
                    }
                }
                Ok(_) if part.len() > ONE_BY_ONE_UP_TO => {
                    let back = part.split_off(part.len() / 2);
                    together.push(back);
                    together.push(part);
                }
                Ok(_) => checked.append(&mut part),
                Err(shared) => {
                    for (index, what) in part {
                        results[index] =
                            Some(Err(TargetError::new(shared.kind, format!("{what}: {}", shared.message))));
                    }
                }
            }
        }
        checked.sort_unstable_by_key(|(index, _)| *index);
        for (index, what) in checked {
            let change = changes[index];
            results[index] = Some(if change.add {
                self.add_member(ldap, &what, change.group, change.member).await.map(|()| Applied { entry: None })
            } else {
                self.remove_member(ldap, &what, change.group, change.member).await
            });
        }
        every_result(results)
    }

    /// Unbinds and closes the connection.
    pub async fn close(self) -> Result<(), TargetError> {
        self.session.close().await
    }

    /// Refuses an operation for another target or outside the managed subtrees, before anything is
    /// sent; returns how messages name it ("target ad: enable CN=...").
    fn check_operation(&self, op: &Operation) -> Result<String, TargetError> {
        if *op.target != *self.name {
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
        Ok(what)
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
        let result = self.send(self.session.answer(ldap.add(dn, attrs)).await, what)?;
        match result.rc {
            SUCCESS | ALREADY_EXISTS => Ok(Applied { entry: None }),
            _ => Err(result_error(what, &result, Right::CreateChild)),
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
        // The planned values as they are, copied only when something must change in them.
        let mut attributes = Cow::Borrowed(attributes);
        if attributes.values().any(Vec::is_empty) {
            attributes.to_mut().retain(|_, values| !values.is_empty());
        }
        check_attribute_names(what, attributes.keys())?;
        if !enabled {
            // Defense in depth: an account planned disabled must never start out able to log in.
            match self.dialect {
                Dialect::Ldap if self.ppolicy_lock => {
                    attributes
                        .to_mut()
                        .entry(AttrName::new(LOCK_ATTRIBUTE))
                        .or_insert_with(|| vec![LOCKED_FOREVER.to_string()]);
                }
                Dialect::Ldap => {}
                Dialect::ActiveDirectory => disable_flag(what, attributes.to_mut())?,
            }
        }
        // What a search reads back where the post-read control cannot: made only then, as the
        // post-read answers nearly every create.
        let read_back = || -> Vec<String> {
            attributes
                .keys()
                .filter(|attr| !is_secret(attr))
                .map(|attr| attr.as_str().to_string())
                .chain([self.dialect.id_attribute().to_string()])
                .collect()
        };
        let entry: Vec<(&str, HashSet<&str>)> = attributes
            .iter()
            .map(|(attr, values)| (attr.as_str(), values.iter().map(String::as_str).collect()))
            .collect();
        // The post-read asks for the new entry's id alone: the id is what the store links, and
        // the written values would be the planned ones, encoded by the server and decoded here
        // for nothing (some 5 % of a first load's CPU on roster's main thread when they were).
        self.ask_post_read(ldap, &[self.dialect.id_attribute().to_string()]);
        let result = self.send(self.session.answer(ldap.add(dn, entry)).await, what)?;
        match result.rc {
            SUCCESS => {
                if let Some(entry) = post_read_entry(&result) {
                    let entry = self.target_entry(what, entry).map_err(|e| written_but_unread(what, &e.message))?;
                    return Ok(Applied { entry: Some(entry) });
                }
                // No post-read control: the entry read back with a search, its written values with it.
                let created = read_entry(ldap, self.timeout(), dn, "(objectClass=*)", read_back()).await;
                let entry = created.map_err(|e| written_but_unread(what, &e.message))?;
                let entry = entry.ok_or_else(|| written_but_unread(what, "it was not found"))?;
                let entry = self.target_entry(what, entry).map_err(|e| written_but_unread(what, &e.message))?;
                Ok(Applied { entry: Some(entry) })
            }
            ALREADY_EXISTS => {
                // Either an earlier attempt whose answer was lost created it (then it holds this
                // person's correlation value), or the name belongs to someone else, or (AD) a
                // unique value such as the sAMAccountName is taken elsewhere in the domain.
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
                if let Some(existing) = read_entry(ldap, self.timeout(), dn, &filter, read_back()).await? {
                    tracing::info!(
                        target_name = self.name,
                        "{what}: already exists with the same {}; counted as created",
                        self.correlate
                    );
                    return Ok(Applied { entry: Some(self.target_entry(what, existing)?) });
                }
                let taken_here = self.current_id(ldap, what, dn).await?.is_some();
                let why = if taken_here {
                    format!("the existing entry does not hold this person's {}", self.correlate)
                } else {
                    format!(
                        "nothing is at this DN, so a value that must be unique ({} or another) is taken elsewhere",
                        self.login_attribute
                    )
                };
                Err(TargetError::new(ErrorKind::Conflict, format!("{what}: {}; {why}", describe(&result))))
            }
            _ => Err(result_error(what, &result, Right::CreateChild)),
        }
    }

    async fn adopt(&self, ldap: &mut Ldap, what: &str, dn: &str, object_id: &str) -> Result<Applied, TargetError> {
        parse_dn(what, dn)?;
        let mut attrs = vec!["*".to_string(), self.dialect.id_attribute().to_string()];
        if self.ppolicy_lock {
            // Operational, so not among "*"; the planner reads whether the account is enabled from it.
            attrs.push(LOCK_ATTRIBUTE.to_string());
        }
        let entry = read_entry(ldap, self.timeout(), dn, "(objectClass=*)", attrs).await?.ok_or_else(|| gone(what))?;
        let mut entry = self.target_entry(what, entry)?;
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
        let uuid = self.unprotected_id(ldap, what, dn).await?.ok_or_else(|| gone(what))?;
        check_identity(what, &uuid, object_id)?;
        let mods = modifications(changes);
        if !mods.is_empty() {
            self.assert_identity(ldap, &uuid);
            let result = self.send(self.session.answer(ldap.modify(dn, mods)).await, what)?;
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
                _ => return Err(result_error(what, &result, Right::WriteAttributes)),
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
            entry: Some(TargetEntry {
                object_id: uuid,
                dn: new_dn.to_string(),
                attrs: AttrMap::new(),
                protected: false,
            }),
        };
        let uuid = match self.unprotected_id(ldap, what, dn).await? {
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
            self.session.answer(ldap.modifydn(dn, &new_rdn.to_string(), true, new_superior.as_deref())).await,
            what,
        )?;
        match result.rc {
            SUCCESS => {
                self.renamed.lock().unwrap_or_else(|e| e.into_inner()).insert(normalize_dn(new_dn), dn.to_string());
                Ok(moved(uuid))
            }
            ALREADY_EXISTS => Err(TargetError::new(
                ErrorKind::Conflict,
                format!("{what}: {}; {new_dn} is already taken", describe(&result)),
            )),
            NO_SUCH_OBJECT | ASSERTION_FAILED => Err(replaced(what, &result)),
            _ => Err(result_error(what, &result, Right::Rename)),
        }
    }

    async fn create_group(
        &self,
        ldap: &mut Ldap,
        what: &str,
        dn: &str,
        members: &[Arc<str>],
        attributes: &Attributes,
    ) -> Result<Applied, TargetError> {
        let parsed = parse_dn(what, dn)?;
        for member in members {
            parse_dn(what, member)?;
        }
        let group_class = self.dialect.group_class();
        if members.is_empty() && !self.dialect.groups_may_be_empty() {
            return Err(TargetError::new(
                ErrorKind::Permanent,
                format!("{what}: a {group_class} needs at least one member"),
            ));
        }
        let rdn = parsed.rdn().map(|rdn| rdn.0.clone()).unwrap_or_default();
        let mut entry: AttrMap = attributes.to_map();
        entry.retain(|_, values| !values.is_empty());
        check_attribute_names(what, entry.keys())?;
        entry.entry(AttrName::new("objectClass")).or_insert_with(|| vec![group_class.to_string()]);
        for ava in &rdn {
            let values = entry.entry(AttrName::new(ava.attr.as_str())).or_default();
            if !values.iter().any(|v| v.eq_ignore_ascii_case(&ava.value)) {
                values.push(ava.value.clone());
            }
        }
        if let Some(first) = rdn.first() {
            entry.entry(AttrName::new("cn")).or_insert_with(|| vec![first.value.clone()]);
        }
        // A large group is created with its first members and given the rest in later requests:
        // a directory bounds the size of one request (OpenLDAP's 16 MiB by default, about 300,000
        // member DNs; AD's 10 MB), and a create that fails halfway is finished by a reconcile's
        // member diff (the run says so).
        let in_order: Vec<Arc<str>>;
        let mut requests = self.member_requests(members);
        if requests.len() > 1 && self.dialect == Dialect::Ldap {
            in_order = in_sorted_values_order(members);
            requests = self.member_requests(&in_order);
        }
        let (first, rest) = requests.split_first().map_or((&[][..], &[][..]), |(first, rest)| (*first, rest));
        if !first.is_empty() {
            entry.insert(AttrName::new("member"), first.iter().map(|m| m.to_string()).collect());
        }
        let entry: Vec<(String, HashSet<String>)> =
            entry.into_iter().map(|(attr, values)| (attr.as_str().to_string(), values.into_iter().collect())).collect();
        if members.len() <= POST_READ_MEMBERS_UP_TO {
            self.ask_post_read(ldap, &[self.dialect.id_attribute().to_string()]);
        }
        let result = self.send(self.session.answer(ldap.add(dn, entry)).await, what)?;
        let uuid = match result.rc {
            SUCCESS => match post_read_entry(&result) {
                Some(mut entry) => self.take_id(what, &mut entry).map_err(|e| written_but_unread(what, &e.message))?,
                None => self
                    .current_id(ldap, what, dn)
                    .await
                    .map_err(|e| written_but_unread(what, &e.message))?
                    .ok_or_else(|| written_but_unread(what, "it was not found"))?,
            },
            ALREADY_EXISTS => {
                let filter = format!("(objectClass={})", escape_filter_value(group_class));
                let existing =
                    read_entry(ldap, self.timeout(), dn, &filter, vec![self.dialect.id_attribute().into()]).await?;
                let uuid = existing.and_then(|mut e| self.dialect.take_id(&mut e)).ok_or_else(|| {
                    TargetError::new(
                        ErrorKind::Conflict,
                        format!("{what}: {}; the entry there is not a {group_class}", describe(&result)),
                    )
                })?;
                for &request in &requests {
                    self.add_members(ldap, what, dn, request).await?;
                }
                uuid
            }
            _ => return Err(result_error(what, &result, Right::CreateChild)),
        };
        if result.rc == SUCCESS {
            for &request in rest {
                self.add_members(ldap, what, dn, request).await?;
            }
        }
        let mut attrs = AttrMap::new();
        attrs.insert(AttrName::new("member"), members.iter().map(|m| m.to_string()).collect());
        Ok(Applied { entry: Some(TargetEntry { object_id: uuid, dn: dn.to_string(), attrs, protected: false }) })
    }

    /// Adds `members` to a group in one request; if the directory refuses it because one is
    /// already there, each half again, and at most [`ONE_BY_ONE_UP_TO`] one by one (each then a
    /// success or already there).
    async fn add_members(
        &self,
        ldap: &mut Ldap,
        what: &str,
        group: &str,
        members: &[Arc<str>],
    ) -> Result<(), TargetError> {
        let mut together = vec![members];
        while let Some(part) = together.pop() {
            match part {
                [] => continue,
                [member] => {
                    self.add_member(ldap, what, group, member).await?;
                    continue;
                }
                _ => {}
            }
            let result = self.modify_members(ldap, what, group, part.iter().map(|m| &**m), true).await?;
            match result.rc {
                SUCCESS => {}
                TYPE_OR_VALUE_EXISTS | ALREADY_EXISTS if part.len() > ONE_BY_ONE_UP_TO => {
                    let (front, back) = part.split_at(part.len() / 2);
                    together.push(back);
                    together.push(front);
                }
                TYPE_OR_VALUE_EXISTS | ALREADY_EXISTS => {
                    for member in part {
                        self.add_member(ldap, what, group, member).await?;
                    }
                }
                _ => return Err(result_error(what, &result, Right::WriteMembers)),
            }
        }
        Ok(())
    }

    /// `members` in the runs one request carries, in order: at most
    /// [`Dialect::members_per_request`] values and at most `max_request_bytes` bytes of them, one
    /// value at least. None for no members.
    fn member_requests<'m>(&self, members: &'m [Arc<str>]) -> Vec<&'m [Arc<str>]> {
        let most = self.dialect.members_per_request();
        let mut requests = Vec::new();
        let mut rest = members;
        while !rest.is_empty() {
            let mut bytes = 0;
            let end = rest
                .iter()
                .take(most)
                .position(|member| {
                    bytes += member_bytes(member);
                    bytes > self.max_request_bytes
                })
                .unwrap_or(rest.len().min(most))
                .max(1);
            let (request, after) = rest.split_at(end);
            requests.push(request);
            rest = after;
        }
        requests
    }

    async fn add_member(&self, ldap: &mut Ldap, what: &str, group: &str, member: &str) -> Result<(), TargetError> {
        let result = self.modify_members(ldap, what, group, [member], true).await?;
        match result.rc {
            // AD says a member is already there with entryAlreadyExists (00000562).
            SUCCESS | TYPE_OR_VALUE_EXISTS | ALREADY_EXISTS => Ok(()),
            NO_SUCH_OBJECT => {
                // AD also answers noSuchObject when the member does not exist.
                let missing = match self.current_id(ldap, what, group).await? {
                    None => "the group does not exist",
                    Some(_) => "the member does not exist",
                };
                Err(TargetError::new(ErrorKind::Conflict, format!("{what}: {}; {missing}", describe(&result))))
            }
            _ => Err(result_error(what, &result, Right::WriteMembers)),
        }
    }

    async fn remove_member(
        &self,
        ldap: &mut Ldap,
        what: &str,
        group: &str,
        member: &str,
    ) -> Result<Applied, TargetError> {
        let result = self.modify_members(ldap, what, group, [member], false).await?;
        match result.rc {
            NO_SUCH_ATTRIBUTE => {
                let old = self.renamed.lock().unwrap_or_else(|e| e.into_inner()).get(&normalize_dn(member)).cloned();
                match old {
                    Some(old) => self.remove_renamed_member(ldap, what, group, member, &old).await,
                    None => Ok(Applied { entry: None }),
                }
            }
            SUCCESS | NO_SUCH_OBJECT => Ok(Applied { entry: None }),
            OBJECT_CLASS_VIOLATION => Err(TargetError::new(
                ErrorKind::Permanent,
                format!(
                    "{what}: {}; a groupOfNames must keep at least one member (see empty_group_member)",
                    describe(&result)
                ),
            )),
            // AD refuses to remove a member that is not there (00000561) as unwillingToPerform,
            // which it also says for other reasons: it counts as removed only if it is gone.
            UNWILLING_TO_PERFORM => {
                let filter = format!("(member={})", escape_filter_value(member));
                match read_entry(ldap, self.timeout(), group, &filter, vec![NO_ATTRIBUTES.into()]).await? {
                    None => Ok(Applied { entry: None }),
                    Some(_) => Err(result_error(what, &result, Right::WriteMembers)),
                }
            }
            _ => Err(result_error(what, &result, Right::WriteMembers)),
        }
    }

    /// A removal of `member`, renamed from `old` in this run, that found no such value: the group
    /// may still hold the old DN because the directory's referential integrity (OpenLDAP's refint
    /// works after the rename has answered) has not rewritten it yet. Waits until the old DN is
    /// gone, then removes the new one again. A group that keeps the old DN past [`REFINT_WAIT`]
    /// is in a directory without referential integrity: the old DN is removed instead, then and
    /// for the rest of the run without waiting.
    async fn remove_renamed_member(
        &self,
        ldap: &mut Ldap,
        what: &str,
        group: &str,
        member: &str,
        old: &str,
    ) -> Result<Applied, TargetError> {
        let old_member = format!("(member={})", escape_filter_value(old));
        let start = std::time::Instant::now();
        let mut pause = Duration::from_millis(10);
        let mut rewritten = false;
        while !self.no_refint.load(Ordering::Relaxed) {
            if read_entry(ldap, self.timeout(), group, &old_member, vec![NO_ATTRIBUTES.into()]).await?.is_none() {
                rewritten = true;
                break;
            }
            if start.elapsed() >= REFINT_WAIT {
                self.no_refint.store(true, Ordering::Relaxed);
                tracing::warn!(
                    target_name = self.name,
                    "{group} still lists {old} {}s after its rename: the directory keeps no referential integrity \
                     for member (see the LDAP target guide); roster removes old DNs itself for the rest of this run",
                    REFINT_WAIT.as_secs()
                );
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
        let value = if rewritten { member } else { old };
        let result = self.modify_members(ldap, what, group, [value], false).await?;
        match result.rc {
            SUCCESS | NO_SUCH_ATTRIBUTE | NO_SUCH_OBJECT => Ok(Applied { entry: None }),
            _ => Err(result_error(what, &result, Right::WriteMembers)),
        }
    }

    /// Sends one modify that adds (`add`) or deletes the `member` values `members` of `group`; the
    /// caller reads the answer.
    async fn modify_members<'m>(
        &self,
        ldap: &mut Ldap,
        what: &str,
        group: &str,
        members: impl IntoIterator<Item = &'m str>,
        add: bool,
    ) -> Result<ldap3::LdapResult, TargetError> {
        let values: HashSet<&str> = members.into_iter().collect();
        let change = if add { Mod::Add("member", values) } else { Mod::Delete("member", values) };
        self.send(self.session.answer(ldap.modify(group, vec![change])).await, what)
    }

    async fn delete(
        &self,
        ldap: &mut Ldap,
        what: &str,
        dn: &str,
        object_id: Option<&str>,
    ) -> Result<Applied, TargetError> {
        parse_dn(what, dn)?;
        let Some(uuid) = self.unprotected_id(ldap, what, dn).await? else {
            return Ok(Applied { entry: None });
        };
        check_identity(what, &uuid, object_id)?;
        self.assert_identity(ldap, &uuid);
        let result = self.send(self.session.answer(ldap.delete(dn)).await, what)?;
        match result.rc {
            SUCCESS | NO_SUCH_OBJECT => Ok(Applied { entry: None }),
            ASSERTION_FAILED => Err(replaced(what, &result)),
            _ => Err(result_error(what, &result, Right::Delete)),
        }
    }

    /// The object id of the entry at `dn`, or `None` when there is none.
    async fn current_id(&self, ldap: &mut Ldap, what: &str, dn: &str) -> Result<Option<String>, TargetError> {
        let attrs = vec![self.dialect.id_attribute().to_string()];
        match read_entry(ldap, self.timeout(), dn, "(objectClass=*)", attrs).await? {
            None => Ok(None),
            Some(mut entry) => self.take_id(what, &mut entry).map(Some),
        }
    }

    /// The object id of the entry at `dn` that a write is about to change, `None` when there is
    /// none; refused when it matches `protect`, before anything is sent. One base search when the
    /// entry is not protected.
    async fn unprotected_id(&self, ldap: &mut Ldap, what: &str, dn: &str) -> Result<Option<String>, TargetError> {
        let Some(protect) = &self.protect else { return self.current_id(ldap, what, dn).await };
        let attrs = vec![self.dialect.id_attribute().to_string()];
        if let Some(mut entry) = read_entry(ldap, self.timeout(), dn, &format!("(!{protect})"), attrs).await? {
            return self.take_id(what, &mut entry).map(Some);
        }
        match self.current_id(ldap, what, dn).await? {
            None => Ok(None),
            Some(_) => Err(TargetError::new(
                ErrorKind::OutOfScope,
                format!(
                    "{what}: the entry matches the protect filter {protect}, so roster never modifies it; nothing was sent"
                ),
            )),
        }
    }

    /// Asks the server, where it can, to answer the next write on `ldap` with the entry's `attrs` as
    /// the write left them (not critical: a server that ignores it is read back instead).
    fn ask_post_read(&self, ldap: &mut Ldap, attrs: &[String]) {
        if self.post_read {
            ldap.with_controls(PostRead::new(attrs.to_vec()));
        }
    }

    /// Makes the next request on `ldap` fail with assertionFailed unless the entry still is `uuid`.
    fn assert_identity(&self, ldap: &mut Ldap, uuid: &str) {
        if !self.assertion {
            return;
        }
        // ldap3 encodes the control with a panicking parse: only hand it filters that parse.
        if let Some(filter) = self.dialect.id_filter(uuid)
            && ldap3::parse_filter(&filter).is_ok()
        {
            let control: RawControl = Assertion { filter }.critical().into();
            ldap.with_controls(control);
        }
    }

    fn take_id(&self, what: &str, entry: &mut Entry) -> Result<String, TargetError> {
        take_id(self.dialect, what, entry)
    }

    fn target_entry(&self, what: &str, entry: Entry) -> Result<TargetEntry, TargetError> {
        target_entry(self.dialect, what, entry)
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
        Capabilities { rename: true, disable: true, groups: true, passwords: self.passwords }
    }

    fn read_view(&mut self, attrs: &[AttrName]) -> impl Future<Output = Result<TargetView, TargetError>> + Send {
        LdapTarget::read_view(self, attrs)
    }

    async fn read_part(&mut self, attrs: &[AttrName], ask: &ViewRequest) -> Result<Option<TargetView>, TargetError> {
        LdapTarget::read_part(self, attrs, ask).await.map(Some)
    }

    fn apply(&self, op: &Operation) -> impl Future<Output = Result<Applied, TargetError>> + Send {
        LdapTarget::apply(self, op)
    }

    fn set_password(
        &self,
        op: &Operation,
        password: &SecretString,
    ) -> impl Future<Output = Result<Applied, TargetError>> + Send {
        LdapTarget::set_password(self, op, password)
    }

    fn members_per_request(&self) -> usize {
        self.dialect.members_per_request()
    }

    fn apply_batch(&self, ops: &[Operation]) -> impl Future<Output = Vec<Result<Applied, TargetError>>> + Send {
        LdapTarget::apply_batch(self, ops)
    }
}

/// A membership change: its operation, group and member, and whether it adds or removes.
#[derive(Clone, Copy)]
struct MemberChange<'a> {
    op: &'a Operation,
    group: &'a str,
    member: &'a str,
    add: bool,
}

impl<'a> MemberChange<'a> {
    fn of(op: &'a Operation) -> Option<MemberChange<'a>> {
        match &op.action {
            Action::AddMember { group, member } => Some(MemberChange { op, group, member, add: true }),
            Action::RemoveMember { group, member } => Some(MemberChange { op, group, member, add: false }),
            _ => None,
        }
    }
}

/// The results of a batch, each operation's in its place; one that has none (a bug) is Unknown.
fn every_result(results: Vec<Option<Result<Applied, TargetError>>>) -> Vec<Result<Applied, TargetError>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(TargetError::new(ErrorKind::Unknown, "no result: a bug in roster"))))
        .collect()
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

/// The login names, lowercased, of the entries below `unique_base` that `filter` matches.
async fn taken_logins(
    reader: &mut PagedReader<'_>,
    target: &str,
    unique_base: &Dn,
    login_attribute: &str,
    filter: &str,
) -> Result<BTreeSet<String>, TargetError> {
    let unique_base = unique_base.to_string();
    let holders = reader.subtree(&unique_base, filter, vec![login_attribute.to_string()]).await?.ok_or_else(|| {
        TargetError::new(
            ErrorKind::Permanent,
            format!("target {target}: unique_base {unique_base} does not exist, so taken login names cannot be read"),
        )
    })?;
    Ok(holders.into_iter().flat_map(|entry| entry.attrs.into_values().flatten()).map(|l| l.to_lowercase()).collect())
}

/// Takes the object id out of an entry read with the dialect's id attribute.
fn take_id(dialect: Dialect, what: &str, entry: &mut Entry) -> Result<String, TargetError> {
    dialect.take_id(entry).ok_or_else(|| {
        TargetError::new(
            ErrorKind::Permanent,
            format!(
                "{what}: {} has no readable {}, which roster needs to recognise it; is the bind DN allowed to read it?",
                entry.dn,
                dialect.id_attribute()
            ),
        )
    })
}

fn target_entry(dialect: Dialect, what: &str, mut entry: Entry) -> Result<TargetEntry, TargetError> {
    let object_id = take_id(dialect, what, &mut entry)?;
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

/// Makes sure an AD account planned disabled is created disabled: with ACCOUNTDISABLE set in the
/// planned `userAccountControl`, or as a disabled normal account when the plan names no flags.
fn disable_flag(what: &str, attributes: &mut AttrMap) -> Result<(), TargetError> {
    let values = attributes.entry(AttrName::new(ad::USER_ACCOUNT_CONTROL)).or_default();
    match values.as_mut_slice() {
        [] => values.push(ad::NORMAL_ACCOUNT_DISABLED.to_string()),
        [one] => {
            let flags: i64 = one.trim().parse().map_err(|_| {
                TargetError::new(ErrorKind::Permanent, format!("{what}: userAccountControl {one:?} is not a number"))
            })?;
            *one = (flags | ad::ACCOUNTDISABLE).to_string();
        }
        _ => {
            return Err(TargetError::new(
                ErrorKind::Permanent,
                format!("{what}: userAccountControl has several values: {values:?}"),
            ));
        }
    }
    Ok(())
}

/// Attributes never read back into an [`Applied`] entry (which ends up in the store and the audit trail).
fn is_secret(attr: &AttrName) -> bool {
    attr.is_password()
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
    fn members_go_in_the_order_slapd_keeps_them_shortest_first_then_by_lower_case_bytes() {
        let members: Vec<Arc<str>> =
            ["uid=zoe,ou=B", "uid=bo,ou=a", "uid=Ann,ou=a", "uid=al,ou=a", "uid=abe,ou=a"].map(Arc::from).to_vec();
        let sorted = in_sorted_values_order(&members);
        let sorted: Vec<&str> = sorted.iter().map(|m| &**m).collect();
        assert_eq!(sorted, ["uid=al,ou=a", "uid=bo,ou=a", "uid=abe,ou=a", "uid=Ann,ou=a", "uid=zoe,ou=B"]);
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

    fn ad_config(extra: &str) -> TargetConfig {
        let mut config: TargetConfig = toml::from_str(&format!(
            r#"
            name = "ad"
            kind = "active_directory"
            url = "ldaps://127.0.0.1"
            bind_dn = "CN=roster,CN=Users,DC=example,DC=test"
            bind_password = "env:UNUSED"
            managed = ["OU=Staff,OU=People,DC=example,DC=test"]
            dn = '"CN=" + login + ",OU=Staff,OU=People,DC=example,DC=test"'
            {extra}
            [attributes]
            sAMAccountName = "login"
            "#
        ))
        .unwrap();
        config.resolve_defaults();
        config
    }

    #[test]
    fn ad_defaults_protect_admin_accounts_and_keep_logins_unique_in_the_whole_domain() {
        let checked = check_config(&ad_config("")).unwrap();
        assert_eq!(checked.dialect, Dialect::ActiveDirectory);
        assert_eq!(checked.protect.as_deref(), Some("(adminCount=1)"));
        assert_eq!(checked.unique_base.normalized(), "dc=example,dc=test");
        assert_eq!(checked.account_filter, "(&(objectCategory=person)(objectClass=user))");
        let chosen = check_config(&ad_config(r#"unique_base = "OU=People,DC=example,DC=test""#)).unwrap();
        assert_eq!(chosen.unique_base.normalized(), "ou=people,dc=example,dc=test");
    }

    #[test]
    fn a_malformed_protect_filter_is_refused_before_connecting() {
        for bad in ["adminCount=1", "(adminCount=1", "(&(adminCount=1)", "()", "(a=1)(b=2)"] {
            let err = check_config(&ad_config(&format!("protect = {bad:?}"))).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Config, "{bad}");
            assert!(err.message.starts_with("target ad: protect: "), "{}", err.message);
        }
        let good = check_config(&ad_config(r#"protect = " (|(adminCount=1)(isCriticalSystemObject=TRUE)) ""#)).unwrap();
        assert_eq!(good.protect.as_deref(), Some("(|(adminCount=1)(isCriticalSystemObject=TRUE))"));
    }

    #[test]
    fn an_ad_account_planned_disabled_is_created_disabled_keeping_its_other_flags() {
        let mut planned = AttrMap::new();
        planned.insert(AttrName::new("userAccountControl"), vec!["66048".to_string()]);
        disable_flag("x", &mut planned).unwrap();
        assert_eq!(planned[&AttrName::new("userAccountControl")], vec!["66050"]);
        let mut unplanned = AttrMap::new();
        disable_flag("x", &mut unplanned).unwrap();
        assert_eq!(unplanned[&AttrName::new("userAccountControl")], vec!["514"]);
        let mut odd = AttrMap::new();
        odd.insert(AttrName::new("userAccountControl"), vec!["enabled".to_string()]);
        assert_eq!(disable_flag("x", &mut odd).unwrap_err().kind, ErrorKind::Permanent);
    }

    #[test]
    fn identity_checks_compare_uuids_case_insensitively() {
        assert!(check_identity("x", "ABC-1", Some("abc-1")).is_ok());
        assert!(check_identity("x", "abc-1", None).is_ok());
        assert_eq!(check_identity("x", "abc-2", Some("abc-1")).unwrap_err().kind, ErrorKind::Conflict);
    }
}
