//! Applying a plan: the safety check that may block it, then the operations, many in flight,
//! each intent recorded before it is sent and each outcome as it lands. See `ARCHITECTURE.md`,
//! "Run anatomy", step 4.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use roster_connectors::target::{AnyTarget, ErrorKind, Target};
use roster_core::config::PasswordDelivery;
use roster_core::dn::normalize_dn;
use roster_core::plan::{Action, Operation, Plan};
use roster_store::{Outcome, RunFinish, RunStatus};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;

use crate::cli::Overrides;
use crate::exit;
use crate::run::{Fresh, run_start};

/// How many intents are recorded at a time (ahead of sending), and how many outcomes.
const BATCH: usize = 200;
/// The largest part of the plan's JSON the store keeps in one write during an apply: small enough
/// that an intent due meanwhile waits a few milliseconds.
const PLAN_PART_BYTES: usize = 4 << 20;
/// Persons' rows per store write, once every operation with a person has finished.
const PERSONS_BATCH: usize = 5_000;
/// The longest a landed operation's outcome waits to be recorded while others keep landing.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Attempts for an operation that fails with a transient error (busy, unavailable).
const ATTEMPTS: u32 = 3;
/// Consecutive operations failing to reach a target after which its remaining operations in the
/// run are not attempted.
const UNREACHABLE_AFTER: u32 = 3;
/// A write of more member values than this (a group created with its members, or one request of
/// membership changes) is large: a target has one large write in flight at a time, beside its
/// small ones. A directory writes one entry at a time but prepares the requests it holds side by
/// side (slapd normalizes every member value of each, on its worker threads): the 150 largest
/// groups of a million-account first load, sent at once, shared slapd's two cores for minutes,
/// and none was answered within the timeout. One at a time, each takes what it alone takes
/// (a group of 191,000 members: 11 s), while the small writes beside it keep the directory's
/// answers coming (see the LDAP session's `Heard`).
const LARGE_WRITE: usize = 1_000;

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
        let run = fresh.store.begin_run(&run_start(command, &fresh, vec![])).await?;
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
        let held = if overrides.hold_if_blocked {
            let id = fresh.store.hold_plan(run, &crate::run::actor(), &fresh.plan, None).await?;
            eprintln!(
                "Held as plan {id}, waiting for an approver: `roster plans show {id}`, `roster plans approve {id} --reason ...`."
            );
            Some(id)
        } else {
            None
        };
        let violations = blocking.iter().map(|v| v.message.clone()).collect();
        crate::notify::plan_held(&fresh.loaded, &fresh.store, run, violations, held).await;
        return Ok(exit::BLOCKED);
    }
    let used_overrides: Vec<String> = fresh.plan.safety.iter().map(|v| format!("{}: {}", v.limit, v.message)).collect();
    let store = fresh.store.clone();
    // The plan's JSON comes to the run record during the apply (see `PlanRecord`).
    let run = store.begin_run(&run_start(command, &fresh, used_overrides)).await?;
    let result = execute_beside_json(&fresh, run).await;
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
            crate::notify::after_run(&fresh, run, 0, Some(format!("{e:#}"))).await;
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
    // Accounts changed outside roster that this run's full read found are in the plan it applied.
    store
        .record_target_full_reads(&fresh.read_in_full, &fresh.loaded.settings.hash)
        .await
        .context("recording the targets' full reads")?;
    // Only when every operation landed: a person whose operations failed keeps their old records in
    // the store, so their changed row must come back in the next incremental read.
    if status == RunStatus::Success {
        store.record_watermarks(&fresh.watermarks).await.context("recording the sources' watermarks")?;
    }
    crate::notify::after_run(&fresh, run, failed + skipped, None).await;
    let s = &fresh.plan.summary;
    println!(
        "run {run} {status}: {done} operation(s) applied, {failed} failed, {skipped} skipped; {} joiner(s), {} mover(s), {} leaver(s), {} rehire(s); {} person(s), {} evaluated; {} quarantined row(s); {} notice(s); targets read {} ({} entries), {} stored person(s) read ({} with their records)",
        s.joiners,
        s.movers,
        s.leavers,
        s.rehires,
        s.persons,
        s.evaluated,
        s.quarantined_rows,
        s.notices,
        if s.partial_read { "in part" } else { "in full" },
        s.entries_read,
        s.stored_persons,
        s.stored_records
    );
    print_findings(&fresh.plan);
    for t in fresh.targets {
        let _ = t.close().await;
    }
    // The process ends after the run (as after `roster plan`): a first load's plan of 100,000
    // accounts took a second to free piece by piece. A plan is plain data: nothing to release.
    std::mem::forget(fresh.plan);
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

/// [`execute`], with the plan's JSON for the run record made on a thread of its own meanwhile (a
/// first load of 100,000 accounts has a plan of some 250 MB, seconds of one core before the first
/// operation could go when it was made first). The apply's futures run on this thread
/// ([`tokio::task::block_in_place`]: the runtime's other tasks, such as the targets' connections,
/// go on on its other workers), so the JSON's thread can borrow the plan. On a runtime of one
/// thread the JSON is made first.
async fn execute_beside_json(fresh: &Fresh, run: roster_store::RunId) -> Result<(u64, u64, u64)> {
    if Handle::current().runtime_flavor() != RuntimeFlavor::MultiThread {
        let (sender, receiver) = oneshot::channel();
        let _ = sender.send(serde_json::to_string(&fresh.plan));
        return execute(fresh, run, receiver).await;
    }
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let (sender, receiver) = oneshot::channel();
            let plan = &fresh.plan;
            scope.spawn(move || {
                let _ = sender.send(serde_json::to_string(plan));
            });
            Handle::current().block_on(execute(fresh, run, receiver))
        })
    })
}

/// Applies the operations, many in flight (up to each target's `concurrency`), each waiting only
/// for what it must (see [`Order`]). The store writes while the operations go on, one write at a
/// time (see [`Writing`]): intents in batches ahead of the operations, an operation sent only once
/// its intent is committed; outcomes as they land, in batches (at most [`BATCH`] or
/// [`FLUSH_AFTER`] old), and the plan's JSON, from `json`, when nothing else is due. An operation
/// whose dependency did not land is skipped. Returns (done, failed, skipped).
async fn execute(fresh: &Fresh, run: roster_store::RunId, json: PlanJson) -> Result<(u64, u64, u64)> {
    let plan = &fresh.plan;
    let ops = &plan.operations;
    if let Some((at, op)) = ops.iter().enumerate().find(|(at, op)| op.id != *at) {
        bail!(
            "the plan's operation at position {at} has id {}: operations must be numbered 0, 1, 2, ... in order",
            op.id
        );
    }
    let targets: BTreeMap<&str, (&AnyTarget, usize)> = fresh
        .loaded
        .settings
        .targets
        .iter()
        .zip(fresh.targets.iter())
        .map(|(rules, target)| (rules.name(), (target, rules.config.concurrency.max(1))))
        .collect();
    let mut order = Order::of(plan);
    let mut state = Landing::new(ops.len(), progress(ops.len()), Failpoint::from_env());
    // Ready operations per target; operations in flight per target (a batch counts as one).
    let mut ready: BTreeMap<&str, Ready> = BTreeMap::new();
    let mut in_flight: BTreeMap<&str, usize> = BTreeMap::new();
    // Large writes in flight per target (see [`LARGE_WRITE`]).
    let mut large_in_flight: BTreeMap<&str, usize> = BTreeMap::new();
    let large_ok =
        |large_in_flight: &BTreeMap<&str, usize>, target: &str| large_in_flight.get(target).copied().unwrap_or(0) == 0;
    let mut running = FuturesUnordered::new();
    let (mut released_upto, mut finished) = (0, 0);
    let mut writing = Writing::new(fresh, run, json);
    loop {
        // A phase starts once the one before it has finished.
        if finished == released_upto && released_upto < ops.len() {
            let start = released_upto;
            released_upto = order.phase_end(start);
            for op in ops[start..released_upto].iter().filter(|op| order.waits[op.id] == 0) {
                ready.entry(&*op.target).or_default().insert(op.id, order.membership[op.id]);
            }
        }
        let mut landed_now = Vec::new();
        for (target, queue) in ready.iter_mut() {
            let (limit, batch, members) = targets.get(target).map_or((1, 1, 1), |(connection, limit)| {
                (*limit, connection.batch_limit().max(1), connection.members_per_request().max(1))
            });
            while in_flight.get(target).copied().unwrap_or(0) < limit {
                // Only operations whose intents are committed go out.
                let together = queue.take_batch(
                    ops,
                    &order,
                    writing.recorded(),
                    batch,
                    members,
                    large_ok(&large_in_flight, target),
                );
                if together.is_empty() {
                    break;
                }
                let large = is_large(ops, &together);
                let mut to_send = Vec::new();
                for id in together {
                    Failpoint::BeforeSend(id).abort_if(state.failpoint);
                    let planned = &ops[id];
                    let narrowed = without_missing_members(plan, &state.landed, planned)
                        .or_else(|| without_missing_references(plan, &state.landed, planned));
                    // Sent as planned unless narrowed: the plan's own operation, not a copy.
                    let op = narrowed.map_or(Cow::Borrowed(planned), Cow::Owned);
                    match state.not_sent(&op, targets.contains_key(&*op.target)) {
                        None => to_send.push(op),
                        Some(outcome) => landed_now.push(Sent { op, outcome, kind: None }),
                    }
                }
                if let (false, Some((connection, _))) = (to_send.is_empty(), targets.get(target)) {
                    *in_flight.entry(target).or_default() += 1;
                    if large {
                        *large_in_flight.entry(target).or_default() += 1;
                    }
                    running
                        .push(send(fresh, run, connection, to_send).map(move |(target, sent)| (target, sent, large)));
                }
            }
            // The first operation that may go next: a large write waiting for another to land
            // must not hold back the intents of the small ones behind it.
            if let Some(id) = queue.first_that_may_go(ops, large_ok(&large_in_flight, target)) {
                writing.intents_needed(id);
            }
        }
        ready.retain(|_, queue| !queue.is_empty());
        writing.start_next(&mut state, finished == ops.len());
        if landed_now.is_empty() {
            tokio::select! {
                Some((target, sent, large)) = running.next(), if !running.is_empty() => {
                    if let Some(n) = in_flight.get_mut(target) {
                        *n = n.saturating_sub(1);
                    }
                    if let (true, Some(n)) = (large, large_in_flight.get_mut(target)) {
                        *n = n.saturating_sub(1);
                    }
                    for sent in sent {
                        state.count_reach(&sent);
                        landed_now.push(sent);
                    }
                }
                wrote = writing.finished(), if writing.busy() => {
                    writing.wrote(wrote?, &state);
                }
                else => {
                    if finished == ops.len() && writing.all_written() {
                        break;
                    }
                    bail!("the apply stopped with {} operation(s) never ready: a bug in roster", ops.len() - finished)
                }
            }
        }
        for sent in landed_now {
            let id = sent.op.id;
            state.land(sent);
            finished += 1;
            for next in order.finish(id) {
                ready.entry(&*ops[next].target).or_default().insert(next, order.membership[next]);
            }
        }
    }
    state.bar.finish_and_clear();
    if state.unfinished_groups > 0 {
        eprintln!(
            "{} group create(s) did not land, or only in part: a daily run does not finish them (it evaluates \
             only the persons whose records changed, and their members are not among them); `roster reconcile \
             --apply` does",
            state.unfinished_groups
        );
    }
    Ok(state.counts)
}

/// What the store has written of an apply, and the one write it is doing, if any: SQLite has one
/// writer, so intents and outcomes take turns, while the operations go on. Intents go first when
/// an operation waits for its own (or the ones recorded are fewer than [`BATCH`] ahead of the
/// operations sent), else outcomes when [`BATCH`] are waiting, the oldest is [`FLUSH_AFTER`] old,
/// or every operation has finished. The intents of an operation are committed before it is sent
/// (the caller asks [`Writing::recorded`]): the crash-safety contract of the apply. When neither is
/// due: the persons whose operations all landed (see [`Persons`]), and the plan's JSON for the run
/// record (see [`PlanRecord`]), all before the apply ends.
struct Writing<'a> {
    fresh: &'a Fresh,
    run: roster_store::RunId,
    /// The operations before this one have their intents committed.
    intents_upto: usize,
    /// The highest operation that asked for its intent, plus one.
    intents_wanted: usize,
    persons: Persons<'a>,
    plan: PlanRecord,
    write: Option<std::pin::Pin<Box<dyn Future<Output = Result<Wrote>> + 'a>>>,
}

/// The persons' new rows (the plan's `person_updates`), each written once every operation of that
/// person has landed and its outcome is committed; a person with an operation that did not land
/// is not written, so the next run takes them up again. They are written once no operation of any
/// person is left (in a first load: beside the groups, while the directory writes them), or at the
/// end. A process that dies meanwhile leaves some persons written: those a finished run would
/// have written had its remaining operations failed.
struct Persons<'a> {
    /// Per person, their operations whose outcomes are not committed yet.
    waiting: HashMap<&'a str, usize>,
    /// Operations of any person whose outcomes are not committed yet.
    left: usize,
    /// Per person, their updates (positions in the plan's `person_updates`), in plan order.
    updates: HashMap<&'a str, Vec<usize>>,
    /// Updates to write, a person's together and in plan order.
    ready: Vec<usize>,
}

impl<'a> Persons<'a> {
    fn of(plan: &'a Plan) -> Persons<'a> {
        let mut waiting: HashMap<&str, usize> = HashMap::new();
        let mut left = 0;
        for person in plan.operations.iter().filter_map(|op| op.person.as_deref()) {
            *waiting.entry(person).or_default() += 1;
            left += 1;
        }
        let mut updates: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut ready = Vec::new();
        for (at, update) in plan.person_updates.iter().enumerate() {
            if waiting.contains_key(update.key.as_str()) {
                updates.entry(&update.key).or_default().push(at);
            } else {
                ready.push(at);
            }
        }
        Persons { waiting, left, updates, ready }
    }

    /// The outcome of `op` is committed: its person is ready once it was their last, unless one of
    /// theirs did not land (`troubled`).
    fn recorded(&mut self, op: &'a Operation, troubled: &BTreeSet<String>) {
        let Some(person) = op.person.as_deref() else { return };
        self.left = self.left.saturating_sub(1);
        let Some(waiting) = self.waiting.get_mut(person) else { return };
        *waiting = waiting.saturating_sub(1);
        if *waiting == 0 {
            self.waiting.remove(person);
            if let Some(updates) = self.updates.remove(person)
                && !troubled.contains(person)
            {
                self.ready.extend(updates);
            }
        }
    }

    /// The next updates to write, if they are due: at most [`PERSONS_BATCH`] (a person's never cut
    /// apart), once no operation of any person is left.
    fn take(&mut self, plan: &Plan) -> Vec<usize> {
        if self.ready.is_empty() || self.left > 0 {
            return Vec::new();
        }
        let mut upto = self.ready.len().min(PERSONS_BATCH);
        let key = |at: usize| plan.person_updates[self.ready[at]].key.as_str();
        while upto < self.ready.len() && key(upto) == key(upto - 1) {
            upto += 1;
        }
        self.ready.drain(..upto).collect()
    }
}

/// The plan's JSON, as its thread sends it.
type PlanJson = oneshot::Receiver<serde_json::Result<String>>;

/// Where the plan's JSON is on its way into the run record. The run starts without it, so the
/// first intents need not wait for it; the store keeps its parts after the first one write at a
/// time ([`roster_store::Store::keep_run_plan_part`], [`PLAN_PART_BYTES`] each), then the first
/// part with their count ([`roster_store::Store::record_run_plan`]), which is when the run shows
/// its plan. A process that dies before that leaves a run without a plan (`roster history` and
/// the console show none, as for a plan-only run) and some parts that nothing reads; the intents
/// and outcomes, which recovery reads, are not in it.
enum PlanRecord {
    /// Its thread is making it.
    Making(PlanJson),
    /// Nothing else to do: the apply waits for it.
    Waiting,
    /// Made: its parts' ends in the text, and the next part to keep (0, the first, goes last).
    Keeping { text: Arc<String>, ends: Vec<usize>, next: usize },
    /// In the run record (or it could not be made, which the log said).
    Recorded,
}

/// A write of the store that finished.
enum Wrote {
    /// The intents of the operations before this one are committed.
    Intents(usize),
    /// The outcomes of these operations are committed.
    Outcomes(Vec<usize>),
    /// A batch of persons is committed.
    Persons,
    /// The plan's JSON was made.
    PlanMade(serde_json::Result<String>),
    /// This part of the plan is kept (0: the whole plan is in the run record).
    PlanPart(usize),
}

impl<'a> Writing<'a> {
    fn new(fresh: &'a Fresh, run: roster_store::RunId, json: PlanJson) -> Writing<'a> {
        Writing {
            fresh,
            run,
            intents_upto: 0,
            intents_wanted: 0,
            persons: Persons::of(&fresh.plan),
            plan: PlanRecord::Making(json),
            write: None,
        }
    }

    /// The persons to write are written, and the run record holds the plan (called once every
    /// operation has finished and its outcome is committed).
    fn all_written(&self) -> bool {
        self.persons.ready.is_empty() && matches!(self.plan, PlanRecord::Recorded)
    }

    /// The operations before this one have their intents committed.
    fn recorded(&self) -> usize {
        self.intents_upto
    }

    /// Operation `id` is ready: its intent (and the next ones) are to be recorded.
    fn intents_needed(&mut self, id: usize) {
        self.intents_wanted = self.intents_wanted.max(id + 1);
    }

    fn busy(&self) -> bool {
        self.write.is_some()
    }

    /// Starts the next write, if one is due and none is going on.
    fn start_next(&mut self, state: &mut Landing<'a>, all_finished: bool) {
        if self.write.is_some() {
            return;
        }
        let (fresh, run) = (self.fresh, self.run);
        let ops = &fresh.plan.operations;
        if self.intents_upto < ops.len() && self.intents_wanted + BATCH > self.intents_upto {
            let from = self.intents_upto;
            let upto = (from + BATCH).max(self.intents_wanted).min(ops.len());
            self.write = Some(Box::pin(async move {
                fresh.store.record_intents(run, &ops[from..upto]).await.context("recording intents in the store")?;
                Ok(Wrote::Intents(upto))
            }));
        } else if !state.unrecorded.is_empty()
            && (state.unrecorded.len() >= BATCH
                || all_finished
                || state.oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER))
        {
            let outcomes = std::mem::take(&mut state.unrecorded);
            state.oldest = None;
            self.write = Some(Box::pin(async move {
                fresh.store.record_outcomes(run, &outcomes).await.context("recording outcomes in the store")?;
                Ok(Wrote::Outcomes(outcomes.into_iter().map(|(op, _)| op.id).collect()))
            }));
        } else {
            let updates = self.persons.take(&fresh.plan);
            if updates.is_empty() {
                self.start_plan(state, all_finished);
                return;
            }
            let updates: Vec<_> = updates.into_iter().map(|at| fresh.plan.person_updates[at].clone()).collect();
            self.write = Some(Box::pin(async move {
                fresh
                    .store
                    .commit_persons(&updates, fresh.plan.as_of)
                    .await
                    .context("recording persons in the store")?;
                Ok(Wrote::Persons)
            }));
        }
    }

    /// Starts the next step of the plan's way into the run record, if there is one to take now.
    fn start_plan(&mut self, state: &Landing, all_finished: bool) {
        let run = self.run;
        let store = &self.fresh.store;
        if let PlanRecord::Making(json) = &mut self.plan {
            match json.try_recv() {
                Ok(made) => self.plan = keeping(made),
                Err(oneshot::error::TryRecvError::Empty) if !all_finished => return,
                Err(oneshot::error::TryRecvError::Empty) => {
                    let PlanRecord::Making(json) = std::mem::replace(&mut self.plan, PlanRecord::Waiting) else {
                        return;
                    };
                    self.write = Some(Box::pin(async move {
                        let made = json.await.context("making the plan's JSON for the run record")?;
                        Ok(Wrote::PlanMade(made))
                    }));
                    return;
                }
                Err(oneshot::error::TryRecvError::Closed) => {
                    tracing::warn!("the plan's JSON was not made: the run records no plan");
                    self.plan = PlanRecord::Recorded;
                }
            }
        }
        let PlanRecord::Keeping { text, ends, next } = &mut self.plan else { return };
        let (text, part) = (Arc::clone(text), *next);
        let start = |part: usize| if part == 0 { 0 } else { ends[part - 1] };
        let range = start(part)..ends[part];
        let parts = ends.len() - 1;
        *next = if part == parts { 0 } else { part + 1 };
        Failpoint::PlanPart(part).abort_if(state.failpoint);
        self.write = Some(Box::pin(async move {
            if part == 0 {
                store.record_run_plan(run, &text[range], parts).await
            } else {
                store.keep_run_plan_part(run, part, &text[range]).await
            }
            .context("recording the plan in the store")?;
            Ok(Wrote::PlanPart(part))
        }));
    }

    /// Waits for the write going on.
    async fn finished(&mut self) -> Result<Wrote> {
        match self.write.as_mut() {
            Some(write) => {
                let wrote = write.await;
                self.write = None;
                wrote
            }
            None => std::future::pending().await,
        }
    }

    fn wrote(&mut self, wrote: Wrote, state: &Landing) {
        match wrote {
            Wrote::Intents(upto) => self.intents_upto = upto,
            Wrote::Outcomes(ids) => {
                for &id in &ids {
                    Failpoint::AfterOutcome(id).abort_if(state.failpoint);
                }
                for id in ids {
                    self.persons.recorded(&self.fresh.plan.operations[id], &state.troubled_persons);
                }
            }
            Wrote::Persons => {}
            Wrote::PlanMade(made) => self.plan = keeping(made),
            Wrote::PlanPart(0) => self.plan = PlanRecord::Recorded,
            Wrote::PlanPart(_) => {}
        }
    }
}

/// The plan's JSON, made, as parts to keep: those after the first, then the first.
fn keeping(made: serde_json::Result<String>) -> PlanRecord {
    match made {
        Ok(text) => {
            let mut ends = Vec::new();
            let mut end = 0;
            for part in roster_store::split_plan(&text, PLAN_PART_BYTES) {
                end += part.len();
                ends.push(end);
            }
            let next = if ends.len() > 1 { 1 } else { 0 };
            PlanRecord::Keeping { text: Arc::new(text), ends, next }
        }
        Err(e) => {
            tracing::warn!("the plan's JSON was not made ({e}): the run records no plan");
            PlanRecord::Recorded
        }
    }
}

/// An operation that came back (or was decided without being sent), with the kind of error it
/// ended with.
struct Sent<'p> {
    op: Cow<'p, Operation>,
    outcome: Outcome,
    kind: Option<ErrorKind>,
}

/// Sends one operation, or a batch of independent ones in as few requests as the target can
/// (see [`Target::apply_batch`]); an operation of a batch that failed in a way worth retrying is
/// retried on its own. Returns the target's name with what came back.
async fn send<'a, 'p>(
    fresh: &Fresh,
    run: roster_store::RunId,
    target: &'a AnyTarget,
    mut ops: Vec<Cow<'p, Operation>>,
) -> (&'a str, Vec<Sent<'p>>) {
    let name = target.name();
    if ops.len() == 1
        && let Some(op) = ops.pop()
    {
        let (outcome, kind) = match &op.action {
            Action::SetPassword { .. } => (set_password(fresh, run, target, &op).await, None),
            _ => apply_with_retry(target, &op).await,
        };
        return (name, vec![Sent { op, outcome, kind }]);
    }
    let ops: Vec<Operation> = ops.into_iter().map(Cow::into_owned).collect();
    let results = target.apply_batch(&ops).await;
    let mut sent = Vec::with_capacity(ops.len());
    for (op, result) in ops.into_iter().map(Cow::Owned).zip(results) {
        let (outcome, kind) = match result {
            Err(e) if e.kind == ErrorKind::Transient => {
                tokio::time::sleep(retry_delay(1)).await;
                apply_with_retry(target, &op).await
            }
            result => outcome_of(result),
        };
        sent.push(Sent { op, outcome, kind });
    }
    (name, sent)
}

/// The ready operations of one target, lowest id first, and its membership changes also by group
/// and kind ([`Order::membership`]), so that the changes of one group ready together go out together.
#[derive(Default)]
struct Ready {
    ids: BTreeSet<usize>,
    memberships: HashMap<usize, BTreeSet<usize>>,
}

impl Ready {
    fn insert(&mut self, id: usize, membership: Option<usize>) {
        self.ids.insert(id);
        if let Some(membership) = membership {
            self.memberships.entry(membership).or_default().insert(id);
        }
    }

    /// The lowest ready operation that may go now, whether or not its intent is committed: with
    /// a large write in flight (not `large_ok`), the lowest that is not a large group's create.
    fn first_that_may_go(&self, ops: &[Operation], large_ok: bool) -> Option<usize> {
        self.ids.iter().copied().find(|&id| large_ok || !is_large_group(&ops[id]))
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Takes out the next operations to go out together, among those before `recorded` (whose
    /// intents are committed), lowest id first. Being ready at once, none depends on another. The
    /// first ready operation decides: a membership change takes with it the ready changes of the
    /// same group and kind, up to `members` (the target makes them in one request; see
    /// [`Target::members_per_request`]); any other goes with the next ones up to `batch`
    /// ([`Target::batch_limit`]), a password always alone. Unless `large_ok`, no large write
    /// goes ([`LARGE_WRITE`]): a group created with more members waits for the next take, and
    /// membership changes go at most that many together. Empty when the first ready operation
    /// waits for its intent.
    fn take_batch(
        &mut self,
        ops: &[Operation],
        order: &Order,
        recorded: usize,
        batch: usize,
        members: usize,
        large_ok: bool,
    ) -> Vec<usize> {
        let members = if large_ok { members } else { members.min(LARGE_WRITE) };
        let mut may_go = |id: &&usize| large_ok || !is_large_group(&ops[**id]);
        let Some(&first) = self.ids.range(..recorded).find(&mut may_go) else { return Vec::new() };
        let together: Vec<usize> = match order.membership[first] {
            Some(membership) if members > 1 => self
                .memberships
                .get(&membership)
                .into_iter()
                .flat_map(|ids| ids.range(..recorded))
                .take(members)
                .copied()
                .collect(),
            _ => {
                let mut together = Vec::new();
                for &id in self.ids.range(first..recorded).filter(&mut may_go).take(batch) {
                    let password = matches!(ops[id].action, Action::SetPassword { .. });
                    if password && !together.is_empty() {
                        break;
                    }
                    together.push(id);
                    if password {
                        break;
                    }
                }
                together
            }
        };
        for &id in &together {
            self.ids.remove(&id);
            if let Some(membership) = order.membership[id]
                && let Some(ids) = self.memberships.get_mut(&membership)
            {
                ids.remove(&id);
                if ids.is_empty() {
                    self.memberships.remove(&membership);
                }
            }
        }
        together
    }
}

/// A group created with more than [`LARGE_WRITE`] members.
fn is_large_group(op: &Operation) -> bool {
    matches!(&op.action, Action::CreateGroup { members, .. } if members.len() > LARGE_WRITE)
}

/// Operations taken to go out together make a large write: a large group's create, or more than
/// [`LARGE_WRITE`] membership changes.
fn is_large(ops: &[Operation], together: &[usize]) -> bool {
    together.len() > LARGE_WRITE || together.iter().any(|&id| is_large_group(&ops[id]))
}

/// What the apply knows of the operations that came back.
struct Landing<'p> {
    landed: Vec<bool>,
    /// Consecutive operations per target that could not reach it.
    unreachable: BTreeMap<std::sync::Arc<str>, u32>,
    troubled_persons: BTreeSet<String>,
    /// Group creates that failed or were skipped: their members' memberships are left to a
    /// reconcile.
    unfinished_groups: u64,
    /// (done, failed, skipped)
    counts: (u64, u64, u64),
    /// Outcomes not yet recorded in the store, in the order they landed, and since when.
    unrecorded: Vec<(Cow<'p, Operation>, Outcome)>,
    oldest: Option<Instant>,
    bar: ProgressBar,
    failpoint: Option<Failpoint>,
}

impl<'p> Landing<'p> {
    /// Why `op` is not sent at all, if it is not: a dependency that did not land, a target not in
    /// the configuration, or one that stopped answering in this run.
    fn not_sent(&self, op: &Operation, configured: bool) -> Option<Outcome> {
        if let Some(dep) = op.depends_on.iter().find(|d| !self.landed.get(**d).copied().unwrap_or(false)) {
            return Some(Outcome::Skipped {
                reason: format!("operation #{dep}, which this one depends on, did not land"),
            });
        }
        if !configured {
            return Some(Outcome::Skipped { reason: format!("target {} is not in the configuration", op.target) });
        }
        self.is_unreachable(&op.target).then(|| Outcome::Failed {
            error: format!(
                "target {} stopped answering in this run: not attempted (the next run retries it)",
                op.target
            ),
            unknown: false,
        })
    }

    fn new(operations: usize, bar: ProgressBar, failpoint: Option<Failpoint>) -> Self {
        Landing {
            landed: vec![false; operations],
            unreachable: BTreeMap::new(),
            troubled_persons: BTreeSet::new(),
            unfinished_groups: 0,
            counts: (0, 0, 0),
            unrecorded: Vec::new(),
            oldest: None,
            bar,
            failpoint,
        }
    }

    fn is_unreachable(&self, target: &str) -> bool {
        self.unreachable.get(target).is_some_and(|n| *n >= UNREACHABLE_AFTER)
    }

    /// A target whose connection keeps failing is given up on for this run instead of costing
    /// every remaining operation its full retries.
    fn count_reach(&mut self, sent: &Sent) {
        let count = self.unreachable.entry(std::sync::Arc::clone(&sent.op.target)).or_insert(0);
        if matches!(sent.kind, Some(ErrorKind::Connect | ErrorKind::Transient)) {
            *count += 1;
        } else {
            *count = 0;
        }
    }

    fn land(&mut self, Sent { op, outcome, .. }: Sent<'p>) {
        Failpoint::AfterSend(op.id).abort_if(self.failpoint);
        match &outcome {
            Outcome::Done(_) => {
                self.counts.0 += 1;
                self.landed[op.id] = true;
            }
            Outcome::Failed { error, .. } => {
                self.counts.1 += 1;
                eprintln!("failed: #{} {} {}: {error}", op.id, op.action.kind(), op.action.dn());
            }
            Outcome::Skipped { reason } => {
                self.counts.2 += 1;
                eprintln!("skipped: #{} {} {}: {reason}", op.id, op.action.kind(), op.action.dn());
            }
        }
        if !matches!(outcome, Outcome::Done(_)) {
            if let Some(p) = &op.person {
                self.troubled_persons.insert(p.clone());
            }
            if matches!(op.action, Action::CreateGroup { .. }) {
                self.unfinished_groups += 1;
            }
        }
        self.oldest.get_or_insert_with(Instant::now);
        self.unrecorded.push((op, outcome));
        self.bar.inc(1);
    }
}

/// Which operations wait for which. The plan comes in phases (containers; creates, adoptions and
/// passwords; disables; removals of members about to be renamed, under their old DN; renames;
/// attribute changes, enables and manager references; group additions; group removals; deletes):
/// a phase starts once the one before it has finished, so
/// whatever an operation needs of an earlier phase (its container, its account, the manager's
/// account or new name, the member's new name) holds as it did when operations ran one at a time.
/// Within a phase an operation waits only for the operations it depends on (`depends_on`) and for
/// the operation before it on the same object (two changes to one entry; a rename into a name
/// another rename frees), in plan order. Additions to one group do not wait for each other (they
/// are ready together, and go out together where the target makes them in one modify: see
/// [`Ready::take_batch`]), nor do removals; containers are made one at a time (an OU inside a new
/// OU). A plan out of phase order (edited by hand) only gets more phases.
struct Order {
    /// Where each operation's phase ends (the id after its last operation).
    phase_end: Vec<usize>,
    /// For a membership change, a number shared by the changes of the same kind (additions or
    /// removals) to the same group, and by no other operation.
    membership: Vec<Option<usize>>,
    /// How many operations of its own phase each operation still waits for.
    waits: Vec<usize>,
    /// The operations of the same phase that wait for each operation.
    dependents: Vec<Vec<usize>>,
}

/// The phases the runner tells apart, from the action alone (manager references, which the
/// planner puts after the other attribute changes, share their phase here: the same-object rule
/// keeps a person's own changes in order).
fn phase_of(action: &Action) -> u8 {
    match action {
        Action::CreateContainer { .. } => 0,
        Action::Create { .. } | Action::Adopt { .. } | Action::SetPassword { .. } => 1,
        Action::Disable { .. } => 2,
        Action::Rename { .. } => 3,
        Action::Update { .. } | Action::Enable { .. } => 4,
        Action::CreateGroup { .. } | Action::AddMember { .. } => 5,
        Action::RemoveMember { .. } => 6,
        Action::Delete { .. } => 7,
    }
}

/// What an operation on a shared object must stay in order with: the object, and whether
/// operations of the same kind on it may pass each other.
fn objects(action: &Action) -> (Vec<String>, bool) {
    match action {
        Action::CreateContainer { .. } => (vec![String::new()], false),
        Action::Rename { dn, new_dn, .. } => (vec![normalize_dn(dn), normalize_dn(new_dn)], false),
        Action::AddMember { group, .. } | Action::RemoveMember { group, .. } => (vec![normalize_dn(group)], true),
        other => (vec![normalize_dn(other.dn())], false),
    }
}

impl Order {
    fn of(plan: &Plan) -> Order {
        let ops = &plan.operations;
        let (mut phase_start, mut phase_end) = (vec![0; ops.len()], vec![ops.len(); ops.len()]);
        let mut start = 0;
        for i in 1..=ops.len() {
            if i == ops.len() || phase_of(&ops[i].action) != phase_of(&ops[start].action) {
                phase_start[start..i].fill(start);
                phase_end[start..i].fill(i);
                start = i;
            }
        }
        /// Per object: the operations a newcomer waits for, the kind they share when they may
        /// pass each other, and what those waited for (which a newcomer of that kind waits for).
        #[derive(Default)]
        struct Last {
            previous: Vec<usize>,
            commuting: Option<&'static str>,
            before: Vec<usize>,
        }
        let mut last: HashMap<String, Last> = HashMap::new();
        let mut waits = vec![0; ops.len()];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); ops.len()];
        let mut membership = vec![None; ops.len()];
        let mut memberships: HashMap<(String, &'static str), usize> = HashMap::new();
        for (id, op) in ops.iter().enumerate() {
            let mut predecessors: BTreeSet<usize> = op.depends_on.iter().copied().filter(|&d| d < id).collect();
            let (keys, commutes) = objects(&op.action);
            let kind = op.action.kind();
            if let (Action::AddMember { .. } | Action::RemoveMember { .. }, [group]) = (&op.action, keys.as_slice()) {
                let next = memberships.len();
                membership[id] = Some(*memberships.entry((group.clone(), kind)).or_insert(next));
            }
            for key in keys {
                let entry = last.entry(key).or_default();
                if commutes && entry.commuting == Some(kind) {
                    predecessors.extend(entry.before.iter().copied());
                    entry.previous.push(id);
                } else {
                    predecessors.extend(entry.previous.iter().copied());
                    entry.before = std::mem::replace(&mut entry.previous, vec![id]);
                    entry.commuting = commutes.then_some(kind);
                }
            }
            for p in predecessors.into_iter().filter(|&p| p >= phase_start[id]) {
                waits[id] += 1;
                dependents[p].push(id);
            }
        }
        Order { phase_end, membership, waits, dependents }
    }

    fn phase_end(&self, start: usize) -> usize {
        self.phase_end[start]
    }

    /// Marks `id` finished; returns the operations that no longer wait for anything.
    fn finish(&mut self, id: usize) -> Vec<usize> {
        let mut now_ready = Vec::new();
        for next in std::mem::take(&mut self.dependents[id]) {
            self.waits[next] -= 1;
            if self.waits[next] == 0 {
                now_ready.push(next);
            }
        }
        now_ready
    }
}

// --- Test hook: failpoints. Inert unless ROSTER_FAILPOINT is set. ---

/// A test hook for the crash tests (`crates/roster/tests/crash.rs`), not a feature: when the
/// environment variable `ROSTER_FAILPOINT` holds `KIND:N`, the apply aborts the process at that
/// point with [`std::process::abort`], which, like SIGKILL, runs no destructor and flushes nothing.
/// Read once at the start of an apply; does nothing unless set.
///
/// - `before_send:N`: the intents of op N's batch are recorded, op N is about to be sent (with the
///   rest of its batch: nothing of the batch is sent yet; earlier batches were, their outcomes
///   perhaps not recorded);
/// - `after_send:N`: op N came back from the target, its outcome is not recorded;
/// - `after_outcome:N`: the outcomes of op N's batch are recorded (for the last batch, the persons
///   are not);
/// - `plan_part:N`: part N of the plan's JSON is about to be written into the run record (0, the
///   first, is written last: the run then shows its plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failpoint {
    BeforeSend(usize),
    AfterSend(usize),
    AfterOutcome(usize),
    PlanPart(usize),
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
                "plan_part" => Some(Failpoint::PlanPart(op)),
                _ => None,
            }
        });
        if parsed.is_none() {
            tracing::warn!(
                "{}={value:?} is not before_send:N, after_send:N, after_outcome:N or plan_part:N; ignored",
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
async fn set_password(fresh: &Fresh, run: roster_store::RunId, target: &AnyTarget, op: &Operation) -> Outcome {
    let Some(config) =
        fresh.loaded.settings.targets.iter().find(|t| t.name() == &*op.target).and_then(|t| t.config.password.as_ref())
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
    let delivered = match &config.delivery {
        PasswordDelivery::Webhook(hook) => crate::notify::hand_off(fresh, run, op, hook, &password).await,
        other => crate::password::deliver(other, &who, &password, &fresh.loaded.config_dir).await,
    };
    match delivered {
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
            Action::Create { dn, .. } => roster_core::dn::normalize_dn(dn) == member,
            Action::Adopt { dn, .. } => roster_core::dn::normalize_dn(dn) == member,
            Action::Rename { new_dn, .. } => roster_core::dn::normalize_dn(new_dn) == member,
            _ => false,
        })
    };
    let kept: Vec<std::sync::Arc<str>> = members
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
    narrowed.reason = format!("{} (without the members whose accounts did not land)", op.reason).into();
    Some(narrowed)
}

/// A new account whose create names an account whose create did not land (in Active Directory
/// the manager's goes into the report's create when it is created first in the same run, see the
/// planner's `fold_references`) is still made, without that reference: someone else's refused
/// record must not keep a new hire's account from being created. The link records the create as
/// sent (without the reference), so the next run sets it once the manager's account exists. None
/// when the operation stands as planned, or when what did not land is not an account's create (a
/// container: the create is skipped).
fn without_missing_references(plan: &Plan, landed: &[bool], op: &Operation) -> Option<Operation> {
    let Action::Create { dn, attributes, enabled, password } = &op.action else { return None };
    let missing: Vec<usize> =
        op.depends_on.iter().copied().filter(|d| !landed.get(*d).copied().unwrap_or(false)).collect();
    let mut gone = BTreeSet::new();
    for d in &missing {
        match plan.operations.get(*d).map(|o| &o.action) {
            Some(Action::Create { dn, .. }) => gone.insert(normalize_dn(dn)),
            _ => return None,
        };
    }
    if gone.is_empty() {
        return None;
    }
    let mut attributes = attributes.clone();
    attributes.retain_values(|_, v| !gone.contains(&normalize_dn(v)));
    let mut narrowed = op.clone();
    narrowed.action = Action::Create { dn: dn.clone(), attributes, enabled: *enabled, password: *password };
    narrowed.depends_on.retain(|d| !missing.contains(d));
    narrowed.reason = format!("{} (without the references to accounts whose creates did not land)", op.reason).into();
    Some(narrowed)
}

/// The outcome, and the kind of error it ended with (None on success).
async fn apply_with_retry(target: &AnyTarget, op: &Operation) -> (Outcome, Option<ErrorKind>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match target.apply(op).await {
            Err(e) if e.kind == ErrorKind::Transient && attempt < ATTEMPTS => {
                tokio::time::sleep(retry_delay(attempt)).await;
            }
            result => return outcome_of(result),
        }
    }
}

/// How long to wait before the next try after `attempt` tries failed for a transient reason.
fn retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(250 * 4u64.pow(attempt.saturating_sub(1)))
}

/// What a target's answer means for the run: a conflict is skipped (plan again), anything else
/// that is not done has failed.
fn outcome_of(
    result: Result<roster_core::plan::Applied, roster_connectors::target::TargetError>,
) -> (Outcome, Option<ErrorKind>) {
    match result {
        Ok(applied) => (Outcome::Done(applied), None),
        Err(e) if e.kind == ErrorKind::Conflict => {
            (Outcome::Skipped { reason: format!("conflict: {e}") }, Some(e.kind))
        }
        Err(e) => (Outcome::Failed { unknown: e.kind == ErrorKind::Unknown, error: e.to_string() }, Some(e.kind)),
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

#[cfg(test)]
mod tests {
    use roster_core::attr::Attributes;
    use roster_core::plan::{Category, PLAN_FORMAT, Summary};

    use super::*;

    fn op(id: usize, depends_on: &[usize], action: Action) -> Operation {
        Operation {
            id,
            person: None,
            target: "dir".into(),
            category: Category::Joiner,
            reason: "test".into(),
            depends_on: depends_on.to_vec(),
            action,
        }
    }

    fn plan(actions: Vec<(&[usize], Action)>) -> Plan {
        Plan {
            format: PLAN_FORMAT,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            config_hash: String::new(),
            operations: actions.into_iter().enumerate().map(|(id, (deps, action))| op(id, deps, action)).collect(),
            person_updates: vec![],
            notices: vec![],
            quarantined: vec![],
            safety: vec![],
            source_counts: BTreeMap::new(),
            summary: Summary::default(),
            provenance: BTreeMap::new(),
        }
    }

    fn create(dn: &str) -> Action {
        Action::Create { dn: dn.into(), attributes: Attributes::default(), enabled: true, password: false }
    }

    fn update(dn: &str) -> Action {
        Action::Update { dn: dn.to_string(), object_id: None, changes: vec![] }
    }

    fn add(group: &str, member: &str) -> Action {
        Action::AddMember { group: group.to_string(), member: member.to_string() }
    }

    /// Runs the order as the apply does, one operation at a time (the lowest ready id first), and
    /// returns the "waves": the operations ready together.
    fn waves(plan: &Plan) -> Vec<Vec<usize>> {
        let mut order = Order::of(plan);
        let n = plan.operations.len();
        let (mut released, mut done, mut waves) = (0, 0, Vec::new());
        let mut ready: BTreeSet<usize> = BTreeSet::new();
        while done < n {
            if ready.is_empty() && done == released {
                let start = released;
                released = order.phase_end(start);
                ready.extend((start..released).filter(|&id| order.waits[id] == 0));
            }
            let wave: Vec<usize> = std::mem::take(&mut ready).into_iter().collect();
            assert!(!wave.is_empty(), "nothing ready after {done} of {n}");
            for &id in &wave {
                ready.extend(order.finish(id));
                done += 1;
            }
            waves.push(wave);
        }
        waves
    }

    #[test]
    fn creates_of_different_accounts_go_out_together() {
        let p = plan(vec![(&[], create("uid=a,ou=p")), (&[], create("uid=b,ou=p")), (&[], create("uid=c,ou=p"))]);
        assert_eq!(waves(&p), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn a_phase_starts_when_the_one_before_it_has_finished() {
        let p = plan(vec![
            (&[], Action::CreateContainer { dn: "ou=a,ou=p".into() }),
            (&[], Action::CreateContainer { dn: "ou=b,ou=a,ou=p".into() }),
            (&[0], create("uid=a,ou=a,ou=p")),
            (&[], create("uid=b,ou=p")),
            // A manager reference to a: in the attribute phase, after every create.
            (&[2], update("uid=b,ou=p")),
            (&[], update("uid=c,ou=p")),
            (&[2], add("cn=g,ou=p", "uid=a,ou=a,ou=p")),
        ]);
        assert_eq!(waves(&p), vec![vec![0], vec![1], vec![2, 3], vec![4, 5], vec![6]]);
    }

    #[test]
    fn operations_on_one_object_keep_plan_order_and_others_pass_them() {
        let p = plan(vec![
            (&[], create("uid=a,ou=p")),
            (&[0], Action::SetPassword { dn: "uid=a,ou=p".into(), object_id: None, must_change: true }),
            (&[], create("uid=b,ou=p")),
            (&[], update("UID=A, OU=P")),
            (&[], Action::Enable { dn: "uid=a,ou=p".into(), object_id: None, changes: vec![] }),
            (&[], update("uid=b,ou=p")),
        ]);
        assert_eq!(waves(&p), vec![vec![0, 2], vec![1], vec![3, 5], vec![4]]);
    }

    #[test]
    fn a_rename_into_a_name_another_rename_frees_waits_for_it() {
        let rename = |dn: &str, new_dn: &str| Action::Rename { dn: dn.into(), object_id: None, new_dn: new_dn.into() };
        let p = plan(vec![
            (&[], rename("uid=b,ou=p", "uid=b,ou=old")),
            (&[], rename("uid=a,ou=p", "uid=b,ou=p")),
            (&[], rename("uid=c,ou=p", "uid=c,ou=old")),
        ]);
        assert_eq!(waves(&p), vec![vec![0, 2], vec![1]]);
    }

    #[test]
    fn additions_to_one_group_pass_each_other_but_not_its_creation() {
        let p = plan(vec![
            (&[], Action::CreateGroup { dn: "cn=g,ou=p".into(), members: vec![], attributes: Attributes::default() }),
            (&[], add("cn=g,ou=p", "uid=a,ou=p")),
            (&[], add("cn=g,ou=p", "uid=b,ou=p")),
            (&[], add("cn=h,ou=p", "uid=a,ou=p")),
            (&[], Action::RemoveMember { group: "cn=g,ou=p".into(), member: "uid=c,ou=p".into() }),
            (&[], Action::RemoveMember { group: "cn=g,ou=p".into(), member: "uid=d,ou=p".into() }),
            (&[], Action::Delete { dn: "uid=c,ou=p".into(), object_id: None }),
        ]);
        assert_eq!(waves(&p), vec![vec![0, 3], vec![1, 2], vec![4, 5], vec![6]]);
    }

    /// Takes batches as the apply does, with every intent recorded below `recorded`, until none is
    /// left or the first waits for its intent.
    fn batches(p: &Plan, recorded: usize, batch: usize, members: usize) -> Vec<Vec<usize>> {
        batches_large_ok(p, recorded, batch, members, true)
    }

    /// [`batches`], with a large write in flight unless `large_ok`.
    fn batches_large_ok(p: &Plan, recorded: usize, batch: usize, members: usize, large_ok: bool) -> Vec<Vec<usize>> {
        let order = Order::of(p);
        let mut ready = Ready::default();
        for id in 0..p.operations.len() {
            ready.insert(id, order.membership[id]);
        }
        std::iter::from_fn(|| {
            Some(ready.take_batch(&p.operations, &order, recorded, batch, members, large_ok)).filter(|b| !b.is_empty())
        })
        .collect()
    }

    #[test]
    fn the_changes_of_one_group_ready_together_go_out_together() {
        let remove = |group: &str, member: &str| Action::RemoveMember { group: group.into(), member: member.into() };
        let p = plan(vec![
            (&[], add("cn=g,ou=p", "uid=a,ou=p")),
            (&[], add("cn=h,ou=p", "uid=a,ou=p")),
            (&[], add("CN=G, OU=P", "uid=b,ou=p")),
            (&[], add("cn=g,ou=p", "uid=c,ou=p")),
            (&[], add("cn=g,ou=p", "uid=d,ou=p")),
            (&[], remove("cn=g,ou=p", "uid=e,ou=p")),
        ]);
        let order = Order::of(&p);
        assert_eq!(order.membership[0], order.membership[2]);
        assert_ne!(order.membership[0], order.membership[1]);
        assert_ne!(order.membership[0], order.membership[5]);
        // Up to the target's members per request, lowest id first; never an addition with a removal.
        assert_eq!(batches(&p, 6, 1, 3), vec![vec![0, 2, 3], vec![1], vec![4], vec![5]]);
        // Only operations whose intents are recorded: the rest waits.
        assert_eq!(batches(&p, 3, 1, 1000), vec![vec![0, 2], vec![1]]);
        assert_eq!(batches(&p, 0, 1, 1000), Vec::<Vec<usize>>::new());
        // A target that takes one change per request gets them one by one.
        assert_eq!(batches(&p, 6, 1, 1), (0..6).map(|id| vec![id]).collect::<Vec<_>>());
    }

    #[test]
    fn while_a_large_write_is_in_flight_only_small_ones_go() {
        let group = |dn: &str, n: usize| Action::CreateGroup {
            dn: dn.into(),
            members: (0..n).map(|i| format!("uid=m{i},ou=p").into()).collect(),
            attributes: Attributes::default(),
        };
        let p = plan(vec![
            (&[], group("cn=all,ou=g", LARGE_WRITE + 1)),
            (&[], group("cn=team,ou=g", LARGE_WRITE)),
            (&[], group("cn=site,ou=g", 5 * LARGE_WRITE)),
            (&[], create("uid=a,ou=p")),
        ]);
        // The intents wanted next are those of the first operation that may go, past the large.
        let order = Order::of(&p);
        let mut ready = Ready::default();
        for id in 0..p.operations.len() {
            ready.insert(id, order.membership[id]);
        }
        assert_eq!(ready.first_that_may_go(&p.operations, false), Some(1));
        assert_eq!(ready.first_that_may_go(&p.operations, true), Some(0));
        let none_large: Vec<Vec<usize>> = vec![vec![1], vec![3]];
        assert_eq!(batches_large_ok(&p, 4, 1, usize::MAX, false), none_large);
        assert_eq!(batches_large_ok(&p, 4, 4, usize::MAX, false), vec![vec![1, 3]]);
        assert_eq!(batches_large_ok(&p, 4, 1, usize::MAX, true), vec![vec![0], vec![1], vec![2], vec![3]]);
        assert!(is_large(&p.operations, &[0]) && is_large(&p.operations, &[1, 2]));
        assert!(!is_large(&p.operations, &[1, 3]));
        // Membership changes go at most LARGE_WRITE together while a large write is in flight.
        let adds = plan((0..=LARGE_WRITE).map(|i| (&[][..], add("cn=g,ou=g", &format!("uid=m{i},ou=p")))).collect());
        let taken = batches_large_ok(&adds, LARGE_WRITE + 1, 1, usize::MAX, false);
        assert_eq!(taken.iter().map(Vec::len).collect::<Vec<_>>(), vec![LARGE_WRITE, 1]);
        assert!(!is_large(&adds.operations, &taken[0]));
        let taken = batches_large_ok(&adds, LARGE_WRITE + 1, 1, usize::MAX, true);
        assert_eq!(taken.len(), 1);
        assert!(is_large(&adds.operations, &taken[0]));
    }

    #[test]
    fn a_group_create_that_did_not_land_is_counted_for_the_reconcile_hint() {
        let p = plan(vec![
            (&[], Action::CreateGroup { dn: "cn=all,ou=g".into(), members: vec![], attributes: Attributes::default() }),
            (&[], create("uid=a,ou=p")),
            (
                &[],
                Action::CreateGroup { dn: "cn=site,ou=g".into(), members: vec![], attributes: Attributes::default() },
            ),
        ]);
        let mut state = Landing::new(3, ProgressBar::hidden(), None);
        let failed = || Outcome::Failed { error: "no answer within 30 s".into(), unknown: true };
        state.land(Sent { op: Cow::Borrowed(&p.operations[0]), outcome: failed(), kind: None });
        state.land(Sent { op: Cow::Borrowed(&p.operations[1]), outcome: failed(), kind: None });
        state.land(Sent {
            op: Cow::Borrowed(&p.operations[2]),
            outcome: Outcome::Done(roster_core::plan::Applied { entry: None }),
            kind: None,
        });
        assert_eq!(state.unfinished_groups, 1);
        assert_eq!(state.counts, (1, 2, 0));
    }

    #[test]
    fn a_batch_of_any_operations_is_cut_before_a_password() {
        let p = plan(vec![
            (&[], create("uid=a,ou=p")),
            (&[], create("uid=b,ou=p")),
            (&[], Action::SetPassword { dn: "uid=c,ou=p".into(), object_id: None, must_change: true }),
            (&[], create("uid=d,ou=p")),
            (&[], create("uid=e,ou=p")),
            (&[], create("uid=f,ou=p")),
        ]);
        assert_eq!(batches(&p, 6, 2, 1000), vec![vec![0, 1], vec![2], vec![3, 4], vec![5]]);
    }

    #[test]
    fn a_plan_out_of_phase_order_is_applied_phase_by_phase_as_written() {
        let p = plan(vec![(&[], update("uid=a,ou=p")), (&[], create("uid=b,ou=p")), (&[], update("uid=c,ou=p"))]);
        assert_eq!(waves(&p), vec![vec![0], vec![1], vec![2]]);
    }
}
