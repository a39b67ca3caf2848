//! Initial passwords: made at the moment they are set, handed to the configured delivery, and
//! never written anywhere else (not the plan, the store, the audit trail or a log).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use roster_core::config::PasswordDelivery;
use secrecy::{ExposeSecret, SecretString};

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
/// Symbols that survive shells, CSV files and e-mail without quoting.
const SYMBOLS: &[u8] = b"!#%+-=?@^_~";

/// A uniformly random index below `n`, from the operating system's CSPRNG.
fn below(n: usize) -> Result<usize> {
    let n = u32::try_from(n).context("alphabet too large")?;
    // Rejection sampling: no modulo bias.
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let x = getrandom::u32().map_err(|e| anyhow::anyhow!("the system's random source failed: {e}"))?;
        if x < zone {
            return Ok((x % n) as usize);
        }
    }
}

/// A random password of `length` characters with at least one upper-case letter, lower-case letter,
/// digit and symbol: it meets Active Directory's complexity rules whatever the name.
pub fn generate(length: usize) -> Result<SecretString> {
    if length < 12 {
        bail!("password length {length} is below the minimum of 12");
    }
    let classes = [UPPER, LOWER, DIGITS, SYMBOLS];
    let all: Vec<u8> = classes.concat();
    let mut chars: Vec<u8> = Vec::with_capacity(length);
    for class in classes {
        chars.push(class[below(class.len())?]);
    }
    while chars.len() < length {
        chars.push(all[below(all.len())?]);
    }
    for i in (1..chars.len()).rev() {
        chars.swap(i, below(i + 1)?);
    }
    let text = String::from_utf8(chars).context("password alphabet is ASCII")?;
    Ok(SecretString::from(text))
}

/// Who a password belongs to, for the delivery.
pub struct Recipient<'a> {
    pub person: &'a str,
    pub login: &'a str,
    pub dn: &'a str,
}

/// Hands the password over. An error means it was not delivered: the caller treats the operation
/// as failed, and the next run sets a new password rather than retrying this one.
pub async fn deliver(
    delivery: &PasswordDelivery,
    who: &Recipient<'_>,
    password: &SecretString,
    config_dir: &Path,
) -> Result<()> {
    match delivery {
        PasswordDelivery::None => Ok(()),
        PasswordDelivery::Folder { path } => {
            let dir = config_dir.join(path);
            write_private_file(&dir, who, password)
        }
        PasswordDelivery::Command { program, args } => {
            run_command(&config_dir.join(program), args, who, password).await
        }
        // Needs the run's event: the apply hands it to `notify::hand_off` instead.
        PasswordDelivery::Webhook(hook) => bail!("webhook {hook}: a webhook hand-off is sent by the run"),
    }
}

fn safe_file_name(login: &str) -> String {
    login.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}

#[cfg(unix)]
fn write_private_file(dir: &Path, who: &Recipient<'_>, password: &SecretString) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.txt", safe_file_name(who.login)));
    // Replace any earlier file rather than write through it: a new file is created 0600 by us.
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("securing {}", path.display()))?;
    writeln!(
        file,
        "person: {}\nlogin: {}\ndn: {}\npassword: {}",
        who.person,
        who.login,
        who.dn,
        password.expose_secret()
    )
    .and_then(|()| file.sync_all())
    .with_context(|| format!("writing {}", path.display()))
}

#[cfg(not(unix))]
fn write_private_file(_dir: &Path, _who: &Recipient<'_>, _password: &SecretString) -> Result<()> {
    bail!("password delivery to a folder needs a Unix system (owner-only file permissions)")
}

async fn run_command(program: &Path, args: &[String], who: &Recipient<'_>, password: &SecretString) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("ROSTER_PERSON", who.person)
        .env("ROSTER_LOGIN", who.login)
        .env("ROSTER_DN", who.dn)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the password delivery command {}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(password.expose_secret().as_bytes()).await.context("writing to the delivery command")?;
        stdin.write_all(b"\n").await.context("writing to the delivery command")?;
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .context("the password delivery command did not finish within 60 s")?
        .context("waiting for the password delivery command")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: String = stderr.replace(password.expose_secret(), "[password]").chars().take(500).collect();
        bail!("the password delivery command {} failed ({}): {}", program.display(), output.status, stderr.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_complexity_and_differ() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let p = generate(16).unwrap();
            let s = p.expose_secret();
            assert_eq!(s.chars().count(), 16);
            assert!(s.bytes().any(|b| UPPER.contains(&b)));
            assert!(s.bytes().any(|b| LOWER.contains(&b)));
            assert!(s.bytes().any(|b| DIGITS.contains(&b)));
            assert!(s.bytes().any(|b| SYMBOLS.contains(&b)));
            seen.insert(s.to_string());
        }
        assert_eq!(seen.len(), 200);
        assert!(generate(8).is_err());
    }

    #[tokio::test]
    async fn folder_delivery_writes_an_owner_only_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let who =
            Recipient { person: "00042", login: "jose.garcia", dn: "uid=jose.garcia,ou=people,dc=example,dc=org" };
        let pw = SecretString::from("Secret-Pass-1234".to_string());
        let delivery = PasswordDelivery::Folder { path: "passwords".into() };
        deliver(&delivery, &who, &pw, dir.path()).await.unwrap();
        let file = dir.path().join("passwords/jose.garcia.txt");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.path().join("passwords")).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(std::fs::read_to_string(&file).unwrap().contains("password: Secret-Pass-1234"));
    }

    #[tokio::test]
    async fn a_failing_command_is_an_error_that_never_shows_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let who = Recipient { person: "1", login: "a", dn: "uid=a,dc=x" };
        let pw = SecretString::from("Echoed-Secret-99".to_string());
        let delivery = PasswordDelivery::Command {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "read p; echo \"cannot deliver $p for $ROSTER_LOGIN\" >&2; exit 3".into()],
        };
        let err = deliver(&delivery, &who, &pw, dir.path()).await.unwrap_err().to_string();
        assert!(err.contains("cannot deliver [password] for a"), "{err}");
        assert!(!err.contains("Echoed-Secret-99"), "{err}");
        let ok = PasswordDelivery::Command {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "read p; test -n \"$p\"".into()],
        };
        deliver(&ok, &who, &pw, dir.path()).await.unwrap();
    }
}
