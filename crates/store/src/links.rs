//! The links a batch of outcomes touches: read once, changed in memory in the batch's order,
//! written back once, so a batch of any size costs a few statements per 500 links.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use roster_core::attr::{AttrMap, AttrName};
use roster_core::plan::{Action, Applied, AttrChange, Operation};
use sqlx::AnyConnection;

use crate::sql::Sql;

use crate::codec::{self, Cells};
use crate::error::{Doing, Result};

/// Persons per `IN (...)` list (one value each, and the target).
const CHUNK: usize = crate::sql::MAX_BINDS - 1;
/// Links per multi-row insert (7 columns).
const ROWS: usize = crate::sql::rows_per_statement(7);

/// (target, person): a link's key.
type Key = (String, String);

/// A link's row, less its key.
struct Linked {
    object_id: String,
    dn: String,
    enabled: bool,
    values: AttrMap,
    password_pending: bool,
}

pub(crate) struct LinkSet {
    /// The touched links as they stand: `None` where there is no link (or no longer).
    links: HashMap<Key, Option<Linked>>,
    /// The links to write back.
    changed: BTreeSet<Key>,
}

/// Whether an operation that landed changes its person's link.
fn touches_link(action: &Action) -> bool {
    match action {
        Action::Create { .. }
        | Action::SetPassword { .. }
        | Action::Adopt { .. }
        | Action::Update { .. }
        | Action::Enable { .. }
        | Action::Disable { .. }
        | Action::Rename { .. }
        | Action::Delete { .. } => true,
        Action::CreateContainer { .. }
        | Action::CreateGroup { .. }
        | Action::AddMember { .. }
        | Action::RemoveMember { .. } => false,
    }
}

fn key(op: &Operation) -> Option<Key> {
    let person = op.person.as_ref()?;
    touches_link(&op.action).then(|| (op.target.to_string(), person.clone()))
}

impl LinkSet {
    /// Reads the current links of the persons whose operations landed.
    pub(crate) async fn load<'a>(
        conn: &mut AnyConnection,
        landed: impl Iterator<Item = &'a Operation>,
    ) -> Result<LinkSet> {
        let mut by_target: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (target, person) in landed.filter_map(key) {
            by_target.entry(target).or_default().insert(person);
        }
        let mut links = HashMap::new();
        for (target, persons) in &by_target {
            let persons: Vec<&String> = persons.iter().collect();
            for chunk in persons.chunks(CHUNK) {
                let mut query = Sql::new(
                    "SELECT person, object_id, dn, enabled, vals, password_pending FROM links WHERE target = ",
                );
                query.push_bind(target.clone()).push(" AND person IN ");
                codec::push_list(&mut query, chunk.iter().map(|person| person.as_str()));
                let rows = query.build().fetch_all(&mut *conn).await.doing(|| format!("reading links of {target}"))?;
                for row in &rows {
                    let person = Cells::new(row, "links", format!("{target}/?")).text("person")?;
                    let cells = Cells::new(row, "links", format!("{target}/{person}"));
                    let linked = Linked {
                        object_id: cells.text("object_id")?,
                        dn: cells.text("dn")?,
                        enabled: cells.boolean("enabled")?,
                        values: cells.json("vals")?,
                        password_pending: cells.boolean("password_pending")?,
                    };
                    links.insert((target.clone(), person), Some(linked));
                }
                for person in chunk {
                    links.entry((target.clone(), (*person).clone())).or_insert(None);
                }
            }
        }
        Ok(LinkSet { links, changed: BTreeSet::new() })
    }

    /// Applies an operation that landed. Returns, for the audit, why its link could not be written.
    pub(crate) fn apply(&mut self, op: &Operation, applied: &Applied) -> Option<String> {
        let key = key(op)?;
        let slot = self.links.entry(key.clone()).or_insert(None);
        match &op.action {
            Action::Create { dn, attributes, enabled, password } => {
                let Some(entry) = &applied.entry else {
                    return Some(
                        "created, but the connector reported no object id: not linked (a reconcile adopts it)".into(),
                    );
                };
                let mut values = attributes.to_map();
                values.remove(&AttrName::new("objectClass"));
                *slot = Some(Linked {
                    object_id: entry.object_id.clone(),
                    dn: dn.to_string(),
                    enabled: *enabled,
                    values,
                    password_pending: *password,
                });
            }
            Action::Adopt { dn, object_id } => {
                *slot = Some(Linked {
                    object_id: object_id.clone(),
                    dn: dn.clone(),
                    enabled: true,
                    values: AttrMap::new(),
                    password_pending: false,
                });
            }
            Action::Update { changes, .. } => change(slot.as_mut()?, changes, None),
            Action::Enable { changes, .. } => change(slot.as_mut()?, changes, Some(true)),
            Action::Disable { changes, .. } => change(slot.as_mut()?, changes, Some(false)),
            Action::SetPassword { .. } => slot.as_mut()?.password_pending = false,
            Action::Rename { new_dn, .. } => slot.as_mut()?.dn = new_dn.clone(),
            Action::Delete { .. } => *slot = None,
            Action::CreateContainer { .. }
            | Action::CreateGroup { .. }
            | Action::AddMember { .. }
            | Action::RemoveMember { .. } => {
                return None;
            }
        }
        self.changed.insert(key);
        None
    }

    /// Writes the changed links back: removals first, so an object id freed in the batch can be
    /// linked again in it.
    pub(crate) async fn write(self, conn: &mut AnyConnection) -> Result<()> {
        let doing = || "writing links".to_string();
        let mut kept = Vec::new();
        let mut gone_by_target: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for key in &self.changed {
            match self.links.get(key) {
                Some(Some(link)) => kept.push((key, link)),
                _ => gone_by_target.entry(&key.0).or_default().push(&key.1),
            }
        }
        for (target, persons) in gone_by_target {
            for chunk in persons.chunks(CHUNK) {
                let mut query = Sql::new("DELETE FROM links WHERE target = ");
                query.push_bind(target.to_string()).push(" AND person IN ");
                codec::push_list(&mut query, chunk.iter().copied());
                query.build().execute(&mut *conn).await.doing(doing)?;
            }
        }

        for chunk in kept.chunks(ROWS) {
            let mut query =
                Sql::new("INSERT INTO links (target, person, object_id, dn, enabled, vals, password_pending) ");
            query.push_values(chunk, |mut row, (key, link)| {
                row.push_bind(key.0.clone())
                    .push_bind(key.1.clone())
                    .push_bind(link.object_id.clone())
                    .push_bind(link.dn.clone())
                    .push_bind(i64::from(link.enabled))
                    .push_bind(codec::attr_map_json(&link.values))
                    .push_bind(i64::from(link.password_pending));
            });
            query.push(
                " ON CONFLICT (target, person) DO UPDATE SET object_id = excluded.object_id, dn = excluded.dn,
                  enabled = excluded.enabled, vals = excluded.vals, password_pending = excluded.password_pending",
            );
            query.build().execute(&mut *conn).await.doing(doing)?;
        }
        Ok(())
    }
}

/// Sets each changed attribute to its new values (removes it when they are empty).
fn change(link: &mut Linked, changes: &[AttrChange], enabled: Option<bool>) {
    for change in changes {
        if change.new.is_empty() {
            link.values.remove(&change.attr);
        } else {
            link.values.insert(change.attr.clone(), change.new.clone());
        }
    }
    if let Some(enabled) = enabled {
        link.enabled = enabled;
    }
}
