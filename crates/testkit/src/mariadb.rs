//! A private MariaDB server (10.11, from Debian's `mariadb-server-core`) in its own temporary
//! folder on a free loopback port, for the SQL source's tests.
//!
//! The server's administrator is the account that runs this, authenticated by the Unix socket
//! (in the folder) and by nothing else; the `roster` user logs in over TCP with a password.
//!
//! Layout of an instance folder: `my.cnf` (every setting, read by the server, the installer and
//! the client), `data/`, `mariadbd.sock`, `mariadbd.pid` and `mariadbd.log` (what the server
//! printed).

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::instance::{self, InstanceDir, ServerKind, random_hex};
use crate::process::{
    Spawned, Startup, has_exited, require_program, run, send_signal, spawn_logging_to, wait_for_answer, wait_until,
};

const KIND: ServerKind = ServerKind { name: "MariaDB", an_instance: "a MariaDB instance" };
/// The user and database that [`MariaDb::url`] names.
const USER: &str = "roster";
const DATABASE: &str = "roster";
const SOCKET: &str = "mariadbd.sock";
const LOG_FILE: &str = "mariadbd.log";
/// Another process may take the port between the moment it was seen free and the server's bind.
const START_ATTEMPTS: u32 = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running private MariaDB with a user `roster` (password, over TCP) that may do anything in the
/// database `roster`. Dropping it stops the server and removes its folder.
pub struct MariaDb {
    dir: InstanceDir,
    port: u16,
    password: String,
    programs: Programs,
    /// The account that runs this: the server's administrator, over the socket.
    admin: String,
    running_as_root: bool,
    server: Option<Child>,
}

struct Programs {
    install_db: PathBuf,
    mariadbd: PathBuf,
    client: PathBuf,
}

impl Programs {
    fn find() -> Result<Programs> {
        Ok(Programs {
            install_db: require_program("mariadb-install-db", "mariadb-server-core")?,
            mariadbd: require_program("mariadbd", "mariadb-server-core")?,
            client: require_program("mariadb", "mariadb-client-core")?,
        })
    }
}

impl MariaDb {
    /// Installs the system tables in a temporary folder, starts the server on a free port of
    /// 127.0.0.1 and creates the user and database; it answers at [`MariaDb::url`] when this
    /// returns.
    pub fn start() -> Result<MariaDb> {
        instance::build_in(None, &KIND, Self::build_and_launch)
    }

    fn build_and_launch(dir: InstanceDir) -> Result<MariaDb> {
        let programs = Programs::find()?;
        let path = dir.path().to_owned();
        instance::check_socket_room(&path, SOCKET, &KIND)?;
        let running_as_root = fs::metadata(&path).context("could not read the instance folder")?.uid() == 0;
        let admin = run(Command::new("id").arg("-un"), None).context("could not tell who runs this")?.trim().to_owned();
        let mut instance =
            MariaDb { dir, port: 0, password: random_hex()?, programs, admin, running_as_root, server: None };
        fs::write(instance.defaults_file(), instance.my_cnf())
            .with_context(|| format!("could not write {}", instance.defaults_file().display()))?;

        let mut install = instance.command(&instance.programs.install_db);
        install
            .args(["--auth-root-authentication-method=socket", "--skip-test-db"])
            .arg(format!("--auth-root-socket-user={}", instance.admin));
        if running_as_root {
            install.arg("--user=root");
        }
        run(&mut install, None).context("mariadb-install-db could not create the system tables")?;

        for attempt in 1..=START_ATTEMPTS {
            instance.port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
            match instance.launch()? {
                Launch::Answering => break,
                Launch::PortTaken { log } if attempt == START_ATTEMPTS => {
                    bail!("MariaDB found its port taken {START_ATTEMPTS} times; last time it printed:\n{log}")
                }
                Launch::PortTaken { .. } => {}
            }
        }
        // The password goes in on standard input, never on a command line.
        instance
            .sql_in(
                None,
                &format!(
                    "CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4;\n\
                 CREATE USER '{USER}'@'%' IDENTIFIED BY '{}';\n\
                 GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{USER}'@'%';\n",
                    instance.password
                ),
            )
            .context("could not create the user and database")?;
        Ok(instance)
    }

    /// Every setting but the port, which changes when a start finds it taken.
    fn my_cnf(&self) -> String {
        let dir = self.dir();
        let in_dir = |name: &str| dir.join(name).display().to_string();
        format!(
            "[mysqld]\n\
             datadir = {data}\n\
             socket = {socket}\n\
             pid-file = {pid}\n\
             bind-address = 127.0.0.1\n\
             character-set-server = utf8mb4\n\
             skip-name-resolve\n\
             # Throwaway data: durability costs time and buys nothing here.\n\
             innodb_flush_log_at_trx_commit = 0\n\
             innodb_doublewrite = 0\n\
             innodb_buffer_pool_size = 32M\n\
             innodb_log_file_size = 8M\n\
             \n\
             [client]\n\
             socket = {socket}\n",
            data = in_dir("data"),
            socket = in_dir(SOCKET),
            pid = in_dir("mariadbd.pid"),
        )
    }

    /// A command for one of MariaDB's programs, reading this instance's settings only (the
    /// option file must come first).
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.arg(format!("--defaults-file={}", self.defaults_file().display())).current_dir(self.dir());
        command
    }

    /// Starts the server in the foreground of a child process, so that signals to the test's
    /// process group reach it, and waits until it answers on its socket.
    fn launch(&mut self) -> Result<Launch> {
        let mut command = self.command(&self.programs.mariadbd);
        command.arg(format!("--port={}", self.port)).stdin(Stdio::null());
        if self.running_as_root {
            command.arg("--user=root");
        }
        let Spawned { mut child, described, log } = spawn_logging_to(&mut command, &self.log_path())?;
        let startup = wait_for_answer(&mut child, START_TIMEOUT, Duration::from_millis(25), || {
            self.sql_in(None, "SELECT 1").is_ok()
        });
        self.server = Some(child);
        match startup? {
            Startup::Answering => Ok(Launch::Answering),
            Startup::Exited(status) => {
                self.server = None;
                let log = log.read();
                if log.contains("Address already in use") {
                    return Ok(Launch::PortTaken { log });
                }
                bail!("MariaDB exited ({status}) before it answered; `{described}` printed:\n{log}")
            }
            Startup::TimedOut => {
                let _ = self.stop();
                bail!(
                    "MariaDB did not answer on {} within {START_TIMEOUT:?}; `{described}` printed:\n{}",
                    self.dir().join(SOCKET).display(),
                    log.read()
                )
            }
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 15 s) and waits until it is gone. Stopping a
    /// stopped server does nothing.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.server.take() else { return Ok(()) };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        send_signal(child.id(), "TERM")?;
        if !wait_until(STOP_TIMEOUT, || has_exited(&mut child)) {
            child.kill().with_context(|| format!("could not kill mariadbd (pid {})", child.id()))?;
        }
        child.wait().context("could not wait for mariadbd to exit")?;
        Ok(())
    }

    /// `mysql://roster:PASSWORD@127.0.0.1:PORT/roster`
    pub fn url(&self) -> String {
        format!("mysql://{USER}:{}@127.0.0.1:{}/{DATABASE}", self.password, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `roster`: may do anything in [`MariaDb::database`], logs in over TCP with
    /// [`MariaDb::password`].
    pub fn user(&self) -> &str {
        USER
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn database(&self) -> &str {
        DATABASE
    }

    /// Runs `sql` (any number of statements; the first error stops it) in the database as the
    /// administrator, over the Unix socket; returns what the statements printed, one row a line,
    /// columns separated by tabs.
    pub fn sql(&self, sql: &str) -> Result<String> {
        self.sql_in(Some(DATABASE), sql)
    }

    fn sql_in(&self, database: Option<&str>, sql: &str) -> Result<String> {
        let mut command = self.command(&self.programs.client);
        command.args(["--batch", "--skip-column-names", "--user", &self.admin]);
        if let Some(database) = database {
            command.arg(format!("--database={database}"));
        }
        run(command.env_remove("MYSQL_PWD").env_remove("MYSQL_HOST"), Some(sql))
    }

    /// The instance folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server printed.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join(LOG_FILE)
    }

    fn defaults_file(&self) -> PathBuf {
        self.dir().join("my.cnf")
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // Nothing to report to from a destructor; the temporary folder goes either way.
        let _ = self.stop();
    }
}

enum Launch {
    Answering,
    PortTaken { log: String },
}
