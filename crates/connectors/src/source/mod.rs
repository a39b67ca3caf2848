//! Sources: each reads a system of record into a [`roster_core::source::SourceRead`].

pub mod csv;
