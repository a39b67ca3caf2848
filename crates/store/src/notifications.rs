//! Notifications that could not be delivered: each is recorded in the audit trail (the event, the
//! webhook or mail server, the error; never the body), so what a receiver missed can be found
//! without the logs of the run that sent it.

use serde_json::json;

use crate::Store;
use crate::apply::{AuditRow, write_audit};
use crate::codec;
use crate::error::{Doing, Result};
use crate::holds::ALL_TARGETS;
use crate::runs::{self, RunId, RunStart};

/// One event that did not reach one receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// `joiner_created`, `leaver_disabled`, `run_failed`, `plan_held`.
    pub event: String,
    /// The event's id (its `Roster-Delivery` header).
    pub delivery: String,
    /// `webhook NAME` or `smtp`.
    pub receiver: String,
    /// The run the event is about, when it was recorded.
    pub about: Option<RunId>,
    /// The person the event is about, if one.
    pub person: Option<String>,
    pub error: String,
}

impl Store {
    /// Records undelivered notifications as one operator's run (command `notify`) with an audit
    /// entry each (kind `notify`, target `*`, outcome `failed`, `after` = the event, its id, the
    /// receiver and the run it is about).
    pub async fn record_undelivered(&self, start: &RunStart, undelivered: &[Undelivered]) -> Result<RunId> {
        let doing = || "recording undelivered notifications".to_string();
        let mut tx = self.write().await.doing(doing)?;
        let now = codec::timestamp(codec::now());
        let run = runs::insert_operator_run(&mut tx, start, &now).await?;
        let reasons: Vec<String> = undelivered
            .iter()
            .map(|u| match u.about {
                Some(about) => format!("{} event of run {about} not delivered to {}", u.event, u.receiver),
                None => format!("{} event not delivered to {}", u.event, u.receiver),
            })
            .collect();
        let rows = undelivered
            .iter()
            .zip(&reasons)
            .enumerate()
            .map(|(op_id, (u, reason))| AuditRow {
                op_id,
                person: u.person.as_deref(),
                target: ALL_TARGETS,
                kind: "notify",
                dn: "",
                reason,
                outcome: "failed",
                error: Some(u.error.clone()),
                before: None,
                after: Some(
                    json!({
                        "event": u.event,
                        "delivery": u.delivery,
                        "receiver": u.receiver,
                        "run": u.about.map(|r| r.0),
                    })
                    .to_string(),
                ),
            })
            .collect();
        write_audit(&mut tx, &self.audit_key, run, &start.actor, &now, rows).await?;
        tx.commit().await.doing(doing)?;
        Ok(run)
    }
}
