//! Planner stories: HR rows day by day in, the readable plan of each day out (an `insta` snapshot),
//! with the plan applied to a simulated directory and store between days, as a real run would.
//! Each `stories/*.toml` file is one story; `stories/base.toml` is the shared configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use roster_core::attr::AttrName;
use roster_core::config::SourceConfig;
use roster_core::dn::{Dn, normalize_dn};
use roster_core::engine::{
    PlanInput, evaluated_persons, plan, plan_prepared, plan_prepared_last, prepare, stored_records_needed,
};
use roster_core::partial::{first_request, more_to_read};
use roster_core::plan::{Action, Plan};
use roster_core::render::render;
use roster_core::settings::{Settings, load};
use roster_core::source::{FieldValue, Location, QuarantinedRow, Record, SourceRead};
use roster_core::state::{
    Link, ManagedGroup, Snapshot, StoredPerson, TargetEntry, TargetGroup, TargetView, Tombstone, UnfinishedCreate,
    ViewRequest,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Story {
    /// A whole config, replacing base.toml.
    config: Option<String>,
    /// Entries that exist in the directory before the first day (LDIF-like: `dn|attr=value;attr=value`).
    #[serde(default)]
    directory: Vec<String>,
    day: Vec<Day>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Day {
    as_of: String,
    /// Pipe-separated rows with a header; columns are person attribute names (`key` is the key).
    #[serde(default)]
    hr: String,
    /// The rows of the other sources the story's config names, in the same form as `hr`. A
    /// configured source without rows on a day is read as empty.
    #[serde(default)]
    sources: BTreeMap<String, String>,
    /// Rows the source quarantined, as `key|reason`.
    #[serde(default)]
    quarantined: Vec<String>,
    /// Apply the day's plan even when it is blocked (the override flag).
    #[serde(default)]
    allow: bool,
    /// Skip applying (the plan is only looked at).
    #[serde(default)]
    plan_only: bool,
    /// Operations that fail when applied, as `kind:person` (e.g. `set_password:00001`).
    #[serde(default)]
    fail: Vec<String>,
    /// Configuration added from this day on (a person's decision, say).
    config_add: Option<String>,
    /// The run stops (killed) right after this operation (`kind:person`) reached the directory:
    /// what landed stays in the directory, the store records only the intents.
    crash_after: Option<String>,
}

const DATE_ATTRS: [&str; 4] = ["hire_date", "last_day", "leave_start", "leave_end"];

fn read(source: &SourceConfig, rows: &str) -> SourceRead {
    let name = source.name.as_str();
    let is_date = |h: &str| {
        DATE_ATTRS.contains(&h)
            || source.date_attributes.iter().any(|d| d == h)
            || source.effective_date.as_deref() == Some(h)
    };
    let mut lines = rows.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(header) = lines.next() else {
        return SourceRead {
            source: name.into(),
            complete: source.complete,
            rows_seen: 0,
            records: vec![],
            quarantined: vec![],
        };
    };
    let header: Vec<&str> = header.split('|').map(str::trim).collect();
    let mut records = Vec::new();
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(fields.len(), header.len(), "row {line:?}");
        let mut attrs = BTreeMap::new();
        let mut key = String::new();
        for (h, f) in header.iter().zip(fields) {
            if *h == "key" {
                key = f.to_string();
            } else if !f.is_empty() {
                let value = if is_date(h) {
                    FieldValue::Date(NaiveDate::parse_from_str(f, "%Y-%m-%d").expect("date"))
                } else {
                    FieldValue::Text(f.to_string())
                };
                attrs.insert((*h).into(), value);
            }
        }
        attrs.entry("affiliation".into()).or_insert(FieldValue::Text(source.affiliation.clone()));
        let location = Location { file: format!("{name}.csv").into(), line: i as u64 + 2, row: i as u64 + 1 };
        records.push(Record {
            source: name.into(),
            key,
            attrs: std::sync::Arc::new(roster_core::source::Attrs::from(attrs)),
            location,
        });
    }
    SourceRead {
        source: name.into(),
        complete: source.complete,
        rows_seen: records.len() as u64,
        records,
        quarantined: vec![],
    }
}

/// The snapshot a daily run plans from (`Store::snapshot_without_records`, then
/// `Store::read_records` of the persons `stored_records_needed` names, then those of
/// `Prepared::records_unread`): each person's sources with empty records, and the records of those
/// the plan uses. `views` says which targets are read in part: their links' values are read for the
/// persons evaluated only (`Store::read_link_values`).
fn without_records(
    full: &Snapshot,
    settings: &Settings,
    as_of: NaiveDate,
    reads: &[SourceRead],
    views: &BTreeMap<String, TargetView>,
) -> Snapshot {
    let mut light = full.clone();
    for p in light.persons.values_mut() {
        p.records = std::sync::Arc::new(p.records.keys().map(|source| (source.clone(), Default::default())).collect());
        p.records_omitted = true;
    }
    for l in light.links.iter_mut().filter(|l| views.get(&l.target).is_some_and(|v| v.partial.is_some())) {
        l.values = Default::default();
        l.values_omitted = true;
    }
    let fill = |light: &mut Snapshot, needed: &BTreeSet<String>| {
        for key in needed {
            let p = light.persons.get_mut(key).expect("a stored person");
            p.records = full.persons[key].records.clone();
            p.records_omitted = false;
        }
    };
    let prepare_on =
        |light: &Snapshot| prepare(&PlanInput { settings, as_of, reads, snapshot: light, views, evaluate_all: false });
    let needed =
        stored_records_needed(&PlanInput { settings, as_of, reads, snapshot: &light, views, evaluate_all: false });
    fill(&mut light, &needed);
    let unread = prepare_on(&light).records_unread().clone();
    fill(&mut light, &unread);
    let prepared = prepare_on(&light);
    assert!(prepared.records_unread().is_empty(), "the records read are still unread: {unread:?}");
    let evaluated = prepared.evaluated();
    for (l, stored) in light.links.iter_mut().zip(&full.links) {
        if l.values_omitted && evaluated.contains(&l.person) {
            *l = stored.clone();
        }
    }
    light
}

/// Applies a plan the way a directory with referential integrity and the store would.
struct Sim {
    view: TargetView,
    snapshot: Snapshot,
    next_id: u32,
    passwords_set: u32,
}

impl Sim {
    fn entry_mut(&mut self, dn: &str) -> &mut TargetEntry {
        let n = normalize_dn(dn);
        self.view.entries.iter_mut().find(|e| normalize_dn(&e.dn) == n).unwrap_or_else(|| panic!("no entry {dn}"))
    }

    /// As the store does: a group roster created or added a member to is roster's from then on.
    fn own_group(&mut self, target: &str, dn: &str) {
        let group = ManagedGroup { target: target.to_string(), dn: dn.to_string() };
        if !self.snapshot.managed_groups.contains(&group) {
            self.snapshot.managed_groups.push(group);
        }
    }

    fn link_mut(&mut self, person: &str) -> Option<&mut Link> {
        self.snapshot.links.iter_mut().find(|l| l.person == person)
    }

    /// Applies the plan; operations named in `fail` (as `kind:person`) fail, those depending on a
    /// failed one are skipped, and persons with a failed or skipped operation are not recorded.
    fn apply(&mut self, plan: &Plan, fail: &[String], crash_after: Option<&str>) {
        if let Some(crash) = crash_after {
            let before = self.snapshot.clone();
            let stop = plan
                .operations
                .iter()
                .position(|op| format!("{}:{}", op.action.kind(), op.person.as_deref().unwrap_or_default()) == crash)
                .unwrap_or_else(|| panic!("no operation {crash} in the plan"));
            let partial =
                Plan { operations: plan.operations[..=stop].to_vec(), person_updates: vec![], ..plan.clone() };
            self.apply(&partial, fail, None);
            self.snapshot = before;
            for op in &partial.operations {
                if let (Action::Create { .. }, Some(person)) = (&op.action, &op.person) {
                    self.snapshot
                        .unfinished_creates
                        .push(UnfinishedCreate { target: op.target.to_string(), person: person.clone() });
                }
            }
            return;
        }
        self.snapshot.unfinished_creates.clear();
        let mut landed = vec![false; plan.operations.len()];
        let mut troubled = std::collections::BTreeSet::new();
        for op in &plan.operations {
            let person = op.person.clone().unwrap_or_default();
            let named = format!("{}:{}", op.action.kind(), person);
            if fail.contains(&named) || op.depends_on.iter().any(|d| !landed[*d]) {
                troubled.insert(person);
                continue;
            }
            landed[op.id] = true;
            match &op.action {
                Action::CreateContainer { dn } => {
                    self.view.containers.insert(normalize_dn(dn));
                }
                Action::Create { dn, attributes, enabled, password } => {
                    assert!(
                        self.view.entries.iter().all(|e| normalize_dn(&e.dn) != normalize_dn(dn)),
                        "duplicate create {dn}"
                    );
                    let parent = Dn::parse(dn).unwrap().parent().unwrap().normalized();
                    assert!(self.view.containers.contains(&parent), "create {dn} before its container");
                    self.next_id += 1;
                    let id = format!("uuid-{}", self.next_id);
                    for login_attr in ["uid", "sAMAccountName"] {
                        for v in attributes.get(&AttrName::new(login_attr)).into_iter().flatten() {
                            self.view.taken_logins.insert(v.to_lowercase());
                        }
                    }
                    self.view.entries.push(TargetEntry {
                        object_id: id.clone(),
                        dn: dn.to_string(),
                        attrs: attributes.to_map(),
                        protected: false,
                    });
                    let mut values = attributes.to_map();
                    values.remove(&AttrName::new("objectClass"));
                    self.snapshot.links.push(Link {
                        person,
                        target: op.target.to_string(),
                        object_id: id,
                        dn: dn.to_string(),
                        enabled: *enabled,
                        values,
                        password_pending: *password,
                        values_omitted: false,
                    });
                }
                Action::Adopt { dn, object_id } => {
                    self.snapshot.links.push(Link {
                        person,
                        target: op.target.to_string(),
                        object_id: object_id.clone(),
                        dn: dn.clone(),
                        enabled: true,
                        values: Default::default(),
                        password_pending: false,
                        values_omitted: false,
                    });
                }
                Action::SetPassword { .. } => {
                    if let Some(l) = self.link_mut(&person) {
                        l.password_pending = false;
                    }
                    self.passwords_set += 1;
                }
                Action::Update { dn, changes, .. }
                | Action::Enable { dn, changes, .. }
                | Action::Disable { dn, changes, .. } => {
                    let entry = self.entry_mut(dn);
                    for c in changes {
                        let have = entry.attrs.get(&c.attr).cloned().unwrap_or_default();
                        let mut a = have.clone();
                        let mut b = c.old.clone();
                        a.sort();
                        b.sort();
                        assert_eq!(a, b, "conflict on {} of {dn}", c.attr);
                        if c.new.is_empty() {
                            entry.attrs.remove(&c.attr);
                        } else {
                            entry.attrs.insert(c.attr.clone(), c.new.clone());
                        }
                    }
                    let enabled = match &op.action {
                        Action::Enable { .. } => Some(true),
                        Action::Disable { .. } => Some(false),
                        _ => None,
                    };
                    if let Some(l) = self.link_mut(&person) {
                        for c in changes {
                            l.values.insert(c.attr.clone(), c.new.clone());
                        }
                        if let Some(e) = enabled {
                            l.enabled = e;
                        }
                    }
                }
                Action::Rename { dn, new_dn, .. } => {
                    let old = Dn::parse(dn).unwrap();
                    let new = Dn::parse(new_dn).unwrap();
                    assert!(
                        self.view.containers.contains(&new.parent().unwrap().normalized()),
                        "move into missing {new_dn}"
                    );
                    let entry = self.entry_mut(dn);
                    entry.dn = new_dn.clone();
                    let old_rdn = &old.rdn().unwrap().0[0];
                    let new_rdn = &new.rdn().unwrap().0[0];
                    let values = entry.attrs.entry(AttrName::new(old_rdn.attr.clone())).or_default();
                    values.retain(|v| !v.eq_ignore_ascii_case(&old_rdn.value));
                    entry.attrs.entry(AttrName::new(new_rdn.attr.clone())).or_default().push(new_rdn.value.clone());
                    for g in &mut self.view.groups {
                        for m in &mut g.members {
                            if normalize_dn(m) == old.normalized() {
                                *m = new_dn.clone();
                            }
                        }
                    }
                    if let Some(l) = self.link_mut(&person) {
                        l.dn = new_dn.clone();
                    }
                }
                Action::CreateGroup { dn, members, .. } => {
                    self.own_group(&op.target, dn);
                    self.next_id += 1;
                    self.view.groups.push(TargetGroup {
                        object_id: format!("uuid-{}", self.next_id),
                        dn: dn.clone(),
                        members: members.iter().map(|m| m.to_string()).collect(),
                    });
                }
                Action::AddMember { group, member } => {
                    self.own_group(&op.target, group);
                    let g = self
                        .view
                        .groups
                        .iter_mut()
                        .find(|g| normalize_dn(&g.dn) == normalize_dn(group))
                        .expect("group");
                    if !g.members.iter().any(|m| normalize_dn(m) == normalize_dn(member)) {
                        g.members.push(member.clone());
                    }
                }
                Action::RemoveMember { group, member } => {
                    let g = self
                        .view
                        .groups
                        .iter_mut()
                        .find(|g| normalize_dn(&g.dn) == normalize_dn(group))
                        .expect("group");
                    g.members.retain(|m| normalize_dn(m) != normalize_dn(member));
                    assert!(!g.members.is_empty(), "groupOfNames {group} emptied");
                }
                Action::Delete { dn, .. } => {
                    let n = normalize_dn(dn);
                    self.view.entries.retain(|e| normalize_dn(&e.dn) != n);
                    for g in &mut self.view.groups {
                        g.members.retain(|m| normalize_dn(m) != n);
                    }
                    self.snapshot.links.retain(|l| l.person != person);
                }
            }
        }
        for u in plan.person_updates.iter().filter(|u| !troubled.contains(&u.key)) {
            if u.tombstone {
                self.snapshot.persons.remove(&u.key);
                self.snapshot.links.retain(|l| l.person != u.key);
                if let Some(login) = &u.login
                    && !self.snapshot.tombstones.iter().any(|t| &t.login == login)
                {
                    self.snapshot.tombstones.push(Tombstone {
                        person: u.key.clone(),
                        login: login.clone(),
                        purged_on: plan.as_of,
                    });
                }
                continue;
            }
            self.snapshot.persons.insert(
                u.key.clone(),
                StoredPerson {
                    key: u.key.clone(),
                    login: u.login.clone(),
                    state: u.state,
                    records: u.records.clone().into(),
                    eval_hash: u.eval_hash.clone(),
                    missing_reads: u.missing_reads,
                    left_on: u.left_on,
                    next_transition: u.next_transition,
                    hold: u.hold.clone(),
                    record_keys: u.record_keys.clone(),
                    provenance: u.provenance.clone(),
                    records_omitted: false,
                },
            );
        }
        for (s, c) in &plan.source_counts {
            self.snapshot.source_counts.insert(s.clone(), *c);
        }
    }
}

fn directory(lines: &[String]) -> TargetView {
    let mut view = TargetView { target: "ldap".into(), ..Default::default() };
    for c in ["ou=people,dc=example,dc=org", "ou=groups,dc=example,dc=org", "ou=leavers,ou=people,dc=example,dc=org"] {
        view.containers.insert(normalize_dn(c));
    }
    for (i, line) in lines.iter().enumerate() {
        let (dn, attrs) = line.split_once('|').expect("dn|attrs");
        if dn.to_ascii_lowercase().starts_with("ou=") {
            view.containers.insert(normalize_dn(dn));
            continue;
        }
        let mut map = roster_core::attr::AttrMap::new();
        for pair in attrs.split(';').filter(|p| !p.is_empty()) {
            let (a, v) = pair.split_once('=').expect("attr=value");
            map.entry(AttrName::new(a.trim())).or_default().push(v.trim().to_string());
        }
        if let Some(uid) = map.get(&AttrName::new("uid")) {
            view.taken_logins.extend(uid.iter().map(|u| u.to_lowercase()));
        }
        let mut ancestor = Dn::parse(dn).unwrap().parent();
        while let Some(a) = ancestor.filter(|a| a.rdns().len() > 2) {
            view.containers.insert(a.normalized());
            ancestor = a.parent();
        }
        let protected = map.get(&AttrName::new("adminCount")).is_some_and(|v| v.iter().any(|x| x == "1"));
        view.entries.push(TargetEntry { object_id: format!("pre-{i}"), dn: dn.to_string(), attrs: map, protected });
    }
    view
}

fn run_story(path: &Path) {
    let name = path.file_stem().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let story: Story = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let base = std::fs::read_to_string(path.with_file_name("base.toml")).unwrap();
    let mut config_text = story.config.clone().unwrap_or(base);
    let mut settings: Settings = load(&config_text, "story.toml").unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let mut sim =
        Sim { view: directory(&story.directory), snapshot: Snapshot::default(), next_id: 0, passwords_set: 0 };
    let mut transcript = String::new();
    for day in &story.day {
        if let Some(more) = &day.config_add {
            config_text.push_str(more);
            settings = load(&config_text, "story.toml").unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
        let as_of = NaiveDate::parse_from_str(&day.as_of, "%Y-%m-%d").unwrap();
        let mut reads: Vec<SourceRead> = settings
            .sources
            .iter()
            .map(|s| {
                read(s, if s.name == "hr" { &day.hr } else { day.sources.get(&s.name).map_or("", String::as_str) })
            })
            .collect();
        for name in day.sources.keys() {
            assert!(settings.sources.iter().any(|s| &s.name == name), "{name}: no such source in the config");
        }
        let hr = reads.iter().position(|r| r.source == "hr").unwrap_or(0);
        let hr = &mut reads[hr];
        for q in &day.quarantined {
            let (key, reason) = q.split_once('|').unwrap();
            hr.quarantined.push(QuarantinedRow {
                source: hr.source.clone(),
                key: Some(key.to_string()),
                location: Location { file: "hr.csv".into(), line: 99, row: 98 },
                reason: reason.to_string(),
            });
            hr.rows_seen += 1;
        }
        let views = BTreeMap::from([(settings.targets[0].name().to_string(), sim.view.clone())]);
        let p = plan(&PlanInput {
            settings: &settings,
            as_of,
            reads: &reads,
            snapshot: &sim.snapshot,
            views: &views,
            evaluate_all: false,
        });
        // A daily run's snapshot holds only the records the plan needs, and plans the same.
        let light = without_records(&sim.snapshot, &settings, as_of, &reads, &views);
        let mut q = plan(&PlanInput {
            settings: &settings,
            as_of,
            reads: &reads,
            snapshot: &light,
            views: &views,
            evaluate_all: false,
        });
        assert!(q.summary.stored_records <= p.summary.stored_records, "{name} {}", day.as_of);
        q.summary.stored_records = p.summary.stored_records;
        assert_eq!(q, p, "{name} {}: the plan from the stored records needed differs", day.as_of);
        transcript.push_str(&format!("===== {} =====\n{}\n", day.as_of, render(&p)));
        if !day.plan_only && (!p.is_blocked() || day.allow) {
            sim.apply(&p, &day.fail, day.crash_after.as_deref());
        }
    }
    transcript.push_str("===== directory after the last day =====\n");
    let mut entries = sim.view.entries.clone();
    entries.sort_by(|a, b| a.dn.cmp(&b.dn));
    for e in entries {
        let attrs: Vec<String> =
            e.attrs.iter().filter(|(a, _)| !a.is("objectClass")).map(|(a, v)| format!("{a}={}", v.join("+"))).collect();
        transcript.push_str(&format!("{}\n    {}\n", e.dn, attrs.join("; ")));
    }
    let mut groups = sim.view.groups.clone();
    groups.sort_by(|a, b| a.dn.cmp(&b.dn));
    for g in groups {
        let mut m = g.members.clone();
        m.sort();
        transcript.push_str(&format!("{}\n    member={}\n", g.dn, m.join(" + ")));
    }
    let mut tomb: Vec<String> = sim.snapshot.tombstones.iter().map(|t| format!("{} ({})", t.login, t.person)).collect();
    tomb.sort();
    if !tomb.is_empty() {
        transcript.push_str(&format!("tombstones: {}\n", tomb.join(", ")));
    }
    if sim.passwords_set > 0 {
        transcript.push_str(&format!("initial passwords set: {}\n", sim.passwords_set));
    }
    insta::with_settings!({ snapshot_path => "stories/snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(name, transcript);
    });
}

#[test]
fn stories() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stories");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && !p.ends_with("base.toml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for p in paths {
        run_story(&p);
    }
}

/// A daily run evaluates only the persons whose records changed, whose next transition came due,
/// and the reports of a manager who is evaluated (their manager reference may move); everyone else
/// keeps their stored state and gets no operation. `evaluate_all` (reconcile) evaluates everyone.
#[test]
fn a_daily_run_evaluates_only_the_persons_it_must() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stories");
    let settings = load(&std::fs::read_to_string(dir.join("base.toml")).unwrap(), "base.toml").unwrap();
    let mut sim = Sim { view: directory(&[]), snapshot: Snapshot::default(), next_id: 0, passwords_set: 0 };
    let header = "key | given_name | family_name | hire_date | department | title | location | manager";
    let rows = |ada_department: &str, ed_title: &str| {
        format!(
            "{header}
            00001 | Ada | Lovelace | 2020-01-01 | {ada_department} | Head  | Berlin |
            00002 | Bob | Baker    | 2020-01-01 | Sales            | Rep   | Berlin | 00001
            00003 | Cy  | Cole     | 2020-01-01 | Sales            | Rep   | Berlin | 00001
            00004 | Di  | Dane     | 2020-01-01 | IT               | Admin | Berlin |
            00005 | Ed  | Eames    | 2020-01-01 | IT               | {ed_title} | Berlin | 00004
            00006 | Flo | Fox      | 2026-03-05 | IT               | Admin | Berlin | 00004"
        )
    };
    let mut day = |as_of: &str, hr: String, evaluate_all: bool| {
        let views = BTreeMap::from([(settings.targets[0].name().to_string(), sim.view.clone())]);
        let as_of = NaiveDate::parse_from_str(as_of, "%Y-%m-%d").unwrap();
        let reads = [read(&settings.sources[0], &hr)];
        let p = plan(&PlanInput {
            settings: &settings,
            as_of,
            reads: &reads,
            snapshot: &sim.snapshot,
            views: &views,
            evaluate_all,
        });
        sim.apply(&p, &[], None);
        p
    };
    let touched = |p: &Plan| {
        let mut persons: Vec<String> = p.operations.iter().filter_map(|o| o.person.clone()).collect();
        persons.dedup();
        persons
    };

    let first = day("2026-03-02", rows("Sales", "Admin"), false);
    assert_eq!((first.summary.persons, first.summary.evaluated), (6, 6));

    let unchanged = day("2026-03-03", rows("Sales", "Admin"), false);
    assert_eq!(unchanged.summary.evaluated, 0);
    assert!(unchanged.operations.is_empty(), "{}", render(&unchanged));
    assert!(unchanged.person_updates.is_empty());

    // Ed's title changes; Ada moves to Marketing, so her reports' manager reference follows her.
    let changes = day("2026-03-04", rows("Marketing", "Senior Admin"), false);
    assert_eq!(changes.summary.evaluated, 4, "{}", render(&changes));
    assert_eq!(touched(&changes).into_iter().collect::<std::collections::BTreeSet<_>>().len(), 4);
    let manager_updates = changes
        .operations
        .iter()
        .filter(|o| matches!(&o.action, Action::Update { changes, .. } if changes.iter().any(|c| c.attr.is("manager"))))
        .count();
    assert_eq!(manager_updates, 2, "{}", render(&changes));

    // Flo's hire date comes: only she is evaluated, and enabled.
    let hire_day = day("2026-03-05", rows("Marketing", "Senior Admin"), false);
    assert_eq!(hire_day.summary.evaluated, 1, "{}", render(&hire_day));
    assert_eq!(touched(&hire_day), vec!["00006".to_string()]);

    let everyone = day("2026-03-05", rows("Marketing", "Senior Admin"), true);
    assert_eq!(everyone.summary.evaluated, 6);
    assert!(everyone.operations.is_empty(), "{}", render(&everyone));
}

/// A plan's JSON written on every core (`Plan::write_json`) is the JSON serde writes on one: a
/// first day of 20,000 joiners, so the operations and the person updates each span several of
/// the workers' blocks.
#[test]
fn a_plan_written_on_every_core_is_the_json_serde_writes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stories");
    let settings = load(&std::fs::read_to_string(dir.join("base.toml")).unwrap(), "base.toml").unwrap();
    let mut hr = String::from("key | given_name | family_name | hire_date | department | title | location | manager");
    for n in 0..20_000 {
        let manager = if n == 0 { String::new() } else { format!("{:05}", n / 8) };
        hr.push_str(&format!("\n{n:05} | Ada{n} | Lövelace \"{n}\" | 2020-01-01 | Sales | Rep | Berlin | {manager}"));
    }
    let views = BTreeMap::from([(settings.targets[0].name().to_string(), directory(&[]))]);
    let reads = [read(&settings.sources[0], &hr)];
    let mut p = plan(&PlanInput {
        settings: &settings,
        as_of: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        reads: &reads,
        snapshot: &Snapshot::default(),
        views: &views,
        evaluate_all: false,
    });
    assert!(p.operations.len() > 20_000 && p.person_updates.len() == 20_000, "{}", p.operations.len());
    // A group of everyone is too long for a worker's buffer: the writing thread writes it, its
    // members in parts and its dependencies (on each member's create) into their places.
    let largest = p.operations.iter().filter_map(|o| match &o.action {
        Action::CreateGroup { members, .. } => Some((members.len(), o.depends_on.len())),
        _ => None,
    });
    let (members, depends) = largest.max().unwrap();
    assert!(members > roster_core::plan::JSON_GROUP_MEMBERS_WRITTEN_DIRECTLY && depends > 0, "{members} {depends}");
    let expected = String::from_utf8(serde_json::to_vec(&p).unwrap()).unwrap();
    let mut written = Vec::new();
    p.write_json(&mut written).unwrap();
    assert!(String::from_utf8(written).unwrap() == expected, "the JSON differs");
    assert_eq!(
        (p.operations.len(), p.person_updates.len()),
        (serde_json::from_str::<Plan>(&expected).unwrap().operations.len(), 20_000)
    );
}

/// What a directory's partial read returns for `ask` (as `LdapTarget::read_part` does): the
/// accounts with an asked id or key or at an asked DN, the groups holding them (listing only them),
/// the asked groups whole, the containers, and the asked logins some account holds.
fn read_part(full: &TargetView, ask: &ViewRequest, correlate: &str) -> TargetView {
    let correlate = AttrName::new(correlate);
    let asked_dns: BTreeSet<String> = ask.dns.iter().map(|d| normalize_dn(d)).collect();
    let entries: Vec<TargetEntry> = full
        .entries
        .iter()
        .filter(|e| {
            ask.object_ids.contains(&e.object_id)
                || asked_dns.contains(&normalize_dn(&e.dn))
                || e.attrs.get(&correlate).is_some_and(|v| v.iter().any(|k| ask.keys.contains(k)))
        })
        .cloned()
        .collect();
    let read: BTreeSet<String> = entries.iter().map(|e| normalize_dn(&e.dn)).collect();
    let groups = full
        .groups
        .iter()
        .filter_map(|g| {
            let norm = normalize_dn(&g.dn);
            if ask.groups.contains(&norm) || asked_dns.contains(&norm) {
                return Some(g.clone());
            }
            let members: Vec<String> = g.members.iter().filter(|m| read.contains(&normalize_dn(m))).cloned().collect();
            (!members.is_empty()).then(|| TargetGroup { members, ..g.clone() })
        })
        .collect();
    let taken_logins =
        full.taken_logins.iter().filter(|l| ask.logins.iter().any(|a| a.to_lowercase() == **l)).cloned().collect();
    TargetView {
        target: full.target.clone(),
        entries,
        groups,
        containers: full.containers.clone(),
        taken_logins,
        partial: Some(ask.clone()),
    }
}

/// The rounds of a daily run that reads the one target in part, from `ask` on, as the runner
/// makes them: each round plans from `prepared` and must plan what `whole` plans from the same
/// view; the view grows by what each plan needs until it needs nothing more. Returns the last
/// round's plan, its view and how many reads followed the first.
fn in_rounds(
    settings: &Settings,
    input: &PlanInput,
    prepared: &roster_core::engine::Prepared,
    sim: &Sim,
    mut ask: ViewRequest,
    whole: impl Fn(TargetView) -> Plan,
) -> (Plan, TargetView, usize) {
    let rules = &settings.targets[0];
    let mut view = read_part(&sim.view, &ask, &rules.config.correlate);
    let mut rounds = 0;
    loop {
        let views = BTreeMap::from([(rules.name().to_string(), view.clone())]);
        let mut part = plan_prepared(&PlanInput { views: &views, ..*input }, prepared);
        let whole = whole(view.clone());
        part.summary.stored_records = whole.summary.stored_records;
        assert_eq!(part, whole, "the prepared plan differs from a plan made whole");
        let more =
            more_to_read(&settings.targets, &sim.snapshot, &part, &views).remove(rules.name()).unwrap_or_default();
        if !ask.extend(more.clone()) {
            return (part, view, rounds);
        }
        view.merge_part(read_part(&sim.view, &more, &rules.config.correlate));
        rounds += 1;
        assert!(rounds < 5, "the partial read does not settle");
    }
}

/// A daily run that reads only the evaluated persons' accounts, then what its plan needs, plans
/// what the run that read everything plans; an account it did not read is unknown, never gone.
#[test]
fn a_partial_view_plans_what_the_full_view_plans_and_takes_nothing_unread_for_gone() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stories");
    let settings = load(&std::fs::read_to_string(dir.join("base.toml")).unwrap(), "base.toml").unwrap();
    let rules = &settings.targets[0];
    let mut sim = Sim {
        view: directory(&["uid=cy.cole,ou=people,dc=example,dc=org|uid=cy.cole;cn=Cy Cole".to_string()]),
        snapshot: Snapshot::default(),
        next_id: 0,
        passwords_set: 0,
    };
    let header = "key | given_name | family_name | hire_date | last_day | department | title | location | manager";
    // Bob's last day, Ed's department, Gus's manager, Di's department, and whether Cy joins.
    let rows = |bob_leaves: &str, ed: &str, gus_manager: &str, di: &str, cy: bool| {
        let mut rows = format!(
            "00001 | Ada | Lovelace | 2020-01-01 | | Sales | Head | Berlin |
             00002 | Bob | Baker | 2020-01-01 | {bob_leaves} | Sales | Rep | Berlin | 00001
             00004 | Di | Dane | 2020-01-01 | | {di} | Admin | Berlin |
             00005 | Ed | Eames | 2020-01-01 | | {ed} | Admin | Berlin | 00004
             00007 | Gus | Gray | 2020-01-01 | | IT | Admin | Berlin | {gus_manager}"
        );
        if cy {
            rows += "\n00008 | Cy | Cole | 2026-03-03 | | IT | Admin | Berlin | 00004";
        }
        rows
    };
    let base = rows("", "IT", "00004", "IT", false);
    let base = base.as_str();
    let as_of = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let plan_with = |sim: &Sim, day: &str, hr: &str, view: TargetView| {
        let views = BTreeMap::from([(rules.name().to_string(), view)]);
        let reads = [read(&settings.sources[0], &format!("{header}\n{hr}"))];
        plan(&PlanInput {
            settings: &settings,
            as_of: as_of(day),
            reads: &reads,
            snapshot: &sim.snapshot,
            views: &views,
            evaluate_all: false,
        })
    };
    let first = plan_with(&sim, "2026-03-02", base, sim.view.clone());
    sim.apply(&first, &[], None);

    // A joiner whose first login a foreign account holds, a leaver, a mover, a manager change.
    let day = "2026-03-03";
    let hr = rows("2026-03-02", "Sales", "00001", "IT", true);
    let full = plan_with(&sim, day, &hr, sim.view.clone());
    let reads = [read(&settings.sources[0], &format!("{header}\n{hr}"))];
    let placeholder = BTreeMap::from([(
        rules.name().to_string(),
        TargetView { partial: Some(ViewRequest::default()), ..TargetView::default() },
    )]);
    // As the runner does: the store read light (the settled persons' records and link values not
    // read), who is evaluated once, shared by the rounds of plans.
    let light = without_records(&sim.snapshot, &settings, as_of(day), &reads, &placeholder);
    assert!(light.links.iter().any(|l| l.values_omitted), "every link's values were read");
    let input = PlanInput {
        settings: &settings,
        as_of: as_of(day),
        reads: &reads,
        snapshot: &light,
        views: &placeholder,
        evaluate_all: false,
    };
    let prepared = prepare(&input);
    let evaluated = prepared.evaluated();
    assert_eq!(evaluated, evaluated_persons(&input));
    assert_eq!(evaluated.len() as u64, full.summary.evaluated, "{}", render(&full));
    assert!(evaluated.len() < 5, "{evaluated:?}");
    let ask = first_request(rules, &sim.snapshot, &evaluated);
    let (part, view, rounds) =
        in_rounds(&settings, &input, &prepared, &sim, ask, |view| plan_with(&sim, day, &hr, view));
    assert!(rounds > 0, "the joiner's login and the leaver's groups needed a second read");
    // The last round may move the prepared persons into its plan instead of copying them: the
    // same plan.
    let views = BTreeMap::from([(rules.name().to_string(), view.clone())]);
    let mut last = plan_prepared_last(&PlanInput { views: &views, ..input }, prepared);
    last.summary.stored_records = part.summary.stored_records;
    assert_eq!(last, part, "the plan that moves the prepared persons differs from the one that copies them");
    assert_eq!(render(&part), render(&full));
    assert_eq!(part.person_updates, full.person_updates);
    assert!(part.summary.partial_read && !full.summary.partial_read);
    assert!(part.summary.entries_read < full.summary.entries_read, "{:?} {:?}", part.summary, full.summary);
    assert!(render(&part).contains("c.cole"), "cy.cole is taken by a foreign account: {}", render(&part));

    // Nothing read for the settled: nobody is taken for gone, nothing is recreated or removed.
    let nothing = TargetView {
        partial: Some(ViewRequest::default()),
        containers: sim.view.containers.clone(),
        ..TargetView::default()
    };
    let unchanged = plan_with(&sim, "2026-03-02", base, nothing.clone());
    assert!(unchanged.operations.is_empty(), "{}", render(&unchanged));
    // An evaluated person whose account was not asked for is left alone, with a notice.
    let moved = rows("", "IT", "00004", "HR", false);
    let blind = plan_with(&sim, "2026-03-02", &moved, nothing);
    assert!(!blind.operations.iter().any(|o| o.person.as_deref() == Some("00004")), "{}", render(&blind));
    assert!(blind.notices.iter().any(|n| n.person.as_deref() == Some("00004") && n.message.contains("not read")));
}

/// A group that a daily run reads whole and that a leaver empties gets the placeholder member; when
/// a joiner fills it again, the placeholder goes. Read in part, the run plans both as the run that
/// read everything does: the group's members who are nobody evaluated in this run only count.
#[test]
fn a_partial_read_empties_and_fills_a_group_as_a_full_read_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stories");
    let settings = load(&std::fs::read_to_string(dir.join("base.toml")).unwrap(), "base.toml").unwrap();
    let rules = &settings.targets[0];
    let mut sim = Sim { view: directory(&[]), snapshot: Snapshot::default(), next_id: 0, passwords_set: 0 };
    let header = "key | given_name | family_name | hire_date | department | title | location | manager";
    let as_of = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let base = "00001 | Ada | Lovelace | 2020-01-01 | Sales | Head  | Berlin |
                00002 | Bob | Baker    | 2020-01-01 | Sales | Rep   | Berlin | 00001
                00004 | Di  | Dane     | 2020-01-01 | IT    | Admin | Berlin |";
    let reads = |hr: &str| [read(&settings.sources[0], &format!("{header}\n{hr}"))];
    let whole_plan = |sim: &Sim, day: &str, hr: &str, view: TargetView| {
        let views = BTreeMap::from([(rules.name().to_string(), view)]);
        plan(&PlanInput {
            settings: &settings,
            as_of: as_of(day),
            reads: &reads(hr),
            snapshot: &sim.snapshot,
            views: &views,
            evaluate_all: false,
        })
    };
    // The day read in part, as the runner reads it, checked against the day read in full.
    let in_part = |sim: &Sim, day: &str, hr: &str| {
        let full = whole_plan(sim, day, hr, sim.view.clone());
        let reads = reads(hr);
        let unread = BTreeMap::from([(
            rules.name().to_string(),
            TargetView { partial: Some(ViewRequest::default()), ..TargetView::default() },
        )]);
        let light = without_records(&sim.snapshot, &settings, as_of(day), &reads, &unread);
        let input = PlanInput {
            settings: &settings,
            as_of: as_of(day),
            reads: &reads,
            snapshot: &light,
            views: &unread,
            evaluate_all: false,
        };
        let prepared = prepare(&input);
        let ask = first_request(rules, &sim.snapshot, &prepared.evaluated());
        let (part, _, _) = in_rounds(&settings, &input, &prepared, sim, ask, |view| whole_plan(sim, day, hr, view));
        assert_eq!(render(&part), render(&full), "{day}: read in part, read in full");
        part
    };
    let reasons = |plan: &Plan| plan.operations.iter().map(|o| o.reason.clone()).collect::<Vec<_>>();
    let first = whole_plan(&sim, "2026-03-02", base, sim.view.clone());
    sim.apply(&first, &[], None);

    // Di, the only one in IT, moves to Sales: staff-it keeps only the placeholder.
    let moved = base.replace("IT    | Admin", "Sales | Admin");
    let emptied = in_part(&sim, "2026-03-03", &moved);
    let placeholder = "a groupOfNames cannot be empty: the placeholder member keeps it valid";
    assert!(reasons(&emptied).iter().any(|r| &**r == placeholder), "{}", render(&emptied));
    sim.apply(&emptied, &[], None);

    // Cy joins IT: the placeholder goes.
    let joined = format!("{moved}\n00008 | Cy | Cole | 2026-03-04 | IT | Admin | Berlin | 00004");
    let filled = in_part(&sim, "2026-03-04", &joined);
    let gone = "the group has real members again: placeholder removed";
    assert!(reasons(&filled).iter().any(|r| &**r == gone), "{}", render(&filled));
}

/// A daily run reads from the store only the records of the persons whose stored record it uses
/// (missing from a complete source, a row quarantined), never everyone's, and plans what a run
/// that read every record plans (`stories` compares the two on every day of every story).
#[test]
fn a_daily_run_reads_the_stored_records_of_the_missing_and_the_quarantined_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stories");
    let settings = load(&std::fs::read_to_string(dir.join("base.toml")).unwrap(), "base.toml").unwrap();
    let mut sim = Sim { view: directory(&[]), snapshot: Snapshot::default(), next_id: 0, passwords_set: 0 };
    let header = "key | given_name | family_name | hire_date | department | title | location | manager";
    let everyone = [
        "00001 | Ada | Lovelace | 2020-01-01 | Sales | Head  | Berlin |",
        "00002 | Bob | Baker    | 2020-01-01 | Sales | Rep   | Berlin | 00001",
        "00003 | Cy  | Cole     | 2020-01-01 | Sales | Rep   | Berlin | 00001",
        "00004 | Di  | Dane     | 2020-01-01 | IT    | Admin | Berlin |",
    ];
    let as_of = NaiveDate::parse_from_str("2026-03-02", "%Y-%m-%d").unwrap();
    // Both plans of a day, from the whole snapshot and from the one a daily run reads.
    let both = |sim: &Sim, reads: &[SourceRead]| {
        let views = BTreeMap::from([(settings.targets[0].name().to_string(), sim.view.clone())]);
        let input =
            |snapshot| PlanInput { settings: &settings, as_of, reads, snapshot, views: &views, evaluate_all: false };
        let light = without_records(&sim.snapshot, &settings, as_of, reads, &views);
        (plan(&input(&sim.snapshot)), plan(&input(&light)))
    };
    let hr = |rows: &[&str]| [read(&settings.sources[0], &format!("{header}\n{}", rows.join("\n")))];

    let (first, _) = both(&sim, &hr(&everyone));
    sim.apply(&first, &[], None);
    assert_eq!(first.summary.stored_records, 0);

    let (full, light) = both(&sim, &hr(&everyone));
    assert_eq!((full.summary.stored_records, light.summary.stored_records), (4, 0));
    assert_eq!((light.summary.evaluated, light.operations.len()), (0, 0), "{}", render(&light));

    // Bob is gone from the export and Cy's row is quarantined: their stored records are read.
    let mut reads = hr(&[everyone[0], everyone[3]]);
    reads[0].quarantined.push(QuarantinedRow {
        source: "hr".into(),
        key: Some("00003".into()),
        location: Location { file: "hr.csv".into(), line: 4, row: 3 },
        reason: "bad date".into(),
    });
    let (full, mut light) = both(&sim, &reads);
    assert_eq!(light.summary.stored_records, 2);
    assert!(light.person_updates.iter().any(|u| u.key == "00002"), "Bob is missing: {}", render(&light));
    assert!(light.notices.iter().any(|n| n.person.as_deref() == Some("00003")), "{}", render(&light));
    light.summary.stored_records = full.summary.stored_records;
    assert_eq!(light, full);
}
