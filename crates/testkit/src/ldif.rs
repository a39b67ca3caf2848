//! Just enough LDIF and URL encoding to write the files slapd reads.

/// One `name: value` line, base64-encoded (`name:: ...`) when RFC 2849 does not allow the value
/// as it is (non-ASCII, control characters, a leading space, colon or `<`, a trailing space).
pub(crate) fn attr(name: &str, value: &str) -> String {
    if is_safe_string(value) {
        format!("{name}: {value}\n")
    } else {
        format!("{name}:: {}\n", base64(value.as_bytes()))
    }
}

fn is_safe_string(value: &str) -> bool {
    let bytes = value.as_bytes();
    let safe_char = |b: &u8| b.is_ascii() && !matches!(b, b'\0' | b'\n' | b'\r');
    bytes.iter().all(safe_char) && !matches!(bytes.first(), Some(b' ' | b':' | b'<')) && bytes.last() != Some(&b' ')
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as an `ldapi://` host
/// (a socket path) needs.
pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_stay_readable() {
        assert_eq!(attr("olcSuffix", "dc=example,dc=org"), "olcSuffix: dc=example,dc=org\n");
    }

    #[test]
    fn unsafe_values_are_base64() {
        assert_eq!(attr("o", " lead"), "o:: IGxlYWQ=\n");
        assert_eq!(attr("o", "Zürich"), "o:: WsO8cmljaA==\n");
        assert_eq!(attr("o", "<x"), "o:: PHg=\n");
        assert_eq!(attr("o", "ab "), "o:: YWIg\n");
    }

    #[test]
    fn socket_paths_are_percent_encoded() {
        assert_eq!(percent_encode("/tmp/a b/ldapi"), "%2Ftmp%2Fa%20b%2Fldapi");
    }
}
