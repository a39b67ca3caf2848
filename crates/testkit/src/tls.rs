//! A throwaway CA and a server certificate signed by it, made with the `openssl` program, for a
//! server on one loopback address.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::process::{require_program, run};

/// The files in an instance folder's `tls/`.
pub(crate) struct TlsFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

pub(crate) fn files_in(dir: &Path) -> TlsFiles {
    let tls_dir = tls_dir(dir);
    TlsFiles {
        ca_cert: tls_dir.join("ca.crt"),
        ca_key: tls_dir.join("ca.key"),
        server_cert: tls_dir.join("server.crt"),
        server_key: tls_dir.join("server.key"),
    }
}

pub(crate) fn tls_dir(dir: &Path) -> PathBuf {
    dir.join("tls")
}

/// rustls (what roster connects with) rejects a server certificate without subjectAltName, and
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

/// Makes the CA in `dir/tls` unless one is there, and a new server certificate signed by it for
/// `ip` and `localhost`, with `common_name` as its subject and `serial` as its serial number.
pub(crate) fn make_certificates(dir: &Path, ip: Ipv4Addr, common_name: &str, serial: u64) -> Result<TlsFiles> {
    let openssl = require_program("openssl", "openssl")?;
    let files = files_in(dir);
    let tls_dir = tls_dir(dir);
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
    // openssl writes keys 0600, as servers that refuse a key file others may read (Samba) want.
    let mut request = Command::new(&openssl);
    request
        .args(["req", "-new", "-subj", &format!("/CN={common_name}")])
        .args(new_key)
        .arg("-config")
        .arg(&config)
        .arg("-keyout")
        .arg(&files.server_key)
        .arg("-out")
        .arg(&csr);
    run(&mut request, None).context("could not make the server's certificate request")?;
    let mut sign = Command::new(&openssl);
    sign.args(["x509", "-req", "-days", "3650", "-set_serial", &serial.to_string(), "-extensions", "server_ext"])
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
    Ok(files)
}
