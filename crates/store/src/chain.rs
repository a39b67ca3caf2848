//! The audit trail's keyed hash chain: an edited, removed, reordered or inserted entry, and a
//! history re-chained without the key, are found by [`Store::verify_audit`]; a truncated tail or a
//! history rebuilt from scratch (by someone holding the key) is found by comparing with a
//! [`ChainHead`] exported earlier.
//!
//! # What is chained
//!
//! An audit entry is written twice: as an intent before its operation is sent, then completed
//! with the outcome (and an operation sent again in the same run completes it again). Every such
//! write appends one **event** to `audit_chain`, in the transaction of the write:
//!
//! ```text
//! digest = SHA-256(canonical bytes of the entry as the write left it)
//! mac    = HMAC-SHA256(key, previous event's mac || seq || entry id || digest)
//! ```
//!
//! `seq` counts events from 1 without gaps; the first event's previous mac is 32 zero bytes. The
//! chain is therefore an append-only log of every state any entry was ever in, while the `audit`
//! table keeps one row per operation (what the planner and `roster audit show` read). An entry's
//! current row must match the digest of its **latest** event; the earlier events of an entry (its
//! intent) are proven by their place in the chain, their content having been superseded by design.
//! The digest stands for the canonical bytes in the mac so that a superseded state can still be
//! chained through without keeping its text; SHA-256 being collision resistant, this is as strong
//! as feeding the bytes themselves.
//!
//! The canonical bytes of an entry ([`canonical`]) are every column of its row, as stored, in a
//! fixed order with type tags and lengths, plus the actor of its run (so the "who" cannot be
//! changed in the `runs` table either). Changing any of them, moving a row to another id, removing
//! it or adding one breaks the match with the chain; changing, removing or reordering an event
//! breaks the macs, and making new macs needs the key.
//!
//! What the chain alone cannot show is the loss of its newest events together with their entries,
//! or a whole history rebuilt by someone who holds the key. Both change the head: `roster audit
//! head` exports `{seq, mac}`, kept somewhere the store's host cannot rewrite (a log collector, a
//! ticket), and verification given that head fails unless the chain still holds that very event.
//!
//! # The key
//!
//! Never stored in the database. Either configured (`[audit] key = "env:NAME"` or `"file:PATH"`,
//! resolved by the binary) or, without an `[audit]` section, [`AuditKey::beside`] the database: a
//! random key generated on first use into `<store>.audit-key`, readable by its owner only. Whoever
//! can read that file can re-chain a history they edited; the exported head still shows it, and a
//! key kept off the host (an `env:` secret from the scheduler's vault) closes that door. Each event
//! records the key's check value (`key_id`, derived from the key, revealing nothing of it), so a
//! history made with another key is reported as such rather than as edits.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use ring::{digest, hmac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::sql::Sql;

use crate::Store;
use crate::codec::Cells;
use crate::error::{Doing, Error, Result};

/// Shortest audit key accepted, in bytes: 256 bits, the size of the hash.
pub const MIN_AUDIT_KEY_BYTES: usize = 32;

/// Events per multi-row insert (5 columns).
const CHUNK: usize = crate::sql::rows_per_statement(5);

/// Most problems of each kind a verification keeps (it counts them all).
const MAX_PROBLEMS: usize = 1000;

/// The mac before the first event.
const GENESIS: [u8; 32] = [0; 32];

/// The key of the audit chain. Never printed: its `Debug` shows the check value only.
#[derive(Clone)]
pub struct AuditKey {
    /// The key as HMAC-SHA256 takes it, its padded states made once. `ring`'s SHA-256 (assembly
    /// on the vector units of CPUs without SHA instructions) takes half the time of the portable
    /// `sha2`, and a first load links two events per operation.
    mac: hmac::Key,
    id: String,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl AuditKey {
    /// A key from its bytes (the text of a configured secret is used as it is).
    pub fn new(bytes: Vec<u8>) -> Result<AuditKey> {
        if bytes.len() < MIN_AUDIT_KEY_BYTES {
            return Err(Error::AuditKey {
                path: None,
                message: format!(
                    "expected at least {MIN_AUDIT_KEY_BYTES} bytes, found {} (make one with `openssl rand -hex 32`)",
                    bytes.len()
                ),
            });
        }
        let bytes = SecretSlice::from(bytes);
        let mac = hmac::Key::new(hmac::HMAC_SHA256, bytes.expose_secret());
        let id = hex(&hmac::sign(&mac, b"roster audit key check value").as_ref()[..8]);
        Ok(AuditKey { mac, id })
    }

    /// A fresh random key, for an in-memory store.
    pub fn random() -> Result<AuditKey> {
        let text = random_key_text().map_err(|e| Error::AuditKey { path: None, message: e.to_string() })?;
        AuditKey::new(text.into_bytes())
    }

    /// The key's check value: derived from the key, it tells two keys apart without revealing them.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the key of a store without a configured key lives: `<store file>.audit-key`.
    pub fn beside(store: &Path) -> PathBuf {
        let mut name = store.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".audit-key");
        store.with_file_name(name)
    }

    /// Reads the key file at `path` (its text, without the final line break, is the key).
    pub fn load(path: &Path) -> Result<AuditKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::AuditKey { path: Some(path.to_path_buf()), message: format!("cannot read it: {e}") })?;
        AuditKey::new(text.trim_end_matches(['\n', '\r']).as_bytes().to_vec()).map_err(|e| match e {
            Error::AuditKey { message, .. } => Error::AuditKey { path: Some(path.to_path_buf()), message },
            other => other,
        })
    }

    /// Reads the key file at `path`, first creating it with a random key (mode 0600) when missing.
    /// The key is written to a private temporary file and hard-linked into place, which fails if
    /// the file exists: a process killed halfway leaves no empty key behind, and two processes
    /// creating it at once end up with the one that got there first.
    pub fn load_or_create(path: &Path) -> Result<AuditKey> {
        if !path.exists() {
            let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            name.push(format!(".{}.tmp", std::process::id()));
            let temporary = path.with_file_name(name);
            let mut options = OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let written = options.open(&temporary).and_then(|mut file| {
                file.write_all(format!("{}\n", random_key_text()?).as_bytes())?;
                file.sync_all()
            });
            let linked = written.and_then(|()| match std::fs::hard_link(&temporary, path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            });
            let _ = std::fs::remove_file(&temporary);
            linked.map_err(|e| Error::AuditKey {
                path: Some(path.to_path_buf()),
                message: format!("cannot create it: {e}"),
            })?;
        }
        AuditKey::load(path)
    }
}

/// 32 random bytes as 64 hex digits: the text is the key, so the file doubles as a `file:` secret.
fn random_key_text() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| std::io::Error::other(format!("the system's random source failed: {e}")))?;
    Ok(hex(&bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

/// The newest event of the chain: export it, keep it off the store's host, and hand it to a later
/// verification to show a truncated tail or a rebuilt history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// 0 for an empty chain.
    pub seq: u64,
    /// Hex; 64 zeros for an empty chain.
    pub mac: String,
}

impl ChainHead {
    /// Reads a head as `roster audit head` prints it: `{"seq": N, "mac": "..."}`.
    pub fn parse(text: &str) -> std::result::Result<ChainHead, String> {
        let head: ChainHead = serde_json::from_str(text.trim())
            .map_err(|e| format!("expected {{\"seq\": N, \"mac\": \"64 hex digits\"}}: {e}"))?;
        match unhex(&head.mac) {
            Some(bytes) if bytes.len() == 32 => Ok(ChainHead { mac: head.mac.to_ascii_lowercase(), ..head }),
            _ => Err(format!("mac {:?}: expected 64 hex digits", head.mac)),
        }
    }

    fn of(seq: i64, mac: &[u8]) -> ChainHead {
        ChainHead { seq: u64::try_from(seq).unwrap_or(0), mac: hex(mac) }
    }
}

impl fmt::Display for ChainHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{\"seq\": {}, \"mac\": \"{}\"}}", self.seq, self.mac)
    }
}

/// The audit columns, in canonical order.
const ENTRY_COLUMNS: &str =
    "id, run, at, op_id, person, target, kind, dn, reason, before_vals, after_vals, outcome, error";

/// An audit row exactly as stored, for hashing.
pub(crate) struct StoredEntry {
    pub(crate) id: i64,
    pub(crate) run: i64,
    pub(crate) at: String,
    pub(crate) op_id: i64,
    pub(crate) person: Option<String>,
    pub(crate) target: String,
    pub(crate) kind: String,
    pub(crate) dn: String,
    pub(crate) reason: String,
    pub(crate) before_vals: Option<String>,
    pub(crate) after_vals: Option<String>,
    pub(crate) outcome: String,
    pub(crate) error: Option<String>,
}

impl StoredEntry {
    /// Reads the [`ENTRY_COLUMNS`] of a row.
    pub(crate) fn read(row: &AnyRow) -> Result<StoredEntry> {
        let id = Cells::new(row, "audit", "?".to_string()).int("id")?;
        let cells = Cells::new(row, "audit", id.to_string());
        Ok(StoredEntry {
            id,
            run: cells.int("run")?,
            at: cells.text("at")?,
            op_id: cells.int("op_id")?,
            person: cells.opt_text("person")?,
            target: cells.text("target")?,
            kind: cells.text("kind")?,
            dn: cells.text("dn")?,
            reason: cells.text("reason")?,
            before_vals: cells.opt_text("before_vals")?,
            after_vals: cells.opt_text("after_vals")?,
            outcome: cells.text("outcome")?,
            error: cells.opt_text("error")?,
        })
    }

    fn digest(&self, actor: Option<&str>) -> [u8; 32] {
        thirty_two(digest::digest(&digest::SHA256, &canonical(self, actor)).as_ref())
    }

    fn name(&self) -> EntryName {
        EntryName {
            id: self.id,
            run: self.run,
            op_id: self.op_id,
            kind: self.kind.clone(),
            person: self.person.clone(),
            dn: self.dn.clone(),
        }
    }
}

/// The bytes an entry's digest is taken over: a version tag, then each column (and the run's
/// actor) as a type tag (`N` null, `I` 64-bit big-endian integer, `T` 64-bit big-endian length and
/// UTF-8 text), so that no two different entries share their bytes.
fn canonical(entry: &StoredEntry, actor: Option<&str>) -> Vec<u8> {
    fn int(out: &mut Vec<u8>, n: i64) {
        out.push(b'I');
        out.extend_from_slice(&n.to_be_bytes());
    }
    fn text(out: &mut Vec<u8>, t: Option<&str>) {
        match t {
            None => out.push(b'N'),
            Some(t) => {
                out.push(b'T');
                out.extend_from_slice(&(t.len() as u64).to_be_bytes());
                out.extend_from_slice(t.as_bytes());
            }
        }
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"roster audit entry v1\0");
    int(&mut out, entry.id);
    int(&mut out, entry.run);
    text(&mut out, actor);
    text(&mut out, Some(&entry.at));
    int(&mut out, entry.op_id);
    text(&mut out, entry.person.as_deref());
    text(&mut out, Some(&entry.target));
    text(&mut out, Some(&entry.kind));
    text(&mut out, Some(&entry.dn));
    text(&mut out, Some(&entry.reason));
    text(&mut out, entry.before_vals.as_deref());
    text(&mut out, entry.after_vals.as_deref());
    text(&mut out, Some(&entry.outcome));
    text(&mut out, entry.error.as_deref());
    out
}

/// The mac of event `seq`, which covers `digest` of entry `entry` and follows `previous`.
fn link(key: &AuditKey, previous: &[u8], seq: i64, entry: i64, digest: &[u8]) -> [u8; 32] {
    let mut mac = hmac::Context::with_key(&key.mac);
    mac.update(previous);
    mac.update(&seq.to_be_bytes());
    mac.update(&entry.to_be_bytes());
    mac.update(digest);
    thirty_two(mac.sign().as_ref())
}

/// A SHA-256 digest or HMAC-SHA256 tag (32 bytes) as an array.
fn thirty_two(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(bytes);
    out
}

struct Event {
    seq: i64,
    entry: i64,
    digest: [u8; 32],
    mac: [u8; 32],
}

/// The chain's tail within a write transaction: events are computed in memory as entries are
/// written, and inserted in a few multi-row statements.
pub(crate) struct Chain<'k> {
    key: &'k AuditKey,
    seq: i64,
    mac: [u8; 32],
    events: Vec<Event>,
}

impl<'k> Chain<'k> {
    /// The chain's current head. Call within the write transaction that appends.
    pub(crate) async fn open(conn: &mut AnyConnection, key: &'k AuditKey) -> Result<Chain<'k>> {
        let head = sqlx::query("SELECT seq, mac FROM audit_chain ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .doing(|| "reading the audit chain's head".into())?;
        let (seq, mac) = match head {
            None => (0, GENESIS),
            Some(row) => {
                let cells = Cells::new(&row, "audit_chain", "head".to_string());
                let seq = cells.int("seq")?;
                let mac = mac_cell(&cells, "mac")?;
                (seq, mac)
            }
        };
        Ok(Chain { key, seq, mac, events: Vec::new() })
    }

    /// Appends the event of one write of an entry.
    pub(crate) fn push(&mut self, entry: &StoredEntry, actor: Option<&str>) {
        let digest = entry.digest(actor);
        self.seq += 1;
        self.mac = link(self.key, &self.mac, self.seq, entry.id, &digest);
        self.events.push(Event { seq: self.seq, entry: entry.id, digest, mac: self.mac });
    }

    pub(crate) async fn write(self, conn: &mut AnyConnection) -> Result<()> {
        for chunk in self.events.chunks(CHUNK) {
            let mut query = Sql::new("INSERT INTO audit_chain (seq, entry, key_id, digest, mac) ");
            query.push_values(chunk, |mut values, event| {
                values
                    .push_bind(event.seq)
                    .push_bind(event.entry)
                    .push_bind(self.key.id())
                    .push_bind(event.digest.to_vec())
                    .push_bind(event.mac.to_vec());
            });
            query.build().execute(&mut *conn).await.doing(|| "extending the audit chain".into())?;
        }
        Ok(())
    }
}

fn mac_cell(cells: &Cells, column: &'static str) -> Result<[u8; 32]> {
    let bytes = cells.blob(column)?;
    bytes.try_into().map_err(|b: Vec<u8>| cells.corrupt(column, format!("expected 32 bytes, found {}", b.len())))
}

/// An audit entry, as a problem names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName {
    pub id: i64,
    pub run: i64,
    pub op_id: i64,
    pub kind: String,
    pub person: Option<String>,
    pub dn: String,
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {} (run #{}, operation #{}: {}", self.id, self.run, self.op_id, self.kind)?;
        if let Some(person) = &self.person {
            write!(f, " for person {person}")?;
        }
        if !self.dn.is_empty() {
            write!(f, " on {}", self.dn)?;
        }
        f.write_str(")")
    }
}

/// Something verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// The entry's row differs from what its latest chain event covers: edited, or moved to
    /// another id, after it was written.
    Edited { seq: u64, entry: EntryName },
    /// Chain events name an entry that is gone.
    Removed { seq: u64, entry: i64 },
    /// An entry no chain event covers, written after the chain began: inserted behind roster's back.
    Unchained { entry: EntryName },
    /// Events `from..=to` are missing from the chain.
    Missing { from: u64, to: u64 },
    /// The event's mac does not verify: the event was edited or moved, or the chain was rebuilt
    /// without the key, from here on.
    BadMac { seq: u64, entry: i64 },
    /// The event was made with another key than the one verifying.
    OtherKey { seq: u64, entry: i64, key_id: String },
    /// The chain ends before the exported head: its newest events are gone.
    Truncated { head: u64, last: u64 },
    /// The chain holds the exported head's event with another mac: the history was rebuilt since.
    Rebuilt { seq: u64 },
}

impl ChainProblem {
    /// Where in the chain the problem is, for ordering (an unchained entry has no place: last).
    pub fn seq(&self) -> u64 {
        match self {
            ChainProblem::Edited { seq, .. }
            | ChainProblem::Removed { seq, .. }
            | ChainProblem::BadMac { seq, .. }
            | ChainProblem::OtherKey { seq, .. }
            | ChainProblem::Rebuilt { seq } => *seq,
            ChainProblem::Missing { from, .. } => *from,
            ChainProblem::Truncated { last, .. } => last + 1,
            ChainProblem::Unchained { .. } => u64::MAX,
        }
    }
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::Edited { seq, entry } => {
                write!(f, "{entry} was edited or moved after it was written: it no longer matches chain event {seq}")
            }
            ChainProblem::Removed { seq, entry } => {
                write!(f, "entry {entry} was removed: chain event {seq} covers it, the trail no longer has it")
            }
            ChainProblem::Unchained { entry } => {
                write!(f, "{entry} is covered by no chain event: it was inserted outside roster")
            }
            ChainProblem::Missing { from, to } if from == to => {
                write!(f, "chain event {from} is missing: events were removed")
            }
            ChainProblem::Missing { from, to } => {
                write!(f, "chain events {from} to {to} are missing: events were removed")
            }
            ChainProblem::BadMac { seq, entry } => write!(
                f,
                "chain event {seq} (entry {entry}) does not verify: the chain was edited, reordered or cut here, or rebuilt without the key"
            ),
            ChainProblem::OtherKey { seq, entry, key_id } => write!(
                f,
                "chain event {seq} (entry {entry}) was made with another key (check value {key_id}): the key changed, or the history was rebuilt with a key of someone else's"
            ),
            ChainProblem::Truncated { head, last } => write!(
                f,
                "the trail was truncated: the exported head is event {head}, the chain now ends at event {last}"
            ),
            ChainProblem::Rebuilt { seq } => {
                write!(f, "the history was rebuilt: chain event {seq} no longer has the mac of the exported head")
            }
        }
    }
}

/// What [`Store::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Audit entries in the trail.
    pub entries: u64,
    /// Events in the chain.
    pub events: u64,
    /// Entries written before the chain existed (by roster 0.1), which it does not cover.
    pub legacy_entries: u64,
    /// The chain's newest event, as read.
    pub head: ChainHead,
    /// The problems found, in chain order (the first is where the trail stops being trustworthy);
    /// at most 1,000 of each kind.
    pub problems: Vec<ChainProblem>,
    /// All problems found, kept or not.
    pub problem_count: u64,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.problem_count == 0
    }
}

#[derive(Default)]
struct Found {
    problems: Vec<ChainProblem>,
    count: u64,
    kept_per_kind: std::collections::HashMap<std::mem::Discriminant<ChainProblem>, usize>,
}

impl Found {
    fn add(&mut self, problem: ChainProblem) {
        self.count += 1;
        let kept = self.kept_per_kind.entry(std::mem::discriminant(&problem)).or_default();
        if *kept < MAX_PROBLEMS {
            *kept += 1;
            self.problems.push(problem);
        }
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// The chain's newest event.
    pub async fn audit_head(&self) -> Result<ChainHead> {
        let row = sqlx::query("SELECT seq, mac FROM audit_chain ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .doing(|| "reading the audit chain's head".into())?;
        match row {
            None => Ok(ChainHead::of(0, &GENESIS)),
            Some(row) => {
                let cells = Cells::new(&row, "audit_chain", "head".to_string());
                Ok(ChainHead::of(cells.int("seq")?, &mac_cell(&cells, "mac")?))
            }
        }
    }

    /// Walks the whole chain with `key` and compares every entry with it; given a head exported
    /// earlier, also checks that the chain still holds that very event. Reads one consistent
    /// moment of the store, in three streaming passes, whatever its size.
    pub async fn verify_audit(&self, key: &AuditKey, exported: Option<&ChainHead>) -> Result<Verification> {
        let doing = || "verifying the audit trail".to_string();
        let mut tx = self.pool.begin().await.doing(doing)?;
        let mut found = Found::default();

        // The events: each mac from the previous one, with the key.
        let mut expected = 1i64;
        let mut previous = GENESIS;
        let mut at_exported: Option<[u8; 32]> = None;
        let mut events = 0u64;
        let mut rows =
            sqlx::query("SELECT seq, entry, key_id, digest, mac FROM audit_chain ORDER BY seq").fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.doing(doing)? {
            let cells = Cells::new(&row, "audit_chain", "?".to_string());
            let seq = cells.int("seq")?;
            let cells = Cells::new(&row, "audit_chain", seq.to_string());
            let entry = cells.int("entry")?;
            let key_id = cells.text("key_id")?;
            let digest = cells.blob("digest")?;
            let mac = mac_cell(&cells, "mac")?;
            events += 1;
            if seq != expected {
                found.add(ChainProblem::Missing { from: count(expected), to: count(seq - 1) });
            }
            if key_id != key.id() {
                found.add(ChainProblem::OtherKey { seq: count(seq), entry, key_id });
            } else if link(key, &previous, seq, entry, &digest) != mac {
                found.add(ChainProblem::BadMac { seq: count(seq), entry });
            }
            if exported.is_some_and(|h| h.seq == count(seq)) {
                at_exported = Some(mac);
            }
            previous = mac;
            expected = seq + 1;
        }
        drop(rows);
        let last = count(expected - 1);
        if let Some(head) = exported.filter(|h| h.seq > 0) {
            match at_exported {
                None if head.seq > last => found.add(ChainProblem::Truncated { head: head.seq, last }),
                None => {}
                Some(mac) if hex(&mac) != head.mac => found.add(ChainProblem::Rebuilt { seq: head.seq }),
                Some(_) => {}
            }
        }

        // The entries: each as its latest event saw it.
        let legacy_last: i64 = sqlx::query_scalar("SELECT coalesce(max(legacy_last_entry), 0) FROM audit_chain_start")
            .fetch_one(&mut *tx)
            .await
            .doing(doing)?;
        let (mut entries, mut legacy_entries) = (0u64, 0u64);
        let sql = format!(
            "SELECT {}, r.actor, c.seq AS chain_seq, c.digest AS chain_digest
             FROM audit AS a
             LEFT JOIN runs AS r ON r.id = a.run
             LEFT JOIN audit_chain AS c ON c.seq = (SELECT max(seq) FROM audit_chain WHERE entry = a.id)
             ORDER BY a.id",
            ENTRY_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.doing(doing)? {
            let entry = StoredEntry::read(&row)?;
            let cells = Cells::new(&row, "audit", entry.id.to_string());
            entries += 1;
            match cells.opt_int("chain_seq")? {
                None if entry.id <= legacy_last => legacy_entries += 1,
                None => found.add(ChainProblem::Unchained { entry: entry.name() }),
                Some(seq) => {
                    if entry.digest(cells.opt_text("actor")?.as_deref()).as_slice() != cells.blob("chain_digest")? {
                        found.add(ChainProblem::Edited { seq: count(seq), entry: entry.name() });
                    }
                }
            }
        }
        drop(rows);

        // The entries the chain remembers and the trail lost.
        let mut rows = sqlx::query(
            "SELECT entry, max(seq) AS seq FROM audit_chain WHERE entry NOT IN (SELECT id FROM audit)
             GROUP BY entry ORDER BY seq",
        )
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.doing(doing)? {
            let cells = Cells::new(&row, "audit_chain", "?".to_string());
            found.add(ChainProblem::Removed { seq: count(cells.int("seq")?), entry: cells.int("entry")? });
        }
        drop(rows);
        tx.commit().await.doing(doing)?;

        found.problems.sort_by_key(ChainProblem::seq);
        Ok(Verification {
            entries,
            events,
            legacy_entries,
            head: ChainHead::of(expected - 1, &previous),
            problems: found.problems,
            problem_count: found.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain's links and the key's check value are the HMAC-SHA256 the stores already hold
    /// (made with `hmac` and `sha2` before `ring` made them): old chains still verify.
    #[test]
    fn links_and_the_check_value_are_the_hmac_sha256_they_were() {
        use ::hmac::{Hmac, Mac};
        let bytes = b"0123456789abcdef0123456789abcdef-key".to_vec();
        let key = AuditKey::new(bytes.clone()).unwrap();
        let mac = || Hmac::<sha2::Sha256>::new_from_slice(&bytes).unwrap();
        let mut expected = mac();
        expected.update(b"previous");
        expected.update(&7i64.to_be_bytes());
        expected.update(&9i64.to_be_bytes());
        expected.update(b"digest");
        let expected: [u8; 32] = expected.finalize().into_bytes().into();
        assert_eq!(link(&key, b"previous", 7, 9, b"digest"), expected);
        let mut check = mac();
        check.update(b"roster audit key check value");
        assert_eq!(key.id, hex(&check.finalize().into_bytes()[..8]));
        let e = entry(1, "joiner");
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(canonical(&e, Some("ops"))).into();
        assert_eq!(e.digest(Some("ops")), digest);
    }

    fn entry(id: i64, reason: &str) -> StoredEntry {
        StoredEntry {
            id,
            run: 1,
            at: "2026-03-10T08:00:00.000000Z".into(),
            op_id: 0,
            person: Some("e1".into()),
            target: "directory".into(),
            kind: "create".into(),
            dn: "uid=ada,dc=example,dc=org".into(),
            reason: reason.into(),
            before_vals: None,
            after_vals: Some("{}".into()),
            outcome: "done".into(),
            error: None,
        }
    }

    #[test]
    fn canonical_bytes_tell_every_field_apart() {
        let base = entry(1, "joiner");
        let digest = base.digest(Some("ops"));
        assert_ne!(digest, base.digest(Some("mallory")), "the actor is covered");
        assert_ne!(digest, base.digest(None));
        assert_ne!(digest, entry(2, "joiner").digest(Some("ops")), "the id is covered");
        assert_ne!(digest, entry(1, "joiner ").digest(Some("ops")));
        // A value moved from one field into its neighbour changes the bytes.
        let mut shifted = entry(1, "joiner");
        shifted.dn = "uid=ada,dc=example,dc=orgjoiner".into();
        shifted.reason = String::new();
        assert_ne!(digest, shifted.digest(Some("ops")));
        let mut nulled = entry(1, "joiner");
        nulled.error = Some(String::new());
        assert_ne!(digest, nulled.digest(Some("ops")), "NULL and empty differ");
    }

    #[test]
    fn a_key_is_long_enough_and_never_printed() {
        assert!(matches!(AuditKey::new(b"short".to_vec()), Err(Error::AuditKey { .. })));
        let secret = "k".repeat(MIN_AUDIT_KEY_BYTES);
        let key = AuditKey::new(secret.clone().into_bytes()).unwrap();
        assert!(!format!("{key:?}").contains(&secret));
        assert_eq!(key.id().len(), 16);
        assert_ne!(key.id(), AuditKey::new("j".repeat(32).into_bytes()).unwrap().id());
    }

    #[test]
    fn a_generated_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = AuditKey::beside(&dir.path().join("roster.db"));
        assert_eq!(path.file_name().unwrap(), "roster.db.audit-key");
        let first = AuditKey::load_or_create(&path).unwrap();
        assert_eq!(AuditKey::load_or_create(&path).unwrap().id(), first.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_head_reads_back_what_it_prints() {
        let head = ChainHead::of(7, &[0xab; 32]);
        assert_eq!(ChainHead::parse(&head.to_string()).unwrap(), head);
        assert!(ChainHead::parse(r#"{"seq": 1, "mac": "zz"}"#).is_err());
        assert!(ChainHead::parse("7").is_err());
    }
}
