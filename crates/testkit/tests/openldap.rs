//! The private OpenLDAP behaves as roster's tests rely on: overlays, locks, TLS, limits, restarts,
//! and instances that start side by side.

mod support;

use std::process::Command;
use std::thread;

use anyhow::{Context, Result, ensure};
use roster_testkit::{OpenLdap, OpenLdapOptions};
use support::{StopOnDrop, assert_rustls_binds, run_cli, shell_value};

fn start() -> OpenLdap {
    OpenLdap::start(OpenLdapOptions::default()).expect("OpenLDAP starts")
}

fn person(ldap: &OpenLdap, uid: &str, extra: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{suffix}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n{extra}\n",
        suffix = ldap.suffix()
    )
}

fn values(ldif: &str, attribute: &str) -> Vec<String> {
    let prefix = format!("{attribute}: ");
    ldif.lines().filter_map(|line| line.strip_prefix(&prefix)).map(str::to_owned).collect()
}

fn stop_in(dir: &std::path::Path) {
    if let Ok(mut ldap) = OpenLdap::attach(dir) {
        let _ = ldap.stop();
    }
}

fn rename(ldap: &OpenLdap, dn: &str, new_rdn: &str) -> Result<()> {
    ldap.ldapmodify(&format!("dn: {dn}\nchangetype: modrdn\nnewrdn: {new_rdn}\ndeleteoldrdn: 1\n"))
}

#[test]
fn member_of_is_computed_and_refint_rewrites_group_members_on_rename() -> Result<()> {
    let ldap = start();
    let suffix = ldap.suffix();
    ldap.ldapadd(&person(&ldap, "alice", ""))?;
    ldap.ldapadd(&format!(
        "dn: cn=staff,ou=groups,{suffix}\nobjectClass: groupOfNames\ncn: staff\nmember: uid=alice,ou=people,{suffix}\n"
    ))?;
    let alice = ldap.search(&format!("ou=people,{suffix}"), "(uid=alice)", &["memberOf"])?;
    assert_eq!(values(&alice, "memberOf"), [format!("cn=staff,ou=groups,{suffix}")]);

    rename(&ldap, &format!("uid=alice,ou=people,{suffix}"), "uid=alice.b")?;

    let group = ldap.search(&format!("ou=groups,{suffix}"), "(cn=staff)", &["member"])?;
    assert_eq!(values(&group, "member"), [format!("uid=alice.b,ou=people,{suffix}")]);
    Ok(())
}

#[test]
fn the_server_leaves_manager_references_alone_on_rename() -> Result<()> {
    let ldap = start();
    let suffix = ldap.suffix();
    let old_boss = format!("uid=boss,ou=people,{suffix}");
    ldap.ldapadd(&person(&ldap, "boss", ""))?;
    ldap.ldapadd(&person(&ldap, "worker", &format!("manager: {old_boss}")))?;

    rename(&ldap, &old_boss, "uid=big.boss")?;

    let worker = ldap.search(&format!("ou=people,{suffix}"), "(uid=worker)", &["manager"])?;
    assert_eq!(values(&worker, "manager"), [old_boss], "refint must not cover manager: roster keeps it right");
    Ok(())
}

#[test]
fn an_administrative_lock_makes_binds_fail() -> Result<()> {
    let ldap = start();
    let dn = format!("uid=locked,ou=people,{}", ldap.suffix());
    ldap.ldapadd(&person(&ldap, "locked", "userPassword: s3cret-Pw"))?;
    assert!(ldap.check_bind(&dn, "s3cret-Pw")?, "bind before the lock");
    assert!(!ldap.check_bind(&dn, "wrong")?, "a wrong password is refused");

    ldap.ldapmodify(&format!(
        "dn: {dn}\nchangetype: modify\nadd: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n"
    ))?;
    assert!(!ldap.check_bind(&dn, "s3cret-Pw")?, "bind after the lock");

    ldap.ldapmodify(&format!("dn: {dn}\nchangetype: modify\ndelete: pwdAccountLockedTime\n"))?;
    assert!(ldap.check_bind(&dn, "s3cret-Pw")?, "bind after unlocking");
    Ok(())
}

#[test]
fn ldaps_answers_with_a_certificate_from_the_throwaway_ca() -> Result<()> {
    let ldap = OpenLdap::start(OpenLdapOptions { tls: true, ..OpenLdapOptions::default() })?;
    let url = ldap.ldaps_url().context("an ldaps URL")?;
    let output = ldap
        .ldap_command("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            &url,
            "-D",
            ldap.admin_dn(),
            "-w",
            ldap.admin_password(),
            "-b",
            ldap.suffix(),
            "-s",
            "base",
            "dn",
        ])
        .output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8(output.stdout)?.trim(), format!("dn: {}", ldap.suffix()));

    // Without the CA, the certificate must not be trusted: the check is real.
    let untrusted = Command::new("ldapsearch")
        .args(["-x", "-H", &url, "-b", "", "-s", "base"])
        .env("LDAPTLS_CACERT", "/dev/null")
        .env("LDAPTLS_REQCERT", "demand")
        .output()?;
    assert!(!untrusted.status.success());
    Ok(())
}

#[test]
fn rustls_accepts_the_server_certificate() -> Result<()> {
    let ldap = OpenLdap::start(OpenLdapOptions { tls: true, ..OpenLdapOptions::default() })?;
    let ca = ldap.ca_cert_path().context("a CA")?;
    assert_rustls_binds(&ca, &ldap.ldaps_url().context("an ldaps URL")?, ldap.admin_dn(), ldap.admin_password())
}

#[test]
fn stop_and_start_again_keep_ports_and_data() -> Result<()> {
    let mut ldap = OpenLdap::start(OpenLdapOptions { tls: true, ..OpenLdapOptions::default() })?;
    let (url, ldaps_url) = (ldap.url(), ldap.ldaps_url());
    ldap.ldapadd(&person(&ldap, "survivor", ""))?;

    ldap.stop()?;
    assert!(!ldap.is_running());
    assert!(ldap.search(ldap.suffix(), "(uid=survivor)", &["uid"]).is_err(), "a stopped server does not answer");
    ldap.stop()?;

    ldap.start_again()?;
    assert!(ldap.is_running());
    assert_eq!((ldap.url(), ldap.ldaps_url()), (url, ldaps_url));
    let found = ldap.search(ldap.suffix(), "(uid=survivor)", &["uid"])?;
    assert_eq!(values(&found, "uid"), ["survivor"]);
    Ok(())
}

#[test]
fn dropping_stops_slapd_and_removes_the_folder() -> Result<()> {
    let ldap = start();
    let pid = ldap.running_pid().context("a pid file naming a live slapd")?;
    let dir = ldap.dir().to_owned();
    drop(ldap);
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "slapd {pid} still runs");
    Ok(())
}

#[test]
fn the_service_account_reads_everything_but_pages_past_its_size_limit() -> Result<()> {
    let ldap = OpenLdap::start(OpenLdapOptions { size_limit_for_service: Some(3), ..OpenLdapOptions::default() })?;
    let people = format!("ou=people,{}", ldap.suffix());
    let ldif: String = (0..7).map(|i| person(&ldap, &format!("p{i}"), "") + "\n").collect();
    ldap.ldapadd(&ldif)?;
    let search_as_service = |extra: &[&str]| {
        ldap.ldap_command("ldapsearch")
            .args(["-x", "-LLL", "-H", &ldap.url(), "-D", ldap.service_dn(), "-w", ldap.service_password()])
            .args(extra)
            .args(["-b", &people, "(uid=*)", "uid"])
            .output()
    };

    let unpaged = search_as_service(&[])?;
    assert_eq!(unpaged.status.code(), Some(4), "sizeLimitExceeded: {}", String::from_utf8_lossy(&unpaged.stderr));
    assert_eq!(values(&String::from_utf8(unpaged.stdout)?, "uid").len(), 3);

    let paged = search_as_service(&["-E", "pr=3/noprompt"])?;
    assert!(paged.status.success(), "{}", String::from_utf8_lossy(&paged.stderr));
    assert_eq!(values(&String::from_utf8(paged.stdout)?, "uid").len(), 7);

    // Read-only: the service account may not write.
    let write = ldap
        .ldap_command("ldapmodify")
        .args(["-a", "-x", "-H", &ldap.url(), "-D", ldap.service_dn(), "-w", ldap.service_password()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(person(&ldap, "intruder", "").as_bytes())?;
            child.wait()
        })?;
    assert_eq!(write.code(), Some(50), "insufficientAccessRights");
    Ok(())
}

#[test]
fn cn_config_can_be_changed_over_ldapi() -> Result<()> {
    let ldap = start();
    let units_seen_by_service = || -> Result<(Option<i32>, usize)> {
        let output = ldap
            .ldap_command("ldapsearch")
            .args(["-x", "-LLL", "-H", &ldap.url(), "-D", ldap.service_dn(), "-w", ldap.service_password()])
            .args(["-b", ldap.suffix(), "(objectClass=organizationalUnit)", "ou"])
            .output()?;
        Ok((output.status.code(), values(&String::from_utf8(output.stdout)?, "ou").len()))
    };
    assert_eq!(units_seen_by_service()?, (Some(0), 4), "people, groups, services, policies");

    ldap.modify_config(
        "dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcLimits\nolcLimits: {0}users size=1\n",
    )?;
    assert_eq!(units_seen_by_service()?, (Some(4), 1), "the new limit applies at once");
    Ok(())
}

#[test]
fn instances_start_side_by_side() -> Result<()> {
    let instances: Vec<OpenLdap> = (0..4)
        .map(|_| thread::spawn(|| OpenLdap::start(OpenLdapOptions::default())))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().expect("no panic"))
        .collect::<Result<_>>()?;
    let mut ports: Vec<u16> = instances.iter().map(OpenLdap::port).collect();
    ports.sort_unstable();
    ports.dedup();
    ensure!(ports.len() == instances.len(), "ports are shared: {ports:?}");
    for ldap in &instances {
        ldap.ldapadd(&person(ldap, "someone", ""))?;
    }
    Ok(())
}

#[test]
fn a_given_folder_keeps_a_detached_server_that_attach_finds_and_stops() -> Result<()> {
    let parent = tempfile::tempdir()?;
    let dir = parent.path().join("ldap");
    let _stop = StopOnDrop(&dir, stop_in);
    let detached =
        OpenLdap::start(OpenLdapOptions { dir: Some(dir.clone()), ..OpenLdapOptions::default() })?.into_detached();
    let url = detached.url();
    drop(detached);

    let mut attached = OpenLdap::attach(&dir)?;
    assert_eq!(attached.url(), url);
    assert!(attached.running_pid().is_some(), "dropping a detached handle leaves slapd running");
    attached.ldapadd(&person(&attached, "kept", ""))?;
    assert!(
        OpenLdap::start(OpenLdapOptions { dir: Some(dir.clone()), ..OpenLdapOptions::default() }).is_err(),
        "a second instance in the same folder is refused"
    );

    attached.stop()?;
    assert!(attached.running_pid().is_none());
    assert!(dir.join("data").exists(), "a given folder stays");
    Ok(())
}

#[test]
fn the_cli_starts_reports_and_stops_a_server_that_outlives_it() -> Result<()> {
    let parent = tempfile::tempdir()?;
    let dir = parent.path().join("quickstart");
    let _stop = StopOnDrop(&dir, stop_in);
    let cli = |args: &[&str]| run_cli("openldap", &dir, args);

    let (lines, _) = cli(&["start", "--tls"])?;
    let value = |name: &str| shell_value(&lines, name);
    let url = value("ROSTER_LDAP_URL")?;
    assert!(url.starts_with("ldaps://127.0.0.1:"), "{url}");
    let output = Command::new("ldapsearch")
        .args(["-x", "-LLL", "-H", &url, "-D", &value("ROSTER_LDAP_BIND_DN")?, "-w", &value("ROSTER_LDAP_PASSWORD")?])
        .args(["-b", &value("ROSTER_LDAP_BASE")?, "-s", "base", "dn"])
        .env("LDAPTLS_CACERT", value("ROSTER_LDAP_CA")?)
        .output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let (again, message) = cli(&["start", "--tls"])?;
    assert_eq!(again, lines, "a second start reports the running instance");
    assert!(message.contains("already running"), "{message}");

    cli(&["stop"])?;
    assert!(OpenLdap::attach(&dir)?.running_pid().is_none());
    let (restarted, _) = cli(&["start", "--tls"])?;
    assert_eq!(restarted, lines, "starting a stopped instance brings it back as it was");
    cli(&["stop"])?;
    Ok(())
}

#[test]
fn a_slapd_that_fails_to_start_is_an_error_with_what_it_printed() {
    let error = OpenLdap::start(OpenLdapOptions { log_level: "bogus".to_owned(), ..OpenLdapOptions::default() })
        .err()
        .expect("slapd refuses an unknown debug level");
    let message = format!("{error:#}");
    assert!(message.contains("slapd exited"), "{message}");
    assert!(message.contains(r#"unrecognized log level "bogus""#), "{message}");
}

#[test]
fn a_failed_start_leaves_the_given_folder_empty_for_the_next_one() -> Result<()> {
    let parent = tempfile::tempdir()?;
    let dir = parent.path().join("ldap");
    let _stop = StopOnDrop(&dir, stop_in);
    let bad_suffix =
        OpenLdapOptions { dir: Some(dir.clone()), suffix: "ou=nope".to_owned(), ..OpenLdapOptions::default() };
    let error = OpenLdap::start(bad_suffix).err().context("a suffix that is neither dc= nor o= is refused")?;
    assert!(format!("{error:#}").contains("expected dc= or o="), "{error:#}");
    assert_eq!(std::fs::read_dir(&dir)?.count(), 0);

    let ldap = OpenLdap::start(OpenLdapOptions {
        dir: Some(dir.clone()),
        suffix: "o=Acme".to_owned(),
        ..OpenLdapOptions::default()
    })?;
    assert_eq!(values(&ldap.search("o=Acme", "(objectClass=organization)", &["o"])?, "o"), ["Acme"]);
    Ok(())
}
