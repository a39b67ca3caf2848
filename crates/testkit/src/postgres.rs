//! A private PostgreSQL server (15, from Debian's `postgresql` package) in its own temporary
//! folder on a free loopback port, for the SQL source's tests.
//!
//! initdb refuses to run as root, so as root the instance folder is given to the `postgres` user
//! and initdb and the server run as that user (`runuser`); otherwise they run as whoever runs
//! this. The cluster trusts connections on its Unix socket (in the folder, which only its owner
//! and root can enter) and asks for a password over TCP.
//!
//! Layout of an instance folder: `data/` (the cluster, with `postmaster.pid`), `socket/` (the Unix
//! socket) and `postgres.log` (what the server printed).

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::instance::{self, InstanceDir, ServerKind, random_hex};
use crate::process::{
    Spawned, Startup, has_exited, is_alive, run, send_signal, spawn_logging_to, wait_for_answer, wait_until,
};

const KIND: ServerKind = ServerKind { name: "PostgreSQL", an_instance: "a PostgreSQL instance" };
/// Where Debian installs each major version's programs.
const VERSIONS_DIR: &str = "/usr/lib/postgresql";
/// The account the server runs as when this runs as root.
const SERVER_ACCOUNT: &str = "postgres";
/// The login role and database that [`Postgres::url`] names.
const USER: &str = "roster";
const DATABASE: &str = "roster";
/// The deepest Unix socket the server makes in the instance folder (port 65535 is the longest).
const SOCKET: &str = "socket/.s.PGSQL.65535";
const LOG_FILE: &str = "postgres.log";
/// Another process may take the port between the moment it was seen free and the server's bind.
const START_ATTEMPTS: u32 = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Throwaway data: durability costs time and buys nothing here.
const TEST_SETTINGS: [(&str, &str); 5] = [
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "20"),
    ("shared_buffers", "16MB"),
];

/// A running private PostgreSQL with a login role `roster` (password-protected over TCP) owning
/// the database `roster`. Dropping it stops the server and removes its folder.
pub struct Postgres {
    dir: InstanceDir,
    port: u16,
    password: String,
    programs: Programs,
    /// `runuser` (as root) or the server itself, while it runs.
    server: Option<Child>,
}

struct Programs {
    /// initdb, postgres and psql of one major version.
    bin_dir: PathBuf,
    /// As root: `runuser` and the account the server runs as.
    run_as: Option<(PathBuf, Account)>,
}

struct Account {
    uid: u32,
    gid: u32,
}

impl Programs {
    fn find(running_as_root: bool) -> Result<Programs> {
        let bin_dir = find_bin_dir()?;
        let run_as = if running_as_root {
            let runuser = crate::process::require_program("runuser", "util-linux")?;
            Some((runuser, server_account()?))
        } else {
            None
        };
        Ok(Programs { bin_dir, run_as })
    }

    /// A command that runs one of the server's programs as the account the server runs as.
    fn server_command(&self, program: &str) -> Command {
        let program = self.bin_dir.join(program);
        match &self.run_as {
            Some((runuser, _)) => {
                let mut command = Command::new(runuser);
                command.args(["-u", SERVER_ACCOUNT, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

impl Postgres {
    /// initdb's a new cluster in a temporary folder, starts it on a free port of 127.0.0.1 and
    /// creates the role and database; it answers at [`Postgres::url`] when this returns.
    pub fn start() -> Result<Postgres> {
        instance::build_in(None, &KIND, Self::build_and_launch)
    }

    fn build_and_launch(dir: InstanceDir) -> Result<Postgres> {
        let path = dir.path().to_owned();
        instance::check_socket_room(&path, SOCKET, &KIND)?;
        let running_as_root = fs::metadata(&path).context("could not read the instance folder")?.uid() == 0;
        let programs = Programs::find(running_as_root)?;
        let data = path.join("data");
        let socket_dir = path.join("socket");
        fs::create_dir(&socket_dir).with_context(|| format!("could not create {}", socket_dir.display()))?;
        if let Some((_, account)) = &programs.run_as {
            give_to(&path, account)?;
            give_to(&socket_dir, account)?;
        }

        let mut initdb = programs.server_command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["--username=postgres", "--auth-local=trust", "--auth-host=scram-sha-256"])
            .args(["--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"])
            .current_dir(&path);
        run(&mut initdb, None).context("initdb could not create the cluster")?;

        let mut instance = Postgres { dir, port: 0, password: random_hex()?, programs, server: None };
        for attempt in 1..=START_ATTEMPTS {
            instance.port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
            match instance.launch()? {
                Launch::Answering => break,
                Launch::PortTaken { log } if attempt == START_ATTEMPTS => {
                    bail!("PostgreSQL found its port taken {START_ATTEMPTS} times; last time it printed:\n{log}")
                }
                Launch::PortTaken { .. } => {}
            }
        }
        // The password goes in on standard input, never on a command line.
        instance
            .psql_as(
                "postgres",
                "postgres",
                &format!(
                    "CREATE ROLE {USER} LOGIN PASSWORD '{}';\nCREATE DATABASE {DATABASE} OWNER {USER};\n",
                    instance.password
                ),
            )
            .context("could not create the role and database")?;
        Ok(instance)
    }

    /// Starts the server in the foreground of a child process, so that signals to the test's
    /// process group reach it, and waits until its pid file says it accepts connections.
    fn launch(&mut self) -> Result<Launch> {
        let mut command = self.programs.server_command("postgres");
        command.arg("-D").arg(self.data_dir());
        let listen = [
            ("listen_addresses", "127.0.0.1".to_owned()),
            ("port", self.port.to_string()),
            ("unix_socket_directories", self.socket_dir().to_string_lossy().into_owned()),
        ];
        for (name, value) in listen.iter().map(|(name, value)| (*name, value.as_str())).chain(TEST_SETTINGS) {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        command.current_dir(self.dir()).stdin(Stdio::null());
        let Spawned { mut child, described, log } = spawn_logging_to(&mut command, &self.log_path())?;
        let pid_file = self.data_dir().join("postmaster.pid");
        let startup =
            wait_for_answer(&mut child, START_TIMEOUT, Duration::from_millis(20), || accepts_connections(&pid_file));
        self.server = Some(child);
        match startup? {
            Startup::Answering => Ok(Launch::Answering),
            Startup::Exited(status) => {
                self.server = None;
                let log = log.read();
                if log.contains("Address already in use") {
                    return Ok(Launch::PortTaken { log });
                }
                bail!("PostgreSQL exited ({status}) before it accepted connections; `{described}` printed:\n{log}")
            }
            Startup::TimedOut => {
                let _ = self.stop();
                bail!(
                    "PostgreSQL did not accept connections on port {} within {START_TIMEOUT:?}; `{described}` \
                     printed:\n{}",
                    self.port,
                    log.read()
                )
            }
        }
    }

    /// Stops the server (a fast shutdown, then SIGKILL after 10 s) and waits until it is gone.
    /// Stopping a stopped server does nothing.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.server.take() else { return Ok(()) };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        // As root the child is runuser, which waits for the server it started: signal the
        // server itself, named by its pid file.
        let postmaster = first_line_number(&self.data_dir().join("postmaster.pid")).filter(|pid| is_alive(*pid));
        let server_pid = postmaster.unwrap_or(child.id());
        send_signal(server_pid, "INT")?;
        if !wait_until(STOP_TIMEOUT, || has_exited(&mut child)) {
            send_signal(server_pid, "KILL")?;
            child.kill().with_context(|| format!("could not kill process {}", child.id()))?;
        }
        child.wait().context("could not wait for PostgreSQL to exit")?;
        Ok(())
    }

    /// `postgres://roster:PASSWORD@127.0.0.1:PORT/roster`
    pub fn url(&self) -> String {
        format!("postgres://{USER}:{}@127.0.0.1:{}/{DATABASE}", self.password, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `roster`: owns the database [`Postgres::database`], may log in over TCP with
    /// [`Postgres::password`].
    pub fn user(&self) -> &str {
        USER
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn database(&self) -> &str {
        DATABASE
    }

    /// Runs `sql` (any number of statements; the first error stops it) in the database as
    /// `roster`, over the Unix socket; returns what the statements printed, one row a line,
    /// columns separated by `|`.
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_as(USER, DATABASE, sql)
    }

    fn psql_as(&self, user: &str, database: &str, sql: &str) -> Result<String> {
        let mut command = Command::new(self.programs.bin_dir.join("psql"));
        command
            .args(["--no-psqlrc", "--quiet", "--no-align", "--tuples-only", "--set=ON_ERROR_STOP=1"])
            .arg("--host")
            .arg(self.socket_dir())
            .args(["--port", &self.port.to_string(), "--username", user, "--dbname", database, "--file=-"])
            .env_remove("PGPASSWORD")
            .env_remove("PGOPTIONS");
        run(&mut command, Some(sql))
    }

    /// The instance folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server printed.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join(LOG_FILE)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir().join("socket")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Nothing to report to from a destructor; the temporary folder goes either way.
        let _ = self.stop();
    }
}

enum Launch {
    Answering,
    PortTaken { log: String },
}

/// Whether the server's pid file says it accepts connections: its eighth line is the server's
/// status, `ready` once it does.
fn accepts_connections(pid_file: &Path) -> bool {
    fs::read_to_string(pid_file).is_ok_and(|text| text.lines().nth(7).is_some_and(|status| status.trim() == "ready"))
}

fn first_line_number(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.lines().next()?.trim().parse().ok()
}

/// The newest major version's program folder that holds initdb and postgres.
fn find_bin_dir() -> Result<PathBuf> {
    let missing = || {
        anyhow!(
            "PostgreSQL's server programs (initdb, postgres) are not in {VERSIONS_DIR}/*/bin: the Debian package \
             `postgresql` is missing; install what the tests need with `sudo scripts/install-test-deps.sh`"
        )
    };
    let versions = fs::read_dir(VERSIONS_DIR).map_err(|_| missing())?;
    versions
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse::<u32>().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin)| ["initdb", "postgres", "psql"].iter().all(|program| bin.join(program).is_file()))
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
        .ok_or_else(missing)
}

/// The `postgres` account from `/etc/passwd`, which the Debian package creates.
fn server_account() -> Result<Account> {
    let passwd = fs::read_to_string("/etc/passwd").context("could not read /etc/passwd")?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&SERVER_ACCOUNT))
        .and_then(|fields| Some(Account { uid: fields.get(2)?.parse().ok()?, gid: fields.get(3)?.parse().ok()? }))
        .ok_or_else(|| {
            anyhow!(
                "there is no `{SERVER_ACCOUNT}` user, which PostgreSQL runs as when the tests run as root: the \
                 Debian package `postgresql` is missing; install what the tests need with \
                 `sudo scripts/install-test-deps.sh`"
            )
        })
}

/// Gives `folder` to the account the server runs as, after checking that the account can reach
/// it: every folder above must let others pass.
fn give_to(folder: &Path, account: &Account) -> Result<()> {
    for ancestor in folder.ancestors().skip(1) {
        let metadata = fs::metadata(ancestor).with_context(|| format!("could not read {}", ancestor.display()))?;
        let passable = metadata.permissions().mode() & 0o001 != 0 || metadata.uid() == account.uid;
        if !passable {
            bail!(
                "PostgreSQL runs as the `{SERVER_ACCOUNT}` user, which cannot reach {}: {} (mode {:o}) does not let \
                 others pass; set TMPDIR to a folder it can reach, such as /tmp",
                folder.display(),
                ancestor.display(),
                metadata.permissions().mode() & 0o7777
            );
        }
    }
    std::os::unix::fs::chown(folder, Some(account.uid), Some(account.gid))
        .with_context(|| format!("could not give {} to the `{SERVER_ACCOUNT}` user", folder.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_of_the_pid_file_tells_when_the_server_accepts_connections() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pid_file = dir.path().join("postmaster.pid");
        assert!(!accepts_connections(&pid_file), "no pid file yet");
        let lines = "4242\n/data\n1700000000\n5432\n/socket\n127.0.0.1\n  1234   5678\n";
        fs::write(&pid_file, format!("{lines}starting\n"))?;
        assert!(!accepts_connections(&pid_file));
        fs::write(&pid_file, format!("{lines}ready   \n"))?;
        assert!(accepts_connections(&pid_file));
        assert_eq!(first_line_number(&pid_file), Some(4242));
        Ok(())
    }

    #[test]
    fn a_folder_others_cannot_pass_is_refused_with_a_way_out() -> Result<()> {
        let parent = tempfile::tempdir()?;
        fs::set_permissions(parent.path(), fs::Permissions::from_mode(0o700))?;
        let folder = parent.path().join("instance");
        fs::create_dir(&folder)?;
        let nobody = Account { uid: 65534, gid: 65534 };
        let refused = give_to(&folder, &nobody).unwrap_err().to_string();
        assert!(refused.contains("does not let others pass"), "{refused}");
        assert!(refused.contains("TMPDIR"), "{refused}");
        Ok(())
    }
}
