//! The state store against real databases: SQLite (temporary files, and the in-memory store),
//! and, when `ROSTER_TEST_STORE=postgres` (the second pass of `scripts/test.sh`), PostgreSQL: every
//! test that opens its store with [`test_store`] runs there on a private server of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use roster_core::attr::{AttrMap, AttrName};
use roster_core::lifecycle::LifecycleState;
use roster_core::plan::{Action, Applied, AttrChange, Category, Operation, PersonUpdate, Summary};
use roster_core::source::{Attrs, Field, FieldValue};
use roster_core::state::{Hold, Link, Snapshot, StoredPerson, TargetEntry, Tombstone, UnfinishedCreate};
use roster_store::{AuditQuery, Error, Outcome, RunFinish, RunId, RunStart, RunStatus, Store};
use serde_json::json;
use tempfile::TempDir;

#[path = "store/chain.rs"]
mod chain;
#[path = "store/daemon.rs"]
mod daemon;
#[path = "store/failures.rs"]
mod failures;

const TARGET: &str = "directory";

/// The store a test runs on, with the server it needs, if any, kept alive as long as it.
struct TestStore {
    store: Store,
    _server: Option<roster_testkit::Postgres>,
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// An empty store: in-memory SQLite, or with `ROSTER_TEST_STORE=postgres` a fresh private
/// PostgreSQL (a PostgreSQL that cannot start fails the test: it is never skipped).
async fn test_store() -> TestStore {
    match std::env::var("ROSTER_TEST_STORE").as_deref() {
        Ok("postgres") => {
            let server = tokio::task::spawn_blocking(roster_testkit::Postgres::start)
                .await
                .unwrap()
                .expect("ROSTER_TEST_STORE=postgres: a private PostgreSQL server");
            let url = format!("{}?sslmode=disable", server.url());
            let store = Store::open_postgres(&url, roster_store::AuditKey::random().unwrap()).await.unwrap();
            TestStore { store, _server: Some(server) }
        }
        Ok("sqlite") | Err(_) => TestStore { store: Store::open_in_memory().await.unwrap(), _server: None },
        Ok(other) => panic!("ROSTER_TEST_STORE: expected postgres or sqlite, found {other:?}"),
    }
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn attrs(pairs: &[(&str, &[&str])]) -> AttrMap {
    pairs.iter().map(|(name, values)| (AttrName::new(*name), values.iter().map(|v| v.to_string()).collect())).collect()
}

fn change(attr: &str, old: &[&str], new: &[&str]) -> AttrChange {
    AttrChange {
        attr: AttrName::new(attr),
        old: old.iter().map(|v| v.to_string()).collect(),
        new: new.iter().map(|v| v.to_string()).collect(),
    }
}

fn person(key: &str, login: Option<&str>) -> PersonUpdate {
    let record = BTreeMap::from([
        ("given_name".into(), FieldValue::Text("Ada".into())),
        ("hire_date".into(), FieldValue::Date(day("2020-01-01"))),
        // A text that looks like a date must come back as text.
        ("badge".into(), FieldValue::Text("2021-02-03".into())),
    ]);
    PersonUpdate {
        key: key.to_string(),
        login: login.map(str::to_string),
        state: LifecycleState::Active,
        records: BTreeMap::from([("hr".to_string(), Arc::new(Attrs::from(record)))]).into(),
        eval_hash: format!("hash-{key}"),
        missing_reads: 0,
        left_on: None,
        next_transition: Some(day("2026-12-01")),
        hold: None,
        tombstone: false,
        record_keys: BTreeMap::new(),
        provenance: BTreeMap::new(),
    }
}

fn tombstoned(key: &str, login: Option<&str>) -> PersonUpdate {
    PersonUpdate { state: LifecycleState::Purged, tombstone: true, next_transition: None, ..person(key, login) }
}

fn stored(update: &PersonUpdate) -> StoredPerson {
    StoredPerson {
        key: update.key.clone(),
        login: update.login.clone(),
        state: update.state,
        records: Arc::new(update.records.clone()),
        eval_hash: update.eval_hash.clone(),
        missing_reads: update.missing_reads,
        left_on: update.left_on,
        next_transition: update.next_transition,
        hold: update.hold.clone(),
        record_keys: update.record_keys.clone(),
        provenance: update.provenance.clone(),
        records_omitted: false,
    }
}

fn op(id: usize, person: Option<&str>, action: Action) -> Operation {
    Operation {
        id,
        person: person.map(str::to_string),
        target: TARGET.into(),
        category: Category::Joiner,
        reason: format!("operation {id}").into(),
        depends_on: Vec::new(),
        action,
    }
}

fn done(object_id: &str, dn: &str) -> Outcome {
    Outcome::Done(Applied {
        entry: Some(TargetEntry {
            object_id: object_id.into(),
            dn: dn.into(),
            attrs: AttrMap::new(),
            protected: false,
        }),
    })
}

fn done_quietly() -> Outcome {
    Outcome::Done(Applied { entry: None })
}

fn start(command: &str, config_hash: &str) -> RunStart {
    RunStart {
        command: command.to_string(),
        as_of: day("2026-03-10"),
        config_hash: config_hash.to_string(),
        actor: "ops@example.org".to_string(),
        overrides: vec!["disables".to_string()],
        plan_json: Some("{}".to_string()),
    }
}

fn finish(status: RunStatus, counts: &[(&str, u64)]) -> RunFinish {
    RunFinish {
        status,
        summary: Summary { persons: 3, operations: 2, ..Summary::default() },
        source_counts: counts.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        failed: 0,
    }
}

fn create(dn: &str, enabled: bool) -> Action {
    create_with_password(dn, enabled, false)
}

fn create_with_password(dn: &str, enabled: bool, password: bool) -> Action {
    Action::Create {
        dn: dn.into(),
        attributes: attrs(&[
            ("objectClass", &["inetOrgPerson"]),
            ("cn", &["Ada Lovelace"]),
            ("mail", &["ada@example.org"]),
        ])
        .try_into()
        .unwrap(),
        enabled,
        password,
    }
}

async fn file_store(dir: &TempDir) -> Store {
    Store::open(&dir.path().join("roster.db")).await.unwrap()
}

/// Runs `ops` through intents and outcomes in a fresh run.
async fn apply(store: &Store, results: Vec<(Operation, Outcome)>) -> RunId {
    let run = store.begin_run(&start("apply", "cfg")).await.unwrap();
    let ops: Vec<Operation> = results.iter().map(|(op, _)| op.clone()).collect();
    store.record_intents(run, &ops).await.unwrap();
    store.record_outcomes(run, &results).await.unwrap();
    run
}

async fn link_of(store: &Store, person: &str) -> Option<Link> {
    store.snapshot().await.unwrap().links.into_iter().find(|l| l.person == person)
}

#[tokio::test]
async fn open_creates_the_file_and_migrates() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("state").with_extension("db");
    assert!(!path.exists());
    let store = Store::open(&path).await.unwrap();
    assert!(path.exists());
    assert_eq!(store.snapshot().await.unwrap(), Snapshot::default());
    assert!(store.runs(10).await.unwrap().is_empty());
    assert_eq!(store.last_config_hash().await.unwrap(), None);
}

#[tokio::test]
async fn open_names_the_path_it_cannot_open() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("no such folder").join("roster.db");
    let error = Store::open(&path).await.unwrap_err();
    assert!(matches!(error, Error::Open { .. }), "{error:?}");
    assert!(error.to_string().contains(&path.display().to_string()), "{error}");
}

#[tokio::test]
async fn reopen_keeps_data() {
    let dir = TempDir::new().unwrap();
    let store = file_store(&dir).await;
    store.commit_persons(&[person("e1", Some("ada"))], as_of()).await.unwrap();
    let run = store.begin_run(&start("run", "cfg-1")).await.unwrap();
    store.finish_run(run, &finish(RunStatus::Success, &[("hr", 1)])).await.unwrap();
    store.close().await;

    let store = file_store(&dir).await;
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.persons["e1"], stored(&person("e1", Some("ada"))));
    assert_eq!(snapshot.source_counts, BTreeMap::from([("hr".to_string(), 1)]));
    assert_eq!(store.last_config_hash().await.unwrap().as_deref(), Some("cfg-1"));
}

async fn check_snapshot_round_trip(store: &Store) {
    let ada = PersonUpdate {
        left_on: Some(day("2026-02-28")),
        hold: Some(Hold { reason: "legal hold".into(), until: Some(day("2026-06-30")) }),
        missing_reads: 2,
        state: LifecycleState::Leaver,
        ..person("e1", Some("ada.lovelace"))
    };
    let grace = PersonUpdate {
        hold: Some(Hold { reason: "until further notice".into(), until: None }),
        next_transition: None,
        records: BTreeMap::from([
            ("hr".to_string(), Default::default()),
            (
                "contractors".to_string(),
                Arc::new(Attrs::from(BTreeMap::from([("note".into(), FieldValue::Text("ünïcødé \"q\"".into()))]))),
            ),
        ])
        .into(),
        // Known to the contractor database by another number than the person's key.
        record_keys: BTreeMap::from([("contractors".to_string(), "C-17".to_string())]),
        provenance: BTreeMap::from([("note".to_string(), "contractors".to_string())]),
        ..person("e2", None)
    };
    store.commit_persons(&[ada.clone(), grace.clone(), person("e3", Some("carol"))], as_of()).await.unwrap();
    store.commit_persons(&[tombstoned("e3", Some("carol"))], as_of()).await.unwrap();

    let run = apply(
        store,
        vec![
            (
                op(0, Some("e1"), create_with_password("uid=ada,ou=people,dc=example,dc=org", false, true)),
                done("uuid-1", "uid=ada,ou=people,dc=example,dc=org"),
            ),
            (
                op(
                    1,
                    Some("e2"),
                    Action::Adopt { dn: "uid=grace,ou=people,dc=example,dc=org".into(), object_id: "uuid-2".into() },
                ),
                done_quietly(),
            ),
        ],
    )
    .await;
    store.finish_run(run, &finish(RunStatus::Partial, &[("hr", 1200), ("contractors", 7)])).await.unwrap();

    let today = as_of();
    let expected = Snapshot {
        persons: BTreeMap::from([("e1".to_string(), stored(&ada)), ("e2".to_string(), stored(&grace))]),
        links: vec![
            Link {
                person: "e1".into(),
                target: TARGET.into(),
                object_id: "uuid-1".into(),
                dn: "uid=ada,ou=people,dc=example,dc=org".into(),
                enabled: false,
                values: attrs(&[("cn", &["Ada Lovelace"]), ("mail", &["ada@example.org"])]),
                password_pending: true,
                values_omitted: false,
            },
            Link {
                person: "e2".into(),
                target: TARGET.into(),
                object_id: "uuid-2".into(),
                dn: "uid=grace,ou=people,dc=example,dc=org".into(),
                enabled: true,
                values: AttrMap::new(),
                password_pending: false,
                values_omitted: false,
            },
        ],
        tombstones: vec![Tombstone { person: "e3".into(), login: "carol".into(), purged_on: today }],
        source_counts: BTreeMap::from([("hr".to_string(), 1200), ("contractors".to_string(), 7)]),
        unfinished_creates: Vec::new(),
        failures: Vec::new(),
        // Not recorded by the store yet.
        managed_groups: Vec::new(),
    };
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot, expected);
    assert_eq!(
        snapshot.persons["e1"].records["hr"].get("badge").map(Field::to_value),
        Some(FieldValue::Text("2021-02-03".into()))
    );
    assert_eq!(
        snapshot.persons["e1"].records["hr"].get("hire_date").map(Field::to_value),
        Some(FieldValue::Date(day("2020-01-01")))
    );

    // A daily run's snapshot: the same, each person's sources named with empty records, the links
    // of a target read in part without their values; then the records and link values of the
    // persons asked for (a key the store does not hold is no error).
    let with_values = BTreeSet::from([TARGET.to_string()]);
    let whole_links = store.snapshot_without_records(&with_values).await.unwrap().links;
    assert_eq!(whole_links, expected.links);
    let mut light = store.snapshot_without_records(&BTreeSet::from(["other".to_string()])).await.unwrap();
    assert!(light.links.iter().all(|l| l.values_omitted && l.values.is_empty()), "{:?}", light.links);
    store.read_link_values(&mut light, &BTreeSet::from(["e1".to_string(), "e9".to_string()])).await.unwrap();
    assert_eq!(light.links[0], expected.links[0]);
    assert!(light.links[1].values_omitted);
    store.read_all_link_values(&mut light).await.unwrap();
    assert_eq!(light.links, expected.links);
    assert!(light.persons.values().all(|p| p.records_omitted));
    assert_eq!(light.persons["e2"].records.keys().collect::<Vec<_>>(), ["contractors", "hr"]);
    assert_eq!(light.persons["e1"].records.keys().collect::<Vec<_>>(), ["hr"]);
    assert!(light.persons.values().flat_map(|p| p.records.values()).all(|r| r.is_empty()));
    let asked = BTreeSet::from(["e2".to_string(), "e9".to_string()]);
    store.read_records(&mut light, &asked).await.unwrap();
    assert_eq!(light.persons["e2"], expected.persons["e2"]);
    assert!(light.persons["e1"].records_omitted);
    light.persons.insert("e1".into(), expected.persons["e1"].clone());
    assert_eq!(light, expected);
}

#[tokio::test]
async fn snapshot_round_trips_exactly_on_file() {
    let dir = TempDir::new().unwrap();
    check_snapshot_round_trip(&file_store(&dir).await).await;
}

#[tokio::test]
async fn snapshot_round_trips_exactly_in_memory() {
    check_snapshot_round_trip(&*test_store().await).await;
}

#[tokio::test]
async fn outcomes_of_every_action_update_links() {
    let store = test_store().await;
    let dn = "uid=ada,ou=people,dc=example,dc=org";

    apply(&store, vec![(op(0, Some("e1"), create(dn, true)), done("uuid-1", dn))]).await;
    let link = link_of(&store, "e1").await.unwrap();
    assert_eq!((link.object_id.as_str(), link.dn.as_str(), link.enabled), ("uuid-1", dn, true));
    assert_eq!(link.values, attrs(&[("cn", &["Ada Lovelace"]), ("mail", &["ada@example.org"])]));

    let update = Action::Update {
        dn: dn.into(),
        object_id: Some("uuid-1".into()),
        changes: vec![
            change("CN", &["Ada Lovelace"], &["Ada King"]),
            change("mail", &["ada@example.org"], &[]),
            change("title", &[], &["Countess"]),
        ],
    };
    apply(&store, vec![(op(0, Some("e1"), update), done_quietly())]).await;
    let link = link_of(&store, "e1").await.unwrap();
    assert_eq!(link.values, attrs(&[("cn", &["Ada King"]), ("title", &["Countess"])]));
    assert!(link.enabled);

    let disable = Action::Disable {
        dn: dn.into(),
        object_id: None,
        changes: vec![change("pwdAccountLockedTime", &[], &["000001010000Z"])],
    };
    apply(&store, vec![(op(0, Some("e1"), disable), done_quietly())]).await;
    let link = link_of(&store, "e1").await.unwrap();
    assert!(!link.enabled);
    assert_eq!(link.values[&AttrName::new("pwdAccountLockedTime")], vec!["000001010000Z".to_string()]);

    let enable = Action::Enable {
        dn: dn.into(),
        object_id: None,
        changes: vec![change("pwdAccountLockedTime", &["000001010000Z"], &[])],
    };
    apply(&store, vec![(op(0, Some("e1"), enable), done_quietly())]).await;
    let link = link_of(&store, "e1").await.unwrap();
    assert!(link.enabled);
    assert_eq!(link.values, attrs(&[("cn", &["Ada King"]), ("title", &["Countess"])]));

    let new_dn = "uid=ada,ou=leavers,dc=example,dc=org";
    let rename = Action::Rename { dn: dn.into(), object_id: Some("uuid-1".into()), new_dn: new_dn.into() };
    apply(&store, vec![(op(0, Some("e1"), rename), done("uuid-1", new_dn))]).await;
    let link = link_of(&store, "e1").await.unwrap();
    assert_eq!((link.dn.as_str(), link.object_id.as_str()), (new_dn, "uuid-1"));

    let grace = "uid=grace,ou=people,dc=example,dc=org";
    let group = "cn=staff,ou=groups,dc=example,dc=org";
    let before = store.snapshot().await.unwrap().links;
    apply(
        &store,
        vec![
            (op(0, None, Action::CreateContainer { dn: "ou=people,dc=example,dc=org".into() }), done_quietly()),
            (
                op(
                    1,
                    None,
                    Action::CreateGroup {
                        dn: group.into(),
                        members: vec![new_dn.into()],
                        attributes: Default::default(),
                    },
                ),
                done_quietly(),
            ),
            (op(2, Some("e1"), Action::AddMember { group: group.into(), member: new_dn.into() }), done_quietly()),
            (op(3, Some("e1"), Action::RemoveMember { group: group.into(), member: new_dn.into() }), done_quietly()),
        ],
    )
    .await;
    assert_eq!(store.snapshot().await.unwrap().links, before, "container and group operations are audit only");

    apply(
        &store,
        vec![(op(0, Some("e2"), Action::Adopt { dn: grace.into(), object_id: "uuid-2".into() }), done_quietly())],
    )
    .await;
    let link = link_of(&store, "e2").await.unwrap();
    assert_eq!((link.object_id.as_str(), link.dn.as_str(), link.enabled), ("uuid-2", grace, true));
    assert!(link.values.is_empty());

    apply(
        &store,
        vec![(
            op(0, Some("e1"), Action::Delete { dn: new_dn.into(), object_id: Some("uuid-1".into()) }),
            done_quietly(),
        )],
    )
    .await;
    assert_eq!(link_of(&store, "e1").await, None);
    assert!(link_of(&store, "e2").await.is_some());
}

#[tokio::test]
async fn a_password_stays_pending_until_it_is_set() {
    let store = test_store().await;
    let dn = "uid=ada,ou=people,dc=example,dc=org";
    let set_password = || Action::SetPassword { dn: dn.into(), object_id: Some("uuid-1".into()), must_change: true };
    apply(&store, vec![(op(0, Some("e1"), create_with_password(dn, true, true)), done("uuid-1", dn))]).await;
    assert!(link_of(&store, "e1").await.unwrap().password_pending);

    let run = apply(
        &store,
        vec![(op(0, Some("e1"), set_password()), Outcome::Failed { error: "delivery failed".into(), unknown: false })],
    )
    .await;
    assert!(link_of(&store, "e1").await.unwrap().password_pending);
    let entry = &store.audit(&AuditQuery { run: Some(run), ..AuditQuery::default() }).await.unwrap()[0];
    assert_eq!((entry.kind.as_str(), entry.after.clone()), ("set_password", Some(json!({ "must_change": true }))));

    apply(&store, vec![(op(0, Some("e1"), set_password()), done_quietly())]).await;
    assert!(!link_of(&store, "e1").await.unwrap().password_pending);
}

#[tokio::test]
async fn one_batch_applies_its_operations_in_order() {
    let store = test_store().await;
    let dn = "uid=ada,ou=people,dc=example,dc=org";
    let moved = "uid=ada,ou=staff,dc=example,dc=org";
    let grace = "uid=grace,ou=people,dc=example,dc=org";
    apply(&store, vec![(op(0, Some("e2"), create(grace, true)), done("uuid-2", grace))]).await;

    apply(
        &store,
        vec![
            (op(0, Some("e1"), create(dn, false)), done("uuid-1", dn)),
            (
                op(
                    1,
                    Some("e1"),
                    Action::Update {
                        dn: dn.into(),
                        object_id: None,
                        changes: vec![change("mail", &[], &["ada@example.net"])],
                    },
                ),
                done_quietly(),
            ),
            (
                op(2, Some("e1"), Action::Rename { dn: dn.into(), object_id: None, new_dn: moved.into() }),
                done_quietly(),
            ),
            (
                op(3, Some("e1"), Action::Enable { dn: moved.into(), object_id: None, changes: Vec::new() }),
                done_quietly(),
            ),
            (op(4, Some("e2"), Action::Delete { dn: grace.into(), object_id: None }), done_quietly()),
            (op(5, Some("e3"), create(grace, true)), done("uuid-2", grace)),
        ],
    )
    .await;
    let links = store.snapshot().await.unwrap().links;
    assert_eq!(links.len(), 2);
    assert_eq!((links[0].person.as_str(), links[0].dn.as_str(), links[0].enabled), ("e1", moved, true));
    assert_eq!(links[0].values[&AttrName::new("mail")], vec!["ada@example.net".to_string()]);
    assert_eq!(
        (links[1].person.as_str(), links[1].object_id.as_str()),
        ("e3", "uuid-2"),
        "an object id freed in a batch can be linked in it"
    );
}

#[tokio::test]
async fn failed_and_skipped_operations_change_no_link() {
    let store = test_store().await;
    let dn = "uid=ada,ou=people,dc=example,dc=org";
    apply(&store, vec![(op(0, Some("e1"), create(dn, true)), done("uuid-1", dn))]).await;
    let before = store.snapshot().await.unwrap();

    let run = apply(
        &store,
        vec![
            (
                op(
                    0,
                    Some("e1"),
                    Action::Update {
                        dn: dn.into(),
                        object_id: None,
                        changes: vec![change("cn", &["Ada Lovelace"], &["X"])],
                    },
                ),
                Outcome::Failed { error: "constraint violation".into(), unknown: false },
            ),
            (
                op(
                    1,
                    Some("e1"),
                    Action::Rename { dn: dn.into(), object_id: None, new_dn: "uid=x,dc=example,dc=org".into() },
                ),
                Outcome::Failed { error: "timed out".into(), unknown: true },
            ),
            (
                op(2, Some("e1"), Action::Delete { dn: dn.into(), object_id: None }),
                Outcome::Skipped { reason: "operation 1 failed".into() },
            ),
            (
                op(3, Some("e2"), create("uid=grace,dc=example,dc=org", true)),
                Outcome::Failed { error: "no such parent".into(), unknown: false },
            ),
        ],
    )
    .await;
    assert_eq!(store.snapshot().await.unwrap(), before);

    let mut entries = store.audit(&AuditQuery { run: Some(run), ..AuditQuery::default() }).await.unwrap();
    entries.sort_by_key(|e| e.op_id);
    let outcomes: Vec<(&str, Option<&str>)> =
        entries.iter().map(|e| (e.outcome.as_str(), e.error.as_deref())).collect();
    assert_eq!(
        outcomes,
        [
            ("failed", Some("constraint violation")),
            ("unknown", Some("timed out")),
            ("skipped", Some("operation 1 failed")),
            ("failed", Some("no such parent")),
        ]
    );
}

#[tokio::test]
async fn a_create_sent_without_an_outcome_stays_unfinished_until_resolved() {
    let store = test_store().await;
    let unfinished = |persons: &[&str]| -> Vec<UnfinishedCreate> {
        persons.iter().map(|p| UnfinishedCreate { target: TARGET.into(), person: p.to_string() }).collect()
    };
    let dn = |person: &str| format!("uid={person},dc=example,dc=org");
    let crashed = store.begin_run(&start("apply", "cfg")).await.unwrap();
    let ops: Vec<Operation> =
        ["e1", "e2", "e3", "e4"].iter().enumerate().map(|(i, p)| op(i, Some(p), create(&dn(p), true))).collect();
    store.record_intents(crashed, &ops).await.unwrap();
    store
        .record_outcomes(
            crashed,
            &[
                (ops[1].clone(), Outcome::Failed { error: "timed out".into(), unknown: true }),
                (ops[2].clone(), Outcome::Failed { error: "no such parent".into(), unknown: false }),
                (ops[3].clone(), done("uuid-4", &dn("e4"))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(store.snapshot().await.unwrap().unfinished_creates, unfinished(&["e1", "e2"]));

    let adopt = Action::Adopt { dn: dn("e1"), object_id: "uuid-1".into() };
    apply(&store, vec![(op(0, Some("e1"), adopt), done_quietly())]).await;
    assert_eq!(store.snapshot().await.unwrap().unfinished_creates, unfinished(&["e2"]));

    apply(&store, vec![(op(0, Some("e1"), Action::Delete { dn: dn("e1"), object_id: None }), done_quietly())]).await;
    assert_eq!(store.snapshot().await.unwrap().unfinished_creates, unfinished(&["e2"]), "resolved for good");
}

#[tokio::test]
async fn a_create_without_an_object_id_is_audited_but_not_linked() {
    let store = test_store().await;
    let run = apply(&store, vec![(op(0, Some("e1"), create("uid=ada,dc=example,dc=org", true)), done_quietly())]).await;
    assert!(store.snapshot().await.unwrap().links.is_empty());
    let entries = store.audit(&AuditQuery { run: Some(run), ..AuditQuery::default() }).await.unwrap();
    assert_eq!(entries[0].outcome, "done");
    assert!(entries[0].error.as_deref().unwrap().contains("no object id"), "{:?}", entries[0].error);
}

#[tokio::test]
async fn an_outcome_without_an_intent_gets_its_own_entry() {
    let store = test_store().await;
    let run = store.begin_run(&start("apply", "cfg")).await.unwrap();
    let dn = "uid=ada,dc=example,dc=org";
    store.record_outcomes(run, &[(op(4, Some("e1"), create(dn, true)), done("uuid-1", dn))]).await.unwrap();
    let entries = store.audit(&AuditQuery { run: Some(run), ..AuditQuery::default() }).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].op_id, entries[0].outcome.as_str()), (4, "done"));
    assert_eq!(entries[0].after.as_ref().unwrap()["object_id"], json!("uuid-1"));
}

#[tokio::test]
async fn a_tombstone_keeps_the_login_from_anyone_else() {
    let store = test_store().await;
    let dn = "uid=ada,dc=example,dc=org";
    store.commit_persons(&[person("e1", Some("ada"))], as_of()).await.unwrap();
    apply(&store, vec![(op(0, Some("e1"), create(dn, true)), done("uuid-1", dn))]).await;

    store.commit_persons(&[tombstoned("e1", Some("ada")), tombstoned("e9", None)], as_of()).await.unwrap();
    let snapshot = store.snapshot().await.unwrap();
    assert!(snapshot.persons.is_empty());
    assert!(snapshot.links.is_empty(), "a tombstoned person's links go with them");
    assert_eq!(snapshot.tombstones, [Tombstone { person: "e1".into(), login: "ada".into(), purged_on: as_of() }]);

    for login in ["ada", "ADA"] {
        let error = store.commit_persons(&[person("e2", Some(login))], as_of()).await.unwrap_err();
        assert!(matches!(error, Error::LoginTombstoned { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("e1") && message.contains("e2"), "{message}");
    }
    assert!(store.snapshot().await.unwrap().persons.is_empty(), "a refused batch writes nothing");
}

#[tokio::test]
async fn a_login_freed_in_the_same_batch_is_still_kept() {
    let store = test_store().await;
    store.commit_persons(&[person("e1", Some("ada"))], as_of()).await.unwrap();
    let error =
        store.commit_persons(&[tombstoned("e1", Some("ada")), person("e2", Some("ada"))], as_of()).await.unwrap_err();
    assert!(matches!(error, Error::LoginTombstoned { .. }), "{error:?}");
    assert_eq!(store.snapshot().await.unwrap().persons.keys().collect::<Vec<_>>(), ["e1"]);
}

#[tokio::test]
async fn a_rehire_gets_their_tombstoned_login_back() {
    let store = test_store().await;
    store.commit_persons(&[person("e1", Some("ada"))], as_of()).await.unwrap();
    store.commit_persons(&[tombstoned("e1", Some("ada"))], as_of()).await.unwrap();
    store.commit_persons(&[person("e1", Some("ada"))], as_of()).await.unwrap();
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.persons["e1"].login.as_deref(), Some("ada"));
    assert_eq!(snapshot.tombstones.len(), 1, "the tombstone stays: the login is still never anyone else's");

    store.commit_persons(&[tombstoned("e1", Some("ada"))], as_of()).await.unwrap();
    assert_eq!(store.snapshot().await.unwrap().tombstones.len(), 1);
}

#[tokio::test]
async fn a_login_belongs_to_one_person() {
    let store = test_store().await;
    store.commit_persons(&[person("e1", Some("ada"))], as_of()).await.unwrap();

    let error =
        store.commit_persons(&[person("e3", Some("bob")), person("e2", Some("Ada"))], as_of()).await.unwrap_err();
    assert!(matches!(error, Error::LoginTaken { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("e1") && message.contains("e2"), "{message}");
    assert_eq!(store.snapshot().await.unwrap().persons.len(), 1, "a refused batch writes nothing");

    let error =
        store.commit_persons(&[person("e4", Some("dan")), person("e5", Some("dan"))], as_of()).await.unwrap_err();
    assert!(matches!(error, Error::LoginTaken { .. }), "{error:?}");

    store.commit_persons(&[person("e1", Some("ada")), person("e1", Some("ada"))], as_of()).await.unwrap();
}

#[tokio::test]
async fn a_login_never_changes() {
    let store = test_store().await;
    store.commit_persons(&[person("e1", Some("ada"))], as_of()).await.unwrap();
    for login in [Some("ada.king"), None] {
        let error = store.commit_persons(&[person("e1", login)], as_of()).await.unwrap_err();
        assert!(matches!(error, Error::LoginChanged { .. }), "{error:?}");
    }
    store.commit_persons(&[person("e2", None)], as_of()).await.unwrap();
    store.commit_persons(&[person("e2", Some("grace"))], as_of()).await.unwrap();
    assert_eq!(store.snapshot().await.unwrap().persons["e2"].login.as_deref(), Some("grace"));
}

#[tokio::test]
async fn person_updates_replace_what_was_stored() {
    let store = test_store().await;
    store.commit_persons(&[person("e1", Some("ada"))], as_of()).await.unwrap();
    let moved = PersonUpdate {
        state: LifecycleState::Leave,
        eval_hash: "h2".into(),
        missing_reads: 1,
        hold: None,
        next_transition: None,
        ..person("e1", Some("ada"))
    };
    store.commit_persons(std::slice::from_ref(&moved), as_of()).await.unwrap();
    assert_eq!(store.snapshot().await.unwrap().persons["e1"], stored(&moved));
}

#[tokio::test]
async fn audit_query_filters() {
    let store = test_store().await;
    let ada = "uid=ada,ou=people,dc=example,dc=org";
    let grace = "uid=grace,ou=people,dc=example,dc=org";
    let begin = Utc::now() - Duration::seconds(1);
    let first = apply(
        &store,
        vec![
            (op(0, Some("e1"), create(ada, true)), done("uuid-1", ada)),
            (op(1, Some("e2"), create(grace, false)), done("uuid-2", grace)),
        ],
    )
    .await;
    let between = Utc::now();
    let second = apply(
        &store,
        vec![
            (
                op(
                    0,
                    Some("e1"),
                    Action::Update {
                        dn: ada.into(),
                        object_id: None,
                        changes: vec![change("cn", &["Ada Lovelace"], &["Ada King"])],
                    },
                ),
                done_quietly(),
            ),
            (
                op(
                    1,
                    Some("e1"),
                    Action::Rename {
                        dn: ada.into(),
                        object_id: None,
                        new_dn: "uid=ada,ou=leavers,dc=example,dc=org".into(),
                    },
                ),
                done_quietly(),
            ),
        ],
    )
    .await;

    let all = store.audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| (w[0].at, w[0].id) > (w[1].at, w[1].id)), "newest first");

    let ops = |q: AuditQuery| {
        let store = store.clone();
        async move { store.audit(&q).await.unwrap().into_iter().map(|e| (e.run, e.op_id)).collect::<Vec<_>>() }
    };
    assert_eq!(ops(AuditQuery { person: Some("e2".into()), ..AuditQuery::default() }).await, [(first, 1)]);
    assert_eq!(
        ops(AuditQuery { dn: Some(ada.to_uppercase()), ..AuditQuery::default() }).await,
        [(second, 1), (second, 0), (first, 0)]
    );
    assert_eq!(ops(AuditQuery { run: Some(first), ..AuditQuery::default() }).await, [(first, 1), (first, 0)]);
    assert_eq!(ops(AuditQuery { since: Some(between), ..AuditQuery::default() }).await, [(second, 1), (second, 0)]);
    assert_eq!(
        ops(AuditQuery { since: Some(begin), until: Some(between), ..AuditQuery::default() }).await,
        [(first, 1), (first, 0)]
    );
    assert_eq!(
        ops(AuditQuery { person: Some("e1".into()), limit: 2, ..AuditQuery::default() }).await,
        [(second, 1), (second, 0)]
    );
    assert!(
        ops(AuditQuery {
            person: Some("e1".into()),
            run: Some(first),
            dn: Some(grace.into()),
            ..AuditQuery::default()
        })
        .await
        .is_empty()
    );

    let update = &store.audit(&AuditQuery { run: Some(second), ..AuditQuery::default() }).await.unwrap()[1];
    assert_eq!((update.kind.as_str(), update.dn.as_str(), update.reason.as_str()), ("update", ada, "operation 0"));
    assert_eq!((update.target.as_str(), update.person.as_deref()), (TARGET, Some("e1")));
    assert_eq!(update.before, Some(json!({ "cn": ["Ada Lovelace"] })));
    assert_eq!(update.after, Some(json!({ "cn": ["Ada King"] })));
    let rename = &store.audit(&AuditQuery { run: Some(second), ..AuditQuery::default() }).await.unwrap()[0];
    assert_eq!(rename.before, Some(json!({ "dn": ada })));
    assert_eq!(rename.after, Some(json!({ "dn": "uid=ada,ou=leavers,dc=example,dc=org" })));
    let created = &store
        .audit(&AuditQuery { run: Some(first), person: Some("e2".into()), ..AuditQuery::default() })
        .await
        .unwrap()[0];
    assert_eq!(created.before, None);
    assert_eq!(
        created.after,
        Some(json!({
            "dn": grace,
            "enabled": false,
            "password": false,
            "object_id": "uuid-2",
            "attributes": { "objectClass": ["inetOrgPerson"], "cn": ["Ada Lovelace"], "mail": ["ada@example.org"] },
        }))
    );
}

#[tokio::test]
async fn an_intent_stays_until_its_outcome_lands() {
    let store = test_store().await;
    let run = store.begin_run(&start("apply", "cfg")).await.unwrap();
    let dn = "uid=ada,dc=example,dc=org";
    store.record_intents(run, &[op(0, Some("e1"), create(dn, true))]).await.unwrap();
    let entries = store.audit(&AuditQuery { run: Some(run), ..AuditQuery::default() }).await.unwrap();
    assert_eq!((entries[0].outcome.as_str(), entries[0].error.as_deref()), ("intent", None));
    assert!(store.snapshot().await.unwrap().links.is_empty());
}

#[tokio::test]
async fn run_lifecycle() {
    let store = test_store().await;
    let first = store.begin_run(&start("run", "cfg-1")).await.unwrap();
    let running = &store.runs(10).await.unwrap()[0];
    assert_eq!((running.id, running.status, running.finished_at), (first, None, None));
    assert_eq!(
        (running.command.as_str(), running.as_of, running.config_hash.as_str()),
        ("run", day("2026-03-10"), "cfg-1")
    );
    assert_eq!(
        (running.actor.as_str(), running.overrides.as_slice()),
        ("ops@example.org", ["disables".to_string()].as_slice())
    );
    assert_eq!(store.last_config_hash().await.unwrap(), None);

    let finished = RunFinish { failed: 2, ..finish(RunStatus::Partial, &[("hr", 100)]) };
    store.finish_run(first, &finished).await.unwrap();
    let record = &store.runs(10).await.unwrap()[0];
    assert_eq!((record.status, record.failed), (Some(RunStatus::Partial), 2));
    assert_eq!(record.summary, finished.summary);
    assert_eq!(record.source_counts, finished.source_counts);
    assert!(record.finished_at.unwrap() >= record.started_at);
    assert_eq!(store.last_config_hash().await.unwrap().as_deref(), Some("cfg-1"));

    for status in [RunStatus::Planned, RunStatus::Blocked, RunStatus::Failed] {
        let run = store.begin_run(&start("run", "cfg-2")).await.unwrap();
        store.finish_run(run, &finish(status, &[("hr", 5)])).await.unwrap();
    }
    assert_eq!(store.last_config_hash().await.unwrap().as_deref(), Some("cfg-1"), "only an applied run counts");
    assert_eq!(store.snapshot().await.unwrap().source_counts, BTreeMap::from([("hr".to_string(), 100)]));

    let last = store.begin_run(&start("run", "cfg-3")).await.unwrap();
    store.finish_run(last, &finish(RunStatus::Success, &[("hr", 101), ("students", 9)])).await.unwrap();
    assert_eq!(store.last_config_hash().await.unwrap().as_deref(), Some("cfg-3"));
    assert_eq!(
        store.snapshot().await.unwrap().source_counts,
        BTreeMap::from([("hr".to_string(), 101), ("students".to_string(), 9)])
    );

    let runs = store.runs(3).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].id, last);
    assert!(runs.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    assert!(
        matches!(store.finish_run(last, &finish(RunStatus::Success, &[])).await, Err(Error::RunFinished(id)) if id == last)
    );
    assert!(matches!(store.record_intents(last, &[]).await, Err(Error::RunFinished(_))));
    assert!(matches!(
        store.finish_run(RunId(999), &finish(RunStatus::Success, &[])).await,
        Err(Error::UnknownRun(RunId(999)))
    ));
    assert!(matches!(store.record_outcomes::<Operation>(RunId(999), &[]).await, Err(Error::UnknownRun(_))));
}

/// Opens the store's file behind its back, to break a row.
async fn corrupt(path: &Path, sql: &'static str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_row_is_named_not_panicked_on() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("roster.db");
    let store = Store::open(&path).await.unwrap();
    store.commit_persons(&[person("e1", Some("ada")), person("e2", Some("grace"))], as_of()).await.unwrap();
    let dn = "uid=ada,dc=example,dc=org";
    let run = apply(&store, vec![(op(0, Some("e1"), create(dn, true)), done("uuid-1", dn))]).await;

    let cases: [(&'static str, &str, &str, &str); 5] = [
        ("UPDATE persons SET records = '{\"hr\": ' WHERE key = 'e2'", "persons", "e2", "records"),
        (
            "UPDATE persons SET records = '{\"hr\": {\"hire\": 5}}', hold = NULL WHERE key = 'e2'",
            "persons",
            "e2",
            "records",
        ),
        ("UPDATE persons SET records = '{}', state = 'retired' WHERE key = 'e2'", "persons", "e2", "state"),
        ("UPDATE persons SET state = 'active', left_on = '2026-13-01' WHERE key = 'e2'", "persons", "e2", "left_on"),
        ("UPDATE persons SET left_on = NULL, hold = '[1]' WHERE key = 'e2'", "persons", "e2", "hold"),
    ];
    for (sql, table, key, column) in cases {
        corrupt(&path, sql).await;
        match store.snapshot().await {
            Err(Error::Corrupt { table: t, key: k, column: c, .. }) => {
                assert_eq!((t, k.as_str(), c), (table, key, column), "{sql}")
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
    corrupt(&path, "UPDATE persons SET hold = NULL WHERE key = 'e2'").await;
    store.snapshot().await.unwrap();

    corrupt(&path, "UPDATE links SET vals = 'not json' WHERE person = 'e1'").await;
    let error = store.snapshot().await.unwrap_err();
    assert!(error.to_string().contains("links") && error.to_string().contains("directory/e1"), "{error}");

    corrupt(&path, "UPDATE audit SET after_vals = '{' WHERE op_id = 0").await;
    let error = store.audit(&AuditQuery { run: Some(run), ..AuditQuery::default() }).await.unwrap_err();
    assert!(matches!(&error, Error::Corrupt { table: "audit", column: "after_vals", .. }), "{error:?}");

    corrupt(&path, "UPDATE runs SET summary = 'null x'").await;
    assert!(matches!(store.runs(5).await, Err(Error::Corrupt { table: "runs", column: "summary", .. })));
}

#[tokio::test]
async fn the_in_memory_store_is_one_database_for_every_caller() {
    let store = test_store().await;
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("e{i}");
                store.commit_persons(&[person(&key, Some(&format!("login{i}")))], as_of()).await.unwrap();
                store.snapshot().await.unwrap().persons.contains_key(&key)
            })
        })
        .collect();
    for writer in writers {
        assert!(writer.await.unwrap());
    }
    assert_eq!(store.snapshot().await.unwrap().persons.len(), 8);
}

fn many_persons(count: usize) -> Vec<PersonUpdate> {
    (0..count).map(|i| person(&format!("{i:07}"), Some(&format!("user{i}")))).collect()
}

/// `cargo nextest run -p roster-store --run-ignored only --no-capture batch_timing` (build with
/// `--release` for production figures).
#[tokio::test]
#[ignore = "measures; run by hand"]
async fn batch_timing() {
    let dir = TempDir::new().unwrap();
    let store = file_store(&dir).await;
    let updates = many_persons(100_000);

    let started = Instant::now();
    store.commit_persons(&updates, as_of()).await.unwrap();
    println!("commit_persons: 100,000 new persons in {:?}", started.elapsed());

    let started = Instant::now();
    store.commit_persons(&updates, as_of()).await.unwrap();
    println!("commit_persons: 100,000 updated persons in {:?}", started.elapsed());

    let ops: Vec<Operation> = (0..100_000)
        .map(|i| op(i, Some(&format!("{i:07}")), create(&format!("uid=user{i},dc=example,dc=org"), true)))
        .collect();
    let results: Vec<(Operation, Outcome)> =
        ops.iter().map(|o| (o.clone(), done(&format!("uuid-{}", o.id), o.action.dn()))).collect();
    let run = store.begin_run(&start("apply", "cfg")).await.unwrap();
    let started = Instant::now();
    store.record_intents(run, &ops).await.unwrap();
    println!("record_intents: 100,000 operations in {:?}", started.elapsed());
    let started = Instant::now();
    store.record_outcomes(run, &results).await.unwrap();
    println!("record_outcomes: 100,000 creates in {:?}", started.elapsed());

    let started = Instant::now();
    let snapshot = store.snapshot().await.unwrap();
    println!("snapshot: {} persons, {} links in {:?}", snapshot.persons.len(), snapshot.links.len(), started.elapsed());

    let started = Instant::now();
    store.finish_run(run, &finish(RunStatus::Success, &[])).await.unwrap();
    println!("finish_run: failures of 100,000 operations counted in {:?}", started.elapsed());

    let started = Instant::now();
    let verification = store.verify_audit(store.audit_key(), None).await.unwrap();
    assert!(verification.is_intact());
    println!(
        "verify_audit: {} entries, {} chain events in {:?}",
        verification.entries,
        verification.events,
        started.elapsed()
    );
}

#[tokio::test]
#[ignore = "measures; run by hand"]
async fn snapshot_timing_for_a_million_persons() {
    let dir = TempDir::new().unwrap();
    let store = file_store(&dir).await;
    for batch in many_persons(1_000_000).chunks(100_000) {
        store.commit_persons(batch, as_of()).await.unwrap();
    }
    let started = Instant::now();
    let snapshot = store.snapshot().await.unwrap();
    println!("snapshot: {} persons in {:?}", snapshot.persons.len(), started.elapsed());
}

/// The day the tests' runs are planned for.
fn as_of() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
}

/// An incremental read advances a source's watermark and keeps when its last full read landed; a
/// full read sets both; each source has its own; they survive reopening the store.
#[tokio::test]
async fn watermarks_advance_and_remember_the_last_full_read() {
    use roster_store::WatermarkUpdate;
    let dir = tempfile::tempdir().unwrap();
    let moment = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let store = file_store(&dir).await;
    assert!(store.watermarks().await.unwrap().is_empty());
    let before = Utc::now();
    let full = WatermarkUpdate { watermark: moment("2026-03-01 10:30:00"), full: true };
    store.record_watermarks(&BTreeMap::from([("hr".to_string(), full)])).await.unwrap();
    let first = store.watermarks().await.unwrap()["hr"];
    assert_eq!(first.watermark, full.watermark);
    assert!(first.full_read_at >= before - Duration::seconds(1));

    let incremental = WatermarkUpdate { watermark: moment("2026-03-02 15:00:00.123456"), full: false };
    let other = WatermarkUpdate { watermark: moment("2026-01-01 00:00:00"), full: true };
    store
        .record_watermarks(&BTreeMap::from([("hr".to_string(), incremental), ("students".to_string(), other)]))
        .await
        .unwrap();
    store.close().await;
    let store = file_store(&dir).await;
    let marks = store.watermarks().await.unwrap();
    assert_eq!(marks["hr"].watermark, incremental.watermark, "to the microsecond");
    assert_eq!(marks["hr"].full_read_at, first.full_read_at, "an incremental read is not a full one");
    assert_eq!(marks["students"].watermark, other.watermark);
}

/// Two sessions never hold the apply lock at once; it is free again when its holder's connection
/// ends. A SQLite store has no database lock and says so.
#[tokio::test]
async fn the_database_lock_is_held_by_one_session_at_a_time() {
    let store = test_store().await;
    if store.backend() == roster_store::Backend::Sqlite {
        assert!(matches!(store.try_lock(roster_store::lock::APPLY_LOCK).await, Err(Error::Unsupported(_))));
        return;
    }
    let held = store.try_lock(roster_store::lock::APPLY_LOCK).await.unwrap().expect("a free lock");
    assert!(store.try_lock(roster_store::lock::APPLY_LOCK).await.unwrap().is_none());
    drop(held);
    let mut again = None;
    for _ in 0..50 {
        again = store.try_lock(roster_store::lock::APPLY_LOCK).await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the lock stayed held after its connection was dropped");
}
