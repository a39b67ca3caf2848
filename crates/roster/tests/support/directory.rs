//! The directory read back over LDAP with ldap3, as the admin: entries with every user and
//! operational attribute, exactly as the server holds them. Filters and DNs built here are escaped
//! with ldap3's own functions, not roster's, so that a bug in roster's escaping cannot hide itself.

use std::collections::BTreeMap;

use ldap3::{LdapConnAsync, LdapError, Scope, SearchEntry, dn_escape, ldap_escape};

use super::lab::{BASE, GROUPS, Lab};

/// OpenLDAP ppolicy's administrative lock, which never expires.
pub const LOCKED: &str = "000001010000Z";
/// LDAP result code noSuchObject: the search base does not exist.
const NO_SUCH_OBJECT: u32 = 32;

/// An entry as the server returned it: attribute names lowercased, values exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: BTreeMap<String, Vec<String>>,
}

impl Entry {
    fn from_search(entry: SearchEntry) -> Entry {
        let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, mut values) in entry.attrs {
            values.sort();
            attrs.entry(name.to_lowercase()).or_default().extend(values);
        }
        for (name, values) in entry.bin_attrs {
            let texts = values.iter().map(|v| format!("(binary) {v:02x?}"));
            attrs.entry(name.to_lowercase()).or_default().extend(texts);
        }
        Entry { dn: entry.dn, attrs }
    }

    /// Every value of `attr` (none when absent).
    pub fn values(&self, attr: &str) -> &[String] {
        self.attrs.get(&attr.to_lowercase()).map_or(&[], Vec::as_slice)
    }

    /// The one value of `attr`; fails the test when it has none or several.
    pub fn value(&self, attr: &str) -> &str {
        match self.values(attr) {
            [one] => one,
            other => panic!("{} has {} value(s) of {attr}, expected one: {other:?}", self.dn, other.len()),
        }
    }

    pub fn uuid(&self) -> &str {
        self.value("entryUUID")
    }

    /// Locked with ppolicy's administrative lock.
    pub fn locked(&self) -> bool {
        match self.values("pwdAccountLockedTime") {
            [] => false,
            [lock] if lock == LOCKED => true,
            other => panic!("{} has an unexpected pwdAccountLockedTime {other:?}", self.dn),
        }
    }
}

impl Lab {
    /// Subtree search as the admin for entries with all user and operational attributes. A base
    /// that does not exist gives no entries.
    pub fn search(&self, base: &str, scope: Scope, filter: &str) -> Vec<Entry> {
        let url = self.ldap.url();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let found = runtime.block_on(async {
            let (conn, mut ldap) = LdapConnAsync::new(&url).await?;
            ldap3::drive!(conn);
            ldap.simple_bind(self.ldap.admin_dn(), self.ldap.admin_password()).await?.success()?;
            let result = ldap.search(base, scope, filter, vec!["*", "+"]).await?;
            let entries = if result.1.rc == NO_SUCH_OBJECT { Vec::new() } else { result.success()?.0 };
            ldap.unbind().await?;
            Ok::<_, LdapError>(entries)
        });
        let entries = found.unwrap_or_else(|e| panic!("searching {base} for {filter}: {e}"));
        entries.into_iter().map(|e| Entry::from_search(SearchEntry::construct(e))).collect()
    }

    /// Every entry of the database, by DN: to show that a run changed nothing at all (operational
    /// attributes included, so even a rewrite of the same values would show in modifyTimestamp
    /// and entryCSN).
    pub fn dump(&self) -> BTreeMap<String, Entry> {
        self.search(BASE, Scope::Subtree, "(objectClass=*)").into_iter().map(|e| (e.dn.to_lowercase(), e)).collect()
    }

    /// The entries anywhere in the directory whose employeeNumber is `key`.
    pub fn accounts(&self, key: &str) -> Vec<Entry> {
        self.search(BASE, Scope::Subtree, &format!("(employeeNumber={})", ldap_escape(key)))
    }

    /// The one account of the person with `key`; fails the test when there is none or several.
    pub fn account(&self, key: &str) -> Entry {
        match self.accounts(key).as_slice() {
            [one] => one.clone(),
            other => panic!("expected one account with employeeNumber={key}, found {}: {other:#?}", other.len()),
        }
    }

    /// Whether the person's account lies directly below `parent` (compared by the server).
    pub fn is_below(&self, key: &str, parent: &str) -> bool {
        let filter = format!("(employeeNumber={})", ldap_escape(key));
        !self.search(parent, Scope::OneLevel, &filter).is_empty()
    }

    /// The group `cn=<cn>,ou=groups,...`, if it exists.
    pub fn group(&self, cn: &str) -> Option<Entry> {
        let dn = group_dn(cn);
        self.search(&dn, Scope::Base, "(objectClass=*)").into_iter().next()
    }

    /// The cn of every group that lists the person's account as a member (compared by the server,
    /// with DN matching rules), sorted.
    pub fn groups_of(&self, key: &str) -> Vec<String> {
        let account = self.account(key);
        let filter = format!("(member={})", ldap_escape(account.dn.as_str()));
        let mut cns: Vec<String> =
            self.search(GROUPS, Scope::Subtree, &filter).iter().map(|g| g.value("cn").to_owned()).collect();
        cns.sort();
        cns
    }

    /// Whether the `manager` of `report` is the DN of `manager`'s account as it is now (compared by
    /// the server, with DN matching rules).
    pub fn manager_is(&self, report: &str, manager: &str) -> bool {
        let manager_dn = self.account(manager).dn;
        let filter =
            format!("(&(employeeNumber={})(manager={}))", ldap_escape(report), ldap_escape(manager_dn.as_str()));
        !self.search(BASE, Scope::Subtree, &filter).is_empty()
    }

    /// The initial password roster generated for the person's account and delivered under
    /// `passwords/` (`fixtures/roster.toml`'s `[target.password]`): the file whose `person:` line
    /// is `key`.
    pub fn initial_password(&self, key: &str) -> String {
        let folder = self.dir().join("passwords");
        let files = std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("reading {}: {e}", folder.display()));
        for file in files {
            let text = std::fs::read_to_string(file.expect("a folder entry").path()).expect("reading a delivery");
            let field = |name: &str| text.lines().find_map(|line| line.strip_prefix(name)).map(str::to_owned);
            if field("person: ").as_deref() == Some(key) {
                return field("password: ").unwrap_or_else(|| panic!("no password line for {key}: {text:?}"));
            }
        }
        panic!("no initial password was delivered for {key} in {}", folder.display())
    }

    /// Whether the person can log in with the initial password roster delivered for them.
    pub fn can_log_in(&self, key: &str) -> bool {
        self.can_bind(key, &self.initial_password(key))
    }

    /// Whether the person can log in (a simple bind as their account succeeds).
    pub fn can_bind(&self, key: &str, password: &str) -> bool {
        let dn = self.account(key).dn;
        self.ldap.check_bind(&dn, password).unwrap_or_else(|e| panic!("binding as {dn}: {e:#}"))
    }
}

/// `cn=<cn>,ou=groups,dc=example,dc=org`, the value escaped.
pub fn group_dn(cn: &str) -> String {
    format!("cn={},{GROUPS}", dn_escape(cn))
}
