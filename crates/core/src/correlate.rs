//! Step 1 of the planner: the records of every source become persons.
//!
//! A person's identity is the key under which roster first knew them; the store remembers, per
//! person, the record key of each source (`StoredPerson::record_keys`). A record joins a person:
//!
//! 1. when its (source, key) is already linked to that person;
//! 2. else by a person's decision (`[[correlation.decide]]`);
//! 3. else when its key is a person's key, or another source's record key of one person, and
//!    that person has no other record of this source;
//! 4. else by its source's `previous_key` attribute: the key the human had before (a new worker
//!    ID after a conversion), which the new record supersedes;
//! 5. else by its source's secondary keys (`correlate`): exactly one candidate joins; two or more
//!    are a dispute: the record is not merged and the candidates are held until a person decides;
//! 6. else it is a new person, under its key (or `source:key` when that key already names
//!    another person).
//!
//! A source lists each human once: a record never joins a person who already has a different
//! record of the same source, except the record it supersedes by `previous_key`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::plan::{Notice, NoticeKind};
use crate::settings::Settings;
use crate::source::{Field, Records, SourceRead};
use crate::state::{Snapshot, StoredPerson};
use crate::{FastMap, fast_map};

type Attrs = std::sync::Arc<crate::source::Attrs>;

/// The persons of one run, as the records of this run say.
pub(crate) struct Correlated<'a> {
    /// Person key -> source -> (record key, attributes), for the records read in this run.
    pub persons: FastMap<Cow<'a, str>, PersonRecords<'a>>,
    /// The persons of `persons` the snapshot does not hold: new in this run.
    pub new_persons: Vec<Cow<'a, str>>,
    /// Persons held by a disputed correlation, with the record in dispute.
    pub disputed: BTreeMap<String, String>,
    /// Record key (of any source) -> person key, for references by source key (`manager`); a key
    /// with no entry names the person of that key ([`Correlated::person_of`]), so a record held
    /// under its person's own key, most of them, has none.
    pub aliases: FastMap<Cow<'a, str>, Cow<'a, str>>,
    pub notices: Vec<Notice>,
}

/// One person's records of this run: source -> (record key, attributes), in source order. Most
/// persons have one: a vector of them costs a tenth of a map's node per person.
#[derive(Default)]
pub(crate) struct PersonRecords<'a>(Vec<(&'a str, (&'a str, &'a Attrs))>);

impl<'a> PersonRecords<'a> {
    pub fn get(&self, source: &str) -> Option<&(&'a str, &'a Attrs)> {
        self.0.iter().find(|(s, _)| *s == source).map(|(_, record)| record)
    }

    fn insert(&mut self, source: &'a str, record: (&'a str, &'a Attrs)) {
        match self.0.binary_search_by(|(s, _)| (*s).cmp(source)) {
            Ok(at) => self.0[at].1 = record,
            Err(at) => self.0.insert(at, (source, record)),
        }
    }

    fn remove(&mut self, source: &str) {
        self.0.retain(|(s, _)| *s != source);
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &(&'a str, (&'a str, &'a Attrs))> {
        self.0.iter()
    }
}

impl Correlated<'_> {
    /// The person a source key names: a person key, or a record key of one person.
    pub fn person_of<'k>(&'k self, key: &'k str) -> &'k str {
        self.aliases.get(key).map_or(key, |person| person.as_ref())
    }
}

/// Whether a stored person holds a record under their own key.
fn names_itself(snapshot: &Snapshot, key: &str) -> bool {
    snapshot.persons.get(key).is_some_and(|p| p.records.keys().any(|source| record_key_of(p, source) == key))
}

/// The record key of `source` stored for a person: before roster remembered record keys, a
/// person's records all had the person's key.
pub(crate) fn stored_record_key<'a>(snapshot: &'a Snapshot, person: &'a str, source: &str) -> &'a str {
    snapshot.persons.get(person).map_or(person, |p| record_key_of(p, source))
}

/// [`stored_record_key`] of a stored person at hand.
pub(crate) fn record_key_of<'a>(p: &'a StoredPerson, source: &str) -> &'a str {
    p.record_keys.get(source).map_or(&p.key, String::as_str)
}

struct Index<'a> {
    settings: &'a Settings,
    snapshot: &'a Snapshot,
    /// (source, record key) -> person, as stored.
    linked: FastMap<(&'a str, &'a str), &'a StoredPerson>,
    /// The keys that name a person other than a stored person's own ([`Index::by_key`]): record
    /// keys that are no stored person's key (the first person to hold one keeps it) and the keys
    /// of new persons. Borrowed from the snapshot and the reads (a new person's key too, unless it
    /// is made as `source:key`).
    /// A stored person's key always names that person and is not held here: a daily run at a
    /// million persons made a map of everyone's key to itself.
    other_keys: FastMap<Cow<'a, str>, Cow<'a, str>>,
    /// (attribute, value) -> persons holding it.
    secondary: HashMap<(String, String), BTreeSet<String>>,
    /// Every attribute some source correlates by.
    secondary_attrs: BTreeSet<&'a str>,
    out: Correlated<'a>,
}

impl<'a> Index<'a> {
    /// `records`: the most records of one source read, which sizes the maps of persons (a first
    /// load of a million grew them from nothing, a tenth of correlating them).
    fn new(settings: &'a Settings, snapshot: &'a Snapshot, records: usize) -> Index<'a> {
        let secondary_attrs: BTreeSet<&str> =
            settings.sources.iter().flat_map(|s| s.correlate.iter().map(String::as_str)).collect();
        let stored = snapshot.persons.len();
        let mut index = Index {
            settings,
            snapshot,
            linked: fast_map(stored),
            other_keys: fast_map(records.saturating_sub(stored)),
            secondary: HashMap::new(),
            secondary_attrs,
            out: Correlated {
                persons: fast_map(stored.max(records)),
                new_persons: Vec::new(),
                disputed: BTreeMap::new(),
                aliases: FastMap::default(),
                notices: Vec::new(),
            },
        };
        for p in snapshot.persons.values() {
            for (source, attrs) in p.records.iter() {
                let record_key = record_key_of(p, source);
                index.linked.insert((source.as_str(), record_key), p);
                // A record key that is its person's own key names that person without an entry,
                // in `other_keys` and in `aliases` alike.
                if record_key != p.key {
                    if !snapshot.persons.contains_key(record_key) {
                        index.other_keys.entry(Cow::Borrowed(record_key)).or_insert(Cow::Borrowed(&p.key));
                    }
                    // The first person in key order to hold a record key keeps its alias; the
                    // person it names keeps it when they hold it too and come first.
                    if !(record_key < p.key.as_str() && names_itself(snapshot, record_key)) {
                        index.out.aliases.entry(Cow::Borrowed(record_key)).or_insert(Cow::Borrowed(&p.key));
                    }
                }
                index.remember_secondary(&p.key, attrs);
            }
        }
        index
    }

    /// The person a key names: a stored person by their own key, else a record key's or a new
    /// person's ([`Index::other_keys`]).
    fn by_key(&self, key: &str) -> Option<Cow<'a, str>> {
        match self.snapshot.persons.get_key_value(key) {
            Some((key, _)) => Some(Cow::Borrowed(key.as_str())),
            None => self.other_keys.get(key).cloned(),
        }
    }

    fn remember_secondary(&mut self, person: &str, attrs: &Attrs) {
        for attr in &self.secondary_attrs {
            if let Some(value) = attrs.get(attr).map(Field::to_text).filter(|v| !v.is_empty()) {
                self.secondary.entry((attr.to_string(), value)).or_default().insert(person.to_string());
            }
        }
    }

    /// The record key this person has in `source`, if it is not `record_key`: this run's record,
    /// or the stored one.
    fn other_record(&self, person: &str, source: &str, record_key: &str) -> Option<String> {
        self.other_record_of(person, self.snapshot.persons.get(person), source, record_key)
    }

    /// [`Index::other_record`] of a person whose stored self (if any) is at hand.
    fn other_record_of(
        &self,
        person: &str,
        stored: Option<&StoredPerson>,
        source: &str,
        record_key: &str,
    ) -> Option<String> {
        if let Some((k, _)) = self.out.persons.get(person).and_then(|m| m.get(source)) {
            return (*k != record_key).then(|| k.to_string());
        }
        let stored = stored?;
        stored.records.contains_key(source).then(|| record_key_of(stored, source)).and_then(|k| {
            // A stored record whose key is read again in this run was claimed by step 1.
            (k != record_key).then(|| k.to_string())
        })
    }

    fn known(&self, person: &str) -> bool {
        self.snapshot.persons.contains_key(person) || self.out.persons.contains_key(person)
    }

    fn join(&mut self, person: Cow<'a, str>, source: &'a str, record_key: &'a str, attrs: &'a Attrs) {
        self.out.persons.entry(person.clone()).or_default().insert(source, (record_key, attrs));
        if record_key == person.as_ref() {
            // A person's own key names them ([`Index::by_key`], [`Correlated::person_of`]).
            self.out.aliases.remove(record_key);
            self.remember_secondary(&person, attrs);
            return;
        }
        if !self.snapshot.persons.contains_key(record_key) {
            self.other_keys.entry(Cow::Borrowed(record_key)).or_insert_with(|| person.clone());
        }
        self.remember_secondary(&person, attrs);
        self.out.aliases.insert(Cow::Borrowed(record_key), person);
    }

    /// A new person for a record: under its key, unless that key already names someone.
    /// Most often under the record's key itself, borrowed from the read: a first load of a million
    /// made five copies of each key here.
    fn new_person(&mut self, source: &'a str, record_key: &'a str, attrs: &'a Attrs) {
        let free = |index: &Index, key: &str| !index.known(key) && index.by_key(key).is_none_or(|p| p == key);
        let key = if free(self, record_key) {
            Cow::Borrowed(record_key)
        } else {
            let mut n = 2;
            loop {
                let key = if n == 2 { format!("{source}:{record_key}") } else { format!("{source}:{record_key}:{n}") };
                if free(self, &key) {
                    break Cow::Owned(key);
                }
                n += 1;
            }
        };
        self.other_keys.insert(key.clone(), key.clone());
        self.out.new_persons.push(key.clone());
        self.join(key, source, record_key, attrs);
    }

    /// Steps 2 to 6 for a record that no stored link claims.
    fn place(&mut self, source: &'a str, record_key: &'a str, attrs: &'a Attrs) {
        let settings = self.settings;
        let config = settings.sources.iter().find(|s| s.name == source);
        if let Some(decision) = settings.correlation.decide.iter().find(|d| d.source == source && d.key == record_key) {
            match &decision.person {
                Some(person) if !decision.separate && self.known(person) => {
                    self.supersede_or_join(Cow::Borrowed(person), source, record_key, attrs);
                }
                Some(person) if !decision.separate => {
                    self.out.notices.push(Notice {
                        kind: NoticeKind::Disputed,
                        person: Some(person.clone()),
                        target: None,
                        message: format!(
                            "correlation.decide joins record {source}/{record_key} to person {person}, whom roster does not know: the record is not used"
                        ),
                    });
                }
                _ => self.new_person(source, record_key, attrs),
            }
            return;
        }
        if let Some(person) = self.by_key(record_key)
            && self.other_record(&person, source, record_key).is_none()
        {
            self.join(person, source, record_key, attrs);
            return;
        }
        let previous = config
            .and_then(|c| c.previous_key.as_ref())
            .and_then(|a| attrs.get(a.as_str()))
            .map(Field::to_text)
            .filter(|v| !v.is_empty() && v != record_key);
        if let Some(previous) = previous
            && let Some(person) = self.by_key(&previous)
            && self.other_record(&person, source, record_key).is_none_or(|k| k == previous)
        {
            self.supersede_or_join(person, source, record_key, attrs);
            return;
        }
        let mut candidates: BTreeSet<String> = BTreeSet::new();
        let mut matched_by = Vec::new();
        for attr in config.map(|c| c.correlate.as_slice()).unwrap_or_default() {
            let Some(value) = attrs.get(attr.as_str()).map(Field::to_text).filter(|v| !v.is_empty()) else {
                continue;
            };
            for person in self.secondary.get(&(attr.clone(), value)).into_iter().flatten() {
                if self.other_record(person, source, record_key).is_none() && candidates.insert(person.clone()) {
                    matched_by.push(format!("{person} by {attr}"));
                }
            }
        }
        match candidates.len() {
            0 => self.new_person(source, record_key, attrs),
            1 => {
                let person = candidates.into_iter().next().unwrap_or_default();
                self.join(Cow::Owned(person), source, record_key, attrs);
            }
            _ => {
                let listed: Vec<&str> = candidates.iter().map(String::as_str).collect();
                let why = format!(
                    "disputed correlation: record {source}/{record_key} matches {} persons ({}); not merged, and the candidates are held until a person decides with [[correlation.decide]] source = {source:?}, key = {record_key:?}, and person = one of {} or separate = true",
                    candidates.len(),
                    matched_by.join(", "),
                    listed.join(", ")
                );
                for person in &candidates {
                    self.out.notices.push(Notice {
                        kind: NoticeKind::Disputed,
                        person: Some(person.clone()),
                        target: None,
                        message: why.clone(),
                    });
                    self.out
                        .disputed
                        .insert(person.clone(), format!("disputed correlation of record {source}/{record_key}"));
                }
            }
        }
    }

    /// Joins `person`, replacing the record of the same source that this one supersedes.
    fn supersede_or_join(&mut self, person: Cow<'a, str>, source: &'a str, record_key: &'a str, attrs: &'a Attrs) {
        if let Some(records) = self.out.persons.get_mut(person.as_ref()) {
            records.remove(source);
        }
        self.join(person, source, record_key, attrs);
    }
}

/// Correlates this run's records with the persons roster knows.
pub(crate) fn correlate<'a>(
    settings: &'a Settings,
    reads: &[&'a SourceRead],
    snapshot: &'a Snapshot,
) -> Correlated<'a> {
    let records = reads.iter().map(|r| r.records.len()).max().unwrap_or(0);
    let mut index = Index::new(settings, snapshot, records);
    let mut unplaced: Vec<(&'a str, &'a str, &'a Attrs, bool)> = Vec::new();
    for source in &settings.sources {
        let previous_key = source.previous_key.as_deref();
        for read in reads.iter().filter(|r| r.source == source.name) {
            for r in &read.records {
                let source = read.source.as_str();
                let linked = index.linked.get(&(source, r.key.as_str())).copied();
                match linked {
                    Some(person) if index.other_record_of(&person.key, Some(person), source, &r.key).is_none() => {
                        index.join(Cow::Borrowed(&person.key), source, &r.key, &r.attrs);
                    }
                    _ => {
                        let names_previous = previous_key.is_some_and(|a| r.attrs.contains_key(a));
                        unplaced.push((source, &r.key, &r.attrs, names_previous));
                    }
                }
            }
        }
    }
    // Records that name a previous key come last, so the record they supersede is placed first.
    unplaced.sort_by_key(|(_, _, _, names_previous)| *names_previous);
    for (source, key, attrs, _) in unplaced {
        index.place(source, key, attrs);
    }
    index.out
}

/// A person's attribute texts as expressions see them ([`merge`]).
#[derive(Clone)]
pub(crate) enum Texts {
    /// The person's one record, of a configured source: its non-empty values, read where they
    /// are. Most persons have one record, and a merged copy of it was a tenth of a plan's memory.
    Record(Attrs),
    /// Merged by precedence from several records.
    Merged(BTreeMap<String, String>),
}

impl Texts {
    /// The text of attribute `name`; `None` when it is absent or empty.
    pub fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Texts::Record(attrs) => {
                attrs.get(name).map(|f| std::borrow::Cow::Borrowed(f.as_text())).filter(|text| !text.is_empty())
            }
            Texts::Merged(texts) => texts.get(name).map(|text| std::borrow::Cow::Borrowed(text.as_str())),
        }
    }

    /// [`get`](Self::get), with a one record's [hint](Attrs::get_hinted) of where `name` is.
    pub fn get_hinted(&self, name: &str, hint: &mut usize) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Texts::Record(attrs) => attrs
                .get_hinted(name, hint)
                .map(|f| std::borrow::Cow::Borrowed(f.as_text()))
                .filter(|text| !text.is_empty()),
            Texts::Merged(_) => self.get(name),
        }
    }
}

/// [`merge`], without copying the values of a person who has one record.
pub(crate) fn texts(settings: &Settings, records: &Records) -> (Texts, BTreeMap<String, String>) {
    if records.len() == 1
        && let Some((source, attrs)) = records.first_key_value()
        && settings.sources.iter().any(|s| &s.name == source)
    {
        return (Texts::Record(std::sync::Arc::clone(attrs)), BTreeMap::new());
    }
    let (texts, provenance) = merge(settings, records);
    (Texts::Merged(texts), provenance)
}

/// A person's attributes as expressions see them, and the source each value came from: per
/// attribute, the sources `[precedence]` lists, then the others in configuration order; the first
/// with a non-empty value wins. A person with one record has no provenance: every value is that
/// record's.
pub(crate) fn merge(settings: &Settings, records: &Records) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut texts = BTreeMap::new();
    let mut provenance = BTreeMap::new();
    let names: BTreeSet<&str> = records.values().flat_map(|a| a.keys()).map(|name| &**name).collect();
    for name in names {
        let preferred = settings.precedence.get(name).map(Vec::as_slice).unwrap_or_default();
        let order = preferred
            .iter()
            .map(String::as_str)
            .chain(settings.sources.iter().map(|s| s.name.as_str()).filter(|s| !preferred.iter().any(|p| p == s)));
        for source in order {
            let Some(text) = records.get(source).and_then(|a| a.get(name)).map(Field::to_text) else { continue };
            if !text.is_empty() {
                texts.insert(name.to_string(), text);
                if records.len() > 1 {
                    provenance.insert(name.to_string(), source.to_string());
                }
                break;
            }
        }
    }
    (texts, provenance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::LifecycleState;
    use crate::source::{FieldValue, Location, Record};
    use crate::state::StoredPerson;
    use std::sync::Arc;

    const CONFIG: &str = r#"
[time]
zone = "UTC"
[[source]]
name = "hr"
kind = "csv"
path = "hr.csv"
key = "ID"
previous_key = "previous_id"
correlate = ["email"]
columns = { hire_date = "Hire", previous_id = "Previous", email = "Email" }
[[source]]
name = "contractors"
kind = "csv"
path = "c.csv"
key = "ID"
correlate = ["email"]
columns = { hire_date = "Hire", email = "Email" }
[login]
candidates = ["key"]
"#;

    fn settings() -> Settings {
        crate::settings::load(CONFIG, "test.toml").unwrap()
    }

    fn read(source: &str, rows: &[(&str, &[(&str, &str)])]) -> SourceRead {
        let records = rows
            .iter()
            .enumerate()
            .map(|(i, (key, attrs))| Record {
                source: source.into(),
                key: key.to_string(),
                attrs: Arc::new(attrs.iter().map(|(a, v)| ((*a).into(), FieldValue::Text(v.to_string()))).collect()),
                location: Location { file: format!("{source}.csv").into(), line: i as u64 + 2, row: i as u64 + 1 },
            })
            .collect();
        SourceRead { source: source.into(), complete: true, rows_seen: 0, records, quarantined: vec![] }
    }

    fn stored(key: &str, records: &[(&str, &str)]) -> StoredPerson {
        StoredPerson {
            key: key.into(),
            login: Some(key.to_lowercase()),
            state: LifecycleState::Active,
            records: Arc::new(records.iter().map(|(s, _)| (s.to_string(), Arc::default())).collect()),
            eval_hash: String::new(),
            missing_reads: 0,
            left_on: None,
            next_transition: None,
            hold: None,
            record_keys: records
                .iter()
                .filter(|(_, k)| *k != key)
                .map(|(s, k)| (s.to_string(), k.to_string()))
                .collect(),
            provenance: BTreeMap::new(),
            records_omitted: false,
        }
    }

    /// Person key -> sorted "source/record key".
    fn persons(c: &Correlated) -> Vec<(String, Vec<String>)> {
        let mut persons: Vec<(String, Vec<String>)> = c
            .persons
            .iter()
            .map(|(p, m)| (p.to_string(), m.iter().map(|(s, (k, _))| format!("{s}/{k}")).collect()))
            .collect();
        persons.sort();
        persons
    }

    #[test]
    fn a_new_worker_id_in_the_same_read_supersedes_the_one_it_names() {
        let settings = settings();
        let empty = Snapshot::default();
        let hr = read("hr", &[("W-200", &[("previous_id", "W-100")]), ("W-100", &[])]);
        let c = correlate(&settings, &[&hr], &empty);
        assert_eq!(persons(&c), [("W-100".to_string(), vec!["hr/W-200".to_string()])]);
        assert_eq!(c.person_of("W-200"), "W-100");
    }

    #[test]
    fn a_stored_person_keeps_their_records_by_key_without_remembered_record_keys() {
        let settings = settings();
        let mut snapshot = Snapshot::default();
        snapshot.persons.insert("00100".into(), stored("00100", &[("hr", "00100")]));
        let hr = read("hr", &[("00100", &[])]);
        let contractors = read("contractors", &[("00100", &[])]);
        let c = correlate(&settings, &[&hr, &contractors], &snapshot);
        assert_eq!(persons(&c), [("00100".to_string(), vec!["contractors/00100".to_string(), "hr/00100".to_string()])]);
    }

    #[test]
    fn a_key_naming_someone_who_already_has_a_record_of_that_source_is_a_new_person() {
        let settings = settings();
        let mut snapshot = Snapshot::default();
        // Person W-100 is known to HR as W-200 since a conversion; W-100 is now someone else's key.
        snapshot.persons.insert("W-100".into(), stored("W-100", &[("hr", "W-200")]));
        let hr = read("hr", &[("W-200", &[]), ("W-100", &[])]);
        let c = correlate(&settings, &[&hr], &snapshot);
        assert_eq!(
            persons(&c),
            [
                ("W-100".to_string(), vec!["hr/W-200".to_string()]),
                ("hr:W-100".to_string(), vec!["hr/W-100".to_string()])
            ]
        );
    }

    #[test]
    fn a_key_held_by_two_stored_persons_names_the_first_in_key_order() {
        let settings = settings();
        let hr = read("hr", &[]);
        // B holds, as a contractor, the key A: A comes first and holds it as their own.
        let mut snapshot = Snapshot::default();
        snapshot.persons.insert("A".into(), stored("A", &[("hr", "A")]));
        snapshot.persons.insert("B".into(), stored("B", &[("hr", "B"), ("contractors", "A")]));
        assert_eq!(correlate(&settings, &[&hr], &snapshot).person_of("A"), "A");
        // A holds, as a contractor, the key B: A comes first, so B's key names A.
        let mut snapshot = Snapshot::default();
        snapshot.persons.insert("A".into(), stored("A", &[("hr", "A"), ("contractors", "B")]));
        snapshot.persons.insert("B".into(), stored("B", &[("hr", "B")]));
        assert_eq!(correlate(&settings, &[&hr], &snapshot).person_of("B"), "A");
        // Read again in this run, a record's key names the person it joins.
        let contractors = read("contractors", &[("B", &[])]);
        assert_eq!(correlate(&settings, &[&hr, &contractors], &snapshot).person_of("B"), "A");
        let hr = read("hr", &[("B", &[])]);
        assert_eq!(correlate(&settings, &[&hr], &snapshot).person_of("B"), "B");
    }

    #[test]
    fn a_secondary_key_never_joins_two_records_of_one_source() {
        let settings = settings();
        let empty = Snapshot::default();
        let hr =
            read("hr", &[("W-1", &[("email", "family@example.net")]), ("W-2", &[("email", "family@example.net")])]);
        let c = correlate(&settings, &[&hr], &empty);
        assert_eq!(persons(&c).len(), 2);
        assert!(c.disputed.is_empty());
    }

    #[test]
    fn a_decision_keeps_a_matching_record_separate() {
        let text =
            format!("{CONFIG}\n[[correlation.decide]]\nsource = \"contractors\"\nkey = \"C-1\"\nseparate = true\n");
        let settings = crate::settings::load(&text, "test.toml").unwrap();
        let empty = Snapshot::default();
        let hr = read("hr", &[("W-1", &[("email", "a@example.net")])]);
        let contractors = read("contractors", &[("C-1", &[("email", "a@example.net")])]);
        let c = correlate(&settings, &[&hr, &contractors], &empty);
        assert_eq!(persons(&c).len(), 2);
    }
}
