//! The snapshot the planner starts from: six queries in one read transaction, whatever the
//! number of persons.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use futures_util::TryStreamExt;
use roster_core::attr::AttrMap;
use roster_core::lifecycle::LifecycleState;
use roster_core::source::{Attrs, Records};
use roster_core::state::{Hold, Link, ManagedGroup, Snapshot, StoredPerson, Tombstone, UnfinishedCreate};
use serde::Deserialize;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::codec::{self, Cells};
use crate::error::{Doing, Result};
use crate::sql::Sql;
use crate::{Backend, Store};

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

/// The records of persons read without them: each of their sources with an empty record, in one
/// map per list of sources, shared by every person with that list; and the same maps by the
/// list's JSON text.
#[derive(Default)]
struct EmptyRecords(HashMap<Vec<String>, Arc<Records>>, HashMap<String, Arc<Records>>);

impl EmptyRecords {
    /// [`EmptyRecords::of`] the sources the JSON `text` lists; `None` when it is no JSON list of
    /// names.
    fn of_text(&mut self, text: &str) -> Option<Arc<Records>> {
        if let Some(records) = self.1.get(text) {
            return Some(Arc::clone(records));
        }
        let records = self.of(serde_json::from_str(text).ok()?);
        self.1.insert(text.to_string(), Arc::clone(&records));
        Some(records)
    }

    fn of(&mut self, sources: Vec<String>) -> Arc<Records> {
        let records = self.0.entry(sources).or_insert_with_key(|sources| {
            let empty = Arc::new(Attrs::new());
            Arc::new(sources.iter().map(|source| (source.clone(), Arc::clone(&empty))).collect())
        });
        Arc::clone(records)
    }
}

/// A person read without their records (see [`EmptyRecords`]).
fn person_without_records(row: &AnyRow, shared: &mut EmptyRecords) -> Result<StoredPerson> {
    let cells = Cells::keyed_by(row, "persons", "key")?;
    let records = shared.of(cells.json("sources")?);
    person_with(&cells, records, true)
}

fn person_with(cells: &Cells, records: Arc<Records>, records_omitted: bool) -> Result<StoredPerson> {
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

/// Rows per query of a bulk read (a few megabytes of JSON; a few in the unit tests, to read
/// several pages).
const BULK_ROWS: i64 = if cfg!(test) { 3 } else { 20_000 };

/// A person without records as [`persons_in_bulk`] reads them: the columns of
/// [`PERSON_WITHOUT_RECORDS`], in order; `sources` as the column's text, and the record keys and
/// provenance null when empty.
#[derive(Deserialize)]
struct PersonRow(
    String,
    Option<String>,
    LifecycleState,
    String,
    String,
    u32,
    Option<NaiveDate>,
    Option<NaiveDate>,
    Option<Hold>,
    Option<BTreeMap<String, String>>,
    Option<BTreeMap<String, String>>,
);

/// SQLite: the persons without their records, as JSON arrays SQLite builds itself
/// (`json_group_array`), in pages ([`in_pages`]). Row by row, sqlx hands each row from SQLite's
/// thread to the reader over a channel and copies every value twice: at a million persons that
/// took three times what SQLite needs. `None` when a page is refused or does not parse: the caller
/// reads row by row, which names the person and column at fault.
///
/// SQLite's `json()` parses and writes again the JSON it embeds, which was a third of the query:
/// the sources (a few distinct lists) come as text, parsed once per distinct text
/// ([`EmptyRecords::of_text`]), and the empty record keys, provenance and holds, nearly all of
/// them, as null.
async fn persons_in_bulk(tx: &mut AnyConnection) -> Option<Vec<StoredPerson>> {
    let page = |from: i64| {
        let mut query = Sql::new(
            "SELECT json_group_array(json_array(key, login, state, sources, eval_hash, missing_reads,
                    left_on, next_transition, CASE WHEN hold IS NOT NULL THEN json(hold) END,
                    CASE WHEN record_keys <> '{}' THEN json(record_keys) END,
                    CASE WHEN provenance <> '{}' THEN json(provenance) END)), max(r), count(*)
             FROM (SELECT rowid AS r, * FROM persons WHERE rowid >= ",
        );
        query.push_bind(from).push(" ORDER BY rowid LIMIT ").push_bind(BULK_ROWS).push(")");
        query
    };
    in_pages(tx, page, persons_of_page).await
}

/// The persons of one page of [`persons_in_bulk`].
fn persons_of_page(page: &str) -> Option<Vec<StoredPerson>> {
    let rows = serde_json::from_str::<Vec<PersonRow>>(page).ok()?;
    let mut shared = EmptyRecords::default();
    let persons = rows.into_iter().map(
        |PersonRow(
            key,
            login,
            state,
            sources,
            eval_hash,
            missing_reads,
            left_on,
            next_transition,
            hold,
            record_keys,
            provenance,
        )| {
            Some(StoredPerson {
                key,
                login,
                state,
                records: shared.of_text(&sources)?,
                eval_hash,
                missing_reads,
                left_on,
                next_transition,
                hold,
                record_keys: record_keys.unwrap_or_default(),
                provenance: provenance.unwrap_or_default(),
                records_omitted: true,
            })
        },
    );
    persons.collect()
}

/// The persons as a map by key. The rows come in the table's order, not the keys': the map's own
/// collect would sort the persons themselves, some 300 bytes each, moved many times over (a
/// second of a million-person read); their places are sorted instead, and each person moved once.
fn by_key(persons: Vec<StoredPerson>) -> BTreeMap<String, StoredPerson> {
    let mut order: Vec<usize> = (0..persons.len()).collect();
    order.sort_unstable_by(|&a, &b| persons[a].key.cmp(&persons[b].key));
    let mut slots: Vec<Option<StoredPerson>> = persons.into_iter().map(Some).collect();
    // In key order now, so the map's collect finds them sorted and builds its nodes in one pass.
    order.into_iter().filter_map(|at| slots[at].take()).map(|p| (p.key.clone(), p)).collect()
}

/// One page of a bulk read: SQLite's JSON array of its rows, the last rowid, the number of rows.
type Page = (Option<String>, Option<i64>, i64);

/// A table read in pages of [`BULK_ROWS`] rows that SQLite writes as one JSON array each, in rowid
/// order (the table's own: no index look-up per row); `page` makes the query of the page from a
/// rowid on (any rowid, negative ones too), returning a [`Page`]. Each page is parsed by `parse` on a blocking thread while SQLite,
/// on its own thread, makes the next. `None` when a page is refused or does not parse.
async fn in_pages<T: Send + 'static>(
    tx: &mut AnyConnection,
    page: impl Fn(i64) -> Sql,
    parse: fn(&str) -> Option<Vec<T>>,
) -> Option<Vec<T>> {
    // The pages, put end to end once all are in: a vector grown page by page was copied into
    // fresh memory at each doubling.
    let mut pages: Vec<Vec<T>> = Vec::new();
    let mut parsing: Option<tokio::task::JoinHandle<Option<Vec<T>>>> = None;
    let mut from = i64::MIN;
    loop {
        let read = page(from).build_query_as::<Page>().fetch_one(&mut *tx).await;
        if let Some(parsed) = parsing.take() {
            pages.push(parsed.await.ok()??);
        }
        // SQLite's json() refuses a column that is not JSON: the caller reads row by row.
        let (json, last, count) = read.ok()?;
        parsing = Some(tokio::task::spawn_blocking(move || parse(json.as_deref().unwrap_or("[]"))));
        match last {
            Some(last) if count == BULK_ROWS && last < i64::MAX => from = last + 1,
            _ => break,
        }
    }
    if let Some(parsed) = parsing {
        pages.push(parsed.await.ok()??);
    }
    let mut rows = Vec::with_capacity(pages.iter().map(Vec::len).sum());
    for page in pages {
        rows.extend(page);
    }
    Some(rows)
}

/// The persons one row at a time (PostgreSQL; SQLite with records, or when a bulk page fails).
async fn persons_by_row(tx: &mut AnyConnection, with_records: bool) -> Result<Vec<StoredPerson>> {
    let doing = || "reading the persons".to_string();
    let select = if with_records { person_select!("") } else { PERSON_WITHOUT_RECORDS };
    let mut rows = sqlx::query(select).fetch(&mut *tx);
    let mut shared = EmptyRecords::default();
    let mut persons = Vec::new();
    while let Some(row) = rows.try_next().await.doing(doing)? {
        persons.push(if with_records { person(&row)? } else { person_without_records(&row, &mut shared)? });
    }
    Ok(persons)
}

/// The links one row at a time, in (target, person) order, with `vals` for the targets
/// `link_values_of` names (`None`: all).
async fn links_by_row(tx: &mut AnyConnection, link_values_of: Option<&BTreeSet<String>>) -> Result<Vec<Link>> {
    let doing = || "reading the links".to_string();
    let mut query = Sql::new("SELECT target, person, object_id, dn, enabled, ");
    push_values_of(&mut query, link_values_of, "vals");
    query.push(" AS vals, password_pending FROM links ORDER BY target, person");
    let mut rows = query.build().fetch(&mut *tx);
    let mut links = Vec::new();
    while let Some(row) = rows.try_next().await.doing(doing)? {
        links.push(link(&row)?);
    }
    Ok(links)
}

/// `values`, an expression on a link's `vals`, for the targets `link_values_of` names (`None`: all),
/// else NULL.
fn push_values_of(query: &mut Sql, link_values_of: Option<&BTreeSet<String>>, values: &str) {
    match link_values_of {
        None => query.push(values),
        Some(targets) if targets.is_empty() => query.push(format!("CASE WHEN 1 = 0 THEN {values} END")),
        Some(targets) => {
            query.push("CASE WHEN target IN ");
            codec::push_list(query, targets.iter().map(String::as_str));
            query.push(format!(" THEN {values} END"))
        }
    };
}

/// A link as [`links_in_bulk`] reads it: target, person, object id, DN, enabled, values (null
/// where not read), password pending.
#[derive(Deserialize)]
struct LinkRow(String, String, String, String, u8, Option<AttrMap>, u8);

/// SQLite: the links as JSON arrays SQLite builds, in pages as [`persons_in_bulk`] reads the
/// persons, then sorted in (target, person) order as the row read returns them; `vals` for the
/// targets `link_values_of` names (`None`: all). `None` when a page is refused or does not parse.
async fn links_in_bulk(tx: &mut AnyConnection, link_values_of: Option<&BTreeSet<String>>) -> Option<Vec<Link>> {
    let page = |from: i64| {
        let mut query = Sql::new("SELECT json_group_array(json_array(target, person, object_id, dn, enabled, ");
        push_values_of(&mut query, link_values_of, "json(vals)");
        query.push(", password_pending)), max(r), count(*) FROM (SELECT rowid AS r, * FROM links WHERE rowid >= ");
        query.push_bind(from).push(" ORDER BY rowid LIMIT ").push_bind(BULK_ROWS).push(")");
        query
    };
    let mut links = in_pages(tx, page, links_of_page).await?;
    links.sort_unstable_by(|a, b| (&a.target, &a.person).cmp(&(&b.target, &b.person)));
    Some(links)
}

/// The links of one page of [`links_in_bulk`].
fn links_of_page(page: &str) -> Option<Vec<Link>> {
    let rows = serde_json::from_str::<Vec<LinkRow>>(page).ok()?;
    let mut links = Vec::with_capacity(rows.len());
    for LinkRow(target, person, object_id, dn, enabled, values, password_pending) in rows {
        if enabled > 1 || password_pending > 1 {
            return None;
        }
        links.push(Link {
            person,
            target,
            object_id,
            dn,
            enabled: enabled == 1,
            values_omitted: values.is_none(),
            values: values.unwrap_or_default(),
            password_pending: password_pending == 1,
        });
    }
    Some(links)
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

        let bulk = self.backend == Backend::Sqlite;
        let persons = if bulk && !with_records { persons_in_bulk(&mut tx).await } else { None };
        let persons = match persons {
            Some(persons) => persons,
            None => persons_by_row(&mut tx, with_records).await?,
        };
        // Collected first and turned into the map in one go: building it row by row interleaves
        // the map's large node allocations with the rows' small frees, which the allocator pays
        // for dearly at a million rows.
        // Sorted on a thread of its own while SQLite reads the links: a second at a million.
        let persons = tokio::task::spawn_blocking(move || by_key(persons));

        let links = if bulk { links_in_bulk(&mut tx, link_values_of).await } else { None };
        snapshot.links = match links {
            Some(links) => links,
            None => links_by_row(&mut tx, link_values_of).await?,
        };
        snapshot.persons = persons.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

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

#[cfg(test)]
mod tests {
    use roster_core::plan::PersonUpdate;

    use super::*;

    /// The bulk reads, several pages of [`BULK_ROWS`], give what the reads row by row give.
    #[tokio::test]
    async fn bulk_reads_give_what_row_reads_give() {
        let store = Store::open_in_memory().await.unwrap();
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let updates: Vec<PersonUpdate> = (0..8)
            .map(|i| PersonUpdate {
                key: format!("p{i}"),
                login: (i % 3 != 0).then(|| format!("login{i}")),
                state: if i % 2 == 0 { LifecycleState::Active } else { LifecycleState::Leaver },
                records: (0..1 + i % 2)
                    .map(|s| (["hr", "contractors"][s].to_string(), Arc::new(Attrs::new())))
                    .collect(),
                eval_hash: format!("hash{i}"),
                missing_reads: i as u32,
                left_on: (i == 5).then(|| day("2026-01-31")),
                next_transition: (i % 4 == 1).then(|| day("2026-12-01")),
                hold: (i == 2)
                    .then(|| Hold { reason: "a \"quoted\" ünïcødé reason".into(), until: Some(day("2027-01-01")) }),
                tombstone: false,
                record_keys: if i == 3 { BTreeMap::from([("hr".into(), "E-3".into())]) } else { BTreeMap::new() },
                provenance: if i % 3 == 0 {
                    BTreeMap::new()
                } else {
                    BTreeMap::from([("title".to_string(), "hr".to_string())])
                },
            })
            .collect();
        store.commit_persons(&updates, day("2026-11-27")).await.unwrap();
        for (i, target) in ["ad", "ldap", "ad", "ldap", "ad", "ldap", "ad"].iter().enumerate() {
            sqlx::query("INSERT INTO links (target, person, object_id, dn, enabled, vals, password_pending) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(*target)
                .bind(format!("p{i}"))
                .bind(format!("id-{i}"))
                .bind(format!("uid=Person {i}\\, Jr.,ou=people,dc=example,dc=org"))
                .bind((i % 2) as i64)
                .bind(format!(r#"{{"title":["Nurse {i}"],"cn":["a","b"]}}"#))
                .bind(i64::from(i == 4))
                .execute(&store.pool)
                .await
                .unwrap();
        }
        // Pages go by rowid: one that SQLite would never choose itself is read too.
        sqlx::query("UPDATE persons SET rowid = -5 WHERE key = 'p6'").execute(&store.pool).await.unwrap();
        sqlx::query("UPDATE links SET rowid = -7 WHERE person = 'p5'").execute(&store.pool).await.unwrap();
        let mut tx = store.pool.begin().await.unwrap();
        let mut by_row = persons_by_row(&mut tx, false).await.unwrap();
        let mut bulk = persons_in_bulk(&mut tx).await.expect("the pages parse");
        assert_eq!(bulk.len(), 8);
        by_row.sort_by(|a, b| a.key.cmp(&b.key));
        bulk.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(bulk, by_row);
        for values_of in [None, Some(BTreeSet::new()), Some(BTreeSet::from(["ldap".to_string()]))] {
            let by_row = links_by_row(&mut tx, values_of.as_ref()).await.unwrap();
            let bulk = links_in_bulk(&mut tx, values_of.as_ref()).await.expect("the pages parse");
            assert_eq!(bulk.len(), 7);
            assert_eq!(bulk, by_row, "values of {values_of:?}");
        }
        // A column that is not JSON: the bulk read gives way, and the row read names the person.
        sqlx::query("UPDATE persons SET provenance = 'not json' WHERE key = 'p4'").execute(&mut *tx).await.unwrap();
        assert!(persons_in_bulk(&mut tx).await.is_none());
        let err = persons_by_row(&mut tx, false).await.unwrap_err().to_string();
        assert!(err.contains("p4") && err.contains("provenance"), "{err}");
        // The sources come as text, parsed by roster: one not JSON gives way as well.
        sqlx::query("UPDATE persons SET provenance = '{}', sources = '[\"hr\"' WHERE key = 'p4'")
            .execute(&mut *tx)
            .await
            .unwrap();
        assert!(persons_in_bulk(&mut tx).await.is_none());
        let err = persons_by_row(&mut tx, false).await.unwrap_err().to_string();
        assert!(err.contains("p4") && err.contains("sources"), "{err}");
    }
}
