//! The LDIF that `slapadd` loads: cn=config (`-n0`) and the base entries of the database (`-n1`).
//! Pure text building, so that what the server is told is readable in one place.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::ldif::attr;
use crate::tls::TlsFiles;

/// Everything the cn=config LDIF depends on.
pub(super) struct ServerConfig<'a> {
    pub dir: &'a Path,
    pub module_dir: &'a Path,
    pub schema_dir: &'a Path,
    pub suffix: &'a str,
    pub admin_dn: &'a str,
    pub admin_password_hash: &'a str,
    pub service_dn: &'a str,
    pub size_limit_for_service: Option<u32>,
    /// The user and group slapd runs as: whoever connects over ldapi as them manages cn=config.
    pub uid: u32,
    pub gid: u32,
    pub tls: Option<TlsFiles>,
}

pub(super) const SCHEMAS: [&str; 4] = ["core", "cosine", "nis", "inetorgperson"];
pub(super) const MODULES: [&str; 4] = ["back_mdb", "memberof", "refint", "ppolicy"];
/// Equality indexes. `member` and `uniqueMember` because the refint overlay below searches both for
/// the old DN after every rename and delete: unindexed, each search reads the whole database
/// (about a quarter of a second of slapd's CPU per rename at 100,000 entries). A production
/// directory running refint indexes the attributes it covers, and so does this one.
const INDEXES: [&str; 8] =
    ["objectClass", "entryUUID", "uid", "mail", "employeeNumber", "member", "uniqueMember", "cn"];

pub(super) fn pid_file(dir: &Path) -> PathBuf {
    dir.join("slapd.pid")
}

pub(super) fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

pub(super) fn config_dir(dir: &Path) -> PathBuf {
    dir.join("slapd.d")
}

pub(super) fn policy_dn(suffix: &str) -> String {
    format!("cn=default,ou=policies,{suffix}")
}

pub(super) fn cn_config(c: &ServerConfig) -> String {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut out = String::new();

    out += "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n";
    out += &attr("olcPidFile", &path(&pid_file(c.dir)));
    out += &attr("olcArgsFile", &path(&c.dir.join("slapd.args")));
    // Operation logging goes to syslog, which a test machine does not read: it would only cost.
    out += "olcLogLevel: none\n";
    // 64-bit index hashes: with them back-mdb deletes only the index keys of the values a modify
    // removes. With the default 32-bit ones it re-adds the keys of every value left, so taking one
    // member out of a group of 100,000 cost slapd about 0.1 s (0.03 s with these), and a daily
    // run's removals were mostly that. A database is built with one or the other: set before the
    // first `slapadd`.
    out += "olcIndexHash64: TRUE\n";
    if let Some(tls) = &c.tls {
        out += &attr("olcTLSCACertificateFile", &path(&tls.ca_cert));
        out += &attr("olcTLSCertificateFile", &path(&tls.server_cert));
        out += &attr("olcTLSCertificateKeyFile", &path(&tls.server_key));
    }

    out += "\ndn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n";
    out += &attr("olcModulePath", &path(c.module_dir));
    for module in MODULES {
        out += &format!("olcModuleLoad: {module}\n");
    }

    out += "\ndn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n";
    for schema in SCHEMAS {
        let file = c.schema_dir.join(format!("{schema}.ldif"));
        out += &format!("\ninclude: file://{}\n", path(&file));
    }

    out += "\ndn: olcDatabase={-1}frontend,cn=config\n";
    out += "objectClass: olcDatabaseConfig\nobjectClass: olcFrontendConfig\nolcDatabase: {-1}frontend\n";
    // Group members kept sorted, as OpenLDAP's guide advises for large groups: without it each
    // added value is checked against every value already there, and a group of 50,000 members
    // takes longer to add than a client waits.
    out += "olcSortVals: member\n";

    out += "\ndn: olcDatabase={0}config,cn=config\nobjectClass: olcDatabaseConfig\nolcDatabase: {0}config\n";
    out += &format!(
        "olcAccess: {{0}}to * by dn.exact=gidNumber={}+uidNumber={},cn=peercred,cn=external,cn=auth manage by * none\n",
        c.gid, c.uid
    );

    out += "\ndn: olcDatabase={1}mdb,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcMdbConfig\n";
    out += "olcDatabase: {1}mdb\n";
    out += &attr("olcDbDirectory", &path(&data_dir(c.dir)));
    out += &attr("olcSuffix", c.suffix);
    out += &attr("olcRootDN", c.admin_dn);
    out += &attr("olcRootPW", c.admin_password_hash);
    // The 10 MB default fills up in benchmarks (a million accounts take several GiB); the map is
    // sparse, so 32 GiB costs no disk.
    out += "olcDbMaxSize: 34359738368\n";
    // Tests do not need the data to survive a power cut: with fsync, adds are ~7x slower.
    out += "olcDbNoSync: TRUE\n";
    for index in INDEXES {
        out += &format!("olcDbIndex: {index} eq\n");
    }
    let service_limit = match c.size_limit_for_service {
        // Like AD's MaxPageSize: a plain search stops after `n` entries, pages hold at most `n`,
        // and paging through everything is allowed.
        Some(n) => format!("size.soft={n} size.hard={n} size.pr={n} size.prtotal=unlimited"),
        None => "size=unlimited".to_owned(),
    };
    out += &attr("olcLimits", &format!("{{0}}dn.exact=\"{}\" {service_limit}", c.service_dn));
    out += &attr(
        "olcAccess",
        &format!(
            "{{0}}to attrs=userPassword by self write by dn.exact=\"{}\" read by anonymous auth by * none",
            c.service_dn
        ),
    );
    out += &attr("olcAccess", &format!("{{1}}to * by dn.exact=\"{}\" read by self read by * none", c.service_dn));

    out += "\ndn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config\n";
    out += "objectClass: olcOverlayConfig\nobjectClass: olcMemberOf\nolcOverlay: {0}memberof\n";
    out += "olcMemberOfGroupOC: groupOfNames\nolcMemberOfMemberAD: member\nolcMemberOfMemberOfAD: memberOf\n";
    out += "olcMemberOfRefInt: TRUE\n";

    // member and uniqueMember only: if refint also covered `manager`, the server, not roster,
    // would be what keeps manager references right, and a test of that would prove nothing.
    out += "\ndn: olcOverlay={1}refint,olcDatabase={1}mdb,cn=config\n";
    out += "objectClass: olcOverlayConfig\nobjectClass: olcRefintConfig\nolcOverlay: {1}refint\n";
    out += "olcRefintAttribute: member\nolcRefintAttribute: uniqueMember\n";

    // The pwdPolicy schema is built into slapd 2.5. Without a default policy that has
    // pwdLockout, slapd ignores pwdAccountLockedTime and a locked user can still bind.
    out += "\ndn: olcOverlay={2}ppolicy,olcDatabase={1}mdb,cn=config\n";
    out += "objectClass: olcOverlayConfig\nobjectClass: olcPPolicyConfig\nolcOverlay: {2}ppolicy\n";
    out += &attr("olcPPolicyDefault", &policy_dn(c.suffix));
    out
}

/// The first RDN of the suffix, which names the top entry's class: `dc=` or `o=`.
fn top_entry(suffix: &str) -> Result<String> {
    if suffix.contains(['\\', '+', '"']) {
        bail!("suffix {suffix:?}: escapes, quotes and multi-valued RDNs are not supported here");
    }
    let first_rdn = suffix.split(',').next().unwrap_or_default();
    let Some((attr_name, value)) = first_rdn.split_once('=') else {
        bail!("suffix {suffix:?} is not a DN (expected e.g. dc=example,dc=org)");
    };
    let value = value.trim();
    Ok(match attr_name.trim().to_ascii_lowercase().as_str() {
        "dc" => format!("objectClass: dcObject\nobjectClass: organization\n{}{}", attr("dc", value), attr("o", value)),
        "o" => format!("objectClass: organization\n{}", attr("o", value)),
        other => bail!("suffix {suffix:?} starts with {other}=; expected dc= or o="),
    })
}

pub(super) fn base_entries(suffix: &str, service_dn: &str, service_password_hash: &str) -> Result<String> {
    let mut out = attr("dn", suffix) + &top_entry(suffix)?;
    for ou in ["people", "groups", "services", "policies"] {
        out += &format!("\n{}objectClass: organizationalUnit\nou: {ou}\n", attr("dn", &format!("ou={ou},{suffix}")));
    }
    out += &format!(
        "\n{}objectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: roster\n",
        attr("dn", service_dn)
    );
    out += &attr("userPassword", service_password_hash);
    // pwdMaxFailure stays unset, so failed binds never lock an account by themselves; only an
    // administrative pwdAccountLockedTime does.
    out += &format!(
        "\n{}objectClass: pwdPolicy\nobjectClass: device\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE\n",
        attr("dn", &policy_dn(suffix))
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dc_suffix_makes_a_dc_object() {
        let ldif = base_entries("dc=example,dc=org", "cn=roster,ou=services,dc=example,dc=org", "{SSHA}x").unwrap();
        assert!(
            ldif.starts_with(
                "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: example\n"
            ),
            "{ldif}"
        );
        assert!(ldif.contains("dn: ou=people,dc=example,dc=org\n"), "{ldif}");
        assert!(ldif.contains("dn: cn=default,ou=policies,dc=example,dc=org\n"), "{ldif}");
    }

    #[test]
    fn an_o_suffix_makes_an_organization() {
        let ldif = base_entries("o=Acme", "cn=roster,ou=services,o=Acme", "{SSHA}x").unwrap();
        assert!(ldif.starts_with("dn: o=Acme\nobjectClass: organization\no: Acme\n"), "{ldif}");
    }

    #[test]
    fn other_suffixes_are_refused() {
        assert!(base_entries("ou=x", "cn=roster,ou=services,ou=x", "h").is_err());
        assert!(base_entries("example", "cn=roster,ou=services,example", "h").is_err());
    }

    #[test]
    fn the_service_limit_allows_paging_through_everything() {
        let config = ServerConfig {
            dir: Path::new("/d"),
            module_dir: Path::new("/usr/lib/ldap"),
            schema_dir: Path::new("/etc/ldap/schema"),
            suffix: "dc=example,dc=org",
            admin_dn: "cn=admin,dc=example,dc=org",
            admin_password_hash: "{SSHA}x",
            service_dn: "cn=roster,ou=services,dc=example,dc=org",
            size_limit_for_service: Some(3),
            uid: 1000,
            gid: 1001,
            tls: None,
        };
        let ldif = cn_config(&config);
        assert!(
            ldif.contains("olcLimits: {0}dn.exact=\"cn=roster,ou=services,dc=example,dc=org\" size.soft=3 size.hard=3 size.pr=3 size.prtotal=unlimited\n"),
            "{ldif}"
        );
        assert!(
            ldif.contains("by dn.exact=gidNumber=1001+uidNumber=1000,cn=peercred,cn=external,cn=auth manage"),
            "{ldif}"
        );
        assert!(ldif.contains("olcRefintAttribute: member\nolcRefintAttribute: uniqueMember\n\n"), "{ldif}");
        assert!(!ldif.contains("manager"), "{ldif}");
        assert!(!ldif.contains("olcTLS"), "{ldif}");
    }
}
