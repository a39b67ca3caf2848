//! The audit trail's commands: `roster audit head | verify | show`, and the operator's actions on
//! the store that the trail records: `roster release` (ends a person's quarantine), `roster hold`
//! and `roster unhold` (roster plans nothing for a held person). Also where the
//! audit key is resolved for every command that opens the store.
//!
//! The key: `[audit] key = "env:NAME" | "file:PATH"` when configured; otherwise the key file that
//! the store keeps beside itself (generated on first use, mode 0600). See `roster_store::chain`
//! for what the chain covers and what the exported head adds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use roster_core::config::SecretRef;
use roster_core::settings::Settings;
use roster_core::state::Hold;
use roster_store::{AuditEntry, AuditKey, AuditQuery, ChainHead, HoldChange, RunId, RunStart, Store, Verification};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::cli::{AuditCommand, Cli, Format, HoldArgs, ReleaseArgs, ShowArgs, UnholdArgs, VerifyArgs};
use crate::run::{Loaded, UsageError, actor, load_config, store_path};
use crate::{exit, secrets};

impl Loaded {
    /// The store's path, when it exists: a command that reads the trail never creates one.
    fn existing_store_path(&self) -> Result<PathBuf> {
        let path = store_path(self);
        if self.settings.store.url.is_none() && !path.exists() {
            bail!("there is no store at {}: nothing has been run with this configuration yet", path.display());
        }
        Ok(path)
    }

    /// The existing store, for reading.
    async fn existing_store(&self, key: AuditKey) -> Result<Store> {
        if let Some(url) = &self.settings.store.url {
            return open_postgres(url, &self.config_dir, key).await;
        }
        let path = self.existing_store_path()?;
        Store::open_with_key(&path, key).await.with_context(|| format!("opening the store {}", path.display()))
    }
}

/// The audit key of the store at `store_path` under `settings`: the configured secret, or the key
/// file beside the store (created with a new random key when `create` and missing). Errors name
/// the reference or the file, never the key.
pub fn audit_key(settings: &Settings, config_dir: &Path, store_path: &Path, create: bool) -> Result<AuditKey> {
    match &settings.audit {
        Some(audit) => {
            let secret = secrets::resolve(&audit.key, config_dir).context("audit.key")?;
            AuditKey::new(secret.expose_secret().as_bytes().to_vec())
                .with_context(|| format!("audit.key {}", audit.key.0))
        }
        None => {
            let path = AuditKey::beside(store_path);
            if create {
                Ok(AuditKey::load_or_create(&path)?)
            } else {
                AuditKey::load(&path).map_err(|e| {
                    anyhow!(
                        "{e}; without an [audit] key in the configuration, the trail is chained with this file's key"
                    )
                })
            }
        }
    }
}

/// Opens (creating when missing) the store the configuration names, chaining the audit trail with
/// its audit key. What every command that writes the store should open it with.
pub async fn open_store(settings: &Settings, config_dir: &Path) -> Result<Store> {
    if let Some(url) = &settings.store.url {
        let Some(audit) = &settings.audit else {
            bail!("store.url: a PostgreSQL store needs an [audit] key (no key file can sit beside it)");
        };
        let key = audit_key(settings, config_dir, Path::new(&audit.key.0), false)?;
        return open_postgres(url, config_dir, key).await;
    }
    let path = config_dir.join(settings.store.path());
    let key = audit_key(settings, config_dir, &path, true)?;
    Store::open_with_key(&path, key).await.with_context(|| format!("opening the store {}", path.display()))
}

/// The PostgreSQL store at the URL `url` refers to.
async fn open_postgres(url: &SecretRef, config_dir: &Path, key: AuditKey) -> Result<Store> {
    let url = secrets::resolve(url, config_dir).context("store.url")?;
    Store::open_postgres(url.expose_secret(), key).await.context("opening the store")
}

pub async fn audit_command(cli: &Cli, command: &AuditCommand) -> Result<u8> {
    match command {
        AuditCommand::Head => head(cli).await,
        AuditCommand::Verify(args) => verify(cli, args).await,
        AuditCommand::Show(args) => show(cli, args).await,
    }
}

async fn head(cli: &Cli) -> Result<u8> {
    let loaded = load_config(cli)?;
    // Reading the head needs no key; this handle writes nothing.
    let store = loaded.existing_store(AuditKey::random()?).await?;
    println!("{}", store.audit_head().await?);
    store.close().await;
    Ok(exit::SUCCESS)
}

/// An exported head given on the command line: the JSON itself, or a file holding it.
fn exported_head(value: &str) -> Result<ChainHead> {
    let text = if value.trim_start().starts_with('{') {
        value.to_string()
    } else {
        std::fs::read_to_string(value)
            .map_err(|e| anyhow!(UsageError(format!("--head {value}: not a head and not a readable file: {e}"))))?
    };
    ChainHead::parse(&text).map_err(|e| anyhow!(UsageError(format!("--head {value}: {e}"))))
}

async fn verify(cli: &Cli, args: &VerifyArgs) -> Result<u8> {
    let exported = args.head.as_deref().map(exported_head).transpose()?;
    let loaded = load_config(cli)?;
    let key = audit_key(&loaded.settings, &loaded.config_dir, &loaded.existing_store_path()?, false)?;
    let store = loaded.existing_store(key.clone()).await?;
    let verification = store.verify_audit(&key, exported.as_ref()).await?;
    store.close().await;
    match args.format {
        Format::Text => print!("{}", verification_text(&verification, exported.as_ref(), key.id())),
        Format::Json => println!("{:#}", verification_json(&verification, exported.as_ref(), key.id())),
    }
    Ok(if verification.is_intact() { exit::SUCCESS } else { exit::TAMPERED })
}

fn verification_text(v: &Verification, exported: Option<&ChainHead>, key_id: &str) -> String {
    let mut out = String::new();
    let covered = match exported {
        Some(head) => format!("; the exported head (event {}) is in it", head.seq),
        None => String::new(),
    };
    if v.is_intact() {
        out.push_str(&format!(
            "audit trail intact: {} entries, {} chain events, key check value {key_id}{covered}\n",
            v.entries, v.events
        ));
    } else {
        out.push_str(&format!(
            "audit trail NOT intact: {} problem(s) in {} entries and {} chain events (key check value {key_id})\n",
            v.problem_count, v.entries, v.events
        ));
        if let Some(first) = v.problems.first() {
            out.push_str(&format!("first: {first}\n"));
        }
        for problem in v.problems.iter().skip(1) {
            out.push_str(&format!("  {problem}\n"));
        }
        let shown = v.problems.len() as u64;
        if v.problem_count > shown {
            out.push_str(&format!("  ... and {} more\n", v.problem_count - shown));
        }
    }
    if v.legacy_entries > 0 {
        out.push_str(&format!(
            "note: {} entries were written before roster chained the trail; nothing covers them\n",
            v.legacy_entries
        ));
    }
    if exported.is_none() {
        out.push_str(&format!(
            "head: {} (without an exported head, a cut tail or a history rebuilt with the key cannot be told)\n",
            v.head
        ));
    }
    out
}

fn verification_json(v: &Verification, exported: Option<&ChainHead>, key_id: &str) -> serde_json::Value {
    json!({
        "intact": v.is_intact(),
        "entries": v.entries,
        "events": v.events,
        "legacy_entries": v.legacy_entries,
        "key_id": key_id,
        "head": v.head,
        "exported_head": exported,
        "problem_count": v.problem_count,
        "problems": v.problems.iter().map(|p| json!({ "seq": p.seq(), "message": p.to_string() })).collect::<Vec<_>>(),
    })
}

/// `--since` / `--until`: an RFC 3339 moment, or a day (its start in the configured time zone).
pub(crate) fn moment(value: &str, settings: &Settings) -> Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        anyhow!(UsageError(format!("expected a day (YYYY-MM-DD) or an RFC 3339 moment, found {value:?}")))
    })?;
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    settings
        .zone
        .from_local_datetime(&midnight)
        .earliest()
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| anyhow!(UsageError(format!("{value} has no midnight in {}", settings.zone))))
}

async fn show(cli: &Cli, args: &ShowArgs) -> Result<u8> {
    let loaded = load_config(cli)?;
    let query = AuditQuery {
        person: args.person.clone(),
        dn: args.dn.clone(),
        run: args.run.map(RunId),
        since: args.since.as_deref().map(|s| moment(s, &loaded.settings)).transpose()?,
        until: args.until.as_deref().map(|s| moment(s, &loaded.settings)).transpose()?,
        limit: args.limit,
    };
    // Reading needs no key; this handle writes nothing.
    let store = loaded.existing_store(AuditKey::random()?).await?;
    let mut entries = store.audit(&query).await?;
    store.close().await;
    // The newest `limit`, shown in the order they happened.
    entries.reverse();
    match args.format {
        Format::Text => {
            for entry in &entries {
                print!("{}", entry_text(entry));
            }
        }
        Format::Json => {
            let entries: Vec<serde_json::Value> = entries.iter().map(entry_json).collect();
            println!("{:#}", serde_json::Value::Array(entries));
        }
    }
    Ok(exit::SUCCESS)
}

fn entry_text(e: &AuditEntry) -> String {
    let mut out = format!(
        "{} run {} by {}, #{} {} {} in {}",
        e.at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
        e.run,
        e.actor,
        e.op_id,
        e.kind,
        e.outcome,
        e.target
    );
    if let Some(person) = &e.person {
        out.push_str(&format!(" person {person}"));
    }
    if !e.dn.is_empty() {
        out.push_str(&format!(" {}", e.dn));
    }
    out.push('\n');
    out.push_str(&format!("    why: {}\n", e.reason));
    if let Some(before) = &e.before {
        out.push_str(&format!("    before: {before}\n"));
    }
    if let Some(after) = &e.after {
        out.push_str(&format!("    after: {after}\n"));
    }
    if let Some(error) = &e.error {
        out.push_str(&format!("    error: {error}\n"));
    }
    out
}

fn entry_json(e: &AuditEntry) -> serde_json::Value {
    json!({
        "id": e.id,
        "run": e.run.0,
        "actor": e.actor,
        "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "op_id": e.op_id,
        "person": e.person,
        "target": e.target,
        "kind": e.kind,
        "dn": e.dn,
        "reason": e.reason,
        "before": e.before,
        "after": e.after,
        "outcome": e.outcome,
        "error": e.error,
    })
}

/// An operator's action on the store, recorded as a run of its own.
fn operator_start(cli: &Cli, loaded: &Loaded, command: &str) -> RunStart {
    RunStart {
        command: command.to_string(),
        as_of: cli.as_of.unwrap_or_else(|| Utc::now().with_timezone(&loaded.settings.zone).date_naive()),
        config_hash: loaded.settings.hash.clone(),
        actor: actor(),
        overrides: Vec::new(),
        plan_json: None,
    }
}

pub async fn release(cli: &Cli, args: &ReleaseArgs) -> Result<u8> {
    let loaded = load_config(cli)?;
    let store = open_store(&loaded.settings, &loaded.config_dir).await?;
    let start = operator_start(cli, &loaded, "release");
    let released = store.release(&start, &args.person, args.target.as_deref()).await?;
    store.close().await;
    let Some(released) = released else {
        let place = args.target.as_deref().map(|t| format!(" in target {t}")).unwrap_or_default();
        bail!("person {} has no recorded failures{place}: nothing to release", args.person);
    };
    for f in &released.failures {
        println!(
            "released person {} in target {} (failed in {} consecutive run(s), last: {})",
            f.person, f.target, f.runs, f.last_error
        );
    }
    println!(
        "recorded in the audit trail as run {} by {}; the next run plans for them again",
        released.run, start.actor
    );
    Ok(exit::SUCCESS)
}

pub async fn hold(cli: &Cli, args: &HoldArgs) -> Result<u8> {
    let loaded = load_config(cli)?;
    let start = operator_start(cli, &loaded, "hold");
    let hold = new_hold(&args.reason, args.until, start.as_of)?;
    let changed = set_hold(&loaded, &start, &args.person, Some(&hold)).await?;
    let until = hold.until.map(|d| format!("until {d} (inclusive)")).unwrap_or_else(|| "until lifted".into());
    println!("person {} is on hold {until}: {}", args.person, hold.reason);
    if let Some(before) = changed.before {
        println!("(replacing the hold {:?})", before.reason);
    }
    println!(
        "recorded in the audit trail as run {} by {}; runs plan nothing for them meanwhile",
        changed.run, start.actor
    );
    Ok(exit::SUCCESS)
}

pub async fn unhold(cli: &Cli, args: &UnholdArgs) -> Result<u8> {
    let loaded = load_config(cli)?;
    let start = operator_start(cli, &loaded, "unhold");
    let changed = set_hold(&loaded, &start, &args.person, None).await?;
    if changed.before.is_none() {
        println!("person {} was not on hold; recorded anyway as run {}", args.person, changed.run);
    } else {
        println!(
            "lifted the hold of person {}; recorded in the audit trail as run {} by {}",
            args.person, changed.run, start.actor
        );
    }
    Ok(exit::SUCCESS)
}

/// A hold as an operator asked for it (`roster hold`, the API), checked: a reason, and a last day
/// not before `today`.
pub(crate) fn new_hold(reason: &str, until: Option<NaiveDate>, today: NaiveDate) -> Result<Hold> {
    if let Some(until) = until.filter(|until| *until < today) {
        bail!(UsageError(format!("--until {until} is before today ({today}): the hold would never apply")));
    }
    if reason.trim().is_empty() {
        bail!(UsageError("--reason is empty: say why the person is held, for whoever reads the plan".into()));
    }
    Ok(Hold { reason: reason.trim().to_string(), until })
}

async fn set_hold(loaded: &Loaded, start: &RunStart, person: &str, hold: Option<&Hold>) -> Result<HoldChange> {
    let store = open_store(&loaded.settings, &loaded.config_dir).await?;
    let changed = store.set_hold(start, person, hold).await;
    store.close().await;
    changed?.ok_or_else(|| {
        anyhow!(UsageError(format!(
            "the store knows no person {person}: a hold needs a person recorded by an applied run (keys as in the plan)"
        )))
    })
}
