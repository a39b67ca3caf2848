//! An HTTP client for roster's outgoing calls that are not a source (webhooks): the same TLS
//! settings and certificate checks as the LDAP target (`tls.ca_file`, `tls.insecure_skip_verify`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use roster_core::config::TlsConfig;

/// A client for `name` (a webhook), each request limited to `timeout`, redirects not followed
/// (a signed event goes to the configured URL or nowhere).
pub fn client(name: &str, tls: &TlsConfig, config_dir: &Path, timeout: Duration) -> Result<reqwest::Client, String> {
    let config = crate::target::ldap::tls::client_config(name, tls, config_dir).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .use_preconfigured_tls(Arc::unwrap_or_clone(config))
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("{name}: building the HTTP client: {e}"))
}
