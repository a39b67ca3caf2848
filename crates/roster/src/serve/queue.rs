//! The queue: jobs run one at a time, in the order they were asked for, so runs never overlap. A
//! job already waiting is not queued twice (a scheduled fire or a trigger while it waits changes
//! nothing, and says so); a job that is running may be queued again. Each job runs as a child
//! process of this binary; its output goes to the daemon's log, its exit code becomes its outcome.
//!
//! The queue is kept in the store too (a row per job until it has run): a daemon that dies, or
//! hands the lead to another daemon on the same store, loses no job. Only the leader queues and
//! runs jobs (`leader.rs`); it starts from the rows it finds, the one left running first.

use std::collections::{BTreeMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use roster_core::config::JobCommand;
use roster_store::{RunId, RunStatus};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;

use super::{Daemon, metrics};
use crate::exit;

/// A job waiting its turn, and who asked for it (`serve:JOB` for the schedule, `api:TOKEN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(crate) job: String,
    pub(crate) actor: String,
    pub(crate) since: DateTime<Utc>,
    /// The command line of a job asked for through the API that is not a configured job
    /// (`run --person KEY`, `apply --approved ID`); empty: the configured job's command.
    pub(crate) args: Vec<String>,
    /// Its row in the store's queue; `None` when it could not be written.
    pub(crate) stored: Option<i64>,
}

/// How a job's last run ended.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub(crate) outcome: &'static str,
    pub(crate) exit_code: Option<i32>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) finished_at: DateTime<Utc>,
    pub(crate) actor: String,
    /// The runs the job's process recorded in the store.
    pub(crate) runs: Vec<RunId>,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Queued>,
    running: Option<Queued>,
    last: BTreeMap<String, Finished>,
    closed: bool,
}

#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    wake: Notify,
}

/// What asking for a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// Queued at this position (1: next).
    At(usize),
    /// Already waiting; not queued twice.
    AlreadyQueued,
    /// The daemon is shutting down.
    Closed,
    /// This daemon is a standby: the leader queues jobs.
    Standby,
}

/// A job's place in the queue, for the API.
pub(crate) struct JobState {
    pub(crate) running: Option<Queued>,
    pub(crate) queued: Option<(usize, Queued)>,
    pub(crate) last: Option<Finished>,
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the job could be queued now: `None` when it could.
    fn refusal(&self, job: &str) -> Option<Enqueued> {
        let state = self.state();
        if state.closed {
            Some(Enqueued::Closed)
        } else if state.waiting.iter().any(|q| q.job == job) {
            Some(Enqueued::AlreadyQueued)
        } else {
            None
        }
    }

    fn push(&self, queued: Queued) -> Enqueued {
        let mut state = self.state();
        if state.closed {
            return Enqueued::Closed;
        }
        if state.waiting.iter().any(|q| q.job == queued.job) {
            return Enqueued::AlreadyQueued;
        }
        state.waiting.push_back(queued);
        let position = state.waiting.len();
        metrics::queue_length(position);
        drop(state);
        self.wake.notify_one();
        Enqueued::At(position)
    }

    /// Takes a job back out of the queue (its trigger could not be recorded); its row, if any.
    fn withdraw(&self, job: &str) -> Option<i64> {
        let mut state = self.state();
        let stored = state.waiting.iter().find(|q| q.job == job).and_then(|q| q.stored);
        state.waiting.retain(|q| q.job != job);
        metrics::queue_length(state.waiting.len());
        stored
    }

    /// No job starts any more; those waiting stay in the store's queue, for the next leader (this
    /// daemon restarted, or another on the same store).
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        for left in state.waiting.drain(..) {
            tracing::warn!(
                job = %left.job,
                actor = %left.actor,
                "shutting down: the queued job does not run here; it stays in the store's queue for the next leader"
            );
        }
        metrics::queue_length(0);
        drop(state);
        self.wake.notify_one();
    }

    pub(crate) fn job_state(&self, job: &str) -> JobState {
        let state = self.state();
        JobState {
            running: state.running.clone().filter(|r| r.job == job),
            queued: state.waiting.iter().enumerate().find(|(_, q)| q.job == job).map(|(i, q)| (i + 1, q.clone())),
            last: state.last.get(job).cloned(),
        }
    }

    /// The next job to run (marked running), or `None` once the queue is closed.
    async fn next(&self) -> Option<Queued> {
        loop {
            let woken = self.wake.notified();
            {
                let mut state = self.state();
                if state.closed {
                    return None;
                }
                if let Some(job) = state.waiting.pop_front() {
                    metrics::queue_length(state.waiting.len());
                    state.running = Some(job.clone());
                    return Some(job);
                }
            }
            woken.await;
        }
    }

    fn finish(&self, job: &str, finished: Finished) {
        let mut state = self.state();
        state.running = None;
        state.last.insert(job.to_string(), finished);
    }
}

/// Queues a job, in the store and in memory (`args`: the command line of a job that is not
/// configured; empty for a configured one). Only the leader queues jobs.
pub(crate) async fn enqueue(daemon: &Daemon, job: &str, actor: &str, args: Vec<String>) -> Enqueued {
    if !daemon.leader.is_leading() {
        return Enqueued::Standby;
    }
    if let Some(refused) = daemon.queue.refusal(job) {
        return refused;
    }
    let stored = match daemon.store.queue_job(job, actor, &args).await {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!(job = %job, "the job is queued in memory only (a crash of this daemon would lose it): {e}");
            None
        }
    };
    let queued = Queued { job: job.to_string(), actor: actor.to_string(), since: Utc::now(), args, stored };
    let enqueued = daemon.queue.push(queued);
    if !matches!(enqueued, Enqueued::At(_)) {
        forget(daemon, stored).await;
    }
    enqueued
}

/// Takes a waiting job back out of the queue, and out of the store.
pub(crate) async fn withdraw(daemon: &Daemon, job: &str) {
    let stored = daemon.queue.withdraw(job);
    forget(daemon, stored).await;
}

async fn forget(daemon: &Daemon, stored: Option<i64>) {
    if let Some(id) = stored
        && let Err(e) = daemon.store.job_done(id).await
    {
        tracing::warn!(id, "cannot take the job out of the store's queue: {e}");
    }
}

/// Queues the jobs the store's queue holds (a leader taking over): a job left running by a daemon
/// that stopped first, so that its interrupted run is resumed (the store's intents let it converge
/// without doubling an operation). A job found twice runs once.
pub(crate) async fn resume(daemon: &Daemon) {
    let rows = match daemon.store.queued_jobs().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!("cannot read the store's job queue; jobs left by another daemon do not run: {e}");
            return;
        }
    };
    let (interrupted, waiting): (Vec<_>, Vec<_>) = rows.into_iter().partition(|row| row.started_at.is_some());
    for row in interrupted.into_iter().chain(waiting) {
        let resumed = row.started_at.is_some();
        let queued =
            Queued { job: row.job, actor: row.actor, since: row.queued_at, args: row.args, stored: Some(row.id) };
        let job = queued.job.clone();
        match daemon.queue.push(queued) {
            Enqueued::At(position) => {
                tracing::info!(job = %job, position, interrupted = resumed, "queued again from the store's queue")
            }
            _ => forget(daemon, Some(row.id)).await,
        }
    }
}

/// How long a job waits for the store's apply lock held by another roster (`--lock-wait`).
const JOB_LOCK_WAIT_SECONDS: u64 = 60;

/// The worker: runs queued jobs one after the other until the shutdown.
pub(crate) async fn work(daemon: Arc<Daemon>) {
    while let Some(queued) = daemon.queue.next().await {
        if let Some(id) = queued.stored
            && let Err(e) = daemon.store.job_started(id).await
        {
            tracing::warn!(job = %queued.job, "cannot mark the job started in the store's queue: {e}");
        }
        let finished = run_job(&daemon, &queued).await;
        daemon.queue.finish(&queued.job, finished);
        forget(&daemon, queued.stored).await;
    }
}

fn outcome(code: Option<i32>) -> &'static str {
    match code.and_then(|c| u8::try_from(c).ok()) {
        Some(exit::SUCCESS) => "success",
        Some(exit::USAGE) => "usage_error",
        Some(exit::BLOCKED) => "blocked",
        Some(exit::PARTIAL) => "partial",
        Some(_) => "error",
        None => "killed",
    }
}

async fn run_job(daemon: &Daemon, queued: &Queued) -> Finished {
    let started_at = Utc::now();
    let clock = Instant::now();
    let job = &queued.job;
    let command = daemon.serve.jobs.iter().find(|j| j.config.name == *job).map(|j| &j.config);
    let last_run_before = match daemon.store.runs(1).await {
        Ok(runs) => runs.first().map(|r| r.id),
        Err(e) => {
            tracing::warn!(job = %job, "cannot read the store before the job: {e}");
            None
        }
    };
    let mut child = tokio::process::Command::new(&daemon.job_base.exe);
    child.arg("--config").arg(&daemon.job_base.config);
    if let Some(as_of) = daemon.job_base.as_of {
        child.arg("--as-of").arg(as_of.to_string());
    }
    // A job waits for an apply that holds the store's lock rather than failing at once: after a
    // failover, the dead leader's job keeps its database session, and with it the lock, a moment
    // longer than the leader's own session, which the standby took the lead from.
    child.arg("--lock-wait").arg(JOB_LOCK_WAIT_SECONDS.to_string());
    match command.map(|c| (c.command, c.apply)) {
        _ if !queued.args.is_empty() => child.args(&queued.args),
        Some((JobCommand::Run, _)) => child.args(["run", "--hold-if-blocked"]),
        Some((JobCommand::Plan, _)) => child.arg("plan"),
        Some((JobCommand::Reconcile, false)) => child.arg("reconcile"),
        Some((JobCommand::Reconcile, true)) => child.args(["reconcile", "--apply", "--hold-if-blocked"]),
        None => child.arg("check"),
    };
    child
        .env("ROSTER_ACTOR", &queued.actor)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C in the daemon's terminal reaches the daemon, which lets
        // the job finish, instead of killing the job at once.
        .process_group(0);
    tracing::info!(job = %job, actor = %queued.actor, "job started");
    let exit_code = match child.spawn() {
        Err(e) => {
            tracing::error!(job = %job, "cannot start {}: {e}", daemon.job_base.exe.display());
            Some(i32::from(exit::ERROR))
        }
        Ok(mut child) => {
            let out = child.stdout.take().map(|s| tokio::spawn(log_lines(job.clone(), "stdout", s)));
            let err = child.stderr.take().map(|s| tokio::spawn(log_lines(job.clone(), "stderr", s)));
            let status = tokio::select! {
                status = child.wait() => status,
                () = daemon.shutdown.forced() => {
                    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                        tracing::warn!(job = %job, pid, "sending SIGTERM to the job");
                        // SAFETY: kill(2) on the pid of our own child, which has not been reaped
                        // (we have not seen it exit), so the pid is still its.
                        unsafe { libc::kill(pid, libc::SIGTERM) };
                    }
                    child.wait().await
                }
            };
            for task in [out, err].into_iter().flatten() {
                let _ = task.await;
            }
            match status {
                Ok(status) => status.code(),
                Err(e) => {
                    tracing::error!(job = %job, "waiting for the job: {e}");
                    None
                }
            }
        }
    };
    let outcome = outcome(exit_code);
    let runs = recorded_runs(daemon, last_run_before, &queued.actor).await;
    tracing::info!(job = %job, outcome, exit_code, runs = ?runs, seconds = clock.elapsed().as_secs_f64(), "job finished");
    metrics::job_finished(&daemon.store, job, outcome, clock.elapsed(), &runs).await;
    Finished { outcome, exit_code, started_at, finished_at: Utc::now(), actor: queued.actor.clone(), runs }
}

/// The runs the job recorded: newer than the last before it, with its actor, and not an operator's
/// action (the API records a trigger under the same actor, possibly after the job started).
async fn recorded_runs(daemon: &Daemon, before: Option<RunId>, actor: &str) -> Vec<RunId> {
    match daemon.store.runs(20).await {
        Ok(runs) => runs
            .into_iter()
            .filter(|r| Some(r.id) > before && r.actor == actor && r.status != Some(RunStatus::Operator))
            .map(|r| r.id)
            .rev()
            .collect(),
        Err(e) => {
            tracing::warn!("cannot read the runs the job recorded: {e}");
            Vec::new()
        }
    }
}

async fn log_lines(job: String, stream: &'static str, from: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(job = %job, stream, "{line}");
    }
}
