//! The reports' answers, built from rollup rows summed over the partitions.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::funnel::Funnel;
use super::rollup::{metric, DIRECT};
use super::Range;
use crate::time::Millis;

/// One rollup row: a metric's value in one hour and dimension.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// The hour's start.
    pub hour: Millis,
    /// The metric ([`metric`], or a `/v1/stats` counter).
    pub metric: String,
    /// The dimension (`""` for none).
    pub dim: String,
    /// The value.
    pub value: f64,
}

/// Rows indexed by metric, then dimension, then bucket.
struct Table {
    range: Range,
    cells: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
}

/// Sums lose exactness in binary floating point; a report shows six decimals at most.
fn tidy(value: f64) -> f64 {
    let rounded = (value * 1e6).round() / 1e6;
    if rounded == 0.0 {
        0.0
    } else {
        rounded
    }
}

impl Table {
    fn new(range: Range, rows: &[Row]) -> Self {
        let size = range.buckets().len();
        let mut cells: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        for row in rows {
            if let Some(i) = range.index(row.hour) {
                cells
                    .entry(row.metric.clone())
                    .or_default()
                    .entry(row.dim.clone())
                    .or_insert_with(|| vec![0.0; size])[i] += row.value;
            }
        }
        Self { range, cells }
    }

    fn series(&self, metric: &str, dim: &str) -> Vec<f64> {
        self.cells.get(metric).and_then(|d| d.get(dim)).map_or_else(
            || vec![0.0; self.range.buckets().len()],
            |s| s.iter().map(|v| tidy(*v)).collect(),
        )
    }

    /// `{total, series}` of one metric over every dimension.
    fn metric(&self, metric: &str) -> Value {
        let mut sum = vec![0.0; self.range.buckets().len()];
        for series in self
            .cells
            .get(metric)
            .into_iter()
            .flat_map(BTreeMap::values)
        {
            for (slot, v) in sum.iter_mut().zip(series) {
                *slot += v;
            }
        }
        shown(&sum)
    }

    /// `{dimension: {total, series}}` of one metric.
    fn by_dim(&self, metric: &str) -> Value {
        let mut out = Map::new();
        for dim in self.cells.get(metric).into_iter().flat_map(BTreeMap::keys) {
            out.insert(dim.clone(), shown(&self.series(metric, dim)));
        }
        Value::Object(out)
    }

    /// Each dimension's total of one metric.
    fn totals(&self, metric: &str) -> BTreeMap<String, f64> {
        self.cells
            .get(metric)
            .into_iter()
            .flatten()
            .map(|(dim, series)| (dim.clone(), tidy(series.iter().sum())))
            .collect()
    }
}

fn shown(series: &[f64]) -> Value {
    let series: Vec<f64> = series.iter().map(|v| tidy(*v)).collect();
    json!({"total": tidy(series.iter().sum()), "series": series})
}

fn ratio(part: f64, whole: f64) -> Value {
    if whole == 0.0 {
        Value::Null
    } else {
        json!(tidy(part / whole))
    }
}

/// The `/v1/stats` counters an overview charts, by their names there.
const PIPELINE: [(&str, &str); 9] = [
    ("accepted", "accepted"),
    ("delivered", "delivered"),
    ("duplicates", "duplicates"),
    ("consentDropped", "consent_dropped"),
    ("bots", "bots"),
    ("botsDropped", "bots_dropped"),
    ("deadLettered", "dead_lettered"),
    ("merges", "merges"),
    ("queueRetries", "queue_retries"),
];

/// `GET /v1/reports/overview`: events by type and source, profiles created, visits, and
/// the pipeline's counters (`pipeline`: rows of the hourly `/v1/stats` counters, with
/// `rejected.<reason>` read as metric `rejected`, dimension `reason`); `dead_letters` is
/// what the dead-letter store holds now.
pub fn overview(range: Range, rollups: &[Row], pipeline: &[Row], dead_letters: i64) -> Value {
    let table = Table::new(range, rollups);
    let split: Vec<Row> = pipeline
        .iter()
        .map(|r| match r.metric.split_once('.') {
            Some(("rejected", reason)) => Row {
                metric: "rejected".into(),
                dim: reason.into(),
                ..r.clone()
            },
            _ => r.clone(),
        })
        .collect();
    let counters = Table::new(range, &split);
    let mut health = Map::new();
    for (shown_as, name) in PIPELINE {
        health.insert(shown_as.into(), counters.metric(name));
    }
    let mut rejected = counters.metric("rejected");
    rejected["byReason"] = json!(counters.totals("rejected"));
    health.insert("rejected".into(), rejected);
    let mut events = table.metric(metric::EVENTS);
    events["byType"] = table.by_dim(metric::EVENTS);
    events["bySource"] = table.by_dim(metric::EVENTS_BY_SOURCE);
    json!({
        "range": range.json(),
        "events": events,
        "profilesCreated": table.metric(metric::PROFILES),
        "visits": table.metric(metric::VISITS),
        "pipeline": health,
        "deadLetters": dead_letters,
    })
}

/// `GET /v1/reports/revenue`: revenue, orders and average order value per bucket, in
/// `currency` (the base); revenue in currencies with no rate is shown apart.
pub fn revenue(range: Range, rows: &[Row], currency: &str) -> Value {
    let table = Table::new(range, rows);
    let revenue = table.series(metric::REVENUE, "");
    let orders = table.series(metric::ORDERS, "");
    let aov: Vec<Value> = revenue
        .iter()
        .zip(&orders)
        .map(|(r, o)| ratio(*r, *o))
        .collect();
    let total_revenue: f64 = revenue.iter().sum();
    let total_orders: f64 = orders.iter().sum();
    json!({
        "range": range.json(),
        "currency": currency,
        "revenue": shown(&revenue),
        "orders": shown(&orders),
        "averageOrderValue": {"total": ratio(total_revenue, total_orders), "series": aov},
        "unconverted": table.totals(metric::REVENUE_UNCONVERTED),
    })
}

/// `GET /v1/reports/carts`: carts started, ordered within the abandonment window,
/// abandoned, and still open, by the bucket they began in; the abandonment rate is
/// abandoned over decided (ordered or abandoned) carts.
pub fn carts(range: Range, rows: &[Row], window_minutes: i64) -> Value {
    let table = Table::new(range, rows);
    let started = table.series(metric::CARTS_STARTED, "");
    let ordered = table.series(metric::CARTS_ORDERED, "");
    let abandoned = table.series(metric::CARTS_ABANDONED, "");
    let open: Vec<f64> = (0..started.len())
        .map(|i| tidy(started[i] - ordered[i] - abandoned[i]))
        .collect();
    let rate: Vec<Value> = (0..started.len())
        .map(|i| ratio(abandoned[i], ordered[i] + abandoned[i]))
        .collect();
    let sum = |s: &[f64]| s.iter().sum::<f64>();
    json!({
        "range": range.json(),
        "abandonAfterMinutes": window_minutes,
        "started": shown(&started),
        "ordered": shown(&ordered),
        "abandoned": shown(&abandoned),
        "open": shown(&open),
        "abandonmentRate": {
            "total": ratio(sum(&abandoned), sum(&ordered) + sum(&abandoned)),
            "series": rate,
        },
    })
}

/// Lines of a breakdown: each dimension's totals of several metrics, largest first by the
/// first metric, at most `limit`.
fn breakdown(
    table: &Table,
    metrics: &[(&str, &str)],
    limit: usize,
    label: impl Fn(&str) -> Map<String, Value>,
) -> Vec<Value> {
    let totals: Vec<BTreeMap<String, f64>> = metrics.iter().map(|(_, m)| table.totals(m)).collect();
    let mut dims: Vec<&String> = totals.iter().flat_map(BTreeMap::keys).collect();
    dims.sort();
    dims.dedup();
    let mut lines: Vec<(Vec<f64>, &String)> = dims
        .into_iter()
        .map(|d| {
            (
                totals
                    .iter()
                    .map(|t| t.get(d).copied().unwrap_or(0.0))
                    .collect(),
                d,
            )
        })
        .collect();
    lines.sort_by(|a, b| {
        b.0.iter()
            .zip(&a.0)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.1.cmp(b.1))
    });
    lines
        .into_iter()
        .take(limit)
        .map(|(values, dim)| {
            let mut line = label(dim);
            for ((name, _), v) in metrics.iter().zip(values) {
                line.insert((*name).into(), json!(v));
            }
            Value::Object(line)
        })
        .collect()
}

/// `GET /v1/reports/campaigns`: visits, orders and revenue by campaign (UTM source,
/// medium and name of the visit; an order is credited to the latest visit with a campaign
/// in the 30 days before it) and by referrer.
pub fn campaigns(range: Range, rows: &[Row], limit: usize) -> Value {
    let table = Table::new(range, rows);
    let campaigns = breakdown(
        &table,
        &[
            ("visits", metric::VISITS_BY_CAMPAIGN),
            ("orders", metric::ORDERS_BY_CAMPAIGN),
            ("revenue", metric::REVENUE_BY_CAMPAIGN),
        ],
        limit,
        |dim| {
            let [source, medium, name]: [String; 3] = serde_json::from_str(dim).unwrap_or_default();
            let mut line = Map::new();
            line.insert("source".into(), json!(source));
            line.insert("medium".into(), json!(medium));
            line.insert("campaign".into(), json!(name));
            line
        },
    );
    let referrers = breakdown(
        &table,
        &[
            ("visits", metric::VISITS_BY_REFERRER),
            ("orders", metric::ORDERS_BY_REFERRER),
            ("revenue", metric::REVENUE_BY_REFERRER),
        ],
        limit,
        |dim| {
            let mut line = Map::new();
            line.insert("referrer".into(), json!(dim));
            line.insert("direct".into(), json!(dim == DIRECT));
            line
        },
    );
    json!({
        "range": range.json(),
        "visits": table.metric(metric::VISITS),
        "campaigns": campaigns,
        "referrers": referrers,
    })
}

/// `GET /v1/reports/products`: the top products (views, quantity added, quantity ordered)
/// and categories (views, order lines).
pub fn products(range: Range, rows: &[Row], limit: usize) -> Value {
    let table = Table::new(range, rows);
    let labelled = |key: &'static str| {
        move |dim: &str| {
            let mut line = Map::new();
            line.insert(key.into(), json!(dim));
            line
        }
    };
    json!({
        "range": range.json(),
        "products": breakdown(&table, &[
            ("views", metric::PRODUCT_VIEWS),
            ("added", metric::PRODUCT_ADDS),
            ("ordered", metric::PRODUCT_ORDERS),
        ], limit, labelled("product")),
        "categories": breakdown(&table, &[
            ("views", metric::CATEGORY_VIEWS),
            ("orders", metric::CATEGORY_ORDERS),
        ], limit, labelled("category")),
    })
}

/// `GET /v1/reports/events`: the event names seen in the range, most frequent first (the
/// event schema the builder's pickers offer).
pub fn event_names(range: Range, rows: &[Row]) -> Value {
    let table = Table::new(range, rows);
    let mut names: Vec<(String, f64)> = table.totals(metric::EVENTS_BY_NAME).into_iter().collect();
    names.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    json!({
        "range": range.json(),
        "events": names.into_iter().map(|(name, count)| json!({"name": name, "count": count})).collect::<Vec<_>>(),
    })
}

/// `GET /v1/reports/funnel`: profiles that reached each step (summed over partitions),
/// with each step's conversion from the one before and from the first.
pub fn funnel(range: Range, funnel: &Funnel, reached: &[u64]) -> Value {
    let first = reached.first().copied().unwrap_or(0) as f64;
    let steps: Vec<Value> = funnel
        .steps
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let n = reached.get(i).copied().unwrap_or(0);
            let before = if i == 0 {
                n
            } else {
                reached.get(i - 1).copied().unwrap_or(0)
            };
            json!({
                "name": name,
                "count": n,
                "fromPrevious": ratio(n as f64, before as f64),
                "fromFirst": ratio(n as f64, first),
            })
        })
        .collect();
    json!({
        "range": range.json(),
        "windowMs": funnel.window,
        "steps": steps,
    })
}
