//! Reading the write key a client presents, the way Segment's HTTP API takes it, and the
//! admin API's named tokens with their roles.

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

/// What a token may do on the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Read reports, audiences and profiles; never erase, export, unmerge or change a
    /// definition.
    Viewer,
}

/// One named admin API token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Who holds it, as the audit log names them.
    pub name: String,
    /// The secret.
    pub token: String,
    /// What it may do.
    pub role: Role,
}

/// The admin API's tokens: `ADMIN_TOKEN` (named `admin`, role admin) and `ADMIN_TOKENS`
/// (`[{"name": "ana", "token": "…", "role": "viewer"}]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens(Vec<Token>);

impl Tokens {
    /// Reads the two variables; refuses an unusable list, naming what is wrong.
    pub fn parse(admin_token: Option<&str>, admin_tokens: Option<&str>) -> Result<Self, String> {
        let mut all = Vec::new();
        if let Some(token) = admin_token.filter(|t| !t.trim().is_empty()) {
            all.push(Token {
                name: "admin".into(),
                token: token.trim().to_owned(),
                role: Role::Admin,
            });
        }
        if let Some(list) = admin_tokens.filter(|t| !t.trim().is_empty()) {
            let listed: Vec<Token> = serde_json::from_str(list).map_err(|e| {
                format!("ADMIN_TOKENS must be a JSON list of {{\"name\", \"token\", \"role\": \"admin\" or \"viewer\"}}: {e}")
            })?;
            for t in listed {
                if t.token.len() < 16 {
                    return Err(format!(
                        "ADMIN_TOKENS: the token of {:?} is shorter than 16 characters",
                        t.name
                    ));
                }
                if t.name.trim().is_empty()
                    || all
                        .iter()
                        .any(|o: &Token| o.name == t.name || o.token == t.token)
                {
                    return Err(format!(
                        "ADMIN_TOKENS: {:?} needs a name and a token of its own",
                        t.name
                    ));
                }
                all.push(t);
            }
        }
        if all.is_empty() {
            return Err(
                "the Worker variable or secret ADMIN_TOKEN (or ADMIN_TOKENS) is not set".into(),
            );
        }
        Ok(Self(all))
    }

    /// The token presented, if it is one (compared in constant time).
    pub fn find(&self, presented: &str) -> Option<&Token> {
        self.0
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), presented.as_bytes()))
    }
}

/// Compares secrets without leaking the position of the first difference through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    fn named_tokens_with_roles() {
        let tokens = Tokens::parse(
            Some("the-admin-token"),
            Some(r#"[{"name": "ana", "token": "viewer-token-0123456789", "role": "viewer"}]"#),
        )
        .unwrap();
        assert_eq!(
            tokens
                .find("the-admin-token")
                .map(|t| (t.name.as_str(), t.role)),
            Some(("admin", Role::Admin))
        );
        assert_eq!(
            tokens.find("viewer-token-0123456789").map(|t| t.role),
            Some(Role::Viewer)
        );
        assert_eq!(tokens.find("viewer-token-012345678"), None);
        for bad in [
            r#"{"name": "x"}"#,
            r#"[{"name": "x", "token": "short", "role": "viewer"}]"#,
            r#"[{"name": "x", "token": "viewer-token-0123456789", "role": "owner"}]"#,
            r#"[{"name": "admin", "token": "viewer-token-0123456789", "role": "viewer"}]"#,
        ] {
            assert!(
                Tokens::parse(Some("the-admin-token"), Some(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(Tokens::parse(None, None).is_err());
    }

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
