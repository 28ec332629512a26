//! Decoding a request body into the raw events it carries, before any event is judged.

use serde_json::{Map, Value};

use crate::event::EventType;
use crate::time::{parse_rfc3339, Millis};

/// Size limits, named once so the collector and its tests agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest event, serialised, in bytes.
    pub max_event_bytes: usize,
    /// Largest request body, in bytes.
    pub max_batch_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Segment's HTTP tracking API limits.
        Self {
            max_event_bytes: 32 * 1024,
            max_batch_bytes: 500 * 1024,
        }
    }
}

/// Which collector path the body was posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/batch`: `{"batch": [...]}`.
    Batch,
    /// `POST /v1/track` and friends: the body is one event whose type the path gives.
    Single(EventType),
}

impl Endpoint {
    /// Maps a request path to an endpoint; `None` when it is not a collector path.
    ///
    /// Besides Segment's documented paths, the short ones its clients post to: analytics.js
    /// sends one event to `/v1/t`, `/p`, `/i`, `/g`, `/a` or `/s` (its type's first letter)
    /// and batches to `/v1/b`, which the mobile libraries use too.
    pub fn from_path(path: &str) -> Option<Self> {
        let name = path.strip_prefix("/v1/")?;
        let kind = match name {
            "batch" | "import" | "b" => return Some(Self::Batch),
            "t" => EventType::Track,
            "p" => EventType::Page,
            "s" => EventType::Screen,
            "i" => EventType::Identify,
            "g" => EventType::Group,
            "a" => EventType::Alias,
            other => EventType::parse(other)?,
        };
        Some(Self::Single(kind))
    }
}

/// What a body holds: the write key if it carries one, the client's send time, the raw events.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `writeKey` from the body, for clients that cannot set headers.
    pub write_key: Option<String>,
    /// The batch's `sentAt`, when present and valid.
    pub sent_at: Option<Millis>,
    /// The events, not yet validated.
    pub events: Vec<Value>,
    /// How many events the client's queue had to drop (our tracker's `dropped`), to count.
    pub client_dropped: i64,
    /// The body was not valid UTF-8 and was read with replacement characters; events that
    /// contain one are refused, the others kept.
    pub lossy: bool,
}

/// Why a whole request was refused: nothing in it could be read as events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The body is larger than the batch limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not JSON (or not UTF-8).
    InvalidJson(String),
    /// The body is JSON but not an object.
    NotAnObject,
    /// A batch body without a `batch` array.
    MissingBatch,
    /// A batch with no events.
    EmptyBatch,
}

impl DecodeError {
    /// A stable, machine-readable reason, also used as a counter label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "body_too_large",
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingBatch => "missing_batch",
            Self::EmptyBatch => "empty_batch",
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "request body is larger than {limit} bytes"),
            Self::InvalidJson(e) => write!(f, "request body is not valid JSON: {e}"),
            Self::NotAnObject => f.write_str("request body must be a JSON object"),
            Self::MissingBatch => f.write_str("a batch body needs a \"batch\" array of events"),
            Self::EmptyBatch => f.write_str("the \"batch\" array is empty"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads a request body posted to `endpoint`.
pub fn decode(body: &[u8], endpoint: Endpoint, limits: &Limits) -> Result<Envelope, DecodeError> {
    if body.len() > limits.max_batch_bytes {
        return Err(DecodeError::TooLarge {
            limit: limits.max_batch_bytes,
        });
    }
    // Invalid UTF-8 in one event must not cost the others: read it with replacement
    // characters and let validation refuse the events that hold one.
    let (text, lossy) = match std::str::from_utf8(body) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), false),
        Err(_) => (String::from_utf8_lossy(body), true),
    };
    let value: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        // Browsers' JSON.stringify writes half an emoji (a string cut mid-pair) as a lone
        // surrogate escape, which serde_json refuses; one such string must not cost the
        // whole batch, so it is read as U+FFFD, as a browser would show it.
        Err(e) => match replace_lone_surrogates(&text) {
            Some(repaired) => serde_json::from_str(&repaired)
                .map_err(|e| DecodeError::InvalidJson(e.to_string()))?,
            None => return Err(DecodeError::InvalidJson(e.to_string())),
        },
    };
    let Value::Object(mut object) = value else {
        return Err(DecodeError::NotAnObject);
    };
    let write_key = take_string(&mut object, "writeKey");
    let sent_at = object
        .get("sentAt")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    let client_dropped = object
        .get("dropped")
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
        .unwrap_or(0);
    let events = match endpoint {
        Endpoint::Batch => match object.remove("batch") {
            Some(Value::Array(events)) if events.is_empty() => return Err(DecodeError::EmptyBatch),
            Some(Value::Array(events)) => events,
            _ => return Err(DecodeError::MissingBatch),
        },
        Endpoint::Single(kind) => {
            object.insert("type".into(), Value::String(kind.as_str().into()));
            vec![Value::Object(object)]
        }
    };
    Ok(Envelope {
        write_key,
        sent_at,
        events,
        client_dropped,
        lossy,
    })
}

/// The text with every `\uD800`–`\uDFFF` escape that is not half of a valid pair written as
/// `\uFFFD`; `None` when there is none. Escapes only occur inside JSON strings, so the
/// scan needs no other JSON state.
fn replace_lone_surrogates(text: &str) -> Option<String> {
    let hex = |at: usize| -> Option<u32> {
        let digits = text.get(at..at + 4)?;
        u32::from_str_radix(digits, 16).ok()
    };
    let escape_at = |at: usize| -> Option<u32> {
        (text.get(at..at + 2) == Some("\\u"))
            .then(|| hex(at + 2))
            .flatten()
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut i, mut changed) = (0, 0, false);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = escape_at(i) else {
            i += 2; // any other escape: skip the escaped character
            continue;
        };
        let high = (0xD800..0xDC00).contains(&unit);
        let low_follows = escape_at(i + 6).is_some_and(|u| (0xDC00..0xE000).contains(&u));
        if high && low_follows {
            i += 12;
        } else if (0xD800..0xE000).contains(&unit) {
            out.push_str(&text[copied..i]);
            out.push_str("\\uFFFD");
            i += 6;
            copied = i;
            changed = true;
        } else {
            i += 6;
        }
    }
    out.push_str(&text[copied..]);
    changed.then_some(out)
}

fn take_string(object: &mut Map<String, Value>, key: &str) -> Option<String> {
    match object.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(body: &str) -> Result<Envelope, DecodeError> {
        decode(body.as_bytes(), Endpoint::Batch, &Limits::default())
    }

    #[test]
    fn half_an_emoji_is_read_as_a_replacement_character_and_costs_nothing_else() {
        let env = batch(
            r#"{"batch":[{"type":"track","event":"Cut \ud83d","anonymousId":"a"},
            {"type":"track","event":"Whole \ud83d\ude00 and \\ud83d \"\ude00","anonymousId":"a"},
            {"type":"track","event":"Low \udc00 alone","anonymousId":"a"}]}"#,
        )
        .expect("the batch reads");
        assert_eq!(env.events[0]["event"], "Cut \u{fffd}");
        assert_eq!(
            env.events[1]["event"], "Whole \u{1f600} and \\ud83d \"\u{fffd}",
            "a pair stays, an escaped backslash is not an escape"
        );
        assert_eq!(env.events[2]["event"], "Low \u{fffd} alone");
        assert!(matches!(
            batch(r#"{"batch": ["#),
            Err(DecodeError::InvalidJson(_))
        ));
    }

    #[test]
    fn takes_the_short_paths_segment_clients_post_to() {
        for (path, endpoint) in [
            ("/v1/b", Endpoint::Batch),
            ("/v1/batch", Endpoint::Batch),
            ("/v1/import", Endpoint::Batch),
            ("/v1/t", Endpoint::Single(EventType::Track)),
            ("/v1/track", Endpoint::Single(EventType::Track)),
            ("/v1/p", Endpoint::Single(EventType::Page)),
            ("/v1/s", Endpoint::Single(EventType::Screen)),
            ("/v1/i", Endpoint::Single(EventType::Identify)),
            ("/v1/g", Endpoint::Single(EventType::Group)),
            ("/v1/a", Endpoint::Single(EventType::Alias)),
        ] {
            assert_eq!(Endpoint::from_path(path), Some(endpoint), "{path}");
        }
        for path in ["/v1/m", "/v1/x", "/v1/", "/t", "/v2/t"] {
            assert_eq!(Endpoint::from_path(path), None, "{path}");
        }
    }

    #[test]
    fn an_analytics_js_event_keeps_its_own_fields_and_gives_its_write_key() {
        let body = r#"{"type":"track","event":"Signed Up","messageId":"ajs-next-1","anonymousId":"a",
            "writeKey":"k","sentAt":"1970-01-01T00:00:02Z","_metadata":{"bundled":[]},"integrations":{}}"#;
        let env = decode(
            body.as_bytes(),
            Endpoint::from_path("/v1/t").unwrap(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(env.write_key.as_deref(), Some("k"));
        assert_eq!(env.sent_at, Some(2_000));
        assert_eq!(env.events[0]["event"], "Signed Up");
        assert_eq!(env.events[0]["type"], "track");
    }

    #[test]
    fn reads_batch_write_key_and_sent_at() {
        let env =
            batch(r#"{"batch":[{"type":"page"}],"writeKey":"k","sentAt":"1970-01-01T00:00:01Z"}"#)
                .expect("valid batch");
        assert_eq!(env.write_key.as_deref(), Some("k"));
        assert_eq!(env.sent_at, Some(1_000));
        assert_eq!(env.events.len(), 1);
    }

    #[test]
    fn single_call_takes_type_from_path() {
        let endpoint = Endpoint::from_path("/v1/track").expect("collector path");
        let env = decode(
            br#"{"event":"Order Completed","type":"page"}"#,
            endpoint,
            &Limits::default(),
        )
        .expect("valid body");
        assert_eq!(env.events[0]["type"], "track");
    }

    #[test]
    fn refuses_unreadable_bodies_with_reasons() {
        let cases = [
            ("{", "invalid_json"),
            ("\u{0}", "invalid_json"),
            ("[1,2]", "not_an_object"),
            ("{}", "missing_batch"),
            (r#"{"batch":{}}"#, "missing_batch"),
            (r#"{"batch":[]}"#, "empty_batch"),
        ];
        for (body, reason) in cases {
            assert_eq!(
                batch(body).map(|_| ()).unwrap_err().reason(),
                reason,
                "{body}"
            );
        }
    }

    #[test]
    fn rejects_body_over_batch_limit() {
        let limits = Limits {
            max_batch_bytes: 10,
            ..Limits::default()
        };
        let err = decode(br#"{"batch":[{"type":"page"}]}"#, Endpoint::Batch, &limits).unwrap_err();
        assert_eq!(err, DecodeError::TooLarge { limit: 10 });
    }

    #[test]
    fn invalid_utf8_is_read_lossily_and_flagged() {
        let env = decode(
            b"{\"batch\":[\"\xff\"]}",
            Endpoint::Batch,
            &Limits::default(),
        )
        .expect("still JSON");
        assert!(env.lossy);
        assert_eq!(env.events[0], "\u{fffd}");
    }
}
