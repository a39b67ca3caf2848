//! `roster audit head | verify | show` and `roster release`, run as the real binary against a store
//! written through the store's own API and then tampered with by raw SQL on its file, as someone
//! with write access to the host could.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hmac::{Hmac, Mac};
use roster_core::plan::{Action, Applied, Category, Operation, Summary};
use roster_core::state::TargetEntry;
use roster_store::{AuditKey, Outcome, RunFinish, RunStart, RunStatus, Store};
use serde_json::Value;
use sha2::Sha256;
use sqlx::Connection;
use tempfile::TempDir;

/// The configured audit key; a test fails if it ever appears in any output.
const KEY: &str = "4f1c0d2a9b8e7f6a5d4c3b2a1f0e9d8c-audit-test-key";
const KEY_VAR: &str = "ROSTER_TEST_AUDIT_KEY";

const CONFIG: &str = r#"
[time]
zone = "Europe/Berlin"

[[source]]
name = "hr"
kind = "csv"
path = "hr.csv"
key = "id"
columns = { given_name = "first", family_name = "last", hire_date = "hired" }

[login]
candidates = ['lower(given_name + "." + family_name)']
"#;

/// A roster folder with a configuration and a store holding a short history.
struct Trail {
    dir: TempDir,
}

impl Trail {
    /// With `[audit] key = "env:..."`.
    async fn new() -> Trail {
        let trail = Trail::with_config(&format!("{CONFIG}\n[audit]\nkey = \"env:{KEY_VAR}\"\n"));
        let store = Store::open_with_key(&trail.db(), key(KEY)).await.unwrap();
        history(&store).await;
        store.close().await;
        trail
    }

    fn with_config(config: &str) -> Trail {
        let dir = tempfile::Builder::new().prefix("roster-audit-").tempdir().unwrap();
        std::fs::write(dir.path().join("roster.toml"), config).unwrap();
        Trail { dir }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("roster.db")
    }

    fn roster(&self, args: &[&str]) -> Run {
        self.roster_with_key(Some(KEY), args)
    }

    fn roster_with_key(&self, key: Option<&str>, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .current_dir(self.dir.path())
            .env_remove("ROSTER_CONFIG")
            .env_remove("ROSTER_LOG")
            .env_remove(KEY_VAR)
            .env("ROSTER_ACTOR", "alice")
            .arg("--config")
            .arg(self.dir.path().join("roster.toml"))
            .args(args);
        if let Some(key) = key {
            command.env(KEY_VAR, key);
        }
        let output = command.output().expect("running roster");
        let run = Run::from(args, output);
        for text in [&run.stdout, &run.stderr] {
            assert!(!text.contains(KEY), "the audit key leaked: {run:?}");
        }
        run
    }

    /// Runs SQL on the store's file behind roster's back.
    async fn tamper(&self, sql: &str) {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", self.db().display())).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }

    fn head(&self) -> String {
        self.roster(&["audit", "head"]).expect_code(0).stdout.trim().to_string()
    }

    fn verify(&self, extra: &[&str]) -> Run {
        self.roster(&[&["audit", "verify"][..], extra].concat())
    }
}

#[derive(Debug)]
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(args: &[&str], output: Output) -> Run {
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "roster {:?}\nstdout:\n{}\nstderr:\n{}", self.args, self.stdout, self.stderr);
        self
    }
}

fn key(text: &str) -> AuditKey {
    AuditKey::new(text.as_bytes().to_vec()).unwrap()
}

fn create(id: usize, person: &str) -> Operation {
    let dn = format!("uid={person},ou=people,dc=example,dc=org");
    Operation {
        id,
        person: Some(person.to_string()),
        target: "directory".into(),
        category: Category::Joiner,
        reason: format!("joiner: {person} starts").into(),
        depends_on: Vec::new(),
        action: Action::Create { dn: dn.into(), attributes: Default::default(), enabled: true, password: false },
    }
}

fn start(command: &str) -> RunStart {
    RunStart {
        command: command.to_string(),
        as_of: "2026-03-10".parse().unwrap(),
        config_hash: "cfg".to_string(),
        actor: "scheduler".to_string(),
        overrides: Vec::new(),
        plan_json: None,
    }
}

/// Two runs: four joiners (entries 1-4, chain events 1-8), then e5 whose create fails (entry 9
/// after the upserts' ids, events 9-10).
async fn history(store: &Store) {
    let run = store.begin_run(&start("run")).await.unwrap();
    let ops: Vec<Operation> = (0..4).map(|i| create(i, &format!("e{}", i + 1))).collect();
    store.record_intents(run, &ops).await.unwrap();
    let results: Vec<_> = ops
        .into_iter()
        .map(|op| {
            let entry = TargetEntry {
                object_id: format!("uuid-{}", op.id),
                dn: op.action.dn().to_string(),
                attrs: Default::default(),
                protected: false,
            };
            (op, Outcome::Done(Applied { entry: Some(entry) }))
        })
        .collect();
    store.record_outcomes(run, &results).await.unwrap();
    store.finish_run(run, &finish(RunStatus::Success)).await.unwrap();

    let run = store.begin_run(&start("run")).await.unwrap();
    let op = create(0, "e5");
    store.record_intents(run, std::slice::from_ref(&op)).await.unwrap();
    let failed = Outcome::Failed { error: "constraint violation".into(), unknown: false };
    store.record_outcomes(run, &[(op, failed)]).await.unwrap();
    store.finish_run(run, &finish(RunStatus::Partial)).await.unwrap();
}

fn finish(status: RunStatus) -> RunFinish {
    RunFinish { status, summary: Summary::default(), source_counts: Default::default(), failed: 0 }
}

#[tokio::test]
async fn an_intact_trail_verifies_with_and_without_its_head() {
    let trail = Trail::new().await;
    let run = trail.verify(&[]).expect_code(0);
    assert!(run.stdout.starts_with("audit trail intact: 5 entries, 10 chain events"), "{run:?}");

    let head = trail.head();
    let parsed: Value = serde_json::from_str(&head).unwrap();
    assert_eq!(parsed["seq"], 10);
    assert_eq!(parsed["mac"].as_str().unwrap().len(), 64);
    trail.verify(&["--head", &head]).expect_code(0);
    let file = trail.dir.path().join("head.json");
    std::fs::write(&file, &head).unwrap();
    trail.verify(&["--head", file.to_str().unwrap()]).expect_code(0);

    let json: Value = serde_json::from_str(&trail.verify(&["--format", "json"]).expect_code(0).stdout).unwrap();
    assert_eq!(
        (json["intact"].as_bool(), json["entries"].as_u64(), json["problem_count"].as_u64()),
        (Some(true), Some(5), Some(0))
    );
}

#[tokio::test]
async fn an_edited_reason_after_or_outcome_is_named() {
    for sql in [
        "UPDATE audit SET reason = 'routine' WHERE id = 2",
        "UPDATE audit SET after_vals = '{\"dn\":\"uid=admin\"}' WHERE id = 2",
        "UPDATE audit SET outcome = 'failed', error = 'never sent' WHERE id = 2",
    ] {
        let trail = Trail::new().await;
        trail.tamper(sql).await;
        let run = trail.verify(&[]).expect_code(5);
        assert!(run.stdout.starts_with("audit trail NOT intact: 1 problem(s)"), "{sql}: {run:?}");
        assert!(
            run.stdout.contains(
                "first: entry 2 (run #1, operation #1: create for person e2 on uid=e2,ou=people,dc=example,dc=org) was edited"
            ),
            "{sql}: {run:?}"
        );
    }
}

#[tokio::test]
async fn a_removed_middle_entry_is_named() {
    let trail = Trail::new().await;
    trail.tamper("DELETE FROM audit WHERE id = 3").await;
    let run = trail.verify(&[]).expect_code(5);
    assert!(run.stdout.contains("first: entry 3 was removed"), "{run:?}");
}

#[tokio::test]
async fn swapped_entries_are_found() {
    let trail = Trail::new().await;
    trail.tamper("UPDATE audit SET id = -2 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3; UPDATE audit SET id = 3 WHERE id = -2").await;
    let run = trail.verify(&[]).expect_code(5);
    assert!(run.stdout.contains("first: entry 2 (run #1, operation #2: create for person e3"), "{run:?}");
    assert!(run.stdout.contains("entry 3 (run #1, operation #1: create for person e2"), "{run:?}");

    let trail = Trail::new().await;
    trail.tamper("UPDATE audit_chain SET seq = -1 WHERE seq = 6; UPDATE audit_chain SET seq = 6 WHERE seq = 7; UPDATE audit_chain SET seq = 7 WHERE seq = -1").await;
    let run = trail.verify(&[]).expect_code(5);
    assert!(run.stdout.contains("first: chain event 6 (entry 3) does not verify"), "{run:?}");
}

#[tokio::test]
async fn a_truncated_tail_is_found_only_against_an_exported_head() {
    let trail = Trail::new().await;
    let head = trail.head();
    // The whole last run, its entry and its events.
    trail.tamper("DELETE FROM audit WHERE run = 2; DELETE FROM audit_chain WHERE seq > 8").await;
    let run = trail.verify(&[]).expect_code(0);
    assert!(run.stdout.contains("without an exported head, a cut tail"), "{run:?}");
    let run = trail.verify(&["--head", &head]).expect_code(5);
    assert!(
        run.stdout
            .contains("first: the trail was truncated: the exported head is event 10, the chain now ends at event 8"),
        "{run:?}"
    );
}

#[tokio::test]
async fn a_history_rechained_without_the_key_is_found() {
    let trail = Trail::new().await;
    // Edit an entry, then rebuild every mac with a key of one's own, keeping the key's check value.
    trail.tamper("UPDATE audit SET reason = 'routine' WHERE id = 2").await;
    rechain(&trail.db(), b"mallory's own key, long enough to pass", true).await;
    let run = trail.verify(&[]).expect_code(5);
    assert!(run.stdout.contains("first: chain event 1 (entry 1) does not verify"), "{run:?}");

    // Verifying with another key than the one the trail was made with says so.
    let trail = Trail::new().await;
    let run =
        trail.roster_with_key(Some("another key of at least thirty-two bytes"), &["audit", "verify"]).expect_code(5);
    assert!(run.stdout.contains("first: chain event 1 (entry 1) was made with another key"), "{run:?}");
}

#[tokio::test]
async fn a_history_rebuilt_with_the_key_is_found_against_an_exported_head() {
    let trail = Trail::new().await;
    let head = trail.head();
    // Someone who holds the key writes the history again from scratch, one entry edited.
    trail.tamper("DELETE FROM audit; DELETE FROM audit_chain; DELETE FROM failures; DELETE FROM runs").await;
    let store = Store::open_with_key(&trail.db(), key(KEY)).await.unwrap();
    history(&store).await;
    store.close().await;
    trail.verify(&[]).expect_code(0);
    let run = trail.verify(&["--head", &head]).expect_code(5);
    assert!(run.stdout.contains("first: the history was rebuilt: chain event 10"), "{run:?}");
}

/// Recomputes every event's mac over its stored digest with `other`, as a forger without the key
/// would; `keep_key_id` keeps the check value the trail had.
async fn rechain(db: &Path, other: &[u8], keep_key_id: bool) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let events: Vec<(i64, i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, entry, digest FROM audit_chain ORDER BY seq").fetch_all(&mut conn).await.unwrap();
    let mut previous = vec![0u8; 32];
    for (seq, entry, digest) in events {
        let mut mac = Hmac::<Sha256>::new_from_slice(other).unwrap();
        mac.update(&previous);
        mac.update(&seq.to_be_bytes());
        mac.update(&entry.to_be_bytes());
        mac.update(&digest);
        previous = mac.finalize().into_bytes().to_vec();
        let sql = if keep_key_id {
            "UPDATE audit_chain SET mac = ? WHERE seq = ?"
        } else {
            "UPDATE audit_chain SET mac = ?, key_id = 'forged' WHERE seq = ?"
        };
        sqlx::query(sql).bind(&previous).bind(seq).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn the_key_must_be_a_reference_and_be_there() {
    let trail = Trail::with_config(&format!("{CONFIG}\n[audit]\nkey = \"{KEY}\"\n"));
    let run = trail.roster_with_key(None, &["audit", "head"]).expect_code(2);
    assert!(run.stderr.contains("audit.key: expected a secret reference"), "{run:?}");

    let trail = Trail::new().await;
    let run = trail.roster_with_key(None, &["audit", "verify"]).expect_code(1);
    assert!(
        run.stderr.contains(&format!("secret env:{KEY_VAR}: environment variable {KEY_VAR} is not set")),
        "{run:?}"
    );
    let run = trail.roster_with_key(Some("too short"), &["audit", "verify"]).expect_code(1);
    assert!(run.stderr.contains("expected at least 32 bytes"), "{run:?}");
    // Reading needs no key.
    trail.roster_with_key(None, &["audit", "head"]).expect_code(0);
    trail.roster_with_key(None, &["audit", "show"]).expect_code(0);
}

#[tokio::test]
async fn without_an_audit_section_the_key_lives_beside_the_store() {
    let trail = Trail::with_config(CONFIG);
    let run = trail.roster(&["audit", "verify"]).expect_code(1);
    assert!(run.stderr.contains("there is no store at"), "{run:?}");

    let store = Store::open(&trail.db()).await.unwrap();
    history(&store).await;
    store.close().await;
    let key_file = trail.dir.path().join("roster.db.audit-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    trail.roster(&["audit", "verify"]).expect_code(0);
    // It is a `file:` secret as it is: moving to a configured key keeps the chain.
    std::fs::write(
        trail.dir.path().join("roster.toml"),
        format!("{CONFIG}\n[audit]\nkey = \"file:roster.db.audit-key\"\n"),
    )
    .unwrap();
    trail.roster(&["audit", "verify"]).expect_code(0);

    std::fs::write(trail.dir.path().join("roster.toml"), CONFIG).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let run = trail.roster(&["audit", "verify"]).expect_code(1);
    assert!(run.stderr.contains("roster.db.audit-key: cannot read it"), "{run:?}");
    assert!(!key_file.exists(), "verifying never makes a key");
}

#[tokio::test]
async fn show_filters_and_prints_text_or_json() {
    let trail = Trail::new().await;
    let run = trail.roster(&["audit", "show"]).expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(lines.len(), 5, "{run:?}");
    assert!(lines[0].contains("run #1 by scheduler, #0 create done in directory person e1 uid=e1,"), "{run:?}");
    assert!(run.stdout.contains("    why: joiner: e1 starts\n"), "{run:?}");
    assert!(run.stdout.contains("    error: constraint violation\n"), "{run:?}");

    let json = |args: &[&str]| -> Vec<Value> {
        let run = trail.roster(&[&["audit", "show", "--format", "json"][..], args].concat()).expect_code(0);
        serde_json::from_str(&run.stdout).unwrap()
    };
    let e5 = json(&["--person", "e5"]);
    assert_eq!(e5.len(), 1);
    assert_eq!(
        (e5[0]["outcome"].as_str(), e5[0]["run"].as_i64(), e5[0]["actor"].as_str()),
        (Some("failed"), Some(2), Some("scheduler"))
    );
    assert_eq!(json(&["--run", "1"]).len(), 4);
    assert_eq!(json(&["--dn", "UID=E3,OU=PEOPLE,DC=EXAMPLE,DC=ORG"])[0]["person"], "e3");
    let newest = json(&["--limit", "2"]);
    assert_eq!(newest.iter().map(|e| e["person"].as_str().unwrap()).collect::<Vec<_>>(), ["e4", "e5"]);
    assert_eq!(json(&["--since", "2999-01-01"]).len(), 0);
    assert_eq!(json(&["--since", "2000-01-01T00:00:00Z"]).len(), 5);
    trail.roster(&["audit", "show", "--since", "yesterday"]).expect_code(2);
}

#[tokio::test]
async fn a_release_clears_the_failures_and_is_audited() {
    let trail = Trail::new().await;
    let run = trail.roster(&["release", "e1"]).expect_code(1);
    assert!(run.stderr.contains("person e1 has no recorded failures: nothing to release"), "{run:?}");
    trail.roster(&["release", "e5", "--target", "cloud"]).expect_code(1);

    let run = trail.roster(&["release", "e5"]).expect_code(0);
    assert!(
        run.stdout.contains(
            "released person e5 in target directory (failed in 1 consecutive run(s), last: constraint violation)"
        ),
        "{run:?}"
    );
    assert!(run.stdout.contains("recorded in the audit trail as run #3 by alice"), "{run:?}");

    let store = Store::open_with_key(&trail.db(), key(KEY)).await.unwrap();
    assert!(store.snapshot().await.unwrap().failures.is_empty());
    store.close().await;
    let run = trail.roster(&["audit", "show", "--person", "e5", "--run", "3", "--format", "json"]).expect_code(0);
    let entries: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((entries[0]["kind"].as_str(), entries[0]["actor"].as_str()), (Some("release"), Some("alice")));
    trail.verify(&[]).expect_code(0);
    trail.roster(&["release", "e5"]).expect_code(1);
}
