//! Reading the audit trail.

use crate::sql::Sql;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use crate::Store;
use crate::codec::{self, Cells};
use crate::error::{Doing, Result};
use crate::runs::RunId;

/// Which audit entries to read. Every filter given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// The person's key.
    pub person: Option<String>,
    /// The object written to (compared case-insensitively, as directories compare DNs).
    pub dn: Option<String>,
    pub run: Option<RunId>,
    /// Entries at or after this moment.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this moment.
    pub until: Option<DateTime<Utc>>,
    /// At most this many entries, the newest.
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> AuditQuery {
        AuditQuery { person: None, dn: None, run: None, since: None, until: None, limit: 100 }
    }
}

/// One operation of one run (or one operator action): who, what, why, before, after, when, and
/// how it went.
///
/// `before` and `after` are JSON objects derived from the operation:
///
/// | kind | before | after |
/// |---|---|---|
/// | create | - | `{"dn", "enabled", "password", "attributes": {attr: [values]}}`, plus `"object_id"` once done |
/// | set_password | - | `{"must_change"}` (never a password: the store holds no secret) |
/// | adopt | - | `{"object_id"}` |
/// | update, enable, disable | `{attr: [old values]}` | `{attr: [new values]}` |
/// | rename | `{"dn": old}` | `{"dn": new}` |
/// | create_group | - | `{"members": [dns], "attributes": {attr: [values]}}` |
/// | add_member / remove_member | - / `{"member"}` | `{"member"}` / - |
/// | delete | `{"object_id"}` when known | - |
/// | create_container | - | - |
/// | release (an operator's) | `{"failed_runs", "last_error"}` | - |
/// | hold, unhold (an operator's; target `*`) | `{"hold"}` when there was one | `{"hold"}` when put |
/// | trigger (a job triggered through the API; target `*`) | - | `{"job", "command", "queued"}` |
/// | notify (an undelivered notification; target `*`, outcome `failed`) | - | `{"event", "delivery", "receiver", "run"}` |
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub run: RunId,
    /// Who started the run (or, for a `release`, who released).
    pub actor: String,
    /// When the operation's intent, then its outcome, was recorded.
    pub at: DateTime<Utc>,
    /// The operation's position in its run's plan.
    pub op_id: usize,
    pub person: Option<String>,
    pub target: String,
    /// The action: `create`, `update`, `rename`, ... (`Action::kind`).
    pub kind: String,
    /// The object written to (for memberships: the group).
    pub dn: String,
    pub reason: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// `intent` (sent, or about to be, outcome not recorded), `done`, `failed`, `unknown` (sent,
    /// no answer), `skipped`.
    pub outcome: String,
    /// Why it failed, or why it was skipped.
    pub error: Option<String>,
}

fn entry(row: &AnyRow) -> Result<AuditEntry> {
    let id = Cells::new(row, "audit", "?".to_string()).int("id")?;
    let cells = Cells::new(row, "audit", id.to_string());
    Ok(AuditEntry {
        id,
        run: RunId(cells.int("run")?),
        actor: cells.text("actor")?,
        at: cells.timestamp("at")?,
        op_id: cells.unsigned("op_id")?,
        person: cells.opt_text("person")?,
        target: cells.text("target")?,
        kind: cells.text("kind")?,
        dn: cells.text("dn")?,
        reason: cells.text("reason")?,
        before: cells.opt_json("before_vals")?,
        after: cells.opt_json("after_vals")?,
        outcome: cells.text("outcome")?,
        error: cells.opt_text("error")?,
    })
}

impl Store {
    /// Audit entries matching `query`, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut sql = Sql::new(
            "SELECT a.id, a.run, r.actor, a.at, a.op_id, a.person, a.target, a.kind, a.dn, a.reason, a.before_vals,
                    a.after_vals, a.outcome, a.error
             FROM audit AS a JOIN runs AS r ON r.id = a.run WHERE 1 = 1",
        );
        if let Some(person) = &query.person {
            sql.push(" AND a.person = ").push_bind(person.clone());
        }
        if let Some(dn) = &query.dn {
            sql.push(" AND lower(a.dn) = lower(").push_bind(dn.clone()).push(")");
        }
        if let Some(run) = query.run {
            sql.push(" AND a.run = ").push_bind(run.0);
        }
        if let Some(since) = query.since {
            sql.push(" AND a.at >= ").push_bind(codec::timestamp(since));
        }
        if let Some(until) = query.until {
            sql.push(" AND a.at < ").push_bind(codec::timestamp(until));
        }
        sql.push(" ORDER BY a.at DESC, a.id DESC LIMIT ").push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.pool).await.doing(|| "reading the audit trail".into())?;
        rows.iter().map(entry).collect()
    }
}
