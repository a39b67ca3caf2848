//! The plan: the ordered operations of one run, each with its person, target object and reason.
//! A plan is data: it prints as a readable diff, serializes to JSON (the documented schema in
//! `docs/plan-format.md`), can be saved, reviewed and applied later.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::attr::{AttrName, Attributes};
use crate::lifecycle::LifecycleState;
use crate::source::QuarantinedRow;
use crate::state::{Hold, TargetEntry};

/// The version of the plan's JSON format.
pub const PLAN_FORMAT: u32 = 1;

/// Why a person appears in the plan, for grouping the readable diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Joiner,
    Mover,
    Leaver,
    Rehire,
    /// Groups and containers: shared objects, not one person's change.
    Directory,
}

/// One attribute's change: the values it was planned against and the values it gets. Applied as
/// "delete exactly `old`, add `new`" where the target can, so an edit made in between is a conflict
/// rather than overwritten blind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrChange {
    pub attr: AttrName,
    pub old: Vec<String>,
    pub new: Vec<String>,
}

/// What an operation does. Objects are addressed by DN; `object_id` (when the object existed at
/// planning time) lets the connector check it still is the same object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    /// Create an organizational unit inside the managed scope.
    CreateContainer {
        dn: String,
    },
    /// Create an account with these attributes (object classes included as `objectClass`).
    /// `password`: an initial password will be set by a following `set_password`.
    Create {
        /// Shared with the planned DN the group members and the references hold.
        dn: std::sync::Arc<str>,
        attributes: Attributes,
        enabled: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        password: bool,
    },
    /// Set a new random initial password and hand it to the configured delivery. The password is
    /// made when the operation runs and is never part of a plan.
    SetPassword {
        dn: String,
        object_id: Option<String>,
        /// The user must change it at first logon.
        must_change: bool,
    },
    /// Link an existing entry (matched by the correlation attribute) to the person. No write.
    Adopt {
        dn: String,
        object_id: String,
    },
    /// Change attributes.
    Update {
        dn: String,
        object_id: Option<String>,
        changes: Vec<AttrChange>,
    },
    /// Modify DN: rename and/or move.
    Rename {
        dn: String,
        object_id: Option<String>,
        new_dn: String,
    },
    /// Enable the account (remove the lock, restore attributes).
    Enable {
        dn: String,
        object_id: Option<String>,
        changes: Vec<AttrChange>,
    },
    /// Disable the account (lock, set attributes).
    Disable {
        dn: String,
        object_id: Option<String>,
        changes: Vec<AttrChange>,
    },
    /// Create a group with its first members (a groupOfNames cannot be empty), and the group's
    /// own attributes (object classes, and for AD `sAMAccountName` and `groupType`).
    CreateGroup {
        dn: String,
        /// Shared texts: a million persons' groups hold each member's DN once, not per group.
        members: Vec<std::sync::Arc<str>>,
        /// Compact, as an account's: a hundred thousand groups' one-entry maps were 60 MB.
        #[serde(default, skip_serializing_if = "Attributes::is_empty")]
        attributes: Attributes,
    },
    AddMember {
        group: String,
        member: String,
    },
    RemoveMember {
        group: String,
        member: String,
    },
    /// Delete the account.
    Delete {
        dn: String,
        object_id: Option<String>,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateContainer { .. } => "create_container",
            Action::Create { .. } => "create",
            Action::SetPassword { .. } => "set_password",
            Action::Adopt { .. } => "adopt",
            Action::Update { .. } => "update",
            Action::Rename { .. } => "rename",
            Action::Enable { .. } => "enable",
            Action::Disable { .. } => "disable",
            Action::CreateGroup { .. } => "create_group",
            Action::AddMember { .. } => "add_member",
            Action::RemoveMember { .. } => "remove_member",
            Action::Delete { .. } => "delete",
        }
    }

    /// The object the action writes to.
    pub fn dn(&self) -> &str {
        match self {
            Action::Create { dn, .. } => dn,
            Action::CreateContainer { dn }
            | Action::SetPassword { dn, .. }
            | Action::Adopt { dn, .. }
            | Action::Update { dn, .. }
            | Action::Rename { dn, .. }
            | Action::Enable { dn, .. }
            | Action::Disable { dn, .. }
            | Action::CreateGroup { dn, .. }
            | Action::Delete { dn, .. } => dn,
            Action::AddMember { group, .. } | Action::RemoveMember { group, .. } => group,
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Position in the plan (0-based); operations are applied in this order, and one never runs
    /// before the operations it depends on.
    pub id: usize,
    /// The person's key, for account operations.
    pub person: Option<String>,
    /// The target's name, one text shared by all its operations (a million creates held each a
    /// copy: 25 MB of a million-record plan).
    pub target: std::sync::Arc<str>,
    pub category: Category,
    /// Why, in words: "leaver: termination date 2026-11-30 reached". Shared by the operations
    /// whose reasons are the same text (most persons of a first load share their hire date's).
    pub reason: std::sync::Arc<str>,
    /// Ids of operations that must have succeeded first (the account before its group membership, a
    /// manager's account before a reference to it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<usize>,
    #[serde(flatten)]
    pub action: Action,
}

/// Something a person should know that is not an operation: a report, a held decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub person: Option<String>,
    pub target: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Several entries match one person: held, not guessed.
    Disputed,
    /// The manager has no account in this target: the reference stays empty.
    ManagerMissing,
    /// An account disabled outside roster: not re-enabled.
    DisabledOutsideRoster,
    /// A linked entry was deleted outside roster.
    LinkedEntryDeleted,
    /// A row was quarantined; its person is held as they were.
    Quarantined,
    /// The person is on hold.
    OnHold,
    /// A value could not be computed (expression error, DN outside the managed scope, ...).
    EvaluationFailed,
    /// The person is missing from a complete source, but not yet for long enough.
    Missing,
    /// An owned attribute was changed outside roster.
    Drift,
    /// An account in the managed subtrees belongs to no person.
    Orphan,
    /// A protected account (e.g. `adminCount=1`) that the rules would change: left alone.
    Protected,
    /// The person's operations in this target kept failing: nothing is planned for them there
    /// until an operator releases them.
    FailingQuarantined,
    /// An effective-dated source holds a future version of the person's record.
    Upcoming,
}

/// A safety limit that the plan exceeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafetyViolation {
    /// `disables`, `deletes`, `renames`, `attribute_changes`, `source_shrink`.
    pub limit: String,
    pub message: String,
    pub count: u64,
    pub percent: f64,
    pub population: u64,
}

/// What the store records about a person once their operations have landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonUpdate {
    pub key: String,
    pub login: Option<String>,
    pub state: LifecycleState,
    pub records: crate::source::Records,
    pub eval_hash: String,
    pub missing_reads: u32,
    pub left_on: Option<NaiveDate>,
    pub next_transition: Option<NaiveDate>,
    pub hold: Option<Hold>,
    /// Purged or rescinded: forget the person, keep the login as a tombstone.
    pub tombstone: bool,
    /// Source name -> the key of the person's record there (when it differs from the person's
    /// key, or always: the store keeps what it is given).
    #[serde(default)]
    pub record_keys: BTreeMap<String, String>,
    /// Person attribute -> the source that supplied its value.
    #[serde(default)]
    pub provenance: BTreeMap<String, String>,
}

/// Counts for the summary line and the run record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub persons: u64,
    pub evaluated: u64,
    pub joiners: u64,
    pub movers: u64,
    pub leavers: u64,
    pub rehires: u64,
    pub operations: u64,
    pub quarantined_rows: u64,
    pub notices: u64,
    /// Whether some target was read only in part: the accounts of the persons evaluated and what
    /// their plan needs, not the whole managed scope (see `full_read_after_hours`).
    pub partial_read: bool,
    /// Accounts and groups read from the targets.
    pub entries_read: u64,
    /// Persons read from the store.
    pub stored_persons: u64,
    /// Persons whose records were read from the store: everyone's on a full snapshot; on a daily
    /// run's, only theirs whose stored record this run uses (missing from a source, or a row
    /// quarantined).
    pub stored_records: u64,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub as_of: NaiveDate,
    /// Hash of the configuration the plan was made with.
    pub config_hash: String,
    pub operations: Vec<Operation>,
    pub person_updates: Vec<PersonUpdate>,
    pub notices: Vec<Notice>,
    pub quarantined: Vec<QuarantinedRow>,
    /// Empty unless the plan is blocked.
    pub safety: Vec<SafetyViolation>,
    /// Records read per complete source, recorded as the last good count once applied.
    pub source_counts: BTreeMap<String, u64>,
    pub summary: Summary,
    /// With several sources: per person with operations, attribute -> the source that supplied
    /// its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provenance: BTreeMap<String, BTreeMap<String, String>>,
}

impl Plan {
    pub fn is_blocked(&self) -> bool {
        !self.safety.is_empty()
    }

    /// Writes the plan as compact JSON, byte for byte what `serde_json::to_writer` writes, with
    /// its operations and person updates serialized on every core ahead of the writing: a
    /// million persons' plan is 1.5 GB of JSON, seven seconds on one core. The rest of the plan
    /// is serialized as usual, with the two lists emptied for that moment and put back.
    pub fn write_json(&mut self, to: &mut dyn std::io::Write) -> std::io::Result<()> {
        let operations = std::mem::take(&mut self.operations);
        let person_updates = std::mem::take(&mut self.person_updates);
        let head = serde_json::to_vec(&*self);
        (self.operations, self.person_updates) = (operations, person_updates);
        // The two lists are fields in a row at the top level, after a number, a date and a hash:
        // the first place their empty form appears is theirs (inside a string, quotes are escaped).
        const LISTS: &[u8] = br#""operations":[],"person_updates":[]"#;
        let head = head?;
        let Some(at) = find(&head, LISTS) else {
            // Not the shape this was written for: the plain way, on one core.
            return Ok(serde_json::to_writer(to, self)?);
        };
        to.write_all(&head[..at])?;
        to.write_all(br#""operations":"#)?;
        write_json_list(&self.operations, Operation::long_json, Operation::write_long_json, to)?;
        to.write_all(br#","person_updates":"#)?;
        write_json_list(&self.person_updates, |_| false, |u, to| Ok(serde_json::to_writer(to, u)?), to)?;
        to.write_all(&head[at + LISTS.len()..])
    }
}

/// A group created with more members than this is not written through a worker's buffer: the
/// group of everyone (60 MB of JSON at a million persons) grew its worker's buffer by doubling to
/// 64 MB and was copied out of it, both taken from the system at the end of the plan, where its
/// memory peaks. (A buffer that refused what went beyond a size made every write of serde_json
/// fallible: 14 % more instructions.) Its members are written in parts instead
/// ([`Operation::write_long_json`]).
#[doc(hidden)]
pub const JSON_GROUP_MEMBERS_WRITTEN_DIRECTLY: usize = 4096;

/// Items per part of a list's JSON, each part serialized on a worker: some 64 kB of a long
/// group's members, 650 kB of creates ([`write_json_list`]).
const JSON_ITEMS_PER_PART: usize = 1024;

impl Operation {
    /// Whether the operation's JSON is too long for a worker's buffer.
    fn long_json(&self) -> bool {
        matches!(&self.action, Action::CreateGroup { members, .. } if members.len() > JSON_GROUP_MEMBERS_WRITTEN_DIRECTLY)
    }

    /// Writes the operation as `serde_json::to_writer` does, a group's create with its members in
    /// parts serialized on every core: a million persons' plan has groups of tens of thousands of
    /// members up to the group of everyone, 0.6 s of serializing on the writing thread alone
    /// while the workers waited for it. The operation without its two long lists (members and
    /// dependencies) is serialized as usual, and the lists are written into their places.
    fn write_long_json(&self, to: &mut dyn std::io::Write) -> std::io::Result<()> {
        let Action::CreateGroup { dn, members, attributes } = &self.action else {
            return Ok(serde_json::to_writer(to, self)?);
        };
        let short = Operation {
            id: self.id,
            person: self.person.clone(),
            target: self.target.clone(),
            category: self.category,
            reason: self.reason.clone(),
            depends_on: Vec::new(),
            action: Action::CreateGroup { dn: dn.clone(), members: Vec::new(), attributes: attributes.clone() },
        };
        let short = serde_json::to_vec(&short)?;
        // The dependencies come right before the action's tag, the members after the DN; each is
        // found as a key (inside a string, a quote is escaped), the first such in the text.
        const OP: &[u8] = br#","op":"create_group","#;
        const MEMBERS: &[u8] = br#""members":[]"#;
        let (Some(op), Some(at)) = (find(&short, OP), find(&short, MEMBERS)) else {
            // Not the shape this was written for: the plain way, on one core.
            return Ok(serde_json::to_writer(to, self)?);
        };
        to.write_all(&short[..op])?;
        if !self.depends_on.is_empty() {
            to.write_all(br#","depends_on":"#)?;
            serde_json::to_writer(&mut *to, &self.depends_on)?;
        }
        to.write_all(&short[op..at])?;
        to.write_all(br#""members":"#)?;
        write_json_list(members, |_| false, |member, to| Ok(serde_json::to_writer(to, member)?), to)?;
        to.write_all(&short[at + MEMBERS.len()..])
    }
}

/// Where `part` first appears in `text`.
fn find(text: &[u8], part: &[u8]) -> Option<usize> {
    text.windows(part.len()).position(|window| window == part)
}

/// `items` as a JSON array, serialized on the workers in parts of up to [`JSON_ITEMS_PER_PART`]
/// items and written in order, only a few parts computed ahead of the writing; an item for
/// which `long` holds is a part of its own, written by the writing thread with `write_long`,
/// straight to `to`. A part is one buffer: an item's own, copied out of its worker's buffer,
/// handed over, written and freed on the writing thread, was a million of each for a million
/// persons' updates, where the writing thread is the one the others wait for.
fn write_json_list<T: Serialize + Sync>(
    items: &[T],
    long: impl Fn(&T) -> bool,
    write_long: impl Fn(&T, &mut dyn std::io::Write) -> std::io::Result<()>,
    to: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    // Runs of short items in parts, each long item alone: (items, whether long).
    let mut parts: Vec<(&[T], bool)> = Vec::new();
    let mut short = 0;
    for (at, item) in items.iter().enumerate() {
        if long(item) {
            parts.extend(items[short..at].chunks(JSON_ITEMS_PER_PART).map(|part| (part, false)));
            parts.push((std::slice::from_ref(item), true));
            short = at + 1;
        }
    }
    parts.extend(items[short..].chunks(JSON_ITEMS_PER_PART).map(|part| (part, false)));
    to.write_all(b"[")?;
    crate::parallel::in_blocks_of(
        1,
        &parts,
        Vec::new,
        |buffer: &mut Vec<u8>, &(part, long)| {
            if long {
                return Ok(None);
            }
            buffer.clear();
            for (n, item) in part.iter().enumerate() {
                if n > 0 {
                    buffer.push(b',');
                }
                serde_json::to_writer(&mut *buffer, item)?;
            }
            serde_json::Result::Ok(Some(buffer.clone()))
        },
        |results| {
            for (n, ((part, _), json)) in results.enumerate() {
                if n > 0 {
                    to.write_all(b",")?;
                }
                match json? {
                    Some(json) => to.write_all(&json)?,
                    None => part.iter().try_for_each(|item| write_long(item, &mut *to))?,
                }
            }
            std::io::Result::Ok(())
        },
    )?;
    to.write_all(b"]")
}

/// What a connector reports after applying an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The object as it is now (for creates and adoptions: its new id; after renames: its new DN).
    pub entry: Option<TargetEntry>,
}
