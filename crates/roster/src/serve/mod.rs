//! `roster serve`: the daemon. Runs the configured jobs on their cron schedules and on request,
//! one at a time, each as a child process of this same binary (`roster run`, `plan`, `reconcile`),
//! so a job takes exactly the CLI's code path, is recorded in the store as every run is, and a
//! crash in a run cannot take the daemon down; serves the REST API (`api.rs`, bearer tokens in
//! `auth.rs`) and Prometheus metrics (`metrics.rs`); and shuts down gracefully, letting the
//! running job finish. See `docs/daemon.md`.
//!
//! Tasks: one scheduler task per scheduled job (`scheduler.rs`), one worker that takes jobs from
//! the queue (`queue.rs`) in order, the HTTP server, and the signal watcher (`shutdown.rs`). The
//! schedulers and the worker run on the leader only (`leader.rs`): with a PostgreSQL store several
//! daemons may share it, and the others stand by.

mod api;
mod auth;
mod console;
mod leader;
mod metrics;
mod queue;
mod scheduler;
mod scim;
mod shutdown;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use roster_core::settings::ServeSettings;
use roster_store::Store;

use crate::cli::Cli;
use crate::exit;
use crate::run::{Loaded, UsageError, load_config};

/// What the API handlers, the scheduler and the worker share.
pub(crate) struct Daemon {
    pub(crate) loaded: Loaded,
    pub(crate) serve: ServeSettings,
    pub(crate) store: Store,
    pub(crate) queue: queue::Queue,
    pub(crate) shutdown: shutdown::Shutdown,
    pub(crate) leader: leader::Leadership,
    pub(crate) metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// How jobs call roster: this binary, the same config, the same `--as-of`.
    pub(crate) job_base: JobBase,
}

pub(crate) struct JobBase {
    pub(crate) exe: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) as_of: Option<chrono::NaiveDate>,
}

pub async fn serve(cli: &Cli) -> Result<u8> {
    let loaded = load_config(cli)?;
    let serve = loaded.settings.serve.clone().ok_or_else(|| {
        anyhow!(UsageError(format!(
            "{} has no [serve] section: `roster serve` needs at least `[serve]` (see docs/daemon.md)",
            cli.config.display()
        )))
    })?;
    let store = crate::audit::open_store(&loaded.settings, &loaded.config_dir).await?;
    let metrics = metrics::install()?;
    // Tried before the first request is answered, so that a daemon that can lead says so at once.
    let lock = leader::try_lock(&store).await?;
    let leading = lock.is_some() || store.backend() == roster_store::Backend::Sqlite;
    let exe = std::env::current_exe().context("finding this roster binary to run jobs with")?;
    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .with_context(|| format!("serve.listen: cannot listen on {}", serve.listen))?;
    let address = listener.local_addr().context("reading the address listened on")?;
    if !address.ip().is_loopback() {
        tracing::warn!(
            %address,
            "listening on a non-loopback address over plain HTTP: bearer tokens cross the network in clear; put a TLS-terminating reverse proxy in front (docs/daemon.md)"
        );
    }
    let daemon = Arc::new(Daemon {
        loaded,
        serve,
        store,
        queue: queue::Queue::default(),
        shutdown: shutdown::Shutdown::default(),
        leader: leader::Leadership::new(leading),
        metrics,
        job_base: JobBase { exe, config: cli.config.clone(), as_of: cli.as_of },
    });
    metrics::queue_length(0);

    let signals = tokio::spawn(shutdown::watch_signals(daemon.clone()));
    let leading = tokio::spawn(leader::run(daemon.clone(), lock));

    // The first line on standard output, for whoever started the daemon (and the tests) to read
    // the port from when `listen` asked for a free one.
    println!("listening on {address}");
    let _ = std::io::stdout().flush();
    tracing::info!(%address, jobs = daemon.serve.jobs.len(), leader = daemon.leader.is_leading(), "roster serve started");

    let router = api::router(daemon.clone())
        .merge(
            scim::router()
                .route_layer(axum::middleware::from_fn_with_state(daemon.clone(), scim::leader_only))
                .with_state(daemon.clone()),
        )
        .merge(console::router(daemon.clone()));
    let draining = daemon.shutdown.clone();
    let served = axum::serve(listener, router).with_graceful_shutdown(async move { draining.started().await }).await;

    // The server stops accepting at the first signal; the worker finishes the running job.
    let led = leading.await;
    signals.abort();
    daemon.store.clone().close().await;
    served.context("serving the API")?;
    led.context("the job worker stopped")??;
    tracing::info!("roster serve stopped");
    Ok(exit::SUCCESS)
}

/// `roster token new | hash`.
pub fn token_command(command: &crate::cli::TokenCommand) -> Result<u8> {
    use crate::cli::TokenCommand;
    match command {
        TokenCommand::Hash => {
            let mut token = String::new();
            std::io::stdin().read_line(&mut token).context("reading the token on standard input")?;
            if token.trim().is_empty() {
                return Err(anyhow!(UsageError("expected a token on standard input, found nothing".into())));
            }
            println!("{}", auth::hash(&token));
        }
        TokenCommand::New(args) => {
            if !["viewer", "operator", "approver"].contains(&args.role.as_str()) {
                return Err(anyhow!(UsageError(format!(
                    "--role: expected viewer, operator or approver, found {:?}",
                    args.role
                ))));
            }
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness for the token: {e}"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            println!("token (give it to {}; it is shown once and stored nowhere): {token}", args.name);
            println!();
            println!("[[serve.token]]");
            println!("name = {:?}", args.name);
            println!("role = {:?}", args.role);
            println!("sha256 = {:?}", auth::hash(&token));
        }
    }
    Ok(exit::SUCCESS)
}
