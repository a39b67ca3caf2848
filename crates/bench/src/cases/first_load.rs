//! First load: `roster run` into an empty OpenLDAP against `ldapadd -c` loading the same final
//! entries from an LDIF file into another empty one, side by side, as a ratio (at most 1 is the
//! target). The LDIF is what roster wrote, read back from its directory (user attributes only), so
//! both load exactly the same entries: the department OUs, the accounts, the groups with their
//! members. Both servers are the testkit's (no-sync, indexed); `ldapadd` is OpenLDAP's own client,
//! one operation at a time on one connection. Each side loads `--pairs` times into a directory
//! of its own, the two alternating which goes first, and the target is the pairs' median ratio:
//! one pair on a shared machine is as likely to measure the minute as the program.

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use roster_testkit::{OpenLdap, OpenLdapOptions, SambaDc, SambaOptions};

use super::{Case, Context, Figure, short, sorted};
use crate::generate::{self, Directory};
use crate::lab::{EXPORT, Lab, PASSWORD_VARIABLE, operations_applied, run_roster};
use crate::measure::{self, Measured};

pub const SAMBA: Case = Case {
    name: "first-load-ad",
    about: "roster run of 10k pre-hires (no passwords) into an empty Samba AD DC, against ldapadd -c of the same entries: median ratio of --pairs",
    run: samba,
};

pub const OPENLDAP: Case = Case {
    name: "first-load",
    about: "roster run of 100k persons into an empty OpenLDAP, against ldapadd -c of the same entries: median ratio of --pairs",
    run: openldap,
};

fn openldap(cx: &Context) -> Result<Vec<Figure>> {
    let persons = cx.persons(100_000);
    let folder =
        tempfile::Builder::new().prefix("roster-bench-ldif-").tempdir_in(&cx.work).context("a bench folder")?;
    let ldif_path = folder.path().join("final.ldif");
    let password_file = folder.path().join("ldapadd.password");
    let (mut operations, mut entries) = (None, 0u64);
    let pairs = pairs(cx, |side| match side {
        Side::Roster => {
            let lab = Lab::start(&cx.work, &cx.roster, cx.spec(persons))?;
            let run = lab.roster(&["run"], None)?;
            same_operations(&mut operations, operations_applied(&run)?)?;
            if entries == 0 {
                entries = write_final_ldif(&lab, &ldif_path)?;
            }
            Ok(run.seconds())
        }
        Side::Ldapadd => {
            let fresh = OpenLdap::start(OpenLdapOptions::default()).context("starting the second OpenLDAP")?;
            std::fs::write(&password_file, fresh.admin_password()).context("writing the password file")?;
            let mut ldapadd: Command = fresh.ldap_command("ldapadd");
            ldapadd
                .args(["-x", "-c", "-H", &fresh.url(), "-D", fresh.admin_dn(), "-y"])
                .arg(&password_file)
                .arg("-f")
                .arg(&ldif_path);
            let loaded = load(ldapadd)?;
            let written = fresh
                .search(fresh.suffix(), "(objectClass=*)", &["1.1"])?
                .lines()
                .filter(|l| l.starts_with("dn:"))
                .count();
            eprintln!("  ldapadd: {entries} entries in {:.1} s ({written} entries now)", loaded.seconds());
            Ok(loaded.seconds())
        }
    })?;
    let label = short(persons);
    let mut figures =
        vec![Figure::new(format!("first load {label}: roster operations"), operations.unwrap_or_default() as f64, "")];
    figures.extend(pair_figures(
        &format!("first load {label}"),
        &format!("ldapadd -c of the same {entries} entries"),
        &pairs,
    ));
    Ok(figures)
}

/// The entries roster wrote below the subtree bases (which exist in a fresh directory too), as
/// LDIF at `path`; returns how many.
fn write_final_ldif(lab: &Lab, path: &std::path::Path) -> Result<u64> {
    let suffix = lab.ldap.suffix();
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
    std::fs::write(path, &ldif).context("writing the LDIF")?;
    Ok(entries)
}

/// Which load of a pair.
#[derive(Clone, Copy)]
enum Side {
    Roster,
    Ldapadd,
}

/// Seconds of roster's load and of `ldapadd`'s.
struct Pair {
    roster: f64,
    ldapadd: f64,
}

/// Measures `cx.pairs` pairs with `load`: roster's first in the first pair (its run writes the
/// entries `ldapadd` loads) and in every odd one, `ldapadd`'s first in the even ones, so neither
/// side always meets the machine's warmer or quieter minute.
fn pairs(cx: &Context, mut load: impl FnMut(Side) -> Result<f64>) -> Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    for n in 1..=cx.pairs {
        let pair = if n % 2 == 1 {
            let roster = load(Side::Roster)?;
            Pair { roster, ldapadd: load(Side::Ldapadd)? }
        } else {
            let ldapadd = load(Side::Ldapadd)?;
            Pair { roster: load(Side::Roster)?, ldapadd }
        };
        eprintln!(
            "  pair {n} of {}: roster {:.1} s, ldapadd {:.1} s, ratio {:.2}",
            cx.pairs,
            pair.roster,
            pair.ldapadd,
            pair.roster / pair.ldapadd
        );
        pairs.push(pair);
    }
    Ok(pairs)
}

/// Every roster load of a case must apply as many operations as the first, or the pairs did not
/// load the same thing.
fn same_operations(first: &mut Option<u64>, now: u64) -> Result<()> {
    let first = *first.get_or_insert(now);
    if now != first {
        bail!("roster's load applied {now} operations, the first pair's {first}: the loads differ");
    }
    Ok(())
}

/// The pairs' medians and the ratio's median (the target) and spread.
fn pair_figures(case: &str, ldapadd: &str, pairs: &[Pair]) -> Vec<Figure> {
    let n = pairs.len();
    let rosters = sorted(pairs.iter().map(|p| p.roster));
    let loads = sorted(pairs.iter().map(|p| p.ldapadd));
    let ratios = sorted(pairs.iter().map(|p| p.roster / p.ldapadd));
    vec![
        Figure::new(format!("{case}: roster run, median of {n}"), rosters[n / 2], "s"),
        Figure::new(format!("{case}: {ldapadd}, median of {n}"), loads[n / 2], "s"),
        Figure::new(format!("{case}: roster / ldapadd, median of {n} pairs"), ratios[n / 2], "x").at_most(1.0),
        Figure::new(format!("{case}: roster / ldapadd, lowest pair"), ratios[0], "x"),
        Figure::new(format!("{case}: roster / ldapadd, highest pair"), ratios[n - 1], "x"),
    ]
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
    let folder = tempfile::Builder::new().prefix("roster-bench-ad-").tempdir_in(&cx.work).context("a bench folder")?;
    let spec = cx.spec(persons);
    generate::write_export(&spec, &folder.path().join(EXPORT))?;
    let as_of = spec.as_of - chrono::Duration::days(BEFORE_EVERYONE);
    let adds = folder.path().join("final.ldif");
    let modifies = folder.path().join("managers.ldif");
    let password_file = folder.path().join("ldapadd.password");
    let (mut operations, mut entries) = (None, 0u64);
    let pairs = pairs(cx, |side| match side {
        Side::Roster => {
            let dc = SambaDc::start(options()).context("starting the Samba AD DC")?;
            let directory = Directory {
                url: dc.ldaps_url(),
                suffix: dc.domain_dn().to_owned(),
                bind_dn: dc.admin_dn().to_owned(),
                password_variable: PASSWORD_VARIABLE.to_owned(),
            };
            let ca = dc.ca_cert_path().display().to_string();
            let config = generate::ad_config(&directory, EXPORT, &ca, BEFORE_EVERYONE as u32 + 100);
            std::fs::write(folder.path().join("roster.toml"), config)?;
            // Each pair's roster starts from nothing: no store of an earlier pair.
            for file in std::fs::read_dir(folder.path())? {
                let path = file?.path();
                if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("roster.db")) {
                    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                }
            }
            let password = (PASSWORD_VARIABLE, dc.admin_password());
            let run = run_roster(&cx.roster, folder.path(), password, as_of, &["run"], None)?;
            same_operations(&mut operations, operations_applied(&run)?)?;
            let after = run_roster(&cx.roster, folder.path(), password, as_of, &["plan"], None)?;
            if !after.stdout.contains("; 0 operation(s);") {
                bail!("after the first load the plan is not empty:\n{}", after.stdout);
            }
            if entries == 0 {
                entries = write_ad_ldif(&dc, &adds, &modifies)?;
            }
            Ok(run.seconds())
        }
        Side::Ldapadd => {
            let fresh = SambaDc::start(options()).context("starting the second Samba AD DC")?;
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
            eprintln!(
                "  AD ldapadd: {entries} entries in {:.1} s, ldapmodify of the managers in {:.1} s",
                added.seconds(),
                modified.seconds()
            );
            Ok(added.seconds() + modified.seconds())
        }
    })?;
    let label = short(persons);
    let mut figures = vec![Figure::new(
        format!("AD first load {label}: roster operations"),
        operations.unwrap_or_default() as f64,
        "",
    )];
    figures.extend(pair_figures(
        &format!("AD first load {label}"),
        &format!("ldapadd + ldapmodify of the same {entries} entries"),
        &pairs,
    ));
    Ok(figures)
}

/// The entries roster wrote into the DC, for `ldapadd` in the order AD accepts them: containers,
/// then accounts, then groups (AD checks that a member exists), at `adds`; then the manager
/// references, at `modifies`, in a second pass (AD checks those too), as roster does. Returns
/// how many entries.
fn write_ad_ldif(dc: &SambaDc, adds: &std::path::Path, modifies: &std::path::Path) -> Result<u64> {
    let suffix = dc.domain_dn();
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
    std::fs::write(adds, format!("{containers}{accounts}{groups}"))?;
    std::fs::write(modifies, &managers)?;
    Ok(entries)
}
