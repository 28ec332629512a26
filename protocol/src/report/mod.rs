//! Reports (`/v1/reports/*`): what each profile contributes to hourly rollups
//! ([`rollup`]), the funnel computed per profile ([`funnel`]), the time range a report
//! covers ([`Range`]) and the answers built from the summed rollups ([`answer`]).
//!
//! Every number a report shows comes from the profiles' own ledgers ([`entry`]), so a
//! report agrees with the stored events: duplicates never count, an order sent twice counts
//! once, late events land in their hour and erased people leave the reports.

pub mod answer;
pub mod entry;
pub mod funnel;
pub mod rollup;
pub mod schema;
#[cfg(test)]
mod tests;

use crate::time::{format_rfc3339, parse_rfc3339, Millis};
use rollup::HOUR;

/// A day in milliseconds.
pub const DAY: Millis = 24 * HOUR;
/// The longest range a report covers.
pub const MAX_RANGE: Millis = 400 * DAY;

/// How finely a report's series are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// One point per hour.
    Hour,
    /// One point per UTC day.
    Day,
}

impl Grain {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    fn length(self) -> Millis {
        match self {
            Self::Hour => HOUR,
            Self::Day => DAY,
        }
    }
}

/// The time a report covers, cut into buckets of its grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The first instant (a bucket start).
    pub from: Millis,
    /// The instant after the last (a bucket end).
    pub to: Millis,
    /// The buckets' length.
    pub grain: Grain,
}

/// A report's query parameters as given: `range` (`24h`, `7d`, `30d`, …) or `from` and
/// `to` (RFC 3339 times or `YYYY-MM-DD` dates, `to` excluded), and `grain`.
#[derive(Debug, Default, Clone)]
pub struct RangeQuery<'a> {
    /// A length ending now.
    pub range: Option<&'a str>,
    /// The start.
    pub from: Option<&'a str>,
    /// The end (excluded; default now).
    pub to: Option<&'a str>,
    /// `hour` or `day` (default: hours up to two days, days beyond).
    pub grain: Option<&'a str>,
}

fn instant(name: &str, text: &str) -> Result<Millis, String> {
    parse_rfc3339(text)
        .or_else(|| parse_rfc3339(&[text, "T00:00:00Z"].concat()))
        .ok_or_else(|| {
            format!("{name} must be an RFC 3339 time such as 2026-11-02T10:00:00Z or a date such as 2026-11-02, not {text:?}")
        })
}

impl Range {
    /// Reads a range, as of `now`; the default is the last 7 days. Bounds are widened to
    /// whole buckets, so every bucket is whole.
    pub fn parse(query: &RangeQuery<'_>, now: Millis) -> Result<Self, String> {
        let (from, to) = match (query.range, query.from) {
            (Some(_), Some(_)) => return Err("give range or from, not both".into()),
            (Some(length), None) => {
                let span =
                    crate::audience::definition::parse_duration(length).ok_or_else(|| {
                        format!("range must be a length such as 24h, 7d or 30d, not {length:?}")
                    })?;
                (now.saturating_sub(span), now)
            }
            (None, Some(from)) => {
                let to = query.to.map_or(Ok(now), |t| instant("to", t))?;
                (instant("from", from)?, to)
            }
            (None, None) if query.to.is_some() => return Err("to needs a from".into()),
            (None, None) => (now - 7 * DAY, now),
        };
        if from >= to {
            return Err("from must be before to".into());
        }
        if to - from > MAX_RANGE {
            return Err("a report covers at most 400 days".into());
        }
        let grain = match query.grain {
            None if to - from <= 2 * DAY => Grain::Hour,
            None | Some("day") => Grain::Day,
            Some("hour") => Grain::Hour,
            Some(other) => return Err(format!("grain must be hour or day, not {other:?}")),
        };
        let len = grain.length();
        let from = from.div_euclid(len) * len;
        let to = (to + len - 1).div_euclid(len) * len;
        if grain == Grain::Hour && to - from > 31 * DAY {
            return Err("hourly series cover at most 31 days: ask for grain=day".into());
        }
        Ok(Self { from, to, grain })
    }

    /// The buckets' starts.
    pub fn buckets(&self) -> Vec<Millis> {
        let len = self.grain.length();
        (0..(self.to - self.from) / len)
            .map(|i| self.from + i * len)
            .collect()
    }

    /// The bucket index of an hour, if the range holds it.
    pub fn index(&self, hour: Millis) -> Option<usize> {
        (hour >= self.from && hour < self.to)
            .then(|| ((hour - self.from) / self.grain.length()) as usize)
    }

    /// The range as the answers show it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "from": format_rfc3339(self.from),
            "to": format_rfc3339(self.to),
            "grain": self.grain.as_str(),
            "buckets": self.buckets().into_iter().map(format_rfc3339).collect::<Vec<_>>(),
        })
    }
}
