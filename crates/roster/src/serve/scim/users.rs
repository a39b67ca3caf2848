//! `/Users`: create, read, list and search (filter, paging, `attributes`), replace, PATCH and
//! delete. The operations themselves ([`create_user`], [`replace_user`], [`patch_user`],
//! [`delete_user`]) are shared with Bulk.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use roster_connectors::source::scim::path::matches;
use roster_connectors::source::scim::{patch, schema};
use roster_core::settings::ScimInbound;
use roster_store::{ScimUser, ScimWrite};
use scim_v2::filter::{Filter, PatchPath};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{MAX_RESULTS, ScimError, ScimResult, base_url, json_body, scim_json, source_of};
use crate::serve::Daemon;

const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A stored User as the client sees it: with `id` and `meta`.
pub(crate) fn rendered(user: &ScimUser, base: &str) -> Value {
    let mut resource = user.resource.clone();
    if let Some(object) = resource.as_object_mut() {
        object.insert("id".to_string(), json!(user.id));
        object.insert(
            "meta".to_string(),
            json!({
                "resourceType": "User",
                "created": user.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "lastModified": user.last_modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "location": format!("{base}/Users/{}", user.id),
                "version": etag(user),
            }),
        );
    }
    resource
}

pub(crate) fn etag(user: &ScimUser) -> String {
    format!("W/\"{}\"", user.version)
}

/// A written User's answer: the resource, its `ETag`, and `Location` when created.
pub(crate) fn answer(status: StatusCode, user: &ScimUser, base: &str) -> Response {
    let mut response = scim_json(status, &rendered(user, base));
    if let Ok(tag) = HeaderValue::from_str(&etag(user)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("{base}/Users/{}", user.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn new_id() -> ScimResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ScimError::internal(format!("no randomness for an id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// After a push that changed a User: the source's job, when it names one, is queued (once).
async fn pushed(daemon: &Daemon, source: &ScimInbound) {
    if let Some(job) = &source.job {
        let queued = crate::serve::queue::enqueue(daemon, job, &format!("scim:{}", source.source), Vec::new()).await;
        tracing::info!(source = %source.source, job = %job, ?queued, "SCIM push: job queued");
    }
}

fn written(outcome: ScimWrite, user_name: &str) -> ScimResult<ScimUser> {
    match outcome {
        ScimWrite::Written(user) => Ok(user),
        ScimWrite::UserNameTaken => Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("another User already has userName {user_name:?}"),
        )),
        ScimWrite::Stale => Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "the User changed while this request was handled: read it again",
        )),
    }
}

fn checked(mut body: Value) -> ScimResult<(Value, String)> {
    let object =
        body.as_object_mut().ok_or_else(|| ScimError::bad("invalidSyntax", "expected a User: a JSON object"))?;
    let user_name = schema::check_user(object)?;
    Ok((body, user_name))
}

pub(crate) async fn create_user(daemon: &Daemon, source: &ScimInbound, body: Value) -> ScimResult<ScimUser> {
    let (resource, user_name) = checked(body)?;
    let id = new_id()?;
    let outcome = daemon
        .store
        .scim_write_user(&source.source, &id, &user_name, &resource, None)
        .await
        .map_err(ScimError::internal)?;
    let user = written(outcome, &user_name)?;
    pushed(daemon, source).await;
    Ok(user)
}

async fn current(daemon: &Daemon, source: &ScimInbound, id: &str, if_match: Option<&str>) -> ScimResult<ScimUser> {
    let user = daemon
        .store
        .scim_user(&source.source, id)
        .await
        .map_err(ScimError::internal)?
        .ok_or_else(|| ScimError::not_found(id))?;
    if let Some(expected) = if_match
        && expected.trim() != "*"
        && !expected.split(',').any(|tag| tag.trim() == etag(&user))
    {
        return Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!("If-Match {expected} does not match the User's version {}", etag(&user)),
        ));
    }
    Ok(user)
}

pub(crate) async fn replace_user(
    daemon: &Daemon,
    source: &ScimInbound,
    id: &str,
    body: Value,
    if_match: Option<&str>,
) -> ScimResult<ScimUser> {
    let before = current(daemon, source, id, if_match).await?;
    let (resource, user_name) = checked(body)?;
    let outcome = daemon
        .store
        .scim_write_user(&source.source, id, &user_name, &resource, Some(before.version))
        .await
        .map_err(ScimError::internal)?;
    let user = written(outcome, &user_name)?;
    if user.resource != before.resource {
        pushed(daemon, source).await;
    }
    Ok(user)
}

#[derive(Deserialize)]
struct PatchOperation {
    op: String,
    path: Option<String>,
    value: Option<Value>,
}

pub(crate) async fn patch_user(
    daemon: &Daemon,
    source: &ScimInbound,
    id: &str,
    body: Value,
    if_match: Option<&str>,
) -> ScimResult<ScimUser> {
    let lists_urn = body["schemas"].as_array().is_some_and(|s| s.iter().any(|u| u == PATCH_URN));
    if !lists_urn {
        return Err(ScimError::bad("invalidSyntax", format!("expected \"schemas\": [\"{PATCH_URN}\"]")));
    }
    let operations = body.get("Operations").or_else(|| body.get("operations")).cloned().unwrap_or(Value::Null);
    let operations: Vec<PatchOperation> = serde_json::from_value(operations).map_err(|e| {
        ScimError::bad("invalidSyntax", format!("expected \"Operations\": [{{\"op\", \"path\", \"value\"}}]: {e}"))
    })?;
    let before = current(daemon, source, id, if_match).await?;
    let mut resource = before.resource.clone();
    let object =
        resource.as_object_mut().ok_or_else(|| ScimError::internal(format!("stored User {id} is not an object")))?;
    for (n, operation) in operations.into_iter().enumerate() {
        patch::apply(object, &operation.op, operation.path.as_deref(), operation.value)
            .map_err(|p| ScimError::bad(p.scim_type, format!("operation {}: {}", n + 1, p.detail)))?;
    }
    let (resource, user_name) = checked(resource)?;
    if resource == before.resource {
        return Ok(before);
    }
    let outcome = daemon
        .store
        .scim_write_user(&source.source, id, &user_name, &resource, Some(before.version))
        .await
        .map_err(ScimError::internal)?;
    let user = written(outcome, &user_name)?;
    pushed(daemon, source).await;
    Ok(user)
}

pub(crate) async fn delete_user(
    daemon: &Daemon,
    source: &ScimInbound,
    id: &str,
    if_match: Option<&str>,
) -> ScimResult<()> {
    current(daemon, source, id, if_match).await?;
    if !daemon.store.scim_delete_user(&source.source, id).await.map_err(ScimError::internal)? {
        return Err(ScimError::not_found(id));
    }
    pushed(daemon, source).await;
    Ok(())
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

pub(crate) async fn create(State(daemon): State<Arc<Daemon>>, headers: HeaderMap, body: Body) -> ScimResult<Response> {
    let source = source_of(&daemon, &headers)?;
    let user = create_user(&daemon, source, json_body(body).await?).await?;
    Ok(answer(StatusCode::CREATED, &user, &base_url(&headers)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

pub(crate) async fn get(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ScimResult<Response> {
    let source = source_of(&daemon, &headers)?;
    let user = current(&daemon, source, &id, None).await?;
    if let Some(tags) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && tags.split(',').any(|t| t.trim() == etag(&user))
    {
        return Ok(axum::response::IntoResponse::into_response(StatusCode::NOT_MODIFIED));
    }
    let base = base_url(&headers);
    let mut response = answer(StatusCode::OK, &user, &base);
    let projected = projected(rendered(&user, &base), q.attributes.as_deref(), q.excluded_attributes.as_deref())?;
    *response.body_mut() = Body::from(projected.to_string());
    Ok(response)
}

pub(crate) async fn list(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ScimResult<Response> {
    let source = source_of(&daemon, &headers)?;
    listed(&daemon, source, &base_url(&headers), q).await
}

pub(crate) async fn search(State(daemon): State<Arc<Daemon>>, headers: HeaderMap, body: Body) -> ScimResult<Response> {
    let source = source_of(&daemon, &headers)?;
    let body = json_body(body).await?;
    if !body["schemas"].as_array().is_some_and(|s| s.iter().any(|u| u == SEARCH_URN)) {
        return Err(ScimError::bad("invalidSyntax", format!("expected \"schemas\": [\"{SEARCH_URN}\"]")));
    }
    let joined = |name: &str| match &body[name] {
        Value::Array(items) => Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
        Value::String(text) => Some(text.clone()),
        _ => None,
    };
    let q = ListQuery {
        filter: body["filter"].as_str().map(str::to_string),
        start_index: body["startIndex"].as_i64(),
        count: body["count"].as_i64(),
        attributes: joined("attributes"),
        excluded_attributes: joined("excludedAttributes"),
    };
    listed(&daemon, source, &base_url(&headers), q).await
}

async fn listed(daemon: &Daemon, source: &ScimInbound, base: &str, q: ListQuery) -> ScimResult<Response> {
    let filter = q
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(|f| f.parse::<Filter>().map_err(|e| ScimError::bad("invalidFilter", format!("filter {f:?}: {e}"))))
        .transpose()?;
    let users = daemon.store.scim_users(&source.source).await.map_err(ScimError::internal)?;
    let found: Vec<Value> = users
        .iter()
        .map(|user| rendered(user, base))
        .filter(|resource| filter.as_ref().is_none_or(|f| matches(f, resource)))
        .collect();
    let start = q.start_index.unwrap_or(1).max(1);
    let count = q.count.unwrap_or(MAX_RESULTS as i64).clamp(0, MAX_RESULTS as i64);
    let page = found
        .iter()
        .skip(usize::try_from(start - 1).unwrap_or(usize::MAX))
        .take(usize::try_from(count).unwrap_or(0))
        .map(|r| projected(r.clone(), q.attributes.as_deref(), q.excluded_attributes.as_deref()))
        .collect::<ScimResult<Vec<_>>>()?;
    Ok(scim_json(
        StatusCode::OK,
        &json!({"schemas": [LIST_URN], "totalResults": found.len(), "startIndex": start,
            "itemsPerPage": page.len(), "Resources": page}),
    ))
}

/// The resource with only `attributes` (and `id`, `schemas`, `meta`), or without
/// `excludedAttributes` (RFC 7644 §3.4.2.5).
fn projected(resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> ScimResult<Value> {
    let Value::Object(mut object) = resource else { return Ok(resource) };
    let names = |list: &str| -> Vec<String> {
        list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect()
    };
    if let Some(list) = attributes.filter(|l| !l.trim().is_empty()) {
        let mut kept = Map::new();
        for always in ["schemas", "id", "meta"] {
            if let Some(v) = object.get(always) {
                kept.insert(always.to_string(), v.clone());
            }
        }
        for name in names(list) {
            copy_path(&object, &mut kept, &name)?;
        }
        object = kept;
    }
    if let Some(list) = excluded {
        for name in names(list) {
            remove_path(&mut object, &name)?;
        }
    }
    Ok(Value::Object(object))
}

fn parsed(name: &str) -> ScimResult<Option<scim_v2::filter::AttrPath>> {
    if is_extension(name) {
        return Ok(None);
    }
    match name.parse::<PatchPath>() {
        Ok(PatchPath::Attr(attr)) => Ok(Some(attr)),
        _ => Err(ScimError::bad("invalidPath", format!("{name:?} is not an attribute path"))),
    }
}

fn is_extension(name: &str) -> bool {
    name.eq_ignore_ascii_case(roster_connectors::source::scim::path::ENTERPRISE_URN)
}

fn copy_path(from: &Map<String, Value>, to: &mut Map<String, Value>, name: &str) -> ScimResult<()> {
    use roster_connectors::source::scim::path::{base, get_ci, key_ci};
    let Some(attr) = parsed(name)? else {
        let key = key_ci(from, name);
        if let Some(v) = from.get(&key) {
            to.insert(key, v.clone());
        }
        return Ok(());
    };
    let Some(source) = base(from, &attr) else { return Ok(()) };
    let key = key_ci(source, &attr.name);
    let Some(value) = get_ci(source, &attr.name) else { return Ok(()) };
    let target = match attr
        .uri
        .as_deref()
        .filter(|u| !u.eq_ignore_ascii_case(roster_connectors::source::scim::path::USER_URN))
    {
        Some(uri) => to.entry(key_ci(from, uri)).or_insert_with(|| json!({})).as_object_mut(),
        None => Some(to),
    };
    let Some(target) = target else { return Ok(()) };
    match (attr.sub_attr.as_deref(), value) {
        (None, v) => {
            target.insert(key, v.clone());
        }
        (Some(sub), Value::Object(members)) => {
            if let Some(v) = get_ci(members, sub) {
                let into = target.entry(key).or_insert_with(|| json!({}));
                if let Some(into) = into.as_object_mut() {
                    into.insert(key_ci(members, sub), v.clone());
                }
            }
        }
        (Some(sub), Value::Array(items)) => {
            let picked: Vec<Value> = items
                .iter()
                .filter_map(|item| item.as_object().and_then(|o| get_ci(o, sub).map(|v| json!({key_ci(o, sub): v}))))
                .collect();
            target.insert(key, Value::Array(picked));
        }
        _ => {}
    }
    Ok(())
}

fn remove_path(object: &mut Map<String, Value>, name: &str) -> ScimResult<()> {
    use roster_connectors::source::scim::path::key_ci;
    let Some(attr) = parsed(name)? else {
        let key = key_ci(object, name);
        object.remove(&key);
        return Ok(());
    };
    if attr.uri.is_none()
        && attr.sub_attr.is_none()
        && ["id", "schemas"].iter().any(|n| n.eq_ignore_ascii_case(&attr.name))
    {
        return Ok(());
    }
    let path = PatchPath::Attr(attr);
    let _ = patch::apply(object, "remove", Some(&path.to_string()), None);
    Ok(())
}

pub(crate) async fn replace(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ScimResult<Response> {
    let source = source_of(&daemon, &headers)?;
    let user = replace_user(&daemon, source, &id, json_body(body).await?, if_match(&headers)).await?;
    Ok(answer(StatusCode::OK, &user, &base_url(&headers)))
}

pub(crate) async fn patch(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ScimResult<Response> {
    let source = source_of(&daemon, &headers)?;
    let user = patch_user(&daemon, source, &id, json_body(body).await?, if_match(&headers)).await?;
    Ok(answer(StatusCode::OK, &user, &base_url(&headers)))
}

pub(crate) async fn delete(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<StatusCode> {
    let source = source_of(&daemon, &headers)?;
    delete_user(&daemon, source, &id, if_match(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}
