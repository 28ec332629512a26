//! Retention: how long a workspace keeps events (`RETAIN_EVENTS`, 395 days, about 13
//! months, by default) and anonymous profiles that went quiet (`RETAIN_ANONYMOUS`, 90
//! days): a profile whose only identifiers are `anonymousId`s and that has had no event
//! for that long is deleted. Each profile's alarm enforces both, at the deadline decided
//! here.
//!
//! What leaves does not change what was computed from it: the profile's aggregate keeps
//! its totals (revenue, orders, views, consent) and the events audiences read are kept as
//! facts, so computed traits and audiences are the same after expiry as before. Only the
//! timeline and the reports' ledger lose the expired events.

use crate::audience::definition::parse_duration;
use crate::time::Millis;

/// The workspace's retention settings; `None`: kept for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long events are kept, by event time.
    pub events: Option<Millis>,
    /// How long an anonymous profile is kept after its last event.
    pub anonymous: Option<Millis>,
}

/// 395 days: 13 months, the usual analytics retention.
pub const DEFAULT_EVENTS_MS: Millis = 395 * 86_400_000;
/// 90 days.
pub const DEFAULT_ANONYMOUS_MS: Millis = 90 * 86_400_000;

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: Some(DEFAULT_EVENTS_MS),
            anonymous: Some(DEFAULT_ANONYMOUS_MS),
        }
    }
}

fn setting(name: &str, text: Option<&str>, default: Millis) -> Result<Option<Millis>, String> {
    match text.map(str::trim) {
        None | Some("") => Ok(Some(default)),
        Some("forever") => Ok(None),
        Some(text) => parse_duration(text).map(Some).ok_or_else(|| {
            format!("{name} is a duration such as 395d, 90d or 12w, or \"forever\"; not {text:?}")
        }),
    }
}

impl Retention {
    /// Reads `RETAIN_EVENTS` and `RETAIN_ANONYMOUS` (unset: the defaults).
    pub fn parse(events: Option<&str>, anonymous: Option<&str>) -> Result<Self, String> {
        Ok(Self {
            events: setting("RETAIN_EVENTS", events, DEFAULT_EVENTS_MS)?,
            anonymous: setting("RETAIN_ANONYMOUS", anonymous, DEFAULT_ANONYMOUS_MS)?,
        })
    }

    /// Events before this time have expired at `now`.
    pub fn events_cutoff(&self, now: Millis) -> Option<Millis> {
        self.events.map(|keep| now.saturating_sub(keep))
    }

    /// Whether a profile is deleted at `now`: only anonymous identifiers, and quiet since
    /// `last_event` for longer than the setting.
    pub fn anonymous_expired(&self, anonymous_only: bool, last_event: Millis, now: Millis) -> bool {
        anonymous_only
            && self
                .anonymous
                .is_some_and(|keep| last_event.saturating_add(keep) <= now)
    }

    /// When the profile next has something to expire: its oldest event's expiry, or the
    /// time an anonymous profile goes (whichever comes first).
    pub fn next_deadline(
        &self,
        oldest_event: Option<Millis>,
        last_event: Option<Millis>,
        anonymous_only: bool,
    ) -> Option<Millis> {
        let events = self
            .events
            .zip(oldest_event)
            .map(|(keep, oldest)| oldest.saturating_add(keep));
        let profile = self
            .anonymous
            .filter(|_| anonymous_only)
            .zip(last_event)
            .map(|(keep, last)| last.saturating_add(keep));
        match (events, profile) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Millis = 86_400_000;

    #[test]
    fn settings_read_as_people_write_them() {
        assert_eq!(Retention::parse(None, None).unwrap(), Retention::default());
        let r = Retention::parse(Some("30d"), Some("forever")).unwrap();
        assert_eq!(r.events, Some(30 * DAY));
        assert_eq!(r.anonymous, None);
        let refused = Retention::parse(Some("13 months"), None).unwrap_err();
        assert!(refused.contains("RETAIN_EVENTS is a duration"), "{refused}");
    }

    #[test]
    fn deadlines_come_from_the_oldest_event_and_the_last_one() {
        let r = Retention::parse(Some("10d"), Some("3d")).unwrap();
        // Identified: only events expire.
        assert_eq!(
            r.next_deadline(Some(DAY), Some(5 * DAY), false),
            Some(11 * DAY)
        );
        // Anonymous and quiet: the profile goes first.
        assert_eq!(
            r.next_deadline(Some(DAY), Some(5 * DAY), true),
            Some(8 * DAY)
        );
        assert_eq!(r.next_deadline(None, None, true), None);
        assert!(r.anonymous_expired(true, 5 * DAY, 8 * DAY));
        assert!(!r.anonymous_expired(false, 5 * DAY, 80 * DAY));
        assert!(!r.anonymous_expired(true, 5 * DAY, 8 * DAY - 1));
        assert_eq!(r.events_cutoff(20 * DAY), Some(10 * DAY));
        let forever = Retention::parse(Some("forever"), Some("forever")).unwrap();
        assert_eq!(forever.next_deadline(Some(DAY), Some(DAY), true), None);
    }
}
