//! A private OpenLDAP (TLS on, started by the harness on free ports in a temporary folder) and a
//! roster folder (config, exports, store) for one test, and the real `roster` binary run in it.
//!
//! The store is SQLite (`roster.db` in the folder), or, with `ROSTER_TEST_STORE=postgres` (a pass
//! of `scripts/test.sh`), a private PostgreSQL per test, named in the config by `file:` references
//! so that every roster the test starts finds it.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use roster_testkit::{OpenLdap, OpenLdapOptions, Postgres};
use serde_json::Value;
use tempfile::TempDir;

use super::hr::Hr;

pub const BASE: &str = "dc=example,dc=org";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";
pub const LEAVERS: &str = "ou=leavers,ou=people,dc=example,dc=org";

const CONFIG_TEMPLATE: &str = include_str!("../fixtures/roster.toml");
const EXPORT: &str = "exports/hr.csv";

/// One test's server and roster folder. Dropping it stops slapd and removes both folders.
pub struct Lab {
    pub ldap: OpenLdap,
    /// The store's server, when the store is in PostgreSQL.
    pub postgres: Option<Postgres>,
    work: TempDir,
}

/// The PostgreSQL the store of a test lives in: with `ROSTER_TEST_STORE=postgres`, a private one
/// (one that cannot start fails the test); none (SQLite) otherwise.
fn selected_store() -> Option<Postgres> {
    match std::env::var("ROSTER_TEST_STORE").as_deref() {
        Ok("postgres") => Some(start_postgres()),
        Ok("sqlite") | Err(_) => None,
        Ok(other) => panic!("ROSTER_TEST_STORE: expected postgres or sqlite, found {other:?}"),
    }
}

fn start_postgres() -> Postgres {
    Postgres::start().unwrap_or_else(|e| {
        panic!("could not start PostgreSQL for the store (install it with scripts/install-test-deps.sh): {e:#}")
    })
}

impl Lab {
    /// Starts the server and writes `fixtures/roster.toml`, pointed at it over ldaps with its CA.
    /// Fails (never skips) when slapd is not installed.
    pub fn start() -> Lab {
        Lab::start_with(OpenLdapOptions::default())
    }

    /// [`Lab::start`] with these server options; TLS is always on.
    pub fn start_with(options: OpenLdapOptions) -> Lab {
        Lab::start_on(options, selected_store())
    }

    /// [`Lab::start`] with the store in a private PostgreSQL, whatever `ROSTER_TEST_STORE` says.
    pub fn start_on_postgres() -> Lab {
        Lab::start_on(OpenLdapOptions::default(), Some(start_postgres()))
    }

    fn start_on(options: OpenLdapOptions, postgres: Option<Postgres>) -> Lab {
        let ldap = OpenLdap::start(OpenLdapOptions { tls: true, ..options }).unwrap_or_else(|e| {
            panic!("could not start OpenLDAP (install it with scripts/install-test-deps.sh): {e:#}")
        });
        let work = tempfile::Builder::new().prefix("roster-it-").tempdir().expect("a temporary folder for roster");
        fs::create_dir(work.path().join("exports")).expect("creating the exports folder");
        let lab = Lab { ldap, postgres, work };
        let ca = lab.ldap.ca_cert_path().expect("the server was started with TLS");
        let url = lab.ldap.ldaps_url().expect("the server was started with TLS");
        let config = CONFIG_TEMPLATE.replace("@LDAPS_URL@", &url).replace("@CA_FILE@", &ca.to_string_lossy());
        lab.write_config(&lab.with_store(&config));
        lab
    }

    /// `config` with its store where this lab keeps it: unchanged for SQLite; for PostgreSQL, its
    /// `[store]` naming the server's URL (a file, read as a secret) and an `[audit]` key (a
    /// store without a file beside it needs one).
    pub fn with_store(&self, config: &str) -> String {
        let Some(postgres) = &self.postgres else { return config.to_string() };
        fs::write(self.dir().join("store-url"), format!("{}?sslmode=disable", postgres.url()))
            .expect("writing the store's URL");
        fs::write(self.dir().join("audit-key"), "a1".repeat(32)).expect("writing the audit key");
        let sqlite = "[store]\npath = \"roster.db\"\n";
        assert!(config.contains(sqlite), "the config has no [store] to point at PostgreSQL:\n{config}");
        format!(
            "{}\n[audit]\nkey = \"file:audit-key\"\n",
            config.replace(sqlite, "[store]\nurl = \"file:store-url\"\n")
        )
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("roster.toml")
    }

    pub fn config(&self) -> String {
        fs::read_to_string(self.config_path()).expect("reading roster.toml")
    }

    pub fn write_config(&self, text: &str) {
        fs::write(self.config_path(), text).expect("writing roster.toml");
    }

    /// Writes the day's HR export.
    pub fn export(&self, hr: &Hr) {
        self.export_text(&hr.to_csv());
    }

    pub fn export_text(&self, csv: &str) {
        fs::write(self.dir().join(EXPORT), csv).expect("writing the HR export");
    }

    /// Runs `roster --config roster.toml --as-of AS_OF ARGS...` as a scheduler would: the bind
    /// password only in the environment variable the config names.
    pub fn roster(&self, as_of: &str, args: &[&str]) -> Run {
        self.roster_with_password(Some(self.ldap.admin_password()), as_of, args)
    }

    /// [`Lab::roster`] with this bind password in ROSTER_LDAP_PASSWORD, or without the variable.
    pub fn roster_with_password(&self, password: Option<&str>, as_of: &str, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .current_dir(self.dir())
            .env_remove("ROSTER_CONFIG")
            .env_remove("ROSTER_LOG")
            .env_remove("ROSTER_LDAP_PASSWORD")
            .env("ROSTER_ACTOR", "integration-test")
            .arg("--config")
            .arg(self.config_path())
            .args(["--as-of", as_of])
            .args(args);
        if let Some(password) = password {
            command.env("ROSTER_LDAP_PASSWORD", password);
        }
        let output = command.output().expect("running the roster binary");
        Run {
            command: format!("roster --as-of {as_of} {}", args.join(" ")),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `roster run` for the day, which must succeed.
    pub fn run(&self, as_of: &str) -> Run {
        self.roster(as_of, &["run"]).expect_code(0)
    }

    /// `roster plan --format json` for the day, parsed.
    pub fn plan(&self, as_of: &str) -> Value {
        let run = self.roster(as_of, &["plan", "--format", "json"]).expect_code(0);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("the plan is not JSON ({e}):\n{run}"))
    }

    /// Running again with unchanged input must plan nothing: the property that a scheduler calling
    /// roster every hour relies on, checked against what the real server returns.
    pub fn assert_nothing_to_do(&self, as_of: &str) {
        let plan = self.plan(as_of);
        let operations = plan["operations"].as_array().expect("the plan has operations");
        if !operations.is_empty() {
            let text = self.roster(as_of, &["plan"]);
            panic!("as of {as_of}, running again plans {} operation(s):\n{}", operations.len(), text.stdout);
        }
    }
}

/// What one run of the binary did.
pub struct Run {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Fails the test, showing everything the binary printed, unless it exited with `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit code {code}:\n{self}");
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout\n{}--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}
