//! The partial read of a directory: only what a [`ViewRequest`] names, for a daily run that
//! evaluates few persons (see `roster_core::partial`). Accounts are found by object id or by the
//! correlation attribute in OR-filters of [`BATCH`] terms; each account's groups from its
//! `memberOf` where the directory keeps it (`member_of`), else by a search for the groups that
//! hold it as a member, and neither reads the groups' member lists; whole groups, and the entries
//! at given DNs, by base reads; logins by one OR-filter below the uniqueness base.

use std::collections::{BTreeMap, HashSet};

use futures_util::{StreamExt, TryStreamExt, stream};
use ldap3::Ldap;
use roster_core::attr::AttrName;
use roster_core::dn::{Dn, escape_filter_value, normalize_dn};
use roster_core::state::{TargetGroup, TargetView, ViewRequest};

use super::search::{Entry, PagedReader, ranged_values, read_entry};
use super::{LdapTarget, NO_ATTRIBUTES, take_id, taken_logins, target_entry};
use crate::target::TargetError;

/// Terms per OR-filter: a filter stays a few kilobytes, and a few hundred accounts come back per
/// search.
const BATCH: usize = 200;
/// Membership searches in flight at once on the connection.
const IN_FLIGHT: usize = 16;
/// The attribute AD, and OpenLDAP's memberof overlay, keep on an account: the groups holding it.
const MEMBER_OF: &str = "memberOf";

impl LdapTarget {
    /// Reads what `ask` names in the managed subtrees (see [`ViewRequest`]), as a view marked
    /// partial: every account with an asked object id or key, every group holding one of them
    /// (listing those of them it holds), the asked groups whole, the account or group at each
    /// asked DN, the containers, and the asked logins some entry below the uniqueness base holds.
    pub async fn read_part(&mut self, attrs: &[AttrName], ask: &ViewRequest) -> Result<TargetView, TargetError> {
        let dialect = self.dialect;
        let id_attr = dialect.id_attribute();
        let mut requested = self.requested(attrs)?;
        if self.member_of {
            requested.push(MEMBER_OF.to_string());
        }
        let timeout = self.session.timeout();
        let ldap = self.session.handle().await?;
        let mut view = TargetView { target: self.name.clone(), partial: Some(ask.clone()), ..TargetView::default() };
        let mut terms: Vec<String> = ask.object_ids.iter().filter_map(|id| dialect.id_filter(id)).collect();
        terms.extend(ask.keys.iter().map(|k| format!("({}={})", self.correlate, escape_filter_value(k))));
        let mut seen: HashSet<String> = HashSet::new();
        // Each entry's memberOf values (`member_of`), by its place in `view.entries`.
        let mut member_of: Vec<Vec<String>> = Vec::new();
        let group_class = format!("(objectClass={})", dialect.group_class());
        let mut page_size = self.page_size;
        let mut reader = PagedReader { ldap: ldap.clone(), timeout, page_size: &mut page_size };
        for base in &self.search_bases {
            let base_text = base.to_string();
            let no_attrs = vec![NO_ATTRIBUTES.to_string()];
            let Some(containers) = reader.subtree(&base_text, &dialect.container_filter(), no_attrs).await? else {
                continue;
            };
            view.containers.insert(base.normalized());
            view.containers.extend(containers.iter().map(|entry| normalize_dn(&entry.dn)));
            for chunk in terms.chunks(BATCH) {
                let any = format!("(|{})", chunk.concat());
                let filter = format!("(&{}{any})", self.account_filter);
                let found = reader.subtree(&base_text, &filter, requested.clone()).await?.unwrap_or_default();
                let mut protected = HashSet::new();
                if let Some(protect) = &self.protect {
                    let filter = format!("(&{}{protect}{any})", self.account_filter);
                    for mut entry in
                        reader.subtree(&base_text, &filter, vec![id_attr.to_string()]).await?.unwrap_or_default()
                    {
                        protected.insert(take_id(dialect, "read", &mut entry)?);
                    }
                }
                for mut entry in found {
                    let groups = self.take_member_of(&ldap, &mut entry).await?;
                    let mut entry = target_entry(dialect, "read", entry)?;
                    entry.protected = protected.contains(&entry.object_id);
                    if seen.insert(entry.object_id.clone()) {
                        view.entries.push(entry);
                        member_of.push(groups);
                    }
                }
            }
        }
        // The entries at the asked DNs, several base reads in flight, taken in the asked order.
        let this = &*self;
        let at_dns: Vec<Option<(Entry, Vec<String>)>> = stream::iter(ask.dns.iter().cloned().collect::<Vec<String>>())
            .map(|dn: String| {
                let (mut ldap, requested) = (ldap.clone(), requested.clone());
                async move {
                    let Some(mut entry) = read_entry(&mut ldap, timeout, &dn, &this.account_filter, requested).await?
                    else {
                        return Ok::<_, TargetError>(None);
                    };
                    let groups = this.take_member_of(&ldap, &mut entry).await?;
                    Ok(Some((entry, groups)))
                }
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        for (entry, groups) in at_dns.into_iter().flatten() {
            let entry = target_entry(dialect, "read", entry)?;
            if seen.insert(entry.object_id.clone()) {
                view.entries.push(entry);
                member_of.push(groups);
            }
        }

        // The groups holding each account read, found without reading their member lists.
        let mut groups: BTreeMap<String, TargetGroup> = BTreeMap::new();
        let holders = if self.member_of {
            self.holders_by_member_of(&ldap, &member_of, &group_class).await?
        } else {
            self.holders_by_search(&ldap, &view.entries, &group_class).await?
        };
        for (i, found) in holders {
            for g in found {
                let group = groups.entry(normalize_dn(&g.dn)).or_insert_with(|| TargetGroup {
                    object_id: g.id,
                    dn: g.dn,
                    members: Vec::new(),
                });
                group.members.push(view.entries[i].dn.clone());
            }
        }
        // The groups asked for whole (by the plan's removals and new groups), and any group at an
        // asked DN: several base reads in flight (a daily run asks for some tens of groups), taken
        // in the asked order. The DNs are owned copies: the read's future must be `Send` whatever
        // the lifetime of a borrow.
        let group_attrs = vec![dialect.member_request(), id_attr.to_string()];
        let whole: Vec<Option<(Entry, Vec<String>)>> =
            stream::iter(ask.groups.iter().chain(&ask.dns).cloned().collect::<Vec<String>>())
                .map(|dn: String| {
                    let (mut ldap, group_attrs, group_class) = (ldap.clone(), group_attrs.clone(), &group_class);
                    async move {
                        let Some(mut entry) = read_entry(&mut ldap, timeout, &dn, group_class, group_attrs).await?
                        else {
                            return Ok::<_, TargetError>(None);
                        };
                        let members = ranged_values(&mut ldap, timeout, &mut entry, "member").await?;
                        Ok(Some((entry, members)))
                    }
                })
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?;
        for (entry, members) in whole.into_iter().flatten() {
            let group = target_entry(dialect, "read", entry)?;
            groups.insert(normalize_dn(&group.dn), TargetGroup { object_id: group.object_id, dn: group.dn, members });
        }
        view.groups = groups.into_values().collect();

        let terms: Vec<String> =
            ask.logins.iter().map(|l| format!("({}={})", self.login_attribute, escape_filter_value(l))).collect();
        for chunk in terms.chunks(BATCH) {
            let filter = format!("(|{})", chunk.concat());
            view.taken_logins.extend(
                taken_logins(&mut reader, &self.name, &self.unique_base, &self.login_attribute, &filter).await?,
            );
        }
        self.page_size = page_size;
        view.entries.sort_by_cached_key(|e| normalize_dn(&e.dn));
        Ok(view)
    }

    /// The `memberOf` values of an entry read asking for them (all of them: AD hands out a long
    /// list in ranges), taken out of the entry; none without `member_of`.
    async fn take_member_of(&self, ldap: &Ldap, entry: &mut Entry) -> Result<Vec<String>, TargetError> {
        if !self.member_of {
            return Ok(Vec::new());
        }
        ranged_values(&mut ldap.clone(), self.session.timeout(), entry, MEMBER_OF).await
    }

    /// The groups in the managed subtrees that each entry's `memberOf` names, with their ids: one
    /// base read per group, asking for its id alone.
    async fn holders_by_member_of(
        &self,
        ldap: &Ldap,
        member_of: &[Vec<String>],
        group_class: &str,
    ) -> Result<Vec<(usize, Vec<GroupId>)>, TargetError> {
        let dialect = self.dialect;
        let timeout = self.session.timeout();
        let id_attr = dialect.id_attribute();
        let mut named: BTreeMap<String, String> = BTreeMap::new();
        for dn in member_of.iter().flatten() {
            let within = Dn::parse(dn).is_ok_and(|parsed| self.search_bases.iter().any(|base| parsed.is_within(base)));
            if within {
                named.entry(normalize_dn(dn)).or_insert_with(|| dn.clone());
            }
        }
        let ids: BTreeMap<String, GroupId> = stream::iter(named)
            .map(|(normalized, dn)| {
                let mut ldap = ldap.clone();
                async move {
                    let found = read_entry(&mut ldap, timeout, &dn, group_class, vec![id_attr.to_string()]).await?;
                    // Not a group of the class roster manages, or gone since: not one of the groups here.
                    let Some(mut g) = found else { return Ok::<_, TargetError>(None) };
                    Ok(Some((normalized, GroupId { id: take_id(dialect, "read", &mut g)?, dn: g.dn })))
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .try_filter_map(|found| async move { Ok(found) })
            .try_collect()
            .await?;
        Ok(member_of
            .iter()
            .enumerate()
            .map(|(i, dns)| {
                let mut held: Vec<GroupId> = dns.iter().filter_map(|dn| ids.get(&normalize_dn(dn)).cloned()).collect();
                held.dedup_by(|a, b| a.id == b.id);
                (i, held)
            })
            .collect())
    }

    /// The groups in the managed subtrees that hold each entry, by a search per entry and
    /// subtree (the server tests the `member` values of every group it considers).
    async fn holders_by_search(
        &self,
        ldap: &Ldap,
        entries: &[roster_core::state::TargetEntry],
        group_class: &str,
    ) -> Result<Vec<(usize, Vec<GroupId>)>, TargetError> {
        let dialect = self.dialect;
        let timeout = self.session.timeout();
        let id_attr = dialect.id_attribute();
        let searches: Vec<(String, usize)> =
            self.search_bases.iter().flat_map(|base| (0..entries.len()).map(move |i| (base.to_string(), i))).collect();
        stream::iter(searches)
            .map(|(base, i)| {
                let ldap = ldap.clone();
                let mut page_size = self.page_size;
                let filter = format!("(&{group_class}(member={}))", escape_filter_value(&entries[i].dn));
                async move {
                    let mut reader = PagedReader { ldap, timeout, page_size: &mut page_size };
                    let found = reader.subtree(&base, &filter, vec![id_attr.to_string()]).await?.unwrap_or_default();
                    let ids = found
                        .into_iter()
                        .map(|mut g| Ok(GroupId { id: take_id(dialect, "read", &mut g)?, dn: g.dn }))
                        .collect::<Result<Vec<_>, TargetError>>()?;
                    Ok::<_, TargetError>((i, ids))
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await
    }
}

/// A group found holding an account: its id and DN.
#[derive(Clone)]
struct GroupId {
    id: String,
    dn: String,
}
