//! Seam for held plans: approve and reject a run's held plan from the run page.
//!
//! Held plans (a store table and their API) are built on the `explain` branch; until that is
//! merged, `decide` answers that approvals are not available, and the console shows the buttons
//! to approvers on blocked runs only. At merge, `decide` calls the held-plans module, which
//! records the decision in the audit trail with the actor it is given.

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

/// Whether the console can decide held plans (false until the held-plans module is wired here).
pub(super) const AVAILABLE: bool = false;

/// Approves or rejects run `run`'s held plan, recorded with `actor`. The wiring point.
async fn decide(_console: &Console, run: i64, decision: Decision, _actor: &str) -> Result<(), String> {
    Err(format!(
        "cannot {decision:?} run {run}: held plans are not available in this build (the held-plans module is not wired to the console yet)"
    ))
}

#[derive(Deserialize)]
pub(super) struct DecisionForm {
    csrf: String,
}

async fn handle(console: Arc<Console>, headers: HeaderMap, run: i64, csrf: &str, decision: Decision) -> Response {
    let session = match console.posted(&headers, TokenRole::Approver, csrf) {
        Ok(session) => session,
        Err(e) => return e,
    };
    match decide(&console, run, decision, &session.actor()).await {
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
    handle(console, headers, run, &form.csrf, Decision::Approve).await
}

pub(super) async fn reject(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(run): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Response {
    handle(console, headers, run, &form.csrf, Decision::Reject).await
}
