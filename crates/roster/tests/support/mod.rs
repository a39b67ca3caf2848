//! What the OpenLDAP integration tests share: a private server and a roster folder per test
//! ([`Lab`]), HR exports built in code ([`Hr`]), and the directory read back over LDAP
//! ([`Entry`]), so that assertions rest on what the server holds, not on what roster printed.

pub mod daemon;
mod directory;
mod hr;
mod lab;

pub use directory::{Entry, LOCKED};
pub use hr::{Hr, Worker};
pub use lab::{BASE, LEAVERS, Lab, PEOPLE, Run};
