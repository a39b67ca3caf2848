//! Held plans: a plan blocked by a safety limit or an `[approval]` rule, kept (instead of
//! discarded) until an approver approves or rejects it. Its status goes `waiting` -> `approved` ->
//! `applied`, or `rejected`; a waiting plan is `expired` when a newer one is held (it no longer
//! says what a run would do). Decisions are operator runs with one audit entry, like holds.

use chrono::{DateTime, NaiveDate, Utc};
use roster_core::plan::Plan;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;

use crate::Store;
use crate::apply::{AuditRow, write_audit};
use crate::codec::{self, Cells};
use crate::error::{Doing, Error, Result};
use crate::holds::ALL_TARGETS;
use crate::plan_parts::{self, Owner};
use crate::runs::{self, RunId, RunStart};

/// Where a held plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldStatus {
    Waiting,
    Approved,
    Rejected,
    Applied,
    Expired,
}

impl HeldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HeldStatus::Waiting => "waiting",
            HeldStatus::Approved => "approved",
            HeldStatus::Rejected => "rejected",
            HeldStatus::Applied => "applied",
            HeldStatus::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<HeldStatus> {
        [HeldStatus::Waiting, HeldStatus::Approved, HeldStatus::Rejected, HeldStatus::Applied, HeldStatus::Expired]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A held plan as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldPlan {
    pub id: i64,
    /// The run that was blocked.
    pub run: i64,
    pub created_at: DateTime<Utc>,
    pub actor: String,
    pub as_of: NaiveDate,
    pub config_hash: String,
    pub status: HeldStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
    pub applied_run: Option<i64>,
    /// The held plan this one was made from (what changed since it was approved).
    pub follows: Option<i64>,
    pub plan: Plan,
}

/// A held plan from its row and its whole plan text (see [`Store::whole_plan`]).
fn held(row: &AnyRow, plan: &str) -> Result<HeldPlan> {
    let cells = Cells::new(row, "held_plans", "?".to_string());
    let id = cells.int("id")?;
    let cells = Cells::new(row, "held_plans", id.to_string());
    let status = cells.text("status")?;
    Ok(HeldPlan {
        id,
        run: cells.int("run")?,
        created_at: cells.timestamp("created_at")?,
        actor: cells.text("actor")?,
        as_of: cells.date("as_of")?,
        config_hash: cells.text("config_hash")?,
        status: HeldStatus::parse(&status)
            .ok_or_else(|| cells.corrupt("status", format!("unknown status {status:?}")))?,
        decided_by: cells.opt_text("decided_by")?,
        decided_at: cells.opt_timestamp("decided_at")?,
        decision_reason: cells.opt_text("decision_reason")?,
        applied_run: cells.opt_int("applied_run")?,
        follows: cells.opt_int("follows")?,
        plan: cells.parse_json("plan", plan)?,
    })
}

/// What deciding on a held plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// Recorded as this operator's run.
    Done(RunId),
    NotFound,
    /// Only a waiting plan can be decided on; it is this.
    NotWaiting(HeldStatus),
}

impl Store {
    /// Keeps the blocked `plan` of `run` as a held plan waiting for an approver, and expires the
    /// plans that waited before it (a newer plan says what a run would do now). `follows`: the
    /// approved plan whose re-check left this one.
    pub async fn hold_plan(&self, run: RunId, actor: &str, plan: &Plan, follows: Option<i64>) -> Result<i64> {
        self.hold_plan_in_parts(run, actor, plan, follows, plan_parts::PART_BYTES).await
    }

    /// [`Store::hold_plan`], the plan kept in parts of at most `part_bytes`.
    /// Public for the store's tests, which keep small plans in parts on both databases.
    #[doc(hidden)]
    pub async fn hold_plan_in_parts(
        &self,
        run: RunId,
        actor: &str,
        plan: &Plan,
        follows: Option<i64>,
        part_bytes: usize,
    ) -> Result<i64> {
        let doing = || format!("holding the plan of run {run}");
        let text = serde_json::to_string(plan)
            .map_err(|source| Error::Encode { what: format!("the plan of run {run}"), source })?;
        let parts = plan_parts::split(&text, part_bytes);
        let mut tx = self.write().await.doing(doing)?;
        sqlx::query("UPDATE held_plans SET status = 'expired' WHERE status = 'waiting'")
            .execute(&mut *tx)
            .await
            .doing(doing)?;
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO held_plans (run, created_at, actor, as_of, config_hash, plan, status, follows, plan_parts)
             VALUES ($1, $2, $3, $4, $5, $6, 'waiting', $7, $8) RETURNING id",
        )
        .bind(run.0)
        .bind(codec::timestamp(codec::now()))
        .bind(actor)
        .bind(codec::date(plan.as_of))
        .bind(&plan.config_hash)
        .bind(parts[0])
        .bind(follows)
        .bind(parts.len() as i64 - 1)
        .fetch_one(&mut *tx)
        .await
        .doing(doing)?;
        plan_parts::keep(&mut tx, Owner::Held, id.0, &parts[1..]).await?;
        tx.commit().await.doing(doing)?;
        Ok(id.0)
    }

    /// Held plans, newest first, of one status or all, at most `limit`.
    pub async fn held_plans(&self, status: Option<HeldStatus>, limit: u32) -> Result<Vec<HeldPlan>> {
        let rows = sqlx::query("SELECT * FROM held_plans WHERE $1 IS NULL OR status = $1 ORDER BY id DESC LIMIT $2")
            .bind(status.map(HeldStatus::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .doing(|| "reading the held plans".to_string())?;
        let mut plans = Vec::with_capacity(rows.len());
        for row in &rows {
            plans.push(held(row, &self.whole_plan(row).await?)?);
        }
        Ok(plans)
    }

    pub async fn held_plan(&self, id: i64) -> Result<Option<HeldPlan>> {
        let row = sqlx::query("SELECT * FROM held_plans WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .doing(|| format!("reading held plan {id}"))?;
        match row {
            Some(row) => Ok(Some(held(&row, &self.whole_plan(&row).await?)?)),
            None => Ok(None),
        }
    }

    /// The whole plan text of a `held_plans` row: its `plan` column and the parts kept beside it.
    async fn whole_plan(&self, row: &AnyRow) -> Result<String> {
        let cells = Cells::new(row, "held_plans", "?".to_string());
        let id = cells.int("id")?;
        plan_parts::whole(&self.pool, Owner::Held, id, cells.text("plan")?, cells.int("plan_parts")?).await
    }

    /// Approves (or rejects) a waiting plan: recorded, in the same transaction, as an operator's
    /// run (`start`, its actor the approver) with one audit entry of kind `approve` or `reject`
    /// carrying the reason and the operations approved.
    pub async fn decide_plan(&self, start: &RunStart, id: i64, approve: bool, reason: &str) -> Result<Decided> {
        let doing = || format!("deciding on held plan {id}");
        let mut tx = self.write().await.doing(doing)?;
        let row: Option<(String, String, i64)> =
            sqlx::query_as("SELECT status, plan, plan_parts FROM held_plans WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .doing(doing)?;
        let Some((status, first, parts)) = row else { return Ok(Decided::NotFound) };
        match HeldStatus::parse(&status) {
            Some(HeldStatus::Waiting) => {}
            Some(other) => return Ok(Decided::NotWaiting(other)),
            None => {
                return Err(Error::Corrupt {
                    table: "held_plans",
                    key: id.to_string(),
                    column: "status",
                    message: format!("unknown status {status:?}"),
                });
            }
        }
        let plan = plan_parts::whole(&mut *tx, Owner::Held, id, first, parts).await?;
        let operations = serde_json::from_str::<Plan>(&plan).map(|p| p.operations.len()).unwrap_or_default();
        let now = codec::timestamp(codec::now());
        let run = runs::insert_operator_run(&mut tx, start, &now).await?;
        let verb = if approve { "approved" } else { "rejected" };
        let text = format!("held plan {id} ({operations} operation(s)) {verb} by {}: {reason}", start.actor);
        let entry = AuditRow {
            op_id: 0,
            person: None,
            target: ALL_TARGETS,
            kind: if approve { "approve" } else { "reject" },
            dn: "",
            reason: &text,
            outcome: "done",
            error: None,
            before: Some(json!({ "held_plan": id, "status": "waiting" }).to_string()),
            after: Some(
                json!({ "held_plan": id, "status": verb, "operations": operations, "reason": reason }).to_string(),
            ),
        };
        write_audit(&mut tx, &self.audit_key, run, &start.actor, &now, vec![entry]).await?;
        sqlx::query(
            "UPDATE held_plans SET status = $1, decided_by = $2, decided_at = $3, decision_reason = $4 WHERE id = $5",
        )
        .bind(verb)
        .bind(&start.actor)
        .bind(&now)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await
        .doing(doing)?;
        tx.commit().await.doing(doing)?;
        Ok(Decided::Done(run))
    }

    /// Marks an approved plan applied by `run`.
    pub async fn held_plan_applied(&self, id: i64, run: RunId) -> Result<()> {
        sqlx::query("UPDATE held_plans SET status = 'applied', applied_run = $1 WHERE id = $2")
            .bind(run.0)
            .bind(id)
            .execute(&self.pool)
            .await
            .doing(|| format!("marking held plan {id} applied"))?;
        Ok(())
    }
}
