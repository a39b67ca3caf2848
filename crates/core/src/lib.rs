//! roster's pure planning core. See `ARCHITECTURE.md`: this crate does no I/O.

pub mod attr;
pub mod config;
pub mod dn;
pub mod expr;
pub mod lifecycle;
pub mod plan;
pub mod source;
pub mod state;
pub mod engine;
pub mod login;
pub mod settings;
pub mod render;
