//! A private SMTP server for the mail notifications' tests: `aiosmtpd` (PyPI, the asyncio SMTP
//! server of the aio-libs project, independent of roster) on a free loopback port, requiring
//! STARTTLS with a throwaway certificate, and keeping every message it receives in a Maildir.
//!
//! `scripts/install-test-deps.sh` installs it into `.venv-test/`; `ROSTER_TEST_PYTHON` names
//! another Python that has it. Its log is `aiosmtpd.log` in its temporary folder.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::instance::{self, InstanceDir, ServerKind};
use crate::process::{Spawned, Startup, spawn_logging_to, wait_for_answer};

const KIND: ServerKind = ServerKind { name: "aiosmtpd", an_instance: "an SMTP server instance" };
const LOG_FILE: &str = "aiosmtpd.log";
const MAILDIR: &str = "maildir";
const START_ATTEMPTS: u32 = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `aiosmtpd`. Dropping it stops the server and removes its folder.
pub struct SmtpServer {
    dir: InstanceDir,
    port: u16,
    server: Option<Child>,
}

impl SmtpServer {
    /// Starts a server on a free port of 127.0.0.1 that refuses mail until the client has
    /// switched to TLS (STARTTLS) with a certificate signed by [`SmtpServer::ca_cert`].
    pub fn start() -> Result<SmtpServer> {
        let python = crate::process::venv_program("python", "ROSTER_TEST_PYTHON")?;
        instance::build_in(None, &KIND, |dir| {
            crate::tls::make_certificates(dir.path(), Ipv4Addr::LOCALHOST, "localhost", 1)?;
            let mut server = SmtpServer { dir, port: 0, server: None };
            let mut last_log = String::new();
            for _ in 0..START_ATTEMPTS {
                server.port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
                match server.launch(&python)? {
                    None => return Ok(server),
                    Some(log) => last_log = log,
                }
            }
            bail!("aiosmtpd found its port taken {START_ATTEMPTS} times; last time it printed:\n{last_log}")
        })
    }

    fn launch(&mut self, python: &Path) -> Result<Option<String>> {
        let tls = crate::tls::files_in(self.dir.path());
        let mut command = Command::new(python);
        command
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{}", self.port)])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg("--tlscert")
            .arg(&tls.server_cert)
            .arg("--tlskey")
            .arg(&tls.server_key)
            .arg(self.dir.path().join(MAILDIR))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        let Spawned { mut child, described, log } = spawn_logging_to(&mut command, &self.dir.path().join(LOG_FILE))?;
        let port = self.port;
        let startup = wait_for_answer(&mut child, START_TIMEOUT, Duration::from_millis(50), || greets(port));
        self.server = Some(child);
        match startup? {
            Startup::Answering => Ok(None),
            Startup::Exited(status) => {
                self.server = None;
                let log = log.read();
                if log.contains("Address already in use") {
                    return Ok(Some(log));
                }
                bail!("aiosmtpd exited ({status}) before it answered; `{described}` printed:\n{log}")
            }
            Startup::TimedOut => {
                let _ = self.stop();
                bail!("aiosmtpd did not answer on port {port} within {START_TIMEOUT:?}; it printed:\n{}", log.read())
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the CA that signed the server's certificate (for `127.0.0.1` and
    /// `localhost`).
    pub fn ca_cert(&self) -> PathBuf {
        crate::tls::files_in(self.dir.path()).ca_cert
    }

    /// Every message received so far, as the server stored it (headers and body), oldest first.
    pub fn messages(&self) -> Result<Vec<String>> {
        let new = self.dir.path().join(MAILDIR).join("new");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&new).with_context(|| format!("listing {}", new.display()))? {
            let path = entry?.path();
            files.push((std::fs::metadata(&path)?.modified()?, path));
        }
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display())))
            .collect()
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and waits until it is gone.
    pub fn stop(&mut self) -> Result<()> {
        crate::process::stop_child(self.server.take(), "aiosmtpd", STOP_TIMEOUT)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Whether an SMTP server on `port` greets (`220 ...`).
fn greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    if stream.set_read_timeout(Some(Duration::from_secs(2))).is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("220")
}
