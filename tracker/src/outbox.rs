//! The durable outbox's rules: how queued events are named in storage, which are sent
//! together, which are dropped when the queue is full, and the body of a batch.
//!
//! Each event is its own storage entry, so tabs of the same site append without ever
//! rewriting each other's data; the tab holding the send lock sends everyone's entries.

use std::ops::Range;

/// Prefix of every queued event's storage key.
pub const PREFIX: &str = "cdp_e:";

/// Largest event the collector accepts, serialised, in bytes.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest batch the tracker sends. Below the collector's 500 KB, and below the 64 KB
/// that all in-flight `keepalive` requests share, so any batch survives a page close.
pub const MAX_BATCH_BYTES: usize = 60 * 1024;
/// Bytes of a batch body around its events (`{"batch":[…],"sentAt":…}`), kept free.
const ENVELOPE_BYTES: usize = 512;

/// The parts of a queued event's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a> {
    /// Capture time in milliseconds (the key sorts by it).
    pub at: u64,
    /// Capture order within the tab, for events of the same millisecond.
    pub seq: u64,
    /// The tab that captured it.
    pub tab: &'a str,
    /// Its `messageId`.
    pub message_id: &'a str,
}

/// The storage key of an event: `cdp_e:<time>:<seq>:<tab>:<messageId>`, time and
/// sequence in fixed-width base 36, so that sorting keys sorts events by capture order.
pub fn key(at: u64, seq: u64, tab: &str, message_id: &str) -> String {
    let mut key = String::with_capacity(PREFIX.len() + 15 + tab.len() + message_id.len());
    key.push_str(PREFIX);
    push_base36(&mut key, at, 9);
    key.push(':');
    push_base36(&mut key, seq, 4);
    key.push(':');
    key.push_str(tab);
    key.push(':');
    key.push_str(message_id);
    key
}

// Digit by digit, most significant first; no byte buffer turned into a `str`, whose UTF-8
// check would cost the page's Wasm more than this loop.
fn push_base36(out: &mut String, n: u64, width: u32) {
    for place in (0..width).rev() {
        let digit = (n / 36u64.pow(place) % 36) as u32;
        out.push(char::from_digit(digit, 36).unwrap_or('0'));
    }
}

/// `text` split at the first `separator` (an ASCII byte), without it.
pub fn cut(text: &str, separator: u8) -> Option<(&str, &str)> {
    let at = text.bytes().position(|b| b == separator)?;
    Some((text.get(..at)?, text.get(at + 1..)?))
}

/// Reads a key written by [`key`]; `None` for any other storage key.
pub fn parse_key(key: &str) -> Option<Key<'_>> {
    let rest = key.strip_prefix(PREFIX)?;
    let (time, rest) = cut(rest, b':')?;
    let (order, rest) = cut(rest, b':')?;
    let (tab, message_id) = cut(rest, b':')?;
    let at = u64::from_str_radix(time, 36).ok()?;
    let seq = u64::from_str_radix(order, 36).ok()?;
    Some(Key {
        at,
        seq,
        tab,
        message_id,
    })
}

/// Splits events of the given serialised sizes, in order, into batches of at most
/// `max_events` events and `max_bytes` bytes of body. An event too large for any batch
/// still gets one of its own: the caller decides what to do with it.
pub fn batches(sizes: &[usize], max_events: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = ENVELOPE_BYTES;
    for (i, size) in sizes.iter().enumerate() {
        if i > start && (bytes + size + 1 > max_bytes || i - start >= max_events.max(1)) {
            out.push(start..i);
            start = i;
            bytes = ENVELOPE_BYTES;
        }
        bytes += size + 1;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// How many of the oldest events to drop so that `queued + incoming` fits in `capacity`.
pub fn overflow(queued: usize, incoming: usize, capacity: usize) -> usize {
    (queued + incoming)
        .saturating_sub(capacity.max(1))
        .min(queued)
}

/// The body of `POST /v1/batch`: each event (a JSON object) stamped with `sentAt`, the
/// write key, and how many events the queue had to drop since the last delivery.
///
/// Built by concatenation from the stored JSON, so sending costs no parse and no
/// serialisation.
pub fn batch_body(events: &[&str], sent_at: &str, write_key: &str, dropped: u32) -> String {
    let stamp = [",\"sentAt\":\"", sent_at, "\"}"].concat();
    let mut body =
        String::with_capacity(events.iter().map(|e| e.len() + stamp.len()).sum::<usize>() + 128);
    body.push_str("{\"batch\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        // Stored events are JSON objects without sentAt: replace the closing brace.
        body.push_str(event.trim_end().strip_suffix('}').unwrap_or(event));
        body.push_str(&stamp);
    }
    body.push_str("],\"sentAt\":\"");
    body.push_str(sent_at);
    body.push_str("\",\"writeKey\":");
    push_json_string(&mut body, write_key);
    if dropped > 0 {
        body.push_str(",\"dropped\":");
        push_decimal(&mut body, dropped);
    }
    body.push('}');
    body
}

fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
}

// Not `to_string()`: that pulls core::fmt into the Wasm, a few KB the page would pay for.
fn push_decimal(out: &mut String, n: u32) {
    let mut place = 1;
    while n / place >= 10 {
        place *= 10;
    }
    while place > 0 {
        out.push(char::from_digit(n / place % 10, 10).unwrap_or('0'));
        place /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_capture_time_and_parse_back() {
        let early = key(1_795_341_600_000, 7, "t1", "m-1");
        let same_ms_later = key(1_795_341_600_000, 8, "t1", "m-0");
        let late = key(1_795_341_600_001, 0, "t0", "m-0");
        assert!(early < same_ms_later && same_ms_later < late);
        assert_eq!(
            parse_key(&early),
            Some(Key {
                at: 1_795_341_600_000,
                seq: 7,
                tab: "t1",
                message_id: "m-1"
            })
        );
        assert_eq!(parse_key("cdp_aid"), None);
        assert_eq!(parse_key("cdp_e:zz"), None);
    }

    #[test]
    fn cut_splits_at_the_first_separator() {
        assert_eq!(cut("a:b:c", b':'), Some(("a", "b:c")));
        assert_eq!(cut(":", b':'), Some(("", "")));
        assert_eq!(cut("é#x", b'#'), Some(("é", "x")));
        assert_eq!(cut("abc", b':'), None);
    }

    #[test]
    fn message_ids_with_colons_survive() {
        let k = key(5, 0, "tab", "a:b:c");
        assert_eq!(parse_key(&k).map(|k| k.message_id), Some("a:b:c"));
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        assert_eq!(
            batches(&[10; 5], 2, MAX_BATCH_BYTES),
            vec![0..2, 2..4, 4..5]
        );
        let big = MAX_BATCH_BYTES / 2;
        assert_eq!(
            batches(&[big, big, 10], 100, MAX_BATCH_BYTES),
            vec![0..1, 1..3]
        );
        assert_eq!(
            batches(&[], 10, MAX_BATCH_BYTES),
            Vec::<Range<usize>>::new()
        );
    }

    #[test]
    fn an_event_larger_than_the_limit_travels_alone() {
        assert_eq!(
            batches(&[10, 5_000, 10], 100, 1_000),
            vec![0..1, 1..2, 2..3]
        );
    }

    #[test]
    fn overflow_drops_oldest_only_as_needed() {
        assert_eq!(overflow(10, 1, 100), 0);
        assert_eq!(overflow(100, 1, 100), 1);
        assert_eq!(overflow(100, 5, 100), 5);
        assert_eq!(overflow(2, 5, 3), 2, "never more than what is queued");
    }

    #[test]
    fn batch_body_stamps_each_event() {
        let body = batch_body(
            &[r#"{"type":"page"}"#, r#"{"type":"track"}"#],
            "T",
            "k\"1",
            0,
        );
        assert_eq!(
            body,
            r#"{"batch":[{"type":"page","sentAt":"T"},{"type":"track","sentAt":"T"}],"sentAt":"T","writeKey":"k\"1"}"#
        );
        assert!(
            batch_body(&[r#"{"a":1}"#], "T", "k", 42).ends_with(r#""writeKey":"k","dropped":42}"#)
        );
        for (n, text) in [(7, "7"), (10, "10"), (4_294_967_295, "4294967295")] {
            assert!(batch_body(&[], "T", "k", n).ends_with(&format!(r#""dropped":{text}}}"#)));
        }
    }
}
