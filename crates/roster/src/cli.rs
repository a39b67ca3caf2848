//! The command line: parse (clap), then hand over to the commands.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::{audit, exit, init, run};

#[derive(Parser, Debug)]
#[command(
    name = "roster",
    version,
    about = "HR-driven identity provisioning: joiners, movers and leavers from HR data into directories"
)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true, env = "ROSTER_CONFIG", default_value = "roster.toml")]
    pub config: PathBuf,
    /// Evaluate dates as of this day (YYYY-MM-DD) instead of today in the configured time zone.
    #[arg(long, global = true, value_parser = parse_date)]
    pub as_of: Option<NaiveDate>,
    /// More log output (repeat for more).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Read every incremental source (`modified_column`) and every target in full, as their
    /// periodic full reads do: the reads that notice who has gone and what changed outside roster.
    #[arg(long, global = true)]
    pub full_read: bool,
    /// Log lines as JSON (for log collectors) instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// When another roster is applying changes with this store (`run`, `apply`, `reconcile
    /// --apply`), wait up to this many seconds for it to finish instead of refusing at once.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 0)]
    pub lock_wait: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a starter configuration and sample HR data into a folder.
    Init(init::InitArgs),
    /// Validate the configuration, read the sources and connect to every target; change nothing.
    Check,
    /// Show what a run would change, without changing anything.
    Plan(PlanArgs),
    /// Apply a fresh plan, or a saved one (each operation only where what it was planned against still holds).
    Apply(ApplyArgs),
    /// Plan and apply in one go (for schedulers).
    Run(RunArgs),
    /// Read the targets and report what differs from what roster wants: owned attributes changed by
    /// hand (drift), accounts no person owns (orphans), linked accounts deleted by hand, accounts
    /// disabled outside roster, protected accounts; with --apply, carry out the plan (restores,
    /// and orphans disabled where `orphans = "disable"`).
    Reconcile(ReconcileArgs),
    /// Show the audit trail, export its chain head, verify it was not tampered with.
    ///
    /// Every entry is chained by a keyed hash (HMAC-SHA256, key from `[audit] key`, else the
    /// `.audit-key` file beside the store): `verify` names an entry edited, removed, reordered or
    /// inserted, and, given a head exported earlier, a cut tail or a history rebuilt since.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Every value and decision for one person: their source rows, each attribute's value with
    /// its source and expression, the lifecycle state and the rule that set it, the next
    /// transition, their hold, links, and the operations a run would make for them, with reasons.
    /// Changes nothing.
    Explain(ExplainArgs),
    /// Plans held for an approver: blocked by a safety limit or an `[approval]` rule.
    #[command(subcommand)]
    Plans(PlansCommand),
    /// Release a person quarantined after failing runs: the next run plans for them again.
    ///
    /// In one target (`--target`) or in all. Recorded in the audit trail, with who did it
    /// (`ROSTER_ACTOR`, else the login name).
    Release(ReleaseArgs),
    /// Put a person on hold: roster plans nothing for them (in any target) until the hold ends.
    ///
    /// For a person whose HR record is known to be wrong, or under investigation. The plan lists
    /// them with the hold's reason. Recorded in the audit trail with who did it (`ROSTER_ACTOR`, else
    /// the login name). A hold replaces any earlier one; `roster unhold` lifts it before its end.
    Hold(HoldArgs),
    /// Lift a person's hold: the next run plans for them again.
    Unhold(UnholdArgs),
    /// The daemon: run the `[serve]` jobs on their schedules, one at a time, and serve the REST
    /// API, `/health`, `/ready` and Prometheus `/metrics` on `serve.listen` (see docs/daemon.md).
    ///
    /// Prints `listening on ADDRESS` first. SIGTERM or SIGINT: stop scheduling, let the running
    /// job finish, exit 0; a second signal (or `serve.shutdown_timeout`) stops the job.
    Serve,
    /// API tokens for `[[serve.token]]`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print a shell completion script (e.g. `roster completions bash > /etc/bash_completion.d/roster`).
    Completions(CompletionsArgs),
    /// Write man pages for roster and each of its commands into a folder (e.g.
    /// `roster manpages /usr/share/man/man1`), one file per command, and list them.
    Manpages(ManpagesArgs),
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a new random token: prints the token (give it to its holder) and the
    /// `[[serve.token]]` entry with its SHA-256 (put it in the config).
    New(TokenNewArgs),
    /// Read a token on standard input and print its SHA-256, as `[[serve.token]] sha256` wants it.
    Hash,
}

#[derive(clap::Args, Debug)]
pub struct TokenNewArgs {
    /// Who holds it (the actor of what it does in the audit trail: `api:NAME`).
    pub name: String,
    /// viewer, operator or approver.
    #[arg(long, default_value = "viewer")]
    pub role: String,
}

#[derive(clap::Args, Debug)]
pub struct ManpagesArgs {
    /// The folder to write the pages into (created if missing).
    pub dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    pub shell: clap_complete::Shell,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the chain's newest event as `{"seq": N, "mac": "..."}`.
    ///
    /// Keep it somewhere the store's host cannot rewrite (a log collector, a ticket) and give it
    /// to a later `roster audit verify --head`.
    Head,
    /// Walk the chain with the audit key; exit code 5 when the trail is not intact.
    ///
    /// Names the first entry edited, removed, reordered or inserted, and, with `--head`, a cut
    /// tail or a history rebuilt since that head was exported.
    Verify(VerifyArgs),
    /// Print audit entries: the newest `--limit` that match, in the order they happened.
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// A head exported earlier with `roster audit head` (the JSON itself, or a file holding it):
    /// also finds a cut tail, or a history rebuilt since by someone holding the key.
    #[arg(long, value_name = "FILE_OR_VALUE")]
    pub head: Option<String>,
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Only this person's entries (their key).
    #[arg(long)]
    pub person: Option<String>,
    /// Only entries on this object (compared case-insensitively).
    #[arg(long)]
    pub dn: Option<String>,
    /// Only this run's entries.
    #[arg(long)]
    pub run: Option<i64>,
    /// Entries at or after this moment: a day (YYYY-MM-DD, from its start in the configured time
    /// zone) or an RFC 3339 timestamp.
    #[arg(long)]
    pub since: Option<String>,
    /// Entries before this moment (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many entries, the newest.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Subcommand, Debug)]
pub enum PlansCommand {
    /// The held plans, newest first.
    List {
        /// Only these: waiting, approved, rejected, applied, expired.
        #[arg(long)]
        status: Option<String>,
    },
    /// One held plan: its status and decision, and the plan (text, or `--format json`).
    Show {
        id: i64,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Approve a waiting plan (recorded in the audit trail with who did it, `ROSTER_ACTOR` else
    /// the login name); then `roster apply --approved ID` applies it.
    Approve(DecideArgs),
    /// Reject a waiting plan (recorded in the audit trail).
    Reject(DecideArgs),
}

#[derive(clap::Args, Debug)]
pub struct DecideArgs {
    pub id: i64,
    /// Why (in the audit trail).
    #[arg(long)]
    pub reason: String,
}

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The person's key, or the key of one of their records in a source.
    pub person: String,
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ReleaseArgs {
    /// The person's key (as in the plan and the audit trail).
    pub person: String,
    /// Only in this target; without it, in every target.
    #[arg(long)]
    pub target: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct HoldArgs {
    /// The person's key (as in the plan and the audit trail).
    pub person: String,
    /// Why (shown in every plan while the hold lasts, and in the audit trail).
    #[arg(long)]
    pub reason: String,
    /// The hold's last day (YYYY-MM-DD); without it, the hold lasts until `roster unhold`.
    #[arg(long, value_parser = parse_date)]
    pub until: Option<NaiveDate>,
}

#[derive(clap::Args, Debug)]
pub struct UnholdArgs {
    /// The person's key.
    pub person: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also save the plan as JSON to this file, for review and a later `roster apply FILE`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub only: OnePerson,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct OnePerson {
    /// Only this person's changes (their key): their own operations, their group memberships and
    /// the containers and groups these need; nothing of anyone else. Safety limits still apply.
    #[arg(long, value_name = "KEY")]
    pub person: Option<String>,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Overrides {
    /// Apply even though these safety limits are exceeded (disables, deletes, renames,
    /// attribute_changes, source_shrink, or all). Recorded in the audit trail.
    #[arg(long = "allow", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// When blocked, keep the plan as a held plan waiting for an approver (`roster plans`)
    /// instead of discarding it: what the daemon's jobs do.
    #[arg(long)]
    pub hold_if_blocked: bool,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// A plan saved with `roster plan --out`; without it, a fresh plan is made and applied.
    pub plan: Option<PathBuf>,
    /// Apply the held plan ID that an approver approved: each approved operation is checked
    /// against a fresh plan and applied where it is still identical; what is new or changed since
    /// and needs approval is held again as a new plan.
    #[arg(long, value_name = "ID", conflicts_with = "plan")]
    pub approved: Option<i64>,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// Apply the plan after the report (restores drift where `drift = "restore"`, disables orphans
    /// where `orphans = "disable"`), under the same safety limits as `run`.
    #[arg(long)]
    pub apply: bool,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub overrides: Overrides,
    #[command(flatten)]
    pub only: OnePerson,
    /// Print the plan before applying it.
    #[arg(long)]
    pub show_plan: bool,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("expected a date as YYYY-MM-DD, found {s:?}: {e}"))
}

pub fn init_logging(cli: &Cli) {
    let level = match cli.verbose {
        // The daemon's log is its record of jobs started and finished.
        0 if matches!(cli.command, Command::Serve) => "info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROSTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "roster", &mut std::io::stdout());
    Ok(exit::SUCCESS)
}

/// Man pages for `roster` and each of its commands (`roster-plan.1`, `roster-audit-verify.1`, ...),
/// the way git and cargo ship theirs, written into `dir`.
fn manpages(dir: &std::path::Path) -> anyhow::Result<u8> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pending = vec![Cli::command()];
    while let Some(command) = pending.pop() {
        let name = command.get_display_name().unwrap_or(command.get_name()).replace(' ', "-");
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone()).title(name.clone()).render(&mut page)?;
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let sub_name = format!("{name}-{}", sub.get_name());
            pending.push(sub.clone().display_name(sub_name.clone()).bin_name(sub_name.replace('-', " ")));
        }
    }
    Ok(exit::SUCCESS)
}

pub async fn dispatch(cli: Cli) -> u8 {
    let result = match &cli.command {
        Command::Init(args) => init::init(args).map(|()| exit::SUCCESS),
        Command::Check => run::check(&cli).await,
        Command::Plan(args) => run::plan_command(&cli, args).await,
        Command::Apply(args) => run::apply_command(&cli, args).await,
        Command::Run(args) => run::run_command(&cli, args).await,
        Command::Reconcile(args) => run::reconcile_command(&cli, args).await,
        Command::Audit(command) => audit::audit_command(&cli, command).await,
        Command::Explain(args) => crate::explain::explain_command(&cli, args).await,
        Command::Plans(command) => crate::approvals::plans_command(&cli, command).await,
        Command::Release(args) => audit::release(&cli, args).await,
        Command::Hold(args) => audit::hold(&cli, args).await,
        Command::Unhold(args) => audit::unhold(&cli, args).await,
        Command::Serve => crate::serve::serve(&cli).await,
        Command::Token(command) => crate::serve::token_command(command),
        Command::Completions(args) => completions(args.shell),
        Command::Manpages(args) => manpages(&args.dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<run::UsageError>().map_or(exit::ERROR, |_| exit::USAGE);
            eprintln!("error: {e:#}");
            code
        }
    }
}
