//! SCIM attribute paths (RFC 7644 §3.10) as the planner's attribute names, and the way between
//! them and a resource's JSON: `userName`, `name.givenName`, `emails[type eq "work"].value`,
//! `active`, and extension attributes under their schema URN
//! (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`).

use roster_core::attr::AttrMap;
use serde_json::{Map, Value, json};

pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(crate) const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// One attribute path, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrPath {
    /// The extension schema URN the attribute belongs to; `None` for the core schema.
    pub schema: Option<String>,
    pub attr: String,
    /// `[type eq "work"]`: (sub-attribute, value) selecting elements of a multi-valued attribute.
    pub filter: Option<(String, String)>,
    pub sub: Option<String>,
}

impl AttrPath {
    pub(crate) fn parse(text: &str) -> Result<AttrPath, String> {
        let expected = "expected a SCIM attribute path such as userName, name.givenName, \
                        emails[type eq \"work\"].value or urn:...:enterprise:2.0:User:department";
        let (schema, rest) = if text.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            let colon = text.rfind(':').ok_or_else(|| format!("{text:?}: {expected}"))?;
            (Some(text[..colon].to_string()), &text[colon + 1..])
        } else {
            (None, text)
        };
        let (head, sub) = match rest.find('[') {
            Some(open) => {
                let close =
                    rest.find(']').filter(|close| *close > open).ok_or_else(|| format!("{text:?}: {expected}"))?;
                let after = &rest[close + 1..];
                let sub = match after.strip_prefix('.') {
                    Some(sub) => Some(sub.to_string()),
                    None if after.is_empty() => None,
                    None => return Err(format!("{text:?}: {expected}")),
                };
                (&rest[..close + 1], sub)
            }
            None => match rest.split_once('.') {
                Some((attr, sub)) => (attr, Some(sub.to_string())),
                None => (rest, None),
            },
        };
        let (attr, filter) = match head.split_once('[') {
            Some((attr, filter)) => {
                let filter = filter.trim_end_matches(']');
                let mut words = filter.splitn(3, ' ');
                let (Some(key), Some(op), Some(value)) = (words.next(), words.next(), words.next()) else {
                    return Err(format!("{text:?}: the filter {filter:?} is not `sub eq \"value\"`; {expected}"));
                };
                let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                match value {
                    Some(value) if op.eq_ignore_ascii_case("eq") => (attr, Some((key.to_string(), value.to_string()))),
                    _ => return Err(format!("{text:?}: the filter {filter:?} is not `sub eq \"value\"`; {expected}")),
                }
            }
            None => (head, None),
        };
        let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if !is_name(attr) || sub.as_deref().is_some_and(|sub| !is_name(sub)) {
            return Err(format!("{text:?}: {expected}"));
        }
        Ok(AttrPath { schema, attr: attr.to_string(), filter, sub })
    }

    /// The enterprise extension's `manager`: a reference to another user, not a string.
    pub(crate) fn is_manager(&self) -> bool {
        self.schema.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(ENTERPRISE_SCHEMA))
            && self.attr.eq_ignore_ascii_case("manager")
            && self.sub.is_none()
    }

    pub(crate) fn is_active(&self) -> bool {
        self.schema.is_none() && self.attr.eq_ignore_ascii_case("active") && self.sub.is_none()
    }

    /// The path of the attribute itself, without filter and sub-attribute, as PATCH names it.
    pub(crate) fn attr_path(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}:{}", self.attr),
            None => self.attr.clone(),
        }
    }

    /// The values at this path in `resource`, as strings (a manager as its SCIM id).
    pub(crate) fn read(&self, resource: &Value) -> Vec<String> {
        let container = match &self.schema {
            Some(schema) => get(resource, schema),
            None => Some(resource),
        };
        let Some(value) = container.and_then(|c| get(c, &self.attr)) else { return Vec::new() };
        if self.is_manager() {
            return get(value, "value").and_then(scalar).into_iter().collect();
        }
        let elements: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        elements
            .into_iter()
            .filter(|element| match &self.filter {
                Some((key, wanted)) => {
                    get(element, key).and_then(scalar).is_some_and(|v| v.eq_ignore_ascii_case(wanted))
                }
                None => true,
            })
            .filter_map(|element| match &self.sub {
                Some(sub) => get(element, sub).and_then(scalar),
                None => scalar(element),
            })
            .collect()
    }

    /// Sets this path in `resource` to `values` (a manager: `values` holds its SCIM id).
    pub(crate) fn write(&self, resource: &mut Map<String, Value>, values: &[String]) {
        let container = match &self.schema {
            Some(schema) => object_at(resource, schema),
            None => resource,
        };
        let value = self.json_value(values);
        match (&self.filter, &self.sub) {
            (Some((key, wanted)), sub) => {
                let list = container.entry(self.attr.clone()).or_insert_with(|| Value::Array(Vec::new()));
                if !list.is_array() {
                    *list = Value::Array(Vec::new());
                }
                let Value::Array(items) = list else { return };
                let position = items
                    .iter()
                    .position(|item| get(item, key).and_then(scalar).is_some_and(|v| v.eq_ignore_ascii_case(wanted)));
                let index = position.unwrap_or_else(|| {
                    items.push(json!({ key.clone(): wanted }));
                    items.len() - 1
                });
                if let (Some(Value::Object(item)), Some(sub)) = (items.get_mut(index), sub) {
                    item.insert(sub.clone(), value);
                }
            }
            (None, Some(sub)) => {
                object_at(container, &self.attr).insert(sub.clone(), value);
            }
            (None, None) => {
                container.insert(self.attr.clone(), value);
            }
        }
    }

    /// The JSON a value list becomes: one string, several strings, `active` as a boolean, a manager
    /// as `{"value": id}`.
    pub(crate) fn json_value(&self, values: &[String]) -> Value {
        if self.is_manager() {
            return values.first().map_or(Value::Null, |id| json!({ "value": id }));
        }
        if self.is_active() {
            return Value::Bool(values.first().is_some_and(|v| v.eq_ignore_ascii_case("true")));
        }
        match values {
            [one] => Value::String(one.clone()),
            many => Value::Array(many.iter().cloned().map(Value::String).collect()),
        }
    }

    /// The PATCH operation (RFC 7644 §3.5.2) that takes this path from `old` to `new`: remove when
    /// nothing is left, add the element when a filtered element did not exist, else replace.
    pub(crate) fn patch_op(&self, old: &[String], new: &[String]) -> Value {
        let full = self.to_string();
        if new.is_empty() {
            return json!({ "op": "remove", "path": full });
        }
        if self.filter.is_some() && old.is_empty() {
            let mut element = Map::new();
            let bare = AttrPath { schema: None, ..self.clone() };
            bare.write(&mut element, new);
            let value = element.remove(&self.attr).unwrap_or(Value::Null);
            return json!({ "op": "add", "path": self.attr_path(), "value": value });
        }
        json!({ "op": "replace", "path": full, "value": self.json_value(new) })
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.attr_path())?;
        if let Some((key, value)) = &self.filter {
            write!(f, "[{key} eq \"{value}\"]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A User resource (core schema and the extensions its paths name) from planned attributes
/// (attribute path -> values; `objectClass` ignored), `active` = `enabled`. `manager_id` turns the
/// manager's DN into what the service's `manager.value` takes. The error: a bad attribute path
/// (`Err(Err(text))`), or `manager_id`'s own error (`Err(Ok(e))`).
pub(crate) fn user_resource<E>(
    attributes: &AttrMap,
    enabled: bool,
    manager_id: impl Fn(&str) -> Result<String, E>,
) -> Result<Value, Result<E, String>> {
    let mut user = Map::new();
    let mut schemas = vec![Value::String(USER_SCHEMA.into())];
    for (name, values) in attributes {
        if name.is("objectClass") {
            continue;
        }
        let path = AttrPath::parse(name.as_str()).map_err(Err)?;
        let values = if path.is_manager() {
            values.iter().map(|manager| manager_id(manager)).collect::<Result<Vec<_>, _>>().map_err(Ok)?
        } else {
            values.clone()
        };
        if let Some(schema) = &path.schema
            && !schemas.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(schema)))
        {
            schemas.push(Value::String(schema.clone()));
        }
        path.write(&mut user, &values);
    }
    user.insert("active".into(), Value::Bool(enabled));
    user.insert("schemas".into(), Value::Array(schemas));
    Ok(Value::Object(user))
}

/// A member of a JSON object by name, compared without case as SCIM attribute names are.
pub(crate) fn get<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    let object = value.as_object()?;
    object.get(name).or_else(|| object.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// A string, number or boolean as text.
pub(crate) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn object_at<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let slot = map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(object) => object,
        _ => unreachable!("just made an object"),
    }
}

/// A string for a SCIM filter: `"..."` with quotes and backslashes escaped (RFC 7644 §3.4.2.2
/// takes JSON string syntax).
pub(crate) fn filter_string(value: &str) -> String {
    Value::String(value.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_with_schema_filter_and_sub_attribute() {
        let work = AttrPath::parse("emails[type eq \"work\"].value").unwrap();
        assert_eq!(work.attr, "emails");
        assert_eq!(work.filter, Some(("type".into(), "work".into())));
        assert_eq!(work.sub.as_deref(), Some("value"));
        assert_eq!(work.to_string(), "emails[type eq \"work\"].value");
        let dept = AttrPath::parse(&format!("{ENTERPRISE_SCHEMA}:department")).unwrap();
        assert_eq!(dept.schema.as_deref(), Some(ENTERPRISE_SCHEMA));
        assert_eq!(dept.attr, "department");
        assert!(AttrPath::parse(&format!("{ENTERPRISE_SCHEMA}:manager")).unwrap().is_manager());
        assert_eq!(AttrPath::parse("name.givenName").unwrap().sub.as_deref(), Some("givenName"));
        for bad in ["", "emails[type ne \"x\"].value", "emails[type eq work]", "a b", "name.", "emails[type eq \"w\"]x"]
        {
            assert!(AttrPath::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn written_values_read_back() {
        let mut user = Map::new();
        let paths = [
            ("userName", vec!["ada"]),
            ("name.givenName", vec!["Ada"]),
            ("emails[type eq \"work\"].value", vec!["ada@example.org"]),
            ("active", vec!["false"]),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", vec!["id-7"]),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", vec!["Ops"]),
        ];
        for (path, values) in &paths {
            let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            AttrPath::parse(path).unwrap().write(&mut user, &values);
        }
        let user = Value::Object(user);
        assert_eq!(user["active"], Value::Bool(false));
        assert_eq!(user[ENTERPRISE_SCHEMA]["manager"], json!({"value": "id-7"}));
        for (path, values) in &paths {
            assert_eq!(AttrPath::parse(path).unwrap().read(&user), *values, "{path}");
        }
    }

    #[test]
    fn patch_ops_are_minimal() {
        let work = AttrPath::parse("emails[type eq \"work\"].value").unwrap();
        assert_eq!(
            work.patch_op(&[], &["a@x".into()]),
            json!({"op": "add", "path": "emails", "value": [{"type": "work", "value": "a@x"}]})
        );
        assert_eq!(
            work.patch_op(&["a@x".into()], &["b@x".into()]),
            json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x"})
        );
        assert_eq!(
            work.patch_op(&["a@x".into()], &[]),
            json!({"op": "remove", "path": "emails[type eq \"work\"].value"})
        );
        assert_eq!(filter_string("a\"b"), "\"a\\\"b\"");
    }
}
