//! Runs: what was started, by whom, against which config, and how it ended.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use roster_core::plan::Summary;
use serde::Deserialize;
use sqlx::any::AnyRow;

use crate::Store;
use crate::codec::{self, Cells};
use crate::error::{Doing, Error, Result};
use crate::failures;
use crate::plan_parts::{self, Owner};

/// A run's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What is known when a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStart {
    /// `plan`, `apply`, `run`, `reconcile`, ...
    pub command: String,
    pub as_of: NaiveDate,
    pub config_hash: String,
    /// Who started it (a user name, or `scheduler`).
    pub actor: String,
    /// The safety limits a person overrode for this run, recorded for the audit.
    pub overrides: Vec<String>,
    /// The plan as JSON, when there is one at the start (a saved plan being applied).
    pub plan_json: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every operation landed.
    Success,
    /// Applied, with some operations failed.
    Partial,
    /// The run stopped on an error.
    Failed,
    /// A safety limit stopped the run before anything was applied.
    Blocked,
    /// Planned only: nothing was applied.
    Planned,
    /// An operator's action on the store (`roster release`): nothing was planned or applied to a
    /// target, and the run does not count as the last good one.
    Operator,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Blocked => "blocked",
            RunStatus::Planned => "planned",
            RunStatus::Operator => "operator",
        }
    }

    /// Whether the run's changes were applied: its config and source counts become the last good.
    pub fn applied(self) -> bool {
        matches!(self, RunStatus::Success | RunStatus::Partial)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Records an operator's action on the store (a release, a hold) as a run finished at `now`, with
/// status `operator`, so that its audit entries have a run and an actor.
pub(crate) async fn insert_operator_run(conn: &mut sqlx::AnyConnection, start: &RunStart, now: &str) -> Result<RunId> {
    let overrides = serde_json::to_string(&start.overrides)
        .map_err(|source| Error::Encode { what: format!("the overrides of {}", start.command), source })?;
    let id = sqlx::query_scalar::<_, i64>(
        "INSERT INTO runs (command, started_at, finished_at, as_of, config_hash, actor, overrides, status, failed, plan)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9) RETURNING id",
    )
    .bind(&start.command)
    .bind(now)
    .bind(now)
    .bind(codec::date(start.as_of))
    .bind(&start.config_hash)
    .bind(&start.actor)
    .bind(overrides)
    .bind(RunStatus::Operator.as_str())
    .bind(&start.plan_json)
    .fetch_one(conn)
    .await
    .doing(|| format!("recording the operator's {}", start.command))?;
    Ok(RunId(id))
}

/// The status of a run that has not finished (or whose process died).
const RUNNING: &str = "running";

/// What is known when a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFinish {
    pub status: RunStatus,
    pub summary: Summary,
    /// Records read per complete source; they become the last good counts when the run applied.
    pub source_counts: BTreeMap<String, u64>,
    /// Operations that failed.
    pub failed: u64,
}

/// A run as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: RunId,
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub as_of: NaiveDate,
    pub config_hash: String,
    /// `None` while the run is going, or when its process died before finishing it.
    pub status: Option<RunStatus>,
    /// Empty until finished.
    pub summary: Summary,
    pub failed: u64,
    pub source_counts: BTreeMap<String, u64>,
    pub actor: String,
    pub overrides: Vec<String>,
}

const RUN_COLUMNS: &str = "id, command, started_at, finished_at, as_of, config_hash, actor, overrides, status, summary, failed, source_counts";

fn run_record(row: &AnyRow) -> Result<RunRecord> {
    let cells = Cells::new(row, "runs", "?".to_string());
    let id = cells.int("id")?;
    let cells = Cells::new(row, "runs", id.to_string());
    let status = cells.text("status")?;
    let status = if status == RUNNING { None } else { Some(cells.variant("status")?) };
    Ok(RunRecord {
        id: RunId(id),
        command: cells.text("command")?,
        started_at: cells.timestamp("started_at")?,
        finished_at: cells.opt_timestamp("finished_at")?,
        as_of: cells.date("as_of")?,
        config_hash: cells.text("config_hash")?,
        status,
        summary: cells.opt_json("summary")?.unwrap_or_default(),
        failed: match cells.opt_int("failed")? {
            None => 0,
            Some(n) => u64::try_from(n).map_err(|_| cells.corrupt("failed", format!("{n} is out of range")))?,
        },
        source_counts: cells.opt_json("source_counts")?.unwrap_or_default(),
        actor: cells.text("actor")?,
        overrides: cells.json("overrides")?,
    })
}

fn encode<T: serde::Serialize>(what: impl FnOnce() -> String, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|source| Error::Encode { what: what(), source })
}

impl Store {
    /// The config hash of the last run that applied its changes (succeeded, or partly).
    pub async fn last_config_hash(&self) -> Result<Option<String>> {
        sqlx::query_scalar::<_, String>(
            "SELECT config_hash FROM runs WHERE status IN ('success', 'partial') ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .doing(|| "reading the last applied config hash".into())
    }

    pub async fn begin_run(&self, start: &RunStart) -> Result<RunId> {
        self.begin_run_in_parts(start, plan_parts::PART_BYTES).await
    }

    /// [`Store::begin_run`], the plan kept in parts of at most `part_bytes`.
    /// Public for the store's tests, which keep small plans in parts on both databases.
    #[doc(hidden)]
    pub async fn begin_run_in_parts(&self, start: &RunStart, part_bytes: usize) -> Result<RunId> {
        let doing = || format!("starting a {} run", start.command);
        let overrides = encode(|| "the run's overrides".into(), &start.overrides)?;
        let parts = start.plan_json.as_deref().map(|plan| plan_parts::split(plan, part_bytes)).unwrap_or_default();
        let mut tx = self.write().await.doing(doing)?;
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO runs (command, started_at, as_of, config_hash, actor, overrides, status, plan, plan_parts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&start.command)
        .bind(codec::timestamp(codec::now()))
        .bind(codec::date(start.as_of))
        .bind(&start.config_hash)
        .bind(&start.actor)
        .bind(overrides)
        .bind(RUNNING)
        .bind(parts.first().copied())
        .bind(parts.len().saturating_sub(1) as i64)
        .fetch_one(&mut *tx)
        .await
        .doing(doing)?;
        plan_parts::keep(&mut tx, Owner::Run, id, parts.get(1..).unwrap_or_default()).await?;
        tx.commit().await.doing(doing)?;
        Ok(RunId(id))
    }

    /// Keeps part `part` (1, 2, ...: those after the first of [`crate::split_plan`]) of the plan
    /// of `run`, a run started without it ([`RunStart::plan_json`] `None`), in a transaction of
    /// its own, so that a large plan is written a part at a time beside the run's other writes.
    /// The run has no plan until [`Store::record_run_plan`] writes the first part: a run whose
    /// process died before that shows none (as a plan-only run), and the parts kept so far are
    /// rows nothing reads.
    pub async fn keep_run_plan_part(&self, run: RunId, part: usize, text: &str) -> Result<()> {
        let doing = || format!("keeping part {part} of the plan of run {run}");
        let mut tx = self.write().await.doing(doing)?;
        check_running(&mut tx, run).await?;
        plan_parts::keep_part(&mut tx, Owner::Run, run.0, part, text).await?;
        tx.commit().await.doing(doing)
    }

    /// Records the plan of `run`, started without it: its first part, and how many
    /// [`Store::keep_run_plan_part`] kept after it. Fails, writing nothing, unless the run is
    /// still going, has no plan yet and has exactly those parts kept.
    pub async fn record_run_plan(&self, run: RunId, first: &str, parts: usize) -> Result<()> {
        let doing = || format!("recording the plan of run {run}");
        let mut tx = self.write().await.doing(doing)?;
        check_running(&mut tx, run).await?;
        let kept = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM plan_parts WHERE owner = 'run' AND id = $1")
            .bind(run.0)
            .fetch_one(&mut *tx)
            .await
            .doing(doing)?;
        if kept != parts as i64 {
            return Err(Error::Corrupt {
                table: "plan_parts",
                key: format!("run {}", run.0),
                column: "part",
                message: format!("the plan has {parts} part(s) after the first, but {kept} are kept"),
            });
        }
        let updated = sqlx::query("UPDATE runs SET plan = $1, plan_parts = $2 WHERE id = $3 AND plan IS NULL")
            .bind(first)
            .bind(parts as i64)
            .bind(run.0)
            .execute(&mut *tx)
            .await
            .doing(doing)?;
        if updated.rows_affected() == 0 {
            return Err(Error::Corrupt {
                table: "runs",
                key: run.0.to_string(),
                column: "plan",
                message: "the run has its plan already".to_string(),
            });
        }
        tx.commit().await.doing(doing)
    }

    /// Records how a run ended. When it applied (success or partial), its source counts become
    /// the last good counts the shrink limit compares with. The run's audit entries update the
    /// failures table (see [`crate::failures`]).
    pub async fn finish_run(&self, run: RunId, finish: &RunFinish) -> Result<()> {
        let summary = encode(|| format!("the summary of run {run}"), &finish.summary)?;
        let counts = encode(|| format!("the source counts of run {run}"), &finish.source_counts)?;
        let finished_at = codec::timestamp(codec::now());
        let doing = || format!("finishing run {run}");
        let mut tx = self.write().await.doing(doing)?;
        let updated = sqlx::query(
            "UPDATE runs SET finished_at = $1, status = $2, summary = $3, failed = $4, source_counts = $5
             WHERE id = $6 AND status = 'running'",
        )
        .bind(&finished_at)
        .bind(finish.status.as_str())
        .bind(summary)
        .bind(codec::count(finish.failed))
        .bind(counts)
        .bind(run.0)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        if updated.rows_affected() == 0 {
            let exists = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM runs WHERE id = $1")
                .bind(run.0)
                .fetch_one(&mut *tx)
                .await
                .doing(doing)?;
            return Err(if exists == 0 { Error::UnknownRun(run) } else { Error::RunFinished(run) });
        }
        if finish.status.applied() {
            for (source, count) in &finish.source_counts {
                sqlx::query(
                    "INSERT INTO source_counts (source, count, recorded_at, run) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (source) DO UPDATE
                     SET count = excluded.count, recorded_at = excluded.recorded_at, run = excluded.run",
                )
                .bind(source)
                .bind(codec::count(*count))
                .bind(&finished_at)
                .bind(run.0)
                .execute(&mut *tx)
                .await
                .doing(doing)?;
            }
        }
        failures::record_run(&mut tx, run).await?;
        tx.commit().await.doing(doing)
    }

    /// The latest runs, newest first.
    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .doing(|| "reading runs".into())?;
        rows.iter().map(run_record).collect()
    }

    /// One run, `None` when the store has no such run.
    pub async fn run(&self, run: RunId) -> Result<Option<RunRecord>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run.0)
            .fetch_optional(&self.pool)
            .await
            .doing(|| format!("reading run {run}"))?;
        row.as_ref().map(run_record).transpose()
    }

    /// The plan a run applied, as the JSON it was recorded as: `None` when there is no such run,
    /// `Some(None)` when the run recorded no plan (a plan-only, blocked or operator's run).
    pub async fn run_plan(&self, run: RunId) -> Result<Option<Option<String>>> {
        let row = sqlx::query_as::<_, (Option<String>, i64)>("SELECT plan, plan_parts FROM runs WHERE id = $1")
            .bind(run.0)
            .fetch_optional(&self.pool)
            .await
            .doing(|| format!("reading the plan of run {run}"))?;
        match row {
            None => Ok(None),
            Some((None, _)) => Ok(Some(None)),
            Some((Some(first), parts)) => {
                Ok(Some(Some(plan_parts::whole(&self.pool, Owner::Run, run.0, first, parts).await?)))
            }
        }
    }

    /// How a run's operations ended: (kind, outcome, count), from its audit entries.
    pub async fn operation_counts(&self, run: RunId) -> Result<Vec<(String, String, u64)>> {
        let rows = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT kind, outcome, count(*) FROM audit WHERE run = $1 GROUP BY kind, outcome ORDER BY kind, outcome",
        )
        .bind(run.0)
        .fetch_all(&self.pool)
        .await
        .doing(|| format!("counting the operations of run {run}"))?;
        Ok(rows.into_iter().map(|(kind, outcome, n)| (kind, outcome, u64::try_from(n).unwrap_or(0))).collect())
    }
}

/// Fails unless the run exists and has not finished: outcomes are recorded into a running run only.
/// Returns the run's actor, which the audit chain covers.
pub(crate) async fn check_running(conn: &mut sqlx::AnyConnection, run: RunId) -> Result<String> {
    let row = sqlx::query_as::<_, (String, String)>("SELECT status, actor FROM runs WHERE id = $1")
        .bind(run.0)
        .fetch_optional(&mut *conn)
        .await
        .doing(|| format!("reading run {run}"))?;
    match row {
        None => Err(Error::UnknownRun(run)),
        Some((status, actor)) if status == RUNNING => Ok(actor),
        Some(_) => Err(Error::RunFinished(run)),
    }
}
