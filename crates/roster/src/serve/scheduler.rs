//! One task per scheduled job: sleep until the cron expression's next time in the configured
//! zone, queue the job (as actor `serve:JOB`), repeat. A fire while the job still waits in the
//! queue is dropped (and logged): the queue never holds a job twice.

use std::sync::Arc;

use chrono::Utc;

use super::Daemon;
use super::queue::Enqueued;

/// The next time after now the job's schedule fires, `None` when it never does again (or has no
/// schedule).
pub(crate) fn next_fire(daemon: &Daemon, job: &str) -> Option<chrono::DateTime<Utc>> {
    let schedule = daemon.serve.jobs.iter().find(|j| j.config.name == job)?.schedule.as_ref()?;
    let now = Utc::now().with_timezone(&daemon.loaded.settings.zone);
    schedule.find_next_occurrence(&now, false).ok().map(|at| at.with_timezone(&Utc))
}

pub(crate) async fn run(daemon: Arc<Daemon>, job: String) {
    let actor = format!("serve:{job}");
    while daemon.shutdown.is_running() {
        let Some(at) = next_fire(&daemon, &job) else {
            tracing::warn!(job = %job, "the schedule has no next time: the job runs only when triggered");
            return;
        };
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = daemon.shutdown.started() => return,
        }
        // The clock may wake us a little early: never fire the same time twice.
        if let Some(early) = (at - Utc::now()).to_std().ok().filter(|d| !d.is_zero()) {
            tokio::time::sleep(early).await;
        }
        match super::queue::enqueue(&daemon, &job, &actor, Vec::new()).await {
            Enqueued::At(position) => tracing::info!(job = %job, position, "scheduled: queued"),
            Enqueued::AlreadyQueued => {
                tracing::info!(job = %job, "scheduled, but still waiting in the queue: not queued twice")
            }
            Enqueued::Closed | Enqueued::Standby => return,
        }
    }
}
