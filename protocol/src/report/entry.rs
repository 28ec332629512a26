//! One event as the reports read it: a compact line of a profile's ledger.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::computed::{order_lines, order_of, product_line, text, Fact};
use crate::time::Millis;

/// An order an event completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// `order_id` (the same order sent twice counts once).
    pub id: String,
    /// `revenue`, else `total`, in `currency`.
    pub revenue: f64,
    /// ISO 4217 code; `None`: the workspace's base currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// One event of a profile, reduced to what the reports count. Short field names: a
/// profile's ledger travels with every change of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Event time.
    #[serde(rename = "t")]
    pub at: Millis,
    /// `track`, `page`, `identify`, …
    #[serde(rename = "k")]
    pub kind: String,
    /// A track call's event name.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The name of the source that sent it.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `context.sessionId`: a visit.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `[utm_source, utm_medium, utm_campaign]` when the event carries a campaign.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<[String; 3]>,
    /// The host of an outside referrer (search, social, email, ad or other site).
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// The order an `Order Completed` completed.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// `(product, category)` viewed (`Product Viewed`), added (`Product Added`) or ordered
    /// (each line of an order's `products`), with the quantity.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<(Option<String>, Option<String>, f64)>,
}

/// Shown for a campaign field the event left out.
pub const NONE: &str = "(none)";

impl Entry {
    /// The entry of a stored event.
    pub fn of(fact: &Fact<'_>) -> Self {
        let empty = Map::new();
        let context = fact
            .body
            .get("context")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let props = fact
            .body
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let campaign = context
            .get("campaign")
            .and_then(Value::as_object)
            .filter(|c| {
                ["source", "medium", "name"]
                    .iter()
                    .any(|k| text(c, k).is_some())
            })
            .map(|c| ["source", "medium", "name"].map(|k| text(c, k).unwrap_or(NONE).to_owned()));
        let referrer = match text(context, "referrerType") {
            Some("internal" | "direct") | None => None,
            Some(_) => text(context, "referrerHost").map(str::to_owned),
        };
        let mut order = None;
        let mut products = Vec::new();
        match fact.name {
            Some("Product Viewed" | "Product Added") => products.push(product_line(props)),
            Some("Order Completed") => {
                let (id, revenue, currency) = order_of(props, fact.timestamp);
                order = Some(Order {
                    id,
                    revenue,
                    currency,
                });
                products = order_lines(props).collect();
            }
            _ => {}
        }
        Self {
            at: fact.timestamp,
            kind: fact.kind.to_owned(),
            name: fact.name.map(str::to_owned),
            source: fact.source.map(str::to_owned),
            session: context
                .get("sessionId")
                .filter(|s| !s.is_null())
                .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned)),
            campaign,
            referrer,
            order,
            products,
        }
    }
}
