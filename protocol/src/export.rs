//! Scheduled exports: an audience's (or a segment group's) members written to a file on a
//! cron schedule. The definition, the schedule and the rows are decided here; the Worker
//! pages the members and writes to R2.

use serde_json::{Map, Value};

use crate::audience::definition::valid_key;
use crate::audience::DefinitionError;

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row, RFC 4180 quoting.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    /// The file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv.gz",
            Self::Ndjson => "ndjson.gz",
        }
    }
}

/// A checked export.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// `[a-z0-9_]{1,64}`.
    pub key: String,
    /// The audience whose members it writes (or none: a group's).
    pub audience: Option<String>,
    /// The segment group whose audiences' members it writes.
    pub group: Option<String>,
    /// CSV or NDJSON, gzip.
    pub format: Format,
    /// The columns, `identifiers.<kind>`, `traits.<key>` or `computed.<name>`.
    pub fields: Vec<String>,
    /// The consent category a person must have granted to be written.
    pub consent: Option<String>,
    /// When it runs.
    pub schedule: Cron,
}

pub(crate) fn refuse<T>(at: &str, message: impl Into<String>) -> Result<T, DefinitionError> {
    Err(DefinitionError {
        at: at.to_owned(),
        message: message.into(),
    })
}

/// Checks an export definition.
pub fn parse(value: &Value) -> Result<Export, DefinitionError> {
    let Some(o) = value.as_object() else {
        return refuse(
            "",
            "an export is a JSON object with key, audience (or group), format, fields and schedule",
        );
    };
    const KNOWN: [&str; 8] = [
        "key", "audience", "group", "format", "fields", "consent", "schedule", "name",
    ];
    for field in o.keys() {
        if !KNOWN.contains(&field.as_str())
            && !matches!(
                field.as_str(),
                "createdAt" | "updatedAt" | "lastRun" | "nextRunAt"
            )
        {
            return refuse(
                field,
                format!("unknown field; an export has {}", KNOWN.join(", ")),
            );
        }
    }
    let key = match o.get("key") {
        Some(Value::String(k)) if valid_key(k) => k.clone(),
        _ => return refuse("key", "give a key of 1 to 64 characters a-z, 0-9 and _"),
    };
    let name = |field: &str| -> Result<Option<String>, DefinitionError> {
        match o.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(k)) if valid_key(k) => Ok(Some(k.clone())),
            Some(_) => refuse(field, "a key: 1 to 64 characters a-z, 0-9 and _"),
        }
    };
    let (audience, group) = (name("audience")?, name("group")?);
    if audience.is_some() == group.is_some() {
        return refuse(
            "audience",
            "name one audience, or one segment group (not both)",
        );
    }
    let format = match o.get("format").and_then(Value::as_str) {
        None | Some("csv") => Format::Csv,
        Some("ndjson") => Format::Ndjson,
        Some(_) => return refuse("format", "csv or ndjson"),
    };
    let mut fields = Vec::new();
    match o.get("fields") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= 50 => {
            for (i, f) in items.iter().enumerate() {
                match f.as_str().and_then(|f| f.split_once('.')) {
                    Some(("identifiers" | "traits" | "computed", k)) if !k.is_empty() => {
                        fields.push(f.as_str().unwrap_or_default().to_owned());
                    }
                    _ => {
                        return refuse(
                            &format!("fields[{i}]"),
                            "identifiers.<kind>, traits.<key> or computed.<name>",
                        )
                    }
                }
            }
        }
        _ => {
            return refuse(
                "fields",
                "a list of 1 to 50 fields, e.g. [\"identifiers.email\", \"computed.totalRevenue\"]",
            )
        }
    }
    let consent = name("consent")?;
    let schedule = match o.get("schedule").and_then(Value::as_str) {
        Some(text) => Cron::parse(text).or_else(|m| refuse("schedule", m))?,
        None => {
            return refuse(
                "schedule",
                "a cron schedule, e.g. \"0 6 * * 1\" (minute hour day month weekday, UTC)",
            )
        }
    };
    Ok(Export {
        key,
        audience,
        group,
        format,
        fields,
        consent,
        schedule,
    })
}

/// A five-field cron schedule (minute, hour, day of month, month, day of week; UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    fields: [Vec<u32>; 5],
    /// Whether day of month and day of week were both restricted (then either matches,
    /// as cron has it).
    either_day: bool,
}

const RANGES: [(u32, u32, &str); 5] = [
    (0, 59, "minute"),
    (0, 23, "hour"),
    (1, 31, "day of month"),
    (1, 12, "month"),
    (0, 6, "day of week"),
];

impl Cron {
    /// Parses `*`, `*/n`, `a`, `a-b`, `a-b/n` and lists of them, per field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "{text:?}: five fields, minute hour day month weekday (UTC), e.g. \"*/30 * * * *\""
            ));
        }
        let mut fields: [Vec<u32>; 5] = Default::default();
        for (i, part) in parts.iter().enumerate() {
            let (lo, hi, name) = RANGES[i];
            let mut values = Vec::new();
            for item in part.split(',') {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => (
                        r,
                        s.parse::<u32>()
                            .ok()
                            .filter(|s| *s > 0)
                            .ok_or(format!("{name}: a bad step in {item:?}"))?,
                    ),
                    None => (item, 1),
                };
                let (a, b) = match range {
                    "*" => (lo, hi),
                    r => match r.split_once('-') {
                        Some((a, b)) => (num(a, name)?, num(b, name)?),
                        None => {
                            let a = num(r, name)?;
                            (a, if item.contains('/') { hi } else { a })
                        }
                    },
                };
                // Sunday is 0, and 7 too.
                let (a, b) = if i == 4 { (a.min(7) % 8, b) } else { (a, b) };
                if a < lo || b > hi.max(if i == 4 { 7 } else { hi }) || a > b {
                    return Err(format!("{name}: {item:?} is outside {lo}-{hi}"));
                }
                values.extend(
                    (a..=b)
                        .step_by(step as usize)
                        .map(|v| if i == 4 { v % 7 } else { v }),
                );
            }
            values.sort_unstable();
            values.dedup();
            fields[i] = values;
        }
        let either_day = parts[2] != "*" && parts[4] != "*";
        Ok(Self { fields, either_day })
    }

    /// Whether the schedule fires in the minute that starts at `minute_ms` (UTC).
    pub fn fires_at(&self, minute_ms: i64) -> bool {
        let (minute, hour, day, month, weekday) = calendar(minute_ms);
        let has = |i: usize, v: u32| self.fields[i].contains(&v);
        let day_ok = if self.either_day {
            has(2, day) || has(4, weekday)
        } else {
            has(2, day) && has(4, weekday)
        };
        has(0, minute) && has(1, hour) && has(3, month) && day_ok
    }

    /// The first minute after `after_ms` at which it fires (looking a year ahead).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = after_ms - after_ms.rem_euclid(60_000) + 60_000;
        (0..366 * 24 * 60)
            .map(|m| start + m * 60_000)
            .find(|t| self.fires_at(*t))
    }
}

fn num(text: &str, name: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| format!("{name}: {text:?} is not a number"))
}

/// (minute, hour, day of month, month, day of week with Sunday 0) of a UTC instant.
fn calendar(ms: i64) -> (u32, u32, u32, u32, u32) {
    let days = ms.div_euclid(86_400_000);
    let of_day = ms.rem_euclid(86_400_000) / 60_000;
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7) as u32;
    let (_, month, day) = crate::time::civil_from_days(days);
    let (month, day) = (month as u32, day as u32);
    (
        (of_day % 60) as u32,
        (of_day / 60) as u32,
        day,
        month,
        weekday,
    )
}

/// One field of a directory entry (`{"identifiers": {"email": [...]}, "traits": …,
/// "computed": …}`): identifiers joined by `;`.
pub fn field_value(doc: &Value, field: &str) -> Value {
    let Some((group, key)) = field.split_once('.') else {
        return Value::Null;
    };
    match doc.get(group).and_then(|g| g.get(key)) {
        Some(Value::Array(items)) if group == "identifiers" => Value::String(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(";"),
        ),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

/// Whether the person granted `consent` (none asked: yes).
fn consented(doc: &Value, consent: Option<&str>) -> bool {
    consent.is_none_or(|c| {
        doc.pointer(&format!("/computed/consent/{c}"))
            .and_then(Value::as_bool)
            == Some(true)
    })
}

/// One page of a file: its text, and the profiles it holds (one row each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    /// The rows, in the export's format.
    pub text: String,
    /// The profile of each row, in order.
    pub profiles: Vec<String>,
}

/// The rows of one page of members who consented, in `format`, with the CSV header first
/// when `header`.
pub fn rows(export: &Export, docs: &[Value], header: bool) -> Rows {
    let kept: Vec<&Value> = docs
        .iter()
        .filter(|d| consented(d, export.consent.as_deref()))
        .collect();
    let profiles = kept
        .iter()
        .map(|d| {
            d.get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let text = match export.format {
        Format::Ndjson => kept
            .iter()
            .map(|doc| {
                let mut row = Map::new();
                row.insert(
                    "profileId".into(),
                    doc.get("id").cloned().unwrap_or(Value::Null),
                );
                for f in &export.fields {
                    row.insert(f.clone(), field_value(doc, f));
                }
                [Value::Object(row).to_string(), "\n".into()].concat()
            })
            .collect(),
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            let text = |v: Value| match v {
                Value::Null => String::new(),
                Value::String(s) => s,
                other => other.to_string(),
            };
            if header {
                let mut head = vec!["profileId".to_owned()];
                head.extend(export.fields.iter().cloned());
                let _ = writer.write_record(&head);
            }
            for doc in kept {
                let mut record = vec![text(doc.get("id").cloned().unwrap_or(Value::Null))];
                record.extend(export.fields.iter().map(|f| text(field_value(doc, f))));
                let _ = writer.write_record(&record);
            }
            String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
        }
    };
    Rows { text, profiles }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MINUTE: i64 = 60_000;
    /// 2026-12-07T06:00:00Z, a Monday.
    const MONDAY_6: i64 = 1_796_623_200_000;

    #[test]
    fn the_calendar_is_right() {
        assert_eq!(calendar(0), (0, 0, 1, 1, 4));
        assert_eq!(calendar(MONDAY_6), (0, 6, 7, 12, 1));
        assert_eq!(
            calendar(951_782_400_000),
            (0, 0, 29, 2, 2),
            "2000-02-29, a Tuesday"
        );
    }

    #[test]
    fn cron_fires_when_it_says() {
        let weekly = Cron::parse("0 6 * * 1").unwrap();
        assert!(weekly.fires_at(MONDAY_6));
        assert!(!weekly.fires_at(MONDAY_6 + MINUTE));
        assert_eq!(weekly.next_after(MONDAY_6), Some(MONDAY_6 + 7 * 86_400_000));
        let half_hourly = Cron::parse("*/30 * * * *").unwrap();
        assert!(half_hourly.fires_at(MONDAY_6 + 30 * MINUTE));
        assert!(!half_hourly.fires_at(MONDAY_6 + 31 * MINUTE));
        let twice_daily = Cron::parse("0 */12 * * *").unwrap();
        assert!(twice_daily.fires_at(MONDAY_6 + 6 * 60 * MINUTE));
        assert!(!twice_daily.fires_at(MONDAY_6));
        assert!(Cron::parse("15 9 1,15 * *")
            .unwrap()
            .fires_at(MONDAY_6 - 6 * 86_400_000 + 195 * MINUTE));
        assert!(
            Cron::parse("0 6 * * 7")
                .unwrap()
                .fires_at(MONDAY_6 - 86_400_000),
            "7 is Sunday too"
        );
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "a * * * *",
            "5-1 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exports_are_checked_naming_the_place() {
        let ok = json!({"key": "vip_weekly", "audience": "big_spenders", "format": "csv",
            "fields": ["identifiers.email", "computed.totalRevenue"], "consent": "marketing", "schedule": "0 6 * * 1"});
        assert!(parse(&ok).is_ok());
        for (change, at) in [
            (json!({"format": "xlsx"}), "format"),
            (json!({"schedule": "every monday"}), "schedule"),
            (json!({"fields": ["email"]}), "fields[0]"),
            (json!({"group": "shop"}), "audience"),
            (json!({"key": "Bad"}), "key"),
        ] {
            let mut d = ok.clone();
            for (k, v) in change.as_object().unwrap() {
                d[k] = v.clone();
            }
            assert_eq!(parse(&d).unwrap_err().at, at, "{change}");
        }
    }

    #[test]
    fn rows_hold_the_fields_of_consenting_members() {
        let export = parse(&json!({"key": "e", "audience": "a", "fields": ["identifiers.email", "computed.totalRevenue", "traits.name"],
            "consent": "marketing", "schedule": "* * * * *"})).unwrap();
        let docs = [
            json!({"id": "p1", "identifiers": {"email": ["a@example.com", "b@example.com"]}, "traits": {"name": "Ada, \"A\""},
                   "computed": {"totalRevenue": 12.5, "consent": {"marketing": true}}}),
            json!({"id": "p2", "identifiers": {"email": ["c@example.com"]}, "computed": {"consent": {"marketing": false}}}),
        ];
        assert_eq!(rows(&export, &docs, true).text,
            "profileId,identifiers.email,computed.totalRevenue,traits.name\np1,a@example.com;b@example.com,12.5,\"Ada, \"\"A\"\"\"\n");
        assert_eq!(rows(&export, &docs, true).profiles, ["p1"]);
        let nd = Export {
            format: Format::Ndjson,
            consent: None,
            ..export
        };
        let lines = rows(&nd, &docs, false).text;
        assert_eq!(lines.lines().count(), 2);
        let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        assert_eq!(
            first,
            json!({"profileId": "p1", "identifiers.email": "a@example.com;b@example.com",
            "computed.totalRevenue": 12.5, "traits.name": "Ada, \"A\""})
        );
    }
}
