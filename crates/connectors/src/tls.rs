//! The certificates a TLS connection trusts, for every connector that speaks TLS (the LDAP target,
//! REST sources): the CA(s) in a configured PEM file and nothing else, or the operating system's
//! roots (through `rustls-native-certs`). Messages say what is wrong; the caller says which
//! connection and key.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// The crypto provider every connection uses, passed explicitly rather than taken from the process
/// default, so another crate enabling a second rustls provider can never make building a config
/// panic.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that verifies the server against `roots`.
pub(crate) fn verifying_config(roots: RootCertStore) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The CA certificates of a PEM file; an error says what is wrong with the file (the caller names
/// it and its key).
pub(crate) fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {} is not valid PEM: {e}", i + 1))?;
        roots.add(cert).map_err(|e| format!("certificate {} cannot be trusted as a CA: {e}", i + 1))?;
    }
    if roots.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_string());
    }
    Ok(roots)
}

/// The operating system's CA certificates; `None` when there are none. `context` names the
/// connection in the log's warnings about certificates that could not be loaded.
pub(crate) fn system_roots(context: &str) -> Option<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(connection = context, "loading the system's CA certificates: {error}");
    }
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    (!roots.is_empty()).then_some(roots)
}
