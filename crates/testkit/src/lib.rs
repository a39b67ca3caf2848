//! Real servers for roster's tests and quickstart, each a private instance in its own folder on
//! free loopback ports (a Samba AD DC, whose ports are fixed, on a loopback address of its own),
//! started from the Debian packages that `scripts/install-test-deps.sh` installs (and a SCIM 2.0
//! server and an SMTP server from PyPI, which it installs into `.venv-test/`), and in-process
//! stand-ins for Entra ID (`entra`: Graph and the token endpoint; `entra_inbound`: API-driven
//! inbound provisioning), which cannot run here.
//!
//! Nothing here skips: when a server's programs are missing, starting it is an error that names the
//! install script, so a test that needs a server it cannot find fails.

pub mod entra;
pub mod entra_inbound;
mod instance;
mod ldap_tools;
mod ldif;
mod mariadb;
mod openldap;
mod postgres;
mod process;
mod samba;
mod scim;
mod smtp;
mod tls;

pub use entra::EntraFake;
pub use mariadb::MariaDb;
pub use openldap::{OpenLdap, OpenLdapOptions};
pub use postgres::Postgres;
pub use samba::{BindOutcome, SambaDc, SambaOptions};
pub use scim::ScimServer;
pub use smtp::SmtpServer;
