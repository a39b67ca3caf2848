//! Committing persons after their operations landed, and keeping login names theirs for good.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;
use roster_core::plan::PersonUpdate;
use sqlx::AnyConnection;

use crate::sql::Sql;

use crate::Store;
use crate::codec::{self, Cells};
use crate::error::{Doing, Error, Result};

/// Keys per `IN (...)` list; one statement text per chunk size keeps the prepared-statement cache
/// small.
const CHUNK: usize = crate::sql::MAX_BINDS;
/// Persons per multi-row insert (12 columns).
const ROWS: usize = crate::sql::rows_per_statement(12);

/// Login names compare as directories compare them.
fn fold(login: &str) -> String {
    login.to_ascii_lowercase()
}

/// Who holds which login, for the keys and logins of one batch, as the batch goes on.
#[derive(Default)]
struct Logins {
    /// Person key -> the login of their row, for the batch's keys that have a row.
    of_person: HashMap<String, Option<String>>,
    /// Folded login -> the person whose row holds it.
    owner: HashMap<String, String>,
    /// Folded login -> the person it is kept for, and since when.
    tombstone: HashMap<String, (String, NaiveDate)>,
}

impl Logins {
    async fn load(conn: &mut AnyConnection, updates: &[PersonUpdate]) -> Result<Logins> {
        let doing = || "checking login names".to_string();
        let keys: BTreeSet<&str> = updates.iter().map(|u| u.key.as_str()).collect();
        let logins: BTreeSet<String> = updates.iter().filter_map(|u| u.login.as_deref()).map(fold).collect();
        let mut known = Logins::default();

        for chunk in keys.iter().collect::<Vec<_>>().chunks(CHUNK) {
            let mut query = Sql::new("SELECT key, login FROM persons WHERE key IN ");
            codec::push_list(&mut query, chunk.iter().map(|key| **key));
            for row in query.build().fetch_all(&mut *conn).await.doing(doing)? {
                let cells = Cells::keyed_by(&row, "persons", "key")?;
                known.of_person.insert(cells.key().to_string(), cells.opt_text("login")?);
            }
        }
        for chunk in logins.iter().collect::<Vec<_>>().chunks(CHUNK) {
            let mut query = Sql::new("SELECT key, login FROM persons WHERE lower(login) IN ");
            codec::push_list(&mut query, chunk.iter().map(|login| login.as_str()));
            for row in query.build().fetch_all(&mut *conn).await.doing(doing)? {
                let cells = Cells::keyed_by(&row, "persons", "key")?;
                known.owner.insert(fold(&cells.text("login")?), cells.key().to_string());
            }
            let mut query = Sql::new("SELECT login, person, purged_on FROM tombstones WHERE lower(login) IN ");
            codec::push_list(&mut query, chunk.iter().map(|login| login.as_str()));
            for row in query.build().fetch_all(&mut *conn).await.doing(doing)? {
                let cells = Cells::keyed_by(&row, "tombstones", "login")?;
                known.tombstone.insert(fold(cells.key()), (cells.text("person")?, cells.date("purged_on")?));
            }
        }
        Ok(known)
    }

    /// Checks one update against what the store and the batch so far hold, then applies it.
    fn admit(&mut self, update: &PersonUpdate, today: NaiveDate) -> Result<()> {
        let key = &update.key;
        if let Some(Some(current)) = self.of_person.get(key)
            && update.login.as_deref().map(fold) != Some(fold(current))
        {
            return Err(Error::LoginChanged {
                person: key.clone(),
                current: current.clone(),
                requested: update.login.clone(),
            });
        }
        let folded = update.login.as_deref().map(fold);
        if let (Some(login), Some(folded)) = (&update.login, &folded) {
            if let Some((owner, purged_on)) = self.tombstone.get(folded)
                && owner != key
            {
                return Err(Error::LoginTombstoned {
                    login: login.clone(),
                    owner: owner.clone(),
                    purged_on: *purged_on,
                    person: key.clone(),
                });
            }
            if let Some(owner) = self.owner.get(folded)
                && owner != key
            {
                return Err(Error::LoginTaken { login: login.clone(), owner: owner.clone(), person: key.clone() });
            }
        }
        if update.tombstone {
            self.of_person.remove(key);
            if let Some(folded) = folded {
                self.owner.remove(&folded);
                self.tombstone.insert(folded, (key.clone(), today));
            }
        } else {
            self.of_person.insert(key.clone(), update.login.clone());
            if let Some(folded) = folded {
                self.owner.insert(folded, key.clone());
            }
        }
        Ok(())
    }
}

impl Store {
    /// Records persons after their operations landed, in one transaction.
    ///
    /// A person with `tombstone` set is forgotten (row, links and failures) and their login is kept as a
    /// tombstone. Fails, writing nothing, when a login would belong to two persons, when a login kept
    /// by a tombstone would go to another person, or when a person's login would change: a login is
    /// its person's for good. The same person (a rehire under the same key) may take their
    /// tombstoned login back; the tombstone stays.
    ///
    /// A person's hold is written only with their first row: after that only an operator changes
    /// it ([`Store::set_hold`]), so a hold put while a run is going survives that run.
    pub async fn commit_persons(&self, updates: &[PersonUpdate], as_of: NaiveDate) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let doing = || format!("committing {} persons", updates.len());
        let today = as_of;
        let mut tx = self.write().await.doing(doing)?;

        let mut logins = Logins::load(&mut tx, updates).await?;
        for update in updates {
            logins.admit(update, today)?;
        }

        // The batch in order: a key's last update decides whether its row exists; every tombstoning
        // in the batch removes the links and keeps the login.
        let gone: Vec<&str> = {
            let mut seen = HashSet::new();
            updates.iter().filter(|u| u.tombstone && seen.insert(u.key.as_str())).map(|u| u.key.as_str()).collect()
        };
        let kept: Vec<&PersonUpdate> = {
            let mut seen = HashSet::new();
            updates.iter().rev().filter(|u| seen.insert(u.key.as_str()) && !u.tombstone).collect()
        };

        for chunk in gone.chunks(CHUNK) {
            for table in [
                "DELETE FROM links WHERE person IN ",
                "DELETE FROM failures WHERE person IN ",
                "DELETE FROM persons WHERE key IN ",
            ] {
                let mut query = Sql::new(table);
                codec::push_list(&mut query, chunk.iter().copied());
                query.build().execute(&mut *tx).await.doing(doing)?;
            }
        }

        for chunk in kept.chunks(ROWS) {
            let mut query = Sql::new(
                "INSERT INTO persons (key, login, state, records, sources, eval_hash, missing_reads, left_on, next_transition, hold, record_keys, provenance) ",
            );
            let holds = chunk
                .iter()
                .map(|update| {
                    let hold = update.hold.as_ref().map(serde_json::to_string).transpose();
                    hold.map_err(|source| Error::Encode { what: format!("the hold of person {}", update.key), source })
                })
                .collect::<Result<Vec<_>>>()?;
            query.push_values(chunk.iter().zip(holds), |mut row, (update, hold)| {
                row.push_bind(update.key.as_str())
                    .push_bind(update.login.as_deref())
                    .push_bind(update.state.as_str())
                    .push_bind(codec::records_json(&update.records))
                    .push_bind(codec::sources_json(&update.records))
                    .push_bind(update.eval_hash.as_str())
                    .push_bind(i64::from(update.missing_reads))
                    .push_bind(update.left_on.map(codec::date))
                    .push_bind(update.next_transition.map(codec::date))
                    .push_bind(hold)
                    .push_bind(codec::json_text(&update.record_keys))
                    .push_bind(codec::json_text(&update.provenance));
            });
            query.push(
                " ON CONFLICT (key) DO UPDATE SET login = excluded.login, state = excluded.state,
                  records = excluded.records, sources = excluded.sources, eval_hash = excluded.eval_hash,
                  missing_reads = excluded.missing_reads, left_on = excluded.left_on,
                  next_transition = excluded.next_transition,
                  record_keys = excluded.record_keys, provenance = excluded.provenance",
            );
            query.build().execute(&mut *tx).await.doing(doing)?;
        }

        for update in updates.iter().filter(|u| u.tombstone) {
            let Some(login) = &update.login else { continue };
            let purged_on = codec::date(today);
            let kept = sqlx::query("UPDATE tombstones SET purged_on = $1 WHERE lower(login) = $2")
                .bind(&purged_on)
                .bind(fold(login))
                .execute(&mut *tx)
                .await
                .doing(doing)?;
            if kept.rows_affected() == 0 {
                sqlx::query("INSERT INTO tombstones (login, person, purged_on) VALUES ($1, $2, $3)")
                    .bind(login)
                    .bind(&update.key)
                    .bind(&purged_on)
                    .execute(&mut *tx)
                    .await
                    .doing(doing)?;
            }
        }

        tx.commit().await.doing(doing)
    }
}
