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
}
