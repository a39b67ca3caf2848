//! Graceful shutdown. The first SIGTERM or SIGINT starts it: schedulers stop, the API stops
//! accepting, nothing queued starts, and the running job is let finish (it records its own
//! operations as it goes). `serve.shutdown_timeout` later, or at a second signal, the shutdown is
//! forced: the job's process gets SIGTERM (and dies; the store's intents let the next run converge
//! without duplicates), and the daemon exits once it is gone.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::Daemon;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    Draining,
    Forced,
}

/// Where the daemon is in its life; cheap to clone, every clone sees the same phase.
#[derive(Clone)]
pub(crate) struct Shutdown {
    phase: watch::Sender<Phase>,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown { phase: watch::Sender::new(Phase::Running) }
    }
}

impl Shutdown {
    pub(crate) fn is_running(&self) -> bool {
        *self.phase.borrow() == Phase::Running
    }

    fn advance(&self, to: Phase) {
        self.phase.send_if_modified(|phase| {
            let later = *phase < to;
            if later {
                *phase = to;
            }
            later
        });
    }

    async fn reached(&self, phase: Phase) {
        let mut seen = self.phase.subscribe();
        let _ = seen.wait_for(|p| *p >= phase).await;
    }

    /// Resolves when the shutdown has started.
    pub(crate) async fn started(&self) {
        self.reached(Phase::Draining).await
    }

    /// Resolves when the running job must be stopped.
    pub(crate) async fn forced(&self) {
        self.reached(Phase::Forced).await
    }
}

/// Starts the shutdown: schedulers stop, the API stops accepting, nothing queued starts.
pub(crate) fn stop(daemon: &Daemon) {
    daemon.shutdown.advance(Phase::Draining);
    daemon.queue.close();
}

pub(crate) async fn watch_signals(daemon: Arc<Daemon>) {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot watch SIGTERM and SIGINT: stop the daemon with SIGKILL");
        return;
    };
    let mut next = async || {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    };
    let first = next().await;
    let timeout = daemon.serve.shutdown_timeout;
    tracing::info!(
        signal = first,
        timeout_seconds = timeout.as_secs(),
        "shutting down: no new jobs; the running job may finish (a second signal stops it)"
    );
    stop(&daemon);
    let second = tokio::select! {
        signal = next() => format!("a second signal ({signal})"),
        () = tokio::time::sleep(timeout) => format!("the shutdown timeout ({} s)", timeout.as_secs()),
    };
    tracing::warn!("{second}: stopping the running job");
    daemon.shutdown.advance(Phase::Forced);
}
