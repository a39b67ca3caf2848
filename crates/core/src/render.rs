//! The plan as a person reads it: grouped by joiner, mover, leaver, with counts, each operation
//! with its reason and its attribute changes.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::plan::{Action, AttrChange, Category, Operation, Plan};

fn quote_values(values: &[String]) -> String {
    match values {
        [] => "(none)".to_string(),
        [one] => format!("{one:?}"),
        many => format!("[{}]", many.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")),
    }
}

fn change_lines(out: &mut String, changes: &[AttrChange]) {
    for c in changes {
        let _ = writeln!(out, "        {}: {} -> {}", c.attr, quote_values(&c.old), quote_values(&c.new));
    }
}

/// One operation as [`render`] prints it: what it does to which object, why, and its attribute
/// changes (never a password: a plan holds none).
pub fn operation_text(op: &Operation) -> String {
    let mut out = String::new();
    operation(&mut out, op);
    out
}

fn operation(out: &mut String, op: &Operation) {
    let who = op.person.as_deref().map(|p| format!("{p} ")).unwrap_or_default();
    let line = match &op.action {
        Action::CreateContainer { dn } => format!("create container {dn}"),
        Action::Create { dn, enabled, .. } => format!("create {dn}{}", if *enabled { "" } else { " (disabled)" }),
        Action::Adopt { dn, .. } => format!("adopt {dn}"),
        Action::SetPassword { dn, must_change, .. } => {
            format!(
                "set a new initial password on {dn}{}",
                if *must_change { " (must change at first logon)" } else { "" }
            )
        }
        Action::Update { dn, .. } => format!("update {dn}"),
        Action::Rename { dn, new_dn, .. } => format!("rename {dn}\n        -> {new_dn}"),
        Action::Enable { dn, .. } => format!("enable {dn}"),
        Action::Disable { dn, .. } => format!("disable {dn}"),
        Action::CreateGroup { dn, members, .. } => format!("create group {dn} with {} member(s)", members.len()),
        Action::AddMember { group, member } => format!("add {member}\n        to {group}"),
        Action::RemoveMember { group, member } => format!("remove {member}\n        from {group}"),
        Action::Delete { dn, .. } => format!("delete {dn}"),
    };
    let _ = writeln!(out, "  #{:<4} {who}[{}] {line}", op.id, op.target);
    let _ = writeln!(out, "        because {}", op.reason);
    match &op.action {
        Action::Create { attributes, .. } => {
            for (attr, values) in attributes.iter() {
                let _ = writeln!(out, "        {attr}: {}", quote_values(&values.to_vec()));
            }
        }
        Action::Update { changes, .. } | Action::Enable { changes, .. } | Action::Disable { changes, .. } => {
            change_lines(out, changes)
        }
        Action::CreateGroup { members, .. } => {
            for m in members {
                let _ = writeln!(out, "        member: {m}");
            }
        }
        _ => {}
    }
}

/// The readable form of a plan.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let s = &plan.summary;
    let _ = writeln!(out, "Plan as of {}", plan.as_of);
    let _ = writeln!(
        out,
        "  {} joiner(s), {} mover(s), {} leaver(s), {} rehire(s); {} operation(s); {} person(s), {} evaluated; {} quarantined row(s); {} notice(s)",
        s.joiners, s.movers, s.leavers, s.rehires, s.operations, s.persons, s.evaluated, s.quarantined_rows, s.notices
    );
    for (category, title) in [
        (Category::Joiner, "Joiners"),
        (Category::Rehire, "Rehires"),
        (Category::Mover, "Movers"),
        (Category::Leaver, "Leavers"),
        (Category::Directory, "Groups and containers"),
    ] {
        let ops: Vec<&Operation> = plan.operations.iter().filter(|o| o.category == category).collect();
        if ops.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title} ({} operation(s))", ops.len());
        for op in ops {
            operation(&mut out, op);
        }
    }
    if !plan.provenance.is_empty() {
        let _ = writeln!(out, "\nValues from several sources");
        for (person, attrs) in &plan.provenance {
            let mut by_source: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (attr, source) in attrs {
                by_source.entry(source).or_default().push(attr);
            }
            let parts: Vec<String> = by_source.iter().map(|(s, a)| format!("{s}: {}", a.join(", "))).collect();
            let _ = writeln!(out, "  {person}: {}", parts.join("; "));
        }
    }
    if !plan.notices.is_empty() {
        let _ = writeln!(out, "\nNotices");
        for n in &plan.notices {
            let who = n.person.as_deref().map(|p| format!("{p}: ")).unwrap_or_default();
            let target = n.target.as_deref().map(|t| format!("[{t}] ")).unwrap_or_default();
            let _ = writeln!(out, "  ! {target}{who}{}", n.message);
        }
    }
    if !plan.quarantined.is_empty() {
        let _ = writeln!(out, "\nQuarantined rows");
        for q in &plan.quarantined {
            let _ = writeln!(out, "  {}: {}", q.location, q.reason);
        }
    }
    if plan.operations.is_empty() {
        let _ = writeln!(out, "\nNothing to change.");
    }
    if plan.is_blocked() {
        let _ = writeln!(out, "\nBLOCKED by safety limits: nothing will be applied without an explicit override");
        for v in &plan.safety {
            let _ = writeln!(out, "  x {}", v.message);
        }
    }
    out
}
