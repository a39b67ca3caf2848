//! roster's pure planning core. See `ARCHITECTURE.md`: this crate does no I/O.

pub mod config;
pub mod expr;
pub mod source;
