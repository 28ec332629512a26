//! Judging each event of a batch on its own, so one bad event never costs the others.

use serde_json::{Map, Value};

use crate::decode::{Envelope, Limits};
use crate::event::{Event, EventType};
use crate::hash::{fnv1a, FNV_OFFSET};
use crate::time::{format_rfc3339, parse_rfc3339, Millis};

/// Longest `messageId`, `anonymousId` or `userId` accepted.
pub const MAX_ID_CHARS: usize = 256;
/// Deepest nesting of objects and arrays accepted in an event.
pub const MAX_DEPTH: usize = 32;

/// Why one event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Position of the event in the batch.
    pub index: usize,
    /// Its `messageId`, when it had a readable one.
    pub message_id: Option<String>,
    /// Stable reason, also a counter label.
    pub reason: &'static str,
    /// What is wrong, for a person.
    pub detail: String,
}

/// The outcome of validating a batch: what to keep and what to report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checked {
    /// Events to store.
    pub accepted: Vec<Event>,
    /// Events refused, with reasons.
    pub rejected: Vec<Rejection>,
}

/// Validates every event of an envelope received at `received_at`.
pub fn check_batch(envelope: Envelope, received_at: Millis, limits: &Limits) -> Checked {
    let mut checked = Checked::default();
    let lossy = envelope.lossy;
    for (index, raw) in envelope.events.into_iter().enumerate() {
        match validate_event(raw, received_at, limits, lossy) {
            Ok(event) => checked.accepted.push(event),
            Err((reason, detail, message_id)) => checked.rejected.push(Rejection {
                index,
                message_id,
                reason,
                detail,
            }),
        }
    }
    checked
}

type Refusal = (&'static str, String, Option<String>);
/// A stage's refusal: the reason and what is wrong (the event's id is added once, by
/// [`validate_event`]).
type Fault = (&'static str, String);

/// One event through the stages in order: its shape (depth, bytes, size), then its type,
/// identifiers, name, field types, time and message id; the first refusal wins.
fn validate_event(
    raw: Value,
    received_at: Millis,
    limits: &Limits,
    lossy: bool,
) -> Result<Event, Refusal> {
    let Value::Object(body) = raw else {
        return Err((
            "not_an_object",
            "an event must be a JSON object".into(),
            None,
        ));
    };
    let claimed_id = body
        .get("messageId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    stages(body, received_at, limits, lossy)
        .map_err(|(reason, detail)| (reason, detail, claimed_id))
}

fn stages(
    mut body: Map<String, Value>,
    received_at: Millis,
    limits: &Limits,
    lossy: bool,
) -> Result<Event, Fault> {
    check_shape(&body, limits, lossy)?;
    let kind = event_type(&body)?;
    let (anonymous_id, user_id) = identifiers(&body)?;
    let name = event_name(&body, kind)?;
    check_fields(&body)?;
    let timestamp = event_time(&body, received_at)?;
    let message_id = message_id(&body)?;

    body.insert("messageId".into(), Value::String(message_id.clone()));
    body.insert("timestamp".into(), Value::String(format_rfc3339(timestamp)));
    body.insert(
        "receivedAt".into(),
        Value::String(format_rfc3339(received_at)),
    );
    for (field, value) in [("anonymousId", &anonymous_id), ("userId", &user_id)] {
        if let Some(v) = value {
            body.insert(field.into(), Value::String(v.clone()));
        }
    }
    Ok(Event {
        kind,
        message_id,
        anonymous_id,
        user_id,
        name,
        timestamp,
        received_at,
        body,
    })
}

/// Nesting depth, bytes that were not UTF-8, and size.
fn check_shape(body: &Map<String, Value>, limits: &Limits, lossy: bool) -> Result<(), Fault> {
    if 1 + body.values().map(depth).max().unwrap_or(0) > MAX_DEPTH {
        return Err((
            "too_deep",
            format!("objects and arrays are nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    if lossy
        && serde_json::to_string(body)
            .unwrap_or_default()
            .contains('\u{fffd}')
    {
        return Err((
            "invalid_utf8",
            "the event holds bytes that are not UTF-8".into(),
        ));
    }
    let size = serialised_len(body);
    if size > limits.max_event_bytes {
        return Err((
            "event_too_large",
            format!(
                "event is {size} bytes; the limit is {}",
                limits.max_event_bytes
            ),
        ));
    }
    Ok(())
}

fn event_type(body: &Map<String, Value>) -> Result<EventType, Fault> {
    match body.get("type") {
        Some(Value::String(t)) => EventType::parse(t).ok_or_else(|| {
            (
                "invalid_type",
                format!("type \"{t}\" is not one of track, page, screen, identify, group, alias"),
            )
        }),
        _ => Err(("missing_type", "\"type\" must be a string".into())),
    }
}

/// `anonymousId` and `userId`, at least one of them.
fn identifiers(body: &Map<String, Value>) -> Result<(Option<String>, Option<String>), Fault> {
    let anonymous_id = identifier(body, "anonymousId").map_err(|d| ("invalid_identifier", d))?;
    let user_id = identifier(body, "userId").map_err(|d| ("invalid_identifier", d))?;
    if anonymous_id.is_none() && user_id.is_none() {
        return Err((
            "missing_identifier",
            "an event needs an anonymousId or a userId".into(),
        ));
    }
    Ok((anonymous_id, user_id))
}

/// A track call's `event` (required), or another call's optional `name`.
fn event_name(body: &Map<String, Value>, kind: EventType) -> Result<Option<String>, Fault> {
    let name_field = if kind == EventType::Track {
        "event"
    } else {
        "name"
    };
    match body.get(name_field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        None | Some(Value::Null) if kind != EventType::Track => Ok(None),
        _ if kind == EventType::Track => Err((
            "missing_event_name",
            "a track call needs a non-empty \"event\" string".into(),
        )),
        _ => Err((
            "invalid_field",
            format!("\"{name_field}\" must be a string"),
        )),
    }
}

/// The object fields are objects, and the amounts are finite numbers.
fn check_fields(body: &Map<String, Value>) -> Result<(), Fault> {
    for field in ["properties", "traits", "context", "integrations"] {
        match body.get(field) {
            None | Some(Value::Null | Value::Object(_)) => {}
            Some(_) => return Err(("invalid_field", format!("\"{field}\" must be an object"))),
        }
    }
    if let Some(Value::Object(properties)) = body.get("properties") {
        check_amounts(properties).map_err(|detail| ("invalid_field", detail))?;
    }
    Ok(())
}

/// The event's time; none means when it was received.
fn event_time(body: &Map<String, Value>, received_at: Millis) -> Result<Millis, Fault> {
    match body.get("timestamp") {
        None | Some(Value::Null) => Ok(received_at),
        Some(Value::String(s)) => parse_rfc3339(s).ok_or_else(|| {
            (
                "invalid_timestamp",
                format!("timestamp \"{s}\" is not an ISO 8601 date-time"),
            )
        }),
        Some(_) => Err(("invalid_timestamp", "timestamp must be a string".into())),
    }
}

/// The client's `messageId`, or one derived from the content when it sent none.
fn message_id(body: &Map<String, Value>) -> Result<String, Fault> {
    match body.get("messageId") {
        Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_ID_CHARS => {
            Ok(id.clone())
        }
        None | Some(Value::Null) => Ok(derived_message_id(body)),
        Some(_) => Err((
            "invalid_message_id",
            format!("messageId must be a non-empty string of at most {MAX_ID_CHARS} characters"),
        )),
    }
}

/// The e-commerce amounts the computed traits add up: a number, or text that reads as a
/// finite one (`"59.90"`). `"NaN"`, `"Infinity"` or `"-1e309"` would spoil a sum, so the
/// event is refused with the field named, and its neighbours kept.
const AMOUNTS: [&str; 5] = ["revenue", "total", "value", "price", "quantity"];

fn check_amounts(properties: &Map<String, Value>) -> Result<(), String> {
    for field in AMOUNTS {
        if let Some(Value::String(text)) = properties.get(field) {
            if !text.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                return Err(format!(
                    "properties.{field} must be a finite number, not {text:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The length of an event serialised, counted without building the string.
fn serialised_len(body: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, body) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// How deeply objects and arrays nest in `value` (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Reads an identifier that may be a string or a number (some server libraries send numbers).
fn identifier(body: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    let id = match body.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(format!("{field} must be a string or a number")),
    };
    if id.is_empty() {
        return Ok(None);
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err(format!("{field} is longer than {MAX_ID_CHARS} characters"));
    }
    Ok(Some(id))
}

/// A `messageId` for a client that sent none, derived from the content so a resend of the
/// same payload is still recognised as a duplicate.
fn derived_message_id(body: &Map<String, Value>) -> String {
    // serde_json's default map is ordered, so the serialisation is canonical.
    let text = serde_json::to_string(body).unwrap_or_default();
    format!(
        "derived-{:016x}{:016x}",
        fnv1a(text.as_bytes(), FNV_OFFSET),
        fnv1a(text.as_bytes(), 0x6c62_272e_07bb_0142)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, Endpoint};

    const NOW: Millis = 1_795_341_600_000;

    fn check(body: &str) -> Checked {
        let envelope =
            decode(body.as_bytes(), Endpoint::Batch, &Limits::default()).expect("decodes");
        check_batch(envelope, NOW, &Limits::default())
    }

    fn reasons(checked: &Checked) -> Vec<&'static str> {
        checked.rejected.iter().map(|r| r.reason).collect()
    }

    #[test]
    fn accepts_a_segment_page_event() {
        let checked = check(
            r#"{"batch":[{"type":"page","messageId":"m1","anonymousId":"a1","name":"Home",
                "timestamp":"2026-11-22T09:59:59.000Z","context":{"page":{"url":"http://x/"}}}]}"#,
        );
        assert!(checked.rejected.is_empty());
        let event = &checked.accepted[0];
        assert_eq!(event.kind, EventType::Page);
        assert_eq!(event.message_id, "m1");
        assert_eq!(event.name.as_deref(), Some("Home"));
        assert_eq!(event.timestamp, NOW - 1_000);
        assert_eq!(event.body["receivedAt"], "2026-11-22T10:00:00.000Z");
    }

    #[test]
    fn keeps_valid_events_beside_invalid_ones() {
        let checked = check(
            r#"{"batch":[
                {"type":"track","event":"A","anonymousId":"a","messageId":"ok1"},
                {"type":"track","anonymousId":"a","messageId":"bad1"},
                {"type":"teleport","anonymousId":"a"},
                {"type":"page","messageId":"bad2"},
                7,
                {"type":"page","anonymousId":"a","timestamp":"noon"},
                {"type":"identify","userId":42,"traits":{"email":"x@y.z"}},
                {"type":"page","anonymousId":"a","properties":[1]},
                {"type":"page","anonymousId":{"nested":true}},
                {"type":"page","anonymousId":"a","messageId":""}
            ]}"#,
        );
        assert_eq!(checked.accepted.len(), 2);
        assert_eq!(checked.accepted[1].user_id.as_deref(), Some("42"));
        assert_eq!(
            reasons(&checked),
            [
                "missing_event_name",
                "invalid_type",
                "missing_identifier",
                "not_an_object",
                "invalid_timestamp",
                "invalid_field",
                "invalid_identifier",
                "invalid_message_id"
            ]
        );
        assert_eq!(checked.rejected[0].index, 1);
        assert_eq!(checked.rejected[0].message_id.as_deref(), Some("bad1"));
    }

    #[test]
    fn rejects_event_over_32_kb() {
        let big = "x".repeat(33 * 1024);
        let checked = check(&format!(
            r#"{{"batch":[{{"type":"track","event":"A","anonymousId":"a","properties":{{"p":"{big}"}}}}]}}"#
        ));
        assert_eq!(reasons(&checked), ["event_too_large"]);
    }

    #[test]
    fn missing_message_id_is_derived_from_content_and_stable() {
        let body = r#"{"batch":[{"type":"track","event":"A","anonymousId":"a","timestamp":"2026-01-01T00:00:00Z"}]}"#;
        let first = check(body).accepted[0].message_id.clone();
        assert!(first.starts_with("derived-"));
        assert_eq!(check(body).accepted[0].message_id, first);
    }

    #[test]
    fn rejects_deep_nesting_and_invalid_utf8_per_event() {
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let checked = check(&format!(
            r#"{{"batch":[{{"type":"track","event":"A","anonymousId":"a","properties":{{"p":{deep}}}}},
                {{"type":"track","event":"B","anonymousId":"a"}}]}}"#
        ));
        assert_eq!(reasons(&checked), ["too_deep"]);
        assert_eq!(checked.accepted.len(), 1);

        let body = b"{\"batch\":[{\"type\":\"track\",\"event\":\"\xff\",\"anonymousId\":\"a\"},{\"type\":\"page\",\"anonymousId\":\"a\"}]}";
        let envelope = decode(body, Endpoint::Batch, &Limits::default()).expect("decodes");
        let checked = check_batch(envelope, NOW, &Limits::default());
        assert_eq!(reasons(&checked), ["invalid_utf8"]);
        assert_eq!(checked.accepted.len(), 1);
    }

    #[test]
    fn missing_timestamp_becomes_received_at() {
        let checked = check(r#"{"batch":[{"type":"page","anonymousId":"a"}]}"#);
        assert_eq!(checked.accepted[0].timestamp, NOW);
    }

    #[test]
    fn an_amount_that_is_not_a_finite_number_is_refused_with_its_field() {
        let checked = check(
            r#"{"batch":[
            {"type":"track","event":"Order Completed","anonymousId":"a","properties":{"revenue":"NaN"}},
            {"type":"track","event":"Order Completed","anonymousId":"a","properties":{"total":"-1e309"}},
            {"type":"track","event":"Order Completed","anonymousId":"a","properties":{"total":"59.90","price":12}}]}"#,
        );
        assert_eq!(checked.accepted.len(), 1);
        let reasons: Vec<_> = checked
            .rejected
            .iter()
            .map(|r| (r.index, r.reason))
            .collect();
        assert_eq!(reasons, [(0, "invalid_field"), (1, "invalid_field")]);
        assert!(checked.rejected[0].detail.contains("properties.revenue"));
    }
}
