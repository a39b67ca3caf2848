//! A private SCIM 2.0 server for the SCIM target's tests: the python-scim project's `scim2-server`
//! (PyPI, in-memory, independent of roster) on a free loopback port, with a random bearer token.
//!
//! `scripts/install-test-deps.sh` installs it into the virtual environment `.venv-test/` at the
//! repository root; `ROSTER_SCIM2_SERVER` names another `scim2-server` program. The server keeps
//! everything in memory: each start is empty. Its log (what it printed) is `scim2-server.log` in
//! its temporary folder.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::instance::{self, InstanceDir, ServerKind, random_hex};
use crate::process::{Spawned, Startup, spawn_logging_to, wait_for_answer};

const KIND: ServerKind = ServerKind { name: "scim2-server", an_instance: "a SCIM server instance" };
const LOG_FILE: &str = "scim2-server.log";
/// Another process may take the port between the moment it was seen free and the server's bind.
const START_ATTEMPTS: u32 = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The SCIM base path the server serves (RFC 7644 §3.13 versioning).
const BASE_PATH: &str = "/v2";

/// A running `scim2-server`. Dropping it stops the server and removes its folder.
pub struct ScimServer {
    dir: InstanceDir,
    port: u16,
    token: String,
    server: Option<Child>,
}

/// The `scim2-server` program: `ROSTER_SCIM2_SERVER`, else the one the install script put in the
/// repository's `.venv-test/`.
fn program() -> Result<PathBuf> {
    crate::process::venv_program("scim2-server", "ROSTER_SCIM2_SERVER")
}

impl ScimServer {
    /// Starts an empty server on a free port of 127.0.0.1 that accepts only its own bearer token;
    /// it answers at [`ScimServer::base_url`] when this returns.
    pub fn start() -> Result<ScimServer> {
        let program = program()?;
        instance::build_in(None, &KIND, |dir| {
            let mut server = ScimServer { dir, port: 0, token: random_hex()?, server: None };
            let mut last_log = String::new();
            for _ in 0..START_ATTEMPTS {
                server.port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
                match server.launch(&program)? {
                    None => return Ok(server),
                    Some(log) => last_log = log,
                }
            }
            bail!("scim2-server found its port taken {START_ATTEMPTS} times; last time it printed:\n{last_log}")
        })
    }

    /// Starts the server; `Some(log)` when its port was taken meanwhile.
    fn launch(&mut self, program: &PathBuf) -> Result<Option<String>> {
        let mut command = Command::new(program);
        command
            .args(["--hostname", "127.0.0.1", "--port", &self.port.to_string()])
            // The token is on the command line of a private test server on loopback; it grants
            // access to throwaway data only.
            .args(["--bearer-token", &self.token])
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        let Spawned { mut child, described, log } = spawn_logging_to(&mut command, &self.dir.path().join(LOG_FILE))?;
        let (port, token) = (self.port, self.token.clone());
        let startup = wait_for_answer(&mut child, START_TIMEOUT, Duration::from_millis(50), || {
            get_status(port, &token, "/ServiceProviderConfig").is_ok_and(|status| status == 200)
        });
        self.server = Some(child);
        match startup? {
            Startup::Answering => Ok(None),
            Startup::Exited(status) => {
                self.server = None;
                let log = log.read();
                if log.contains("Address already in use") {
                    return Ok(Some(log));
                }
                bail!("scim2-server exited ({status}) before it answered; `{described}` printed:\n{log}")
            }
            Startup::TimedOut => {
                let _ = self.stop();
                bail!(
                    "scim2-server did not answer on port {} within {START_TIMEOUT:?}; it printed:\n{}",
                    self.port,
                    log.read()
                )
            }
        }
    }

    /// `http://127.0.0.1:PORT/v2`: the SCIM base URL (Users, Groups, Bulk, discovery).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}{BASE_PATH}", self.port)
    }

    /// The bearer token the server accepts (and the only one).
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The requests the server has answered so far, in order, as `METHOD /path` (`POST /v2/Bulk`),
    /// from its access log.
    pub fn requests(&self) -> Result<Vec<String>> {
        let log = std::fs::read_to_string(self.dir.path().join(LOG_FILE))?;
        // `127.0.0.1 - - [date] "POST /v2/Bulk HTTP/1.1" 200 237`
        Ok(log
            .lines()
            .filter_map(|line| line.split('"').nth(1))
            .filter_map(|request| request.rsplit_once(' ').map(|(request, _version)| request.to_string()))
            .collect())
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and waits until it is gone. Stopping a
    /// stopped server does nothing.
    pub fn stop(&mut self) -> Result<()> {
        crate::process::stop_child(self.server.take(), "scim2-server", STOP_TIMEOUT)
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The HTTP status of `GET {BASE_PATH}{path}` with the bearer token: enough to see the server
/// answer, without an HTTP client in the test kit.
fn get_status(port: u16, token: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {BASE_PATH}{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP status line"))
}
