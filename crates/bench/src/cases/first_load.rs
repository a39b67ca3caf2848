//! First load: `roster run` into an empty OpenLDAP against `ldapadd -c` loading the same final
//! entries from an LDIF file into another empty one, side by side, as a ratio (at most 1 is the
//! target). The LDIF is what roster wrote, read back from its directory (user attributes only), so
//! both load exactly the same entries: the department OUs, the accounts, the groups with their
//! members. Both servers are the testkit's (no-sync, indexed); `ldapadd` is OpenLDAP's own client,
//! one operation at a time on one connection.

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use roster_testkit::{OpenLdap, OpenLdapOptions, SambaDc, SambaOptions};

use super::{Case, Context, Figure, short};
use crate::generate::{self, Directory};
use crate::lab::{EXPORT, Lab, PASSWORD_VARIABLE, operations_applied, run_roster};
use crate::measure::{self, Measured};

pub const SAMBA: Case = Case {
    name: "first-load-ad",
    about: "roster run of 10k pre-hires (no passwords) into an empty Samba AD DC, against ldapadd -c of the same entries: ratio",
    run: samba,
};

pub const OPENLDAP: Case = Case {
    name: "first-load",
    about: "roster run of 100k persons into an empty OpenLDAP, against ldapadd -c of the same entries: ratio",
    run: openldap,
};

fn openldap(cx: &Context) -> Result<Vec<Figure>> {
    let persons = cx.persons(100_000);
    let lab = Lab::start(&cx.work, &cx.roster, cx.spec(persons))?;
    let run = lab.roster(&["run"], None)?;
    let operations = operations_applied(&run)?;

    let suffix = lab.ldap.suffix().to_owned();
    let fresh = OpenLdap::start(OpenLdapOptions::default()).context("starting the second OpenLDAP")?;
    // The subtree bases exist in a fresh directory too: everything below them is what roster made.
    let bases = [format!("ou=people,{suffix}"), format!("ou=groups,{suffix}")];
    let mut ldif = String::new();
    let mut entries = 0u64;
    for base in &bases {
        let dump = lab.ldap.search(base, "(objectClass=*)", &[])?;
        for entry in dump.split("\n\n").map(str::trim).filter(|e| !e.is_empty()) {
            let dn = entry.lines().next().unwrap_or_default();
            if bases.iter().any(|b| dn.eq_ignore_ascii_case(&format!("dn: {b}"))) {
                continue;
            }
            ldif.push_str(entry);
            ldif.push_str("\n\n");
            entries += 1;
        }
    }
    let ldif_path = lab.dir().join("final.ldif");
    std::fs::write(&ldif_path, &ldif).context("writing the LDIF")?;
    let password_file = lab.dir().join("ldapadd.password");
    std::fs::write(&password_file, fresh.admin_password()).context("writing the password file")?;
    let mut ldapadd: Command = fresh.ldap_command("ldapadd");
    ldapadd
        .args(["-x", "-c", "-H", &fresh.url(), "-D", fresh.admin_dn(), "-y"])
        .arg(&password_file)
        .arg("-f")
        .arg(&ldif_path);
    let loaded = load(ldapadd)?;
    let written = fresh.search(&suffix, "(objectClass=*)", &["1.1"])?.lines().filter(|l| l.starts_with("dn:")).count();
    let label = short(persons);
    eprintln!(
        "  {label}: roster {operations} operation(s) in {:.1} s; ldapadd {entries} entries in {:.1} s ({written} entries now)",
        run.seconds(),
        loaded.seconds()
    );
    Ok(vec![
        Figure::new(format!("first load {label}: roster run"), run.seconds(), "s"),
        Figure::new(format!("first load {label}: roster operations"), operations as f64, ""),
        Figure::new(format!("first load {label}: ldapadd -c of the same {entries} entries"), loaded.seconds(), "s"),
        Figure::new(format!("first load {label}: roster / ldapadd"), run.seconds() / loaded.seconds(), "x")
            .at_most(1.0),
    ])
}

/// Runs `ldapadd`/`ldapmodify`, which must succeed.
fn load(command: Command) -> Result<Measured> {
    let program = command.get_program().to_string_lossy().into_owned();
    let loaded = measure::run(command, None)?;
    if loaded.code != 0 {
        bail!(
            "{program} -c exited with {}:\n{}",
            loaded.code,
            loaded.stderr.lines().take(20).collect::<Vec<_>>().join("\n")
        );
    }
    Ok(loaded)
}

/// Days the AD run is dated before the export's day: more than any generated hire date lies in
/// the past, so every person is still to start, and a pre-hire window this wide makes each one a
/// pre-hire, whose account is created disabled and, with `when = "enabled"`, without a password.
const BEFORE_EVERYONE: i64 = 6000;

/// The attributes of roster's AD entries that a load from LDIF must carry (what the generated AD
/// configuration writes, the correlation ID, and the structure).
const AD_ATTRIBUTES: &[&str] = &[
    "objectClass",
    "ou",
    "cn",
    "sAMAccountName",
    "userPrincipalName",
    "mail",
    "givenName",
    "sn",
    "displayName",
    "title",
    "department",
    "l",
    "telephoneNumber",
    "employeeType",
    "company",
    "employeeID",
    "manager",
    "userAccountControl",
    "groupType",
    "member",
];

fn samba(cx: &Context) -> Result<Vec<Figure>> {
    let persons = cx.persons(10_000);
    let options = || SambaOptions { base_ous: vec!["OU=people".into(), "OU=groups".into()], ..Default::default() };
    let dc = SambaDc::start(options()).context("starting the Samba AD DC")?;
    let folder = tempfile::Builder::new().prefix("roster-bench-ad-").tempdir_in(&cx.work).context("a bench folder")?;
    let spec = cx.spec(persons);
    generate::write_export(&spec, &folder.path().join(EXPORT))?;
    let suffix = dc.domain_dn().to_owned();
    let directory = Directory {
        url: dc.ldaps_url(),
        suffix: suffix.clone(),
        bind_dn: dc.admin_dn().to_owned(),
        password_variable: PASSWORD_VARIABLE.to_owned(),
    };
    let ca = dc.ca_cert_path().display().to_string();
    let config = generate::ad_config(&directory, EXPORT, &ca, BEFORE_EVERYONE as u32 + 100);
    std::fs::write(folder.path().join("roster.toml"), config)?;
    let as_of = spec.as_of - chrono::Duration::days(BEFORE_EVERYONE);
    let password = (PASSWORD_VARIABLE, dc.admin_password());
    let run = run_roster(&cx.roster, folder.path(), password, as_of, &["run"], None)?;
    let operations = operations_applied(&run)?;
    let after = run_roster(&cx.roster, folder.path(), password, as_of, &["plan"], None)?;
    if !after.stdout.contains("; 0 operation(s);") {
        bail!("after the first load the plan is not empty:\n{}", after.stdout);
    }

    // The same entries for ldapadd: containers, then accounts, then groups (AD checks that a member
    // exists), then the manager references in a second pass (AD checks those too), as roster does.
    let (mut containers, mut accounts, mut groups, mut managers) =
        (String::new(), String::new(), String::new(), String::new());
    let mut entries = 0u64;
    let bases = [format!("OU=people,{suffix}"), format!("OU=groups,{suffix}")];
    for base in &bases {
        let dump = dc.search(base, "(objectClass=*)", AD_ATTRIBUTES)?;
        for entry in dump.split("\n\n").map(str::trim).filter(|e| !e.is_empty()) {
            let mut lines = entry.lines();
            let dn = lines.next().unwrap_or_default();
            if bases.iter().any(|b| dn.eq_ignore_ascii_case(&format!("dn: {b}"))) {
                continue;
            }
            entries += 1;
            let (manager, rest): (Vec<&str>, Vec<&str>) = lines.partition(|l| l.starts_with("manager:"));
            let text = format!("{dn}\n{}\n\n", rest.join("\n"));
            let class = |c: &str| rest.iter().any(|l| l.eq_ignore_ascii_case(&format!("objectClass: {c}")));
            if class("organizationalUnit") {
                containers.push_str(&text);
            } else if class("group") {
                groups.push_str(&text);
            } else {
                accounts.push_str(&text);
            }
            for m in manager {
                managers.push_str(&format!("{dn}\nchangetype: modify\nadd: manager\n{m}\n-\n\n"));
            }
        }
    }
    let fresh = SambaDc::start(options()).context("starting the second Samba AD DC")?;
    let adds = folder.path().join("final.ldif");
    std::fs::write(&adds, format!("{containers}{accounts}{groups}"))?;
    let modifies = folder.path().join("managers.ldif");
    std::fs::write(&modifies, &managers)?;
    let password_file = folder.path().join("ldapadd.password");
    std::fs::write(&password_file, fresh.admin_password())?;
    let client = |program: &str, file: &std::path::Path| {
        let mut command = fresh.ldap_command(program);
        command
            .args(["-x", "-c", "-H", &fresh.ldaps_url(), "-D", fresh.admin_dn(), "-y"])
            .arg(&password_file)
            .arg("-f")
            .arg(file);
        command
    };
    let added = load(client("ldapadd", &adds))?;
    let modified = load(client("ldapmodify", &modifies))?;
    let loaded = added.seconds() + modified.seconds();
    let label = short(persons);
    eprintln!(
        "  AD {label}: roster {operations} operation(s) in {:.1} s; ldapadd {entries} entries + ldapmodify of the managers in {:.1} s",
        run.seconds(),
        loaded
    );
    Ok(vec![
        Figure::new(format!("AD first load {label}: roster run"), run.seconds(), "s"),
        Figure::new(format!("AD first load {label}: roster operations"), operations as f64, ""),
        Figure::new(format!("AD first load {label}: ldapadd + ldapmodify of the same {entries} entries"), loaded, "s"),
        Figure::new(format!("AD first load {label}: roster / ldapadd"), run.seconds() / loaded, "x").at_most(1.0),
    ])
}
