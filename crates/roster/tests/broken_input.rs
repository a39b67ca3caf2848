//! Broken and hostile HR exports, through the real binary against a real OpenLDAP.
//!
//! Broken exports (an empty file, a header alone, a file cut mid-row, another delimiter, every row
//! twice, the file twice, a renamed or missing column) are each refused or quarantined with a
//! message that says what is wrong, and none disables anyone: the directory is unchanged down to
//! the operational attributes.
//!
//! Hostile text (filter syntax, DN syntax aimed at another subtree, NUL bytes, a 10 MB field,
//! right-to-left overrides, invalid UTF-8) ends up escaped, rejected with a reason, or stored
//! harmlessly; it never changes which entries a search or a write reaches: every entry outside the
//! managed subtrees, and every entry that was there before, is as it was, and each person's key
//! finds exactly their one account.
//!
//! Fails, never skips, when slapd is missing.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use std::collections::BTreeMap;

use ldap3::Scope;
use support::{BASE, Entry, Hr, LEAVERS, Lab, PEOPLE, Run, Worker};

const DAY_ONE: &str = "2026-03-02";
const DAY_TWO: &str = "2026-03-03";

fn ten_people() -> Hr {
    let names = [
        ("Ada", "Lovelace"),
        ("Grace", "Hopper"),
        ("Alan", "Turing"),
        ("Hedy", "Lamarr"),
        ("Edsger", "Dijkstra"),
        ("Barbara", "Liskov"),
        ("Claude", "Shannon"),
        ("Margaret", "Hamilton"),
        ("Dorothy", "Vaughan"),
        ("Tim", "Berners-Lee"),
    ];
    Hr::new(names.iter().enumerate().map(|(i, (first, last))| {
        let department = if i % 2 == 0 { "Engineering" } else { "Sales" };
        Worker::new(&format!("20{i:02}"), first, last, department).title("Engineer")
    }))
}

/// A broken export and what roster must say about it.
struct Broken {
    what: &'static str,
    bytes: Vec<u8>,
    /// The exit codes that are a refusal or a quarantine: 0 (rows quarantined, persons held), 1 (the
    /// source could not be read), 3 (blocked by a safety limit).
    codes: &'static [i32],
    /// Text the output must contain (stdout and stderr together).
    says: &'static [&'static str],
}

fn broken_exports(csv: &str) -> Vec<Broken> {
    let (header, rows) = csv.split_once('\n').expect("a header line");
    let lines: Vec<&str> = rows.lines().collect();
    let cut = {
        let at = csv.match_indices('\n').nth(5).map_or(0, |(i, _)| i) + 9;
        csv[..at].to_owned()
    };
    let one_row_twice = format!("{csv}{}\n", lines[3]);
    vec![
        Broken { what: "an empty file", bytes: Vec::new(), codes: &[1], says: &["empty"] },
        Broken {
            what: "a header without rows",
            bytes: format!("{header}\n").into_bytes(),
            codes: &[3],
            says: &["BLOCKED", "source hr has 0 rows"],
        },
        Broken {
            what: "a file cut in the middle of a row",
            bytes: cut.into_bytes(),
            codes: &[0, 3],
            says: &["truncated"],
        },
        Broken {
            what: "a file delimited by semicolons",
            bytes: csv.replace(',', ";").into_bytes(),
            codes: &[1],
            says: &["Department", "\";\""],
        },
        Broken {
            what: "a file delimited by tabs",
            bytes: csv.replace(',', "\t").into_bytes(),
            codes: &[1],
            says: &["Department", "\"\\t\""],
        },
        Broken {
            what: "one row twice",
            bytes: one_row_twice.into_bytes(),
            codes: &[0],
            says: &["key 2003 appears on rows 4 and 11"],
        },
        Broken {
            what: "a renamed column",
            bytes: csv.replacen("Termination_Date", "Term_Date", 1).into_bytes(),
            codes: &[1],
            says: &["Termination_Date", "Term_Date"],
        },
        Broken {
            what: "a missing column",
            bytes: drop_column(csv, "Status").into_bytes(),
            codes: &[1],
            says: &["Status"],
        },
    ]
}

/// The CSV without the column named `name` (no field in it holds a comma).
fn drop_column(csv: &str, name: &str) -> String {
    let index = csv.lines().next().and_then(|h| h.split(',').position(|c| c == name)).expect("the column");
    csv.lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields.remove(index);
            fields.join(",") + "\n"
        })
        .collect()
}

/// Each broken export, run, planned and checked: refused or quarantined with a message that says
/// so, and nothing in the directory changes. After each, the real export plans nothing.
#[test]
fn broken_exports_are_refused_or_quarantined_and_disable_nobody() {
    let lab = Lab::start();
    let hr = ten_people();
    lab.export(&hr);
    lab.run(DAY_ONE);
    let before = lab.dump();
    let mut problems = Vec::new();
    for broken in broken_exports(&hr.to_csv()) {
        std::fs::write(lab.dir().join("exports/hr.csv"), &broken.bytes).expect("writing the export");
        for command in ["check", "run"] {
            let run = lab.roster(DAY_TWO, &[command]);
            let output = format!("{}{}", run.stdout, run.stderr);
            // `check` reads and connects but plans nothing: it names the problem or passes.
            let code_ok = broken.codes.contains(&run.code) || (command == "check" && run.code == 0);
            let says = command == "check" || broken.says.iter().all(|s| output.contains(s));
            if !code_ok || !says || run.stderr.contains("panicked") {
                problems
                    .push(format!("{}: expected exit {:?} and {:?}:\n{run}", broken.what, broken.codes, broken.says));
            }
            if lab.dump() != before {
                problems.push(format!("{}: `{command}` changed the directory:\n{run}", broken.what));
            }
        }
        lab.export(&hr);
        let plan = lab.roster(DAY_TWO, &["plan"]);
        if plan.code != 0 || !plan.stdout.contains("Nothing to change.") {
            problems.push(format!("{}: afterwards, the real export does not plan nothing:\n{plan}", broken.what));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// An export whose every row is there twice, or the whole file twice over (the header as a row in
/// the middle): every row is quarantined ("key ... appears on rows ..."), every person held, and
/// nothing changes. The next day's correct export must then go through. Today it is blocked: the
/// quarantined run recorded its 20 rows (valid and quarantined alike, `SourceRead::rows_seen`) as
/// the source's last good size, so the correct 10 rows look like a 50% shrink.
#[test]
fn a_duplicated_export_does_not_block_the_next_good_one() {
    let hr = ten_people();
    let csv = hr.to_csv();
    let (header, rows) = csv.split_once('\n').expect("a header line");
    let doubled_rows: String = rows.lines().flat_map(|line| [line, line]).map(|l| format!("{l}\n")).collect();
    for (what, broken) in
        [("every row twice", format!("{header}\n{doubled_rows}")), ("the file twice", format!("{csv}{csv}"))]
    {
        let lab = Lab::start();
        lab.export(&hr);
        lab.run(DAY_ONE);
        let before = lab.dump();
        lab.export_text(&broken);
        let run = lab.roster(DAY_TWO, &["run"]).expect_code(0);
        assert!(run.stdout.contains("key 2000 appears on rows"), "{what}: the duplicates are quarantined:\n{run}");
        assert!(lab.dump() == before, "{what}: a quarantined export changed the directory:\n{run}");
        lab.export(&hr);
        let next = lab.roster(DAY_TWO, &["run"]);
        assert_eq!(next.code, 0, "{what}: after it, the correct export is refused:\n{run}\n{next}");
        lab.assert_nothing_to_do(DAY_TWO);
    }
}

/// The entries that exist outside what roster manages: an admins OU with an account whose uid is
/// what a filter injection would look for, and a service account.
fn plant_bystanders(lab: &Lab) {
    lab.ldap
        .ldapadd(&format!(
            "dn: ou=admins,{BASE}\nobjectClass: organizationalUnit\nou: admins\n\n\
             dn: uid=root,ou=admins,{BASE}\nobjectClass: inetOrgPerson\nuid: root\ncn: root\nsn: root\n\
             employeeNumber: 0\ntitle: Domain admin\n\n\
             dn: uid=admin,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: admin\ncn: admin\nsn: admin\n"
        ))
        .expect("entries that are not roster's");
}

/// Every entry of `before`, as it is in `after`, except roster's groups (whose members roster
/// changes) and the computed hasSubordinates: what no person's run may change.
fn bystanders_changed(before: &BTreeMap<String, Entry>, after: &BTreeMap<String, Entry>) -> Vec<String> {
    let groups = format!(",ou=groups,{BASE}");
    let strip = |entry: &Entry| {
        let mut entry = entry.clone();
        entry.attrs.remove("hassubordinates");
        entry
    };
    before
        .iter()
        .filter(|(dn, _)| !dn.ends_with(&groups))
        .filter(|(dn, entry)| after.get(*dn).map(strip) != Some(strip(entry)))
        .map(|(dn, entry)| format!("{dn}: was {:?}, is {:?}", entry.attrs, after.get(dn).map(|e| &e.attrs)))
        .collect()
}

/// What a hostile export did: the run, and the people whose accounts were made (the others were
/// held or refused, with the reason in the run's output).
fn hostile_day(lab: &Lab, hr: &Hr, as_of: &str) -> Run {
    lab.export(hr);
    // Day two makes most of them leavers at once: the safety limits are allowed.
    let run = lab.roster(as_of, &["run", "--allow", "all"]);
    assert!(run.code == 0 || run.code == 4, "a hostile export is run, quarantined or refused per person:\n{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
    run
}

/// Filter syntax, DN syntax aimed at the admins OU, NUL bytes, right-to-left overrides and a 10 MB
/// field, each in the fields that make filters (the key), DNs (department, names) and values
/// (title): each account lands below ou=people or is refused with a reason; bystanders are
/// untouched, entry counts add up, each key finds its one account; the same when they leave (a
/// disable and a move, written to the escaped DNs) and the day after, nothing is left to do.
#[test]
fn hostile_text_is_escaped_rejected_or_harmless() {
    let lab = Lab::start();
    lab.write_config(&lab.config().replace(
        r#"dn = '"uid=" + login + ",ou=" + department + ",ou=people,dc=example,dc=org"'"#,
        r#"dn = '"cn=" + given_name + " " + family_name + ",ou=" + department + ",ou=people,dc=example,dc=org"'"#,
    ));
    plant_bystanders(&lab);
    let before = lab.dump();
    let huge = "A".repeat(10 << 20);
    let rlo = "\u{202E}nimda\u{202C}";
    let mut hr = Hr::new([
        Worker::new("*)(uid=*", "Star", "Filter", "Engineering").title("*)(uid=*))(|(uid=*"),
        Worker::new("5002", "Comma", "Admins", ",ou=admins").title("x"),
        Worker::new("5003", "Dn", "Escape", "x,ou=admins,dc=example,dc=org")
            .title("uid=root,ou=admins,dc=example,dc=org"),
        Worker::new("5004", "Nul\0Byte", "Zero", "Engineering").title("a\0b"),
        Worker::new("5005\0", "Nul", "Key", "Engineering"),
        Worker::new("5006", rlo, "Override", &format!("Sales{rlo}")).title(rlo),
        Worker::new("5007", "Huge", "Field", "Engineering").title(&huge),
        Worker::new("5008", "Plain", "Person", "Engineering").title("Engineer"),
    ]);
    let day_one = hostile_day(&lab, &hr, DAY_ONE);
    let after = lab.dump();
    let changed = bystanders_changed(&before, &after);
    assert!(changed.is_empty(), "entries that were there changed:\n{}\n{day_one}", changed.join("\n"));

    // The 10 MB field is refused with a reason, its person held; nothing is made for them.
    assert!(lab.accounts("5007").is_empty(), "{day_one}");
    assert!(
        day_one.stdout.contains("5007") && day_one.stdout.contains("MiB"),
        "the huge field is quarantined with a reason:\n{day_one}"
    );
    // Every other person has one account below ou=people, or none and a reason in the output.
    let mut made = 0;
    for key in ["*)(uid=*", "5002", "5003", "5004", "5005\0", "5006", "5008"] {
        let accounts = lab.accounts(key);
        match accounts.as_slice() {
            [account] => {
                made += 1;
                assert!(account.dn.to_lowercase().ends_with(&format!(",{PEOPLE}")), "{key:?}: {}", account.dn);
                assert_eq!(account.value("employeeNumber"), key, "{account:#?}");
                assert!(
                    lab.search(&format!("ou=admins,{BASE}"), Scope::Subtree, "(objectClass=*)").len() == 2,
                    "something was written below ou=admins"
                );
            }
            [] => {
                let shown = key.replace('\0', "");
                assert!(
                    day_one.stdout.contains(&shown) || day_one.stderr.contains(&shown),
                    "{key:?} has no account and the run does not say why:\n{day_one}"
                );
            }
            many => panic!("{key:?} reaches {} entries: {many:#?}", many.len()),
        }
    }
    let people = lab.search(BASE, Scope::Subtree, "(objectClass=inetOrgPerson)");
    assert_eq!(people.len(), made + 2, "one account per person made, and the two bystanders: {people:#?}");
    let plain = lab.account("5008");
    assert_eq!(plain.value("title"), "Engineer");
    let filter_key = lab.account("*)(uid=*");
    assert_eq!(filter_key.value("title"), "*)(uid=*))(|(uid=*", "{filter_key:#?}");
    if let [rlo_account] = lab.accounts("5006").as_slice() {
        assert_eq!(rlo_account.value("title"), rlo, "stored as the text HR sent");
        assert!(rlo_account.value("uid").is_ascii(), "{rlo_account:#?}");
    }

    // They all leave: disables and moves to the leavers OU, written to the escaped DNs.
    let leavers: Vec<String> = ["*)(uid=*", "5002", "5003", "5004", "5006", "5008"].map(str::to_owned).to_vec();
    for key in &leavers {
        hr.worker(key).last_day = DAY_ONE.into();
    }
    let day_two = hostile_day(&lab, &hr, DAY_TWO);
    let changed = bystanders_changed(&before, &lab.dump());
    assert!(changed.is_empty(), "entries that were there changed:\n{}\n{day_two}", changed.join("\n"));
    for key in &leavers {
        if let [account] = lab.accounts(key).as_slice() {
            assert!(account.locked(), "{account:#?}");
            assert!(lab.is_below(key, LEAVERS), "{key:?}: {}", account.dn);
        }
    }
    assert_eq!(lab.search(BASE, Scope::Subtree, "(objectClass=inetOrgPerson)").len(), made + 2);
    let again = lab.roster(DAY_TWO, &["run"]);
    assert_eq!(again.code, day_two.code, "the same day again gives the same result:\n{again}");
    if day_two.code == 0 {
        lab.assert_nothing_to_do(DAY_TWO);
    }
}

/// An export with bytes that are not UTF-8 (a Latin-1 name in a UTF-8 file) is refused as a whole,
/// with the line and byte offset, and nothing changes.
#[test]
fn invalid_utf8_is_refused_with_where_it_is() {
    let lab = Lab::start();
    let hr = ten_people();
    lab.export(&hr);
    lab.run(DAY_ONE);
    let before = lab.dump();
    let mut bytes = hr.to_csv().into_bytes();
    let at = bytes.windows(6).position(|w| w == b"Hopper").expect("Grace's row");
    bytes.splice(at..at + 1, [0xC4, 0xFF, b'H']);
    std::fs::write(lab.dir().join("exports/hr.csv"), &bytes).expect("writing the export");
    let run = lab.roster(DAY_TWO, &["run"]).expect_code(1);
    assert!(run.stderr.contains("invalid UTF-8") && run.stderr.contains("line 3"), "{run}");
    assert!(lab.dump() == before, "an undecodable export changed the directory:\n{run}");
}

/// A NUL byte in an HR field is refused with a reason (the row quarantined, the person held), not
/// written to the directory: C clients (nss, PAM, many scripts) end a string at NUL, so a key
/// `5005<NUL>` would read as another person's `5005`, and a name would be cut short. Today the
/// CSV reader accepts it and the value is stored with its NUL (`employeeNumber: 5005\0`).
#[test]
fn a_nul_byte_is_refused_with_a_reason() {
    let lab = Lab::start();
    let hr = Hr::new([
        Worker::new("5004", "Nul\0Byte", "Zero", "Engineering"),
        Worker::new("5005\0", "Nul", "Key", "Engineering"),
        Worker::new("5008", "Plain", "Person", "Engineering"),
    ]);
    lab.export(&hr);
    let run = lab.roster(DAY_ONE, &["run"]).expect_code(0);
    let values_with_nul: Vec<String> = lab
        .dump()
        .values()
        .flat_map(|e| e.attrs.values().flatten().filter(|v| v.contains('\0')).map(|v| format!("{}: {v:?}", e.dn)))
        .collect();
    assert!(values_with_nul.is_empty(), "values with NUL bytes in the directory: {values_with_nul:#?}\n{run}");
    assert_eq!(lab.account("5008").value("cn"), "Plain Person");
    assert!(run.stdout.matches("quarantined (").count() >= 2, "both rows are quarantined with a reason:\n{run}");
}
