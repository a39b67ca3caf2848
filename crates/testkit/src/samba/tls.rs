//! The DC's certificate, for its loopback address.
//!
//! Samba makes its own certificate at first start, but without subjectAltName, which rustls (what
//! roster connects with) rejects; and it names the host, where tests connect by IP (there is no
//! DNS for `example.test`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::tls::{TlsFiles, files_in, make_certificates, tls_dir};

/// The address the server certificate was made for, so that a DC started again on another one
/// gets a new certificate.
fn server_ip_file(dir: &Path) -> PathBuf {
    tls_dir(dir).join("server.ip")
}

/// Makes the CA once per instance folder, and a server certificate for `ip` unless the one there
/// is for `ip` already.
pub(super) fn ensure_certificates(dir: &Path, ip: Ipv4Addr) -> Result<TlsFiles> {
    let files = files_in(dir);
    let server_ip = server_ip_file(dir);
    if std::fs::read_to_string(&server_ip).is_ok_and(|made_for| made_for == ip.to_string())
        && files.server_cert.is_file()
    {
        return Ok(files);
    }
    let files = make_certificates(dir, ip, &ip.to_string(), serial())?;
    std::fs::write(&server_ip, ip.to_string()).with_context(|| format!("could not write {}", server_ip.display()))?;
    Ok(files)
}

/// A new serial for each certificate the CA signs, as clients that cache certificates expect.
fn serial() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    (nanos % (1 << 62)) as u64
}
