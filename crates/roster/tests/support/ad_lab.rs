//! A private Samba AD domain controller (its own 127.0.0.x, LDAPS from a throwaway CA, started by
//! `roster-testkit`) and a roster folder for one Active Directory test, the real `roster` binary
//! run in it, and the domain read back over LDAP with ldap3 as the domain admin: assertions rest on
//! what AD holds, never on what roster printed. HR exports, [`Run`] and [`Entry`] are the OpenLDAP
//! tests' own (`support/`).
//!
//! Filters and DNs built here are escaped with ldap3's own functions, not roster's.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ldap3::{LdapConnAsync, LdapError, ResultEntry, Scope, SearchEntry, ldap_escape};
use roster_testkit::{BindOutcome, SambaDc, SambaOptions};
use serde_json::Value;
use tempfile::TempDir;

use crate::support::{Entry, Hr, Run};

pub const DOMAIN: &str = "DC=example,DC=test";
pub const PEOPLE: &str = "OU=People,DC=example,DC=test";
pub const GROUPS: &str = "OU=Groups,DC=example,DC=test";
pub const LEAVERS: &str = "OU=Leavers,OU=People,DC=example,DC=test";

/// userAccountControl: a normal account (0x200), and the bit that disables it (0x2).
pub const NORMAL_ACCOUNT: i64 = 0x200;
pub const ACCOUNTDISABLE: i64 = 0x2;
/// `accountExpires` for "never".
pub const NEVER_EXPIRES: &str = "9223372036854775807";
/// `groupType` of a global security group (0x80000002 as AD prints it, a signed 32-bit value) and
/// of a universal distribution group.
pub const GLOBAL_SECURITY: &str = "-2147483646";
pub const UNIVERSAL_DISTRIBUTION: &str = "8";

const CONFIG_TEMPLATE: &str = include_str!("../fixtures/ad/roster.toml");
const EXPORT: &str = "exports/hr.csv";
const PASSWORD_VARIABLE: &str = "ROSTER_AD_PASSWORD";
/// LDAP result code noSuchObject: the search base does not exist.
const NO_SUCH_OBJECT: u32 = 32;

/// A roster folder (config, export, store, delivered passwords) in a temporary folder, and the
/// binary run in it. Needs no server of its own.
pub struct RosterFolder {
    work: TempDir,
}

impl RosterFolder {
    pub fn new() -> RosterFolder {
        let work = tempfile::Builder::new().prefix("roster-ad-it-").tempdir().expect("a temporary folder for roster");
        fs::create_dir(work.path().join("exports")).expect("creating the exports folder");
        RosterFolder { work }
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

    /// `fixtures/ad/roster.toml` with the placeholders filled in.
    pub fn write_fixture_config(&self, ldaps_url: &str, ca_file: &Path, bind_dn: &str) {
        self.write_config(
            &CONFIG_TEMPLATE
                .replace("@LDAPS_URL@", ldaps_url)
                .replace("@CA_FILE@", &ca_file.to_string_lossy())
                .replace("@BIND_DN@", bind_dn),
        );
    }

    /// Writes the day's HR export.
    pub fn export(&self, hr: &Hr) {
        fs::write(self.dir().join(EXPORT), hr.to_csv()).expect("writing the HR export");
    }

    /// Runs `roster --config roster.toml --as-of AS_OF ARGS...` as a scheduler would: the bind
    /// password only in the environment variable the config names.
    pub fn roster(&self, bind_password: &str, as_of: &str, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_roster"))
            .current_dir(self.dir())
            .env_remove("ROSTER_CONFIG")
            .env_remove("ROSTER_LOG")
            .env("ROSTER_ACTOR", "integration-test")
            .env(PASSWORD_VARIABLE, bind_password)
            .arg("--config")
            .arg(self.config_path())
            .args(["--as-of", as_of])
            .args(args)
            .output()
            .expect("running the roster binary");
        Run {
            command: format!("roster --as-of {as_of} {}", args.join(" ")),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The initial password delivered for `login` (`passwords/<login>.txt`), after checking that the
    /// file and its folder are readable by their owner only.
    pub fn delivered_password(&self, login: &str) -> String {
        let folder = self.dir().join("passwords");
        let file = folder.join(format!("{login}.txt"));
        let mode = |path: &Path| {
            fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
        };
        assert_eq!(mode(&file), 0o600, "{} must be readable by its owner only", file.display());
        assert_eq!(mode(&folder), 0o700, "{} must be private to its owner", folder.display());
        let text = fs::read_to_string(&file).expect("reading the delivered password");
        assert!(text.contains(&format!("login: {login}\n")), "{}:\n{text}", file.display());
        let password = text.lines().find_map(|line| line.strip_prefix("password: ")).unwrap_or_default();
        assert!(password.len() >= 12, "{} holds no password of at least 12 characters", file.display());
        password.to_owned()
    }
}

/// One test's DC and roster folder. Dropping it stops samba and removes both folders.
pub struct AdLab {
    pub dc: SambaDc,
    pub folder: RosterFolder,
}

impl AdLab {
    /// Starts a DC with `OU=People` and `OU=Groups` and writes `fixtures/ad/roster.toml`, pointed at it
    /// over LDAPS with its CA and bound as the domain admin. Fails (never skips) when Samba is not
    /// installed.
    pub fn start() -> AdLab {
        let dc = SambaDc::start(SambaOptions {
            base_ous: vec!["OU=People".into(), "OU=Groups".into()],
            ..SambaOptions::default()
        })
        .unwrap_or_else(|e| {
            panic!("could not start a Samba AD DC (install it with scripts/install-test-deps.sh): {e:#}")
        });
        let folder = RosterFolder::new();
        folder.write_fixture_config(&dc.ldaps_url(), &dc.ca_cert_path(), dc.admin_dn());
        AdLab { dc, folder }
    }

    pub fn export(&self, hr: &Hr) {
        self.folder.export(hr);
    }

    pub fn roster(&self, as_of: &str, args: &[&str]) -> Run {
        self.folder.roster(self.dc.admin_password(), as_of, args)
    }

    /// `roster run` for the day, which must succeed with nothing failed or skipped.
    pub fn run(&self, as_of: &str) -> Run {
        self.roster(as_of, &["run"]).expect_code(0)
    }

    /// `roster plan --format json` for the day, parsed.
    pub fn plan(&self, as_of: &str) -> Value {
        let run = self.roster(as_of, &["plan", "--format", "json"]).expect_code(0);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("the plan is not JSON ({e}):\n{run}"))
    }

    /// Running again with unchanged input must plan nothing, against what AD returns.
    pub fn assert_nothing_to_do(&self, as_of: &str) {
        let plan = self.plan(as_of);
        if !operations(&plan).is_empty() {
            let text = self.roster(as_of, &["plan"]);
            panic!("as of {as_of}, running again plans {} operation(s):\n{}", operations(&plan).len(), text.stdout);
        }
    }

    /// Subtree (or other scope) search as the domain admin, all user attributes. A base that does
    /// not exist gives no entries; AD's continuation references to its other partitions are left out.
    pub fn search(&self, base: &str, scope: Scope, filter: &str) -> Vec<Entry> {
        let url = self.dc.ldap_url();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let found = runtime.block_on(async {
            let (conn, mut ldap) = LdapConnAsync::new(&url).await?;
            ldap3::drive!(conn);
            ldap.simple_bind(self.dc.admin_dn(), self.dc.admin_password()).await?.success()?;
            let result = ldap.search(base, scope, filter, vec!["*"]).await?;
            let entries = if result.1.rc == NO_SUCH_OBJECT { Vec::new() } else { result.success()?.0 };
            ldap.unbind().await?;
            Ok::<_, LdapError>(entries)
        });
        let entries = found.unwrap_or_else(|e| panic!("searching {base} for {filter}: {e}"));
        entries.into_iter().filter(|e| !e.is_ref()).map(entry).collect()
    }

    /// Every object below `base`, by lowercased DN: to show that roster left them exactly as they
    /// were (`whenChanged` and `uSNChanged` included, so even a rewrite of the same value would show).
    pub fn dump(&self, base: &str) -> BTreeMap<String, Entry> {
        self.search(base, Scope::Subtree, "(objectClass=*)").into_iter().map(|e| (e.dn.to_lowercase(), e)).collect()
    }

    /// The user objects anywhere in the domain whose employeeID is `key`.
    pub fn accounts(&self, key: &str) -> Vec<Entry> {
        self.search(DOMAIN, Scope::Subtree, &format!("(&(objectClass=user)(employeeID={}))", ldap_escape(key)))
    }

    /// The one account of the person with `key`; fails the test when there is none or several.
    pub fn account(&self, key: &str) -> Entry {
        match self.accounts(key).as_slice() {
            [one] => one.clone(),
            other => panic!("expected one account with employeeID={key}, found {}: {other:#?}", other.len()),
        }
    }

    /// The group `CN=<cn>,OU=Groups,...`, if it exists.
    pub fn group(&self, cn: &str) -> Option<Entry> {
        let filter = format!("(&(objectClass=group)(cn={}))", ldap_escape(cn));
        self.search(GROUPS, Scope::OneLevel, &filter).into_iter().next()
    }

    /// The cn of every group below `OU=Groups` that lists the person's account as a member
    /// (compared by the server), sorted.
    pub fn groups_of(&self, key: &str) -> Vec<String> {
        let account = self.account(key);
        let filter = format!("(&(objectClass=group)(member={}))", ldap_escape(account.dn.as_str()));
        let mut cns: Vec<String> =
            self.search(GROUPS, Scope::Subtree, &filter).iter().map(|g| g.value("cn").to_owned()).collect();
        cns.sort();
        cns
    }

    /// Whether the `manager` of `report` is the DN of `manager`'s account as it is now (compared by
    /// the server).
    pub fn manager_is(&self, report: &str, manager: &str) -> bool {
        let manager_dn = self.account(manager).dn;
        let filter = format!(
            "(&(objectClass=user)(employeeID={})(manager={}))",
            ldap_escape(report),
            ldap_escape(manager_dn.as_str())
        );
        !self.search(DOMAIN, Scope::Subtree, &filter).is_empty()
    }

    /// How a simple bind over LDAPS as `user` (a DN or a UPN) with `password` goes.
    pub fn bind(&self, user: &str, password: &str) -> BindOutcome {
        self.dc.check_bind(user, password).unwrap_or_else(|e| panic!("binding as {user}: {e:#}"))
    }
}

/// The operations of a plan.
pub fn operations(plan: &Value) -> &[Value] {
    plan["operations"].as_array().map_or(&[], Vec::as_slice)
}

/// The operations of kind `op` for `person`.
pub fn ops_for<'a>(plan: &'a Value, person: &str, op: &str) -> Vec<&'a Value> {
    operations(plan).iter().filter(|o| o["person"] == person && o["op"] == op).collect()
}

/// The notices of `kind` (for `person`, or with no person when `None`).
pub fn notices<'a>(plan: &'a Value, person: Option<&str>, kind: &str) -> Vec<&'a Value> {
    let all = plan["notices"].as_array().map_or(&[][..], Vec::as_slice);
    all.iter().filter(|n| n["kind"] == kind && person.is_none_or(|p| n["person"] == p)).collect()
}

/// The account's userAccountControl flags.
pub fn uac(account: &Entry) -> i64 {
    account.value("userAccountControl").parse().unwrap_or_else(|e| panic!("{}: userAccountControl: {e}", account.dn))
}

/// The account's objectGUID, in hex: the id that stays through renames and moves.
pub fn guid(account: &Entry) -> &str {
    account.value("objectGUID")
}

/// `accountExpires` for the start of `date` in the UTC offset `offset_hours` (Berlin: +1 in winter,
/// +2 in summer), as a Windows FILETIME: 100 ns ticks since 1601-01-01 UTC.
pub fn filetime(date: &str, offset_hours: i64) -> String {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("a date");
    let unix = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp() - offset_hours * 3600;
    ((unix + 11_644_473_600) * 10_000_000).to_string()
}

/// An entry as AD returned it: attribute names lowercased, text values exact and sorted, binary
/// values (objectGUID, objectSid, ...) in hex.
fn entry(result: ResultEntry) -> Entry {
    let search = SearchEntry::construct(result);
    let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, values) in search.attrs {
        let name = name.to_lowercase();
        // A 16-byte GUID may happen to be valid UTF-8, and then arrives among the text values.
        let values = if name == "objectguid" || name == "objectsid" {
            values.iter().map(|v| hex(v.as_bytes())).collect()
        } else {
            values
        };
        attrs.entry(name).or_default().extend(values);
    }
    for (name, values) in search.bin_attrs {
        attrs.entry(name.to_lowercase()).or_default().extend(values.iter().map(|v| hex(v)));
    }
    for values in attrs.values_mut() {
        values.sort();
    }
    Entry { dn: search.dn, attrs }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
