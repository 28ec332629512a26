//! The durable outbox's rules: how queued events are named in storage, which are sent
//! together, and which are dropped when the queue is full. (The body of a batch is the
//! browser's business: the stored events are JSON strings that never enter the Wasm.)
//!
//! Each event is its own storage entry, so tabs of the same site append without ever
//! rewriting each other's data; the tab holding the send lock sends everyone's entries.

use std::ops::Range;

/// Prefix of every queued event's storage key.
pub const PREFIX: &str = "cdp_e:";

/// Largest event the collector accepts, serialised, in bytes.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest batch body the tracker sends: well below the collector's 500 KB, and at most
/// half the 64 KB that all in-flight `keepalive` requests share, so that what the page
/// sends when it is hidden has room beside a batch in flight.
pub const MAX_BATCH_BYTES: usize = 31 * 1024;
// Two batches fit the keepalive quota, with room to spare.
const _: () = assert!(2 * MAX_BATCH_BYTES <= 63 * 1024);
/// Bytes of a batch body around its events (`{"batch":[…],"sentAt":…}`), kept free.
const ENVELOPE_BYTES: usize = 512;
/// Bytes an event gains when it is sent: `,"sentAt":"<24-character time>"` before its
/// closing brace.
pub const SENT_AT_BYTES: usize = 36;
/// Bytes each event takes in a batch beyond its stored JSON: a comma and its `sentAt`.
const PER_EVENT_BYTES: usize = 1 + SENT_AT_BYTES;

/// The parts of a queued event's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a> {
    /// Capture time in milliseconds (the key sorts by it).
    pub at: u64,
    /// Capture order within the tab, for events of the same millisecond.
    pub seq: u64,
    /// The tab that captured it.
    pub tab: &'a str,
}

/// The storage key of an event: `cdp_e:<time>:<seq>:<tab>`, time and sequence in
/// fixed-width base 36, so that sorting keys sorts events by capture order. A tab's id is
/// new on every page load and its sequence only grows, so no two events share a key.
pub fn key(at: u64, seq: u64, tab: &str) -> String {
    let mut key = String::with_capacity(PREFIX.len() + 15 + tab.len());
    key.push_str(PREFIX);
    push_base36(&mut key, at, 9);
    key.push(':');
    push_base36(&mut key, seq, 4);
    key.push(':');
    key.push_str(tab);
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
    let (order, tab) = cut(rest, b':')?;
    let at = u64::from_str_radix(time, 36).ok()?;
    let seq = u64::from_str_radix(order, 36).ok()?;
    Some(Key { at, seq, tab })
}

/// Splits events of the given serialised sizes, in order, into batches of at most
/// `max_events` events and `max_bytes` bytes of body. An event too large for any batch
/// still gets one of its own: the caller decides what to do with it.
pub fn batches(sizes: &[usize], max_events: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = ENVELOPE_BYTES;
    for (i, size) in sizes.iter().enumerate() {
        if i > start
            && (bytes + size + PER_EVENT_BYTES > max_bytes || i - start >= max_events.max(1))
        {
            out.push(start..i);
            start = i;
            bytes = ENVELOPE_BYTES;
        }
        bytes += size + PER_EVENT_BYTES;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_capture_time_and_parse_back() {
        let early = key(1_795_341_600_000, 7, "t1");
        let same_ms_later = key(1_795_341_600_000, 8, "t1");
        let late = key(1_795_341_600_001, 0, "t0");
        assert!(early < same_ms_later && same_ms_later < late);
        assert_eq!(
            parse_key(&early),
            Some(Key {
                at: 1_795_341_600_000,
                seq: 7,
                tab: "t1",
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
    fn a_key_of_an_earlier_format_keeps_its_time_but_is_no_tabs_own() {
        // Keys once ended with the messageId: such an event is sent as an orphan.
        let k = parse_key("cdp_e:000000005:0000:tab:a-b");
        assert_eq!(k.as_ref().map(|k| (k.at, k.tab)), Some((5, "tab:a-b")));
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
    fn a_full_batch_body_fits_its_limit_with_every_event_stamped() {
        let sizes = [700; 200];
        let all = batches(&sizes, usize::MAX, MAX_BATCH_BYTES);
        for (n, batch) in all.iter().enumerate() {
            let events = batch.len();
            // What transport's batch body adds: the envelope with the write key, then per
            // event a comma and the sentAt stamp.
            let body = 60 + events * (700 + 1 + 36);
            assert!(body <= MAX_BATCH_BYTES, "{events} events: {body} B");
            if n + 1 < all.len() {
                assert!(
                    body + 737 > MAX_BATCH_BYTES - ENVELOPE_BYTES,
                    "batches are filled"
                );
            }
        }
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
}
