//! First load: `roster run` into an empty OpenLDAP against `ldapadd -c` loading the same final
//! entries from an LDIF file into another empty one, side by side, as a ratio (at most 1 is the
//! target). The LDIF is what roster wrote, read back from its directory (user attributes only), so
//! both load exactly the same entries: the department OUs, the accounts, the groups with their
//! members. Both servers are the testkit's (no-sync, indexed); `ldapadd` is OpenLDAP's own client,
//! one operation at a time on one connection.

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use roster_testkit::{OpenLdap, OpenLdapOptions};

use super::{Case, Context, Figure, short};
use crate::lab::{Lab, operations_applied};
use crate::measure;

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
    let loaded = measure::run(ldapadd, None)?;
    if loaded.code != 0 {
        bail!(
            "ldapadd -c exited with {}:\n{}",
            loaded.code,
            loaded.stderr.lines().take(20).collect::<Vec<_>>().join("\n")
        );
    }
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
