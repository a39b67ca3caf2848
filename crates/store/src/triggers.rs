//! Jobs triggered by hand through the daemon's API: the trigger itself is recorded, so the audit
//! trail says who asked for a run even when the run it queued never starts (a shutdown, a job
//! already queued). The run the job then makes is recorded as every run is.

use serde_json::json;

use crate::Store;
use crate::apply::{AuditRow, write_audit};
use crate::codec;
use crate::error::{Doing, Result};
use crate::holds::ALL_TARGETS;
use crate::runs::{self, RunId, RunStart};

impl Store {
    /// Records that `start.actor` triggered `job` (which runs `roster <command>`) as an operator's
    /// run with one audit entry (kind `trigger`, target `*`, `after` the job and whether it was
    /// queued or already waiting).
    pub async fn record_trigger(&self, start: &RunStart, job: &str, command: &str, queued: bool) -> Result<RunId> {
        let doing = || format!("recording the trigger of job {job}");
        let mut tx = self.write().await.doing(doing)?;
        let now = codec::timestamp(codec::now());
        let run = runs::insert_operator_run(&mut tx, start, &now).await?;
        let reason = if queued {
            format!("job {job} (roster {command}) triggered by {}", start.actor)
        } else {
            format!("job {job} (roster {command}) triggered by {}; it was already queued", start.actor)
        };
        let entry = AuditRow {
            op_id: 0,
            person: None,
            target: ALL_TARGETS,
            kind: "trigger",
            dn: "",
            reason: &reason,
            outcome: "done",
            error: None,
            before: None,
            after: Some(json!({ "job": job, "command": command, "queued": queued }).to_string()),
        };
        write_audit(&mut tx, &self.audit_key, run, &start.actor, &now, vec![entry]).await?;
        tx.commit().await.doing(doing)?;
        Ok(run)
    }
}
