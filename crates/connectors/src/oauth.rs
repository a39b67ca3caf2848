//! OAuth2 client credentials (RFC 6749 §4.4) against the Microsoft identity platform's v2.0 token
//! endpoint, `{authority}/{tenant}/oauth2/v2.0/token`: an application signs in as itself with a
//! client secret, or with a certificate (a client assertion, RFC 7523: a JWT signed PS256 with the
//! certificate's private key, whose header names the certificate by its SHA-256 thumbprint).
//!
//! A [`TokenSource`] fetches a token when first asked, keeps it until five minutes before it
//! expires, and fetches one anew after [`TokenSource::invalidate`] (a 401 from the API). Errors
//! carry the endpoint's `error` and AADSTS `error_description`, never the secret, the assertion or
//! a token.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use reqwest::header::ACCEPT;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RSA_PSS_SHA256, RsaKeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{RetryPolicy, send_retrying, status_text};
use crate::target::{ErrorKind, TargetError};

/// RFC 7523 §2.2: the client authenticates with a JWT.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an assertion is valid: Microsoft accepts at most ten minutes.
const ASSERTION_LIFETIME: u64 = 600;
/// A token is fetched anew this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How the application proves who it is.
pub enum ClientCredential {
    /// A client secret from the app registration's "Certificates & secrets".
    Secret(SecretString),
    /// A certificate uploaded to the app registration, and its private key.
    Certificate(CertificateCredential),
}

/// A certificate (its SHA-256 thumbprint) and its RSA private key, ready to sign assertions.
pub struct CertificateCredential {
    /// base64url of the SHA-256 of the certificate's DER: the header's `x5t#S256`.
    thumbprint: String,
    key: Arc<RsaKeyPair>,
}

impl std::fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCredential").field("x5t#S256", &self.thumbprint).finish_non_exhaustive()
    }
}

impl CertificateCredential {
    /// The certificate (PEM or DER) and its RSA private key (PEM, PKCS#8 `BEGIN PRIVATE KEY` or
    /// PKCS#1 `BEGIN RSA PRIVATE KEY`). An error says what is wrong, without the key.
    pub fn new(certificate: &[u8], key: &SecretString) -> Result<CertificateCredential, String> {
        let der = if certificate.starts_with(b"-----BEGIN") {
            CertificateDer::from_pem_slice(certificate)
                .map_err(|e| format!("the certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----): {e}"))?
        } else {
            CertificateDer::from(certificate.to_vec())
        };
        let key = match PrivateKeyDer::from_pem_slice(key.expose_secret().as_bytes()) {
            Ok(PrivateKeyDer::Pkcs8(key)) => RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()),
            Ok(PrivateKeyDer::Pkcs1(key)) => RsaKeyPair::from_der(key.secret_pkcs1_der()),
            Ok(_) => return Err("the private key is not an RSA key; Entra ID signs with RSA certificates".into()),
            Err(_) => {
                return Err("the private key is not PEM (expected -----BEGIN PRIVATE KEY----- or \
                            -----BEGIN RSA PRIVATE KEY-----)"
                    .into());
            }
        }
        .map_err(|e| format!("the private key cannot sign: {e}"))?;
        Ok(CertificateCredential {
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_ref())),
            key: Arc::new(key),
        })
    }

    /// A signed client assertion for `client_id` at `token_url`, valid from `now` for ten minutes.
    fn assertion(&self, client_id: &str, token_url: &Url, now: u64) -> Result<SecretString, String> {
        let rng = SystemRandom::new();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti).map_err(|_| "no randomness for the assertion's jti".to_string())?;
        let header = json!({ "alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint });
        let claims = json!({
            "aud": token_url.as_str(),
            "iss": client_id,
            "sub": client_id,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PSS_SHA256, &rng, signed.as_bytes(), &mut signature)
            .map_err(|_| "signing the assertion with the private key failed".to_string())?;
        Ok(SecretString::from(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))))
    }
}

/// Where and as whom to ask for tokens.
pub struct OAuthSettings {
    /// `{authority}/{tenant}/oauth2/v2.0/token` ([`token_url`]).
    pub token_url: Url,
    /// The application (client) id.
    pub client_id: String,
    /// `https://graph.microsoft.com/.default`: the application permissions granted to the app.
    pub scope: String,
    pub credential: ClientCredential,
    /// Retries while the endpoint answers 429 or 5xx.
    pub retry: RetryPolicy,
    /// Names the connection in messages (`target entra`).
    pub context: String,
}

/// The v2.0 token endpoint of `tenant` (a GUID or a verified domain) at `authority`
/// (`https://login.microsoftonline.com`, or a national cloud's).
pub fn token_url(authority: &str, tenant: &str) -> Result<Url, String> {
    if tenant.is_empty() || tenant.contains(['/', '?', '#']) || tenant.chars().any(char::is_whitespace) {
        return Err(format!(
            "tenant {tenant:?}: expected a tenant id (a GUID) or a domain such as contoso.onmicrosoft.com"
        ));
    }
    let base = authority.trim_end_matches('/');
    Url::parse(&format!("{base}/{tenant}/oauth2/v2.0/token"))
        .map_err(|e| format!("authority {authority:?}: expected a URL such as https://login.microsoftonline.com: {e}"))
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

struct Inner {
    settings: OAuthSettings,
    http: reqwest::Client,
    cached: Mutex<Option<Cached>>,
    /// One fetch at a time: concurrent callers wait for it and share its token.
    fetching: tokio::sync::Mutex<()>,
}

/// Access tokens for one application, fetched when needed and shared; cheap to clone.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.inner.settings.token_url.as_str())
            .field("client_id", &self.inner.settings.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(settings: OAuthSettings, http: reqwest::Client) -> TokenSource {
        TokenSource {
            inner: Arc::new(Inner { settings, http, cached: Mutex::new(None), fetching: tokio::sync::Mutex::new(()) }),
        }
    }

    fn cached(&self) -> Option<SecretString> {
        let cached = self.inner.cached.lock().unwrap_or_else(PoisonError::into_inner);
        cached.as_ref().filter(|c| Instant::now() < c.refresh_at).map(|c| c.token.clone())
    }

    /// A valid access token: the one held, or a new one from the token endpoint.
    pub async fn token(&self) -> Result<SecretString, TargetError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let _fetching = self.inner.fetching.lock().await;
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let (token, lifetime) = self.fetch().await?;
        let keep = lifetime.checked_sub(REFRESH_MARGIN).unwrap_or(lifetime / 2);
        *self.inner.cached.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Cached { token: token.clone(), refresh_at: Instant::now() + keep });
        Ok(token)
    }

    /// Forgets the token held (the API refused it): the next [`TokenSource::token`] fetches one.
    pub fn invalidate(&self) {
        *self.inner.cached.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn error(&self, kind: ErrorKind, problem: impl std::fmt::Display) -> TargetError {
        TargetError::new(kind, format!("{}: {problem}", self.inner.settings.context))
    }

    async fn fetch(&self) -> Result<(SecretString, Duration), TargetError> {
        let settings = &self.inner.settings;
        let url = &settings.token_url;
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", settings.client_id.clone()),
            ("scope", settings.scope.clone()),
        ];
        match &settings.credential {
            ClientCredential::Secret(secret) => form.push(("client_secret", secret.expose_secret().to_string())),
            ClientCredential::Certificate(certificate) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                let assertion = certificate
                    .assertion(&settings.client_id, url, now)
                    .map_err(|e| self.error(ErrorKind::Config, format!("client certificate: {e}")))?;
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.into()));
                form.push(("client_assertion", assertion.expose_secret().to_string()));
            }
        }
        let shown = format!("POST {} (the token endpoint)", url.path());
        let busy = [429, 500, 502, 503, 504];
        let answer = send_retrying(&settings.retry, &busy, false, &shown, &settings.context, || {
            self.inner.http.post(url.clone()).header(ACCEPT, "application/json").form(&form)
        })
        .await
        .map_err(|(kind, message)| self.error(kind, message))?;
        let body = answer.json();
        if !answer.is_success() {
            let said = body.as_ref().map(token_error_text).unwrap_or_default();
            let kind = match answer.status {
                400 | 401 | 403 => ErrorKind::Auth,
                _ => ErrorKind::Permanent,
            };
            return Err(self.error(
                kind,
                format!(
                    "{shown}: the identity platform refused client {} with {}{said}",
                    settings.client_id,
                    status_text(answer.status)
                ),
            ));
        }
        let token = body.as_ref().and_then(|b| b.get("access_token")).and_then(Value::as_str);
        let lifetime = body.as_ref().and_then(|b| b.get("expires_in")).and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
        match (token, lifetime) {
            (Some(token), Some(lifetime)) if !token.is_empty() => {
                Ok((SecretString::from(token.to_string()), Duration::from_secs(lifetime)))
            }
            _ => Err(self.error(
                ErrorKind::Permanent,
                format!("{shown}: expected a JSON answer with access_token and expires_in, found something else"),
            )),
        }
    }
}

/// `: invalid_client: AADSTS7000215: Invalid client secret provided...` from an error answer
/// (RFC 6749 §5.2: `error`, `error_description`).
fn token_error_text(body: &Value) -> String {
    let field = |name: &str| body.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let description = field("error_description").map(|d| d.lines().next().unwrap_or(d).trim().to_string());
    match (field("error"), description) {
        (Some(error), Some(description)) => format!(": {error}: {description}"),
        (Some(error), None) => format!(": {error}"),
        (None, Some(description)) => format!(": {description}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_url_is_the_tenants_v2_endpoint() {
        let url = token_url("https://login.microsoftonline.com/", "contoso.onmicrosoft.com").unwrap();
        assert_eq!(url.as_str(), "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
        assert!(token_url("https://login.microsoftonline.com", "a/b").unwrap_err().contains("tenant \"a/b\""));
        assert!(token_url("not a url", "t").unwrap_err().contains("authority \"not a url\""));
    }

    #[test]
    fn an_error_answer_reads_as_its_code_and_first_line() {
        let body = json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2",
            "error_codes": [7000215],
        });
        assert_eq!(token_error_text(&body), ": invalid_client: AADSTS7000215: Invalid client secret provided.");
        assert_eq!(token_error_text(&json!({})), "");
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_without_showing_it() {
        let error =
            CertificateCredential::new(b"-----BEGIN CERTIFICATE-----\n", &SecretString::from("hunter2")).unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
        let error = CertificateCredential::new(&[0x30, 0x00], &SecretString::from("hunter2 not a key")).unwrap_err();
        assert!(error.contains("not PEM") && !error.contains("hunter2"), "{error}");
    }
}
