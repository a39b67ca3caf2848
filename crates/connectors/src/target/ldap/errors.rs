//! LDAP result codes and ldap3 errors, mapped to what the engine should do next.

use std::time::Duration;

use ldap3::{LdapError, LdapResult};

use super::ad;
use crate::target::{ErrorKind, TargetError};

pub(super) const SUCCESS: u32 = 0;
pub(super) const TIME_LIMIT_EXCEEDED: u32 = 3;
pub(super) const REFERRAL: u32 = 10;
pub(super) const ADMIN_LIMIT_EXCEEDED: u32 = 11;
pub(super) const NO_SUCH_ATTRIBUTE: u32 = 16;
pub(super) const TYPE_OR_VALUE_EXISTS: u32 = 20;
pub(super) const CONSTRAINT_VIOLATION: u32 = 19;
pub(super) const NO_SUCH_OBJECT: u32 = 32;
pub(super) const INSUFFICIENT_ACCESS_RIGHTS: u32 = 50;
pub(super) const BUSY: u32 = 51;
pub(super) const UNAVAILABLE: u32 = 52;
pub(super) const UNWILLING_TO_PERFORM: u32 = 53;
pub(super) const OBJECT_CLASS_VIOLATION: u32 = 65;
pub(super) const ALREADY_EXISTS: u32 = 68;
pub(super) const ASSERTION_FAILED: u32 = 122;

/// Whether the failed request could have changed the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Read,
    Write,
}

/// What the bind account must be allowed to do for an operation, named in the message when the
/// server answers insufficientAccessRights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Right {
    CreateChild,
    WriteAttributes,
    ResetPassword,
    Rename,
    Delete,
    WriteMembers,
}

impl Right {
    fn describe(self) -> &'static str {
        match self {
            Right::CreateChild => "create objects here (Create Child on the parent OU)",
            Right::WriteAttributes => "write these attributes (Write Property on the object)",
            Right::ResetPassword => {
                "reset this account's password (AD: the Reset Password right and Write Property on pwdLastSet)"
            }
            Right::Rename => {
                "rename or move this object (AD: Write Property on name and cn, Delete Child where it is, \
                 Create Child where it goes)"
            }
            Right::Delete => "delete this object (Delete, or Delete Child on its OU)",
            Right::WriteMembers => "change this group's members (Write Property on member)",
        }
    }
}

/// The RFC 4511 name of a result code.
pub(super) fn code_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        54 => "loopDetect",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        71 => "affectsMultipleDSAs",
        80 => "other",
        88 => "abandoned",
        122 => "assertionFailed",
        _ => "unknown result code",
    }
}

/// "noSuchAttribute (16): modify/delete: description: no such value".
pub(super) fn describe(result: &LdapResult) -> String {
    let mut out = format!("{} ({})", code_name(result.rc), result.rc);
    let text = result.text.trim();
    if !text.is_empty() {
        out.push_str(": ");
        out.push_str(text);
    }
    if result.rc == REFERRAL && !result.refs.is_empty() {
        out.push_str(&format!(" (referred to {})", result.refs.join(", ")));
    }
    out
}

/// The kind of an LDAP result that the operation itself gave no special meaning to.
pub(super) fn kind_of_code(rc: u32) -> ErrorKind {
    match rc {
        BUSY | UNAVAILABLE | TIME_LIMIT_EXCEEDED => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// `{what}: {code} ({n}): {text}`, with the default kind for the code, and what it means where
/// that is known: a right the bind account lacks, or an AD diagnostic sub-code.
pub(super) fn result_error(what: &str, result: &LdapResult, right: Right) -> TargetError {
    let mut message = format!("{what}: {}", describe(result));
    if result.rc == INSUFFICIENT_ACCESS_RIGHTS {
        message.push_str("; the service account lacks the right to ");
        message.push_str(right.describe());
    } else if let Some(hint) = ad::sub_code(&result.text).and_then(ad::sub_code_hint) {
        message.push_str("; ");
        message.push_str(hint);
    }
    TargetError::new(kind_of_code(result.rc), message)
}

/// An ldap3 error during an operation on an open connection.
pub(super) fn ldap_error(what: &str, err: LdapError, effect: Effect, timeout: Duration) -> TargetError {
    let may_have_happened = |detail: &str| match effect {
        Effect::Write => {
            TargetError::new(ErrorKind::Unknown, format!("{what}: {detail}; the change may or may not have been made"))
        }
        Effect::Read => TargetError::new(ErrorKind::Transient, format!("{what}: {detail}")),
    };
    match err {
        LdapError::OpSend { .. } => TargetError::new(
            ErrorKind::Transient,
            format!("{what}: the connection is closed; the request was not sent"),
        ),
        LdapError::ResultRecv { .. } => may_have_happened("the connection was lost before the answer came"),
        LdapError::EndOfStream => may_have_happened("the connection was lost in the middle of the answer"),
        LdapError::Timeout { .. } => may_have_happened(&format!("no answer within {} s", timeout.as_secs())),
        LdapError::Io { source } => may_have_happened(&format!("I/O error: {source}")),
        LdapError::LdapResult { result } => {
            TargetError::new(kind_of_code(result.rc), format!("{what}: {}", describe(&result)))
        }
        other => TargetError::new(ErrorKind::Permanent, format!("{what}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult { rc, matched: String::new(), text: text.to_string(), refs: vec![], ctrls: vec![] }
    }

    #[test]
    fn busy_unavailable_and_time_limit_are_transient_everything_else_permanent() {
        for rc in [BUSY, UNAVAILABLE, TIME_LIMIT_EXCEEDED] {
            assert_eq!(kind_of_code(rc), ErrorKind::Transient, "{rc}");
        }
        for rc in [1, 19, 21, 32, 50, 53, 65, 80] {
            assert_eq!(kind_of_code(rc), ErrorKind::Permanent, "{rc}");
        }
    }

    #[test]
    fn messages_name_the_code_and_the_server_text() {
        let err = result_error(
            "modify uid=a,dc=x",
            &result(19, "attribute 'cn' cannot have multiple values"),
            Right::WriteAttributes,
        );
        assert_eq!(
            err.message,
            "modify uid=a,dc=x: constraintViolation (19): attribute 'cn' cannot have multiple values"
        );
        let mut referral = result(REFERRAL, "");
        referral.refs = vec!["ldap://other/".to_string()];
        assert_eq!(describe(&referral), "referral (10) (referred to ldap://other/)");
    }

    #[test]
    fn refusals_say_which_right_is_missing_and_what_ad_sub_codes_mean() {
        let denied = result(50, "00000005: SecErr: DSID-031A1256, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0");
        let err = result_error("target ad: set_password CN=a,DC=x", &denied, Right::ResetPassword);
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("the service account lacks the right to reset"), "{}", err.message);
        let taken = result(68, "00002071: samldb: samAccountName 'u2' already in use!");
        let err = result_error("target ad: create CN=b,DC=x", &taken, Right::CreateChild);
        assert!(err.message.ends_with("already exists in the domain"), "{}", err.message);
        let weak = result(19, "0000052D: Constraint violation - check_password_restrictions: too short");
        let err = result_error("target ad: enable CN=b,DC=x", &weak, Right::WriteAttributes);
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert!(err.message.contains("password policy"), "{}", err.message);
    }

    #[test]
    fn a_lost_answer_to_a_write_may_have_happened_but_a_lost_read_is_transient() {
        let lost = || LdapError::EndOfStream;
        let t = Duration::from_secs(5);
        assert_eq!(ldap_error("add x", lost(), Effect::Write, t).kind, ErrorKind::Unknown);
        assert_eq!(ldap_error("search x", lost(), Effect::Read, t).kind, ErrorKind::Transient);
        let timeout =
            ldap_error("add x", LdapError::Io { source: std::io::ErrorKind::TimedOut.into() }, Effect::Write, t);
        assert_eq!(timeout.kind, ErrorKind::Unknown);
    }
}
