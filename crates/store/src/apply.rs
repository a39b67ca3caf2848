//! Recording an apply as it happens: an intent before each operation is sent, its outcome when it
//! is known, and the links that outcome changes. A crash between the two leaves the intent, so the
//! next run knows the operation may have happened.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use roster_core::attr::Attributes;
use roster_core::plan::{Action, Applied, AttrChange, Operation};
use serde::{Serialize, Serializer};
use serde_json::json;
use sqlx::AnyConnection;

use crate::sql::Sql;

use crate::Store;
use crate::chain::{AuditKey, Chain, StoredEntry};
use crate::codec;
use crate::error::{Doing, Error, Result};
use crate::links::LinkSet;
use crate::runs::{RunId, check_running};

/// Rows per multi-row audit insert (12 columns).
const CHUNK: usize = crate::sql::rows_per_statement(12);

/// What became of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(Applied),
    /// `unknown`: the operation was sent and no answer came; it may have happened.
    Failed {
        error: String,
        unknown: bool,
    },
    /// Not attempted (an operation it depends on failed, or what it was planned against changed).
    Skipped {
        reason: String,
    },
}

impl Outcome {
    fn as_str(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "done",
            Outcome::Failed { unknown: false, .. } => "failed",
            Outcome::Failed { unknown: true, .. } => "unknown",
            Outcome::Skipped { .. } => "skipped",
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Failed { error, .. } => Some(error),
            Outcome::Skipped { reason } => Some(reason),
        }
    }
}

/// One side (old or new values) of attribute changes as a JSON object.
struct ChangesJson<'a> {
    changes: &'a [AttrChange],
    new: bool,
}

impl Serialize for ChangesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_map(self.changes.iter().map(|c| (c.attr.as_str(), if self.new { &c.new } else { &c.old })))
    }
}

/// The after of a create (keys in the order `serde_json::Value` kept them: sorted).
#[derive(Serialize)]
struct CreateJson<'a> {
    attributes: &'a Attributes,
    dn: &'a str,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_id: Option<&'a str>,
    password: bool,
}

/// The after of a new group.
#[derive(Serialize)]
struct GroupJson<'a> {
    attributes: &'a Attributes,
    members: &'a [std::sync::Arc<str>],
}

/// JSON text of what the audit keeps: strings, booleans and lists of strings, which always
/// serialize.
fn text(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("strings, booleans and string lists always serialize to JSON")
}

/// The audit's before and after of an operation, as planned, as JSON texts; a create's after with
/// `object_id`, the new object's id, once the target told it. Written straight from the operation
/// (an intent and its outcome each write them, for every operation). See [`crate::AuditEntry`].
fn before_after(action: &Action, object_id: Option<&str>) -> (Option<String>, Option<String>) {
    match action {
        Action::CreateContainer { .. } => (None, None),
        Action::Create { dn, attributes, enabled, password } => {
            (None, Some(text(&CreateJson { attributes, dn, enabled: *enabled, object_id, password: *password })))
        }
        Action::SetPassword { must_change, .. } => (None, Some(json!({ "must_change": must_change }).to_string())),
        Action::Adopt { object_id, .. } => (None, Some(json!({ "object_id": object_id }).to_string())),
        Action::Update { changes, .. } | Action::Enable { changes, .. } | Action::Disable { changes, .. } => {
            (Some(text(&ChangesJson { changes, new: false })), Some(text(&ChangesJson { changes, new: true })))
        }
        Action::Rename { dn, new_dn, .. } => {
            (Some(json!({ "dn": dn }).to_string()), Some(json!({ "dn": new_dn }).to_string()))
        }
        Action::CreateGroup { members, attributes, .. } => (None, Some(text(&GroupJson { attributes, members }))),
        Action::AddMember { member, .. } => (None, Some(json!({ "member": member }).to_string())),
        Action::RemoveMember { member, .. } => (Some(json!({ "member": member }).to_string()), None),
        Action::Delete { object_id, .. } => (object_id.as_ref().map(|id| json!({ "object_id": id }).to_string()), None),
    }
}

/// One audit entry to write.
pub(crate) struct AuditRow<'a> {
    pub(crate) op_id: usize,
    pub(crate) person: Option<&'a str>,
    pub(crate) target: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) dn: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) outcome: &'static str,
    pub(crate) error: Option<String>,
    pub(crate) before: Option<String>,
    pub(crate) after: Option<String>,
}

impl<'a> AuditRow<'a> {
    fn of(
        op: &'a Operation,
        outcome: &'static str,
        error: Option<String>,
        before: Option<String>,
        after: Option<String>,
    ) -> Self {
        AuditRow {
            op_id: op.id,
            person: op.person.as_deref(),
            target: &op.target,
            kind: op.action.kind(),
            dn: op.action.dn(),
            reason: &op.reason,
            outcome,
            error,
            before,
            after,
        }
    }
}

/// Writes audit entries, in multi-row statements, and extends the audit chain with one event per
/// entry written (see [`crate::chain`]), computed in memory: an entry's row is exactly what was
/// bound, so only the ids come back from the database. An operation recorded again in the same run
/// (an intent, then its outcome; or an operation sent again) replaces its entry, which keeps its
/// id; within one call, the last of an operation's rows wins. `actor` is the run's, which the
/// chain covers with each entry.
pub(crate) async fn write_audit(
    conn: &mut AnyConnection,
    key: &AuditKey,
    run: RunId,
    actor: &str,
    at: &str,
    rows: Vec<AuditRow<'_>>,
) -> Result<()> {
    let doing = || format!("writing the audit trail of run {run}");
    let rows: BTreeMap<usize, AuditRow> = rows.into_iter().map(|row| (row.op_id, row)).collect();
    let mut entries: Vec<StoredEntry> = rows
        .into_values()
        .map(|row| StoredEntry {
            id: 0,
            run: run.0,
            at: at.to_string(),
            op_id: i64::try_from(row.op_id).unwrap_or(i64::MAX),
            person: row.person.map(str::to_string),
            target: row.target.to_string(),
            kind: row.kind.to_string(),
            dn: row.dn.to_string(),
            reason: row.reason.to_string(),
            before_vals: row.before,
            after_vals: row.after,
            outcome: row.outcome.to_string(),
            error: row.error,
        })
        .collect();
    let mut chain = Chain::open(conn, key).await?;
    for chunk in entries.chunks_mut(CHUNK) {
        let mut query = Sql::new(
            "INSERT INTO audit (run, at, op_id, person, target, kind, dn, reason, before_vals, after_vals, outcome, error) ",
        );
        query.push_values(chunk.iter(), |mut values, entry| {
            values
                .push_bind(entry.run)
                .push_bind(entry.at.as_str())
                .push_bind(entry.op_id)
                .push_bind(entry.person.as_deref())
                .push_bind(entry.target.as_str())
                .push_bind(entry.kind.as_str())
                .push_bind(entry.dn.as_str())
                .push_bind(entry.reason.as_str())
                .push_bind(entry.before_vals.as_deref())
                .push_bind(entry.after_vals.as_deref())
                .push_bind(entry.outcome.as_str())
                .push_bind(entry.error.as_deref());
        });
        query.push(
            " ON CONFLICT (run, op_id) DO UPDATE SET at = excluded.at, person = excluded.person,
              target = excluded.target, kind = excluded.kind, dn = excluded.dn, reason = excluded.reason,
              before_vals = excluded.before_vals, after_vals = excluded.after_vals, outcome = excluded.outcome,
              error = excluded.error
              RETURNING id, op_id",
        );
        let ids: HashMap<i64, i64> = query
            .build_query_as::<(i64, i64)>()
            .fetch_all(&mut *conn)
            .await
            .doing(doing)?
            .into_iter()
            .map(|(id, op_id)| (op_id, id))
            .collect();
        for entry in chunk.iter_mut() {
            entry.id = *ids.get(&entry.op_id).ok_or_else(|| Error::Corrupt {
                table: "audit",
                key: format!("run {run}, operation {}", entry.op_id),
                column: "id",
                message: "the database returned no id for an entry it wrote".to_string(),
            })?;
        }
        chunk.sort_by_key(|entry| entry.id);
        for entry in chunk.iter() {
            chain.push(entry, Some(actor));
        }
    }
    chain.write(conn).await
}

impl Store {
    /// Records, in one transaction, an audit entry with outcome "intent" for each operation about
    /// to be sent.
    pub async fn record_intents(&self, run: RunId, ops: &[Operation]) -> Result<()> {
        let doing = || format!("recording intents of run {run}");
        let mut tx = self.write().await.doing(doing)?;
        let actor = check_running(&mut tx, run).await?;
        let rows = ops
            .iter()
            .map(|op| {
                let (before, after) = before_after(&op.action, None);
                AuditRow::of(op, "intent", None, before, after)
            })
            .collect();
        write_audit(&mut tx, &self.audit_key, run, &actor, &codec::timestamp(codec::now()), rows).await?;
        tx.commit().await.doing(doing)
    }

    /// Records, in one transaction, the outcome of each operation: completes its audit entry (one
    /// without an intent gets its entry now) and, for the operations that landed, updates the
    /// links:
    ///
    /// - create: links the new object (its id from the connector; the DN, enabled and values as
    ///   planned, without `objectClass`; its password pending when one is to be set);
    /// - set_password: the password is no longer pending;
    /// - adopt: links the object, enabled, owning no values yet;
    /// - update, enable, disable: sets each changed attribute to its new values (removes it when
    ///   empty); enable and disable set enabled;
    /// - rename: the new DN; delete: removes the link;
    /// - containers and groups: audit only.
    ///
    /// An operation that failed or was skipped changes no link.
    pub async fn record_outcomes<O: Borrow<Operation>>(&self, run: RunId, results: &[(O, Outcome)]) -> Result<()> {
        let doing = || format!("recording outcomes of run {run}");
        let mut tx = self.write().await.doing(doing)?;
        let actor = check_running(&mut tx, run).await?;
        let landed = results.iter().filter_map(|(op, outcome)| match outcome {
            Outcome::Done(_) => Some(op.borrow()),
            _ => None,
        });
        let mut links = LinkSet::load(&mut tx, landed).await?;
        let mut rows = Vec::with_capacity(results.len());
        for (op, outcome) in results {
            let op = op.borrow();
            let (error, object_id) = match outcome {
                Outcome::Done(applied) => {
                    (links.apply(op, applied), applied.entry.as_ref().map(|e| e.object_id.as_str()))
                }
                _ => (outcome.error().map(str::to_string), None),
            };
            let (before, after) = before_after(&op.action, object_id);
            rows.push(AuditRow::of(op, outcome.as_str(), error, before, after));
        }
        links.write(&mut tx).await?;
        write_audit(&mut tx, &self.audit_key, run, &actor, &codec::timestamp(codec::now()), rows).await?;
        tx.commit().await.doing(doing)
    }
}
