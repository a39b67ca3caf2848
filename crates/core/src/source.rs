//! What a source (system of record) yields: records keyed by a source key, and the rows it had to
//! quarantine. Every kind of source (CSV today; SQL, XLSX, JSON, REST later) produces a [`SourceRead`].

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One value of a record's attribute, already validated by the source. In JSON (plans, the
/// store) a text is a string and a date is `{"date": "YYYY-MM-DD"}`, so a date never comes back
/// as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldValue {
    Text(String),
    Date(NaiveDate),
}

impl Serialize for FieldValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            FieldValue::Text(text) => s.serialize_str(text),
            FieldValue::Date(day) => {
                let mut map = s.serialize_map(Some(1))?;
                // A date's `Display` is `%Y-%m-%d`, written without parsing a format string
                // or making a `String`: every dated record is written so when a daily run
                // hashes everyone's records.
                map.serialize_entry("date", &format_args!("{day}"))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = FieldValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a string or {"date": "YYYY-MM-DD"}"#)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(text.to_string()))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(text))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldValue, A::Error> {
                let mut day = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "date" || day.is_some() {
                        return Err(de::Error::custom(format!("unexpected key {key:?} in a field value")));
                    }
                    day = Some(map.next_value::<NaiveDate>()?);
                }
                day.map(FieldValue::Date).ok_or_else(|| de::Error::missing_field("date"))
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}

impl FieldValue {
    /// The value as text: dates as `YYYY-MM-DD`, which also sorts in date order.
    pub fn to_text(&self) -> String {
        self.as_text().into_owned()
    }

    /// The value as text without a copy where it is text already: dates as `YYYY-MM-DD`.
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            FieldValue::Text(s) => std::borrow::Cow::Borrowed(s),
            FieldValue::Date(d) => std::borrow::Cow::Owned(d.format("%Y-%m-%d").to_string()),
        }
    }

    pub fn as_date(&self) -> Option<NaiveDate> {
        match self {
            FieldValue::Date(d) => Some(*d),
            FieldValue::Text(_) => None,
        }
    }
}

/// Where a record or a quarantined row came from, for messages a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The file (or table, or URL) read: shared by the records read from it.
    pub file: Arc<str>,
    /// 1-based line of the row's first physical line in the file (the header is line 1 in a CSV).
    pub line: u64,
    /// 1-based data row number (the first row after the header is row 1).
    pub row: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} (row {})", self.file, self.line, self.row)
    }
}

/// A record's attributes: person attribute name -> value, in name order (in JSON, a map as a
/// `BTreeMap` writes it, so stored hashes stay valid). The names are a list shared by the records
/// a source reader makes with the same names ([`NameLists`]), each name shared too: a million
/// records of seventeen attributes held a name beside each value, 272 MB of the plan's peak. The
/// values are one text, found by their ends, not a [`FieldValue`] and a `String` each: a million
/// records held 450 MB that way, most of a million-record plan's inputs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Each name once, in order.
    names: Arc<[Arc<str>]>,
    values: Values,
}

/// A record's values: one text, and one end per name (where its value ends in the text, with
/// [`DATE`] set when the value is a date, its text then as a date displays, `YYYY-MM-DD`).
/// A plan touches each of a million records several times (their hash, the lifecycle, the
/// login, the DN, the mappings, the plan's JSON), each time a cache miss per allocation: the
/// ends are written in front of the text, in the same allocation, [`END_WIDTH`] ASCII bytes
/// each. Which form a record takes depends only on its values, so equal records compare equal.
#[derive(Clone, PartialEq, Eq)]
enum Values {
    /// The ends, then the text: every record whose text is at most [`INLINE_MAX`] bytes.
    Inline(Box<str>),
    /// A record with more text than an inline end can reach.
    Apart { ends: Box<[usize]>, text: Box<str> },
}

impl Default for Values {
    fn default() -> Values {
        Values::Inline(Box::from(""))
    }
}

/// The mark of a date among [`Values::Apart`]'s ends: a text is never longer than `isize::MAX`
/// bytes, so the top bit of an end is free.
const DATE: usize = 1 << (usize::BITS - 1);

/// Bytes per end in [`Values::Inline`]: seven bits each (so the text stays ASCII there, and valid
/// UTF-8), the end in the low twenty of the twenty-one bits, the date mark in the top one.
const END_WIDTH: usize = 3;
const INLINE_DATE: usize = 1 << 20;
const INLINE_MAX: usize = INLINE_DATE - 1;

fn inline_end(end: usize, date: bool) -> [char; END_WIDTH] {
    let v = end | if date { INLINE_DATE } else { 0 };
    // Each a seven-bit value: an ASCII character.
    [0, 7, 14].map(|shift| char::from(((v >> shift) & 0x7f) as u8))
}

fn read_inline_end(bytes: &[u8], i: usize) -> (usize, bool) {
    let at = &bytes[i * END_WIDTH..(i + 1) * END_WIDTH];
    let v = usize::from(at[0]) | usize::from(at[1]) << 7 | usize::from(at[2]) << 14;
    (v & INLINE_MAX, v & INLINE_DATE != 0)
}

/// One value of a record, where the record holds it: [`FieldValue`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    text: &'a str,
    date: bool,
}

impl<'a> Field<'a> {
    /// The value as text: dates as `YYYY-MM-DD` (which also sorts in date order), no copy made.
    pub fn as_text(self) -> &'a str {
        self.text
    }

    pub fn to_text(self) -> String {
        self.text.to_string()
    }

    pub fn as_date(self) -> Option<NaiveDate> {
        if !self.date {
            return None;
        }
        // Written by `NaiveDate`'s `Display`: `YYYY-MM-DD`, read here without a format string;
        // another year's form (`+12345-01-01`) by `FromStr`, which reads what `Display` writes.
        match self.text.as_bytes() {
            &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1]
                if [y0, y1, y2, y3, m0, m1, d0, d1].iter().all(u8::is_ascii_digit) =>
            {
                let n = |digits: &[u8]| digits.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                NaiveDate::from_ymd_opt(n(&[y0, y1, y2, y3]) as i32, n(&[m0, m1]), n(&[d0, d1]))
            }
            _ => self.text.parse().ok(),
        }
    }

    /// The value as an owned [`FieldValue`].
    pub fn to_value(self) -> FieldValue {
        match self.as_date() {
            Some(day) => FieldValue::Date(day),
            None => FieldValue::Text(self.to_text()),
        }
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if !self.date {
            return s.serialize_str(self.text);
        }
        // As `FieldValue::Date` writes it: `{"date": "YYYY-MM-DD"}`, its text already that.
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("date", self.text)?;
        map.end()
    }
}

impl std::fmt::Debug for Attrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(name, value)| (name, value.to_value()))).finish()
    }
}

impl Attrs {
    pub fn new() -> Attrs {
        Attrs::default()
    }

    /// A record of these names (sorted, each once) and their values, in the same order.
    /// `scratch` is room to build it in, kept by a reader from record to record.
    fn of(names: Arc<[Arc<str>]>, values: impl Iterator<Item = FieldValue>, scratch: &mut Scratch) -> Attrs {
        let Scratch { text, ends } = scratch;
        text.clear();
        ends.clear();
        for value in values {
            match value {
                FieldValue::Text(t) => {
                    text.push_str(&t);
                    ends.push(text.len());
                }
                FieldValue::Date(day) => {
                    use std::fmt::Write;
                    let _ = write!(text, "{day}");
                    ends.push(text.len() | DATE);
                }
            }
        }
        debug_assert_eq!(ends.len(), names.len());
        let values = if text.len() <= INLINE_MAX {
            let mut inline = String::with_capacity(ends.len() * END_WIDTH + text.len());
            for &end in ends.iter() {
                inline.extend(inline_end(end & !DATE, end & DATE != 0));
            }
            inline.push_str(text);
            Values::Inline(inline.into_boxed_str())
        } else {
            Values::Apart { ends: ends.as_slice().into(), text: text.as_str().into() }
        };
        Attrs { names, values }
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|n| (**n).cmp(name))
    }

    /// The value at `i`, a place among the names.
    fn field(&self, i: usize) -> Field<'_> {
        match &self.values {
            Values::Inline(inline) => {
                let bytes = inline.as_bytes();
                let start = if i == 0 { 0 } else { read_inline_end(bytes, i - 1).0 };
                let (end, date) = read_inline_end(bytes, i);
                let base = self.names.len() * END_WIDTH;
                Field { text: &inline[base + start..base + end], date }
            }
            Values::Apart { ends, text } => {
                let start = if i == 0 { 0 } else { ends[i - 1] & !DATE };
                let end = ends[i];
                Field { text: &text[start..end & !DATE], date: end & DATE != 0 }
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<Field<'_>> {
        self.find(name).ok().map(|i| self.field(i))
    }

    /// [`get`](Self::get), looking first at `*hint`, which it sets to where `name` is: the records
    /// of one source have the same names, so where the last record had it is where the next has.
    pub fn get_hinted(&self, name: &str, hint: &mut usize) -> Option<Field<'_>> {
        if let Some(known) = self.names.get(*hint)
            && **known == *name
        {
            return Some(self.field(*hint));
        }
        let i = self.find(name).ok()?;
        *hint = i;
        Some(self.field(i))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value`; returns the value it replaces. The record is made again: a new
    /// name makes it a list of names of its own.
    pub fn insert(&mut self, name: Arc<str>, value: FieldValue) -> Option<FieldValue> {
        let mut entries: Vec<(Arc<str>, FieldValue)> =
            self.iter().map(|(n, v)| (Arc::clone(n), v.to_value())).collect();
        let replaced = match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut entries[i].1, value)),
            Err(i) => {
                entries.insert(i, (name, value));
                None
            }
        };
        let names: Arc<[Arc<str>]> = if replaced.is_some() {
            Arc::clone(&self.names)
        } else {
            entries.iter().map(|(n, _)| Arc::clone(n)).collect()
        };
        *self = Attrs::of(names, entries.into_iter().map(|(_, v)| v), &mut Scratch::default());
        replaced
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Arc<str>, Field<'_>)> + Clone + '_ {
        self.names.iter().enumerate().map(|(i, name)| (name, self.field(i)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.names.iter()
    }

    pub fn values(&self) -> impl Iterator<Item = Field<'_>> {
        (0..self.names.len()).map(|i| self.field(i))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The name lists of the records a reader has made, so a record whose names are those of an
/// earlier one shares that list. A source's records differ only in which optional fields are
/// empty: a handful of lists for a million records. The table stops growing at
/// [`NAME_LISTS_LIMIT`]; a record with other names then keeps a list of its own.
#[derive(Debug, Default)]
pub struct NameLists {
    lists: Vec<Arc<[Arc<str>]>>,
    /// Where the last record's list was: the next record's is most often the same.
    last: usize,
    scratch: Scratch,
}

/// Where [`Attrs::of`] writes a record's values before it knows their length.
#[derive(Debug, Default)]
struct Scratch {
    text: String,
    ends: Vec<usize>,
}

const NAME_LISTS_LIMIT: usize = 64;

impl NameLists {
    /// A record of `entries`, which `attrs` sorts by name (the last of a name kept) and empties,
    /// keeping its room for the next record's.
    pub fn attrs(&mut self, entries: &mut Vec<(Arc<str>, FieldValue)>) -> Attrs {
        sort_keeping_last(entries);
        let same = |list: &Arc<[Arc<str>]>| {
            list.len() == entries.len()
                && list.iter().zip(entries.iter()).all(|(a, (b, _))| Arc::ptr_eq(a, b) || a == b)
        };
        let found = self.lists.get(self.last).filter(|l| same(l)).map(|_| self.last).or_else(|| {
            let at = self.lists.iter().position(same)?;
            self.last = at;
            Some(at)
        });
        let names = match found {
            Some(at) => Arc::clone(&self.lists[at]),
            None => {
                let names: Arc<[Arc<str>]> = entries.iter().map(|(n, _)| Arc::clone(n)).collect();
                if self.lists.len() < NAME_LISTS_LIMIT {
                    self.last = self.lists.len();
                    self.lists.push(Arc::clone(&names));
                }
                names
            }
        };
        Attrs::of(names, entries.drain(..).map(|(_, v)| v), &mut self.scratch)
    }
}

/// Sorts `entries` by their keys, stably, and keeps the last entry of each key, as a map's
/// inserts in that order would.
fn sort_keeping_last<K: Ord, V>(entries: &mut Vec<(K, V)>) {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
}

impl From<BTreeMap<Arc<str>, FieldValue>> for Attrs {
    fn from(map: BTreeMap<Arc<str>, FieldValue>) -> Attrs {
        let names: Arc<[Arc<str>]> = map.keys().cloned().collect();
        Attrs::of(names, map.into_values(), &mut Scratch::default())
    }
}

/// Later values of a name replace earlier ones, as in a map.
impl FromIterator<(Arc<str>, FieldValue)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, FieldValue)>>(iter: I) -> Attrs {
        NameLists::default().attrs(&mut iter.into_iter().collect())
    }
}

impl Serialize for Attrs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<Arc<str>, FieldValue>::deserialize(d).map(Attrs::from)
    }
}

/// A person's records by source name, in name order, as a map would hold them (and written as one:
/// a JSON object). A sorted vector, not a `BTreeMap`: a person has one record or a few, and a
/// map's first node has room for eleven, 368 bytes per person at a million.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records(Vec<(String, Arc<Attrs>)>);

impl Records {
    pub fn new() -> Records {
        Records(Vec::new())
    }

    fn find(&self, source: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(s, _)| s.as_str().cmp(source))
    }

    pub fn get(&self, source: &str) -> Option<&Arc<Attrs>> {
        self.find(source).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, source: &str) -> Option<&mut Arc<Attrs>> {
        self.find(source).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, source: &str) -> bool {
        self.find(source).is_ok()
    }

    /// Sets the record of `source`; returns the one it replaces.
    pub fn insert(&mut self, source: String, attrs: Arc<Attrs>) -> Option<Arc<Attrs>> {
        match self.find(&source) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, attrs)),
            Err(i) => {
                self.0.insert(i, (source, attrs));
                None
            }
        }
    }

    pub fn remove(&mut self, source: &str) -> Option<Arc<Attrs>> {
        self.find(source).ok().map(|i| self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<Attrs>)> {
        self.0.iter().map(|(s, a)| (s, a))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(s, _)| s)
    }

    pub fn values(&self) -> impl Iterator<Item = &Arc<Attrs>> {
        self.0.iter().map(|(_, a)| a)
    }

    pub fn first_key_value(&self) -> Option<(&String, &Arc<Attrs>)> {
        self.0.first().map(|(s, a)| (s, a))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = (&'a String, &'a Arc<Attrs>);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, Arc<Attrs>)>, fn(&'a (String, Arc<Attrs>)) -> Self::Item>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(s, a)| (s, a))
    }
}

/// `records["source"]`, as on a map: panics when the person has no record there.
impl std::ops::Index<&str> for Records {
    type Output = Arc<Attrs>;
    fn index(&self, source: &str) -> &Arc<Attrs> {
        self.get(source).unwrap_or_else(|| panic!("no record from {source:?}"))
    }
}

/// Later records of a source replace earlier ones, as in a map.
impl FromIterator<(String, Arc<Attrs>)> for Records {
    fn from_iter<I: IntoIterator<Item = (String, Arc<Attrs>)>>(iter: I) -> Records {
        let mut records: Vec<(String, Arc<Attrs>)> = iter.into_iter().collect();
        if !records.is_sorted_by(|a, b| a.0 < b.0) {
            sort_keeping_last(&mut records);
        }
        Records(records)
    }
}

impl From<BTreeMap<String, Arc<Attrs>>> for Records {
    fn from(map: BTreeMap<String, Arc<Attrs>>) -> Records {
        Records(map.into_iter().collect())
    }
}

impl Serialize for Records {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Records {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, Arc<Attrs>>::deserialize(d).map(Records::from)
    }
}

/// One valid row of a source, with its attributes named as person attributes (the config maps the
/// export's column names to these). Empty optional fields are absent from `attrs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The source's name in the config: shared by the source's records.
    pub source: Arc<str>,
    /// The source key (e.g. `Employee_ID`), exactly as read: never trimmed of leading zeros.
    pub key: String,
    /// Shared, not copied, with the person the record belongs to and their store update: at a
    /// million records a copy per person was a fifth of the planner's memory.
    pub attrs: Arc<Attrs>,
    pub location: Location,
}

/// A row that could not be used, with why. When `key` could be read, the person it belongs to is
/// held as they were: a quarantined row never makes its person "missing".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedRow {
    pub source: String,
    pub key: Option<String>,
    pub location: Location,
    pub reason: String,
}

/// The result of reading one source once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRead {
    pub source: String,
    /// True when the source is declared complete (someone missing from it has gone) and the read
    /// reached its end. A partial read says nothing about who is missing.
    pub complete: bool,
    /// Number of data rows seen (valid and quarantined).
    pub rows_seen: u64,
    pub records: Vec<Record>,
    pub quarantined: Vec<QuarantinedRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A record made from entries (names repeated, texts empty, multi-byte or looking like
        /// dates, dates of every year chrono writes) holds what a map so made holds: each value
        /// read back as it went in, a date never read as text nor a text as a date, the same
        /// JSON, and the same record from that JSON. Then each name set again by `insert`.
        #[test]
        fn a_record_holds_what_a_map_so_made_holds(
            entries in proptest::collection::vec(
                (0usize..5, proptest::option::of(-4_000_000i32..4_000_000), "[a-zé日\\\"0-9-]{0,6}"),
                0..12,
            ),
            again in proptest::collection::vec((0usize..6, "[a-z]{0,3}"), 0..4),
        ) {
            let names = ["a", "b", "hire_date", "b2", "é"];
            let value = |day: Option<i32>, text: String| match day.and_then(NaiveDate::from_num_days_from_ce_opt) {
                Some(day) => FieldValue::Date(day),
                None => FieldValue::Text(text),
            };
            let mut map: BTreeMap<Arc<str>, FieldValue> = BTreeMap::new();
            let mut made = Vec::new();
            for (name, day, text) in entries {
                map.insert(names[name].into(), value(day, text.clone()));
                made.push((Arc::<str>::from(names[name]), value(day, text)));
            }
            let mut attrs: Attrs = made.into_iter().collect();
            for (name, text) in again {
                let name: Arc<str> = ["a", "b", "hire_date", "b2", "é", "new"][name].into();
                proptest::prop_assert_eq!(
                    attrs.insert(Arc::clone(&name), FieldValue::Text(text.clone())),
                    map.insert(name, FieldValue::Text(text))
                );
            }
            proptest::prop_assert_eq!(attrs.len(), map.len());
            proptest::prop_assert!(attrs.keys().map(|k| &**k).eq(map.keys().map(|k| &**k)));
            for (name, value) in &map {
                proptest::prop_assert_eq!(attrs.get(name).map(Field::to_value), Some(value.clone()));
                proptest::prop_assert_eq!(attrs.get(name).and_then(Field::as_date), value.as_date());
                proptest::prop_assert_eq!(attrs.get(name).map(Field::as_text), Some(&*value.as_text()));
            }
            let json = serde_json::to_string(&attrs).unwrap();
            proptest::prop_assert_eq!(&json, &serde_json::to_string(&map).unwrap());
            proptest::prop_assert_eq!(serde_json::from_str::<Attrs>(&json).unwrap(), attrs);
        }
    }

    /// A record whose text is longer than an inline end can reach keeps its ends apart, and
    /// reads back the same either way, at the length where the form changes and past it.
    #[test]
    fn a_record_of_any_length_reads_back_what_went_in() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        for long in [0, INLINE_MAX - 11, INLINE_MAX - 10, INLINE_MAX * 2] {
            let map: BTreeMap<Arc<str>, FieldValue> = [
                ("a", FieldValue::Text("x".to_string())),
                ("b", FieldValue::Date(day)),
                ("c", FieldValue::Text("é".repeat(long / 2) + &"y".repeat(long % 2))),
                ("d", FieldValue::Text(String::new())),
            ]
            .map(|(n, v)| (Arc::from(n), v))
            .into();
            let attrs = Attrs::from(map.clone());
            let inline = matches!(attrs.values, Values::Inline(_));
            assert_eq!(inline, 1 + 10 + long <= INLINE_MAX, "{long}");
            for (name, value) in &map {
                assert_eq!(attrs.get(name).map(Field::to_value).as_ref(), Some(value), "{long} {name}");
            }
            assert_eq!(attrs.get("b").and_then(Field::as_date), Some(day));
            assert_eq!(serde_json::to_string(&attrs).unwrap(), serde_json::to_string(&map).unwrap());
        }
    }

    #[test]
    fn dates_and_texts_survive_json() {
        let mut attrs = BTreeMap::new();
        attrs.insert("hire_date".to_string(), FieldValue::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()));
        attrs.insert("note".to_string(), FieldValue::Text("2026-03-01".to_string()));
        let json = serde_json::to_string(&attrs).unwrap();
        assert_eq!(json, r#"{"hire_date":{"date":"2026-03-01"},"note":"2026-03-01"}"#);
        let back: BTreeMap<String, FieldValue> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, attrs);
        // Written as `%Y-%m-%d` always (stored records hash so): the first and last years too.
        for (y, m, d) in [(1, 1, 1), (999, 12, 31), (9999, 12, 31), (1970, 1, 1)] {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let json = serde_json::to_string(&FieldValue::Date(day)).unwrap();
            assert_eq!(json, format!(r#"{{"date":"{}"}}"#, day.format("%Y-%m-%d")));
        }
    }

    #[test]
    fn attributes_keep_name_order_and_write_json_as_a_map_does() {
        let text = |t: &str| FieldValue::Text(t.to_string());
        let map: BTreeMap<Arc<str>, FieldValue> = [("title", "Nurse"), ("department", "Care"), ("given_name", "Ana")]
            .map(|(n, v)| (n.into(), text(v)))
            .into();
        let mut attrs: Attrs = [("title", "Clerk"), ("department", "Care"), ("given_name", "Ana"), ("title", "Nurse")]
            .map(|(n, v)| (Arc::from(n), text(v)))
            .into_iter()
            .collect();
        assert_eq!(serde_json::to_string(&attrs).unwrap(), serde_json::to_string(&map).unwrap());
        assert_eq!(attrs, Attrs::from(map.clone()));
        assert_eq!(attrs.get("title").map(Field::to_value), Some(text("Nurse")));
        assert_eq!(attrs.get("location"), None);
        assert_eq!(attrs.insert("location".into(), text("Oslo")), None);
        assert_eq!(attrs.insert("title".into(), text("Chief")), Some(text("Nurse")));
        assert_eq!(attrs.keys().map(|k| &**k).collect::<Vec<_>>(), ["department", "given_name", "location", "title"]);
        let back: Attrs = serde_json::from_str(&serde_json::to_string(&attrs).unwrap()).unwrap();
        assert_eq!(back, attrs);
    }

    #[test]
    fn records_with_the_same_names_share_one_list_and_keep_their_own_values() {
        let (title, department, location): (Arc<str>, Arc<str>, Arc<str>) =
            ("title".into(), "department".into(), "location".into());
        let text = |t: &str| FieldValue::Text(t.to_string());
        let mut lists = NameLists::default();
        let mut entries = Vec::new();
        let mut record = |values: &[(&Arc<str>, &str)]| {
            entries.extend(values.iter().map(|(n, v)| (Arc::clone(n), text(v))));
            lists.attrs(&mut entries)
        };
        let nurse = record(&[(&title, "Nurse"), (&department, "Care")]);
        let clerk = record(&[(&department, "Desk"), (&title, "Clerk")]);
        let moved = record(&[(&title, "Clerk"), (&location, "Oslo"), (&title, "Chief")]);
        let again = record(&[(&department, "Care"), (&title, "Nurse")]);
        assert!(Arc::ptr_eq(&nurse.names, &clerk.names), "the same names, in any order, are one list");
        assert!(Arc::ptr_eq(&nurse.names, &again.names));
        assert!(!Arc::ptr_eq(&nurse.names, &moved.names));
        assert_eq!(clerk.get("title").map(Field::to_value), Some(text("Clerk")));
        assert_eq!(clerk.get("department").map(Field::to_value), Some(text("Desk")));
        assert_eq!(nurse.get("title").map(Field::to_value), Some(text("Nurse")));
        // A name given twice keeps its last value, as a map's insert would.
        assert_eq!(
            moved.iter().map(|(n, v)| (&**n, v.to_text())).collect::<Vec<_>>(),
            [("location", "Oslo".into()), ("title", "Chief".into())]
        );
        assert!(entries.is_empty());
    }
}
