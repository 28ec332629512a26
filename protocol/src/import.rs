//! Offline data (`POST /v1/import`): rows of customers and orders from a POS or CRM, as
//! NDJSON or CSV, turned into `identify` and `Order Completed` events for the same pipeline.
//!
//! Each row becomes one event whose `messageId` is derived from the row's key
//! (`customer:<id>` or `order:<order_id>`), so importing a file twice stores it once.
//! A bad row gets its line number and a reason; the good rows of the file are kept.

use serde_json::{json, Map, Value};

/// Rows as read, by 1-based line: a field map, or why the line is not a row.
pub type Rows = Vec<(usize, Result<Map<String, Value>, String>)>;

/// One row refused, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file (for CSV, the header is line 1).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// The events made from a file, and the rows refused.
#[derive(Debug, Default)]
pub struct Imported {
    /// Segment-format events, ready for validation.
    pub events: Vec<Value>,
    /// Rows that could not become an event.
    pub errors: Vec<RowError>,
}

/// Reads `text` as CSV when `csv`, else NDJSON.
pub fn read(text: &str, csv: bool) -> Imported {
    let mut out = Imported::default();
    for (line, row) in rows(text, csv) {
        match row.and_then(|row| event_of(&row)) {
            Ok(event) => out.events.push(event),
            Err(reason) => out.errors.push(RowError { line, reason }),
        }
    }
    out
}

/// The rows of a file, CSV (with a header row) when `csv`, else NDJSON; CSV values are
/// texts, empty ones left out.
pub fn rows(text: &str, csv: bool) -> Rows {
    if csv {
        csv_rows(text)
    } else {
        ndjson_rows(text)
    }
}

fn ndjson_rows(text: &str) -> Rows {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let row = match serde_json::from_str::<Value>(l) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err("a row must be a JSON object".to_owned()),
                Err(e) => Err(format!("not JSON: {e}")),
            };
            (i + 1, row)
        })
        .collect()
}

/// Rows of a CSV file with a header row (RFC 4180: quoted fields may hold commas, quotes
/// and newlines), each by the line it starts on.
fn csv_rows(text: &str) -> Rows {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let names: Vec<String> = match reader.headers() {
        Ok(names) => names.iter().map(|n| n.trim().to_owned()).collect(),
        Err(e) => return vec![(1, Err(format!("header: {e}")))],
    };
    if names.iter().all(String::is_empty) {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let row = match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line() as usize);
                let row = if record.len() == names.len() {
                    Ok(names
                        .iter()
                        .zip(record.iter())
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(n, v)| (n.clone(), Value::String(v.to_owned())))
                        .collect())
                } else {
                    Err(format!(
                        "{} fields, the header has {}",
                        record.len(),
                        names.len()
                    ))
                };
                (line, row)
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                (line, Err(format!("not CSV: {e}")))
            }
        };
        rows.push(row);
    }
    rows
}

fn text(row: &Map<String, Value>, key: &str) -> Option<String> {
    match row.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(row: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| format!("{key} {s:?} is not a number")),
        Some(_) => Err(format!("{key} must be a number")),
    }
}

/// Columns that make the event rather than traits of the person.
const RESERVED: [&str; 9] = [
    "user_id",
    "userId",
    "timestamp",
    "date",
    "order_id",
    "total",
    "revenue",
    "currency",
    "products",
];

/// Columns about the person that an order row carries along.
const PERSON: [&str; 7] = [
    "email",
    "phone",
    "name",
    "first_name",
    "last_name",
    "city",
    "country",
];

/// Turns a row into an event: a row with `order_id` is an order, any other a customer.
/// Identifiers: `user_id`, `email`, `phone`; at least one is needed. A customer's other
/// columns become traits.
fn event_of(row: &Map<String, Value>) -> Result<Value, String> {
    let user_id = text(row, "user_id").or_else(|| text(row, "userId"));
    let email = text(row, "email");
    let phone = text(row, "phone");
    let person = user_id
        .clone()
        .or_else(|| email.clone())
        .or_else(|| phone.clone())
        .ok_or("a row needs user_id, email or phone")?;
    let timestamp = text(row, "timestamp").or_else(|| text(row, "date"));
    if let Some(t) = &timestamp {
        if crate::time::parse_rfc3339(t).is_none() {
            return Err(format!("timestamp {t:?} is not an ISO 8601 date-time"));
        }
    }
    // The anonymousId slot carries the person for rows without a user id, so the event is
    // valid and its email or phone links it to the right profile.
    // A customer row's other columns are its traits (`plan`, `tier`, …); an order row
    // carries only the person's identifiers and names.
    let is_order = text(row, "order_id").is_some();
    let traits: Map<String, Value> = row
        .iter()
        .filter(|(key, _)| !RESERVED.contains(&key.as_str()))
        .filter(|(key, _)| !is_order || PERSON.contains(&key.as_str()))
        .filter_map(|(key, _)| Some((key.clone(), Value::String(text(row, key)?))))
        .collect();
    let mut event = match text(row, "order_id") {
        Some(order_id) => {
            let total = number(row, "total")?
                .or(number(row, "revenue")?)
                .ok_or("an order needs a total")?;
            let mut props = json!({"order_id": order_id, "total": total, "revenue": total});
            if let Some(currency) = text(row, "currency") {
                props["currency"] = Value::String(currency);
            }
            if let Some(products) = row.get("products").filter(|p| p.is_array()) {
                props["products"] = products.clone();
            }
            json!({"type": "track", "event": "Order Completed", "messageId": format!("import-order:{order_id}"),
                   "properties": props, "context": {"traits": traits, "source": "import"}})
        }
        None => {
            json!({"type": "identify", "messageId": format!("import-customer:{person}"), "traits": traits,
                       "context": {"source": "import"}})
        }
    };
    match user_id {
        Some(id) => event["userId"] = Value::String(id),
        None => event["anonymousId"] = Value::String(["import:", &person].concat()),
    }
    if let Some(t) = timestamp {
        event["timestamp"] = Value::String(t);
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_customers_and_orders_from_csv() {
        let csv = "user_id,email,name,order_id,total,currency,timestamp\n\
                   u1,Ada@Example.com,\"Lovelace, Ada\",,,,2026-01-01T00:00:00Z\n\
                   u1,,,O-9,120.5,EUR,2026-01-02T00:00:00Z\n\
                   ,,,O-10,5,EUR,\n\
                   u2,,,O-11,lots,EUR,\n\
                   u3,\"broken\n";
        let out = read(csv, true);
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.events[0]["type"], "identify");
        assert_eq!(out.events[0]["traits"]["name"], "Lovelace, Ada");
        assert_eq!(out.events[0]["messageId"], "import-customer:u1");
        assert_eq!(out.events[1]["properties"]["total"], 120.5);
        assert_eq!(out.events[1]["messageId"], "import-order:O-9");
        let lines: Vec<usize> = out.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6]);
        assert!(out.errors[1].reason.contains("not a number"));
    }

    #[test]
    fn a_quoted_field_may_hold_newlines_quotes_and_crlf_line_ends() {
        let csv = "user_id,address,note\r\nu1,\"1 Main St\r\nSpringfield\",\"said \"\"hi\"\"\"\r\nu2,x,y\r\n";
        let out = read(csv, true);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(
            out.events[0]["traits"]["address"],
            "1 Main St\r\nSpringfield"
        );
        assert_eq!(out.events[0]["traits"]["note"], "said \"hi\"");
        assert_eq!(out.events[1]["userId"], "u2");
        let bad = read("user_id,plan\nu1,\"a\nb\",extra\nu2,gold\n", true);
        assert_eq!(bad.events.len(), 1);
        assert_eq!(bad.errors[0].line, 2, "the line the row starts on");
    }

    #[test]
    fn an_amount_that_is_not_a_number_is_a_row_error() {
        let out = read(
            "user_id,order_id,total\nu1,O-1,NaN\nu1,O-2,Infinity\n",
            true,
        );
        assert!(out.events.is_empty());
        assert_eq!(out.errors.len(), 2);
    }

    #[test]
    fn reads_ndjson_and_reports_bad_lines() {
        let ndjson = "{\"email\":\"b@example.com\",\"order_id\":\"P-1\",\"total\":9}\n\nnot json\n[1]\n{\"name\":\"nobody\"}\n";
        let out = read(ndjson, false);
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0]["anonymousId"], "import:b@example.com");
        assert_eq!(out.events[0]["context"]["traits"]["email"], "b@example.com");
        let lines: Vec<usize> = out.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5]);
    }

    #[test]
    fn a_customers_other_columns_are_traits_and_an_orders_are_not() {
        let csv = "user_id,plan,order_id,total,name\nu1,gold,,,Ada\nu1,gold,O-1,5,Ada\n";
        let out = read(csv, true);
        assert_eq!(out.events[0]["traits"]["plan"], "gold");
        assert_eq!(out.events[0]["traits"]["name"], "Ada");
        assert!(out.events[0]["traits"].get("user_id").is_none());
        assert!(out.events[1]["context"]["traits"].get("plan").is_none());
        assert_eq!(out.events[1]["context"]["traits"]["name"], "Ada");
    }
}
