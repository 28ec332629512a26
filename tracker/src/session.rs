//! Sessions: a visit ends after 30 minutes without an event; the next event starts a new one.

/// Idle time after which the next event starts a new session, in milliseconds.
pub const IDLE_TIMEOUT_MS: f64 = 30.0 * 60.0 * 1_000.0;

/// A session: its id is its start time in milliseconds (as Amplitude and Segment's
/// session plugin do), so ids sort by time and need no random bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Session {
    /// Start time, in milliseconds since the epoch; also the id.
    pub id: f64,
    /// Time of the latest event in it.
    pub last: f64,
}

impl Session {
    /// The session an event at `now` belongs to, given the one stored (if any).
    pub fn touch(stored: Option<Session>, now: f64) -> Session {
        match stored {
            // An event stamped earlier than the last one (clock change, late replay) stays
            // in the session rather than starting a new one.
            Some(s) if now - s.last < IDLE_TIMEOUT_MS => Session {
                id: s.id,
                last: s.last.max(now),
            },
            _ => Session { id: now, last: now },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: f64 = 60_000.0;

    #[test]
    fn first_event_starts_a_session() {
        assert_eq!(Session::touch(None, 5.0), Session { id: 5.0, last: 5.0 });
    }

    #[test]
    fn activity_within_30_minutes_continues_it() {
        let s = Session {
            id: 0.0,
            last: 10.0 * MIN,
        };
        assert_eq!(
            Session::touch(Some(s), 39.0 * MIN),
            Session {
                id: 0.0,
                last: 39.0 * MIN
            }
        );
    }

    #[test]
    fn thirty_idle_minutes_start_a_new_one() {
        let s = Session {
            id: 0.0,
            last: 10.0 * MIN,
        };
        assert_eq!(Session::touch(Some(s), 40.0 * MIN).id, 40.0 * MIN);
    }

    #[test]
    fn an_older_event_does_not_move_last_back() {
        let s = Session {
            id: 0.0,
            last: 10.0 * MIN,
        };
        assert_eq!(Session::touch(Some(s), 5.0 * MIN), s);
    }
}
