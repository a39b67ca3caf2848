//! `roster-testkit`: starts and stops a private OpenLDAP server or Samba AD DC that outlives the
//! command, for the quickstart. Prints shell lines to `eval` or `source`; messages go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use roster_testkit::{OpenLdap, OpenLdapOptions, SambaDc, SambaOptions};

const USAGE: &str = "\
usage: roster-testkit openldap start --dir DIR [--port N] [--tls]
       roster-testkit openldap stop --dir DIR
       roster-testkit samba start --dir DIR [--ou OU=People]...
       roster-testkit samba stop --dir DIR

start  starts a private OpenLDAP in DIR (created if missing), or the one already built there,
       leaves it running, and prints ROSTER_LDAP_URL, ROSTER_LDAP_BASE, ROSTER_LDAP_BIND_DN,
       ROSTER_LDAP_PASSWORD (the admin) and, with --tls, ROSTER_LDAP_CA as shell lines; with
       --tls the URL is the ldaps:// one.
stop   stops the OpenLDAP running in DIR; its data stays for the next start.

samba start  starts a private Samba AD DC for EXAMPLE.TEST in DIR (created if missing) on a
             loopback address of its own (127.0.0.X: AD's ports cannot move), with the OUs
             given (relative to DC=example,DC=test), or the one already built there; prints
             ROSTER_AD_URL (ldaps://), ROSTER_AD_BASE, ROSTER_AD_BIND_DN, ROSTER_AD_PASSWORD
             (the Administrator) and ROSTER_AD_CA. Needs root (the address goes on lo).
samba stop   stops the DC running in DIR and takes its address off lo; its data stays.";

#[derive(Debug, PartialEq)]
enum Action {
    Start { dir: PathBuf, port: Option<u16>, tls: bool },
    Stop { dir: PathBuf },
    SambaStart { dir: PathBuf, base_ous: Vec<String> },
    SambaStop { dir: PathBuf },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = parse(&args).and_then(|action| match action {
        Action::Start { dir, port, tls } => start(dir, port, tls),
        Action::Stop { dir } => stop(dir),
        Action::SambaStart { dir, base_ous } => samba_start(dir, base_ous),
        Action::SambaStop { dir } => samba_stop(dir),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("roster-testkit: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<Action> {
    let (server, verb, rest) = match args {
        [server, verb, rest @ ..] => (server.as_str(), verb.as_str(), rest),
        _ => bail!("expected a server and an action\n{USAGE}"),
    };
    match server {
        "openldap" => {}
        "samba" => return parse_samba(verb, rest),
        _ => bail!("unknown server {server:?}: expected `openldap` or `samba`\n{USAGE}"),
    }
    let (mut dir, mut port, mut tls) = (None, None, false);
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--port" => {
                let text = value()?;
                port = Some(text.parse().with_context(|| format!("--port {text:?} is not a port number"))?);
            }
            "--tls" => tls = true,
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let dir = dir.with_context(|| format!("--dir DIR is required\n{USAGE}"))?;
    match verb {
        "start" => Ok(Action::Start { dir, port, tls }),
        "stop" if port.is_none() && !tls => Ok(Action::Stop { dir }),
        "stop" => bail!("stop takes only --dir\n{USAGE}"),
        other => bail!("unknown action {other:?}: expected start or stop\n{USAGE}"),
    }
}

fn parse_samba(verb: &str, rest: &[String]) -> Result<Action> {
    let (mut dir, mut base_ous) = (None, Vec::new());
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--ou" => base_ous.push(value()?.clone()),
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let dir = dir.with_context(|| format!("--dir DIR is required\n{USAGE}"))?;
    match verb {
        "start" => Ok(Action::SambaStart { dir, base_ous }),
        "stop" if base_ous.is_empty() => Ok(Action::SambaStop { dir }),
        "stop" => bail!("stop takes only --dir\n{USAGE}"),
        other => bail!("unknown action {other:?}: expected start or stop\n{USAGE}"),
    }
}

fn start(dir: PathBuf, port: Option<u16>, tls: bool) -> Result<()> {
    if OpenLdap::exists_in(&dir) {
        let mut ldap = OpenLdap::attach(&dir)?;
        if port.is_some_and(|port| port != ldap.port()) || tls != ldap.ldaps_url().is_some() {
            bail!(
                "the instance in {} was built with port {}{}; stop it and remove the folder to build another",
                ldap.dir().display(),
                ldap.port(),
                if ldap.ldaps_url().is_some() { " and --tls" } else { " and without --tls" }
            );
        }
        if let Some(pid) = ldap.running_pid() {
            eprintln!("roster-testkit: OpenLDAP is already running in {} (pid {pid})", ldap.dir().display());
        } else {
            ldap.start_again()?;
            eprintln!("roster-testkit: started the OpenLDAP in {} again", ldap.dir().display());
        }
        print!("{}", shell_lines(&ldap));
        return Ok(());
    }
    let ldap = OpenLdap::start(OpenLdapOptions {
        dir: Some(dir),
        port,
        tls,
        own_process_group: true,
        ..OpenLdapOptions::default()
    })?
    .into_detached();
    eprintln!(
        "roster-testkit: OpenLDAP started in {} (stop it with `roster-testkit openldap stop --dir {}`)",
        ldap.dir().display(),
        ldap.dir().display()
    );
    print!("{}", shell_lines(&ldap));
    Ok(())
}

fn stop(dir: PathBuf) -> Result<()> {
    let mut ldap = OpenLdap::attach(&dir)?;
    if ldap.running_pid().is_none() {
        eprintln!("roster-testkit: the OpenLDAP in {} is not running", ldap.dir().display());
        return Ok(());
    }
    ldap.stop()?;
    eprintln!("roster-testkit: stopped the OpenLDAP in {}", ldap.dir().display());
    Ok(())
}

fn samba_start(dir: PathBuf, base_ous: Vec<String>) -> Result<()> {
    if SambaDc::exists_in(&dir) {
        let mut dc = SambaDc::attach(&dir)?;
        if !base_ous.is_empty() {
            bail!(
                "{} already holds a DC: --ou applies only when one is built; add OUs over LDAP, or stop it and \
                 remove the folder",
                dc.dir().display()
            );
        }
        if let Some(pid) = dc.running_pid() {
            eprintln!("roster-testkit: the Samba DC in {} is already running (pid {pid})", dc.dir().display());
        } else {
            dc.start_again()?;
            eprintln!("roster-testkit: started the Samba DC in {} again on {}", dc.dir().display(), dc.ip());
        }
        print!("{}", samba_shell_lines(&dc));
        return Ok(());
    }
    let dc = SambaDc::start(SambaOptions { dir: Some(dir), base_ous, detachable: true, ..SambaOptions::default() })?
        .into_detached()?;
    eprintln!(
        "roster-testkit: Samba DC started in {} on {} (stop it with `roster-testkit samba stop --dir {}`)",
        dc.dir().display(),
        dc.ip(),
        dc.dir().display()
    );
    print!("{}", samba_shell_lines(&dc));
    Ok(())
}

fn samba_stop(dir: PathBuf) -> Result<()> {
    let mut dc = SambaDc::attach(&dir)?;
    if dc.running_pid().is_none() {
        eprintln!("roster-testkit: the Samba DC in {} is not running", dc.dir().display());
        return Ok(());
    }
    dc.stop()?;
    eprintln!("roster-testkit: stopped the Samba DC in {}", dc.dir().display());
    Ok(())
}

fn samba_shell_lines(dc: &SambaDc) -> String {
    let ca = dc.ca_cert_path().to_string_lossy().into_owned();
    [
        ("ROSTER_AD_URL", dc.ldaps_url().as_str()),
        ("ROSTER_AD_BASE", dc.domain_dn()),
        ("ROSTER_AD_BIND_DN", dc.admin_dn()),
        ("ROSTER_AD_PASSWORD", dc.admin_password()),
        ("ROSTER_AD_CA", ca.as_str()),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={}\n", shell_quote(value)))
    .collect()
}

/// `NAME=value` lines that `eval` and `source` accept; with TLS the URL is the `ldaps://` one.
fn shell_lines(ldap: &OpenLdap) -> String {
    let mut lines = vec![
        ("ROSTER_LDAP_URL", ldap.ldaps_url().unwrap_or_else(|| ldap.url())),
        ("ROSTER_LDAP_BASE", ldap.suffix().to_owned()),
        ("ROSTER_LDAP_BIND_DN", ldap.admin_dn().to_owned()),
        ("ROSTER_LDAP_PASSWORD", ldap.admin_password().to_owned()),
    ];
    if let Some(ca) = ldap.ca_cert_path() {
        lines.push(("ROSTER_LDAP_CA", ca.to_string_lossy().into_owned()));
    }
    lines.iter().map(|(name, value)| format!("{name}={}\n", shell_quote(value))).collect()
}

/// The value as is when the shell takes it literally, else in single quotes.
fn shell_quote(value: &str) -> String {
    let literal = |c: char| c.is_ascii_alphanumeric() || "_-.,:/=@%+".contains(c);
    if !value.is_empty() && value.chars().all(literal) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_start_and_stop() {
        assert_eq!(
            parse(&args("openldap start --dir d --port 3890 --tls")).unwrap(),
            Action::Start { dir: "d".into(), port: Some(3890), tls: true }
        );
        assert_eq!(parse(&args("openldap stop --dir d")).unwrap(), Action::Stop { dir: "d".into() });
        assert_eq!(
            parse(&args("samba start --dir d --ou OU=People --ou OU=Groups")).unwrap(),
            Action::SambaStart { dir: "d".into(), base_ous: vec!["OU=People".into(), "OU=Groups".into()] }
        );
        assert_eq!(parse(&args("samba stop --dir d")).unwrap(), Action::SambaStop { dir: "d".into() });
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for line in [
            "openldap start",
            "slapd start --dir d",
            "samba start",
            "samba start --dir d --tls",
            "samba stop --dir d --ou OU=People",
            "samba restart --dir d",
            "openldap start --dir",
            "openldap stop --dir d --tls",
            "openldap start --dir d --port x",
        ] {
            assert!(parse(&args(line)).is_err(), "{line}");
        }
    }

    #[test]
    fn quotes_only_what_the_shell_would_change() {
        assert_eq!(shell_quote("cn=admin,dc=example,dc=org"), "cn=admin,dc=example,dc=org");
        assert_eq!(shell_quote("/tmp/my dir/ca.crt"), "'/tmp/my dir/ca.crt'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
