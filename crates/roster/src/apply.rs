//! Applying a plan: the safety check that may block it, then the operations, many in flight,
//! each intent recorded before it is sent and each outcome as it lands. See `ARCHITECTURE.md`,
//! "Run anatomy", step 4.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use roster_connectors::target::{ErrorKind, LdapTarget};
use roster_core::plan::{Action, Operation, Plan};
use roster_store::{Outcome, RunFinish, RunStatus};

use crate::cli::Overrides;
use crate::exit;
use crate::run::{Fresh, run_start};

/// How many operations are recorded as intents, sent, and recorded as outcomes at a time.
const BATCH: usize = 200;
/// Attempts for an operation that fails with a transient error (busy, unavailable).
const ATTEMPTS: u32 = 3;
/// Consecutive operations failing to reach a target after which its remaining operations in the
/// run are not attempted.
const UNREACHABLE_AFTER: u32 = 3;

/// The safety limits the plan exceeds that the operator did not allow.
fn unallowed<'a>(plan: &'a Plan, overrides: &Overrides) -> Vec<&'a roster_core::plan::SafetyViolation> {
    let all = overrides.allow.iter().any(|a| a == "all");
    plan.safety
        .iter()
        .filter(|v| !all && !overrides.allow.iter().any(|a| v.limit == *a || v.limit.starts_with(&format!("{a}("))))
        .collect()
}

pub(crate) async fn apply_plan(fresh: Fresh, overrides: &Overrides, command: &str) -> Result<u8> {
    let blocking = unallowed(&fresh.plan, overrides);
    if !blocking.is_empty() {
        eprintln!("BLOCKED by safety limits: nothing was applied.");
        for v in &blocking {
            eprintln!("  {}", v.message);
        }
        let names: BTreeSet<&str> = blocking.iter().map(|v| v.limit.split('(').next().unwrap_or(&v.limit)).collect();
        eprintln!(
            "Review the plan (`roster plan`), then apply with `--allow {}` if it is right.",
            names.into_iter().collect::<Vec<_>>().join(",")
        );
        let run = fresh.store.begin_run(&run_start(command, &fresh, vec![], None)).await?;
        fresh
            .store
            .finish_run(
                run,
                &RunFinish {
                    status: RunStatus::Blocked,
                    summary: fresh.plan.summary.clone(),
                    source_counts: BTreeMap::new(),
                    failed: 0,
                },
            )
            .await?;
        return Ok(exit::BLOCKED);
    }
    let used_overrides: Vec<String> = fresh.plan.safety.iter().map(|v| format!("{}: {}", v.limit, v.message)).collect();
    let plan_json = serde_json::to_string(&fresh.plan).ok();
    let store = fresh.store.clone();
    let run = store.begin_run(&run_start(command, &fresh, used_overrides, plan_json)).await?;
    let result = execute(&fresh, run).await;
    let (done, failed, skipped) = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = store
                .finish_run(
                    run,
                    &RunFinish {
                        status: RunStatus::Failed,
                        summary: fresh.plan.summary.clone(),
                        source_counts: BTreeMap::new(),
                        failed: 0,
                    },
                )
                .await;
            return Err(e);
        }
    };
    let status = if failed + skipped == 0 { RunStatus::Success } else { RunStatus::Partial };
    store
        .finish_run(
            run,
            &RunFinish {
                status,
                summary: fresh.plan.summary.clone(),
                source_counts: fresh.plan.source_counts.clone(),
                failed: failed + skipped,
            },
        )
        .await?;
    let s = &fresh.plan.summary;
    println!(
        "run {run} {status}: {done} operation(s) applied, {failed} failed, {skipped} skipped; {} joiner(s), {} mover(s), {} leaver(s), {} rehire(s); {} quarantined row(s); {} notice(s)",
        s.joiners, s.movers, s.leavers, s.rehires, s.quarantined_rows, s.notices
    );
    print_findings(&fresh.plan);
    for t in fresh.targets {
        let _ = t.close().await;
    }
    Ok(if status == RunStatus::Success { exit::SUCCESS } else { exit::PARTIAL })
}

fn progress(total: usize) -> ProgressBar {
    if total < 50 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} operations ({per_sec}, {eta} left)") {
        bar.set_style(style);
    }
    bar
}

/// Applies the operations in order, in batches: intents recorded, operations sent, outcomes
/// recorded. An operation whose dependency did not land is skipped. Returns (done, failed, skipped).
async fn execute(fresh: &Fresh, run: roster_store::RunId) -> Result<(u64, u64, u64)> {
    let plan = &fresh.plan;
    let by_name: BTreeMap<&str, &LdapTarget> =
        fresh.loaded.settings.targets.iter().map(|r| r.name()).zip(fresh.targets.iter()).collect();
    let mut landed: Vec<bool> = vec![false; plan.operations.len()];
    let mut unreachable: BTreeMap<String, u32> = BTreeMap::new();
    let mut troubled_persons: BTreeSet<String> = BTreeSet::new();
    let (mut done, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    let bar = progress(plan.operations.len());
    let failpoint = Failpoint::from_env();
    for batch in plan.operations.chunks(BATCH) {
        fresh.store.record_intents(run, batch).await.context("recording intents in the store")?;
        let mut results: Vec<(Operation, Outcome)> = Vec::with_capacity(batch.len());
        for planned in batch {
            Failpoint::BeforeSend(planned.id).abort_if(failpoint);
            let narrowed = without_missing_members(plan, &landed, planned);
            let op = narrowed.as_ref().unwrap_or(planned);
            let outcome = match op.depends_on.iter().find(|d| !landed.get(**d).copied().unwrap_or(false)) {
                Some(dep) => {
                    Outcome::Skipped { reason: format!("operation #{dep}, which this one depends on, did not land") }
                }
                None => match by_name.get(op.target.as_str()) {
                    None => Outcome::Skipped { reason: format!("target {} is not in the configuration", op.target) },
                    Some(_) if unreachable.get(op.target.as_str()).is_some_and(|n| *n >= UNREACHABLE_AFTER) => {
                        Outcome::Failed {
                            error: format!(
                                "target {} stopped answering in this run: not attempted (the next run retries it)",
                                op.target
                            ),
                            unknown: false,
                        }
                    }
                    Some(target) => {
                        let (outcome, kind) = match &op.action {
                            Action::SetPassword { .. } => (set_password(fresh, target, op).await, None),
                            _ => apply_with_retry(target, op).await,
                        };
                        // A target whose connection keeps failing is given up on for this run
                        // instead of costing every remaining operation its full retries.
                        let count = unreachable.entry(op.target.clone()).or_insert(0);
                        if matches!(kind, Some(ErrorKind::Connect | ErrorKind::Transient)) {
                            *count += 1;
                        } else {
                            *count = 0;
                        }
                        outcome
                    }
                },
            };
            Failpoint::AfterSend(op.id).abort_if(failpoint);
            match &outcome {
                Outcome::Done(_) => {
                    done += 1;
                    landed[op.id] = true;
                }
                Outcome::Failed { error, .. } => {
                    failed += 1;
                    eprintln!("failed: #{} {} {}: {error}", op.id, op.action.kind(), op.action.dn());
                }
                Outcome::Skipped { reason } => {
                    skipped += 1;
                    eprintln!("skipped: #{} {} {}: {reason}", op.id, op.action.kind(), op.action.dn());
                }
            }
            if !matches!(outcome, Outcome::Done(_))
                && let Some(p) = &op.person
            {
                troubled_persons.insert(p.clone());
            }
            results.push((op.clone(), outcome));
            bar.inc(1);
        }
        fresh.store.record_outcomes(run, &results).await.context("recording outcomes in the store")?;
        for op in batch {
            Failpoint::AfterOutcome(op.id).abort_if(failpoint);
        }
    }
    bar.finish_and_clear();
    let updates: Vec<_> = plan.person_updates.iter().filter(|u| !troubled_persons.contains(&u.key)).cloned().collect();
    fresh.store.commit_persons(&updates, plan.as_of).await.context("recording persons in the store")?;
    Ok((done, failed, skipped))
}

// --- Test hook: failpoints. Inert unless ROSTER_FAILPOINT is set. ---

/// A test hook for the crash tests (`crates/roster/tests/crash.rs`), not a feature: when the
/// environment variable `ROSTER_FAILPOINT` holds `KIND:N`, the apply aborts the process at that
/// point with [`std::process::abort`], which, like SIGKILL, runs no destructor and flushes nothing.
/// Read once at the start of an apply; does nothing unless set.
///
/// - `before_send:N`: the intents of op N's batch are recorded, op N is about to be sent (the ops
///   before it in the batch were sent, their outcomes not recorded);
/// - `after_send:N`: op N came back from the target, its outcome is not recorded;
/// - `after_outcome:N`: the outcomes of op N's batch are recorded (for the last batch, the persons
///   are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failpoint {
    BeforeSend(usize),
    AfterSend(usize),
    AfterOutcome(usize),
}

impl Failpoint {
    const VARIABLE: &str = "ROSTER_FAILPOINT";

    fn from_env() -> Option<Failpoint> {
        let value = std::env::var(Self::VARIABLE).ok()?;
        let parsed = value.split_once(':').and_then(|(kind, op)| {
            let op = op.parse().ok()?;
            match kind {
                "before_send" => Some(Failpoint::BeforeSend(op)),
                "after_send" => Some(Failpoint::AfterSend(op)),
                "after_outcome" => Some(Failpoint::AfterOutcome(op)),
                _ => None,
            }
        });
        if parsed.is_none() {
            tracing::warn!(
                "{}={value:?} is not before_send:N, after_send:N or after_outcome:N; ignored",
                Self::VARIABLE
            );
        }
        parsed
    }

    fn abort_if(self, armed: Option<Failpoint>) {
        if armed == Some(self) {
            eprintln!("{}: aborting at {self:?}", Self::VARIABLE);
            std::process::abort();
        }
    }
}

// --- End of the test hook. ---

/// Makes a new password, sets it, and hands it to the delivery. A password that was set but not
/// delivered is a failed operation: the account's link keeps its password pending, and the next run
/// sets a new one rather than ever storing this one.
async fn set_password(fresh: &Fresh, target: &LdapTarget, op: &Operation) -> Outcome {
    let Some(config) =
        fresh.loaded.settings.targets.iter().find(|t| t.name() == op.target).and_then(|t| t.config.password.as_ref())
    else {
        return Outcome::Failed {
            error: format!("target {} has no [target.password] settings", op.target),
            unknown: false,
        };
    };
    let password = match crate::password::generate(config.length) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed { error: format!("{e:#}"), unknown: false },
    };
    let applied = match target.set_password(op, &password).await {
        Ok(applied) => applied,
        Err(e) => return Outcome::Failed { unknown: e.kind == ErrorKind::Unknown, error: e.to_string() },
    };
    let person = op.person.as_deref().unwrap_or_default();
    let login = fresh
        .plan
        .person_updates
        .iter()
        .find(|u| u.key == person)
        .and_then(|u| u.login.clone())
        .unwrap_or_else(|| person.to_string());
    let who = crate::password::Recipient { person, login: &login, dn: op.action.dn() };
    match crate::password::deliver(&config.delivery, &who, &password, &fresh.loaded.config_dir).await {
        Ok(()) => Outcome::Done(applied),
        Err(e) => Outcome::Failed {
            error: format!("the password was set but not delivered ({e:#}); the next run sets a new one"),
            unknown: false,
        },
    }
}

/// A new group whose members' accounts did not all land is still made, with the members that
/// exist: one refused account must not keep the group from everyone else (the next run adds the
/// missing member once their account exists). None when the operation stands as planned.
fn without_missing_members(plan: &Plan, landed: &[bool], op: &Operation) -> Option<Operation> {
    let Action::CreateGroup { dn, members, attributes } = &op.action else { return None };
    if op.depends_on.iter().all(|d| landed.get(*d).copied().unwrap_or(false)) {
        return None;
    }
    // The operation that makes a member's DN exist in this run: its create, adoption or rename.
    let made_by = |member: &str| {
        let member = roster_core::dn::normalize_dn(member);
        plan.operations[..op.id].iter().rev().find(|o| match &o.action {
            Action::Create { dn, .. } | Action::Adopt { dn, .. } => roster_core::dn::normalize_dn(dn) == member,
            Action::Rename { new_dn, .. } => roster_core::dn::normalize_dn(new_dn) == member,
            _ => false,
        })
    };
    let kept: Vec<String> = members
        .iter()
        .filter(|m| made_by(m).is_none_or(|o| landed.get(o.id).copied().unwrap_or(false)))
        .cloned()
        .collect();
    let dropped: Vec<usize> =
        members.iter().filter_map(|m| made_by(m)).map(|o| o.id).filter(|id| !landed[*id]).collect();
    if kept.is_empty() {
        return None;
    }
    let mut narrowed = op.clone();
    narrowed.action = Action::CreateGroup { dn: dn.clone(), members: kept, attributes: attributes.clone() };
    narrowed.depends_on.retain(|d| !dropped.contains(d));
    narrowed.reason = format!("{} (without the members whose accounts did not land)", op.reason);
    Some(narrowed)
}

/// The outcome, and the kind of error it ended with (None on success).
async fn apply_with_retry(target: &LdapTarget, op: &Operation) -> (Outcome, Option<ErrorKind>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match target.apply(op).await {
            Ok(applied) => return (Outcome::Done(applied), None),
            Err(e) if e.kind == ErrorKind::Transient && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(250 * 4u64.pow(attempt - 1))).await;
            }
            Err(e) if e.kind == ErrorKind::Conflict => {
                return (Outcome::Skipped { reason: format!("conflict: {e}") }, Some(e.kind));
            }
            Err(e) => {
                return (Outcome::Failed { unknown: e.kind == ErrorKind::Unknown, error: e.to_string() }, Some(e.kind));
            }
        }
    }
}

/// The quarantined rows and notices, which a run's summary lists (a plan shows them anyway).
fn print_findings(plan: &Plan) {
    if !plan.quarantined.is_empty() {
        println!("quarantined rows (their persons are held as they were):");
        for q in &plan.quarantined {
            println!("  {}: {}", q.location, q.reason);
        }
    }
    if !plan.notices.is_empty() {
        println!("notices:");
        for n in &plan.notices {
            let who = n.person.as_deref().map(|p| format!("{p}: ")).unwrap_or_default();
            println!("  {who}{}", n.message);
        }
    }
}
