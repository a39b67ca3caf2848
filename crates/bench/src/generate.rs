//! Realistic HR exports of any size, deterministic for a seed, and the roster configuration that
//! reads them.
//!
//! Every row is a pure function of the seed and the person's index, so a million rows stream to
//! the file in constant memory and a second export with a few changes differs from the first in
//! exactly those rows. The reporting tree is implicit in the indexes: the first persons after the
//! chief executive head the departments, everyone else reports to a manager with a smaller index
//! (eight reports each), and inherits that manager's department.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{Days, NaiveDate};

use crate::names::{LOCALES, split};
use crate::rng::Rng;

pub const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Human Resources",
    "Legal",
    "Operations",
    "Customer Support",
    "Research",
    "Product",
    "IT",
    "Facilities",
    "Procurement",
    "Logistics",
    "Quality",
    "Security",
    "Communications",
    "Data Science",
    "Manufacturing",
    "Design",
    "Internal Audit",
    "Strategy",
    "Partnerships",
    "Training",
];
pub const LOCATIONS: &[&str] = &[
    "Berlin",
    "München",
    "Zürich",
    "Paris",
    "Madrid",
    "São Paulo",
    "New York",
    "Toronto",
    "London",
    "Dublin",
    "Warszawa",
    "İstanbul",
    "Tokyo",
    "Shanghai",
    "Bengaluru",
    "Dubai",
    "Hồ Chí Minh",
    "Stockholm",
    "Oslo",
    "Kraków",
];
const TITLES: &[&str] = &[
    "Associate",
    "Analyst",
    "Specialist",
    "Senior Specialist",
    "Engineer",
    "Senior Engineer",
    "Coordinator",
    "Consultant",
    "Lead",
    "Principal",
];
/// Reports per manager below the department heads.
const SPAN: u64 = 8;
/// The header of the export, in the order of [`Row::fields`]. Legal_Entity and FTE are columns
/// roster does not map, as real exports carry many.
pub const HEADER: &[&str] = &[
    "Employee_ID",
    "First_Name",
    "Last_Name",
    "First_Name_Latin",
    "Last_Name_Latin",
    "Worker_Status",
    "Hire_Date",
    "Termination_Date",
    "Leave_Start",
    "Leave_End",
    "Department",
    "Location",
    "Job_Title",
    "Cost_Center",
    "Work_Phone",
    "Employment_Type",
    "Manager_ID",
    "Legal_Entity",
    "FTE",
];
/// Random streams, so that adding a field to one never shifts another.
const PERSON: u64 = 1;
const CHANGE: u64 = 2;
const CHANGED: u64 = 3;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub persons: u64,
    pub seed: u64,
    /// The day the dates are arranged around: joiners, pre-hires, leavers and leaves near it.
    pub as_of: NaiveDate,
    /// Records changed against the export of the same seed without changes: a tenth are new
    /// joiners (extra rows), a tenth leavers, a fifth move department, the rest change title,
    /// location or phone.
    pub changes: u64,
}

impl Spec {
    fn joiners(&self) -> u64 {
        self.changes / 10
    }

    fn changed(&self) -> BTreeSet<u64> {
        let edits = self.changes - self.joiners();
        let mut set = BTreeSet::new();
        let mut rng = Rng::for_item(self.seed, CHANGED, 0);
        while (set.len() as u64) < edits.min(self.persons.saturating_sub(1)) {
            set.insert(1 + rng.below(self.persons - 1));
        }
        set
    }

    /// The source key of the person with this index: eight digits that look shuffled (a bijection
    /// of the index modulo 10^8), unique for up to a hundred million persons.
    pub fn key(&self, index: u64) -> String {
        format!("{:08}", (index.wrapping_mul(48_271_021).wrapping_add(self.seed.wrapping_mul(7_919))) % 100_000_000)
    }
}

/// One row of the export.
pub struct Row {
    pub fields: [String; 19],
}

/// The index of a person's manager (None for the chief executive).
pub fn manager_of(index: u64) -> Option<u64> {
    let heads = DEPARTMENTS.len() as u64;
    match index {
        0 => None,
        i if i <= heads => Some(0),
        i => Some(1 + (i - heads - 1) / SPAN),
    }
}

fn department_of(mut index: u64) -> Option<usize> {
    while let Some(manager) = manager_of(index) {
        if manager == 0 {
            return Some(index as usize - 1);
        }
        index = manager;
    }
    None
}

fn has_reports(index: u64, persons: u64) -> bool {
    let heads = DEPARTMENTS.len() as u64;
    index == 0 || heads + 1 + (index - 1) * SPAN < persons
}

fn date(as_of: NaiveDate, offset: i64) -> String {
    let day = if offset >= 0 {
        as_of.checked_add_days(Days::new(offset as u64))
    } else {
        as_of.checked_sub_days(Days::new(offset.unsigned_abs()))
    };
    day.unwrap_or(as_of).format("%Y-%m-%d").to_string()
}

fn pick_locale(rng: &mut Rng) -> &'static crate::names::Locale {
    let total: u64 = LOCALES.iter().map(|l| l.weight).sum();
    let mut n = rng.below(total);
    for locale in LOCALES {
        if n < locale.weight {
            return locale;
        }
        n -= locale.weight;
    }
    &LOCALES[0]
}

/// One of `items` other than `current`.
fn other(rng: &mut Rng, items: &[&'static str], current: &str) -> &'static str {
    loop {
        let item = rng.pick(items);
        if *item != current {
            return item;
        }
    }
}

/// The row of the person with this index, as the export of `spec` holds it.
pub fn row(spec: &Spec, index: u64, changed: &BTreeSet<u64>) -> Row {
    let mut rng = Rng::for_item(spec.seed, PERSON, index);
    let locale = pick_locale(&mut rng);
    let given = *rng.pick::<&str>(locale.given);
    let family = *rng.pick::<&str>(locale.family);
    let ((given, given_latin), (family, family_latin)) = (split(given), split(family));
    let joiner = index >= spec.persons;
    let lifecycle = if index == 0 || joiner { 999 } else { rng.below(1000) };
    let (mut status, mut hire, mut end, mut leave) = ("Active", -(1 + rng.below(5500) as i64), None, None);
    match lifecycle {
        0..20 => hire = 1 + rng.below(7) as i64,
        20..30 => hire = 8 + rng.below(80) as i64,
        30..80 => end = Some(-(1 + rng.below(25) as i64)),
        80..90 => end = Some(1 + rng.below(60) as i64),
        90..110 => {
            let back = rng.below(10) < 5;
            leave = Some((-(1 + rng.below(100) as i64), back.then(|| 1 + rng.below(100) as i64)));
            if rng.below(10) < 3 {
                status = "On Leave";
            }
        }
        110..112 => status = "Terminated",
        112..113 => {
            hire = 3 + rng.below(20) as i64;
            status = "Offer Withdrawn";
        }
        _ => {}
    }
    if joiner {
        hire = 0;
    }
    let department = department_of(index).map_or("Executive Office", |d| DEPARTMENTS[d]);
    let mut location = if rng.chance(300) {
        rng.pick(LOCATIONS)
    } else {
        LOCATIONS[department_of(index).unwrap_or(0) % LOCATIONS.len()]
    };
    let mut title = if manager_of(index) == Some(0) {
        format!("Head of {department}")
    } else if has_reports(index, spec.persons) {
        "Manager".to_owned()
    } else {
        rng.pick(TITLES).to_string()
    };
    let mut phone = format!("+49 30 {:07}", rng.below(10_000_000));
    let employment = match rng.below(1000) {
        0..70 => "Contractor",
        70..100 => "Intern",
        _ => "Employee",
    };
    let mut department = department.to_owned();
    if changed.contains(&index) {
        let mut change = Rng::for_item(spec.seed, CHANGE, index);
        match change.below(10) {
            0 => end = Some(-1),
            1 | 2 => department = other(&mut change, DEPARTMENTS, &department).to_owned(),
            3 | 4 => location = other(&mut change, LOCATIONS, location),
            5 | 6 => phone = format!("+49 30 {:07}", change.below(10_000_000)),
            _ => title = format!("Senior {title}"),
        }
    }
    let location_index = LOCATIONS.iter().position(|l| *l == location).unwrap_or(0);
    let department_index = DEPARTMENTS.iter().position(|d| *d == department).map_or(99, |d| d + 1);
    let fields = [
        spec.key(index),
        given.to_owned(),
        family.to_owned(),
        given_latin.to_owned(),
        family_latin.to_owned(),
        status.to_owned(),
        date(spec.as_of, hire + end.map_or(0, |_| -2000)),
        end.map(|e| date(spec.as_of, e)).unwrap_or_default(),
        leave.map(|(start, _)| date(spec.as_of, start)).unwrap_or_default(),
        leave.and_then(|(_, end)| end).map(|e| date(spec.as_of, e)).unwrap_or_default(),
        department,
        location.to_owned(),
        title,
        format!("CC-{department_index:02}{location_index:02}"),
        phone,
        employment.to_owned(),
        manager_of(index).map(|m| spec.key(m)).unwrap_or_default(),
        format!("LE{:02}", location_index),
        if rng.chance(100) { "0.5" } else { "1.0" }.to_owned(),
    ];
    Row { fields }
}

/// Writes the export of `spec` as CSV (UTF-8, comma, quoted where needed). Returns the rows written.
pub fn write_export(spec: &Spec, path: &Path) -> Result<u64> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
    out.write_record(HEADER)?;
    let changed = spec.changed();
    let total = spec.persons + spec.joiners();
    for index in 0..total {
        out.write_record(&row(spec, index, &changed).fields).with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(total)
}

/// Where the generated configuration points.
#[derive(Debug, Clone)]
pub struct Directory {
    pub url: String,
    pub suffix: String,
    pub bind_dn: String,
    /// The environment variable holding the bind password (`env:` reference).
    pub password_variable: String,
}

/// The roster configuration for the generated export: 14 attribute mappings, 5 group rules
/// (everyone, department, location, contractors, and one team group per manager), unique logins
/// from two candidates with romanized forms for Han and kana names, OUs per department. The
/// directory keeps `memberOf` (the testkit's OpenLDAP runs the memberof overlay), so partial reads
/// take an account's groups from it, as an operator would configure such a directory.
pub fn config(directory: &Directory, export: &str) -> String {
    let Directory { url, suffix, bind_dn, password_variable } = directory;
    format!(
        r#"{head}[[target]]
name = "directory"
kind = "ldap"
url = "{url}"
bind_dn = "{bind_dn}"
bind_password = "env:{password_variable}"
tls = {{ allow_plaintext = true }}
managed = ["ou=people,{suffix}", "ou=groups,{suffix}"]
dn = '"uid=" + login + ",ou=" + department + ",ou=people,{suffix}"'
object_classes = ["inetOrgPerson"]
correlate = "employeeNumber"
member_of = true
disable = {{ lock = true, move_to = "ou=leavers,ou=people,{suffix}" }}
[target.attributes]
uid = {{ value = "login", when = "create" }}
mail = {{ value = 'login + "@example.org"', when = "create" }}
cn = 'given_name + " " + family_name'
sn = "family_name"
givenName = "given_name"
displayName = 'family_name + ", " + given_name'
title = "title"
departmentNumber = "department"
ou = "department"
l = "location"
telephoneNumber = "phone"
employeeType = "employment_type"
businessCategory = "cost_center"
manager = "manager_dn"
{groups}{safety}"#,
        head = head(export, 7),
        groups = group_rules("cn", &format!("ou=groups,{suffix}")),
        safety = SAFETY,
    )
}

/// The same people, rules and logins for an Active Directory domain (`ldaps://`, the DC's CA in
/// `ca_file`), accounts named by login, with `prehire_days` as given and the password set only when
/// an account is first enabled (`[target.password] when = "enabled"`), so pre-hire accounts are
/// created without one.
pub fn ad_config(directory: &Directory, export: &str, ca_file: &str, prehire_days: u32) -> String {
    let Directory { url, suffix, bind_dn, password_variable } = directory;
    format!(
        r#"{head}[[target]]
name = "directory"
kind = "active_directory"
url = "{url}"
bind_dn = "{bind_dn}"
bind_password = "env:{password_variable}"
tls = {{ ca_file = '{ca_file}' }}
managed = ["OU=people,{suffix}", "OU=groups,{suffix}"]
dn = '"CN=" + login + ",OU=" + department + ",OU=people,{suffix}"'
disable = {{ move_to = "OU=leavers,OU=people,{suffix}" }}
password = {{ delivery = "none", when = "enabled" }}
[target.attributes]
sAMAccountName = {{ value = "login", when = "create" }}
userPrincipalName = {{ value = 'login + "@example.test"', when = "create" }}
mail = {{ value = 'login + "@example.org"', when = "create" }}
givenName = "given_name"
sn = "family_name"
displayName = 'family_name + ", " + given_name'
title = "title"
department = "department"
l = "location"
telephoneNumber = "phone"
employeeType = "employment_type"
company = "cost_center"
manager = "manager_dn"
{groups}{safety}"#,
        head = head(export, prehire_days),
        groups = group_rules("CN", &format!("OU=groups,{suffix}")),
        safety = SAFETY,
    )
}

/// The store, time zone, source, lifecycle and login rules every generated configuration shares.
fn head(export: &str, prehire_days: u32) -> String {
    format!(
        r#"# Written by `roster-bench generate`: the configuration of the benchmarks (docs/benchmarks.md).

[store]
path = "roster.db"

[time]
zone = "Europe/Berlin"

[[source]]
name = "hr"
kind = "csv"
path = "{export}"
complete = true
key = "Employee_ID"
required = ["given_name", "family_name", "department"]
[source.columns]
given_name = "First_Name"
family_name = "Last_Name"
given_name_latin = "First_Name_Latin"
family_name_latin = "Last_Name_Latin"
status = "Worker_Status"
hire_date = "Hire_Date"
last_day = "Termination_Date"
leave_start = "Leave_Start"
leave_end = "Leave_End"
department = "Department"
location = "Location"
title = "Job_Title"
cost_center = "Cost_Center"
phone = "Work_Phone"
employment_type = "Employment_Type"
manager = "Manager_ID"

[lifecycle]
prehire_days = {prehire_days}
on_leave = "disable"
purge_after_days = 30
status = {{ leave = ["On Leave"], terminated = ["Terminated"], rescinded = ["Offer Withdrawn"] }}

[login]
candidates = ['lower(normalize_diacritics(given_name + "." + family_name))',
              'lower(normalize_diacritics(left(given_name, 1) + "." + family_name))']
max_length = 20
allowed = "a-z0-9._-"
fallback = '"u" + lower(key)'
[login.romanized]
given_name = "given_name_latin"
family_name = "family_name_latin"

"#
    )
}

/// The five group rules, groups named by `rdn` under `groups_ou`.
fn group_rules(rdn: &str, groups_ou: &str) -> String {
    format!(
        r#"[[target.groups]]
dn = '"{rdn}=all-staff,{groups_ou}"'
[[target.groups]]
dn = '"{rdn}=dept-" + lower(normalize_diacritics(department)) + ",{groups_ou}"'
[[target.groups]]
dn = '"{rdn}=site-" + lower(normalize_diacritics(location)) + ",{groups_ou}"'
[[target.groups]]
dn = '"{rdn}=contractors,{groups_ou}"'
when = 'employment_type == "Contractor"'
[[target.groups]]
dn = '"{rdn}=team-" + manager + ",{groups_ou}"'
when = 'manager != ""'

"#
    )
}

const SAFETY: &str = r#"[safety]
disables = { percent = 20 }
deletes = { percent = 20 }
renames = { percent = 20 }
group_removals = { percent = 20 }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(changes: u64) -> Spec {
        Spec { persons: 2000, seed: 7, as_of: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(), changes }
    }

    #[test]
    fn keys_are_unique_and_every_manager_comes_before_their_reports() {
        let s = spec(0);
        let keys: BTreeSet<String> = (0..s.persons).map(|i| s.key(i)).collect();
        assert_eq!(keys.len() as u64, s.persons);
        for i in 1..s.persons {
            assert!(manager_of(i).unwrap() < i);
        }
    }

    #[test]
    fn changes_touch_exactly_the_rows_they_name_and_add_joiners() {
        let (before, after) = (spec(0), spec(50));
        let none = BTreeSet::new();
        let changed = after.changed();
        assert_eq!(changed.len(), 45);
        let differing =
            (0..before.persons).filter(|&i| row(&before, i, &none).fields != row(&after, i, &changed).fields).count();
        assert_eq!(differing, 45);
        assert_eq!(after.joiners(), 5);
    }

    #[test]
    fn names_collide_as_in_a_large_company() {
        let s = spec(0);
        let none = BTreeSet::new();
        let names: BTreeSet<(String, String)> = (0..s.persons)
            .map(|i| {
                let r = row(&s, i, &none);
                (r.fields[1].clone(), r.fields[2].clone())
            })
            .collect();
        assert!(names.len() < 1900, "{} distinct names among 2000", names.len());
    }
}
