//! Computed traits: what a profile's events add up to (first and last seen, visits,
//! sessions, orders, revenue, favourite products, the cart now and whether it was
//! abandoned).
//!
//! Kept incrementally: the store adds each new event to the profile's [`Aggregate`] as it
//! stores it, and a read turns the aggregate into [`Computed`] traits. The aggregate only
//! holds order-independent summaries, so late events give the same result as a perfect
//! stream, and duplicates (stored once, added once) never count twice.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::{format_rfc3339, Millis};

/// A cart with items and no order for this long is abandoned (default: one hour).
pub const DEFAULT_ABANDON_AFTER_MS: Millis = 3_600_000;

/// The workspace's base currency when none is configured (the Segment spec's default).
pub const DEFAULT_CURRENCY: &str = "USD";

/// How a profile's numbers are read: the workspace's settings, not the events'.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// A cart with items and no order for this long is abandoned.
    pub abandon_after: Millis,
    /// The currency totals are given in, and what others are worth in it.
    pub money: Money,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            abandon_after: DEFAULT_ABANDON_AFTER_MS,
            money: Money::default(),
        }
    }
}

/// The workspace's base currency and exchange rates (`CURRENCY`, `CURRENCY_RATES`).
#[derive(Debug, Clone, PartialEq)]
pub struct Money {
    /// ISO 4217 code of the currency totals are given in; amounts without a currency are
    /// read in it.
    pub base: String,
    /// What one unit of another currency is worth in the base currency.
    pub rates: BTreeMap<String, f64>,
}

impl Default for Money {
    fn default() -> Self {
        Self {
            base: DEFAULT_CURRENCY.to_owned(),
            rates: BTreeMap::new(),
        }
    }
}

impl Money {
    /// Reads `CURRENCY` (a code, default USD) and `CURRENCY_RATES` (JSON, e.g.
    /// `{"EUR": 1.08, "JPY": 0.0067}`: the base currency's worth of one unit of each).
    pub fn parse(base: Option<&str>, rates: Option<&str>) -> Result<Self, String> {
        let base = match base {
            Some(code) => crate::source::currency_code(code).ok_or_else(|| {
                format!("CURRENCY must be an ISO 4217 code such as EUR, not {code:?}")
            })?,
            None => DEFAULT_CURRENCY.to_owned(),
        };
        let mut parsed = BTreeMap::new();
        if let Some(rates) = rates {
            let map: BTreeMap<String, Value> = serde_json::from_str(rates).map_err(|e| {
                format!("CURRENCY_RATES must be a JSON object such as {{\"JPY\": 0.0062}}: {e}")
            })?;
            for (code, rate) in map {
                let canonical = crate::source::currency_code(&code)
                    .ok_or_else(|| format!("CURRENCY_RATES: {code:?} is not an ISO 4217 code"))?;
                let rate = rate.as_f64().filter(|r| r.is_finite() && *r > 0.0).ok_or_else(|| {
                    format!("CURRENCY_RATES: the rate of {code} must be a positive number, not {rate}")
                })?;
                parsed.insert(canonical, rate);
            }
        }
        Ok(Self {
            base,
            rates: parsed,
        })
    }

    /// `amount` of `currency` in the base currency; `None` when no rate is known.
    pub(crate) fn to_base(&self, currency: Option<&str>, amount: f64) -> Option<f64> {
        match currency {
            None => Some(amount),
            Some(c) if c == self.base => Some(amount),
            Some(c) => self.rates.get(c).map(|rate| amount * rate),
        }
    }
}

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
    /// The name of the source that sent it.
    pub source: Option<&'a str>,
}

/// The computed traits of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Computed {
    /// Time of the earliest event.
    pub first_seen: Option<String>,
    /// Time of the latest event.
    pub last_seen: Option<String>,
    /// Visits: distinct sessions (`context.sessionId`, which the tracker sets; events from
    /// clients that send none count no visit).
    pub visits: u64,
    /// Page and screen views.
    pub page_views: u64,
    /// Distinct orders (`Order Completed`, by `order_id`).
    pub order_count: u64,
    /// The orders' `revenue` (or `total`) in the base currency: amounts in other currencies
    /// converted at the workspace's rates, those without a rate left out (see
    /// `unconvertedCurrencies`).
    pub total_revenue: f64,
    /// The base currency of `total_revenue`, `average_order_value` and `cart_value`.
    pub currency: String,
    /// Revenue by the currency it was paid in, unconverted.
    pub revenue_by_currency: BTreeMap<String, f64>,
    /// Currencies of orders left out of `total_revenue` for want of a rate.
    pub unconverted_currencies: Vec<String>,
    /// `total_revenue` per order counted in it.
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

/// A finite number, given as JSON or as text; `"NaN"`, `"Infinity"` and `"-1e309"` are not
/// numbers here, so one bad event cannot spoil a sum.
pub(crate) fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

/// Sums without the `-0.0` that an empty float sum gives (shown as "-0" in JSON).
fn total(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |sum, v| sum + v)
}

pub(crate) fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A product's category: a text, or the most specific (last) part of a category path
/// given as a list (as a catalog mapping that splits `Camping › Cooking` makes it).
pub(crate) fn category(map: &Map<String, Value>) -> Option<&str> {
    match map.get("category")? {
        Value::Array(path) => path
            .iter()
            .rev()
            .find_map(|p| p.as_str().filter(|s| !s.is_empty())),
        _ => text(map, "category"),
    }
}

fn top(counts: &BTreeMap<String, f64>) -> Vec<String> {
    let mut ranked: Vec<(&String, &f64)> = counts.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
    ranked.into_iter().take(3).map(|(k, _)| k.clone()).collect()
}

/// One `Order Completed`, as the aggregate keeps it (by `order_id`, so an order sent twice
/// with two `messageId`s counts once; the latest by event time wins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    at: Millis,
    revenue: f64,
    /// As the event gave it (upper-cased); none: the base currency.
    #[serde(default)]
    currency: Option<String>,
    /// `(product, quantity, category)` of each line.
    lines: Vec<(Option<String>, f64, Option<String>)>,
}

/// An `Order Completed`'s `(order id, revenue, currency)` as the e-commerce spec gives them:
/// `order_id` (else one per event time), `revenue` else `total`, the ISO 4217 `currency`.
/// The computed traits and the reports read an order through this one definition.
pub(crate) fn order_of(props: &Map<String, Value>, at: Millis) -> (String, f64, Option<String>) {
    let id = text(props, "order_id")
        .map_or_else(|| ["untitled-", &at.to_string()].concat(), str::to_owned);
    let revenue = number(props.get("revenue"))
        .or_else(|| number(props.get("total")))
        .unwrap_or(0.0);
    let currency = text(props, "currency").and_then(crate::source::currency_code);
    (id, revenue, currency)
}

/// A product line's `(product, category, quantity)`: `product_id` (else `sku`),
/// `category`, `quantity` (default 1).
pub(crate) fn product_line(item: &Map<String, Value>) -> (Option<String>, Option<String>, f64) {
    (
        text(item, "product_id")
            .or_else(|| text(item, "sku"))
            .map(str::to_owned),
        category(item).map(str::to_owned),
        number(item.get("quantity")).unwrap_or(1.0),
    )
}

/// The product lines of an order (`products`).
pub(crate) fn order_lines(
    props: &Map<String, Value>,
) -> impl Iterator<Item = (Option<String>, Option<String>, f64)> + '_ {
    props
        .get("products")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(product_line)
}

/// One cart change since the latest order: `(time, product, price, signed quantity)`.
type CartChange = (Millis, String, Option<f64>, f64);

/// The running sums behind the computed traits, kept with the profile and updated by each
/// new event in O(1) (cart changes are kept only since the latest order).
///
/// Every field is an order-independent summary (minimum, maximum, count, set, latest by
/// event time), so adding the same events in any order gives the same aggregate; the store
/// adds an event only the first time it stores its `messageId`, so duplicates never count.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Aggregate {
    first: Option<Millis>,
    last: Option<Millis>,
    /// Page and screen views (named `visits` in aggregates stored before visits meant
    /// sessions).
    #[serde(alias = "visits")]
    page_views: u64,
    sessions: BTreeSet<String>,
    orders: BTreeMap<String, Order>,
    viewed: BTreeMap<String, f64>,
    viewed_categories: BTreeMap<String, f64>,
    cart: Vec<CartChange>,
    /// `(device, category)` → (time, granted) of the device's latest choice.
    consent: BTreeMap<String, BTreeMap<String, (Millis, bool)>>,
    /// Every event, reduced to what the reports count, in event-time order: the one
    /// summary here that grows with the profile (by about 60 bytes an event), since a
    /// report's funnel and carts follow each person's events in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    report: Vec<crate::report::entry::Entry>,
    /// Events added, ever (the store numbers its events by it).
    #[serde(default)]
    events: u64,
}

impl Aggregate {
    /// Adds one event (each event once: the caller dedups by `messageId`).
    pub fn add(&mut self, fact: &Fact<'_>) {
        let at = fact.timestamp;
        self.events += 1;
        crate::report::rollup::insert(&mut self.report, crate::report::entry::Entry::of(fact));
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        let context = fact.body.get("context");
        let preferences = context
            .and_then(|c| c.get("consent"))
            .and_then(|c| c.get("categoryPreferences"))
            .and_then(Value::as_object);
        if let Some(preferences) = preferences {
            let device = text(fact.body, "anonymousId").unwrap_or_default();
            let choices = self.consent.entry(device.to_owned()).or_default();
            for (category, granted) in preferences {
                if let Some(granted) = granted.as_bool() {
                    let slot = choices.entry(category.clone()).or_insert((at, granted));
                    // The later choice wins; at the same time, the more restrictive.
                    if (at, !granted) > (slot.0, !slot.1) {
                        *slot = (at, granted);
                    }
                }
            }
        }
        if matches!(fact.kind, "page" | "screen") {
            self.page_views += 1;
        }
        if let Some(session) = context
            .and_then(|c| c.get("sessionId"))
            .filter(|s| !s.is_null())
        {
            self.sessions.insert(session.to_string());
        }
        let empty = Map::new();
        let props = fact
            .body
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let product = text(props, "product_id").or_else(|| text(props, "sku"));
        match fact.name {
            Some("Product Viewed") => {
                if let Some(p) = product {
                    *self.viewed.entry(p.to_owned()).or_insert(0.0) += 1.0;
                }
                if let Some(c) = category(props) {
                    *self.viewed_categories.entry(c.to_owned()).or_insert(0.0) += 1.0;
                }
            }
            Some(name @ ("Product Added" | "Product Removed")) => {
                let since_order = self.last_order_at().is_none_or(|o| at > o);
                if let (Some(p), true) = (product, since_order) {
                    let quantity = number(props.get("quantity")).unwrap_or(1.0);
                    let signed = if name == "Product Added" {
                        quantity
                    } else {
                        -quantity
                    };
                    self.cart
                        .push((at, p.to_owned(), number(props.get("price")), signed));
                    // A canonical order, so the aggregate does not depend on arrival order.
                    self.cart.sort_by(|a, b| {
                        (a.0, &a.1)
                            .cmp(&(b.0, &b.1))
                            .then(a.3.total_cmp(&b.3))
                            .then(a.2.unwrap_or(0.0).total_cmp(&b.2.unwrap_or(0.0)))
                    });
                }
            }
            Some("Order Completed") => {
                let (id, revenue, currency) = order_of(props, at);
                let lines = order_lines(props)
                    .map(|(product, category, quantity)| (product, quantity, category))
                    .collect();
                let order = Order {
                    at,
                    revenue,
                    currency,
                    lines,
                };
                let slot = self.orders.entry(id).or_insert_with(|| order.clone());
                if (order.at, order.revenue) > (slot.at, slot.revenue) {
                    *slot = order;
                }
                if let Some(latest) = self.last_order_at() {
                    self.cart.retain(|c| c.0 > latest);
                }
            }
            _ => {}
        }
    }

    /// How many events were added, ever.
    pub fn events_added(&self) -> u64 {
        self.events
    }

    /// The earliest and the latest event time.
    pub fn span(&self) -> (Option<Millis>, Option<Millis>) {
        (self.first, self.last)
    }

    /// The profile's report ledger: its events as the reports count them, in time order.
    pub fn report(&self) -> &[crate::report::entry::Entry] {
        &self.report
    }

    /// Adds what `other` summarises (the events of another profile, or those that left
    /// this one under retention) as if its events had been added here: totals add up,
    /// an order or a consent choice seen by both keeps the later, and the cart keeps what
    /// followed the latest order of either.
    pub fn merge(&mut self, other: &Aggregate) {
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = self.last.max(other.last);
        self.page_views += other.page_views;
        self.events += other.events;
        self.sessions.extend(other.sessions.iter().cloned());
        for (id, order) in &other.orders {
            let slot = self
                .orders
                .entry(id.clone())
                .or_insert_with(|| order.clone());
            if (order.at, order.revenue) > (slot.at, slot.revenue) {
                *slot = order.clone();
            }
        }
        for (map, more) in [
            (&mut self.viewed, &other.viewed),
            (&mut self.viewed_categories, &other.viewed_categories),
        ] {
            for (key, n) in more {
                *map.entry(key.clone()).or_insert(0.0) += n;
            }
        }
        self.cart.extend(other.cart.iter().cloned());
        self.cart.sort_by(|a, b| {
            (a.0, &a.1)
                .cmp(&(b.0, &b.1))
                .then(a.3.total_cmp(&b.3))
                .then(a.2.unwrap_or(0.0).total_cmp(&b.2.unwrap_or(0.0)))
        });
        if let Some(latest) = self.last_order_at() {
            self.cart.retain(|c| c.0 > latest);
        }
        for (device, choices) in &other.consent {
            let mine = self.consent.entry(device.clone()).or_default();
            for (category, choice) in choices {
                let slot = mine.entry(category.clone()).or_insert(*choice);
                if (choice.0, !choice.1) > (slot.0, !slot.1) {
                    *slot = *choice;
                }
            }
        }
        for entry in &other.report {
            crate::report::rollup::insert(&mut self.report, entry.clone());
        }
    }

    /// Drops the report ledger's entries of events before `cutoff` (they left under
    /// retention); the totals, orders and choices they made stay.
    pub fn forget_report_before(&mut self, cutoff: Millis) {
        self.report.retain(|e| e.at >= cutoff);
    }

    /// When the cart, as it is now, will count as abandoned (`None`: no cart since the
    /// latest order), so the store can refresh what it publishes then.
    pub fn abandons_at(&self, abandon_after: Millis) -> Option<Millis> {
        self.cart.last().map(|c| c.0 + abandon_after)
    }

    fn last_order_at(&self) -> Option<Millis> {
        self.orders.values().map(|o| o.at).max()
    }

    /// The computed traits as of `now`; a cart is abandoned when its last change is older
    /// than the settings' window and no order followed.
    pub fn traits(&self, now: Millis, settings: &Settings) -> Computed {
        let money = &settings.money;
        let mut out = Computed {
            first_seen: self.first.map(format_rfc3339),
            last_seen: self.last.map(format_rfc3339),
            visits: self.sessions.len() as u64,
            page_views: self.page_views,
            order_count: self.orders.len() as u64,
            currency: money.base.clone(),
            last_order_at: self.last_order_at().map(format_rfc3339),
            top_viewed_products: top(&self.viewed),
            ..Computed::default()
        };
        let mut converted = Vec::new();
        for order in self.orders.values() {
            let paid_in = order.currency.as_deref().unwrap_or(&money.base);
            *out.revenue_by_currency
                .entry(paid_in.to_owned())
                .or_insert(0.0) += order.revenue;
            match money.to_base(order.currency.as_deref(), order.revenue) {
                Some(amount) => converted.push(amount),
                None if !out.unconverted_currencies.iter().any(|c| c == paid_in) => {
                    out.unconverted_currencies.push(paid_in.to_owned());
                }
                None => {}
            }
        }
        out.unconverted_currencies.sort();
        out.total_revenue = total(converted.iter().copied());
        if !converted.is_empty() {
            out.average_order_value = out.total_revenue / converted.len() as f64;
        }
        let mut bought = BTreeMap::new();
        let mut categories = self.viewed_categories.clone();
        for (product, quantity, category) in self.orders.values().flat_map(|o| &o.lines) {
            if let Some(p) = product {
                *bought.entry(p.clone()).or_insert(0.0) += quantity;
            }
            if let Some(c) = category {
                *categories.entry(c.clone()).or_insert(0.0) += 1.0;
            }
        }
        out.top_bought_products = top(&bought);
        out.top_categories = top(&categories);
        let mut lines: BTreeMap<&str, (f64, f64)> = BTreeMap::new(); // product → (price, quantity)
        for (_, product, price, signed) in &self.cart {
            let line = lines.entry(product).or_insert((0.0, 0.0));
            line.0 = price.unwrap_or(line.0);
            line.1 = (line.1 + signed).max(0.0);
        }
        out.cart_value = total(lines.values().map(|(price, quantity)| price * quantity));
        let last_change = self.cart.last().map(|c| c.0);
        out.cart_abandoned =
            out.cart_value > 0.0 && last_change.is_some_and(|t| now - t >= settings.abandon_after);
        for choices in self.consent.values() {
            for (category, (_, granted)) in choices {
                let slot = out.consent.entry(category.clone()).or_insert(true);
                *slot = *slot && *granted;
            }
        }
        out
    }
}

/// Computes the traits of events in any order, as of `now`.
pub fn compute(facts: &[Fact<'_>], now: Millis, settings: &Settings) -> Computed {
    let mut aggregate = Aggregate::default();
    for fact in facts {
        aggregate.add(fact);
    }
    aggregate.traits(now, settings)
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

    fn facts(events: &[Row]) -> Vec<Fact<'_>> {
        events
            .iter()
            .map(|(kind, name, timestamp, body)| Fact {
                kind,
                name: *name,
                timestamp: *timestamp,
                body,
                source: None,
            })
            .collect()
    }

    fn run(events: &[Row], now: Millis) -> Computed {
        compute(&facts(events), now, &Settings::default())
    }

    #[test]
    fn two_aggregates_merged_summarise_what_one_of_all_the_events_would() {
        let events = shop();
        let all = facts(&events);
        let mut whole = Aggregate::default();
        all.iter().for_each(|f| whole.add(f));
        // Older events in one part (what retention moved out), newer in the other.
        let (older, newer) = all.split_at(all.len() / 2);
        let mut kept = Aggregate::default();
        newer.iter().for_each(|f| kept.add(f));
        let mut expired = Aggregate::default();
        older.iter().for_each(|f| expired.add(f));
        expired.merge(&kept);
        let settings = Settings::default();
        for now in [5_000_000, 90_000_000_000] {
            assert_eq!(expired.traits(now, &settings), whole.traits(now, &settings));
        }
        assert_eq!(expired.report(), whole.report());
        expired.forget_report_before(i64::MAX);
        assert!(expired.report().is_empty());
        assert_eq!(
            expired.traits(5_000_000, &settings),
            whole.traits(5_000_000, &settings)
        );
    }

    #[test]
    fn a_category_path_counts_as_its_most_specific_part() {
        let viewed = |category: Value| {
            (
                "track",
                Some("Product Viewed"),
                1_000,
                body(json!({"properties": {"product_id": "stove", "category": category}})),
            )
        };
        let c = run(
            &[
                viewed(json!(["Camping", "Cooking"])),
                viewed(json!(["Camping", "Cooking", ""])),
                viewed(json!("Tents")),
            ],
            2_000,
        );
        assert_eq!(c.top_categories, ["Cooking", "Tents"]);
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
        assert_eq!((c.visits, c.page_views, c.order_count), (2, 2, 1));
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

    #[test]
    fn the_aggregate_is_the_same_for_any_order_and_survives_storage() {
        let events = shop();
        let facts = facts(&events);
        let now = 100_000_000;
        let expected = compute(&facts, now, &Settings::default());
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200 {
            let mut order: Vec<usize> = (0..facts.len()).collect();
            for i in (1..order.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                order.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            let mut aggregate = Aggregate::default();
            for (n, i) in order.iter().enumerate() {
                aggregate.add(&facts[*i]);
                if n == 2 {
                    // Kept as JSON between events, as the store does.
                    let stored = serde_json::to_string(&aggregate).unwrap();
                    aggregate = serde_json::from_str(&stored).unwrap();
                }
            }
            assert_eq!(aggregate.traits(now, &Settings::default()), expected);
        }
    }

    #[test]
    fn a_late_order_empties_the_cart_before_it_and_counts_its_products_once() {
        let mut events = shop();
        // The order again under another messageId, arriving after the new cart.
        events.push((
            "track",
            Some("Order Completed"),
            4_000,
            body(json!({"properties": {"order_id": "o1", "revenue": 118,
                "products": [{"product_id": "stove", "quantity": 2, "category": "Kitchen"}]}})),
        ));
        let c = run(&events, 90_001_001);
        assert_eq!(c.cart_value, 349.0);
        assert_eq!(c.top_bought_products, ["stove"]);
        let late_order = (
            "track",
            Some("Order Completed"),
            95_000_000,
            body(json!({"properties": {"order_id": "o2", "total": 349}})),
        );
        events.insert(0, late_order);
        let c = run(&events, 96_000_000);
        assert_eq!(
            (c.cart_value, c.cart_abandoned, c.order_count),
            (0.0, false, 2)
        );
    }

    fn order(id: &str, revenue: Value, currency: Option<&str>) -> Row {
        let mut properties = json!({"order_id": id, "revenue": revenue});
        if let Some(c) = currency {
            properties["currency"] = json!(c);
        }
        (
            "track",
            Some("Order Completed"),
            1_000,
            body(json!({ "properties": properties })),
        )
    }

    #[test]
    fn revenue_is_kept_per_currency_and_converted_at_the_workspace_rates() {
        let events = [
            order("eur", json!(100), Some("EUR")),
            order("jpy", json!(10000), Some("jpy")),
            order("none", json!(50), None),
        ];
        let plain = run(&events, 2_000);
        assert_eq!(plain.currency, "USD");
        assert_eq!(
            plain.revenue_by_currency,
            BTreeMap::from([
                ("EUR".to_owned(), 100.0),
                ("JPY".to_owned(), 10000.0),
                ("USD".to_owned(), 50.0)
            ])
        );
        assert_eq!(plain.total_revenue, 50.0, "never 10150: no rates, no sum");
        assert_eq!(plain.unconverted_currencies, ["EUR", "JPY"]);
        let settings = Settings {
            money: Money::parse(Some("eur"), Some(r#"{"JPY": 0.0062, "USD": 0.5}"#)).unwrap(),
            ..Settings::default()
        };
        let c = compute(&facts(&events), 2_000, &settings);
        assert_eq!(c.currency, "EUR");
        assert!(
            (c.total_revenue - (100.0 + 62.0 + 50.0)).abs() < 1e-9,
            "{}",
            c.total_revenue
        );
        assert!(c.unconverted_currencies.is_empty());
        assert!((c.average_order_value - 212.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn bad_money_settings_say_what_to_fix() {
        for (base, rates, says) in [
            (Some("euro"), None, "CURRENCY"),
            (None, Some("[1]"), "JSON object"),
            (None, Some(r#"{"JPY": -1}"#), "positive"),
            (None, Some(r#"{"euro": 1}"#), "ISO 4217"),
        ] {
            let e = Money::parse(base, rates).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn amounts_that_are_not_numbers_spoil_nothing() {
        let events = [
            order("good", json!(20), None),
            order("nan", json!("NaN"), None),
            order("inf", json!("Infinity"), None),
            order("huge", json!("-1e309"), None),
        ];
        let c = run(&events, 2_000);
        assert_eq!(c.total_revenue, 20.0);
        assert_eq!(c.order_count, 4, "each order still counts");
        assert!(c.first_seen.is_some());
        assert!(serde_json::to_string(&c)
            .unwrap()
            .contains("\"totalRevenue\":20.0"));
    }

    #[test]
    fn no_negative_zero_for_an_empty_cart_or_no_revenue() {
        let c = run(&[], 0);
        assert!(c.cart_value.is_sign_positive() && c.total_revenue.is_sign_positive());
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("-0"), "{json}");
    }

    #[test]
    fn aggregates_stored_before_page_views_had_their_name_still_read() {
        let old: Aggregate = serde_json::from_str(
            r#"{"first":1,"last":2,"visits":3,"sessions":["1"],
            "orders":{},"viewed":{},"viewed_categories":{},"cart":[],"consent":{}}"#,
        )
        .unwrap();
        let c = old.traits(3, &Settings::default());
        assert_eq!((c.page_views, c.visits), (3, 1));
    }
}
