//! What Active Directory (and Samba AD) does differently from an RFC directory, as pure functions:
//! objectGUID in its printed form, ranged attribute values, the `unicodePwd` encoding, the domain a
//! DN lies in, and AD's diagnostic sub-codes.

use roster_core::dn::Dn;
use secrecy::{ExposeSecret, SecretString};

/// The attribute that names an AD object for good: 16 bytes, printed as a GUID.
pub(super) const OBJECT_GUID: &str = "objectGUID";
/// The account flags, and the bit that disables an account.
pub(super) const USER_ACCOUNT_CONTROL: &str = "userAccountControl";
pub(super) const ACCOUNTDISABLE: i64 = 0x2;
/// A normal account (0x200) that is disabled: what an account planned disabled is created with.
pub(super) const NORMAL_ACCOUNT_DISABLED: i64 = 0x202;
/// Values per attribute that real AD returns at once (`MaxValRange`); a ranged read asks for
/// windows of this size and follows whatever window the server actually answers with.
pub(super) const RANGE_STEP: u64 = 1500;

/// objectGUID bytes as AD tools print them (`Get-ADUser`, `samba-tool`): lowercase, without braces,
/// the first three groups little-endian (a Windows GUID is a u32, two u16 and eight bytes).
pub(super) fn guid_to_string(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// The bytes of a GUID in its printed form (braces allowed, any case): the inverse of
/// [`guid_to_string`].
pub(super) fn guid_to_bytes(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    let text = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(text);
    let groups: Vec<&str> = text.split('-').collect();
    let [a, b, c, d, e] = groups.as_slice() else { return None };
    if [a.len(), b.len(), c.len(), d.len(), e.len()] != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut printed = [0u8; 16];
    for (i, byte) in printed.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2)?;
        if !pair.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    let p = printed;
    Some([p[3], p[2], p[1], p[0], p[5], p[4], p[7], p[6], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]])
}

/// `(objectGUID=\55\10...)`: every byte escaped, as AD matches objectGUID only by its bytes.
pub(super) fn guid_filter(text: &str) -> Option<String> {
    let bytes = guid_to_bytes(text)?;
    let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    Some(format!("({OBJECT_GUID}={escaped})"))
}

/// The window of a ranged attribute description: `member;range=0-1499` -> `(0, Some(1499))`,
/// `member;range=1500-*` -> `(1500, None)` (the last window). `None` when `description` is not a
/// ranged form of `attr`.
pub(super) fn value_range(description: &str, attr: &str) -> Option<(u64, Option<u64>)> {
    let mut parts = description.split(';');
    if !parts.next()?.eq_ignore_ascii_case(attr) {
        return None;
    }
    let range = parts.find_map(|option| {
        let (key, value) = option.split_once('=')?;
        key.eq_ignore_ascii_case("range").then_some(value)
    })?;
    let (low, high) = range.split_once('-')?;
    let low = low.parse().ok()?;
    let high = match high {
        "*" => None,
        number => Some(number.parse().ok()?),
    };
    Some((low, high))
}

/// `member;range=1500-2999`: the next window to ask for, starting at `start`.
pub(super) fn range_request(attr: &str, start: u64) -> String {
    format!("{attr};range={start}-{}", start.saturating_add(RANGE_STEP - 1))
}

/// The value AD takes in `unicodePwd`: the password in double quotes, as UTF-16LE bytes.
pub(super) fn unicode_pwd(password: &SecretString) -> Vec<u8> {
    let quoted = std::iter::once('"').chain(password.expose_secret().chars()).chain(std::iter::once('"'));
    let mut bytes = Vec::with_capacity(2 * password.expose_secret().len() + 4);
    let mut units = [0u16; 2];
    for c in quoted {
        for unit in c.encode_utf16(&mut units) {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
    }
    bytes
}

/// The AD domain a DN lies in: its trailing `DC=` components (`OU=People,DC=corp,DC=example` ->
/// `DC=corp,DC=example`). `None` when it has none.
pub(super) fn domain_of(dn: &Dn) -> Option<Dn> {
    let rdns = dn.rdns();
    let domain_len = rdns
        .iter()
        .rev()
        .take_while(|rdn| matches!(rdn.0.as_slice(), [ava] if ava.attr.eq_ignore_ascii_case("dc")))
        .count();
    if domain_len == 0 {
        return None;
    }
    let text: Vec<String> = rdns[rdns.len() - domain_len..].iter().map(ToString::to_string).collect();
    Dn::parse(&text.join(",")).ok()
}

/// The Win32 error code at the start of an AD diagnostic message (`0000052D: Constraint violation
/// - ...`, `00000005: SecErr: DSID-...`).
pub(super) fn sub_code(text: &str) -> Option<u32> {
    let text = text.trim_start();
    let (code, _) = text.split_once(':')?;
    if code.len() != 8 {
        return None;
    }
    u32::from_str_radix(code, 16).ok()
}

/// ERROR_PASSWORD_RESTRICTION: the password breaks the domain's password policy.
pub(super) const PASSWORD_RESTRICTION: u32 = 0x52D;
/// ERROR_DS_OBJ_STRING_NAME_EXISTS (Samba also answers it for a sAMAccountName in use).
pub(super) const NAME_EXISTS: u32 = 0x2071;
/// ERROR_DS_CONSTRAINT_VIOLATION.
pub(super) const CONSTRAINT_VIOLATION: u32 = 0x202F;
/// A naming violation.
pub(super) const NAMING_VIOLATION: u32 = 0x20B1;

/// What an AD diagnostic sub-code means, for the message; `None` for codes without a hint.
pub(super) fn sub_code_hint(code: u32) -> Option<&'static str> {
    match code {
        PASSWORD_RESTRICTION => Some(
            "the password does not meet the domain's password policy (length, complexity, history); AD also \
             refuses to enable an account that has no password yet",
        ),
        NAME_EXISTS => Some("an object with this name, or this sAMAccountName, already exists in the domain"),
        CONSTRAINT_VIOLATION => Some(
            "AD refused a value: a sAMAccountName or userPrincipalName already in use, a character AD does not \
             allow, or a value too long",
        ),
        NAMING_VIOLATION => Some("the name breaks AD's naming rules for this object class or parent"),
        _ => None,
    }
}

/// What the `data XXX` sub-code of a refused AD bind means.
pub(super) fn bind_hint(text: &str) -> Option<&'static str> {
    let (_, rest) = text.split_once("data ")?;
    let code = rest.split(|c: char| !c.is_ascii_hexdigit()).next()?.to_ascii_lowercase();
    Some(match code.as_str() {
        "52e" => "wrong password, or no such account",
        "525" => "no such account",
        "530" => "the account may not log on at this time",
        "531" => "the account may not log on from this workstation",
        "532" => "the account's password has expired",
        "533" => "the account is disabled",
        "701" => "the account has expired",
        "773" => "the account's password must be changed before it can bind",
        "775" => "the account is locked out",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user's objectGUID as Samba sent it (base64 `VRA5VdpsVku+3d6GO9SurQ==`) and as
    /// `samba-tool user show` printed it.
    const BYTES: [u8; 16] =
        [0x55, 0x10, 0x39, 0x55, 0xda, 0x6c, 0x56, 0x4b, 0xbe, 0xdd, 0xde, 0x86, 0x3b, 0xd4, 0xae, 0xad];
    const PRINTED: &str = "55391055-6cda-4b56-bedd-de863bd4aead";

    #[test]
    fn object_guids_read_as_ad_tools_print_them_and_back() {
        assert_eq!(guid_to_string(&BYTES).as_deref(), Some(PRINTED));
        assert_eq!(guid_to_bytes(PRINTED), Some(BYTES));
        assert_eq!(guid_to_bytes("{55391055-6CDA-4B56-BEDD-DE863BD4AEAD}"), Some(BYTES));
        assert_eq!(guid_to_string(&BYTES[..15]), None);
        for bad in [
            "",
            "55391055-6cda-4b56-bedd",
            "55391055-6cda-4b56-bedd-de863bd4aeaz",
            "5539105-56cda-4b56-bedd-de863bd4aead",
        ] {
            assert_eq!(guid_to_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn guid_filters_escape_every_byte_and_parse() {
        let filter = guid_filter(PRINTED).unwrap();
        assert_eq!(filter, "(objectGUID=\\55\\10\\39\\55\\da\\6c\\56\\4b\\be\\dd\\de\\86\\3b\\d4\\ae\\ad)");
        assert!(ldap3::parse_filter(&filter).is_ok());
        assert_eq!(guid_filter("*)(objectClass=*"), None);
    }

    #[test]
    fn ranged_descriptions_give_their_window() {
        assert_eq!(value_range("member;range=0-1499", "member"), Some((0, Some(1499))));
        assert_eq!(value_range("Member;Range=1500-*", "member"), Some((1500, None)));
        assert_eq!(value_range("member", "member"), None);
        assert_eq!(value_range("memberOf;range=0-*", "member"), None);
        assert_eq!(value_range("member;range=x-1", "member"), None);
        assert_eq!(range_request("member", 1500), "member;range=1500-2999");
    }

    #[test]
    fn unicode_pwd_is_the_quoted_password_in_utf16le() {
        let bytes = unicode_pwd(&SecretString::from("Pä1€"));
        let expected: Vec<u8> = "\"Pä1€\"".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(bytes, expected);
        assert_eq!(&bytes[..4], &[b'"', 0, b'P', 0]);
    }

    #[test]
    fn the_domain_is_the_trailing_dc_components() {
        let dn = |t: &str| Dn::parse(t).unwrap();
        assert_eq!(domain_of(&dn("OU=People,DC=corp,DC=example")).unwrap().normalized(), "dc=corp,dc=example");
        assert_eq!(domain_of(&dn("ou=people,o=example")), None);
    }

    #[test]
    fn sub_codes_and_bind_data_are_read_from_ad_messages() {
        assert_eq!(sub_code("0000052D: Constraint violation - check_password_restrictions"), Some(0x52D));
        assert_eq!(sub_code("00000005: SecErr: DSID-031A1256, problem 4003"), Some(5));
        assert_eq!(sub_code("attribute 'cn' cannot have multiple values"), None);
        assert!(sub_code_hint(PASSWORD_RESTRICTION).unwrap().contains("password policy"));
        let bind = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1";
        assert_eq!(bind_hint(bind), Some("the account is locked out"));
        assert_eq!(bind_hint("invalid credentials"), None);
    }
}
