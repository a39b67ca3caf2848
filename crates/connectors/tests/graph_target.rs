//! Contract tests of the Microsoft Graph target and its OAuth2 client credentials. Entra ID cannot
//! run here: these run against `roster_testkit::EntraFake`, a local server built from the request
//! and response shapes and the throttling that Microsoft documents on learn.microsoft.com
//! ("Microsoft identity platform and the OAuth 2.0 client credentials flow", "Microsoft identity
//! platform application authentication certificate credentials", Graph v1.0 "List users", "Create
//! user", "Update user", "user: revokeSignInSessions", "Assign manager", "Add members", "Remove
//! member", "Microsoft Graph error responses", "Microsoft Graph throttling guidance"). What they
//! prove is that roster speaks those shapes; they were never run against a real tenant.

use std::time::Duration;

use reqwest::Url;
use roster_connectors::http::RetryPolicy;
use roster_connectors::oauth::{CertificateCredential, ClientCredential, OAuthSettings, TokenSource};
use roster_connectors::target::ErrorKind;
use roster_testkit::EntraFake;
use roster_testkit::entra::{CLIENT_ID, SCOPE};
use secrecy::{ExposeSecret, SecretString};

fn quick_retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, max_wait: Duration::from_secs(10), first_backoff: Duration::from_millis(10) }
}

fn client() -> reqwest::Client {
    roster_connectors::http::api_client("entra", None, true, Duration::from_secs(10)).unwrap()
}

fn token_source(fake: &EntraFake, credential: ClientCredential) -> TokenSource {
    let settings = OAuthSettings {
        token_url: Url::parse(&fake.token_url()).unwrap(),
        client_id: CLIENT_ID.to_string(),
        scope: SCOPE.to_string(),
        credential,
        retry: quick_retry(),
        context: "target entra".to_string(),
    };
    TokenSource::new(settings, client())
}

fn certificate(fake: &EntraFake) -> ClientCredential {
    let cert = std::fs::read(fake.certificate_file()).unwrap();
    let key = SecretString::from(std::fs::read_to_string(fake.key_file()).unwrap());
    ClientCredential::Certificate(CertificateCredential::new(&cert, &key).unwrap())
}

fn token_requests(fake: &EntraFake) -> Vec<roster_testkit::entra::Recorded> {
    fake.requests().into_iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token")).collect()
}

#[tokio::test]
async fn a_token_by_client_secret_is_fetched_once_and_kept() {
    let fake = EntraFake::start().unwrap();
    let tokens = token_source(&fake, ClientCredential::Secret(SecretString::from(fake.client_secret())));
    let first = tokens.token().await.unwrap();
    let again = tokens.clone().token().await.unwrap();
    assert_eq!(first.expose_secret(), again.expose_secret(), "the token is kept while valid");
    let sent = token_requests(&fake);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let form: Vec<&str> = sent[0].body.split('&').collect();
    assert!(form.contains(&"grant_type=client_credentials"), "{form:?}");
    assert!(form.iter().any(|f| f.starts_with("client_secret=")), "{form:?}");
    assert_eq!(sent[0].headers.get("content-type").map(String::as_str), Some("application/x-www-form-urlencoded"));
}

#[tokio::test]
async fn a_token_by_certificate_is_a_client_assertion_the_endpoint_verifies() {
    let fake = EntraFake::start().unwrap();
    let tokens = token_source(&fake, certificate(&fake));
    tokens.token().await.unwrap();
    let sent = token_requests(&fake);
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].body.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer")
    );
    assert!(!sent[0].body.contains("client_secret"), "{}", sent[0].body);
    // Each fetch signs a new assertion (a jti is accepted once).
    tokens.invalidate();
    tokens.token().await.unwrap();
    assert_eq!(token_requests(&fake).len(), 2);
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_with_the_aadsts_code_and_without_the_secret() {
    let fake = EntraFake::start().unwrap();
    let tokens = token_source(&fake, ClientCredential::Secret(SecretString::from("wrong-secret-value")));
    let error = tokens.token().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Auth, "{error}");
    assert!(error.message.contains("invalid_client: AADSTS7000215: Invalid client secret provided"), "{error}");
    assert!(error.message.starts_with("target entra: POST /"), "{error}");
    assert!(!error.message.contains("wrong-secret-value"), "{error}");
}

#[tokio::test]
async fn a_certificate_the_app_does_not_have_is_refused() {
    let fake = EntraFake::start().unwrap();
    let other = EntraFake::start().unwrap();
    let tokens = token_source(&fake, certificate(&other));
    let error = tokens.token().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Auth, "{error}");
    assert!(error.message.contains("AADSTS700027"), "{error}");
}

#[tokio::test]
async fn a_token_about_to_expire_is_fetched_anew() {
    let fake = EntraFake::start().unwrap();
    // Shorter than the five-minute margin: kept for half its life, here one second.
    fake.set_token_lifetime(2);
    let tokens = token_source(&fake, ClientCredential::Secret(SecretString::from(fake.client_secret())));
    let first = tokens.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = tokens.token().await.unwrap();
    assert_ne!(first.expose_secret(), second.expose_secret());
    assert_eq!(token_requests(&fake).len(), 2);
}
