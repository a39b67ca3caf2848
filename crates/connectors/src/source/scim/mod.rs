//! Users an HR system pushes to the daemon's SCIM 2.0 endpoint (`kind = "scim"`). The daemon
//! stores each pushed User (after [`schema::check_user`]); a run reads the stored Users of the
//! source as its records: `key` and every `columns` entry are SCIM attribute paths
//! (`externalId`, `name.givenName`, `emails[type eq "work"].value`,
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`), and the values they
//! reach go through the rules every source shares (`super::rows`), so a pushed User with a date
//! roster cannot read is quarantined as a CSV row would be. Of a multi-valued attribute a column
//! takes the `primary` value, else the first.
//!
//! The pure parts the endpoint uses too: paths and filters (`path.rs`), PATCH (`patch.rs`), the
//! schemas and the check of a User (`schema.rs`).

pub mod patch;
pub mod path;
pub mod schema;

use roster_core::config::SourceConfig;
use roster_core::source::{Location, SourceRead};
use scim_v2::filter::PatchPath;
use serde_json::{Map, Value};

use super::json::check_record;
use super::rows::{Layout, RowRules, Tally};
use crate::error::{Error, Result};

/// One stored User: its id and its resource.
pub struct PushedUser<'a> {
    pub id: &'a str,
    pub resource: &'a Value,
}

/// Reads the stored Users of a SCIM source, in the order given, as its records.
pub fn read_scim<'a>(config: &SourceConfig, users: impl IntoIterator<Item = PushedUser<'a>>) -> Result<SourceRead> {
    let rules = RowRules::new(config)?;
    let layout = Layout::named(config);
    let paths = layout
        .header
        .iter()
        .map(|column| {
            column.parse::<PatchPath>().map_err(|e| Error::ScimColumn {
                source_name: config.name.clone(),
                column: column.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut tally = Tally::default();
    for (index, user) in users.into_iter().enumerate() {
        tally.rows_seen += 1;
        let location = Location { file: format!("SCIM User {}", user.id).into(), line: 1, row: index as u64 + 1 };
        let record = match user.resource.as_object() {
            Some(object) => {
                let mut flat = Map::new();
                for (column, path) in layout.header.iter().zip(&paths) {
                    if let Some(value) = path::column_value(object, path) {
                        flat.insert(column.clone(), value.clone());
                    }
                }
                Value::Object(flat)
            }
            None => user.resource.clone(),
        };
        tally.push(check_record(&rules, &layout, &record, location));
    }
    Ok(tally.finish(config))
}

#[cfg(test)]
mod tests {
    use roster_core::source::FieldValue;
    use serde_json::json;

    use super::path::ENTERPRISE_URN;
    use super::*;

    fn config() -> SourceConfig {
        toml::from_str(&format!(
            r#"
            name = "push"
            kind = "scim"
            key = "{ENTERPRISE_URN}:employeeNumber"
            complete = true
            [scim]
            token_sha256 = "{}"
            [columns]
            given_name = "name.givenName"
            email = "emails.value"
            hire_date = "{ENTERPRISE_URN}:hireDate"
            "#,
            "0".repeat(64)
        ))
        .unwrap()
    }

    #[test]
    fn users_become_records_through_the_row_rules() {
        let good = json!({"userName": "a", "name": {"givenName": "Ann"}, "emails": [{"value": "a@x"}],
            ENTERPRISE_URN: {"employeeNumber": "0042", "hireDate": "2026-03-01"}});
        let bad = json!({"userName": "b", ENTERPRISE_URN: {"employeeNumber": "7", "hireDate": "01/03/2026"}});
        let read =
            read_scim(&config(), [PushedUser { id: "u1", resource: &good }, PushedUser { id: "u2", resource: &bad }])
                .unwrap();
        assert!(read.complete);
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.records[0].key, "0042");
        assert_eq!(read.records[0].attrs.get("email").map(|v| v.to_value()), Some(FieldValue::Text("a@x".into())));
        assert_eq!(read.quarantined.len(), 1);
        assert_eq!(read.quarantined[0].key.as_deref(), Some("7"));
        assert_eq!(&*read.quarantined[0].location.file, "SCIM User u2");
        assert!(read.quarantined[0].reason.contains("hire_date"), "{}", read.quarantined[0].reason);
    }
}
