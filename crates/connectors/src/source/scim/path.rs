//! SCIM attribute paths and filters (RFC 7644 §3.4.2.2, §3.5.2) evaluated over a User as JSON.
//! Parsing is `scim_v2`'s; what a path reaches and whether a filter matches is here. Attribute
//! names compare case-insensitively, as SCIM's do; so do string values (every User attribute
//! roster filters on is `caseExact: false`, but `id` which is compared exactly).

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter, ValFilter};
use serde_json::{Map, Value};

/// The core User schema's URN: a path qualified with it reaches the resource itself.
pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension's URN, the key of its attributes in a User.
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The member of `object` named `name`, compared case-insensitively.
pub fn get_ci<'v>(object: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    object.get(name).or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The key `object` already uses for `name` (in any case), or `name`.
pub fn key_ci(object: &Map<String, Value>, name: &str) -> String {
    object.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned().unwrap_or_else(|| name.to_string())
}

/// The object an attribute path's URN names: the extension's object, or the resource.
pub fn base<'v>(resource: &'v Map<String, Value>, path: &AttrPath) -> Option<&'v Map<String, Value>> {
    match path.uri.as_deref() {
        None => Some(resource),
        Some(uri) if uri.eq_ignore_ascii_case(USER_URN) => Some(resource),
        Some(uri) => get_ci(resource, uri)?.as_object(),
    }
}

/// Every value `path` reaches in `object`: a multi-valued attribute gives each of its values (each
/// element's sub-attribute, or each element's `value` for a complex one named without one).
pub fn values<'v>(object: &'v Map<String, Value>, path: &AttrPath) -> Vec<&'v Value> {
    let Some(found) = base(object, path).and_then(|b| get_ci(b, &path.name)) else { return Vec::new() };
    let sub = |v: &'v Value, name: &str| v.as_object().and_then(|o| get_ci(o, name));
    match (found, path.sub_attr.as_deref()) {
        (Value::Array(items), Some(name)) => items.iter().filter_map(|item| sub(item, name)).collect(),
        (Value::Array(items), None) => {
            items.iter().filter_map(|item| if item.is_object() { sub(item, "value") } else { Some(item) }).collect()
        }
        (value, Some(name)) => sub(value, name).into_iter().collect(),
        (value, None) => vec![value],
    }
}

/// The one value a mapped column takes from a User: like [`values`], but of a multi-valued
/// attribute only the `primary` element's, else the first's.
pub fn column_value<'v>(object: &'v Map<String, Value>, path: &scim_v2::filter::PatchPath) -> Option<&'v Value> {
    use scim_v2::filter::PatchPath;
    let (attr, filter, sub_attr) = match path {
        PatchPath::Attr(attr) => (attr, None, attr.sub_attr.as_deref()),
        PatchPath::Value(vp) => (&vp.attr, Some(&vp.filter), vp.sub_attr.as_deref()),
    };
    let found = base(object, attr).and_then(|b| get_ci(b, &attr.name))?;
    let chosen = match found {
        Value::Array(items) => {
            let mut candidates = items.iter().filter(|item| filter.is_none_or(|f| val_matches(f, item)));
            let all: Vec<&Value> = candidates.by_ref().collect();
            all.iter()
                .find(|item| item.as_object().and_then(|o| get_ci(o, "primary")) == Some(&Value::Bool(true)))
                .or(all.first())
                .copied()?
        }
        value => value,
    };
    match sub_attr {
        Some(name) => chosen.as_object().and_then(|o| get_ci(o, name)),
        None => Some(chosen),
    }
}

/// Whether a User (with its `meta`) matches a filter.
pub fn matches(filter: &Filter, resource: &Value) -> bool {
    let Some(object) = resource.as_object() else { return false };
    match filter {
        Filter::Attr(exp) => attr_matches(exp, object),
        Filter::ValuePath(vp) => {
            let Some(found) = base(object, &vp.attr).and_then(|b| get_ci(b, &vp.attr.name)) else { return false };
            match found {
                Value::Array(items) => items.iter().any(|item| val_matches(&vp.filter, item)),
                item => val_matches(&vp.filter, item),
            }
        }
        Filter::Not(inner) => !matches(inner, resource),
        Filter::And(items) => items.as_slice().iter().all(|f| matches(f, resource)),
        Filter::Or(items) => items.as_slice().iter().any(|f| matches(f, resource)),
    }
}

/// Whether one value of a multi-valued attribute matches the filter in brackets.
pub fn val_matches(filter: &ValFilter, item: &Value) -> bool {
    match filter {
        ValFilter::Attr(exp) => match item {
            Value::Object(object) => attr_matches(exp, object),
            // A simple multi-valued attribute: its values are `value`.
            other => {
                let mut wrapped = Map::new();
                wrapped.insert("value".to_string(), other.clone());
                attr_matches(exp, &wrapped)
            }
        },
        ValFilter::Not(inner) => !val_matches(inner, item),
        ValFilter::And(items) => items.as_slice().iter().all(|f| val_matches(f, item)),
        ValFilter::Or(items) => items.as_slice().iter().any(|f| val_matches(f, item)),
    }
}

fn attr_matches(exp: &AttrExp, object: &Map<String, Value>) -> bool {
    match exp {
        AttrExp::Present(path) => values(object, path).into_iter().any(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        }),
        AttrExp::Comparison(path, op, expected) => {
            let exact = path.uri.is_none() && path.sub_attr.is_none() && path.name == "id";
            let found = values(object, path);
            if found.is_empty() {
                // `ne` holds for an attribute that has no value; nothing else does.
                return *op == CompareOp::Ne && !matches!(expected, CompValue::Null);
            }
            found.into_iter().any(|v| compare(v, op, expected, exact))
        }
    }
}

fn compare(value: &Value, op: &CompareOp, expected: &CompValue, exact: bool) -> bool {
    use std::cmp::Ordering;
    let fold = |s: &str| if exact { s.to_string() } else { s.to_lowercase() };
    let ordering: Option<Ordering> = match (value, expected) {
        (Value::String(a), CompValue::Str(b)) => {
            let (a, b) = (fold(a), fold(b));
            match op {
                CompareOp::Co => return a.contains(&b),
                CompareOp::Sw => return a.starts_with(&b),
                CompareOp::Ew => return a.ends_with(&b),
                _ => Some(a.cmp(&b)),
            }
        }
        (Value::Number(a), CompValue::Number(b)) => a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::Bool(a), CompValue::True) => Some(a.cmp(&true)),
        (Value::Bool(a), CompValue::False) => Some(a.cmp(&false)),
        (Value::Null, CompValue::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ordering) {
        (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
        (CompareOp::Ne, Some(o)) => o != Ordering::Equal,
        (CompareOp::Ne, None) => true,
        (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
        (CompareOp::Ge, Some(o)) => o != Ordering::Less,
        (CompareOp::Lt, Some(o)) => o == Ordering::Less,
        (CompareOp::Le, Some(o)) => o != Ordering::Greater,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "id": "Ab1", "userName": "Alice.Smith", "externalId": "00042", "active": true,
            "name": {"givenName": "Alice", "familyName": "Smith"},
            "emails": [{"value": "a@old.example", "type": "home"}, {"value": "alice@example.org", "type": "work", "primary": true}],
            ENTERPRISE_URN: {"employeeNumber": "E42", "department": "Sales", "manager": {"value": "M1"}}
        })
    }

    fn check(filter: &str) -> bool {
        matches(&filter.parse::<Filter>().unwrap(), &user())
    }

    #[test]
    fn filters_on_users() {
        assert!(check(r#"userName eq "alice.smith""#));
        assert!(!check(r#"userName eq "alice""#));
        assert!(check(r#"USERNAME sw "ali" and name.familyName co "MIT""#));
        assert!(check(r#"externalId eq "00042""#));
        assert!(check(&format!(r#"{ENTERPRISE_URN}:employeeNumber eq "E42""#)));
        assert!(check(&format!(r#"{ENTERPRISE_URN}:manager.value eq "M1""#)));
        assert!(check(r#"emails[type eq "work" and value ew "example.org"]"#));
        assert!(!check(r#"emails[type eq "work" and value ew "old.example"]"#));
        assert!(check(r#"emails co "old" or title pr"#));
        assert!(!check("title pr"));
        assert!(check("not (title pr)"));
        assert!(check("active eq true"));
        assert!(!check(r#"id eq "ab1""#));
        assert!(check(r#"title ne "x""#));
    }

    #[test]
    fn columns_take_the_primary_value() {
        let user = user();
        let object = user.as_object().unwrap();
        let value = |p: &str| column_value(object, &p.parse().unwrap()).cloned();
        assert_eq!(value("emails.value"), Some(json!("alice@example.org")));
        assert_eq!(value(r#"emails[type eq "home"].value"#), Some(json!("a@old.example")));
        assert_eq!(value("name.givenName"), Some(json!("Alice")));
        assert_eq!(value(&format!("{ENTERPRISE_URN}:department")), Some(json!("Sales")));
        assert_eq!(value("nickName"), None);
    }
}
