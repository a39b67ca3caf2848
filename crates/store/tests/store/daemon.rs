//! What the daemon keeps in the store besides runs: held plans waiting for an approver, the Users
//! pushed to its SCIM endpoint, and the persons its API searches.

use roster_core::plan::Plan;
use roster_store::{Decided, HeldStatus, ScimWrite};

use super::*;

fn blocked_plan(operations: usize) -> Plan {
    Plan {
        format: 1,
        as_of: day("2026-03-10"),
        config_hash: "cfg".to_string(),
        operations: (1..=operations).map(|id| op(id, Some("e1"), create("uid=ada,dc=example,dc=org", true))).collect(),
        person_updates: Vec::new(),
        notices: Vec::new(),
        quarantined: Vec::new(),
        safety: Vec::new(),
        source_counts: BTreeMap::new(),
        summary: Summary::default(),
        provenance: BTreeMap::new(),
    }
}

/// A held plan waits, expires when a newer one is held, is decided on once (recorded as an
/// operator's run with one audit entry), and is marked applied by the run that applied it.
#[tokio::test]
async fn held_plans_wait_expire_are_decided_once_and_applied() {
    let store = test_store().await;
    let blocked = store.begin_run(&start("run", "cfg")).await.unwrap();
    let first = store.hold_plan(blocked, "serve:nightly", &blocked_plan(2), None).await.unwrap();
    let second = store.hold_plan(blocked, "serve:nightly", &blocked_plan(3), None).await.unwrap();
    assert!(second > first, "ids grow: {first} then {second}");

    let all = store.held_plans(None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|h| (h.id, h.status)).collect::<Vec<_>>(),
        [(second, HeldStatus::Waiting), (first, HeldStatus::Expired)]
    );
    let waiting = store.held_plans(Some(HeldStatus::Waiting), 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].plan, blocked_plan(3));
    assert_eq!(waiting[0].run, blocked.0);
    assert_eq!(store.held_plans(None, 1).await.unwrap().len(), 1, "the limit holds");

    let approver = RunStart { actor: "approver@example.org".into(), ..start("approve", "cfg") };
    let Decided::Done(decision) = store.decide_plan(&approver, second, true, "checked with HR").await.unwrap() else {
        panic!("the waiting plan was not decided on")
    };
    assert_eq!(
        store.decide_plan(&approver, second, false, "again").await.unwrap(),
        Decided::NotWaiting(HeldStatus::Approved)
    );
    assert_eq!(store.decide_plan(&approver, 9999, true, "none").await.unwrap(), Decided::NotFound);
    let entries = store.audit(&AuditQuery { run: Some(decision), ..AuditQuery::default() }).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, "approve");
    assert!(
        entries[0].reason.contains("(3 operation(s)) approved by approver@example.org: checked with HR"),
        "{}",
        entries[0].reason
    );

    let applying = store.begin_run(&start("apply", "cfg")).await.unwrap();
    store.held_plan_applied(second, applying).await.unwrap();
    let applied = store.held_plan(second).await.unwrap().expect("the held plan");
    assert_eq!(applied.status, HeldStatus::Applied);
    assert_eq!(applied.applied_run, Some(applying.0));
    assert_eq!(applied.decided_by.as_deref(), Some("approver@example.org"));
    assert_eq!(applied.decision_reason.as_deref(), Some("checked with HR"));
    assert_eq!(store.held_plan(9999).await.unwrap(), None);
}

/// userName is unique per source whatever its case, and a write made against an old version does
/// not land.
#[tokio::test]
async fn scim_users_check_user_names_and_versions() {
    let store = test_store().await;
    let alice = json!({"userName": "Alice"});
    let ScimWrite::Written(first) = store.scim_write_user("hr", "1", "Alice", &alice, None).await.unwrap() else {
        panic!("not written")
    };
    assert_eq!(first.version, 1);
    assert_eq!(store.scim_write_user("hr", "2", "ALICE", &alice, None).await.unwrap(), ScimWrite::UserNameTaken);
    assert!(matches!(store.scim_write_user("other", "2", "alice", &alice, None).await.unwrap(), ScimWrite::Written(_)));
    assert_eq!(
        store.scim_write_user("hr", "1", "Alice", &alice, None).await.unwrap(),
        ScimWrite::Stale,
        "created twice"
    );
    let renamed = json!({"userName": "alice.b"});
    assert!(matches!(
        store.scim_write_user("hr", "1", "alice.b", &renamed, Some(1)).await.unwrap(),
        ScimWrite::Written(u) if u.version == 2 && u.created == first.created
    ));
    assert_eq!(store.scim_write_user("hr", "1", "alice.c", &renamed, Some(1)).await.unwrap(), ScimWrite::Stale);
    assert_eq!(store.scim_user("hr", "1").await.unwrap().unwrap().resource, renamed);
    assert_eq!(store.scim_users("hr").await.unwrap().len(), 1);
    assert!(store.scim_delete_user("hr", "1").await.unwrap());
    assert!(!store.scim_delete_user("hr", "1").await.unwrap());
    assert_eq!(store.scim_users("hr").await.unwrap(), vec![]);
    assert_eq!(store.scim_user("hr", "1").await.unwrap(), None);
}

/// Search matches key, login and record values case-insensitively, takes `%` and `_` literally,
/// and returns persons by key up to the limit; one person comes with their links.
#[tokio::test]
async fn persons_are_searched_by_key_login_and_records() {
    let store = test_store().await;
    let mut grace = person("e2", Some("grace_h"));
    std::sync::Arc::make_mut(grace.records.get_mut("hr").unwrap())
        .insert("department".into(), FieldValue::Text("R&D 100%".into()));
    store.commit_persons(&[person("e1", Some("ada")), grace, person("x3", Some("carol"))], as_of()).await.unwrap();
    apply(
        &store,
        vec![(op(1, Some("e1"), create("uid=ada,dc=example,dc=org", true)), done("id-1", "uid=ada,dc=example,dc=org"))],
    )
    .await;

    let keys = |found: Vec<StoredPerson>| found.into_iter().map(|p| p.key).collect::<Vec<_>>();
    assert_eq!(keys(store.search_persons("E1", 10).await.unwrap()), ["e1"]);
    assert_eq!(keys(store.search_persons("CAROL", 10).await.unwrap()), ["x3"]);
    assert_eq!(keys(store.search_persons("r&d 100%", 10).await.unwrap()), ["e2"]);
    // As wildcards, `0%` and `ad_` would match every person (their records hold "2020-01-01"
    // and "Ada").
    assert_eq!(keys(store.search_persons("0%", 10).await.unwrap()), ["e2"], "% is a character");
    assert_eq!(keys(store.search_persons("ad_", 10).await.unwrap()), Vec::<String>::new(), "_ is a character");
    assert_eq!(keys(store.search_persons("e_h", 10).await.unwrap()), ["e2"]);
    assert_eq!(keys(store.search_persons("", 2).await.unwrap()), ["e1", "e2"]);

    let (ada, links) = store.person("e1").await.unwrap().expect("e1 is stored");
    assert_eq!(ada, stored(&person("e1", Some("ada"))));
    assert_eq!(links.iter().map(|l| l.object_id.as_str()).collect::<Vec<_>>(), ["id-1"]);
    assert_eq!(store.person("nobody").await.unwrap(), None);
}

/// The job queue keeps jobs in the order asked for, marks the running one, and forgets a job once
/// it has run.
#[tokio::test]
async fn the_job_queue_survives_until_each_job_has_run() {
    let store = test_store().await;
    let nightly = store.queue_job("nightly", "serve:nightly", &[]).await.unwrap();
    let approved = ["apply", "--approved", "7"].map(String::from);
    let apply = store.queue_job("approved:7", "api:ops", &approved).await.unwrap();
    store.job_started(nightly).await.unwrap();

    let queue = store.queued_jobs().await.unwrap();
    let seen: Vec<_> = queue
        .iter()
        .map(|j| (j.id, j.job.as_str(), j.actor.as_str(), j.args.clone(), j.started_at.is_some()))
        .collect();
    assert_eq!(
        seen,
        [
            (nightly, "nightly", "serve:nightly", Vec::new(), true),
            (apply, "approved:7", "api:ops", approved.to_vec(), false)
        ]
    );
    store.job_done(nightly).await.unwrap();
    assert_eq!(store.queued_jobs().await.unwrap().iter().map(|j| j.id).collect::<Vec<_>>(), [apply]);
}

/// The plan a run recorded is read back as recorded; a run without one and no run are told apart.
#[tokio::test]
async fn a_runs_plan_is_read_back() {
    let store = test_store().await;
    let with_plan = store.begin_run(&start("run", "cfg")).await.unwrap();
    let without = store.begin_run(&RunStart { plan_json: None, ..start("plan", "cfg") }).await.unwrap();
    assert_eq!(store.run_plan(with_plan).await.unwrap(), Some(Some("{}".to_string())));
    assert_eq!(store.run_plan(without).await.unwrap(), Some(None));
    assert_eq!(store.run_plan(RunId(9999)).await.unwrap(), None);
}

/// A plan too large for one text value (a first load of a million accounts) is kept in parts and
/// read back whole: by the run that applied it, as a held plan, listed, and when decided on. The
/// parts here are a few bytes, cut inside multi-byte characters' neighbourhood.
#[tokio::test]
async fn a_plan_larger_than_one_value_is_kept_in_parts_and_read_back_whole() {
    let store = test_store().await;
    let mut plan = blocked_plan(4);
    plan.operations[0].reason = "Zoë Ødegård → Łódź".into();
    let text = serde_json::to_string(&plan).unwrap();
    let run =
        store.begin_run_in_parts(&RunStart { plan_json: Some(text.clone()), ..start("run", "cfg") }, 7).await.unwrap();
    assert_eq!(store.run_plan(run).await.unwrap(), Some(Some(text.clone())));
    let small = store.begin_run(&start("run", "cfg")).await.unwrap();
    assert_eq!(store.run_plan(small).await.unwrap(), Some(Some("{}".to_string())));
    let none = store.begin_run(&RunStart { plan_json: None, ..start("plan", "cfg") }).await.unwrap();
    assert_eq!(store.run_plan(none).await.unwrap(), Some(None));

    let held = store.hold_plan_in_parts(run, "serve:nightly", &plan, None, 5).await.unwrap();
    assert_eq!(store.held_plan(held).await.unwrap().map(|h| h.plan), Some(plan.clone()));
    assert_eq!(store.held_plans(None, 10).await.unwrap().into_iter().map(|h| h.plan).collect::<Vec<_>>(), [plan]);
    let approver = RunStart { actor: "approver@example.org".into(), ..start("approve", "cfg") };
    let Decided::Done(decision) = store.decide_plan(&approver, held, true, "checked").await.unwrap() else {
        panic!("the waiting plan was not decided on")
    };
    let entries = store.audit(&AuditQuery { run: Some(decision), ..AuditQuery::default() }).await.unwrap();
    assert!(entries[0].reason.contains("(4 operation(s)) approved"), "{}", entries[0].reason);
}

/// A run that starts without its plan (an apply keeps it while its operations go) shows none
/// until the first part is recorded after the others, then the whole plan; a plan is recorded
/// once, with every part it counts, and only into a running run.
#[tokio::test]
async fn a_plan_recorded_after_its_run_started_shows_once_whole() {
    let store = test_store().await;
    let text = serde_json::to_string(&blocked_plan(3)).unwrap();
    let parts = roster_store::split_plan(&text, 50);
    assert!(parts.len() > 2, "{} part(s)", parts.len());
    let run = store.begin_run(&RunStart { plan_json: None, ..start("run", "cfg") }).await.unwrap();
    for (i, part) in parts.iter().enumerate().skip(1) {
        store.keep_run_plan_part(run, i, part).await.unwrap();
        assert_eq!(store.run_plan(run).await.unwrap(), Some(None), "after part {i}");
    }
    let counted = store.record_run_plan(run, parts[0], parts.len()).await.unwrap_err();
    assert!(counted.to_string().contains(&format!("{} are kept", parts.len() - 1)), "{counted}");
    assert_eq!(store.run_plan(run).await.unwrap(), Some(None));
    store.record_run_plan(run, parts[0], parts.len() - 1).await.unwrap();
    assert_eq!(store.run_plan(run).await.unwrap(), Some(Some(text.clone())));
    let again = store.record_run_plan(run, parts[0], parts.len() - 1).await.unwrap_err();
    assert!(again.to_string().contains("has its plan already"), "{again}");
    assert_eq!(store.run_plan(run).await.unwrap(), Some(Some(text.clone())));

    // A plan of one part; a finished run takes none.
    let small = store.begin_run(&RunStart { plan_json: None, ..start("run", "cfg") }).await.unwrap();
    store.record_run_plan(small, "{}", 0).await.unwrap();
    assert_eq!(store.run_plan(small).await.unwrap(), Some(Some("{}".to_string())));
    let finished = store.begin_run(&RunStart { plan_json: None, ..start("run", "cfg") }).await.unwrap();
    let finish = RunFinish {
        status: RunStatus::Success,
        summary: Summary::default(),
        source_counts: BTreeMap::new(),
        failed: 0,
    };
    store.finish_run(finished, &finish).await.unwrap();
    assert!(matches!(store.keep_run_plan_part(finished, 1, "x").await, Err(Error::RunFinished(_))));
    assert!(matches!(store.record_run_plan(finished, "{}", 0).await, Err(Error::RunFinished(_))));
    assert_eq!(store.run_plan(finished).await.unwrap(), Some(None));
}
