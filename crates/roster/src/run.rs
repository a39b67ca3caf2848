//! The commands that run the engine: read the sources, read the targets, plan (the pure core),
//! check the safety limits, apply, record. See `ARCHITECTURE.md`, "Run anatomy".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use roster_connectors::source::csv::read_csv;
use roster_connectors::source::sql::{SqlReadOptions, read_sql_with};
use roster_connectors::target::{AnyTarget, Target};
use roster_core::config::{SourceConfig, SourceKind, TargetKind};
use roster_core::engine::{PlanInput, Prepared, plan_prepared, plan_prepared_last, prepare, view_attributes};
use roster_core::plan::Plan;
use roster_core::render::render;
use roster_core::settings::{Settings, TargetRules, load};
use roster_core::source::SourceRead;
use roster_core::state::{Link, Snapshot, TargetView, ViewRequest};
use roster_store::{RunFinish, RunStart, RunStatus, Store, Watermark, WatermarkUpdate};

use crate::cli::{ApplyArgs, Cli, Format, OnePerson, PlanArgs, ReconcileArgs, RunArgs};
use crate::{exit, secrets};

/// A problem with how roster was called or configured: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

#[derive(Clone)]
pub(crate) struct Loaded {
    pub(crate) settings: Settings,
    pub(crate) config_dir: PathBuf,
    pub(crate) as_of: chrono::NaiveDate,
    /// `--full-read`: incremental sources are read in full.
    pub(crate) full_read: bool,
}

pub(crate) fn load_config(cli: &Cli) -> Result<Loaded> {
    let path = &cli.config;
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow!(UsageError(format!(
            "cannot read the configuration {}: {e} (create one with `roster init`)",
            path.display()
        )))
    })?;
    let settings = load(&text, &path.display().to_string()).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow!(UsageError(format!("the configuration has {} problem(s):\n{}", errors.len(), lines.join("\n"))))
    })?;
    let config_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let as_of = cli.as_of.unwrap_or_else(|| chrono::Utc::now().with_timezone(&settings.zone).date_naive());
    Ok(Loaded { settings, config_dir, as_of, full_read: cli.full_read })
}

pub(crate) fn store_path(loaded: &Loaded) -> PathBuf {
    loaded.config_dir.join(loaded.settings.store.path())
}

async fn open_store(loaded: &Loaded) -> Result<Store> {
    crate::audit::open_store(&loaded.settings, &loaded.config_dir).await
}

/// Where each incremental source's next read starts, once the run it was read for has landed.
pub(crate) type Watermarks = BTreeMap<String, WatermarkUpdate>;

/// Whether an incremental source is read in full this time: without a watermark, on
/// `--full-read`, or once `full_read_after_hours` have passed since the last full read.
fn since(loaded: &Loaded, source: &SourceConfig, stored: Option<&Watermark>) -> Option<chrono::NaiveDateTime> {
    let stored = stored.filter(|_| !loaded.full_read)?;
    let after = chrono::Duration::hours(i64::from(source.full_read_after_hours.unwrap_or(DEFAULT_FULL_READ_HOURS)));
    (chrono::Utc::now() - stored.full_read_at < after).then_some(stored.watermark)
}

/// Hours between full reads of an incremental source, by default.
const DEFAULT_FULL_READ_HOURS: u32 = 24;

/// Reads every source. A source that fails as a whole stops the run before anything is planned.
/// With a store, SQL sources with a `modified_column` are read incrementally from their stored
/// watermark; without one (`roster check`), in full.
pub(crate) async fn read_sources(loaded: &Loaded, store: Option<&Store>) -> Result<(Vec<SourceRead>, Watermarks)> {
    let stored = match store {
        Some(store) => store.watermarks().await.context("reading the sources' watermarks")?,
        None => BTreeMap::new(),
    };
    let mut watermarks = Watermarks::new();
    let mut reads = Vec::new();
    for source in &loaded.settings.sources {
        let path = loaded.config_dir.join(source.path.clone().unwrap_or_default());
        let config = source.clone();
        let file_reader: Option<fn(&SourceConfig, &Path) -> roster_connectors::error::Result<SourceRead>> =
            match source.kind {
                SourceKind::Csv => Some(read_csv),
                SourceKind::Xlsx => Some(roster_connectors::source::xlsx::read_xlsx),
                SourceKind::Json | SourceKind::Jsonl => Some(roster_connectors::source::json::read_json),
                SourceKind::Sql | SourceKind::Rest | SourceKind::Scim => None,
            };
        let read = match (source.kind, file_reader) {
            (_, Some(reader)) => tokio::task::spawn_blocking(move || reader(&config, &path))
                .await
                .context("the source reader stopped")?
                .with_context(|| format!("source {}: nothing was planned", source.name))?,
            (SourceKind::Sql, None) => {
                let url = source
                    .url
                    .as_ref()
                    .ok_or_else(|| anyhow!(UsageError(format!("source {}: no url", source.name))))?;
                let url =
                    secrets::resolve(url, &loaded.config_dir).with_context(|| format!("source {}", source.name))?;
                let since = since(loaded, source, stored.get(&source.name));
                let options = SqlReadOptions {
                    modified_column: source.modified_column.clone(),
                    since,
                    ..SqlReadOptions::default()
                };
                let read = read_sql_with(source, &url, &options)
                    .await
                    .with_context(|| format!("source {}: nothing was planned", source.name))?;
                if let Some(watermark) = read.watermark {
                    watermarks.insert(source.name.clone(), WatermarkUpdate { watermark, full: since.is_none() });
                }
                if source.modified_column.is_some() {
                    let how = since.map_or("in full".to_string(), |w| format!("incrementally, since {w}"));
                    tracing::info!(source = %source.name, "read {how}");
                }
                read.read
            }
            (SourceKind::Rest, None) => {
                use roster_core::config::RestAuthConfig;
                let reference = match source.rest.as_ref().and_then(|rest| rest.auth.as_ref()) {
                    Some(RestAuthConfig::Basic { password, .. }) => Some(password),
                    Some(RestAuthConfig::Bearer { token }) => Some(token),
                    Some(RestAuthConfig::Oauth2 { client_secret, .. }) => Some(client_secret),
                    None => None,
                };
                let secret = reference
                    .map(|reference| secrets::resolve(reference, &loaded.config_dir))
                    .transpose()
                    .with_context(|| format!("source {}", source.name))?;
                roster_connectors::source::rest::read_rest(source, secret, &loaded.config_dir)
                    .await
                    .with_context(|| format!("source {}: nothing was planned", source.name))?
            }
            (SourceKind::Scim, None) => {
                let users = match store {
                    Some(store) => store.scim_users(&source.name).await,
                    None => open_store(loaded).await?.scim_users(&source.name).await,
                }
                .with_context(|| format!("source {}: reading the pushed SCIM Users", source.name))?;
                let pushed = users
                    .iter()
                    .map(|u| roster_connectors::source::scim::PushedUser { id: &u.id, resource: &u.resource });
                roster_connectors::source::scim::read_scim(source, pushed)
                    .with_context(|| format!("source {}: nothing was planned", source.name))?
            }
            (other, None) => bail!(UsageError(format!(
                "source {}: kind {other:?} has no reader in this build of roster",
                source.name
            ))),
        };
        let read = crate::correlation::hash_identifiers(loaded, read)?;
        tracing::info!(source = %source.name, records = read.records.len(), quarantined = read.quarantined.len(), "source read");
        reads.push(read);
    }
    Ok((reads, watermarks))
}

pub(crate) async fn connect_targets(loaded: &Loaded) -> Result<Vec<AnyTarget>> {
    let mut targets = Vec::new();
    for rules in &loaded.settings.targets {
        let secret = secrets::resolve(rules.config.secret_ref(), &loaded.config_dir)
            .with_context(|| format!("target {}", rules.name()))?;
        let target = AnyTarget::connect(&rules.config, secret, &loaded.config_dir)
            .await
            .with_context(|| format!("target {}", rules.name()))?;
        targets.push(target);
    }
    Ok(targets)
}

/// What each target holds now. `links` (the store's): what roster last wrote, the view of a
/// target that cannot be read (`entra_inbound`).
pub(crate) async fn read_views(
    loaded: &Loaded,
    targets: &mut [AnyTarget],
    links: &[Link],
) -> Result<BTreeMap<String, TargetView>> {
    let mut views = BTreeMap::new();
    for (rules, target) in loaded.settings.targets.iter().zip(targets.iter_mut()) {
        target.recall(links);
        views.insert(rules.name().to_string(), read_in_full(rules, target).await?);
    }
    Ok(views)
}

/// Persons a partial read is worth it for: above this many evaluated (and a twentieth of the
/// population), one paged read of the whole target costs less than their searches.
const PARTIAL_READ_MAX: usize = 1_000;
/// Rounds of "plan, read what the plan needs" before a partial read gives up and reads in full.
const PARTIAL_READ_ROUNDS: usize = 8;

/// Whether a daily run may read `rules`' target in part: not on `--full-read`, a reconcile or a
/// one-person run (`evaluate_all`), nor when the target's last full read was with another
/// configuration or longer ago than its `full_read_after_hours` (default 24; `0`: always full).
fn may_read_in_part(
    loaded: &Loaded,
    rules: &TargetRules,
    evaluate_all: bool,
    last: Option<&roster_store::TargetFullRead>,
) -> bool {
    let hours = rules.config.full_read_after_hours.unwrap_or(DEFAULT_FULL_READ_HOURS);
    // Only the LDAP kinds read in part; the others are read in full without keeping the LDAP
    // targets of the same run from reading in part.
    matches!(rules.config.kind, TargetKind::Ldap | TargetKind::ActiveDirectory)
        && !evaluate_all
        && !loaded.full_read
        && hours > 0
        && last.is_some_and(|last| {
            last.config_hash == loaded.settings.hash
                && chrono::Utc::now() - last.at < chrono::Duration::hours(i64::from(hours))
        })
}

/// The targets this run may read in part (see [`may_read_in_part`]).
async fn targets_read_in_part(loaded: &Loaded, store: &Store, evaluate_all: bool) -> Result<BTreeSet<String>> {
    let last = store.target_full_reads().await.context("reading when the targets were last read in full")?;
    Ok(loaded
        .settings
        .targets
        .iter()
        .filter(|t| may_read_in_part(loaded, t, evaluate_all, last.get(t.name())))
        .map(|t| t.name().to_string())
        .collect())
}

/// Step 1 of the plan ([`prepare`]) on a snapshot read light: the stored records it turns out to
/// need (missing from a source, a row quarantined) are read and it is made again, then the link
/// values of the persons it evaluates are read.
async fn prepare_reading(
    loaded: &Loaded,
    store: &Store,
    reads: &[SourceRead],
    snapshot: &mut Snapshot,
    views: &BTreeMap<String, TargetView>,
    evaluate_all: bool,
) -> Result<Prepared> {
    let settings = &loaded.settings;
    let prepare_on = |snapshot: &Snapshot| {
        prepare(&PlanInput { settings, as_of: loaded.as_of, reads, snapshot, views, evaluate_all })
    };
    let mut prepared = prepare_on(snapshot);
    if !prepared.records_unread().is_empty() {
        let unread = prepared.records_unread().clone();
        store.read_records(snapshot, &unread).await.context("reading the store")?;
        tracing::info!(persons = unread.len(), "stored records read");
        prepared = prepare_on(snapshot);
    }
    store.read_link_values(snapshot, &prepared.evaluated()).await.context("reading the store")?;
    Ok(prepared)
}

/// Reads the targets and plans. The targets `in_part` (see [`may_read_in_part`]), in a run that
/// evaluates few persons, are read for the accounts of the persons evaluated only; the plan made
/// from that asks what else it needs (the entries at the DNs it would take, the groups it would
/// change, the logins it would hand out: `roster_core::partial`), which is read and the plan made
/// again until it needs nothing unread. Returns the plan and the targets read in full. `snapshot`
/// was read light ([`with_records_needed`]): what the plan turns out to need of it is read on the way.
async fn read_and_plan(
    loaded: &Loaded,
    store: &Store,
    targets: &mut [AnyTarget],
    reads: &[SourceRead],
    snapshot: &mut Snapshot,
    in_part: &BTreeSet<String>,
    evaluate_all: bool,
) -> Result<(Plan, Vec<String>)> {
    let settings = &loaded.settings;
    let mut views = BTreeMap::new();
    let mut full = Vec::new();
    for (rules, target) in settings.targets.iter().zip(targets.iter_mut()) {
        if !in_part.contains(rules.name()) {
            // A write-only target's view is what roster last sent (see `AnyTarget::recall`).
            target.recall(&snapshot.links);
            views.insert(rules.name().to_string(), read_in_full(rules, target).await?);
            full.push(rules.name().to_string());
        }
    }
    // Who is evaluated does not depend on a partial view's content: an empty one stands in for it
    // until it is read.
    for name in in_part {
        views.insert(name.to_string(), TargetView { partial: Some(ViewRequest::default()), ..TargetView::default() });
    }
    // Who is who and who is evaluated, once for the rounds below.
    let prepared = prepare_reading(loaded, store, reads, snapshot, &views, evaluate_all).await?;
    if in_part.is_empty() {
        let input = PlanInput { settings, as_of: loaded.as_of, reads, snapshot, views: &views, evaluate_all };
        return Ok((plan_prepared_last(&input, prepared), full));
    }
    let evaluated = prepared.evaluated();
    let mut asks: BTreeMap<String, ViewRequest> = BTreeMap::new();
    if evaluated.len() <= PARTIAL_READ_MAX.max(snapshot.persons.len() / 20) {
        for (rules, target) in settings.targets.iter().zip(targets.iter_mut()) {
            if !in_part.contains(rules.name()) {
                continue;
            }
            let ask = roster_core::partial::first_request(rules, snapshot, &evaluated);
            let read = target
                .read_part(&view_attributes(rules), &ask)
                .await
                .with_context(|| format!("reading target {}", rules.name()))?;
            let Some(view) = read else {
                asks.clear();
                break;
            };
            tracing::info!(target = %rules.name(), entries = view.entries.len(), groups = view.groups.len(), "target read in part");
            views.insert(rules.name().to_string(), view);
            asks.insert(rules.name().to_string(), ask);
        }
    } else {
        tracing::info!(evaluated = evaluated.len(), "many persons evaluated: the targets are read in full");
    }
    for _ in 0..PARTIAL_READ_ROUNDS {
        if asks.is_empty() {
            break;
        }
        let plan = plan_prepared(
            &PlanInput { settings, as_of: loaded.as_of, reads, snapshot, views: &views, evaluate_all },
            &prepared,
        );
        let mut again = false;
        for (name, more) in roster_core::partial::more_to_read(&settings.targets, snapshot, &plan, &views) {
            let Some(ask) = asks.get_mut(&name) else { continue };
            let mut asked = ask.clone();
            if !asked.extend(more.clone()) {
                continue;
            }
            *ask = asked;
            let Some((rules, target)) = settings.targets.iter().zip(targets.iter_mut()).find(|(t, _)| t.name() == name)
            else {
                continue;
            };
            tracing::info!(
                target = %name,
                dns = more.dns.len(),
                groups = more.groups.len(),
                logins = more.logins.len(),
                "the plan needs more of the target"
            );
            let read = target
                .read_part(&view_attributes(rules), &more)
                .await
                .with_context(|| format!("reading target {name}"))?
                .ok_or_else(|| anyhow!("target {name} stopped reading in part"))?;
            tracing::info!(target = %name, entries = read.entries.len(), groups = read.groups.len(), "more of the target read");
            if let Some(view) = views.get_mut(&name) {
                view.merge_part(read);
            }
            again = true;
        }
        if !again {
            free_aside(prepared);
            return Ok((plan, full));
        }
    }
    if !asks.is_empty() {
        tracing::warn!("the plan kept needing more of the targets than was read: they are read in full");
    }
    // Read in full after all: every link's values are compared with what the targets hold.
    store.read_all_link_values(snapshot).await.context("reading the store")?;
    for (rules, target) in settings.targets.iter().zip(targets.iter_mut()) {
        if in_part.contains(rules.name()) {
            views.insert(rules.name().to_string(), read_in_full(rules, target).await?);
            full.push(rules.name().to_string());
        }
    }
    let prepared = prepare_reading(loaded, store, reads, snapshot, &views, evaluate_all).await?;
    let input = PlanInput { settings, as_of: loaded.as_of, reads, snapshot, views: &views, evaluate_all };
    Ok((plan_prepared_last(&input, prepared), full))
}

async fn read_in_full(rules: &TargetRules, target: &mut AnyTarget) -> Result<TargetView> {
    let view =
        target.read_view(&view_attributes(rules)).await.with_context(|| format!("reading target {}", rules.name()))?;
    tracing::info!(target = %rules.name(), entries = view.entries.len(), groups = view.groups.len(), "target read");
    Ok(view)
}

/// The store's snapshot for a plan, from one read without the persons' records and with the values
/// roster last wrote only for the links in targets read in full: everyone's records are added when
/// a source correlates by secondary keys (`engine::stored_records_needed`). [`read_and_plan`] reads
/// the rest it needs.
async fn with_records_needed(
    loaded: &Loaded,
    store: &Store,
    reads: &[SourceRead],
    mut snapshot: Snapshot,
    evaluate_all: bool,
) -> Result<Snapshot> {
    let needed = roster_core::engine::stored_records_needed(&PlanInput {
        settings: &loaded.settings,
        as_of: loaded.as_of,
        reads,
        snapshot: &snapshot,
        views: &BTreeMap::new(),
        evaluate_all,
    });
    store.read_records(&mut snapshot, &needed).await.context("reading the store")?;
    tracing::info!(persons = snapshot.persons.len(), records = needed.len(), "store read");
    Ok(snapshot)
}

pub(crate) struct Fresh {
    pub(crate) loaded: Loaded,
    pub(crate) store: Store,
    pub(crate) targets: Vec<AnyTarget>,
    pub(crate) plan: Plan,
    /// Recorded when the run's every operation landed (a saved plan has none).
    pub(crate) watermarks: Watermarks,
    /// The targets this plan read in full, recorded once the run has applied it.
    pub(crate) read_in_full: Vec<String>,
}

/// Plans a run. `evaluate_all`: every person (reconcile), not only those whose records changed,
/// whose date came due or who have work pending.
async fn fresh_plan_with(loaded: Loaded, evaluate_all: bool) -> Result<Fresh> {
    fresh_plan_for(loaded, evaluate_all, &OnePerson::default()).await
}

/// Plans a run, or with `--person` only that person's part of it (evaluated whatever changed).
/// A one-person run never moves an incremental source's watermark: the others' changes since are
/// still to be applied.
async fn fresh_plan_for(loaded: Loaded, evaluate_all: bool, only: &OnePerson) -> Result<Fresh> {
    let store = open_store(&loaded).await?;
    let evaluate_all = evaluate_all || only.person.is_some();
    let in_part = targets_read_in_part(&loaded, &store, evaluate_all).await?;
    // The sources, the targets' connections and the store's persons and links do not depend on
    // one another: read at once (the CSV on a blocking thread, SQLite on its own and the pages'
    // parsing on another), and their failures reported in this order, as when read one by one.
    let read_in_full: BTreeSet<String> =
        loaded.settings.targets.iter().map(|t| t.name().to_string()).filter(|t| !in_part.contains(t)).collect();
    let (sourced, connected, stored) = tokio::join!(
        read_sources(&loaded, Some(&store)),
        connect_targets(&loaded),
        store.snapshot_without_records(&read_in_full)
    );
    let (reads, watermarks) = sourced?;
    let mut targets = connected?;
    let snapshot = stored.context("reading the store")?;
    let mut snapshot = with_records_needed(&loaded, &store, &reads, snapshot, evaluate_all).await?;
    let (plan, read_in_full) =
        read_and_plan(&loaded, &store, &mut targets, &reads, &mut snapshot, &in_part, evaluate_all).await?;
    let Some(key) = &only.person else {
        free_aside((reads, snapshot));
        return Ok(Fresh { loaded, store, targets, plan, watermarks, read_in_full });
    };
    let known = snapshot.persons.contains_key(key)
        || plan.person_updates.iter().any(|u| &u.key == key)
        || plan.notices.iter().any(|n| n.person.as_ref() == Some(key));
    if !known {
        for t in targets {
            let _ = t.close().await;
        }
        bail!(UsageError(format!(
            "--person {key}: no such person (a person's key, as the plan and `roster explain` show it)"
        )));
    }
    let plan = roster_core::engine::person_plan(&loaded.settings, &snapshot, &plan, key);
    Ok(Fresh { loaded, store, targets, plan, watermarks: Watermarks::new(), read_in_full: Vec::new() })
}

/// Frees `value` on a thread of its own: a million persons' records, stored rows or evaluations
/// take a second or more to free (a tenth of a daily run at a million persons), which the apply
/// need not wait for. The thread ends with the process at the latest.
fn free_aside<T: Send + 'static>(value: T) {
    // Should the thread not start, the value is freed here, as it would have been anyway.
    let _ = std::thread::Builder::new().name("free".to_string()).spawn(move || drop(value));
}

/// Who is acting: `ROSTER_ACTOR`, else the login user.
pub(crate) fn actor() -> String {
    std::env::var("ROSTER_ACTOR").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".to_string())
}

pub async fn check(cli: &Cli) -> Result<u8> {
    let loaded = load_config(cli)?;
    println!("configuration {}: valid", cli.config.display());
    let (reads, _) = read_sources(&loaded, None).await?;
    for r in &reads {
        println!("source {}: {} record(s), {} quarantined row(s)", r.source, r.records.len(), r.quarantined.len());
        for q in &r.quarantined {
            println!("  {}: {}", q.location, q.reason);
        }
    }
    let mut targets = connect_targets(&loaded).await?;
    let views = read_views(&loaded, &mut targets, &[]).await?;
    for (name, v) in &views {
        println!(
            "target {name}: connected; {} account(s), {} group(s) in the managed subtrees",
            v.entries.len(),
            v.groups.len()
        );
    }
    for t in targets {
        let _ = t.close().await;
    }
    Ok(exit::SUCCESS)
}

/// The reconciliation report: every plan reads the managed subtrees; this shows what it found there
/// (with orphans reported even where the configuration ignores them), and applies on request.
pub async fn reconcile_command(cli: &Cli, args: &ReconcileArgs) -> Result<u8> {
    use roster_core::config::OrphanPolicy;
    use roster_core::plan::NoticeKind;
    let mut loaded = load_config(cli)?;
    for t in &mut loaded.settings.targets {
        if t.config.orphans == OrphanPolicy::Ignore {
            t.config.orphans = OrphanPolicy::Report;
        }
    }
    let _lock = if args.apply {
        Some(crate::lock::acquire_for(&loaded, "reconcile", std::time::Duration::from_secs(cli.lock_wait)).await?)
    } else {
        None
    };
    let told = crate::notify::BeforePlanning::of(&loaded);
    let fresh = told.told(fresh_plan_with(loaded, true).await).await?;
    let sections = [
        (NoticeKind::Drift, "Changed outside roster (drift = \"report\")"),
        (NoticeKind::Orphan, "Accounts no person owns"),
        (NoticeKind::LinkedEntryDeleted, "Linked accounts deleted outside roster"),
        (NoticeKind::DisabledOutsideRoster, "Enabled or disabled outside roster"),
        (NoticeKind::Protected, "Protected accounts left alone"),
        (NoticeKind::Disputed, "Disputed: several accounts carry one person's key"),
    ];
    let mut found = 0;
    for (kind, title) in sections {
        let notices: Vec<_> = fresh.plan.notices.iter().filter(|n| n.kind == kind).collect();
        if notices.is_empty() {
            continue;
        }
        found += notices.len();
        println!("{title} ({})", notices.len());
        for n in notices {
            let target = n.target.as_deref().map(|t| format!("[{t}] ")).unwrap_or_default();
            let who = n.person.as_deref().map(|p| format!("{p}: ")).unwrap_or_default();
            println!("  {target}{who}{}", n.message);
        }
    }
    let restores: Vec<_> = fresh
        .plan
        .operations
        .iter()
        .filter(|o| o.reason.starts_with("restore:") || o.reason.starts_with("orphan:"))
        .collect();
    if !restores.is_empty() {
        println!("To restore ({})", restores.len());
        for o in &restores {
            println!("  #{} [{}] {} {}: {}", o.id, o.target, o.action.kind(), o.action.dn(), o.reason);
        }
    }
    if found == 0 && restores.is_empty() {
        println!("The targets hold what roster wants: no drift, orphans or deleted accounts.");
    }
    println!("{} operation(s) planned in all; `roster plan` shows them.", fresh.plan.operations.len());
    if args.apply {
        return crate::apply::apply_plan(fresh, &args.overrides, "reconcile").await;
    }
    for t in fresh.targets {
        let _ = t.close().await;
    }
    Ok(if fresh.plan.is_blocked() { exit::BLOCKED } else { exit::SUCCESS })
}

pub async fn plan_command(cli: &Cli, args: &PlanArgs) -> Result<u8> {
    let mut fresh = fresh_plan_for(load_config(cli)?, false, &args.only).await?;
    // The JSON only when it is wanted (for a large plan it costs as much as planning), and
    // streamed to where it goes: a million persons' plan is gigabytes as one string.
    if let Some(out) = &args.out {
        let file = std::fs::File::create(out).with_context(|| format!("writing the plan to {}", out.display()))?;
        write_json(&mut fresh.plan, file, false).with_context(|| format!("writing the plan to {}", out.display()))?;
    }
    match (args.format, &args.out) {
        (Format::Text, _) => print!("{}", render(&fresh.plan)),
        (Format::Json, Some(out)) => {
            let mut saved =
                std::fs::File::open(out).with_context(|| format!("reading back the plan from {}", out.display()))?;
            std::io::copy(&mut saved, &mut std::io::stdout().lock()).context("printing the plan")?;
            println!();
        }
        (Format::Json, None) => {
            let stdout = std::io::stdout().lock();
            let pretty = std::io::IsTerminal::is_terminal(&stdout);
            write_json(&mut fresh.plan, stdout, pretty).context("printing the plan")?;
            println!();
        }
    }
    if let Some(out) = &args.out {
        eprintln!("plan saved to {}; apply it with `roster apply {}`", out.display(), out.display());
    }
    let run = fresh.store.begin_run(&run_start("plan", &fresh, vec![])).await?;
    fresh
        .store
        .finish_run(
            run,
            &RunFinish {
                status: RunStatus::Planned,
                summary: fresh.plan.summary.clone(),
                source_counts: BTreeMap::new(),
                failed: 0,
            },
        )
        .await?;
    let code = if fresh.plan.is_blocked() { exit::BLOCKED } else { exit::SUCCESS };
    for t in fresh.targets {
        let _ = t.close().await;
    }
    // The plan is written and the process ends with this command: freeing a million persons'
    // plan piece by piece took seconds, and the system takes the memory back at exit anyway.
    // A plan is plain data (no file, connection or lock to release on drop).
    std::mem::forget(fresh.plan);
    Ok(code)
}

/// Writes `plan` as JSON through a buffer, never holding the whole text: indented for a person
/// at a terminal, else on one line, its long lists serialized on every core ([`Plan::write_json`];
/// a million persons' plan is 1.5 GB so, 2.5 GB indented; writing it indented was a sixth of that
/// plan's run, on one core).
fn write_json(plan: &mut Plan, to: impl std::io::Write, pretty: bool) -> Result<()> {
    let mut to = std::io::BufWriter::with_capacity(1 << 20, to);
    if pretty {
        serde_json::to_writer_pretty(&mut to, plan)?;
    } else {
        plan.write_json(&mut to)?;
    }
    std::io::Write::flush(&mut to)?;
    Ok(())
}

/// A run's record as it starts, without its plan: an applying run writes it in parts beside its
/// operations (`apply.rs`); a plan-only or blocked run keeps none.
pub(crate) fn run_start(command: &str, fresh: &Fresh, overrides: Vec<String>) -> RunStart {
    RunStart {
        command: command.to_string(),
        as_of: fresh.plan.as_of,
        config_hash: fresh.loaded.settings.hash.clone(),
        actor: actor(),
        overrides,
        plan_json: None,
    }
}

pub async fn run_command(cli: &Cli, args: &RunArgs) -> Result<u8> {
    let loaded = load_config(cli)?;
    let _lock = crate::lock::acquire_for(&loaded, "run", std::time::Duration::from_secs(cli.lock_wait)).await?;
    let told = crate::notify::BeforePlanning::of(&loaded);
    let fresh = told.told(fresh_plan_for(loaded, false, &args.only).await).await?;
    if args.show_plan {
        print!("{}", render(&fresh.plan));
    }
    crate::apply::apply_plan(fresh, &args.overrides, "run").await
}

pub async fn apply_command(cli: &Cli, args: &ApplyArgs) -> Result<u8> {
    let loaded = load_config(cli)?;
    let _lock = crate::lock::acquire_for(&loaded, "apply", std::time::Duration::from_secs(cli.lock_wait)).await?;
    if let Some(id) = args.approved {
        let told = crate::notify::BeforePlanning::of(&loaded);
        return crate::approvals::apply_approved(told.told(fresh_plan_with(loaded, false).await).await?, id).await;
    }
    let Some(path) = &args.plan else {
        let told = crate::notify::BeforePlanning::of(&loaded);
        let fresh = told.told(fresh_plan_with(loaded, false).await).await?;
        return crate::apply::apply_plan(fresh, &args.overrides, "apply").await;
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!(UsageError(format!("cannot read the plan {}: {e}", path.display()))))?;
    let saved: Plan = serde_json::from_str(&text)
        .map_err(|e| anyhow!(UsageError(format!("{} is not a roster plan: {e}", path.display()))))?;
    if saved.format != roster_core::plan::PLAN_FORMAT {
        bail!(UsageError(format!(
            "{} has plan format {}, this roster reads format {}",
            path.display(),
            saved.format,
            roster_core::plan::PLAN_FORMAT
        )));
    }
    if saved.config_hash != loaded.settings.hash {
        bail!(UsageError(format!(
            "{} was planned with another configuration than {} has now: make a new plan",
            path.display(),
            cli.config.display()
        )));
    }
    let told = crate::notify::BeforePlanning::of(&loaded);
    let store = open_store(&loaded).await?;
    let targets = told.told(connect_targets(&loaded).await).await?;
    crate::apply::apply_plan(
        Fresh { loaded, store, targets, plan: saved, watermarks: Watermarks::new(), read_in_full: Vec::new() },
        &args.overrides,
        "apply",
    )
    .await
}
