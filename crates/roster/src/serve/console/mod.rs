//! The web console: server-rendered HTML pages over the store (dashboard with inline SVG charts,
//! runs and their plans, persons with their history and hold form, audit search). No JavaScript.
//!
//! A browser logs in with one of the same bearer tokens as the API; the console keeps only a
//! session (in memory, a random id in an HttpOnly, SameSite=Strict cookie; never the token), with
//! the token's name and role, and a per-session CSRF token that every form POST must carry.
//! Mutations are recorded in the audit trail as the API's are, with the actor `console:NAME`.
//! See `docs/console.md`.
#![allow(
    clippy::result_large_err,
    reason = "a page's error is the response itself, made once per request; boxing it buys nothing"
)]

mod chart;
mod held_plans;
mod html;
mod pages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use roster_core::config::TokenRole;
use serde::Deserialize;

use super::Daemon;
use super::auth::{configured, role_name};

const COOKIE_NAME: &str = "roster_session";
/// A session ends after this long without a request.
const IDLE: Duration = Duration::from_secs(8 * 3600);

/// Who is logged in on one browser.
#[derive(Clone)]
struct Session {
    name: String,
    role: TokenRole,
    csrf: String,
    seen: Instant,
}

impl Session {
    fn actor(&self) -> String {
        format!("console:{}", self.name)
    }
}

pub(crate) struct Console {
    daemon: Arc<Daemon>,
    sessions: Mutex<HashMap<String, Session>>,
}

type Shared = State<Arc<Console>>;

pub(crate) fn router(daemon: Arc<Daemon>) -> Router {
    let console = Arc::new(Console { daemon, sessions: Mutex::new(HashMap::new()) });
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/approve", post(held_plans::approve))
        .route("/runs/{id}/reject", post(held_plans::reject))
        .route("/persons", get(pages::persons))
        .route("/persons/{key}", get(pages::person))
        .route("/persons/{key}/hold", post(pages::hold))
        .route("/persons/{key}/unhold", post(pages::unhold))
        .route("/audit", get(pages::audit))
        .route("/console.css", get(css))
        .with_state(console)
}

async fn css() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/css")], include_str!("console.css"))
}

fn random_hex() -> Result<String, Response> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| page_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_string())
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())]).into_response()
}

fn page_error(status: StatusCode, message: &str) -> Response {
    (status, Html(html::layout("Error", None, &format!("<p class=\"error\">{}</p>", html::escape(message)))))
        .into_response()
}

impl Console {
    /// The session of this request, when it has one with at least role `needs`: a browser
    /// without a session is sent to the login page; a too-small role gets 403.
    fn session(&self, headers: &HeaderMap, needs: TokenRole) -> Result<Session, Response> {
        let id = session_id(headers).ok_or_else(|| redirect("/login"))?;
        let mut sessions =
            self.sessions.lock().map_err(|_| page_error(StatusCode::INTERNAL_SERVER_ERROR, "sessions poisoned"))?;
        sessions.retain(|_, s| s.seen.elapsed() < IDLE);
        let session = sessions.get_mut(&id).ok_or_else(|| redirect("/login"))?;
        session.seen = Instant::now();
        if session.role < needs {
            return Err(page_error(
                StatusCode::FORBIDDEN,
                &format!(
                    "{} has role {}; this needs {} or above",
                    session.name,
                    role_name(session.role),
                    role_name(needs)
                ),
            ));
        }
        Ok(session.clone())
    }

    /// As `session`, for a form POST: the form's `csrf` must be the session's token.
    fn posted(&self, headers: &HeaderMap, needs: TokenRole, csrf: &str) -> Result<Session, Response> {
        let session = self.session(headers, needs)?;
        let same = session.csrf.len() == csrf.len()
            && session.csrf.bytes().zip(csrf.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
        if !same {
            return Err(page_error(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is not this session's: reload the page and try again",
            ));
        }
        Ok(session)
    }
}

async fn login_page() -> Html<String> {
    Html(html::layout("Log in", None, &html::login_form(None)))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(console): Shared, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let Some(token) = configured(&console.daemon.serve.tokens, form.token.trim()) else {
        tracing::warn!("console login with a token that is not one of serve.token");
        return (
            StatusCode::UNAUTHORIZED,
            Html(html::layout("Log in", None, &html::login_form(Some("That token is not one of serve.token.")))),
        )
            .into_response();
    };
    let (id, csrf) = match (random_hex(), random_hex()) {
        (Ok(id), Ok(csrf)) => (id, csrf),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let session = Session { name: token.name.clone(), role: token.role, csrf, seen: Instant::now() };
    match console.sessions.lock() {
        Ok(mut sessions) => sessions.insert(id.clone(), session),
        Err(_) => return page_error(StatusCode::INTERNAL_SERVER_ERROR, "sessions poisoned"),
    };
    tracing::info!(name = %token.name, "console login");
    // Secure when the browser came over TLS (the daemon speaks plain HTTP behind a TLS proxy).
    let tls = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https");
    let cookie = format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        IDLE.as_secs(),
        if tls { "; Secure" } else { "" }
    );
    let mut response = redirect("/");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(console): Shared, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Err(e) = console.posted(&headers, TokenRole::Viewer, &form.csrf) {
        return e;
    }
    if let (Some(id), Ok(mut sessions)) = (session_id(&headers), console.sessions.lock()) {
        sessions.remove(&id);
    }
    let mut response = redirect("/login");
    response
        .headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_static("roster_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"));
    response
}
