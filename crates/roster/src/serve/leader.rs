//! Which daemon leads. Several `roster serve` may share one PostgreSQL store: the one holding the
//! store's leader lock (a session advisory lock on a connection of its own, held for as long as it
//! leads) runs the schedule and the job queue; the others stand by. A standby serves the API's
//! reads and the console from the shared store, refuses what only the leader does (503), and
//! tries to take the lock every `serve.leader_retry` seconds. When the leader dies, however it
//! dies, PostgreSQL ends its session and frees the lock; the next standby to try takes it, queues
//! the jobs the store's queue holds (the one left running first) and starts the schedule.
//!
//! A leader that loses its session (the database restarted, the network dropped) may no longer be
//! the only one: it stops taking jobs and shuts down, letting its running job finish (that job
//! holds the apply lock of its own, so no two applies ever overlap).
//!
//! With a SQLite store there is one daemon per file, always the leader.

use std::sync::Arc;

use anyhow::{Result, bail};
use roster_store::lock::{DatabaseLock, LEADER_LOCK};
use tokio::sync::watch;

use super::{Daemon, metrics, queue, scheduler};

/// Whether this daemon leads; cheap to read from any handler.
pub(crate) struct Leadership {
    leading: watch::Sender<bool>,
}

impl Leadership {
    pub(crate) fn new(leading: bool) -> Leadership {
        metrics::leader(leading);
        Leadership { leading: watch::Sender::new(leading) }
    }

    pub(crate) fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    fn lead(&self) {
        self.leading.send_replace(true);
        metrics::leader(true);
    }

    fn step_down(&self) {
        self.leading.send_replace(false);
        metrics::leader(false);
    }
}

/// The leader lock, if this daemon can take it now (a PostgreSQL store); `None` on a SQLite store
/// too, whose daemon leads without one.
pub(crate) async fn try_lock(store: &roster_store::Store) -> Result<Option<DatabaseLock>> {
    match store.backend() {
        roster_store::Backend::Sqlite => Ok(None),
        roster_store::Backend::Postgres => Ok(store.try_lock(LEADER_LOCK).await?),
    }
}

/// The daemon's leading life: waits for the lead (unless it has it, `lock`), then runs the
/// schedule and the queue until the shutdown. An error when the lead was lost.
pub(crate) async fn run(daemon: Arc<Daemon>, lock: Option<DatabaseLock>) -> Result<()> {
    let lock = match lock {
        Some(lock) => Some(lock),
        None if daemon.leader.is_leading() => None,
        None => match wait_for_lead(&daemon).await {
            Some(lock) => Some(lock),
            None => return Ok(()),
        },
    };
    daemon.leader.lead();
    queue::resume(&daemon).await;
    let schedulers: Vec<_> = daemon
        .serve
        .jobs
        .iter()
        .filter(|job| job.schedule.is_some())
        .map(|job| tokio::spawn(scheduler::run(daemon.clone(), job.config.name.clone())))
        .collect();
    let mut worker = tokio::spawn(queue::work(daemon.clone()));
    let worked = match lock {
        None => worker.await.map(|()| false),
        Some(mut lock) => tokio::select! {
            worked = &mut worker => worked.map(|()| false),
            () = hold(&daemon, &mut lock) => {
                daemon.leader.step_down();
                tracing::error!(
                    "the leader lock's session with the store ended: another daemon may lead now; shutting down (the running job may finish)"
                );
                super::shutdown::stop(&daemon);
                worker.await.map(|()| true)
            }
        },
    };
    for scheduler in schedulers {
        scheduler.abort();
    }
    if worked? {
        bail!("lost the leader lock (its session with the PostgreSQL store ended); start the daemon again to stand by");
    }
    Ok(())
}

/// Tries the leader lock every `leader_retry` until it is taken; `None` at a shutdown.
async fn wait_for_lead(daemon: &Daemon) -> Option<DatabaseLock> {
    let retry = daemon.serve.leader_retry;
    tracing::info!(
        retry_seconds = retry.as_secs(),
        "standby: another roster serve on this store leads; serving reads, running no job, trying to take the lead every {} s",
        retry.as_secs()
    );
    loop {
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = daemon.shutdown.started() => return None,
        }
        match daemon.store.try_lock(LEADER_LOCK).await {
            Ok(Some(lock)) => {
                tracing::info!(
                    "took the lead: the previous leader's session ended; starting the schedule and the queue"
                );
                return Some(lock);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("standby: cannot try the leader lock: {e}"),
        }
    }
}

/// Returns when the lock's session no longer answers (checked every `leader_retry`).
async fn hold(daemon: &Daemon, lock: &mut DatabaseLock) {
    loop {
        tokio::time::sleep(daemon.serve.leader_retry).await;
        if !lock.still_held().await {
            return;
        }
    }
}
