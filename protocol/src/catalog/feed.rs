//! A catalog feed: a file a shop publishes at a URL, pulled on a cron schedule (the same
//! Cron Trigger as the scheduled exports) and by hand, into one kind.

use serde_json::Value;

use super::kind::{self, Kind};
use super::mapping::Mapping;
use crate::audience::definition::valid_key;
use crate::audience::DefinitionError;
use crate::destination::check_address;
use crate::export::{refuse, Cron};

/// A checked feed definition.
#[derive(Debug, Clone)]
pub struct Feed {
    /// Its key, as in `/v1/catalog/feeds/{key}`.
    pub key: String,
    /// The kind its items are.
    pub kind: String,
    /// Where the file is.
    pub url: String,
    /// CSV (with a header row) when true, else NDJSON.
    pub csv: bool,
    /// When it is pulled; `None`: only by hand.
    pub schedule: Option<Cron>,
    /// How its rows become items, instead of the kind's.
    pub mapping: Option<Mapping>,
    /// Whether a pull removes the items the file no longer has.
    pub replace: bool,
}

impl Feed {
    /// The kind a pull reads rows as: `kind` with the feed's own mapping, if it has one.
    pub fn applied_to(&self, mut kind: Kind) -> Kind {
        if self.mapping.is_some() {
            kind.mapping.clone_from(&self.mapping);
        }
        kind
    }
}

const KNOWN: [&str; 8] = [
    "key", "kind", "url", "format", "schedule", "mapping", "replace", "name",
];

/// Checks a feed definition. `development` allows `http://` to the machine itself (a
/// local server); otherwise the URL must be https to a public address.
pub fn parse(value: &Value, development: bool) -> Result<Feed, DefinitionError> {
    let Some(o) = value.as_object() else {
        return refuse(
            "",
            "a feed is a JSON object with key, kind, url, format and schedule",
        );
    };
    if let Some(field) = o.keys().find(|f| {
        !KNOWN.contains(&f.as_str()) && !matches!(f.as_str(), "createdAt" | "updatedAt" | "lastRun")
    }) {
        return refuse(
            field,
            format!("unknown field; a feed has {}", KNOWN.join(", ")),
        );
    }
    let key = match o.get("key") {
        Some(Value::String(k)) if valid_key(k) => k.clone(),
        _ => return refuse("key", "give a key of 1 to 64 characters a-z, 0-9 and _"),
    };
    let kind =
        match o.get("kind").and_then(Value::as_str) {
            Some(k) if kind::name_ok(k) => k.to_owned(),
            _ => return refuse(
                "kind",
                "the kind its items are: products, content, users or one the workspace declares",
            ),
        };
    let url = o.get("url").and_then(Value::as_str).unwrap_or_default();
    check_address(url, development, "a feed").or_else(|m| refuse("url", m))?;
    let csv = match o.get("format").and_then(Value::as_str) {
        Some("csv") => true,
        Some("ndjson") => false,
        _ => return refuse("format", "csv or ndjson"),
    };
    let schedule = match o.get("schedule") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(Cron::parse(text).or_else(|m| refuse("schedule", m))?),
        Some(_) => {
            return refuse(
                "schedule",
                "a cron schedule, e.g. \"*/30 * * * *\" (minute hour day month weekday, UTC)",
            )
        }
    };
    let mapping = match o.get("mapping") {
        None | Some(Value::Null) => None,
        Some(m) => Some(Mapping::parse(m).or_else(|e| refuse("mapping", e))?),
    };
    let replace = match o.get("replace") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return refuse("replace", "true or false"),
    };
    Ok(Feed {
        key,
        kind,
        url: url.to_owned(),
        csv,
        schedule,
        mapping,
        replace,
    })
}
