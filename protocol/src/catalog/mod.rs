//! Catalog data: items (products, content, users, …) imported from files through a
//! field [`mapping`], and the enrichment rule that gives an event naming an item the
//! item's fields it did not send. The Worker's `catalog` module stores items, pulls feeds
//! and looks up, once per delivery, the items its isolate does not remember ([`cache`]);
//! everything it decides is here.

pub mod cache;
pub mod feed;
pub mod kind;
pub mod mapping;
#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

use crate::import::{self, RowError};
use kind::{ItemField, Kind};

/// An id as an event may write it: a text, or a number (`123` names item `"123"`).
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The objects under `properties` that `field` reads an id from.
fn holders<'a>(props: &'a Map<String, Value>, field: &ItemField) -> Vec<&'a Map<String, Value>> {
    match &field.list {
        None => vec![props],
        Some(list) => props
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .collect(),
    }
}

/// The `(kind, id)` of every item an event names, by the kinds' item fields: what the
/// consumer looks up, once per delivery for all its events.
pub fn named(body: &Map<String, Value>, kinds: &[Kind]) -> Vec<(String, String)> {
    let Some(props) = body.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for kind in kinds {
        for field in &kind.item_fields {
            for holder in holders(props, field) {
                if let Some(id) = holder.get(&field.name).and_then(id_text) {
                    found.push((kind.name.clone(), id));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Fills an object naming an item with the item's fields it lacks (what the client sent
/// always wins); the paths filled, under `at`.
fn fill(target: &mut Map<String, Value>, item: &Map<String, Value>, at: &str) -> Vec<String> {
    let mut filled = Vec::new();
    for (key, value) in item.iter().filter(|(k, _)| k.as_str() != "id") {
        let absent = target
            .get(key)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""));
        if absent {
            target.insert(key.clone(), value.clone());
            filled.push([at, key].concat());
        }
    }
    filled
}

/// Enriches an event from the items `lookup(kind, id)` finds: the fields each named item
/// has and the event lacks are added, and `context.catalog.filled` lists their paths, so
/// an analyst can tell them from what the client sent. Returns whether anything was added.
pub fn enrich(
    body: &mut Map<String, Value>,
    kinds: &[Kind],
    lookup: impl Fn(&str, &str) -> Option<Map<String, Value>>,
) -> bool {
    let mut filled = Vec::new();
    if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
        for kind in kinds {
            for field in &kind.item_fields {
                let found = |holder: &Map<String, Value>| {
                    holder
                        .get(&field.name)
                        .and_then(id_text)
                        .and_then(|id| lookup(&kind.name, &id))
                };
                match &field.list {
                    None => {
                        if let Some(item) = found(props) {
                            filled.extend(fill(props, &item, "properties."));
                        }
                    }
                    Some(list) => {
                        let lines = props.get_mut(list).and_then(Value::as_array_mut);
                        for (i, line) in lines.into_iter().flatten().enumerate() {
                            let Some(line) = line.as_object_mut() else {
                                continue;
                            };
                            if let Some(item) = found(line) {
                                let at = format!("properties.{list}[{i}].");
                                filled.extend(fill(line, &item, &at));
                            }
                        }
                    }
                }
            }
        }
    }
    if filled.is_empty() {
        return false;
    }
    let context = body
        .entry("context")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(context) = context.as_object_mut() {
        context.insert("catalog".into(), json!({"filled": filled}));
    }
    true
}

/// The items of a file, and the rows refused.
#[derive(Debug, Default)]
pub struct Read {
    /// Items in file order; an id given twice keeps its last row.
    pub items: Vec<Map<String, Value>>,
    /// Rows that are not items, by line.
    pub errors: Vec<RowError>,
}

/// Reads a file of `kind` (CSV when `csv`, else NDJSON) into items.
pub fn read(text: &str, csv: bool, kind: &Kind) -> Read {
    let mut out = Read::default();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (line, row) in import::rows(text, csv) {
        match row.and_then(|row| kind.item_of(&row)) {
            Ok(item) => {
                let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
                match at.get(id) {
                    Some(&i) => out.items[i] = item,
                    None => {
                        at.insert(id.to_owned(), out.items.len());
                        out.items.push(item);
                    }
                }
            }
            Err(reason) => out.errors.push(RowError { line, reason }),
        }
    }
    out
}

/// Splits items into chunks of at most `max_bytes` of JSON each (one item over it is a
/// chunk of its own), in order: what one queue message carries.
pub fn chunks(items: Vec<Map<String, Value>>, max_bytes: usize) -> Vec<Vec<Map<String, Value>>> {
    let mut out: Vec<Vec<Map<String, Value>>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = serde_json::to_string(&item).map_or(0, |s| s.len()) + 1;
        if out.is_empty() || (bytes + size > max_bytes && out.last().is_some_and(|c| !c.is_empty()))
        {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(last) = out.last_mut() {
            last.push(item);
        }
    }
    out
}

/// The identify call a `users` item becomes: `userId` its id, its other fields traits.
/// The `messageId` is derived from the id and the traits, so a file or feed read twice
/// stores nothing twice, and a changed row is a new call.
pub fn identify_of(item: &Map<String, Value>) -> Option<Value> {
    let id = item.get("id").and_then(Value::as_str)?;
    let traits: Map<String, Value> = item
        .iter()
        .filter(|(k, _)| k.as_str() != "id")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let traits = Value::Object(traits);
    let digest = crate::hash::fnv1a(
        traits.to_string().as_bytes(),
        crate::hash::fnv1a(id.as_bytes(), crate::hash::FNV_OFFSET),
    );
    Some(json!({
        "type": "identify",
        "userId": id,
        "traits": traits,
        "messageId": format!("catalog-users-{digest:016x}"),
        "context": {"catalog": {"kind": "users"}},
    }))
}
