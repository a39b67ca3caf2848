//! Recording an apply as it happens: an intent before each operation is sent, its outcome when it
//! is known, and the links that outcome changes. A crash between the two leaves the intent, so the
//! next run knows the operation may have happened.

use std::collections::{BTreeMap, HashMap};

use roster_core::plan::{Action, Applied, AttrChange, Operation};
use serde_json::{Value, json};
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

fn changes_json(changes: &[AttrChange], side: impl Fn(&AttrChange) -> &Vec<String>) -> Value {
    Value::Object(changes.iter().map(|c| (c.attr.as_str().to_string(), Value::from(side(c).clone()))).collect())
}

/// The audit's before and after of an operation, as planned. See [`crate::AuditEntry`].
fn before_after(action: &Action) -> (Option<Value>, Option<Value>) {
    match action {
        Action::CreateContainer { .. } => (None, None),
        Action::Create { dn, attributes, enabled, password } => (
            None,
            Some(json!({
                "dn": dn,
                "enabled": enabled,
                "password": password,
                "attributes": codec::attr_map_json(attributes),
            })),
        ),
        Action::SetPassword { must_change, .. } => (None, Some(json!({ "must_change": must_change }))),
        Action::Adopt { object_id, .. } => (None, Some(json!({ "object_id": object_id }))),
        Action::Update { changes, .. } | Action::Enable { changes, .. } | Action::Disable { changes, .. } => {
            (Some(changes_json(changes, |c| &c.old)), Some(changes_json(changes, |c| &c.new)))
        }
        Action::Rename { dn, new_dn, .. } => (Some(json!({ "dn": dn })), Some(json!({ "dn": new_dn }))),
        Action::CreateGroup { members, attributes, .. } => {
            (None, Some(json!({ "members": members, "attributes": codec::attr_map_json(attributes) })))
        }
        Action::AddMember { member, .. } => (None, Some(json!({ "member": member }))),
        Action::RemoveMember { member, .. } => (Some(json!({ "member": member })), None),
        Action::Delete { object_id, .. } => (object_id.as_ref().map(|id| json!({ "object_id": id })), None),
    }
}

/// Adds to the after of a create that landed what only the target knew: the new object's id.
fn add_object_id(action: &Action, applied: &Applied, after: &mut Option<Value>) {
    if let (Action::Create { .. }, Some(Value::Object(fields)), Some(entry)) = (action, after, &applied.entry) {
        fields.insert("object_id".to_string(), Value::String(entry.object_id.clone()));
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
    pub(crate) before: Option<Value>,
    pub(crate) after: Option<Value>,
}

impl<'a> AuditRow<'a> {
    fn of(
        op: &'a Operation,
        outcome: &'static str,
        error: Option<String>,
        before: Option<Value>,
        after: Option<Value>,
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
            before_vals: row.before.as_ref().map(Value::to_string),
            after_vals: row.after.as_ref().map(Value::to_string),
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
                let (before, after) = before_after(&op.action);
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
    pub async fn record_outcomes(&self, run: RunId, results: &[(Operation, Outcome)]) -> Result<()> {
        let doing = || format!("recording outcomes of run {run}");
        let mut tx = self.write().await.doing(doing)?;
        let actor = check_running(&mut tx, run).await?;
        let landed = results.iter().filter_map(|(op, outcome)| match outcome {
            Outcome::Done(_) => Some(op),
            _ => None,
        });
        let mut links = LinkSet::load(&mut tx, landed).await?;
        let mut rows = Vec::with_capacity(results.len());
        for (op, outcome) in results {
            let (before, mut after) = before_after(&op.action);
            let error = match outcome {
                Outcome::Done(applied) => {
                    add_object_id(&op.action, applied, &mut after);
                    links.apply(op, applied)
                }
                _ => outcome.error().map(str::to_string),
            };
            rows.push(AuditRow::of(op, outcome.as_str(), error, before, after));
        }
        links.write(&mut tx).await?;
        write_audit(&mut tx, &self.audit_key, run, &actor, &codec::timestamp(codec::now()), rows).await?;
        tx.commit().await.doing(doing)
    }
}
