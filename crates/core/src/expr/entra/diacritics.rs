//! Entra's NormalizeDiacritics: exactly the characters of Microsoft's table, so that a
//! migrated mapping gives the names it gave in Entra (`ø` becomes `oe` there, where
//! roster's own `normalize_diacritics` gives `o`). Characters the table does not list stay
//! as they are.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The table of Microsoft's function reference, row by row: what is written, what it
/// becomes. Several entries are a letter followed by combining marks (`ā́`).
const TABLE: &[(&str, &str)] = &[
    ("ä, à, â, ã, å, á, ą, ă, ā, ā́, ā̀, ā̂, ā̃, ǟ, ā̈, ǡ, a̱, å̄", "a"),
    ("Ä, À, Â, Ã, Å, Á, Ą, Ă, Ā, Ā́, Ā̀, Ā̂, Ā̃, Ǟ, Ā̈, Ǡ, A̱, Å̄", "A"),
    ("æ, ǣ", "ae"),
    ("Æ, Ǣ", "AE"),
    ("ç, č, ć, c̄, c̱", "c"),
    ("Ç, Č, Ć, C̄, C̱", "C"),
    ("ď, d̄, ḏ", "d"),
    ("Ď, D̄, Ḏ", "D"),
    ("ë, è, é, ê, ę, ě, ė, ē, ḗ, ḕ, ē̂, ē̃, ê̄, e̱, ë̄, e̊̄", "e"),
    ("Ë, È, É, Ê, Ę, Ě, Ė, Ē, Ḗ, Ḕ, Ē̂, Ē̃, Ê̄, E̱, Ë̄, E̊̄", "E"),
    ("ğ, ḡ, g̱", "g"),
    ("Ğ, Ḡ, G̱", "G"),
    ("ï, î, ì, í, ı, ī, ī́, ī̀, ī̂, ī̃, i̱", "i"),
    ("Ï, Î, Ì, Í, İ, Ī, Ī́, Ī̀, Ī̂, Ī̃, I̱", "I"),
    ("ľ, ł, l̄, ḹ, ḻ", "l"),
    ("Ł, Ľ, L̄, Ḹ, Ḻ", "L"),
    ("ñ, ń, ň, n̄, ṉ", "n"),
    ("Ñ, Ń, Ň, N̄, Ṉ", "N"),
    ("ö, ò, ő, õ, ô, ó, ō, ṓ, ṑ, ō̂, ō̃, ȫ, ō̈, ǭ, ȭ, ȱ, o̱", "o"),
    ("Ö, Ò, Ő, Õ, Ô, Ó, Ō, Ṓ, Ṑ, Ō̂, Ō̃, Ȫ, Ō̈, Ǭ, Ȭ, Ȱ, O̱", "O"),
    ("ø, ø̄, œ̄", "oe"),
    ("Ø, Ø̄, Œ̄", "OE"),
    ("ř, r̄, ṟ, ṝ", "r"),
    ("Ř, R̄, Ṟ, Ṝ", "R"),
    ("ß", "ss"),
    ("š, ś, ș, ş, s̄, s̱", "s"),
    ("Š, Ś, Ș, Ş, S̄, S̱", "S"),
    ("ť, ț, t̄, ṯ", "t"),
    ("Ť, Ț, T̄, Ṯ", "T"),
    ("ü, ù, û, ú, ů, ű, ū, ū́, ū̀, ū̂, ū̃, u̇̄, ǖ, ṻ, ṳ̄, u̱", "u"),
    ("Ü, Ù, Û, Ú, Ů, Ű, Ū, Ū́, Ū̀, Ū̂, Ū̃, U̇̄, Ǖ, Ṻ, Ṳ̄, U̱", "U"),
    ("ÿ, ý, ȳ, ȳ́, ȳ̀, ȳ̃, y̱", "y"),
    ("Ÿ, Ý, Ȳ, Ȳ́, Ȳ̀, Ȳ̃, Y̱", "Y"),
    ("ź, ž, ż, z̄, ẕ", "z"),
    ("Ź, Ž, Ż, Z̄, Ẕ", "Z"),
];

/// The longest entry, in characters (a letter and two combining marks).
const LONGEST: usize = 3;

fn table() -> &'static HashMap<&'static str, &'static str> {
    static MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| TABLE.iter().flat_map(|(from, to)| from.split(", ").map(move |entry| (entry, *to))).collect())
}

/// Replaces every entry of the table, the longest first where entries overlap (`ā́`
/// before `ā`); `None` when nothing changes.
pub(super) fn normalize(text: &str) -> Option<String> {
    let map = table();
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        let marked = rest[first.len_utf8()..].starts_with(|c| ('\u{0300}'..='\u{036F}').contains(&c));
        if first.is_ascii() && !marked {
            out.push(first);
            rest = &rest[1..];
            continue;
        }
        let ends: Vec<usize> = rest.char_indices().skip(1).map(|(i, _)| i).chain([rest.len()]).take(LONGEST).collect();
        match ends.iter().rev().find_map(|&end| map.get(&rest[..end]).map(|to| (end, to))) {
            Some((end, to)) => {
                out.push_str(to);
                rest = &rest[end..];
                changed = true;
            }
            None => {
                out.push(first);
                rest = &rest[first.len_utf8()..];
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_one_letter_and_at_most_two_marks() {
        for entry in table().keys() {
            let count = entry.chars().count();
            assert!((1..=LONGEST).contains(&count), "{entry:?} has {count} characters");
            assert!(entry.chars().skip(1).all(|c| ('\u{0300}'..='\u{036F}').contains(&c)), "{entry:?}");
        }
        assert_eq!(table().len(), TABLE.iter().map(|(from, _)| from.split(", ").count()).sum::<usize>());
    }
}
