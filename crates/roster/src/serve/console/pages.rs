//! The pages: each reads the store, renders HTML (every value through `html::escape`), and
//! answers errors as a page that says what went wrong.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{Duration, NaiveDate};
use roster_core::config::TokenRole;
use roster_store::{AuditEntry, AuditQuery, RunId, RunRecord};
use serde::Deserialize;

use super::chart::{Series, stacked_bars};
use super::html::{Who, escape, form, layout, table, url};
use super::{Console, Session, page_error, redirect};
use crate::serve::api::operator_start;
use crate::serve::auth::role_name;

type Shared = State<Arc<Console>>;

/// How far back the dashboard's per-day chart reaches.
const CHART_DAYS: i64 = 90;

fn internal(e: impl std::fmt::Display) -> Response {
    page_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("reading the store: {e}"))
}

fn page(session: &Session, title: &str, body: &str) -> Response {
    let who = Who { name: &session.name, role: role_name(session.role), csrf: &session.csrf };
    Html(layout(title, Some(who), body)).into_response()
}

fn status(run: &RunRecord) -> &'static str {
    run.status.map_or("running", |s| s.as_str())
}

fn run_link(id: RunId) -> String {
    format!("<a href=\"/runs/{0}\">{0}</a>", id.0)
}

fn person_link(key: &str) -> String {
    format!("<a href=\"/persons/{}\">{}</a>", url(key), escape(key))
}

fn run_rows(runs: &[RunRecord]) -> String {
    table(
        &[
            "run",
            "command",
            "actor",
            "started",
            "as of",
            "status",
            "joiners",
            "movers",
            "leavers",
            "operations",
            "failed",
        ],
        runs.iter().map(|r| {
            vec![
                run_link(r.id),
                escape(&r.command),
                escape(&r.actor),
                escape(&r.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                r.as_of.to_string(),
                escape(status(r)),
                r.summary.joiners.to_string(),
                r.summary.movers.to_string(),
                r.summary.leavers.to_string(),
                r.summary.operations.to_string(),
                r.failed.to_string(),
            ]
        }),
    )
}

fn applied(run: &RunRecord) -> bool {
    run.status.is_some_and(|s| s.applied())
}

/// Joiners, movers and leavers per day (by the runs' as-of day) over the last `CHART_DAYS`.
fn lifecycle_chart(runs: &[RunRecord], today: NaiveDate) -> String {
    let from = today - Duration::days(CHART_DAYS);
    let mut days: BTreeMap<NaiveDate, [f64; 3]> = BTreeMap::new();
    for run in runs.iter().filter(|r| applied(r) && r.as_of > from) {
        let day = days.entry(run.as_of).or_default();
        day[0] += run.summary.joiners as f64;
        day[1] += run.summary.movers as f64;
        day[2] += run.summary.leavers as f64;
    }
    let bars: Vec<_> = days.into_iter().map(|(day, v)| (day.to_string(), v.to_vec())).collect();
    stacked_bars(
        &format!("Joiners, movers and leavers per day (last {CHART_DAYS} days)"),
        "persons",
        &[
            Series { name: "joiners", colour: "#2a8f5a" },
            Series { name: "movers", colour: "#2f6fb5" },
            Series { name: "leavers", colour: "#c0392b" },
        ],
        &bars,
    )
}

fn durations_chart(runs: &[RunRecord]) -> String {
    let bars: Vec<_> = runs
        .iter()
        .rev()
        .filter_map(|r| {
            let seconds = (r.finished_at? - r.started_at).num_milliseconds() as f64 / 1000.0;
            Some((format!("run {}", r.id.0), vec![seconds]))
        })
        .collect();
    stacked_bars("Run durations", "s", &[Series { name: "seconds", colour: "#7a5cb5" }], &bars)
}

fn failures_chart(runs: &[RunRecord]) -> String {
    let bars: Vec<_> = runs.iter().rev().map(|r| (format!("run {}", r.id.0), vec![r.failed as f64])).collect();
    stacked_bars("Failed operations per run", "operations", &[Series { name: "failed", colour: "#c0392b" }], &bars)
}

pub(super) async fn dashboard(State(console): Shared, headers: HeaderMap) -> Response {
    let session = match console.session(&headers, TokenRole::Viewer) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let store = &console.daemon.store;
    let (runs, snapshot) = match (store.runs(1000).await, store.snapshot().await) {
        (Ok(runs), Ok(snapshot)) => (runs, snapshot),
        (Err(e), _) => return internal(e),
        (_, Err(e)) => return internal(e),
    };
    let today = crate::serve::api::today(&console.daemon);
    let recent: Vec<&RunRecord> = runs.iter().filter(|r| applied(r) && r.as_of > today - Duration::days(30)).collect();
    let sum = |f: fn(&RunRecord) -> u64| recent.iter().map(|r| f(r)).sum::<u64>();
    let quarantined = runs.iter().find(|r| r.status.is_some()).map_or(0, |r| r.summary.quarantined_rows);
    let held = runs.iter().filter(|r| status(r) == "blocked").count();
    let on_hold = snapshot.persons.values().filter(|p| p.hold.is_some()).count();
    let card = |label: &str, value: String| format!("<div class=\"card\"><b>{value}</b>{}</div>", escape(label));
    let mut body = String::from("<div class=\"cards\" id=\"counts\">");
    body.push_str(&card("joiners (30 days)", sum(|r| r.summary.joiners).to_string()));
    body.push_str(&card("movers (30 days)", sum(|r| r.summary.movers).to_string()));
    body.push_str(&card("leavers (30 days)", sum(|r| r.summary.leavers).to_string()));
    body.push_str(&card("persons failing", snapshot.failures.len().to_string()));
    body.push_str(&card("quarantined rows (last run)", quarantined.to_string()));
    body.push_str(&card("blocked plans", held.to_string()));
    body.push_str(&card("persons on hold", on_hold.to_string()));
    body.push_str("</div><h2>Charts</h2><div class=\"charts\">");
    let last: Vec<RunRecord> = runs.iter().take(30).cloned().collect();
    body.push_str(&lifecycle_chart(&runs, today));
    body.push_str(&durations_chart(&last));
    body.push_str(&failures_chart(&last));
    body.push_str("</div><h2>Last runs</h2>");
    body.push_str(&run_rows(&runs[..runs.len().min(10)]));
    if !snapshot.failures.is_empty() {
        body.push_str("<h2>Failures</h2>");
        body.push_str(&table(
            &["person", "target", "consecutive runs", "last error"],
            snapshot
                .failures
                .iter()
                .map(|f| vec![person_link(&f.person), escape(&f.target), f.runs.to_string(), escape(&f.last_error)]),
        ));
    }
    page(&session, "Dashboard", &body)
}

pub(super) async fn runs(State(console): Shared, headers: HeaderMap) -> Response {
    let session = match console.session(&headers, TokenRole::Viewer) {
        Ok(s) => s,
        Err(e) => return e,
    };
    match console.daemon.store.runs(200).await {
        Ok(runs) => page(&session, "Runs", &run_rows(&runs)),
        Err(e) => internal(e),
    }
}

pub(super) async fn run(State(console): Shared, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let session = match console.session(&headers, TokenRole::Viewer) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let store = &console.daemon.store;
    let run = match store.run(RunId(id)).await {
        Ok(Some(run)) => run,
        Ok(None) => return page_error(StatusCode::NOT_FOUND, &format!("no run {id}")),
        Err(e) => return internal(e),
    };
    let (plan, counts) = match (store.run_plan(RunId(id)).await, store.operation_counts(RunId(id)).await) {
        (Ok(plan), Ok(counts)) => (plan.flatten(), counts),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    // A blocked run applied nothing and recorded no plan: what waits for review is its held plan.
    let held = match plan {
        Some(_) => None,
        None => match store.held_plans(None, 1000).await {
            Ok(held) => held.into_iter().find(|h| h.run == id),
            Err(e) => return internal(e),
        },
    };
    let mut body = run_rows(std::slice::from_ref(&run));
    if !run.overrides.is_empty() {
        let _ = write!(body, "<p>Safety limits overridden: {}</p>", escape(&run.overrides.join(", ")));
    }
    let waiting = held.as_ref().is_some_and(|h| h.status == roster_store::HeldStatus::Waiting);
    if status(&run) == "blocked" && waiting && session.role >= TokenRole::Approver {
        body.push_str("<h2>Review</h2>");
        let reason = "<input name=\"reason\" required placeholder=\"why (for the audit trail)\">";
        body.push_str(&form(&format!("/runs/{id}/approve"), &session.csrf, reason, "Approve"));
        body.push_str(&form(&format!("/runs/{id}/reject"), &session.csrf, reason, "Reject"));
    }
    if !counts.is_empty() {
        body.push_str("<h2>Outcomes</h2>");
        body.push_str(&table(
            &["kind", "outcome", "operations"],
            counts.iter().map(|(kind, outcome, n)| vec![escape(kind), escape(outcome), n.to_string()]),
        ));
    }
    let plan = match held {
        Some(held) => {
            let _ = write!(
                body,
                "<h2>Held plan {} ({})</h2><p>Blocked by: {}</p>",
                held.id,
                escape(held.status.as_str()),
                escape(&held.plan.safety.iter().map(|v| v.message.as_str()).collect::<Vec<_>>().join("; "))
            );
            Some(Ok(held.plan))
        }
        None => {
            body.push_str("<h2>Plan</h2>");
            plan.map(|text| serde_json::from_str::<roster_core::plan::Plan>(&text))
        }
    };
    match plan {
        None => body.push_str("<p>This run recorded no plan (only applying runs do).</p>"),
        Some(Err(e)) => {
            let _ =
                write!(body, "<p class=\"error\">The stored plan could not be read: {}</p>", escape(&e.to_string()));
        }
        Some(Ok(plan)) => {
            let mut by_kind: BTreeMap<&str, Vec<&roster_core::plan::Operation>> = BTreeMap::new();
            for op in &plan.operations {
                by_kind.entry(op.action.kind()).or_default().push(op);
            }
            if by_kind.is_empty() {
                body.push_str("<p>Nothing to do.</p>");
            }
            for (kind, ops) in by_kind {
                let _ = write!(body, "<h3>{} ({})</h3>", escape(kind), ops.len());
                body.push_str(&table(
                    &["#", "person", "target", "what"],
                    ops.iter().map(|op| {
                        vec![
                            op.id.to_string(),
                            op.person.as_deref().map(person_link).unwrap_or_default(),
                            escape(&op.target),
                            format!("<pre>{}</pre>", escape(roster_core::render::operation_text(op).trim_end())),
                        ]
                    }),
                ));
            }
        }
    }
    page(&session, &format!("Run {id}"), &body)
}

#[derive(Deserialize)]
pub(super) struct PersonsQuery {
    q: Option<String>,
}

pub(super) async fn persons(State(console): Shared, headers: HeaderMap, Query(query): Query<PersonsQuery>) -> Response {
    let session = match console.session(&headers, TokenRole::Viewer) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let snapshot = match console.daemon.store.snapshot().await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let q = query.q.unwrap_or_default();
    let needle = q.trim().to_lowercase();
    let found: Vec<_> = snapshot
        .persons
        .values()
        .filter(|p| {
            needle.is_empty()
                || p.key.to_lowercase().contains(&needle)
                || p.login.as_deref().is_some_and(|l| l.to_lowercase().contains(&needle))
                || p.records.values().flat_map(|r| r.values()).any(|v| v.to_text().to_lowercase().contains(&needle))
        })
        .take(500)
        .collect();
    let mut body = format!(
        "<form method=\"get\" action=\"/persons\"><input name=\"q\" id=\"q\" value=\"{}\" placeholder=\"key, login or any attribute\"> \
         <button type=\"submit\">Search</button></form>",
        escape(&q)
    );
    body.push_str(&table(
        &["key", "login", "state", "hold"],
        found.iter().map(|p| {
            vec![
                person_link(&p.key),
                escape(p.login.as_deref().unwrap_or("")),
                escape(p.state.as_str()),
                p.hold.as_ref().map(|h| escape(&h.reason)).unwrap_or_default(),
            ]
        }),
    ));
    page(&session, "Persons", &body)
}

/// The explanation of a person's values and decisions (`roster explain`'s text, read from the
/// sources and targets now, as the API's `/explain` does), escaped into a `<pre>`.
async fn explanation_html(console: &Console, key: &str) -> Result<Option<String>, String> {
    let daemon = &console.daemon;
    let loaded = crate::run::Loaded { as_of: crate::serve::api::today(daemon), ..daemon.loaded.clone() };
    let explained = crate::explain::explain(&loaded, &daemon.store, key).await.map_err(|e| format!("{e:#}"))?;
    Ok(explained.map(|e| format!("<pre class=\"explain\">{}</pre>", escape(&crate::explain::render(&e)))))
}

fn timeline(entries: &[AuditEntry]) -> String {
    let mut out = String::from("<ol class=\"timeline\">");
    for e in entries {
        let _ = write!(
            out,
            "<li><b>{}</b> {} {} on {} <code>{}</code> ({}) by {} in run {}: {}{}</li>",
            escape(&e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            escape(&e.kind),
            escape(&e.outcome),
            escape(&e.target),
            escape(&e.dn),
            escape(&e.reason),
            escape(&e.actor),
            run_link(e.run),
            e.after.as_ref().map(|a| escape(&a.to_string())).unwrap_or_default(),
            e.error.as_ref().map(|x| format!(" <span class=\"error\">{}</span>", escape(x))).unwrap_or_default(),
        );
    }
    out.push_str("</ol>");
    out
}

pub(super) async fn person(State(console): Shared, headers: HeaderMap, Path(key): Path<String>) -> Response {
    let session = match console.session(&headers, TokenRole::Viewer) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let store = &console.daemon.store;
    let query = AuditQuery { person: Some(key.clone()), limit: 500, ..AuditQuery::default() };
    let (snapshot, mut entries) = match (store.snapshot().await, store.audit(&query).await) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) => return internal(e),
        (_, Err(e)) => return internal(e),
    };
    entries.sort_by_key(|e| std::cmp::Reverse(e.id));
    let Some(person) = snapshot.persons.get(&key) else {
        return page_error(StatusCode::NOT_FOUND, &format!("the store knows no person {key}"));
    };
    let mut body = table(
        &["key", "login", "state", "left on"],
        [vec![
            escape(&person.key),
            escape(person.login.as_deref().unwrap_or("")),
            escape(person.state.as_str()),
            person.left_on.map(|d| d.to_string()).unwrap_or_default(),
        ]],
    );
    body.push_str("<h2>Hold</h2>");
    match &person.hold {
        Some(hold) => {
            let _ = write!(
                body,
                "<p id=\"hold\">On hold{}: {}</p>",
                hold.until.map(|u| format!(" until {u}")).unwrap_or_default(),
                escape(&hold.reason)
            );
        }
        None => body.push_str("<p id=\"hold\">Not on hold.</p>"),
    }
    if session.role >= TokenRole::Operator {
        let action = format!("/persons/{}", url(&key));
        if person.hold.is_some() {
            body.push_str(&form(&format!("{action}/unhold"), &session.csrf, "", "Lift the hold"));
        } else {
            body.push_str(&form(
                &format!("{action}/hold"),
                &session.csrf,
                "<label>Reason <input name=\"reason\" id=\"reason\" required></label> \
                 <label>Until <input name=\"until\" type=\"date\"></label> ",
                "Put on hold",
            ));
        }
    }
    body.push_str("<h2>Explanation</h2>");
    match explanation_html(&console, &key).await {
        Ok(Some(html)) => body.push_str(&html),
        Ok(None) => body.push_str("<p>No source lists this person now.</p>"),
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">The explanation could not be made: {}</p>", escape(&e));
        }
    }
    body.push_str("<h2>Records</h2>");
    for (source, record) in person.records.iter() {
        let _ = write!(body, "<h3>{}</h3>", escape(source));
        body.push_str(&table(
            &["attribute", "value"],
            record.iter().map(|(name, value)| vec![escape(name), escape(&value.to_text())]),
        ));
    }
    body.push_str("<h2>History</h2>");
    body.push_str(&timeline(&entries));
    page(&session, &format!("Person {key}"), &body)
}

#[derive(Deserialize)]
pub(super) struct HoldForm {
    csrf: String,
    reason: String,
    until: Option<String>,
}

pub(super) async fn hold(
    State(console): Shared,
    headers: HeaderMap,
    Path(key): Path<String>,
    Form(form): Form<HoldForm>,
) -> Response {
    let session = match console.posted(&headers, TokenRole::Operator, &form.csrf) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let until = match form.until.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        None => None,
        Some(u) => match NaiveDate::parse_from_str(u, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                return page_error(StatusCode::BAD_REQUEST, &format!("until: expected a day YYYY-MM-DD, found {u:?}"));
            }
        },
    };
    let start = operator_start(&console.daemon, "hold", &session.actor());
    let hold = match crate::audit::new_hold(&form.reason, until, start.as_of) {
        Ok(h) => h,
        Err(e) => return page_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    set_hold(&console, &start, &key, Some(hold)).await
}

pub(super) async fn unhold(
    State(console): Shared,
    headers: HeaderMap,
    Path(key): Path<String>,
    Form(form): Form<super::CsrfForm>,
) -> Response {
    let session = match console.posted(&headers, TokenRole::Operator, &form.csrf) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let start = operator_start(&console.daemon, "unhold", &session.actor());
    set_hold(&console, &start, &key, None).await
}

async fn set_hold(
    console: &Console,
    start: &roster_store::RunStart,
    key: &str,
    hold: Option<roster_core::state::Hold>,
) -> Response {
    match console.daemon.store.set_hold(start, key, hold.as_ref()).await {
        Ok(Some(_)) => {
            tracing::info!(person = %key, actor = %start.actor, command = %start.command, "through the console");
            redirect(&format!("/persons/{}", url(key)))
        }
        Ok(None) => page_error(StatusCode::NOT_FOUND, &format!("the store knows no person {key}")),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub(super) struct AuditForm {
    person: Option<String>,
    dn: Option<String>,
    run: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

pub(super) async fn audit(State(console): Shared, headers: HeaderMap, Query(q): Query<AuditForm>) -> Response {
    let session = match console.session(&headers, TokenRole::Viewer) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let settings = &console.daemon.loaded.settings;
    let moment = |v: &Option<String>, name: &str| {
        given(v).map(|v| crate::audit::moment(&v, settings)).transpose().map_err(|e| format!("{name}: {e}"))
    };
    let run = given(&q.run)
        .map(|r| r.parse::<i64>().map(RunId).map_err(|_| format!("run: expected a run number, found {r:?}")))
        .transpose();
    let field = |name: &str, label: &str, v: &Option<String>| {
        format!(
            "<label>{label} <input name=\"{name}\" id=\"audit-{name}\" value=\"{}\"></label> ",
            escape(&given(v).unwrap_or_default())
        )
    };
    let mut body = String::from("<form method=\"get\" action=\"/audit\">");
    body.push_str(&field("person", "Person", &q.person));
    body.push_str(&field("dn", "Object (DN)", &q.dn));
    body.push_str(&field("run", "Run", &q.run));
    body.push_str(&field("since", "Since", &q.since));
    body.push_str(&field("until", "Until", &q.until));
    body.push_str("<button type=\"submit\" id=\"search\">Search</button></form><p>Since and until: a day (YYYY-MM-DD, in the configured zone) or RFC 3339.</p>");
    let query = match (run, moment(&q.since, "since"), moment(&q.until, "until")) {
        (Ok(run), Ok(since), Ok(until)) => {
            AuditQuery { person: given(&q.person), dn: given(&q.dn), run, since, until, limit: 500 }
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", escape(&e));
            return page(&session, "Audit", &body);
        }
    };
    let mut entries = match console.daemon.store.audit(&query).await {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    entries.reverse();
    let _ = write!(body, "<p>{} entries (at most {}, the newest).</p>", entries.len(), query.limit);
    body.push_str(&table(
        &["at", "run", "actor", "person", "kind", "target", "object", "outcome", "reason"],
        entries.iter().map(|e| {
            vec![
                escape(&e.at.format("%Y-%m-%d %H:%M:%S").to_string()),
                run_link(e.run),
                escape(&e.actor),
                e.person.as_deref().map(person_link).unwrap_or_default(),
                escape(&e.kind),
                escape(&e.target),
                escape(&e.dn),
                escape(&e.outcome),
                escape(&e.reason),
            ]
        }),
    ));
    page(&session, "Audit", &body)
}
