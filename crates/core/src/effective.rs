//! Sources whose export holds several rows per key (`effective_date`: past, current and future
//! versions of a worker; `primary`: concurrent appointments): the row that counts on the day
//! planned is chosen here, since only the planner knows the day. Rows with one key that the rule
//! cannot tell apart stay quarantined, with the reason.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::config::SourceConfig;
use crate::plan::{Notice, NoticeKind};
use crate::source::{Field, QuarantinedRow, Record, SourceRead};

/// Values of a `primary` attribute that mark the primary row.
const PRIMARY_VALUES: [&str; 6] = ["y", "yes", "true", "1", "x", "primary"];

fn is_primary(record: &Record, attr: &str) -> bool {
    record.attrs.get(attr).is_some_and(|v| PRIMARY_VALUES.contains(&v.to_text().trim().to_lowercase().as_str()))
}

/// The read as the planner uses it: one record per key for sources with a rule, untouched (and
/// not copied) for the others.
pub fn choose<'a>(
    sources: &[SourceConfig],
    read: &'a SourceRead,
    today: NaiveDate,
    notices: &mut Vec<Notice>,
) -> Cow<'a, SourceRead> {
    let Some(config) = sources.iter().find(|s| s.name == read.source) else { return Cow::Borrowed(read) };
    if config.effective_date.is_none() && config.primary.is_none() {
        return Cow::Borrowed(read);
    }
    let mut by_key: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in &read.records {
        by_key.entry(r.key.as_str()).or_default().push(r);
    }
    let mut chosen = SourceRead {
        source: read.source.clone(),
        complete: read.complete,
        rows_seen: read.rows_seen,
        records: Vec::new(),
        quarantined: read.quarantined.clone(),
    };
    for (key, rows) in by_key {
        match pick(config, &rows, today) {
            Ok((record, upcoming)) => {
                if let Some(next) = upcoming {
                    notices.push(Notice {
                        kind: NoticeKind::Upcoming,
                        person: Some(key.to_string()),
                        target: None,
                        message: format!(
                            "source {}: a version effective {next} follows (row {}); row {} is in effect now",
                            read.source,
                            rows.iter().find(|r| effective(config, r) == Some(next)).map_or(0, |r| r.location.row),
                            record.location.row
                        ),
                    });
                }
                chosen.records.push(record.clone());
            }
            Err(reason) => {
                let listed: Vec<String> = rows.iter().map(|r| r.location.row.to_string()).collect();
                for r in &rows {
                    chosen.quarantined.push(QuarantinedRow {
                        source: r.source.to_string(),
                        key: Some(r.key.clone()),
                        location: r.location.clone(),
                        reason: format!("key {key} appears on rows {}: {reason}", listed.join(", ")),
                    });
                }
            }
        }
    }
    chosen.quarantined.sort_by_key(|q| q.location.row);
    Cow::Owned(chosen)
}

fn effective(config: &SourceConfig, record: &Record) -> Option<NaiveDate> {
    config.effective_date.as_ref().and_then(|a| record.attrs.get(a.as_str())).and_then(Field::as_date)
}

/// The row in effect (and the next version's date), or why none can be chosen.
fn pick<'r>(
    config: &SourceConfig,
    rows: &[&'r Record],
    today: NaiveDate,
) -> Result<(&'r Record, Option<NaiveDate>), String> {
    let mut candidates: Vec<&Record> = rows.to_vec();
    let mut upcoming = None;
    if let Some(attr) = &config.effective_date {
        if rows.len() > 1 && candidates.iter().any(|r| effective(config, r).is_none()) {
            return Err(format!("a row without {attr} cannot be placed among the versions"));
        }
        let in_effect: Vec<NaiveDate> =
            rows.iter().filter_map(|r| effective(config, r)).filter(|d| *d <= today).collect();
        // Nothing in effect yet (a future hire): the first version is the one to prepare for.
        let day = match in_effect.iter().max() {
            Some(latest) => Some(*latest),
            None => rows.iter().filter_map(|r| effective(config, r)).min(),
        };
        upcoming = rows.iter().filter_map(|r| effective(config, r)).filter(|d| Some(*d) > day && *d > today).min();
        if day.is_some() {
            candidates.retain(|r| effective(config, r) == day);
        }
    }
    if candidates.len() > 1
        && let Some(attr) = &config.primary
    {
        let primaries: Vec<&Record> = candidates.iter().copied().filter(|r| is_primary(r, attr)).collect();
        if primaries.is_empty() {
            return Err(format!("{} rows are in effect and none is marked primary in {attr}", candidates.len()));
        }
        candidates = primaries;
    }
    match candidates.as_slice() {
        [one] => Ok((one, upcoming)),
        many => Err(match (&config.effective_date, &config.primary) {
            (_, Some(attr)) => format!("{} rows in effect are marked primary in {attr}", many.len()),
            (Some(attr), None) => format!("{} rows have the same {attr}", many.len()),
            (None, None) => format!("{} rows", many.len()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FieldValue, Location};

    fn config(extra: &str) -> SourceConfig {
        let text = format!(
            "name = \"hr\"\nkind = \"csv\"\npath = \"hr.csv\"\nkey = \"ID\"\n{extra}\n[columns]\nhire_date = \"Hire\"\n"
        );
        toml::from_str(&text).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn row(n: u64, key: &str, attrs: &[(&str, &str)]) -> Record {
        let attrs: crate::source::Attrs = attrs
            .iter()
            .map(|(a, v)| {
                let value =
                    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_or(FieldValue::Text(v.to_string()), FieldValue::Date);
                ((*a).into(), value)
            })
            .collect();
        Record {
            source: "hr".into(),
            key: key.into(),
            attrs: attrs.into(),
            location: Location { file: "hr.csv".into(), line: n + 1, row: n },
        }
    }

    fn read(records: Vec<Record>) -> SourceRead {
        SourceRead {
            source: "hr".into(),
            complete: true,
            rows_seen: records.len() as u64,
            records,
            quarantined: vec![],
        }
    }

    fn rows_of(read: &SourceRead) -> Vec<(String, u64)> {
        read.records.iter().map(|r| (r.key.clone(), r.location.row)).collect()
    }

    #[test]
    fn the_version_in_effect_wins_and_a_future_one_is_noted() {
        let sources = [config("effective_date = \"effective\"")];
        let read = read(vec![
            row(1, "7", &[("effective", "2025-01-01"), ("title", "Engineer")]),
            row(2, "7", &[("effective", "2026-03-01"), ("title", "Senior Engineer")]),
            row(3, "7", &[("effective", "2026-09-01"), ("title", "Lead")]),
            row(4, "8", &[("effective", "2026-06-01"), ("title", "New hire")]),
        ]);
        let mut notices = Vec::new();
        let chosen = choose(&sources, &read, day("2026-04-15"), &mut notices);
        assert_eq!(rows_of(&chosen), [("7".to_string(), 2), ("8".to_string(), 4)]);
        assert!(chosen.quarantined.is_empty());
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].message.contains("effective 2026-09-01 follows (row 3)"), "{}", notices[0].message);

        // On the day the next version takes effect, it is the one.
        let chosen = choose(&sources, &read, day("2026-09-01"), &mut Vec::new());
        assert_eq!(rows_of(&chosen), [("7".to_string(), 3), ("8".to_string(), 4)]);
    }

    #[test]
    fn the_primary_appointment_wins_among_concurrent_ones() {
        let sources = [config("effective_date = \"effective\"\nprimary = \"primary\"")];
        let read = read(vec![
            row(1, "7", &[("effective", "2025-01-01"), ("primary", "N"), ("title", "Lecturer")]),
            row(2, "7", &[("effective", "2025-01-01"), ("primary", "Y"), ("title", "Researcher")]),
        ]);
        let chosen = choose(&sources, &read, day("2026-04-15"), &mut Vec::new());
        assert_eq!(rows_of(&chosen), [("7".to_string(), 2)]);
    }

    #[test]
    fn rows_the_rule_cannot_tell_apart_stay_quarantined_with_the_reason() {
        let sources = [config("effective_date = \"effective\"\nprimary = \"primary\"")];
        let read = read(vec![
            row(1, "7", &[("effective", "2025-01-01"), ("primary", "Y")]),
            row(2, "7", &[("effective", "2025-01-01"), ("primary", "yes")]),
            row(3, "9", &[("effective", "2025-01-01")]),
            row(4, "9", &[("effective", "2025-01-01")]),
            row(5, "10", &[("effective", "2025-01-01")]),
            row(6, "10", &[]),
        ]);
        let chosen = choose(&sources, &read, day("2026-04-15"), &mut Vec::new());
        assert!(chosen.records.is_empty());
        let reasons: Vec<(u64, &str)> =
            chosen.quarantined.iter().map(|q| (q.location.row, q.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                (1, "key 7 appears on rows 1, 2: 2 rows in effect are marked primary in primary"),
                (2, "key 7 appears on rows 1, 2: 2 rows in effect are marked primary in primary"),
                (3, "key 9 appears on rows 3, 4: 2 rows are in effect and none is marked primary in primary"),
                (4, "key 9 appears on rows 3, 4: 2 rows are in effect and none is marked primary in primary"),
                (5, "key 10 appears on rows 5, 6: a row without effective cannot be placed among the versions"),
                (6, "key 10 appears on rows 5, 6: a row without effective cannot be placed among the versions"),
            ]
        );
    }

    #[test]
    fn a_source_without_a_rule_is_not_copied() {
        let sources = [config("")];
        let read = read(vec![row(1, "7", &[])]);
        assert!(matches!(choose(&sources, &read, day("2026-04-15"), &mut Vec::new()), Cow::Borrowed(_)));
    }
}
