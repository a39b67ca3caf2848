//! The audit chain: every write of an entry extends it; verification finds edits, removals,
//! reorderings, insertions and foreign keys, and, given an exported head, truncation and rebuilt
//! histories.

use roster_store::{AuditKey, ChainHead, ChainProblem, Verification};

use super::*;

/// Runs raw SQL on the store's file, as someone with write access to it would.
async fn tamper(path: &Path, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

fn key(fill: char) -> AuditKey {
    AuditKey::new(fill.to_string().repeat(40).into_bytes()).unwrap()
}

/// A store with three runs of history: creates, an operation sent twice, a failure, a release.
async fn history(dir: &TempDir) -> (Store, std::path::PathBuf) {
    let path = dir.path().join("roster.db");
    let store = Store::open_with_key(&path, key('k')).await.unwrap();
    let dns: Vec<String> = (0..4).map(|i| format!("uid=user{i},dc=example,dc=org")).collect();
    let results = dns
        .iter()
        .enumerate()
        .map(|(i, dn)| (op(i, Some(&format!("e{i}")), create(dn, true)), done(&format!("uuid-{i}"), dn)))
        .collect();
    let run = apply(&store, results).await;
    store.finish_run(run, &finish(RunStatus::Success, &[])).await.unwrap();

    let run = store.begin_run(&start("apply", "cfg")).await.unwrap();
    let update = op(
        0,
        Some("e1"),
        Action::Rename { dn: dns[1].clone(), object_id: None, new_dn: "uid=x,dc=example,dc=org".into() },
    );
    store.record_intents(run, std::slice::from_ref(&update)).await.unwrap();
    store
        .record_outcomes(run, &[(update.clone(), Outcome::Failed { error: "busy".into(), unknown: true })])
        .await
        .unwrap();
    store.record_intents(run, std::slice::from_ref(&update)).await.unwrap();
    store.record_outcomes(run, &[(update, Outcome::Failed { error: "busy".into(), unknown: false })]).await.unwrap();
    store.finish_run(run, &finish(RunStatus::Partial, &[])).await.unwrap();
    store.release(&start("release", "cfg"), "e1", None).await.unwrap().unwrap();
    (store, path)
}

fn problems(verification: &Verification) -> Vec<&ChainProblem> {
    verification.problems.iter().collect()
}

#[tokio::test]
async fn every_write_extends_the_chain_and_an_intact_trail_verifies() {
    let dir = TempDir::new().unwrap();
    let (store, _) = history(&dir).await;
    let verification = store.verify_audit(&key('k'), None).await.unwrap();
    assert!(verification.is_intact(), "{:?}", verification.problems);
    // 4 intents + 4 outcomes; the rename's intent, outcome, intent again, outcome again; a release.
    assert_eq!((verification.entries, verification.events, verification.legacy_entries), (6, 13, 0));
    let head = store.audit_head().await.unwrap();
    assert_eq!(head.seq, 13);
    assert_eq!(verification.head, head);
    assert!(store.verify_audit(&key('k'), Some(&head)).await.unwrap().is_intact());
    let empty = Store::open_in_memory().await.unwrap();
    assert_eq!(empty.audit_head().await.unwrap(), ChainHead { seq: 0, mac: "0".repeat(64) });
}

#[tokio::test]
async fn an_edited_entry_is_named() {
    for sql in [
        "UPDATE audit SET reason = 'nothing to see' WHERE id = 2",
        "UPDATE audit SET after_vals = '{\"dn\":\"uid=mallory\"}' WHERE id = 2",
        "UPDATE audit SET outcome = 'failed' WHERE id = 2",
        "UPDATE audit SET at = '2020-01-01T00:00:00.000000Z' WHERE id = 2",
    ] {
        let dir = TempDir::new().unwrap();
        let (store, path) = history(&dir).await;
        tamper(&path, sql).await;
        let verification = store.verify_audit(&key('k'), None).await.unwrap();
        match problems(&verification)[..] {
            [ChainProblem::Edited { seq: 6, entry }] => {
                assert_eq!((entry.id, entry.run, entry.op_id, entry.person.as_deref()), (2, 1, 1, Some("e1")), "{sql}")
            }
            ref other => panic!("{sql}: {other:?}"),
        }
        assert!(verification.problems[0].to_string().contains("entry 2 (run #1, operation #1: create for person e1"));
    }
}

#[tokio::test]
async fn changing_who_ran_it_is_an_edit() {
    let dir = TempDir::new().unwrap();
    let (store, path) = history(&dir).await;
    tamper(&path, "UPDATE runs SET actor = 'mallory' WHERE id = 2").await;
    let verification = store.verify_audit(&key('k'), None).await.unwrap();
    assert!(matches!(problems(&verification)[..], [ChainProblem::Edited { entry, .. }] if entry.run == 2));
}

#[tokio::test]
async fn a_removed_entry_is_named() {
    let dir = TempDir::new().unwrap();
    let (store, path) = history(&dir).await;
    tamper(&path, "DELETE FROM audit WHERE id = 3").await;
    let verification = store.verify_audit(&key('k'), None).await.unwrap();
    assert_eq!(problems(&verification), [&ChainProblem::Removed { seq: 7, entry: 3 }]);

    // Taking its events along leaves a hole in the chain.
    tamper(&path, "DELETE FROM audit_chain WHERE entry = 3").await;
    let verification = store.verify_audit(&key('k'), None).await.unwrap();
    assert_eq!(
        problems(&verification),
        [
            &ChainProblem::Missing { from: 3, to: 3 },
            &ChainProblem::BadMac { seq: 4, entry: 4 },
            &ChainProblem::Missing { from: 7, to: 7 },
            &ChainProblem::BadMac { seq: 8, entry: 4 }
        ]
    );
}

#[tokio::test]
async fn reordered_entries_and_events_are_found() {
    let dir = TempDir::new().unwrap();
    let (store, path) = history(&dir).await;
    tamper(&path, "UPDATE audit SET id = -1 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3; UPDATE audit SET id = 3 WHERE id = -1").await;
    let verification = store.verify_audit(&key('k'), None).await.unwrap();
    let edited: Vec<i64> = verification
        .problems
        .iter()
        .map(|p| match p {
            ChainProblem::Edited { entry, .. } => entry.id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(edited, [2, 3]);

    let dir = TempDir::new().unwrap();
    let (store, path) = history(&dir).await;
    tamper(&path, "UPDATE audit_chain SET seq = -1 WHERE seq = 5; UPDATE audit_chain SET seq = 5 WHERE seq = 6; UPDATE audit_chain SET seq = 6 WHERE seq = -1").await;
    let verification = store.verify_audit(&key('k'), None).await.unwrap();
    assert_eq!(verification.problems[0], ChainProblem::BadMac { seq: 5, entry: 2 });
    assert!(!verification.is_intact());
}

#[tokio::test]
async fn an_entry_inserted_outside_roster_is_found() {
    let dir = TempDir::new().unwrap();
    let (store, path) = history(&dir).await;
    tamper(
        &path,
        "INSERT INTO audit (run, at, op_id, person, target, kind, dn, reason, outcome)
         VALUES (1, '2026-03-10T08:00:00.000000Z', 99, 'e9', 'directory', 'delete', 'uid=boss', 'cleanup', 'done')",
    )
    .await;
    let verification = store.verify_audit(&key('k'), None).await.unwrap();
    assert!(matches!(problems(&verification)[..], [ChainProblem::Unchained { entry }] if entry.op_id == 99));
}

#[tokio::test]
async fn a_truncated_tail_shows_only_against_an_exported_head() {
    let dir = TempDir::new().unwrap();
    let (store, path) = history(&dir).await;
    let head = store.audit_head().await.unwrap();
    // The newest entry (the release) and its event.
    tamper(&path, "DELETE FROM audit WHERE kind = 'release'; DELETE FROM audit_chain WHERE seq = 13").await;
    let alone = store.verify_audit(&key('k'), None).await.unwrap();
    assert!(alone.is_intact(), "the chain alone cannot tell: {:?}", alone.problems);
    let verification = store.verify_audit(&key('k'), Some(&head)).await.unwrap();
    assert_eq!(problems(&verification), [&ChainProblem::Truncated { head: 13, last: 12 }]);
}

#[tokio::test]
async fn a_history_rebuilt_with_the_key_shows_against_an_exported_head() {
    let dir = TempDir::new().unwrap();
    let (store, _) = history(&dir).await;
    let head = store.audit_head().await.unwrap();
    // Someone holding the key writes a whole other history of the same length.
    let other = TempDir::new().unwrap();
    let (rebuilt, _) = history(&other).await;
    let forged = op(0, Some("e7"), create("uid=mallory,dc=example,dc=org", true));
    assert!(rebuilt.verify_audit(&key('k'), None).await.unwrap().is_intact());
    assert_ne!(rebuilt.audit_head().await.unwrap(), head, "timestamps alone make it differ");
    let verification = rebuilt.verify_audit(&key('k'), Some(&head)).await.unwrap();
    assert_eq!(problems(&verification), [&ChainProblem::Rebuilt { seq: 13 }]);
    apply(&rebuilt, vec![(forged.clone(), done("uuid-7", forged.action.dn()))]).await;
    let verification = rebuilt.verify_audit(&key('k'), Some(&head)).await.unwrap();
    assert_eq!(problems(&verification), [&ChainProblem::Rebuilt { seq: 13 }]);
}

#[tokio::test]
async fn another_key_is_told_apart_from_edits() {
    let dir = TempDir::new().unwrap();
    let (store, _) = history(&dir).await;
    let verification = store.verify_audit(&key('w'), None).await.unwrap();
    assert_eq!(verification.problem_count, 13);
    assert!(
        matches!(&verification.problems[0], ChainProblem::OtherKey { seq: 1, key_id, .. } if key_id == key('k').id())
    );
}

#[tokio::test]
async fn a_store_without_a_configured_key_keeps_one_beside_it() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("roster.db");
    let store = Store::open(&path).await.unwrap();
    apply(&store, vec![(op(0, Some("e1"), create("uid=a,dc=example,dc=org", true)), done_quietly())]).await;
    let key = AuditKey::load(&AuditKey::beside(&path)).unwrap();
    assert_eq!(key.id(), store.audit_key().id());
    store.close().await;
    let reopened = Store::open(&path).await.unwrap();
    assert_eq!(reopened.audit_key().id(), key.id());
    assert!(reopened.verify_audit(&key, None).await.unwrap().is_intact());
}

#[tokio::test]
async fn entries_from_before_the_chain_are_counted_not_failed() {
    let dir = TempDir::new().unwrap();
    let (store, path) = history(&dir).await;
    tamper(&path, "DELETE FROM audit_chain WHERE entry = 1; UPDATE audit_chain_start SET legacy_last_entry = 1").await;
    let verification = store.verify_audit(&key('k'), None).await.unwrap();
    assert_eq!(verification.legacy_entries, 1);
    // The events it had are missing from the chain all the same.
    assert!(matches!(
        problems(&verification)[..],
        [ChainProblem::Missing { from: 1, to: 1 }, ChainProblem::BadMac { seq: 2, .. }, ..]
    ));
}
