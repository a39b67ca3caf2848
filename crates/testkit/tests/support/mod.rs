//! What the OpenLDAP and the Samba tests do alike: prove that rustls accepts a server's
//! certificate, stop a server left running in a folder, and run the `roster-testkit` command.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// rustls, which roster connects with, rejects certificates that OpenSSL accepts (no
/// subjectAltName, for one). ldap3 reads its roots once per process from the system store, which
/// honours SSL_CERT_FILE, so the bind runs in a child process of this test binary.
pub fn assert_rustls_binds(ca_cert: &Path, ldaps_url: &str, dn: &str, password: &str) -> Result<()> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--exact", "support::bind_over_ldaps_with_ldap3", "--ignored", "--nocapture"])
        .env("SSL_CERT_FILE", ca_cert)
        .env("ROSTER_TESTKIT_LDAPS_URL", ldaps_url)
        .env("ROSTER_TESTKIT_BIND_DN", dn)
        .env("ROSTER_TESTKIT_PASSWORD", password)
        .output()?;
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("1 passed"), "the child ran no test:\n{printed}");
    Ok(())
}

#[test]
#[ignore = "run by assert_rustls_binds in a child process"]
fn bind_over_ldaps_with_ldap3() -> Result<()> {
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is set by the parent test"));
    let (url, dn, password) =
        (var("ROSTER_TESTKIT_LDAPS_URL")?, var("ROSTER_TESTKIT_BIND_DN")?, var("ROSTER_TESTKIT_PASSWORD")?);
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        let (conn, mut ldap) = ldap3::LdapConnAsync::new(&url).await?;
        ldap3::drive!(conn);
        ldap.simple_bind(&dn, &password).await?.success()?;
        ldap.unbind().await?;
        Ok(())
    })
}

/// Stops the server left running in a folder (the second field attaches to it and stops it),
/// even when the test fails half-way.
pub struct StopOnDrop<'a>(pub &'a Path, pub fn(&Path));

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        (self.1)(self.0);
    }
}

/// Runs `roster-testkit SERVER ARGS --dir DIR`; returns what it printed on standard output and
/// error, or an error when it failed.
pub fn run_cli(server: &str, dir: &Path, args: &[&str]) -> Result<(String, String)> {
    let output =
        Command::new(env!("CARGO_BIN_EXE_roster-testkit")).arg(server).args(args).arg("--dir").arg(dir).output()?;
    let (stdout, stderr) = (String::from_utf8(output.stdout)?, String::from_utf8(output.stderr)?);
    ensure!(output.status.success(), "roster-testkit {server} {args:?} failed: {stderr}");
    Ok((stdout, stderr))
}

/// The value of `NAME='value'` in the shell lines that `roster-testkit ... start` printed.
pub fn shell_value(lines: &str, name: &str) -> Result<String> {
    lines
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .map(|value| value.trim_matches('\'').to_owned())
        .with_context(|| format!("no {name} in:\n{lines}"))
}
