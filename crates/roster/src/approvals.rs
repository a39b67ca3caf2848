//! Approvals: plans held for an approver (`roster plans`), and applying an approved one
//! (`roster apply --approved ID`), each approved operation re-checked against a fresh plan.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use chrono::Utc;
use roster_core::engine::recheck;
use roster_core::render::render;
use roster_store::{Decided, HeldPlan, HeldStatus, RunFinish, RunStart, RunStatus};

use crate::cli::{Cli, Format, Overrides, PlansCommand};
use crate::exit;
use crate::run::{Fresh, UsageError, actor, load_config, run_start};

pub async fn plans_command(cli: &Cli, command: &PlansCommand) -> Result<u8> {
    let loaded = load_config(cli)?;
    let store = crate::audit::open_store(&loaded.settings, &loaded.config_dir).await?;
    match command {
        PlansCommand::List { status } => {
            let status = status.as_deref().map(parse_status).transpose()?;
            for p in store.held_plans(status, 1000).await? {
                println!("{}", summary_line(&p));
            }
        }
        PlansCommand::Show { id, format } => {
            let held = store.held_plan(*id).await?.ok_or_else(|| anyhow!(UsageError(format!("no held plan {id}"))))?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&held)?),
                Format::Text => {
                    println!("{}", summary_line(&held));
                    if let (Some(by), Some(reason)) = (&held.decided_by, &held.decision_reason) {
                        println!("decided by {by}: {reason}");
                    }
                    print!("{}", render(&held.plan));
                }
            }
        }
        PlansCommand::Approve(args) | PlansCommand::Reject(args) => {
            let approve = matches!(command, PlansCommand::Approve(_));
            if args.reason.trim().is_empty() {
                bail!(UsageError("--reason is empty: say why, for the audit trail".to_string()));
            }
            let start = RunStart {
                command: if approve { "approve" } else { "reject" }.to_string(),
                as_of: cli.as_of.unwrap_or_else(|| Utc::now().with_timezone(&loaded.settings.zone).date_naive()),
                config_hash: loaded.settings.hash.clone(),
                actor: actor(),
                overrides: Vec::new(),
                plan_json: None,
            };
            match store.decide_plan(&start, args.id, approve, &args.reason).await? {
                Decided::Done(run) => {
                    let verb = if approve { "approved" } else { "rejected" };
                    println!(
                        "held plan {} {verb} by {}; recorded in the audit trail as run {run}",
                        args.id, start.actor
                    );
                    if approve {
                        println!("apply it with `roster apply --approved {}`", args.id);
                    }
                }
                Decided::NotFound => bail!(UsageError(format!("no held plan {}", args.id))),
                Decided::NotWaiting(status) => bail!(UsageError(format!(
                    "held plan {} is {}: only a waiting plan can be approved or rejected",
                    args.id,
                    status.as_str()
                ))),
            }
        }
    }
    store.close().await;
    Ok(exit::SUCCESS)
}

fn parse_status(text: &str) -> Result<HeldStatus> {
    HeldStatus::parse(text).ok_or_else(|| {
        anyhow!(UsageError(format!(
            "--status: expected waiting, approved, rejected, applied or expired, found {text:?}"
        )))
    })
}

fn summary_line(p: &HeldPlan) -> String {
    let limits: Vec<&str> = p.plan.safety.iter().map(|v| v.limit.as_str()).collect();
    format!(
        "#{} {} as of {}, held {} from run {} by {}: {} operation(s), blocked by {}",
        p.id,
        p.status.as_str(),
        p.as_of,
        p.created_at.format("%Y-%m-%d %H:%M"),
        p.run,
        p.actor,
        p.plan.operations.len(),
        limits.join(", ")
    )
}

/// Applies the approved held plan `id` against `fresh` (a fresh plan of the same configuration):
/// the fresh operations identical to approved ones are applied (the approval overrides the limits
/// the approver saw); what is new or changed since is reported, and held again as a new plan when
/// it is itself blocked.
pub(crate) async fn apply_approved(fresh: Fresh, id: i64) -> Result<u8> {
    let store = fresh.store.clone();
    let held = store.held_plan(id).await?.ok_or_else(|| anyhow!(UsageError(format!("no held plan {id}"))))?;
    if held.status != HeldStatus::Approved {
        bail!(UsageError(format!("held plan {id} is {}: only an approved plan is applied", held.status.as_str())));
    }
    if held.config_hash != fresh.loaded.settings.hash {
        bail!(UsageError(format!(
            "held plan {id} was planned with another configuration than the one in use now: it cannot be applied"
        )));
    }
    let snapshot = store.snapshot().await?;
    let (approved, changed) = recheck(&fresh.loaded.settings, &snapshot, &held.plan, &fresh.plan);
    println!(
        "held plan {id}: {} of its {} operation(s) are still the same and are applied; {} operation(s) are new or changed since",
        approved.operations.len(),
        held.plan.operations.len(),
        changed.operations.len()
    );
    for o in &changed.operations {
        println!("  new or changed: #{} [{}] {} {}: {}", o.id, o.target, o.action.kind(), o.action.dn(), o.reason);
    }
    if changed.is_blocked() {
        let run = store.begin_run(&run_start("apply", &fresh, vec![])).await?;
        store
            .finish_run(
                run,
                &RunFinish {
                    status: RunStatus::Blocked,
                    summary: changed.summary.clone(),
                    source_counts: BTreeMap::new(),
                    failed: 0,
                },
            )
            .await?;
        let new = store.hold_plan(run, &actor(), &changed, Some(id)).await?;
        println!("they need their own approval: held as plan {new} (`roster plans show {new}`)");
        let violations = changed.safety.iter().map(|v| v.message.clone()).collect();
        crate::notify::plan_held(&fresh.loaded, &store, run, violations, Some(new)).await;
    } else if !changed.operations.is_empty() {
        println!("they need no approval: the next run applies them");
    }
    let before = store.runs(1).await?.first().map(|r| r.id);
    let overrides = Overrides { allow: vec!["all".to_string()], hold_if_blocked: false };
    let code = crate::apply::apply_plan(
        Fresh { plan: approved, watermarks: Default::default(), ..fresh },
        &overrides,
        "apply",
    )
    .await?;
    if let Some(run) = store.runs(1).await?.first().map(|r| r.id).filter(|r| Some(*r) != before) {
        store.held_plan_applied(id, run).await?;
        println!("held plan {id} applied by run {run}");
    }
    Ok(code)
}
