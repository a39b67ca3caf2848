//! A stand-in for Entra ID, for contract tests of roster's Graph target and OAuth2 client: Entra
//! cannot run here. It answers with the request and response shapes Microsoft documents
//! (learn.microsoft.com: "Microsoft identity platform and the OAuth 2.0 client credentials flow",
//! "Certificate credentials", and the Graph v1.0 pages "List users", "Create user", "Update user",
//! "Delete user", "user: revokeSignInSessions", "Assign manager", "Remove manager", "List group
//! members", "Add members", "Remove member", "Microsoft Graph error responses" and "Microsoft Graph
//! throttling guidance"). It is an axum server on a free loopback port, in its own thread, over
//! plain HTTP (clients allow it explicitly), holding users, groups and managers in memory.
//!
//! - The token endpoint `/{tenant}/oauth2/v2.0/token` accepts the client id with its secret, or a
//!   client assertion: a JWT signed (PS256 or RS256) with the test certificate's key, whose header
//!   names the certificate (`x5t#S256`) and whose claims are checked (`aud`, `iss`, `sub`, `jti`
//!   once, `nbf`, `exp` at most ten minutes later).
//! - Graph under `/v1.0` refuses a request without a token it issued (401), and changes to users
//!   synced from on-premises AD (400, as Graph does).
//! - Switches: answer 429 (or 503) with `Retry-After` to the next N Graph requests; answer 404 to
//!   the first k requests about a user created after the switch (replication lag); refuse every
//!   token issued so far (401, as after a token's revocation).
//! - Every request is recorded (method, path, query, headers, body) for assertions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::process::{require_program, run};

/// The tenant the fake answers for.
pub const TENANT: &str = "8b3f8c4e-7d2a-4c1e-9f0b-2a6d5e4c3b21";
/// The application (client) id it knows.
pub const CLIENT_ID: &str = "3e1c2b7a-9d4f-4e8b-a1c6-5f0d2e9b7c44";
/// The scope a client must ask for.
pub const SCOPE: &str = "https://graph.microsoft.com/.default";
/// The domain of the users' principal names.
pub const DOMAIN: &str = "contoso.onmicrosoft.com";
/// Graph's own base URL, which `@odata.id` references name.
const GRAPH: &str = "https://graph.microsoft.com/v1.0";
const ALREADY_EXISTS: &str =
    "One or more added object references already exist for the following modified properties: 'members'.";
const SYNCED: &str = "Unable to update the specified properties for on-premises mastered Directory Sync objects or \
                      objects currently undergoing migration.";

/// The properties of a user this fake knows (Graph refuses others).
const USER_PROPERTIES: &[&str] = &[
    "accountEnabled",
    "ageGroup",
    "businessPhones",
    "city",
    "companyName",
    "country",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeId",
    "employeeLeaveDateTime",
    "employeeType",
    "faxNumber",
    "givenName",
    "jobTitle",
    "mail",
    "mailNickname",
    "mobilePhone",
    "officeLocation",
    "otherMails",
    "passwordPolicies",
    "passwordProfile",
    "postalCode",
    "preferredLanguage",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
];

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lowercased names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// `PATCH /v1.0/users/1`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Default)]
struct Group {
    name: String,
    members: BTreeSet<String>,
    licensing: bool,
}

#[derive(Default)]
struct State {
    /// This fake's Graph base, for `@odata.nextLink`.
    base: String,
    client_secret: String,
    thumbprint: String,
    public_key: Vec<u8>,
    token_lifetime: u64,
    tokens: BTreeSet<String>,
    used_jtis: BTreeSet<String>,
    users: BTreeMap<String, Map<String, Value>>,
    managers: BTreeMap<String, String>,
    groups: BTreeMap<String, Group>,
    revoked_sessions: BTreeMap<String, u32>,
    license_errors: Vec<String>,
    page_size: usize,
    throttle: Option<(u32, u16, u64)>,
    lag_after_create: u32,
    lagging: BTreeMap<String, u32>,
    next_id: u64,
    requests: Vec<Recorded>,
}

impl State {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_id)
    }
}

/// The fake, serving until dropped.
pub struct EntraFake {
    port: u16,
    state: Arc<Mutex<State>>,
    dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EntraFake {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl EntraFake {
    /// Starts an empty tenant with one application ([`CLIENT_ID`]) that has a random secret and a
    /// throwaway certificate (made with the `openssl` program).
    pub fn start() -> Result<EntraFake> {
        let dir = tempfile::Builder::new().prefix("roster-entra-").tempdir()?;
        let (thumbprint, public_key) = make_certificate(dir.path())?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let state = State {
            base: format!("http://127.0.0.1:{port}/v1.0"),
            client_secret: crate::instance::random_hex()?,
            thumbprint,
            public_key,
            token_lifetime: 3599,
            page_size: 100,
            ..State::default()
        };
        let state = Arc::new(Mutex::new(state));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let app =
                    axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let state = served.clone();
                        async move { handle(&state, port, method, uri, headers, body) }
                    });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Ok(EntraFake { port, state, dir, shutdown: Some(shutdown), thread: Some(thread) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The authority: `http://127.0.0.1:<port>` (the token URL is `{authority}/{tenant}/oauth2/v2.0/token`).
    pub fn authority(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn token_url(&self) -> String {
        format!("{}/{TENANT}/oauth2/v2.0/token", self.authority())
    }

    /// Graph's base: `http://127.0.0.1:<port>/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.authority())
    }

    /// Whether a bearer token is one this fake's token endpoint issued (and did not revoke): for the
    /// other Entra stand-in (`entra_inbound`), which shares this token endpoint.
    pub fn token_checker(&self) -> impl Fn(&str) -> bool + Send + Sync + 'static {
        let state = self.state.clone();
        move |token| state.lock().unwrap_or_else(PoisonError::into_inner).tokens.contains(token)
    }

    pub fn client_secret(&self) -> String {
        self.lock().client_secret.clone()
    }

    /// The application's certificate (PEM).
    pub fn certificate_file(&self) -> PathBuf {
        self.dir.path().join("app.crt")
    }

    /// The certificate's private key (PEM, PKCS#8).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("app.key")
    }

    /// Tokens live this many seconds (default 3599, as Entra's).
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.lock().token_lifetime = seconds;
    }

    /// Lists answer at most this many objects per page (default 100), whatever `$top` asks.
    pub fn set_page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    /// The next `times` Graph requests are answered `status` (429, 503) with `Retry-After: seconds`.
    pub fn throttle(&self, times: u32, status: u16, seconds: u64) {
        self.lock().throttle = Some((times, status, seconds));
    }

    /// Each user created from now on is "not yet replicated" for its first `requests` requests
    /// (reads, writes, references to it): they are answered 404.
    pub fn lag_after_create(&self, requests: u32) {
        self.lock().lag_after_create = requests;
    }

    /// Every token issued so far is refused from now on (401 InvalidAuthenticationToken).
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Adds a user as an administrator or Entra Connect would; returns its id. `user` holds
    /// Graph properties (`onPremisesSyncEnabled: true` for one synced from AD).
    pub fn add_user(&self, user: Value) -> String {
        let mut state = self.lock();
        let id = state.new_id();
        let mut user = user.as_object().cloned().unwrap_or_default();
        user.insert("id".into(), Value::String(id.clone()));
        state.users.insert(id.clone(), user);
        id
    }

    /// Adds a security group; `licensing`: group-based licensing assigns licences to its members
    /// (who need a usageLocation). Returns its id.
    pub fn add_group(&self, name: &str, licensing: bool) -> String {
        let mut state = self.lock();
        let id = state.new_id();
        state.groups.insert(id.clone(), Group { name: name.to_string(), members: BTreeSet::new(), licensing });
        id
    }

    pub fn add_member(&self, group_id: &str, user_id: &str) {
        if let Some(group) = self.lock().groups.get_mut(group_id) {
            group.members.insert(user_id.to_string());
        }
    }

    pub fn users(&self) -> Vec<Value> {
        self.lock().users.values().map(|u| Value::Object(u.clone())).collect()
    }

    /// The user whose `property` equals `value`.
    pub fn user_by(&self, property: &str, value: &str) -> Option<Value> {
        self.lock()
            .users
            .values()
            .find(|u| u.get(property).and_then(Value::as_str) == Some(value))
            .cloned()
            .map(Value::Object)
    }

    pub fn manager_of(&self, user_id: &str) -> Option<String> {
        self.lock().managers.get(user_id).cloned()
    }

    /// The ids of the group's members.
    pub fn members(&self, group_id: &str) -> Vec<String> {
        self.lock().groups.get(group_id).map(|g| g.members.iter().cloned().collect()).unwrap_or_default()
    }

    /// How many times the user's sign-in sessions were revoked.
    pub fn revoked_sessions(&self, user_id: &str) -> u32 {
        self.lock().revoked_sessions.get(user_id).copied().unwrap_or(0)
    }

    /// Licences group-based licensing could not assign (a member without usageLocation).
    pub fn license_errors(&self) -> Vec<String> {
        self.lock().license_errors.clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The Graph requests (not the token endpoint's), as `METHOD /path` lines.
    pub fn graph_lines(&self) -> Vec<String> {
        self.requests().iter().filter(|r| r.path.starts_with("/v1.0/")).map(Recorded::line).collect()
    }

    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}

/// An RSA certificate and key for the application; the certificate's `x5t#S256` and its public key
/// (PKCS#1 DER) for checking assertions.
fn make_certificate(dir: &Path) -> Result<(String, Vec<u8>)> {
    let openssl = require_program("openssl", "openssl")?;
    let (cert, key) = (dir.join("app.crt"), dir.join("app.key"));
    let (cert_der, public_der) = (dir.join("app.crt.der"), dir.join("app.pub.der"));
    run(
        Command::new(&openssl)
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=roster test app"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        None,
    )
    .context("could not make the application's test certificate")?;
    run(Command::new(&openssl).args(["x509", "-outform", "DER", "-in"]).arg(&cert).arg("-out").arg(&cert_der), None)?;
    run(
        Command::new(&openssl)
            .args(["rsa", "-RSAPublicKey_out", "-outform", "DER", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public_der),
        None,
    )?;
    let der = std::fs::read(&cert_der)?;
    Ok((URL_SAFE_NO_PAD.encode(Sha256::digest(&der)), std::fs::read(&public_der)?))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A Graph error answer (`{"error": {"code", "message", "innerError"}}`).
fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message, "innerError": {
        "date": "2026-11-27T00:00:00", "request-id": "0a1b2c3d-0000-4000-8000-000000000001",
        "client-request-id": "0a1b2c3d-0000-4000-8000-000000000001" } } });
    (status, axum::Json(body)).into_response()
}

/// A token endpoint error answer (RFC 6749 §5.2, with Entra's AADSTS codes).
fn token_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: 1\r\nCorrelation ID: 2\r\nTimestamp: 2026-11-27 00:00:00Z"),
        "error_codes": [code],
        "timestamp": "2026-11-27 00:00:00Z",
        "trace_id": "0a1b2c3d-0000-4000-8000-000000000002",
        "correlation_id": "0a1b2c3d-0000-4000-8000-000000000003",
    });
    (status, axum::Json(body)).into_response()
}

fn handle(state: &Mutex<State>, port: u16, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let body = String::from_utf8_lossy(&body).into_owned();
    state.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), value.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.clone(),
    });
    let path = uri.path();
    if path == format!("/{TENANT}/oauth2/v2.0/token") && method == Method::POST {
        return token(&mut state, port, &body);
    }
    if path.ends_with("/oauth2/v2.0/token") {
        return token_error(StatusCode::BAD_REQUEST, "invalid_request", 90002, "Tenant not found.");
    }
    let Some(graph_path) = path.strip_prefix("/v1.0/") else {
        return graph_error(StatusCode::NOT_FOUND, "BadRequest", "Resource not found for the segment.");
    };
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        None => return graph_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "Access token is empty."),
        Some(token) if !state.tokens.contains(token) => {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            );
        }
        Some(_) => {}
    }
    if let Some((times, status, seconds)) = state.throttle.take() {
        if times > 1 {
            state.throttle = Some((times - 1, status, seconds));
        }
        let code = if status == 429 { "TooManyRequests" } else { "ServiceUnavailable" };
        let mut response = graph_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            code,
            "Too many requests. Please try again later.",
        );
        response.headers_mut().insert("retry-after", seconds.into());
        return response;
    }
    let segments: Vec<&str> = graph_path.split('/').collect();
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap_or(Value::Null) };
    let referenced =
        body.get("@odata.id").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()).map(str::to_string);
    // Replication lag: a user created a moment ago is not found yet.
    let mentioned: Vec<String> = segments.iter().map(|s| s.to_string()).chain(referenced.clone()).collect();
    for id in mentioned {
        if let Some(left) = state.lagging.get_mut(&id)
            && *left > 0
        {
            *left -= 1;
            return not_found(&id);
        }
    }
    let query = url_decode_pairs(uri.query().unwrap_or(""));
    graph(&mut state, &method, &segments, &query, &body, referenced)
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn url_decode_pairs(query: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

fn token(state: &mut State, port: u16, body: &str) -> Response {
    let form = url_decode_pairs(body);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != CLIENT_ID {
        return token_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{}' was not found in the directory.", field("client_id")),
        );
    }
    if field("scope") != SCOPE {
        return token_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid.",
        );
    }
    if let Some(secret) = form.get("client_secret") {
        if *secret != state.client_secret {
            return token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            );
        }
    } else if field("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        let audience = format!("http://127.0.0.1:{port}/{TENANT}/oauth2/v2.0/token");
        if let Err(problem) = check_assertion(state, field("client_assertion"), &audience) {
            return token_error(StatusCode::UNAUTHORIZED, "invalid_client", 700027, &problem);
        }
    } else {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let token = format!("fake-graph-token-{}", state.new_id());
    state.tokens.insert(token.clone());
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": state.token_lifetime,
        "ext_expires_in": state.token_lifetime,
        "access_token": token,
    }))
    .into_response()
}

/// Checks a client assertion as the documented "Certificate credentials" page describes it.
fn check_assertion(state: &mut State, assertion: &str, audience: &str) -> Result<(), String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("Client assertion is not a JWT of three parts.".into());
    };
    let decode_json = |part: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "Client assertion part is not base64url.".to_string())?;
        serde_json::from_slice(&bytes).map_err(|_| "Client assertion part is not JSON.".to_string())
    };
    let (header, claims) = (decode_json(header)?, decode_json(claims)?);
    let algorithm: &dyn ring::signature::VerificationAlgorithm = match header["alg"].as_str() {
        Some("PS256") => &ring::signature::RSA_PSS_2048_8192_SHA256,
        Some("RS256") => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        other => return Err(format!("Client assertion alg {other:?} is not supported.")),
    };
    if header["x5t#S256"].as_str() != Some(state.thumbprint.as_str()) {
        return Err("Client assertion contains an invalid signature: the key (x5t#S256) was not found.".into());
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "Signature is not base64url.".to_string())?;
    let signed = &assertion[..assertion.len() - parts[2].len() - 1];
    ring::signature::UnparsedPublicKey::new(algorithm, &state.public_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "Client assertion contains an invalid signature.".to_string())?;
    if claims["aud"].as_str() != Some(audience) {
        return Err(format!("The audience claim {} is not the token endpoint {audience}.", claims["aud"]));
    }
    if claims["iss"].as_str() != Some(CLIENT_ID) || claims["sub"].as_str() != Some(CLIENT_ID) {
        return Err("The iss and sub claims must be the client id.".into());
    }
    let (nbf, exp, now) = (claims["nbf"].as_u64().unwrap_or(u64::MAX), claims["exp"].as_u64().unwrap_or(0), now());
    if nbf > now + 300 || exp <= now || exp.saturating_sub(nbf) > 600 {
        return Err("The client assertion is not valid now, or for more than ten minutes.".into());
    }
    let Some(jti) = claims["jti"].as_str().filter(|j| !j.is_empty()) else {
        return Err("The client assertion has no jti.".into());
    };
    if !state.used_jtis.insert(jti.to_string()) {
        return Err("The jti of the client assertion was already used.".into());
    }
    Ok(())
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn bad_request(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

fn graph(
    state: &mut State,
    method: &Method,
    segments: &[&str],
    query: &BTreeMap<String, String>,
    body: &Value,
    referenced: Option<String>,
) -> Response {
    match (method.as_str(), segments) {
        ("GET", ["users"]) => {
            let mut users: Vec<Value> = state.users.values().map(|user| select(user, query)).collect();
            if query.get("$expand").is_some_and(|e| e.starts_with("manager")) {
                for user in &mut users {
                    let id = user["id"].as_str().unwrap_or_default().to_string();
                    if let Some(manager) = state.managers.get(&id) {
                        user["manager"] = json!({ "@odata.type": "#microsoft.graph.user", "id": manager });
                    }
                }
            }
            page(state, users, "users", query)
        }
        ("POST", ["users"]) => create_user(state, body),
        ("GET", ["users", id]) => match state.users.get(*id) {
            Some(user) => axum::Json(select(user, query)).into_response(),
            None => not_found(id),
        },
        ("PATCH", ["users", id]) => {
            let Some(user) = state.users.get(*id) else { return not_found(id) };
            if user.get("onPremisesSyncEnabled") == Some(&Value::Bool(true)) {
                return bad_request(SYNCED);
            }
            let Some(changes) = body.as_object() else { return bad_request("Empty Payload. JSON content expected.") };
            if let Err(problem) = check_properties(changes) {
                return bad_request(&problem);
            }
            let user = state.users.entry(id.to_string()).or_default();
            for (name, value) in changes {
                if value.is_null() {
                    user.remove(name);
                } else {
                    user.insert(name.clone(), value.clone());
                }
            }
            no_content()
        }
        ("DELETE", ["users", id]) => {
            if state.users.remove(*id).is_none() {
                return not_found(id);
            }
            state.managers.remove(*id);
            for group in state.groups.values_mut() {
                group.members.remove(*id);
            }
            no_content()
        }
        ("POST", ["users", id, "revokeSignInSessions"]) => {
            if !state.users.contains_key(*id) {
                return not_found(id);
            }
            *state.revoked_sessions.entry(id.to_string()).or_default() += 1;
            axum::Json(json!({ "@odata.context": format!("{GRAPH}/$metadata#Edm.Boolean"), "value": true }))
                .into_response()
        }
        ("GET", ["users", id, "manager"]) => match state.managers.get(*id).and_then(|m| state.users.get(m)) {
            Some(manager) => axum::Json(select(manager, query)).into_response(),
            None => not_found(id),
        },
        ("PUT", ["users", id, "manager", "$ref"]) => {
            if !state.users.contains_key(*id) {
                return not_found(id);
            }
            if state.users.get(*id).and_then(|u| u.get("onPremisesSyncEnabled")) == Some(&Value::Bool(true)) {
                return bad_request(SYNCED);
            }
            match referenced.filter(|m| state.users.contains_key(m)) {
                Some(manager) => {
                    state.managers.insert(id.to_string(), manager);
                    no_content()
                }
                None => bad_request("Invalid object identifier in @odata.id."),
            }
        }
        ("DELETE", ["users", id, "manager", "$ref"]) => match state.managers.remove(*id) {
            Some(_) => no_content(),
            None => not_found(id),
        },
        ("GET", ["groups"]) => {
            let wanted = query.get("$filter").and_then(|f| display_name_filter(f));
            let groups: Vec<Value> = state
                .groups
                .iter()
                .filter(|(_, g)| wanted.as_ref().is_none_or(|name| *name == g.name))
                .map(|(id, g)| json!({ "id": id, "displayName": g.name }))
                .collect();
            page(state, groups, "groups", query)
        }
        ("GET", ["groups", id, "members", "microsoft.graph.user"]) => {
            let Some(group) = state.groups.get(*id) else { return not_found(id) };
            let members: Vec<Value> =
                group.members.iter().filter_map(|m| state.users.get(m)).map(|u| select(u, query)).collect();
            page(state, members, &format!("groups/{id}/members/microsoft.graph.user"), query)
        }
        ("POST", ["groups", id, "members", "$ref"]) => {
            let Some(member) = referenced.filter(|m| state.users.contains_key(m)) else {
                return bad_request("Invalid object identifier in @odata.id.");
            };
            let no_location =
                state.users.get(&member).is_none_or(|u| u.get("usageLocation").is_none_or(Value::is_null));
            let Some(group) = state.groups.get_mut(*id) else { return not_found(id) };
            if !group.members.insert(member.clone()) {
                return bad_request(ALREADY_EXISTS);
            }
            if group.licensing && no_location {
                let name = group.name.clone();
                state.license_errors.push(format!("{member} in {name}: no licence without a usageLocation"));
            }
            no_content()
        }
        ("DELETE", ["groups", id, "members", member, "$ref"]) => {
            let Some(group) = state.groups.get_mut(*id) else { return not_found(id) };
            if group.members.remove(*member) { no_content() } else { not_found(member) }
        }
        _ => graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Resource not found for the segment."),
    }
}

/// `displayName eq 'Sales licence'` ('' is a quote).
fn display_name_filter(filter: &str) -> Option<String> {
    let value = filter.trim().strip_prefix("displayName eq '")?.strip_suffix('\'')?;
    Some(value.replace("''", "'"))
}

/// What Graph says about a property it refuses.
fn check_properties(user: &Map<String, Value>) -> Result<(), String> {
    for (name, value) in user {
        if !USER_PROPERTIES.contains(&name.as_str()) {
            return Err(format!("Property '{name}' does not exist on type 'microsoft.graph.user'."));
        }
        if name == "usageLocation"
            && !value.as_str().is_some_and(|c| c.len() == 2 && c.chars().all(|c| c.is_ascii_uppercase()))
        {
            return Err("Invalid value specified for property 'usageLocation' of resource 'User'.".into());
        }
    }
    Ok(())
}

fn create_user(state: &mut State, body: &Value) -> Response {
    let Some(user) = body.as_object() else { return bad_request("Empty Payload. JSON content expected.") };
    if let Err(problem) = check_properties(user) {
        return bad_request(&problem);
    }
    for required in ["accountEnabled", "displayName", "mailNickname", "userPrincipalName"] {
        if user.get(required).is_none_or(Value::is_null) {
            return bad_request(&format!("Invalid value specified for property '{required}' of resource 'User'."));
        }
    }
    if user.get("passwordProfile").and_then(|p| p.get("password")).and_then(Value::as_str).is_none_or(str::is_empty) {
        return bad_request("Invalid value specified for property 'passwordProfile' of resource 'User'.");
    }
    let upn = user["userPrincipalName"].as_str().unwrap_or_default().to_lowercase();
    if state
        .users
        .values()
        .any(|u| u.get("userPrincipalName").and_then(Value::as_str).map(str::to_lowercase) == Some(upn.clone()))
    {
        return bad_request("Another object with the same value for property userPrincipalName already exists.");
    }
    let id = state.new_id();
    let mut stored = user.clone();
    stored.remove("passwordProfile");
    stored.insert("id".into(), Value::String(id.clone()));
    if state.lag_after_create > 0 {
        state.lagging.insert(id.clone(), state.lag_after_create);
    }
    state.users.insert(id.clone(), stored.clone());
    stored.insert("@odata.context".into(), Value::String(format!("{GRAPH}/$metadata#users/$entity")));
    (StatusCode::CREATED, axum::Json(Value::Object(stored))).into_response()
}

/// The object with only the `$select`ed properties (and its id); all of them without `$select`.
fn select(object: &Map<String, Value>, query: &BTreeMap<String, String>) -> Value {
    match query.get("$select") {
        None => Value::Object(object.clone()),
        Some(fields) => {
            let mut selected = Map::new();
            selected.insert("id".into(), object.get("id").cloned().unwrap_or(Value::Null));
            for field in fields.split(',').map(str::trim) {
                selected.insert(field.to_string(), object.get(field).cloned().unwrap_or(Value::Null));
            }
            Value::Object(selected)
        }
    }
}

/// One page of `items` from `$skiptoken` (an offset here; opaque to clients), at most `$top`
/// (≤ 999) and the fake's page size, with `@odata.nextLink` when more follow.
fn page(state: &State, items: Vec<Value>, collection: &str, query: &BTreeMap<String, String>) -> Response {
    let top = query.get("$top").and_then(|t| t.parse::<usize>().ok()).unwrap_or(100);
    if top == 0 || top > 999 {
        return bad_request("Invalid page size specified: '$top'. Must be between 1 and 999 inclusive.");
    }
    let size = top.min(state.page_size);
    let start =
        query.get("$skiptoken").and_then(|t| t.strip_prefix("X'")).and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
    let end = (start + size).min(items.len());
    let mut body = json!({
        "@odata.context": format!("{GRAPH}/$metadata#{collection}"),
        "value": items.get(start..end).unwrap_or_default(),
    });
    if end < items.len() {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        next.extend_pairs(query.iter().filter(|(name, _)| *name != "$skiptoken"));
        next.append_pair("$skiptoken", &format!("X'{end}"));
        let next = next.finish();
        body["@odata.nextLink"] = Value::String(format!("{}/{collection}?{next}", state.base));
    }
    axum::Json(body).into_response()
}
