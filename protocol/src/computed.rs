//! Computed traits: what a profile's events add up to (first and last seen, visits,
//! sessions, orders, revenue, favourite products, the cart now and whether it was
//! abandoned).
//!
//! Computed from the profile's set of events ordered by event time, never by arrival, so
//! duplicates (stored once) and late events give the same result as a perfect stream.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::time::{format_rfc3339, Millis};

/// A cart with items and no order for this long is abandoned (default: one hour).
pub const DEFAULT_ABANDON_AFTER_MS: Millis = 3_600_000;

/// One stored event, as the computation reads it.
pub struct Fact<'a> {
    /// `track`, `page`, …
    pub kind: &'a str,
    /// Event name of a track call.
    pub name: Option<&'a str>,
    /// Event time.
    pub timestamp: Millis,
    /// The payload.
    pub body: &'a Map<String, Value>,
}

/// The computed traits of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Computed {
    /// Time of the earliest event.
    pub first_seen: Option<String>,
    /// Time of the latest event.
    pub last_seen: Option<String>,
    /// Page and screen views.
    pub visits: u64,
    /// Distinct sessions (`context.sessionId`).
    pub sessions: u64,
    /// Distinct orders (`Order Completed`, by `order_id`).
    pub order_count: u64,
    /// Sum of the orders' `revenue` (or `total`).
    pub total_revenue: f64,
    /// `total_revenue / order_count`.
    pub average_order_value: f64,
    /// Time of the latest order.
    pub last_order_at: Option<String>,
    /// Most viewed products, most first (up to 3).
    pub top_viewed_products: Vec<String>,
    /// Most bought products, most first (up to 3).
    pub top_bought_products: Vec<String>,
    /// Most viewed or bought categories, most first (up to 3).
    pub top_categories: Vec<String>,
    /// Value of the cart now: added minus removed since the last order.
    pub cart_value: f64,
    /// The cart holds items, the last change is older than the abandon window, and no
    /// order followed.
    pub cart_abandoned: bool,
    /// Consent by category: each device's (`anonymousId`'s) latest choice, and where
    /// devices differ — merged profiles — the most restrictive.
    pub consent: BTreeMap<String, bool>,
}

fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn top(counts: BTreeMap<String, f64>) -> Vec<String> {
    let mut ranked: Vec<(String, f64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.into_iter().take(3).map(|(k, _)| k).collect()
}

/// Computes the traits of events in any order, as of `now`.
pub fn compute(facts: &mut [Fact<'_>], now: Millis, abandon_after: Millis) -> Computed {
    facts.sort_by_key(|f| f.timestamp);
    let mut out = Computed {
        first_seen: facts.first().map(|f| format_rfc3339(f.timestamp)),
        last_seen: facts.last().map(|f| format_rfc3339(f.timestamp)),
        ..Computed::default()
    };
    let mut sessions = BTreeSet::new();
    let mut orders: BTreeMap<String, f64> = BTreeMap::new();
    let mut viewed = BTreeMap::new();
    let mut bought = BTreeMap::new();
    let mut categories = BTreeMap::new();
    let mut cart: BTreeMap<String, (f64, f64)> = BTreeMap::new(); // product → (price, quantity)
    let mut last_cart_change = None;
    let empty = Map::new();
    let mut consent_by_device: BTreeMap<(String, String), bool> = BTreeMap::new();
    for fact in facts.iter() {
        let preferences = fact
            .body
            .get("context")
            .and_then(|c| c.get("consent"))
            .and_then(|c| c.get("categoryPreferences"));
        if let Some(preferences) = preferences.and_then(Value::as_object) {
            let device = text(fact.body, "anonymousId")
                .unwrap_or_default()
                .to_owned();
            for (category, granted) in preferences {
                if let Some(granted) = granted.as_bool() {
                    // Facts are in time order: a later choice of the device replaces its earlier one.
                    consent_by_device.insert((device.clone(), category.clone()), granted);
                }
            }
        }
        if matches!(fact.kind, "page" | "screen") {
            out.visits += 1;
        }
        if let Some(session) = fact
            .body
            .get("context")
            .and_then(|c| c.get("sessionId"))
            .filter(|s| !s.is_null())
        {
            sessions.insert(session.to_string());
        }
        let props = fact
            .body
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let product = text(props, "product_id").or_else(|| text(props, "sku"));
        match fact.name {
            Some("Product Viewed") => {
                if let Some(p) = product {
                    *viewed.entry(p.to_owned()).or_insert(0.0) += 1.0;
                }
                if let Some(c) = text(props, "category") {
                    *categories.entry(c.to_owned()).or_insert(0.0) += 1.0;
                }
            }
            Some(name @ ("Product Added" | "Product Removed")) => {
                if let Some(p) = product {
                    let quantity = number(props.get("quantity")).unwrap_or(1.0);
                    let line = cart.entry(p.to_owned()).or_insert((0.0, 0.0));
                    line.0 = number(props.get("price")).unwrap_or(line.0);
                    line.1 = if name == "Product Added" {
                        line.1 + quantity
                    } else {
                        (line.1 - quantity).max(0.0)
                    };
                    last_cart_change = Some(fact.timestamp);
                }
            }
            Some("Order Completed") => {
                let id = text(props, "order_id").map_or_else(
                    || ["untitled-", &fact.timestamp.to_string()].concat(),
                    str::to_owned,
                );
                let revenue = number(props.get("revenue"))
                    .or_else(|| number(props.get("total")))
                    .unwrap_or(0.0);
                orders.insert(id, revenue);
                out.last_order_at = Some(format_rfc3339(fact.timestamp));
                for item in props
                    .get("products")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(item) = item.as_object() {
                        if let Some(p) = text(item, "product_id").or_else(|| text(item, "sku")) {
                            *bought.entry(p.to_owned()).or_insert(0.0) +=
                                number(item.get("quantity")).unwrap_or(1.0);
                        }
                        if let Some(c) = text(item, "category") {
                            *categories.entry(c.to_owned()).or_insert(0.0) += 1.0;
                        }
                    }
                }
                cart.clear();
                last_cart_change = None;
            }
            _ => {}
        }
    }
    out.sessions = sessions.len() as u64;
    out.order_count = orders.len() as u64;
    out.total_revenue = orders.values().sum();
    if out.order_count > 0 {
        out.average_order_value = out.total_revenue / out.order_count as f64;
    }
    out.top_viewed_products = top(viewed);
    out.top_bought_products = top(bought);
    out.top_categories = top(categories);
    out.cart_value = cart
        .values()
        .map(|(price, quantity)| price * quantity)
        .sum();
    for ((_, category), granted) in consent_by_device {
        let slot = out.consent.entry(category).or_insert(true);
        *slot = *slot && granted;
    }
    out.cart_abandoned =
        out.cart_value > 0.0 && last_cart_change.is_some_and(|t| now - t >= abandon_after);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Row = (
        &'static str,
        Option<&'static str>,
        Millis,
        Map<String, Value>,
    );

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn run(events: &[Row], now: Millis) -> Computed {
        let mut facts: Vec<Fact> = events
            .iter()
            .map(|(kind, name, timestamp, body)| Fact {
                kind,
                name: *name,
                timestamp: *timestamp,
                body,
            })
            .collect();
        compute(&mut facts, now, DEFAULT_ABANDON_AFTER_MS)
    }

    fn shop() -> Vec<Row> {
        vec![
            (
                "page",
                None,
                1_000,
                body(json!({"context": {"sessionId": 1}})),
            ),
            (
                "track",
                Some("Product Viewed"),
                2_000,
                body(
                    json!({"properties": {"product_id": "stove", "category": "Kitchen"}, "context": {"sessionId": 1}}),
                ),
            ),
            (
                "track",
                Some("Product Added"),
                3_000,
                body(json!({"properties": {"product_id": "stove", "price": 59, "quantity": 2}})),
            ),
            (
                "track",
                Some("Order Completed"),
                4_000,
                body(json!({"properties": {"order_id": "o1", "revenue": 118,
                "products": [{"product_id": "stove", "quantity": 2, "category": "Kitchen"}]}})),
            ),
            (
                "page",
                None,
                90_000_000,
                body(json!({"context": {"sessionId": 2}})),
            ),
            (
                "track",
                Some("Product Added"),
                90_001_000,
                body(json!({"properties": {"product_id": "tent", "price": "349"}})),
            ),
        ]
    }

    #[test]
    fn adds_up_a_shopping_history() {
        let c = run(&shop(), 90_001_000 + DEFAULT_ABANDON_AFTER_MS);
        assert_eq!(c.first_seen.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert_eq!((c.visits, c.sessions, c.order_count), (2, 2, 1));
        assert_eq!((c.total_revenue, c.average_order_value), (118.0, 118.0));
        assert_eq!(c.top_viewed_products, ["stove"]);
        assert_eq!(c.top_bought_products, ["stove"]);
        assert_eq!(c.top_categories, ["Kitchen"]);
        assert_eq!(c.cart_value, 349.0, "the cart since the last order");
        assert!(c.cart_abandoned);
        assert!(
            !run(&shop(), 90_002_000).cart_abandoned,
            "not yet: the window has not passed"
        );
    }

    #[test]
    fn consent_is_each_devices_latest_and_the_most_restrictive_across_devices() {
        let consent = |device: &str, analytics: bool, at: Millis| -> Row {
            (
                "track",
                Some("X"),
                at,
                body(
                    json!({"anonymousId": device, "context": {"consent": {"categoryPreferences": {"analytics": analytics, "ads": true}}}}),
                ),
            )
        };
        let c = run(
            &[consent("laptop", false, 1), consent("laptop", true, 2)],
            3,
        );
        assert_eq!(
            c.consent.get("analytics"),
            Some(&true),
            "the device's latest choice"
        );
        let merged = run(
            &[
                consent("laptop", true, 1),
                consent("phone", false, 2),
                consent("laptop", true, 3),
            ],
            4,
        );
        assert_eq!(
            merged.consent.get("analytics"),
            Some(&false),
            "most restrictive across devices"
        );
        assert_eq!(merged.consent.get("ads"), Some(&true));
    }

    #[test]
    fn same_result_for_any_order_and_a_repeated_order() {
        let mut events = shop();
        let expected = run(&events, 100_000_000);
        events.reverse();
        assert_eq!(run(&events, 100_000_000), expected);
        // The same order sent twice with another messageId (a client retry bug) counts once.
        events.push((
            "track",
            Some("Order Completed"),
            4_000,
            body(json!({"properties": {"order_id": "o1", "revenue": 118}})),
        ));
        let again = run(&events, 100_000_000);
        assert_eq!((again.order_count, again.total_revenue), (1, 118.0));
    }
}
