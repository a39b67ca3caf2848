//! Secret references from the config (`env:NAME`, `file:PATH`), resolved at the last moment. The
//! value never appears in a message: errors name the reference only.

use std::path::Path;

use anyhow::{Context, Result, bail};
use roster_core::config::SecretRef;
use secrecy::SecretString;

pub fn resolve(reference: &SecretRef, config_dir: &Path) -> Result<SecretString> {
    let r = reference.0.as_str();
    if let Some(name) = r.strip_prefix("env:") {
        let value =
            std::env::var(name).with_context(|| format!("secret {r}: environment variable {name} is not set"))?;
        if value.is_empty() {
            bail!("secret {r}: environment variable {name} is empty");
        }
        return Ok(SecretString::from(value));
    }
    if let Some(path) = r.strip_prefix("file:") {
        let full = config_dir.join(path);
        let text =
            std::fs::read_to_string(&full).with_context(|| format!("secret {r}: cannot read {}", full.display()))?;
        let value = text.trim_end_matches(['\n', '\r']).to_string();
        if value.is_empty() {
            bail!("secret {r}: {} is empty", full.display());
        }
        return Ok(SecretString::from(value));
    }
    bail!("secret reference {r:?}: expected env:NAME or file:PATH")
}
