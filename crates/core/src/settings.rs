//! Configuration, stage two: [`validate`] checks a parsed [`ConfigFile`] without I/O, compiles every
//! expression, and evaluates each on a sample person, so mistakes surface (with key and line)
//! before anything runs. The result, [`Settings`], is what the planner works from.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use chrono_tz::Tz;
use regex::Regex;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::attr::AttrName;
use crate::config::{
    AuditConfig, ConfigFile, CorrelationConfig, GroupMode, LifecycleConfig, MIN_REQUEST_BYTES, MappingWhen,
    SafetyConfig, SecretRef, SourceConfig, StoreConfig, TargetConfig,
};
use crate::dn::Dn;
use crate::expr::{Env, Expr, ExprValue};

/// What only a `scim` target needs: an https URL (http only with `tls.allow_plaintext`), a token,
/// no LDAP bind, no LDAP-only disable policy.
fn check_scim_target(ck: &mut Checker, key: &str, t: &TargetConfig) {
    let plaintext = t.url.starts_with("http://");
    if !(t.url.starts_with("https://") || plaintext) {
        ck.error(
            format!("{key}.url"),
            None,
            format!("expected the service's SCIM base URL, https://…, found {:?}", t.url),
        );
    }
    if plaintext && !t.tls.allow_plaintext {
        ck.error(format!("{key}.url"), None, "a plain http:// connection would send the token in clear: use https://, or (lab only) tls.allow_plaintext = true");
    }
    if t.token.is_none() {
        ck.error(
            format!("{key}.token"),
            None,
            "expected the bearer token as a secret reference \"env:NAME\" or \"file:PATH\"",
        );
    }
    for (name, set) in [
        ("bind_dn", !t.bind_dn.is_empty()),
        ("bind_password", !t.bind_password.0.is_empty()),
        ("tls.starttls", t.tls.starttls),
        ("tls.insecure_skip_verify", t.tls.insecure_skip_verify),
        ("disable.lock", t.disable.lock),
        ("disable.move_to", t.disable.move_to.is_some()),
    ] {
        if set {
            ck.error(
                format!("{key}.{name}"),
                None,
                "a scim target does not take this key: it authenticates with token and disables with active = false",
            );
        }
    }
}

/// What only an `entra` target needs: an https Graph URL (http only with `tls.allow_plaintext`), a
/// `[target.entra]` table with a tenant, a client id and one credential, no LDAP-only keys.
fn check_entra_target(ck: &mut Checker, key: &str, t: &TargetConfig) {
    check_graph_url(ck, key, t);
    refuse_ldap_keys(
        ck,
        key,
        t,
        &[],
        "an entra target does not take this key: it signs in with [target.entra] client credentials, disables with accountEnabled = false, and never writes users synced from AD",
    );
    let Some(entra) = check_entra_sign_in(ck, key, t) else { return };
    for (j, group) in entra.licensing_groups.iter().enumerate() {
        if !entra.groups.contains(group) {
            ck.error(
                format!("{key}.entra.licensing_groups[{j}]"),
                None,
                format!("{group:?} is not one of entra.groups, so roster does not manage its members"),
            );
        }
    }
}

/// The keys of the LDAP kinds (and `token`, `protect`) that a target signing in to Graph refuses,
/// with `extra` of its own, each set one an error saying `why`.
fn refuse_ldap_keys(ck: &mut Checker, key: &str, t: &TargetConfig, extra: &[(&str, bool)], why: &str) {
    let common = [
        ("bind_dn", !t.bind_dn.is_empty()),
        ("bind_password", !t.bind_password.0.is_empty()),
        ("token", t.token.is_some()),
        ("tls.starttls", t.tls.starttls),
        ("tls.insecure_skip_verify", t.tls.insecure_skip_verify),
        ("disable.lock", t.disable.lock),
        ("disable.move_to", t.disable.move_to.is_some()),
        ("protect", t.protect.is_some()),
        ("member_of", t.member_of.is_some()),
    ];
    for (name, set) in common.iter().chain(extra) {
        if *set {
            ck.error(format!("{key}.{name}"), None, why);
        }
    }
}

/// Graph's base URL: https (http only with `tls.allow_plaintext`).
fn check_graph_url(ck: &mut Checker, key: &str, t: &TargetConfig) {
    let plaintext = t.url.starts_with("http://");
    if !(t.url.starts_with("https://") || plaintext) {
        ck.error(format!("{key}.url"), None, format!("expected Graph's base URL, https://…, found {:?}", t.url));
    }
    if plaintext && !t.tls.allow_plaintext {
        ck.error(format!("{key}.url"), None, "a plain http:// connection would send the access token in clear: use https://, or (tests only) tls.allow_plaintext = true");
    }
}

/// The `[target.entra]` table of an `entra` or `entra_inbound` target: a tenant, a client id and
/// one credential.
fn check_entra_sign_in<'t>(ck: &mut Checker, key: &str, t: &'t TargetConfig) -> Option<&'t crate::config::EntraConfig> {
    let Some(entra) = &t.entra else {
        ck.error(
            format!("{key}.entra"),
            None,
            "expected a [target.entra] table with tenant, client_id and client_secret (or client_certificate and client_key)",
        );
        return None;
    };
    let is_reference = |r: &SecretRef| r.0.starts_with("env:") || r.0.starts_with("file:");
    if entra.tenant.trim().is_empty() || entra.tenant.contains(['/', '?', '#', ' ']) {
        ck.error(
            format!("{key}.entra.tenant"),
            None,
            format!(
                "expected the directory (tenant) id or a domain such as contoso.onmicrosoft.com, found {:?}",
                entra.tenant
            ),
        );
    }
    if entra.client_id.trim().is_empty() {
        ck.error(
            format!("{key}.entra.client_id"),
            None,
            "expected the application (client) id of the app registration",
        );
    }
    if !(entra.authority.starts_with("https://") || (entra.authority.starts_with("http://") && t.tls.allow_plaintext)) {
        ck.error(
            format!("{key}.entra.authority"),
            None,
            format!("expected https://login.microsoftonline.com or a national cloud's, found {:?}", entra.authority),
        );
    }
    match (&entra.client_secret, &entra.client_certificate, &entra.client_key) {
        (Some(secret), None, None) => {
            if !is_reference(secret) {
                ck.error(format!("{key}.entra.client_secret"), None, "expected a secret reference \"env:NAME\" or \"file:PATH\"; secrets are never written in the config");
            }
        }
        (None, Some(_), Some(secret)) => {
            if !is_reference(secret) {
                ck.error(format!("{key}.entra.client_key"), None, "expected a secret reference \"env:NAME\" or \"file:PATH\" to the private key (PEM)");
            }
        }
        _ => ck.error(
            format!("{key}.entra"),
            None,
            "expected one credential: client_secret, or client_certificate (a PEM file) with client_key (its private key)",
        ),
    }
    Some(entra)
}

/// What only an `entra_inbound` target needs: Graph's URL, `[target.entra]` sign-in and an
/// `[target.inbound]` job; and what it cannot do: groups, passwords, LDAP's ways to disable.
fn check_entra_inbound_target(ck: &mut Checker, key: &str, t: &TargetConfig) {
    check_graph_url(ck, key, t);
    refuse_ldap_keys(
        ck,
        key,
        t,
        &[("purge_move_to", t.purge_move_to.is_some())],
        "an entra_inbound target does not take this key: it signs in with [target.entra] client credentials \
         and disables by sending active = false",
    );
    if let Some(entra) = check_entra_sign_in(ck, key, t)
        && !(entra.groups.is_empty() && entra.licensing_groups.is_empty())
    {
        ck.error(
            format!("{key}.entra.groups"),
            None,
            "API-driven inbound provisioning sends users only: Entra's own rules (dynamic groups, access packages) give groups",
        );
    }
    if !t.groups.is_empty() {
        ck.error(
            format!("{key}.groups"),
            None,
            "API-driven inbound provisioning sends users only: Entra's own rules (dynamic groups, access packages) \
             give groups; remove the [[target.groups]] rules",
        );
    }
    match &t.inbound {
        None => ck.error(
            format!("{key}.inbound"),
            None,
            "expected a [target.inbound] table with service_principal_id and job_id (the provisioning app's)",
        ),
        Some(inbound) => {
            for (name, value, expected) in [
                (
                    "service_principal_id",
                    &inbound.service_principal_id,
                    "the object id of the provisioning app's service principal",
                ),
                ("job_id", &inbound.job_id, "the provisioning job's id, API2AAD.… or API2AD.…"),
            ] {
                if value.trim().is_empty() {
                    ck.error(format!("{key}.inbound.{name}"), None, format!("expected {expected}"));
                }
            }
            if inbound.daily_cap == 0 {
                ck.error(format!("{key}.inbound.daily_cap"), None, "expected at least 1 bulk request per run, found 0");
            }
        }
    }
}

/// Why a password attribute is refused as a mapping.
const PASSWORD_MAPPING: &str = "a password is never mapped: its value would be written into every plan, the store and the \
     audit trail; initial passwords come from [target.password], which generates each one and delivers it \
     without recording it";

/// Variables every expression may use besides the person attributes the sources map.
pub const BUILTIN_VARIABLES: [&str; 8] =
    ["key", "login", "state", "affiliation", "affiliations", "manager_dn", "today", "account_expires"];

/// One problem in a configuration file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The dotted key, e.g. `target[0].attributes.cn`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}: {}", self.file, line, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

/// A compiled target mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub attr: AttrName,
    pub expr: Expr,
    pub when: MappingWhen,
    /// Uses `manager_dn`: written in a second pass, after every account exists.
    pub references_manager: bool,
}

/// A compiled group rule.
#[derive(Debug, Clone)]
pub struct GroupRule {
    pub dn: Expr,
    pub when: Expr,
}

/// A target's rules, compiled.
#[derive(Debug, Clone)]
pub struct TargetRules {
    pub config: TargetConfig,
    pub dn: Expr,
    pub managed: Vec<Dn>,
    /// `managed`, each normalized ([`TargetRules::plain_in_scope`]).
    managed_normalized: Vec<String>,
    pub move_to: Option<Dn>,
    pub purge_move_to: Option<Dn>,
    pub mappings: Vec<Mapping>,
    pub disable_set: Vec<(AttrName, Expr)>,
    pub groups: Vec<GroupRule>,
    pub group_mode: GroupMode,
}

impl TargetRules {
    pub fn name(&self) -> &str {
        &self.config.name
    }
    pub fn in_scope(&self, dn: &Dn) -> bool {
        self.managed.iter().any(|base| dn.is_within(base))
    }

    /// [`in_scope`](Self::in_scope) for a plain DN (no escapes, no `+`: [`crate::dn::normalize_plain`]'s),
    /// normalized, without parsing it: a base or below one is the base's normalized form, or
    /// ends with `,` and it (a comma that, in a plain DN, is never part of a value).
    pub(crate) fn plain_in_scope(&self, normalized: &str) -> bool {
        self.managed_normalized.iter().any(|base| {
            normalized.strip_suffix(base.as_str()).is_some_and(|above| above.is_empty() || above.ends_with(','))
        })
    }
}

/// Login generation rules, compiled.
#[derive(Debug, Clone)]
pub struct LoginRules {
    pub candidates: Vec<Expr>,
    pub fallback: Expr,
    pub max_length: usize,
    /// Matches one character that is NOT allowed.
    pub disallowed: Regex,
    pub romanized: BTreeMap<String, String>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub store: StoreConfig,
    pub zone: Tz,
    pub sources: Vec<SourceConfig>,
    pub lifecycle: LifecycleConfig,
    pub login: LoginRules,
    pub targets: Vec<TargetRules>,
    pub safety: SafetyConfig,
    /// `[approval]`, with the group DNs normalized.
    pub approval: crate::config::ApprovalConfig,
    /// The audit chain's key; `None`: the key file beside the store.
    pub audit: Option<AuditConfig>,
    /// Every person attribute a source provides (plus `affiliation`).
    pub attributes: BTreeSet<String>,
    /// SHA-256 of the configuration text: a change re-evaluates everyone.
    pub hash: String,
    pub correlation: CorrelationConfig,
    /// Person attribute -> the sources whose value wins, in order.
    pub precedence: BTreeMap<String, Vec<String>>,
    /// `[serve]`, validated; `None` when the file has no such section.
    pub serve: Option<ServeSettings>,
    /// `[notify]`, validated.
    pub notify: crate::config::NotifyConfig,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

struct Checker<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, key: impl Into<String>, span: Option<std::ops::Range<usize>>, message: impl Into<String>) {
        let line = span.filter(|s| s.end > 0).map(|s| line_of(self.text, s.start));
        self.errors.push(ConfigError { file: self.file.to_string(), line, key: key.into(), message: message.into() });
    }

    /// Compiles an expression and checks its names; reports and returns None on failure.
    fn expr(&mut self, key: &str, src: &Spanned<String>, known: &dyn Fn(&str) -> bool) -> Option<Expr> {
        let result = Expr::compile(src.get_ref()).and_then(|e| e.check(known).map(|()| e));
        match result {
            Ok(e) => Some(e),
            Err(err) => {
                self.error(key, Some(src.span()), format!("{err} in expression {:?}", src.get_ref()));
                None
            }
        }
    }

    /// Compiles a login candidate: one expression, or several for an Entra
    /// `SelectUniqueValue(...)` (each of its rules a candidate, in order).
    fn candidates(&mut self, key: &str, src: &Spanned<String>, known: &dyn Fn(&str) -> bool) -> Vec<Expr> {
        let result = Expr::compile(src.get_ref())
            .and_then(|e| e.alternatives())
            .and_then(|all| all.iter().try_for_each(|e| e.check(known)).map(|()| all));
        result.unwrap_or_else(|err| {
            self.error(key, Some(src.span()), format!("{err} in expression {:?}", src.get_ref()));
            Vec::new()
        })
    }

    /// Evaluates an expression on the sample person; reports a failure.
    fn sample(&mut self, key: &str, src: &Spanned<String>, expr: &Expr, env: &Env) -> Option<ExprValue> {
        match expr.eval(env) {
            Ok(v) => Some(v),
            Err(err) => {
                self.error(
                    key,
                    Some(src.span()),
                    format!("fails on a sample person: {err} (expression {:?})", src.get_ref()),
                );
                None
            }
        }
    }
}

/// A REST source's `[source.rest]`: a URL roster may call, options that fit its paging, and a
/// `complete` it can honour (item 11 of the sources' design: a read that can shift while it runs
/// is never complete, so it can never make phantom leavers).
fn check_rest_source(ck: &mut Checker, key: &str, s: &SourceConfig) {
    use crate::config::{RestAuthConfig, RestPaging};
    let Some(rest) = &s.rest else {
        ck.error(
            format!("{key}.rest"),
            None,
            "expected a [source.rest] table with at least the url of the API, e.g. url = \"https://hr.example.org/api/workers\"",
        );
        return;
    };
    let key = format!("{key}.rest");
    check_http_url(ck, &format!("{key}.url"), &rest.url, rest.allow_plaintext);
    let paging = rest.paging;
    for (field, set, applies) in [
        ("offset_param", rest.offset_param.is_some(), RestPaging::Offset),
        ("limit_param", rest.limit_param.is_some(), RestPaging::Offset),
        ("page_size", rest.page_size.is_some(), RestPaging::Offset),
        ("token_field", rest.token_field.is_some(), RestPaging::PageToken),
        ("token_param", rest.token_param.is_some(), RestPaging::PageToken),
        ("next_field", rest.next_field.is_some(), RestPaging::NextLink),
    ] {
        if set && paging != applies {
            ck.error(
                format!("{key}.{field}"),
                None,
                format!(
                    "{field} applies to paging = {:?} only, but paging is {:?}",
                    paging_name(applies),
                    paging_name(paging)
                ),
            );
        }
    }
    for (field, value) in [
        ("offset_param", &rest.offset_param),
        ("limit_param", &rest.limit_param),
        ("token_field", &rest.token_field),
        ("token_param", &rest.token_param),
        ("next_field", &rest.next_field),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            ck.error(format!("{key}.{field}"), None, "expected a name, found an empty string");
        }
    }
    for (field, value) in [
        ("page_size", rest.page_size.map(u64::from)),
        ("max_pages", rest.max_pages.map(u64::from)),
        ("max_page_bytes", rest.max_page_bytes),
        ("timeout_seconds", rest.timeout_seconds),
        ("max_attempts", rest.max_attempts.map(u64::from)),
    ] {
        if value == Some(0) {
            ck.error(format!("{key}.{field}"), None, "expected a whole number of at least 1, found 0");
        }
    }
    match paging {
        RestPaging::Offset if s.complete => ck.error(
            format!("{key}.paging"),
            None,
            "complete = true cannot be declared for offset paging: records can shift between pages while the \
             read runs (someone hired or removed moves everyone after them), so a person missing from such a \
             read may merely have slipped between two pages; use page_token, next_link or odata paging with \
             consistent_snapshot = true, a single document (paging = \"none\"), or complete = false",
        ),
        RestPaging::Offset if rest.consistent_snapshot => ck.error(
            format!("{key}.consistent_snapshot"),
            None,
            "offset paging is never a consistent snapshot: each page is a new query",
        ),
        RestPaging::PageToken | RestPaging::NextLink | RestPaging::Odata if s.complete && !rest.consistent_snapshot => {
            ck.error(
                format!("{key}.consistent_snapshot"),
                None,
                format!(
                    "complete = true with paging = {:?} needs consistent_snapshot = true: set it only when the \
                     vendor documents that its pages are one snapshot (a server-side cursor), since a person \
                     missing from a read whose pages shifted would be taken for a leaver",
                    paging_name(paging)
                ),
            )
        }
        _ => {}
    }
    match &rest.auth {
        Some(RestAuthConfig::Basic { username, password }) => {
            if username.trim().is_empty() {
                ck.error(format!("{key}.auth.username"), None, "expected a user name, found an empty string");
            }
            check_secret_ref(ck, &format!("{key}.auth.password"), password);
        }
        Some(RestAuthConfig::Bearer { token }) => check_secret_ref(ck, &format!("{key}.auth.token"), token),
        Some(RestAuthConfig::Oauth2 { token_url, client_id, client_secret, .. }) => {
            check_http_url(ck, &format!("{key}.auth.token_url"), token_url, rest.allow_plaintext);
            if client_id.trim().is_empty() {
                ck.error(format!("{key}.auth.client_id"), None, "expected the client id, found an empty string");
            }
            check_secret_ref(ck, &format!("{key}.auth.client_secret"), client_secret);
        }
        None => {}
    }
}

fn paging_name(paging: crate::config::RestPaging) -> &'static str {
    use crate::config::RestPaging;
    match paging {
        RestPaging::None => "none",
        RestPaging::Offset => "offset",
        RestPaging::PageToken => "page_token",
        RestPaging::NextLink => "next_link",
        RestPaging::Odata => "odata",
    }
}

/// An `https://` URL (or `http://` when plaintext is allowed) without credentials in it.
fn check_http_url(ck: &mut Checker, key: &str, url: &str, allow_plaintext: bool) {
    let Some((scheme, rest)) = url.split_once("://") else {
        ck.error(key, None, format!("expected an https:// URL, found {url:?}"));
        return;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if allow_plaintext => {}
        "http" => ck.error(
            key,
            None,
            "expected an https:// URL: http:// sends credentials and personal data in clear (for a lab on \
             loopback, set allow_plaintext = true)",
        ),
        other => ck.error(key, None, format!("expected an https:// URL, found the scheme {other:?}")),
    }
    if authority.is_empty() {
        ck.error(key, None, "expected a host after the scheme, found none");
    }
    if authority.contains('@') {
        ck.error(
            key,
            None,
            "the URL carries credentials (user@ or user:password@); put them in [source.rest.auth] as a secret \
             reference instead",
        );
    }
}

fn check_secret_ref(ck: &mut Checker, key: &str, reference: &crate::config::SecretRef) {
    if !(reference.0.starts_with("env:") || reference.0.starts_with("file:")) {
        ck.error(
            key,
            None,
            "expected a secret reference \"env:NAME\" or \"file:PATH\"; a secret is never written in the config",
        );
    }
}

/// A person with every attribute filled, to try each expression on before anything runs.
pub fn sample_env(attributes: &BTreeSet<String>, dates: &BTreeSet<String>) -> Env {
    let mut env = Env::new();
    for name in attributes {
        let value = if crate::config::LIFECYCLE_DATE_ATTRIBUTES.contains(&name.as_str()) || dates.contains(name) {
            "2026-01-15".to_string()
        } else {
            format!("Sample{}", pcase_word(name))
        };
        env.set(name, ExprValue::Text(value));
    }
    env.set("key", ExprValue::Text("00001".into()));
    env.set("login", ExprValue::Text("sample.login".into()));
    env.set("state", ExprValue::Text("active".into()));
    env.set("affiliation", ExprValue::Text("employee".into()));
    env.set("affiliations", ExprValue::List(vec![ExprValue::Text("employee".into())]));
    env.set("manager_dn", ExprValue::Text("uid=manager,ou=people,dc=example,dc=org".into()));
    env.set("today", ExprValue::Text("2026-01-15".into()));
    env.set("account_expires", ExprValue::Text("134157312000000000".into()));
    env
}

/// `[correlation]` and `[precedence]`: the attributes and sources they name exist.
fn check_correlation(ck: &mut Checker, cfg: &ConfigFile, attributes: &BTreeSet<String>) {
    let sources: BTreeSet<&str> = cfg.source.iter().map(|s| s.name.as_str()).collect();
    let c = &cfg.correlation;
    for (i, attr) in c.hashed.iter().enumerate() {
        if !attributes.contains(attr) {
            ck.error(format!("correlation.hashed[{i}]"), None, format!("{attr:?} is not mapped by any source"));
        }
    }
    match &c.hash_key {
        None if !c.hashed.is_empty() => ck.error(
            "correlation.hash_key",
            None,
            "expected a secret reference (\"env:NAME\" or \"file:PATH\") to the key that hashes the hashed attributes",
        ),
        Some(r) if !(r.0.starts_with("env:") || r.0.starts_with("file:")) => ck.error(
            "correlation.hash_key",
            None,
            "expected a secret reference \"env:NAME\" or \"file:PATH\"; the key is never written in the config",
        ),
        _ => {}
    }
    for (i, d) in c.decide.iter().enumerate() {
        let key = format!("correlation.decide[{i}]");
        if !sources.contains(d.source.as_str()) {
            ck.error(format!("{key}.source"), None, format!("no source is named {:?}", d.source));
        }
        if d.person.is_some() == d.separate {
            ck.error(key, None, "expected either person = \"<person key>\" or separate = true");
        }
    }
    for (attr, order) in &cfg.precedence {
        if !attributes.contains(attr) {
            ck.error(format!("precedence.{attr}"), None, format!("{attr:?} is not mapped by any source"));
        }
        for source in order {
            if !sources.contains(source.as_str()) {
                ck.error(format!("precedence.{attr}"), None, format!("no source is named {source:?}"));
            }
        }
    }
}

fn pcase_word(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// Parses and validates a configuration file's text. `file` names it in messages.
pub fn load(text: &str, file: &str) -> Result<Settings, Vec<ConfigError>> {
    let parsed: ConfigFile = toml::from_str(text).map_err(|e| {
        vec![ConfigError {
            file: file.to_string(),
            line: e.span().map(|s| line_of(text, s.start)),
            key: "(file)".to_string(),
            message: e.message().to_string(),
        }]
    })?;
    validate(parsed, text, file)
}

/// Stage two on an already parsed file (`text` is its source, for line numbers and the hash).
pub fn validate(cfg: ConfigFile, text: &str, file: &str) -> Result<Settings, Vec<ConfigError>> {
    let mut ck = Checker { text, file, errors: Vec::new() };

    let zone = match cfg.time.zone.get_ref().parse::<Tz>() {
        Ok(z) => Some(z),
        Err(_) => {
            ck.error(
                "time.zone",
                Some(cfg.time.zone.span()),
                format!("expected an IANA time zone such as \"Europe/Berlin\", found {:?}", cfg.time.zone.get_ref()),
            );
            None
        }
    };

    let mut attributes = BTreeSet::from(["affiliation".to_string()]);
    let mut names = BTreeSet::new();
    if cfg.source.is_empty() {
        ck.error("source", None, "expected at least one [[source]]");
    }
    for (i, s) in cfg.source.iter().enumerate() {
        let key = format!("source[{i}]");
        if !names.insert(s.name.clone()) {
            ck.error(format!("{key}.name"), None, format!("source name {:?} is used twice", s.name));
        }
        if s.key.trim().is_empty() {
            ck.error(format!("{key}.key"), None, "expected the name of the key column, found an empty string");
        }
        for (attr, column) in &s.columns {
            if BUILTIN_VARIABLES.contains(&attr.as_str()) && attr != "affiliation" {
                ck.error(
                    format!("{key}.columns.{attr}"),
                    None,
                    format!("{attr:?} is computed by roster and cannot be mapped from a column"),
                );
            }
            if !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || attr.starts_with(|c: char| c.is_ascii_digit())
            {
                ck.error(
                    format!("{key}.columns.{attr}"),
                    None,
                    "attribute names may contain only letters, digits and _, and not start with a digit",
                );
            }
            if column.trim().is_empty() {
                ck.error(format!("{key}.columns.{attr}"), None, "expected a column header, found an empty string");
            }
            attributes.insert(attr.clone());
        }
        if !s.columns.contains_key("hire_date") {
            ck.error(format!("{key}.columns"), None, "expected a column for hire_date (the lifecycle needs it)");
        }
        for attr in s.date_attributes.iter().chain(&s.required) {
            if !s.columns.contains_key(attr) {
                ck.error(
                    key.to_string(),
                    None,
                    format!("{attr:?} is listed in date_attributes or required but has no entry in columns"),
                );
            }
        }
        let probe = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap_or_default();
        let well_formed =
            !chrono::format::StrftimeItems::new(&s.date_format).any(|item| matches!(item, chrono::format::Item::Error));
        let formatted = well_formed.then(|| probe.format(&s.date_format).to_string());
        match formatted {
            Some(text) if NaiveDate::parse_from_str(&text, &s.date_format).ok() == Some(probe) => {}
            _ => ck.error(format!("{key}.date_format"), None, format!("{:?} is not a chrono date format that reads back a full date (expected e.g. \"%Y-%m-%d\" or \"%d.%m.%Y\")", s.date_format)),
        }
        use crate::config::SourceKind;
        let file_kind = matches!(s.kind, SourceKind::Csv | SourceKind::Xlsx | SourceKind::Json | SourceKind::Jsonl);
        if file_kind && s.path.is_none() {
            ck.error(format!("{key}.path"), None, "expected the path of the export file");
        }
        if s.kind == SourceKind::Sql {
            if s.url.is_none() {
                ck.error(
                    format!("{key}.url"),
                    None,
                    "expected a secret reference to the connection URL, e.g. \"env:HR_DATABASE_URL\"",
                );
            }
            if s.query.as_deref().is_none_or(|q| q.trim().is_empty()) {
                ck.error(format!("{key}.query"), None, "expected the SQL query that reads the records");
            }
        }
        if let Some(url) = &s.url
            && !(url.0.starts_with("env:") || url.0.starts_with("file:"))
        {
            ck.error(format!("{key}.url"), None, "expected a secret reference \"env:NAME\" or \"file:PATH\"; a URL may carry a password and is never written in the config");
        }
        for (field, set, kinds) in [
            ("sheet", s.sheet.is_some(), &[SourceKind::Xlsx][..]),
            ("header_row", s.header_row.is_some(), &[SourceKind::Xlsx][..]),
            ("records", s.records.is_some(), &[SourceKind::Json, SourceKind::Rest][..]),
            ("rest", s.rest.is_some(), &[SourceKind::Rest][..]),
            ("scim", s.scim.is_some(), &[SourceKind::Scim][..]),
            ("url", s.url.is_some(), &[SourceKind::Sql][..]),
            ("query", s.query.is_some(), &[SourceKind::Sql][..]),
            ("modified_column", s.modified_column.is_some(), &[SourceKind::Sql][..]),
            ("full_read_after_hours", s.full_read_after_hours.is_some(), &[SourceKind::Sql][..]),
            ("path", s.path.is_some() && !file_kind, &[][..]),
        ] {
            if set && !kinds.contains(&s.kind) {
                ck.error(
                    format!("{key}.{field}"),
                    None,
                    format!("{field} does not apply to a {:?} source", s.kind).to_lowercase(),
                );
            }
        }
        if s.kind == SourceKind::Rest {
            check_rest_source(&mut ck, &key, s);
        }
        if s.kind == SourceKind::Scim {
            match &s.scim {
                None => ck.error(
                    format!("{key}.scim"),
                    None,
                    "expected [source.scim] with token_sha256: the bearer token's SHA-256 that selects this source",
                ),
                Some(scim) => {
                    if sha256_hex(&scim.token_sha256).is_none() {
                        ck.error(
                            format!("{key}.scim.token_sha256"),
                            None,
                            "expected the token's SHA-256 as 64 hex digits (`roster token hash`), never the token itself",
                        );
                    }
                }
            }
        }
        if s.kind == SourceKind::Sql {
            if s.modified_column.is_some() && s.query.as_deref().is_some_and(|q| !q.contains(":since")) {
                ck.error(
                    format!("{key}.query"),
                    None,
                    "with modified_column, the query must compare that column with :since (e.g. \
                     WHERE updated_at >= :since), where an incremental read puts the last watermark",
                );
            }
            if s.full_read_after_hours.is_some() && s.modified_column.is_none() {
                ck.error(
                    format!("{key}.full_read_after_hours"),
                    None,
                    "applies only to incremental reads: set modified_column too, or remove it",
                );
            }
            if s.full_read_after_hours == Some(0) {
                ck.error(format!("{key}.full_read_after_hours"), None, "expected at least 1 (hours)");
            }
        }
        for (field, attr) in s
            .correlate
            .iter()
            .map(|a| ("correlate", a))
            .chain(s.previous_key.iter().map(|a| ("previous_key", a)))
            .chain(s.effective_date.iter().map(|a| ("effective_date", a)))
            .chain(s.primary.iter().map(|a| ("primary", a)))
        {
            if !s.columns.contains_key(attr) {
                ck.error(
                    format!("{key}.{field}"),
                    None,
                    format!("{attr:?} is not an attribute of this source: expected an entry in {key}.columns"),
                );
            }
        }
        if s.header_row == Some(0) {
            ck.error(format!("{key}.header_row"), None, "rows are numbered from 1");
        }
        if !s.delimiter.is_ascii() {
            ck.error(
                format!("{key}.delimiter"),
                None,
                format!("expected a single ASCII character, found {:?}", s.delimiter),
            );
        }
    }

    let known_person = |name: &str| attributes.contains(name) || BUILTIN_VARIABLES.contains(&name);
    let dates: BTreeSet<String> = cfg.source.iter().flat_map(|s| s.date_attributes.iter().cloned()).collect();
    let env = sample_env(&attributes, &dates);

    let mut candidates = Vec::new();
    if cfg.login.candidates.is_empty() {
        ck.error("login.candidates", None, "expected at least one login candidate expression");
    }
    let no_login = |name: &str| name != "login" && name != "manager_dn" && known_person(name);
    for (i, c) in cfg.login.candidates.iter().enumerate() {
        let key = format!("login.candidates[{i}]");
        for e in ck.candidates(&key, c, &no_login) {
            if let Some(v) = ck.sample(&key, c, &e, &env)
                && let Err(err) = v.into_text()
            {
                ck.error(&key, Some(c.span()), format!("expected text: {err}"));
            }
            candidates.push(e);
        }
    }
    let fallback = ck.expr("login.fallback", &cfg.login.fallback, &no_login);
    if let Some(f) = &fallback
        && let Some(v) = ck.sample("login.fallback", &cfg.login.fallback, f, &env)
        && let Err(err) = v.into_text()
    {
        ck.error("login.fallback", Some(cfg.login.fallback.span()), format!("expected text: {err}"));
    }
    if cfg.login.max_length == 0 {
        ck.error("login.max_length", None, "expected a positive length");
    }
    let disallowed = match Regex::new(&format!("[^{}]", cfg.login.allowed)) {
        Ok(r) => Some(r),
        Err(e) => {
            ck.error(
                "login.allowed",
                None,
                format!("expected the inside of a regex character class such as \"a-z0-9._-\": {e}"),
            );
            None
        }
    };
    for (attr, romanized) in &cfg.login.romanized {
        for name in [attr, romanized] {
            if !attributes.contains(name) {
                ck.error(
                    format!("login.romanized.{attr}"),
                    None,
                    format!("{name:?} is not an attribute any source maps"),
                );
            }
        }
    }

    let mut targets = Vec::new();
    let mut target_names = BTreeSet::new();
    for (i, t) in cfg.target.iter().enumerate() {
        let key = format!("target[{i}]");
        let mut t = t.clone();
        t.resolve_defaults();
        let t = &t;
        if !target_names.insert(t.name.clone()) {
            ck.error(format!("{key}.name"), None, format!("target name {:?} is used twice", t.name));
        }
        let scim = t.kind == crate::config::TargetKind::Scim;
        let is_reference = |r: &SecretRef| r.0.starts_with("env:") || r.0.starts_with("file:");
        const NOT_A_REFERENCE: &str =
            "expected a secret reference \"env:NAME\" or \"file:PATH\"; secrets are never written in the config";
        let entra = t.kind == crate::config::TargetKind::Entra;
        let entra_inbound = t.kind == crate::config::TargetKind::EntraInbound;
        if t.inbound.is_some() && !entra_inbound {
            ck.error(format!("{key}.inbound"), None, "only a kind = \"entra_inbound\" target takes this table");
        }
        if t.entra.is_some() && !entra && !entra_inbound {
            ck.error(
                format!("{key}.entra"),
                None,
                "only a kind = \"entra\" or \"entra_inbound\" target takes this table",
            );
        }
        if (scim || entra || entra_inbound) && t.full_read_after_hours.is_some() {
            ck.error(
                format!("{key}.full_read_after_hours"),
                None,
                "this kind of target is read in full by every run: the key is for the ldap and active_directory kinds",
            );
        }
        if (scim || entra || entra_inbound) && t.max_request_bytes.is_some() {
            ck.error(
                format!("{key}.max_request_bytes"),
                None,
                "the key is for the ldap and active_directory kinds, whose groups' members go in LDAP requests",
            );
        }
        if let Some(bytes) = t.max_request_bytes.filter(|&b| b < MIN_REQUEST_BYTES) {
            ck.error(
                format!("{key}.max_request_bytes"),
                None,
                format!("expected at least {MIN_REQUEST_BYTES} bytes (a few member DNs), found {bytes}"),
            );
        }
        if scim {
            check_scim_target(&mut ck, &key, t);
        } else if entra {
            check_entra_target(&mut ck, &key, t);
        } else if entra_inbound {
            check_entra_inbound_target(&mut ck, &key, t);
        } else {
            if !(t.url.starts_with("ldap://") || t.url.starts_with("ldaps://")) {
                ck.error(
                    format!("{key}.url"),
                    None,
                    format!("expected ldap://host:port or ldaps://host:port, found {:?}", t.url),
                );
            }
            if t.url.starts_with("ldap://") && !t.tls.starttls && !t.tls.allow_plaintext {
                ck.error(format!("{key}.url"), None, "a plain ldap:// connection would send the bind password in clear: use ldaps://, set tls.starttls = true, or (lab only) tls.allow_plaintext = true");
            }
            if !is_reference(&t.bind_password) {
                ck.error(format!("{key}.bind_password"), None, NOT_A_REFERENCE);
            }
            for (name, set) in [("token", t.token.is_some()), ("base", t.base.is_some())] {
                if set {
                    ck.error(format!("{key}.{name}"), None, "only a kind = \"scim\" target takes this key");
                }
            }
            if t.dn.get_ref().is_empty() {
                ck.error(format!("{key}.dn"), None, "expected an expression giving each account's DN");
            }
        }
        if let Some(token) = &t.token
            && !is_reference(token)
        {
            ck.error(format!("{key}.token"), None, NOT_A_REFERENCE);
        }
        let mut managed = Vec::new();
        if t.managed.is_empty() {
            ck.error(
                format!("{key}.managed"),
                None,
                "expected at least one managed subtree (roster never writes outside them)",
            );
        }
        for (j, m) in t.managed.iter().enumerate() {
            match Dn::parse(m) {
                Ok(dn) if !dn.is_root() => managed.push(dn),
                Ok(_) => ck.error(format!("{key}.managed[{j}]"), None, "the root DSE cannot be a managed subtree"),
                Err(e) => ck.error(format!("{key}.managed[{j}]"), None, e.to_string()),
            }
        }
        let bind_dn = (!scim && !entra_inbound).then_some(&t.bind_dn);
        for (name, value) in [
            ("bind_dn", bind_dn),
            ("unique_base", t.unique_base.as_ref()),
            ("empty_group_member", t.empty_group_member.as_ref()),
        ] {
            if let Some(Err(e)) = value.map(|v| Dn::parse(v)) {
                ck.error(format!("{key}.{name}"), None, e.to_string());
            }
        }
        let mut managed_dn = |name: &str, value: Option<&String>| match value.map(|v| Dn::parse(v)) {
            Some(Ok(dn)) => {
                if !managed.iter().any(|m| dn.is_within(m)) {
                    ck.error(
                        format!("{key}.{name}"),
                        None,
                        format!("{dn} is outside the managed subtrees, where roster may not write"),
                    );
                }
                Some(dn)
            }
            Some(Err(e)) => {
                ck.error(format!("{key}.{name}"), None, e.to_string());
                None
            }
            None => None,
        };
        let move_to = managed_dn("disable.move_to", t.disable.move_to.as_ref());
        let purge_move_to = managed_dn("purge_move_to", t.purge_move_to.as_ref());
        let ad = t.kind == crate::config::TargetKind::ActiveDirectory;
        match &t.password {
            None if ad => ck.error(
                format!("{key}.password"),
                None,
                "an active_directory target needs a [target.password] table: AD enables an account only once it has a password (use delivery = \"none\" for a random password nobody sees)",
            ),
            Some(_) if entra_inbound => ck.error(
                format!("{key}.password"),
                None,
                "an entra_inbound target sets no passwords: Entra's provisioning job and its sign-in (temporary access pass, single sign-on) do",
            ),
            Some(_) if scim => ck.error(
                format!("{key}.password"),
                None,
                "a scim target sets no passwords: the service's own sign-in (invitation, single sign-on) does",
            ),
            Some(pw) => {
                if !(12..=256).contains(&pw.length) {
                    ck.error(format!("{key}.password.length"), None, format!("expected 12 to 256 characters, found {}", pw.length));
                }
                let encrypted = t.url.starts_with("ldaps://") || t.tls.starttls || (entra && t.url.starts_with("https://"));
                if !encrypted {
                    ck.error(
                        format!("{key}.password"),
                        None,
                        if entra {
                            "roster sends passwords only over HTTPS: use an https:// url"
                        } else {
                            "roster sends passwords only over LDAPS or StartTLS: use an ldaps:// url or tls.starttls = true"
                        },
                    );
                }
            }
            None => {}
        }
        if !ad
            && !scim
            && !entra
            && !entra_inbound
            && !t.disable.lock
            && t.disable.move_to.is_none()
            && t.disable.set.is_empty()
        {
            ck.error(
                format!("{key}.disable"),
                None,
                "expected a way to disable accounts (lock = true with OpenLDAP's ppolicy, move_to, or set): without one a leaver's account would stay usable",
            );
        }
        if t.disable.lock && ad {
            ck.error(
                format!("{key}.disable.lock"),
                None,
                "Active Directory accounts are disabled through userAccountControl; the ppolicy lock is for OpenLDAP",
            );
        }
        let dn_key = format!("{key}.dn");
        let no_manager = |name: &str| name != "manager_dn" && known_person(name);
        let dn = ck.expr(&dn_key, &t.dn, &no_manager);
        if let Some(dn_expr) = &dn
            && let Some(v) = ck.sample(&dn_key, &t.dn, dn_expr, &env)
        {
            match v.into_text().map_err(|e| e.to_string()).and_then(|s| Dn::parse(&s).map_err(|e| e.to_string())) {
                Ok(sample) if !managed.is_empty() && !managed.iter().any(|m| sample.is_within(m)) => {
                    ck.error(
                        &dn_key,
                        Some(t.dn.span()),
                        format!("gives {sample} for a sample person, which is outside the managed subtrees"),
                    );
                }
                Ok(sample) if sample.rdns().len() < 2 => {
                    ck.error(&dn_key, Some(t.dn.span()), format!("gives {sample:?}, which is not a DN below a parent"))
                }
                Ok(_) => {}
                Err(e) => {
                    ck.error(&dn_key, Some(t.dn.span()), format!("does not give a valid DN for a sample person: {e}"))
                }
            }
        }
        let mut mappings = Vec::new();
        for (attr, m) in &t.attributes {
            let (src, when) = (&m.value, m.when);
            let mkey = format!("{key}.attributes.{attr}");
            if attr.eq_ignore_ascii_case("objectClass") {
                ck.error(&mkey, Some(src.span()), "object classes are set by object_classes, not as a mapping");
            }
            if AttrName::new(attr.as_str()).is_password() {
                ck.error(&mkey, Some(src.span()), PASSWORD_MAPPING);
            }
            if let Some(expr) = ck.expr(&mkey, src, &known_person) {
                if let Some(v) = ck.sample(&mkey, src, &expr, &env)
                    && let Err(e) = v.into_texts()
                {
                    ck.error(&mkey, Some(src.span()), format!("expected text or a list of texts: {e}"));
                }
                let references_manager = expr.variables().iter().any(|v| v == "manager_dn");
                mappings.push(Mapping { attr: AttrName::new(attr.clone()), expr, when, references_manager });
            }
        }
        let mut disable_set = Vec::new();
        for (attr, src) in &t.disable.set {
            let dkey = format!("{key}.disable.set.{attr}");
            if AttrName::new(attr.as_str()).is_password() {
                ck.error(&dkey, Some(src.span()), PASSWORD_MAPPING);
            }
            if let Some(expr) = ck.expr(&dkey, src, &known_person) {
                if let Some(v) = ck.sample(&dkey, src, &expr, &env)
                    && let Err(e) = v.into_texts()
                {
                    ck.error(&dkey, Some(src.span()), format!("expected text or a list of texts: {e}"));
                }
                disable_set.push((AttrName::new(attr.clone()), expr));
            }
        }
        let mut groups = Vec::new();
        let default_when = Spanned::new(0..0, "true".to_string());
        for (j, g) in t.groups.iter().enumerate() {
            let gkey = format!("{key}.groups[{j}]");
            let dn_expr = ck.expr(&format!("{gkey}.dn"), &g.dn, &no_manager);
            let when_src = g.when.as_ref().unwrap_or(&default_when);
            let when = ck.expr(&format!("{gkey}.when"), when_src, &no_manager);
            if let (Some(dn_expr), Some(when)) = (dn_expr, when) {
                if let Some(v) = ck.sample(&format!("{gkey}.when"), when_src, &when, &env)
                    && v.into_bool().is_err()
                {
                    ck.error(format!("{gkey}.when"), Some(when_src.span()), "expected a true/false expression");
                }
                if let Some(v) = ck.sample(&format!("{gkey}.dn"), &g.dn, &dn_expr, &env) {
                    match v.into_texts() {
                        Ok(dns) => {
                            for d in dns {
                                match Dn::parse(&d) {
                                    Ok(parsed) if !managed.iter().any(|m| parsed.is_within(m)) => ck.error(
                                        format!("{gkey}.dn"),
                                        Some(g.dn.span()),
                                        format!("gives {parsed} for a sample person, outside the managed subtrees"),
                                    ),
                                    Ok(_) => {}
                                    Err(e) => ck.error(
                                        format!("{gkey}.dn"),
                                        Some(g.dn.span()),
                                        format!("does not give a valid DN: {e}"),
                                    ),
                                }
                            }
                        }
                        Err(e) => ck.error(
                            format!("{gkey}.dn"),
                            Some(g.dn.span()),
                            format!("expected a DN or a list of DNs: {e}"),
                        ),
                    }
                }
                groups.push(GroupRule { dn: dn_expr, when });
            }
        }
        if t.object_classes.is_empty() {
            ck.error(format!("{key}.object_classes"), None, "expected at least one object class");
        }
        if let Some(dn) = dn {
            targets.push(TargetRules {
                config: t.clone(),
                dn,
                managed_normalized: managed.iter().map(Dn::normalized).collect(),
                managed,
                move_to,
                purge_move_to,
                mappings,
                disable_set,
                groups,
                group_mode: t.group_mode,
            });
        }
    }

    let percent_ok = |p: Option<f64>| p.is_none_or(|p| (0.0..=100.0).contains(&p));
    for (name, limit) in [
        ("disables", cfg.safety.disables),
        ("deletes", cfg.safety.deletes),
        ("renames", cfg.safety.renames),
        ("group_removals", cfg.safety.group_removals),
    ] {
        if !percent_ok(limit.percent) {
            ck.error(format!("safety.{name}.percent"), None, "expected a percentage from 0 to 100");
        }
    }
    for (i, limit) in cfg.safety.attribute_changes.iter().enumerate() {
        if limit.attributes.is_empty() {
            ck.error(format!("safety.attribute_changes[{i}].attributes"), None, "expected at least one attribute");
        }
        if !percent_ok(limit.percent) {
            ck.error(format!("safety.attribute_changes[{i}].percent"), None, "expected a percentage from 0 to 100");
        }
    }
    if !percent_ok(Some(cfg.safety.source_shrink_percent)) {
        ck.error("safety.source_shrink_percent", None, "expected a percentage from 0 to 100");
    }
    const KINDS: [&str; 12] = [
        "create_container",
        "create",
        "set_password",
        "adopt",
        "update",
        "rename",
        "enable",
        "disable",
        "create_group",
        "add_member",
        "remove_member",
        "delete",
    ];
    for (i, kind) in cfg.approval.operations.iter().enumerate() {
        if !KINDS.contains(&kind.as_str()) {
            ck.error(
                format!("approval.operations[{i}]"),
                None,
                format!("expected one of {}, found {kind:?}", KINDS.join(", ")),
            );
        }
    }
    let mut approval = cfg.approval.clone();
    for (i, group) in cfg.approval.groups.iter().enumerate() {
        match Dn::parse(group) {
            Ok(dn) => approval.groups[i] = dn.normalized(),
            Err(e) => {
                ck.error(format!("approval.groups[{i}]"), None, format!("expected a group's DN, found {group:?}: {e}"))
            }
        }
    }
    if let (Some(path), Some(_)) = (&cfg.store.path, &cfg.store.url) {
        ck.error(
            "store.path",
            Some(path.span()),
            "expected either path (a SQLite file) or url (PostgreSQL), found both: the store lives in one place",
        );
    }
    if let Some(audit) = &cfg.audit
        && !(audit.key.0.starts_with("env:") || audit.key.0.starts_with("file:"))
    {
        ck.error(
            "audit.key",
            None,
            "expected a secret reference \"env:NAME\" or \"file:PATH\"; the audit key is never written in the config",
        );
    }

    check_correlation(&mut ck, &cfg, &attributes);
    check_notify(&mut ck, &cfg.notify, &cfg.target);
    let serve = cfg.serve.map(|serve| serve_settings(&mut ck, serve, &cfg.source));

    if !ck.errors.is_empty() {
        return Err(ck.errors);
    }
    let (Some(zone), Some(fallback), Some(disallowed)) = (zone, fallback, disallowed) else {
        return Err(ck.errors);
    };
    Ok(Settings {
        store: cfg.store,
        zone,
        sources: cfg.source,
        lifecycle: cfg.lifecycle,
        login: LoginRules {
            candidates,
            fallback,
            max_length: cfg.login.max_length,
            disallowed,
            romanized: cfg.login.romanized,
        },
        targets,
        safety: cfg.safety,
        approval,
        audit: cfg.audit,
        attributes,
        hash: format!("{:x}", Sha256::digest(text.as_bytes())),
        correlation: cfg.correlation,
        precedence: cfg.precedence,
        serve,
        notify: cfg.notify,
    })
}

/// `[notify]`: webhooks with unique names, URLs roster may send events to and secret references;
/// the mail server's TLS and addresses; and each `delivery = { webhook = ... }` naming a webhook a
/// password may go to.
fn check_notify(ck: &mut Checker, notify: &crate::config::NotifyConfig, targets: &[crate::config::TargetConfig]) {
    let mut names = BTreeSet::new();
    for (i, hook) in notify.webhook.iter().enumerate() {
        let at = format!("notify.webhook[{i}]");
        if hook.name.trim().is_empty() {
            ck.error(format!("{at}.name"), None, "expected a name, found an empty one");
        } else if !names.insert(hook.name.as_str()) {
            ck.error(
                format!("{at}.name"),
                None,
                format!("webhook {:?} is defined twice: names must be unique", hook.name),
            );
        }
        if let Some(problem) = webhook_url_problem(&hook.url, hook.tls.allow_plaintext) {
            ck.error(format!("{at}.url"), None, problem);
        }
        check_secret_ref(ck, &format!("{at}.secret"), &hook.secret);
        if hook.events.is_empty() {
            ck.error(format!("{at}.events"), None, "expected at least one event (leave the key out for all of them)");
        }
        if hook.timeout_seconds == 0 {
            ck.error(format!("{at}.timeout_seconds"), None, "expected at least 1 second, found 0");
        }
        if hook.tls.starttls {
            ck.error(format!("{at}.tls.starttls"), None, "StartTLS is for LDAP; a webhook uses an https:// URL");
        }
    }
    for (i, t) in targets.iter().enumerate() {
        let Some(crate::config::PasswordDelivery::Webhook(name)) = t.password.as_ref().map(|p| &p.delivery) else {
            continue;
        };
        let key = format!("target[{i}].password.delivery.webhook");
        match notify.webhook.iter().find(|h| &h.name == name) {
            None => {
                let known: Vec<&str> = notify.webhook.iter().map(|h| h.name.as_str()).collect();
                ck.error(key, None, format!("expected the name of a [[notify.webhook]] ({known:?}), found {name:?}"));
            }
            Some(hook) if webhook_url_problem(&hook.url, false).is_some() => ck.error(
                key,
                None,
                format!(
                    "webhook {name:?} is plain http to a host that is not loopback: passwords go only to an https:// \
                     or loopback URL, whatever tls.allow_plaintext says"
                ),
            ),
            Some(_) => {}
        }
    }
    if let Some(smtp) = &notify.smtp {
        check_smtp(ck, smtp);
    }
}

/// `[notify.smtp]`: TLS unless the server is on loopback and `allow_plaintext` says so; a login
/// with a secret reference; a sender and recipients that are addresses.
fn check_smtp(ck: &mut Checker, smtp: &crate::config::SmtpConfig) {
    if smtp.host.trim().is_empty() {
        ck.error("notify.smtp.host", None, "expected the mail server's host name, found an empty one");
    }
    let loopback = is_loopback(smtp.host.trim_start_matches('[').trim_end_matches(']'));
    if smtp.allow_plaintext && !loopback {
        ck.error(
            "notify.smtp.allow_plaintext",
            None,
            format!(
                "allow_plaintext is only for a mail server on loopback, found host {:?}: use tls = \"starttls\" or \"tls\"",
                smtp.host
            ),
        );
    }
    match (&smtp.username, &smtp.password) {
        (Some(_), None) => ck.error("notify.smtp.password", None, "expected a password reference with username"),
        (None, Some(_)) => ck.error("notify.smtp.username", None, "expected a username with password"),
        (Some(user), Some(password)) => {
            if user.trim().is_empty() {
                ck.error("notify.smtp.username", None, "expected a user name, found an empty string");
            }
            check_secret_ref(ck, "notify.smtp.password", password);
        }
        (None, None) => {}
    }
    let address = |text: &str| {
        let inner = text.rsplit_once('<').map_or(text, |(_, rest)| rest.trim_end_matches('>'));
        inner.split_once('@').is_some_and(|(local, domain)| !local.trim().is_empty() && !domain.trim().is_empty())
    };
    if !address(&smtp.from) {
        ck.error("notify.smtp.from", None, format!("expected a mail address, found {:?}", smtp.from));
    }
    if smtp.to.is_empty() {
        ck.error("notify.smtp.to", None, "expected at least one recipient");
    }
    for (i, to) in smtp.to.iter().enumerate() {
        if !address(to) {
            ck.error(format!("notify.smtp.to[{i}]"), None, format!("expected a mail address, found {to:?}"));
        }
    }
    if smtp.events.is_empty() {
        ck.error("notify.smtp.events", None, "expected at least one event (leave the key out for all of them)");
    }
    if smtp.timeout_seconds == 0 {
        ck.error("notify.smtp.timeout_seconds", None, "expected at least 1 second, found 0");
    }
}

/// Why roster will not POST to this URL, if it will not: only `https://`, or `http://` to a
/// loopback host (`localhost`, `127.0.0.0/8`, `[::1]`) or when `allow_plaintext` says so.
pub fn webhook_url_problem(url: &str, allow_plaintext: bool) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    let (rest, https) = if let Some(rest) = lower.strip_prefix("https://") {
        (rest, true)
    } else if let Some(rest) = lower.strip_prefix("http://") {
        (rest, false)
    } else {
        return Some(format!("expected an https:// URL, found {url:?}"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Some(format!("expected a host in the URL, found {url:?}"));
    }
    if https || allow_plaintext || is_loopback(host) {
        return None;
    }
    Some(format!(
        "{url:?} is plain http to a host that is not loopback: events (and password hand-offs) would cross the network \
         in clear; use https://, or set tls.allow_plaintext = true if you accept that"
    ))
}

pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `[serve]`, validated: the address parsed, each schedule compiled.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: std::net::SocketAddr,
    pub shutdown_timeout: std::time::Duration,
    /// How often a standby tries to take the lead, and the leader checks it still holds it.
    pub leader_retry: std::time::Duration,
    pub jobs: Vec<JobSettings>,
    pub tokens: Vec<TokenSettings>,
    /// The SCIM sources the endpoint `/scim/v2` feeds, each with its token.
    pub scim: Vec<ScimInbound>,
}

/// A `kind = "scim"` source as the daemon's SCIM endpoint sees it.
#[derive(Debug, Clone)]
pub struct ScimInbound {
    pub source: String,
    pub sha256: [u8; 32],
    /// The job queued after a push that changed a User.
    pub job: Option<String>,
}

/// 64 hex digits as 32 bytes.
fn sha256_hex(text: &str) -> Option<[u8; 32]> {
    let hex = text.trim().to_ascii_lowercase();
    let mut sha256 = [0u8; 32];
    let parsed = hex.len() == 64
        && sha256.iter_mut().enumerate().all(|(n, byte)| {
            hex.get(2 * n..2 * n + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()).map(|b| *byte = b).is_some()
        });
    parsed.then_some(sha256)
}

#[derive(Debug, Clone)]
pub struct JobSettings {
    pub config: crate::config::JobConfig,
    pub schedule: Option<croner::Cron>,
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub name: String,
    pub role: crate::config::TokenRole,
    pub sha256: [u8; 32],
}

fn serve_settings(
    ck: &mut Checker,
    serve: crate::config::ServeConfig,
    sources: &[crate::config::SourceConfig],
) -> ServeSettings {
    let listen = serve.listen.parse().unwrap_or_else(|_| {
        ck.error(
            "serve.listen",
            None,
            format!("expected an address and port such as \"127.0.0.1:8470\", found {:?}", serve.listen),
        );
        std::net::SocketAddr::from(([127, 0, 0, 1], 8470))
    });
    if serve.leader_retry == 0 {
        ck.error("serve.leader_retry", None, "expected a number of seconds from 1, found 0");
    }
    let mut names = BTreeSet::new();
    let mut jobs = Vec::new();
    for (i, job) in serve.job.into_iter().enumerate() {
        let key = format!("serve.job[{i}]");
        if job.name.is_empty() || !job.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            ck.error(format!("{key}.name"), None, format!("expected letters, digits, - and _, found {:?}", job.name));
        }
        if !names.insert(job.name.clone()) {
            ck.error(format!("{key}.name"), None, format!("job name {:?} is used twice", job.name));
        }
        if job.apply && job.command != crate::config::JobCommand::Reconcile {
            ck.error(format!("{key}.apply"), None, "apply applies to a reconcile job only");
        }
        let schedule = job.schedule.as_deref().and_then(|text| {
            croner::Cron::new(text)
                .with_seconds_optional()
                .parse()
                .map_err(|e| {
                    ck.error(
                        format!("{key}.schedule"),
                        None,
                        format!("expected a cron expression such as \"*/15 * * * *\", found {text:?}: {e}"),
                    )
                })
                .ok()
        });
        jobs.push(JobSettings { config: job, schedule });
    }
    let mut token_names = BTreeSet::new();
    let mut hashes = BTreeSet::new();
    let mut tokens = Vec::new();
    for (i, token) in serve.token.into_iter().enumerate() {
        let key = format!("serve.token[{i}]");
        if token.name.trim().is_empty() || !token_names.insert(token.name.clone()) {
            ck.error(format!("{key}.name"), None, format!("expected a name of its own, found {:?}", token.name));
        }
        match sha256_hex(&token.sha256) {
            None => ck.error(
                format!("{key}.sha256"),
                None,
                "expected the token's SHA-256 as 64 hex digits (`roster token hash`), never the token itself",
            ),
            Some(sha256) if !hashes.insert(sha256) => {
                ck.error(format!("{key}.sha256"), None, "the same token is listed twice")
            }
            Some(sha256) => tokens.push(TokenSettings { name: token.name, role: token.role, sha256 }),
        }
    }
    let mut scim = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let Some(config) = source.scim.as_ref() else { continue };
        let Some(sha256) = sha256_hex(&config.token_sha256) else { continue };
        if !hashes.insert(sha256) {
            ck.error(
                format!("source[{i}].scim.token_sha256"),
                None,
                "this token is already one of serve.token or another SCIM source's: each SCIM source needs a token of its own",
            );
        }
        if let Some(job) = &config.job
            && !names.contains(job)
        {
            ck.error(
                format!("source[{i}].scim.job"),
                None,
                format!("expected the name of a [[serve.job]], found {job:?}"),
            );
        }
        scim.push(ScimInbound { source: source.name.clone(), sha256, job: config.job.clone() });
    }
    ServeSettings {
        listen,
        shutdown_timeout: std::time::Duration::from_secs(serve.shutdown_timeout),
        leader_retry: std::time::Duration::from_secs(serve.leader_retry),
        jobs,
        tokens,
        scim,
    }
}
