//! Operator holds: roster plans nothing for a person on hold until the hold ends. Set and lifted
//! only by an operator (`roster hold`, `roster unhold`); a run reads holds but never writes them, so
//! a hold put while a run is going is not lost when that run records its persons.

use roster_core::state::Hold;
use serde_json::json;

use crate::Store;
use crate::apply::{AuditRow, write_audit};
use crate::codec;
use crate::error::{Doing, Error, Result};
use crate::runs::{self, RunId, RunStart};

/// The audit entries of holds concern a person in every target at once.
pub const ALL_TARGETS: &str = "*";

/// A hold put or lifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldChange {
    pub run: RunId,
    /// The hold the person had before (an expired one included).
    pub before: Option<Hold>,
}

impl Store {
    /// Puts `person` on `hold` (replacing any hold they had), or lifts their hold (`None`).
    /// Recorded, in the same transaction, as an operator's run with one audit entry (kind `hold` or
    /// `unhold`, target `*`). `None`, and nothing written, when the store knows no such person: a
    /// hold needs a person roster has recorded at least once.
    pub async fn set_hold(&self, start: &RunStart, person: &str, hold: Option<&Hold>) -> Result<Option<HoldChange>> {
        let doing = || format!("changing the hold of person {person}");
        let mut tx = self.write().await.doing(doing)?;
        let row: Option<(Option<String>,)> = sqlx::query_as("SELECT hold FROM persons WHERE key = $1")
            .bind(person)
            .fetch_optional(&mut *tx)
            .await
            .doing(doing)?;
        let Some((before,)) = row else {
            return Ok(None);
        };
        let before: Option<Hold> = before.map(|text| serde_json::from_str(&text)).transpose().map_err(|e| {
            Error::Corrupt { table: "persons", key: person.to_string(), column: "hold", message: e.to_string() }
        })?;
        let encoded = hold
            .map(serde_json::to_string)
            .transpose()
            .map_err(|source| Error::Encode { what: format!("the hold of person {person}"), source })?;

        let now = codec::timestamp(codec::now());
        let run = runs::insert_operator_run(&mut tx, start, &now).await?;
        let reason = match hold {
            Some(h) => format!(
                "put on hold by {} {}: {}",
                start.actor,
                h.until.map(|d| format!("until {d}")).unwrap_or_else(|| "until lifted".to_string()),
                h.reason
            ),
            None => format!("hold lifted by {}", start.actor),
        };
        let entry = AuditRow {
            op_id: 0,
            person: Some(person),
            target: ALL_TARGETS,
            kind: if hold.is_some() { "hold" } else { "unhold" },
            dn: "",
            reason: &reason,
            outcome: "done",
            error: None,
            before: before.as_ref().map(|h| json!({ "hold": h }).to_string()),
            after: hold.map(|h| json!({ "hold": h }).to_string()),
        };
        write_audit(&mut tx, &self.audit_key, run, &start.actor, &now, vec![entry]).await?;
        sqlx::query("UPDATE persons SET hold = $1 WHERE key = $2")
            .bind(encoded)
            .bind(person)
            .execute(&mut *tx)
            .await
            .doing(doing)?;
        tx.commit().await.doing(doing)?;
        Ok(Some(HoldChange { run, before }))
    }
}
