//! The snapshot the planner starts from: six queries in one read transaction, whatever the
//! number of persons.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::TryStreamExt;
use roster_core::attr::AttrMap;
use roster_core::source::Attrs;
use roster_core::state::{Link, ManagedGroup, Snapshot, StoredPerson, Tombstone, UnfinishedCreate};
use sqlx::any::AnyRow;

use crate::Store;
use crate::codec::{self, Cells};
use crate::error::{Doing, Result};
use crate::sql::Sql;

macro_rules! person_select {
    ($rest:literal) => {
        concat!(
            "SELECT key, login, state, records, eval_hash, missing_reads, left_on, next_transition, hold, record_keys, provenance FROM persons ",
            $rest
        )
    };
}

impl Store {
    /// Persons whose key, login or any record value contains `text` (case-insensitively for
    /// ASCII), by key, at most `limit`. An empty `text` lists the first `limit` persons.
    pub async fn search_persons(&self, text: &str, limit: u32) -> Result<Vec<StoredPerson>> {
        let pattern =
            format!("%{}%", text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let rows = sqlx::query(person_select!(
            "WHERE lower(key) LIKE $1 ESCAPE '\\' OR lower(login) LIKE $1 ESCAPE '\\'
             OR lower(records) LIKE $1 ESCAPE '\\' ORDER BY key LIMIT $2"
        ))
        .bind(pattern)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .doing(|| format!("searching persons for {text:?}"))?;
        rows.iter().map(person).collect()
    }

    /// One person as the store keeps them, with their links; `None` when the store knows no such
    /// person.
    pub async fn person(&self, key: &str) -> Result<Option<(StoredPerson, Vec<Link>)>> {
        let doing = || format!("reading person {key}");
        let Some(row) =
            sqlx::query(person_select!("WHERE key = $1")).bind(key).fetch_optional(&self.pool).await.doing(doing)?
        else {
            return Ok(None);
        };
        let links = sqlx::query(
            "SELECT target, person, object_id, dn, enabled, vals, password_pending FROM links WHERE person = $1 ORDER BY target",
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .doing(doing)?;
        Ok(Some((person(&row)?, links.iter().map(link).collect::<Result<_>>()?)))
    }
}

/// The columns of a person without their records: the source names stand in for them.
const PERSON_WITHOUT_RECORDS: &str = "SELECT key, login, state, sources, eval_hash, missing_reads, left_on, next_transition, hold, record_keys, provenance FROM persons";

fn person(row: &AnyRow) -> Result<StoredPerson> {
    let cells = Cells::keyed_by(row, "persons", "key")?;
    person_with(&cells, Arc::new(cells.records("records")?), false)
}

/// Each list of sources (as the store writes it) -> its sources, each with one shared empty record.
type EmptyRecords = HashMap<String, Arc<BTreeMap<String, Arc<Attrs>>>>;

/// A person read without their records: each of their sources with an empty record, in a map
/// shared by every person with the same sources (`shared`).
fn person_without_records(row: &AnyRow, shared: &mut EmptyRecords) -> Result<StoredPerson> {
    let cells = Cells::keyed_by(row, "persons", "key")?;
    let listed = cells.str("sources")?;
    let records = match shared.get(listed) {
        Some(records) => Arc::clone(records),
        None => {
            let sources: Vec<String> = cells.json("sources")?;
            let empty = Arc::new(Attrs::new());
            let records = Arc::new(sources.into_iter().map(|source| (source, Arc::clone(&empty))).collect());
            shared.insert(listed.to_string(), Arc::clone(&records));
            records
        }
    };
    person_with(&cells, records, true)
}

fn person_with(
    cells: &Cells,
    records: Arc<BTreeMap<String, Arc<Attrs>>>,
    records_omitted: bool,
) -> Result<StoredPerson> {
    Ok(StoredPerson {
        key: cells.key().to_string(),
        login: cells.opt_text("login")?,
        state: cells.variant("state")?,
        records,
        eval_hash: cells.text("eval_hash")?,
        missing_reads: cells.unsigned("missing_reads")?,
        left_on: cells.opt_date("left_on")?,
        next_transition: cells.opt_date("next_transition")?,
        hold: cells.opt_json("hold")?,
        record_keys: cells.json("record_keys")?,
        provenance: cells.json("provenance")?,
        records_omitted,
    })
}

fn link(row: &AnyRow) -> Result<Link> {
    let unnamed = Cells::new(row, "links", "?".to_string());
    let (target, person) = (unnamed.text("target")?, unnamed.text("person")?);
    let cells = Cells::new(row, "links", format!("{target}/{person}"));
    // `vals` is NULL where a daily run's snapshot did not read it (`link_values_of`).
    let values = cells.opt_json("vals")?;
    Ok(Link {
        object_id: cells.text("object_id")?,
        dn: cells.text("dn")?,
        enabled: cells.boolean("enabled")?,
        values_omitted: values.is_none(),
        values: values.unwrap_or_default(),
        password_pending: cells.boolean("password_pending")?,
        person,
        target,
    })
}

/// Link values read by target, then person.
type LinkValues = HashMap<String, HashMap<String, AttrMap>>;

/// Adds a row's link values (target, person, vals) to `values`.
fn add_link_values(row: &AnyRow, values: &mut LinkValues) -> Result<()> {
    let unnamed = Cells::new(row, "links", "?".to_string());
    let (target, person) = (unnamed.text("target")?, unnamed.text("person")?);
    let cells = Cells::new(row, "links", format!("{target}/{person}"));
    let vals = cells.json("vals")?;
    values.entry(target).or_default().insert(person, vals);
    Ok(())
}

/// Puts `values` into the snapshot's links read without them.
fn fill_link_values(snapshot: &mut Snapshot, mut values: LinkValues) {
    for link in snapshot.links.iter_mut().filter(|l| l.values_omitted) {
        if let Some(read) = values.get_mut(link.target.as_str()).and_then(|m| m.remove(link.person.as_str())) {
            link.values = read;
            link.values_omitted = false;
        }
    }
}

fn tombstone(row: &AnyRow) -> Result<Tombstone> {
    let cells = Cells::keyed_by(row, "tombstones", "login")?;
    Ok(Tombstone { login: cells.key().to_string(), person: cells.text("person")?, purged_on: cells.date("purged_on")? })
}

impl Store {
    /// Everything the planner needs from the store.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        self.read_snapshot(true, None).await
    }

    /// The snapshot without the persons' records (each [`StoredPerson::records_omitted`]) and
    /// with the values roster last wrote only for the links in the targets `link_values_of` (the
    /// others [`Link::values_omitted`]): what a daily run reads, for a plan uses a stored record
    /// only where this run read none from its source, and a link's values only for a person it
    /// evaluates or a target it reads in full. [`Store::read_records`] and
    /// [`Store::read_link_values`] read those it needs.
    pub async fn snapshot_without_records(&self, link_values_of: &BTreeSet<String>) -> Result<Snapshot> {
        self.read_snapshot(false, Some(link_values_of)).await
    }

    /// Reads the values of the links of the persons `keys` into a snapshot read without them.
    pub async fn read_link_values(&self, snapshot: &mut Snapshot, keys: &BTreeSet<String>) -> Result<()> {
        let doing = || format!("reading the links of {} persons", keys.len());
        let wanted: Vec<&str> = snapshot
            .links
            .iter()
            .filter(|l| l.values_omitted && keys.contains(&l.person))
            .map(|l| l.person.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut values = HashMap::new();
        for chunk in wanted.chunks(crate::sql::MAX_BINDS) {
            let mut query = Sql::new("SELECT target, person, vals FROM links WHERE person IN ");
            codec::push_list(&mut query, chunk.iter().copied());
            for row in query.build().fetch_all(&self.pool).await.doing(doing)? {
                add_link_values(&row, &mut values)?;
            }
        }
        fill_link_values(snapshot, values);
        Ok(())
    }

    /// Reads the values of every link into a snapshot read without some.
    pub async fn read_all_link_values(&self, snapshot: &mut Snapshot) -> Result<()> {
        let doing = || "reading the links".to_string();
        let mut values = HashMap::new();
        let mut rows = sqlx::query("SELECT target, person, vals FROM links").fetch(&self.pool);
        while let Some(row) = rows.try_next().await.doing(doing)? {
            add_link_values(&row, &mut values)?;
        }
        fill_link_values(snapshot, values);
        Ok(())
    }

    /// Reads the records of the persons `keys` into a snapshot read without them. A key the
    /// store does not hold (any more) is left as it is.
    pub async fn read_records(&self, snapshot: &mut Snapshot, keys: &BTreeSet<String>) -> Result<()> {
        let doing = || format!("reading the records of {} persons", keys.len());
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        for chunk in keys.chunks(crate::sql::MAX_BINDS) {
            let mut query = Sql::new("SELECT key, records FROM persons WHERE key IN ");
            codec::push_list(&mut query, chunk.iter().copied());
            for row in query.build().fetch_all(&self.pool).await.doing(doing)? {
                let cells = Cells::keyed_by(&row, "persons", "key")?;
                if let Some(person) = snapshot.persons.get_mut(cells.key()) {
                    person.records = Arc::new(cells.records("records")?);
                    person.records_omitted = false;
                }
            }
        }
        Ok(())
    }

    /// `link_values_of`: the targets whose links are read with their values; `None`: all.
    async fn read_snapshot(&self, with_records: bool, link_values_of: Option<&BTreeSet<String>>) -> Result<Snapshot> {
        let doing = || "reading the snapshot".to_string();
        // One transaction, so the reads see the same moment even while a run writes.
        let mut tx = self.pool.begin().await.doing(doing)?;
        let mut snapshot = Snapshot::default();

        let select = if with_records { person_select!("") } else { PERSON_WITHOUT_RECORDS };
        let mut rows = sqlx::query(select).fetch(&mut *tx);
        let mut shared = EmptyRecords::new();
        // Collected first and turned into the map in one go: building it row by row interleaves
        // the map's large node allocations with the rows' small frees, which the allocator pays
        // for dearly at a million rows.
        let mut persons = Vec::new();
        while let Some(row) = rows.try_next().await.doing(doing)? {
            let person = if with_records { person(&row)? } else { person_without_records(&row, &mut shared)? };
            persons.push((person.key.clone(), person));
        }
        drop(rows);
        snapshot.persons = persons.into_iter().collect();

        let mut query = Sql::new("SELECT target, person, object_id, dn, enabled, ");
        match link_values_of {
            None => query.push("vals"),
            Some(targets) if targets.is_empty() => query.push("CASE WHEN 1 = 0 THEN vals END AS vals"),
            Some(targets) => {
                query.push("CASE WHEN target IN ");
                codec::push_list(&mut query, targets.iter().map(String::as_str));
                query.push(" THEN vals END AS vals")
            }
        };
        query.push(", password_pending FROM links ORDER BY target, person");
        let mut rows = query.build().fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.doing(doing)? {
            snapshot.links.push(link(&row)?);
        }
        drop(rows);

        let rows = sqlx::query("SELECT login, person, purged_on FROM tombstones ORDER BY login")
            .fetch_all(&mut *tx)
            .await
            .doing(doing)?;
        snapshot.tombstones = rows.iter().map(tombstone).collect::<Result<_>>()?;

        let rows = sqlx::query("SELECT source, count FROM source_counts").fetch_all(&mut *tx).await.doing(doing)?;
        for row in &rows {
            let cells = Cells::keyed_by(row, "source_counts", "source")?;
            snapshot.source_counts.insert(cells.key().to_string(), cells.unsigned("count")?);
        }

        // A create recorded as an intent (the run stopped) or left unknown (sent, no answer) may
        // have made an entry; it stays unfinished until the person is linked in that target or a
        // later create, adoption or delete of theirs there lands.
        let rows = sqlx::query(
            "SELECT DISTINCT target, person FROM audit AS a
             WHERE kind = 'create' AND outcome IN ('intent', 'unknown') AND person IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM links AS l WHERE l.target = a.target AND l.person = a.person)
               AND NOT EXISTS (
                   SELECT 1 FROM audit AS later
                   WHERE later.person = a.person AND later.target = a.target AND later.id > a.id
                     AND later.outcome = 'done' AND later.kind IN ('create', 'adopt', 'delete'))
             ORDER BY target, person",
        )
        .fetch_all(&mut *tx)
        .await
        .doing(doing)?;
        for row in &rows {
            let cells = Cells::keyed_by(row, "audit", "person")?;
            snapshot
                .unfinished_creates
                .push(UnfinishedCreate { target: cells.text("target")?, person: cells.key().to_string() });
        }

        snapshot.failures = crate::failures::read_all(&mut tx).await?;

        // The groups roster owns besides those its rules name in a run: every group it created or
        // added a member to, as the audit trail records.
        let doing = || "reading the groups roster owns".to_string();
        let rows = sqlx::query(
            "SELECT DISTINCT target, dn FROM audit
             WHERE kind IN ('create_group', 'add_member') AND outcome = 'done'
             ORDER BY target, dn",
        )
        .fetch_all(&mut *tx)
        .await
        .doing(doing)?;
        for row in &rows {
            let cells = Cells::keyed_by(row, "audit", "dn")?;
            snapshot.managed_groups.push(ManagedGroup { target: cells.text("target")?, dn: cells.key().to_string() });
        }

        tx.commit().await.doing(doing)?;
        Ok(snapshot)
    }
}
