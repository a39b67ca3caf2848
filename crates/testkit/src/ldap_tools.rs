//! The OpenLDAP client programs (`ldapsearch`, `ldapmodify` from `ldap-utils`) as the testkit
//! runs them against its servers: trusting the instance's CA only, and as the server's admin with
//! the password in a file, so that it never shows in a command line or an error message.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::process::{require_program, run};

pub(crate) struct LdapTools {
    pub ldapsearch: PathBuf,
    pub ldapmodify: PathBuf,
}

impl LdapTools {
    pub(crate) fn find() -> Result<LdapTools> {
        Ok(LdapTools {
            ldapsearch: require_program("ldapsearch", "ldap-utils")?,
            ldapmodify: require_program("ldapmodify", "ldap-utils")?,
        })
    }
}

/// A command for one of the OpenLDAP client programs that trusts `ca_cert`, when given, and no
/// other CA.
pub(crate) fn client_command(program: impl AsRef<OsStr>, ca_cert: Option<&Path>) -> Command {
    let mut command = Command::new(program);
    if let Some(ca) = ca_cert {
        command.env("LDAPTLS_CACERT", ca).env("LDAPTLS_REQCERT", "demand");
    }
    command
}

/// A server's admin as the client programs bind: a simple bind to `url` as `dn`.
pub(crate) struct Admin<'a> {
    pub tools: &'a LdapTools,
    pub url: String,
    pub dn: &'a str,
    pub password_file: PathBuf,
    pub ca_cert: Option<PathBuf>,
    /// How long to wait for a connection (`-o nettimeout`); `None`: as long as the system does.
    pub net_timeout_secs: Option<u32>,
}

impl Admin<'_> {
    /// `program` bound as the admin; add the operation.
    pub(crate) fn command(&self, program: &Path) -> Command {
        self.bound(program, self.net_timeout_secs)
    }

    fn bound(&self, program: &Path, net_timeout_secs: Option<u32>) -> Command {
        let mut command = client_command(program, self.ca_cert.as_deref());
        command.arg("-x");
        if let Some(seconds) = net_timeout_secs {
            command.args(["-o", &format!("nettimeout={seconds}")]);
        }
        command.args(["-H", &self.url, "-D", self.dn]).arg("-y").arg(&self.password_file);
        command
    }

    /// Whether `program` (with `operation`, what it needs besides the bind) succeeds as the admin
    /// within seconds; prints nothing. For polling a server that is starting.
    pub(crate) fn answers(&self, program: &Path, operation: &[&str]) -> bool {
        let mut command = self.bound(program, Some(2));
        command.args(operation).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        command.status().is_ok_and(|status| status.success())
    }

    /// Adds the entries of `ldif` (`ldapmodify -a`).
    pub(crate) fn add(&self, ldif: &str) -> Result<()> {
        run(self.command(&self.tools.ldapmodify).arg("-a"), Some(ldif)).map(drop)
    }

    /// Applies `ldif` (changetype add, modify, modrdn, delete).
    pub(crate) fn modify(&self, ldif: &str) -> Result<()> {
        run(&mut self.command(&self.tools.ldapmodify), Some(ldif)).map(drop)
    }

    /// Searches the subtree under `base`; returns what ldapsearch printed: the entries as LDIF
    /// without line wrapping, and no comments but those it prints for references. `attrs` empty:
    /// all user attributes.
    pub(crate) fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<String> {
        let mut command = self.command(&self.tools.ldapsearch);
        command.args(["-LLL", "-o", "ldif-wrap=no", "-b", base, filter]).args(attrs);
        run(&mut command, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::describe;

    #[test]
    fn the_admin_binds_with_a_password_file_and_trusts_only_the_ca() {
        let tools = LdapTools { ldapsearch: "ldapsearch".into(), ldapmodify: "ldapmodify".into() };
        let admin = Admin {
            tools: &tools,
            url: "ldaps://127.0.0.1:636".to_owned(),
            dn: "cn=admin,dc=example,dc=org",
            password_file: "/i/admin.password".into(),
            ca_cert: Some("/i/tls/ca.crt".into()),
            net_timeout_secs: Some(10),
        };
        let command = admin.command(&tools.ldapsearch);
        assert_eq!(
            describe(&command),
            "ldapsearch -x -o nettimeout=10 -H ldaps://127.0.0.1:636 -D cn=admin,dc=example,dc=org -y /i/admin.password"
        );
        let env: Vec<_> = command.get_envs().collect();
        assert!(env.contains(&(OsStr::new("LDAPTLS_CACERT"), Some(OsStr::new("/i/tls/ca.crt")))), "{env:?}");
        assert!(env.contains(&(OsStr::new("LDAPTLS_REQCERT"), Some(OsStr::new("demand")))), "{env:?}");
        assert_eq!(client_command("ldapsearch", None).get_envs().count(), 0);
    }
}
