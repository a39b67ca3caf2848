//! SCIM PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove`, with or without a path, a path
//! with a value filter (`emails[type eq "work"].value`) or an extension's URN, applied to a User
//! as JSON. The result is validated like a pushed User before it is stored.

use scim_v2::filter::{AttrPath, PatchPath};
use serde_json::{Map, Value};

use super::path::{ENTERPRISE_URN, USER_URN, key_ci, val_matches};
use super::schema::Problem;

/// Applies one operation (`op` as sent: any case) to `resource`.
pub fn apply(
    resource: &mut Map<String, Value>,
    op: &str,
    path: Option<&str>,
    value: Option<Value>,
) -> Result<(), Problem> {
    let op = op.to_ascii_lowercase();
    if let Some(urn) = path.filter(|p| whole_extension(resource, p)) {
        return match (op.as_str(), value) {
            ("remove", _) => {
                let key = key_ci(resource, urn);
                resource.remove(&key);
                Ok(())
            }
            ("add" | "replace", Some(value)) => {
                merge(resource, urn, value, op == "replace");
                Ok(())
            }
            ("add" | "replace", None) => Err(Problem::new("invalidValue", format!("{op} needs a value"))),
            (other, _) => {
                Err(Problem::new("invalidSyntax", format!("expected op add, replace or remove, found {other:?}")))
            }
        };
    }
    let path = path
        .map(|p| p.parse::<PatchPath>().map_err(|e| Problem::new("invalidPath", format!("path {p:?}: {e}"))))
        .transpose()?;
    match (op.as_str(), path) {
        ("remove", None) => Err(Problem::new("noTarget", "remove needs a path")),
        ("remove", Some(path)) => remove(resource, &path),
        ("add" | "replace", path) => {
            let value = value.ok_or_else(|| Problem::new("invalidValue", format!("{op} needs a value")))?;
            let replace = op == "replace";
            match path {
                None => {
                    let Value::Object(members) = value else {
                        return Err(Problem::new("invalidValue", format!("{op} without a path needs an object value")));
                    };
                    for (name, value) in members {
                        // A URN-qualified attribute name (`urn:...:User:employeeNumber`) as a key.
                        match name.parse::<PatchPath>() {
                            Ok(path) if name.contains(':') && !whole_extension(resource, &name) => {
                                set(resource, &path, value, replace)?
                            }
                            _ => merge(resource, &name, value, replace),
                        }
                    }
                    Ok(())
                }
                Some(path) => set(resource, &path, value, replace),
            }
        }
        (other, _) => {
            Err(Problem::new("invalidSyntax", format!("expected op add, replace or remove, found {other:?}")))
        }
    }
}

/// Whether `name` is a whole schema extension (the enterprise one, or one the User lists in
/// `schemas`), which `scim_v2` would otherwise read as a URN and an attribute name.
fn whole_extension(resource: &Map<String, Value>, name: &str) -> bool {
    name.eq_ignore_ascii_case(ENTERPRISE_URN)
        || resource
            .get("schemas")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(name))))
}

/// Adds (merging objects, appending to arrays) or replaces the member `name` of `object`.
fn merge(object: &mut Map<String, Value>, name: &str, value: Value, replace: bool) {
    let key = key_ci(object, name);
    match (object.get_mut(&key), value) {
        (Some(Value::Object(existing)), Value::Object(members)) => {
            for (sub, value) in members {
                merge(existing, &sub, value, replace);
            }
        }
        (Some(Value::Array(existing)), Value::Array(items)) if !replace => {
            for item in items {
                if !existing.contains(&item) {
                    existing.push(item);
                }
            }
        }
        (_, value) => {
            object.insert(key, value);
        }
    }
}

/// The object a path's URN names, made when it is missing.
fn base_mut<'v>(resource: &'v mut Map<String, Value>, attr: &AttrPath) -> Result<&'v mut Map<String, Value>, Problem> {
    match attr.uri.as_deref() {
        None => Ok(resource),
        Some(uri) if uri.eq_ignore_ascii_case(USER_URN) => Ok(resource),
        Some(uri) => {
            let key = key_ci(resource, uri);
            resource
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .ok_or_else(|| Problem::new("invalidPath", format!("{uri} is not an object")))
        }
    }
}

fn set(resource: &mut Map<String, Value>, path: &PatchPath, value: Value, replace: bool) -> Result<(), Problem> {
    match path {
        PatchPath::Attr(attr) => {
            let base = base_mut(resource, attr)?;
            match attr.sub_attr.as_deref() {
                None => merge(base, &attr.name, value, replace),
                Some(sub) => {
                    let key = key_ci(base, &attr.name);
                    match base.entry(key).or_insert_with(|| Value::Object(Map::new())) {
                        Value::Object(parent) => merge(parent, sub, value, replace),
                        Value::Array(items) => {
                            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                                merge(item, sub, value.clone(), replace);
                            }
                        }
                        _ => return Err(Problem::new("invalidPath", format!("{} has no sub-attributes", attr.name))),
                    }
                }
            }
            Ok(())
        }
        PatchPath::Value(vp) => {
            let base = base_mut(resource, &vp.attr)?;
            let items = get_items(base, &vp.attr.name)?;
            let mut hit = false;
            for item in items.iter_mut().filter(|item| val_matches(&vp.filter, item)) {
                hit = true;
                match (vp.sub_attr.as_deref(), item.as_object_mut()) {
                    (Some(sub), Some(object)) => merge(object, sub, value.clone(), replace),
                    (None, Some(object)) if value.is_object() => {
                        for (name, v) in value.as_object().into_iter().flatten() {
                            merge(object, name, v.clone(), replace);
                        }
                    }
                    _ => *item = value.clone(),
                }
            }
            if !hit {
                return Err(Problem::new(
                    "noTarget",
                    format!("no value of {} matches the path's filter", vp.attr.name),
                ));
            }
            Ok(())
        }
    }
}

fn get_items<'v>(base: &'v mut Map<String, Value>, name: &str) -> Result<&'v mut Vec<Value>, Problem> {
    let key = key_ci(base, name);
    match base.get_mut(&key) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(Problem::new("noTarget", format!("{name} has no values to filter"))),
    }
}

fn remove(resource: &mut Map<String, Value>, path: &PatchPath) -> Result<(), Problem> {
    match path {
        PatchPath::Attr(attr) => {
            let base = base_mut(resource, attr)?;
            let key = key_ci(base, &attr.name);
            match attr.sub_attr.as_deref() {
                None => {
                    base.remove(&key);
                }
                Some(sub) => match base.get_mut(&key) {
                    Some(Value::Object(parent)) => {
                        let sub = key_ci(parent, sub);
                        parent.remove(&sub);
                    }
                    Some(Value::Array(items)) => {
                        for item in items.iter_mut().filter_map(Value::as_object_mut) {
                            let sub = key_ci(item, sub);
                            item.remove(&sub);
                        }
                    }
                    _ => {}
                },
            }
            Ok(())
        }
        PatchPath::Value(vp) => {
            let base = base_mut(resource, &vp.attr)?;
            let items = get_items(base, &vp.attr.name)?;
            let before = items.len();
            match vp.sub_attr.as_deref() {
                None => items.retain(|item| !val_matches(&vp.filter, item)),
                Some(sub) => {
                    for item in items.iter_mut().filter(|item| val_matches(&vp.filter, item)) {
                        if let Some(object) = item.as_object_mut() {
                            let sub = key_ci(object, sub);
                            object.remove(&sub);
                        }
                    }
                }
            }
            if vp.sub_attr.is_none() && items.len() == before {
                return Err(Problem::new(
                    "noTarget",
                    format!("no value of {} matches the path's filter", vp.attr.name),
                ));
            }
            if items.is_empty() {
                let key = key_ci(base, &vp.attr.name);
                base.remove(&key);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(ops: &[(&str, Option<&str>, Option<Value>)]) -> Result<Value, Problem> {
        let mut user = json!({
            "userName": "alice", "name": {"givenName": "Alice"},
            "emails": [{"value": "a@x.example", "type": "work"}, {"value": "a@home.example", "type": "home"}],
            ENTERPRISE_URN: {"department": "Sales"}
        });
        let object = user.as_object_mut().unwrap();
        for (op, path, value) in ops {
            apply(object, op, *path, value.clone())?;
        }
        Ok(user)
    }

    #[test]
    fn paths_reach_extensions_sub_attributes_and_filtered_values() {
        let user = patched(&[
            ("replace", Some(&format!("{ENTERPRISE_URN}:department")), Some(json!("Support"))),
            ("Add", Some("name.familyName"), Some(json!("Smith"))),
            ("replace", Some(r#"emails[type eq "work"].value"#), Some(json!("alice@x.example"))),
            ("remove", Some(r#"emails[type eq "home"]"#), None),
            ("add", None, Some(json!({"title": "Boss", ENTERPRISE_URN: {"costCenter": "42"}}))),
        ])
        .unwrap();
        assert_eq!(user[ENTERPRISE_URN], json!({"department": "Support", "costCenter": "42"}));
        assert_eq!(user["name"], json!({"givenName": "Alice", "familyName": "Smith"}));
        assert_eq!(user["emails"], json!([{"value": "alice@x.example", "type": "work"}]));
        assert_eq!(user["title"], json!("Boss"));
        let user = patched(&[("remove", Some(ENTERPRISE_URN), None)]).unwrap();
        assert_eq!(user.get(ENTERPRISE_URN), None);
        let user =
            patched(&[("remove", Some("name.givenName"), None), ("replace", None, Some(json!({"userName": "bob"})))])
                .unwrap();
        assert_eq!(user["name"], json!({}));
        assert_eq!(user["userName"], json!("bob"));
    }

    #[test]
    fn what_cannot_be_applied_says_why() {
        assert_eq!(patched(&[("remove", None, None)]).unwrap_err().scim_type, "noTarget");
        assert_eq!(patched(&[("remove", Some(r#"emails[type eq "fax"]"#), None)]).unwrap_err().scim_type, "noTarget");
        assert_eq!(
            patched(&[("replace", Some("emails[type eq"), Some(json!(1)))]).unwrap_err().scim_type,
            "invalidPath"
        );
        assert_eq!(patched(&[("move", Some("title"), Some(json!(1)))]).unwrap_err().scim_type, "invalidSyntax");
    }
}
