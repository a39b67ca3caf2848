//! What roster remembers between runs (kept by the store) and what a target looks like now (read by
//! a connector). The planning core reads both as plain data.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::attr::AttrMap;
use crate::lifecycle::LifecycleState;
use crate::source::Attrs;

/// An operator's hold on a person: roster plans nothing for them until it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub reason: String,
    /// Last day of the hold; open-ended when absent.
    pub until: Option<NaiveDate>,
}

/// A person as the store remembers them after the last applied run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPerson {
    pub key: String,
    /// The login name, once generated: the person's for good.
    pub login: Option<String>,
    /// The lifecycle state the targets were last brought to.
    pub state: LifecycleState,
    /// The last valid record from each source (source name -> attributes), so a person whose row
    /// is quarantined or missing is held as they were.
    pub records: BTreeMap<String, Arc<Attrs>>,
    /// Hash of the records and the config this person was last evaluated with.
    pub eval_hash: String,
    /// Consecutive complete reads this person was missing from.
    pub missing_reads: u32,
    /// The day roster decided this person left, when no `last_day` said it (missing from a complete
    /// source, or a terminated status without a date). Purge counts from here.
    pub left_on: Option<NaiveDate>,
    /// When this person's lifecycle state next changes by the calendar alone.
    pub next_transition: Option<NaiveDate>,
    pub hold: Option<Hold>,
    /// Source name -> the key of this person's record in that source. A source missing here
    /// holds the person under the person's own key.
    #[serde(default)]
    pub record_keys: BTreeMap<String, String>,
    /// Person attribute -> the source that supplied its value in the last applied run.
    #[serde(default)]
    pub provenance: BTreeMap<String, String>,
}

/// A login name that stays reserved after its person was purged (or rescinded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub person: String,
    pub login: String,
    pub purged_on: NaiveDate,
}

/// A person's account in a target, joined by the object's immutable id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub person: String,
    pub target: String,
    /// `entryUUID` (LDAP), `objectGUID` (AD), SCIM `id`.
    pub object_id: String,
    /// The DN as roster last saw it.
    pub dn: String,
    /// Whether roster last left the account enabled.
    pub enabled: bool,
    /// The values roster last wrote, per owned attribute.
    pub values: AttrMap,
    /// An initial password is still to be set (or was set but not delivered): the next run sets a
    /// new one.
    #[serde(default)]
    pub password_pending: bool,
}

/// Everything the store hands to the planner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub persons: BTreeMap<String, StoredPerson>,
    pub links: Vec<Link>,
    pub tombstones: Vec<Tombstone>,
    /// Records in the last good complete read of each source (for the shrink limit).
    pub source_counts: BTreeMap<String, u64>,
    /// Creates that were sent by an earlier run whose outcome was never recorded (the run
    /// stopped): the entry found for such a person is roster's own, not one to adopt as foreign.
    #[serde(default)]
    pub unfinished_creates: Vec<UnfinishedCreate>,
    /// Persons whose operations in a target failed in consecutive runs.
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// Groups roster created or added members to: its rules own them (with the groups the rules
    /// name in a run); other groups are never touched.
    #[serde(default)]
    pub managed_groups: Vec<ManagedGroup>,
}

/// A group roster owns in a target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ManagedGroup {
    pub target: String,
    pub dn: String,
}

/// A person whose operations in one target have failed in `runs` consecutive runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub target: String,
    pub person: String,
    pub runs: u32,
    pub last_error: String,
}

/// A create recorded as an intent, with no outcome.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnfinishedCreate {
    pub target: String,
    pub person: String,
}

/// One entry of a target, as read now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetEntry {
    pub object_id: String,
    pub dn: String,
    pub attrs: AttrMap,
    /// Matches the target's protection filter (e.g. `adminCount=1`): never modified.
    #[serde(default)]
    pub protected: bool,
}

/// A group in the managed scope, with its members' DNs as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub object_id: String,
    pub dn: String,
    pub members: Vec<String>,
}

/// What a target holds now, as far as the planner needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetView {
    pub target: String,
    /// Account entries in the managed scope (with the attributes the planner asked for).
    pub entries: Vec<TargetEntry>,
    /// Groups (groupOfNames) in the managed scope.
    pub groups: Vec<TargetGroup>,
    /// Normalized DNs of the containers (OUs and the like) that exist in the managed scope.
    pub containers: BTreeSet<String>,
    /// Lowercased values of the login attribute anywhere under the uniqueness base.
    pub taken_logins: BTreeSet<String>,
}
