//! Sources: each reads a system of record into a [`roster_core::source::SourceRead`]. Every
//! source's rows go through the same rules (`rows`), so a problem reads the same from any of them.

pub mod csv;
pub mod json;
pub mod rest;
mod rows;
pub mod scim;
pub mod sql;
pub mod xlsx;
