//! A throwaway CA and a server certificate for 127.0.0.1 and localhost, made with the `openssl`
//! program.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::config::TlsFiles;
use crate::process::{require_program, run};

/// rustls (what roster connects with) rejects a server certificate without subjectAltName, and
/// webpki wants the CA marked as one; P-256 keys are made in milliseconds where RSA takes longer.
const OPENSSL_CONFIG: &str = "\
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
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

pub(super) fn files_in(dir: &Path) -> TlsFiles {
    let tls_dir = dir.join("tls");
    TlsFiles {
        ca_cert: tls_dir.join("ca.crt"),
        server_cert: tls_dir.join("server.crt"),
        server_key: tls_dir.join("server.key"),
    }
}

pub(super) fn make_certificates(dir: &Path) -> Result<TlsFiles> {
    let openssl = require_program("openssl", "openssl")?;
    let files = files_in(dir);
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).with_context(|| format!("could not create {}", tls_dir.display()))?;
    let config = tls_dir.join("openssl.cnf");
    std::fs::write(&config, OPENSSL_CONFIG).with_context(|| format!("could not write {}", config.display()))?;
    let ca_key = tls_dir.join("ca.key");
    let csr = tls_dir.join("server.csr");
    let new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

    run(
        Command::new(&openssl)
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
            .arg(&ca_key)
            .arg("-out")
            .arg(&files.ca_cert),
        None,
    )
    .context("could not make the throwaway CA")?;
    run(
        Command::new(&openssl)
            .args(["req", "-new", "-subj", "/CN=localhost"])
            .args(new_key)
            .arg("-config")
            .arg(&config)
            .arg("-keyout")
            .arg(&files.server_key)
            .arg("-out")
            .arg(&csr),
        None,
    )
    .context("could not make the server's certificate request")?;
    run(
        Command::new(&openssl)
            .args(["x509", "-req", "-days", "3650", "-set_serial", "2", "-extensions", "server_ext"])
            .arg("-extfile")
            .arg(&config)
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&files.ca_cert)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-out")
            .arg(&files.server_cert),
        None,
    )
    .context("could not sign the server certificate")?;
    Ok(files)
}
