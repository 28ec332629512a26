//! Fuzzes the collector's batch parser: arbitrary bytes go through `decode` and, when they
//! decode, through `check_batch`, and the invariants below must hold for every input.
//!
//! Run with `fuzz/run.sh [seconds]` (see README, "Fuzzing the batch parser").

#![no_main]

use cdp_protocol::decode::{decode, Endpoint, Limits};
use cdp_protocol::validate::{check_batch, MAX_ID_CHARS};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// A fixed receive time (2026-11-22T10:00:00Z) so a crash reproduces exactly.
const RECEIVED_AT: i64 = 1_795_341_600_000;

/// Validation measures an event before it adds the fields it normalises, so a stored body may
/// exceed `max_event_bytes` by at most what those add, serialised with key, quotes, colon and
/// comma: a derived `messageId` (`,"messageId":"derived-<32 hex>"`, 55 bytes) where none was
/// sent, `timestamp` (39 bytes where none was sent; a sent one grows by at most 4) and
/// `receivedAt` (40 bytes) as `YYYY-MM-DDTHH:MM:SS.mmmZ`, and a numeric `anonymousId` and
/// `userId` turned into strings (2 quotes each): 55 + 39 + 40 + 4 = 138, and an event of
/// exactly the limit with all four does grow by 138.
const ADDED_FIELDS_MARGIN: usize = 138;

/// Single-call paths; the one used for an input is picked by its length so all are covered.
const SINGLE_PATHS: [&str; 6] = [
    "/v1/track",
    "/v1/page",
    "/v1/screen",
    "/v1/identify",
    "/v1/group",
    "/v1/alias",
];

fuzz_target!(|data: &[u8]| {
    let single_path = SINGLE_PATHS[data.len() % SINGLE_PATHS.len()];
    let single = Endpoint::from_path(single_path).expect("a collector path");
    // The production limits, and tight ones under which the size rules are actually reached
    // by inputs of the few kilobytes the fuzzer generates.
    let tight = Limits {
        max_event_bytes: 192,
        max_batch_bytes: 2048,
    };
    for limits in [Limits::default(), tight] {
        for endpoint in [Endpoint::Batch, single] {
            check(data, endpoint, &limits);
        }
    }
});

fn check(data: &[u8], endpoint: Endpoint, limits: &Limits) {
    let Ok(envelope) = decode(data, endpoint, limits) else {
        return;
    };
    assert!(data.len() <= limits.max_batch_bytes, "decoded a body over the batch limit");
    assert!(!envelope.events.is_empty(), "decoded an envelope without events");
    if let Endpoint::Single(kind) = endpoint {
        assert_eq!(envelope.events.len(), 1, "a single call carries one event");
        assert_eq!(envelope.events[0]["type"], kind.as_str(), "type comes from the path");
    }
    assert!(envelope.client_dropped >= 0, "negative client_dropped");
    assert!(
        envelope.write_key.as_deref() != Some(""),
        "an empty writeKey must read as none"
    );

    let events = envelope.events.len();
    let lossy = envelope.lossy;
    let checked = check_batch(envelope.clone(), RECEIVED_AT, limits);

    // Every event ends accepted or rejected, exactly once.
    assert_eq!(
        checked.accepted.len() + checked.rejected.len(),
        events,
        "events lost or duplicated: {} accepted + {} rejected of {events}",
        checked.accepted.len(),
        checked.rejected.len()
    );
    // Rejections point at distinct events, in order, inside the batch.
    for pair in checked.rejected.windows(2) {
        assert!(pair[0].index < pair[1].index, "rejection indexes not increasing");
    }
    for rejection in &checked.rejected {
        assert!(rejection.index < events, "rejection index {} out of range", rejection.index);
        assert!(!rejection.reason.is_empty(), "rejection without a reason");
        assert_eq!(
            rejection.reason == "not_an_object",
            !envelope.events[rejection.index].is_object(),
            "event {} rejected as {}",
            rejection.index,
            rejection.reason
        );
    }
    let rejected: Vec<usize> = checked.rejected.iter().map(|r| r.index).collect();

    // Accepted events keep batch order and are the events not rejected.
    let mut accepted_raw = (0..events).filter(|i| !rejected.contains(i));
    for event in &checked.accepted {
        let index = accepted_raw.next().expect("as many accepted as not rejected");
        assert!(envelope.events[index].is_object(), "accepted event {index} is not an object");

        assert!(!event.message_id.is_empty(), "accepted event without messageId");
        assert!(event.message_id.chars().count() <= MAX_ID_CHARS, "messageId too long");
        assert_eq!(event.body.get("messageId"), Some(&Value::String(event.message_id.clone())));
        assert_eq!(
            event.body.get("type"),
            Some(&Value::String(event.kind.as_str().into())),
            "body type differs from the parsed kind"
        );
        assert!(
            event.anonymous_id.is_some() || event.user_id.is_some(),
            "accepted event without anonymousId or userId"
        );
        for (field, id) in [("anonymousId", &event.anonymous_id), ("userId", &event.user_id)] {
            if let Some(id) = id {
                assert!(!id.is_empty(), "empty {field} accepted");
                assert!(id.chars().count() <= MAX_ID_CHARS, "{field} over {MAX_ID_CHARS} chars");
                assert_eq!(event.body.get(field), Some(&Value::String(id.clone())));
            }
        }
        assert!(event.body.contains_key("timestamp") && event.body.contains_key("receivedAt"));
        assert_eq!(event.received_at, RECEIVED_AT);

        let serialised = serde_json::to_string(&event.body).expect("a Map serialises");
        assert!(
            serialised.len() <= limits.max_event_bytes + ADDED_FIELDS_MARGIN,
            "accepted event of {} bytes; limit {} + margin {ADDED_FIELDS_MARGIN}",
            serialised.len(),
            limits.max_event_bytes
        );
        if lossy {
            assert!(
                !serialised.contains('\u{fffd}'),
                "an event with a replaced invalid UTF-8 byte was accepted"
            );
        }
    }
    assert!(accepted_raw.next().is_none(), "fewer accepted than not rejected");

    // Validation is a pure function of its input.
    assert_eq!(check_batch(envelope, RECEIVED_AT, limits), checked, "check_batch not deterministic");
}
