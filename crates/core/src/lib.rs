//! roster's pure planning core. See `ARCHITECTURE.md`: this crate does no I/O.

pub mod attr;
pub mod config;
mod correlate;
pub mod dn;
pub mod effective;
pub mod engine;
pub mod explain;
pub mod expr;
pub mod lifecycle;
pub mod login;
mod parallel;
pub mod partial;
pub mod plan;
pub mod render;
pub mod settings;
pub mod source;
pub mod state;
