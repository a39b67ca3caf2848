//! Targets: the directories and apps that hold accounts. Each one reads what it holds as a
//! [`TargetView`] for the planner and applies the plan's [`Operation`]s, one at a time and many in
//! flight, behind the small [`Target`] trait.
//!
//! A target says up front what it can do ([`Capabilities`]) instead of failing when asked, and every
//! error says whether the write may have happened ([`ErrorKind::Unknown`]) or certainly did not.

use std::fmt;
use std::future::Future;
use std::path::Path;

use roster_core::attr::AttrName;
use roster_core::config::{TargetConfig, TargetKind};
use roster_core::plan::{Applied, Operation};
use roster_core::state::{TargetView, ViewRequest};
use secrecy::SecretString;

pub mod entra_inbound;
pub mod graph;
pub mod ldap;
pub mod scim;

pub use entra_inbound::{EntraInboundSettings, EntraInboundTarget};
pub use graph::{GraphSettings, GraphTarget};
pub use ldap::LdapTarget;
pub use scim::{ScimSettings, ScimTarget};

/// A connected target of any kind the configuration offers: what the runner holds.
pub enum AnyTarget {
    Ldap(LdapTarget),
    Scim(ScimTarget),
    Entra(GraphTarget),
    /// Boxed: it is much larger than the others.
    EntraInbound(Box<EntraInboundTarget>),
}

impl AnyTarget {
    /// Connects to the target `config` describes. `secret` is the resolved bind password (LDAP
    /// kinds), bearer token (`scim`), or client secret or certificate key (`entra`, `entra_inbound`); `config_dir`
    /// resolves a relative `tls.ca_file` or `entra.client_certificate`.
    pub async fn connect(
        config: &TargetConfig,
        secret: SecretString,
        config_dir: &Path,
    ) -> Result<AnyTarget, TargetError> {
        match config.kind {
            TargetKind::Ldap | TargetKind::ActiveDirectory => {
                Ok(AnyTarget::Ldap(LdapTarget::connect(config, secret, config_dir).await?))
            }
            TargetKind::Scim => {
                let mut settings = ScimSettings::new(config.name.clone(), config.url.clone(), secret);
                settings.base = config.scim_base().to_string();
                settings.ca_file = config.tls.ca_file.as_ref().map(|file| config_dir.join(file));
                settings.allow_plaintext = config.tls.allow_plaintext;
                settings.timeout = std::time::Duration::from_secs(config.timeout_seconds.max(1));
                Ok(AnyTarget::Scim(ScimTarget::connect(settings).await?))
            }
            TargetKind::Entra => Ok(AnyTarget::Entra(graph::connect(config, secret, config_dir)?)),
            TargetKind::EntraInbound => {
                Ok(AnyTarget::EntraInbound(Box::new(entra_inbound::connect(config, secret, config_dir)?)))
            }
        }
    }

    /// Hands a target that cannot be read (`entra_inbound`) what roster last wrote to it, the
    /// store's links, as its view; the others read their view from the target itself.
    pub fn recall(&mut self, links: &[roster_core::state::Link]) {
        if let AnyTarget::EntraInbound(t) = self {
            t.recall(links);
        }
    }
}

impl AnyTarget {
    /// Ends the session politely (an LDAP unbind); an HTTP target has nothing to close.
    pub async fn close(self) -> Result<(), TargetError> {
        match self {
            AnyTarget::Ldap(t) => t.close().await,
            AnyTarget::Scim(_) | AnyTarget::Entra(_) | AnyTarget::EntraInbound(_) => Ok(()),
        }
    }
}

impl Target for AnyTarget {
    fn name(&self) -> &str {
        match self {
            AnyTarget::Ldap(t) => Target::name(t),
            AnyTarget::Scim(t) => Target::name(t),
            AnyTarget::Entra(t) => Target::name(t),
            AnyTarget::EntraInbound(t) => Target::name(t.as_ref()),
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self {
            AnyTarget::Ldap(t) => t.capabilities(),
            AnyTarget::Scim(t) => t.capabilities(),
            AnyTarget::Entra(t) => t.capabilities(),
            AnyTarget::EntraInbound(t) => t.capabilities(),
        }
    }

    async fn read_view(&mut self, attrs: &[AttrName]) -> Result<TargetView, TargetError> {
        match self {
            AnyTarget::Ldap(t) => Target::read_view(t, attrs).await,
            AnyTarget::Scim(t) => Target::read_view(t, attrs).await,
            AnyTarget::Entra(t) => Target::read_view(t, attrs).await,
            AnyTarget::EntraInbound(t) => Target::read_view(t.as_mut(), attrs).await,
        }
    }

    async fn read_part(&mut self, attrs: &[AttrName], ask: &ViewRequest) -> Result<Option<TargetView>, TargetError> {
        match self {
            AnyTarget::Ldap(t) => Target::read_part(t, attrs, ask).await,
            AnyTarget::Scim(t) => Target::read_part(t, attrs, ask).await,
            AnyTarget::Entra(t) => Target::read_part(t, attrs, ask).await,
            AnyTarget::EntraInbound(t) => Target::read_part(t.as_mut(), attrs, ask).await,
        }
    }

    async fn apply(&self, op: &Operation) -> Result<Applied, TargetError> {
        match self {
            AnyTarget::Ldap(t) => Target::apply(t, op).await,
            AnyTarget::Scim(t) => Target::apply(t, op).await,
            AnyTarget::Entra(t) => Target::apply(t, op).await,
            AnyTarget::EntraInbound(t) => Target::apply(t.as_ref(), op).await,
        }
    }

    async fn set_password(&self, op: &Operation, password: &SecretString) -> Result<Applied, TargetError> {
        match self {
            AnyTarget::Ldap(t) => Target::set_password(t, op, password).await,
            AnyTarget::Scim(t) => Target::set_password(t, op, password).await,
            AnyTarget::Entra(t) => Target::set_password(t, op, password).await,
            AnyTarget::EntraInbound(t) => Target::set_password(t.as_ref(), op, password).await,
        }
    }

    fn batch_limit(&self) -> usize {
        match self {
            AnyTarget::Ldap(t) => t.batch_limit(),
            AnyTarget::Scim(t) => t.batch_limit(),
            AnyTarget::Entra(t) => t.batch_limit(),
            AnyTarget::EntraInbound(t) => t.batch_limit(),
        }
    }

    fn members_per_request(&self) -> usize {
        match self {
            AnyTarget::Ldap(t) => t.members_per_request(),
            AnyTarget::Scim(t) => t.members_per_request(),
            AnyTarget::Entra(t) => t.members_per_request(),
            AnyTarget::EntraInbound(t) => t.members_per_request(),
        }
    }

    async fn apply_batch(&self, ops: &[Operation]) -> Vec<Result<Applied, TargetError>> {
        match self {
            AnyTarget::Ldap(t) => Target::apply_batch(t, ops).await,
            AnyTarget::Scim(t) => Target::apply_batch(t, ops).await,
            AnyTarget::Entra(t) => Target::apply_batch(t, ops).await,
            AnyTarget::EntraInbound(t) => Target::apply_batch(t.as_ref(), ops).await,
        }
    }
}

/// What a target can do, declared before planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Renames and moves (modify DN).
    pub rename: bool,
    /// Disabling and enabling accounts.
    pub disable: bool,
    /// Group membership.
    pub groups: bool,
    /// Setting passwords.
    pub passwords: bool,
}

/// A directory or app that roster provisions.
pub trait Target {
    /// The target's name from the configuration.
    fn name(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    /// Reads what the target holds now, with the account attributes the planner asks for.
    fn read_view(&mut self, attrs: &[AttrName]) -> impl Future<Output = Result<TargetView, TargetError>> + Send;
    /// Reads only what `ask` names, for a daily run that evaluates few persons: a view marked
    /// partial (see [`ViewRequest`] for what it must hold). `None`: this target reads only in
    /// full, and the runner calls [`Target::read_view`] instead.
    fn read_part(
        &mut self,
        _attrs: &[AttrName],
        _ask: &ViewRequest,
    ) -> impl Future<Output = Result<Option<TargetView>, TargetError>> + Send {
        async { Ok(None) }
    }
    /// Applies one operation. Safe to call concurrently: many operations may be in flight at once.
    /// A `set_password` operation is refused here: it needs [`Target::set_password`].
    fn apply(&self, op: &Operation) -> impl Future<Output = Result<Applied, TargetError>> + Send;
    /// Applies a `set_password` operation with the password the runner generated for it. The
    /// password is sent only over an encrypted connection and never appears in an error or a log.
    fn set_password(
        &self,
        op: &Operation,
        password: &SecretString,
    ) -> impl Future<Output = Result<Applied, TargetError>> + Send;
    /// How many ready operations the target takes at once in [`Target::apply_batch`]: more than one
    /// where the target sends several operations in one request (SCIM Bulk), one otherwise.
    fn batch_limit(&self) -> usize {
        1
    }
    /// How many membership changes of one group, all additions or all removals, the target makes in
    /// one request in [`Target::apply_batch`]: more than one where a directory changes many values
    /// of a group in one modify (LDAP, AD), one otherwise. The runner sends such changes that are
    /// ready together as one batch, which counts as one request in flight.
    fn members_per_request(&self) -> usize {
        1
    }
    /// Applies independent operations (none depends on another of the batch; never `set_password`):
    /// at most [`Target::batch_limit`] of them, or at most [`Target::members_per_request`]
    /// membership changes of one group. The results are in the order of `ops`, one per operation,
    /// each its own outcome. By default, one by one, all in flight at once.
    fn apply_batch(&self, ops: &[Operation]) -> impl Future<Output = Vec<Result<Applied, TargetError>>> + Send
    where
        Self: Sync,
    {
        futures_util::future::join_all(ops.iter().map(|op| self.apply(op)))
    }
}

/// What kind of failure a target reports, which decides what the engine does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The target's configuration is unusable (bad URL, unreadable CA file, plaintext refused, a
    /// password that would travel in clear, ...).
    Config,
    /// The server could not be reached or did not answer while connecting.
    Connect,
    /// The server refused the bind.
    Auth,
    /// TLS failed: the certificate was not trusted, StartTLS was refused, ...
    Tls,
    /// What the operation was planned against no longer holds (the entry changed, was replaced or
    /// deleted, or its new name is taken). Nothing was written; plan again.
    Conflict,
    /// Nothing was done, and trying again later may work (busy, unavailable, connection lost before
    /// the request was sent).
    Transient,
    /// The request was sent and no answer came: the operation may have happened. Read the target
    /// before trying again.
    Unknown,
    /// The operation would write outside the target's managed subtrees, or to an entry that matches
    /// the target's `protect` filter. Nothing was sent.
    OutOfScope,
    /// The server refused the operation, and asking again will not change that.
    Permanent,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Connect => "connect",
            ErrorKind::Auth => "auth",
            ErrorKind::Tls => "tls",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Transient => "transient",
            ErrorKind::Unknown => "unknown",
            ErrorKind::OutOfScope => "out_of_scope",
            ErrorKind::Permanent => "permanent",
        }
    }

    /// True when the same operation may simply be tried again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Transient)
    }

    /// True when the operation may have taken effect despite the error.
    pub fn may_have_happened(self) -> bool {
        matches!(self, ErrorKind::Unknown)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A target's error: its kind and a message that names the object (DN), the server's result code and
/// its text. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct TargetError {
    pub kind: ErrorKind,
    pub message: String,
}

impl TargetError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> TargetError {
        TargetError { kind, message: message.into() }
    }
}
