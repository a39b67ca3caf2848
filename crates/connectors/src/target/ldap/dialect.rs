//! The two kinds of directory the LDAP target speaks to, and everything that differs between them
//! apart from passwords (in `password.rs`): how an object is named for good, which entries are
//! accounts, groups and containers, and whether a group may be empty.

use roster_core::config::TargetKind;
use roster_core::dn::escape_filter_value;

use super::ad;
use super::search::Entry;

/// RFC 4530's object id, for RFC directories.
pub(super) const ENTRY_UUID: &str = "entryUUID";
const LDAP_CONTAINERS: [&str; 5] = ["organizationalUnit", "organization", "domain", "dcObject", "container"];
const AD_CONTAINERS: [&str; 4] = ["organizationalUnit", "container", "builtinDomain", "domainDNS"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// OpenLDAP and other RFC 4511 directories: `entryUUID`, groupOfNames.
    Ldap,
    /// Active Directory and Samba AD: `objectGUID`, `group` with ranged members, `unicodePwd`.
    ActiveDirectory,
}

impl Dialect {
    /// The dialect of an LDAP kind; `None` for a target that is not a directory.
    pub fn of(kind: TargetKind) -> Option<Dialect> {
        match kind {
            TargetKind::Ldap => Some(Dialect::Ldap),
            TargetKind::ActiveDirectory => Some(Dialect::ActiveDirectory),
            TargetKind::Scim | TargetKind::Entra | TargetKind::EntraInbound => None,
        }
    }

    /// The most member values one request carries, whatever their size (within
    /// `max_request_bytes`). OpenLDAP: 100,000, since back-mdb rewrites a group entry whole for
    /// each modify (a first load's groups in requests of 1,000 members cost slapd about twice what
    /// one add per group does, `all-staff` of 90,000 nearly four times), but holds its one write
    /// transaction for the whole request, memberOf of every member included: an add of 191,000
    /// members (the 12 MiB of `max_request_bytes`) took slapd 11 s on a quiet 2-core machine and
    /// over 30 s beside the rest of a million-account first load, no other write answered
    /// meanwhile, so it timed out. AD: 1,000, as before any measurement said otherwise.
    pub fn members_per_request(self) -> usize {
        match self {
            Dialect::Ldap => 100_000,
            Dialect::ActiveDirectory => 1000,
        }
    }

    /// The attribute that names an object for good, whatever its DN becomes.
    pub fn id_attribute(self) -> &'static str {
        match self {
            Dialect::Ldap => ENTRY_UUID,
            Dialect::ActiveDirectory => ad::OBJECT_GUID,
        }
    }

    /// Takes the object id out of an entry read with [`Dialect::id_attribute`], in its printed form.
    pub fn take_id(self, entry: &mut Entry) -> Option<String> {
        match self {
            Dialect::Ldap => entry.take_first(ENTRY_UUID),
            Dialect::ActiveDirectory => entry.take_first_binary(ad::OBJECT_GUID).and_then(|b| ad::guid_to_string(&b)),
        }
    }

    /// A filter that matches exactly the object with this id; `None` when `id` cannot be one.
    pub fn id_filter(self, id: &str) -> Option<String> {
        match self {
            Dialect::Ldap => Some(format!("({ENTRY_UUID}={})", escape_filter_value(id))),
            Dialect::ActiveDirectory => ad::guid_filter(id),
        }
    }

    /// The accounts: entries with every one of `classes`; in AD also of the person category, so
    /// computers (whose class derives from `user`) are never taken for accounts.
    pub fn account_filter(self, classes: &[String]) -> String {
        let terms: Vec<String> =
            classes.iter().map(|class| format!("(objectClass={})", escape_filter_value(class))).collect();
        match (self, terms.as_slice()) {
            (Dialect::ActiveDirectory, _) => format!("(&(objectCategory=person){})", terms.concat()),
            (Dialect::Ldap, [one]) => one.clone(),
            (Dialect::Ldap, _) => format!("(&{})", terms.concat()),
        }
    }

    /// The object class of groups, read and created.
    pub fn group_class(self) -> &'static str {
        match self {
            Dialect::Ldap => "groupOfNames",
            Dialect::ActiveDirectory => "group",
        }
    }

    /// How the view asks for a group's members: AD returns at most 1,500 values of an attribute at
    /// once (then under `member;range=0-1499`), so its members are read in windows from the start.
    pub fn member_request(self) -> String {
        match self {
            Dialect::Ldap => "member".to_string(),
            Dialect::ActiveDirectory => ad::range_request("member", 0),
        }
    }

    /// Whether a group may exist without members (a groupOfNames may not).
    pub fn groups_may_be_empty(self) -> bool {
        self == Dialect::ActiveDirectory
    }

    /// The entries that count as containers in the view.
    pub fn container_filter(self) -> String {
        let classes: &[&str] = match self {
            Dialect::Ldap => &LDAP_CONTAINERS,
            Dialect::ActiveDirectory => &AD_CONTAINERS,
        };
        let terms: String =
            classes.iter().map(|class| format!("(objectClass={})", escape_filter_value(class))).collect();
        format!("(|{terms})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn account_filters_escape_classes_and_keep_computers_out_of_ad() {
        assert_eq!(Dialect::Ldap.account_filter(&classes(&["inetOrgPerson"])), "(objectClass=inetOrgPerson)");
        assert_eq!(
            Dialect::Ldap.account_filter(&classes(&["inetOrgPerson", "posixAccount"])),
            "(&(objectClass=inetOrgPerson)(objectClass=posixAccount))"
        );
        assert_eq!(
            Dialect::ActiveDirectory.account_filter(&classes(&["user"])),
            "(&(objectCategory=person)(objectClass=user))"
        );
        assert_eq!(Dialect::Ldap.account_filter(&classes(&["a*)"])), "(objectClass=a\\2a\\29)");
        for dialect in [Dialect::Ldap, Dialect::ActiveDirectory] {
            assert!(ldap3::parse_filter(dialect.container_filter()).is_ok());
            assert!(ldap3::parse_filter(dialect.account_filter(&classes(&["user", "x"]))).is_ok());
        }
    }

    #[test]
    fn id_filters_match_one_object() {
        assert_eq!(Dialect::Ldap.id_filter("a*b").as_deref(), Some("(entryUUID=a\\2ab)"));
        assert!(Dialect::ActiveDirectory.id_filter("55391055-6cda-4b56-bedd-de863bd4aead").is_some());
        assert_eq!(Dialect::ActiveDirectory.id_filter("not-a-guid"), None);
    }

    #[test]
    fn ad_reads_members_in_windows() {
        assert_eq!(Dialect::ActiveDirectory.member_request(), "member;range=0-1499");
        assert_eq!(Dialect::Ldap.member_request(), "member");
    }
}
