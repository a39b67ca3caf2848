//! Searches: paged subtree reads for the view, base reads of one entry, and a parser of search
//! results that cannot panic (ldap3's `SearchEntry::construct` panics on a malformed entry and on
//! referrals, which a paged search passes through).

use std::collections::BTreeMap;
use std::time::Duration;

use ldap3::adapters::PagedResults;
use ldap3::asn1::{StructureTag, TagClass};
use ldap3::{Ldap, ResultEntry, Scope};
use roster_core::attr::{AttrMap, AttrName};

use super::ad;
use super::errors::{ADMIN_LIMIT_EXCEEDED, Effect, NO_SUCH_OBJECT, SUCCESS, describe, ldap_error};
use crate::target::{ErrorKind, TargetError};

/// Entries per page of a paged search, unless the server allows fewer.
pub(super) const PAGE_SIZE: i32 = 500;

/// Attributes whose values are bytes rather than text (AD's object ids): kept as they came, apart
/// from the text attributes.
const BINARY_ATTRIBUTES: [&str; 2] = ["objectGUID", "objectSid"];

/// One entry as the server returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub dn: String,
    pub attrs: AttrMap,
    /// The values of [`BINARY_ATTRIBUTES`], as bytes.
    pub binary: BTreeMap<AttrName, Vec<Vec<u8>>>,
}

impl Entry {
    /// Removes and returns the first value of `attr`.
    pub fn take_first(&mut self, attr: &str) -> Option<String> {
        self.attrs.remove(&AttrName::new(attr)).and_then(|values| values.into_iter().next())
    }

    /// Removes and returns the first value of the binary attribute `attr`.
    pub fn take_first_binary(&mut self, attr: &str) -> Option<Vec<u8>> {
        self.binary.remove(&AttrName::new(attr)).and_then(|values| values.into_iter().next())
    }
}

/// Paged subtree searches on one connection.
///
/// Pages start at [`PAGE_SIZE`] entries. OpenLDAP refuses a page larger than its `size.pr` limit
/// with adminLimitExceeded (AD silently sends smaller pages instead); then the search starts again
/// with half the size, and the size that worked is kept for the next searches.
pub(super) struct PagedReader<'a> {
    pub ldap: Ldap,
    pub timeout: Duration,
    pub page_size: &'a mut i32,
}

impl PagedReader<'_> {
    /// Every entry below `base` matching `filter`; `None` when `base` does not exist.
    pub async fn subtree(
        &mut self,
        base: &str,
        filter: &str,
        attrs: Vec<String>,
    ) -> Result<Option<Vec<Entry>>, TargetError> {
        let what = format!("search below {base} for {filter}");
        let timeout = self.timeout;
        loop {
            let mut stream = self
                .ldap
                .with_timeout(timeout)
                .streaming_search_with(PagedResults::new(*self.page_size), base, Scope::Subtree, filter, attrs.clone())
                .await
                .map_err(|e| ldap_error(&what, e, Effect::Read, timeout))?;
            let mut entries = Vec::new();
            while let Some(item) = stream.next().await.map_err(|e| ldap_error(&what, e, Effect::Read, timeout))? {
                let entry =
                    parse_entry(item).map_err(|e| TargetError::new(ErrorKind::Permanent, format!("{what}: {e}")))?;
                entries.extend(entry);
            }
            let result = stream.finish().await;
            match result.rc {
                SUCCESS => return Ok(Some(entries)),
                NO_SUCH_OBJECT => return Ok(None),
                ADMIN_LIMIT_EXCEEDED if entries.is_empty() && *self.page_size > 1 => {
                    *self.page_size /= 2;
                    tracing::info!("{what}: {}; trying pages of {}", describe(&result), self.page_size);
                }
                _ => return Err(read_error(&what, &result)),
            }
        }
    }
}

/// The entry at `dn` when it exists and matches `filter`.
pub(super) async fn read_entry(
    ldap: &mut Ldap,
    timeout: Duration,
    dn: &str,
    filter: &str,
    attrs: Vec<String>,
) -> Result<Option<Entry>, TargetError> {
    let what = format!("read {dn}");
    let ldap3::SearchResult(items, result) = ldap
        .with_timeout(timeout)
        .search(dn, Scope::Base, filter, attrs)
        .await
        .map_err(|e| ldap_error(&what, e, Effect::Read, timeout))?;
    match result.rc {
        SUCCESS => {}
        NO_SUCH_OBJECT => return Ok(None),
        _ => return Err(read_error(&what, &result)),
    }
    for item in items {
        if let Some(entry) =
            parse_entry(item).map_err(|e| TargetError::new(ErrorKind::Permanent, format!("{what}: {e}")))?
        {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

/// Every value of `attr` of `entry`, which was read asking for `attr;range=0-1499` (or for `attr`):
/// those it holds, then the following windows, read from the server one base search at a time
/// until a window ends in `*`. AD returns at most `MaxValRange` (1,500) values of an attribute at
/// once; Samba returns what is asked for. Directories without ranges answer the plain `attr`,
/// which is complete.
pub(super) async fn ranged_values(
    ldap: &mut Ldap,
    timeout: Duration,
    entry: &mut Entry,
    attr: &str,
) -> Result<Vec<String>, TargetError> {
    let (mut values, mut next) = take_window(entry, attr);
    while let Some(start) = next {
        let what = format!("read {} ({attr} from value {start} on)", entry.dn);
        let request = ad::range_request(attr, start);
        let Some(mut more) = read_entry(ldap, timeout, &entry.dn, "(objectClass=*)", vec![request]).await? else {
            return Err(TargetError::new(ErrorKind::Transient, format!("{what}: deleted while it was read")));
        };
        // A window that starts past the last value comes back empty or not at all: done.
        let (window, following) = take_window(&mut more, attr);
        if following.is_some_and(|n| n <= start) {
            return Err(TargetError::new(
                ErrorKind::Permanent,
                format!("{what}: the server answered a range that does not move forward"),
            ));
        }
        values.extend(window);
        next = following;
    }
    Ok(values)
}

/// Takes the values of `attr` out of `entry`: those of a ranged description (`member;range=0-1499`)
/// when there is one, else the plain attribute's. Returns them with where the next window starts,
/// `None` when they are the last.
fn take_window(entry: &mut Entry, attr: &str) -> (Vec<String>, Option<u64>) {
    let ranged = entry.attrs.keys().find_map(|name| ad::value_range(name.as_str(), attr).map(|r| (name.clone(), r)));
    match ranged {
        Some((name, (_, high))) => {
            let values = entry.attrs.remove(&name).unwrap_or_default();
            // AD may send an empty plain attribute next to the ranged one.
            entry.attrs.remove(&AttrName::new(attr));
            (values, high.map(|h| h.saturating_add(1)))
        }
        None => (entry.attrs.remove(&AttrName::new(attr)).unwrap_or_default(), None),
    }
}

fn read_error(what: &str, result: &ldap3::LdapResult) -> TargetError {
    let kind = super::errors::kind_of_code(result.rc);
    let hint = match result.rc {
        4 => {
            "; the server limits how many entries this bind DN may read: allow paged results (OpenLDAP: size.pr, AD: MaxPageSize)"
        }
        50 => "; the bind DN may not read there",
        _ => "",
    };
    TargetError::new(kind, format!("{what}: {}{hint}", describe(result)))
}

/// A search result entry; `Ok(None)` for referrals and intermediate responses.
pub(super) fn parse_entry(item: ResultEntry) -> Result<Option<Entry>, String> {
    if item.is_ref() || item.is_intermediate() {
        return Ok(None);
    }
    parse_entry_tag(item.0).map(Some).ok_or_else(|| "the server sent a malformed search result entry".to_string())
}

/// The entry a post-read control (RFC 4527) returned with a write's result: the control's value is
/// a search result entry. `None` when the result carries none or it is malformed.
pub(super) fn post_read_entry(result: &ldap3::LdapResult) -> Option<Entry> {
    let control = result.ctrls.iter().find(|c| c.1.ctype == POST_READ_OID)?;
    let (_, tag) = ldap3::asn1::parse_tag(control.1.val.as_deref()?).ok()?;
    parse_entry_tag(tag)
}

/// The post-read control (RFC 4527): the entry as a write left it, in the write's own answer.
pub(super) const POST_READ_OID: &str = "1.3.6.1.1.13.2";

fn parse_entry_tag(tag: StructureTag) -> Option<Entry> {
    let mut parts = tag.match_class(TagClass::Application)?.match_id(4)?.expect_constructed()?.into_iter();
    let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
    let mut attrs = AttrMap::new();
    let mut binary: BTreeMap<AttrName, Vec<Vec<u8>>> = BTreeMap::new();
    for attribute in parts.next()?.expect_constructed()? {
        let mut attribute = attribute.expect_constructed()?.into_iter();
        let name = String::from_utf8(attribute.next()?.expect_primitive()?).ok()?;
        let raw_values = attribute.next()?.expect_constructed()?;
        if BINARY_ATTRIBUTES.iter().any(|b| b.eq_ignore_ascii_case(&name)) {
            let values: Option<Vec<Vec<u8>>> = raw_values.into_iter().map(StructureTag::expect_primitive).collect();
            binary.entry(AttrName::new(name)).or_default().extend(values?);
            continue;
        }
        let mut values = Vec::new();
        for value in raw_values {
            let bytes = value.expect_primitive()?;
            values.push(match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    tracing::warn!(dn, attribute = name, "a value is not UTF-8 text; read with replacement characters");
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }
            });
        }
        attrs.entry(AttrName::new(name)).or_default().extend(values);
    }
    Some(Entry { dn, attrs, binary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::PL;

    fn primitive(bytes: &[u8]) -> StructureTag {
        StructureTag { class: TagClass::Universal, id: 4, payload: PL::P(bytes.to_vec()) }
    }
    fn constructed(id: u64, class: TagClass, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag { class, id, payload: PL::C(inner) }
    }
    fn attribute(name: &str, values: &[&[u8]]) -> StructureTag {
        let set = constructed(17, TagClass::Universal, values.iter().map(|v| primitive(v)).collect());
        constructed(16, TagClass::Universal, vec![primitive(name.as_bytes()), set])
    }

    #[test]
    fn entries_parse_with_case_insensitive_names_and_lossy_binary_values() {
        let tag = constructed(
            4,
            TagClass::Application,
            vec![
                primitive(b"uid=a\\2Cb,dc=x"),
                constructed(
                    16,
                    TagClass::Universal,
                    vec![
                        attribute("employeeNumber", &[b"1"]),
                        attribute("photo", &[b"\xff\xfe"]),
                        attribute("EMPLOYEENUMBER", &[b"2"]),
                    ],
                ),
            ],
        );
        let entry = parse_entry(ResultEntry::new(tag)).unwrap().unwrap();
        assert_eq!(entry.dn, "uid=a\\2Cb,dc=x");
        assert_eq!(entry.attrs[&AttrName::new("employeenumber")], vec!["1", "2"]);
        assert_eq!(entry.attrs[&AttrName::new("photo")], vec!["\u{fffd}\u{fffd}"]);
    }

    fn entry(attrs: &[(&str, &[&str])]) -> Entry {
        Entry {
            dn: "CN=g,DC=x".to_string(),
            attrs: attrs
                .iter()
                .map(|(name, values)| (AttrName::new(*name), values.iter().map(|v| v.to_string()).collect()))
                .collect(),
            binary: BTreeMap::new(),
        }
    }

    #[test]
    fn a_window_says_where_the_next_one_starts() {
        let mut first = entry(&[("member;range=0-1", &["a", "b"]), ("member", &[]), ("objectClass", &["group"])]);
        assert_eq!(take_window(&mut first, "member"), (vec!["a".to_string(), "b".to_string()], Some(2)));
        assert!(first.attrs.keys().all(|name| name.as_str() == "objectClass"));
        let mut last = entry(&[("member;range=2-*", &["c"])]);
        assert_eq!(take_window(&mut last, "member"), (vec!["c".to_string()], None));
        let mut plain = entry(&[("member", &["a"])]);
        assert_eq!(take_window(&mut plain, "member"), (vec!["a".to_string()], None));
        assert_eq!(take_window(&mut entry(&[]), "member"), (vec![], None));
    }

    #[test]
    fn object_ids_stay_bytes_even_when_they_happen_to_be_text() {
        let tag = constructed(
            4,
            TagClass::Application,
            vec![
                primitive(b"CN=a,DC=x"),
                constructed(
                    16,
                    TagClass::Universal,
                    vec![attribute("objectGUID", &[b"\xff\x00abcdefghijklmn"]), attribute("objectSid", &[b"abc"])],
                ),
            ],
        );
        let mut entry = parse_entry(ResultEntry::new(tag)).unwrap().unwrap();
        assert!(entry.attrs.is_empty());
        assert_eq!(entry.take_first_binary("OBJECTGUID"), Some(b"\xff\x00abcdefghijklmn".to_vec()));
        assert_eq!(entry.binary[&AttrName::new("objectsid")], vec![b"abc".to_vec()]);
    }

    #[test]
    fn referrals_are_skipped_and_malformed_entries_are_errors_not_panics() {
        let referral = constructed(19, TagClass::Application, vec![primitive(b"ldap://elsewhere/")]);
        assert_eq!(parse_entry(ResultEntry::new(referral)), Ok(None));
        let truncated = constructed(4, TagClass::Application, vec![primitive(b"dc=x")]);
        assert!(parse_entry(ResultEntry::new(truncated)).is_err());
        let primitive_entry = StructureTag { class: TagClass::Application, id: 4, payload: PL::P(vec![1, 2]) };
        assert!(parse_entry(ResultEntry::new(primitive_entry)).is_err());
    }
}
