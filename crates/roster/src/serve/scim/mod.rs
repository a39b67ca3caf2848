//! The inbound SCIM 2.0 endpoint (`/scim/v2`, RFC 7644) that HR systems push Users to, for the
//! `kind = "scim"` sources: Users (create, read, list with `filter` and paging, replace, PATCH,
//! delete, `/.search`), Bulk, and the discovery endpoints. The bearer token selects the source
//! (`[source.scim] token_sha256`); a pushed User is checked against the SCIM schema (400
//! `invalidValue`) and stored; the source reads the stored Users at the next run, through the
//! same row rules, correlation and safety limits as any source. A push that changed a User queues
//! the source's `job`, when it names one. See `docs/sources/scim-inbound.md`.

mod bulk;
mod discovery;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use roster_connectors::source::scim::schema::Problem;
use roster_core::settings::ScimInbound;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Daemon;

/// Where the endpoint is mounted.
pub(crate) const BASE: &str = "/scim/v2";
const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const SCIM_JSON: &str = "application/scim+json";
/// Largest request body (a Bulk request included), advertised as `bulk.maxPayloadSize`.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Most operations in one Bulk request, advertised as `bulk.maxOperations`.
pub(crate) const MAX_BULK_OPERATIONS: usize = 1000;
/// Most Users one page of a list holds, advertised as `filter.maxResults`.
pub(crate) const MAX_RESULTS: usize = 1000;

/// The SCIM routes, merged into the daemon's router.
pub(crate) fn router() -> Router<Arc<Daemon>> {
    Router::new()
        .route(&format!("{BASE}/ServiceProviderConfig"), get(discovery::service_provider_config))
        .route(&format!("{BASE}/Schemas"), get(discovery::schemas))
        .route(&format!("{BASE}/Schemas/{{id}}"), get(discovery::schema))
        .route(&format!("{BASE}/ResourceTypes"), get(discovery::resource_types))
        .route(&format!("{BASE}/ResourceTypes/{{id}}"), get(discovery::resource_type))
        .route(&format!("{BASE}/Users"), get(users::list).post(users::create))
        .route(&format!("{BASE}/Users/.search"), post(users::search))
        .route(
            &format!("{BASE}/Users/{{id}}"),
            get(users::get).put(users::replace).patch(users::patch).delete(users::delete),
        )
        .route(&format!("{BASE}/Bulk"), post(bulk::bulk))
        .route(&format!("{BASE}/.search"), post(not_implemented))
        .route(&format!("{BASE}/{{*rest}}"), axum::routing::any(unknown))
        .route(BASE, axum::routing::any(unknown))
}

/// A standby takes no push (a change to a User would queue the source's job, which only the
/// leader runs): 503, so that the HR system retries against the leader.
pub(crate) async fn leader_only(
    axum::extract::State(daemon): axum::extract::State<Arc<Daemon>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let reads = request.method() == axum::http::Method::GET || request.uri().path().ends_with("/.search");
    if reads || daemon.leader.is_leading() {
        return next.run(request).await;
    }
    ScimError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "this daemon is a standby: another roster serve on the same store leads; push to the leader",
    )
    .into_response()
}

async fn not_implemented() -> ScimError {
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "searching all resource types at once is not supported: POST /Users/.search",
    )
}

async fn unknown() -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint: see /scim/v2/ResourceTypes")
}

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug)]
pub(crate) struct ScimError {
    pub(crate) status: StatusCode,
    pub(crate) scim_type: Option<&'static str>,
    pub(crate) detail: String,
}

impl ScimError {
    pub(crate) fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> ScimError {
        ScimError { status, scim_type, detail: detail.into() }
    }
    pub(crate) fn bad(scim_type: &'static str, detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    pub(crate) fn not_found(id: &str) -> ScimError {
        ScimError::new(StatusCode::NOT_FOUND, None, format!("no User {id}"))
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> ScimError {
        tracing::error!("SCIM endpoint: {e}");
        ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string())
    }
    pub(crate) fn body(&self) -> Value {
        let mut body =
            json!({"schemas": [ERROR_URN], "status": self.status.as_u16().to_string(), "detail": self.detail});
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type);
        }
        body
    }
}

impl From<Problem> for ScimError {
    fn from(problem: Problem) -> ScimError {
        ScimError::bad(problem.scim_type, problem.detail)
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut response = scim_json(self.status, &self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"roster-scim\""));
        }
        response
    }
}

pub(crate) type ScimResult<T> = Result<T, ScimError>;

/// A JSON body as `application/scim+json`.
pub(crate) fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    response
}

/// The SCIM source a request's bearer token selects: 401 without one of `[source.scim]`'s tokens.
/// Every configured hash is compared, so the time taken tells nothing of which matched.
pub(crate) fn source_of<'d>(daemon: &'d Daemon, headers: &HeaderMap) -> ScimResult<&'d ScimInbound> {
    let presented = super::auth::bearer(headers).ok_or_else(|| {
        ScimError::new(StatusCode::UNAUTHORIZED, None, "expected an Authorization: Bearer TOKEN header")
    })?;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let found = daemon
        .serve
        .scim
        .iter()
        .fold(None, |found, s| if super::auth::same(&s.sha256, &digest) { Some(s) } else { found });
    found.ok_or_else(|| {
        ScimError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "the bearer token is not one of a SCIM source's ([source.scim] token_sha256)",
        )
    })
}

/// The request's body as JSON, at most [`MAX_PAYLOAD_BYTES`].
pub(crate) async fn json_body(body: Body) -> ScimResult<Value> {
    let bytes = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await.map_err(|_| {
        ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the request body is larger than {MAX_PAYLOAD_BYTES} bytes (maxPayloadSize)"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ScimError::bad("invalidSyntax", format!("the body is not JSON: {e}")))
}

/// The absolute URL of the endpoint as the client reached it (for `meta.location`).
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    format!("{scheme}://{host}{BASE}")
}
