//! Bearer tokens. The config holds each token's SHA-256, never the token; a request's token is
//! hashed and compared with every configured hash in constant time. Tokens are never logged: an
//! error names the token by its configured name only.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use roster_core::config::TokenRole;
use roster_core::settings::TokenSettings;
use sha2::{Digest, Sha256};

use super::api::ApiError;

/// Who is calling: the token's name.
pub(crate) struct Caller {
    pub(crate) name: String,
}

impl Caller {
    /// The actor recorded in the audit trail for what this caller does.
    pub(crate) fn actor(&self) -> String {
        format!("api:{}", self.name)
    }
}

pub(crate) fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The caller of a request, when its token is one of `tokens` with at least role `needs`:
/// 401 for a missing or unknown token, 403 for a known one with too small a role.
pub(crate) fn authorize(tokens: &[TokenSettings], headers: &HeaderMap, needs: TokenRole) -> Result<Caller, ApiError> {
    let presented =
        bearer(headers).ok_or_else(|| ApiError::unauthorized("expected an Authorization: Bearer TOKEN header"))?;
    let token = configured(tokens, presented)
        .ok_or_else(|| ApiError::unauthorized("the bearer token is not one of serve.token"))?;
    if token.role < needs {
        return Err(ApiError::forbidden(format!(
            "token {} has role {}; this needs {} or above",
            token.name,
            role_name(token.role),
            role_name(needs)
        )));
    }
    Ok(Caller { name: token.name.clone() })
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The configured token `presented` is, if any (the API's bearer header and the console's login).
pub(crate) fn configured<'a>(tokens: &'a [TokenSettings], presented: &str) -> Option<&'a TokenSettings> {
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    // Every hash is compared, matched or not, so the time taken tells nothing of which matched.
    tokens.iter().fold(None, |found, t| if same(&t.sha256, &digest) { Some(t) } else { found })
}

/// `roster token hash`: the SHA-256 of a token, as `[[serve.token]] sha256` wants it.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.trim_end_matches(['\r', '\n']).as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn role_name(role: TokenRole) -> &'static str {
    match role {
        TokenRole::Viewer => "viewer",
        TokenRole::Operator => "operator",
        TokenRole::Approver => "approver",
    }
}
