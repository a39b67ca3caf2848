//! Attribute names and value maps as directories see them.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// An LDAP attribute name: compares, orders and hashes case-insensitively (`employeeNumber` ==
/// `employeenumber`), and keeps the spelling it was given for display. Shared, not copied, when
/// cloned: a plan's creates hold the mappings' names once per account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AttrName(Arc<str>);

impl AttrName {
    pub fn new(name: impl Into<String>) -> AttrName {
        AttrName(Arc::from(name.into()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
    /// Whether the attribute holds a password or its hash: such values never go into a plan, the
    /// store, the audit trail or a read-back entry.
    pub fn is_password(&self) -> bool {
        PASSWORD_ATTRIBUTES.iter().any(|secret| self.is(secret))
    }
}

/// The attributes that hold passwords: LDAP's, Active Directory's and Samba's, and SCIM's `password`.
pub const PASSWORD_ATTRIBUTES: [&str; 6] =
    ["userPassword", "authPassword", "unicodePwd", "sambaNTPassword", "sambaLMPassword", "password"];

impl PartialEq for AttrName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for AttrName {}

impl Ord for AttrName {
    fn cmp(&self, other: &Self) -> Ordering {
        let a = self.0.bytes().map(|b| b.to_ascii_lowercase());
        let b = other.0.bytes().map(|b| b.to_ascii_lowercase());
        a.cmp(b)
    }
}
impl PartialOrd for AttrName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Hash for AttrName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}
impl std::fmt::Display for AttrName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl From<&str> for AttrName {
    fn from(s: &str) -> Self {
        AttrName::new(s)
    }
}

/// Attribute name -> values, as read from or written to a directory entry.
pub type AttrMap = BTreeMap<AttrName, Vec<String>>;

/// A new account's attributes (`Action::Create`), held compactly: a first load's plan holds one
/// per account, a million at once, where an [`AttrMap`] of seventeen single values costs some
/// 2 KB (tree nodes, and a `Vec` and a `String` per value). Here all values are one text, found by
/// their ends, and the names are shared by the accounts that have the same ones ([`NameTable`]).
/// The same names, order, values and JSON as the [`AttrMap`] it is made from: an object of name
/// to its array of values, names in [`AttrName`] order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Each name once, in [`AttrName`] order.
    names: Arc<[AttrName]>,
    /// The bounds and the values, in one allocation (32 bytes in each operation, where three
    /// parts made every operation of a plan 24 bytes larger): a digit, the bytes each bound takes
    /// ([`WIDTHS`]); the bounds, each in that many bytes of seven bits (ASCII, so the whole is
    /// text); then the values' text. The bounds are one per name, the end of its values (an index
    /// of the values, which follow), then one per value, the end of its text. Empty where there
    /// are no names.
    data: Box<str>,
}

/// The bytes a bound may take, each holding seven of its bits: a create's text is most often
/// under 16 KiB, two bytes a bound; five hold any `u32`.
const WIDTHS: [usize; 4] = [1, 2, 3, 5];

/// The bound at `i` of `data` whose bounds take `width` bytes each.
fn bound(data: &str, width: usize, i: usize) -> usize {
    let at = 1 + i * width;
    let bytes = &data.as_bytes()[at..at + width];
    // The common widths without a loop: a million creates' JSON reads each of their 33 bounds.
    match *bytes {
        [b] => usize::from(b),
        [b0, b1] => (usize::from(b0) << 7) | usize::from(b1),
        _ => bytes.iter().fold(0, |b, &byte| (b << 7) | usize::from(byte)),
    }
}

/// An account whose values do not fit [`Attributes`]' 32-bit ends (4 GiB of text, or four
/// billion values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an account's attribute values exceed 4 GiB")
    }
}

impl std::error::Error for TooLarge {}

/// The name lists of the accounts made so far, so an account whose names are spelled exactly as an
/// earlier one's shares that list ([`Attributes::shared`]). Few differ within a target (the
/// mappings that came out empty, the lock): the table stops growing at a few dozen.
#[derive(Debug, Default)]
pub struct NameTable(Vec<Arc<[AttrName]>>);

const NAME_TABLE_LIMIT: usize = 64;

impl NameTable {
    fn share<'a>(&mut self, names: impl ExactSizeIterator<Item = &'a AttrName> + Clone) -> Arc<[AttrName]> {
        let same = |known: &Arc<[AttrName]>| {
            known.len() == names.len()
                && known.iter().zip(names.clone()).all(|(a, b)| Arc::ptr_eq(&a.0, &b.0) || a.0 == b.0)
        };
        if let Some(known) = self.0.iter().find(|known| same(known)) {
            return Arc::clone(known);
        }
        let new: Arc<[AttrName]> = names.cloned().collect();
        if self.0.len() < NAME_TABLE_LIMIT {
            self.0.push(Arc::clone(&new));
        }
        new
    }
}

impl Attributes {
    /// The map's attributes, their names shared with the earlier accounts in `table` that have
    /// exactly the same.
    pub fn shared(map: AttrMap, table: &mut NameTable) -> Result<Attributes, TooLarge> {
        Attributes::build(map.iter(), Some(table))
    }

    /// From `entries` in name order, each name once; the names shared through `table` if given.
    fn build<'a>(
        entries: impl ExactSizeIterator<Item = (&'a AttrName, &'a Vec<String>)> + Clone,
        table: Option<&mut NameTable>,
    ) -> Result<Attributes, TooLarge> {
        let all = || entries.clone().map(|(_, values)| values);
        let count: usize = all().map(Vec::len).sum();
        let length: usize = all().flatten().map(String::len).sum();
        u32::try_from(count).map_err(|_| TooLarge)?;
        u32::try_from(length).map_err(|_| TooLarge)?;
        if entries.len() == 0 {
            return Ok(Attributes::default());
        }
        // Text ends are the largest bounds but for a value count above the text's length (empty
        // values).
        let largest = length.max(count);
        let width = WIDTHS.into_iter().find(|w| (largest as u64) < 1 << (7 * w)).unwrap_or(5);
        let mut data = String::with_capacity(1 + width * (entries.len() + count) + length);
        data.push(char::from(b'0' + width as u8));
        let push = |data: &mut String, b: usize| {
            for k in (0..width).rev() {
                data.push(char::from(((b >> (7 * k)) & 0x7f) as u8));
            }
        };
        let mut values = 0;
        for v in all() {
            values += v.len();
            push(&mut data, values);
        }
        let mut end = 0;
        for value in all().flatten() {
            end += value.len();
            push(&mut data, end);
        }
        for value in all().flatten() {
            data.push_str(value);
        }
        let keys = entries.map(|(name, _)| name);
        let names = match table {
            Some(table) => table.share(keys),
            None => keys.cloned().collect(),
        };
        Ok(Attributes { names, data: data.into() })
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &AttrName> + Clone {
        self.names.iter()
    }

    /// Each name with its values, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&AttrName, Values<'_>)> + Clone {
        (0..self.names.len()).map(|i| (&self.names[i], self.values(i)))
    }

    /// The values of `name` (compared case-insensitively).
    pub fn get(&self, name: &AttrName) -> Option<Values<'_>> {
        let i = self.names.binary_search(name).ok()?;
        Some(self.values(i))
    }

    pub fn contains_key(&self, name: &AttrName) -> bool {
        self.names.binary_search(name).is_ok()
    }

    fn values(&self, i: usize) -> Values<'_> {
        let data = &*self.data;
        let width = usize::from(data.as_bytes()[0] - b'0');
        // The values' ends follow the names' ends; the text follows the bounds.
        let names = self.names.len();
        let from = if i == 0 { 0 } else { bound(data, width, i - 1) };
        let to = bound(data, width, i);
        let count = bound(data, width, names - 1);
        let text = 1 + width * (names + count);
        let start = if from == 0 { 0 } else { bound(data, width, names + from - 1) };
        Values { data, width, text, start, at: names + from, to: names + to }
    }

    /// As an [`AttrMap`], for what edits or merges the values (a connector building its request,
    /// a link's values).
    pub fn to_map(&self) -> AttrMap {
        self.iter().map(|(name, values)| (name.clone(), values.to_vec())).collect()
    }

    /// Without the attribute `name`.
    pub fn remove(&mut self, name: &AttrName) {
        if self.contains_key(name) {
            let mut map = self.to_map();
            map.remove(name);
            *self = Attributes::from_smaller(map);
        }
    }

    /// Only the values for which `keep` holds; an attribute left with none goes.
    pub fn retain_values(&mut self, mut keep: impl FnMut(&AttrName, &str) -> bool) {
        let mut map = self.to_map();
        map.retain(|name, values| {
            values.retain(|v| keep(name, v));
            !values.is_empty()
        });
        *self = Attributes::from_smaller(map);
    }

    /// From a map made from this one with less in it: fits, as this one did.
    fn from_smaller(map: AttrMap) -> Attributes {
        Attributes::try_from(map).unwrap_or_default()
    }
}

impl TryFrom<AttrMap> for Attributes {
    type Error = TooLarge;

    fn try_from(map: AttrMap) -> Result<Attributes, TooLarge> {
        Attributes::build(map.iter(), None)
    }
}

/// A new account's attributes while the planner puts them together, before they become
/// [`Attributes`]: as an [`AttrMap`] would hold them (each name once, compared without case, the
/// first spelling kept), in a short vector kept in name order instead of a tree. A million creates
/// each built a tree of some twenty names and dropped it again, a third of the planner's own
/// loop.
#[derive(Debug, Default)]
pub struct AttrsDraft(Vec<(AttrName, Vec<String>)>);

impl AttrsDraft {
    /// An empty draft with room for `names` names.
    pub fn with_capacity(names: usize) -> AttrsDraft {
        AttrsDraft(Vec::with_capacity(names))
    }

    fn find(&self, name: &AttrName) -> Result<usize, usize> {
        self.0.binary_search_by(|(known, _)| known.cmp(name))
    }

    /// Sets `name`'s values, replacing any it had (as [`AttrMap::insert`]).
    pub fn insert(&mut self, name: AttrName, values: Vec<String>) {
        match self.find(&name) {
            Ok(at) => self.0[at].1 = values,
            Err(at) => self.0.insert(at, (name, values)),
        }
    }

    /// `name`'s values, set to `values()` first if it has none (as an [`AttrMap`] entry's
    /// `or_insert_with`).
    pub fn or_insert_with(&mut self, name: &AttrName, values: impl FnOnce() -> Vec<String>) -> &mut Vec<String> {
        let at = match self.find(name) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (name.clone(), values()));
                at
            }
        };
        &mut self.0[at].1
    }

    /// The attributes, their names shared with the earlier accounts in `table` that have exactly
    /// the same ([`Attributes::shared`]).
    pub fn shared(self, table: &mut NameTable) -> Result<Attributes, TooLarge> {
        Attributes::build(self.0.iter().map(|(name, values)| (name, values)), Some(table))
    }
}

/// One attribute's values in an [`Attributes`].
#[derive(Clone)]
pub struct Values<'a> {
    /// The attributes' data, the bytes each bound takes, and where the text starts in it.
    data: &'a str,
    width: usize,
    text: usize,
    /// Where the first value starts in the text.
    start: usize,
    /// Where each value ends: the bounds from `at` to `to`.
    at: usize,
    to: usize,
}

impl<'a> Values<'a> {
    pub fn first(&self) -> Option<&'a str> {
        self.clone().next()
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.clone().map(str::to_string).collect()
    }
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.at >= self.to {
            return None;
        }
        let end = bound(self.data, self.width, self.at);
        let value = self.data.get(self.text + self.start..self.text + end)?;
        self.start = end;
        self.at += 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.to.saturating_sub(self.at);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Values<'_> {}

impl std::fmt::Debug for Attributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(name, values)| (name, values.collect::<Vec<_>>()))).finish()
    }
}

struct ValuesJson<'a>(Values<'a>);

impl Serialize for ValuesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.clone())
    }
}

impl Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter().map(|(name, values)| (name, ValuesJson(values))))
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Attributes, D::Error> {
        Attributes::try_from(AttrMap::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_compare_case_insensitively() {
        let mut map = AttrMap::new();
        map.insert(AttrName::new("employeeNumber"), vec!["1".into()]);
        assert_eq!(map.get(&AttrName::new("EMPLOYEENUMBER")), Some(&vec!["1".to_string()]));
        assert_eq!(map.keys().next().unwrap().as_str(), "employeeNumber");
    }

    fn map(entries: &[(&str, &[&str])]) -> AttrMap {
        entries.iter().map(|(n, vs)| (AttrName::new(*n), vs.iter().map(|v| v.to_string()).collect())).collect()
    }

    proptest::proptest! {
        /// A draft put together as the planner does (values set, values set where there are
        /// none, a value pushed) holds what an `AttrMap` so put together holds: the same names
        /// as first spelled, in the same order, with the same values.
        #[test]
        fn a_draft_holds_what_a_map_so_made_holds(
            steps in proptest::collection::vec((0usize..6, proptest::bool::ANY, 0usize..3), 0..24),
        ) {
            let names = ["uid", "UID", "cn", "objectClass", "mail", "Mail"];
            let (mut map, mut draft) = (AttrMap::new(), AttrsDraft::default());
            for (n, (name, set, value)) in steps.into_iter().enumerate() {
                let name = AttrName::new(names[name]);
                let values = vec![format!("v{value}"); value];
                if set {
                    map.insert(name.clone(), values.clone());
                    draft.insert(name, values);
                } else {
                    let pushed = format!("p{n}");
                    map.entry(name.clone()).or_insert_with(|| values.clone()).push(pushed.clone());
                    draft.or_insert_with(&name, || values).push(pushed);
                }
            }
            let from_map = Attributes::try_from(map).unwrap();
            let from_draft = draft.shared(&mut NameTable::default()).unwrap();
            proptest::prop_assert_eq!(serde_json::to_string(&from_draft).unwrap(), serde_json::to_string(&from_map).unwrap());
        }
    }

    #[test]
    fn attributes_hold_what_their_map_holds_and_write_the_same_json() {
        let cases = [
            map(&[]),
            map(&[("uid", &["ada"])]),
            map(&[("objectClass", &["top", "inetOrgPerson"]), ("cn", &["Ada", ""]), ("mail", &[]), ("sn", &["Ł\\"])]),
        ];
        for m in cases {
            let a = Attributes::try_from(m.clone()).unwrap();
            assert_eq!(a.to_map(), m);
            assert_eq!(a.len(), m.len());
            assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&m).unwrap());
            assert_eq!(serde_json::to_string_pretty(&a).unwrap(), serde_json::to_string_pretty(&m).unwrap());
            let back: Attributes = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(back, a);
            for (name, values) in &m {
                assert_eq!(a.get(name).map(|v| v.to_vec()).as_ref(), Some(values));
            }
        }
    }

    proptest::proptest! {
        /// Whatever the width of their bounds (texts and value counts under 128, under 16,384
        /// and above), attributes hold their map's names and values and write its JSON.
        #[test]
        fn attributes_of_any_size_hold_what_their_map_holds(
            entries in proptest::collection::vec(
                (
                    0usize..8,
                    proptest::collection::vec(
                        (proptest::char::range('a', 'é'), proptest::prop_oneof![0usize..4, 60usize..130, 9_000usize..30_000]),
                        0..5,
                    ),
                ),
                0..6,
            ),
        ) {
            let names = ["uid", "cn", "objectClass", "mail", "sn", "member", "l", "ou"];
            let m: AttrMap = entries
                .iter()
                .map(|(n, values)| (AttrName::new(names[*n]), values.iter().map(|(c, len)| c.to_string().repeat(*len)).collect()))
                .collect();
            let a = Attributes::try_from(m.clone()).unwrap();
            proptest::prop_assert_eq!(a.to_map(), m.clone());
            proptest::prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&m).unwrap());
            for (name, values) in &m {
                let got = a.get(name).map(|v| v.to_vec());
                proptest::prop_assert_eq!(got.as_ref(), Some(values));
                proptest::prop_assert_eq!(a.get(name).map(|v| v.len()), Some(values.len()));
            }
        }
    }

    #[test]
    fn bounds_take_the_narrowest_width_that_holds_them() {
        let width = |m: AttrMap| match Attributes::try_from(m.clone()).map(|a| (a.to_map() == m, a.data)) {
            Ok((true, data)) => data.bytes().next().map_or(0, |w| w - b'0'),
            _ => 0,
        };
        let text = |n: usize| vec!["x".repeat(n)];
        assert_eq!(width(map(&[])), 0);
        assert_eq!(width([(AttrName::new("cn"), text(127))].into()), 1);
        assert_eq!(width([(AttrName::new("cn"), text(128))].into()), 2);
        assert_eq!(width([(AttrName::new("cn"), text(16_383))].into()), 2);
        assert_eq!(width([(AttrName::new("cn"), text(16_384))].into()), 3);
        assert_eq!(width([(AttrName::new("cn"), text((1 << 21) - 1))].into()), 3);
        assert_eq!(width([(AttrName::new("cn"), text(1 << 21))].into()), 5);
        // More (empty) values than text: their count sets the width.
        assert_eq!(width([(AttrName::new("member"), vec![String::new(); 300])].into()), 2);
    }

    #[test]
    fn attributes_find_names_case_insensitively_and_lose_what_is_removed() {
        let mut a =
            Attributes::try_from(map(&[("cn", &["Ada"]), ("member", &["uid=a", "uid=b"]), ("uid", &["ada"])])).unwrap();
        assert_eq!(a.get(&AttrName::new("CN")).and_then(|v| v.first()), Some("Ada"));
        assert!(a.get(&AttrName::new("mail")).is_none());
        a.retain_values(|_, v| v != "uid=a");
        assert_eq!(a.to_map(), map(&[("cn", &["Ada"]), ("member", &["uid=b"]), ("uid", &["ada"])]));
        a.retain_values(|name, _| !name.is("member"));
        a.remove(&AttrName::new("UID"));
        assert_eq!(a.to_map(), map(&[("cn", &["Ada"])]));
    }

    #[test]
    fn accounts_with_the_same_names_share_them() {
        let mut table = NameTable::default();
        let a = Attributes::shared(map(&[("cn", &["Ada"]), ("uid", &["ada"])]), &mut table).unwrap();
        let b = Attributes::shared(map(&[("cn", &["Bo"]), ("uid", &["bo"])]), &mut table).unwrap();
        let c = Attributes::shared(map(&[("CN", &["Cy"]), ("uid", &["cy"])]), &mut table).unwrap();
        assert!(Arc::ptr_eq(&a.names, &b.names));
        // Spelled otherwise: its own names, so its JSON keeps its spelling.
        assert!(!Arc::ptr_eq(&a.names, &c.names));
        assert_eq!(c.keys().next().unwrap().as_str(), "CN");
    }
}
