//! A throwaway CA and a server certificate for the DC's loopback address, made with `openssl`.
//!
//! Samba makes its own certificate at first start, but without subjectAltName, which rustls (what
//! roster connects with) rejects; and it names the host, where tests connect by IP (there is no
//! DNS for `example.test`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::process::{require_program, run};

pub(super) struct TlsFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The address the server certificate was made for, so that a DC started again on another
    /// one gets a new certificate.
    pub server_ip: PathBuf,
}

pub(super) fn files_in(dir: &Path) -> TlsFiles {
    let tls_dir = dir.join("tls");
    TlsFiles {
        ca_cert: tls_dir.join("ca.crt"),
        ca_key: tls_dir.join("ca.key"),
        server_cert: tls_dir.join("server.crt"),
        server_key: tls_dir.join("server.key"),
        server_ip: tls_dir.join("server.ip"),
    }
}

/// webpki wants the CA marked as one; P-256 keys are made in milliseconds where RSA takes longer.
fn openssl_config(ip: Ipv4Addr) -> String {
    format!(
        "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:{ip}, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"
    )
}

/// Makes the CA once per instance folder, and a server certificate for `ip` unless the one there
/// is for `ip` already.
pub(super) fn ensure_certificates(dir: &Path, ip: Ipv4Addr) -> Result<TlsFiles> {
    let files = files_in(dir);
    let tls_dir = dir.join("tls");
    if std::fs::read_to_string(&files.server_ip).is_ok_and(|made_for| made_for == ip.to_string())
        && files.server_cert.is_file()
    {
        return Ok(files);
    }
    let openssl = require_program("openssl", "openssl")?;
    std::fs::create_dir_all(&tls_dir).with_context(|| format!("could not create {}", tls_dir.display()))?;
    let config = tls_dir.join("openssl.cnf");
    std::fs::write(&config, openssl_config(ip)).with_context(|| format!("could not write {}", config.display()))?;
    let csr = tls_dir.join("server.csr");
    let new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

    if !files.ca_cert.is_file() {
        let mut make_ca = Command::new(&openssl);
        make_ca
            .args([
                "req",
                "-x509",
                "-days",
                "3650",
                "-subj",
                "/CN=roster-testkit throwaway CA",
                "-extensions",
                "ca_ext",
            ])
            .args(new_key)
            .arg("-config")
            .arg(&config)
            .arg("-keyout")
            .arg(&files.ca_key)
            .arg("-out")
            .arg(&files.ca_cert);
        run(&mut make_ca, None).context("could not make the throwaway CA")?;
    }
    // Samba refuses a key file that others may read; openssl writes keys 0600.
    let mut request = Command::new(&openssl);
    request
        .args(["req", "-new", "-subj", &format!("/CN={ip}")])
        .args(new_key)
        .arg("-config")
        .arg(&config)
        .arg("-keyout")
        .arg(&files.server_key)
        .arg("-out")
        .arg(&csr);
    run(&mut request, None).context("could not make the server's certificate request")?;
    let mut sign = Command::new(&openssl);
    sign.args(["x509", "-req", "-days", "3650", "-set_serial", &serial(), "-extensions", "server_ext"])
        .arg("-extfile")
        .arg(&config)
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&files.ca_cert)
        .arg("-CAkey")
        .arg(&files.ca_key)
        .arg("-out")
        .arg(&files.server_cert);
    run(&mut sign, None).context("could not sign the server certificate")?;
    std::fs::write(&files.server_ip, ip.to_string())
        .with_context(|| format!("could not write {}", files.server_ip.display()))?;
    Ok(files)
}

/// A new serial for each certificate the CA signs, as clients that cache certificates expect.
fn serial() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    (nanos % (1 << 62)).to_string()
}
