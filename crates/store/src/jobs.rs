//! The daemon's job queue, kept in the store: a job asked for waits in a row until it has run, so
//! that a daemon that dies (or a failover to another daemon on the same PostgreSQL store) loses no
//! job. The daemon keeps its queue in memory too; these rows are what a new leader starts from.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use crate::Store;
use crate::codec::{self, Cells};
use crate::error::{Doing, Error, Result};

/// A job waiting in the store's queue, or left running by a daemon that stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredJob {
    pub id: i64,
    pub job: String,
    pub actor: String,
    /// The command line of a job that is not configured; empty for a configured job.
    pub args: Vec<String>,
    pub queued_at: DateTime<Utc>,
    /// Set once a daemon started it: it was running when that daemon stopped.
    pub started_at: Option<DateTime<Utc>>,
}

fn stored_job(row: &AnyRow) -> Result<StoredJob> {
    let id = Cells::new(row, "job_queue", "?".to_string()).int("id")?;
    let cells = Cells::new(row, "job_queue", id.to_string());
    Ok(StoredJob {
        id,
        job: cells.text("job")?,
        actor: cells.text("actor")?,
        args: cells.json("args")?,
        queued_at: cells.timestamp("queued_at")?,
        started_at: cells.opt_timestamp("started_at")?,
    })
}

impl Store {
    /// Puts a job in the queue; its id.
    pub async fn queue_job(&self, job: &str, actor: &str, args: &[String]) -> Result<i64> {
        let doing = || format!("queueing job {job}");
        let args = serde_json::to_string(args)
            .map_err(|source| Error::Encode { what: format!("the command line of job {job}"), source })?;
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO job_queue (job, actor, args, queued_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(job)
                .bind(actor)
                .bind(args)
                .bind(codec::timestamp(codec::now()))
                .fetch_one(&self.pool)
                .await
                .doing(doing)?;
        Ok(id)
    }

    /// Marks a queued job running.
    pub async fn job_started(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE job_queue SET started_at = $1 WHERE id = $2")
            .bind(codec::timestamp(codec::now()))
            .bind(id)
            .execute(&self.pool)
            .await
            .doing(|| format!("marking queued job {id} started"))?;
        Ok(())
    }

    /// Takes a job out of the queue: it has run (or was withdrawn).
    pub async fn job_done(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM job_queue WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .doing(|| format!("taking job {id} out of the queue"))?;
        Ok(())
    }

    /// The queue, in the order the jobs were asked for.
    pub async fn queued_jobs(&self) -> Result<Vec<StoredJob>> {
        let rows = sqlx::query("SELECT id, job, actor, args, queued_at, started_at FROM job_queue ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .doing(|| "reading the job queue".to_string())?;
        rows.iter().map(stored_job).collect()
    }
}
