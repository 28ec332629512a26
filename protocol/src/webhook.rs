//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): what a receiver's
//! library checks. The secret is `whsec_` and the base64 of the key; the signature is
//! `v1,` and the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret cannot sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSecret;

impl std::fmt::Display for BadSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a secret is whsec_ followed by the base64 of 24 to 64 random bytes")
    }
}

/// The key a secret holds.
pub fn key_of(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .ok()
        .filter(|k| (24..=64).contains(&k.len()))
        .ok_or(BadSecret)
}

/// A new secret from `random` bytes (the caller's source of randomness).
pub fn secret_from(random: &[u8]) -> String {
    [SECRET_PREFIX, &STANDARD.encode(random)].concat()
}

/// The `webhook-signature` header of one message.
pub fn sign(
    secret: &str,
    id: &str,
    timestamp_seconds: i64,
    body: &str,
) -> Result<String, BadSecret> {
    let key = key_of(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(["v1,", &STANDARD.encode(mac.finalize().into_bytes())].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_specifications_example() {
        // The example of the Standard Webhooks specification and its libraries' tests.
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            "{\"test\": 2432232314}",
        );
        assert_eq!(
            signature.as_deref(),
            Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn refuses_secrets_that_are_not_keys() {
        assert_eq!(sign("whsec_", "m", 1, "{}"), Err(BadSecret));
        assert_eq!(sign("whsec_not base64!", "m", 1, "{}"), Err(BadSecret));
        let made = secret_from(&[7u8; 32]);
        assert!(made.starts_with("whsec_"));
        assert!(sign(&made, "m", 1, "{}").is_ok());
    }
}
