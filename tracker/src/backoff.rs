//! When to try again after a failed send: exponential backoff with jitter, and which
//! answers deserve a retry at all.

/// First retry delay, in milliseconds.
pub const BASE_DELAY_MS: f64 = 1_000.0;
/// Longest delay between two attempts, in milliseconds.
pub const MAX_DELAY_MS: f64 = 60_000.0;

/// What to do with a batch after the collector answered (or did not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (2xx, including 207 with some events rejected): forget the batch.
    Delivered,
    /// Refused for good (4xx other than 408 and 429): retrying cannot help; forget it.
    Refused,
    /// Worth another try later: network error, 5xx, 408, 429.
    Retry,
}

/// Classifies an HTTP status; `0` stands for a network error (no answer at all).
pub fn outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 => Outcome::Retry,
        400..=499 => Outcome::Refused,
        _ => Outcome::Retry,
    }
}

/// Delay before attempt `attempt` (1 for the first retry), given `jitter` in `[0, 1)`.
///
/// "Equal jitter": half the exponential delay is fixed, half random, so tabs and devices
/// that failed together do not all come back at the same instant.
pub fn delay_ms(attempt: u32, jitter: f64) -> f64 {
    let exp = BASE_DELAY_MS * f64::from(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    let capped = exp.min(MAX_DELAY_MS);
    capped / 2.0 + capped / 2.0 * jitter.clamp(0.0, 1.0)
}

/// The delay to wait: the backoff, or longer if the server asked for it with `Retry-After`
/// (given in milliseconds, already parsed), but never more than an hour.
pub fn next_delay_ms(attempt: u32, jitter: f64, retry_after_ms: Option<f64>) -> f64 {
    let backoff = delay_ms(attempt, jitter);
    match retry_after_ms {
        Some(asked) if asked.is_finite() && asked > backoff => asked.min(3_600_000.0),
        _ => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        let cases = [
            (200, Outcome::Delivered),
            (207, Outcome::Delivered),
            (400, Outcome::Refused),
            (401, Outcome::Refused),
            (413, Outcome::Refused),
            (408, Outcome::Retry),
            (429, Outcome::Retry),
            (500, Outcome::Retry),
            (503, Outcome::Retry),
            (0, Outcome::Retry),
        ];
        for (status, expected) in cases {
            assert_eq!(outcome(status), expected, "{status}");
        }
    }

    #[test]
    fn delay_doubles_then_caps() {
        assert_eq!(delay_ms(1, 1.0), 1_000.0);
        assert_eq!(delay_ms(2, 1.0), 2_000.0);
        assert_eq!(delay_ms(4, 1.0), 8_000.0);
        assert_eq!(delay_ms(30, 1.0), MAX_DELAY_MS);
        assert_eq!(delay_ms(u32::MAX, 1.0), MAX_DELAY_MS);
    }

    #[test]
    fn jitter_spreads_over_the_upper_half() {
        assert_eq!(delay_ms(3, 0.0), 2_000.0);
        assert_eq!(delay_ms(3, 0.5), 3_000.0);
        assert_eq!(delay_ms(3, 7.0), 4_000.0, "jitter is clamped");
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_bounded() {
        assert_eq!(next_delay_ms(1, 0.0, Some(30_000.0)), 30_000.0);
        assert_eq!(next_delay_ms(1, 0.0, Some(10.0)), 500.0);
        assert_eq!(next_delay_ms(1, 0.0, Some(f64::INFINITY)), 500.0);
        assert_eq!(next_delay_ms(1, 0.0, Some(1e12)), 3_600_000.0);
    }
}
