//! No secret leaks: known secrets (the bind password from the environment and from a file, the
//! read-only service account's password, wrong passwords, a password written literally into the
//! config by mistake) and the initial passwords roster generates (delivered to a folder, and to a
//! command that fails and echoes on stderr what it was given) must appear in nothing roster
//! prints or writes: stdout and stderr of every command, including failing ones (bad config,
//! wrong password, server down, blocked plan, aborted apply), at `-vvv` and with `--log-json`;
//! and every file roster wrote (the SQLite store with its -wal and -shm, saved plans, the lock
//! file, what `init` wrote), looked at after every command, so that a write-ahead log that is
//! folded back into the store later is still seen.
//!
//! Each secret is searched as UTF-8, as UTF-16LE, and as base64 of both (standard and URL-safe
//! alphabets, at each of the three alignments a substring can have inside a longer base64 stream).
//! The delivered password files are allowed to hold the password they deliver, and nothing else.
//!
//! Fails, never skips, when slapd is missing.

#[path = "support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

#[path = "support/faults.rs"]
#[allow(dead_code)]
mod faults;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use faults::FAILPOINT;
use support::{Hr, Lab, Run, Worker};

const DAY_ONE: &str = "2026-03-02";
const DAY_TWO: &str = "2026-03-09";

/// Everything roster printed and every file it wrote, by a label saying where it came from. Kept
/// as text with invalid UTF-8 replaced: every needle is ASCII (the secrets are), and ASCII bytes
/// survive that replacement where they are, so a text search finds exactly what a byte search
/// would, with the standard library's fast substring search.
#[derive(Default)]
struct Evidence {
    items: BTreeMap<String, String>,
    seen: BTreeSet<Vec<u8>>,
    /// Files the test itself wrote (config, exports, the secret file, the delivery script): not
    /// roster's output, and some hold a secret on purpose.
    written_by_test: BTreeSet<PathBuf>,
    /// Files that may hold generated passwords: the folder delivery's.
    deliveries: BTreeSet<PathBuf>,
    commands: usize,
}

impl Evidence {
    /// Keeps what the command printed, and every file in the roster folder as it is now.
    fn keep(&mut self, lab: &Lab, run: &Run) {
        self.commands += 1;
        let n = self.commands;
        self.items.insert(format!("#{n} `{}` stdout", run.command), run.stdout.clone());
        self.items.insert(format!("#{n} `{}` stderr", run.command), run.stderr.clone());
        self.keep_files(lab.dir(), n);
    }

    fn keep_files(&mut self, dir: &Path, n: usize) {
        for entry in fs::read_dir(dir).expect("listing the roster folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                self.keep_files(&path, n);
            } else if !self.written_by_test.contains(&path) {
                let bytes = fs::read(&path).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if self.seen.insert(bytes) {
                    self.items.insert(format!("{} after command #{n}", path.display()), text);
                }
                if path.parent().is_some_and(|p| p.ends_with("passwords")) {
                    self.deliveries.insert(path);
                }
            }
        }
    }

    /// Every place a secret appears, in any of its encodings. `delivered`: the label prefix of
    /// the one file allowed to hold it.
    fn leaks(&self, name: &str, secret: &str, delivered: Option<&Path>) -> Vec<String> {
        let mut found = Vec::new();
        assert!(secret.is_ascii(), "{name} is not ASCII: the text search would not be exact");
        for (encoding, needle) in needles(secret) {
            let needle = String::from_utf8(needle).expect("ASCII needles");
            for (label, text) in &self.items {
                let allowed = delivered.is_some_and(|d| label.starts_with(&d.display().to_string()));
                if !allowed && text.contains(&needle) {
                    found.push(format!("{name} ({encoding}) in {label}"));
                }
            }
        }
        found
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The byte strings that betray `secret`: its UTF-8 and UTF-16LE bytes, and their base64 in both
/// alphabets at the three alignments the secret can have within a longer encoded stream (only
/// the characters that depend on the secret's bytes alone, so they appear whatever surrounds it).
fn needles(secret: &str) -> Vec<(String, Vec<u8>)> {
    let utf8 = secret.as_bytes().to_vec();
    let utf16: Vec<u8> = secret.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut out = vec![("UTF-8".to_owned(), utf8.clone()), ("UTF-16LE".to_owned(), utf16.clone())];
    for (form, bytes) in [("UTF-8", &utf8), ("UTF-16LE", &utf16)] {
        for offset in 0..3 {
            for (alphabet, url_safe) in [("base64", false), ("base64url", true)] {
                let needle = aligned_base64(bytes, offset, url_safe);
                out.push((format!("{alphabet} of {form} at offset {offset}"), needle.into_bytes()));
            }
        }
    }
    out
}

/// The base64 characters of the 3-byte groups that lie wholly inside `bytes` when `bytes` starts
/// `offset` bytes into a stream.
fn aligned_base64(bytes: &[u8], offset: usize, url_safe: bool) -> String {
    let mut stream = vec![0u8; offset];
    stream.extend_from_slice(bytes);
    let first = offset.div_ceil(3);
    let end = (offset + bytes.len()) / 3;
    let encoded = base64(&stream[3 * first..3 * end]);
    if url_safe { encoded.replace('+', "-").replace('/', "_") } else { encoded }
}

/// Standard base64 of whole 3-byte groups.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks_exact(3) {
        let n = (u32::from(group[0]) << 16) | (u32::from(group[1]) << 8) | u32::from(group[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
        }
    }
    out
}

#[test]
fn base64_needles_are_found_inside_longer_streams() {
    assert_eq!(base64(b"Man"), "TWFu");
    let secret = "Sup3r-Secret!?";
    for prefix in ["", "x", "xy", "xyz", "user:"] {
        let stream = base64(&[prefix.as_bytes(), secret.as_bytes(), b"!!!!"].concat());
        let found = needles(secret).iter().any(|(_, n)| !n.is_empty() && contains(stream.as_bytes(), n));
        assert!(found, "base64 of {prefix:?} + secret is not recognised");
    }
}

/// The configuration every phase starts from: the fixture's generated passwords, delivered to
/// `passwords/`, 16 characters long.
fn with_folder_delivery(config: &str) -> String {
    let delivery = r#"delivery = { folder = { path = "passwords" } }"#;
    assert!(config.contains(delivery), "{config}");
    config.replace(delivery, &format!("length = 16\n{delivery}"))
}

fn people(keys: std::ops::Range<usize>) -> Hr {
    let names =
        ["Ada", "Grace", "Alan", "Hedy", "Edsger", "Barbara", "Claude", "Margaret", "Dorothy", "Tim", "Kurt", "Emmy"];
    Hr::new(keys.map(|i| Worker::new(&format!("{}", 7000 + i), names[i % names.len()], "Secret", "Engineering")))
}

/// Writes a file of the test's own (config, export, secret file, script).
fn write(evidence: &mut Evidence, path: PathBuf, text: &str) {
    fs::create_dir_all(path.parent().expect("a folder")).expect("creating the folder");
    fs::write(&path, text).expect("writing a test file");
    evidence.written_by_test.insert(path);
}

#[test]
fn no_secret_appears_in_output_logs_plans_or_the_store() {
    let mut lab = Lab::start();
    let admin = lab.ldap.admin_password().to_owned();
    let service = lab.ldap.service_password().to_owned();
    let wrong = "Wrong-Bind-Secret-8c1e4b";
    let wrong_in_file = "Wrong-File-Secret-5d2a77";
    let literal = "Literal-Config-Secret-3f9q";
    let mut evidence = Evidence::default();
    let config_path = lab.config_path();
    let export_path = lab.dir().join("exports/hr.csv");
    let base_config = with_folder_delivery(&lab.config());
    write(&mut evidence, config_path.clone(), &base_config);
    write(&mut evidence, export_path.clone(), &people(0..4).to_csv());
    let saved = lab.dir().join("reviewed-plan.json").display().to_string();
    let init_dir = lab.dir().join("starter").display().to_string();

    macro_rules! roster {
        ($as_of:expr, $args:expr) => {{ roster!($as_of, $args, &[]) }};
        ($as_of:expr, $args:expr, $env:expr) => {{
            let run = lab.roster_env($as_of, $args, $env);
            evidence.keep(&lab, &run);
            run
        }};
    }

    // Day one with the bind password from the environment: every command, plain, -vvv, JSON logs.
    for verbosity in [&[][..], &["-vvv"][..], &["-vvv", "--log-json"][..]] {
        for command in
            [&["check"][..], &["plan"][..], &["plan", "--format", "json"][..], &["plan", "--out", &saved][..]]
        {
            let args = [verbosity, command].concat();
            roster!(DAY_ONE, &args).expect_code(0);
        }
    }
    roster!(DAY_ONE, &["-vvv", "--log-json", "apply", &saved]).expect_code(0);
    roster!(DAY_ONE, &["-vvv", "run"]).expect_code(0);
    roster!(DAY_ONE, &["-vvv", "init", &init_dir]).expect_code(0);

    // Day two: joiners, with text logs at trace level.
    write(&mut evidence, export_path.clone(), &people(0..6).to_csv());
    roster!(DAY_TWO, &["-vvv", "run"]).expect_code(0);

    // Wrong and missing passwords.
    for command in ["check", "plan", "run"] {
        let run = roster!(DAY_TWO, &["-vvv", command], &[("ROSTER_LDAP_PASSWORD", wrong)]);
        assert_eq!(run.code, 1, "{run}");
    }
    let run = lab.roster_with_password(None, DAY_TWO, &["-vvv", "run"]);
    evidence.keep(&lab, &run);
    assert_eq!(run.code, 1, "{run}");

    // The read-only service account, for a plan.
    let as_service = base_config
        .replace(r#"bind_dn = "cn=admin,dc=example,dc=org""#, &format!("bind_dn = \"{}\"", lab.ldap.service_dn()));
    write(&mut evidence, config_path.clone(), &as_service);
    roster!(DAY_TWO, &["-vvv", "--log-json", "plan"], &[("ROSTER_LDAP_PASSWORD", &service)]).expect_code(0);

    // The bind password from a file, then a wrong one from a file; a missing file.
    let secret_file = lab.dir().join("secrets/bind-password");
    let from_file = base_config.replace("env:ROSTER_LDAP_PASSWORD", "file:secrets/bind-password");
    write(&mut evidence, config_path.clone(), &from_file);
    write(&mut evidence, secret_file.clone(), &format!("{admin}\n"));
    write(&mut evidence, export_path.clone(), &people(0..7).to_csv());
    roster!(DAY_TWO, &["-vvv", "run"], &[("ROSTER_LDAP_PASSWORD", "")]).expect_code(0);
    write(&mut evidence, secret_file.clone(), &format!("{wrong_in_file}\n"));
    roster!(DAY_TWO, &["-vvv", "--log-json", "run"]).expect_code(1);
    fs::remove_file(&secret_file).expect("removing the secret file");
    roster!(DAY_TWO, &["-vvv", "run"]).expect_code(1);

    // A password written into the config by mistake: valid TOML, and a syntax error on its line.
    let literal_config = base_config.replace("env:ROSTER_LDAP_PASSWORD", literal);
    write(&mut evidence, config_path.clone(), &literal_config);
    roster!(DAY_TWO, &["-vvv", "run"]).expect_code(2);
    write(
        &mut evidence,
        config_path.clone(),
        &literal_config.replace(&format!("\"{literal}\""), &format!("\"{literal}")),
    );
    roster!(DAY_TWO, &["-vvv", "check"]).expect_code(2);
    write(&mut evidence, config_path.clone(), &base_config.replace("purge_after_days", "purge_after_dayz"));
    roster!(DAY_TWO, &["-vvv", "run"]).expect_code(2);

    // Delivery to a command that echoes on stderr what it was given and fails: the password was set
    // but not delivered, and the next run sets a new one (which fails again). The command keeps
    // what it got outside the roster folder, so that the test knows those passwords too.
    let received = tempfile::tempdir().expect("a folder for the delivery command");
    let received_file = received.path().join("received");
    let script = lab.dir().join("deliver.sh");
    let echo = format!(
        "#!/bin/sh\nread -r password\necho \"$password\" >> '{}'\necho \"cannot deliver $password to $ROSTER_LOGIN\" >&2\nexit \"${{DELIVERY_EXIT:-3}}\"\n",
        received_file.display()
    );
    write(&mut evidence, script.clone(), &echo);
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("making the script executable");
    let by_command = base_config.replace(
        "delivery = { folder = { path = \"passwords\" } }",
        &format!("delivery = {{ command = {{ program = '{}' }} }}", script.display()),
    );
    write(&mut evidence, config_path.clone(), &by_command);
    write(&mut evidence, export_path.clone(), &people(0..8).to_csv());
    roster!(DAY_TWO, &["-vvv", "run"]).expect_code(4);
    roster!(DAY_TWO, &["-vvv", "--log-json", "run"]).expect_code(4);
    roster!(DAY_TWO, &["-vvv", "run"], &[("DELIVERY_EXIT", "0")]).expect_code(0);

    // An apply aborted right after its outcomes were recorded leaves the write-ahead log behind.
    write(&mut evidence, config_path.clone(), &base_config);
    write(&mut evidence, export_path.clone(), &people(0..9).to_csv());
    let aborted = roster!(DAY_TWO, &["-vvv", "run"], &[(FAILPOINT, "after_outcome:0")]);
    assert_eq!(aborted.code, -1, "{aborted}");
    roster!(DAY_TWO, &["-vvv", "run"]).expect_code(0);

    // A plan blocked by a safety limit.
    write(&mut evidence, export_path.clone(), &people(0..2).to_csv());
    roster!(DAY_TWO, &["-vvv", "plan"]).expect_code(3);
    roster!(DAY_TWO, &["-vvv", "--log-json", "run"]).expect_code(3);
    write(&mut evidence, export_path.clone(), &people(0..9).to_csv());

    // The server down.
    lab.ldap.stop().expect("stopping slapd");
    roster!(DAY_TWO, &["-vvv", "check"]).expect_code(1);
    roster!(DAY_TWO, &["-vvv", "--log-json", "run"]).expect_code(1);
    lab.ldap.start_again().expect("starting slapd again");
    roster!(DAY_TWO, &["-vvv", "run"]).expect_code(0);

    // The generated passwords: one file per account in passwords/, and what the command got.
    let mut generated: Vec<(String, Option<PathBuf>)> = Vec::new();
    for file in &evidence.deliveries {
        let text = fs::read_to_string(file).expect("a delivered password file");
        let password = text.lines().find_map(|l| l.strip_prefix("password: ")).expect("a password line");
        generated.push((password.to_owned(), Some(file.clone())));
    }
    let received = fs::read_to_string(&received_file).expect("what the delivery command received");
    generated.extend(received.lines().map(|p| (p.to_owned(), None)));
    // Nine accounts: eight delivered to the folder, one (7007) to the command, three times.
    assert_eq!(generated.len(), 8 + 3, "generated passwords found: {generated:?}");

    // The search sees what it must: the store's write-ahead log and shared memory as the aborted
    // apply left them, and each delivered password in its own file.
    for suffix in ["roster.db after", "roster.db-wal after", "roster.db-shm after"] {
        assert!(evidence.items.keys().any(|label| label.contains(suffix)), "no {suffix:?} among the files searched");
    }
    for (password, delivered) in &generated {
        if let Some(file) = delivered {
            let found = evidence.leaks("a delivered password", password, None);
            assert!(
                found.iter().any(|f| f.contains(&file.display().to_string())),
                "{password:?} is not seen in {}",
                file.display()
            );
        }
    }

    let mut leaks = Vec::new();
    for (name, secret) in [
        ("the bind password", admin.as_str()),
        ("the service account's password", service.as_str()),
        ("a wrong bind password", wrong),
        ("a wrong password from a file", wrong_in_file),
        ("a password written into the config", literal),
    ] {
        leaks.extend(evidence.leaks(name, secret, None));
    }
    for (i, (password, delivered)) in generated.iter().enumerate() {
        leaks.extend(evidence.leaks(&format!("generated password #{i}"), password, delivered.as_deref()));
    }
    assert!(
        leaks.is_empty(),
        "secrets found in what roster printed or wrote ({} commands, {} outputs and files searched):\n  {}",
        evidence.commands,
        evidence.items.len(),
        leaks.join("\n  ")
    );
}
