//! The failures table: counted from a finished run's audit entries, read into the snapshot,
//! cleared by a release.

use roster_core::state::Failure;

use super::*;

const DN: &str = "uid=ada,dc=example,dc=org";

fn update(id: usize, person: &str) -> Operation {
    op(id, Some(person), Action::Update { dn: DN.into(), object_id: None, changes: vec![change("cn", &["A"], &["B"])] })
}

fn failed(error: &str) -> Outcome {
    Outcome::Failed { error: error.to_string(), unknown: false }
}

/// A whole run: intents, outcomes, finish.
async fn finished(store: &Store, results: Vec<(Operation, Outcome)>) -> RunId {
    let run = apply(store, results).await;
    store.finish_run(run, &finish(RunStatus::Partial, &[])).await.unwrap();
    run
}

async fn failures(store: &Store) -> Vec<(String, String, u32, String)> {
    store.snapshot().await.unwrap().failures.into_iter().map(|f| (f.target, f.person, f.runs, f.last_error)).collect()
}

fn row(person: &str, runs: u32, error: &str) -> (String, String, u32, String) {
    (TARGET.to_string(), person.to_string(), runs, error.to_string())
}

#[tokio::test]
async fn consecutive_failed_runs_count_up_and_a_clean_run_clears() {
    let store = test_store().await;
    finished(&store, vec![(update(0, "e1"), failed("busy")), (update(1, "e2"), done_quietly())]).await;
    assert_eq!(failures(&store).await, [row("e1", 1, "busy")]);

    // The last failing operation in plan order gives the error; one of theirs landing does not help.
    finished(
        &store,
        vec![(update(0, "e1"), done_quietly()), (update(1, "e1"), failed("first")), (update(2, "e1"), failed("last"))],
    )
    .await;
    assert_eq!(failures(&store).await, [row("e1", 2, "last")]);

    // A run with nothing for them keeps the streak (a quarantined person has no operations).
    finished(&store, vec![(update(0, "e2"), done_quietly())]).await;
    assert_eq!(failures(&store).await, [row("e1", 2, "last")]);

    // Unknown and skipped count too.
    finished(&store, vec![(update(0, "e1"), Outcome::Failed { error: "timed out".into(), unknown: true })]).await;
    assert_eq!(failures(&store).await, [row("e1", 3, "timed out")]);
    let skip = Outcome::Skipped { reason: "operation #0, which this one depends on, did not land".into() };
    finished(&store, vec![(update(0, "e1"), skip)]).await;
    assert_eq!(failures(&store).await[0].2, 4);

    finished(&store, vec![(update(0, "e1"), done_quietly()), (update(1, "e1"), done_quietly())]).await;
    assert_eq!(failures(&store).await, []);
}

#[tokio::test]
async fn targets_count_apart_and_operations_without_a_person_count_for_no_one() {
    let store = test_store().await;
    let elsewhere = Operation { target: "cloud".into(), ..update(1, "e1") };
    let group = op(2, None, Action::AddMember { group: "cn=staff,dc=example,dc=org".into(), member: DN.into() });
    finished(
        &store,
        vec![(update(0, "e1"), failed("busy")), (elsewhere.clone(), done_quietly()), (group, failed("x"))],
    )
    .await;
    finished(&store, vec![(elsewhere, failed("refused"))]).await;
    assert_eq!(
        failures(&store).await,
        [
            ("cloud".to_string(), "e1".to_string(), 1, "refused".to_string()),
            (TARGET.to_string(), "e1".to_string(), 1, "busy".to_string())
        ]
    );
}

#[tokio::test]
async fn a_run_stopped_before_its_outcomes_neither_counts_nor_clears() {
    let store = test_store().await;
    finished(&store, vec![(update(0, "e1"), failed("busy"))]).await;
    let run = store.begin_run(&start("apply", "cfg")).await.unwrap();
    store.record_intents(run, &[update(0, "e1")]).await.unwrap();
    store.finish_run(run, &finish(RunStatus::Failed, &[])).await.unwrap();
    assert_eq!(failures(&store).await, [row("e1", 1, "busy")]);
}

#[tokio::test]
async fn a_purged_person_leaves_no_failure_behind() {
    let store = test_store().await;
    store.commit_persons(&[person("e1", Some("ada"))], as_of()).await.unwrap();
    finished(&store, vec![(update(0, "e1"), failed("busy"))]).await;
    store.commit_persons(&[tombstoned("e1", Some("ada"))], as_of()).await.unwrap();
    assert_eq!(failures(&store).await, []);
}

#[tokio::test]
async fn a_release_clears_and_is_audited_as_the_operators() {
    let store = test_store().await;
    let last_good = store.begin_run(&start("apply", "good-config")).await.unwrap();
    store.finish_run(last_good, &finish(RunStatus::Success, &[])).await.unwrap();
    let elsewhere = Operation { target: "cloud".into(), ..update(1, "e1") };
    let create = op(2, Some("e2"), create(DN, true));
    let run = finished(
        &store,
        vec![(update(0, "e1"), failed("busy")), (elsewhere, failed("refused")), (create, done("uuid-2", DN))],
    )
    .await;
    finished(&store, vec![(update(0, "e2"), failed("constraint violation"))]).await;

    let release = RunStart {
        command: "release".into(),
        actor: "alice".into(),
        config_hash: "new-config".into(),
        overrides: vec![],
        plan_json: None,
        ..start("release", "")
    };
    assert_eq!(store.release(&release, "e9", None).await.unwrap(), None, "nothing to release");
    assert_eq!(store.release(&release, "e1", Some("nowhere")).await.unwrap(), None);

    let released = store.release(&release, "e1", Some(TARGET)).await.unwrap().unwrap();
    assert_eq!(
        released.failures,
        [Failure { target: TARGET.into(), person: "e1".into(), runs: 1, last_error: "busy".into() }]
    );
    assert_eq!(failures(&store).await.len(), 2, "cloud/e1 and directory/e2 stay");

    let entries = store.audit(&AuditQuery { run: Some(released.run), ..AuditQuery::default() }).await.unwrap();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(
        (
            entry.kind.as_str(),
            entry.person.as_deref(),
            entry.target.as_str(),
            entry.actor.as_str(),
            entry.outcome.as_str()
        ),
        ("release", Some("e1"), TARGET, "alice", "done")
    );
    assert_eq!(entry.reason, "released by alice: failed in 1 consecutive run(s), last: busy");
    assert_eq!(entry.before, Some(json!({ "failed_runs": 1, "last_error": "busy" })));
    assert!(entry.dn.is_empty(), "e1 has no link here");

    // Every target at once; the entry names the linked account.
    let released = store.release(&release, "e2", None).await.unwrap().unwrap();
    let entry = &store.audit(&AuditQuery { run: Some(released.run), ..AuditQuery::default() }).await.unwrap()[0];
    assert_eq!(entry.dn, DN);
    let released = store.release(&release, "e1", None).await.unwrap().unwrap();
    assert_eq!(released.failures[0].target, "cloud");
    assert_eq!(failures(&store).await, []);

    let runs = store.runs(10).await.unwrap();
    assert_eq!(
        (runs[0].command.as_str(), runs[0].status, runs[0].actor.as_str()),
        ("release", Some(RunStatus::Operator), "alice")
    );
    assert!(runs[0].finished_at.is_some());
    assert_eq!(store.last_config_hash().await.unwrap().as_deref(), Some("cfg"), "a release is no applied config");
    assert!(run.0 < released.run.0);
    assert!(store.verify_audit(store.audit_key(), None).await.unwrap().is_intact());
}
