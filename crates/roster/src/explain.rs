//! `roster explain PERSON` and `GET /api/v1/persons/{key}/explain`: every value and decision for
//! one person, with where it came from. Reads the sources, the store and the targets as a plan
//! does, plans for everyone (so unique values and group memberships come out as a run would make
//! them), and keeps what concerns this person. Changes nothing and records nothing.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use roster_core::engine::{PlanInput, person_plan, plan};
use roster_core::explain::{PersonTrace, trace_person};
use roster_core::lifecycle::LifecycleState;
use roster_core::plan::{Notice, Operation, SafetyViolation};
use roster_core::state::Hold;
use roster_store::Store;
use serde::Serialize;

use crate::cli::{Cli, ExplainArgs, Format};
use crate::exit;
use crate::run::{Loaded, connect_targets, load_config, read_sources, read_views};

/// A person's link to an account in a target.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LinkView {
    pub(crate) target: String,
    pub(crate) dn: String,
    pub(crate) object_id: String,
    /// Whether roster last left the account enabled.
    pub(crate) enabled: bool,
    /// The linked account is no longer in the target (deleted outside roster); absent where
    /// the target was not read (`/persons/{key}` answers from the store alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) missing: Option<bool>,
}

/// Everything `roster explain` says about one person: the CLI prints it, `--json` and the API
/// serialize it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Explanation {
    pub(crate) as_of: NaiveDate,
    /// The person's key (a record key given to explain is resolved to it).
    pub(crate) key: String,
    pub(crate) login: Option<String>,
    /// The state the targets were last brought to (none: not yet recorded by an applied run).
    pub(crate) stored_state: Option<LifecycleState>,
    /// Records, attribute values with their sources, lifecycle per affiliation, and per target
    /// each attribute's value with its expression.
    #[serde(flatten)]
    pub(crate) trace: PersonTrace,
    /// The next day on which the calendar alone changes the state, and the state it brings
    /// (`next_state`, as the lifecycle rules say on that day).
    pub(crate) next_transition: Option<NaiveDate>,
    pub(crate) next_state: Option<LifecycleState>,
    pub(crate) links: Vec<LinkView>,
    /// What a run would do for this person now (their part of the plan, as `roster run --person`
    /// would apply it), each with its reason.
    pub(crate) operations: Vec<Operation>,
    pub(crate) notices: Vec<Notice>,
    /// Safety limits that would block this person's operations.
    pub(crate) safety: Vec<SafetyViolation>,
}

/// Explains `key` (a person key or a record key of one of their records); `None` when neither
/// a source nor the store knows them.
pub(crate) async fn explain(loaded: &Loaded, store: &Store, key: &str) -> Result<Option<Explanation>> {
    let (reads, _) = read_sources(loaded, Some(store)).await?;
    let mut targets = connect_targets(loaded).await?;
    let snapshot = store.snapshot().await.context("reading the store");
    let views = match &snapshot {
        Ok(snapshot) => read_views(loaded, &mut targets, &snapshot.links).await,
        Err(_) => Ok(std::collections::BTreeMap::new()),
    };
    for t in targets {
        let _ = t.close().await;
    }
    let snapshot = snapshot?;
    let views = views?;
    let input = PlanInput {
        settings: &loaded.settings,
        as_of: loaded.as_of,
        reads: &reads,
        snapshot: &snapshot,
        views: &views,
        evaluate_all: true,
    };
    let stored_key = snapshot.persons.contains_key(key).then_some(key);
    let Some(first) = trace_person(&input, key, stored_key.and_then(|k| snapshot.persons[k].login.as_deref())) else {
        return Ok(None);
    };
    let full = plan(&input);
    let stored = snapshot.persons.get(&first.key);
    let login = full
        .person_updates
        .iter()
        .find(|u| u.key == first.key)
        .and_then(|u| u.login.clone())
        .or_else(|| stored.and_then(|s| s.login.clone()));
    // Traced again when the key given was a record key, or the plan gave a new login.
    let trace = match trace_person(&input, &first.key, login.as_deref()) {
        Some(trace) => trace,
        None => first,
    };
    let mine = person_plan(&loaded.settings, &snapshot, &full, &trace.key);
    let next_transition = trace.state.next_transition;
    let next_state = next_transition.and_then(|day| {
        let later = PlanInput { as_of: day, ..input };
        trace_person(&later, &trace.key, login.as_deref()).map(|t| t.state.state)
    });
    let links = snapshot
        .links
        .iter()
        .filter(|l| l.person == trace.key)
        .map(|l| LinkView {
            target: l.target.clone(),
            dn: views
                .get(&l.target)
                .and_then(|v| v.entries.iter().find(|e| e.object_id == l.object_id))
                .map_or_else(|| l.dn.clone(), |e| e.dn.clone()),
            object_id: l.object_id.clone(),
            enabled: l.enabled,
            missing: Some(!views.get(&l.target).is_some_and(|v| v.entries.iter().any(|e| e.object_id == l.object_id))),
        })
        .collect();
    Ok(Some(Explanation {
        as_of: loaded.as_of,
        key: trace.key.clone(),
        login,
        stored_state: stored.map(|s| s.state),
        next_transition,
        next_state,
        links,
        operations: mine.operations,
        notices: mine.notices,
        safety: mine.safety,
        trace,
    }))
}

pub async fn explain_command(cli: &Cli, args: &ExplainArgs) -> Result<u8> {
    let loaded = load_config(cli)?;
    let store = crate::audit::open_store(&loaded.settings, &loaded.config_dir).await?;
    let explanation = explain(&loaded, &store, &args.person).await?;
    store.close().await;
    let Some(explanation) = explanation else {
        anyhow::bail!(crate::run::UsageError(format!(
            "no person {:?}: no source lists that key and the store knows no such person",
            args.person
        )));
    };
    match if args.json { Format::Json } else { args.format } {
        Format::Json => println!("{}", serde_json::to_string_pretty(&explanation).context("serializing")?),
        Format::Text => print!("{}", render(&explanation)),
    }
    Ok(exit::SUCCESS)
}

fn hold_text(hold: &Hold) -> String {
    let until = hold.until.map_or_else(|| "until lifted".to_string(), |d| format!("until {d} (inclusive)"));
    format!("{until}: {}", hold.reason)
}

/// The explanation as text, section by section.
pub(crate) fn render(e: &Explanation) -> String {
    let t = &e.trace;
    let mut out = String::new();
    let login = e.login.as_deref().map_or_else(|| "no login yet".to_string(), |l| format!("login {l}"));
    let _ = writeln!(out, "Person {} ({login}), as of {}", e.key, e.as_of);
    if let Some(hold) = &t.hold {
        let _ = writeln!(out, "  ON HOLD {}; roster plans nothing for this person meanwhile", hold_text(hold));
    }
    let _ = writeln!(out, "\nSource rows");
    for row in &t.rows {
        let place = row
            .location
            .as_ref()
            .map_or_else(|| "not in this read: the record the store kept".to_string(), ToString::to_string);
        let _ = writeln!(out, "  {} key {} ({place})", row.source, row.key);
        for (name, value) in row.values.iter() {
            let _ = writeln!(out, "    {name} = {}", value.as_text());
        }
    }
    let _ = writeln!(out, "\nAttributes (value <- source)");
    for a in &t.attributes {
        let _ = writeln!(out, "  {} = {:?} <- {}", a.name, a.value, a.source);
    }
    let _ = writeln!(out, "\nLifecycle");
    let stored = e.stored_state.map_or_else(|| "none recorded yet".to_string(), |s| s.to_string());
    let _ = writeln!(out, "  state {} ({}); in the store: {stored}", t.state.state, t.state.because);
    for a in &t.affiliations {
        let _ = writeln!(out, "  {} from {}: {} ({})", a.kind, a.source, a.decision.state, a.decision.because);
    }
    match (e.next_transition, e.next_state) {
        (Some(day), Some(state)) => {
            let _ = writeln!(out, "  next transition {day}: {state}");
        }
        (Some(day), None) => {
            let _ = writeln!(out, "  next transition {day}");
        }
        _ => {
            let _ = writeln!(out, "  no transition ahead by the calendar alone");
        }
    }
    for target in &t.targets {
        let _ = writeln!(out, "\nTarget {}", target.target);
        match &target.dn {
            Ok(dn) => {
                let _ = writeln!(out, "  dn {dn} <- {}", target.dn_expression);
            }
            Err(e) => {
                let _ = writeln!(out, "  dn: {e}");
            }
        }
        for link in e.links.iter().filter(|l| l.target == target.target) {
            let state = if link.missing == Some(true) {
                "gone from the target"
            } else if link.enabled {
                "enabled"
            } else {
                "disabled"
            };
            let _ = writeln!(out, "  linked to {} (id {}, {state})", link.dn, link.object_id);
        }
        for m in &target.attributes {
            let value = match &m.error {
                Some(error) => format!("error: {error}"),
                None => format!("{:?}", m.values),
            };
            let sources: Vec<String> = m.sources.iter().map(|(attr, source)| format!("{attr} from {source}")).collect();
            let from = if sources.is_empty() { String::new() } else { format!(" [{}]", sources.join(", ")) };
            let when = if m.on_create_only { " (on create only)" } else { "" };
            let _ = writeln!(out, "  {} = {value}{when} <- {}: {}{from}", m.attr, m.config_key, m.expression);
        }
    }
    let _ = writeln!(out, "\nPlanned operations ({})", e.operations.len());
    for o in &e.operations {
        let _ = writeln!(out, "  #{} [{}] {} {}: {}", o.id, o.target, o.action.kind(), o.action.dn(), o.reason);
    }
    if !e.safety.is_empty() {
        let _ = writeln!(out, "\nBlocked by safety limits");
        for v in &e.safety {
            let _ = writeln!(out, "  {}", v.message);
        }
    }
    if !e.notices.is_empty() {
        let _ = writeln!(out, "\nNotices");
        for n in &e.notices {
            let target = n.target.as_deref().map(|t| format!("[{t}] ")).unwrap_or_default();
            let _ = writeln!(out, "  {:?} {target}{}", n.kind, n.message);
        }
    }
    out
}
