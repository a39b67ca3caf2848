//! roster's connectors: sources (systems of record) and targets (directories), one module each.

pub mod error;
pub mod http;
pub mod oauth;
pub mod source;
pub mod target;
mod tls;
