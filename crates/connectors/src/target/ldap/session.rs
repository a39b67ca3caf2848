//! The connection: transport security, connect, bind, and a new connection when the server has
//! closed the old one (an idle timeout, a restart), so that a retried operation can succeed.

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use roster_core::config::{TargetConfig, TargetKind, TlsConfig};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::errors::{BUSY, SUCCESS, UNAVAILABLE, describe};
use super::{ad, tls};
use crate::target::{ErrorKind, TargetError};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with StartTLS before the bind.
    StartTls,
    /// `ldap://` in clear, allowed explicitly.
    Plain,
}

/// Decides the transport from the URL and the TLS settings; plain LDAP only when allowed.
pub(super) fn transport(target: &str, url: &str, tls: &TlsConfig) -> Result<Transport, TargetError> {
    let config_error = |what: String| TargetError::new(ErrorKind::Config, format!("target {target}: {what}"));
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(config_error(format!("url {url:?} is not an ldap:// or ldaps:// URL")));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        // Never echo the URL here: what precedes '@' may be a password.
        return Err(config_error(
            "the url contains credentials (user@host); give them as bind_dn and bind_password instead".to_string(),
        ));
    }
    if authority.is_empty() {
        return Err(config_error(format!("url {url:?} names no host")));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "ldaps" if tls.starttls => Err(config_error(format!(
            "tls.starttls is set but {url} is ldaps://, which is TLS from the start: use one or the other"
        ))),
        "ldaps" => Ok(Transport::Ldaps),
        "ldap" if tls.starttls => Ok(Transport::StartTls),
        "ldap" if tls.allow_plaintext => Ok(Transport::Plain),
        "ldap" => Err(config_error(format!(
            "{url} is plain LDAP: the bind password and every value would travel in clear. Use ldaps://, \
             or set tls.starttls = true, or (for a lab on loopback only) tls.allow_plaintext = true"
        ))),
        _ => Err(config_error(format!("url {url:?} is not an ldap:// or ldaps:// URL"))),
    }
}

/// Everything needed to open a bound connection, again and again.
struct Connector {
    target: String,
    url: String,
    settings: LdapConnSettings,
    bind_dn: String,
    password: SecretString,
    timeout: Duration,
}

impl Connector {
    async fn connect(&self) -> Result<Ldap, TargetError> {
        let (conn, mut ldap) =
            LdapConnAsync::with_settings(self.settings.clone(), &self.url).await.map_err(|e| self.connect_error(e))?;
        let url = self.url.clone();
        let target = self.target.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::warn!(target_name = target, "LDAP connection to {url} ended: {e}");
            }
        });
        let bind_as = format!("target {}: bind to {} as {}", self.target, self.url, self.bind_dn);
        let result =
            ldap.with_timeout(self.timeout).simple_bind(&self.bind_dn, self.password.expose_secret()).await.map_err(
                |e| match e {
                    LdapError::Timeout { .. } => TargetError::new(
                        ErrorKind::Connect,
                        format!("{bind_as}: no answer within {} s", self.timeout.as_secs()),
                    ),
                    other => TargetError::new(ErrorKind::Connect, format!("{bind_as}: {other}")),
                },
            )?;
        match result.rc {
            SUCCESS => Ok(ldap),
            BUSY | UNAVAILABLE => {
                Err(TargetError::new(ErrorKind::Connect, format!("{bind_as}: {}", describe(&result))))
            }
            _ => {
                let mut message = format!("{bind_as} refused: {}", describe(&result));
                if let Some(hint) = ad::bind_hint(&result.text) {
                    message.push_str(&format!(" ({hint})"));
                }
                Err(TargetError::new(ErrorKind::Auth, message))
            }
        }
    }

    fn connect_error(&self, err: LdapError) -> TargetError {
        let (target, url) = (&self.target, &self.url);
        match err {
            LdapError::Io { source } => {
                match source.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                    Some(tls) => {
                        TargetError::new(ErrorKind::Tls, format!("target {target}: TLS with {url} failed: {tls}"))
                    }
                    None => TargetError::new(
                        ErrorKind::Connect,
                        format!("target {target}: cannot connect to {url}: {source}"),
                    ),
                }
            }
            LdapError::Timeout { .. } => TargetError::new(
                ErrorKind::Connect,
                format!("target {target}: no connection to {url} within {} s", self.timeout.as_secs()),
            ),
            LdapError::Rustls { source } => {
                TargetError::new(ErrorKind::Tls, format!("target {target}: TLS with {url} failed: {source}"))
            }
            LdapError::DNSName { source } => TargetError::new(
                ErrorKind::Config,
                format!("target {target}: the host of {url} cannot be checked against a certificate: {source}"),
            ),
            LdapError::UrlParsing { source } => {
                TargetError::new(ErrorKind::Config, format!("target {target}: url {url:?}: {source}"))
            }
            LdapError::LdapResult { result } => TargetError::new(
                ErrorKind::Tls,
                format!("target {target}: {url} refused StartTLS: {}", describe(&result)),
            ),
            other => TargetError::new(ErrorKind::Connect, format!("target {target}: cannot connect to {url}: {other}")),
        }
    }
}

/// The most operations a plain LDAP target keeps in flight on one connection: a target's
/// `concurrency` is spread over as many connections as this takes. slapd executes at most half its
/// worker threads' worth (16 by default) of one connection's operations at once and defers the
/// others, with a line in its log for each; a 100k first load at a concurrency of 32 on one
/// connection had 94,000 deferrals and its account creates took 23-25 s, on four connections
/// 18-22 s (slapd's CPU 3-6 s less). AD keeps one connection (not measured).
const OPERATIONS_PER_CONNECTION: usize = 8;

/// Bound connections whose handles are cloned for every operation (ldap3 multiplexes them on one
/// socket), handed out in turn, each replaced by a new one when the server has closed it.
pub(super) struct Session {
    connector: Connector,
    transport: Transport,
    connections: Vec<tokio::sync::Mutex<Ldap>>,
    /// The connection the next handle comes from (modulo their number).
    next: AtomicUsize,
    heard: Heard,
}

/// When the directory last answered a write on any of a session's connections. A directory
/// writes one entry at a time (OpenLDAP's back-mdb has one write transaction; AD's database is
/// no different), so a write sent while thirty others are in flight waits for all of them: a
/// million-account first load sent its 150 largest groups at once, each a few seconds of slapd's
/// work (its memberof overlay writes every member), and the later ones' answers came minutes
/// after they were sent. The timeout is for a directory that has stopped answering, not for one
/// that is busy: a write waits as long as answers to other writes keep coming, and gives up only
/// after `timeout` with no answer to anything.
pub(super) struct Heard(Mutex<Instant>);

impl Heard {
    pub(super) fn new() -> Heard {
        Heard(Mutex::new(Instant::now()))
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An answer came just now.
    fn answered(&self) {
        let mut last = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = (*last).max(Instant::now());
    }

    /// Waits for `op`, a write just sent, until it is answered, or until the directory has
    /// answered nothing (neither it nor any other write) for `timeout` since it was sent.
    pub(super) async fn answer<T, E: From<tokio::time::error::Elapsed>>(
        &self,
        timeout: Duration,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let sent = Instant::now();
        let mut op = std::pin::pin!(op);
        loop {
            let heard = self.last().max(sent);
            match tokio::time::timeout_at(heard + timeout, &mut op).await {
                Ok(answer) => {
                    if answer.is_ok() {
                        self.answered();
                    }
                    return answer;
                }
                Err(elapsed) if self.last() <= heard => return Err(elapsed.into()),
                // Another write was answered meanwhile: the directory is busy, not gone.
                Err(_) => {}
            }
        }
    }
}

impl Session {
    /// Connects and binds. `password` must not be empty: an empty password makes an unauthenticated
    /// bind, which servers accept as anonymous (RFC 4513 5.1.2) and would hide a missing secret.
    pub async fn open(
        config: &TargetConfig,
        password: SecretString,
        config_dir: &Path,
    ) -> Result<Session, TargetError> {
        let target = config.name.as_str();
        let transport = transport(target, &config.url, &config.tls)?;
        if config.bind_dn.trim().is_empty() {
            return Err(TargetError::new(ErrorKind::Config, format!("target {target}: bind_dn is empty")));
        }
        if password.expose_secret().is_empty() {
            return Err(TargetError::new(
                ErrorKind::Config,
                format!(
                    "target {target}: the bind password for {} is empty (an empty password binds anonymously)",
                    config.bind_dn
                ),
            ));
        }
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        let mut settings = LdapConnSettings::new().set_conn_timeout(timeout);
        if transport != Transport::Plain {
            settings = settings
                .set_config(tls::client_config(target, &config.tls, config_dir)?)
                .set_starttls(transport == Transport::StartTls)
                .set_no_tls_verify(config.tls.insecure_skip_verify);
        }
        let connector = Connector {
            target: target.to_string(),
            url: config.url.clone(),
            settings,
            bind_dn: config.bind_dn.clone(),
            password,
            timeout,
        };
        let count = match config.kind {
            TargetKind::Ldap => config.concurrency.div_ceil(OPERATIONS_PER_CONNECTION).max(1),
            _ => 1,
        };
        // Opened at once: a remote directory's round trips are not paid once per connection.
        let connections = futures_util::future::try_join_all((0..count).map(|_| connector.connect())).await?;
        let connections = connections.into_iter().map(tokio::sync::Mutex::new).collect();
        Ok(Session { connector, transport, connections, next: AtomicUsize::new(0), heard: Heard::new() })
    }

    /// How the connection is protected: passwords are only ever sent over TLS.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn timeout(&self) -> Duration {
        self.connector.timeout
    }

    /// Waits for the answer to a write sent on one of the session's connections while the
    /// directory keeps answering (see [`Heard`]). The write must be sent without ldap3's own
    /// timeout (`with_timeout`), which would give up after `timeout` however busy the directory.
    pub async fn answer<T>(&self, write: impl Future<Output = ldap3::result::Result<T>>) -> ldap3::result::Result<T> {
        self.heard.answer(self.connector.timeout, write).await
    }

    pub fn url(&self) -> &str {
        &self.connector.url
    }

    /// A handle on a live connection, the next one in turn, or a new one in its place when the
    /// server closed it. One handle is one connection: a paged search keeps its handle.
    pub async fn handle(&self) -> Result<Ldap, TargetError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let mut current = self.connections[turn].lock().await;
        if current.is_closed() {
            tracing::info!(
                target_name = self.connector.target,
                "the connection to {} was closed; reconnecting",
                self.connector.url
            );
            *current = self.connector.connect().await.map_err(|e| match e.kind {
                ErrorKind::Connect => TargetError::new(ErrorKind::Transient, format!("reconnecting: {}", e.message)),
                _ => e,
            })?;
        }
        Ok(current.clone())
    }

    /// Unbinds every connection still open; the first failure is returned, after all were tried.
    pub async fn close(self) -> Result<(), TargetError> {
        let mut failed = None;
        for connection in self.connections {
            let mut ldap = connection.into_inner();
            if ldap.is_closed() {
                continue;
            }
            if let Err(e) = ldap.unbind().await {
                failed.get_or_insert(TargetError::new(
                    ErrorKind::Transient,
                    format!("target {}: unbind from {}: {e}", self.connector.target, self.connector.url),
                ));
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::sleep;

    /// A write the directory answers after `seconds`.
    async fn write(seconds: f64) -> ldap3::result::Result<f64> {
        sleep(Duration::from_secs_f64(seconds)).await;
        Ok(seconds)
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_waits_while_the_directory_answers_others() {
        let (heard, timeout) = (Heard::new(), Duration::from_secs(1));
        let others = async {
            for _ in 0..10 {
                heard.answer(timeout, write(0.6)).await.expect("answered within the timeout");
            }
        };
        let (slow, ()) = tokio::join!(heard.answer(timeout, write(5.0)), others);
        assert_eq!(slow.expect("answered after five timeouts, the directory busy all along"), 5.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_gives_up_once_the_directory_has_answered_nothing_for_the_timeout() {
        let (heard, timeout) = (Heard::new(), Duration::from_secs(1));
        let start = Instant::now();
        let others = async {
            for _ in 0..4 {
                heard.answer(timeout, write(0.6)).await.expect("answered within the timeout");
            }
        };
        let (slow, ()) = tokio::join!(heard.answer(timeout, write(5.0)), others);
        assert!(matches!(slow, Err(LdapError::Timeout { .. })), "{slow:?}");
        // The last other answer came at 2.4 s: silence from then on, for the timeout.
        let gave_up = start.elapsed();
        assert!(gave_up >= Duration::from_secs_f64(3.4) && gave_up < Duration::from_secs(5), "{gave_up:?}");
        let alone = heard.answer(timeout, write(5.0)).await;
        assert!(matches!(alone, Err(LdapError::Timeout { .. })), "nothing else answered: {alone:?}");
    }

    fn tls(starttls: bool, allow_plaintext: bool) -> TlsConfig {
        TlsConfig { starttls, allow_plaintext, ..Default::default() }
    }

    #[test]
    fn plain_ldap_is_refused_unless_allowed_and_the_message_says_why() {
        let err = transport("dir", "ldap://ldap.example.org", &tls(false, false)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Config);
        assert!(err.message.contains("bind password") && err.message.contains("in clear"), "{}", err.message);
        assert_eq!(transport("dir", "ldap://127.0.0.1:3890", &tls(false, true)), Ok(Transport::Plain));
        assert_eq!(transport("dir", "LDAP://ldap.example.org", &tls(true, false)), Ok(Transport::StartTls));
        assert_eq!(transport("dir", "ldaps://ldap.example.org:636", &tls(false, false)), Ok(Transport::Ldaps));
    }

    #[test]
    fn odd_urls_are_config_errors_that_never_echo_credentials() {
        assert!(transport("dir", "ldaps://ldap.example.org", &tls(true, false)).is_err());
        assert!(transport("dir", "http://ldap.example.org", &tls(false, false)).is_err());
        assert!(transport("dir", "ldap.example.org", &tls(false, false)).is_err());
        assert!(transport("dir", "ldaps://", &tls(false, false)).is_err());
        let err = transport("dir", "ldaps://admin:hunter2@ldap.example.org", &tls(false, false)).unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }
}
