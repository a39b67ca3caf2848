//! `roster init`: a starter configuration and sample HR data, ready for `roster run`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const CONFIG_TEMPLATE: &str = include_str!("../templates/roster.toml");
const SAMPLE_WORKERS: &str = include_str!("../templates/workers.csv");

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Folder to write roster.toml and exports/workers.csv into (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The LDAP server (`ldaps://host:port`).
    #[arg(long, default_value = "ldaps://ldap.example.org:636")]
    pub ldap_url: String,
    /// The directory suffix under which ou=people and ou=groups live.
    #[arg(long, default_value = "dc=example,dc=org")]
    pub base: String,
    /// The DN roster binds as (its password comes from ROSTER_LDAP_PASSWORD).
    #[arg(long, default_value = "cn=roster,ou=services,dc=example,dc=org")]
    pub bind_dn: String,
    /// PEM file of the CA that signed the server's certificate (default: the system's trusted CAs).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// The starter configuration for these settings.
pub fn render_config(ldap_url: &str, base: &str, bind_dn: &str, ca_file: Option<&Path>) -> String {
    // A plain ldap:// URL is upgraded with StartTLS: roster never sends a bind password in clear.
    let starttls = if ldap_url.starts_with("ldap://") { ", starttls = true" } else { "" };
    let tls = match ca_file {
        Some(ca) => format!("tls = {{ ca_file = {:?}{starttls} }}", ca.display().to_string()),
        None if !starttls.is_empty() => "tls = { starttls = true }".to_string(),
        None => "# tls = { ca_file = \"ca.pem\" }      # trust this CA instead of the system's".to_string(),
    };
    CONFIG_TEMPLATE
        .replace("{{LDAP_URL}}", ldap_url)
        .replace("{{BASE}}", base)
        .replace("{{BIND_DN}}", bind_dn)
        .replace("{{TLS}}", &tls)
}

pub fn init(args: &InitArgs) -> Result<()> {
    let config_path = args.dir.join("roster.toml");
    let workers_path = args.dir.join("exports").join("workers.csv");
    for path in [&config_path, &workers_path] {
        if path.exists() && !args.force {
            bail!("{} exists already (use --force to overwrite)", path.display());
        }
    }
    std::fs::create_dir_all(args.dir.join("exports"))
        .with_context(|| format!("creating {}", args.dir.join("exports").display()))?;
    let ca = args.ca_file.as_deref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    std::fs::write(&config_path, render_config(&args.ldap_url, &args.base, &args.bind_dn, ca.as_deref()))
        .with_context(|| format!("writing {}", config_path.display()))?;
    std::fs::write(&workers_path, SAMPLE_WORKERS).with_context(|| format!("writing {}", workers_path.display()))?;
    println!("wrote {} and {}", config_path.display(), workers_path.display());
    println!("next: export ROSTER_LDAP_PASSWORD=..., then `roster --config {} plan`", config_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_configuration_is_valid() {
        let text = render_config(
            "ldaps://127.0.0.1:636",
            "dc=example,dc=org",
            "cn=admin,dc=example,dc=org",
            Some(Path::new("/tmp/ca.pem")),
        );
        if let Err(errors) = roster_core::settings::load(&text, "roster.toml") {
            panic!("{errors:#?}");
        }
        let without_ca =
            render_config("ldaps://ldap.example.org:636", "dc=corp,dc=example", "cn=roster,dc=corp,dc=example", None);
        assert!(roster_core::settings::load(&without_ca, "roster.toml").is_ok());
        let plain =
            render_config("ldap://ldap.example.org:389", "dc=example,dc=org", "cn=roster,dc=example,dc=org", None);
        assert!(plain.contains("starttls = true"), "{plain}");
        assert!(roster_core::settings::load(&plain, "roster.toml").is_ok());
    }
}
