//! The private Samba AD DC behaves as roster's tests rely on: passwords over LDAPS, the bind
//! sub-codes AD gives, complexity, base OUs, TLS that rustls accepts, DCs side by side, and
//! stopping cleanly.

mod support;

use std::net::Ipv4Addr;
use std::process::Command;
use std::thread;

use anyhow::{Context, Result, ensure};
use roster_testkit::{BindOutcome, SambaDc, SambaOptions};
use support::{StopOnDrop, assert_rustls_binds, run_cli, shell_value};

fn start() -> SambaDc {
    SambaDc::start(SambaOptions::default()).expect("Samba starts")
}

/// `unicodePwd` as AD wants it: the UTF-16LE bytes of the password in double quotes, base64.
fn unicode_pwd(password: &str) -> String {
    let bytes: Vec<u8> = format!("\"{password}\"").encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64(&bytes)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// Adds a disabled user in `CN=Users`, as a provisioning engine does before it sets a password.
fn add_user(dc: &SambaDc, login: &str) -> Result<String> {
    let dn = format!("CN={login},CN=Users,{}", dc.domain_dn());
    dc.ldapadd(&format!(
        "dn: {dn}\nobjectClass: user\nsAMAccountName: {login}\nuserPrincipalName: {login}@example.test\n\
         userAccountControl: 514\n"
    ))?;
    Ok(dn)
}

fn set_password(dc: &SambaDc, dn: &str, password: &str) -> Result<()> {
    dc.ldapmodify(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {}\n",
        unicode_pwd(password)
    ))
}

fn replace(dc: &SambaDc, dn: &str, attribute: &str, value: &str) -> Result<()> {
    dc.ldapmodify(&format!("dn: {dn}\nchangetype: modify\nreplace: {attribute}\n{attribute}: {value}\n"))
}

#[test]
fn bind_outcomes_follow_the_account_as_in_ad() -> Result<()> {
    let dc = start();
    let dn = add_user(&dc, "alice")?;
    let password = "Corr3ct-Horse!";
    set_password(&dc, &dn, password)?;
    assert_eq!(dc.check_bind("alice@example.test", password)?, BindOutcome::Disabled, "514 is disabled");

    replace(&dc, &dn, "userAccountControl", "512")?;
    assert_eq!(dc.check_bind("alice@example.test", password)?, BindOutcome::Ok);
    assert_eq!(dc.check_bind(&dn, password)?, BindOutcome::Ok, "by DN as well as by UPN");
    assert_eq!(dc.check_bind("alice@example.test", "Wr0ng-Horse!")?, BindOutcome::BadPassword);

    replace(&dc, &dn, "pwdLastSet", "0")?;
    assert_eq!(dc.check_bind("alice@example.test", password)?, BindOutcome::MustChangePassword);
    replace(&dc, &dn, "pwdLastSet", "-1")?;
    assert_eq!(dc.check_bind("alice@example.test", password)?, BindOutcome::Ok, "-1 sets it to now");

    replace(&dc, &dn, "userAccountControl", "514")?;
    assert_eq!(dc.check_bind("alice@example.test", password)?, BindOutcome::Disabled);
    assert_eq!(
        dc.check_bind("alice@example.test", "Wr0ng-Horse!")?,
        BindOutcome::BadPassword,
        "AD checks the password before the account state"
    );
    assert!(dc.check_bind("alice@example.test", "").is_err(), "an empty password would bind anonymously");
    Ok(())
}

#[test]
fn passwords_follow_ad_complexity_unless_turned_off() -> Result<()> {
    let complex = start();
    let dn = add_user(&complex, "bob")?;
    let error = set_password(&complex, &dn, "simplepassword").expect_err("complexity is on by default");
    assert!(format!("{error:#}").contains("0000052D"), "{error:#}");

    let relaxed = SambaDc::start(SambaOptions { password_complexity: false, ..SambaOptions::default() })?;
    let dn = add_user(&relaxed, "bob")?;
    set_password(&relaxed, &dn, "simplepassword")?;
    replace(&relaxed, &dn, "userAccountControl", "512")?;
    assert_eq!(relaxed.check_bind("bob@example.test", "simplepassword")?, BindOutcome::Ok);
    let error = set_password(&relaxed, &dn, "short").expect_err("the minimum length stays");
    assert!(format!("{error:#}").contains("too short"), "{error:#}");
    let settings = relaxed.samba_tool(&["domain", "passwordsettings", "show"])?;
    assert!(settings.contains("Password complexity: off"), "{settings}");
    Ok(())
}

#[test]
fn base_ous_are_created_and_users_move_between_them() -> Result<()> {
    let dc = SambaDc::start(SambaOptions {
        base_ous: ["OU=People", "OU=Staff,OU=People", "OU=Groups", "OU=Leavers"].map(String::from).to_vec(),
        ..SambaOptions::default()
    })?;
    let units = dc.search(dc.domain_dn(), "(objectClass=organizationalUnit)", &["1.1"])?;
    for ou in ["OU=People", "OU=Staff,OU=People", "OU=Groups", "OU=Leavers"] {
        assert!(units.contains(&format!("dn: {ou},DC=example,DC=test\n")), "no {ou} in:\n{units}");
    }
    assert!(!units.contains('#'), "references are left out:\n{units}");

    let dn = add_user(&dc, "carol")?;
    dc.ldapmodify(&format!(
        "dn: {dn}\nchangetype: modrdn\nnewrdn: CN=carol\ndeleteoldrdn: 1\nnewsuperior: OU=Leavers,{}\n",
        dc.domain_dn()
    ))?;
    let found = dc.search(dc.domain_dn(), "(sAMAccountName=carol)", &["1.1"])?;
    assert_eq!(found, "dn: CN=carol,OU=Leavers,DC=example,DC=test\n");
    Ok(())
}

#[test]
fn dcs_started_together_get_their_own_addresses() -> Result<()> {
    let dcs: Vec<SambaDc> = (0..2)
        .map(|_| thread::spawn(|| SambaDc::start(SambaOptions::default())))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().expect("no panic"))
        .collect::<Result<_>>()?;
    ensure!(dcs[0].ip() != dcs[1].ip(), "both DCs on {}", dcs[0].ip());
    for (login, dc, other) in [("first", &dcs[0], &dcs[1]), ("second", &dcs[1], &dcs[0])] {
        assert!(dc.ip().is_loopback());
        add_user(dc, login)?;
        let filter = format!("(sAMAccountName={login})");
        assert_eq!(dc.search(dc.domain_dn(), &filter, &["1.1"])?.lines().count(), 1);
        assert_eq!(other.search(other.domain_dn(), &filter, &["1.1"])?, "", "each DC has its own data");
    }
    Ok(())
}

#[test]
fn the_ldaps_certificate_is_for_the_address_and_verifies_with_the_ca() -> Result<()> {
    let dc = start();
    let s_client = |ca: &std::path::Path, ip: &str| -> Result<std::process::Output> {
        Ok(Command::new("openssl")
            .args(["s_client", "-verify_return_error", "-verify_ip", ip, "-CAfile"])
            .arg(ca)
            .args(["-connect", &format!("{}:636", dc.ip())])
            .stdin(std::process::Stdio::null())
            .output()?)
    };
    let verified = s_client(&dc.ca_cert_path(), &dc.ip().to_string())?;
    let printed = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success() && printed.contains("Verify return code: 0 (ok)"), "{printed}");

    let wrong_address = s_client(&dc.ca_cert_path(), "127.0.0.1")?;
    assert!(!wrong_address.status.success(), "the certificate names only its own address");
    let other_ca = tempfile::NamedTempFile::new()?;
    std::fs::write(other_ca.path(), std::fs::read(start().ca_cert_path())?)?;
    assert!(!s_client(other_ca.path(), &dc.ip().to_string())?.status.success(), "each DC has its own CA");
    Ok(())
}

#[test]
fn rustls_accepts_the_certificate_and_binds_as_the_admin() -> Result<()> {
    let dc = start();
    assert_rustls_binds(&dc.ca_cert_path(), &dc.ldaps_url(), dc.admin_dn(), dc.admin_password())
}

#[test]
fn the_accessors_describe_the_dc() {
    let dc = start();
    assert_eq!(dc.ldap_url(), format!("ldap://{}:389", dc.ip()));
    assert_eq!(dc.ldaps_url(), format!("ldaps://{}:636", dc.ip()));
    assert_eq!(dc.domain_dn(), "DC=example,DC=test");
    assert_eq!(dc.realm(), "EXAMPLE.TEST");
    assert_eq!(dc.admin_dn(), "CN=Administrator,CN=Users,DC=example,DC=test");
    assert_eq!(dc.check_bind(dc.admin_upn(), dc.admin_password()).unwrap(), BindOutcome::Ok);
    assert!(dc.log_path().starts_with(dc.dir()) && dc.ca_cert_path().starts_with(dc.dir()));
    assert!(dc.samba_tool(&["user", "list"]).unwrap().lines().any(|user| user == "Administrator"));
}

fn address_on_lo(ip: Ipv4Addr) -> Result<bool> {
    let listing = Command::new("ip").args(["-o", "-4", "addr", "show", "dev", "lo"]).output()?;
    Ok(String::from_utf8(listing.stdout)?.contains(&format!("inet {ip}/")))
}

#[test]
fn dropping_stops_samba_and_removes_folder_address_and_lease() -> Result<()> {
    let dc = start();
    let pid = dc.running_pid().context("a pid file naming a live samba")?;
    let (dir, ip) = (dc.dir().to_owned(), dc.ip());
    assert!(address_on_lo(ip)?, "the DC's address is on lo while it runs");
    drop(dc);
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "samba {pid} still runs");

    // Another test's DC may lease the address at once and put it back on lo: look while holding
    // the lease's lock, once nobody else does.
    let lock = std::fs::File::open(format!("/tmp/roster-samba-{ip}.lock"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while lock.try_lock().is_err() {
        ensure!(std::time::Instant::now() < deadline, "the lease of {ip} is still held");
        thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!address_on_lo(ip)?, "{ip} is left on lo");
    Ok(())
}

/// A test runner kills a test that hangs, with SIGKILL at worst: its DC must not outlive it.
#[test]
fn a_dc_dies_with_the_test_process_that_started_it() -> Result<()> {
    use std::io::BufRead;
    // The killed process cannot remove its folder: this test's does.
    let parent = tempfile::tempdir()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "start_a_dc_and_wait_to_be_killed", "--ignored", "--nocapture"])
        .env("ROSTER_TESTKIT_DC_DIR", parent.path().join("dc"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = std::io::BufReader::new(child.stdout.take().context("piped stdout")?);
    let line = stdout.lines().map_while(Result::ok).find(|line| line.starts_with("samba pid "));
    child.kill()?;
    child.wait()?;
    let pid = line.context("the child printed no samba pid")?["samba pid ".len()..].trim().to_owned();
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gone() && std::time::Instant::now() < deadline {
        thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(gone(), "samba {pid} outlived the killed test process");
    Ok(())
}

#[test]
#[ignore = "run by a_dc_dies_with_the_test_process_that_started_it in a child process"]
fn start_a_dc_and_wait_to_be_killed() -> Result<()> {
    let dir = std::env::var_os("ROSTER_TESTKIT_DC_DIR").context("ROSTER_TESTKIT_DC_DIR is set by the parent test")?;
    let dc = SambaDc::start(SambaOptions { dir: Some(dir.into()), ..SambaOptions::default() })?;
    println!("samba pid {}", dc.running_pid().context("a running samba")?);
    thread::sleep(std::time::Duration::from_secs(60));
    Ok(())
}

fn stop_in(dir: &std::path::Path) {
    if let Ok(mut dc) = SambaDc::attach(dir) {
        let _ = dc.stop();
    }
}

#[test]
fn a_detached_dc_keeps_running_until_attach_stops_it_and_starts_again_with_its_data() -> Result<()> {
    let parent = tempfile::tempdir()?;
    let dir = parent.path().join("dc");
    let _stop = StopOnDrop(&dir, stop_in);
    assert!(start().into_detached().is_err(), "a test's DC dies with its process, so it cannot be detached");

    let detached =
        SambaDc::start(SambaOptions { dir: Some(dir.clone()), detachable: true, ..SambaOptions::default() })?
            .into_detached()?;
    let ip = detached.ip();
    drop(detached);

    let mut attached = SambaDc::attach(&dir)?;
    assert_eq!(attached.ip(), ip);
    assert!(attached.running_pid().is_some(), "dropping a detached handle leaves samba running");
    add_user(&attached, "kept")?;
    assert!(
        SambaDc::start(SambaOptions { dir: Some(dir.clone()), ..SambaOptions::default() }).is_err(),
        "a second instance in the same folder is refused"
    );

    attached.stop()?;
    assert!(attached.running_pid().is_none());
    assert!(!address_on_lo(ip)?, "stop takes the address off lo");
    attached.start_again()?;
    assert_eq!(attached.search(attached.domain_dn(), "(sAMAccountName=kept)", &["1.1"])?.lines().count(), 1);
    attached.stop()?;
    assert!(dir.join("private/sam.ldb").exists(), "a given folder stays");
    Ok(())
}

#[test]
fn the_cli_starts_reports_and_stops_a_dc_that_outlives_it() -> Result<()> {
    let parent = tempfile::tempdir()?;
    let dir = parent.path().join("quickstart");
    let _stop = StopOnDrop(&dir, stop_in);
    let cli = |args: &[&str]| run_cli("samba", &dir, args);

    let (lines, _) = cli(&["start", "--ou", "OU=People"])?;
    let value = |name: &str| shell_value(&lines, name);
    let url = value("ROSTER_AD_URL")?;
    assert!(url.starts_with("ldaps://127.0.0.") && url.ends_with(":636"), "{url}");
    let output = Command::new("ldapsearch")
        .args(["-x", "-LLL", "-H", &url, "-D", &value("ROSTER_AD_BIND_DN")?, "-w", &value("ROSTER_AD_PASSWORD")?])
        .args(["-b", &format!("OU=People,{}", value("ROSTER_AD_BASE")?), "-s", "base", "1.1"])
        .env("LDAPTLS_CACERT", value("ROSTER_AD_CA")?)
        .env("LDAPTLS_REQCERT", "demand")
        .output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let (again, message) = cli(&["start"])?;
    assert_eq!(again, lines, "a second start reports the running instance");
    assert!(message.contains("already running"), "{message}");

    cli(&["stop"])?;
    assert!(SambaDc::attach(&dir)?.running_pid().is_none());
    cli(&["start"])?;
    assert!(SambaDc::attach(&dir)?.running_pid().is_some(), "a stopped instance starts again");
    cli(&["stop"])?;
    Ok(())
}

#[test]
fn a_samba_that_fails_to_start_is_an_error_with_what_it_printed() -> Result<()> {
    let parent = tempfile::tempdir()?;
    let dir = parent.path().join("dc");
    let _stop = StopOnDrop(&dir, stop_in);
    SambaDc::start(SambaOptions { dir: Some(dir.clone()), detachable: true, ..SambaOptions::default() })?
        .into_detached()?;
    let mut dc = SambaDc::attach(&dir)?;
    dc.stop()?;
    // The domain's own keys: without them the KDC, and so samba, cannot start.
    std::fs::remove_file(dir.join("private/secrets.ldb"))?;

    let message = format!("{:#}", dc.start_again().expect_err("samba cannot start without its secrets"));
    assert!(message.contains("samba exited"), "{message}");
    assert!(message.contains("samba version 4."), "samba's own output is in the error:\n{message}");
    assert!(!address_on_lo(dc.ip())?, "a failed start leaves no address on lo");
    Ok(())
}

#[test]
fn base_ous_that_are_not_ous_under_the_domain_are_refused_before_anything_starts() {
    let error = SambaDc::start(SambaOptions { base_ous: vec!["CN=People".to_owned()], ..SambaOptions::default() })
        .err()
        .expect("CN=People is not an OU");
    assert!(format!("{error:#}").contains("expected an OU relative to DC=example,DC=test"), "{error:#}");
}
