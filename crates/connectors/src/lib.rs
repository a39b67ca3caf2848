//! roster's connectors: sources (systems of record) and targets (directories), one module each.

pub mod error;
mod http;
pub mod source;
pub mod target;
mod tls;
