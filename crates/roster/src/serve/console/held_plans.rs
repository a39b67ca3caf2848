//! Approve and reject a run's held plan from the run page: the same decision as the API's
//! `POST /api/v1/plans/{id}/approve|reject` (recorded in the audit trail with the session's name;
//! an approval queues `roster apply --approved ID`).

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use roster_core::config::TokenRole;
use serde::Deserialize;

use super::{Console, page_error, redirect};

#[derive(Clone, Copy, Debug)]
pub(super) enum Decision {
    Approve,
    Reject,
}

/// Approves or rejects run `run`'s waiting held plan, recorded with `actor`.
async fn decide(console: &Console, run: i64, decision: Decision, reason: &str, actor: &str) -> Result<(), String> {
    let daemon = &console.daemon;
    let waiting = daemon
        .store
        .held_plans(Some(roster_store::HeldStatus::Waiting), 1000)
        .await
        .map_err(|e| format!("reading the held plans: {e}"))?;
    let held = waiting.iter().find(|h| h.run == run).ok_or_else(|| {
        format!("run {run} has no plan waiting for an approver (decided already, or expired by a newer one)")
    })?;
    let approve = matches!(decision, Decision::Approve);
    crate::serve::api::decide_held(daemon, held.id, approve, reason, actor)
        .await
        .map(|_| ())
        .map_err(|e| e.message().to_string())
}

#[derive(Deserialize)]
pub(super) struct DecisionForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn handle(
    console: Arc<Console>,
    headers: HeaderMap,
    run: i64,
    form: DecisionForm,
    decision: Decision,
) -> Response {
    let session = match console.posted(&headers, TokenRole::Approver, &form.csrf) {
        Ok(session) => session,
        Err(e) => return e,
    };
    match decide(&console, run, decision, &form.reason, &session.actor()).await {
        Ok(()) => redirect(&format!("/runs/{run}")),
        Err(e) => page_error(StatusCode::CONFLICT, &e),
    }
}

pub(super) async fn approve(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(run): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Response {
    handle(console, headers, run, form, Decision::Approve).await
}

pub(super) async fn reject(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(run): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Response {
    handle(console, headers, run, form, Decision::Reject).await
}
