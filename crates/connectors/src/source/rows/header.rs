//! Where each configured column is in a row: found in a header row (CSV, XLSX), saying which are
//! missing (with a close match when one was probably renamed) or ambiguous; or, for sources whose
//! records name their fields (JSON), the configured columns themselves.

use std::collections::BTreeSet;

use roster_core::config::{LIFECYCLE_DATE_ATTRIBUTES, SourceConfig};

use crate::error::{DuplicateColumn, Error, MissingColumn};

/// Where each configured column is in a row.
#[derive(Debug)]
pub(crate) struct Layout {
    /// The header's column names, trimmed: a row's values come in this order.
    pub header: Vec<String>,
    pub positions: Positions,
    pub key_column: String,
    pub key_index: usize,
    pub attributes: Vec<MappedColumn>,
    /// The name `affiliation`, shared by the records that take the source's affiliation.
    pub affiliation: std::sync::Arc<str>,
}

/// How a source numbers the columns of a row, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Positions {
    /// Delimited text: field 1, 2, ...
    Fields,
    /// A spreadsheet: column A, B, ...; the header's first name is column A's, and blank header
    /// cells are gaps.
    Letters,
    /// Records whose fields are named, not numbered (JSON).
    Names,
}

#[derive(Debug)]
pub(crate) struct MappedColumn {
    /// Shared by every record read: each holds the name, not a copy of it.
    pub attribute: std::sync::Arc<str>,
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
    /// Finds the configured columns in a header row. The whole read fails when one is missing, or
    /// appears twice.
    pub(crate) fn resolve<'h>(
        config: &SourceConfig,
        header_names: impl IntoIterator<Item = &'h str>,
        positions: Positions,
        file: &str,
    ) -> Result<Self, Error> {
        let header: Vec<String> = header_names.into_iter().map(|name| name.trim().to_string()).collect();
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
                [only] if positions == Positions::Fields => {
                    LIKELY_DELIMITERS.into_iter().find(|&d| d != config.delimiter && only.contains(d))
                }
                _ => None,
            };
            let header = match positions {
                Positions::Letters => header.into_iter().filter(|name| !name.is_empty()).collect(),
                Positions::Fields | Positions::Names => header,
            };
            return Err(Error::MissingColumns { file: file.to_string(), missing, header, delimiter_hint });
        }
        if !duplicates.is_empty() {
            return Err(Error::DuplicateColumns { file: file.to_string(), duplicates });
        }

        Ok(Layout::from_indexes(config, header, positions, indexes))
    }

    /// For records whose fields are named: the row's values are the configured columns' (the key's
    /// first), each column once.
    pub(crate) fn named(config: &SourceConfig) -> Self {
        let mut header: Vec<String> = Vec::new();
        let indexes = std::iter::once(&config.key)
            .chain(config.columns.values())
            .map(|column| {
                let column = column.trim();
                header.iter().position(|name| name == column).unwrap_or_else(|| {
                    header.push(column.to_string());
                    header.len() - 1
                })
            })
            .collect();
        Layout::from_indexes(config, header, Positions::Names, indexes)
    }

    /// `indexes`: the key's position in `header`, then each configured column's, in the order of
    /// `config.columns`.
    fn from_indexes(config: &SourceConfig, header: Vec<String>, positions: Positions, indexes: Vec<usize>) -> Self {
        let mut indexes = indexes.into_iter();
        let key_index = indexes.next().unwrap_or_default();
        let attributes = config
            .columns
            .iter()
            .zip(indexes)
            .map(|((attribute, column), index)| MappedColumn {
                attribute: attribute.as_str().into(),
                column: column.trim().to_string(),
                index,
                is_date: LIFECYCLE_DATE_ATTRIBUTES.contains(&attribute.as_str())
                    || config.date_attributes.contains(attribute)
                    || config.effective_date.as_ref() == Some(attribute),
                required: attribute == "hire_date" || config.required.contains(attribute),
            })
            .collect();
        Layout {
            header,
            positions,
            key_column: config.key.trim().to_string(),
            key_index,
            attributes,
            affiliation: "affiliation".into(),
        }
    }

    /// How a message names the column at `index`: `field 3 ("Notes")`, `column C ("Notes")`,
    /// `column "Notes"`.
    pub(crate) fn describe(&self, index: usize) -> String {
        let name = self.header.get(index).map(|name| format!("{:?}", super::abbreviated(name)));
        match (self.positions, name) {
            (Positions::Fields, Some(name)) => format!("field {} ({name})", index + 1),
            (Positions::Fields, None) => format!("field {}", index + 1),
            (Positions::Letters, Some(name)) if !self.header[index].is_empty() => {
                format!("column {} ({name})", column_letters(index))
            }
            (Positions::Letters, _) => format!("column {}", column_letters(index)),
            (Positions::Names, Some(name)) => format!("column {name}"),
            (Positions::Names, None) => format!("column {}", index + 1),
        }
    }
}

/// A spreadsheet column's letters: 0 -> `A`, 25 -> `Z`, 26 -> `AA`.
fn column_letters(index: usize) -> String {
    let mut letters = Vec::new();
    let mut rest = index + 1;
    while rest > 0 {
        let digit = (rest - 1) % 26;
        letters.push(char::from(b'A' + digit as u8));
        rest = (rest - 1) / 26;
    }
    letters.iter().rev().collect()
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
    fn spreadsheet_columns_are_lettered_as_excel_shows_them() {
        let letters: Vec<String> =
            [0, 1, 25, 26, 27, 51, 52, 701, 702, 16383].into_iter().map(column_letters).collect();
        assert_eq!(letters, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA", "XFD"]);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(edit_distance(&chars("kitten"), &chars("sitting")), 3);
        assert_eq!(edit_distance(&chars(""), &chars("abc")), 3);
        assert_eq!(edit_distance(&chars("abc"), &chars("abc")), 0);
    }
}
