//! The commands that run the engine: read the sources, read the targets, plan (the pure core),
//! check the safety limits, apply, record. See `ARCHITECTURE.md`, "Run anatomy".

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use roster_connectors::source::csv::read_csv;
use roster_connectors::target::{ErrorKind, LdapTarget};
use roster_core::config::{SourceConfig, SourceKind};
use roster_core::engine::{PlanInput, plan, view_attributes};
use roster_core::plan::{Action, Operation, Plan};
use roster_core::render::render;
use roster_core::settings::{Settings, load};
use roster_core::source::SourceRead;
use roster_core::state::TargetView;
use roster_store::{Outcome, RunFinish, RunStart, RunStatus, Store};

use crate::cli::{ApplyArgs, Cli, Format, Overrides, PlanArgs, ReconcileArgs, RunArgs};
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

/// How many operations are recorded as intents, sent, and recorded as outcomes at a time.
const BATCH: usize = 200;
/// Attempts for an operation that fails with a transient error (busy, unavailable).
const ATTEMPTS: u32 = 3;
/// Consecutive operations failing to reach a target after which its remaining operations in the
/// run are not attempted.
const UNREACHABLE_AFTER: u32 = 3;

pub(crate) struct Loaded {
    pub(crate) settings: Settings,
    pub(crate) config_dir: PathBuf,
    pub(crate) as_of: chrono::NaiveDate,
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
    Ok(Loaded { settings, config_dir, as_of })
}

pub(crate) fn store_path(loaded: &Loaded) -> PathBuf {
    loaded.config_dir.join(&loaded.settings.store.path)
}

async fn open_store(loaded: &Loaded) -> Result<Store> {
    crate::audit::open_store(&loaded.settings, &loaded.config_dir).await
}

/// Reads every source. A source that fails as a whole stops the run before anything is planned.
async fn read_sources(loaded: &Loaded) -> Result<Vec<SourceRead>> {
    let mut reads = Vec::new();
    for source in &loaded.settings.sources {
        let path = loaded.config_dir.join(source.path.clone().unwrap_or_default());
        let config = source.clone();
        let file_reader: Option<fn(&SourceConfig, &Path) -> roster_connectors::error::Result<SourceRead>> =
            match source.kind {
                SourceKind::Csv => Some(read_csv),
                SourceKind::Xlsx => Some(roster_connectors::source::xlsx::read_xlsx),
                SourceKind::Json | SourceKind::Jsonl => Some(roster_connectors::source::json::read_json),
                SourceKind::Sql | SourceKind::Rest => None,
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
                roster_connectors::source::sql::read_sql(source, &url)
                    .await
                    .with_context(|| format!("source {}: nothing was planned", source.name))?
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
            (other, None) => bail!(UsageError(format!(
                "source {}: kind {other:?} has no reader in this build of roster",
                source.name
            ))),
        };
        let read = crate::correlation::hash_identifiers(loaded, read)?;
        tracing::info!(source = %source.name, records = read.records.len(), quarantined = read.quarantined.len(), "source read");
        reads.push(read);
    }
    Ok(reads)
}

async fn connect_targets(loaded: &Loaded) -> Result<Vec<LdapTarget>> {
    let mut targets = Vec::new();
    for rules in &loaded.settings.targets {
        let password = secrets::resolve(&rules.config.bind_password, &loaded.config_dir)
            .with_context(|| format!("target {}", rules.name()))?;
        let target = LdapTarget::connect(&rules.config, password, &loaded.config_dir)
            .await
            .with_context(|| format!("target {}", rules.name()))?;
        targets.push(target);
    }
    Ok(targets)
}

async fn read_views(loaded: &Loaded, targets: &mut [LdapTarget]) -> Result<BTreeMap<String, TargetView>> {
    let mut views = BTreeMap::new();
    for (rules, target) in loaded.settings.targets.iter().zip(targets.iter_mut()) {
        let view = target
            .read_view(&view_attributes(rules))
            .await
            .with_context(|| format!("reading target {}", rules.name()))?;
        tracing::info!(target = %rules.name(), entries = view.entries.len(), groups = view.groups.len(), "target read");
        views.insert(rules.name().to_string(), view);
    }
    Ok(views)
}

struct Fresh {
    loaded: Loaded,
    store: Store,
    targets: Vec<LdapTarget>,
    plan: Plan,
}

async fn fresh_plan(cli: &Cli) -> Result<Fresh> {
    fresh_plan_with(load_config(cli)?).await
}

async fn fresh_plan_with(loaded: Loaded) -> Result<Fresh> {
    let store = open_store(&loaded).await?;
    let reads = read_sources(&loaded).await?;
    let mut targets = connect_targets(&loaded).await?;
    let views = read_views(&loaded, &mut targets).await?;
    let snapshot = store.snapshot().await.context("reading the store")?;
    let plan = plan(&PlanInput {
        settings: &loaded.settings,
        as_of: loaded.as_of,
        reads: &reads,
        snapshot: &snapshot,
        views: &views,
    });
    Ok(Fresh { loaded, store, targets, plan })
}

/// Who is acting: `ROSTER_ACTOR`, else the login user.
pub(crate) fn actor() -> String {
    std::env::var("ROSTER_ACTOR").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".to_string())
}

pub async fn check(cli: &Cli) -> Result<u8> {
    let loaded = load_config(cli)?;
    println!("configuration {}: valid", cli.config.display());
    let reads = read_sources(&loaded).await?;
    for r in &reads {
        println!("source {}: {} record(s), {} quarantined row(s)", r.source, r.records.len(), r.quarantined.len());
        for q in &r.quarantined {
            println!("  {}: {}", q.location, q.reason);
        }
    }
    let mut targets = connect_targets(&loaded).await?;
    let views = read_views(&loaded, &mut targets).await?;
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
    let _lock = if args.apply { Some(crate::lock::acquire(&store_path(&loaded), "reconcile")?) } else { None };
    let fresh = fresh_plan_with(loaded).await?;
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
        return apply_plan(fresh, &args.overrides, "reconcile").await;
    }
    for t in fresh.targets {
        let _ = t.close().await;
    }
    Ok(if fresh.plan.is_blocked() { exit::BLOCKED } else { exit::SUCCESS })
}

pub async fn plan_command(cli: &Cli, args: &PlanArgs) -> Result<u8> {
    let fresh = fresh_plan(cli).await?;
    let json = serde_json::to_string_pretty(&fresh.plan).context("serializing the plan")?;
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| format!("writing the plan to {}", out.display()))?;
    }
    match args.format {
        Format::Text => print!("{}", render(&fresh.plan)),
        Format::Json => println!("{json}"),
    }
    if let Some(out) = &args.out {
        eprintln!("plan saved to {}; apply it with `roster apply {}`", out.display(), out.display());
    }
    let run = fresh.store.begin_run(&run_start("plan", &fresh, vec![], None)).await?;
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
    for t in fresh.targets {
        let _ = t.close().await;
    }
    Ok(if fresh.plan.is_blocked() { exit::BLOCKED } else { exit::SUCCESS })
}

fn run_start(command: &str, fresh: &Fresh, overrides: Vec<String>, plan_json: Option<String>) -> RunStart {
    RunStart {
        command: command.to_string(),
        as_of: fresh.plan.as_of,
        config_hash: fresh.loaded.settings.hash.clone(),
        actor: actor(),
        overrides,
        plan_json,
    }
}

pub async fn run_command(cli: &Cli, args: &RunArgs) -> Result<u8> {
    let loaded = load_config(cli)?;
    let _lock = crate::lock::acquire(&store_path(&loaded), "run")?;
    let fresh = fresh_plan_with(loaded).await?;
    if args.show_plan {
        print!("{}", render(&fresh.plan));
    }
    apply_plan(fresh, &args.overrides, "run").await
}

pub async fn apply_command(cli: &Cli, args: &ApplyArgs) -> Result<u8> {
    let loaded = load_config(cli)?;
    let _lock = crate::lock::acquire(&store_path(&loaded), "apply")?;
    let Some(path) = &args.plan else {
        let fresh = fresh_plan_with(loaded).await?;
        return apply_plan(fresh, &args.overrides, "apply").await;
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
    let store = open_store(&loaded).await?;
    let targets = connect_targets(&loaded).await?;
    apply_plan(Fresh { loaded, store, targets, plan: saved }, &args.overrides, "apply").await
}

/// The safety limits the plan exceeds that the operator did not allow.
fn unallowed<'a>(plan: &'a Plan, overrides: &Overrides) -> Vec<&'a roster_core::plan::SafetyViolation> {
    let all = overrides.allow.iter().any(|a| a == "all");
    plan.safety
        .iter()
        .filter(|v| !all && !overrides.allow.iter().any(|a| v.limit == *a || v.limit.starts_with(&format!("{a}("))))
        .collect()
}

async fn apply_plan(fresh: Fresh, overrides: &Overrides, command: &str) -> Result<u8> {
    let blocking = unallowed(&fresh.plan, overrides);
    if !blocking.is_empty() {
        eprintln!("BLOCKED by safety limits: nothing was applied.");
        for v in &blocking {
            eprintln!("  {}", v.message);
        }
        let names: BTreeSet<&str> = blocking.iter().map(|v| v.limit.split('(').next().unwrap_or(&v.limit)).collect();
        eprintln!(
            "Review the plan (`roster plan`), then apply with `--allow {}` if it is right.",
            names.into_iter().collect::<Vec<_>>().join(",")
        );
        let run = fresh.store.begin_run(&run_start(command, &fresh, vec![], None)).await?;
        fresh
            .store
            .finish_run(
                run,
                &RunFinish {
                    status: RunStatus::Blocked,
                    summary: fresh.plan.summary.clone(),
                    source_counts: BTreeMap::new(),
                    failed: 0,
                },
            )
            .await?;
        return Ok(exit::BLOCKED);
    }
    let used_overrides: Vec<String> = fresh.plan.safety.iter().map(|v| format!("{}: {}", v.limit, v.message)).collect();
    let plan_json = serde_json::to_string(&fresh.plan).ok();
    let store = fresh.store.clone();
    let run = store.begin_run(&run_start(command, &fresh, used_overrides, plan_json)).await?;
    let result = execute(&fresh, run).await;
    let (done, failed, skipped) = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = store
                .finish_run(
                    run,
                    &RunFinish {
                        status: RunStatus::Failed,
                        summary: fresh.plan.summary.clone(),
                        source_counts: BTreeMap::new(),
                        failed: 0,
                    },
                )
                .await;
            return Err(e);
        }
    };
    let status = if failed + skipped == 0 { RunStatus::Success } else { RunStatus::Partial };
    store
        .finish_run(
            run,
            &RunFinish {
                status,
                summary: fresh.plan.summary.clone(),
                source_counts: fresh.plan.source_counts.clone(),
                failed: failed + skipped,
            },
        )
        .await?;
    let s = &fresh.plan.summary;
    println!(
        "run {run} {status}: {done} operation(s) applied, {failed} failed, {skipped} skipped; {} joiner(s), {} mover(s), {} leaver(s), {} rehire(s); {} quarantined row(s); {} notice(s)",
        s.joiners, s.movers, s.leavers, s.rehires, s.quarantined_rows, s.notices
    );
    print_findings(&fresh.plan);
    for t in fresh.targets {
        let _ = t.close().await;
    }
    Ok(if status == RunStatus::Success { exit::SUCCESS } else { exit::PARTIAL })
}

fn progress(total: usize) -> ProgressBar {
    if total < 50 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} operations ({per_sec}, {eta} left)") {
        bar.set_style(style);
    }
    bar
}

/// Applies the operations in order, in batches: intents recorded, operations sent, outcomes
/// recorded. An operation whose dependency did not land is skipped. Returns (done, failed, skipped).
async fn execute(fresh: &Fresh, run: roster_store::RunId) -> Result<(u64, u64, u64)> {
    let plan = &fresh.plan;
    let by_name: BTreeMap<&str, &LdapTarget> =
        fresh.loaded.settings.targets.iter().map(|r| r.name()).zip(fresh.targets.iter()).collect();
    let mut landed: Vec<bool> = vec![false; plan.operations.len()];
    let mut unreachable: BTreeMap<String, u32> = BTreeMap::new();
    let mut troubled_persons: BTreeSet<String> = BTreeSet::new();
    let (mut done, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    let bar = progress(plan.operations.len());
    let failpoint = Failpoint::from_env();
    for batch in plan.operations.chunks(BATCH) {
        fresh.store.record_intents(run, batch).await.context("recording intents in the store")?;
        let mut results: Vec<(Operation, Outcome)> = Vec::with_capacity(batch.len());
        for planned in batch {
            Failpoint::BeforeSend(planned.id).abort_if(failpoint);
            let narrowed = without_missing_members(plan, &landed, planned);
            let op = narrowed.as_ref().unwrap_or(planned);
            let outcome = match op.depends_on.iter().find(|d| !landed.get(**d).copied().unwrap_or(false)) {
                Some(dep) => {
                    Outcome::Skipped { reason: format!("operation #{dep}, which this one depends on, did not land") }
                }
                None => match by_name.get(op.target.as_str()) {
                    None => Outcome::Skipped { reason: format!("target {} is not in the configuration", op.target) },
                    Some(_) if unreachable.get(op.target.as_str()).is_some_and(|n| *n >= UNREACHABLE_AFTER) => {
                        Outcome::Failed {
                            error: format!(
                                "target {} stopped answering in this run: not attempted (the next run retries it)",
                                op.target
                            ),
                            unknown: false,
                        }
                    }
                    Some(target) => {
                        let (outcome, kind) = match &op.action {
                            Action::SetPassword { .. } => (set_password(fresh, target, op).await, None),
                            _ => apply_with_retry(target, op).await,
                        };
                        // A target whose connection keeps failing is given up on for this run
                        // instead of costing every remaining operation its full retries.
                        let count = unreachable.entry(op.target.clone()).or_insert(0);
                        if matches!(kind, Some(ErrorKind::Connect | ErrorKind::Transient)) {
                            *count += 1;
                        } else {
                            *count = 0;
                        }
                        outcome
                    }
                },
            };
            Failpoint::AfterSend(op.id).abort_if(failpoint);
            match &outcome {
                Outcome::Done(_) => {
                    done += 1;
                    landed[op.id] = true;
                }
                Outcome::Failed { error, .. } => {
                    failed += 1;
                    eprintln!("failed: #{} {} {}: {error}", op.id, op.action.kind(), op.action.dn());
                }
                Outcome::Skipped { reason } => {
                    skipped += 1;
                    eprintln!("skipped: #{} {} {}: {reason}", op.id, op.action.kind(), op.action.dn());
                }
            }
            if !matches!(outcome, Outcome::Done(_))
                && let Some(p) = &op.person
            {
                troubled_persons.insert(p.clone());
            }
            results.push((op.clone(), outcome));
            bar.inc(1);
        }
        fresh.store.record_outcomes(run, &results).await.context("recording outcomes in the store")?;
        for op in batch {
            Failpoint::AfterOutcome(op.id).abort_if(failpoint);
        }
    }
    bar.finish_and_clear();
    let updates: Vec<_> = plan.person_updates.iter().filter(|u| !troubled_persons.contains(&u.key)).cloned().collect();
    fresh.store.commit_persons(&updates, plan.as_of).await.context("recording persons in the store")?;
    Ok((done, failed, skipped))
}

// --- Test hook: failpoints. Inert unless ROSTER_FAILPOINT is set. ---

/// A test hook for the crash tests (`crates/roster/tests/crash.rs`), not a feature: when the
/// environment variable `ROSTER_FAILPOINT` holds `KIND:N`, the apply aborts the process at that
/// point with [`std::process::abort`], which, like SIGKILL, runs no destructor and flushes nothing.
/// Read once at the start of an apply; does nothing unless set.
///
/// - `before_send:N`: the intents of op N's batch are recorded, op N is about to be sent (the ops
///   before it in the batch were sent, their outcomes not recorded);
/// - `after_send:N`: op N came back from the target, its outcome is not recorded;
/// - `after_outcome:N`: the outcomes of op N's batch are recorded (for the last batch, the persons
///   are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failpoint {
    BeforeSend(usize),
    AfterSend(usize),
    AfterOutcome(usize),
}

impl Failpoint {
    const VARIABLE: &str = "ROSTER_FAILPOINT";

    fn from_env() -> Option<Failpoint> {
        let value = std::env::var(Self::VARIABLE).ok()?;
        let parsed = value.split_once(':').and_then(|(kind, op)| {
            let op = op.parse().ok()?;
            match kind {
                "before_send" => Some(Failpoint::BeforeSend(op)),
                "after_send" => Some(Failpoint::AfterSend(op)),
                "after_outcome" => Some(Failpoint::AfterOutcome(op)),
                _ => None,
            }
        });
        if parsed.is_none() {
            tracing::warn!(
                "{}={value:?} is not before_send:N, after_send:N or after_outcome:N; ignored",
                Self::VARIABLE
            );
        }
        parsed
    }

    fn abort_if(self, armed: Option<Failpoint>) {
        if armed == Some(self) {
            eprintln!("{}: aborting at {self:?}", Self::VARIABLE);
            std::process::abort();
        }
    }
}

// --- End of the test hook. ---

/// Makes a new password, sets it, and hands it to the delivery. A password that was set but not
/// delivered is a failed operation: the account's link keeps its password pending, and the next run
/// sets a new one rather than ever storing this one.
async fn set_password(fresh: &Fresh, target: &LdapTarget, op: &Operation) -> Outcome {
    let Some(config) =
        fresh.loaded.settings.targets.iter().find(|t| t.name() == op.target).and_then(|t| t.config.password.as_ref())
    else {
        return Outcome::Failed {
            error: format!("target {} has no [target.password] settings", op.target),
            unknown: false,
        };
    };
    let password = match crate::password::generate(config.length) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed { error: format!("{e:#}"), unknown: false },
    };
    let applied = match target.set_password(op, &password).await {
        Ok(applied) => applied,
        Err(e) => return Outcome::Failed { unknown: e.kind == ErrorKind::Unknown, error: e.to_string() },
    };
    let person = op.person.as_deref().unwrap_or_default();
    let login = fresh
        .plan
        .person_updates
        .iter()
        .find(|u| u.key == person)
        .and_then(|u| u.login.clone())
        .unwrap_or_else(|| person.to_string());
    let who = crate::password::Recipient { person, login: &login, dn: op.action.dn() };
    match crate::password::deliver(&config.delivery, &who, &password, &fresh.loaded.config_dir).await {
        Ok(()) => Outcome::Done(applied),
        Err(e) => Outcome::Failed {
            error: format!("the password was set but not delivered ({e:#}); the next run sets a new one"),
            unknown: false,
        },
    }
}

/// A new group whose members' accounts did not all land is still made, with the members that
/// exist: one refused account must not keep the group from everyone else (the next run adds the
/// missing member once their account exists). None when the operation stands as planned.
fn without_missing_members(plan: &Plan, landed: &[bool], op: &Operation) -> Option<Operation> {
    let Action::CreateGroup { dn, members, attributes } = &op.action else { return None };
    if op.depends_on.iter().all(|d| landed.get(*d).copied().unwrap_or(false)) {
        return None;
    }
    // The operation that makes a member's DN exist in this run: its create, adoption or rename.
    let made_by = |member: &str| {
        let member = roster_core::dn::normalize_dn(member);
        plan.operations[..op.id].iter().rev().find(|o| match &o.action {
            Action::Create { dn, .. } | Action::Adopt { dn, .. } => roster_core::dn::normalize_dn(dn) == member,
            Action::Rename { new_dn, .. } => roster_core::dn::normalize_dn(new_dn) == member,
            _ => false,
        })
    };
    let kept: Vec<String> = members
        .iter()
        .filter(|m| made_by(m).is_none_or(|o| landed.get(o.id).copied().unwrap_or(false)))
        .cloned()
        .collect();
    let dropped: Vec<usize> =
        members.iter().filter_map(|m| made_by(m)).map(|o| o.id).filter(|id| !landed[*id]).collect();
    if kept.is_empty() {
        return None;
    }
    let mut narrowed = op.clone();
    narrowed.action = Action::CreateGroup { dn: dn.clone(), members: kept, attributes: attributes.clone() };
    narrowed.depends_on.retain(|d| !dropped.contains(d));
    narrowed.reason = format!("{} (without the members whose accounts did not land)", op.reason);
    Some(narrowed)
}

/// The outcome, and the kind of error it ended with (None on success).
async fn apply_with_retry(target: &LdapTarget, op: &Operation) -> (Outcome, Option<ErrorKind>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match target.apply(op).await {
            Ok(applied) => return (Outcome::Done(applied), None),
            Err(e) if e.kind == ErrorKind::Transient && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(250 * 4u64.pow(attempt - 1))).await;
            }
            Err(e) if e.kind == ErrorKind::Conflict => {
                return (Outcome::Skipped { reason: format!("conflict: {e}") }, Some(e.kind));
            }
            Err(e) => {
                return (Outcome::Failed { unknown: e.kind == ErrorKind::Unknown, error: e.to_string() }, Some(e.kind));
            }
        }
    }
}

/// The quarantined rows and notices, which a run's summary lists (a plan shows them anyway).
fn print_findings(plan: &Plan) {
    if !plan.quarantined.is_empty() {
        println!("quarantined rows (their persons are held as they were):");
        for q in &plan.quarantined {
            println!("  {}: {}", q.location, q.reason);
        }
    }
    if !plan.notices.is_empty() {
        println!("notices:");
        for n in &plan.notices {
            let who = n.person.as_deref().map(|p| format!("{p}: ")).unwrap_or_default();
            println!("  {who}{}", n.message);
        }
    }
}
