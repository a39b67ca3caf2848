//! Initial passwords: AD takes them in `unicodePwd` (with `pwdLastSet` saying whether the user must
//! change it at first logon); an LDAP directory takes them through the Password Modify extended
//! operation (RFC 3062), so the server hashes them by its own policy.
//!
//! A password goes only over an encrypted connection, whatever the server would accept (Samba,
//! relaxed, takes `unicodePwd` in clear), and never into an error message, a log line or a `Debug`
//! output: messages are built from the operation and the server's answer, and any answer that
//! repeated the password is redacted.

use std::collections::HashSet;

use ldap3::exop::PasswordModify;
use ldap3::{Ldap, Mod};
use roster_core::attr::AttrMap;
use roster_core::plan::{Action, Applied, Operation};
use roster_core::state::TargetEntry;
use secrecy::{ExposeSecret, SecretString};

use super::dialect::Dialect;
use super::errors::{
    ASSERTION_FAILED, CONSTRAINT_VIOLATION, Effect, NO_SUCH_OBJECT, Right, SUCCESS, TYPE_OR_VALUE_EXISTS, describe,
    ldap_error, result_error,
};
use super::search::read_entry;
use super::session::Transport;
use super::{LOCK_ATTRIBUTE, LdapTarget, ad, check_identity, gone, parse_dn, replaced};
use crate::target::{ErrorKind, TargetError};

/// OpenLDAP ppolicy: the user must change the password at the next bind.
const PWD_RESET: &str = "pwdReset";

impl LdapTarget {
    /// Sets the password of the account of a `set_password` operation: AD's `unicodePwd` with
    /// `pwdLastSet` 0 (must change at first logon) or -1 (not), or LDAP's Password Modify (and
    /// ppolicy's `pwdReset` for must-change, where `disable.lock` says ppolicy is in use).
    ///
    /// Refused before anything is sent ([`ErrorKind::Config`]) when the connection is not
    /// encrypted; a password the domain's policy rejects is [`ErrorKind::Permanent`] with a message
    /// that says so.
    pub async fn set_password(&self, op: &Operation, password: &SecretString) -> Result<Applied, TargetError> {
        let Action::SetPassword { dn, object_id, must_change } = &op.action else {
            return Err(TargetError::new(
                ErrorKind::Permanent,
                format!("operation {} is a {}, not a set_password: apply it instead", op.id, op.action.kind()),
            ));
        };
        let what = self.check_operation(op)?;
        if self.session.transport() == Transport::Plain {
            return Err(TargetError::new(
                ErrorKind::Config,
                format!(
                    "{what}: the connection to {} is not encrypted (plain ldap:// without StartTLS), and roster sends \
                     passwords only over TLS: use ldaps:// or set tls.starttls = true; nothing was sent",
                    self.session.url()
                ),
            ));
        }
        if password.expose_secret().is_empty() {
            return Err(TargetError::new(
                ErrorKind::Permanent,
                format!("{what}: the password is empty; nothing was sent"),
            ));
        }
        parse_dn(&what, dn)?;
        let mut ldap = self.session.handle().await?;
        let ldap = &mut ldap;
        let uuid = self.unprotected_id(ldap, &what, dn).await?.ok_or_else(|| gone(&what))?;
        check_identity(&what, &uuid, object_id.as_deref())?;
        let outcome = match self.dialect {
            Dialect::ActiveDirectory => self.set_unicode_pwd(ldap, &what, dn, &uuid, password, *must_change).await,
            Dialect::Ldap => self.password_modify(ldap, &what, dn, password, *must_change).await,
        };
        outcome.map_err(|e| redact(e, password))?;
        Ok(Applied {
            entry: Some(TargetEntry { object_id: uuid, dn: dn.clone(), attrs: AttrMap::new(), protected: false }),
        })
    }

    /// One modify: replace `unicodePwd` (an administrator's reset) and `pwdLastSet`.
    async fn set_unicode_pwd(
        &self,
        ldap: &mut Ldap,
        what: &str,
        dn: &str,
        uuid: &str,
        password: &SecretString,
        must_change: bool,
    ) -> Result<(), TargetError> {
        let pwd_last_set: &[u8] = if must_change { b"0" } else { b"-1" };
        let mods: Vec<Mod<Vec<u8>>> = vec![
            Mod::Replace(b"unicodePwd".to_vec(), HashSet::from([ad::unicode_pwd(password)])),
            Mod::Replace(b"pwdLastSet".to_vec(), HashSet::from([pwd_last_set.to_vec()])),
        ];
        self.assert_identity(ldap, uuid);
        let result = self.send(self.session.answer(ldap.modify(dn, mods)).await, what)?;
        match result.rc {
            SUCCESS => Ok(()),
            NO_SUCH_OBJECT | ASSERTION_FAILED => Err(replaced(what, &result)),
            CONSTRAINT_VIOLATION if ad::sub_code(&result.text) == Some(ad::PASSWORD_RESTRICTION) => {
                Err(TargetError::new(
                    ErrorKind::Permanent,
                    format!(
                        "{what}: the password does not meet the domain's password policy (length, complexity, \
                         history): {}",
                        describe(&result)
                    ),
                ))
            }
            _ => Err(result_error(what, &result, Right::ResetPassword)),
        }
    }

    /// RFC 3062 Password Modify, as an administrator (no old password), then ppolicy's `pwdReset`.
    async fn password_modify(
        &self,
        ldap: &mut Ldap,
        what: &str,
        dn: &str,
        password: &SecretString,
        must_change: bool,
    ) -> Result<(), TargetError> {
        let timeout = self.timeout();
        // ppolicy clears the administrative lock whenever a password changes: a pre-hire given
        // their password a week early would be able to log in. The lock is put back below.
        let lock_before = if self.ppolicy_lock {
            read_entry(ldap, timeout, dn, "(objectClass=*)", vec![LOCK_ATTRIBUTE.to_string()])
                .await?
                .and_then(|mut e| e.take_first(LOCK_ATTRIBUTE))
        } else {
            None
        };
        let exop = PasswordModify { user_id: Some(dn), old_pass: None, new_pass: Some(password.expose_secret()) };
        let ldap3::result::ExopResult(_, result) =
            self.session.answer(ldap.extended(exop)).await.map_err(|e| ldap_error(what, e, Effect::Write, timeout))?;
        match result.rc {
            SUCCESS => {}
            NO_SUCH_OBJECT => return Err(gone(what)),
            CONSTRAINT_VIOLATION => {
                return Err(TargetError::new(
                    ErrorKind::Permanent,
                    format!(
                        "{what}: the password does not meet the directory's password policy: {}",
                        describe(&result)
                    ),
                ));
            }
            _ => return Err(result_error(what, &result, Right::ResetPassword)),
        }
        if must_change {
            self.mark_for_change(ldap, what, dn).await?;
        }
        if let Some(lock) = lock_before {
            let mods = vec![Mod::Add(LOCK_ATTRIBUTE.to_string(), HashSet::from([lock]))];
            let result = self.send(self.session.answer(ldap.modify(dn, mods)).await, what)?;
            if !matches!(result.rc, SUCCESS | TYPE_OR_VALUE_EXISTS) {
                return Err(TargetError::new(
                    ErrorKind::Permanent,
                    format!(
                        "{what}: the password was set, but locking the account again ({LOCK_ATTRIBUTE}) failed: {}; \
                         lock it by hand — the next run sets a new password",
                        describe(&result)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// ppolicy's `pwdReset`: the user must change the password at first logon.
    async fn mark_for_change(&self, ldap: &mut Ldap, what: &str, dn: &str) -> Result<(), TargetError> {
        if !self.ppolicy_lock {
            tracing::warn!(
                target_name = self.name,
                "{what}: must-change-at-first-logon needs OpenLDAP's ppolicy (disable.lock = true); the password was \
                 set without it"
            );
            return Ok(());
        }
        let mods = vec![Mod::Replace(PWD_RESET.to_string(), HashSet::from(["TRUE".to_string()]))];
        let result = self.send(self.session.answer(ldap.modify(dn, mods)).await, what)?;
        match result.rc {
            SUCCESS => Ok(()),
            _ => Err(TargetError::new(
                ErrorKind::Permanent,
                format!(
                    "{what}: the password was set, but marking it for change at first logon ({PWD_RESET}) failed: {}; \
                     the next run sets a new one",
                    describe(&result)
                ),
            )),
        }
    }
}

/// The error with every occurrence of the password taken out of its message, should a server have
/// repeated it in a diagnostic.
fn redact(mut error: TargetError, password: &SecretString) -> TargetError {
    let secret = password.expose_secret();
    if !secret.is_empty() && error.message.contains(secret) {
        error.message = error.message.replace(secret, "(password)");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_repeated_by_the_server_is_redacted() {
        let password = SecretString::from("S3cret!pw");
        let error = TargetError::new(ErrorKind::Permanent, "x: constraintViolation (19): S3cret!pw is weak");
        assert_eq!(redact(error, &password).message, "x: constraintViolation (19): (password) is weak");
        let plain = TargetError::new(ErrorKind::Permanent, "x: nothing secret");
        assert_eq!(redact(plain.clone(), &password), plain);
    }
}
