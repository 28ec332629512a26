//! What one profile adds to the workspace's hourly rollups, computed from its whole ledger
//! in event-time order. A profile's store sends its ledger with every change; the
//! directory partition holding it adds the difference between the new contribution and
//! the old one. So a late event lands in its own hour, a merge moves the absorbed
//! profile's events to the survivor, and an erasure takes the person out of the reports,
//! all without a separate log of increments that could be applied twice.

use std::collections::BTreeMap;

use super::entry::{Entry, NONE};
use crate::computed::Settings;
use crate::time::Millis;

/// An hour in milliseconds: the rollups' grain.
pub const HOUR: Millis = 3_600_000;
/// How far back an order looks for the visit that brought it (last non-direct touch).
pub const ATTRIBUTION_WINDOW: Millis = 30 * 24 * HOUR;
/// The referrer of a visit with no outside referrer.
pub const DIRECT: &str = "(direct)";

/// Rollup keys: `(hour start, metric, dimension)` → value.
pub type Rollup = BTreeMap<(Millis, String, String), f64>;

/// The metrics, as stored and as the reports API names them.
pub mod metric {
    /// Events by type (`track`, `page`, …).
    pub const EVENTS: &str = "events";
    /// Events by the name of the source that sent them.
    pub const EVENTS_BY_SOURCE: &str = "events.source";
    /// Track events by event name (also the event schema's names).
    pub const EVENTS_BY_NAME: &str = "events.name";
    /// Profiles, at the hour of their first event.
    pub const PROFILES: &str = "profiles";
    /// Visits (sessions), at the hour they began.
    pub const VISITS: &str = "visits";
    /// Visits by campaign (`["source","medium","name"]` as JSON).
    pub const VISITS_BY_CAMPAIGN: &str = "visits.campaign";
    /// Visits by referrer host (or `(direct)`).
    pub const VISITS_BY_REFERRER: &str = "visits.referrer";
    /// Orders (each `order_id` once).
    pub const ORDERS: &str = "orders";
    /// Revenue in the base currency.
    pub const REVENUE: &str = "revenue";
    /// Revenue in currencies with no rate, by currency (not in `revenue`).
    pub const REVENUE_UNCONVERTED: &str = "revenue.unconverted";
    /// Orders by the campaign of the visit that brought them.
    pub const ORDERS_BY_CAMPAIGN: &str = "orders.campaign";
    /// Revenue by the campaign of the visit that brought it.
    pub const REVENUE_BY_CAMPAIGN: &str = "revenue.campaign";
    /// Orders by the referrer of the visit that brought them.
    pub const ORDERS_BY_REFERRER: &str = "orders.referrer";
    /// Revenue by the referrer of the visit that brought it.
    pub const REVENUE_BY_REFERRER: &str = "revenue.referrer";
    /// `Product Viewed` by product.
    pub const PRODUCT_VIEWS: &str = "product.views";
    /// `Product Added` by product (quantity).
    pub const PRODUCT_ADDS: &str = "product.adds";
    /// Ordered quantity by product.
    pub const PRODUCT_ORDERS: &str = "product.orders";
    /// `Product Viewed` by category.
    pub const CATEGORY_VIEWS: &str = "category.views";
    /// Order lines by category.
    pub const CATEGORY_ORDERS: &str = "category.orders";
    /// Carts begun (a `Product Added` with no open cart), at the hour they began.
    pub const CARTS_STARTED: &str = "carts.started";
    /// Carts ordered within the abandonment window, at the hour they began.
    pub const CARTS_ORDERED: &str = "carts.ordered";
    /// Carts left longer than the window with no order, at the hour they began.
    pub const CARTS_ABANDONED: &str = "carts.abandoned";
}

/// The start of the hour holding `at`.
pub fn hour_of(at: Millis) -> Millis {
    at.div_euclid(HOUR) * HOUR
}

/// The ledger's canonical order: by time, then by content, so a ledger does not depend on
/// the order its events arrived in.
pub fn order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    (a.at, &a.kind, &a.name)
        .cmp(&(b.at, &b.kind, &b.name))
        .then_with(|| {
            let text = |e: &Entry| serde_json::to_string(e).unwrap_or_default();
            text(a).cmp(&text(b))
        })
}

/// Puts `entry` in its place in a ledger kept in [`order`].
pub fn insert(ledger: &mut Vec<Entry>, entry: Entry) {
    let place = ledger.partition_point(|e| order(e, &entry).is_le());
    ledger.insert(place, entry);
}

struct Visit<'a> {
    start: Millis,
    campaign: Option<&'a [String; 3]>,
    referrer: Option<&'a str>,
}

/// What a profile whose ledger is `entries` (in [`order`]) contributes, as of
/// `now` (carts still inside the window are neither ordered nor abandoned yet).
pub fn contributions(entries: &[Entry], settings: &Settings, now: Millis) -> Rollup {
    let mut out = Rollup::new();
    let mut add = |at: Millis, metric: &str, dim: &str, n: f64| {
        *out.entry((hour_of(at), metric.to_owned(), dim.to_owned()))
            .or_insert(0.0) += n;
    };
    let Some(first) = entries.first() else {
        return out;
    };
    add(first.at, metric::PROFILES, "", 1.0);
    let mut visits: BTreeMap<&str, Visit<'_>> = BTreeMap::new();
    // The same order sent twice counts once: its latest (time, revenue), as the profile's
    // computed traits count it.
    let mut orders: BTreeMap<&str, &Entry> = BTreeMap::new();
    for entry in entries {
        add(entry.at, metric::EVENTS, &entry.kind, 1.0);
        if let Some(source) = &entry.source {
            add(entry.at, metric::EVENTS_BY_SOURCE, source, 1.0);
        }
        if let Some(name) = entry.name.as_deref().filter(|_| entry.kind == "track") {
            add(entry.at, metric::EVENTS_BY_NAME, name, 1.0);
        }
        if let Some(session) = &entry.session {
            let visit = visits.entry(session).or_insert(Visit {
                start: entry.at,
                campaign: None,
                referrer: None,
            });
            visit.campaign = visit.campaign.or(entry.campaign.as_ref());
            visit.referrer = visit.referrer.or(entry.referrer.as_deref());
        }
        for (product, category, quantity) in &entry.products {
            let (per_product, per_category) = match entry.name.as_deref() {
                Some("Product Viewed") => (metric::PRODUCT_VIEWS, Some(metric::CATEGORY_VIEWS)),
                Some("Product Added") => (metric::PRODUCT_ADDS, None),
                _ => continue, // order lines: counted with their order below
            };
            let n = if per_product == metric::PRODUCT_ADDS {
                *quantity
            } else {
                1.0
            };
            if let Some(p) = product {
                add(entry.at, per_product, p, n);
            }
            if let (Some(c), Some(metric)) = (category, per_category) {
                add(entry.at, metric, c, 1.0);
            }
        }
        if let Some(order) = &entry.order {
            let slot = orders.entry(&order.id).or_insert(entry);
            let held = slot.order.as_ref().map_or(0.0, |o| o.revenue);
            if (entry.at, order.revenue) > (slot.at, held) {
                *slot = entry;
            }
        }
    }
    let mut visits: Vec<Visit<'_>> = visits.into_values().collect();
    visits.sort_by_key(|v| v.start);
    for visit in &visits {
        add(visit.start, metric::VISITS, "", 1.0);
        add(
            visit.start,
            metric::VISITS_BY_CAMPAIGN,
            &campaign_dim(visit.campaign),
            1.0,
        );
        add(
            visit.start,
            metric::VISITS_BY_REFERRER,
            visit.referrer.unwrap_or(DIRECT),
            1.0,
        );
    }
    for entry in orders.values() {
        let Some(order) = &entry.order else { continue };
        let touching = visits
            .iter()
            .rev()
            .filter(|v| v.start <= entry.at && entry.at - v.start <= ATTRIBUTION_WINDOW);
        let campaign = campaign_dim(touching.clone().find_map(|v| v.campaign));
        let referrer = touching.clone().find_map(|v| v.referrer).unwrap_or(DIRECT);
        add(entry.at, metric::ORDERS, "", 1.0);
        add(entry.at, metric::ORDERS_BY_CAMPAIGN, &campaign, 1.0);
        add(entry.at, metric::ORDERS_BY_REFERRER, referrer, 1.0);
        match settings
            .money
            .to_base(order.currency.as_deref(), order.revenue)
        {
            Some(revenue) => {
                add(entry.at, metric::REVENUE, "", revenue);
                add(entry.at, metric::REVENUE_BY_CAMPAIGN, &campaign, revenue);
                add(entry.at, metric::REVENUE_BY_REFERRER, referrer, revenue);
            }
            None => {
                let currency = order.currency.as_deref().unwrap_or_default();
                add(
                    entry.at,
                    metric::REVENUE_UNCONVERTED,
                    currency,
                    order.revenue,
                );
            }
        }
        for (product, category, quantity) in &entry.products {
            if let Some(p) = product {
                add(entry.at, metric::PRODUCT_ORDERS, p, *quantity);
            }
            if let Some(c) = category {
                add(entry.at, metric::CATEGORY_ORDERS, c, 1.0);
            }
        }
    }
    carts(entries, &orders, settings.abandon_after, now, &mut add);
    out
}

/// Carts in event-time order: a `Product Added` with no open cart begins one; an order
/// within the window of the cart's last addition orders it; a cart left longer than the
/// window is abandoned (when the next addition comes, or as of `now`).
fn carts(
    entries: &[Entry],
    orders: &BTreeMap<&str, &Entry>,
    window: Millis,
    now: Millis,
    add: &mut impl FnMut(Millis, &str, &str, f64),
) {
    let mut open: Option<(Millis, Millis)> = None; // (began, last addition)
    for entry in entries {
        let counted_order = entry.order.as_ref().is_some_and(|o| {
            orders
                .get(o.id.as_str())
                .is_some_and(|kept| std::ptr::eq(*kept, entry))
        });
        if entry.name.as_deref() == Some("Product Added") {
            match open {
                Some((began, last)) if entry.at - last < window => open = Some((began, entry.at)),
                Some((began, _)) => {
                    add(began, metric::CARTS_ABANDONED, "", 1.0);
                    add(entry.at, metric::CARTS_STARTED, "", 1.0);
                    open = Some((entry.at, entry.at));
                }
                None => {
                    add(entry.at, metric::CARTS_STARTED, "", 1.0);
                    open = Some((entry.at, entry.at));
                }
            }
        } else if counted_order {
            if let Some((began, last)) = open.take() {
                let outcome = if entry.at - last < window {
                    metric::CARTS_ORDERED
                } else {
                    metric::CARTS_ABANDONED
                };
                add(began, outcome, "", 1.0);
            }
        }
    }
    if let Some((began, last)) = open {
        if now - last >= window {
            add(began, metric::CARTS_ABANDONED, "", 1.0);
        }
    }
}

/// A campaign as its dimension: `["source","medium","name"]` in JSON, `(none)` for none.
fn campaign_dim(campaign: Option<&[String; 3]>) -> String {
    let none = [NONE.to_owned(), NONE.to_owned(), NONE.to_owned()];
    serde_json::to_string(campaign.unwrap_or(&none)).unwrap_or_default()
}

/// Adds `delta` to `into`, dropping keys that come to nothing: the differences of several
/// profiles of one call, written once per key (and a stored rollup row's dimensions, with
/// no zero or -0 kept).
pub fn accumulate<K: Ord + Clone>(
    into: &mut BTreeMap<K, f64>,
    delta: impl IntoIterator<Item = (K, f64)>,
) {
    for (key, value) in delta {
        let slot = into.entry(key.clone()).or_insert(0.0);
        *slot += value;
        if *slot == 0.0 {
            into.remove(&key);
        }
    }
}

/// `new − old`, without the keys that did not change: what a directory partition adds
/// when a profile's ledger changes.
pub fn difference(old: &Rollup, new: &Rollup) -> Rollup {
    let mut out = Rollup::new();
    for (key, value) in new {
        let before = old.get(key).copied().unwrap_or(0.0);
        if value != &before {
            out.insert(key.clone(), value - before);
        }
    }
    for (key, value) in old {
        if !new.contains_key(key) {
            out.insert(key.clone(), -value);
        }
    }
    out
}
