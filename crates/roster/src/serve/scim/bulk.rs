//! Bulk (RFC 7644 §3.7): many User operations in one request, in order, each answered on its own;
//! `bulkId:NAME` in a later operation's path or data stands for the id a POST with that `bulkId`
//! created; `failOnErrors` stops after that many errors. At most [`MAX_BULK_OPERATIONS`]
//! operations and [`super::MAX_PAYLOAD_BYTES`] bytes (a larger body is 413).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::users::{create_user, delete_user, etag, patch_user, replace_user};
use super::{MAX_BULK_OPERATIONS, ScimError, ScimResult, base_url, json_body, scim_json, source_of};
use crate::serve::Daemon;

const REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// Replaces every string `bulkId:NAME` in `value` by the id created for NAME.
fn resolved(value: &mut Value, ids: &BTreeMap<String, String>) -> Result<(), String> {
    match value {
        Value::String(text) => {
            if let Some(name) = text.strip_prefix("bulkId:") {
                *text =
                    ids.get(name).cloned().ok_or_else(|| format!("bulkId:{name} names no User created before it"))?;
            }
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| resolved(v, ids))?,
        Value::Object(members) => members.values_mut().try_for_each(|v| resolved(v, ids))?,
        _ => {}
    }
    Ok(())
}

pub(crate) async fn bulk(State(daemon): State<Arc<Daemon>>, headers: HeaderMap, body: Body) -> ScimResult<Response> {
    let source = source_of(&daemon, &headers)?;
    let body = json_body(body).await?;
    if !body["schemas"].as_array().is_some_and(|s| s.iter().any(|u| u == REQUEST_URN)) {
        return Err(ScimError::bad("invalidSyntax", format!("expected \"schemas\": [\"{REQUEST_URN}\"]")));
    }
    let operations = body["Operations"].as_array().cloned().unwrap_or_default();
    if operations.len() > MAX_BULK_OPERATIONS {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!(
                "{} operations; at most {MAX_BULK_OPERATIONS} in one Bulk request (maxOperations)",
                operations.len()
            ),
        ));
    }
    let fail_on_errors = body["failOnErrors"].as_u64();
    let base = base_url(&headers);
    let mut ids = BTreeMap::new();
    let mut answers = Vec::new();
    let mut errors = 0;
    for operation in operations {
        if fail_on_errors.is_some_and(|limit| errors >= limit) {
            break;
        }
        let method = operation["method"].as_str().unwrap_or_default().to_ascii_uppercase();
        let bulk_id = operation["bulkId"].as_str().map(str::to_string);
        let version = operation["version"].as_str().map(str::to_string);
        let outcome =
            run_one(&daemon, source, &method, bulk_id.as_deref(), &operation, version.as_deref(), &mut ids).await;
        let mut answer = json!({"method": method});
        if let Some(bulk_id) = &bulk_id {
            answer["bulkId"] = json!(bulk_id);
        }
        match outcome {
            Ok((status, user)) => {
                answer["status"] = json!(status.as_u16().to_string());
                if let Some(user) = user {
                    answer["location"] = json!(format!("{base}/Users/{}", user.id));
                    answer["version"] = json!(etag(&user));
                }
            }
            Err(error) => {
                errors += 1;
                answer["status"] = json!(error.status.as_u16().to_string());
                answer["response"] = error.body();
            }
        }
        answers.push(answer);
    }
    Ok(scim_json(StatusCode::OK, &json!({"schemas": [RESPONSE_URN], "Operations": answers})))
}

async fn run_one(
    daemon: &Daemon,
    source: &roster_core::settings::ScimInbound,
    method: &str,
    bulk_id: Option<&str>,
    operation: &Value,
    version: Option<&str>,
    ids: &mut BTreeMap<String, String>,
) -> ScimResult<(StatusCode, Option<roster_store::ScimUser>)> {
    let mut path = operation["path"].as_str().unwrap_or_default().to_string();
    let mut data = operation.get("data").cloned().unwrap_or(Value::Null);
    let unresolved = |e| ScimError::new(StatusCode::CONFLICT, Some("invalidValue"), e);
    if let Some(reference) = path.strip_prefix("/Users/").filter(|id| id.starts_with("bulkId:")) {
        let mut id = Value::String(reference.to_string());
        resolved(&mut id, ids).map_err(unresolved)?;
        path = format!("/Users/{}", id.as_str().unwrap_or_default());
    }
    resolved(&mut data, ids).map_err(unresolved)?;
    let id = path.strip_prefix("/Users/").filter(|id| !id.is_empty() && !id.contains('/'));
    match (method, path.as_str(), id) {
        ("POST", "/Users", _) => {
            let bulk_id = bulk_id.ok_or_else(|| ScimError::bad("invalidSyntax", "a Bulk POST needs a bulkId"))?;
            let user = create_user(daemon, source, data).await?;
            ids.insert(bulk_id.to_string(), user.id.clone());
            Ok((StatusCode::CREATED, Some(user)))
        }
        ("PUT", _, Some(id)) => Ok((StatusCode::OK, Some(replace_user(daemon, source, id, data, version).await?))),
        ("PATCH", _, Some(id)) => Ok((StatusCode::OK, Some(patch_user(daemon, source, id, data, version).await?))),
        ("DELETE", _, Some(id)) => {
            delete_user(daemon, source, id, version).await?;
            Ok((StatusCode::NO_CONTENT, None))
        }
        _ => Err(ScimError::bad(
            "invalidSyntax",
            format!("expected POST /Users, or PUT, PATCH or DELETE /Users/ID; found {method} {path:?}"),
        )),
    }
}
