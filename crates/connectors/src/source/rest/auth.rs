//! How a REST source's requests authenticate: HTTP basic, a bearer token, or OAuth 2.0 client
//! credentials (RFC 6749 section 4.4) with the access token kept until it expires. The secrets are
//! held in `secrecy` types and only exposed to build a request or to scrub a message.

use std::time::{Duration, Instant};

use reqwest::header::ACCEPT;
use reqwest::{RequestBuilder, Url};
use roster_core::config::{OAuthClientAuth, RestAuthConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A token is fetched again this long before the expiry its endpoint gave, so it does not expire
/// between the check and the request.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

pub(super) enum Auth {
    None,
    Basic {
        username: String,
        password: SecretString,
    },
    Bearer(SecretString),
    OAuth2 {
        token_url: Url,
        client_id: String,
        client_secret: SecretString,
        scope: Option<String>,
        client_auth: OAuthClientAuth,
        token: Option<AccessToken>,
    },
}

pub(super) struct AccessToken {
    value: SecretString,
    /// When to fetch a new one; `None`: the endpoint gave no lifetime, so keep it until a 401.
    renew_at: Option<Instant>,
}

/// A token endpoint's answer (RFC 6749 section 5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A token endpoint's refusal (RFC 6749 section 5.2).
#[derive(Deserialize)]
struct TokenRefusal {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Auth {
    /// The configured authentication with its resolved secret; `token_url` already parsed.
    pub(super) fn new(
        config: Option<&RestAuthConfig>,
        secret: Option<SecretString>,
        token_url: Option<Url>,
    ) -> Result<Auth, String> {
        let Some(config) = config else { return Ok(Auth::None) };
        let secret = secret.ok_or("the secret that [source.rest.auth] names was not given")?;
        Ok(match config {
            RestAuthConfig::Basic { username, .. } => Auth::Basic { username: username.clone(), password: secret },
            RestAuthConfig::Bearer { .. } => Auth::Bearer(secret),
            RestAuthConfig::Oauth2 { client_id, scope, client_auth, .. } => Auth::OAuth2 {
                token_url: token_url.ok_or("auth.token_url is missing")?,
                client_id: client_id.clone(),
                client_secret: secret,
                scope: scope.clone(),
                client_auth: *client_auth,
                token: None,
            },
        })
    }

    /// The token endpoint, when a token must be fetched before the next request.
    pub(super) fn token_due(&self, now: Instant) -> Option<&Url> {
        match self {
            Auth::OAuth2 { token_url, token: None, .. } => Some(token_url),
            Auth::OAuth2 { token_url, token: Some(AccessToken { renew_at: Some(at), .. }), .. } if now >= *at => {
                Some(token_url)
            }
            _ => None,
        }
    }

    pub(super) fn is_oauth(&self) -> bool {
        matches!(self, Auth::OAuth2 { .. })
    }

    /// Forgets the access token (the API refused it): the next request fetches a new one.
    pub(super) fn forget_token(&mut self) {
        if let Auth::OAuth2 { token, .. } = self {
            *token = None;
        }
    }

    /// The request for a new access token.
    pub(super) fn token_request(&self, http: &reqwest::Client) -> Option<RequestBuilder> {
        let Auth::OAuth2 { token_url, client_id, client_secret, scope, client_auth, .. } = self else {
            return None;
        };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let request = http.post(token_url.clone()).header(ACCEPT, "application/json");
        Some(match client_auth {
            OAuthClientAuth::Basic => request
                .basic_auth(form_encoded(client_id), Some(form_encoded(client_secret.expose_secret())))
                .form(&form),
            OAuthClientAuth::Body => {
                form.push(("client_id", client_id));
                form.push(("client_secret", client_secret.expose_secret()));
                request.form(&form)
            }
        })
    }

    /// Keeps the access token from the token endpoint's answer; an error says what the answer
    /// lacks.
    pub(super) fn keep_token(&mut self, body: &[u8], now: Instant) -> Result<(), String> {
        let answer: TokenAnswer = serde_json::from_slice(body).map_err(|error| {
            format!(
                "expected a JSON object with an access_token from the token endpoint, found something else ({})",
                crate::source::json::unplaced(&error)
            )
        })?;
        if let Some(kind) = answer.token_type.as_deref().filter(|kind| !kind.eq_ignore_ascii_case("bearer")) {
            return Err(format!("the token endpoint gave a token of type {kind:?}; expected a bearer token"));
        }
        if answer.access_token.is_empty() {
            return Err("the token endpoint gave an empty access_token; expected a token".to_string());
        }
        let renew_at =
            answer.expires_in.map(|seconds| now + Duration::from_secs(seconds).saturating_sub(EXPIRY_MARGIN));
        if let Auth::OAuth2 { token, .. } = self {
            *token = Some(AccessToken { value: SecretString::from(answer.access_token), renew_at });
        }
        Ok(())
    }

    /// What a token endpoint's refusal says (`invalid_client: Client authentication failed`).
    pub(super) fn refusal(body: &[u8]) -> Option<String> {
        let refusal: TokenRefusal = serde_json::from_slice(body).ok()?;
        Some(match refusal.error_description {
            Some(description) => format!("{}: {description}", refusal.error),
            None => refusal.error,
        })
    }

    /// `request` with the credentials added.
    pub(super) fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password.expose_secret())),
            Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
            Auth::OAuth2 { token: Some(token), .. } => request.bearer_auth(token.value.expose_secret()),
            Auth::OAuth2 { token: None, .. } => request,
        }
    }

    /// `message` with every secret this authentication holds replaced by `***`.
    pub(super) fn scrub(&self, message: String) -> String {
        let secrets: Vec<&str> = match self {
            Auth::None => Vec::new(),
            Auth::Basic { password, .. } => vec![password.expose_secret()],
            Auth::Bearer(token) => vec![token.expose_secret()],
            Auth::OAuth2 { client_secret, token, .. } => {
                let mut secrets = vec![client_secret.expose_secret()];
                secrets.extend(token.as_ref().map(|token| token.value.expose_secret()));
                secrets
            }
        };
        secrets
            .into_iter()
            .filter(|secret| !secret.is_empty())
            .fold(message, |message, secret| message.replace(secret, "***"))
    }
}

/// RFC 6749 section 2.3.1: the client id and secret are form-encoded before HTTP basic encodes them.
fn form_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (byte as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
