//! The planner: source reads + stored state + target views in, a [`Plan`] out. Pure: no I/O, no
//! clock (the day is an input), and it cannot fail: whatever goes wrong for one person becomes a
//! notice in the plan and the rest proceed.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;

use crate::attr::{AttrMap, AttrName, Attributes, AttrsDraft, NameTable, TooLarge};
use crate::config::{
    DeletedPolicy, DriftPolicy, GroupMode, LastDayMeaning, LeavePolicy, MappingWhen, OrphanPolicy, PasswordWhen,
    TargetKind,
};
use crate::dn::{Dn, DnError, normalize_dn};
use crate::expr::{Env, Expr, ExprError, ExprValue};
use crate::lifecycle::{Affiliation, LifecycleState, StateDecision, current_kinds, employment_ends, person_state};
use crate::login;
use crate::plan::{
    Action, AttrChange, Category, Notice, NoticeKind, Operation, PLAN_FORMAT, PersonUpdate, Plan, SafetyViolation,
    Summary,
};
use crate::settings::{Settings, TargetRules};
use crate::source::{Attrs, Field, Records, SourceRead};
use crate::state::{Hold, Link, Snapshot, StoredPerson, TargetEntry, TargetView};
use crate::{FastMap, FastSet, correlate, effective, fast_map, parallel};

/// The ppolicy attribute whose special value `000001010000Z` is OpenLDAP's administrative lock.
pub const LOCK_ATTRIBUTE: &str = "pwdAccountLockedTime";
pub const LOCK_VALUE: &str = "000001010000Z";
/// Active Directory's account flags, and the bit that disables an account.
pub const UAC_ATTRIBUTE: &str = "userAccountControl";
pub const UAC_ACCOUNTDISABLE: i64 = 0x2;
/// A normal account (0x200), enabled and disabled.
const UAC_NORMAL_ENABLED: i64 = 0x200;
/// `accountExpires` for "never" (what AD itself writes).
pub const NEVER_EXPIRES: &str = "9223372036854775807";

/// Everything the planner reads.
pub struct PlanInput<'a> {
    pub settings: &'a Settings,
    pub as_of: NaiveDate,
    /// One read per configured source that succeeded. A source whose read failed as a whole must
    /// not be planned from at all (the caller stops before planning).
    pub reads: &'a [SourceRead],
    pub snapshot: &'a Snapshot,
    /// Target name -> what it holds now.
    pub views: &'a BTreeMap<String, TargetView>,
    /// Evaluate every person (reconcile), not only those whose records changed, whose next
    /// transition came due, who have unfinished work, and their reports: drift, deleted and
    /// re-enabled accounts are then judged for everyone.
    pub evaluate_all: bool,
}

/// The attributes a target's view must carry for the planner.
pub fn view_attributes(rules: &TargetRules) -> Vec<AttrName> {
    let mut attrs: BTreeSet<AttrName> = rules.mappings.iter().map(|m| m.attr.clone()).collect();
    attrs.extend(rules.disable_set.iter().map(|(a, _)| a.clone()));
    attrs.insert(AttrName::new(rules.config.correlate.clone()));
    attrs.insert(AttrName::new(rules.config.login_attribute.clone()));
    attrs.insert(AttrName::new("objectClass"));
    if rules.config.disable.lock {
        attrs.insert(AttrName::new(LOCK_ATTRIBUTE));
    }
    if is_ad(rules) {
        attrs.insert(AttrName::new(UAC_ATTRIBUTE));
    }
    attrs.into_iter().collect()
}

fn is_ad(rules: &TargetRules) -> bool {
    rules.config.kind == TargetKind::ActiveDirectory
}

/// Whether a reference to another account (the manager) waits until every account of the run
/// exists: AD refuses a DN that names no entry yet, and a SCIM service and Graph take the manager's id,
/// which a user created in the same run has only once its create answered. A plain LDAP directory
/// takes the reference in the create itself.
fn defers_references(rules: &TargetRules) -> bool {
    matches!(rules.config.kind, TargetKind::ActiveDirectory | TargetKind::Scim | TargetKind::Entra)
}

/// The phase an operation runs in: containers, accounts, disables, removals of members about to
/// be renamed ([`REMOVE_BEFORE_RENAME`]), renames, attributes, references, group adds, group
/// removes, deletes. Within a phase the order is by person.
fn phase(action: &Action, references: bool) -> u8 {
    match action {
        Action::CreateContainer { .. } => 0,
        Action::Create { .. } | Action::Adopt { .. } | Action::SetPassword { .. } => 1,
        Action::Disable { .. } => 2,
        Action::Rename { .. } => 4,
        Action::Update { .. } if references => 6,
        Action::Update { .. } | Action::Enable { .. } => 5,
        Action::CreateGroup { .. } | Action::AddMember { .. } => 7,
        Action::RemoveMember { .. } => 8,
        Action::Delete { .. } => 9,
    }
}

/// The phase of a member's removal from a group they leave when the same run renames them: it is
/// removed under the DN it has before the rename. After the rename, the group could still list
/// the old DN until the directory's referential integrity (OpenLDAP's refint, a task of its own
/// that rewrites every group holding the member, a large group being rewritten whole) caught up.
const REMOVE_BEFORE_RENAME: u8 = 3;

/// The groups a target's rules want, and their members, as the persons' loop finds them.
#[derive(Default)]
struct WantedGroups {
    /// Normalized group DN -> its place in `wanted`. A hash map: a million persons want five
    /// groups each, among a hundred thousand (a team group per manager); the group plan takes
    /// the groups in order of their DN ([`WantedGroups::into_parts`]).
    groups: FastMap<String, usize>,
    /// (group DN, index of the first rule that wants it, its wanted members).
    wanted: Vec<WantedGroup>,
    /// Each group DN a worker parsed ([`Scratch::group_dn`]), by its address, -> the DN, held so
    /// that no address is reused while the map lasts, and its place in `wanted`: each thread
    /// parses a group once, and the loop's thread looks its address up, where hashing and
    /// comparing the normalized DN (five per person) was a tenth of its time.
    parsed: FastMap<usize, (Arc<GroupDn>, usize)>,
    /// Each member once, however many groups want them: a group holds only a member's place
    /// here, 8 bytes (at a million persons in five groups each, 80 MB less than the normalized
    /// DN's 16 bytes beside it).
    members: Vec<Member>,
}

impl WantedGroups {
    /// The place in `wanted` of `group`, wanted first by the rule `rule`.
    fn place(&mut self, group: &Arc<GroupDn>, rule: usize) -> usize {
        let address = Arc::as_ptr(group) as usize;
        if let Some((_, at)) = self.parsed.get(&address) {
            return *at;
        }
        let at = match self.groups.get(&group.normalized) {
            Some(at) => *at,
            None => {
                self.wanted.push((group.text.clone(), rule, WantedMembers::default()));
                self.groups.insert(group.normalized.clone(), self.wanted.len() - 1);
                self.wanted.len() - 1
            }
        };
        self.parsed.insert(address, (Arc::clone(group), at));
        at
    }

    /// Normalized group DN -> (group DN, index of the first rule that wants it, its wanted
    /// members), and the members they refer to.
    fn into_parts(self) -> (FastMap<String, WantedGroup>, Vec<Member>) {
        let WantedGroups { groups, mut wanted, members, .. } = self;
        let mut by_dn = fast_map(groups.len());
        for (normalized, at) in groups {
            by_dn.insert(normalized, std::mem::take(&mut wanted[at]));
        }
        (by_dn, members)
    }
}

/// A wanted group: (group DN, index of the rule that wants it, its wanted members).
type WantedGroup = (String, usize, WantedMembers);

/// A wanted group member: (member DN normalized, member DN, person key).
type Member = (Arc<str>, Arc<str>, Arc<str>);

/// A group's wanted members, by their places among [`WantedGroups::members`]: pushed as the
/// persons are planned, then sorted once by normalized member DN ([`WantedMembers::sort`]). At a
/// million persons an everyone-group's members inserted one by one into a map cost seconds of
/// comparisons and cache misses; a sort of the same entries is a fraction of that.
#[derive(Default)]
struct WantedMembers(Vec<usize>);

impl WantedMembers {
    fn push(&mut self, member: usize) {
        self.0.push(member);
    }

    /// In order of the normalized DN, each DN once: the last pushed wins, as a map's insert would.
    /// `rank` is each member's place in the order of the normalized DNs ([`member_ranks`]): the
    /// groups sort integers, where each of five groups per person sorting by the DNs themselves
    /// compared texts scattered over the heap (a second of one core at a million persons).
    fn sort(&mut self, rank: &[usize]) {
        // Stable: among equal DNs the pushes stay in order, and the last one's member is kept.
        parallel::sort_by(&mut self.0, |a, b| rank[*a].cmp(&rank[*b]));
        self.0.dedup_by(|later, kept| {
            let same = rank[*later] == rank[*kept];
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
    }

    /// Whether `normalized` is wanted (the members must be [sorted](Self::sort)).
    fn contains(&self, members: &[Member], normalized: &str) -> bool {
        self.0.binary_search_by(|at| (*members[*at].0).cmp(normalized)).is_ok()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each member, found among `members`.
    fn iter<'a>(&'a self, members: &'a [Member]) -> impl Iterator<Item = &'a Member> {
        self.0.iter().map(|at| &members[*at])
    }
}

/// Each member's rank in the order of the normalized member DNs, equal DNs ranked equal: sorted
/// once for all the groups, on every core.
fn member_ranks(members: &[Member]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    parallel::sort_by(&mut order, |a, b| members[*a].0.cmp(&members[*b].0));
    let mut rank = vec![0; members.len()];
    let mut current = 0;
    for (n, pair) in order.iter().enumerate() {
        if n > 0 && members[order[n - 1]].0 != members[*pair].0 {
            current += 1;
        }
        rank[*pair] = current;
    }
    rank
}

struct Draft {
    phase: u8,
    person: Option<String>,
    target: Arc<str>,
    category: Category,
    reason: Arc<str>,
    action: Action,
    /// The persons whose account's create in the draft's own target must land first (shared with
    /// the group plan's members: a million persons' group memberships copy no key).
    needs_accounts: Vec<Arc<str>>,
    /// Normalized container DNs that must exist first (shared by the entries under one parent).
    needs_containers: Arc<[String]>,
    /// Within its phase and target, operations of a lower rank come first (the depth of an
    /// account's create in the references among the run's creates: see [`fold_references`]).
    rank: usize,
    /// A create that carries references to accounts created in the same run (AD): what it gives
    /// them back to when it cannot.
    carries: Option<Box<Carried>>,
}

/// An account's operations in step 5 of the plan, by their places among the drafts: 16 bytes
/// beside its key, so a million accounts' map is 64 MB (with an `Option` and a list in each it was
/// 136 MB, taken anew from the system late in the plan, at its peak).
#[derive(Clone, Copy)]
struct AccountOps {
    /// Its create or adoption (the last, were there several), or [`AccountOps::NO_CREATE`].
    create: usize,
    /// The first operation that makes it ready (its create or adoption, its initial password);
    /// the others, which few accounts have, are kept in a map beside.
    ready: usize,
}

impl AccountOps {
    const NO_CREATE: usize = usize::MAX;

    fn create(self) -> Option<usize> {
        (self.create != Self::NO_CREATE).then_some(self.create)
    }
}

/// References a create carries, as the later update that sets them otherwise.
struct Carried {
    changes: Vec<AttrChange>,
    /// What that update waits for: the account itself and the referenced accounts.
    needs: Vec<Arc<str>>,
}

/// Where a person needing a login gets it from, worked out for many persons at once.
enum LoginSource {
    /// A purged or rescinded person's login, kept in a tombstone.
    Tombstone(String),
    /// The login of the account roster adopts, or made in a run that did not land whole.
    Adopted(String),
    /// Several accounts match the person: held, no login spent.
    Disputed,
    /// Chosen among these, in key order.
    Candidates(login::Candidates),
}

/// A map most persons leave empty: boxed, so that an empty one takes 8 bytes inline, not 24.
type RareMap = Option<Box<BTreeMap<String, String>>>;

/// One person as evaluated in this run.
#[derive(Clone)]
struct Evaluated {
    key: String,
    records: Records,
    /// Source -> record key, where it differs from the person's key. This, the provenance and
    /// the hold are `None` for most persons, boxed where they are not: 56 bytes less a person,
    /// beside the million held through a first load's plan.
    record_keys: RareMap,
    texts: correlate::Texts,
    /// Attribute -> the source its value came from (with records from several sources).
    provenance: RareMap,
    /// The kinds of the affiliations that hold now (prehire, active or on leave).
    affiliations: Vec<String>,
    /// The last day of employment over all affiliations, `None` while one is open-ended.
    ends: Option<NaiveDate>,
    /// The manager's person key (the `manager` attribute names a source key).
    manager: Option<String>,
    decision: StateDecision,
    prev_state: Option<LifecycleState>,
    missing_reads: u32,
    login: Option<String>,
    category: Category,
    tombstone: bool,
    hold: Option<Box<Hold>>,
    failed: bool,
    /// Whether this run evaluates the person. A settled person (records and configuration as last
    /// applied, no date due, nothing pending) is not: no operations, the stored state kept.
    evaluate: bool,
    /// Hash of the configuration and the records, as the store keeps it.
    eval_hash: String,
}

impl Evaluated {
    /// Frees what a [`PersonUpdate`] does not take of the person: their texts, affiliations and
    /// manager, and the reason for their state.
    fn shed(&mut self) {
        self.texts = correlate::Texts::Merged(BTreeMap::new());
        self.affiliations = Vec::new();
        self.manager = None;
        self.decision.because = String::new();
    }
}

fn is_enabled_state(state: LifecycleState, settings: &Settings) -> bool {
    match state {
        LifecycleState::Active => true,
        LifecycleState::Prehire => settings.lifecycle.prehire_enabled,
        LifecycleState::Leave => settings.lifecycle.on_leave != LeavePolicy::Disable,
        _ => false,
    }
}

fn gets_groups(state: LifecycleState, settings: &Settings, rules: &TargetRules) -> bool {
    match state {
        LifecycleState::Active => true,
        LifecycleState::Leave => settings.lifecycle.on_leave == LeavePolicy::Keep,
        LifecycleState::Leaver => rules.config.disable.keep_groups,
        _ => false,
    }
}

/// Disabled states move to `disable.move_to`; a pre-hire account waiting for day one does not.
fn moves_when_disabled(state: LifecycleState) -> bool {
    matches!(state, LifecycleState::Leaver | LifecycleState::Leave)
}

/// Whether two value lists are the same for the directory: unordered, DN-valued references compared
/// as DNs, and `accountExpires` 0 and "never" alike.
fn same_values(attr: &AttrName, a: &[String], b: &[String], as_dn: bool) -> bool {
    let expires = attr.is("accountExpires");
    let norm = |v: &[String]| {
        let mut v: Vec<String> = v
            .iter()
            .map(|s| if as_dn { normalize_dn(s) } else { s.clone() })
            .map(|s| if expires && s == "0" { NEVER_EXPIRES.to_string() } else { s })
            .collect();
        v.sort();
        v
    };
    norm(a) == norm(b)
}

/// The hash of the configuration and a person's records (their JSON, written into `buffer`, which
/// is reused from person to person: hashing it whole costs less than the JSON's many small
/// writes): the first 16 bytes of their SHA-256, in hex. A daily run hashes everyone to find whose
/// records changed: `ring`'s SHA-256 (assembly, on the vector units of CPUs without SHA
/// instructions) takes about half the time of the portable `sha2` for the same digest.
fn hash_person(config_hash: &str, records: &RecordsByName, buffer: &mut Vec<u8>) -> String {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(config_hash.as_bytes());
    buffer.clear();
    let _ = serde_json::to_writer(&mut *buffer, records);
    h.update(buffer);
    let digest = h.finish();
    let mut hex = String::with_capacity(32);
    for b in &digest.as_ref()[..16] {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The hash of each of `source`'s `records` as a person's only records ([`hash_person`]), in order.
fn record_hashes(config_hash: &str, source: &str, records: &[crate::source::Record]) -> Vec<String> {
    let mut json = Vec::new();
    records
        .iter()
        .map(|r| {
            let mut records = RecordsByName::default();
            records.insert(source, &r.attrs);
            hash_person(config_hash, &records, &mut json)
        })
        .collect()
}

/// Where in `records` the record is whose `attrs` field `attrs` is; None when it is no record of
/// theirs (a stored record, say). Found from the field's address, which a look-up by key would
/// cost a hash map of every record to learn.
fn record_index(records: &[crate::source::Record], attrs: &Arc<Attrs>) -> Option<usize> {
    let size = std::mem::size_of::<crate::source::Record>();
    let first = records.as_ptr() as usize + std::mem::offset_of!(crate::source::Record, attrs);
    let offset = (attrs as *const Arc<Attrs> as usize).checked_sub(first)?;
    let at = offset / size;
    (offset % size == 0 && records.get(at).is_some_and(|r| std::ptr::eq(&r.attrs, attrs))).then_some(at)
}

/// A person's records by source name, in name order: what their hash is made of (the JSON of a
/// map from source to record), without a map per person.
#[derive(Default)]
struct RecordsByName<'r>(Vec<(&'r str, &'r Arc<Attrs>)>);

impl<'r> RecordsByName<'r> {
    fn insert(&mut self, source: &'r str, attrs: &'r Arc<Attrs>) {
        match self.0.binary_search_by(|(s, _)| (*s).cmp(source)) {
            Ok(at) => self.0[at].1 = attrs,
            Err(at) => self.0.insert(at, (source, attrs)),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl serde::Serialize for RecordsByName<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(source, attrs)| (source, attrs)))
    }
}

struct Planner {
    notices: Vec<Notice>,
    drafts: Vec<Draft>,
    /// The texts of the drafts' targets and reasons, each kept once ([`shared`]).
    texts: FastSet<Arc<str>>,
}

/// `text` as the one shared copy in `texts`: a million creates name one target and a few
/// thousand reasons (a hire date's), and held each its own copy of both (some 60 MB of a
/// million-record plan).
fn shared(texts: &mut FastSet<Arc<str>>, text: &str) -> Arc<str> {
    if let Some(kept) = texts.get(text) {
        return Arc::clone(kept);
    }
    let kept: Arc<str> = Arc::from(text);
    texts.insert(Arc::clone(&kept));
    kept
}

impl Planner {
    fn notice(&mut self, kind: NoticeKind, person: Option<&str>, target: Option<&str>, message: String) {
        self.notices.push(Notice {
            kind,
            person: person.map(str::to_string),
            target: target.map(str::to_string),
            message,
        });
    }

    /// An operation on a person's own account, needing nothing beyond the account itself.
    fn account_op(&mut self, p: &Evaluated, target: &str, reason: String, action: Action) {
        self.draft(Some(&p.key), target, p.category, reason, action, false, vec![], vec![]);
    }

    #[allow(clippy::too_many_arguments)]
    fn draft(
        &mut self,
        person: Option<&str>,
        target: &str,
        category: Category,
        reason: String,
        action: Action,
        references: bool,
        needs_accounts: Vec<Arc<str>>,
        needs_containers: impl Into<Arc<[String]>>,
    ) {
        self.drafts.push(Draft {
            phase: phase(&action, references),
            person: person.map(str::to_string),
            target: shared(&mut self.texts, target),
            category,
            reason: shared(&mut self.texts, &reason),
            action,
            needs_accounts,
            needs_containers: needs_containers.into(),
            rank: 0,
            carries: None,
        });
    }
}

/// Builds the plan.
pub fn plan(input: &PlanInput) -> Plan {
    let (chosen, links, people, notices) = step_one(input, &mut BTreeSet::new());
    plan_with(input, &chosen, &links, people.into_iter().map(Cow::Owned).collect(), notices)
}

/// Step 1 of a plan, made once for the several plans of a daily run that reads its targets in
/// part: who the persons are and who is evaluated. It depends on the sources, the store and the
/// targets read in full, not on what a partial view holds, so the rounds of "plan, read what the
/// plan needs, plan again" share it (see [`plan_prepared`]).
pub struct Prepared {
    people: Vec<Evaluated>,
    notices: Vec<Notice>,
    /// The targets whose view was partial when this was made.
    partial: BTreeSet<String>,
    /// Persons whose stored records this needed but the snapshot was read without.
    records_unread: BTreeSet<String>,
}

impl Prepared {
    /// The keys of the persons the plans made from this evaluate: what a partial read of a target
    /// must fetch, and whose links' values the snapshot must hold.
    pub fn evaluated(&self) -> BTreeSet<String> {
        self.people.iter().filter(|p| p.evaluate).map(|p| p.key.clone()).collect()
    }

    /// The persons whose stored records this needed (missing from a source, a row quarantined, a
    /// source read incrementally) in a snapshot read without them: each is held as stored, with
    /// a notice. A runner reads their records ([`StoredPerson::records_omitted`]) and prepares
    /// again; a daily run has none or a few, so its persons are correlated once.
    pub fn records_unread(&self) -> &BTreeSet<String> {
        &self.records_unread
    }
}

fn partial_targets(views: &BTreeMap<String, TargetView>) -> BTreeSet<String> {
    views.iter().filter(|(_, v)| v.partial.is_some()).map(|(name, _)| name.clone()).collect()
}

/// Step 1 of [`plan`]: correlate this run's records into persons (`correlate.rs`), after choosing
/// the row in effect where a source holds several per key (`effective.rs`), and evaluate or
/// settle each. A person's stored records hold them where a row is quarantined, and make them
/// missing where a complete source no longer lists them. `input.views` need only say which
/// targets are read in part (a partial view's content is not looked at).
pub fn prepare(input: &PlanInput) -> Prepared {
    let mut records_unread = BTreeSet::new();
    let (_, _, people, notices) = step_one(input, &mut records_unread);
    Prepared { people, notices, partial: partial_targets(input.views), records_unread }
}

/// [`prepare`]'s work, with the rows in effect and the links it chose them with, for a plan
/// made at once to use them again.
/// `records_unread` gets the persons whose stored records it needed but the snapshot lacks.
fn step_one<'a>(
    input: &PlanInput<'a>,
    records_unread: &mut BTreeSet<String>,
) -> (Vec<Cow<'a, SourceRead>>, LinksByPerson<'a>, Vec<Evaluated>, Vec<Notice>) {
    let mut planner = Planner { notices: Vec::new(), drafts: Vec::new(), texts: FastSet::default() };
    let (chosen, links) = rows_and_links(input, &mut planner.notices);
    let reads: Vec<&SourceRead> = chosen.iter().map(|r| r.as_ref()).collect();
    let people = evaluate_people(input, &reads, &links, &mut planner, records_unread);
    (chosen, links, people, planner.notices)
}

/// The plan of `input` from its step 1 made earlier by [`prepare`], with the views of the targets
/// read in part as they are now. Made again from scratch if `input` reads other targets in part
/// than `prepared` was made for.
pub fn plan_prepared(input: &PlanInput, prepared: &Prepared) -> Plan {
    if prepared.partial != partial_targets(input.views) {
        return plan(input);
    }
    // The rows in effect again: their notices are among the prepared ones.
    let (chosen, links) = rows_and_links(input, &mut Vec::new());
    // Only the persons evaluated change while planning (their logins, their records handed to
    // the store): the settled are borrowed, so each round of a partial read copies only those.
    let people = prepared.people.iter().map(|p| if p.evaluate { Cow::Owned(p.clone()) } else { Cow::Borrowed(p) });
    plan_with(input, &chosen, &links, people.collect(), prepared.notices.clone())
}

/// [`plan_prepared`] for the last plan made from `prepared` (a first load, a full read, the
/// last round of a partial one): its persons are moved into the plan instead of copied. A first
/// load evaluates everyone, and the copy held every person twice at the peak (a ninth of a
/// 100,000-record plan's memory).
pub fn plan_prepared_last(input: &PlanInput, prepared: Prepared) -> Plan {
    if prepared.partial != partial_targets(input.views) {
        return plan(input);
    }
    let (chosen, links) = rows_and_links(input, &mut Vec::new());
    plan_with(input, &chosen, &links, prepared.people.into_iter().map(Cow::Owned).collect(), prepared.notices)
}

/// Steps 2 to 6 of [`plan`], on the persons and notices of step 1 (moved in: a plan of a million
/// persons made once does not copy them; a prepared plan borrows its settled persons).
/// `chosen` and `links` are step 1's rows in effect and links.
fn plan_with(
    input: &PlanInput,
    chosen: &[Cow<SourceRead>],
    links: &LinksByPerson,
    mut people: Vec<Cow<Evaluated>>,
    notices: Vec<Notice>,
) -> Plan {
    let settings = input.settings;
    let snapshot = input.snapshot;
    let today = input.as_of;
    let mut planner = Planner { notices, drafts: Vec::new(), texts: FastSet::default() };
    let reads: Vec<&SourceRead> = chosen.iter().map(|r| r.as_ref()).collect();
    // A source's size is the number of distinct people in it (plus rows without a readable key),
    // so an export with every row twice does not become the "last good" size. Counted first: the
    // set of a million keys made at the end of the plan, its peak, raised that peak by 32 MB.
    let source_counts: BTreeMap<String, u64> = input
        .reads
        .iter()
        .filter(|r| r.complete)
        .map(|r| {
            // Counted in a hash set: a sorted set of a million keys was a tenth of a daily run's
            // planning, made again in each round.
            let mut keys: FastSet<&str> = FastSet::with_capacity_and_hasher(r.records.len(), Default::default());
            keys.extend(
                r.records.iter().map(|x| x.key.as_str()).chain(r.quarantined.iter().filter_map(|q| q.key.as_deref())),
            );
            let keyless = r.quarantined.iter().filter(|q| q.key.is_none()).count();
            (r.source.clone(), (keys.len() + keyless) as u64)
        })
        .collect();

    // 2. Links and entries per target, and adoption candidates by correlation value.
    let empty_view = TargetView::default();
    let view_of = |t: &TargetRules| input.views.get(t.name()).unwrap_or(&empty_view);

    // 3. Login names, in key order so that the outcome is reproducible. Who owns each login
    // (lower-cased), made when the first person needs a login: a daily run in which everyone has
    // theirs makes no map of everyone's.
    // Who needs a login: sizes the map of owners, which a first load of a million grew from nothing.
    let needing: Vec<usize> = people
        .iter()
        .enumerate()
        .filter(|(_, p)| p.evaluate && p.hold.is_none() && p.login.is_none() && needs_account(p.decision.state))
        .map(|(i, _)| i)
        .collect();
    let stored_owners = || {
        let mut owners: FastMap<Cow<str>, Cow<str>> =
            fast_map(snapshot.persons.len() + snapshot.tombstones.len() + needing.len());
        for p in snapshot.persons.values() {
            if let Some(l) = &p.login {
                owners.insert(login::lowercase(l), Cow::Borrowed(&p.key));
            }
        }
        for t in &snapshot.tombstones {
            owners.entry(login::lowercase(&t.login)).or_insert(Cow::Borrowed(&t.person));
        }
        owners
    };
    let mut owners = None;
    let mut taken_in_targets: BTreeSet<&str> = BTreeSet::new();
    for v in input.views.values() {
        taken_in_targets.extend(v.taken_logins.iter().map(String::as_str));
    }
    let mut numbering = login::Numbering::default();
    let login_variables =
        Variables::read(settings, today, settings.login.candidates.iter().chain([&settings.login.fallback]));
    // Each target's entries by correlation value, so finding a person's unlinked account is a
    // look-up, not a pass over the whole view per person.
    let correlating: HashMap<&str, HashMap<&str, Vec<&TargetEntry>>> = settings
        .targets
        .iter()
        .map(|t| {
            let attr = AttrName::new(t.config.correlate.clone());
            let mut index: HashMap<&str, Vec<&TargetEntry>> = HashMap::new();
            for e in &view_of(t).entries {
                for v in e.attrs.get(&attr).into_iter().flatten() {
                    let entries = index.entry(v.as_str()).or_default();
                    if !entries.last().is_some_and(|last| std::ptr::eq(*last, e)) {
                        entries.push(e);
                    }
                }
            }
            (t.name(), index)
        })
        .collect();
    // Where each person needing a login gets it from is worked out on every core (the candidates'
    // expressions are most of it); only the choice among the candidates, which depends on what
    // the persons before took, goes in key order.
    let login_source = |filled: &mut Filled, &i: &usize| {
        let p = &*people[i];
        if let Some(t) = snapshot.tombstones.iter().find(|t| t.person == p.key) {
            return LoginSource::Tombstone(t.login.clone());
        }
        let mut disputed = false;
        let mut adopted = None;
        for t in &settings.targets {
            // An account roster made in a run whose other operations did not all land (so the
            // person and their login were never recorded) keeps the login it was made with.
            if let Some(l) = links.get(&(t.name(), p.key.as_str())) {
                let own = view_of(t).entries.iter().find(|e| e.object_id == l.object_id);
                let login = own
                    .and_then(|e| e.attrs.get(&AttrName::new(t.config.login_attribute.clone())))
                    .and_then(|v| v.first().cloned());
                adopted = adopted.or(login);
                continue;
            }
            let matches = correlating.get(t.name()).and_then(|index| index.get(p.key.as_str()));
            match matches.map_or(&[][..], Vec::as_slice) {
                [one] => {
                    let login = one
                        .attrs
                        .get(&AttrName::new(t.config.login_attribute.clone()))
                        .and_then(|v| v.first().cloned());
                    adopted = adopted.or(login);
                }
                [] => {}
                _ => disputed = true,
            }
        }
        if disputed {
            // Reported per target below; no login is spent on a person held for a human.
            return LoginSource::Disputed;
        }
        if let Some(existing) = adopted {
            return LoginSource::Adopted(existing);
        }
        fill_env(filled, &login_variables, settings, p, "", as_text);
        let texts = &p.texts;
        LoginSource::Candidates(login::candidates(&settings.login, &mut filled.env, &|name| {
            texts.get(name).unwrap_or_default()
        }))
    };
    let chosen_logins: Vec<(usize, Result<String, String>)> =
        parallel::in_order(&needing, Filled::default, login_source, |sources| {
            let mut chosen = Vec::new();
            for (&i, source) in sources {
                let key = people[i].key.as_str();
                let login = match source {
                    LoginSource::Disputed => continue,
                    LoginSource::Tombstone(login) => Ok(login),
                    LoginSource::Adopted(existing) => {
                        owners
                            .get_or_insert_with(stored_owners)
                            .insert(Cow::Owned(existing.to_lowercase()), Cow::Borrowed(key));
                        Ok(existing)
                    }
                    LoginSource::Candidates(candidates) => {
                        let owners = owners.get_or_insert_with(stored_owners);
                        let taken = |l: &str| owners.get(l).is_some_and(|o| *o != key) || taken_in_targets.contains(l);
                        let choice = candidates.choose(&settings.login, &taken, &mut numbering);
                        if let Ok(choice) = &choice {
                            owners.insert(Cow::Owned(login::lowercase(&choice.login).into_owned()), Cow::Borrowed(key));
                        }
                        choice.map(|c| c.login)
                    }
                };
                chosen.push((i, login));
            }
            chosen
        });
    // Who owns each login is not asked again: at a million persons the map was 140 MB of the
    // plan's peak, held through the diffs below.
    drop((owners, taken_in_targets, numbering, correlating));
    for (i, login) in chosen_logins {
        let p = people[i].to_mut();
        match login {
            Ok(login) => p.login = Some(login),
            Err(e) => {
                planner.notice(NoticeKind::EvaluationFailed, Some(&p.key), None, e);
                p.failed = true;
            }
        }
    }

    // 4. Desired DNs per target (for references and group members), then each person's diff.
    // Whether each person (by their place in `people`) has an operation in some target: the
    // summary counts them by category. A set of a million keys was 51 MB of the plan's peak.
    let mut noted = vec![false; people.len()];
    // Room for an operation per person evaluated in each target, and an eighth more: a first
    // load's million creates grew the drafts by doubling, and each vector left behind (226 MB
    // at a million, then 113, 56, ...) stayed allocated beside the plan. The groups' own add
    // theirs exactly (`plan_groups`).
    let evaluated = people.iter().filter(|p| p.evaluate).count();
    planner.drafts.reserve(evaluated.saturating_mul(settings.targets.len()).saturating_add(evaluated / 8));
    for rules in &settings.targets {
        let view = view_of(rules);
        let mut by_id: FastMap<&str, &TargetEntry> = fast_map(view.entries.len());
        by_id.extend(view.entries.iter().map(|e| (e.object_id.as_str(), e)));
        let mut by_correlation: HashMap<String, Vec<&TargetEntry>> = HashMap::new();
        let correlate = AttrName::new(rules.config.correlate.clone());
        // What the creates built on this thread share: their RDN's name and name lists.
        let mut create_scratch = CreateScratch::default();
        for e in &view.entries {
            for v in e.attrs.get(&correlate).into_iter().flatten() {
                by_correlation.entry(v.clone()).or_default().push(e);
            }
        }

        // Current entry of each person, and desired DNs. DNs already taken belong to their entry's
        // person (or to nobody roster knows), so a second "Jose Garcia" gets "Jose Garcia (2)".
        // Each person's entry is one of the view's: a first load's view is empty, and a map sized
        // for everyone was 70 MB of nothing at a million.
        let mut current: FastMap<&str, (&TargetEntry, bool)> = fast_map(people.len().min(view.entries.len()));
        let mut desired_dn: FastMap<&str, Place> = fast_map(people.len());
        // The owner of each account in the view that is linked: looked up link by link in the
        // view's accounts, not a map of every link (a daily run's view holds a few hundred of a
        // million).
        let mut owner_of: FastMap<&str, &str> = fast_map(view.entries.len());
        for l in snapshot.links.iter().filter(|l| l.target == rules.name()) {
            if let Some((id, _)) = by_id.get_key_value(l.object_id.as_str()) {
                owner_of.insert(id, l.person.as_str());
            }
        }
        // Every DN taken, with its owner's key ("" for nobody roster knows): the view's, and the
        // kept places of the persons settled below.
        let mut claimed: FastMap<Claim, &str> = fast_map(view.entries.len() + view.groups.len() + people.len());
        for e in &view.entries {
            claimed.insert(Claim::Own(normalize_dn(&e.dn)), owner_of.get(e.object_id.as_str()).copied().unwrap_or(""));
        }
        for g in &view.groups {
            claimed.insert(Claim::Own(normalize_dn(&g.dn)), "");
        }
        let mut untouchable: BTreeSet<String> =
            view.entries.iter().filter(|e| e.protected).map(|e| normalize_dn(&e.dn)).collect();
        let dn_variables = Variables::read(settings, today, [&rules.dn]);
        // Where each person is, worked out ahead on every core: a settled person's account and
        // the place it keeps, the DN expression of an evaluated person who may need one (the
        // choice among DNs taken, below, depends on the persons before).
        let whereabouts = |filled: &mut Filled, p: &Cow<Evaluated>| {
            if !p.evaluate {
                let Some(l) = links.get(&(rules.name(), p.key.as_str())) else {
                    return Whereabouts::Settled { entry: None, place: None };
                };
                let entry = by_id.get(l.object_id.as_str()).copied();
                return Whereabouts::Settled { entry, place: Place::kept(entry.map_or(&l.dn, |e| &e.dn)) };
            }
            let Some(login) = p.login.as_deref().filter(|_| p.hold.is_none() && !p.failed) else {
                return Whereabouts::Evaluated(None);
            };
            fill_env(filled, &dn_variables, settings, p, login, crate::dn::escape_dn_value_into);
            Whereabouts::Evaluated(Some(evaluate_planned_dn(rules, &filled.env)))
        };
        parallel::in_order(&people, Filled::default, whereabouts, |results| {
            for (p, whereabouts) in results {
                let evaluated_dn = match whereabouts {
                    Whereabouts::Settled { entry, place } => {
                        // Stays where it is: its DN is what references and group members point to.
                        if let Some(e) = entry {
                            current.insert(&p.key, (e, false));
                        }
                        if let Some(place) = place {
                            if entry.is_none() {
                                claimed.insert(place.claim(), &p.key);
                            }
                            desired_dn.insert(&p.key, place);
                        }
                        continue;
                    }
                    Whereabouts::Evaluated(evaluated_dn) => evaluated_dn,
                };
                if p.hold.is_some() || p.failed {
                    continue;
                }
                let limit = settings.safety.quarantine_after_failed_runs;
                if let Some(f) = snapshot
                    .failures
                    .iter()
                    .find(|f| limit > 0 && f.runs >= limit && f.target == rules.name() && f.person == p.key)
                {
                    planner.notice(
                    NoticeKind::FailingQuarantined,
                    Some(&p.key),
                    Some(rules.name()),
                    format!(
                        "failed in {} consecutive runs (last: {}); nothing planned here until released with `roster release {}`",
                        f.runs, f.last_error, p.key
                    ),
                );
                    if let Some(e) =
                        links.get(&(rules.name(), p.key.as_str())).and_then(|l| by_id.get(l.object_id.as_str()))
                    {
                        untouchable.insert(normalize_dn(&e.dn));
                    }
                    continue;
                }
                let link = links.get(&(rules.name(), p.key.as_str()));
                let linked_entry = link.and_then(|l| by_id.get(l.object_id.as_str()).copied());
                // An account a partial view did not ask for is unknown, not gone.
                if let (Some(l), Some(asked)) = (link, &view.partial)
                    && !asked.object_ids.contains(&l.object_id)
                {
                    planner.notice(
                        NoticeKind::EvaluationFailed,
                        Some(&p.key),
                        Some(rules.name()),
                        format!(
                            "linked entry {} (id {}) was not read in this partial read: nothing planned",
                            l.dn, l.object_id
                        ),
                    );
                    continue;
                }
                if let (Some(l), None) = (link, linked_entry) {
                    let recreate = rules.config.on_deleted == Some(DeletedPolicy::Recreate);
                    planner.notice(
                        NoticeKind::LinkedEntryDeleted,
                        Some(&p.key),
                        Some(rules.name()),
                        format!(
                            "linked entry {} (id {}) is gone from the directory: {}",
                            l.dn,
                            l.object_id,
                            if recreate {
                                "recreated (on_deleted = \"recreate\")"
                            } else {
                                "reported, not recreated (on_deleted = \"report\")"
                            }
                        ),
                    );
                    if !recreate {
                        continue;
                    }
                }
                let entry = match linked_entry {
                    Some(e) => Some((e, false)),
                    None => {
                        let candidates: Vec<&TargetEntry> = by_correlation
                            .get(&p.key)
                            .map(|v| {
                                v.iter().copied().filter(|e| !owner_of.contains_key(e.object_id.as_str())).collect()
                            })
                            .unwrap_or_default();
                        match candidates.as_slice() {
                            [] => None,
                            [one] => Some((*one, true)),
                            many => {
                                let dns: Vec<&str> = many.iter().map(|e| e.dn.as_str()).collect();
                                planner.notice(
                                    NoticeKind::Disputed,
                                    Some(&p.key),
                                    Some(rules.name()),
                                    format!(
                                        "{} entries carry {}={}: {}; held until a person resolves it",
                                        many.len(),
                                        rules.config.correlate,
                                        p.key,
                                        dns.join("; ")
                                    ),
                                );
                                continue;
                            }
                        }
                    }
                };
                if let Some((e, _)) = entry.filter(|(e, _)| e.protected) {
                    planner.notice(
                        NoticeKind::Protected,
                        Some(&p.key),
                        Some(rules.name()),
                        format!(
                            "{} is protected ({}): roster never modifies it",
                            e.dn,
                            rules.config.protect.as_deref().unwrap_or("protected")
                        ),
                    );
                    continue;
                }
                if let Some(e) = entry {
                    current.insert(&p.key, e);
                }
                let has_entry = entry.is_some();
                let state = p.decision.state;
                if !(needs_account(state)
                    || (has_entry && state.has_account())
                    || (has_entry && state == LifecycleState::Pending))
                {
                    continue;
                }
                let Some(evaluated_dn) = evaluated_dn else { continue };
                match evaluated_dn {
                    Ok(dn) => {
                        let enabled = is_enabled_state(effective_state(state, has_entry), settings);
                        let dn = match (&rules.move_to, enabled, moves_when_disabled(state)) {
                            (Some(base), false, true) => {
                                let parsed = Dn::parse(&dn.text).ok();
                                let rdn = parsed.as_ref().and_then(Dn::rdn).map(|r| r.to_string()).unwrap_or_default();
                                Dn::parse(&format!("{rdn},{base}")).map(|moved| PlannedDn::new(&moved)).unwrap_or(dn)
                            }
                            _ => dn,
                        };
                        let own = entry.map(|(e, _)| normalize_dn(&e.dn));
                        // A numbered RDN would change the value of its attribute: fine for a cn, never
                        // for the login or an attribute written only on create.
                        // (Its first attribute type is the text before the first '=': a type has none.)
                        let numberable = dn.text.split_once('=').is_some_and(|(attr, _)| {
                            !attr.eq_ignore_ascii_case(&rules.config.login_attribute)
                                && !rules.mappings.iter().any(|m| m.when == MappingWhen::Create && m.attr.is(attr))
                        });
                        match distinct_dn(dn, &p.key, own.as_deref(), &claimed, numberable) {
                            Ok(dn) => {
                                claimed.insert(Claim::Shared(Arc::clone(&dn.normalized)), &p.key);
                                desired_dn.insert(&p.key, Place::Planned(dn));
                            }
                            Err(dn) => {
                                let stay = entry.and_then(|(e, _)| Dn::parse(&e.dn).ok()).map(|dn| PlannedDn::new(&dn));
                                let what = if stay.is_some() { "not moved" } else { "not created" };
                                planner.notice(
                                    NoticeKind::EvaluationFailed,
                                    Some(&p.key),
                                    Some(rules.name()),
                                    format!("{} is taken by another entry: {what}", dn.text),
                                );
                                if let Some(stay) = stay {
                                    desired_dn.insert(&p.key, Place::Planned(stay));
                                }
                            }
                        }
                    }
                    Err(e) => planner.notice(NoticeKind::EvaluationFailed, Some(&p.key), Some(rules.name()), e),
                }
            }
        });
        // Every DN is chosen: the map of the DNs taken (a million persons' places, 86 MB of the
        // plan's peak) is not held through the diffs below, where the plan grows.
        drop(claimed);

        let mut containers_planned = PlannedContainers::default();
        let referable = if is_ad(rules) { Referable::of(&current, &desired_dn) } else { Referable::default() };
        // Active Directory keeps DN-valued references (manager) pointing at renamed entries by
        // itself, and renames run before references: compare against the values as they will be.
        let renamed_refs: HashMap<String, String> = if is_ad(rules) {
            current
                .iter()
                .filter_map(|(key, (e, _))| {
                    let d = desired_dn.get(key)?;
                    (normalize_dn(&e.dn) != **d.normalized()).then(|| (normalize_dn(&e.dn), d.text().to_owned()))
                })
                .collect()
        } else {
            HashMap::new()
        };
        let mut group_members = WantedGroups::default();
        // Each person's expressions, evaluated ahead on every core; taken below in key order.
        let variables = ExpressionVariables::of(settings, rules, today);
        let expressions = |scratch: &mut Scratch, p: &Cow<Evaluated>| {
            evaluate_expressions(scratch, &variables, settings, rules, p, &current, &desired_dn)
        };
        parallel::in_order(&people, Scratch::default, expressions, |results| {
            for (p, evaluations) in results {
                if !p.evaluate || p.hold.is_some() || p.failed {
                    continue;
                }
                let entry = current.get(p.key.as_str()).copied();
                let state = p.decision.state;
                let person = Some(p.key.as_str());
                let before = planner.drafts.len();
                let link = links.get(&(rules.name(), p.key.as_str()));

                if let Some((e, _)) =
                    entry.filter(|_| matches!(state, LifecycleState::Purged | LifecycleState::Rescinded))
                {
                    let action = match (&rules.purge_move_to, state) {
                        (Some(base), LifecycleState::Purged) => {
                            let rdn =
                                Dn::parse(&e.dn).ok().and_then(|d| d.rdn().map(|r| r.to_string())).unwrap_or_default();
                            Action::Rename {
                                dn: e.dn.clone(),
                                object_id: Some(e.object_id.clone()),
                                new_dn: format!("{rdn},{base}"),
                            }
                        }
                        _ => Action::Delete { dn: e.dn.clone(), object_id: Some(e.object_id.clone()) },
                    };
                    if let Action::Rename { new_dn, .. } = &action
                        && let Ok(target_dn) = Dn::parse(new_dn)
                    {
                        plan_containers(
                            &mut planner,
                            rules,
                            &target_dn,
                            &view.containers,
                            &mut containers_planned,
                            new_dn,
                        );
                    }
                    planner.draft(
                        person,
                        rules.name(),
                        Category::Leaver,
                        p.decision.because.clone(),
                        action,
                        false,
                        vec![],
                        vec![],
                    );
                    note_person(&mut noted, &people, p, &planner, before);
                    continue;
                }
                let Some(Evaluations { place, dn, manager_dn, mut wanted, failures, create, groups, member }) =
                    evaluations
                else {
                    continue;
                };
                let dn_text = place.text();
                let dn = PersonDn { parsed: dn, text: dn_text, normalized: place.normalized() };
                let login = p.login.as_deref().unwrap_or_default();
                if rules.mappings.iter().any(|m| m.references_manager)
                    && let (None, Some(mgr)) = (&manager_dn, p.texts.get("manager"))
                    && *mgr != *p.key
                {
                    planner.notice(
                        NoticeKind::ManagerMissing,
                        person,
                        Some(rules.name()),
                        format!("manager {mgr} has no account in {}: the manager reference stays empty", rules.name()),
                    );
                }
                let effective = effective_state(state, entry.is_some());
                let want_enabled = is_enabled_state(effective, settings);
                let ad = is_ad(rules);
                let password = rules.config.password.as_ref();
                let container_needs = plan_containers_of(
                    &mut planner,
                    rules,
                    dn.parent_normalized().as_deref(),
                    || dn.parsed(),
                    &view.containers,
                    &mut containers_planned,
                    &dn,
                );

                // The values the mappings and the disabled overrides want, and those that did not
                // evaluate.
                let eval_failed = !failures.is_empty();
                for failure in failures {
                    planner.notice(NoticeKind::EvaluationFailed, person, Some(rules.name()), failure);
                }
                if eval_failed {
                    // Held as they are: no group change either, until their values evaluate again.
                    if let Some((e, _)) = entry {
                        untouchable.insert(normalize_dn(&e.dn));
                    }
                    continue;
                }

                match entry {
                    None => {
                        if !needs_account(state) {
                            continue;
                        }
                        // A plain LDAP directory takes a DN reference to an entry that does not exist
                        // yet (OpenLDAP checks none), so the manager goes into the create itself; AD
                        // refuses one, so there it goes into the create when the manager's account
                        // exists or is created first in this run (the create then waits for that
                        // one: `fold_references`), and is otherwise set once every account exists.
                        let deferred = defers_references(rules);
                        let refs: Vec<AttrChange> = wanted
                            .iter()
                            .filter(|(_, values, _, references)| deferred && *references && !values.is_empty())
                            .map(|(attr, values, ..)| AttrChange {
                                attr: attr.clone(),
                                old: vec![],
                                new: values.clone(),
                            })
                            .collect();
                        let carried =
                            if ad && !refs.is_empty() { referable.accounts(&refs, &dn.parsed()) } else { None };
                        // AD creates every account disabled: it is enabled only once it has a password.
                        let created_enabled = want_enabled && !ad;
                        // Built by the worker where nothing of it waits for this loop.
                        let attributes = create.unwrap_or_else(|| {
                            create_attributes(
                                &mut create_scratch,
                                CreateOf {
                                    rules,
                                    names: &variables.creates,
                                    p,
                                    login,
                                    dn: &dn,
                                    enabled: created_enabled,
                                },
                                &mut wanted,
                                !deferred || carried.is_some(),
                            )
                        });
                        let attributes = match attributes {
                            Ok(attributes) => attributes,
                            Err(e) => {
                                planner.notice(
                                    NoticeKind::EvaluationFailed,
                                    person,
                                    Some(rules.name()),
                                    format!("account not created: {e}"),
                                );
                                continue;
                            }
                        };
                        let reason = p.decision.because.clone();
                        planner.draft(
                            person,
                            rules.name(),
                            p.category,
                            reason,
                            Action::Create {
                                dn: place.shared_text(),
                                attributes,
                                enabled: created_enabled,
                                password: password.is_some(),
                            },
                            false,
                            carried.clone().unwrap_or_default(),
                            container_needs.clone(),
                        );
                        if carried.is_some()
                            && let Some(create) = planner.drafts.last_mut()
                        {
                            let needs = manager_dependency(p);
                            create.carries = Some(Box::new(Carried { changes: refs.clone(), needs }));
                        }
                        // With `when = "enabled"` a disabled account waits for its password (the link
                        // keeps it pending) until the run that enables it.
                        if let Some(pw) = password.filter(|pw| pw.when == PasswordWhen::Created || want_enabled) {
                            planner.account_op(
                                p,
                                rules.name(),
                                "initial password for the new account".to_string(),
                                Action::SetPassword {
                                    dn: dn_text.to_string(),
                                    object_id: None,
                                    must_change: pw.must_change,
                                },
                            );
                        }
                        if want_enabled && ad {
                            let disabled = (UAC_NORMAL_ENABLED | UAC_ACCOUNTDISABLE).to_string();
                            let changes = vec![AttrChange {
                                attr: AttrName::new(UAC_ATTRIBUTE),
                                old: vec![disabled],
                                new: vec![UAC_NORMAL_ENABLED.to_string()],
                            }];
                            planner.account_op(
                                p,
                                rules.name(),
                                format!("{}; enabled once it has its password", p.decision.because),
                                Action::Enable { dn: dn_text.to_string(), object_id: None, changes },
                            );
                        }
                        if !refs.is_empty() && carried.is_none() {
                            let deps = manager_dependency(p);
                            planner.draft(
                                person,
                                rules.name(),
                                p.category,
                                "manager reference, set once every account exists".to_string(),
                                Action::Update { dn: dn_text.to_string(), object_id: None, changes: refs },
                                true,
                                deps,
                                vec![],
                            );
                        }
                    }
                    Some((e, adopting)) => {
                        // An entry made by a create whose outcome was never recorded is roster's own:
                        // linked, brought through its lifecycle transition, and given a new password.
                        let resumed = adopting
                            && snapshot
                                .unfinished_creates
                                .iter()
                                .any(|u| u.target == rules.name() && u.person == p.key);
                        if adopting {
                            let reason = if resumed {
                                "an earlier run created this entry but stopped before recording it: linked".to_string()
                            } else {
                                format!("adopt: existing entry has {}={}", rules.config.correlate, p.key)
                            };
                            planner.account_op(
                                p,
                                rules.name(),
                                reason,
                                Action::Adopt { dn: e.dn.clone(), object_id: e.object_id.clone() },
                            );
                        }
                        // A linked account whose person was never recorded was created by a run whose
                        // other operations did not all land: its lifecycle transition is still due.
                        let transition = match p.prev_state {
                            Some(prev) => prev != state,
                            None => link.is_some() || resumed,
                        };
                        let pending = link.is_some_and(|l| l.password_pending) || resumed;
                        if let Some(pw) = password
                            && pending
                            && needs_account(state)
                            && (pw.when == PasswordWhen::Created || want_enabled)
                        {
                            let reason = if transition && want_enabled && pw.when == PasswordWhen::Enabled {
                                "the account is enabled: its initial password is set now"
                            } else {
                                "the initial password was not set or not delivered: a new one is set"
                            };
                            planner.account_op(
                                p,
                                rules.name(),
                                reason.to_string(),
                                Action::SetPassword {
                                    dn: e.dn.clone(),
                                    object_id: Some(e.object_id.clone()),
                                    must_change: pw.must_change,
                                },
                            );
                        }
                        let currently_enabled = entry_enabled(rules, e, link.copied());
                        let mut current_dn = e.dn.clone();
                        let mut current_attrs = e.attrs.clone();
                        let object_id = Some(e.object_id.clone());
                        if want_enabled != currently_enabled {
                            if !want_enabled && (transition || adopting || p.prev_state.is_none()) {
                                let mut changes = switch_changes(rules, &current_attrs, false);
                                push_changes(
                                    &mut changes,
                                    &mut current_attrs,
                                    wanted.iter().filter(|(a, ..)| rules.disable_set.iter().any(|(d, _)| d == a)),
                                );
                                planner.account_op(
                                    p,
                                    rules.name(),
                                    p.decision.because.clone(),
                                    Action::Disable { dn: current_dn.clone(), object_id: object_id.clone(), changes },
                                );
                            } else if want_enabled && transition {
                                // Enabled after the rename (below), so the entry is where it belongs first.
                            } else if want_enabled {
                                planner.notice(
                                    NoticeKind::DisabledOutsideRoster,
                                    person,
                                    Some(rules.name()),
                                    format!(
                                        "{} is disabled, but roster did not disable it: not re-enabled (state {state})",
                                        e.dn
                                    ),
                                );
                            } else {
                                planner.notice(NoticeKind::DisabledOutsideRoster, person, Some(rules.name()), format!("{} is enabled, but the person is {state}: reported, not changed outside a lifecycle transition", e.dn));
                            }
                        }
                        if normalize_dn(&current_dn) != **place.normalized() {
                            let dn = dn.parsed();
                            let from_disabled_ou = rules
                                .move_to
                                .as_ref()
                                .is_some_and(|m| Dn::parse(&current_dn).is_ok_and(|d| d.is_within(m)));
                            let mut reason = match (want_enabled, dn.parent()) {
                                (false, Some(parent)) => format!("{}; moved to {parent}", p.decision.because),
                                (true, Some(parent)) if from_disabled_ou => {
                                    format!("{}; moved back to {parent}", p.decision.because)
                                }
                                _ => format!("move: {}", p.decision.because),
                            };
                            if let Ok(old) = Dn::parse(&current_dn) {
                                if old.parent() == dn.parent() {
                                    reason = "rename: the DN template gives a new name".to_string();
                                } else if want_enabled && !from_disabled_ou {
                                    reason = format!(
                                        "move: the DN template now places the account under {}",
                                        dn.parent().map(|d| d.to_string()).unwrap_or_default()
                                    );
                                }
                                apply_rdn_change(&mut current_attrs, &old, &dn);
                            }
                            planner.draft(
                                person,
                                rules.name(),
                                p.category,
                                reason,
                                Action::Rename {
                                    dn: current_dn.clone(),
                                    object_id: object_id.clone(),
                                    new_dn: dn_text.to_string(),
                                },
                                false,
                                vec![],
                                container_needs.clone(),
                            );
                            current_dn = dn_text.to_string();
                        }
                        if want_enabled && !currently_enabled && transition {
                            let mut changes = switch_changes(rules, &current_attrs, true);
                            push_changes(
                                &mut changes,
                                &mut current_attrs,
                                wanted.iter().filter(|(a, ..)| rules.disable_set.iter().any(|(d, _)| d == a)),
                            );
                            for (attr, _) in &rules.disable_set {
                                if !wanted.iter().any(|(a, ..)| a == attr)
                                    && let Some(old) = current_attrs.remove(attr)
                                {
                                    changes.push(AttrChange { attr: attr.clone(), old, new: vec![] });
                                }
                            }
                            planner.account_op(
                                p,
                                rules.name(),
                                p.decision.because.clone(),
                                Action::Enable { dn: current_dn.clone(), object_id: object_id.clone(), changes },
                            );
                        }
                        let mut changes = Vec::new();
                        let mut refs = Vec::new();
                        let mut drifted = Vec::new();
                        let rdn_attrs: Vec<String> = dn.rdn().map(|(attr, _)| attr.to_string()).collect();
                        for (attr, values, create_only, references) in &wanted {
                            if *create_only
                                || attr.is(LOCK_ATTRIBUTE)
                                || attr.is(UAC_ATTRIBUTE)
                                || rdn_attrs.iter().any(|r| attr.is(r))
                            {
                                continue;
                            }
                            let mut old = current_attrs.get(attr).cloned().unwrap_or_default();
                            if *references {
                                for v in &mut old {
                                    if let Some(new) = renamed_refs.get(&normalize_dn(v)) {
                                        *v = new.clone();
                                    }
                                }
                            }
                            if same_values(attr, &old, values, *references) {
                                continue;
                            }
                            // Changed outside roster: what roster last wrote is still what it wants, but
                            // the directory holds something else.
                            debug_assert!(
                                link.is_none_or(|l| !l.values_omitted),
                                "{person:?}'s link read without values"
                            );
                            let last_written = link.and_then(|l| l.values.get(attr));
                            if last_written.is_some_and(|w| same_values(attr, w, values, *references)) {
                                if rules.config.drift == DriftPolicy::Report {
                                    planner.notice(
                                    NoticeKind::Drift,
                                    person,
                                    Some(rules.name()),
                                    format!(
                                        "{attr} of {} was changed outside roster to {:?} (roster wrote {:?}); reported, not restored (drift = \"report\")",
                                        e.dn, old, values
                                    ),
                                );
                                    continue;
                                }
                                drifted.push(attr.as_str());
                            }
                            let change = AttrChange { attr: attr.clone(), old, new: values.clone() };
                            if *references { refs.push(change) } else { changes.push(change) }
                        }
                        if !changes.is_empty() {
                            let names: Vec<&str> = changes.iter().map(|c| c.attr.as_str()).collect();
                            let mut reason = format!(
                                "{}: mapped values changed ({})",
                                if p.category == Category::Leaver { "leaver" } else { "update" },
                                names.join(", ")
                            );
                            if !drifted.is_empty() {
                                reason = format!("restore: {} changed outside roster", drifted.join(", "));
                            }
                            planner.account_op(
                                p,
                                rules.name(),
                                reason,
                                Action::Update { dn: current_dn.clone(), object_id: object_id.clone(), changes },
                            );
                        }
                        if !refs.is_empty() {
                            let deps = manager_dependency(p);
                            planner.draft(
                                person,
                                rules.name(),
                                p.category,
                                "manager reference changed".to_string(),
                                Action::Update { dn: current_dn.clone(), object_id: object_id.clone(), changes: refs },
                                true,
                                deps,
                                vec![],
                            );
                        }
                    }
                }

                // Group memberships this person should hold in this target.
                if gets_groups(effective, settings, rules) {
                    let mut member = Some((member.0, member.1, Arc::<str>::from(p.key.as_str())));
                    let mut place = None;
                    for (rule_index, rule) in groups.into_iter().enumerate() {
                        match rule {
                            Ok(Some(dns)) => match dns {
                                Ok(dns) => {
                                    for g in dns {
                                        match g.as_ref() {
                                            Ok(group) if group.empty_name => planner.notice(
                                                NoticeKind::EvaluationFailed,
                                                person,
                                                Some(rules.name()),
                                                format!(
                                                    "group {} has an empty name: membership not planned",
                                                    group.text
                                                ),
                                            ),
                                            Ok(group) if group.in_scope => {
                                                let at = *place.get_or_insert_with(|| {
                                                    group_members.members.extend(member.take());
                                                    group_members.members.len() - 1
                                                });
                                                let wanted = group_members.place(group, rule_index);
                                                group_members.wanted[wanted].2.push(at);
                                            }
                                            Ok(group) => planner.notice(
                                                NoticeKind::EvaluationFailed,
                                                person,
                                                Some(rules.name()),
                                                format!(
                                                    "group {} is outside the managed subtrees: not touched",
                                                    group.text
                                                ),
                                            ),
                                            Err(e) => planner.notice(
                                                NoticeKind::EvaluationFailed,
                                                person,
                                                Some(rules.name()),
                                                format!("group rule: {e}"),
                                            ),
                                        }
                                    }
                                }
                                Err(e) => planner.notice(
                                    NoticeKind::EvaluationFailed,
                                    person,
                                    Some(rules.name()),
                                    format!("group rule dn: {e}"),
                                ),
                            },
                            Ok(None) => {}
                            Err(e) => planner.notice(
                                NoticeKind::EvaluationFailed,
                                person,
                                Some(rules.name()),
                                format!("group rule when: {e}"),
                            ),
                        }
                    }
                }
                note_person(&mut noted, &people, p, &planner, before);
            }
        });

        // A partial view holds no account that is nobody's: orphans are for the full read.
        if view.partial.is_none() {
            plan_orphans(&mut planner, rules, view, &current, &owner_of, &people);
        }
        // A held person was never given a current entry above: their account is found by its
        // link, so that authoritative groups keep them as members while the hold lasts.
        for p in people.iter().filter(|p| p.hold.is_some() || p.failed) {
            let own = current.get(p.key.as_str()).map(|(e, _)| *e).or_else(|| {
                links.get(&(rules.name(), p.key.as_str())).and_then(|l| by_id.get(l.object_id.as_str()).copied())
            });
            if let Some(e) = own {
                untouchable.insert(normalize_dn(&e.dn));
            }
        }
        plan_groups(
            &mut planner,
            rules,
            view,
            group_members,
            &desired_dn,
            &current,
            &people,
            &untouchable,
            &snapshot
                .managed_groups
                .iter()
                .filter(|g| g.target == rules.name())
                .map(|g| g.dn.as_str())
                .collect::<Vec<_>>(),
            &mut containers_planned,
        );
    }

    // 5. Order, number and link the operations.
    let Planner { mut drafts, mut notices, .. } = planner;
    fold_references(&mut drafts);
    drafts.sort_by(|a, b| (a.phase, &a.target, a.rank, &a.person).cmp(&(b.phase, &b.target, b.rank, &b.person)));
    // An account is ready for its other operations once it exists (created or adopted) and has its
    // initial password. Each target's accounts by person key, borrowed from the drafts: one map
    // per target, sized once, where two maps of (target, person) were 200 MB at a million.
    // The person whose account `d` makes or readies, if it does.
    fn account_of(d: &Draft) -> Option<&str> {
        d.person
            .as_deref()
            .filter(|_| matches!(d.action, Action::Create { .. } | Action::Adopt { .. } | Action::SetPassword { .. }))
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for d in &drafts {
        if account_of(d).is_some() {
            match counts.iter_mut().find(|(t, _)| **t == *d.target) {
                Some((_, count)) => *count += 1,
                None => counts.push((&*d.target, 1)),
            }
        }
    }
    // Per target: each account's operations, and the further ones that make it ready.
    type OfTarget<'d> = (FastMap<&'d str, AccountOps>, FastMap<&'d str, Vec<usize>>);
    let mut accounts: Vec<(&str, OfTarget)> =
        counts.into_iter().map(|(target, count)| (target, (fast_map(count), FastMap::default()))).collect();
    let mut containers: FastMap<String, usize> = FastMap::default();
    for (i, d) in drafts.iter().enumerate() {
        if let Action::CreateContainer { dn } = &d.action {
            containers.insert(normalize_dn(dn), i);
        }
        if let Some(p) = account_of(d)
            && let Some((_, (of_target, more))) = accounts.iter_mut().find(|(t, _)| **t == *d.target)
        {
            let account = of_target.entry(p).or_insert(AccountOps { create: AccountOps::NO_CREATE, ready: i });
            if !matches!(d.action, Action::SetPassword { .. }) {
                account.create = i;
            }
            if account.ready != i {
                more.entry(p).or_default().push(i);
            }
        }
    }
    // Each operation's dependencies on every core: a million persons' groups wait for five
    // million creates.
    let ids: Vec<usize> = (0..drafts.len()).collect();
    let no_accounts = (FastMap::default(), FastMap::default());
    let depends_of = |_: &mut (), &id: &usize| {
        let d = &drafts[id];
        let (of_target, more) = accounts.iter().find(|(t, _)| **t == *d.target).map_or(&no_accounts, |(_, a)| a);
        // A group of everyone is a million look-ups: on every core, not on this worker alone.
        let mut depends_on: Vec<usize> = parallel::in_parts(&d.needs_accounts, |keys| {
            keys.iter().filter_map(|k| of_target.get(&**k).and_then(|a| a.create())).collect()
        });
        depends_on.extend(d.needs_containers.iter().filter_map(|c| containers.get(c).copied()));
        if let Some(p) = &d.person
            && let Some(account) = of_target.get(p.as_str())
        {
            let more = more.get(p.as_str()).map_or(&[][..], Vec::as_slice);
            depends_on.extend(std::iter::once(account.ready).chain(more.iter().copied()).filter(|&c| c != id));
        }
        depends_on.retain(|&x| x < id);
        depends_on.sort_unstable();
        depends_on.dedup();
        depends_on
    };
    let depends: Vec<Vec<usize>> =
        parallel::in_order(&ids, || (), depends_of, |results| results.map(|(_, depends_on)| depends_on).collect());
    drop((accounts, containers));
    let operations: Vec<Operation> = drafts
        .into_iter()
        .zip(depends)
        .enumerate()
        .map(|(id, (d, depends_on))| Operation {
            id,
            person: d.person,
            target: d.target,
            category: d.category,
            reason: d.reason,
            depends_on,
            action: d.action,
        })
        .collect();

    // What the summary and the provenance read of the persons, before step 6 takes them apart.
    // Who has an operation: asked only of a person with provenance or gone from everywhere, so
    // made only then (a set of a million keys, a tenth of a second on one core).
    // Sized for everyone at once, not grown by doubling from nothing on the one core.
    let with_operations = std::cell::OnceCell::new();
    let persons = people.len();
    let has_operations = |key: &str| {
        with_operations
            .get_or_init(|| {
                let mut set: FastSet<&str> = FastSet::with_capacity_and_hasher(persons, Default::default());
                set.extend(operations.iter().filter_map(|o| o.person.as_deref()));
                set
            })
            .contains(key)
    };
    let population = persons as u64;
    let count = |c: Category| people.iter().zip(&noted).filter(|(p, noted)| **noted && p.category == c).count() as u64;
    let (joiners, movers, leavers, rehires) =
        (count(Category::Joiner), count(Category::Mover), count(Category::Leaver), count(Category::Rehire));
    let evaluated = people.iter().filter(|p| p.evaluate && p.hold.is_none()).count() as u64;
    let provenance = people
        .iter()
        .filter(|p| p.provenance.is_some() && has_operations(&p.key))
        .map(|p| (p.key.clone(), p.provenance.as_deref().cloned().unwrap_or_default()))
        .collect();

    // 6. What the store records per person, once their operations land. Each update is made of
    // its person, taken apart in their place: a million persons' evaluations and a list of
    // their updates beside them were both held to the plan's end, a fifth of its peak. What an
    // update does not take is freed on every core first: freed person by person in the loop
    // below, it was half a second of a million persons' plan on one core.
    parallel::each_in_parts_mut(&mut people, |p| {
        if let Cow::Owned(p) = p {
            p.shed();
        }
    });
    let person_updates: Vec<PersonUpdate> = people
        .into_iter()
        .filter(|p| p.evaluate && !p.failed)
        .filter_map(|p| {
            let stored = snapshot.persons.get(&p.key);
            let p = p.into_owned();
            if let Some(h) = &p.hold {
                let until = h.until.map(|d| format!(" until {d}")).unwrap_or_default();
                notices.push(Notice {
                    kind: NoticeKind::OnHold,
                    person: Some(p.key),
                    target: None,
                    message: format!("on hold{until}: {}; nothing planned", h.reason),
                });
                return None;
            }
            if stored.is_none()
                && matches!(p.decision.state, LifecycleState::Purged | LifecycleState::Rescinded)
                && !has_operations(&p.key)
            {
                return None;
            }
            let update = PersonUpdate {
                key: p.key,
                login: p.login,
                state: p.decision.state,
                records: p.records,
                eval_hash: p.eval_hash,
                missing_reads: p.missing_reads,
                left_on: p.decision.left_on,
                next_transition: p.decision.next_transition,
                hold: stored.and_then(|s| s.hold.clone()).filter(|h| h.until.is_none_or(|u| today <= u)),
                tombstone: p.tombstone,
                record_keys: p.record_keys.map(|m| *m).unwrap_or_default(),
                provenance: p.provenance.map(|m| *m).unwrap_or_default(),
            };
            stored.is_none_or(|s| differs(s, &update)).then_some(update)
        })
        .collect();

    for read in &reads {
        for q in &read.quarantined {
            if let Some(k) = &q.key {
                notices.push(Notice {
                    kind: NoticeKind::Quarantined,
                    person: Some(k.clone()),
                    target: None,
                    message: format!("row {} quarantined ({}); the person is held as they were", q.location, q.reason),
                });
            }
        }
    }
    notices.sort_by(|a, b| (a.kind, &a.person, &a.target).cmp(&(b.kind, &b.person, &b.target)));

    let safety = limits(settings, &operations, population, &source_counts, snapshot);
    let summary = Summary {
        persons: population,
        evaluated,
        joiners,
        movers,
        leavers,
        rehires,
        operations: operations.len() as u64,
        quarantined_rows: reads.iter().map(|r| r.quarantined.len() as u64).sum(),
        notices: notices.len() as u64,
        partial_read: input.views.values().any(|v| v.partial.is_some()),
        entries_read: input.views.values().map(|v| (v.entries.len() + v.groups.len()) as u64).sum(),
        stored_persons: snapshot.persons.len() as u64,
        stored_records: snapshot.persons.values().filter(|p| !p.records_omitted).count() as u64,
    };
    Plan {
        provenance,
        format: PLAN_FORMAT,
        as_of: today,
        config_hash: settings.hash.clone(),
        operations,
        person_updates,
        notices,
        quarantined: reads.iter().flat_map(|r| r.quarantined.iter().cloned()).collect(),
        safety,
        source_counts,
        summary,
    }
}

/// The keys of the persons [`plan`] evaluates with these inputs: what a partial read of a target
/// must fetch. `input.views` holds the targets read in full, and for each target to be read in
/// part a view marked partial (which judges no account changed outside roster).
pub fn evaluated_persons(input: &PlanInput) -> BTreeSet<String> {
    prepare(input).evaluated()
}

/// The stored persons whose records must be read before [`prepare`] in a snapshot read without
/// them ([`StoredPerson::records_omitted`]): when a source correlates by secondary keys, everyone
/// (the stored records' values are what new records are matched against); otherwise none, and
/// [`Prepared::records_unread`] names the few a plan uses.
pub fn stored_records_needed(input: &PlanInput) -> BTreeSet<String> {
    if !input.settings.sources.iter().any(|s| !s.correlate.is_empty()) {
        return BTreeSet::new();
    }
    input.snapshot.persons.values().filter(|p| p.records_omitted).map(|p| p.key.clone()).collect()
}

/// The rows in effect of each read (`effective.rs`), and the stored links by (target, person).
type LinksByPerson<'a> = FastMap<(&'a str, &'a str), &'a Link>;
fn rows_and_links<'a>(
    input: &PlanInput<'a>,
    notices: &mut Vec<Notice>,
) -> (Vec<Cow<'a, SourceRead>>, LinksByPerson<'a>) {
    let chosen =
        input.reads.iter().map(|r| effective::choose(&input.settings.sources, r, input.as_of, notices)).collect();
    let mut links: LinksByPerson = fast_map(input.snapshot.links.len());
    for l in &input.snapshot.links {
        links.insert((l.target.as_str(), l.person.as_str()), l);
    }
    (chosen, links)
}

/// Step 1 of the plan: every person of this run, from this run's records and the stored ones,
/// evaluated or settled (see "Incremental evaluation" in `docs/benchmarks.md`).
fn evaluate_people<'a>(
    input: &PlanInput<'a>,
    reads: &[&SourceRead],
    links: &LinksByPerson,
    planner: &mut Planner,
    records_unread: &mut BTreeSet<String>,
) -> Vec<Evaluated> {
    let settings = input.settings;
    let snapshot = input.snapshot;
    let today = input.as_of;
    // With one source, a person's records are most often one record of this run: its hash is made
    // here, in the order the records lie in memory, while the records are correlated (on one
    // core), instead of in key order below with a miss of the cache per value. Two threads take
    // half the records each, so that no core waits once the correlation is done.
    let (correlated, fresh_hashes) = std::thread::scope(|scope| {
        let hashing = match reads {
            [read] if settings.sources.len() == 1 => {
                let halves = read.records.split_at(read.records.len() / 2);
                let hash = |half| scope.spawn(move || record_hashes(&settings.hash, &read.source, half));
                Some((read, [hash(halves.0), hash(halves.1)]))
            }
            _ => None,
        };
        let correlated = correlate::correlate(settings, reads, snapshot);
        let hashes = hashing.map(|(read, halves)| {
            let [mut first, second] = halves.map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            first.extend(second);
            (read, first)
        });
        (correlated, hashes)
    });
    // The hash of `records` when they are one record of this run's, made above.
    let fresh_hash = |records: &RecordsByName| {
        let ((read, hashes), [(_, attrs)]) = (fresh_hashes.as_ref()?, records.0.as_slice()) else { return None };
        record_index(&read.records, attrs).map(|at| hashes[at].clone())
    };
    planner.notices.extend(correlated.notices.iter().cloned());
    let mut quarantined: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut complete: BTreeSet<&str> = BTreeSet::new();
    for read in reads {
        // A row whose key could not be read belongs to someone unknown: that someone must not look
        // missing, so nobody is treated as missing from such a read.
        let keyless = read.quarantined.iter().filter(|q| q.key.is_none()).count();
        if read.complete && keyless == 0 {
            complete.insert(&read.source);
        } else if read.complete {
            planner.notice(
                NoticeKind::Missing,
                None,
                None,
                format!(
                    "source {}: {keyless} quarantined row(s) have no readable key, so nobody is treated as missing from this read",
                    read.source
                ),
            );
        }
        for q in &read.quarantined {
            if let Some(k) = &q.key {
                quarantined.entry(read.source.as_str()).or_default().insert(k);
            }
        }
    }
    let read_sources: BTreeSet<&str> = reads.iter().map(|r| r.source.as_str()).collect();
    // Everyone, in key order, with their stored self: the stored persons merged with the new ones.
    let mut new_persons: Vec<&str> = correlated.new_persons.iter().map(|k| k.as_ref()).collect();
    new_persons.sort_unstable();
    let mut keys: Vec<(&str, Option<&'a StoredPerson>)> =
        Vec::with_capacity(snapshot.persons.len() + new_persons.len());
    let mut fresh = new_persons.into_iter().peekable();
    for (key, stored) in &snapshot.persons {
        while let Some(new) = fresh.next_if(|new| *new < key.as_str()) {
            keys.push((new, None));
        }
        keys.push((key, Some(stored)));
    }
    keys.extend(fresh.map(|new| (new, None)));
    // Persons with work left from an earlier run are evaluated whatever their records say.
    let mut unfinished: BTreeSet<&str> = snapshot.unfinished_creates.iter().map(|u| u.person.as_str()).collect();
    unfinished.extend(snapshot.failures.iter().map(|f| f.person.as_str()));
    unfinished.extend(snapshot.links.iter().filter(|l| l.password_pending).map(|l| l.person.as_str()));
    let tombstoned: BTreeSet<&str> = snapshot.tombstones.iter().map(|t| t.person.as_str()).collect();
    // A person who should have an account and has no link in some target (disputed, protected,
    // waiting for a manager...) is evaluated until they have.
    let unlinked = |s: &StoredPerson| {
        needs_account(s.state) && settings.targets.iter().any(|t| !links.contains_key(&(t.name(), s.key.as_str())))
    };
    // A linked account the view no longer holds was deleted outside roster; one whose owned values
    // or enabled state differ from what roster last left was changed outside roster: its person is
    // evaluated, so `on_deleted`, the drift policy and the disabled-outside-roster report apply.
    let present: BTreeMap<&str, HashMap<&str, &TargetEntry>> = input
        .views
        .iter()
        .map(|(name, view)| (name.as_str(), view.entries.iter().map(|e| (e.object_id.as_str(), e)).collect()))
        .collect();
    // A partial view holds only the accounts of the persons evaluated anyway: changes outside
    // roster to the others' accounts are found by the next full read.
    let partial: BTreeSet<&str> =
        input.views.iter().filter(|(_, v)| v.partial.is_some()).map(|(name, _)| name.as_str()).collect();
    let changed_outside = |s: &StoredPerson| {
        settings.targets.iter().filter(|t| !partial.contains(t.name())).any(|t| {
            let Some(l) = links.get(&(t.name(), s.key.as_str())) else { return false };
            let Some(e) = present.get(t.name()).and_then(|ids| ids.get(l.object_id.as_str())) else { return true };
            debug_assert!(!l.values_omitted, "link {}/{} read without its values", l.target, l.person);
            entry_enabled(t, e, Some(l)) != l.enabled
                || l.values.iter().any(|(attr, written)| {
                    let now = e.attrs.get(attr).map_or(&[][..], Vec::as_slice);
                    now != written.as_slice() && !same_values(attr, now, written, false)
                })
        })
    };

    // A person's records in this run: this run's, else the stored ones (`omitted` when the
    // snapshot was read without them), with their record keys and the complete sources that no
    // longer list them.
    let records_of = |key: &str, stored: Option<&'a StoredPerson>| {
        let fresh = correlated.persons.get(key);
        let mut records = RecordsByName::default();
        let mut record_keys = BTreeMap::new();
        let mut missing_sources = Vec::new();
        let mut omitted = false;
        for source in &settings.sources {
            let name = source.name.as_str();
            let record_key = if let Some((record_key, attrs)) = fresh.and_then(|m| m.get(name)) {
                records.insert(name, attrs);
                *record_key
            } else if let Some((s, previous)) = stored.and_then(|s| Some((s, s.records.get(name)?))) {
                omitted |= s.records_omitted;
                records.insert(name, previous);
                let record_key = correlate::record_key_of(s, name);
                let held = quarantined.get(name).is_some_and(|q| q.contains(record_key));
                if !held && complete.contains(name) && read_sources.contains(name) {
                    missing_sources.push(name.to_string());
                }
                record_key
            } else {
                continue;
            };
            if record_key != key {
                record_keys.insert(name.to_string(), record_key.to_string());
            }
        }
        (records, record_keys, missing_sources, omitted)
    };

    let mut people: Vec<Evaluated> = Vec::with_capacity(keys.len());
    // The settled persons (their place in `people`) who have a manager, and the manager's key.
    let mut managers: Vec<(usize, Cow<str>)> = Vec::new();
    // Each person's records and their hash, made ahead on every core (a daily run hashes everyone
    // to find the few whose records changed), and whether that settles them; taken below in key
    // order. A settled person is made here too, while their record is at hand: on the thread that
    // takes the results, each look-up in a million records was a miss of the cache.
    // A person to evaluate is evaluated here too, on the workers: on a first load that is
    // everyone, a million evaluations that took the thread below alone while the workers idled.
    let evaluate = |key: &str, stored: Option<&StoredPerson>, found: Found, eval_hash: String, missing_reads: u32| {
        let (records, record_keys, missing_sources, _) = found;
        let records: Records =
            records.0.into_iter().map(|(source, attrs)| (source.to_string(), Arc::clone(attrs))).collect();
        let disputed = correlated.disputed.get(key).map(|why| Hold { reason: why.clone(), until: None });
        let mut p = evaluate_person(
            settings,
            today,
            key,
            stored,
            records,
            record_keys,
            &missing_sources,
            missing_reads,
            &tombstoned,
        );
        p.manager = p.texts.get("manager").map(|m| correlated.person_of(&m).to_string());
        p.hold = p.hold.or(disputed.map(Box::new));
        p.eval_hash = eval_hash;
        Hashed::Evaluated(p, missing_sources)
    };
    let hashed = |json: &mut Vec<u8>, (key, stored): &(&str, Option<&'a StoredPerson>)| {
        let found = records_of(key, *stored);
        let (records, _, missing_sources, omitted) = &found;
        if records.is_empty() || *omitted {
            return Hashed::Unread(found);
        }
        let eval_hash = fresh_hash(records).unwrap_or_else(|| hash_person(&settings.hash, records, json));
        let missing_reads = missing_reads(missing_sources, *stored);
        let Some(s) = stored.filter(|s| {
            !input.evaluate_all
                && s.eval_hash == eval_hash
                && s.next_transition.is_none_or(|due| due > today)
                && missing_reads == 0
                && s.missing_reads == 0
                && s.hold.is_none()
                && !correlated.disputed.contains_key(*key)
                && !unfinished.contains(key)
                && !unlinked(s)
                && !changed_outside(s)
        }) else {
            return evaluate(key, *stored, found, eval_hash, missing_reads);
        };
        // The records hash as stored: they are the stored ones, which a daily run did not read.
        // Their manager's person key, borrowed: only a settled person whose manager is evaluated
        // needs it (below).
        let manager = match records.0.iter().find_map(|(_, r)| r.get("manager")).map(Field::as_text) {
            Some(m) if !m.is_empty() => Some(Cow::Borrowed(correlated.person_of(m))),
            _ => None,
        };
        Hashed::Settled(settled(s, eval_hash), manager)
    };
    parallel::in_order(&keys, Vec::new, hashed, |results| {
        for (&(key, stored), hashed) in results {
            match hashed {
                Hashed::Settled(p, manager) => {
                    if let Some(manager) = manager {
                        managers.push((people.len(), manager));
                    }
                    people.push(p);
                }
                Hashed::Evaluated(p, missing_sources) => {
                    let gone = p.missing_reads >= settings.lifecycle.missing_after_reads.max(1);
                    if !missing_sources.is_empty() && !gone {
                        planner.notice(
                            NoticeKind::Missing,
                            Some(key),
                            None,
                            format!(
                                "missing from complete source {} ({} of {} reads before roster treats the person as gone)",
                                missing_sources.join(", "),
                                p.missing_reads,
                                settings.lifecycle.missing_after_reads
                            ),
                        );
                    }
                    people.push(p);
                }
                Hashed::Unread((records, _, _, omitted)) => {
                    if let Some(s) = stored.filter(|_| omitted && !records.is_empty()) {
                        // The runner reads the records of `records_unread` and prepares again; a
                        // person whose stored record is still not read (gone from the store
                        // meanwhile) is held as stored.
                        records_unread.insert(key.to_string());
                        planner.notice(
                            NoticeKind::EvaluationFailed,
                            Some(key),
                            None,
                            "the store's records of this person were not read: held as stored".to_string(),
                        );
                        people.push(settled(s, s.eval_hash.clone()));
                    }
                }
            }
        }
    });
    // A person's manager reference is the manager's DN: when a manager is evaluated (and may
    // move), so are their reports.
    if !managers.is_empty() {
        let evaluated: BTreeSet<String> = people.iter().filter(|p| p.evaluate).map(|p| p.key.clone()).collect();
        for (at, manager) in managers {
            let p = &mut people[at];
            if evaluated.contains(manager.as_ref())
                && let Some(stored) = snapshot.persons.get(&p.key)
            {
                let hash = std::mem::take(&mut p.eval_hash);
                let manager = Some(manager.into_owned());
                // Settled, so their records in this run hash as the stored ones: they are the same.
                let (records, record_keys, _, _) = records_of(&p.key, Some(stored));
                let records =
                    records.0.into_iter().map(|(source, attrs)| (source.to_string(), Arc::clone(attrs))).collect();
                *p = evaluate_person(
                    settings,
                    today,
                    &stored.key,
                    Some(stored),
                    records,
                    record_keys,
                    &[],
                    0,
                    &tombstoned,
                );
                p.manager = manager;
                p.eval_hash = hash;
            }
        }
    }
    people
}

/// How many reads in a row a person has been missing from a complete source: one more than
/// stored when `missing_sources` names one, else none.
fn missing_reads(missing_sources: &[String], stored: Option<&StoredPerson>) -> u32 {
    if missing_sources.is_empty() { 0 } else { stored.map_or(0, |s| s.missing_reads) + 1 }
}

/// A person's records and their hash as step 1 finds them ahead of the thread that takes them.
// The large variant is the common one (a daily run settles nearly everyone): boxed, each settled
// person would cost an allocation more.
#[allow(clippy::large_enum_variant)]
enum Hashed<'r> {
    /// Settled (see [`settled`]), with their manager's person key when they have one.
    Settled(Evaluated, Option<Cow<'r, str>>),
    /// Evaluated, with the complete sources that no longer list them.
    Evaluated(Evaluated, Vec<String>),
    /// With no records, or with stored records that were not read: what `records_of` found.
    Unread(Found<'r>),
}

/// What `records_of` in [`evaluate_people`] finds of a person: their records, record keys, the
/// complete sources that no longer list them, and whether a stored record was not read.
type Found<'r> = (RecordsByName<'r>, BTreeMap<String, String>, Vec<String>, bool);

/// A settled person: not evaluated in this run, held as the store has them.
fn settled(s: &StoredPerson, eval_hash: String) -> Evaluated {
    Evaluated {
        key: s.key.clone(),
        records: Records::new(),
        record_keys: boxed_unless_empty(s.record_keys.clone()),
        texts: correlate::Texts::Merged(BTreeMap::new()),
        provenance: boxed_unless_empty(s.provenance.clone()),
        affiliations: Vec::new(),
        ends: None,
        manager: None,
        decision: StateDecision {
            state: s.state,
            because: String::new(),
            next_transition: s.next_transition,
            left_on: s.left_on,
        },
        prev_state: Some(s.state),
        missing_reads: 0,
        login: s.login.clone(),
        category: Category::Mover,
        tombstone: false,
        hold: None,
        failed: false,
        evaluate: false,
        eval_hash,
    }
}

/// `map`, boxed, or `None` when it is empty (see [`Evaluated::record_keys`]).
fn boxed_unless_empty(map: BTreeMap<String, String>) -> RareMap {
    (!map.is_empty()).then(|| Box::new(map))
}

/// One person's lifecycle state, attribute texts and category, from their records.
#[allow(clippy::too_many_arguments)]
fn evaluate_person(
    settings: &Settings,
    today: NaiveDate,
    key: &str,
    stored: Option<&StoredPerson>,
    records: Records,
    record_keys: BTreeMap<String, String>,
    missing_sources: &[String],
    missing_reads: u32,
    tombstoned: &BTreeSet<&str>,
) -> Evaluated {
    let gone = missing_reads >= settings.lifecycle.missing_after_reads.max(1);
    let affiliations: Vec<Affiliation> = records
        .iter()
        .map(|(source, attrs)| {
            let mut a = Affiliation::from_record(source, attrs);
            if gone && missing_sources.contains(source) {
                a.missing_since = Some(stored.and_then(|s| s.left_on).unwrap_or(today));
            }
            a
        })
        .collect();
    let left_on = stored.and_then(|s| s.left_on);
    let decision = person_state(&affiliations, today, &settings.lifecycle, left_on);
    let current = current_kinds(&affiliations, today, &settings.lifecycle, left_on);
    let ends = employment_ends(&affiliations, today, &settings.lifecycle, left_on);
    let (texts, provenance) = correlate::texts(settings, &records);
    let prev_state = stored.map(|s| s.state);
    let had_account = prev_state.is_some_and(LifecycleState::has_account);
    let state = decision.state;
    let category = match (prev_state, state) {
        (_, LifecycleState::Leaver | LifecycleState::Purged | LifecycleState::Rescinded) => Category::Leaver,
        (Some(LifecycleState::Leaver), _) => Category::Rehire,
        (Some(LifecycleState::Prehire), _) => Category::Joiner,
        _ if !had_account => {
            if tombstoned.contains(key) {
                Category::Rehire
            } else {
                Category::Joiner
            }
        }
        _ => Category::Mover,
    };
    let hold = stored.and_then(|s| s.hold.clone()).filter(|h| h.until.is_none_or(|u| today <= u)).map(Box::new);
    Evaluated {
        key: key.to_string(),
        records,
        record_keys: boxed_unless_empty(record_keys),
        texts,
        provenance: boxed_unless_empty(provenance),
        affiliations: current,
        ends,
        manager: None,
        tombstone: matches!(state, LifecycleState::Purged | LifecycleState::Rescinded),
        decision,
        prev_state,
        missing_reads,
        login: stored.and_then(|s| s.login.clone()),
        category,
        hold,
        failed: false,
        evaluate: true,
        eval_hash: String::new(),
    }
}

/// The variables a person's expressions see, as text and escaped for DNs (`roster explain`).
/// `manager_dn` is empty: it names the manager's account as a run resolves it.
pub(crate) fn person_trace_env(
    settings: &Settings,
    key: &str,
    stored: Option<&StoredPerson>,
    records: &Records,
    login: &str,
    today: NaiveDate,
) -> (Env, Env) {
    let p = evaluate_person(settings, today, key, stored, records.clone(), BTreeMap::new(), &[], 0, &BTreeSet::new());
    (person_env(settings, &p, login, today), dn_env(settings, &p, login, today))
}

/// Whether an update changes what the store holds. The records are compared through the hash
/// that covers them (with the configuration): a daily run reads few persons' stored records.
fn differs(s: &StoredPerson, u: &PersonUpdate) -> bool {
    u.tombstone
        || s.login != u.login
        || s.state != u.state
        || s.eval_hash != u.eval_hash
        || s.missing_reads != u.missing_reads
        || s.left_on != u.left_on
        || s.next_transition != u.next_transition
        || s.hold != u.hold
        || s.record_keys != u.record_keys
        || s.provenance != u.provenance
}

/// States in which roster creates an account that does not exist yet.
fn needs_account(state: LifecycleState) -> bool {
    matches!(state, LifecycleState::Prehire | LifecycleState::Active | LifecycleState::Leave)
}

/// A person whose hire date moved beyond the pre-hire window keeps the account made for them, as a
/// pre-hire account.
fn effective_state(state: LifecycleState, has_entry: bool) -> LifecycleState {
    if state == LifecycleState::Pending && has_entry { LifecycleState::Prehire } else { state }
}

/// The variables the planner fills in one environment for each person: those the expressions
/// evaluated in it read (filling two dozen for a million persons, when a dozen are read, was a
/// sixth of a plan; each environment filled with every variable any expression reads, when its
/// own read two or three, an eleventh), with `today` formatted once.
struct Variables {
    /// The person attributes read.
    attributes: Vec<String>,
    key: bool,
    login: bool,
    state: bool,
    affiliation: bool,
    affiliations: bool,
    manager_dn: bool,
    /// `today`'s value, when read.
    today: Option<String>,
    account_expires: bool,
}

impl Variables {
    /// The variables `expressions` read.
    fn read<'e>(settings: &Settings, today: NaiveDate, expressions: impl IntoIterator<Item = &'e Expr>) -> Variables {
        let names: BTreeSet<String> = expressions.into_iter().flat_map(|e| e.variables().iter().cloned()).collect();
        Variables::of(settings, today, |name| names.contains(name))
    }

    /// Every variable (`roster explain` shows them all).
    fn all(settings: &Settings, today: NaiveDate) -> Variables {
        Variables::of(settings, today, |_| true)
    }

    fn of(settings: &Settings, today: NaiveDate, read: impl Fn(&str) -> bool) -> Variables {
        Variables {
            attributes: settings.attributes.iter().filter(|a| read(a) && *a != "affiliation").cloned().collect(),
            key: read("key"),
            login: read("login"),
            state: read("state"),
            affiliation: read("affiliation"),
            affiliations: read("affiliations"),
            manager_dn: read("manager_dn"),
            today: read("today").then(|| today.format("%Y-%m-%d").to_string()),
            account_expires: read("account_expires"),
        }
    }
}

fn person_env(settings: &Settings, p: &Evaluated, login: &str, today: NaiveDate) -> Env {
    let mut filled = Filled::default();
    fill_env(&mut filled, &Variables::all(settings, today), settings, p, login, as_text);
    filled.env
}

/// The variables of a DN expression: every value already escaped for a DN, so that a department
/// called `R&D, Labs` lands as one RDN value and can never add an RDN of its own.
fn dn_env(settings: &Settings, p: &Evaluated, login: &str, today: NaiveDate) -> Env {
    let mut filled = Filled::default();
    fill_env(&mut filled, &Variables::all(settings, today), settings, p, login, crate::dn::escape_dn_value_into);
    filled.env
}

/// A variable's value as it is: [`person_env`]'s, where [`dn_env`] escapes it.
fn as_text(value: &str, out: &mut String) {
    out.push_str(value);
}

/// An expression environment filled person after person ([`fill_env`]), and where each variable's
/// attribute was in the last person's record (where the next person's is: a million persons'
/// dozen variables, looked up four times each, were a fifteenth of a plan's CPU).
#[derive(Default)]
struct Filled {
    env: Env,
    at: Vec<usize>,
}

/// Sets the `variables` of `p`'s expressions in `filled`, each value written by `text`. The
/// planner fills one `Env` person after person: the same variables every time, each replaced in
/// place.
fn fill_env(
    filled: &mut Filled,
    variables: &Variables,
    settings: &Settings,
    p: &Evaluated,
    login: &str,
    text: fn(&str, &mut String),
) {
    let Filled { env, at } = filled;
    at.resize(variables.attributes.len(), 0);
    for (name, at) in variables.attributes.iter().zip(at.iter_mut()) {
        env.set_text(name, |out| text(p.texts.get_hinted(name, at).as_deref().unwrap_or_default(), out));
    }
    if variables.key {
        env.set_text("key", |out| text(&p.key, out));
    }
    if variables.login {
        env.set_text("login", |out| text(login, out));
    }
    if variables.state {
        env.set_text("state", |out| out.push_str(p.decision.state.as_str()));
    }
    if variables.affiliation {
        env.set_text("affiliation", |out| text(p.texts.get("affiliation").as_deref().unwrap_or_default(), out));
    }
    if variables.affiliations {
        let affiliations = p.affiliations.iter().map(|a| {
            let mut out = String::new();
            text(a, &mut out);
            ExprValue::Text(out)
        });
        env.set("affiliations", ExprValue::List(affiliations.collect()));
    }
    if variables.manager_dn {
        env.set_text("manager_dn", |_| ());
    }
    if let Some(today) = &variables.today {
        env.set_text("today", |out| out.push_str(today));
    }
    if variables.account_expires {
        env.set_text("account_expires", |out| out.push_str(&account_expires(settings, p)));
    }
}

/// The person's last working moment as a Windows FILETIME (100 ns since 1601-01-01 UTC): the end of
/// the last day worked in the configured time zone, or "never".
fn account_expires(settings: &Settings, p: &Evaluated) -> String {
    let Some(last) = p.ends else {
        return NEVER_EXPIRES.to_string();
    };
    let first_day_gone = match settings.lifecycle.last_day {
        LastDayMeaning::LastDayWorked => last.succ_opt().unwrap_or(last),
        LastDayMeaning::FirstDayGone => last,
    };
    let Some(local) = first_day_gone.and_hms_opt(0, 0, 0) else { return NEVER_EXPIRES.to_string() };
    use chrono::TimeZone;
    let Some(instant) = settings.zone.from_local_datetime(&local).earliest() else { return NEVER_EXPIRES.to_string() };
    let seconds = instant.timestamp() + 11_644_473_600;
    (i128::from(seconds) * 10_000_000).to_string()
}

/// What one person's expressions give in one target ([`evaluate_expressions`]).
struct Evaluations<'p> {
    /// Where the person is to be ([`Place`]): found by the worker, so that the loop does not look
    /// a million persons up in the map of places again.
    place: &'p Place<'p>,
    /// The person's DN in the target, parsed; `None` for a plain DN ([`PersonDn`]).
    dn: Option<Dn>,
    /// The manager's account DN, as `manager_dn` gives it.
    manager_dn: Option<String>,
    /// The values the mappings want, and the disabled overrides when the account is not to be
    /// enabled ([`wanted_values`]).
    wanted: Vec<Wanted>,
    /// What did not evaluate, as the notice says it: the person is held as they are.
    failures: Vec<String>,
    /// A new account's attributes, when the person has no account, is to have one, and nothing of
    /// them waits for the loop ([`create_attributes`]): the drafts of a million creates, their
    /// values and their frees, were a third of the loop's thread, while the workers waited for it.
    create: Option<Result<Attributes, TooLarge>>,
    /// Each group rule's, when the person gets groups: `None` when its `when` does not hold, else
    /// its group DNs, each parsed once per thread ([`GroupDn`]).
    groups: Vec<Result<Option<GroupDns>, ExprError>>,
    /// The account as a group member: its DN normalized, and as text.
    member: (Arc<str>, Arc<str>),
}

type GroupDns = Result<Vec<Result<Arc<GroupDn>, DnError>>, ExprError>;

/// A person's DN in the persons' loop: the parts the loop needs of a plain DN
/// ([`crate::dn::is_plain`], most of them), its RDN and its parent, are taken from its text and
/// normalized form; it is parsed only for what needs more (a move, an AD reference). A million
/// DNs of five RDNs parsed on the workers, each sixteen strings and vectors freed on the loop's
/// thread, were a twentieth of a plan.
struct PersonDn<'a> {
    parsed: Option<Dn>,
    text: &'a str,
    normalized: &'a str,
}

impl PersonDn<'_> {
    /// The DN parsed: a plain DN, which always parses, only when asked.
    fn parsed(&self) -> Cow<'_, Dn> {
        match &self.parsed {
            Some(dn) => Cow::Borrowed(dn),
            None => Cow::Owned(Dn::parse(self.text).unwrap_or_default()),
        }
    }

    /// The parent's normalized form, as [`Dn::parent_normalized`] gives it.
    fn parent_normalized(&self) -> Option<Cow<'_, str>> {
        match &self.parsed {
            Some(dn) => dn.parent_normalized().map(Cow::Owned),
            None => Some(Cow::Borrowed(crate::dn::plain_parent(self.normalized))),
        }
    }

    /// The RDN's attributes and values.
    fn rdn(&self) -> impl Iterator<Item = (&str, &str)> {
        let parsed = self.parsed.as_ref().and_then(Dn::rdn).into_iter().flat_map(|r| &r.0);
        let plain = self.parsed.is_none().then(|| crate::dn::plain_rdn(self.text)).flatten();
        parsed.map(|a| (a.attr.as_str(), a.value.as_str())).chain(plain)
    }
}

impl std::fmt::Display for PersonDn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.parsed {
            Some(dn) => dn.fmt(f),
            None => f.write_str(self.text),
        }
    }
}

/// A group's DN as the group plan takes it, parsed once per thread and then only what the plan
/// needs of it kept: a hundred thousand team groups' parsed DNs, on each core, were 146 MB of a
/// million-record plan's peak.
struct GroupDn {
    /// As the parsed DN prints.
    text: String,
    normalized: String,
    /// Some RDN has an empty value (`ou=,ou=people,...`): no group is made of it.
    empty_name: bool,
    /// Within the target's managed subtrees.
    in_scope: bool,
}

/// What one thread evaluating expressions keeps from person to person: its environments (as text,
/// and escaped for DNs), filled in place, and the group DNs it parsed, by their text (a million
/// persons' five groups each are the same few thousand groups).
#[derive(Default)]
struct Scratch {
    /// The variables as they are, and escaped for DNs.
    texts: Filled,
    escaped: Filled,
    group_dns: FastMap<String, Result<Arc<GroupDn>, DnError>>,
    creates: CreateScratch,
}

/// A mapping's (or a disabled override's) wanted values: (attribute, values, written only on
/// create, references another account).
type Wanted = (AttrName, Vec<String>, bool, bool);

/// The values the mappings want in order, with the disabled overrides' in place of theirs when
/// the account is not to be `enabled`, and what did not evaluate, each as its notice says it.
fn wanted_values(
    rules: &TargetRules,
    mappings: Vec<Result<Vec<String>, ExprError>>,
    disable_set: Vec<Result<Vec<String>, ExprError>>,
    enabled: bool,
) -> (Vec<Wanted>, Vec<String>) {
    let mut wanted: Vec<Wanted> = Vec::with_capacity(mappings.len());
    let mut failures = Vec::new();
    for (m, value) in rules.mappings.iter().zip(mappings) {
        match value {
            // Entra's IgnoreFlowIfNullOrEmpty: the attribute is left as it is.
            Ok(values) if values.is_empty() && m.expr.ignores_flow_if_empty() => {}
            Ok(values) => wanted.push((
                m.attr.clone(),
                values,
                m.when == crate::config::MappingWhen::Create,
                m.references_manager,
            )),
            Err(e) => failures.push(format!("attribute {}: {e}", m.attr)),
        }
    }
    if !enabled {
        for ((attr, _), value) in rules.disable_set.iter().zip(disable_set) {
            match value {
                Ok(values) => {
                    wanted.retain(|(a, ..)| a != attr);
                    wanted.push((attr.clone(), values, false, false));
                }
                Err(e) => failures.push(format!("disable.set.{attr}: {e}")),
            }
        }
    }
    (wanted, failures)
}

/// The names every create of a target carries, made once per target and shared by each create.
struct CreateNames {
    object_class: AttrName,
    correlate: AttrName,
    login_attribute: AttrName,
    lock_attribute: AttrName,
}

impl CreateNames {
    fn of(rules: &TargetRules) -> CreateNames {
        CreateNames {
            object_class: AttrName::new("objectClass"),
            correlate: AttrName::new(rules.config.correlate.clone()),
            login_attribute: AttrName::new(rules.config.login_attribute.clone()),
            lock_attribute: AttrName::new(LOCK_ATTRIBUTE),
        }
    }
}

/// What the creates built on one thread share.
#[derive(Default)]
struct CreateScratch {
    /// The name of the last RDN's attribute, as written: every account's is most often the same.
    rdn_name: Option<AttrName>,
    /// The creates' name lists, shared by the creates with the same names.
    names: NameTable,
}

/// Whose create [`create_attributes`] builds, and where.
struct CreateOf<'a> {
    rules: &'a TargetRules,
    names: &'a CreateNames,
    p: &'a Evaluated,
    login: &'a str,
    dn: &'a PersonDn<'a>,
    /// Whether the account is created enabled.
    enabled: bool,
}

/// A new account's attributes: the `wanted` values (moved out of it; a reference to another
/// account only `with_references`), the correlation attribute, the login, the RDN's values, and
/// the lock or AD's disabled flag when the account is created disabled.
fn create_attributes(
    scratch: &mut CreateScratch,
    of: CreateOf,
    wanted: &mut [Wanted],
    with_references: bool,
) -> Result<Attributes, TooLarge> {
    let CreateOf { rules, names, p, login, dn, enabled } = of;
    // The mappings', the object classes, the correlation, the login, the RDN, the lock or flag.
    let mut attributes = AttrsDraft::with_capacity(wanted.len() + 5);
    attributes.insert(names.object_class.clone(), rules.config.object_classes.clone());
    for (attr, values, _, references) in wanted {
        if (!*references || with_references) && !values.is_empty() {
            attributes.insert(attr.clone(), std::mem::take(values));
        }
    }
    attributes.or_insert_with(&names.correlate, || vec![p.key.clone()]);
    attributes.or_insert_with(&names.login_attribute, || vec![login.to_string()]);
    for (attr, value) in dn.rdn() {
        let name = match &scratch.rdn_name {
            Some(name) if name.as_str() == attr => name.clone(),
            _ => scratch.rdn_name.insert(AttrName::new(attr)).clone(),
        };
        let values = attributes.or_insert_with(&name, Vec::new);
        if !values.iter().any(|v| v.eq_ignore_ascii_case(value)) {
            values.insert(0, value.to_string());
        }
    }
    if !enabled && rules.config.disable.lock {
        attributes.insert(names.lock_attribute.clone(), vec![LOCK_VALUE.to_string()]);
    }
    if is_ad(rules) {
        let uac = UAC_NORMAL_ENABLED | UAC_ACCOUNTDISABLE;
        attributes.insert(AttrName::new(UAC_ATTRIBUTE), vec![uac.to_string()]);
    }
    attributes.shared(&mut scratch.names)
}

impl Scratch {
    fn group_dn(&mut self, rules: &TargetRules, text: String) -> Result<Arc<GroupDn>, DnError> {
        if let Some(known) = self.group_dns.get(&text) {
            return known.clone();
        }
        let parsed = Dn::parse(&text).map(|dn| {
            Arc::new(GroupDn {
                text: dn.to_string(),
                normalized: dn.normalized(),
                empty_name: has_empty_name(&dn),
                in_scope: rules.in_scope(&dn),
            })
        });
        self.group_dns.insert(text, parsed.clone());
        parsed
    }
}

/// The variables of [`evaluate_expressions`]' two environments in one target.
struct ExpressionVariables {
    /// The mappings', the disabled overrides' and the group rules' conditions.
    texts: Variables,
    /// The group rules' DNs.
    escaped: Variables,
    /// The names of a create's attributes that no mapping gives.
    creates: CreateNames,
}

impl ExpressionVariables {
    fn of(settings: &Settings, rules: &TargetRules, today: NaiveDate) -> ExpressionVariables {
        let texts = rules
            .mappings
            .iter()
            .map(|m| &m.expr)
            .chain(rules.disable_set.iter().map(|(_, e)| e))
            .chain(rules.groups.iter().map(|g| &g.when));
        ExpressionVariables {
            texts: Variables::read(settings, today, texts),
            escaped: Variables::read(settings, today, rules.groups.iter().map(|g| &g.dn)),
            creates: CreateNames::of(rules),
        }
    }
}

/// Evaluates the mappings, disabled overrides and group rules of a person to be planned in
/// `rules`' target (`None` for anyone else), in `envs` (as text, and escaped for DNs), filled in
/// place. Pure, so the planner runs it for many persons at once on every core
/// ([`parallel::in_order`]) and takes the results in key order.
fn evaluate_expressions<'p>(
    scratch: &mut Scratch,
    variables: &ExpressionVariables,
    settings: &Settings,
    rules: &TargetRules,
    p: &Evaluated,
    current: &FastMap<&str, (&TargetEntry, bool)>,
    desired_dn: &'p FastMap<&str, Place<'p>>,
) -> Option<Evaluations<'p>> {
    if !p.evaluate || p.hold.is_some() || p.failed {
        return None;
    }
    let state = p.decision.state;
    let entry = current.get(p.key.as_str());
    if entry.is_some() && matches!(state, LifecycleState::Purged | LifecycleState::Rescinded) {
        return None;
    }
    let place = desired_dn.get(p.key.as_str())?;
    let dn = if crate::dn::is_plain(place.text()) { None } else { Some(Dn::parse(place.text()).ok()?) };
    let login = p.login.as_deref().unwrap_or_default();
    let manager_dn = manager_dn_of(p, desired_dn);
    fill_env(&mut scratch.texts, &variables.texts, settings, p, login, as_text);
    fill_env(&mut scratch.escaped, &variables.escaped, settings, p, login, crate::dn::escape_dn_value_into);
    let env = &mut scratch.texts.env;
    let effective = effective_state(state, entry.is_some());
    // Only the mappings that reference the manager read `manager_dn` (`references_manager` is
    // whether the expression names it): set for them, empty again for the rest below.
    env.set_text("manager_dn", |out| out.push_str(manager_dn.as_deref().unwrap_or_default()));
    let mappings = rules.mappings.iter().map(|m| m.expr.eval(env).and_then(ExprValue::into_texts)).collect();
    env.set_text("manager_dn", |_| ());
    let enabled = is_enabled_state(effective, settings);
    let disable_set = if enabled {
        Vec::new()
    } else {
        rules.disable_set.iter().map(|(_, expr)| expr.eval(env).and_then(ExprValue::into_texts)).collect()
    };
    let (mut wanted, failures) = wanted_values(rules, mappings, disable_set, enabled);
    let groups = if gets_groups(effective, settings, rules) {
        rules
            .groups
            .iter()
            .map(|rule| {
                let holds = rule.when.eval(&scratch.texts.env).and_then(ExprValue::into_bool)?;
                Ok(holds.then(|| {
                    let dns = rule.dn.eval(&scratch.escaped.env).and_then(ExprValue::into_texts)?;
                    Ok(dns.into_iter().map(|g| scratch.group_dn(rules, g)).collect())
                }))
            })
            .collect()
    } else {
        Vec::new()
    };
    let member = match place {
        Place::Planned(planned) => (Arc::clone(&planned.normalized), Arc::clone(&planned.text)),
        Place::Kept { text, normalized } => (Arc::clone(normalized), Arc::from(*text)),
    };
    // A new account's create, when no reference in it waits for the other accounts (AD's, SCIM's
    // and Graph's wait for the loop to learn which exist or come first).
    let dn = PersonDn { parsed: dn, text: place.text(), normalized: place.normalized() };
    let create =
        (entry.is_none() && needs_account(state) && failures.is_empty() && !defers_references(rules)).then(|| {
            let of =
                CreateOf { rules, names: &variables.creates, p, login, dn: &dn, enabled: enabled && !is_ad(rules) };
            create_attributes(&mut scratch.creates, of, &mut wanted, true)
        });
    if create.is_some() {
        // Moved into the create: freed here, on the thread that made it.
        wanted = Vec::new();
    }
    let dn = dn.parsed;
    Some(Evaluations { place, dn, manager_dn, wanted, failures, create, groups, member })
}

/// A person's DN in a target: their DN expression's value, as [`planned_dn`] takes it.
fn evaluate_planned_dn(rules: &TargetRules, env: &Env) -> Result<PlannedDn, String> {
    let text = rules.dn.eval(env).and_then(ExprValue::into_text).map_err(|e| format!("dn: {e}"))?;
    planned_dn(rules, text)
}

/// `text` as [`checked_dn`] checks it. A plain DN (`uid=jo.clark,ou=Sales,...`: letters, digits,
/// `.`, `_`, `-` and inner spaces) prints as it is written and normalizes as its text
/// lower-cased, and no RDN of it is empty: it is taken without being parsed (sixteen strings and
/// vectors for a DN of five RDNs, made and dropped for a million persons).
fn planned_dn(rules: &TargetRules, text: String) -> Result<PlannedDn, String> {
    if let Some(normalized) = crate::dn::normalize_plain(&text) {
        if !rules.plain_in_scope(&normalized) {
            return Err(format!("dn {text} is outside the managed subtrees: not created or moved there"));
        }
        return Ok(PlannedDn { text: text.into(), normalized: normalized.into() });
    }
    checked_dn(rules, &text).map(|dn| PlannedDn::new(&dn))
}

/// `text` parsed, when it is a DN the target may hold an account at.
fn checked_dn(rules: &TargetRules, text: &str) -> Result<Dn, String> {
    let dn = Dn::parse(text).map_err(|e| format!("dn: {e}"))?;
    if !rules.in_scope(&dn) {
        return Err(format!("dn {dn} is outside the managed subtrees: not created or moved there"));
    }
    if has_empty_name(&dn) {
        return Err(format!("dn {dn} has an empty name (an attribute it is built from is empty)"));
    }
    Ok(dn)
}

/// `ou=,ou=people,...`: some RDN of the DN has an empty value.
fn has_empty_name(dn: &Dn) -> bool {
    dn.rdns().iter().any(|r| r.0.iter().any(|a| a.value.trim().is_empty()))
}

fn manager_dn_of(p: &Evaluated, desired: &FastMap<&str, Place>) -> Option<String> {
    let mgr = p.manager.as_ref()?;
    if mgr == &p.key {
        return None;
    }
    desired.get(mgr.as_str()).map(|d| d.text().to_owned())
}

/// A person's DN in a target after the plan: the one the plan chose ([`PlannedDn`]), or, for a person
/// not evaluated in this run, the DN their account has, kept as text with its normalized form (a
/// daily run of 100,000 persons parsed every settled DN, for the few that a reference or a group
/// names), shared with the DNs taken ([`Claim`]).
enum Place<'a> {
    Planned(PlannedDn),
    Kept { text: &'a str, normalized: Arc<str> },
}

/// A DN the plan chose, as text and normalized, made once (on the thread that evaluated it) and
/// shared by the DNs taken, the groups' members and the operations. Not kept parsed: a million
/// parsed DNs made on the workers and held to the end fragmented their heaps (850 MB more at the
/// peak).
struct PlannedDn {
    text: Arc<str>,
    normalized: Arc<str>,
}

impl PlannedDn {
    fn new(dn: &Dn) -> PlannedDn {
        PlannedDn { text: dn.to_string().into(), normalized: dn.normalized().into() }
    }
}

/// Where a person is in a target, as [`plan_with`] works it out ahead on every core.
enum Whereabouts<'a> {
    /// A settled person: their account in the view, and the place they keep.
    Settled { entry: Option<&'a TargetEntry>, place: Option<Place<'a>> },
    /// An evaluated person: their DN expression's value, when they may need a DN.
    Evaluated(Option<Result<PlannedDn, String>>),
}

/// A normalized DN taken: made for it, or shared with a settled person's [`Place`] (a daily run
/// of a million settled persons copied each of their DNs once more for this).
/// Compared and hashed as its text, as [`Borrow`](std::borrow::Borrow) requires.
enum Claim {
    Own(String),
    Shared(Arc<str>),
}

impl Claim {
    fn as_str(&self) -> &str {
        match self {
            Claim::Own(dn) => dn,
            Claim::Shared(dn) => dn,
        }
    }
}

impl std::borrow::Borrow<str> for Claim {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Claim {
    fn eq(&self, other: &Claim) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Claim {}

impl std::hash::Hash for Claim {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl<'a> Place<'a> {
    /// The DN an account has now; None when it is not a DN (then nothing refers to it).
    fn kept(text: &'a str) -> Option<Place<'a>> {
        match crate::dn::normalize_plain(text) {
            Some(normalized) => Some(Place::Kept { text, normalized: normalized.into() }),
            None => Dn::parse(text).ok().map(|dn| Place::Planned(PlannedDn::new(&dn))),
        }
    }

    /// The normalized DN, as a [`Claim`].
    fn claim(&self) -> Claim {
        match self {
            Place::Planned(PlannedDn { normalized, .. }) | Place::Kept { normalized, .. } => {
                Claim::Shared(Arc::clone(normalized))
            }
        }
    }

    fn normalized(&self) -> &Arc<str> {
        match self {
            Place::Planned(PlannedDn { normalized, .. }) | Place::Kept { normalized, .. } => normalized,
        }
    }

    /// The DN's text to hold in an operation: a planned DN's shared, not copied.
    fn shared_text(&self) -> Arc<str> {
        match self {
            Place::Planned(planned) => Arc::clone(&planned.text),
            Place::Kept { text, .. } => Arc::from(*text),
        }
    }

    /// The DN as written to the directory (a plain DN's text is its parsed form's).
    fn text(&self) -> &str {
        match self {
            Place::Planned(planned) => &planned.text,
            Place::Kept { text, .. } => text,
        }
    }
}

/// The person's own account and their manager's, in the same target.
fn manager_dependency(p: &Evaluated) -> Vec<Arc<str>> {
    let mut deps = vec![Arc::from(p.key.as_str())];
    if let Some(m) = &p.manager {
        deps.push(Arc::from(m.as_str()));
    }
    deps
}

/// Active Directory: the accounts a new account's create may name in a reference (AD refuses a DN
/// that names no entry): those that exist and stay where they are in this run (a reference to an
/// account renamed later would be refused, or follow the wrong entry), and those this run creates.
#[derive(Default)]
struct Referable {
    /// Normalized DNs of accounts that exist and keep their DN.
    staying: HashSet<String>,
    /// Normalized DN -> the person whose account this run creates there.
    created: HashMap<String, String>,
}

impl Referable {
    fn of(current: &FastMap<&str, (&TargetEntry, bool)>, desired_dn: &FastMap<&str, Place>) -> Referable {
        let mut referable = Referable::default();
        for (key, dn) in desired_dn {
            let dn = dn.normalized().to_string();
            match current.get(key) {
                Some((e, _)) if normalize_dn(&e.dn) == dn => {
                    referable.staying.insert(dn);
                }
                Some(_) => {}
                None => {
                    referable.created.insert(dn, (*key).to_string());
                }
            }
        }
        referable
    }

    /// The persons whose accounts' creates a create at `own` carrying `refs` waits for, or `None`
    /// when a value names neither an account that stays nor one created in this run (or the
    /// account itself): then the references wait for a later update.
    fn accounts(&self, refs: &[AttrChange], own: &Dn) -> Option<Vec<Arc<str>>> {
        let own = own.normalized();
        let mut needs = Vec::new();
        for value in refs.iter().flat_map(|c| &c.new) {
            let dn = normalize_dn(value);
            if dn == own {
                return None;
            }
            if !self.staying.contains(&dn) {
                needs.push(Arc::from(self.created.get(&dn)?.as_str()));
            }
        }
        Some(needs)
    }
}

/// Orders the creates that carry references (see [`Referable`]) after the creates they name:
/// each one's `rank` (and that of its person's other account-phase operations, such as the
/// password) is its depth among the run's creates, so a manager's create comes before her reports'
/// and their `depends_on` points back to it. A create whose referenced account has no create after
/// all, or the first in plan order of a reporting cycle, gives its references back to a later
/// update, as when they could not be carried. Deterministic: the depths do not depend on the order
/// the creates are looked at, and a cycle is broken at the node found from its lowest draft.
fn fold_references(drafts: &mut Vec<Draft>) {
    if drafts.iter().all(|d| d.carries.is_none()) {
        return;
    }
    let creates: HashMap<(&str, &str), usize> = drafts
        .iter()
        .enumerate()
        .filter(|(_, d)| matches!(d.action, Action::Create { .. }))
        .filter_map(|(i, d)| Some(((&*d.target, d.person.as_deref()?), i)))
        .collect();
    // Each carrying create -> the carrying creates it waits for (a create that carries nothing
    // is made first anyway: depth 0).
    let mut waits_for: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut give_back: Vec<usize> = Vec::new();
    for (i, d) in drafts.iter().enumerate().filter(|(_, d)| d.carries.is_some()) {
        let target = &*d.target;
        match d.needs_accounts.iter().map(|k| creates.get(&(target, &**k)).copied()).collect::<Option<Vec<usize>>>() {
            Some(needed) => {
                waits_for.insert(i, needed);
            }
            None => give_back.push(i),
        }
    }
    // How many carrying creates each one still waits for, and which wait for it.
    let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut pending: HashMap<usize, usize> = HashMap::new();
    for (&i, needed) in &waits_for {
        let carrying: Vec<usize> = needed.iter().copied().filter(|n| waits_for.contains_key(n)).collect();
        pending.insert(i, carrying.len());
        for n in carrying {
            dependents.entry(n).or_default().push(i);
        }
    }
    let mut depth: HashMap<usize, usize> = HashMap::new();
    let mut unplaced: BTreeSet<usize> = waits_for.keys().copied().collect();
    let mut ready: Vec<usize> = unplaced.iter().copied().filter(|i| pending[i] == 0).collect();
    while !unplaced.is_empty() {
        let Some(i) = ready.pop() else {
            // A cycle: walk from the lowest unplaced create along what it waits for until a create
            // repeats; that one is on the cycle and gives its references back.
            let Some(&start) = unplaced.first() else { break };
            let mut seen = BTreeSet::new();
            let mut at = start;
            while seen.insert(at) {
                at = waits_for[&at].iter().copied().find(|n| unplaced.contains(n)).unwrap_or(at);
            }
            give_back.push(at);
            unplaced.remove(&at);
            depth.insert(at, 0);
            for d in dependents.get(&at).cloned().unwrap_or_default() {
                if let Some(p) = pending.get_mut(&d) {
                    *p -= 1;
                    if *p == 0 {
                        ready.push(d);
                    }
                }
            }
            continue;
        };
        unplaced.remove(&i);
        // One deeper than the deepest create it waits for (one that carries nothing is at 0).
        let own = waits_for[&i].iter().map(|n| depth.get(n).copied().unwrap_or(0) + 1).max().unwrap_or(0);
        depth.insert(i, own);
        for d in dependents.get(&i).cloned().unwrap_or_default() {
            if let Some(p) = pending.get_mut(&d) {
                *p -= 1;
                if *p == 0 && unplaced.contains(&d) {
                    ready.push(d);
                }
            }
        }
    }
    give_back.sort_unstable();
    for &i in &give_back {
        let Some(carried) = drafts[i].carries.take() else { continue };
        let d = &mut drafts[i];
        if let Action::Create { attributes, .. } = &mut d.action {
            for c in &carried.changes {
                attributes.remove(&c.attr);
            }
        }
        d.needs_accounts.clear();
        let action = Action::Update { dn: d.action.dn().to_string(), object_id: None, changes: carried.changes };
        let update = Draft {
            phase: phase(&action, true),
            person: d.person.clone(),
            target: d.target.clone(),
            category: d.category,
            reason: Arc::from("manager reference, set once every account exists"),
            action,
            needs_accounts: carried.needs,
            needs_containers: Vec::new().into(),
            rank: 0,
            carries: None,
        };
        drafts.push(update);
    }
    let owned_account = |d: &Draft| d.person.clone().map(|p| (d.target.clone(), p));
    let ranks: HashMap<(Arc<str>, String), usize> = depth
        .iter()
        .filter(|(i, _)| drafts[**i].carries.is_some())
        .filter_map(|(i, d)| Some((owned_account(&drafts[*i])?, *d)))
        .collect();
    let accounts_phase = phase(&Action::Adopt { dn: String::new(), object_id: String::new() }, false);
    for d in drafts.iter_mut().filter(|d| d.phase == accounts_phase) {
        if let Some(rank) = owned_account(d).and_then(|a| ranks.get(&a)) {
            d.rank = *rank;
        }
    }
}

/// The containers one target's plan creates, and what the entries under each parent need.
#[derive(Default)]
struct PlannedContainers {
    /// Normalized DNs of the containers whose create is drafted.
    planned: BTreeSet<String>,
    /// Normalized parent DN -> the containers an entry there needs ([`plan_containers`]'s
    /// answer). A million accounts sit under a few hundred parents: each parent's chain is walked
    /// once, not once per account.
    needs_under: FastMap<String, Arc<[String]>>,
}

/// The containers `dn` needs that `existing` lacks, normalized; each one's create is drafted the
/// first time an entry `for_whom` needs it.
fn plan_containers(
    planner: &mut Planner,
    rules: &TargetRules,
    dn: &Dn,
    existing: &BTreeSet<String>,
    containers: &mut PlannedContainers,
    for_whom: &dyn std::fmt::Display,
) -> Arc<[String]> {
    let parent = dn.parent_normalized();
    plan_containers_of(planner, rules, parent.as_deref(), || Cow::Borrowed(dn), existing, containers, for_whom)
}

/// [`plan_containers`] for a DN whose parent's normalized form is `parent`, parsed by `dn` only
/// the first time that parent is asked about.
fn plan_containers_of<'d>(
    planner: &mut Planner,
    rules: &TargetRules,
    parent: Option<&str>,
    dn: impl FnOnce() -> Cow<'d, Dn>,
    existing: &BTreeSet<String>,
    containers: &mut PlannedContainers,
    for_whom: &dyn std::fmt::Display,
) -> Arc<[String]> {
    // What is missing above a parent depends on that parent alone (`existing` is fixed per
    // target), and its containers were drafted the first time it was asked.
    if let Some(needs) = parent.and_then(|p| containers.needs_under.get(p)) {
        return Arc::clone(needs);
    }
    let mut needs = Vec::new();
    for c in missing_containers(rules, &dn(), existing) {
        needs.push(c.normalized());
        if containers.planned.insert(c.normalized()) {
            planner.draft(
                None,
                rules.name(),
                Category::Directory,
                format!("container for {for_whom}"),
                Action::CreateContainer { dn: c.to_string() },
                false,
                vec![],
                vec![],
            );
        }
    }
    let needs: Arc<[String]> = needs.into();
    if let Some(parent) = parent {
        containers.needs_under.insert(parent.to_string(), Arc::clone(&needs));
    }
    needs
}

/// Containers between the managed base and the DN's parent that do not exist yet, top first.
fn missing_containers(rules: &TargetRules, dn: &Dn, existing: &BTreeSet<String>) -> Vec<Dn> {
    let mut out = Vec::new();
    let mut cur = dn.parent();
    while let Some(c) = cur {
        if !rules.in_scope(&c) || existing.contains(&c.normalized()) {
            break;
        }
        out.push(c.clone());
        cur = c.parent();
    }
    out.reverse();
    out
}

fn entry_enabled(rules: &TargetRules, e: &TargetEntry, link: Option<&Link>) -> bool {
    if is_ad(rules) {
        return uac_of(&e.attrs) & UAC_ACCOUNTDISABLE == 0;
    }
    if rules.config.disable.lock {
        return e.attrs.get(&AttrName::new(LOCK_ATTRIBUTE)).is_none_or(|v| v.is_empty());
    }
    if let Some(base) = &rules.move_to
        && let Ok(dn) = Dn::parse(&e.dn)
    {
        return !dn.is_within(base);
    }
    link.is_none_or(|l| l.enabled)
}

fn uac_of(attrs: &AttrMap) -> i64 {
    attrs
        .get(&AttrName::new(UAC_ATTRIBUTE))
        .and_then(|v| v.first())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(UAC_NORMAL_ENABLED)
}

/// The changes that enable or disable an account: AD's ACCOUNTDISABLE bit (every other flag, set
/// by administrators, left as it is), or the ppolicy lock.
fn switch_changes(rules: &TargetRules, current: &AttrMap, enable: bool) -> Vec<AttrChange> {
    if is_ad(rules) {
        let old = uac_of(current);
        let new = if enable { old & !UAC_ACCOUNTDISABLE } else { old | UAC_ACCOUNTDISABLE };
        let old_values = current.get(&AttrName::new(UAC_ATTRIBUTE)).cloned().unwrap_or_default();
        return vec![AttrChange { attr: AttrName::new(UAC_ATTRIBUTE), old: old_values, new: vec![new.to_string()] }];
    }
    if !rules.config.disable.lock {
        return Vec::new();
    }
    let old = current.get(&AttrName::new(LOCK_ATTRIBUTE)).cloned().unwrap_or_default();
    match (enable, old.is_empty()) {
        (true, false) => vec![AttrChange { attr: AttrName::new(LOCK_ATTRIBUTE), old, new: vec![] }],
        (false, true) => {
            vec![AttrChange { attr: AttrName::new(LOCK_ATTRIBUTE), old: vec![], new: vec![LOCK_VALUE.to_string()] }]
        }
        _ => Vec::new(),
    }
}

/// The DN itself, or the first free numbered form of its RDN ("CN=Jose Garcia (2)"). A person keeps
/// the numbered form they already have. The DN given back when a hundred forms are taken.
fn distinct_dn(
    dn: PlannedDn,
    person: &str,
    own: Option<&str>,
    claimed: &FastMap<Claim, &str>,
    numberable: bool,
) -> Result<PlannedDn, PlannedDn> {
    let last = if numberable { 100 } else { 1 };
    // The numbered forms, made one at a time: the first form is free for nearly everyone.
    let numbered = |keep: &dyn Fn(&PlannedDn) -> bool| -> Option<PlannedDn> {
        let parsed = Dn::parse(&dn.text).ok()?;
        let (parent, first) = (parsed.parent()?, parsed.rdn()?.0.first()?);
        (2..=last)
            .map(|n| PlannedDn::new(&parent.child(&first.attr, &format!("{} ({n})", first.value))))
            .find(|form| keep(form))
    };
    let free = |normalized: &str| claimed.get(normalized).is_none_or(|owner| *owner == person);
    if let Some(own) = own {
        if *dn.normalized == *own {
            return Ok(dn);
        }
        if let Some(kept) = numbered(&|form| *form.normalized == *own) {
            return Ok(kept);
        }
    }
    if free(&dn.normalized) {
        return Ok(dn);
    }
    numbered(&|form| free(&form.normalized)).ok_or(dn)
}

/// Accounts in the managed subtrees that no person claims: reported, or disabled, by policy.
fn plan_orphans(
    planner: &mut Planner,
    rules: &TargetRules,
    view: &TargetView,
    current: &FastMap<&str, (&TargetEntry, bool)>,
    owner_of: &FastMap<&str, &str>,
    people: &[Cow<Evaluated>],
) {
    if rules.config.orphans == OrphanPolicy::Ignore {
        return;
    }
    let claimed: BTreeSet<&str> = current.values().map(|(e, _)| e.object_id.as_str()).collect();
    // An account that carries a person's key belongs to that person even when it is disputed or
    // held: it is never an orphan.
    // The persons are in key order (step 1 makes them so): a key is found by halving.
    debug_assert!(people.windows(2).all(|w| w[0].key < w[1].key), "persons out of key order");
    let is_key = |k: &str| people.binary_search_by(|p| p.key.as_str().cmp(k)).is_ok();
    let correlate = AttrName::new(rules.config.correlate.clone());
    for e in &view.entries {
        if claimed.contains(e.object_id.as_str())
            || owner_of.contains_key(e.object_id.as_str())
            || e.protected
            || e.attrs.get(&correlate).is_some_and(|v| v.iter().any(|k| is_key(k)))
        {
            continue;
        }
        let enabled = entry_enabled(rules, e, None);
        if rules.config.orphans == OrphanPolicy::Disable && enabled {
            let changes = switch_changes(rules, &e.attrs, false);
            if !changes.is_empty() {
                planner.draft(
                    None,
                    rules.name(),
                    Category::Leaver,
                    "orphan: no person owns this account (orphans = \"disable\")".to_string(),
                    Action::Disable { dn: e.dn.clone(), object_id: Some(e.object_id.clone()), changes },
                    false,
                    vec![],
                    vec![],
                );
                continue;
            }
        }
        planner.notice(
            NoticeKind::Orphan,
            None,
            Some(rules.name()),
            format!("{} belongs to no person{}", e.dn, if enabled { "" } else { " (disabled)" }),
        );
    }
}

fn push_changes<'a>(
    changes: &mut Vec<AttrChange>,
    current: &mut AttrMap,
    wanted: impl Iterator<Item = &'a (AttrName, Vec<String>, bool, bool)>,
) {
    for (attr, values, ..) in wanted {
        let old = current.get(attr).cloned().unwrap_or_default();
        if !same_values(attr, &old, values, false) {
            changes.push(AttrChange { attr: attr.clone(), old, new: values.clone() });
            current.insert(attr.clone(), values.clone());
        }
    }
}

/// After a modify DN with deleteoldrdn, the old RDN values are gone and the new ones present.
fn apply_rdn_change(attrs: &mut AttrMap, old: &Dn, new: &Dn) {
    if let Some(rdn) = old.rdn() {
        for ava in &rdn.0 {
            if let Some(values) = attrs.get_mut(&AttrName::new(ava.attr.clone())) {
                values.retain(|v| !v.eq_ignore_ascii_case(&ava.value));
            }
        }
    }
    if let Some(rdn) = new.rdn() {
        for ava in &rdn.0 {
            let values = attrs.entry(AttrName::new(ava.attr.clone())).or_default();
            if !values.iter().any(|v| v.eq_ignore_ascii_case(&ava.value)) {
                values.push(ava.value.clone());
            }
        }
    }
}

/// Notes that `p`, one of `people`, has an operation when the planner drafted one since `before`.
#[expect(clippy::ptr_arg, reason = "`p` is found among `people` by its address: the `Cow`'s, not its content's")]
fn note_person(noted: &mut [bool], people: &[Cow<Evaluated>], p: &Cow<Evaluated>, planner: &Planner, before: usize) {
    if planner.drafts.len() > before
        && let Some(at) = people.element_offset(p)
    {
        noted[at] = true;
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_groups(
    planner: &mut Planner,
    rules: &TargetRules,
    view: &TargetView,
    wanted: WantedGroups,
    desired_dn: &FastMap<&str, Place>,
    current: &FastMap<&str, (&TargetEntry, bool)>,
    people: &[Cow<Evaluated>],
    untouchable: &BTreeSet<String>,
    managed_groups: &[&str],
    containers_planned: &mut PlannedContainers,
) {
    let ad = is_ad(rules);
    let (mut wanted, table) = wanted.into_parts();
    // A group's operation is most often one: its create, or one change of members.
    planner.drafts.reserve_exact(wanted.len());
    // Every DN roster manages in this target (now or after the plan), to its person.
    // Borrowed where the DN is kept as it is (most of them, in a daily run): no copy per person.
    // A partial view removes only the memberships of persons evaluated in this run (below), so it
    // needs only theirs, not a daily run's million settled DNs.
    let partial = view.partial.is_some();
    // Made only for the first group the view holds: a first load, whose groups are all new, needs
    // neither (a million persons' DNs hashed into a map, a second of the main thread).
    let existing_groups = || {
        let mut managed_members: FastMap<Cow<str>, &Evaluated> = fast_map(if partial { 0 } else { people.len() });
        for p in people.iter().filter(|p| !partial || p.evaluate) {
            let desired = desired_dn.get(p.key.as_str());
            // A settled person's desired DN is their entry's, when the view holds it: one insert.
            if let Some((e, _)) = current.get(p.key.as_str())
                && (p.evaluate || desired.is_none())
            {
                managed_members.insert(Cow::Owned(normalize_dn(&e.dn)), &**p);
            }
            if let Some(d) = desired {
                managed_members.insert(Cow::Borrowed(&**d.normalized()), &**p);
            }
        }
        // The directory keeps members pointing at renamed entries (AD always, OpenLDAP with the
        // refint overlay), and renames run before group changes: diff against the members as they
        // will be.
        let mut renamed: FastMap<String, String> = FastMap::default();
        // Settled persons stay where they are.
        for p in people.iter().filter(|p| p.evaluate) {
            if let (Some((e, _)), Some(d)) = (current.get(p.key.as_str()), desired_dn.get(p.key.as_str()))
                && normalize_dn(&e.dn) != **d.normalized()
            {
                renamed.insert(normalize_dn(&e.dn), d.text().to_owned());
            }
        }
        (managed_members, renamed)
    };
    let mut for_existing = None;
    let mut existing: BTreeMap<String, &crate::state::TargetGroup> = BTreeMap::new();
    for g in &view.groups {
        existing.insert(normalize_dn(&g.dn), g);
    }
    // roster owns the groups its rules name now, and those it created or filled before; any other
    // group in the managed subtrees is left alone, whatever the mode.
    let recorded: BTreeSet<String> = managed_groups.iter().map(|g| normalize_dn(g)).collect();
    let all: BTreeSet<String> = existing
        .keys()
        .filter(|n| wanted.contains_key(*n) || recorded.contains(*n))
        .chain(wanted.keys())
        .cloned()
        .collect();
    // Every group's members sorted at once, on every core, the largest groups first.
    let rank = member_ranks(&table);
    let mut members: Vec<&mut WantedMembers> = wanted.values_mut().map(|(_, _, m)| m).collect();
    members.sort_unstable_by_key(|m| std::cmp::Reverse(m.0.len()));
    parallel::each_mut(&mut members, |m| m.sort(&rank));
    drop(rank);
    let empty = WantedMembers::default();
    // The new groups' attribute names, shared by those that have the same.
    let mut group_names = NameTable::default();
    // Each group's wanted members, in the order the groups are planned.
    let slots: Vec<(&String, Option<WantedGroup>)> = all.iter().map(|norm| (norm, wanted.remove(norm))).collect();
    // A new group's members and their accounts, made ahead on every core: each member's texts
    // shared with the list (their counts raised once per group they are in, not copied), a cache
    // miss per member and group, a second of one core at a million persons in five groups each.
    let new_group_members = |(): &mut (), (norm, slot): &(&String, Option<WantedGroup>)| {
        let (_, _, want) = slot.as_ref().filter(|_| !existing.contains_key(*norm))?;
        let members: (Vec<Arc<str>>, Vec<Arc<str>>) =
            want.iter(&table).map(|(_, dn, key)| (Arc::clone(dn), Arc::clone(key))).unzip();
        Some(members)
    };
    parallel::in_order(
        &slots,
        || (),
        new_group_members,
        |planned| {
            for ((norm, slot), new_members) in planned {
                let norm: &String = norm;
                let want = slot.as_ref().map(|(_, _, m)| m).unwrap_or(&empty);
                let group_dn = slot
                    .as_ref()
                    .map(|(d, _, _)| d.clone())
                    .or_else(|| existing.get(norm).map(|g| g.dn.clone()))
                    .unwrap_or_default();
                let Ok(parsed) = Dn::parse(&group_dn) else { continue };
                let rule_reason = |member: &str| format!("group rule: {member} belongs in {group_dn}");
                let account_dep = |person: &Arc<str>| vec![Arc::clone(person)];
                match existing.get(norm) {
                    None => {
                        let Some((_, rule, _)) = slot.as_ref().filter(|(_, _, want)| !want.is_empty()) else {
                            continue;
                        };
                        let Some((members, deps)) = new_members else { continue };
                        let needs =
                            plan_containers(planner, rules, &parsed, &view.containers, containers_planned, &group_dn);
                        let rule = rules.config.groups.get(*rule);
                        let attributes = match group_attributes(rules, &parsed, rule).shared(&mut group_names) {
                            Ok(attributes) => attributes,
                            Err(e) => {
                                planner.notice(
                                    NoticeKind::EvaluationFailed,
                                    None,
                                    Some(rules.name()),
                                    format!("group {group_dn} not created: {e}"),
                                );
                                continue;
                            }
                        };
                        planner.draft(
                            None,
                            rules.name(),
                            Category::Directory,
                            format!("group rules put {} member(s) in a group that does not exist yet", members.len()),
                            Action::CreateGroup { dn: group_dn.clone(), members, attributes },
                            false,
                            deps,
                            needs,
                        );
                    }
                    Some(g) => {
                        let (managed_members, renamed) = for_existing.get_or_insert_with(existing_groups);
                        // A partial view lists a group's members among the entries it read (all of them,
                        // where the group was read whole): only evaluated persons' memberships are
                        // removed, and the placeholder is judged only against the whole list.
                        let whole = view.complete_group(norm);
                        let placeholder = rules.config.empty_group_member.clone().unwrap_or_else(|| g.dn.clone());
                        let placeholder_norm = normalize_dn(&placeholder);
                        // Normalized member DN as it will be -> (that DN, the DN the group lists now). Each
                        // member normalized once (again only if renamed), in a hash map: a daily run reads
                        // whole the groups its few changes touch, a hundred thousand members and more.
                        // In a partial view only the members who are persons evaluated in this run, those
                        // they become, the wanted and the placeholder can be added, removed or kept for
                        // the plan; the others are only counted (each is a DN of its own in the directory,
                        // so the count is what the map's length would be, and it decides only whether the
                        // group would be left empty). A normalized DN is kept only where it matters.
                        let mut have: FastMap<String, (&String, &String)> =
                            fast_map(if partial { 0 } else { g.members.len() });
                        let matters: Option<FastSet<&str>> = partial.then(|| {
                            let mut matters: FastSet<&str> = managed_members.keys().map(|n| n.as_ref()).collect();
                            matters.extend(renamed.keys().map(String::as_str));
                            matters.extend(want.iter(&table).map(|(n, _, _)| &**n));
                            matters.insert(&placeholder_norm);
                            matters
                        });
                        let mut others = 0;
                        let mut normalized = String::new();
                        for now in &g.members {
                            crate::dn::normalize_dn_into(now, &mut normalized);
                            if matters.as_ref().is_some_and(|m| !m.contains(normalized.as_str())) {
                                others += 1;
                                continue;
                            }
                            match renamed.get(&normalized) {
                                Some(will) => have.insert(normalize_dn(will), (will, now)),
                                None => have.insert(normalized.clone(), (now, now)),
                            };
                        }
                        // Every member, as the map would count them all.
                        let members = have.len() + others;
                        let adds: Vec<&Member> =
                            want.iter(&table).filter(|(n, _, _)| !have.contains_key(&**n)).collect();
                        // The cheap tests first: in a partial view only the few persons evaluated in this
                        // run can lose a membership, a hash look-up each.
                        let mut removes: Vec<(&String, &(&String, &String))> = have
                            .iter()
                            .filter(|(n, _)| {
                                view.partial.is_none() || managed_members.get(n.as_str()).is_some_and(|p| p.evaluate)
                            })
                            .filter(|(n, _)| {
                                **n != placeholder_norm && !untouchable.contains(*n) && !want.contains(&table, n)
                            })
                            .filter(|(n, _)| {
                                rules.group_mode == GroupMode::Authoritative || managed_members.contains_key(n.as_str())
                            })
                            // A person not evaluated in this run keeps the memberships they have.
                            .filter(|(n, _)| managed_members.get(n.as_str()).is_none_or(|p| p.evaluate))
                            .collect();
                        // In the order of the normalized DNs, as the plan has always listed them.
                        removes.sort_unstable_by(|a, b| a.0.cmp(b.0));
                        // A groupOfNames cannot be empty; an AD group can.
                        let placeholder_norm = if ad { String::new() } else { placeholder_norm };
                        let remaining =
                            members - removes.len() + adds.len() - usize::from(have.contains_key(&placeholder_norm));
                        for (_, member, person) in &adds {
                            planner.draft(
                                Some(person),
                                rules.name(),
                                Category::Directory,
                                rule_reason(member),
                                Action::AddMember { group: g.dn.clone(), member: member.to_string() },
                                false,
                                account_dep(person),
                                vec![],
                            );
                        }
                        if whole
                            && !ad
                            && remaining == 0
                            && !have.contains_key(&placeholder_norm)
                            && !removes.is_empty()
                        {
                            planner.draft(
                                None,
                                rules.name(),
                                Category::Directory,
                                "a groupOfNames cannot be empty: the placeholder member keeps it valid".to_string(),
                                Action::AddMember { group: g.dn.clone(), member: placeholder.clone() },
                                false,
                                vec![],
                                vec![],
                            );
                        }
                        // Removed before the renames, and before this run's additions: only where the
                        // group keeps a member meanwhile (a groupOfNames cannot be empty; an AD group can).
                        let renamed_removes = removes.iter().filter(|(_, (member, now))| member != now).count();
                        let early = ad || (whole && members > renamed_removes);
                        for (n, (member, now)) in &removes {
                            let person = managed_members.get(n.as_str()).map(|p| p.key.as_str());
                            let reason = match person {
                                Some(_) => format!("group rules no longer put {member} in {}", g.dn),
                                None => format!(
                                    "not granted by any rule, and {} is authoritative for {}",
                                    rules.name(),
                                    g.dn
                                ),
                            };
                            planner.draft(
                                person,
                                rules.name(),
                                Category::Directory,
                                reason,
                                Action::RemoveMember {
                                    group: g.dn.clone(),
                                    member: (if early { *now } else { *member }).clone(),
                                },
                                false,
                                vec![],
                                vec![],
                            );
                            if early
                                && member != now
                                && let Some(draft) = planner.drafts.last_mut()
                            {
                                draft.phase = REMOVE_BEFORE_RENAME;
                            }
                        }
                        if whole
                            && remaining > 0
                            && have.contains_key(&placeholder_norm)
                            && !want.contains(&table, &placeholder_norm)
                        {
                            planner.draft(
                                None,
                                rules.name(),
                                Category::Directory,
                                "the group has real members again: placeholder removed".to_string(),
                                Action::RemoveMember { group: g.dn.clone(), member: placeholder.clone() },
                                false,
                                vec![],
                                vec![],
                            );
                        }
                    }
                }
            }
        },
    );
}

/// A new group's own attributes: groupOfNames for LDAP; for AD a group with its sAMAccountName
/// (the RDN value, cut to what AD allows) and its groupType.
fn group_attributes(rules: &TargetRules, dn: &Dn, rule: Option<&crate::config::GroupRuleConfig>) -> AttrsDraft {
    let mut attrs = AttrsDraft::default();
    if is_ad(rules) {
        attrs.insert(AttrName::new("objectClass"), vec!["group".to_string()]);
        if let Some(ava) = dn.rdn().and_then(|r| r.0.first()) {
            let name: String = ava
                .value
                .chars()
                .filter(|c| {
                    !matches!(
                        c,
                        '"' | '/' | '\\' | '[' | ']' | ':' | ';' | '|' | '=' | ',' | '+' | '*' | '?' | '<' | '>'
                    )
                })
                .take(256)
                .collect();
            attrs.insert(AttrName::new("sAMAccountName"), vec![name]);
        }
        let group_type = rule.map_or(crate::config::GroupRuleConfig::default_group_type(), |r| r.ad_group_type());
        attrs.insert(AttrName::new("groupType"), vec![group_type.to_string()]);
    } else {
        attrs.insert(AttrName::new("objectClass"), vec!["groupOfNames".to_string()]);
    }
    attrs
}

/// Whether `[approval]` says the operation waits for an approver: its kind is listed, or it
/// changes the membership of a privileged group.
pub fn needs_approval(settings: &Settings, op: &Operation) -> bool {
    let approval = &settings.approval;
    approval.operations.iter().any(|k| k == op.action.kind())
        || match &op.action {
            Action::AddMember { group, .. }
            | Action::RemoveMember { group, .. }
            | Action::CreateGroup { dn: group, .. } => approval.groups.contains(&normalize_dn(group)),
            _ => false,
        }
}

/// The safety limits, and `[approval]` as one more (limit `approval`) listing the operations
/// that wait for an approver.
fn limits(
    settings: &Settings,
    ops: &[Operation],
    population: u64,
    counts: &BTreeMap<String, u64>,
    snapshot: &Snapshot,
) -> Vec<SafetyViolation> {
    let mut out = check_safety(settings, ops, population, counts, snapshot);
    let waiting: Vec<&Operation> = ops.iter().filter(|o| needs_approval(settings, o)).collect();
    if !waiting.is_empty() {
        let listed: Vec<String> =
            waiting.iter().take(10).map(|o| format!("#{} {} {}", o.id, o.action.kind(), o.action.dn())).collect();
        let more = if waiting.len() > 10 { format!(" and {} more", waiting.len() - 10) } else { String::new() };
        out.push(SafetyViolation {
            limit: "approval".to_string(),
            message: format!(
                "{} operation(s) need an approver ([approval]): {}{more}",
                waiting.len(),
                listed.join("; ")
            ),
            count: waiting.len() as u64,
            percent: 0.0,
            population,
        });
    }
    out
}

fn check_safety(
    settings: &Settings,
    ops: &[Operation],
    population: u64,
    counts: &BTreeMap<String, u64>,
    snapshot: &Snapshot,
) -> Vec<SafetyViolation> {
    let mut out = Vec::new();
    let persons_with = |pred: &dyn Fn(&Action) -> bool| -> u64 {
        ops.iter()
            .filter(|o| pred(&o.action))
            .map(|o| o.person.as_deref().unwrap_or_else(|| o.action.dn()))
            .collect::<BTreeSet<_>>()
            .len() as u64
    };
    let base = population.max(1);
    let mut check = |name: &str, what: &str, count: u64, limit: crate::config::Limit| {
        let percent = count as f64 * 100.0 / base as f64;
        let over_count = limit.count.is_some_and(|c| count > c);
        let over_percent = limit.percent.is_some_and(|p| percent > p);
        if over_count || over_percent {
            out.push(SafetyViolation {
                limit: name.to_string(),
                message: format!(
                    "{count} {what} ({percent:.1}% of {population} persons) exceed the limit of {} (safety.{name})",
                    match (limit.count, limit.percent) {
                        (Some(c), Some(p)) => format!("{c} persons or {p}%"),
                        (Some(c), None) => format!("{c} persons"),
                        (None, Some(p)) => format!("{p}%"),
                        (None, None) => "none".to_string(),
                    }
                ),
                count,
                percent,
                population,
            });
        }
    };
    check(
        "disables",
        "persons disabled",
        persons_with(&|a| matches!(a, Action::Disable { .. })),
        settings.safety.disables,
    );
    check("deletes", "persons deleted", persons_with(&|a| matches!(a, Action::Delete { .. })), settings.safety.deletes);
    check(
        "renames",
        "persons renamed or moved",
        persons_with(&|a| matches!(a, Action::Rename { .. })),
        settings.safety.renames,
    );
    check(
        "group_removals",
        "persons removed from groups",
        persons_with(&|a| matches!(a, Action::RemoveMember { .. })),
        settings.safety.group_removals,
    );
    for limit in &settings.safety.attribute_changes {
        let watched: Vec<AttrName> = limit.attributes.iter().map(|a| AttrName::new(a.clone())).collect();
        let n = persons_with(&|a| match a {
            Action::Update { changes, .. } => changes.iter().any(|c| watched.contains(&c.attr) && !c.old.is_empty()),
            _ => false,
        });
        let name = format!("attribute_changes({})", limit.attributes.join(","));
        check(
            &name,
            "persons with changed watched attributes",
            n,
            crate::config::Limit { count: limit.count, percent: limit.percent },
        );
    }
    for (source, &now) in counts {
        if let Some(&last) = snapshot.source_counts.get(source)
            && last > 0
            && now < last
        {
            let shrink = (last - now) as f64 * 100.0 / last as f64;
            if shrink > settings.safety.source_shrink_percent {
                out.push(SafetyViolation {
                        limit: "source_shrink".to_string(),
                        message: format!(
                            "source {source} has {now} rows, {shrink:.1}% fewer than the {last} of the last good read (safety.source_shrink_percent = {})",
                            settings.safety.source_shrink_percent
                        ),
                        count: last - now,
                        percent: shrink,
                        population: last,
                    });
            }
        }
    }
    out
}

/// The part of `plan` that concerns the person `key` alone (`roster run --person`): their own
/// operations, group operations on their membership, and the containers and groups these need;
/// nothing of anyone else. An operation that needs another person's operation first (a
/// reference to a manager not created yet) is left for a full run. Ids are renumbered, and the
/// safety limits are checked again against what is left.
pub fn person_plan(settings: &Settings, snapshot: &Snapshot, plan: &Plan, key: &str) -> Plan {
    let mut dns: BTreeSet<String> =
        snapshot.links.iter().filter(|l| l.person == key).map(|l| normalize_dn(&l.dn)).collect();
    for o in plan.operations.iter().filter(|o| o.person.as_deref() == Some(key)) {
        dns.insert(normalize_dn(o.action.dn()));
        if let Action::Rename { new_dn, .. } = &o.action {
            dns.insert(normalize_dn(new_dn));
        }
    }
    let concerns = |o: &Operation| match &o.action {
        _ if o.person.as_deref() == Some(key) => true,
        Action::AddMember { member, .. } | Action::RemoveMember { member, .. } => dns.contains(&normalize_dn(member)),
        Action::CreateGroup { members, .. } => members.iter().any(|m| dns.contains(&normalize_dn(m))),
        _ => false,
    };
    let mut keep: BTreeSet<usize> = plan.operations.iter().filter(|o| concerns(o)).map(|o| o.id).collect();
    // Shared prerequisites (containers, groups) come along; an operation waiting on someone
    // else's is left out by `restrict`.
    let mut pending: Vec<usize> = keep.iter().copied().collect();
    while let Some(id) = pending.pop() {
        for d in &plan.operations[id].depends_on {
            if plan.operations[*d].person.is_none() && keep.insert(*d) {
                pending.push(*d);
            }
        }
    }
    restrict(settings, snapshot, plan, keep, &|person| person == key)
}

/// The operations `keep` of `plan` (ids renumbered; one whose prerequisite is left out is left out
/// too), the person updates of the persons `recorded` says, and the safety limits checked again.
fn restrict(
    settings: &Settings,
    snapshot: &Snapshot,
    plan: &Plan,
    mut keep: BTreeSet<usize>,
    recorded: &dyn Fn(&str) -> bool,
) -> Plan {
    loop {
        let before = keep.len();
        keep = keep
            .iter()
            .copied()
            .filter(|id| plan.operations[*id].depends_on.iter().all(|d| keep.contains(d)))
            .collect();
        if keep.len() == before {
            break;
        }
    }
    let renumbered: BTreeMap<usize, usize> = keep.iter().enumerate().map(|(new, old)| (*old, new)).collect();
    let operations: Vec<Operation> = keep
        .iter()
        .map(|old| {
            let mut o = plan.operations[*old].clone();
            o.id = renumbered[old];
            o.depends_on = o.depends_on.iter().filter_map(|d| renumbered.get(d).copied()).collect();
            o
        })
        .collect();
    let safety = limits(settings, &operations, plan.summary.persons, &plan.source_counts, snapshot);
    let mut summary = plan.summary.clone();
    summary.operations = operations.len() as u64;
    let mine = |person: &Option<String>| person.as_deref().is_some_and(recorded);
    Plan {
        format: plan.format,
        as_of: plan.as_of,
        config_hash: plan.config_hash.clone(),
        operations,
        person_updates: plan.person_updates.iter().filter(|u| recorded(&u.key)).cloned().collect(),
        notices: plan.notices.iter().filter(|n| mine(&n.person)).cloned().collect(),
        quarantined: plan.quarantined.clone(),
        safety,
        source_counts: plan.source_counts.clone(),
        summary,
        provenance: plan.provenance.iter().filter(|(k, _)| recorded(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// An approved plan checked again against a fresh plan of the same configuration: `(approved,
/// changed)`. `approved` holds the fresh plan's operations identical (person, target and action)
/// to one the approver saw, and the records of the persons all of whose operations are among
/// them; `changed` holds everything else, new or changed since, which needs its own approval.
pub fn recheck(settings: &Settings, snapshot: &Snapshot, seen: &Plan, fresh: &Plan) -> (Plan, Plan) {
    let identity = |o: &Operation| serde_json::to_string(&(&o.person, &o.target, &o.action)).unwrap_or_default();
    let seen_ops: BTreeSet<String> = seen.operations.iter().map(identity).collect();
    let covered: BTreeSet<usize> =
        fresh.operations.iter().filter(|o| seen_ops.contains(&identity(o))).map(|o| o.id).collect();
    let approved = restrict(settings, snapshot, fresh, covered, &|_| false);
    let applied: BTreeSet<String> = approved.operations.iter().map(identity).collect();
    let rest: BTreeSet<usize> =
        fresh.operations.iter().filter(|o| !applied.contains(&identity(o))).map(|o| o.id).collect();
    let pending: BTreeSet<&str> = rest.iter().filter_map(|id| fresh.operations[*id].person.as_deref()).collect();
    let changed = restrict(settings, snapshot, fresh, rest, &|p| pending.contains(p));
    let mut approved = approved;
    approved.person_updates =
        fresh.person_updates.iter().filter(|u| !pending.contains(u.key.as_str())).cloned().collect();
    (approved, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AttributeLimit, Limit};
    use crate::source::FieldValue;

    /// The stored hashes were made with `sha2` before `ring` made them: the same digest, so an
    /// upgrade evaluates nobody again.
    #[test]
    fn a_persons_hash_is_the_first_half_of_the_sha256_of_the_config_hash_and_the_records_json() {
        use sha2::{Digest, Sha256};
        let mut attrs: Attrs = Attrs::default();
        attrs.insert("given_name".into(), FieldValue::Text("Zoë \"Jo\"".to_string()));
        attrs.insert("hire_date".into(), FieldValue::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()));
        let attrs = Arc::new(attrs);
        let mut records = RecordsByName::default();
        records.insert("hr", &attrs);
        let json = r#"{"hr":{"given_name":"Zoë \"Jo\"","hire_date":{"date":"2026-03-01"}}}"#;
        let expected = format!("{:x}", Sha256::digest(format!("cfg-hash{json}").as_bytes()))[..32].to_string();
        assert_eq!(hash_person("cfg-hash", &records, &mut Vec::new()), expected);
    }

    /// A group's members sort by their normalized DN through the members' ranks, and a DN
    /// pushed twice is kept once, as pushed last (as a map's insert would).
    #[test]
    fn wanted_members_sort_by_normalized_dn_and_keep_the_last_of_equal_ones() {
        let member = |normalized: &str, key: &str| -> Member {
            (Arc::from(normalized), Arc::from(normalized.to_uppercase().as_str()), Arc::from(key))
        };
        let table = vec![
            member("uid=c,dc=org", "3"),
            member("uid=a,dc=org", "1"),
            member("uid=b,dc=org", "2"),
            member("uid=a,dc=org", "4"),
        ];
        let rank = member_ranks(&table);
        assert_eq!(rank, [2, 0, 1, 0]);
        let mut wanted = WantedMembers::default();
        for at in [0, 1, 2, 3, 2] {
            wanted.push(at);
        }
        wanted.sort(&rank);
        let keys: Vec<&str> = wanted.iter(&table).map(|(_, _, key)| &**key).collect();
        assert_eq!(keys, ["4", "2", "3"]);
        assert!(wanted.contains(&table, "uid=b,dc=org"));
        assert!(!wanted.contains(&table, "uid=d,dc=org"));
    }

    /// A record's hash made ahead is found from the address of its `attrs` field, and only
    /// there: not for the same values held elsewhere (a stored record, a copy).
    #[test]
    fn a_record_is_found_by_the_address_of_its_attributes() {
        use crate::source::{Location, Record};
        let record = |key: &str| {
            let mut attrs = Attrs::default();
            attrs.insert("given_name".into(), FieldValue::Text(key.to_string()));
            let location = Location { file: "hr.csv".into(), line: 2, row: 1 };
            Record { source: "hr".into(), key: key.into(), attrs: Arc::new(attrs), location }
        };
        let records: Vec<Record> = ["a", "b", "c"].into_iter().map(record).collect();
        for (at, r) in records.iter().enumerate() {
            assert_eq!(record_index(&records, &r.attrs), Some(at));
        }
        let shared = Arc::clone(&records[1].attrs);
        assert_eq!(record_index(&records, &shared), None, "the same values, held elsewhere");
        let others: Vec<Record> = records.clone();
        assert_eq!(record_index(&records, &others[0].attrs), None, "a record of another read");
        assert_eq!(record_index(&records[1..], &records[0].attrs), None, "before the first");
    }

    /// A DN taken by a settled person (shared with their place) and one taken in this run are
    /// the same key: the second person to want it is told it is taken.
    #[test]
    fn a_kept_dn_and_a_planned_one_are_the_same_claim() {
        let kept = Place::kept("uid=Jo.Clark,ou=People,dc=example,dc=org").unwrap();
        assert!(matches!(kept, Place::Kept { .. }));
        let mut claimed: FastMap<Claim, &str> = FastMap::default();
        claimed.insert(kept.claim(), "settled");
        let planned = PlannedDn::new(&Dn::parse("UID=jo.clark,OU=people,DC=example,DC=org").unwrap());
        assert_eq!(claimed.get(&*planned.normalized), Some(&"settled"));
        assert_eq!(claimed.insert(Claim::Own(planned.normalized.to_string()), "evaluated"), Some("settled"));
        assert_eq!(claimed.len(), 1);
        let Ok(numbered) = distinct_dn(planned, "someone", None, &claimed, true) else { panic!("no form is free") };
        assert_eq!(&*numbered.normalized, "uid=jo.clark (2),ou=people,dc=example,dc=org");
        assert_eq!(&*numbered.text, "UID=jo.clark (2),OU=people,DC=example,DC=org");
    }

    #[test]
    fn drafts_share_one_copy_of_each_target_name_and_reason() {
        let mut planner = Planner { notices: Vec::new(), drafts: Vec::new(), texts: FastSet::default() };
        for (person, reason) in
            [("p1", "active: hired 2025-03-17"), ("p2", "active: hired 2025-03-17"), ("p3", "other")]
        {
            // Each reason its own String, as the persons' loop formats them.
            planner.draft(
                Some(person),
                "directory",
                Category::Joiner,
                reason.to_string(),
                disable(0),
                false,
                vec![],
                vec![],
            );
        }
        let [a, b, c] = &planner.drafts[..] else { panic!("three drafts") };
        assert!(Arc::ptr_eq(&a.target, &b.target) && Arc::ptr_eq(&a.target, &c.target), "one target name");
        assert!(Arc::ptr_eq(&a.reason, &b.reason), "equal reasons share their text");
        assert_eq!((&*a.reason, &*c.reason, &*c.target), ("active: hired 2025-03-17", "other", "directory"));
    }

    /// A DN taken without parsing (a plain one) is what the parser makes of it, in scope or not.
    #[test]
    fn a_plain_dn_is_planned_as_a_parsed_one() {
        let settings = settings(
            r#"
[[target]]
name = "directory"
kind = "ldap"
url = "ldaps://127.0.0.1:636"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password = "env:ROSTER_TEST_NEVER_READ"
disable = { lock = true }
managed = ["ou=People,dc=example,dc=org", "OU=staff , DC=Example,dc=org"]
dn = '"uid=" + login + ",ou=people,dc=example,dc=org"'
object_classes = ["inetOrgPerson"]
correlate = "employeeNumber"
[target.attributes]
cn = "given_name"
"#,
        );
        let rules = &settings.targets[0];
        let dns = [
            "uid=jo.clark,ou=people,dc=example,dc=org",
            "UID=Jo Clark,OU=People,DC=EXAMPLE,DC=org",
            "ou=people,dc=example,dc=org",
            "cn=x,ou=Staff,dc=example,dc=org",
            "uid=jo,ou=xpeople,dc=example,dc=org",
            "uid=jo,cou=people,dc=example,dc=org",
            "uid=jo,people,dc=example,dc=org",
            "uid=jo,ou=people,dc=example,dc=org,dc=extra",
            "uid=jo,dc=org",
            "uid=jo, ou=people,dc=example,dc=org",
            "uid=Smith\\, Jo,ou=people,dc=example,dc=org",
            "uid=,ou=people,dc=example,dc=org",
            "uid=José,ou=people,dc=example,dc=org",
            "not a dn",
        ];
        let mut plain = 0;
        for dn in dns {
            plain += usize::from(crate::dn::normalize_plain(dn).is_some());
            let parsed = checked_dn(rules, dn).map(|dn| PlannedDn::new(&dn));
            match (planned_dn(rules, dn.to_string()), parsed) {
                (Ok(a), Ok(b)) => assert_eq!((a.text, a.normalized), (b.text, b.normalized), "{dn}"),
                (Err(a), Err(b)) => assert_eq!(a, b, "{dn}"),
                (a, b) => panic!("{dn}: {:?} against {:?}", a.map(|p| p.text), b.map(|p| p.text)),
            }
        }
        assert_eq!(plain, 8, "the plain path taken for the plain DNs");
    }

    /// Settings of one CSV source, with `more` (a `[safety]` section, a target) after them.
    fn settings(more: &str) -> Settings {
        let text = format!(
            r#"
[time]
zone = "UTC"
[[source]]
name = "hr"
kind = "csv"
path = "hr.csv"
key = "id"
columns = {{ given_name = "g", family_name = "f", hire_date = "h" }}
[login]
candidates = ["lower(given_name)"]
{more}
"#
        );
        crate::settings::load(&text, "t.toml").unwrap()
    }

    fn ops(n: usize, action: impl Fn(usize) -> Action) -> Vec<Operation> {
        (0..n)
            .map(|i| Operation {
                id: i,
                person: Some(format!("p{i}")),
                target: "t".into(),
                category: Category::Leaver,
                reason: "".into(),
                depends_on: vec![],
                action: action(i),
            })
            .collect()
    }

    fn disable(_: usize) -> Action {
        Action::Disable { dn: "uid=x,dc=o".into(), object_id: None, changes: vec![] }
    }

    #[test]
    fn each_limit_holds_at_its_threshold_and_trips_one_above() {
        let snapshot = Snapshot::default();
        let none = BTreeMap::new();
        type Case = (&'static str, &'static str, fn(usize) -> Action);
        let cases: [Case; 3] = [
            ("disables", "[safety]\ndisables = { count = 3 }", disable),
            ("deletes", "[safety]\ndeletes = { count = 3 }", |_| Action::Delete {
                dn: "uid=x,dc=o".into(),
                object_id: None,
            }),
            ("renames", "[safety]\nrenames = { count = 3 }", |_| Action::Rename {
                dn: "uid=x,dc=o".into(),
                object_id: None,
                new_dn: "uid=y,dc=o".into(),
            }),
        ];
        for (name, safety, action) in cases {
            let s = settings(safety);
            assert!(check_safety(&s, &ops(3, action), 1000, &none, &snapshot).is_empty(), "{name} at the limit");
            let v = check_safety(&s, &ops(4, action), 1000, &none, &snapshot);
            assert_eq!(v.len(), 1, "{name} one above");
            assert_eq!(v[0].limit, name);
            assert_eq!(v[0].count, 4);
        }
    }

    #[test]
    fn percent_limits_trip_on_their_own() {
        let s = settings("[safety]\ndisables = { percent = 10 }");
        let none = BTreeMap::new();
        let snapshot = Snapshot::default();
        assert!(check_safety(&s, &ops(10, disable), 100, &none, &snapshot).is_empty());
        let v = check_safety(&s, &ops(11, disable), 100, &none, &snapshot);
        assert_eq!(v.len(), 1);
        assert!((v[0].percent - 11.0).abs() < 1e-9);
        assert!(v[0].message.contains("11 persons disabled (11.0% of 100 persons)"), "{}", v[0].message);
    }

    #[test]
    fn attribute_change_limits_count_only_changes_of_existing_values() {
        let s = settings("[safety]\nattribute_changes = [{ attributes = [\"mail\"], count = 1 }]");
        assert_eq!(
            s.safety.attribute_changes,
            vec![AttributeLimit { attributes: vec!["mail".into()], count: Some(1), percent: None }]
        );
        let change = |old: &[&str]| -> Action {
            Action::Update {
                dn: "uid=x,dc=o".into(),
                object_id: None,
                changes: vec![AttrChange {
                    attr: AttrName::new("MAIL"),
                    old: old.iter().map(|s| s.to_string()).collect(),
                    new: vec!["n@x".into()],
                }],
            }
        };
        let none = BTreeMap::new();
        let snapshot = Snapshot::default();
        let renamed = ops(2, |_| change(&["o@x"]));
        assert_eq!(check_safety(&s, &renamed[..1], 100, &none, &snapshot).len(), 0);
        assert_eq!(check_safety(&s, &renamed, 100, &none, &snapshot).len(), 1);
        let first_values = ops(5, |_| change(&[]));
        assert!(check_safety(&s, &first_values, 100, &none, &snapshot).is_empty());
    }

    #[test]
    fn source_shrink_holds_at_the_threshold_and_trips_beyond() {
        let s = settings("[safety]\nsource_shrink_percent = 10");
        let snapshot = Snapshot { source_counts: BTreeMap::from([("hr".to_string(), 100)]), ..Snapshot::default() };
        assert!(check_safety(&s, &[], 100, &BTreeMap::from([("hr".to_string(), 90)]), &snapshot).is_empty());
        let v = check_safety(&s, &[], 100, &BTreeMap::from([("hr".to_string(), 89)]), &snapshot);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].limit, "source_shrink");
        assert!(v[0].message.contains("89 rows, 11.0% fewer than the 100"), "{}", v[0].message);
        let _ = Limit { count: None, percent: None };
    }
}
