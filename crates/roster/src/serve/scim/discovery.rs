//! The discovery endpoints (RFC 7644 §4): what this endpoint supports, the schemas it serves
//! (RFC 7643's User and EnterpriseUser) and its one resource type, User.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use roster_connectors::source::scim::path::{ENTERPRISE_URN, USER_URN};
use roster_connectors::source::scim::schema::schemas as user_schemas;
use serde_json::{Value, json};

use super::{
    MAX_BULK_OPERATIONS, MAX_PAYLOAD_BYTES, MAX_RESULTS, ScimError, ScimResult, base_url, scim_json, source_of,
};
use crate::serve::Daemon;

const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

pub(crate) async fn service_provider_config(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
) -> ScimResult<Response> {
    source_of(&daemon, &headers)?;
    let base = base_url(&headers);
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://example.invalid/roster/docs/sources/scim-inbound.md",
            "patch": {"supported": true},
            "bulk": {"supported": true, "maxOperations": MAX_BULK_OPERATIONS, "maxPayloadSize": MAX_PAYLOAD_BYTES},
            "filter": {"supported": true, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A token whose SHA-256 is a SCIM source's [source.scim] token_sha256",
                "primary": true
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
        }),
    ))
}

fn schema_resources(base: &str) -> Vec<Value> {
    user_schemas()
        .iter()
        .map(|schema| {
            let mut schema = schema.clone();
            let id = schema["id"].as_str().unwrap_or_default().to_string();
            schema["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
            schema["meta"] = json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")});
            schema
        })
        .collect()
}

fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A person pushed by an HR system: a record of a roster source",
        "schema": USER_URN,
        "schemaExtensions": [{"schema": ENTERPRISE_URN, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
    })
}

fn list(resources: Vec<Value>) -> Value {
    json!({"schemas": [LIST_URN], "totalResults": resources.len(), "startIndex": 1,
        "itemsPerPage": resources.len(), "Resources": resources})
}

pub(crate) async fn schemas(State(daemon): State<Arc<Daemon>>, headers: HeaderMap) -> ScimResult<Response> {
    source_of(&daemon, &headers)?;
    Ok(scim_json(StatusCode::OK, &list(schema_resources(&base_url(&headers)))))
}

pub(crate) async fn schema(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    source_of(&daemon, &headers)?;
    schema_resources(&base_url(&headers))
        .into_iter()
        .find(|s| s["id"].as_str().is_some_and(|sid| sid.eq_ignore_ascii_case(&id)))
        .map(|s| scim_json(StatusCode::OK, &s))
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, format!("no schema {id}")))
}

pub(crate) async fn resource_types(State(daemon): State<Arc<Daemon>>, headers: HeaderMap) -> ScimResult<Response> {
    source_of(&daemon, &headers)?;
    Ok(scim_json(StatusCode::OK, &list(vec![user_resource_type(&base_url(&headers))])))
}

pub(crate) async fn resource_type(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    source_of(&daemon, &headers)?;
    if id != "User" {
        return Err(ScimError::new(StatusCode::NOT_FOUND, None, format!("no resource type {id}: only User")));
    }
    Ok(scim_json(StatusCode::OK, &user_resource_type(&base_url(&headers))))
}
