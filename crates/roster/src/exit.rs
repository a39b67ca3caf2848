//! Exit codes, documented in the README and `docs/operations.md`. Distinct so that schedulers and
//! scripts can tell what happened without parsing output.

/// Everything planned was applied (or there was nothing to do).
pub const SUCCESS: u8 = 0;
/// An error stopped the command (a source could not be read, a target could not be reached, ...).
pub const ERROR: u8 = 1;
/// Bad usage or an invalid configuration: nothing was read or changed.
pub const USAGE: u8 = 2;
/// A safety limit blocked the plan: nothing was applied.
pub const BLOCKED: u8 = 3;
/// Applied, but some operations failed or were skipped: see the summary; the next run retries them.
pub const PARTIAL: u8 = 4;
/// `roster audit verify` found the audit trail edited, cut or rebuilt: see its report.
pub const TAMPERED: u8 = 5;
