//! Identifiers compared only as a keyed hash: the values of `[correlation] hashed` attributes
//! (a national ID) are replaced by `hmac:<hex>` of HMAC-SHA256 under `[correlation] hash_key` as
//! soon as a source is read, so the clear value reaches neither the planner, the plan, the store
//! nor the audit trail. Equal IDs hash equal, whatever the source, so they still correlate.

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use roster_core::source::{FieldValue, SourceRead};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::run::Loaded;

/// The shortest key accepted, as for the audit chain.
const MIN_KEY_BYTES: usize = 32;

/// Replaces the hashed attributes' values in a fresh read.
pub(crate) fn hash_identifiers(loaded: &Loaded, mut read: SourceRead) -> Result<SourceRead> {
    let correlation = &loaded.settings.correlation;
    if correlation.hashed.is_empty() {
        return Ok(read);
    }
    let Some(reference) = &correlation.hash_key else { bail!("correlation.hash_key is required with hashed") };
    let key = crate::secrets::resolve(reference, &loaded.config_dir).context("correlation.hash_key")?;
    let key = key.expose_secret().as_bytes();
    if key.len() < MIN_KEY_BYTES {
        bail!(
            "correlation.hash_key {}: expected at least {MIN_KEY_BYTES} bytes (make one with `openssl rand -hex 32`), found {}",
            reference.0,
            key.len()
        );
    }
    let mac = Hmac::<Sha256>::new_from_slice(key).context("correlation.hash_key")?;
    for record in &mut read.records {
        for attr in &correlation.hashed {
            // The record was just read, so its attributes are not shared yet: no copy is made.
            let attrs = std::sync::Arc::make_mut(&mut record.attrs);
            if let Some(value) = attrs.get(attr.as_str()) {
                let hashed = keyed_hash(mac.clone(), value.as_text());
                attrs.insert(attr.as_str().into(), FieldValue::Text(hashed));
            }
        }
    }
    Ok(read)
}

/// `hmac:` and the hex digest of the value with spaces, dashes and dots removed and letters in
/// upper case, so `123-45-6789` and `123 45 6789` are one ID.
fn keyed_hash(mut mac: Hmac<Sha256>, value: &str) -> String {
    let canonical: String =
        value.chars().filter(|c| !c.is_whitespace() && !matches!(c, '-' | '.')).flat_map(char::to_uppercase).collect();
    mac.update(canonical.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("hmac:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_does_not_change_the_hash_but_the_key_does() {
        let mac = |key: &[u8]| Hmac::<Sha256>::new_from_slice(key).unwrap();
        let a = keyed_hash(mac(&[7; 32]), "123-45-6789");
        assert_eq!(a, keyed_hash(mac(&[7; 32]), " 123 45 6789 "));
        assert_ne!(a, keyed_hash(mac(&[8; 32]), "123-45-6789"));
        assert_ne!(a, keyed_hash(mac(&[7; 32]), "123-45-6788"));
        assert!(a.starts_with("hmac:") && a.len() == 5 + 64 && !a.contains("6789"));
    }
}
