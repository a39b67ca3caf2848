//! The schemas the endpoint serves (RFC 7643's User and its enterprise extension, as `scim_v2`
//! ships them) and the check of a pushed User against them: what the SCIM schema rejects is a 400
//! `invalidValue` before anything is stored; what roster's configuration rejects (a date it cannot
//! read, a missing required attribute) is the row rules' to quarantine at the next run.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::path::{ENTERPRISE_URN, USER_URN};

/// Why a request cannot be done, as SCIM's error response says it (RFC 7644 §3.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `invalidValue`, `invalidSyntax`, `invalidPath`, `noTarget`, `invalidFilter`, `uniqueness`...
    pub scim_type: &'static str,
    pub detail: String,
}

impl Problem {
    pub fn new(scim_type: &'static str, detail: impl Into<String>) -> Problem {
        Problem { scim_type, detail: detail.into() }
    }
}

/// The User and EnterpriseUser schemas as JSON (without `meta`, which the endpoint adds).
pub fn schemas() -> &'static [Value] {
    static SCHEMAS: OnceLock<Vec<Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        scim_v2::models::scim_schema::get_schemas(vec!["user", "enterprise_user"])
            .unwrap_or_default()
            .into_iter()
            .filter_map(|schema| serde_json::to_value(schema).ok())
            .map(|mut schema| {
                if let Some(object) = schema.as_object_mut() {
                    object.remove("meta");
                }
                schema
            })
            .collect()
    })
}

fn attributes_of(urn: &str) -> &'static [Value] {
    schemas()
        .iter()
        .find(|s| s["id"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(urn)))
        .and_then(|s| s["attributes"].as_array())
        .map_or(&[], Vec::as_slice)
}

/// Checks a User as pushed (POST, PUT, or the result of a PATCH) and makes it what is stored:
/// server-assigned and read-only attributes (`id`, `meta`, `groups`) and the never-returned
/// `password` dropped, attribute names in the schema's case, null values removed. Returns its
/// userName.
pub fn check_user(resource: &mut Map<String, Value>) -> Result<String, Problem> {
    let schemas: Vec<String> = match resource.get("schemas") {
        Some(Value::Array(items)) => items.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        _ => return Err(Problem::new("invalidSyntax", format!("expected \"schemas\" listing {USER_URN}"))),
    };
    if !schemas.iter().any(|s| s.eq_ignore_ascii_case(USER_URN)) {
        return Err(Problem::new(
            "invalidSyntax",
            format!("expected \"schemas\" listing {USER_URN}, found {schemas:?}"),
        ));
    }
    for name in ["id", "meta", "password"] {
        resource.retain(|key, _| !key.eq_ignore_ascii_case(name));
    }
    resource.remove("schemas");
    let mut listed = vec![Value::String(USER_URN.to_string())];
    let mut extensions = Map::new();
    let members: Vec<(String, Value)> = std::mem::take(resource).into_iter().collect();
    for (key, value) in members {
        if !key.to_ascii_lowercase().starts_with("urn:") {
            resource.insert(key, value);
            continue;
        }
        if value.is_null() {
            continue;
        }
        let Value::Object(mut extension) = value else {
            return Err(Problem::new("invalidValue", format!("{key}: expected an object (a schema extension)")));
        };
        if key.eq_ignore_ascii_case(ENTERPRISE_URN) {
            checked_members(&mut extension, attributes_of(ENTERPRISE_URN), ENTERPRISE_URN)?;
            extensions.insert(ENTERPRISE_URN.to_string(), Value::Object(extension));
        } else if schemas.iter().any(|s| s.eq_ignore_ascii_case(&key)) {
            // An extension of the HR system's own (hire dates live in one): kept as pushed, for
            // `columns` to map; the row rules check what roster reads from it.
            extensions.insert(key, Value::Object(extension));
        } else {
            return Err(Problem::new("invalidSyntax", format!("extension {key} is not listed in \"schemas\"")));
        }
    }
    checked_members(resource, attributes_of(USER_URN), "")?;
    listed.extend(extensions.keys().map(|k| Value::String(k.clone())));
    resource.insert("schemas".to_string(), Value::Array(listed));
    resource.extend(extensions);
    match resource.get("userName") {
        Some(Value::String(name)) if !name.trim().is_empty() => Ok(name.clone()),
        _ => Err(Problem::new("invalidValue", "userName is required: expected a non-empty string")),
    }
}

/// Checks every member of `object` that `definitions` describes; renames it to the schema's case.
fn checked_members(object: &mut Map<String, Value>, definitions: &[Value], prefix: &str) -> Result<(), Problem> {
    let members: Vec<(String, Value)> = std::mem::take(object).into_iter().collect();
    for (key, value) in members {
        let definition = definitions.iter().find(|d| d["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&key)));
        let Some(definition) = definition else {
            object.insert(key, value);
            continue;
        };
        let name = definition["name"].as_str().unwrap_or(&key).to_string();
        let shown = if prefix.is_empty() { name.clone() } else { format!("{prefix}:{name}") };
        if value.is_null() || definition["mutability"] == "readOnly" {
            continue;
        }
        let value = checked_value(value, definition, &shown)?;
        object.insert(name, value);
    }
    Ok(())
}

fn checked_value(value: Value, definition: &Value, shown: &str) -> Result<Value, Problem> {
    if definition["multiValued"] == true {
        let Value::Array(items) = value else {
            return Err(Problem::new("invalidValue", format!("{shown}: expected an array (it is multi-valued)")));
        };
        let items = items.into_iter().map(|item| checked_single(item, definition, shown)).collect::<Result<_, _>>()?;
        return Ok(Value::Array(items));
    }
    checked_single(value, definition, shown)
}

fn checked_single(value: Value, definition: &Value, shown: &str) -> Result<Value, Problem> {
    let kind = definition["type"].as_str().unwrap_or("string");
    let wrong = |expected: &str, value: &Value| {
        Problem::new(
            "invalidValue",
            format!("{shown}: expected {expected}, found {}", crate::source::json::described(value)),
        )
    };
    match (kind, value) {
        ("complex", Value::Object(mut members)) => {
            let subs = definition["subAttributes"].as_array().map_or(&[][..], Vec::as_slice);
            checked_members(&mut members, subs, shown)?;
            Ok(Value::Object(members))
        }
        ("complex", other) => Err(wrong("an object", &other)),
        ("boolean", Value::Bool(b)) => Ok(Value::Bool(b)),
        ("boolean", other) => Err(wrong("true or false", &other)),
        ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Value::Number(n)),
        ("integer", other) => Err(wrong("an integer", &other)),
        ("decimal", Value::Number(n)) => Ok(Value::Number(n)),
        ("decimal", other) => Err(wrong("a number", &other)),
        ("dateTime", Value::String(text)) => match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(_) => Ok(Value::String(text)),
            Err(e) => Err(Problem::new(
                "invalidValue",
                format!("{shown}: expected an xsd:dateTime such as 2026-03-01T00:00:00Z, found {text:?}: {e}"),
            )),
        },
        (_, Value::String(text)) => Ok(Value::String(text)),
        (_, other) => Err(wrong("a string", &other)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn checked(mut user: Value) -> Result<Value, Problem> {
        check_user(user.as_object_mut().unwrap())?;
        Ok(user)
    }

    #[test]
    fn a_user_is_checked_against_the_schemas() {
        let user = checked(json!({
            "schemas": [USER_URN, ENTERPRISE_URN], "id": "spoofed", "password": "secret", "USERNAME": "alice",
            "groups": [{"value": "g"}], "title": null, "name": {"GivenName": "Alice"},
            ENTERPRISE_URN: {"employeeNumber": "E1", "manager": {"value": "M"}}
        }))
        .unwrap();
        assert_eq!(
            user,
            json!({
                "schemas": [USER_URN, ENTERPRISE_URN], "userName": "alice", "name": {"givenName": "Alice"},
                ENTERPRISE_URN: {"employeeNumber": "E1", "manager": {"value": "M"}}
            })
        );
    }

    #[test]
    fn what_the_schema_rejects_is_an_invalid_value() {
        let problem = |user: Value| checked(user).unwrap_err();
        assert_eq!(problem(json!({"schemas": [USER_URN]})).detail, "userName is required: expected a non-empty string");
        assert_eq!(problem(json!({"userName": "a"})).scim_type, "invalidSyntax");
        assert_eq!(
            problem(json!({"schemas": [USER_URN], "userName": "a", "active": "yes"})).detail,
            "active: expected true or false, found the text \"yes\""
        );
        assert_eq!(
            problem(json!({"schemas": [USER_URN], "userName": "a", "emails": {"value": "x"}})).detail,
            "emails: expected an array (it is multi-valued)"
        );
        assert_eq!(
            problem(json!({"schemas": [USER_URN], "userName": "a", ENTERPRISE_URN: {"employeeNumber": 7}})).detail,
            format!("{ENTERPRISE_URN}:employeeNumber: expected a string, found the number 7")
        );
        assert_eq!(
            problem(json!({"schemas": [USER_URN], "userName": "a", "urn:x:Other": {"a": 1}})).scim_type,
            "invalidSyntax"
        );
        let own = checked(
            json!({"schemas": [USER_URN, "urn:x:Hr"], "userName": "a", "urn:x:Hr": {"hireDate": "2026-03-01"}}),
        )
        .unwrap();
        assert_eq!(own["urn:x:Hr"], json!({"hireDate": "2026-03-01"}));
        assert_eq!(own["schemas"], json!([USER_URN, "urn:x:Hr"]));
    }
}
