//! The event schema's raw material: which track event names and property keys events carry.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::event::{Event, EventType};

/// Most property keys learnt from one event (keys with generated names would otherwise
/// grow the schema without end).
pub const KEYS_PER_EVENT: usize = 50;
/// Longest name or key kept.
pub const LONGEST: usize = 100;

/// `(event name, property key)` of track events, and `(name, "")` for each name.
pub fn pairs<'a>(events: impl Iterator<Item = &'a Event>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for event in events.filter(|e| e.kind == EventType::Track) {
        let Some(name) = event
            .name
            .as_deref()
            .filter(|n| n.chars().count() <= LONGEST)
        else {
            continue;
        };
        out.insert((name.to_owned(), String::new()));
        let keys = event
            .body
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|p| p.keys())
            .filter(|k| !k.is_empty() && k.chars().count() <= LONGEST)
            .take(KEYS_PER_EVENT);
        for key in keys {
            out.insert((name.to_owned(), key.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: EventType, name: &str, body: Value) -> Event {
        Event {
            kind,
            message_id: "m".into(),
            anonymous_id: Some("a".into()),
            user_id: None,
            name: Some(name.into()),
            timestamp: 0,
            received_at: 0,
            body: serde_json::from_value(body).expect("an object"),
        }
    }

    #[test]
    fn names_and_property_keys_of_track_events_only() {
        let events = [
            event(
                EventType::Track,
                "Order Completed",
                json!({"properties": {"total": 1, "currency": "EUR"}}),
            ),
            event(EventType::Track, "Signed Up", json!({})),
            event(
                EventType::Page,
                "Home",
                json!({"properties": {"path": "/"}}),
            ),
            event(EventType::Track, &"x".repeat(LONGEST + 1), json!({})),
        ];
        let expected = [
            ("Order Completed", ""),
            ("Order Completed", "currency"),
            ("Order Completed", "total"),
            ("Signed Up", ""),
        ];
        assert_eq!(
            pairs(events.iter()).into_iter().collect::<Vec<_>>(),
            expected.map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }
}
