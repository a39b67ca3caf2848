//! The header row: finds every configured column in it, or says which are missing (with a close
//! match when one was probably renamed) or ambiguous.

use std::collections::BTreeSet;

use roster_core::config::{LIFECYCLE_DATE_ATTRIBUTES, SourceConfig};

use crate::error::{DuplicateColumn, Error, MissingColumn};

/// Where each configured column is in the header.
#[derive(Debug)]
pub(super) struct Layout {
    /// The header's column names, trimmed.
    pub header: Vec<String>,
    pub key_column: String,
    pub key_index: usize,
    pub attributes: Vec<MappedColumn>,
}

#[derive(Debug)]
pub(super) struct MappedColumn {
    pub attribute: String,
    pub column: String,
    pub index: usize,
    pub is_date: bool,
    pub required: bool,
}

/// Characters that delimit CSV files in the wild, for the hint when the header splits into one column.
const LIKELY_DELIMITERS: [char; 4] = [',', ';', '\t', '|'];
/// Longest column name compared for close matches (longer names are not column headers).
const MAX_COMPARED_NAME: usize = 128;

impl Layout {
    pub(super) fn resolve(config: &SourceConfig, header_fields: &csv::StringRecord, file: &str) -> Result<Self, Error> {
        let header: Vec<String> = header_fields.iter().map(|name| name.trim().to_string()).collect();
        let mut wanted = vec![("the key".to_string(), config.key.trim())];
        wanted.extend(config.columns.iter().map(|(attribute, column)| (attribute.clone(), column.trim())));
        let configured: BTreeSet<&str> = wanted.iter().map(|(_, column)| *column).collect();

        let mut missing = Vec::new();
        let mut duplicates: Vec<DuplicateColumn> = Vec::new();
        let mut indexes = Vec::with_capacity(wanted.len());
        for (used_for, column) in &wanted {
            let positions: Vec<usize> =
                header.iter().enumerate().filter(|(_, name)| name == column).map(|(i, _)| i).collect();
            match positions.as_slice() {
                [] => missing.push(MissingColumn {
                    column: column.to_string(),
                    used_for: used_for.clone(),
                    close_match: close_match(column, &header, &configured),
                }),
                [index] => indexes.push(*index),
                _ => {
                    if !duplicates.iter().any(|d| d.column == *column) {
                        duplicates.push(DuplicateColumn {
                            column: column.to_string(),
                            positions: positions.iter().map(|i| i + 1).collect(),
                        });
                    }
                }
            }
        }
        if !missing.is_empty() {
            let delimiter_hint = match header.as_slice() {
                [only] => LIKELY_DELIMITERS.into_iter().find(|&d| d != config.delimiter && only.contains(d)),
                _ => None,
            };
            return Err(Error::MissingColumns { file: file.to_string(), missing, header, delimiter_hint });
        }
        if !duplicates.is_empty() {
            return Err(Error::DuplicateColumns { file: file.to_string(), duplicates });
        }

        let mut indexes = indexes.into_iter();
        let key_index = indexes.next().unwrap_or_default();
        let attributes = config
            .columns
            .iter()
            .zip(indexes)
            .map(|((attribute, column), index)| MappedColumn {
                attribute: attribute.clone(),
                column: column.trim().to_string(),
                index,
                is_date: LIFECYCLE_DATE_ATTRIBUTES.contains(&attribute.as_str())
                    || config.date_attributes.contains(attribute),
                required: attribute == "hire_date" || config.required.contains(attribute),
            })
            .collect();
        Ok(Layout { header, key_column: config.key.trim().to_string(), key_index, attributes })
    }
}

/// The header column, not used by the configuration, whose name is closest to `wanted`, if any is
/// close: the same letters and digits ignoring case and punctuation, one name inside the other, or
/// a few typos apart.
fn close_match(wanted: &str, header: &[String], configured: &BTreeSet<&str>) -> Option<String> {
    let wanted_folded = fold(wanted)?;
    let typos_allowed = match wanted_folded.len() {
        0..=3 => 1,
        4..=8 => 2,
        n => n / 4,
    };
    header
        .iter()
        .filter(|name| !configured.contains(name.as_str()))
        .filter_map(|name| {
            let folded = fold(name)?;
            let score = if folded == wanted_folded {
                0
            } else if is_part_of(&folded, &wanted_folded) {
                1
            } else {
                let distance = edit_distance(&folded, &wanted_folded);
                if distance > typos_allowed {
                    return None;
                }
                1 + distance
            };
            Some((score, name))
        })
        .min_by_key(|(score, _)| *score)
        .map(|(_, name)| name.clone())
}

/// Lowercase letters and digits of a column name; `None` for names too long or without any.
fn fold(name: &str) -> Option<Vec<char>> {
    if name.len() > MAX_COMPARED_NAME {
        return None;
    }
    let folded: Vec<char> = name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    (!folded.is_empty()).then_some(folded)
}

/// Whether one name is the other with a little added (`Department` in `Department_Name`).
fn is_part_of(a: &[char], b: &[char]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.len() >= 3 && long.len() <= 2 * short.len() && long.windows(short.len()).any(|window| window == short)
}

/// Levenshtein distance.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suggest(wanted: &str, header: &[&str]) -> Option<String> {
        let header: Vec<String> = header.iter().map(ToString::to_string).collect();
        close_match(wanted, &header, &BTreeSet::from(["Employee_ID"]))
    }

    #[test]
    fn close_matches_ignore_case_and_punctuation_then_prefer_containment_then_few_typos() {
        assert_eq!(suggest("Hire_Date", &["Employee_ID", "Name", "HireDate"]).as_deref(), Some("HireDate"));
        assert_eq!(suggest("Department", &["Dept", "Department_Name"]).as_deref(), Some("Department_Name"));
        assert_eq!(suggest("Departmnet", &["Location", "Department"]).as_deref(), Some("Department"));
        assert_eq!(suggest("Manager_ID", &["Cost_Center", "Location"]), None);
        assert_eq!(suggest("Hire_Date", &["Employee_ID;Hire_Date;Office"]), None, "a whole header is no match");
        assert_eq!(suggest("Employee_ID", &["Employee_ID"]), None, "a configured column is never suggested");
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(edit_distance(&chars("kitten"), &chars("sitting")), 3);
        assert_eq!(edit_distance(&chars(""), &chars("abc")), 3);
        assert_eq!(edit_distance(&chars("abc"), &chars("abc")), 0);
    }
}
