//! Persons whose operations keep failing in a target: counted when a run finishes, read into the
//! snapshot (the planner quarantines a person in a target from
//! `safety.quarantine_after_failed_runs` on), and cleared by an operator's release.
//!
//! A finished run's audit entries decide, per (target, person):
//!
//! - any operation `failed`, `unknown` (sent, no answer) or `skipped` (its dependency did not land,
//!   or what it was planned against changed): one more consecutive failed run, and the last error
//!   is the error of the last such operation in plan order;
//! - every operation `done`: the row goes, the streak is broken;
//! - no operation at all (nothing to do, or already quarantined), or operations still at `intent`
//!   (the run stopped before their outcome) and none failed: unchanged.
//!
//! Skips count because a person whose operations are skipped run after run has not converged any
//! more than one whose operations fail; it is the streak the quarantine is about.

use roster_core::state::Failure;
use serde_json::json;
use sqlx::AnyConnection;

use crate::Store;
use crate::apply::{AuditRow, write_audit};
use crate::codec::{self, Cells};
use crate::error::{Doing, Result};
use crate::runs::{self, RunId, RunStart};

/// Counts the run's failures and clears the persons whose operations all landed, from its audit
/// entries; in the transaction that finishes the run. Two statements, whatever the run's size.
pub(crate) async fn record_run(conn: &mut AnyConnection, run: RunId) -> Result<()> {
    let doing = || format!("counting the failures of run {run}");
    sqlx::query(
        "INSERT INTO failures (target, person, runs, last_error, last_run)
         SELECT target, person, 1, coalesce(error, outcome), $1 FROM (
             SELECT target, person, error, outcome,
                    row_number() OVER (PARTITION BY target, person ORDER BY op_id DESC) AS nth
             FROM audit
             WHERE run = $1 AND person IS NOT NULL AND outcome IN ('failed', 'unknown', 'skipped')) AS failed
         WHERE nth = 1
         ON CONFLICT (target, person) DO UPDATE
         SET runs = failures.runs + 1, last_error = excluded.last_error, last_run = excluded.last_run",
    )
    .bind(run.0)
    .execute(&mut *conn)
    .await
    .doing(doing)?;
    sqlx::query(
        "DELETE FROM failures WHERE (target, person) IN (
             SELECT target, person FROM audit WHERE run = $1 AND person IS NOT NULL
             GROUP BY target, person HAVING min(CASE WHEN outcome = 'done' THEN 1 ELSE 0 END) = 1)",
    )
    .bind(run.0)
    .execute(&mut *conn)
    .await
    .doing(doing)?;
    Ok(())
}

/// Every failure row, for the snapshot.
pub(crate) async fn read_all(conn: &mut AnyConnection) -> Result<Vec<Failure>> {
    let rows = sqlx::query("SELECT target, person, runs, last_error FROM failures ORDER BY target, person")
        .fetch_all(&mut *conn)
        .await
        .doing(|| "reading failures".into())?;
    rows.iter().map(failure).collect()
}

fn failure(row: &sqlx::any::AnyRow) -> Result<Failure> {
    let unnamed = Cells::new(row, "failures", "?".to_string());
    let (target, person) = (unnamed.text("target")?, unnamed.text("person")?);
    let cells = Cells::new(row, "failures", format!("{target}/{person}"));
    Ok(Failure { runs: cells.unsigned("runs")?, last_error: cells.text("last_error")?, target, person })
}

/// What a release cleared, and the run that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub run: RunId,
    /// The failure rows removed, as they were.
    pub failures: Vec<Failure>,
}

impl Store {
    /// Releases a person from quarantine: removes their failure rows (in `target`, or in every
    /// target), so the next run plans for them again from a count of zero. Recorded, in the same
    /// transaction, as a finished run (`start.command`, `start.actor`, status `operator`) with one
    /// audit entry per row removed (kind `release`, its before the count and last error), chained
    /// like every entry. `None`, and nothing written, when the person has no failure row there.
    pub async fn release(&self, start: &RunStart, person: &str, target: Option<&str>) -> Result<Option<Released>> {
        let doing = || format!("releasing person {person}");
        let mut tx = self.write().await.doing(doing)?;
        let rows = sqlx::query(
            "SELECT f.target, f.person, f.runs, f.last_error, l.dn FROM failures AS f
             LEFT JOIN links AS l ON l.target = f.target AND l.person = f.person
             WHERE f.person = $1 AND ($2 IS NULL OR f.target = $3) ORDER BY f.target",
        )
        .bind(person)
        .bind(target)
        .bind(target)
        .fetch_all(&mut *tx)
        .await
        .doing(doing)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut released = Vec::with_capacity(rows.len());
        let mut dns = Vec::with_capacity(rows.len());
        for row in &rows {
            released.push(failure(row)?);
            dns.push(Cells::new(row, "links", person.to_string()).opt_text("dn")?.unwrap_or_default());
        }

        let now = codec::timestamp(codec::now());
        let run = runs::insert_operator_run(&mut tx, start, &now).await?;

        let reasons: Vec<String> = released
            .iter()
            .map(|f| {
                format!("released by {}: failed in {} consecutive run(s), last: {}", start.actor, f.runs, f.last_error)
            })
            .collect();
        let entries = released
            .iter()
            .zip(&dns)
            .zip(&reasons)
            .enumerate()
            .map(|(op_id, ((f, dn), reason))| AuditRow {
                op_id,
                person: Some(&f.person),
                target: &f.target,
                kind: "release",
                dn,
                reason,
                outcome: "done",
                error: None,
                before: Some(json!({ "failed_runs": f.runs, "last_error": f.last_error }).to_string()),
                after: None,
            })
            .collect();
        write_audit(&mut tx, &self.audit_key, run, &start.actor, &now, entries).await?;

        sqlx::query("DELETE FROM failures WHERE person = $1 AND ($2 IS NULL OR target = $3)")
            .bind(person)
            .bind(target)
            .bind(target)
            .execute(&mut *tx)
            .await
            .doing(doing)?;
        tx.commit().await.doing(doing)?;
        Ok(Some(Released { run, failures: released }))
    }
}
