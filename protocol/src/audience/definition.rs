//! An audience's definition as the admin API takes it (JSON), checked into a typed
//! condition tree. Every refusal names the place in the JSON, so a builder UI can point at
//! the field.

use std::fmt;

use serde_json::{Map, Value};

use crate::search::{self, Condition};

/// Deepest nesting of `all`, `any` and `not`.
pub const MAX_DEPTH: usize = 6;
/// Most conditions (of every kind) in one definition.
pub const MAX_CONDITIONS: usize = 32;
/// Most property filters on one event condition.
pub const MAX_FILTERS: usize = 10;
/// Longest window (`within`): 400 days.
pub const MAX_WINDOW_MS: i64 = 400 * 86_400_000;
/// Most audiences a workspace defines.
pub const MAX_AUDIENCES: usize = 200;

/// Why a definition is refused: where (`where.all[1].did.within`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// The place in the definition's JSON.
    pub at: String,
    /// What is wrong and how to write it.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

fn refuse<T>(at: &str, message: impl Into<String>) -> Result<T, DefinitionError> {
    Err(DefinitionError {
        at: at.to_owned(),
        message: message.into(),
    })
}

/// A checked audience definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// `[a-z0-9_]{1,64}`, unique and immutable.
    pub key: String,
    /// What the marketer calls it.
    pub name: String,
    /// The segment group it belongs to, if any.
    pub group: Option<String>,
    /// Whether the personalization API may tell a visitor they are in it.
    pub personalize: bool,
    /// Who is in it.
    pub condition: Cond,
}

/// A condition on one person.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Every one holds.
    All(Vec<Cond>),
    /// At least one holds.
    Any(Vec<Cond>),
    /// It does not hold.
    Not(Box<Cond>),
    /// Something the person did (or, with at most 0, did not do).
    Did(Box<Did>),
    /// A trait, computed trait or identifier, in the profile search syntax.
    Have(Condition),
    /// Member of another audience.
    InAudience(String),
}

/// Which events a condition looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    /// A track event's name, or an event type (`page`, `identify`, …).
    pub event: EventKind,
    /// Filters on the event's fields, all of which must hold.
    pub filters: Vec<Condition>,
}

/// A track event's name, or an event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `{"event": "Order Completed"}`.
    Named(String),
    /// `{"type": "page"}`.
    Type(String),
}

/// How many matching events a `did` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// `atLeast`.
    AtLeast(u32),
    /// `atMost` (`didNot` is at most 0).
    AtMost(u32),
    /// `exactly`.
    Exactly(u32),
}

/// Which events count by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// All of them.
    Ever,
    /// Those of the last this many milliseconds (`within`), sliding with the clock.
    Sliding(i64),
    /// Those from one instant to another, inclusive (`between`).
    Between(i64, i64),
}

/// How an aggregate folds the matching events' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// `sum`.
    Sum,
    /// `avg`.
    Avg,
    /// `min`.
    Min,
    /// `max`.
    Max,
}

/// A condition on a value aggregated over the matching events.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The fold.
    pub fold: Fold,
    /// Group and key of the folded field (`properties`, `total`).
    pub field: (String, String),
    /// The comparison.
    pub op: search::Op,
    /// The value compared with.
    pub value: f64,
}

/// What must (or must not) follow the latest matching event.
#[derive(Debug, Clone, PartialEq)]
pub struct Then {
    /// `thenDid` (true) or `thenDidNot`.
    pub did: bool,
    /// The follow-up events.
    pub matcher: Matcher,
    /// `thenDid`: the follow-up came within this long; `thenDidNot`: none came and this
    /// long has passed.
    pub within: i64,
}

/// A `did` or `didNot` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Did {
    /// The events.
    pub matcher: Matcher,
    /// How many.
    pub count: Count,
    /// When.
    pub window: Window,
    /// A condition on their values.
    pub aggregate: Option<Aggregate>,
    /// A sequence after the latest of them.
    pub then: Option<Then>,
}

const EVENT_TYPES: [&str; 6] = ["track", "page", "screen", "identify", "group", "alias"];
const TOP_FIELDS: [&str; 6] = [
    "key",
    "name",
    "group",
    "personalize",
    "description",
    "where",
];
/// Fields an answer carries that a client may send back unchanged with a `PUT`.
pub const READ_ONLY_FIELDS: [&str; 8] = [
    "version",
    "state",
    "size",
    "progress",
    "createdAt",
    "updatedAt",
    "dependsOn",
    "backfill",
];

/// Whether `key` is a usable audience or group key: `[a-z0-9_]{1,64}`.
pub fn valid_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses a duration: a whole number and a unit, `s`, `m`, `h`, `d` or `w` (`90m`).
pub fn parse_duration(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let n: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    Some(n.checked_mul(ms)?).filter(|&ms| ms > 0)
}

/// Checks a definition. `computed` traits, operators and durations are checked here;
/// whether `inAudience` names an existing audience, and cycles, are the caller's (it
/// knows the other audiences; see [`super::check_references`]).
pub fn parse(value: &Value) -> Result<Definition, DefinitionError> {
    let Some(object) = value.as_object() else {
        return refuse("", "a definition is a JSON object with key, name and where");
    };
    for field in object.keys() {
        if !TOP_FIELDS.contains(&field.as_str()) && !READ_ONLY_FIELDS.contains(&field.as_str()) {
            return refuse(
                field,
                format!("unknown field; a definition has {}", TOP_FIELDS.join(", ")),
            );
        }
    }
    let key = match object.get("key") {
        Some(Value::String(k)) if valid_key(k) => k.clone(),
        _ => return refuse("key", "give a key of 1 to 64 characters a-z, 0-9 and _"),
    };
    let name = match object.get("name") {
        None => key.clone(),
        Some(Value::String(n)) if (1..=200).contains(&n.chars().count()) => n.clone(),
        Some(_) => return refuse("name", "a name is a text of 1 to 200 characters"),
    };
    let group = match object.get("group") {
        None | Some(Value::Null) => None,
        Some(Value::String(g)) if valid_key(g) => Some(g.clone()),
        Some(_) => {
            return refuse(
                "group",
                "a group is a segment group's key: 1 to 64 characters a-z, 0-9 and _",
            )
        }
    };
    let personalize = match object.get("personalize") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return refuse("personalize", "personalize is true or false"),
    };
    if let Some(d) = object.get("description") {
        if !d.is_string() && !d.is_null() {
            return refuse("description", "a description is a text");
        }
    }
    let Some(condition) = object.get("where") else {
        return refuse(
            "where",
            "give the condition: {\"did\": …}, {\"didNot\": …}, {\"have\": …}, {\"inAudience\": …}, {\"all\": […]}, {\"any\": […]} or {\"not\": …}",
        );
    };
    let mut budget = MAX_CONDITIONS;
    let condition = cond(condition, "where", 0, &mut budget)?;
    Ok(Definition {
        key,
        name,
        group,
        personalize,
        condition,
    })
}

fn cond(
    value: &Value,
    at: &str,
    depth: usize,
    budget: &mut usize,
) -> Result<Cond, DefinitionError> {
    if *budget == 0 {
        return refuse(
            at,
            format!("too many conditions: at most {MAX_CONDITIONS} in one definition"),
        );
    }
    *budget -= 1;
    let Some((kind, inner)) = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
    else {
        return refuse(
            at,
            "a condition is an object with one of all, any, not, did, didNot, have, inAudience",
        );
    };
    let here = [at, ".", kind].concat();
    let nested = |budget: &mut usize| -> Result<Vec<Cond>, DefinitionError> {
        if depth + 1 > MAX_DEPTH {
            return refuse(
                &here,
                format!("too deep: conditions nest at most {MAX_DEPTH} levels"),
            );
        }
        let Some(items) = inner.as_array().filter(|a| !a.is_empty()) else {
            return refuse(&here, "a non-empty list of conditions");
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| cond(item, &format!("{here}[{i}]"), depth + 1, budget))
            .collect()
    };
    match kind.as_str() {
        "all" => Ok(Cond::All(nested(budget)?)),
        "any" => Ok(Cond::Any(nested(budget)?)),
        "not" => {
            if depth + 1 > MAX_DEPTH {
                return refuse(
                    &here,
                    format!("too deep: conditions nest at most {MAX_DEPTH} levels"),
                );
            }
            Ok(Cond::Not(Box::new(cond(inner, &here, depth + 1, budget)?)))
        }
        "did" => Ok(Cond::Did(Box::new(did(inner, &here, false)?))),
        "didNot" => Ok(Cond::Did(Box::new(did(inner, &here, true)?))),
        "have" => match inner {
            Value::String(text) => search::parse(text)
                .map(Cond::Have)
                .or_else(|e| refuse(&here, e.0)),
            _ => refuse(
                &here,
                "have takes one condition as text, e.g. \"computed.totalRevenue>500\"",
            ),
        },
        "inAudience" => match inner {
            Value::String(k) if valid_key(k) => Ok(Cond::InAudience(k.clone())),
            _ => refuse(&here, "inAudience takes another audience's key"),
        },
        other => refuse(
            &here,
            format!(
                "unknown condition {other:?}; use all, any, not, did, didNot, have or inAudience"
            ),
        ),
    }
}

const DID_FIELDS: [&str; 15] = [
    "event",
    "type",
    "where",
    "atLeast",
    "atMost",
    "exactly",
    "within",
    "between",
    "sum",
    "avg",
    "min",
    "max",
    "op",
    "value",
    "aggregate",
];
const SEQUENCE_FIELDS: [&str; 2] = ["thenDid", "thenDidNot"];

fn did(value: &Value, at: &str, negated: bool) -> Result<Did, DefinitionError> {
    let Some(o) = value.as_object() else {
        return refuse(
            at,
            "an object such as {\"event\": \"Order Completed\", \"within\": \"30d\"}",
        );
    };
    for field in o.keys() {
        let known =
            DID_FIELDS.contains(&field.as_str()) || SEQUENCE_FIELDS.contains(&field.as_str());
        if !known {
            return refuse(
                &[at, ".", field].concat(),
                "unknown field; use event or type, where, atLeast, atMost, exactly, within or between, sum/avg/min/max with op and value, thenDid or thenDidNot",
            );
        }
    }
    let matcher = matcher(o, at)?;
    let counts: Vec<(&str, &Value)> = ["atLeast", "atMost", "exactly"]
        .into_iter()
        .filter_map(|k| o.get(k).map(|v| (k, v)))
        .collect();
    let count = match counts.as_slice() {
        [] if negated => Count::AtMost(0),
        [] => Count::AtLeast(1),
        [_] if negated => {
            return refuse(at, "didNot is did with at most 0; give a count only to did");
        }
        [(kind, v)] => {
            let here = [at, ".", kind].concat();
            let Some(n) = v.as_u64().filter(|n| *n <= 1_000_000) else {
                return refuse(&here, "a whole number from 0 to 1000000");
            };
            let n = n as u32;
            match *kind {
                "atLeast" => Count::AtLeast(n),
                "atMost" => Count::AtMost(n),
                _ => Count::Exactly(n),
            }
        }
        _ => return refuse(at, "give one of atLeast, atMost and exactly"),
    };
    let window = match (o.get("within"), o.get("between")) {
        (None, None) => Window::Ever,
        (Some(w), None) => Window::Sliding(duration(w, &[at, ".within"].concat())?),
        (None, Some(b)) => between(b, &[at, ".between"].concat())?,
        (Some(_), Some(_)) => return refuse(at, "give within or between, not both"),
    };
    let aggregate = aggregate(o, at)?;
    let then = match (o.get("thenDid"), o.get("thenDidNot")) {
        (None, None) => None,
        (Some(_), Some(_)) => return refuse(at, "give thenDid or thenDidNot, not both"),
        _ if negated => {
            return refuse(
                at,
                "a sequence follows something done: use it with did, not didNot",
            )
        }
        (Some(t), None) => Some(then(t, &[at, ".thenDid"].concat(), true)?),
        (None, Some(t)) => Some(then(t, &[at, ".thenDidNot"].concat(), false)?),
    };
    if negated && aggregate.is_some() {
        return refuse(at, "an aggregate needs events: use it with did, not didNot");
    }
    Ok(Did {
        matcher,
        count,
        window,
        aggregate,
        then,
    })
}

fn matcher(o: &Map<String, Value>, at: &str) -> Result<Matcher, DefinitionError> {
    let event =
        match (o.get("event"), o.get("type")) {
            (Some(Value::String(name)), None) if (1..=200).contains(&name.len()) => {
                EventKind::Named(name.clone())
            }
            (None, Some(Value::String(t))) if EVENT_TYPES.contains(&t.as_str()) => {
                EventKind::Type(t.clone())
            }
            (None, Some(_)) => {
                return refuse(
                    &[at, ".type"].concat(),
                    format!("an event type: one of {}", EVENT_TYPES.join(", ")),
                )
            }
            (Some(_), None) => {
                return refuse(
                    &[at, ".event"].concat(),
                    "an event name of 1 to 200 characters",
                )
            }
            _ => return refuse(
                at,
                "name the events: \"event\": \"Order Completed\", or \"type\": \"page\" (not both)",
            ),
        };
    let texts: Vec<&Value> = match o.get("where") {
        None => Vec::new(),
        Some(Value::String(_)) => o.get("where").into_iter().collect(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(_) => {
            return refuse(
                &[at, ".where"].concat(),
                "a list of filters, e.g. [\"properties.total>100\"]",
            )
        }
    };
    if texts.len() > MAX_FILTERS {
        return refuse(
            &[at, ".where"].concat(),
            format!("at most {MAX_FILTERS} filters"),
        );
    }
    let mut filters = Vec::new();
    for (i, text) in texts.into_iter().enumerate() {
        let here = format!("{at}.where[{i}]");
        let Some(text) = text.as_str() else {
            return refuse(&here, "a filter is a text, e.g. \"properties.total>100\"");
        };
        filters.push(search::parse_event_filter(text).or_else(|e| refuse(&here, e.0))?);
    }
    Ok(Matcher { event, filters })
}

fn duration(value: &Value, at: &str) -> Result<i64, DefinitionError> {
    match value.as_str().and_then(parse_duration) {
        Some(ms) if ms <= MAX_WINDOW_MS => Ok(ms),
        Some(_) => refuse(at, "at most 400 days"),
        None => refuse(
            at,
            "a duration: a whole number and s, m, h, d or w, e.g. \"30s\", \"15m\", \"1h\", \"30d\"",
        ),
    }
}

fn between(value: &Value, at: &str) -> Result<Window, DefinitionError> {
    let times: Option<Vec<i64>> = value.as_array().filter(|a| a.len() == 2).and_then(|a| {
        a.iter()
            .map(|t| t.as_str().and_then(crate::time::parse_rfc3339))
            .collect()
    });
    match times.as_deref() {
        Some([from, to]) if from <= to => Ok(Window::Between(*from, *to)),
        Some(_) => refuse(at, "the first time comes before the second"),
        None => refuse(
            at,
            "two ISO 8601 times, e.g. [\"2026-11-01T00:00:00Z\", \"2026-12-01T00:00:00Z\"]",
        ),
    }
}

fn aggregate(o: &Map<String, Value>, at: &str) -> Result<Option<Aggregate>, DefinitionError> {
    let (spec, here) =
        match o.get("aggregate") {
            Some(Value::Object(inner)) => (inner, [at, ".aggregate"].concat()),
            Some(_) => return refuse(
                &[at, ".aggregate"].concat(),
                "an object such as {\"sum\": \"properties.total\", \"op\": \">\", \"value\": 200}",
            ),
            None => (o, at.to_owned()),
        };
    let folds: Vec<(Fold, &str, &Value)> = [
        (Fold::Sum, "sum"),
        (Fold::Avg, "avg"),
        (Fold::Min, "min"),
        (Fold::Max, "max"),
    ]
    .into_iter()
    .filter_map(|(f, k)| spec.get(k).map(|v| (f, k, v)))
    .collect();
    let (fold, name, field) = match folds.as_slice() {
        [] if spec.contains_key("op") || spec.contains_key("value") => {
            return refuse(
                &here,
                "op and value compare an aggregate: give sum, avg, min or max too",
            )
        }
        [] => return Ok(None),
        [one] => *one,
        _ => return refuse(&here, "give one of sum, avg, min and max"),
    };
    let field_at = [here.as_str(), ".", name].concat();
    let Some((group, key)) = field
        .as_str()
        .and_then(|f| f.split_once('.'))
        .filter(|(g, k)| matches!(*g, "properties" | "context") && !k.is_empty())
    else {
        return refuse(&field_at, "an event field, e.g. \"properties.total\"");
    };
    let op = match spec.get("op").and_then(Value::as_str) {
        Some("=") => search::Op::Eq,
        Some("!=") => search::Op::Ne,
        Some(">") => search::Op::Gt,
        Some(">=") => search::Op::Ge,
        Some("<") => search::Op::Lt,
        Some("<=") => search::Op::Le,
        _ => return refuse(&[here.as_str(), ".op"].concat(), "one of = != > >= < <="),
    };
    let Some(value) = spec.get("value").and_then(Value::as_f64) else {
        return refuse(&[here.as_str(), ".value"].concat(), "a number");
    };
    Ok(Some(Aggregate {
        fold,
        field: (group.to_owned(), key.to_owned()),
        op,
        value,
    }))
}

fn then(value: &Value, at: &str, did: bool) -> Result<Then, DefinitionError> {
    let Some(o) = value.as_object() else {
        return refuse(
            at,
            "an object such as {\"event\": \"Order Completed\", \"within\": \"1h\"}",
        );
    };
    for field in o.keys() {
        if !matches!(field.as_str(), "event" | "type" | "where" | "within") {
            return refuse(
                &[at, ".", field].concat(),
                "unknown field; a follow-up has event or type, where and within",
            );
        }
    }
    let Some(within) = o.get("within") else {
        return refuse(
            at,
            "give within: how long after the event the follow-up counts",
        );
    };
    Ok(Then {
        did,
        matcher: matcher(o, at)?,
        within: duration(within, &[at, ".within"].concat())?,
    })
}
