//! The REST API (JSON under `/api/v1`), `/health`, `/ready` and `/metrics`. The router and the
//! OpenAPI document come from one list of routes (utoipa-axum's `routes!`, which reads each
//! handler's `#[utoipa::path]`): a route cannot be served without being documented.
//!
//! Errors are JSON `{"error": "..."}`; a missing or unknown token is 401 with
//! `WWW-Authenticate: Bearer`, too small a role 403.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use roster_core::config::TokenRole;
use roster_core::state::Hold;
use roster_store::{AuditEntry, AuditQuery, RunId, RunRecord, RunStart};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Daemon;
use super::auth::{Caller, authorize};
use super::queue::Enqueued;
use super::scheduler::next_fire;

type Shared = State<Arc<Daemon>>;

/// An error answer: `{"error": "..."}` with its status. Never a secret, never a token.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, for a person.
    error: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    /// What went wrong, for a person (the console shows it on a page).
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!("API: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: self.message })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"roster\""));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn caller(daemon: &Daemon, headers: &HeaderMap, needs: TokenRole) -> ApiResult<Caller> {
    authorize(&daemon.serve.tokens, headers, needs)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "roster", description = "roster's daemon: runs, jobs, the audit trail, holds. See docs/daemon.md."),
    modifiers(&BearerScheme),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The router and its OpenAPI document, from one list of routes.
pub(crate) fn routes() -> (axum::Router<Arc<Daemon>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(get_run_plan))
        .routes(routes!(list_jobs))
        .routes(routes!(trigger_job))
        .routes(routes!(audit))
        .routes(routes!(hold, unhold))
        .routes(routes!(search_persons))
        .routes(routes!(get_person))
        .routes(routes!(explain_person))
        .routes(routes!(provision_person))
        .routes(routes!(list_held_plans))
        .routes(routes!(get_held_plan))
        .routes(routes!(approve_plan))
        .routes(routes!(reject_plan))
        .split_for_parts()
}

pub(crate) fn router(daemon: Arc<Daemon>) -> axum::Router {
    let (router, _) = routes();
    router.fallback(no_route).with_state(daemon)
}

async fn no_route() -> ApiError {
    ApiError::not_found("no such route: see /api/v1/openapi.json")
}

#[derive(Serialize, ToSchema)]
struct Status {
    status: &'static str,
}

/// Liveness: the daemon answers.
#[utoipa::path(get, path = "/health", security(()), responses((status = 200, body = Status)))]
async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready` (the leader, serving), `standby` (another daemon on the same store leads), or
    /// `not ready`.
    status: &'static str,
    /// `leader`: runs the schedule and the jobs; `standby`: serves reads, runs no job, and takes
    /// the lead when the leader's hold on the store ends.
    role: &'static str,
    /// The store answers a read.
    store: bool,
    /// The schedule runs and jobs are accepted (false on a standby, and once a shutdown began).
    scheduler: bool,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Readiness: 200 when the store answers and this daemon leads (runs the schedule, accepts jobs);
/// 503 otherwise, with `status` `standby` on a standby (so that a load balancer checking `/ready`
/// sends requests to the leader) or `not ready`.
#[utoipa::path(get, path = "/ready", security(()), responses(
    (status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn ready(State(daemon): Shared) -> (StatusCode, Json<Readiness>) {
    let store = daemon.store.runs(1).await.map_err(|e| e.to_string());
    let leading = daemon.leader.is_leading();
    let running = daemon.shutdown.is_running();
    let scheduler = running && leading;
    let (status, error) = match (&store, running, leading) {
        (Err(e), _, _) => ("not ready", Some(e.clone())),
        (Ok(_), false, _) => ("not ready", Some("shutting down".to_string())),
        (Ok(_), true, false) => ("standby", Some("another roster serve on the same store leads".to_string())),
        (Ok(_), true, true) => ("ready", None),
    };
    let code = if error.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let role = if leading { "leader" } else { "standby" };
    (code, Json(Readiness { status, role, store: store.is_ok(), scheduler, error }))
}

/// Prometheus metrics (text exposition format). No token: job names and counts only.
#[utoipa::path(get, path = "/metrics", security(()), responses((status = 200, body = String, content_type = "text/plain")))]
async fn metrics(State(daemon): Shared) -> impl IntoResponse {
    super::metrics::held_plans(&daemon.store).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], daemon.metrics.render())
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", security(()), responses((status = 200, body = Object)))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(routes().1)
}

/// A run as recorded in the store.
#[derive(Serialize, ToSchema)]
struct RunView {
    id: i64,
    /// `run`, `plan`, `apply`, `reconcile`, or an operator's `hold`, `unhold`, `release`, `trigger`.
    command: String,
    actor: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    as_of: NaiveDate,
    /// `success`, `partial`, `failed`, `blocked`, `planned`, `operator`; `running` while it runs
    /// (or when its process died before finishing it).
    status: String,
    /// Operations that failed or were skipped.
    failed: u64,
    /// Safety limits a person overrode for the run.
    overrides: Vec<String>,
    #[schema(value_type = Object)]
    summary: roster_core::plan::Summary,
    #[schema(value_type = Object)]
    source_counts: std::collections::BTreeMap<String, u64>,
    config_hash: String,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> RunView {
        RunView {
            id: r.id.0,
            command: r.command,
            actor: r.actor,
            started_at: r.started_at,
            finished_at: r.finished_at,
            as_of: r.as_of,
            status: r.status.map_or("running", |s| s.as_str()).to_string(),
            failed: r.failed,
            overrides: r.overrides,
            summary: r.summary,
            source_counts: r.source_counts,
            config_hash: r.config_hash,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// At most this many, the newest first. Default 50, at most 1000.
    limit: Option<u32>,
}

/// The latest runs, newest first (viewer).
#[utoipa::path(get, path = "/api/v1/runs", params(RunsQuery), responses(
    (status = 200, body = [RunView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_runs(
    State(daemon): Shared,
    headers: HeaderMap,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<Vec<RunView>>> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    let limit = q.limit.unwrap_or(50).min(1000);
    let runs = daemon.store.runs(limit).await.map_err(ApiError::internal)?;
    Ok(Json(runs.into_iter().map(RunView::from).collect()))
}

/// One run (viewer).
#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = i64, Path, description = "The run's id")), responses(
    (status = 200, body = RunView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_run(State(daemon): Shared, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult<Json<RunView>> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    let run = daemon.store.run(RunId(id)).await.map_err(ApiError::internal)?;
    run.map(|r| Json(RunView::from(r))).ok_or_else(|| ApiError::not_found(format!("no run {id}")))
}

/// The plan a run applied, in the plan format of `roster plan --format json` (viewer). 404 for a
/// run that recorded none (plan-only, blocked and operators' runs).
#[utoipa::path(get, path = "/api/v1/runs/{id}/plan", params(("id" = i64, Path, description = "The run's id")), responses(
    (status = 200, body = Object, description = "The plan (docs/plan-format.md)"), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_run_plan(State(daemon): Shared, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult<Response> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    match daemon.store.run_plan(RunId(id)).await.map_err(ApiError::internal)? {
        None => Err(ApiError::not_found(format!("no run {id}"))),
        Some(None) => Err(ApiError::not_found(format!("run {id} recorded no plan (only applying runs do)"))),
        Some(Some(plan)) => Ok(([(header::CONTENT_TYPE, "application/json")], plan).into_response()),
    }
}

/// A job, its schedule and where it stands.
#[derive(Serialize, ToSchema)]
struct JobView {
    name: String,
    /// `run`, `plan`, `reconcile`.
    command: String,
    /// `reconcile` with `--apply`.
    apply: bool,
    /// The cron expression, in `zone`; none: triggered only.
    schedule: Option<String>,
    zone: String,
    next_fire: Option<DateTime<Utc>>,
    /// Running now: since when, for whom.
    running: Option<QueuedView>,
    /// Waiting in the queue: at which position (1: next).
    queued: Option<QueuedView>,
    last: Option<LastView>,
}

#[derive(Serialize, ToSchema)]
struct QueuedView {
    actor: String,
    since: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<usize>,
}

#[derive(Serialize, ToSchema)]
struct LastView {
    /// `success`, `partial`, `blocked`, `error`, `usage_error`, `killed`.
    outcome: String,
    exit_code: Option<i32>,
    actor: String,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    /// The runs the job recorded in the store.
    runs: Vec<i64>,
}

/// The configured jobs: schedule, next time, running or queued, last outcome (viewer).
#[utoipa::path(get, path = "/api/v1/jobs", responses((status = 200, body = [JobView]), (status = 401, body = ErrorBody)))]
async fn list_jobs(State(daemon): Shared, headers: HeaderMap) -> ApiResult<Json<Vec<JobView>>> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    let jobs = daemon
        .serve
        .jobs
        .iter()
        .map(|job| {
            let name = &job.config.name;
            let state = daemon.queue.job_state(name);
            JobView {
                name: name.clone(),
                command: format!("{:?}", job.config.command).to_lowercase(),
                apply: job.config.apply,
                schedule: job.config.schedule.clone(),
                zone: daemon.loaded.settings.zone.to_string(),
                next_fire: next_fire(&daemon, name),
                running: state.running.map(|r| QueuedView { actor: r.actor, since: r.since, position: None }),
                queued: state.queued.map(|(position, q)| QueuedView {
                    actor: q.actor,
                    since: q.since,
                    position: Some(position),
                }),
                last: state.last.map(|f| LastView {
                    outcome: f.outcome.to_string(),
                    exit_code: f.exit_code,
                    actor: f.actor,
                    started_at: f.started_at,
                    finished_at: f.finished_at,
                    runs: f.runs.iter().map(|r| r.0).collect(),
                }),
            }
        })
        .collect();
    Ok(Json(jobs))
}

#[derive(Serialize, ToSchema)]
struct TriggerAnswer {
    job: String,
    /// False when the job was already waiting: it is not queued twice.
    queued: bool,
    /// Its position in the queue (1: next); the running job is not counted.
    position: Option<usize>,
    /// Why not queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The operator's run recording the trigger in the audit trail.
    recorded_as_run: i64,
}

/// Queue a job now (operator). 202 when queued; 200 with `queued: false` when it was already
/// waiting. Recorded in the audit trail (kind `trigger`) with the token's name.
#[utoipa::path(post, path = "/api/v1/jobs/{name}/trigger", params(("name" = String, Path, description = "The job's name")), responses(
    (status = 202, body = TriggerAnswer), (status = 200, body = TriggerAnswer), (status = 404, body = ErrorBody),
    (status = 503, body = ErrorBody, description = "Shutting down, or a standby"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn trigger_job(
    State(daemon): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<TriggerAnswer>)> {
    let caller = caller(&daemon, &headers, TokenRole::Operator)?;
    let job = daemon
        .serve
        .jobs
        .iter()
        .find(|j| j.config.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no job {name:?} in serve.job")))?;
    let command = format!("{:?}", job.config.command).to_lowercase();
    let actor = caller.actor();
    let (position, run) = queue_recorded(&daemon, &name, &command, Vec::new(), &actor).await?;
    tracing::info!(job = %name, actor = %actor, queued = position.is_some(), "triggered through the API");
    let answer = TriggerAnswer {
        job: name,
        queued: position.is_some(),
        position,
        reason: position.is_none().then(|| "already queued: a job waits in the queue once".to_string()),
        recorded_as_run: run.0,
    };
    Ok((if position.is_some() { StatusCode::ACCEPTED } else { StatusCode::OK }, Json(answer)))
}

/// The day the daemon evaluates dates as of: its `--as-of`, else today in the configured zone.
pub(crate) fn today(daemon: &Daemon) -> NaiveDate {
    daemon.job_base.as_of.unwrap_or_else(|| Utc::now().with_timezone(&daemon.loaded.settings.zone).date_naive())
}

/// Queues a job (`args`: the command line of one that is not configured) and records who asked
/// as an operator's run `trigger`; taken back out of the queue when that cannot be recorded.
/// `None`: it was already waiting.
async fn queue_recorded(
    daemon: &Daemon,
    job: &str,
    command: &str,
    args: Vec<String>,
    actor: &str,
) -> ApiResult<(Option<usize>, RunId)> {
    refuse_on_standby(daemon)?;
    let position = match super::queue::enqueue(daemon, job, actor, args).await {
        Enqueued::Closed => return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down: no new jobs")),
        Enqueued::Standby => return Err(standby()),
        Enqueued::At(position) => Some(position),
        Enqueued::AlreadyQueued => None,
    };
    let start = operator_start(daemon, "trigger", actor);
    match daemon.store.record_trigger(&start, job, command, position.is_some()).await {
        Ok(run) => Ok((position, run)),
        Err(e) => {
            if position.is_some() {
                super::queue::withdraw(daemon, job).await;
            }
            Err(ApiError::internal(format!("the request could not be recorded, so the job was not queued: {e}")))
        }
    }
}

/// What a standby answers to what only the leader does (run jobs, decide held plans).
fn standby() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "this daemon is a standby: another roster serve on the same store leads and runs the jobs; send this request to the leader (the daemon whose /ready answers 200)",
    )
}

pub(crate) fn refuse_on_standby(daemon: &Daemon) -> ApiResult<()> {
    if daemon.leader.is_leading() { Ok(()) } else { Err(standby()) }
}

pub(crate) fn operator_start(daemon: &Daemon, command: &str, actor: &str) -> RunStart {
    let settings = &daemon.loaded.settings;
    RunStart {
        command: command.to_string(),
        as_of: today(daemon),
        config_hash: settings.hash.clone(),
        actor: actor.to_string(),
        overrides: Vec::new(),
        plan_json: None,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Only this person's entries (their key).
    person: Option<String>,
    /// Only entries on this object (compared case-insensitively).
    dn: Option<String>,
    /// Only this run's entries.
    run: Option<i64>,
    /// At or after: a day (YYYY-MM-DD, from its start in the configured zone) or RFC 3339.
    since: Option<String>,
    /// Before (same forms as since).
    until: Option<String>,
    /// At most this many, the newest. Default 100, at most 10000.
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct AuditView {
    id: i64,
    run: i64,
    actor: String,
    at: DateTime<Utc>,
    op_id: usize,
    person: Option<String>,
    target: String,
    kind: String,
    dn: String,
    reason: String,
    #[schema(value_type = Object)]
    before: Option<serde_json::Value>,
    #[schema(value_type = Object)]
    after: Option<serde_json::Value>,
    /// `intent`, `done`, `failed`, `unknown`, `skipped`.
    outcome: String,
    error: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> AuditView {
        AuditView {
            id: e.id,
            run: e.run.0,
            actor: e.actor,
            at: e.at,
            op_id: e.op_id,
            person: e.person,
            target: e.target,
            kind: e.kind,
            dn: e.dn,
            reason: e.reason,
            before: e.before,
            after: e.after,
            outcome: e.outcome,
            error: e.error,
        }
    }
}

/// Audit entries matching every filter given, the newest `limit`, in the order they happened
/// (viewer).
#[utoipa::path(get, path = "/api/v1/audit", params(AuditParams), responses(
    (status = 200, body = [AuditView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn audit(
    State(daemon): Shared,
    headers: HeaderMap,
    Query(q): Query<AuditParams>,
) -> ApiResult<Json<Vec<AuditView>>> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    let settings = &daemon.loaded.settings;
    let moment = |value: &Option<String>, name: &str| {
        value
            .as_deref()
            .map(|v| crate::audit::moment(v, settings))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
    };
    let query = AuditQuery {
        person: q.person,
        dn: q.dn,
        run: q.run.map(RunId),
        since: moment(&q.since, "since")?,
        until: moment(&q.until, "until")?,
        limit: q.limit.unwrap_or(100).min(10_000),
    };
    let mut entries = daemon.store.audit(&query).await.map_err(ApiError::internal)?;
    entries.reverse();
    Ok(Json(entries.into_iter().map(AuditView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
struct HoldRequest {
    /// Why (shown in every plan while the hold lasts, and in the audit trail).
    reason: String,
    /// The hold's last day; without it, the hold lasts until lifted.
    until: Option<NaiveDate>,
}

#[derive(Serialize, ToSchema)]
struct HoldAnswer {
    person: String,
    /// The hold now (none: lifted).
    #[schema(value_type = Object)]
    hold: Option<Hold>,
    /// The hold before.
    #[schema(value_type = Object)]
    before: Option<Hold>,
    /// The operator's run recording it in the audit trail.
    recorded_as_run: i64,
}

/// Put a person on hold: roster plans nothing for them until it ends (operator). Recorded in
/// the audit trail with the token's name, as `roster hold` is.
#[utoipa::path(post, path = "/api/v1/persons/{key}/hold", params(("key" = String, Path, description = "The person's key")),
    request_body = HoldRequest, responses(
    (status = 200, body = HoldAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn hold(
    State(daemon): Shared,
    headers: HeaderMap,
    Path(key): Path<String>,
    Json(body): Json<HoldRequest>,
) -> ApiResult<Json<HoldAnswer>> {
    let caller = caller(&daemon, &headers, TokenRole::Operator)?;
    let start = operator_start(&daemon, "hold", &caller.actor());
    let hold = crate::audit::new_hold(&body.reason, body.until, start.as_of)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    set_hold(&daemon, &start, key, Some(hold)).await
}

/// Lift a person's hold (operator). Recorded in the audit trail with the token's name.
#[utoipa::path(delete, path = "/api/v1/persons/{key}/hold", params(("key" = String, Path, description = "The person's key")),
    responses((status = 200, body = HoldAnswer), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn unhold(State(daemon): Shared, headers: HeaderMap, Path(key): Path<String>) -> ApiResult<Json<HoldAnswer>> {
    let caller = caller(&daemon, &headers, TokenRole::Operator)?;
    let start = operator_start(&daemon, "unhold", &caller.actor());
    set_hold(&daemon, &start, key, None).await
}

async fn set_hold(daemon: &Daemon, start: &RunStart, key: String, hold: Option<Hold>) -> ApiResult<Json<HoldAnswer>> {
    let changed = daemon.store.set_hold(start, &key, hold.as_ref()).await.map_err(ApiError::internal)?;
    let changed = changed.ok_or_else(|| {
        ApiError::not_found(format!(
            "the store knows no person {key}: a hold needs a person recorded by an applied run"
        ))
    })?;
    tracing::info!(person = %key, actor = %start.actor, command = %start.command, "through the API");
    Ok(Json(HoldAnswer { person: key, hold, before: changed.before, recorded_as_run: changed.run.0 }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PersonSearch {
    /// Text found in the key, the login or any value of the person's records (case-insensitive);
    /// empty or absent: every person, by key.
    q: Option<String>,
    /// At most this many, by key. Default 50, at most 1000.
    limit: Option<u32>,
}

/// A person as the store keeps them (as of the last applied run).
#[derive(Serialize, ToSchema)]
struct PersonView {
    key: String,
    login: Option<String>,
    state: String,
    next_transition: Option<NaiveDate>,
    #[schema(value_type = Object)]
    hold: Option<Hold>,
    /// Source -> attribute -> value, as last read.
    #[schema(value_type = Object)]
    records: std::collections::BTreeMap<String, std::collections::BTreeMap<String, roster_core::source::FieldValue>>,
    /// Person attribute -> the source that supplied it.
    #[schema(value_type = Object)]
    provenance: std::collections::BTreeMap<String, String>,
    /// The person's accounts, per target (only in `/persons/{key}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    links: Option<Vec<crate::explain::LinkView>>,
}

impl PersonView {
    fn new(p: roster_core::state::StoredPerson, links: Option<Vec<crate::explain::LinkView>>) -> PersonView {
        PersonView {
            key: p.key,
            login: p.login,
            state: p.state.to_string(),
            next_transition: p.next_transition,
            hold: p.hold,
            records: p
                .records
                .iter()
                .map(|(source, attrs)| {
                    (source.clone(), attrs.iter().map(|(name, value)| (name.to_string(), value.to_value())).collect())
                })
                .collect(),
            provenance: p.provenance,
            links,
        }
    }
}

/// Persons whose key, login or record values contain `q` (viewer).
#[utoipa::path(get, path = "/api/v1/persons", params(PersonSearch), responses(
    (status = 200, body = [PersonView]), (status = 401, body = ErrorBody)))]
async fn search_persons(
    State(daemon): Shared,
    headers: HeaderMap,
    Query(q): Query<PersonSearch>,
) -> ApiResult<Json<Vec<PersonView>>> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    let limit = q.limit.unwrap_or(50).min(1000);
    let found =
        daemon.store.search_persons(q.q.as_deref().unwrap_or_default(), limit).await.map_err(ApiError::internal)?;
    Ok(Json(found.into_iter().map(|p| PersonView::new(p, None)).collect()))
}

/// One person as the store keeps them, with their links (viewer).
#[utoipa::path(get, path = "/api/v1/persons/{key}", params(("key" = String, Path, description = "The person's key")),
    responses((status = 200, body = PersonView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_person(State(daemon): Shared, headers: HeaderMap, Path(key): Path<String>) -> ApiResult<Json<PersonView>> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    let (person, links) = daemon
        .store
        .person(&key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("the store knows no person {key}")))?;
    let links = links
        .into_iter()
        .map(|l| crate::explain::LinkView {
            target: l.target,
            dn: l.dn,
            object_id: l.object_id,
            enabled: l.enabled,
            missing: None,
        })
        .collect();
    Ok(Json(PersonView::new(person, Some(links))))
}

/// Every value and decision for one person, as `roster explain --json` prints it (viewer):
/// reads the sources and the targets now, so it takes as long as a plan. `key` may also be the
/// key of one of the person's records.
#[utoipa::path(get, path = "/api/v1/persons/{key}/explain", params(("key" = String, Path, description = "The person's key")),
    responses((status = 200, body = Object, description = "The explanation (docs/operations.md)"),
    (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn explain_person(
    State(daemon): Shared,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<Json<crate::explain::Explanation>> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    let loaded = crate::run::Loaded { as_of: today(&daemon), ..daemon.loaded.clone() };
    let explanation = crate::explain::explain(&loaded, &daemon.store, &key)
        .await
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    explanation.map(Json).ok_or_else(|| {
        ApiError::not_found(format!("no person {key}: no source lists that key and the store knows no such person"))
    })
}

#[derive(Serialize, ToSchema)]
struct ProvisionAnswer {
    /// The queued job's name, `provision:KEY`: its run is recorded with the token's name as actor.
    job: String,
    /// False when the same person's provisioning was already waiting.
    queued: bool,
    position: Option<usize>,
    /// The operator's run recording the request in the audit trail (kind `trigger`).
    recorded_as_run: i64,
}

/// Plan and apply only this person's changes, as `roster run --person KEY` (operator): queued
/// like any job (runs never overlap), recorded as a run with the token's name as actor; safety
/// limits still apply. 202 when queued.
#[utoipa::path(post, path = "/api/v1/persons/{key}/provision", params(("key" = String, Path, description = "The person's key")),
    responses((status = 202, body = ProvisionAnswer), (status = 200, body = ProvisionAnswer),
    (status = 503, body = ErrorBody, description = "Shutting down, or a standby"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn provision_person(
    State(daemon): Shared,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult<(StatusCode, Json<ProvisionAnswer>)> {
    let caller = caller(&daemon, &headers, TokenRole::Operator)?;
    let job = format!("provision:{key}");
    let command = format!("run --person {key}");
    let args = ["run", "--hold-if-blocked", "--person", &key].map(String::from).to_vec();
    let (position, run) = queue_recorded(&daemon, &job, &command, args, &caller.actor()).await?;
    tracing::info!(job = %job, actor = %caller.actor(), "queued through the API");
    let status = if position.is_some() { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(ProvisionAnswer { job, queued: position.is_some(), position, recorded_as_run: run.0 })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HeldQuery {
    /// `waiting`, `approved`, `rejected`, `applied` or `expired`; absent: all.
    status: Option<String>,
    /// At most this many, newest first. Default 50, at most 1000.
    limit: Option<u32>,
}

/// A held plan without its operations (`GET /api/v1/plans/{id}` has them).
#[derive(Serialize, ToSchema)]
struct HeldView {
    id: i64,
    /// The run that was blocked.
    run: i64,
    created_at: DateTime<Utc>,
    actor: String,
    as_of: NaiveDate,
    /// `waiting`, `approved`, `rejected`, `applied`, `expired`.
    status: String,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    decision_reason: Option<String>,
    applied_run: Option<i64>,
    /// The approved plan whose re-check left this one.
    follows: Option<i64>,
    operations: usize,
    /// The safety limits and approval rules that hold it.
    blocked_by: Vec<String>,
}

impl From<&roster_store::HeldPlan> for HeldView {
    fn from(h: &roster_store::HeldPlan) -> HeldView {
        HeldView {
            id: h.id,
            run: h.run,
            created_at: h.created_at,
            actor: h.actor.clone(),
            as_of: h.as_of,
            status: h.status.as_str().to_string(),
            decided_by: h.decided_by.clone(),
            decided_at: h.decided_at,
            decision_reason: h.decision_reason.clone(),
            applied_run: h.applied_run,
            follows: h.follows,
            operations: h.plan.operations.len(),
            blocked_by: h.plan.safety.iter().map(|v| format!("{}: {}", v.limit, v.message)).collect(),
        }
    }
}

/// Plans held by a safety limit or an approval rule, newest first (viewer).
#[utoipa::path(get, path = "/api/v1/plans", params(HeldQuery), responses(
    (status = 200, body = Vec<HeldView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_held_plans(
    State(daemon): Shared,
    headers: HeaderMap,
    Query(query): Query<HeldQuery>,
) -> ApiResult<Json<Vec<HeldView>>> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(roster_store::HeldStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status: expected waiting, approved, rejected, applied or expired, found {text:?}"
            ))
        })?),
    };
    let held =
        daemon.store.held_plans(status, query.limit.unwrap_or(50).min(1000)).await.map_err(ApiError::internal)?;
    Ok(Json(held.iter().map(HeldView::from).collect()))
}

/// A held plan with its operations, in the plan format (viewer): what an approver approves.
#[utoipa::path(get, path = "/api/v1/plans/{id}", params(("id" = i64, Path, description = "The held plan's id")), responses(
    (status = 200, body = Object, description = "The held plan: its fields and `plan` (docs/plan-format.md)"),
    (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_held_plan(
    State(daemon): Shared,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<roster_store::HeldPlan>> {
    caller(&daemon, &headers, TokenRole::Viewer)?;
    let held = daemon.store.held_plan(id).await.map_err(ApiError::internal)?;
    held.map(Json).ok_or_else(|| ApiError::not_found(format!("no held plan {id}")))
}

#[derive(Deserialize, ToSchema)]
struct DecisionRequest {
    /// Why, for the audit trail. Required.
    reason: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DecisionAnswer {
    id: i64,
    /// `approved` or `rejected`.
    status: String,
    /// The approver's run recording the decision in the audit trail.
    recorded_as_run: i64,
    /// Approved: the job `approved:ID` that applies it (`roster apply --approved ID`), queued.
    job: Option<String>,
}

/// Approve a waiting held plan (approver): recorded in the audit trail with the token's name, then
/// queued as `roster apply --approved ID`, which applies each approved operation only where a
/// fresh plan still has it unchanged; anything new or changed since needs its own approval.
#[utoipa::path(post, path = "/api/v1/plans/{id}/approve", params(("id" = i64, Path, description = "The held plan's id")),
    request_body = DecisionRequest, responses((status = 200, body = DecisionAnswer), (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The plan is not waiting"),
    (status = 503, body = ErrorBody, description = "A standby"),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn approve_plan(
    State(daemon): Shared,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<DecisionRequest>,
) -> ApiResult<Json<DecisionAnswer>> {
    let caller = caller(&daemon, &headers, TokenRole::Approver)?;
    decide_held(&daemon, id, true, &body.reason, &caller.actor()).await.map(Json)
}

/// Reject a waiting held plan (approver): recorded in the audit trail with the token's name;
/// nothing of it is applied.
#[utoipa::path(post, path = "/api/v1/plans/{id}/reject", params(("id" = i64, Path, description = "The held plan's id")),
    request_body = DecisionRequest, responses((status = 200, body = DecisionAnswer), (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The plan is not waiting"),
    (status = 503, body = ErrorBody, description = "A standby"),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn reject_plan(
    State(daemon): Shared,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<DecisionRequest>,
) -> ApiResult<Json<DecisionAnswer>> {
    let caller = caller(&daemon, &headers, TokenRole::Approver)?;
    decide_held(&daemon, id, false, &body.reason, &caller.actor()).await.map(Json)
}

/// Records an approver's decision on held plan `id` (the API's and the console's), and queues the
/// apply of an approved one.
pub(crate) async fn decide_held(
    daemon: &Daemon,
    id: i64,
    approve: bool,
    reason: &str,
    actor: &str,
) -> ApiResult<DecisionAnswer> {
    refuse_on_standby(daemon)?;
    if reason.trim().is_empty() {
        return Err(ApiError::bad_request("reason is empty: say why, for the audit trail"));
    }
    let verb = if approve { "approve" } else { "reject" };
    let start = operator_start(daemon, verb, actor);
    let run = match daemon.store.decide_plan(&start, id, approve, reason).await.map_err(ApiError::internal)? {
        roster_store::Decided::Done(run) => run,
        roster_store::Decided::NotFound => return Err(ApiError::not_found(format!("no held plan {id}"))),
        roster_store::Decided::NotWaiting(status) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("held plan {id} is {}: only a waiting plan can be approved or rejected", status.as_str()),
            ));
        }
    };
    tracing::info!(plan = id, actor, decision = verb, "held plan decided");
    let job = if approve {
        let job = format!("approved:{id}");
        let args = ["apply", "--approved", &id.to_string()].map(String::from).to_vec();
        queue_recorded(daemon, &job, &format!("apply --approved {id}"), args, actor).await?;
        Some(job)
    } else {
        None
    };
    let status = if approve { "approved" } else { "rejected" }.to_string();
    Ok(DecisionAnswer { id, status, recorded_as_run: run.0, job })
}
