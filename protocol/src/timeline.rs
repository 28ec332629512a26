//! The timeline's query (`GET /v1/profiles/{id}/events?type=&name=&from=&to=&limit=&cursor=`):
//! read once, and refused with the parameter's name when a value cannot be used, so a typo
//! is a 400 rather than a page that silently ignores it.

use std::fmt;

use crate::time::{parse_rfc3339, Millis};

/// Events on one page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// Most events on one page.
pub const MAX_LIMIT: i64 = 500;

/// A timeline page asked for: filters, size and where the previous page stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineQuery {
    /// Events per page, 1 to [`MAX_LIMIT`].
    pub limit: i64,
    /// Only events of this type (`track`, `page`, …).
    pub kind: Option<String>,
    /// Only track events of this name.
    pub name: Option<String>,
    /// Only events at or after this event time.
    pub from: Option<Millis>,
    /// Only events at or before this event time.
    pub to: Option<Millis>,
    /// `(event time, messageId)` of the previous page's last event.
    pub cursor: Option<(Millis, String)>,
}

/// A parameter that cannot be used, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The parameter's name.
    pub parameter: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

const TYPES: [&str; 6] = ["track", "page", "screen", "identify", "group", "alias"];

impl TimelineQuery {
    /// Reads the query's `(name, value)` pairs; an unknown or unusable one is an error.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, QueryError> {
        let mut query = Self {
            limit: DEFAULT_LIMIT,
            kind: None,
            name: None,
            from: None,
            to: None,
            cursor: None,
        };
        for (key, value) in pairs {
            let fail = |message: String| QueryError {
                parameter: key.to_owned(),
                message,
            };
            match key {
                "limit" => {
                    query.limit = value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            fail(format!(
                                "limit must be a whole number from 1 to {MAX_LIMIT}, not {value:?}"
                            ))
                        })?;
                }
                "type" if TYPES.contains(&value) => query.kind = Some(value.to_owned()),
                "type" => {
                    return Err(fail(format!(
                        "type must be one of {}, not {value:?}",
                        TYPES.join(", ")
                    )))
                }
                "name" if !value.is_empty() => query.name = Some(value.to_owned()),
                "name" => return Err(fail("name must not be empty".to_owned())),
                "from" | "to" => {
                    let at = parse_time(value).ok_or_else(|| {
                        fail(format!(
                            "{key} must be an ISO 8601 time such as 2026-11-20T00:00:00Z (or a date, 2026-11-20), not {value:?}"
                        ))
                    })?;
                    if key == "from" {
                        query.from = Some(at);
                    } else {
                        query.to = Some(at);
                    }
                }
                "cursor" => {
                    query.cursor = Some(
                        value
                            .split_once('.')
                            .and_then(|(t, r)| Some((t.parse().ok()?, r.to_owned())))
                            .filter(|(_, r)| !r.is_empty())
                            .ok_or_else(|| {
                                fail(
                                    "cursor must be the nextCursor of the previous page".to_owned(),
                                )
                            })?,
                    );
                }
                other => {
                    return Err(fail(format!(
                        "unknown parameter {other:?}; use type, name, from, to, limit and cursor"
                    )))
                }
            }
        }
        if let (Some(from), Some(to)) = (query.from, query.to) {
            if to < from {
                return Err(QueryError {
                    parameter: "to".to_owned(),
                    message: "to must not come before from".to_owned(),
                });
            }
        }
        Ok(query)
    }
}

/// An ISO 8601 time, or a date alone as the start of its day.
fn parse_time(value: &str) -> Option<Millis> {
    if value.len() == 10 {
        parse_rfc3339(&[value, "T00:00:00Z"].concat())
    } else {
        parse_rfc3339(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&'static str, &'static str)]) -> Result<TimelineQuery, QueryError> {
        TimelineQuery::parse(query.iter().copied())
    }

    #[test]
    fn reads_every_parameter() {
        let q = parse(&[
            ("limit", "20"),
            ("type", "track"),
            ("name", "Order Completed"),
            ("from", "2026-11-20"),
            ("to", "2026-11-21T12:00:00Z"),
            ("cursor", "1700000000000.42"),
        ])
        .unwrap();
        assert_eq!(q.limit, 20);
        assert_eq!(q.kind.as_deref(), Some("track"));
        assert_eq!(q.name.as_deref(), Some("Order Completed"));
        assert_eq!(q.from, parse_rfc3339("2026-11-20T00:00:00Z"));
        assert_eq!(q.cursor, Some((1_700_000_000_000, "42".to_owned())));
        assert_eq!(parse(&[]).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn names_the_parameter_it_refuses() {
        for (bad, parameter) in [
            (("limit", "abc"), "limit"),
            (("limit", "0"), "limit"),
            (("limit", "501"), "limit"),
            (("from", "yesterday"), "from"),
            (("to", "2026-13-01"), "to"),
            (("type", "purchase"), "type"),
            (("cursor", "abc"), "cursor"),
            (("sort", "asc"), "sort"),
        ] {
            let e = parse(&[bad]).unwrap_err();
            assert_eq!(e.parameter, parameter, "{bad:?}");
            assert!(e.message.contains(parameter), "{bad:?}: {}", e.message);
        }
        let e = parse(&[("from", "2026-11-21"), ("to", "2026-11-20")]).unwrap_err();
        assert_eq!(e.parameter, "to");
    }
}
