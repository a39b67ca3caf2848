//! What only a CSV row can get wrong: its number of fields, and a file that ends inside it. The
//! rest of a row's checks are every source's ([`crate::source::rows`]).

use crate::source::rows::Layout;

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RowEnd {
    /// A line break ends the row (every row but perhaps the last).
    LineBreak,
    /// The file ends right after the row, without a line break.
    EndOfFile,
    /// The file, `last_line` lines long, ends inside a quoted value that opened on `opened_line`.
    InsideQuotes { opened_line: u64, last_line: u64 },
}

/// Whether the file probably ends early: it ends inside a quoted value, or in the middle of a row
/// that lacks fields.
pub(super) fn looks_truncated(layout: &Layout, field_count: usize, end: RowEnd) -> bool {
    match end {
        RowEnd::InsideQuotes { .. } => true,
        RowEnd::EndOfFile => field_count < layout.header.len(),
        RowEnd::LineBreak => false,
    }
}

/// Why a row of `field_count` fields cannot be read as the header says, if it cannot.
pub(super) fn structural_problem(layout: &Layout, field_count: usize, end: RowEnd) -> Option<String> {
    if let RowEnd::InsideQuotes { opened_line, last_line } = end {
        return Some(format!(
            "a quoted value opened on line {opened_line} in {} is never closed: expected a closing quote, \
             found the end of the file (line {last_line}); the file may be truncated, or a quote is missing",
            layout.describe(field_count.saturating_sub(1))
        ));
    }
    if field_count != layout.header.len() {
        let mut reason = format!("expected {} fields as in the header, found {field_count}", layout.header.len());
        if looks_truncated(layout, field_count, end) {
            reason.push_str(": the file ends in the middle of this row, so it may be truncated");
        }
        return Some(reason);
    }
    None
}
