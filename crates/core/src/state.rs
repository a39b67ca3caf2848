//! What roster remembers between runs (kept by the store) and what a target looks like now (read by
//! a connector). The planning core reads both as plain data.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::attr::AttrMap;
use crate::dn::normalize_dn;
use crate::lifecycle::LifecycleState;
use crate::source::Records;

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
    /// is quarantined or missing is held as they were. Shared: the persons of a snapshot read
    /// without records hold one map per list of sources, not one each (a million maps of one
    /// entry took 400 MB).
    pub records: Arc<Records>,
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
    /// Read without the records' values (a daily run's snapshot): `records` names each source
    /// the person has a record of, with an empty record. A plan uses a stored record only where
    /// this run read none from its source, so the runner reads just those
    /// ([`crate::engine::Prepared::records_unread`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub records_omitted: bool,
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
    /// Read without `values` (a daily run's snapshot reads them only for the targets it reads in
    /// full and the persons it evaluates: `Store::read_link_values`): `values` is empty and must
    /// not be compared with.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub values_omitted: bool,
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
    /// Lowercased values of the login attribute anywhere under the uniqueness base (in a partial
    /// view: those of the logins asked for that some entry holds).
    pub taken_logins: BTreeSet<String>,
    /// `Some` when the view holds only what a [`ViewRequest`] asked for, not the whole managed
    /// scope: what it does not hold is unknown, never gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<ViewRequest>,
}

impl TargetView {
    /// Normalized DNs of the groups whose whole member list this view holds: every group of a full
    /// view; in a partial one, those asked for by [`ViewRequest::groups`]. Another group of a
    /// partial view lists only the members among the entries read.
    pub fn complete_group(&self, normalized_dn: &str) -> bool {
        self.partial.as_ref().is_none_or(|p| p.groups.contains(normalized_dn))
    }

    /// Adds to this partial view a partial read of more (`more.partial` says what it asked for):
    /// its new entries, its groups (replacing this view's where `more` read one whole, else adding
    /// the members it found), containers and taken logins.
    pub fn merge_part(&mut self, more: TargetView) {
        let known: BTreeSet<String> = self.entries.iter().map(|e| e.object_id.clone()).collect();
        self.entries.extend(more.entries.into_iter().filter(|e| !known.contains(&e.object_id)));
        let asked = more.partial.unwrap_or_default();
        for group in more.groups {
            let norm = normalize_dn(&group.dn);
            match self.groups.iter_mut().find(|g| normalize_dn(&g.dn) == norm) {
                Some(held) if asked.groups.contains(&norm) => *held = group,
                Some(held) => {
                    for m in group.members {
                        if !held.members.iter().any(|h| normalize_dn(h) == normalize_dn(&m)) {
                            held.members.push(m);
                        }
                    }
                }
                None => self.groups.push(group),
            }
        }
        self.containers.extend(more.containers);
        self.taken_logins.extend(more.taken_logins);
        self.partial.get_or_insert_with(ViewRequest::default).extend(asked);
        self.entries.sort_by_cached_key(|e| normalize_dn(&e.dn));
        self.groups.sort_by_cached_key(|g| normalize_dn(&g.dn));
    }
}

/// What a partial read of a target asks for: the accounts of the persons a daily run evaluates and
/// what their plan needs around them. The read returns those entries (with every group in the
/// managed scope that has one of them as a member, listing those members), the groups asked for
/// with their whole member lists, the entry or group at each DN asked for, the containers, and
/// which of the logins asked for some entry holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRequest {
    /// Object ids of the persons' linked accounts.
    pub object_ids: BTreeSet<String>,
    /// Values of the target's correlation attribute (the persons' keys): accounts to adopt.
    pub keys: BTreeSet<String>,
    /// DNs whose account or group, if one exists, is read: a new or renamed account's DN, a
    /// new group's DN.
    pub dns: BTreeSet<String>,
    /// Normalized DNs of the groups read with their whole member list.
    pub groups: BTreeSet<String>,
    /// Login names to look for under the uniqueness base.
    pub logins: BTreeSet<String>,
}

impl ViewRequest {
    /// Adds what `more` asks for; whether anything was new.
    pub fn extend(&mut self, more: ViewRequest) -> bool {
        let before = self.len();
        self.object_ids.extend(more.object_ids);
        self.keys.extend(more.keys);
        self.dns.extend(more.dns);
        self.groups.extend(more.groups);
        self.logins.extend(more.logins);
        self.len() != before
    }

    fn len(&self) -> usize {
        self.object_ids.len() + self.keys.len() + self.dns.len() + self.groups.len() + self.logins.len()
    }
}
