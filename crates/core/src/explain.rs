//! One person's evaluation, step by step, for `roster explain`: the records they were merged from,
//! where each person attribute's value came from, the lifecycle decision of each affiliation, and
//! each target attribute's value with the expression that made it. Pure, like the planner it
//! retraces: the same correlation, merge, lifecycle rules and mappings, for one person.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::engine::{PlanInput, person_trace_env};
use crate::expr::ExprValue;
use crate::lifecycle::{Affiliation, StateDecision, affiliation_state, person_state};
use crate::source::Location;
use crate::state::Hold;
use crate::{correlate, effective};

/// One record the person was merged from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRow {
    pub source: String,
    /// The record's key in its source.
    pub key: String,
    /// Where it was read in this run; none when the person is held on the record the store kept
    /// (their row is quarantined, or the source no longer lists them).
    pub location: Option<Location>,
    pub values: crate::source::Attrs,
}

/// A person attribute as expressions see it, and the source that supplied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonValue {
    pub name: String,
    pub value: String,
    pub source: String,
}

/// One affiliation's lifecycle decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffiliationTrace {
    pub kind: String,
    pub source: String,
    pub decision: StateDecision,
}

/// One target attribute's value, and the expression and sources it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedValue {
    pub attr: String,
    /// The configuration key of the expression (`target.NAME.attributes.ATTR`).
    pub config_key: String,
    pub expression: String,
    /// Empty with `error`.
    pub values: Vec<String>,
    /// Written only when the account is created.
    pub on_create_only: bool,
    /// Person attribute read by the expression -> the source that supplied it.
    pub sources: BTreeMap<String, String>,
    /// Why no value could be computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one target's rules make of the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetTrace {
    pub target: String,
    /// The DN the `dn` expression gives (before numbering or `disable.move_to`), or why none.
    pub dn: Result<String, String>,
    pub dn_expression: String,
    pub attributes: Vec<MappedValue>,
}

/// A person's evaluation, as the planner makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonTrace {
    pub key: String,
    pub rows: Vec<SourceRow>,
    pub attributes: Vec<PersonValue>,
    /// The person's state: the affiliation granting the most wins; the next transition is the
    /// earliest of all.
    pub state: StateDecision,
    pub affiliations: Vec<AffiliationTrace>,
    /// The hold in force on `as_of`.
    pub hold: Option<Hold>,
    pub targets: Vec<TargetTrace>,
}

/// Retraces the evaluation of the person `key` (their person key, or a record key of one of their
/// records) with `login` (the login the plan gave them). `None`: no source nor the store knows them.
pub fn trace_person(input: &PlanInput, key: &str, login: Option<&str>) -> Option<PersonTrace> {
    let settings = input.settings;
    let today: NaiveDate = input.as_of;
    let mut notices = Vec::new();
    let chosen: Vec<_> =
        input.reads.iter().map(|r| effective::choose(&settings.sources, r, today, &mut notices)).collect();
    let reads: Vec<&crate::source::SourceRead> = chosen.iter().map(|r| r.as_ref()).collect();
    let correlated = correlate::correlate(settings, &reads, input.snapshot);
    let key = correlated.person_of(key).to_string();
    let stored = input.snapshot.persons.get(&key);
    let fresh = correlated.persons.get(key.as_str());
    let mut rows = Vec::new();
    let mut records = crate::source::Records::new();
    for source in &settings.sources {
        let name = source.name.as_str();
        let (record_key, values, location) = if let Some((record_key, attrs)) = fresh.and_then(|m| m.get(name)) {
            let location = reads
                .iter()
                .filter(|r| r.source == name)
                .flat_map(|r| &r.records)
                .find(|r| r.key == *record_key)
                .map(|r| r.location.clone());
            (record_key.to_string(), std::sync::Arc::clone(attrs), location)
        } else if let Some(previous) = stored.and_then(|s| s.records.get(name)) {
            (correlate::stored_record_key(input.snapshot, &key, name).to_string(), previous.clone(), None)
        } else {
            continue;
        };
        records.insert(name.to_string(), values.clone());
        rows.push(SourceRow { source: name.to_string(), key: record_key, location, values: (*values).clone() });
    }
    if records.is_empty() {
        return None;
    }
    let left_on = stored.and_then(|s| s.left_on);
    let affiliations: Vec<Affiliation> =
        records.iter().map(|(source, attrs)| Affiliation::from_record(source, attrs)).collect();
    let state = person_state(&affiliations, today, &settings.lifecycle, left_on);
    let (texts, mut provenance) = correlate::merge(settings, &records);
    // `merge` keeps provenance only when there are several records; with one, every value is its.
    if let [only] = records.keys().collect::<Vec<_>>()[..] {
        provenance = texts.keys().map(|name| (name.clone(), only.clone())).collect();
    }
    let attributes = texts
        .iter()
        .map(|(name, value)| PersonValue {
            name: name.clone(),
            value: value.clone(),
            source: provenance.get(name).cloned().unwrap_or_default(),
        })
        .collect();
    let hold = stored.and_then(|s| s.hold.clone()).filter(|h| h.until.is_none_or(|u| today <= u));
    let (env, dn_env) = person_trace_env(settings, &key, stored, &records, login.unwrap_or_default(), today);
    let targets = settings
        .targets
        .iter()
        .map(|rules| {
            let dn = rules.dn.eval(&dn_env).and_then(ExprValue::into_text).map_err(|e| format!("dn: {e}"));
            let attributes = rules
                .mappings
                .iter()
                .map(|m| {
                    let (values, error) = match m.expr.eval(&env).and_then(ExprValue::into_texts) {
                        Ok(values) => (values, None),
                        Err(e) => (Vec::new(), Some(e.to_string())),
                    };
                    let sources = m
                        .expr
                        .variables()
                        .iter()
                        .filter_map(|v| provenance.get(v).map(|s| (v.clone(), s.clone())))
                        .collect();
                    MappedValue {
                        attr: m.attr.to_string(),
                        config_key: format!("target.{}.attributes.{}", rules.name(), m.attr),
                        expression: m.expr.source().to_string(),
                        values,
                        on_create_only: m.when == crate::config::MappingWhen::Create,
                        sources,
                        error,
                    }
                })
                .collect();
            TargetTrace {
                target: rules.name().to_string(),
                dn,
                dn_expression: rules.dn.source().to_string(),
                attributes,
            }
        })
        .collect();
    let affiliations = affiliations
        .iter()
        .map(|a| AffiliationTrace {
            kind: a.kind.clone(),
            source: a.source.clone(),
            decision: affiliation_state(a, today, &settings.lifecycle, left_on),
        })
        .collect();
    Some(PersonTrace { key, rows, attributes, state, affiliations, hold, targets })
}
