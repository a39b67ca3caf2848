//! The configuration file, stage one: serde structs that mirror the TOML exactly
//! (`deny_unknown_fields`), with the doc comments that `docs/configuration.md` is written from.
//! Stage two, [`crate::validate`], checks them without I/O and compiles the expressions.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A whole roster configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub store: StoreConfig,
    pub time: TimeConfig,
    #[serde(default)]
    pub source: Vec<SourceConfig>,
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    pub login: LoginConfig,
    #[serde(default)]
    pub target: Vec<TargetConfig>,
    #[serde(default)]
    pub safety: SafetyConfig,
    #[serde(default)]
    pub approval: ApprovalConfig,
    pub audit: Option<AuditConfig>,
    #[serde(default)]
    pub correlation: CorrelationConfig,
    /// Person attribute = the sources whose value wins, in order (`last_day = ["contractors",
    /// "hr"]`). An attribute not listed takes the first non-empty value in source order.
    #[serde(default)]
    pub precedence: BTreeMap<String, Vec<String>>,
    pub serve: Option<ServeConfig>,
    #[serde(default)]
    pub notify: NotifyConfig,
}

/// `[notify]`: who is told when something happens (see `docs/notifications.md`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `[[notify.webhook]]`: signed HTTP POSTs of the events.
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    /// `[notify.smtp]`: a plain-text mail per event (never a password).
    pub smtp: Option<SmtpConfig>,
}

/// `[notify.smtp]`: the mail server roster sends its events through, and to whom.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The mail server's host name or address.
    pub host: String,
    /// Default 587 with `tls = "starttls"`, 465 with `tls = "tls"`, 25 with `allow_plaintext`.
    pub port: Option<u16>,
    /// `starttls` (the default) or `tls` (implicit TLS, "SMTPS"); the certificate is verified.
    #[serde(default)]
    pub tls: SmtpTls,
    /// PEM file of the CA(s) to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// No TLS at all: only to a loopback host (a local relay).
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Log in with this user name and `password`; without it, no authentication.
    pub username: Option<String>,
    /// `env:NAME` or `file:PATH`; required with `username`.
    pub password: Option<SecretRef>,
    /// The sender, `roster@example.org` or `Roster <roster@example.org>`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The events mailed. Default all of them.
    #[serde(default = "all_events")]
    pub events: Vec<NotifyEvent>,
    /// Seconds a delivery may take. Default 30.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_seconds: u64,
}

/// How the connection to the mail server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Connect in clear, then upgrade with STARTTLS before anything else is said (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// A webhook: each event it takes is POSTed as JSON, signed with HMAC-SHA256 under `secret`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique name, used in logs and by `delivery = { webhook = "name" }`.
    pub name: String,
    /// `https://...`; `http://` only to a loopback address or with `tls.allow_plaintext = true`.
    pub url: String,
    /// The HMAC key (`env:NAME` or `file:PATH`), shared with the receiver.
    pub secret: SecretRef,
    /// The events it takes. Default all of them.
    #[serde(default = "all_events")]
    pub events: Vec<NotifyEvent>,
    /// Seconds one attempt may take. Default 10.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_seconds: u64,
    /// `ca_file`, `insecure_skip_verify`, and `allow_plaintext` (an `http://` URL that is not
    /// loopback). `starttls` does not apply.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A joiner's account was created (the create landed).
    JoinerCreated,
    /// A leaver's account was disabled (the disable landed).
    LeaverDisabled,
    /// A run ended with failed operations, or with an error.
    RunFailed,
    /// A plan was blocked by safety limits or approval rules: nothing was applied (and, with
    /// `--hold-if-blocked`, the plan is held for an approver).
    PlanHeld,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 4] =
        [NotifyEvent::JoinerCreated, NotifyEvent::LeaverDisabled, NotifyEvent::RunFailed, NotifyEvent::PlanHeld];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::JoinerCreated => "joiner_created",
            NotifyEvent::LeaverDisabled => "leaver_disabled",
            NotifyEvent::RunFailed => "run_failed",
            NotifyEvent::PlanHeld => "plan_held",
        }
    }
}

fn all_events() -> Vec<NotifyEvent> {
    NotifyEvent::ALL.to_vec()
}
fn default_webhook_timeout() -> u64 {
    10
}
fn default_smtp_timeout() -> u64 {
    30
}

/// How records of several sources become one person, beyond identical keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationConfig {
    /// The key of the keyed hash (HMAC-SHA256) that replaces the values of `hashed` attributes as
    /// soon as a source is read, as a secret reference (`env:NAME` or `file:PATH`), at least 32
    /// bytes. Required when `hashed` is not empty.
    pub hash_key: Option<SecretRef>,
    /// Attributes (e.g. `national_id`) whose values are replaced by `hmac:<hex>` right after each
    /// source is read: compared for correlation, never planned, stored or logged in clear.
    #[serde(default)]
    pub hashed: Vec<String>,
    /// Decisions on disputed (or any not yet linked) records, made by a person.
    #[serde(default)]
    pub decide: Vec<CorrelationDecision>,
}

/// A person's decision about one record: join it to a person, or keep it a person of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationDecision {
    /// The record's source.
    pub source: String,
    /// The record's key in that source.
    pub key: String,
    /// The person (by person key) the record belongs to.
    pub person: Option<String>,
    /// The record is a person of its own, whatever its secondary keys match.
    #[serde(default)]
    pub separate: bool,
}

/// The audit trail's tamper evidence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The key of the audit trail's hash chain (HMAC-SHA256), as a secret reference: `env:NAME` or
    /// `file:PATH`, at least 32 bytes (make one with `openssl rand -hex 32`). Whoever holds it can
    /// rewrite the trail undetected, short of an exported chain head: keep it off the host that
    /// holds the store when you can. Without an `[audit]` section, roster generates a key into
    /// `<store>.audit-key` beside the store, readable by its owner only.
    pub key: SecretRef,
}

/// Where roster keeps its state: a SQLite file (`path`) or a PostgreSQL database (`url`), not both.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file, relative to the config file's folder. Default `roster.db`.
    pub path: Option<Spanned<PathBuf>>,
    /// A secret reference (`env:NAME` or `file:PATH`) holding a PostgreSQL URL
    /// (`postgres://user:password@host:5432/roster`): the store lives there instead of in `path`.
    /// The server's certificate is verified (`sslmode=verify-full`) unless the URL's `sslmode`
    /// says otherwise. Needs an `[audit] key`, since no key file can sit beside it.
    pub url: Option<SecretRef>,
}

impl StoreConfig {
    /// The SQLite file, as given or the default `roster.db`.
    pub fn path(&self) -> &std::path::Path {
        self.path.as_ref().map_or(std::path::Path::new("roster.db"), |p| p.get_ref())
    }
}

/// What "today" means.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    /// IANA time zone (e.g. `Europe/Berlin`): today's date, and the day on which a date takes effect.
    pub zone: Spanned<String>,
}

/// The kind of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A CSV export (`path`).
    Csv,
    /// An Excel workbook (`path`, `sheet`, `header_row`).
    Xlsx,
    /// A JSON document holding an array of objects (`path`, `records`).
    Json,
    /// JSON Lines: one object per line (`path`).
    Jsonl,
    /// A SQL query against PostgreSQL, MariaDB/MySQL or SQLite (`url`, `query`).
    Sql,
    /// A REST API answering JSON, page by page (`[source.rest]`, `records`).
    Rest,
    /// Users pushed to the daemon's SCIM 2.0 endpoint (`[source.scim]`); `key` and `columns` are
    /// SCIM attribute paths (docs/sources/scim-inbound.md).
    Scim,
}

/// Text encoding of a file source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextEncoding {
    /// UTF-8, with or without a byte-order mark (the default).
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// Windows-1252 (what Excel on Western Windows writes as "CSV"). A UTF-8 byte-order mark, if
    /// present, still wins.
    #[serde(rename = "windows-1252")]
    Windows1252,
}

/// A system of record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A short name, used in messages, the plan and the store. Must be unique.
    pub name: String,
    pub kind: SourceKind,
    /// The export file (csv, xlsx, json, jsonl), relative to the config file's folder.
    pub path: Option<PathBuf>,
    /// xlsx: the worksheet to read. Default: the first one.
    pub sheet: Option<String>,
    /// xlsx: the 1-based row that holds the column headers. Default 1.
    pub header_row: Option<u32>,
    /// json: the dotted path to the array of records (e.g. `Report_Entry` for a Workday report,
    /// `d.results` for OData). Default: the document itself is the array.
    pub records: Option<String>,
    /// sql: a secret reference (`env:NAME` or `file:PATH`) holding the connection URL
    /// (`postgres://…`, `mysql://…`, `sqlite://…`), which may carry a password.
    pub url: Option<SecretRef>,
    /// sql: the query; its result columns are what `columns` maps.
    pub query: Option<String>,
    /// rest: the API's address, paging, authentication, retries and bounds (`[source.rest]`).
    pub rest: Option<RestSourceConfig>,
    /// scim: who may push Users to the daemon's SCIM endpoint for this source (`[source.scim]`).
    pub scim: Option<ScimSourceConfig>,
    /// True when the export lists everyone: a person missing from a complete read has gone.
    #[serde(default)]
    pub complete: bool,
    /// The column holding the source key (e.g. `Employee_ID`). Kept exactly as text.
    pub key: String,
    #[serde(default)]
    pub encoding: TextEncoding,
    /// Field delimiter: a single character. Default `,`.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// chrono `strftime` format of every date column (e.g. `%Y-%m-%d`, `%d.%m.%Y`). Default `%Y-%m-%d`.
    #[serde(default = "default_date_format")]
    pub date_format: String,
    /// The affiliation every row of this source gives its person (`employee`, `contractor`,
    /// `student`, ...), unless the `affiliation` attribute is mapped to a column.
    #[serde(default = "default_affiliation")]
    pub affiliation: String,
    /// Person attribute = the export's column header.
    pub columns: BTreeMap<String, String>,
    /// Attributes (besides `hire_date`, `last_day`, `leave_start`, `leave_end`) parsed as dates.
    #[serde(default)]
    pub date_attributes: Vec<String>,
    /// Attributes that must not be empty; a row with one empty is quarantined. `hire_date` is always
    /// required.
    #[serde(default)]
    pub required: Vec<String>,
    /// Secondary keys: attributes (e.g. `personal_email`, `national_id`) by which a record whose key
    /// roster does not know joins the one person holding the same value. Two candidates: disputed.
    #[serde(default)]
    pub correlate: Vec<String>,
    /// The attribute naming the key this human had before (a Workday conversion's previous worker
    /// ID, in this or another source): the record joins that person, with their login and accounts.
    pub previous_key: Option<String>,
    /// Effective-dated export: the date attribute of each row's version. Several rows with one key
    /// are read as versions: the latest in effect on the day wins (or the earliest, when none is
    /// in effect yet), instead of all being quarantined as duplicates.
    pub effective_date: Option<String>,
    /// Concurrent appointments: the attribute that marks a key's primary row (`Y`, `yes`, `true`,
    /// `1`, `x`, `primary`), chosen among the rows that are otherwise tied.
    pub primary: Option<String>,
    /// sql: the result column holding when each row last changed (a timestamp, a date, or ISO 8601
    /// text). With it, reads are incremental: the query's `:since` gets the latest value of the last
    /// read that fully landed, and only the changed rows come back (a partial read: nobody missing
    /// from it has gone). A full read (`:since` before any record) still happens every
    /// `full_read_after_hours`, on `--full-read`, and when there is no watermark yet.
    pub modified_column: Option<String>,
    /// sql with `modified_column`: hours after the last full read when the next read is full again,
    /// to notice who has gone. Default 24.
    pub full_read_after_hours: Option<u32>,
}

/// A SCIM source: the bearer token an HR system pushes with, and what a push sets off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimSourceConfig {
    /// SHA-256 of the bearer token the HR system sends to `/scim/v2` (`roster token hash`), 64
    /// hex digits; the token selects this source. Never the token itself.
    pub token_sha256: String,
    /// A `[[serve.job]]` queued after every push that changed a User (a job already waiting is
    /// not queued twice, so a burst of pushes makes one run). Without it, pushed Users wait for
    /// the next scheduled run.
    pub job: Option<String>,
}

/// How a REST source pages through its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestPaging {
    /// One document holds every record (a Workday report-as-a-service URL): the default.
    #[default]
    None,
    /// `offset` and `limit` query parameters, advanced by `page_size` until a short page. Rows can
    /// shift between pages while the read runs, so such a read is never complete.
    Offset,
    /// A token in the body (`token_field`) sent back as a query parameter (`token_param`) until
    /// the body has none.
    PageToken,
    /// The next page's URL, from the body (`next_field`) or else the `Link: <...>; rel="next"`
    /// header, until there is none.
    NextLink,
    /// OData: v2 `{"d": {"results": [...], "__next": "..."}}` (SuccessFactors) or v4
    /// `{"value": [...], "@odata.nextLink": "..."}`.
    Odata,
}

/// How a REST source authenticates.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RestAuthConfig {
    /// HTTP basic authentication.
    Basic {
        username: String,
        /// A secret reference (`env:NAME` or `file:PATH`) holding the password.
        password: SecretRef,
    },
    /// A fixed bearer token (an API key sent as `Authorization: Bearer ...`).
    Bearer {
        /// A secret reference holding the token.
        token: SecretRef,
    },
    /// OAuth 2.0 client credentials: a token from `token_url`, kept until it expires (or the API
    /// answers 401), then fetched again.
    Oauth2 {
        /// The token endpoint (`https://.../oauth2/token`).
        token_url: String,
        client_id: String,
        /// A secret reference holding the client secret.
        client_secret: SecretRef,
        /// Space-separated scopes to ask for; none by default.
        scope: Option<String>,
        /// How the client authenticates to the token endpoint: `basic` (HTTP basic, the default,
        /// as RFC 6749 recommends) or `body` (`client_id` and `client_secret` in the form).
        #[serde(default)]
        client_auth: OAuthClientAuth,
    },
}

/// How an OAuth 2.0 client sends its credentials to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthClientAuth {
    #[default]
    Basic,
    Body,
}

/// A REST source: where its records are, how it pages, how it authenticates, and its bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestSourceConfig {
    /// The first page's URL (`https://...`). Query parameters may be part of it
    /// (`?format=json`); credentials may not: they belong in `auth`.
    pub url: String,
    #[serde(default)]
    pub paging: RestPaging,
    /// offset: the query parameter holding the position of the page's first record. Default
    /// `offset` (`$skip` for OData's client-side paging).
    pub offset_param: Option<String>,
    /// offset: the query parameter holding the page size. Default `limit` (`$top` for OData).
    pub limit_param: Option<String>,
    /// offset: records asked for per page; a page with fewer is the last. Default 100.
    pub page_size: Option<u32>,
    /// page_token: the dotted path of the next page's token in the body. Default `nextPageToken`.
    pub token_field: Option<String>,
    /// page_token: the query parameter the token is sent in. Default `pageToken`.
    pub token_param: Option<String>,
    /// next_link: the dotted path of the next page's URL in the body (e.g. `links.next`); without
    /// it, the `Link` header's `rel="next"`.
    pub next_field: Option<String>,
    /// The vendor guarantees that a paged read (page_token, next_link, odata) is one consistent
    /// snapshot, so `complete = true` may be declared for it. Never for offset paging.
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub auth: Option<RestAuthConfig>,
    /// PEM file of the CA(s) to trust instead of the system's roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` URLs, which send credentials and records in clear. For a lab on loopback.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Most pages one read may take; more fails the read. Default 10000.
    pub max_pages: Option<u32>,
    /// Largest page body, in bytes; a larger one fails the read. Default 64 MiB.
    pub max_page_bytes: Option<u64>,
    /// Longest wait for each request's answer, in seconds. Default 60.
    pub timeout_seconds: Option<u64>,
    /// Attempts per request when the API answers 429 or 5xx, or cannot be reached. Default 5.
    pub max_attempts: Option<u32>,
    /// Longest total wait between retries in one read, in seconds (a `Retry-After` asking for
    /// more fails the read). Default 300.
    pub max_retry_wait_seconds: Option<u64>,
}

fn default_delimiter() -> char {
    ','
}
fn default_date_format() -> String {
    "%Y-%m-%d".to_string()
}
fn default_affiliation() -> String {
    "employee".to_string()
}

/// Person attributes that the lifecycle reads; always parsed as dates when mapped.
pub const LIFECYCLE_DATE_ATTRIBUTES: [&str; 4] = ["hire_date", "last_day", "leave_start", "leave_end"];

/// What to do with a person on leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeavePolicy {
    /// Leave the account as it is.
    #[default]
    Keep,
    /// Disable the account; enable it again on return.
    Disable,
    /// Keep the account enabled but take it out of the managed groups.
    RemoveGroups,
}

/// What the `last_day` attribute means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LastDayMeaning {
    /// The last day worked: the person becomes a leaver the day after (the default).
    #[default]
    LastDayWorked,
    /// The first day no longer employed: the person becomes a leaver on that day.
    FirstDayGone,
}

/// Status-column values with a lifecycle meaning (compared case-insensitively, trimmed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusValues {
    /// Values of `status` that mean "on leave" (e.g. `Leave of Absence`).
    #[serde(default)]
    pub leave: Vec<String>,
    /// Values that mean the person has left, even without a `last_day`.
    #[serde(default)]
    pub terminated: Vec<String>,
    /// Values that mean the hire was rescinded (cancelled before day one).
    #[serde(default)]
    pub rescinded: Vec<String>,
}

/// The joiner/mover/leaver lifecycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Days before the hire date on which the account is created. 0: no account before day one.
    #[serde(default = "default_prehire_days")]
    pub prehire_days: u32,
    /// Whether a pre-hire account is enabled. Default false (created disabled, enabled on day one).
    #[serde(default)]
    pub prehire_enabled: bool,
    #[serde(default)]
    pub on_leave: LeavePolicy,
    /// Days after becoming a leaver on which the account is deleted and a tombstone kept.
    #[serde(default = "default_purge_after_days")]
    pub purge_after_days: u32,
    #[serde(default)]
    pub last_day: LastDayMeaning,
    /// Consecutive complete reads a person must be missing from before they become a leaver.
    #[serde(default = "default_missing_after_reads")]
    pub missing_after_reads: u32,
    #[serde(default)]
    pub status: StatusValues,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            prehire_days: default_prehire_days(),
            prehire_enabled: false,
            on_leave: LeavePolicy::default(),
            purge_after_days: default_purge_after_days(),
            last_day: LastDayMeaning::default(),
            missing_after_reads: default_missing_after_reads(),
            status: StatusValues::default(),
        }
    }
}

fn default_prehire_days() -> u32 {
    7
}
fn default_purge_after_days() -> u32 {
    90
}
fn default_missing_after_reads() -> u32 {
    1
}

/// The person's login name: generated once, the same in every target, never reused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// Expressions tried in order; the first whose result is free wins. When all are taken, the
    /// first is tried again with 2, 3, ... appended (shortened to fit `max_length`).
    pub candidates: Vec<Spanned<String>>,
    /// Longest login. Default 20 (sAMAccountName's limit).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Characters a login may contain, as the inside of a regex character class. Default `a-z0-9._-`.
    #[serde(default = "default_allowed")]
    pub allowed: String,
    /// For names in scripts whose transliteration is unreliable (Han, Hiragana, Katakana):
    /// attribute = the attribute holding its romanised form, used in the candidates instead.
    #[serde(default)]
    pub romanized: BTreeMap<String, String>,
    /// Used when no candidate gives a usable login (unreliable script and no romanised form, or
    /// nothing left after folding). Default `"u" + lower(key)`.
    #[serde(default = "default_login_fallback")]
    pub fallback: Spanned<String>,
}

fn default_max_length() -> usize {
    20
}
fn default_allowed() -> String {
    "a-z0-9._-".to_string()
}
fn default_login_fallback() -> Spanned<String> {
    Spanned::new(0..0, r#""u" + lower(key)"#.to_string())
}

/// A reference to a secret: `env:NAME` or `file:PATH`. Never the secret itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct SecretRef(pub String);

/// The kind of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// An LDAPv3 directory such as OpenLDAP (inetOrgPerson accounts, groupOfNames groups).
    Ldap,
    /// Active Directory (and Samba AD): user objects, userAccountControl, unicodePwd, AD groups.
    ActiveDirectory,
    /// A SCIM 2.0 service (RFC 7643/7644): Users with the enterprise extension, and Groups, seen
    /// by the planner under synthetic DNs (`externalId=<key>,ou=Users,<base>`).
    Scim,
    /// Entra ID through Microsoft Graph (cloud-only users, managers, group memberships), seen by
    /// the planner under synthetic DNs (`employeeId=<key>,ou=Users,<base>`).
    Entra,
    /// Entra ID's API-driven inbound provisioning: each person's record sent as a SCIM User to a
    /// provisioning job's `bulkUpload`, applied by Entra's own mappings; outcomes read from the
    /// provisioning logs. Synthetic DNs `externalId=<key>,ou=Users,<base>`.
    EntraInbound,
}

/// TLS settings of a connection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA(s) to trust, in addition to none: when unset, the system roots.
    pub ca_file: Option<PathBuf>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// Do not verify the server certificate. Never do this in production.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Allow a plain `ldap://` connection without StartTLS, which sends the bind password in clear.
    /// For a lab on loopback only; roster refuses plain connections otherwise.
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// When a mapping is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingWhen {
    /// On create and whenever the value changes (the default).
    #[default]
    Always,
    /// Only on create (and never on adopted entries).
    Create,
}

/// A target attribute's mapping: an expression (`cn = 'given_name + " " + family_name'`), or a
/// table with the expression and when to write it (`uid = { value = "login", when = "create" }`).
#[derive(Debug, Clone)]
pub struct MappingConfig {
    pub value: Spanned<String>,
    pub when: MappingWhen,
}

#[derive(Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum RawMapping {
    Expr(String),
    Full {
        value: String,
        #[serde(default)]
        when: MappingWhen,
    },
}

impl<'de> Deserialize<'de> for MappingConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The span is taken around the whole value: an untagged enum buffers its input, which
        // loses the spans of anything inside it.
        let raw = Spanned::<RawMapping>::deserialize(d)?;
        let span = raw.span();
        Ok(match raw.into_inner() {
            RawMapping::Expr(v) => MappingConfig { value: Spanned::new(span, v), when: MappingWhen::Always },
            RawMapping::Full { value, when } => MappingConfig { value: Spanned::new(span, value), when },
        })
    }
}

/// How a disabled account looks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableConfig {
    /// Lock with OpenLDAP ppolicy's administrative lock (`pwdAccountLockedTime: 000001010000Z`).
    #[serde(default)]
    pub lock: bool,
    /// Move disabled accounts to this OU (inside the managed scope); moved back when enabled.
    pub move_to: Option<String>,
    /// Attributes to set while disabled (expressions); restored from the mappings when enabled.
    /// For example `description = '"Left " + last_day'` stamps the last day worked (a value that
    /// changes every day, such as `today`, would be rewritten on every run).
    #[serde(default)]
    pub set: BTreeMap<String, Spanned<String>>,
    /// Leavers keep their group memberships (by default they lose every managed membership).
    #[serde(default)]
    pub keep_groups: bool,
}

/// Whether roster owns a managed group's whole member list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    /// Members no rule grants are removed (the default).
    #[default]
    Authoritative,
    /// roster only adds and removes the memberships its rules grant; others are left alone.
    Additive,
}

/// A group-membership rule: every person for whom `when` holds is a member of the group `dn`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRuleConfig {
    /// Expression giving the group's DN (a string) or DNs (a list).
    pub dn: Spanned<String>,
    /// Expression; default `true`. Only active persons (and persons on leave, when `on_leave = "keep"`)
    /// hold group memberships, whatever this says.
    pub when: Option<Spanned<String>>,
    /// Active Directory: the kind of group roster creates when the rule needs one. Default
    /// `security`.
    #[serde(default)]
    pub kind: GroupKind,
    /// Active Directory: the scope of groups roster creates. Default `global`.
    #[serde(default)]
    pub scope: GroupScope,
}

/// Security groups grant access; distribution groups are mailing lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    #[default]
    Security,
    Distribution,
}

/// The scope of an Active Directory group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupScope {
    #[default]
    Global,
    Universal,
    DomainLocal,
}

impl GroupRuleConfig {
    /// A global security group, the default.
    pub fn default_group_type() -> i64 {
        0x2 | i64::from(i32::MIN)
    }

    /// The AD `groupType` value for this rule's groups.
    pub fn ad_group_type(&self) -> i64 {
        let scope: i64 = match self.scope {
            GroupScope::Global => 0x2,
            GroupScope::DomainLocal => 0x4,
            GroupScope::Universal => 0x8,
        };
        match self.kind {
            GroupKind::Security => scope | i64::from(i32::MIN),
            GroupKind::Distribution => scope,
        }
    }
}

/// A directory (or app) that holds accounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: String,
    pub kind: TargetKind,
    /// `ldap://host:port` or `ldaps://host:port`; for `scim`, the base URL (`https://…/scim/v2`);
    /// for `entra` and `entra_inbound`, Graph's base (default `https://graph.microsoft.com/v1.0`).
    #[serde(default)]
    pub url: String,
    /// LDAP kinds only.
    #[serde(default)]
    pub bind_dn: String,
    /// `env:NAME` or `file:PATH`. LDAP kinds only.
    #[serde(default)]
    pub bind_password: SecretRef,
    /// `scim` only: the bearer token, `env:NAME` or `file:PATH`.
    pub token: Option<SecretRef>,
    /// `scim`, `entra` and `entra_inbound`: the suffix of the synthetic DNs. Default `o=scim`,
    /// `o=entra`, `o=entra-inbound`.
    pub base: Option<String>,
    /// `entra` and `entra_inbound`: the tenant, the application and its credential (and for
    /// `entra`, the managed groups).
    pub entra: Option<EntraConfig>,
    /// `entra_inbound` only: the provisioning job and how hard to use it.
    pub inbound: Option<InboundConfig>,
    #[serde(default)]
    pub tls: TlsConfig,
    /// Seconds to wait for a connection or an answer. Default 30. A write to a directory waits
    /// as long as the directory answers the target's other writes, and gives up after this long
    /// with no answer to anything.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Operations sent to this target at once, each waiting only for what it depends on. Default
    /// 32; `1` applies one operation at a time, in plan order. A `ldap` target spreads them over
    /// one connection per 8 (slapd defers a connection's operations beyond half its threads).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// LDAP kinds: hours after this target's last full read when a daily run reads it in full
    /// again. In between, a run that evaluates few persons reads only their accounts and what
    /// their plan needs; accounts changed outside roster, orphans and foreign group members are
    /// found by the full read. Default 24; `0`: every run reads the target in full.
    pub full_read_after_hours: Option<u32>,
    /// Subtrees roster may change; everything else is never modified. Default for `scim`:
    /// `ou=Users,<base>` and `ou=Groups,<base>`.
    #[serde(default)]
    pub managed: Vec<String>,
    /// Where login names must be unique (searched for taken values). Default: the directory suffix
    /// shared by the managed subtrees.
    pub unique_base: Option<String>,
    /// Expression giving an account's DN. Containers (OUs) it needs are created inside `managed`.
    /// Default for `scim`: `"externalId=" + key + ",ou=Users,<base>"`; required otherwise.
    #[serde(default = "no_expression")]
    pub dn: Spanned<String>,
    /// Object classes of new accounts. Default `["inetOrgPerson"]` for `ldap`, `["user"]` for
    /// `active_directory`.
    #[serde(default)]
    pub object_classes: Vec<String>,
    /// The attribute that holds the login name (checked for uniqueness). Default `uid` for `ldap`,
    /// `sAMAccountName` for `active_directory`.
    #[serde(default)]
    pub login_attribute: String,
    /// The attribute that holds the person's key, used to adopt existing entries and to find an
    /// entry whose create may have happened. Default `employeeNumber` for `ldap`, `employeeID` for
    /// `active_directory`.
    #[serde(default)]
    pub correlate: String,
    /// Target attribute = mapping.
    pub attributes: BTreeMap<String, MappingConfig>,
    #[serde(default)]
    pub disable: DisableConfig,
    #[serde(default)]
    pub groups: Vec<GroupRuleConfig>,
    #[serde(default)]
    pub group_mode: GroupMode,
    /// Member put in a groupOfNames whose last member roster removes (groupOfNames cannot be empty).
    /// Default: the group's own DN. Not used for Active Directory, whose groups may be empty.
    pub empty_group_member: Option<String>,
    /// Initial passwords for new accounts (Active Directory: an account cannot be enabled without
    /// one). Off for `ldap` unless this table is given.
    pub password: Option<PasswordConfig>,
    /// LDAP filter of accounts roster never modifies, whatever the rules say (in addition to
    /// everything outside `managed`). Default for `active_directory`: `(adminCount=1)`.
    pub protect: Option<String>,
    /// LDAP kinds: the directory keeps `memberOf` on each account (Active Directory always;
    /// OpenLDAP with the memberof overlay), so a partial read takes an account's groups from it
    /// instead of searching the groups for each account (a search that makes the server load
    /// every large group it tests, once per account). Default `true` for `active_directory`,
    /// `false` for `ldap`.
    pub member_of: Option<bool>,
    /// LDAP kinds: the most bytes of member DNs roster puts in one request (a group's create, a
    /// modify of its members); larger groups take several. Keep it below what the server accepts
    /// in one request: OpenLDAP's `olcSockbufMaxIncomingAuth` (16 MiB by default for a bound
    /// session, whatever slapd-config(5) says; slapd drops the connection of a larger request),
    /// 389 Directory Server's `nsslapd-maxbersize` (2 MiB), AD's `MaxReceiveBuffer` (10 MB).
    /// Default 12 MiB.
    pub max_request_bytes: Option<usize>,
    /// What to do about an owned attribute changed outside roster: `restore` (the default) or
    /// `report`.
    #[serde(default)]
    pub drift: DriftPolicy,
    /// What to do about accounts in the managed subtrees that belong to no person: `ignore` (the
    /// default), `report`, or `disable`.
    #[serde(default)]
    pub orphans: OrphanPolicy,
    /// What to do when a linked account was deleted outside roster: `report` (the default for
    /// `active_directory`: a recreated account has a new objectGUID and becomes a different user in
    /// Entra ID) or `recreate` (the default for `ldap`).
    pub on_deleted: Option<DeletedPolicy>,
    /// At purge: `delete` the account (the default), or move it to this OU for a person to delete.
    pub purge_move_to: Option<String>,
}

/// `[target.entra]`: how an `entra` target signs in to Microsoft Graph, and which groups it manages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraConfig {
    /// The directory (tenant) id, a GUID, or a verified domain (`contoso.onmicrosoft.com`).
    pub tenant: String,
    /// The application (client) id of the app registration.
    pub client_id: String,
    /// The client secret, `env:NAME` or `file:PATH`; or else `client_certificate` and `client_key`.
    pub client_secret: Option<SecretRef>,
    /// PEM file of the certificate uploaded to the app registration (relative to the config file).
    pub client_certificate: Option<PathBuf>,
    /// The certificate's RSA private key (PEM), `env:NAME` or `file:PATH`.
    pub client_key: Option<SecretRef>,
    /// Where tokens come from. Default `https://login.microsoftonline.com`.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// The groups (by displayName) whose memberships roster manages; rules name them
    /// `displayName=<name>,ou=Groups,<base>`. Each must exist, once, in the tenant.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Those of `groups` that assign licences (group-based licensing): roster refuses to add a user
    /// without a usageLocation to one.
    #[serde(default)]
    pub licensing_groups: Vec<String>,
    /// Revoke a disabled user's sign-in sessions (`revokeSignInSessions`). Default true.
    #[serde(default = "default_true")]
    pub revoke_sessions: bool,
    /// Seconds a 404 about a user created in the same run is asked again (Entra replicates a new
    /// object for a moment). Default 30.
    #[serde(default = "default_consistency_seconds")]
    pub consistency_seconds: u64,
}

/// `[target.inbound]`: the API-driven provisioning job an `entra_inbound` target uploads to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// The object id of the provisioning app's service principal (Enterprise applications ->
    /// the app -> Overview: Object ID).
    pub service_principal_id: String,
    /// The provisioning job's id (`API2AAD.…`, or `API2AD.…` for on-premises AD), from the app's
    /// Provisioning -> "View technical information".
    pub job_id: String,
    /// Most bulk requests (of up to 50 records) in one run; the records beyond are sent by the
    /// next run. Default 6000.
    #[serde(default = "default_daily_cap")]
    pub daily_cap: u64,
    /// How long a run reads the provisioning logs for the outcome of what it sent; what has none
    /// by then is pending, sent again and checked by the next run. 0: not read (an accepted
    /// upload counts as applied). Default 300.
    #[serde(default = "default_log_wait")]
    pub log_wait_seconds: u64,
}

fn default_daily_cap() -> u64 {
    6_000
}

fn default_log_wait() -> u64 {
    300
}

/// Microsoft's global identity platform.
pub const ENTRA_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Microsoft Graph v1.0.
pub const GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

fn default_authority() -> String {
    ENTRA_AUTHORITY.to_string()
}

fn default_consistency_seconds() -> u64 {
    30
}

/// How initial passwords are made and handed over.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfig {
    /// Length of generated passwords (at least 12). Default 20. Generated passwords always hold
    /// upper and lower case letters, digits and symbols, so they meet AD's complexity rules.
    #[serde(default = "default_password_length")]
    pub length: usize,
    /// The user must change the password at first logon (`pwdLastSet = 0`). Default true.
    #[serde(default = "default_true")]
    pub must_change: bool,
    /// Where the password goes. Never to logs, plans, the audit trail or the store.
    pub delivery: PasswordDelivery,
    /// When a new account gets its password: as it is created (the default), or when it is first
    /// enabled, so a pre-hire account waits for day one without a password.
    #[serde(default)]
    pub when: PasswordWhen,
}

/// When a new account's initial password is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordWhen {
    /// Right after the create, whatever the account's state.
    #[default]
    Created,
    /// When the account is first enabled: at once for an account created enabled, on day one for a
    /// pre-hire account created disabled.
    Enabled,
}

fn default_password_length() -> usize {
    20
}
fn default_true() -> bool {
    true
}

/// Where a new account's initial password goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PasswordDelivery {
    /// A random password that is never shown to anyone: for organisations that onboard with
    /// self-service password reset or temporary access passes.
    None,
    /// One file per account in this folder (`<login>.txt`), readable only by its owner (mode 0600).
    Folder { path: PathBuf },
    /// Run this program with the login in `ROSTER_LOGIN`, the DN in `ROSTER_DN`, the person's key in
    /// `ROSTER_PERSON` and the password on its standard input.
    Command {
        program: PathBuf,
        #[serde(default)]
        args: Vec<String>,
    },
    /// The `joiner_created` event of the account, with the password, POSTed to this
    /// `[[notify.webhook]]` (by name) only, when the password is set; https or loopback only.
    Webhook(String),
}

/// What to do about an owned attribute changed outside roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPolicy {
    #[default]
    Restore,
    Report,
}

/// What to do about accounts in the managed subtrees that belong to no person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanPolicy {
    #[default]
    Ignore,
    Report,
    Disable,
}

/// What to do when a linked account was deleted outside roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletedPolicy {
    Report,
    Recreate,
}

impl TargetConfig {
    /// Fills in the defaults that depend on the kind of target.
    pub fn resolve_defaults(&mut self) {
        match self.kind {
            TargetKind::Scim => {
                let base = self.scim_base().to_string();
                self.resolve_synthetic(&base, "externalId", "User", "userName");
                return;
            }
            TargetKind::EntraInbound => {
                if self.url.is_empty() {
                    self.url = GRAPH_URL.to_string();
                }
                let base = self.scim_base().to_string();
                self.resolve_synthetic(&base, "externalId", "User", "userName");
                return;
            }
            TargetKind::Entra => {
                if self.url.is_empty() {
                    self.url = GRAPH_URL.to_string();
                }
                let base = self.entra_base().to_string();
                self.resolve_synthetic(&base, "employeeId", "user", "mailNickname");
                return;
            }
            TargetKind::Ldap | TargetKind::ActiveDirectory => {}
        }
        let ad = self.kind == TargetKind::ActiveDirectory;
        if self.object_classes.is_empty() {
            self.object_classes = vec![if ad { "user" } else { "inetOrgPerson" }.to_string()];
        }
        if self.login_attribute.is_empty() {
            self.login_attribute = if ad { "sAMAccountName" } else { "uid" }.to_string();
        }
        if self.correlate.is_empty() {
            self.correlate = if ad { "employeeID" } else { "employeeNumber" }.to_string();
        }
        if self.protect.is_none() && ad {
            self.protect = Some("(adminCount=1)".to_string());
        }
        if self.member_of.is_none() {
            self.member_of = Some(ad);
        }
        if self.on_deleted.is_none() {
            self.on_deleted = Some(if ad { DeletedPolicy::Report } else { DeletedPolicy::Recreate });
        }
    }
}

impl TargetConfig {
    /// The defaults of a target whose DNs are synthetic (`scim`, `entra`): users are
    /// `<key_attribute>=<key>,ou=Users,<base>`, groups under `ou=Groups,<base>`.
    fn resolve_synthetic(&mut self, base: &str, key_attribute: &str, object_class: &str, login: &str) {
        if self.managed.is_empty() {
            self.managed = vec![format!("ou=Users,{base}"), format!("ou=Groups,{base}")];
        }
        if self.dn.get_ref().is_empty() {
            self.dn = Spanned::new(0..0, format!("\"{key_attribute}=\" + key + \",ou=Users,{base}\""));
        }
        if self.object_classes.is_empty() {
            self.object_classes = vec![object_class.to_string()];
        }
        if self.login_attribute.is_empty() {
            self.login_attribute = login.to_string();
        }
        if self.correlate.is_empty() {
            self.correlate = key_attribute.to_string();
        }
        if self.on_deleted.is_none() {
            self.on_deleted = Some(DeletedPolicy::Recreate);
        }
    }

    /// The suffix of a `scim` or `entra_inbound` target's synthetic DNs.
    pub fn scim_base(&self) -> &str {
        let default = if self.kind == TargetKind::EntraInbound { "o=entra-inbound" } else { "o=scim" };
        self.base.as_deref().unwrap_or(default)
    }

    /// The suffix of an `entra` target's synthetic DNs.
    pub fn entra_base(&self) -> &str {
        self.base.as_deref().unwrap_or("o=entra")
    }

    /// The secret to resolve before connecting: the bearer token (`scim`), the client secret or
    /// else the certificate's key (`entra`), the bind password (LDAP kinds).
    pub fn secret_ref(&self) -> &SecretRef {
        let entra = self.entra.as_ref().and_then(|e| e.client_secret.as_ref().or(e.client_key.as_ref()));
        self.token.as_ref().or(entra).unwrap_or(&self.bind_password)
    }
}

fn no_expression() -> Spanned<String> {
    Spanned::new(0..0, String::new())
}

fn default_timeout() -> u64 {
    30
}

fn default_concurrency() -> usize {
    32
}

/// `max_request_bytes` unless configured: room for the member DNs with a margin below
/// OpenLDAP's default limit for a request of a bound session, 16 MiB (`SLAP_SB_MAX_INCOMING_AUTH`;
/// the slapd-config(5) of OpenLDAP 2.5 says 4 MiB, but slapd 2.5 takes a request of 15 MiB and
/// drops one of 17 MiB): about 240,000 DNs of 50 bytes, so that a group of everyone goes in one
/// add. A group split in two costs slapd more than the second request: the modify that adds the
/// rest inserts each value into the sorted members one at a time.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 12 << 20;

/// The least `max_request_bytes` taken: a few member DNs.
pub const MIN_REQUEST_BYTES: usize = 4096;

/// A limit on one kind of change in one run: blocked when either is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Most persons affected.
    pub count: Option<u64>,
    /// Most persons affected, as a percentage of the population.
    pub percent: Option<f64>,
}

/// A limit on changes to chosen target attributes (e.g. the login or the mail address).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeLimit {
    pub attributes: Vec<String>,
    pub count: Option<u64>,
    pub percent: Option<f64>,
}

/// Operations that wait for an approver whatever their number: a plan holding one is blocked (limit
/// `approval`) as a safety limit blocks it; the daemon keeps it as a held plan until an approver
/// decides (docs/operations.md, "Approvals").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// Kinds of operation that need approval: `create`, `update`, `rename`, `enable`, `disable`,
    /// `delete`, `set_password`, `add_member`, `remove_member`, `create_group`, `adopt`,
    /// `create_container`. Default none.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Privileged groups (DNs): any membership change in them needs approval. Default none.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Limits that block a run until a person allows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    #[serde(default = "default_disable_limit")]
    pub disables: Limit,
    #[serde(default = "default_delete_limit")]
    pub deletes: Limit,
    /// Renames and moves (modify DN).
    #[serde(default = "default_rename_limit")]
    pub renames: Limit,
    /// Persons taken out of groups (access lost).
    #[serde(default = "default_group_removal_limit")]
    pub group_removals: Limit,
    #[serde(default)]
    pub attribute_changes: Vec<AttributeLimit>,
    /// Largest allowed shrink of a complete source against the last good read, in percent.
    #[serde(default = "default_shrink")]
    pub source_shrink_percent: f64,
    /// A person whose operations in a target fail in this many consecutive runs is quarantined
    /// there: nothing more is planned for them in that target until an operator releases them
    /// (`roster release PERSON`), so one bad record cannot flood every run. 0 never quarantines.
    /// Default 5.
    #[serde(default = "default_quarantine_after")]
    pub quarantine_after_failed_runs: u32,
}

fn default_quarantine_after() -> u32 {
    5
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            disables: default_disable_limit(),
            deletes: default_delete_limit(),
            renames: default_rename_limit(),
            group_removals: default_group_removal_limit(),
            attribute_changes: Vec::new(),
            source_shrink_percent: default_shrink(),
            quarantine_after_failed_runs: default_quarantine_after(),
        }
    }
}

fn default_disable_limit() -> Limit {
    Limit { count: Some(50), percent: Some(5.0) }
}
fn default_delete_limit() -> Limit {
    Limit { count: Some(20), percent: Some(2.0) }
}
fn default_rename_limit() -> Limit {
    Limit { count: Some(50), percent: Some(5.0) }
}
fn default_group_removal_limit() -> Limit {
    Limit { count: Some(100), percent: Some(10.0) }
}
fn default_shrink() -> f64 {
    10.0
}

/// `roster serve`: the daemon's schedule, API and metrics (see `docs/daemon.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address and port the API and `/metrics` listen on, plain HTTP. Default `127.0.0.1:8470`;
    /// port 0 takes a free port (the daemon prints the one it bound). Anything but a loopback
    /// address belongs behind a TLS-terminating reverse proxy (the daemon warns).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Seconds a shutdown (SIGTERM, SIGINT) waits for the running job to finish before it sends
    /// the job's process SIGTERM. Default 600. A second signal does so at once.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: u64,
    /// With a PostgreSQL store, several daemons may share it: one leads (runs the schedule and
    /// the jobs), the others stand by and try to take the lead every this many seconds; the
    /// leader checks its hold on the lead as often. Default 5. A SQLite store has one daemon,
    /// always the leader.
    #[serde(default = "default_leader_retry")]
    pub leader_retry: u64,
    /// Scheduled jobs.
    #[serde(default)]
    pub job: Vec<JobConfig>,
    /// Bearer tokens of the API.
    #[serde(default)]
    pub token: Vec<TokenConfig>,
}

fn default_listen() -> String {
    "127.0.0.1:8470".to_string()
}
fn default_shutdown_timeout() -> u64 {
    600
}
fn default_leader_retry() -> u64 {
    5
}

/// One scheduled job of the daemon.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// The job's name, in the API, the metrics and the actor of its runs (`serve:NAME`).
    pub name: String,
    /// When it runs: a cron expression (`minute hour day month weekday`, or with seconds first),
    /// in the `[time] zone`; e.g. `"*/15 * * * *"`, `"0 2 * * *"`. Without one the job runs only
    /// when triggered through the API.
    pub schedule: Option<String>,
    /// What it runs: `run` (plan and apply), `plan`, or `reconcile` (with `apply = true`:
    /// `reconcile --apply`).
    pub command: JobCommand,
    /// `reconcile` only: apply the reconciliation plan, under the safety limits. Default false.
    #[serde(default)]
    pub apply: bool,
}

/// The command a job runs, as `roster <command>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobCommand {
    Run,
    Plan,
    Reconcile,
}

/// A bearer token of the API, stored as its SHA-256 (`roster token hash`, or
/// `printf %s TOKEN | sha256sum`): the config never holds the token itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it: the actor of what it does (`api:NAME`) in the audit trail.
    pub name: String,
    pub role: TokenRole,
    /// SHA-256 of the token, 64 hex digits.
    pub sha256: String,
}

/// What a token may do; each role may also do everything of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// Reads runs, jobs, the audit trail.
    Viewer,
    /// Also triggers jobs and holds or unholds persons.
    Operator,
    /// Also approves held plans (to come).
    Approver,
}
