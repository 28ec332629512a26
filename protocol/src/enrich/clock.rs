//! Server time and clock-skew correction: when an event really happened.
//!
//! A device's clock can be minutes or years off, but the gap between when the client
//! says it made an event (`timestamp`) and when it says it sent it (`sentAt`) is
//! measured on that one clock, so it is trustworthy even when the clock is not. Segment
//! corrects the same way: `receivedAt − (sentAt − timestamp)`. What remains implausible
//! after that (far in the future, or older than anyone keeps) is replaced by the server
//! time rather than refused: the event is still worth keeping.

use serde::Deserialize;

use crate::time::Millis;

const HOUR_MS: Millis = 3_600_000;
const DAY_MS: Millis = 24 * HOUR_MS;

/// How far an event's time may lie from the server's before it is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ClockPolicy {
    /// Largest accepted lead over `receivedAt`; 23 hours, as Segment allows.
    pub max_future_ms: Millis,
    /// Oldest accepted age before `receivedAt`; 90 days by default.
    pub max_age_ms: Millis,
}

impl Default for ClockPolicy {
    fn default() -> Self {
        Self {
            max_future_ms: 23 * HOUR_MS,
            max_age_ms: 90 * DAY_MS,
        }
    }
}

/// Why an event's time was replaced by the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clamp {
    /// It lay more than `max_future_ms` after `receivedAt`.
    Future,
    /// It lay more than `max_age_ms` before `receivedAt`.
    TooOld,
}

impl Clamp {
    /// A stable reason, also a counter label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Future => "future",
            Self::TooOld => "too_old",
        }
    }
}

/// The time an event is stored under, and how it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrected {
    /// When the event happened, on the server's clock.
    pub timestamp: Millis,
    /// `receivedAt − sentAt`: how far the client's clock lags the server's (network
    /// time included); `None` without a `sentAt`.
    pub skew_ms: Option<Millis>,
    /// Set when the time was out of bounds and replaced by `receivedAt`.
    pub clamped: Option<Clamp>,
}

/// Corrects a client `timestamp` by the skew its own `sent_at` reveals, then bounds it.
pub fn correct(
    timestamp: Option<Millis>,
    sent_at: Option<Millis>,
    received_at: Millis,
    policy: &ClockPolicy,
) -> Corrected {
    // Saturating arithmetic: the inputs come from clients, and overflow must not panic.
    let skew_ms = sent_at.map(|sent| received_at.saturating_sub(sent));
    let time = match (timestamp, sent_at) {
        // A sentAt before the timestamp means the two were not read from one clock in
        // order, so the gap between them measures nothing.
        (Some(ts), Some(sent)) if sent >= ts => received_at.saturating_sub(sent.saturating_sub(ts)),
        (Some(ts), _) => ts,
        (None, _) => received_at,
    };
    let clamped = if time > received_at.saturating_add(policy.max_future_ms) {
        Some(Clamp::Future)
    } else if time < received_at.saturating_sub(policy.max_age_ms) {
        Some(Clamp::TooOld)
    } else {
        None
    };
    Corrected {
        timestamp: if clamped.is_some() { received_at } else { time },
        skew_ms,
        clamped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_341_600_000;

    #[test]
    fn corrects_timestamp_by_client_send_delay() {
        // (timestamp, sentAt, want timestamp, want skew)
        let cases = [
            // Client clock 1 h behind, event queued 5 s before sending.
            (
                Some(NOW - HOUR_MS - 5_000),
                Some(NOW - HOUR_MS),
                NOW - 5_000,
                Some(HOUR_MS),
            ),
            // Client clock 2 days ahead: still corrected to 10 s before receipt.
            (
                Some(NOW + 2 * DAY_MS - 10_000),
                Some(NOW + 2 * DAY_MS),
                NOW - 10_000,
                Some(-2 * DAY_MS),
            ),
            // Clocks agree: nothing moves.
            (Some(NOW - 300), Some(NOW), NOW - 300, Some(0)),
        ];
        for (ts, sent, want, skew) in cases {
            let got = correct(ts, sent, NOW, &ClockPolicy::default());
            assert_eq!(got.timestamp, want, "{ts:?} {sent:?}");
            assert_eq!(got.skew_ms, skew);
            assert_eq!(got.clamped, None);
        }
    }

    #[test]
    fn falls_back_to_raw_timestamp_or_received_at() {
        let cases = [
            // No sentAt: the client's time as it is.
            (Some(NOW - 60_000), None, NOW - 60_000, None),
            // sentAt before timestamp: no correction, skew still reported.
            (
                Some(NOW - 1_000),
                Some(NOW - 5_000),
                NOW - 1_000,
                Some(5_000),
            ),
            // No timestamp at all: the server's time.
            (None, Some(NOW - 2_000), NOW, Some(2_000)),
            (None, None, NOW, None),
        ];
        for (ts, sent, want, skew) in cases {
            let got = correct(ts, sent, NOW, &ClockPolicy::default());
            assert_eq!(
                (got.timestamp, got.skew_ms),
                (want, skew),
                "{ts:?} {sent:?}"
            );
            assert_eq!(got.clamped, None);
        }
    }

    #[test]
    fn clamps_future_and_too_old_times_to_received_at() {
        let cases = [
            (NOW + 23 * HOUR_MS, None),
            (NOW + 23 * HOUR_MS + 1, Some(Clamp::Future)),
            (NOW + 400 * DAY_MS, Some(Clamp::Future)),
            (NOW - 90 * DAY_MS, None),
            (NOW - 90 * DAY_MS - 1, Some(Clamp::TooOld)),
            (0, Some(Clamp::TooOld)),
        ];
        for (ts, want) in cases {
            let got = correct(Some(ts), None, NOW, &ClockPolicy::default());
            assert_eq!(got.clamped, want, "{ts}");
            let expected = if want.is_some() { NOW } else { ts };
            assert_eq!(got.timestamp, expected, "{ts}");
        }
        assert_eq!(Clamp::Future.as_str(), "future");
        assert_eq!(Clamp::TooOld.as_str(), "too_old");
    }

    #[test]
    fn max_age_is_configurable() {
        let policy = ClockPolicy {
            max_age_ms: DAY_MS,
            ..ClockPolicy::default()
        };
        let got = correct(Some(NOW - 2 * DAY_MS), None, NOW, &policy);
        assert_eq!(got.clamped, Some(Clamp::TooOld));
        assert_eq!(got.timestamp, NOW);
    }

    #[test]
    fn extreme_inputs_do_not_overflow() {
        for (ts, sent) in [
            (Some(Millis::MIN), Some(Millis::MAX)),
            (Some(Millis::MAX), Some(Millis::MIN)),
            (Some(Millis::MIN), None),
        ] {
            let got = correct(ts, sent, NOW, &ClockPolicy::default());
            assert_eq!(got.timestamp, NOW);
            assert!(got.clamped.is_some());
        }
    }

    #[test]
    fn policy_reads_from_json_with_defaults() {
        let policy: ClockPolicy = serde_json::from_str(r#"{"maxAgeMs":1000}"#).unwrap();
        assert_eq!(policy.max_age_ms, 1_000);
        assert_eq!(policy.max_future_ms, 23 * HOUR_MS);
        assert!(serde_json::from_str::<ClockPolicy>(r#"{"maxAge":1}"#).is_err());
    }
}
