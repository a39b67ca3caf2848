//! Prometheus metrics, recorded through the `metrics` facade and rendered at `/metrics` by
//! metrics-exporter-prometheus. What a job's runs did (operations by kind and outcome, quarantined
//! rows) is read from the store once the job's process has finished: the store is what the run
//! recorded, the daemon never guesses.
//! Held plans waiting for an approver are counted from the store at each scrape.

use std::time::Duration;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use roster_store::{RunId, Store};

const RUNS: &str = "roster_job_runs_total";
const DURATION: &str = "roster_job_duration_seconds";
const LAST_SUCCESS: &str = "roster_job_last_success_timestamp_seconds";
const QUEUE: &str = "roster_queue_length";
const OPERATIONS: &str = "roster_operations_total";
const QUARANTINED: &str = "roster_quarantined_rows";
const HELD: &str = "roster_held_plans";
const LEADER: &str = "roster_leader";

/// Buckets of job durations, in seconds: from a quick plan to a long full run.
const DURATION_BUCKETS: [f64; 10] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

pub(crate) fn install() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DURATION.to_string()), &DURATION_BUCKETS)
        .context("configuring the metrics' buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    metrics::describe_counter!(
        RUNS,
        "Jobs run, by job and outcome (success, partial, blocked, error, usage_error, killed)."
    );
    metrics::describe_histogram!(DURATION, metrics::Unit::Seconds, "How long each job's process ran.");
    metrics::describe_gauge!(LAST_SUCCESS, metrics::Unit::Seconds, "Unix time the job last ended in success.");
    metrics::describe_gauge!(QUEUE, "Jobs waiting in the queue (not counting the running one).");
    metrics::describe_counter!(
        OPERATIONS,
        "Operations of the jobs' runs, by kind and outcome, as recorded in the store."
    );
    metrics::describe_gauge!(QUARANTINED, "Rows quarantined by the job's last run (bad source rows).");
    metrics::describe_gauge!(HELD, "Plans held by a safety limit or an approval rule, waiting for an approver.");
    metrics::describe_gauge!(LEADER, "1 while this daemon leads (runs the schedule and the jobs), 0 on a standby.");
    Ok(handle)
}

/// Counts the held plans waiting for an approver (at each scrape: a decision made through the
/// CLI changes it too). A store that does not answer leaves the last count.
pub(crate) async fn held_plans(store: &Store) {
    match store.held_plans(Some(roster_store::HeldStatus::Waiting), 10_000).await {
        Ok(waiting) => metrics::gauge!(HELD).set(waiting.len() as f64),
        Err(e) => tracing::warn!(error = %e, "counting the held plans for /metrics"),
    }
}

pub(crate) fn leader(leading: bool) {
    metrics::gauge!(LEADER).set(if leading { 1.0 } else { 0.0 });
}

pub(crate) fn queue_length(waiting: usize) {
    metrics::gauge!(QUEUE).set(waiting as f64);
}

pub(crate) async fn job_finished(store: &Store, job: &str, outcome: &'static str, took: Duration, runs: &[RunId]) {
    let job = job.to_string();
    metrics::counter!(RUNS, "job" => job.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!(DURATION, "job" => job.clone()).record(took.as_secs_f64());
    if outcome == "success" {
        metrics::gauge!(LAST_SUCCESS, "job" => job.clone()).set(chrono::Utc::now().timestamp() as f64);
    }
    for run in runs {
        match store.run(*run).await {
            Ok(Some(record)) => {
                metrics::gauge!(QUARANTINED, "job" => job.clone()).set(record.summary.quarantined_rows as f64)
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(job = %job, "cannot read run {run} for the metrics: {e}"),
        }
        match store.operation_counts(*run).await {
            Ok(counts) => {
                for (kind, outcome, n) in counts {
                    metrics::counter!(OPERATIONS, "kind" => kind, "outcome" => outcome).increment(n);
                }
            }
            Err(e) => tracing::warn!(job = %job, "cannot count the operations of run {run}: {e}"),
        }
    }
}
