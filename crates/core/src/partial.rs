//! What a daily run reads from a target when it reads only part of it: the accounts of the
//! persons it evaluates ([`first_request`]), then whatever the plan made from that turns out to
//! need ([`more_to_read`]): the entry at a DN the plan would create or rename to, the whole member
//! list of a group it would create or remove members from, the login names it would hand out.
//! The runner reads, plans and asks again until the plan needs nothing it has not read.

use std::collections::{BTreeMap, BTreeSet};

use crate::dn::normalize_dn;
use crate::plan::{Action, Plan};
use crate::settings::TargetRules;
use crate::state::{Snapshot, TargetView, ViewRequest};

/// The first partial read of a target: the linked accounts of the `evaluated` persons, and the
/// accounts that carry their keys (to adopt, or to find disputed).
pub fn first_request(rules: &TargetRules, snapshot: &Snapshot, evaluated: &BTreeSet<String>) -> ViewRequest {
    ViewRequest {
        object_ids: snapshot
            .links
            .iter()
            .filter(|l| l.target == rules.name() && evaluated.contains(&l.person))
            .map(|l| l.object_id.clone())
            .collect(),
        keys: evaluated.clone(),
        ..ViewRequest::default()
    }
}

/// What `plan`, made from partial `views`, needs read before it can be trusted, per target with a
/// partial view: the DNs it creates or renames to (taken by an entry not read?), the groups it
/// creates or removes members from (their whole member lists), and the login names it gives out
/// (held by an account not read?). The caller adds this to what it asked before; a plan whose
/// needs were all read is the plan a full read gives.
pub fn more_to_read(
    targets: &[TargetRules],
    snapshot: &Snapshot,
    plan: &Plan,
    views: &BTreeMap<String, TargetView>,
) -> BTreeMap<String, ViewRequest> {
    let partial = |name: &str| views.get(name).is_some_and(|v| v.partial.is_some());
    let mut more: BTreeMap<String, ViewRequest> = BTreeMap::new();
    for op in plan.operations.iter().filter(|op| partial(&op.target)) {
        let ask = more.entry(op.target.to_string()).or_default();
        match &op.action {
            Action::Create { dn, .. } => {
                ask.dns.insert(dn.to_string());
            }
            Action::Rename { new_dn, .. } => {
                ask.dns.insert(new_dn.clone());
            }
            Action::CreateGroup { dn: group, .. } | Action::RemoveMember { group, .. } => {
                ask.groups.insert(normalize_dn(group));
            }
            _ => {}
        }
    }
    let stored_login = |key: &str| snapshot.persons.get(key).and_then(|p| p.login.as_deref());
    let new_logins: BTreeSet<&str> = plan
        .person_updates
        .iter()
        .filter_map(|u| u.login.as_deref().filter(|l| stored_login(&u.key) != Some(*l)))
        .collect();
    for rules in targets.iter().filter(|t| partial(t.name())) {
        more.entry(rules.name().to_string()).or_default().logins.extend(new_logins.iter().map(|l| l.to_string()));
    }
    more.retain(|_, ask| *ask != ViewRequest::default());
    more
}
