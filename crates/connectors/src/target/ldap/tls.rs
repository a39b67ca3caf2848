//! The rustls client configuration: which certificates a connection trusts.
//!
//! `tls.ca_file` set: exactly the CA(s) in that PEM file, nothing else. Unset: the operating system's
//! roots (through `rustls-native-certs`, which ldap3 already builds on). `tls.insecure_skip_verify`:
//! any certificate, with a warning in the log; the handshake signatures are still checked.
//!
//! The crypto provider (ring) is passed explicitly rather than taken from the process default, so
//! another crate enabling a second rustls provider can never make building the config panic.

use std::path::Path;
use std::sync::Arc;

use roster_core::config::TlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::target::{ErrorKind, TargetError};

pub(crate) fn client_config(
    target: &str,
    tls: &TlsConfig,
    config_dir: &Path,
) -> Result<Arc<ClientConfig>, TargetError> {
    let provider = crate::tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TargetError::new(ErrorKind::Tls, format!("target {target}: TLS setup: {e}")))?;
    let config = if tls.insecure_skip_verify {
        tracing::warn!(
            target_name = target,
            "tls.insecure_skip_verify is set: the server's certificate is not checked"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let roots = match &tls.ca_file {
            Some(file) => roots_from_file(target, &config_dir.join(file))?,
            None => system_roots(target)?,
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn roots_from_file(target: &str, path: &Path) -> Result<RootCertStore, TargetError> {
    crate::tls::roots_from_file(path).map_err(|what| {
        TargetError::new(ErrorKind::Config, format!("target {target}: tls.ca_file {}: {what}", path.display()))
    })
}

fn system_roots(target: &str) -> Result<RootCertStore, TargetError> {
    crate::tls::system_roots(target).ok_or_else(|| {
        TargetError::new(
            ErrorKind::Tls,
            format!(
                "target {target}: no system CA certificates found; set tls.ca_file to the PEM file of the directory's CA"
            ),
        )
    })
}

/// `tls.insecure_skip_verify`: accepts any certificate chain and name, but still checks that the
/// server holds the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_a_config_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let tls = TlsConfig { ca_file: Some("ca.pem".into()), ..Default::default() };
        let err = client_config("dir", &tls, dir.path()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message.contains("ca.pem") && err.message.contains("no PEM certificate"), "{}", err.message);
    }

    #[test]
    fn a_missing_ca_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsConfig { ca_file: Some("missing.pem".into()), ..Default::default() };
        let err = client_config("dir", &tls, dir.path()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message.contains("cannot read it"), "{}", err.message);
    }
}
