//! Reading the write key a client presents, the way Segment's HTTP API takes it.

/// Extracts the write key from an `Authorization: Basic base64(writeKey:)` header.
///
/// Segment's libraries send the key as the user name with an empty password; a key
/// with no colon at all is accepted too, since some clients omit it.
pub fn write_key_from_basic(header: &str) -> Option<String> {
    let encoded = credentials(header, "basic")?;
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let key = decoded.split(':').next().unwrap_or_default();
    (!key.is_empty()).then(|| key.to_owned())
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(header: &str) -> Option<&str> {
    credentials(header, "bearer").filter(|t| !t.is_empty())
}

/// What follows the scheme, which HTTP compares case-insensitively (RFC 7235 § 2.1).
fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = header.trim_start().split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Decodes standard base64 (padding optional); `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_key_as_user_name() {
        // base64("demo-write-key:")
        assert_eq!(
            write_key_from_basic("Basic ZGVtby13cml0ZS1rZXk6").as_deref(),
            Some("demo-write-key")
        );
    }

    #[test]
    fn schemes_are_case_insensitive() {
        for header in ["Bearer t0k", "bearer t0k", "BEARER  t0k "] {
            assert_eq!(bearer_token(header), Some("t0k"), "{header}");
        }
        assert_eq!(bearer_token("Basic t0k"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(
            write_key_from_basic("BASIC ZGVtby13cml0ZS1rZXk6").as_deref(),
            Some("demo-write-key")
        );
    }

    #[test]
    fn accepts_key_without_colon_and_padding() {
        // base64("abc") and base64("ab") with and without padding
        assert_eq!(write_key_from_basic("Basic YWJj").as_deref(), Some("abc"));
        assert_eq!(write_key_from_basic("Basic YWI=").as_deref(), Some("ab"));
        assert_eq!(write_key_from_basic("Basic YWI").as_deref(), Some("ab"));
    }

    #[test]
    fn refuses_other_schemes_and_garbage() {
        assert_eq!(write_key_from_basic("Bearer ZGVtbw=="), None);
        assert_eq!(write_key_from_basic("Basic !!!"), None);
        assert_eq!(write_key_from_basic("Basic Og=="), None); // ":" only
    }
}
