//! Distinguished names and search filters: the one place where values are escaped (RFC 4514 for DNs,
//! RFC 4515 for filters) and where DNs are parsed and compared.

use std::fmt;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Escapes an attribute value for use in a DN (RFC 4514 section 2.4).
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    escape_dn_value_into(value, &mut out);
    out
}

/// [`escape_dn_value`], appended to `out`.
pub fn escape_dn_value_into(value: &str, out: &mut String) {
    // Writing to a `String` does not fail.
    let _ = escape_dn_value_to(value, out);
}

/// [`escape_dn_value`], written to `out`: a `String`, or the formatter of a DN being printed
/// (a plan prints a million DNs and more, each value once without a string of its own).
fn escape_dn_value_to(value: &str, out: &mut impl fmt::Write) -> fmt::Result {
    let special = |c: char| matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '\0') || c.is_control();
    if !value.starts_with(['#', ' ']) && !value.ends_with(' ') && !value.chars().any(special) {
        // Most values, as they are.
        return out.write_str(value);
    }
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            '#' if i == 0 => out.write_str("\\#")?,
            ' ' if i == 0 || i == last => out.write_str("\\ ")?,
            '\0' => out.write_str("\\00")?,
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    write!(out, "\\{b:02x}")?;
                }
            }
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// Escapes a value for use inside an LDAP search filter (RFC 4515): `*`, `(`, `)`, `\` and NUL, so
/// no value can change which entries a filter reaches.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// One attribute-value assertion of an RDN, with the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ava {
    pub attr: String,
    pub value: String,
}

/// A relative distinguished name: usually one AVA, several when joined with `+`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rdn(pub Vec<Ava>);

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ava) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(&ava.attr)?;
            f.write_char('=')?;
            escape_dn_value_to(&ava.value, f)?;
        }
        Ok(())
    }
}

/// Why a string is not a DN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid DN: {reason} in {dn:?}")]
pub struct DnError {
    pub dn: String,
    pub reason: String,
}

/// An attribute value with escapes, from `bytes[*i]` to the `,` or `+` after it (where `*i` is
/// left), unescaped; why not when it is no value.
fn escaped_value(bytes: &[u8], i: &mut usize) -> Result<String, String> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut value = Vec::<u8>::new();
    let mut trailing_unescaped_spaces = 0usize;
    let mut leading = true;
    while *i < bytes.len() && bytes[*i] != b',' && bytes[*i] != b'+' {
        let c = bytes[*i];
        if c == b'\\' {
            *i += 1;
            let Some(&next) = bytes.get(*i) else { return Err("dangling '\\'".into()) };
            if let Some(high) = hex(next) {
                let Some(low) = bytes.get(*i + 1).and_then(|&b| hex(b)) else {
                    return Err("bad hex escape".into());
                };
                value.push(high << 4 | low);
                *i += 2;
            } else {
                // An escaped character: its first byte here, the rest as they come.
                value.push(next);
                *i += 1;
            }
            trailing_unescaped_spaces = 0;
            leading = false;
            continue;
        }
        if c == b' ' && leading {
            *i += 1;
            continue;
        }
        if matches!(c, b'"' | b';' | b'<' | b'>') {
            return Err(format!("unescaped '{}' in a value", char::from(c)));
        }
        leading = false;
        if c == b' ' {
            trailing_unescaped_spaces += 1;
        } else {
            trailing_unescaped_spaces = 0;
        }
        value.push(c);
        *i += 1;
    }
    value.truncate(value.len() - trailing_unescaped_spaces);
    String::from_utf8(value).map_err(|_| "escaped bytes are not UTF-8".into())
}

/// A parsed distinguished name (RDNs from the leaf to the root).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Dn {
    rdns: Vec<Rdn>,
}

impl Dn {
    pub fn parse(s: &str) -> Result<Dn, DnError> {
        let err = |reason: &str| DnError { dn: s.to_string(), reason: reason.to_string() };
        if s.trim().is_empty() {
            return Ok(Dn { rdns: Vec::new() });
        }
        // Read byte by byte: every character with a meaning here is ASCII, and no byte of a
        // multi-byte character is, so the others are copied through a byte at a time.
        let bytes = s.as_bytes();
        let mut rdns = Vec::new();
        let mut avas = Vec::new();
        let mut i = 0;
        loop {
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            let start = i;
            while i < bytes.len() && bytes[i] != b'=' {
                if matches!(bytes[i], b',' | b'+' | b'\\' | b'"') {
                    return Err(err("attribute type expected before '='"));
                }
                i += 1;
            }
            if i >= bytes.len() {
                return Err(err("'=' expected"));
            }
            let attr = s[start..i].trim();
            if attr.is_empty() || !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
                return Err(err("bad attribute type"));
            }
            i += 1;
            // Most values have no escapes: taken as they are, without their outer spaces.
            let end = bytes[i..].iter().position(|b| matches!(b, b',' | b'+' | b'\\')).map_or(bytes.len(), |n| i + n);
            if bytes.get(end) != Some(&b'\\') {
                if let Some(&c) = bytes[i..end].iter().find(|b| matches!(b, b'"' | b';' | b'<' | b'>')) {
                    return Err(err(&format!("unescaped '{}' in a value", char::from(c))));
                }
                avas.push(Ava { attr: attr.to_string(), value: s[i..end].trim_matches(' ').to_string() });
                i = end;
            } else {
                avas.push(Ava { attr: attr.to_string(), value: escaped_value(bytes, &mut i).map_err(|e| err(&e))? });
            }
            if bytes.get(i) == Some(&b'+') {
                i += 1;
                continue;
            }
            // Its AVAs moved into a vector of their own size (a taken buffer had room for four:
            // 192 bytes per RDN, most of a million-person plan's group DNs).
            let mut rdn = Vec::with_capacity(avas.len());
            rdn.append(&mut avas);
            rdns.push(Rdn(rdn));
            if i >= bytes.len() {
                break;
            }
            i += 1;
        }
        Ok(Dn { rdns })
    }

    /// Builds a DN from an RDN attribute, an unescaped value and a parent.
    pub fn child(&self, attr: &str, value: &str) -> Dn {
        let mut rdns = vec![Rdn(vec![Ava { attr: attr.to_string(), value: value.to_string() }])];
        rdns.extend(self.rdns.iter().cloned());
        Dn { rdns }
    }

    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }
    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }
    pub fn rdn(&self) -> Option<&Rdn> {
        self.rdns.first()
    }
    pub fn parent(&self) -> Option<Dn> {
        if self.rdns.is_empty() { None } else { Some(Dn { rdns: self.rdns[1..].to_vec() }) }
    }

    /// A form for comparison: attribute types and values lowercased, escaping canonical.
    pub fn normalized(&self) -> String {
        normalize_rdns(&self.rdns)
    }

    /// The parent's [normalized](Self::normalized) form, without making the parent; `None` for
    /// the root.
    pub fn parent_normalized(&self) -> Option<String> {
        self.rdns.get(1..).map(normalize_rdns)
    }

    /// Whether this DN is `base` or below it.
    pub fn is_within(&self, base: &Dn) -> bool {
        if base.rdns.len() > self.rdns.len() {
            return false;
        }
        let offset = self.rdns.len() - base.rdns.len();
        self.rdns[offset..].iter().zip(&base.rdns).all(|(a, b)| same_rdn(a, b))
    }
}

fn normalize_rdns(rdns: &[Rdn]) -> String {
    let mut out = String::with_capacity(
        rdns.iter().map(|r| r.0.iter().map(|a| a.attr.len() + a.value.len() + 2).sum::<usize>()).sum(),
    );
    for (i, rdn) in rdns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_normalized(&mut out, rdn);
    }
    out
}

/// Appends the normalized form of one RDN: types and values lowercased, AVAs in order.
fn push_normalized(out: &mut String, rdn: &Rdn) {
    if let [ava] = rdn.0.as_slice() {
        let start = out.len();
        out.push_str(&ava.attr);
        out.push('=');
        if ava.value.is_ascii() {
            // Escaping adds only backslashes and lower-case hex: lower-casing after is the same.
            escape_dn_value_into(&ava.value, out);
            out[start..].make_ascii_lowercase();
        } else {
            out[start..].make_ascii_lowercase();
            escape_dn_value_into(&ava.value.to_lowercase(), out);
        }
        return;
    }
    let mut avas = rdn.0.clone();
    for ava in &mut avas {
        ava.attr = ava.attr.to_ascii_lowercase();
        ava.value = ava.value.to_lowercase();
    }
    avas.sort();
    out.push_str(&Rdn(avas).to_string());
}

fn same_rdn(a: &Rdn, b: &Rdn) -> bool {
    match (a.0.as_slice(), b.0.as_slice()) {
        ([x], [y]) => x.attr.eq_ignore_ascii_case(&y.attr) && x.value.to_lowercase() == y.value.to_lowercase(),
        _ => {
            let (mut x, mut y) = (String::new(), String::new());
            push_normalized(&mut x, a);
            push_normalized(&mut y, b);
            x == y
        }
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            fmt::Display::fmt(rdn, f)?;
        }
        Ok(())
    }
}

impl Serialize for Dn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
impl<'de> Deserialize<'de> for Dn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dn, D::Error> {
        let s = String::deserialize(d)?;
        Dn::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Normalized form of a DN string for comparisons; an unparsable string compares as itself lowercased.
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    normalize_dn_into(dn, &mut out);
    out
}

/// [`normalize_dn`], written over `out`: a caller normalizing many DNs to look each up keeps one
/// buffer instead of a string per DN.
pub fn normalize_dn_into(dn: &str, out: &mut String) {
    if !normalize_plain_into(dn, out) {
        *out = Dn::parse(dn).map(|d| d.normalized()).unwrap_or_else(|_| dn.to_lowercase());
    }
}

/// The normalized form of a DN that needs no parsing (most DNs a directory returns): one
/// `attr=value` per RDN, of ASCII letters, digits, `.`, `_`, `-` and inner spaces, is its own
/// text lowercased. None for anything else.
pub(crate) fn normalize_plain(dn: &str) -> Option<String> {
    let mut out = String::with_capacity(dn.len());
    normalize_plain_into(dn, &mut out).then_some(out)
}

/// [`normalize_plain`], written over `out`; false (and `out` left unspecified) for a DN that needs
/// parsing.
fn normalize_plain_into(dn: &str, out: &mut String) -> bool {
    out.clear();
    scan_plain(dn, |b| out.push(char::from(b.to_ascii_lowercase())))
}

/// Whether `dn` is plain, as [`normalize_plain`] takes it: its text is what parsing and printing
/// it gives, and each RDN is one `attr=value`.
pub(crate) fn is_plain(dn: &str) -> bool {
    scan_plain(dn, |_| ())
}

/// The attribute and value of a plain DN's RDN ([`is_plain`]), as parsing gives them.
pub(crate) fn plain_rdn(dn: &str) -> Option<(&str, &str)> {
    dn.split(',').next()?.split_once('=')
}

/// The normalized form of a plain DN's parent ([`is_plain`]), from the DN's own normalized form
/// (as [`Dn::parent_normalized`] gives it: empty for a DN of one RDN).
pub(crate) fn plain_parent(normalized: &str) -> &str {
    normalized.split_once(',').map_or("", |(_, parent)| parent)
}

/// Checks that `dn` is plain, handing each of its bytes (only ASCII gets there) to `each`.
fn scan_plain(dn: &str, mut each: impl FnMut(u8)) -> bool {
    // One pass over the bytes, checking and lowercasing at once: a daily run normalizes every
    // member of the groups it touches, a hundred thousand DNs and more.
    let bytes = dn.as_bytes();
    // Where the current attribute name or value starts, and whether it is the name.
    let (mut start, mut in_attr) = (0, true);
    let plain_value = |from: usize, to: usize| to > from && bytes[from] != b' ' && bytes[to - 1] != b' ';
    for (at, &b) in bytes.iter().enumerate() {
        match b {
            b'=' if in_attr && at > start => (in_attr, start) = (false, at + 1),
            b',' if !in_attr && plain_value(start, at) => (in_attr, start) = (true, at + 1),
            _ if in_attr && (b.is_ascii_alphanumeric() || b == b'-') => {}
            _ if !in_attr && (b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b' ')) => {}
            _ => return false,
        }
        each(b);
    }
    !in_attr && plain_value(start, bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_dns_normalize_as_parsed_ones_do() {
        let dns = [
            "uid=Jose.Garcia,ou=Human Resources,ou=People,DC=example,DC=org",
            "CN=all-staff,OU=Groups,DC=example,DC=test",
            "uid=a_b-c.9,dc=org",
            "cn=Smith\\, John,dc=org",
            "cn= padded ,dc=org",
            "cn=a+sn=b,dc=org",
            "cn=José,dc=org",
            "cn=x=y,dc=org",
            "ou=,dc=org",
        ];
        // One buffer for all, as a caller normalizing many DNs keeps: nothing of the DN before
        // (plain or parsed) may be left in it.
        let mut reused = String::from("cn=left over,dc=org,dc=example");
        for dn in dns {
            let parsed = Dn::parse(dn).map(|d| d.normalized()).unwrap_or_else(|_| dn.to_lowercase());
            assert_eq!(normalize_dn(dn), parsed, "{dn}");
            normalize_dn_into(dn, &mut reused);
            assert_eq!(reused, parsed, "{dn}, into a reused buffer");
        }
        assert!(normalize_plain("cn=José,dc=org").is_none());
        assert!(normalize_plain("uid=jo,ou=Human Resources,dc=org").is_some());
    }

    #[test]
    fn special_characters_are_escaped_and_round_trip() {
        let hostile = [
            "Smith, John",
            "a+b",
            "\"quoted\"",
            "back\\slash",
            "#hash",
            "semi;colon",
            "<angle>",
            " leading",
            "trailing ",
            "x,ou=admins",
            "nul\0byte",
            "rtl\u{202e}override",
        ];
        let base = Dn::parse("ou=people,dc=example,dc=org").unwrap();
        for value in hostile {
            let dn = base.child("cn", value);
            let text = dn.to_string();
            let parsed = Dn::parse(&text).unwrap();
            assert_eq!(parsed.rdn().unwrap().0[0].value, value, "{text}");
            assert_eq!(parsed.rdns().len(), 4, "{text}");
            assert!(parsed.is_within(&base));
        }
    }

    #[test]
    fn comparison_ignores_case_and_spacing() {
        assert_eq!(
            normalize_dn("CN=John Smith, OU=People,DC=Example,DC=org"),
            normalize_dn("cn=john smith,ou=people,dc=example,dc=org")
        );
        assert_eq!(normalize_dn("cn=a\\2cb,dc=x"), normalize_dn("cn=a\\,b,dc=x"));
    }

    #[test]
    fn a_parent_normalizes_without_being_made() {
        for dn in ["uid=Jo,OU=Sales+L=Berlin,dc=Example", "cn=Smith\\, John,ou=People", "dc=org", ""] {
            let parsed = Dn::parse(dn).unwrap();
            assert_eq!(parsed.parent_normalized(), parsed.parent().map(|p| p.normalized()), "{dn}");
        }
        assert_eq!(Dn::parse("uid=x,OU=A\\,B,dc=Org").unwrap().parent_normalized().unwrap(), "ou=a\\,b,dc=org");
    }

    #[test]
    fn filter_values_cannot_change_the_filter() {
        assert_eq!(escape_filter_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(escape_filter_value("a\\b\0"), "a\\5cb\\00");
    }

    /// A value with no escape is taken as it is; one with escapes is unescaped: both lose their
    /// unescaped outer spaces, and refuse the same unescaped characters.
    #[test]
    fn values_with_and_without_escapes_parse_alike() {
        let values = [
            ("cn= padded  ,dc=org", "padded"),
            ("cn=a\\ ,dc=org", "a "),
            ("cn=\\ a,dc=org", " a"),
            ("cn=Jos\\c3\\a9 ,dc=org", "José"),
            ("cn=\\José,dc=org", "José"),
            ("cn=José,dc=org", "José"),
            ("cn=a\\,b+sn=c,dc=org", "a,b"),
        ];
        for (text, value) in values {
            let dn = Dn::parse(text).unwrap();
            assert_eq!(dn.rdn().unwrap().0[0].value, value, "{text}");
            assert_eq!(dn.rdns().last().unwrap().to_string(), "dc=org", "{text}");
        }
        for bad in ["cn=a;b,dc=org", "cn=a\\,b;c,dc=org"] {
            assert_eq!(Dn::parse(bad).unwrap_err().reason, "unescaped ';' in a value", "{bad}");
        }
        assert_eq!(Dn::parse("cn=\\c3,dc=org").unwrap_err().reason, "escaped bytes are not UTF-8");
    }

    #[test]
    fn malformed_dns_are_errors() {
        for bad in ["cn", "cn=a,", "=x", "cn=a\\", "cn=a\\4", "cn=\"x\""] {
            assert!(Dn::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// A plain DN's RDN and parent, taken from its text, are what parsing it gives; and it
        /// prints as it is written.
        #[test]
        fn a_plain_dn_is_what_parsing_it_gives(
            rdns in proptest::collection::vec(("[a-zA-Z][a-zA-Z0-9-]{0,5}", "[a-zA-Z0-9._ -]{0,8}|[A-Z,+=\\\\]{1,3}"), 1..5),
        ) {
            let dn = rdns.iter().map(|(attr, value)| format!("{attr}={value}")).collect::<Vec<_>>().join(",");
            let plain = rdns.iter().all(|(_, v)| {
                !v.is_empty() && !v.starts_with(' ') && !v.ends_with(' ') && !v.contains([',', '+', '=', '\\'])
            });
            prop_assert_eq!(is_plain(&dn), plain, "{}", dn);
            if plain {
                let parsed = Dn::parse(&dn).unwrap();
                prop_assert_eq!(parsed.to_string(), dn.clone());
                let ava = &parsed.rdn().unwrap().0[0];
                prop_assert_eq!(plain_rdn(&dn), Some((ava.attr.as_str(), ava.value.as_str())));
                let normalized = normalize_plain(&dn).unwrap();
                prop_assert_eq!(Some(plain_parent(&normalized).to_string()), parsed.parent_normalized());
            }
        }

        #[test]
        fn any_value_round_trips_through_escape_and_parse(value in "\\PC*|[ ,+\"\\\\<>;#=\\x00]{0,8}") {
            let base = Dn::parse("ou=people,dc=example,dc=org").unwrap();
            let dn = base.child("cn", &value);
            let parsed = Dn::parse(&dn.to_string()).unwrap();
            prop_assert_eq!(&parsed.rdn().unwrap().0[0].value, &value);
            prop_assert_eq!(parsed.parent().unwrap(), base);
        }

        /// A one-value RDN normalizes as its definition says: the type lower-cased, then the
        /// value lower-cased and escaped (the ASCII path lower-cases after escaping instead).
        #[test]
        fn an_rdn_normalizes_to_its_lowercased_escaped_value(
            attr in "[a-zA-Z][a-zA-Z0-9-]{0,6}",
            value in "\\PC*|[ ,+\"\\\\<>;#=\\x00\\x1fA-Za-z]{0,8}|[ #A-Z\u{3a3}\u{c9}]{0,6}",
        ) {
            let rdn = Rdn(vec![Ava { attr: attr.clone(), value: value.clone() }]);
            let mut out = String::from("left,");
            push_normalized(&mut out, &rdn);
            let expected = format!("left,{}={}", attr.to_ascii_lowercase(), escape_dn_value(&value.to_lowercase()));
            prop_assert_eq!(out, expected);
            prop_assert_eq!(rdn.to_string(), format!("{}={}", attr, escape_dn_value(&value)));
        }

        #[test]
        fn filter_values_never_carry_an_active_character(s in "\\PC*|[*()\\\\\\x00a-z]{0,12}") {
            let escaped = escape_filter_value(&s);
            prop_assert!(!escaped.contains(['*', '(', ')', '\0']));
            let bytes = escaped.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'\\' {
                    prop_assert!(bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)), "{escaped}");
                }
            }
        }

        #[test]
        fn the_plain_path_agrees_with_the_parser(
            s in "[a-zA-Z0-9=, ._+\\\\\"é-]{0,24}|([a-zA-Z-]{1,4}=[a-zA-Z0-9 ._-]{1,6},){0,3}[a-zA-Z-]{1,4}=[a-zA-Z0-9 ._-]{1,6}"
        ) {
            if let Some(plain) = normalize_plain(&s) {
                prop_assert_eq!(Some(plain), Dn::parse(&s).ok().map(|d| d.normalized()), "{}", s);
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = Dn::parse(&s);
        }
    }
}
