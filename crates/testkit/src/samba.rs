//! A private Samba AD domain controller (Samba 4.17 from Debian) on a loopback address of its own.
//!
//! AD's ports cannot be moved, so each DC gets its own `127.0.0.X` ([`address`]); provisioning a
//! domain takes seconds, so each DC starts as a copy of one provisioned per machine
//! ([`template`]); Samba's own certificate has no subjectAltName, so each DC gets one from a
//! throwaway CA ([`tls`]).
//!
//! Layout of an instance folder: what the template holds (`private/` with the directory
//! databases and keys, `state/`, `bind-dns/`, `admin.password`), `etc/smb.conf` (written for this
//! instance, naming only folders inside it), `tls/`, `run/samba.pid`, `samba.log` (what samba
//! printed) and `instance.state` (the address, so that [`SambaDc::attach`] finds the DC again).

mod address;
mod template;
mod tls;

use std::ffi::OsStr;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::instance::{self, InstanceDir, InstanceState, ServerKind, random_hex, read_secret};
use crate::ldap_tools::{Admin, LdapTools, client_command};
use crate::ldif::attr;
use crate::process::{
    Spawned, Startup, group_members, has_exited, is_alive, read_pid_file, require_program, run, send_signal,
    send_signal_to_group, spawn_logging_to, wait_for_answer, wait_until,
};
use crate::tls::TlsFiles;
use address::AddressLease;

const REALM: &str = "EXAMPLE.TEST";
const DOMAIN: &str = "EXAMPLE";
const HOST_NAME: &str = "dc1";
const DOMAIN_DN: &str = "DC=example,DC=test";
const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=example,DC=test";
const ADMIN_UPN: &str = "Administrator@EXAMPLE.TEST";
const ADMIN_PASSWORD_FILE: &str = "admin.password";
const KIND: ServerKind = ServerKind { name: "Samba", an_instance: "a Samba instance" };
const LOG_FILE: &str = "samba.log";
/// The deepest Unix socket that Samba makes in the instance folder.
const DEEPEST_SOCKET: &str = "private/ldap_priv/ldapi";
/// The `pwdProperties` bit that `samba-tool domain passwordsettings set --complexity=off` clears.
const DOMAIN_PASSWORD_COMPLEX: u32 = 1;

/// How to start a [`SambaDc`].
#[derive(Debug, Clone)]
pub struct SambaOptions {
    /// AD's password complexity rule (three of upper case, lower case, digits, symbols; not the
    /// account name). On by default, as in AD. Off still leaves AD's minimum length of 7.
    pub password_complexity: bool,
    /// Organizational units to create under the domain DN, given relative to it (`OU=People`,
    /// `OU=Staff,OU=People`) and created in this order, so a parent comes before its children.
    /// A fresh AD has none.
    pub base_ous: Vec<String>,
    /// Folder of the instance, created if missing; it must be empty (see [`SambaDc::attach`])
    /// and is kept afterwards. `None`: a fresh temporary folder, removed when the [`SambaDc`] is
    /// dropped.
    pub dir: Option<PathBuf>,
    /// Start samba so that it can outlive this process ([`SambaDc::into_detached`]): in its own
    /// process group, in the background. Off (for tests): samba reads its standard input from a
    /// pipe held by this process and exits when the pipe closes, so a test killed by its runner,
    /// even with SIGKILL, takes its DC with it.
    pub detachable: bool,
    /// samba's debug level (`samba -d`), printed to `samba.log` in the instance folder: 0 prints
    /// errors and start-up, 3 every connection, 10 everything.
    pub log_level: u8,
    /// How long samba may take to answer after it was started.
    pub start_timeout: Duration,
}

impl Default for SambaOptions {
    fn default() -> Self {
        SambaOptions {
            password_complexity: true,
            base_ous: Vec::new(),
            dir: None,
            detachable: false,
            log_level: 0,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// How AD answered a simple bind, told apart by the `data XXX` sub-code of its diagnostic
/// message, as roster must tell them apart. AD checks the password first: a wrong password for a
/// disabled account is [`BindOutcome::BadPassword`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindOutcome {
    Ok,
    /// `data 52e`: wrong password; Samba answers the same for an unknown user (where real AD may
    /// say `525`).
    BadPassword,
    /// `data 533`: the account is disabled (userAccountControl has ACCOUNTDISABLE, 0x2).
    Disabled,
    /// `data 773`: the password is right but must be changed first (`pwdLastSet: 0`).
    MustChangePassword,
    /// Any other refusal, with the server's diagnostic message (`data 775` locked out, `532`
    /// password expired, `701` account expired, ...).
    Other(String),
}

impl BindOutcome {
    /// Reads the sub-code out of a diagnostic such as `80090308: LdapErr: DSID-0C0903A9, comment:
    /// AcceptSecurityContext error, data 52e, v1db1`.
    fn from_diagnostic(message: &str) -> BindOutcome {
        let code = message.split_once("data ").map(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_hexdigit()).next().unwrap_or_default().to_ascii_lowercase()
        });
        match code.as_deref() {
            Some("52e") => BindOutcome::BadPassword,
            Some("533") => BindOutcome::Disabled,
            Some("773") => BindOutcome::MustChangePassword,
            _ => BindOutcome::Other(message.trim().to_owned()),
        }
    }
}

/// A running private Samba AD DC for the domain `EXAMPLE.TEST` (`DC=example,DC=test`, NetBIOS
/// `EXAMPLE`), with LDAP on `ldap://127.0.0.X:389` (simple binds allowed without TLS, which real
/// AD refuses) and `ldaps://127.0.0.X:636`, and the built-in `Administrator`.
///
/// Dropping it stops samba, takes its address off `lo` if it put it there, and removes its
/// temporary folder, unless it was detached.
pub struct SambaDc {
    dir: InstanceDir,
    ip: Ipv4Addr,
    admin_password: String,
    programs: Programs,
    /// samba, when this handle started it and it has not been stopped.
    samba: Option<RunningSamba>,
    /// Held from launch to stop while this handle runs the DC.
    address: Option<AddressLease>,
    stop_on_drop: bool,
    detachable: bool,
    log_level: u8,
    start_timeout: Duration,
}

struct RunningSamba {
    child: Child,
    /// samba's standard input in interactive mode: closing it makes samba exit at once, where
    /// SIGTERM takes it about 2 s.
    stdin: Option<ChildStdin>,
}

struct Programs {
    samba: PathBuf,
    samba_tool: PathBuf,
    tools: LdapTools,
}

impl Programs {
    fn find() -> Result<Programs> {
        Ok(Programs {
            samba: require_program("samba", "samba-ad-dc")?,
            samba_tool: require_program("samba-tool", "samba-ad-dc")?,
            tools: LdapTools::find()?,
        })
    }
}

impl SambaDc {
    /// Copies the machine's provisioned domain (provisioning it first if there is none: 5-8 s)
    /// into a new instance folder, starts it on a free loopback address, and applies `opts`; it
    /// answers as the admin over LDAP and LDAPS when this returns.
    pub fn start(opts: SambaOptions) -> Result<SambaDc> {
        let base_ou_dns = opts.base_ous.iter().map(|ou| base_ou_dn(ou)).collect::<Result<Vec<_>>>()?;
        let programs = Programs::find()?;
        if !Path::new("/usr/share/samba/setup").is_dir() {
            bail!(
                "Samba's provisioning files are not in /usr/share/samba/setup: the Debian package \
                 `samba-ad-provision` is missing; run `sudo scripts/install-test-deps.sh`"
            );
        }
        let template = template::ensure(&programs.samba, &programs.samba_tool)?;
        instance::build_in(opts.dir.as_deref(), &KIND, |dir| {
            Self::build_and_launch(dir, programs, &template, &opts, &base_ou_dns)
        })
    }

    fn build_and_launch(
        dir: InstanceDir,
        programs: Programs,
        template: &template::Template,
        opts: &SambaOptions,
        base_ou_dns: &[String],
    ) -> Result<SambaDc> {
        instance::check_socket_room(dir.path(), DEEPEST_SOCKET, &KIND)?;
        template::copy_into(&template.dir, dir.path())
            .with_context(|| format!("could not copy the Samba template {}", template.dir.display()))?;
        let mut dc = SambaDc {
            dir,
            ip: Ipv4Addr::UNSPECIFIED,
            admin_password: template.admin_password.clone(),
            programs,
            samba: None,
            address: None,
            stop_on_drop: true,
            detachable: opts.detachable,
            log_level: opts.log_level,
            start_timeout: opts.start_timeout,
        };
        dc.launch(None)?;
        if !opts.password_complexity {
            dc.turn_off_password_complexity()?;
        }
        if !base_ou_dns.is_empty() {
            let ldif: String =
                base_ou_dns.iter().map(|dn| attr("dn", dn) + "objectClass: organizationalUnit\n\n").collect();
            dc.ldapadd(&ldif).context("could not create the base OUs")?;
        }
        Ok(dc)
    }

    /// Whether `dir` holds an instance that [`SambaDc::attach`] can use.
    pub fn exists_in(dir: &Path) -> bool {
        instance::exists_in(dir)
    }

    /// A handle on the instance that [`SambaDc::start`] built in `dir` before, running or not
    /// (see [`SambaDc::is_running`]). The handle is detached: dropping it leaves samba as it is;
    /// [`SambaDc::stop`] and [`SambaDc::start_again`] work on it.
    pub fn attach(dir: &Path) -> Result<SambaDc> {
        let (dir, state) = InstanceState::read(dir, &KIND)?;
        let defaults = SambaOptions::default();
        Ok(SambaDc {
            ip: state.parse("ip", "an IPv4 address")?,
            admin_password: read_secret(&dir.join(ADMIN_PASSWORD_FILE))?,
            dir: InstanceDir::Kept(dir),
            programs: Programs::find()?,
            samba: None,
            address: None,
            stop_on_drop: false,
            detachable: true,
            log_level: defaults.log_level,
            start_timeout: defaults.start_timeout,
        })
    }

    /// Leaves samba running, its address on `lo` and its folder in place when this handle is
    /// dropped: for a DC that outlives the program that started it. Stop it later with `attach`
    /// and `stop`. Only for a DC started with [`SambaOptions::detachable`].
    pub fn into_detached(mut self) -> Result<SambaDc> {
        if !self.detachable {
            bail!("this Samba DC exits with the process that started it: start it with `detachable: true`");
        }
        self.stop_on_drop = false;
        self.dir.keep();
        // Dropping the Child handle neither kills nor waits for samba.
        self.samba = None;
        if let Some(mut lease) = self.address.take() {
            lease.keep_on_loopback();
        }
        Ok(self)
    }

    /// Stops samba and waits until every process of its group is gone, then takes the address
    /// off `lo` if roster put it there. Data and folder stay, for
    /// [`SambaDc::start_again`]. Stopping a stopped instance does nothing.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(RunningSamba { mut child, stdin }) = self.samba.take() {
            let pid = child.id();
            if child.try_wait()?.is_none() {
                match stdin {
                    Some(stdin) => drop(stdin),
                    None => send_signal(pid, "TERM")?,
                }
                if !wait_until(Duration::from_secs(10), || has_exited(&mut child)) {
                    send_signal_to_group(pid, "KILL")?;
                }
                child.wait().with_context(|| format!("could not wait for samba (pid {pid}) to exit"))?;
            }
            // In case it left helpers (samba_kcc, ...) behind.
            end_group(pid)?;
        } else if let Some(pid) = self.running_pid() {
            // Held while stopping, so that no other process takes the address between the DC's
            // exit and its removal from lo, only to lose it.
            self.address = Some(AddressLease::take_to_stop(self.ip)?);
            send_signal(pid, "TERM")?;
            if !wait_until(Duration::from_secs(15), || !is_alive(pid)) {
                send_signal_to_group(pid, "KILL")?;
            }
            end_group(pid)?;
        }
        if let Some(lease) = self.address.take() {
            lease.release()?;
        }
        Ok(())
    }

    /// Starts the stopped instance again with the same data, on its address if that is still
    /// free, else on another (with a new certificate): see [`SambaDc::ldaps_url`].
    pub fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("samba is already running in {}", self.dir().display());
        }
        self.launch(Some(self.ip))
    }

    /// Whether samba is running for this instance: started by this handle and not exited, or
    /// named by the instance's pid file and still alive.
    pub fn is_running(&mut self) -> bool {
        if let Some(running) = &mut self.samba {
            return !has_exited(&mut running.child);
        }
        self.running_pid().is_some()
    }

    /// The process id of this instance's samba, from its pid file, when that process is alive and
    /// is a samba with files open in this folder (a stale pid file may name an unrelated process;
    /// samba renames its processes, so the command line does not tell).
    pub fn running_pid(&self) -> Option<u32> {
        let pid = read_pid_file(&pid_file(self.dir()))?;
        let is_samba =
            fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.file_name() == Some(OsStr::new("samba")));
        let serves_this_folder = fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten().any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(self.dir())))
        });
        (is_samba && serves_this_folder && is_alive(pid)).then_some(pid)
    }

    /// The loopback address the DC listens on, on `lo` while it runs.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `ldap://127.0.0.X:389`
    pub fn ldap_url(&self) -> String {
        format!("ldap://{}:389", self.ip)
    }

    /// `ldaps://127.0.0.X:636`, with a certificate for the address from [`SambaDc::ca_cert_path`].
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}:636", self.ip)
    }

    /// The throwaway CA that signed the server certificate (subjectAltName `IP:127.0.0.X`,
    /// `DNS:localhost`).
    pub fn ca_cert_path(&self) -> PathBuf {
        crate::tls::files_in(self.dir()).ca_cert
    }

    /// `DC=example,DC=test`
    pub fn domain_dn(&self) -> &'static str {
        DOMAIN_DN
    }

    /// `EXAMPLE.TEST`
    pub fn realm(&self) -> &'static str {
        REALM
    }

    /// `CN=Administrator,CN=Users,DC=example,DC=test`: the built-in domain admin. Its password
    /// never expires.
    pub fn admin_dn(&self) -> &'static str {
        ADMIN_DN
    }

    /// `Administrator@EXAMPLE.TEST`: AD takes a UPN as a bind name as well as a DN.
    pub fn admin_upn(&self) -> &'static str {
        ADMIN_UPN
    }

    /// Complex enough for AD's rules; the same for every DC copied from this machine's template.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The instance folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What samba printed (errors and start-up; more with [`SambaOptions::log_level`]).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join(LOG_FILE)
    }

    /// A command for one of the OpenLDAP client programs (`ldapsearch`, `ldapmodify`, ...), with
    /// the environment set to trust this DC's CA; add the arguments.
    pub fn ldap_command(&self, program: impl AsRef<OsStr>) -> Command {
        client_command(program, Some(&self.ca_cert_path()))
    }

    /// Adds the entries of `ldif` as the admin over LDAPS (`ldapmodify -a`).
    pub fn ldapadd(&self, ldif: &str) -> Result<()> {
        self.admin().add(ldif)
    }

    /// Applies `ldif` (changetype add, modify, modrdn, delete) as the admin over LDAPS, where AD
    /// accepts `unicodePwd`.
    pub fn ldapmodify(&self, ldif: &str) -> Result<()> {
        self.admin().modify(ldif)
    }

    /// Searches the subtree under `base` as the admin; returns the entries as LDIF without
    /// comments, line wrapping or the referrals AD adds for its other partitions. `attrs` empty:
    /// all user attributes.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<String> {
        Ok(without_comment_blocks(&self.admin().search(base, filter, attrs)?))
    }

    /// How a simple bind as `user` (a DN, or a UPN such as `alice@example.test`) with `password`
    /// goes over LDAPS. A refusal is an outcome; only failing to ask (server down, TLS) is an error.
    pub fn check_bind(&self, user: &str, password: &str) -> Result<BindOutcome> {
        if password.is_empty() {
            // A simple bind with a name and no password is an unauthenticated bind, which succeeds.
            bail!("an empty password makes an unauthenticated bind, which succeeds for any name");
        }
        let mut command = self.ldap_command(&self.programs.tools.ldapsearch);
        command
            .args(["-x", "-o", "nettimeout=10", "-H", &self.ldaps_url(), "-D", user, "-w", password])
            .args(["-b", "", "-s", "base", "1.1"])
            .stdin(Stdio::null());
        let output = command.output().context("could not run ldapsearch")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => Ok(BindOutcome::Ok),
            Some(49) => Ok(BindOutcome::from_diagnostic(&stderr)),
            _ => bail!(
                "ldapsearch -x -H {} -D {user} failed ({}): {}",
                self.ldaps_url(),
                output.status,
                stderr.trim_end()
            ),
        }
    }

    /// Runs `samba-tool ARGS` on this DC's own configuration, so that commands that work on the
    /// directory (`user`, `group`, `domain passwordsettings`, ...) open its database directly;
    /// returns what it printed.
    pub fn samba_tool<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        let mut command = Command::new(&self.programs.samba_tool);
        command.args(args).arg("-s").arg(smb_conf_path(self.dir()));
        run(&mut command, None)
    }

    /// The admin over LDAPS.
    fn admin(&self) -> Admin<'_> {
        Admin {
            tools: &self.programs.tools,
            url: self.ldaps_url(),
            dn: ADMIN_UPN,
            password_file: self.dir().join(ADMIN_PASSWORD_FILE),
            ca_cert: Some(self.ca_cert_path()),
            net_timeout_secs: Some(10),
        }
    }

    /// Clears the complexity bit of the domain's `pwdProperties`, as `samba-tool domain
    /// passwordsettings set --complexity=off` does, but over LDAP: milliseconds where samba-tool
    /// spends a third of a second starting Python. Samba reads it on every password change.
    fn turn_off_password_complexity(&self) -> Result<()> {
        let found = self.search(DOMAIN_DN, "(objectClass=domain)", &["pwdProperties"])?;
        let current: u32 = found
            .lines()
            .find_map(|line| line.strip_prefix("pwdProperties: "))
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| anyhow!("no pwdProperties on {DOMAIN_DN}:\n{found}"))?;
        self.ldapmodify(&format!(
            "dn: {DOMAIN_DN}\nchangetype: modify\nreplace: pwdProperties\npwdProperties: {}\n",
            current & !DOMAIN_PASSWORD_COMPLEX
        ))
        .context("could not turn password complexity off")
    }

    /// Leases an address (`preferred` if free), writes the configuration and certificate for it,
    /// starts samba and waits until it answers as the admin over LDAP and LDAPS. A failed launch
    /// leaves nothing running and gives the address back.
    fn launch(&mut self, preferred: Option<Ipv4Addr>) -> Result<()> {
        let launched = self.try_launch(preferred);
        if launched.is_err() {
            let _ = self.stop();
        }
        launched
    }

    fn try_launch(&mut self, preferred: Option<Ipv4Addr>) -> Result<()> {
        let lease = AddressLease::take(preferred)?;
        self.ip = lease.ip();
        self.address = Some(lease);
        let dir = self.dir().to_owned();
        let tls_files = tls::ensure_certificates(&dir, self.ip)?;
        for folder in [dir.join("etc"), dir.join("run")] {
            fs::create_dir_all(&folder).with_context(|| format!("could not create {}", folder.display()))?;
        }
        let conf_path = smb_conf_path(&dir);
        fs::write(&conf_path, smb_conf(&dir, self.ip, &tls_files))
            .with_context(|| format!("could not write {}", conf_path.display()))?;
        InstanceState::write(&dir, &[("ip", self.ip.to_string())])?;

        let mut command = Command::new(&self.programs.samba);
        // One process for all services: starts faster, and stopping it stops the DC.
        command.args(["--model=single", &format!("--debuglevel={}", self.log_level), "--configfile"]).arg(&conf_path);
        if self.detachable {
            command.arg("--foreground").stdin(Stdio::null()).process_group(0);
        } else {
            // Interactive: samba makes its own process group and exits when its standard input
            // closes, which happens however this process ends.
            command.arg("--interactive").stdin(Stdio::piped());
        }
        let Spawned { mut child, described, log } = spawn_logging_to(&mut command, &self.log_path())?;
        let stdin = child.stdin.take();
        let startup =
            wait_for_answer(&mut child, self.start_timeout, Duration::from_millis(50), || self.answers_as_admin());
        self.samba = Some(RunningSamba { child, stdin });
        match startup? {
            Startup::Answering => {}
            Startup::Exited(status) => {
                self.samba = None;
                bail!("samba exited ({status}) before it answered; `{described}` printed:\n{}", log.read());
            }
            Startup::TimedOut => bail!(
                "samba did not answer a bind as {ADMIN_UPN} on {} within {:?}; `{described}` printed:\n{}",
                self.ldap_url(),
                self.start_timeout,
                log.read()
            ),
        }
        // LDAPS is served by the same task as LDAP, but a key or certificate that samba refuses
        // only shows on the first TLS connection.
        let mut over_ldaps = self.admin().command(&self.programs.tools.ldapsearch);
        if let Err(error) = run(over_ldaps.args(["-b", "", "-s", "base", "1.1"]), None) {
            bail!(
                "samba answers on {} but not over LDAPS on {}: {error:#}\nsamba printed:\n{}",
                self.ldap_url(),
                self.ldaps_url(),
                log.read()
            );
        }
        Ok(())
    }

    /// Whether a simple bind as the admin over plain LDAP succeeds (with the relaxed
    /// `ldap server require strong auth`).
    fn answers_as_admin(&self) -> bool {
        let admin = Admin { url: self.ldap_url(), ..self.admin() };
        admin.answers(&self.programs.tools.ldapsearch, &["-b", "", "-s", "base", "1.1"])
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        if self.stop_on_drop {
            // Nothing to report to from a destructor; the temporary folder goes either way.
            let _ = self.stop();
        } else if let Some(lease) = &mut self.address {
            // The DC outlives this handle (detached or attached), and so must its address.
            lease.keep_on_loopback();
        }
    }
}

fn smb_conf_path(dir: &Path) -> PathBuf {
    dir.join("etc/smb.conf")
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("run/samba.pid")
}

/// The whole smb.conf, written anew for each launch: the provision's names the template's folders
/// (and its `--option` values are not a dependable way to set anything). Every path Samba would
/// otherwise take from its defaults under /var and /run points into the instance folder, so that
/// instances share nothing.
fn smb_conf(dir: &Path, ip: Ipv4Addr, tls: &TlsFiles) -> String {
    let path = |relative: &str| dir.join(relative).display().to_string();
    let file = |file: &Path| file.display().to_string();
    let global = [
        // From the provision.
        ("netbios name", HOST_NAME.to_ascii_uppercase()),
        ("realm", REALM.to_owned()),
        ("workgroup", DOMAIN.to_owned()),
        ("server role", "active directory domain controller".to_owned()),
        ("idmap_ldb:use rfc2307", "yes".to_owned()),
        ("private dir", path("private")),
        ("state directory", path("state")),
        ("cache directory", path("cache")),
        ("lock directory", dir.display().to_string()),
        ("binddns dir", path("bind-dns")),
        // This instance's own.
        ("interfaces", ip.to_string()),
        ("bind interfaces only", "yes".to_owned()),
        // No smb, nbt, dns or winbindd: LDAP, Kerberos, and the RPC and replication services
        // that samba-tool and the RID allocation use.
        ("server services", "ldap, cldap, kdc, rpc, drepl, kcc".to_owned()),
        // Simple binds over plain LDAP, which real AD refuses: roster must insist on TLS itself.
        ("ldap server require strong auth", "no".to_owned()),
        ("tls enabled", "yes".to_owned()),
        ("tls keyfile", file(&tls.server_key)),
        ("tls certfile", file(&tls.server_cert)),
        ("tls cafile", file(&tls.ca_cert)),
        // No fsync: adds about 3x faster. For throwaway test data only.
        ("ldb:nosync", "true".to_owned()),
        ("pid directory", path("run")),
        ("log file", path(LOG_FILE)),
        ("logging", "file".to_owned()),
        ("ncalrpc dir", path("ncalrpc")),
        ("winbindd socket directory", path("winbindd")),
        ("ntp signd socket directory", path("ntp_signd")),
    ];
    let mut conf = String::from("# Written by roster-testkit for this instance; rewritten at each start.\n[global]\n");
    for (key, value) in global {
        conf += &format!("\t{key} = {value}\n");
    }
    conf += &format!(
        "\n[sysvol]\n\tpath = {sysvol}\n\tread only = No\n\n[netlogon]\n\tpath = {sysvol}/{realm}/scripts\n\tread only = No\n",
        sysvol = path("state/sysvol"),
        realm = REALM.to_ascii_lowercase()
    );
    conf
}

/// `OU=People` -> `OU=People,DC=example,DC=test`; refuses what is not an OU relative to the domain.
fn base_ou_dn(relative: &str) -> Result<String> {
    let is_ou = relative.get(..3).is_some_and(|prefix| prefix.eq_ignore_ascii_case("OU=")) && relative.len() > 3;
    if !is_ou {
        bail!("base OU {relative:?}: expected an OU relative to {DOMAIN_DN}, such as OU=People");
    }
    if relative.to_ascii_lowercase().ends_with(&DOMAIN_DN.to_ascii_lowercase()) {
        bail!("base OU {relative:?}: give it relative to {DOMAIN_DN}, without the domain part");
    }
    Ok(format!("{relative},{DOMAIN_DN}"))
}

/// Drops blank-line separated blocks made only of comments: ldapsearch prints AD's continuation
/// references (`# refldaps://example.test/CN=Configuration,...`) that way even with `-LLL`.
fn without_comment_blocks(ldif: &str) -> String {
    let blocks: Vec<&str> = ldif
        .split("\n\n")
        .map(|block| block.trim_matches('\n'))
        .filter(|block| !block.is_empty() && !block.lines().all(|line| line.starts_with('#')))
        .collect();
    if blocks.is_empty() { String::new() } else { blocks.join("\n\n") + "\n" }
}

/// Waits until no live process is left in the group `pgid` (samba's, which it leads), killing
/// what is left after a few seconds.
fn end_group(pgid: u32) -> Result<()> {
    if wait_until(Duration::from_secs(5), || group_members(pgid).is_empty()) {
        return Ok(());
    }
    send_signal_to_group(pgid, "KILL")?;
    if !wait_until(Duration::from_secs(5), || group_members(pgid).is_empty()) {
        bail!("processes {:?} of samba's group {pgid} are still running after SIGKILL", group_members(pgid));
    }
    Ok(())
}

/// Meets AD's complexity rule (upper and lower case, a symbol, digits) with 128 random bits, and
/// needs no quoting in a shell, LDIF or samba-tool's arguments.
fn random_password() -> Result<String> {
    Ok(format!("Roster-{}-7", random_hex()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_outcomes_come_from_the_data_sub_code() {
        let diagnostic = |code: &str| {
            format!(
                "ldap_bind: Invalid credentials (49)\n\tadditional info: 80090308: LdapErr: DSID-0C0903A9, \
                 comment: AcceptSecurityContext error, data {code}, v1db1\n"
            )
        };
        assert_eq!(BindOutcome::from_diagnostic(&diagnostic("52e")), BindOutcome::BadPassword);
        assert_eq!(BindOutcome::from_diagnostic(&diagnostic("533")), BindOutcome::Disabled);
        assert_eq!(BindOutcome::from_diagnostic(&diagnostic("773")), BindOutcome::MustChangePassword);
        let locked = BindOutcome::from_diagnostic(&diagnostic("775"));
        assert!(matches!(&locked, BindOutcome::Other(message) if message.contains("data 775")), "{locked:?}");
        assert!(matches!(BindOutcome::from_diagnostic("Invalid credentials (49)"), BindOutcome::Other(_)));
    }

    #[test]
    fn base_ous_are_relative_to_the_domain() {
        assert_eq!(base_ou_dn("OU=People").unwrap(), "OU=People,DC=example,DC=test");
        assert_eq!(base_ou_dn("ou=Staff,OU=People").unwrap(), "ou=Staff,OU=People,DC=example,DC=test");
        for refused in ["CN=Users", "OU=", "People", "OU=People,DC=example,DC=test"] {
            assert!(base_ou_dn(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn search_output_loses_reference_comments() {
        let printed = "dn: OU=People,DC=example,DC=test\nou: People\n\n# refldaps://example.test/CN=Configuration,DC=example,DC=test\n\n";
        assert_eq!(without_comment_blocks(printed), "dn: OU=People,DC=example,DC=test\nou: People\n");
        assert_eq!(without_comment_blocks("# refldaps://example.test/DC=x\n"), "");
    }

    #[test]
    fn the_admin_password_meets_ad_complexity() {
        let password = random_password().unwrap();
        assert!(password.chars().any(|c| c.is_ascii_uppercase()), "{password}");
        assert!(password.chars().any(|c| c.is_ascii_lowercase()), "{password}");
        assert!(password.chars().any(|c| c.is_ascii_digit()), "{password}");
        assert!(password.chars().any(|c| !c.is_ascii_alphanumeric()), "{password}");
    }

    #[test]
    fn smb_conf_keeps_every_path_in_the_instance_folder() {
        let dir = Path::new("/tmp/roster-samba-x");
        let files = crate::tls::files_in(dir);
        let conf = smb_conf(dir, Ipv4Addr::new(127, 0, 0, 42), &files);
        assert!(conf.contains("\tinterfaces = 127.0.0.42\n"), "{conf}");
        for line in conf.lines().filter(|line| line.contains(" = /")) {
            assert!(line.contains("= /tmp/roster-samba-x"), "a path outside the folder: {line}");
        }
    }
}
