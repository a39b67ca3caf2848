//! CSV exports. Being written.
