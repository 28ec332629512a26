//! Catalog data: items (products, content, …) imported with a field [`mapping`], and the
//! enrichment rule that gives an event naming an item the item's fields it did not send.
//!
//! Not yet wired into the Worker: the catalog API, feeds and the consumer's lookup are the
//! rest of issue #18.

pub mod mapping;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

/// The product ids an event names, where the e-commerce spec puts them
/// (`properties.product_id` and `properties.products[].product_id`): what the consumer
/// looks up, once per delivery.
pub fn product_ids(body: &Map<String, Value>) -> Vec<String> {
    let Some(props) = body.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = props
        .get("product_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .into_iter()
        .collect();
    for line in props
        .get("products")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(id) = line.get("product_id").and_then(Value::as_str) {
            ids.push(id.to_owned());
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Fills an object naming item `id` with the item's fields it lacks (what the client sent
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

/// Enriches an event from the products `lookup` finds: the fields each named product has
/// and the event lacks are added, and `context.catalog.filled` lists their paths, so an
/// analyst can tell them from what the client sent. Returns whether anything was added.
pub fn enrich(
    body: &mut Map<String, Value>,
    lookup: impl Fn(&str) -> Option<Map<String, Value>>,
) -> bool {
    let mut filled = Vec::new();
    if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
        if let Some(item) = props
            .get("product_id")
            .and_then(Value::as_str)
            .and_then(&lookup)
        {
            filled.extend(fill(props, &item, "properties."));
        }
        if let Some(lines) = props.get_mut("products").and_then(Value::as_array_mut) {
            for (i, line) in lines.iter_mut().enumerate() {
                let Some(line) = line.as_object_mut() else {
                    continue;
                };
                if let Some(item) = line
                    .get("product_id")
                    .and_then(Value::as_str)
                    .and_then(&lookup)
                {
                    filled.extend(fill(line, &item, &format!("properties.products[{i}].")));
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
        context.insert("catalog".into(), serde_json::json!({"filled": filled}));
    }
    true
}
