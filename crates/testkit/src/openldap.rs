//! A private OpenLDAP server (slapd 2.5 from Debian) in its own folder on free loopback ports.
//!
//! Layout of an instance folder: `slapd.d/` (cn=config), `data/` (the mdb database), `tls/` (the
//! throwaway CA and server certificate), `ldapi` (the socket), `slapd.pid`, `slapd.log` (what
//! slapd printed), `admin.password`, `service.password` and `instance.state` (ports and suffix,
//! so that [`OpenLdap::attach`] can find a running instance again).

mod config;

use std::ffi::OsStr;
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::instance::{self, InstanceDir, InstanceState, ServerKind, random_hex, read_secret, write_secret};
use crate::ldap_tools::{Admin, LdapTools, client_command};
use crate::ldif::percent_encode;
use crate::process::{
    Spawned, Startup, command_line, has_exited, is_alive, read_pid_file, require_program, run, send_signal,
    spawn_logging_to, wait_for_answer, wait_until,
};
use crate::tls;
use config::{ServerConfig, config_dir, data_dir, pid_file};

/// Another process may take a port between the moment it was seen free and slapd's bind.
const START_ATTEMPTS: u32 = 5;
const KIND: ServerKind = ServerKind { name: "OpenLDAP", an_instance: "an OpenLDAP instance" };
const LOG_FILE: &str = "slapd.log";

/// How to start an [`OpenLdap`].
#[derive(Debug, Clone)]
pub struct OpenLdapOptions {
    /// Base DN of the one database. Must start with `dc=` (the top entry is then a dcObject and
    /// organization) or `o=`.
    pub suffix: String,
    /// Also listen for `ldaps://` on a second free port, with a server certificate for
    /// `127.0.0.1` and `localhost` signed by a throwaway CA ([`OpenLdap::ca_cert_path`]).
    pub tls: bool,
    /// Size limit for searches bound as the service account: a search without paging then stops
    /// after this many entries (sizeLimitExceeded), pages hold at most this many, and a paged search
    /// may go through everything, as with AD's MaxPageSize. `None`: no limit.
    pub size_limit_for_service: Option<u32>,
    /// Folder of the instance, created if missing; it must hold no instance yet (see
    /// [`OpenLdap::attach`]) and is kept afterwards. `None`: a fresh temporary folder, removed when
    /// the [`OpenLdap`] is dropped.
    pub dir: Option<PathBuf>,
    /// Port for `ldap://`. `None`: a free one.
    pub port: Option<u16>,
    /// Start slapd in its own process group, so that signals to the caller's group (Ctrl-C in a
    /// terminal, a test runner killing a test that timed out) do not reach it. For instances that
    /// outlive their starter ([`OpenLdap::into_detached`]); tests leave it off, so that a killed
    /// test takes its server with it.
    pub own_process_group: bool,
    /// slapd's debug level (`slapd -d`), printed to `slapd.log` in the instance folder. The default,
    /// `none`, prints only errors and start/stop; `stats` logs every operation.
    pub log_level: String,
    /// How long slapd may take to answer after it was started.
    pub start_timeout: Duration,
}

impl Default for OpenLdapOptions {
    fn default() -> Self {
        OpenLdapOptions {
            suffix: "dc=example,dc=org".to_owned(),
            tls: false,
            size_limit_for_service: None,
            dir: None,
            port: None,
            own_process_group: false,
            log_level: "none".to_owned(),
            start_timeout: Duration::from_secs(10),
        }
    }
}

/// A running private slapd with memberOf, refint (member and uniqueMember only) and ppolicy, the
/// entries `ou=people`, `ou=groups`, `ou=services`, `ou=policies` under the suffix, an admin (the
/// rootdn, `cn=admin,<suffix>`) and a read-only service account (`cn=roster,ou=services,<suffix>`).
///
/// Dropping it stops slapd and removes its temporary folder, unless it was detached.
pub struct OpenLdap {
    dir: InstanceDir,
    suffix: String,
    admin_dn: String,
    service_dn: String,
    admin_password: String,
    service_password: String,
    port: u16,
    tls_port: Option<u16>,
    tls: bool,
    programs: Programs,
    /// slapd, when this handle started it and it has not been stopped.
    slapd: Option<Child>,
    stop_on_drop: bool,
    own_process_group: bool,
    log_level: String,
    start_timeout: Duration,
}

struct Programs {
    slapd: PathBuf,
    tools: LdapTools,
    ldapwhoami: PathBuf,
}

impl Programs {
    fn find() -> Result<Programs> {
        Ok(Programs {
            slapd: require_program("slapd", "slapd")?,
            tools: LdapTools::find()?,
            ldapwhoami: require_program("ldapwhoami", "ldap-utils")?,
        })
    }
}

enum Launch {
    Answering,
    PortTaken { log: String },
}

impl OpenLdap {
    /// Builds a new instance (cn=config, base entries, certificates) and starts it; it answers as
    /// the admin when this returns.
    pub fn start(opts: OpenLdapOptions) -> Result<OpenLdap> {
        if let Some(port) = opts.port {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .with_context(|| format!("the port asked for, {port}, is not free"))?;
        }
        instance::build_in(opts.dir.as_deref(), &KIND, |dir| Self::build_and_launch(dir, &opts))
    }

    fn build_and_launch(dir: InstanceDir, opts: &OpenLdapOptions) -> Result<OpenLdap> {
        let programs = Programs::find()?;
        let slapadd = require_program("slapadd", "slapd")?;
        let slappasswd = require_program("slappasswd", "slapd")?;
        let (module_dir, schema_dir) = find_openldap_files()?;
        let path = dir.path().to_owned();
        instance::check_socket_room(&path, "ldapi", &KIND)?;

        let mut instance = OpenLdap {
            dir,
            admin_dn: format!("cn=admin,{}", opts.suffix),
            service_dn: format!("cn=roster,ou=services,{}", opts.suffix),
            suffix: opts.suffix.clone(),
            admin_password: random_hex()?,
            service_password: random_hex()?,
            port: 0,
            tls_port: None,
            tls: opts.tls,
            programs,
            slapd: None,
            stop_on_drop: true,
            own_process_group: opts.own_process_group,
            log_level: opts.log_level.clone(),
            start_timeout: opts.start_timeout,
        };
        write_secret(&instance.admin_password_file(), &instance.admin_password)?;
        write_secret(&instance.service_password_file(), &instance.service_password)?;
        let admin_password_hash = hash_password(&slappasswd, &instance.admin_password_file())?;
        let service_password_hash = hash_password(&slappasswd, &instance.service_password_file())?;
        // slapd runs as whoever runs this; the files just written are theirs.
        let owner = fs::metadata(instance.admin_password_file()).context("could not read back the password file")?;

        // A new CA for each instance, so serial 2 is never reused.
        let tls_files =
            if opts.tls { Some(tls::make_certificates(&path, Ipv4Addr::LOCALHOST, "localhost", 2)?) } else { None };
        let server_config = ServerConfig {
            dir: &path,
            module_dir: &module_dir,
            schema_dir: &schema_dir,
            suffix: &instance.suffix,
            admin_dn: &instance.admin_dn,
            admin_password_hash: &admin_password_hash,
            service_dn: &instance.service_dn,
            size_limit_for_service: opts.size_limit_for_service,
            uid: owner.uid(),
            gid: owner.gid(),
            tls: tls_files,
        };
        let config_ldif = config::cn_config(&server_config);
        let base_ldif = config::base_entries(&instance.suffix, &instance.service_dn, &service_password_hash)?;
        for folder in [config_dir(&path), data_dir(&path)] {
            fs::create_dir_all(&folder).with_context(|| format!("could not create {}", folder.display()))?;
        }
        slapadd_file(&slapadd, &path, "0", "config.ldif", &config_ldif).context("could not load cn=config")?;
        slapadd_file(&slapadd, &path, "1", "base.ldif", &base_ldif).context("could not load the base entries")?;

        for attempt in 1..=START_ATTEMPTS {
            instance.choose_ports(opts.port)?;
            instance.write_state()?;
            match instance.launch()? {
                Launch::Answering => return Ok(instance),
                Launch::PortTaken { log } if attempt == START_ATTEMPTS => {
                    bail!("slapd found its ports taken {START_ATTEMPTS} times; last time it printed:\n{log}")
                }
                Launch::PortTaken { .. } => {}
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Whether `dir` holds an instance that [`OpenLdap::attach`] can use.
    pub fn exists_in(dir: &Path) -> bool {
        instance::exists_in(dir)
    }

    /// A handle on the instance that [`OpenLdap::start`] built in `dir` before, running or not (see
    /// [`OpenLdap::is_running`]). The handle is detached: dropping it leaves slapd as it is;
    /// [`OpenLdap::stop`] and [`OpenLdap::start_again`] work on it.
    pub fn attach(dir: &Path) -> Result<OpenLdap> {
        let (dir, state) = InstanceState::read(dir, &KIND)?;
        let suffix = state.value("suffix")?.to_owned();
        let tls_port = match state.value("tls_port") {
            Ok(_) => Some(state.parse("tls_port", "a port")?),
            Err(_) => None,
        };
        Ok(OpenLdap {
            admin_dn: format!("cn=admin,{suffix}"),
            service_dn: format!("cn=roster,ou=services,{suffix}"),
            admin_password: read_secret(&dir.join("admin.password"))?,
            service_password: read_secret(&dir.join("service.password"))?,
            port: state.parse("port", "a port")?,
            tls_port,
            tls: tls_port.is_some(),
            suffix,
            programs: Programs::find()?,
            slapd: None,
            stop_on_drop: false,
            own_process_group: true,
            log_level: OpenLdapOptions::default().log_level,
            start_timeout: OpenLdapOptions::default().start_timeout,
            dir: InstanceDir::Kept(dir),
        })
    }

    /// Leaves slapd running, and its folder in place, when this handle is dropped: for a server
    /// that outlives the program that started it. Stop it later with `attach` and `stop`.
    pub fn into_detached(mut self) -> OpenLdap {
        self.stop_on_drop = false;
        self.dir.keep();
        // Dropping the Child handle neither kills nor waits for slapd.
        self.slapd = None;
        self
    }

    /// Stops slapd (SIGTERM, then SIGKILL after 10 s) and waits until it is gone. Ports, data
    /// and folder stay, for [`OpenLdap::start_again`]. Stopping a stopped instance does nothing.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.slapd.take() {
            let pid = child.id();
            if child.try_wait()?.is_none() {
                send_signal(pid, "TERM")?;
                let exited = wait_until(Duration::from_secs(10), || has_exited(&mut child));
                if !exited {
                    child.kill().with_context(|| format!("could not kill slapd (pid {pid})"))?;
                }
                child.wait().with_context(|| format!("could not wait for slapd (pid {pid}) to exit"))?;
            }
            return Ok(());
        }
        let Some(pid) = self.running_pid() else { return Ok(()) };
        send_signal(pid, "TERM")?;
        if !wait_until(Duration::from_secs(10), || !is_alive(pid)) {
            send_signal(pid, "KILL")?;
            if !wait_until(Duration::from_secs(5), || !is_alive(pid)) {
                bail!("slapd (pid {pid}) is still running after SIGKILL");
            }
        }
        Ok(())
    }

    /// Starts the stopped instance again on the same ports with the same data, as after an
    /// outage. Fails if something else took one of its ports meanwhile.
    pub fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("slapd is already running in {}", self.dir().display());
        }
        match self.launch()? {
            Launch::Answering => Ok(()),
            Launch::PortTaken { log } => {
                bail!(
                    "could not start slapd again: one of its ports ({}) was taken meanwhile:\n{log}",
                    self.ports_text()
                )
            }
        }
    }

    /// Whether slapd is running for this instance: started by this handle and not exited, or
    /// named by the instance's pid file and still alive.
    pub fn is_running(&mut self) -> bool {
        if let Some(child) = &mut self.slapd {
            return !has_exited(child);
        }
        self.running_pid().is_some()
    }

    /// The process id of this instance's slapd, from its pid file, when that process is alive
    /// and is slapd serving this folder (a stale pid file may name an unrelated process).
    pub fn running_pid(&self) -> Option<u32> {
        let pid = read_pid_file(&pid_file(self.dir()))?;
        let ours = command_line(pid)
            .is_some_and(|line| line.contains("slapd") && line.contains(&*config_dir(self.dir()).to_string_lossy()));
        (ours && is_alive(pid)).then_some(pid)
    }

    /// `ldap://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT` when started with TLS.
    pub fn ldaps_url(&self) -> Option<String> {
        self.tls_port.map(|port| format!("ldaps://127.0.0.1:{port}"))
    }

    /// The throwaway CA that signed the server certificate, when started with TLS.
    pub fn ca_cert_path(&self) -> Option<PathBuf> {
        self.tls.then(|| tls::files_in(self.dir()).ca_cert)
    }

    /// The `ldapi://` URL of the instance's socket; connecting there with SASL EXTERNAL as the
    /// user slapd runs as manages cn=config (see [`OpenLdap::modify_config`]).
    pub fn ldapi_url(&self) -> String {
        format!("ldapi://{}", percent_encode(&self.dir().join("ldapi").to_string_lossy()))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    /// The rootdn, `cn=admin,<suffix>`: may do anything, no limits.
    pub fn admin_dn(&self) -> &str {
        &self.admin_dn
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// `cn=roster,ou=services,<suffix>`: reads everything, writes nothing, and is held to
    /// [`OpenLdapOptions::size_limit_for_service`].
    pub fn service_dn(&self) -> &str {
        &self.service_dn
    }

    pub fn service_password(&self) -> &str {
        &self.service_password
    }

    /// The instance folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The database's folder (the mdb files): copied while slapd is stopped, it restores the
    /// directory as it was.
    pub fn data_dir(&self) -> PathBuf {
        data_dir(self.dir())
    }

    /// What slapd printed (errors, start and stop; every operation with log level `stats`).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join(LOG_FILE)
    }

    /// A command for one of the OpenLDAP client programs (`ldapsearch`, `ldapmodify`, ...), with
    /// the environment set to trust this instance's CA; add the arguments.
    pub fn ldap_command(&self, program: impl AsRef<OsStr>) -> Command {
        client_command(program, self.ca_cert_path().as_deref())
    }

    /// Adds the entries of `ldif` as the admin (`ldapmodify -a`).
    pub fn ldapadd(&self, ldif: &str) -> Result<()> {
        self.admin().add(ldif)
    }

    /// Applies `ldif` (changetype add, modify, modrdn, delete) as the admin.
    pub fn ldapmodify(&self, ldif: &str) -> Result<()> {
        self.admin().modify(ldif)
    }

    /// Searches the subtree under `base` as the admin; returns the entries as LDIF without
    /// comments or line wrapping. `attrs` empty: all user attributes.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<String> {
        self.admin().search(base, filter, attrs)
    }

    /// Applies `ldif` to cn=config over the ldapi socket (SASL EXTERNAL as the user slapd runs
    /// as), e.g. to change limits or overlays of the running server.
    pub fn modify_config(&self, ldif: &str) -> Result<()> {
        let mut command = self.ldap_command(&self.programs.tools.ldapmodify);
        command.args(["-Q", "-Y", "EXTERNAL", "-H", &self.ldapi_url()]);
        run(&mut command, Some(ldif)).map(drop)
    }

    /// Whether a simple bind as `dn` with `password` succeeds: `Ok(false)` when the server answers
    /// invalidCredentials (49), as it does for a wrong password or a locked account; other
    /// failures are errors.
    pub fn check_bind(&self, dn: &str, password: &str) -> Result<bool> {
        let mut command = self.ldap_command(&self.programs.ldapwhoami);
        command.args(["-x", "-H", &self.url(), "-D", dn, "-w", password]);
        let output = command.output().context("could not run ldapwhoami")?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(49) => Ok(false),
            _ => bail!(
                "ldapwhoami -x -H {} -D {dn} failed ({}): {}",
                self.url(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            ),
        }
    }

    fn admin(&self) -> Admin<'_> {
        Admin {
            tools: &self.programs.tools,
            url: self.url(),
            dn: &self.admin_dn,
            password_file: self.admin_password_file(),
            ca_cert: self.ca_cert_path(),
            net_timeout_secs: None,
        }
    }

    fn admin_password_file(&self) -> PathBuf {
        self.dir().join("admin.password")
    }

    fn service_password_file(&self) -> PathBuf {
        self.dir().join("service.password")
    }

    fn listen_urls(&self) -> String {
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(tls_port) = self.tls_port {
            urls += &format!(" ldaps://127.0.0.1:{tls_port}/");
        }
        urls + " " + &self.ldapi_url()
    }

    fn ports_text(&self) -> String {
        match self.tls_port {
            Some(tls_port) => format!("{} and {tls_port}", self.port),
            None => self.port.to_string(),
        }
    }

    /// Picks the ports for the next launch: `fixed` or a free one for `ldap://`, a free one for
    /// `ldaps://`. The probe sockets stay open until both are picked, so the two differ.
    fn choose_ports(&mut self, fixed: Option<u16>) -> Result<()> {
        let bind = |port: u16| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).with_context(|| format!("could not bind 127.0.0.1:{port}"))
        };
        let plain = match fixed {
            Some(port) => bind(port).with_context(|| format!("the port asked for, {port}, is not free"))?,
            None => bind(0)?,
        };
        let secure = if self.tls { Some(bind(0)?) } else { None };
        self.port = plain.local_addr()?.port();
        self.tls_port = secure.map(|listener| listener.local_addr().map(|address| address.port())).transpose()?;
        Ok(())
    }

    fn write_state(&self) -> Result<()> {
        let mut state = vec![("suffix", self.suffix.clone()), ("port", self.port.to_string())];
        state.extend(self.tls_port.map(|tls_port| ("tls_port", tls_port.to_string())));
        InstanceState::write(self.dir(), &state)
    }

    /// Starts slapd in the foreground of a child process (`-d`, so that it prints its errors to
    /// `slapd.log` instead of only to syslog as the daemon does) and waits until it answers.
    fn launch(&mut self) -> Result<Launch> {
        let mut command = Command::new(&self.programs.slapd);
        command
            .args(["-d", &self.log_level])
            .arg("-F")
            .arg(config_dir(self.dir()))
            .args(["-h", &self.listen_urls()])
            .stdin(Stdio::null());
        if self.own_process_group {
            command.process_group(0);
        }
        let Spawned { mut child, described, log } = spawn_logging_to(&mut command, &self.log_path())?;
        // As the admin: on a port that another instance took, binding fails, so the wait goes on
        // until this slapd exits for want of its port.
        let startup = wait_for_answer(&mut child, self.start_timeout, Duration::from_millis(25), || {
            self.answers_as_admin(self.url()) && self.ldaps_url().is_none_or(|url| self.answers_as_admin(url))
        });
        self.slapd = Some(child);
        match startup? {
            Startup::Answering => Ok(Launch::Answering),
            Startup::Exited(status) => {
                self.slapd = None;
                let log = log.read();
                if log.contains("errno=98") {
                    return Ok(Launch::PortTaken { log });
                }
                bail!("slapd exited ({status}) before it answered; `{described}` printed:\n{log}");
            }
            Startup::TimedOut => {
                let _ = self.stop();
                bail!(
                    "slapd did not answer as {} on {} within {:?}; `{described}` printed:\n{}",
                    self.admin_dn,
                    self.ports_text(),
                    self.start_timeout,
                    log.read()
                );
            }
        }
    }

    fn answers_as_admin(&self, url: String) -> bool {
        Admin { url, ..self.admin() }.answers(&self.programs.ldapwhoami, &[])
    }
}

impl Drop for OpenLdap {
    fn drop(&mut self) {
        if self.stop_on_drop {
            // Nothing to report to from a destructor; the temporary folder goes either way.
            let _ = self.stop();
        }
    }
}

/// Where Debian (and, failing that, other distributions) keep slapd's modules and schema LDIFs.
fn find_openldap_files() -> Result<(PathBuf, PathBuf)> {
    let module_dir = ["/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/libexec/openldap"]
        .iter()
        .map(PathBuf::from)
        .find(|dir| config::MODULES.iter().all(|module| dir.join(format!("{module}.so")).exists()))
        .ok_or_else(|| {
            anyhow!(
                "slapd's modules ({}) are not in /usr/lib/ldap: is the Debian package `slapd` installed? \
                 Run `sudo scripts/install-test-deps.sh`",
                config::MODULES.join(", ")
            )
        })?;
    let schema_dir = ["/etc/ldap/schema", "/etc/openldap/schema"]
        .iter()
        .map(PathBuf::from)
        .find(|dir| config::SCHEMAS.iter().all(|schema| dir.join(format!("{schema}.ldif")).exists()))
        .ok_or_else(|| {
            anyhow!(
                "the OpenLDAP schemas ({}) are not in /etc/ldap/schema: is the Debian package `slapd` installed? \
                 Run `sudo scripts/install-test-deps.sh`",
                config::SCHEMAS.join(", ")
            )
        })?;
    Ok((module_dir, schema_dir))
}

fn hash_password(slappasswd: &Path, password_file: &Path) -> Result<String> {
    let hash = run(Command::new(slappasswd).arg("-T").arg(password_file), None)?;
    Ok(hash.trim().to_owned())
}

fn slapadd_file(slapadd: &Path, dir: &Path, database: &str, file_name: &str, ldif: &str) -> Result<()> {
    let file = dir.join(file_name);
    fs::write(&file, ldif).with_context(|| format!("could not write {}", file.display()))?;
    let mut command = Command::new(slapadd);
    command.args(["-n", database, "-F"]).arg(config_dir(dir)).arg("-l").arg(&file);
    run(&mut command, None).map(drop)
}
