use serde_json::{json, Map, Value};

use super::answer::{self, Row};
use super::entry::Entry;
use super::funnel::Funnel;
use super::rollup::{contributions, difference, hour_of, insert, metric, Rollup, HOUR};
use super::{Grain, Range, RangeQuery, DAY};
use crate::computed::{Fact, Settings};
use crate::time::{parse_rfc3339, Millis};

fn at(text: &str) -> Millis {
    parse_rfc3339(text).expect("a test time")
}

fn entry(kind: &str, name: Option<&str>, time: &str, body: Value) -> Entry {
    let body: Map<String, Value> = serde_json::from_value(body).expect("an object");
    Entry::of(&Fact {
        kind,
        name,
        timestamp: at(time),
        body: &body,
        source: Some("Shop"),
    })
}

/// A visit from a campaign that ends in an order sent twice, then a cart left behind.
fn shopper() -> Vec<Entry> {
    let landing = json!({"context": {"sessionId": 1, "campaign": {"source": "google", "medium": "cpc", "name": "spring"}, "referrerType": "search", "referrerHost": "www.google.com"}});
    let in_visit = json!({"context": {"sessionId": 1, "referrerType": "internal", "referrerHost": "shop.example"}, "properties": {"product_id": "stove", "category": "Cooking", "quantity": 2}});
    let order = json!({"context": {"sessionId": 1}, "properties": {"order_id": "o1", "revenue": 59, "currency": "EUR", "products": [{"product_id": "stove", "category": "Cooking", "quantity": 2}]}});
    let later = json!({"context": {"sessionId": 2}, "properties": {"product_id": "pan"}});
    let mut ledger = Vec::new();
    for e in [
        entry("page", None, "2026-11-02T10:05:00Z", landing),
        entry(
            "track",
            Some("Product Viewed"),
            "2026-11-02T10:06:00Z",
            in_visit.clone(),
        ),
        entry(
            "track",
            Some("Product Added"),
            "2026-11-02T10:07:00Z",
            in_visit,
        ),
        entry(
            "track",
            Some("Checkout Started"),
            "2026-11-02T10:08:00Z",
            json!({}),
        ),
        entry(
            "track",
            Some("Order Completed"),
            "2026-11-02T10:09:00Z",
            order.clone(),
        ),
        // The same order sent again (another messageId): one order.
        entry(
            "track",
            Some("Order Completed"),
            "2026-11-02T10:09:30Z",
            order,
        ),
        entry(
            "track",
            Some("Product Added"),
            "2026-11-03T09:00:00Z",
            later,
        ),
    ] {
        insert(&mut ledger, e);
    }
    ledger
}

fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.money.base = "EUR".into();
    settings.abandon_after = HOUR;
    settings
}

fn value(rollup: &Rollup, hour: &str, metric: &str, dim: &str) -> f64 {
    rollup
        .get(&(at(hour), metric.to_owned(), dim.to_owned()))
        .copied()
        .unwrap_or(0.0)
}

#[test]
fn a_profile_contributes_its_events_visits_orders_and_carts_to_their_hours() {
    let now = at("2026-11-04T00:00:00Z");
    let r = contributions(&shopper(), &settings(), now);
    let ten = "2026-11-02T10:00:00Z";
    let next_day = "2026-11-03T09:00:00Z";
    assert_eq!(value(&r, ten, metric::PROFILES, ""), 1.0);
    assert_eq!(value(&r, ten, metric::EVENTS, "track"), 5.0);
    assert_eq!(value(&r, ten, metric::EVENTS, "page"), 1.0);
    assert_eq!(value(&r, ten, metric::EVENTS_BY_SOURCE, "Shop"), 6.0);
    assert_eq!(
        value(&r, ten, metric::EVENTS_BY_NAME, "Order Completed"),
        2.0
    );
    assert_eq!(value(&r, ten, metric::VISITS, ""), 1.0);
    assert_eq!(value(&r, next_day, metric::VISITS, ""), 1.0);
    let spring = r#"["google","cpc","spring"]"#;
    assert_eq!(value(&r, ten, metric::VISITS_BY_CAMPAIGN, spring), 1.0);
    assert_eq!(
        value(&r, ten, metric::VISITS_BY_REFERRER, "www.google.com"),
        1.0
    );
    assert_eq!(
        value(&r, next_day, metric::VISITS_BY_REFERRER, "(direct)"),
        1.0
    );
    // Sent twice, counted once, credited to the campaign's visit.
    assert_eq!(value(&r, ten, metric::ORDERS, ""), 1.0);
    assert_eq!(value(&r, ten, metric::REVENUE, ""), 59.0);
    assert_eq!(value(&r, ten, metric::REVENUE_BY_CAMPAIGN, spring), 59.0);
    assert_eq!(
        value(&r, ten, metric::ORDERS_BY_REFERRER, "www.google.com"),
        1.0
    );
    assert_eq!(value(&r, ten, metric::PRODUCT_VIEWS, "stove"), 1.0);
    assert_eq!(value(&r, ten, metric::PRODUCT_ADDS, "stove"), 2.0);
    assert_eq!(value(&r, ten, metric::PRODUCT_ORDERS, "stove"), 2.0);
    assert_eq!(value(&r, ten, metric::CATEGORY_VIEWS, "Cooking"), 1.0);
    assert_eq!(value(&r, ten, metric::CATEGORY_ORDERS, "Cooking"), 1.0);
    // The first cart ordered within the hour; the second left behind.
    assert_eq!(value(&r, ten, metric::CARTS_STARTED, ""), 1.0);
    assert_eq!(value(&r, ten, metric::CARTS_ORDERED, ""), 1.0);
    assert_eq!(value(&r, next_day, metric::CARTS_STARTED, ""), 1.0);
    assert_eq!(value(&r, next_day, metric::CARTS_ABANDONED, ""), 1.0);
    // Before its window ran out, the second cart was still open.
    let before = contributions(&shopper(), &settings(), at("2026-11-03T09:30:00Z"));
    assert_eq!(value(&before, next_day, metric::CARTS_ABANDONED, ""), 0.0);
}

#[test]
fn revenue_in_a_currency_with_no_rate_is_kept_apart() {
    let r = contributions(&shopper(), &Settings::default(), at("2026-11-04T00:00:00Z"));
    let ten = "2026-11-02T10:00:00Z";
    assert_eq!(value(&r, ten, metric::REVENUE, ""), 0.0);
    assert_eq!(value(&r, ten, metric::REVENUE_UNCONVERTED, "EUR"), 59.0);
    assert_eq!(value(&r, ten, metric::ORDERS, ""), 1.0);
}

#[test]
fn the_ledger_and_its_contribution_do_not_depend_on_arrival_order() {
    let ledger = shopper();
    let mut reversed = Vec::new();
    for e in ledger.iter().rev() {
        insert(&mut reversed, e.clone());
    }
    assert_eq!(reversed, ledger);
    let now = at("2026-11-04T00:00:00Z");
    assert_eq!(
        contributions(&reversed, &settings(), now),
        contributions(&ledger, &settings(), now)
    );
}

#[test]
fn a_change_adds_only_its_difference_and_a_removal_takes_everything_back() {
    let now = at("2026-11-04T00:00:00Z");
    let mut ledger = shopper();
    let before = contributions(&ledger, &settings(), now);
    assert!(difference(&before, &before).is_empty());
    // A late event lands in its own hour, two days back.
    insert(
        &mut ledger,
        entry(
            "track",
            Some("Product Viewed"),
            "2026-11-01T08:30:00Z",
            json!({"properties": {"product_id": "tent"}}),
        ),
    );
    let after = contributions(&ledger, &settings(), now);
    let delta = difference(&before, &after);
    let eight = (
        at("2026-11-01T08:00:00Z"),
        metric::PRODUCT_VIEWS.to_owned(),
        "tent".to_owned(),
    );
    assert_eq!(delta.get(&eight), Some(&1.0));
    // The profile now begins two days earlier: it moves hour.
    let ten = (
        at("2026-11-02T10:00:00Z"),
        metric::PROFILES.to_owned(),
        String::new(),
    );
    assert_eq!(delta.get(&ten), Some(&-1.0));
    let gone = difference(&after, &Rollup::new());
    assert!(gone.values().all(|v| *v < 0.0));
    assert_eq!(gone.len(), after.len());
}

fn funnel(window: Millis) -> Funnel {
    Funnel {
        steps: ["Product Viewed", "Product Added", "Order Completed"]
            .map(String::from)
            .to_vec(),
        window,
        from: at("2026-11-01T00:00:00Z"),
        to: at("2026-11-08T00:00:00Z"),
    }
}

fn steps(list: &[(&str, &str)]) -> Vec<(Millis, String)> {
    list.iter().map(|(t, n)| (at(t), (*n).to_owned())).collect()
}

#[test]
fn a_funnel_counts_steps_in_order_within_the_window() {
    let f = funnel(DAY);
    let whole = steps(&[
        ("2026-11-02T10:00:00Z", "Product Viewed"),
        ("2026-11-02T10:01:00Z", "Product Added"),
        ("2026-11-02T10:02:00Z", "Order Completed"),
    ]);
    assert_eq!(f.reached(&whole), 3);
    // Out of order: an add before the view does not count.
    let backwards = steps(&[
        ("2026-11-02T09:00:00Z", "Product Added"),
        ("2026-11-02T10:00:00Z", "Product Viewed"),
        ("2026-11-02T10:02:00Z", "Order Completed"),
    ]);
    assert_eq!(f.reached(&backwards), 1);
    // Too late for the window of the first view, but a later view starts again.
    let retried = steps(&[
        ("2026-11-02T10:00:00Z", "Product Viewed"),
        ("2026-11-04T10:00:00Z", "Product Viewed"),
        ("2026-11-04T11:00:00Z", "Product Added"),
        ("2026-11-06T11:00:00Z", "Order Completed"),
    ]);
    assert_eq!(f.reached(&retried), 2);
    assert_eq!(funnel(3 * DAY).reached(&retried), 3);
    // A first step outside the range does not start the funnel.
    let before = steps(&[("2026-10-30T10:00:00Z", "Product Viewed")]);
    assert_eq!(f.reached(&before), 0);
    let mut counts = vec![0; 3];
    for profile in [&whole, &backwards, &retried, &before] {
        f.count(profile, &mut counts);
    }
    assert_eq!(counts, vec![3, 2, 1]);
    let answer = answer::funnel(
        Range::parse(&RangeQuery::default(), at("2026-11-08T00:00:00Z")).unwrap(),
        &f,
        &counts,
    );
    assert_eq!(answer["steps"][1]["fromPrevious"], json!(0.666667));
    assert_eq!(answer["steps"][2]["fromFirst"], json!(0.333333));
}

#[test]
fn a_range_is_read_whole_buckets_and_refused_with_a_reason() {
    let now = at("2026-11-08T10:30:00Z");
    let day = Range::parse(
        &RangeQuery {
            range: Some("24h"),
            ..Default::default()
        },
        now,
    )
    .unwrap();
    assert_eq!(day.grain, Grain::Hour);
    assert_eq!(day.buckets().len(), 25);
    assert_eq!(day.to, at("2026-11-08T11:00:00Z"));
    let week = Range::parse(&RangeQuery::default(), now).unwrap();
    assert_eq!(week.grain, Grain::Day);
    assert_eq!(week.from, at("2026-11-01T00:00:00Z"));
    assert_eq!(week.index(hour_of(at("2026-11-03T17:20:00Z"))), Some(2));
    let dates = RangeQuery {
        from: Some("2026-11-01"),
        to: Some("2026-11-03"),
        grain: Some("hour"),
        ..Default::default()
    };
    assert_eq!(Range::parse(&dates, now).unwrap().buckets().len(), 48);
    for (query, says) in [
        (
            RangeQuery {
                range: Some("soon"),
                ..Default::default()
            },
            "range must be",
        ),
        (
            RangeQuery {
                from: Some("yesterday"),
                ..Default::default()
            },
            "from must be an RFC 3339",
        ),
        (
            RangeQuery {
                from: Some("2026-11-05"),
                to: Some("2026-11-01"),
                ..Default::default()
            },
            "before",
        ),
        (
            RangeQuery {
                from: Some("2024-01-01"),
                ..Default::default()
            },
            "400 days",
        ),
        (
            RangeQuery {
                range: Some("90d"),
                grain: Some("hour"),
                ..Default::default()
            },
            "grain=day",
        ),
        (
            RangeQuery {
                range: Some("7d"),
                grain: Some("week"),
                ..Default::default()
            },
            "hour or day",
        ),
    ] {
        let refused = Range::parse(&query, now).unwrap_err();
        assert!(refused.contains(says), "{refused}");
    }
}

fn rows(rollup: &Rollup) -> Vec<Row> {
    rollup
        .iter()
        .map(|((hour, metric, dim), value)| Row {
            hour: *hour,
            metric: metric.clone(),
            dim: dim.clone(),
            value: *value,
        })
        .collect()
}

#[test]
fn answers_sum_the_rows_into_the_ranges_buckets() {
    let now = at("2026-11-04T00:00:00Z");
    let mut all = contributions(&shopper(), &settings(), now);
    // A second, identical shopper under another profile: every count doubles.
    for (key, v) in contributions(&shopper(), &settings(), now) {
        *all.entry(key).or_insert(0.0) += v;
    }
    let range = Range::parse(
        &RangeQuery {
            from: Some("2026-11-02"),
            to: Some("2026-11-04"),
            grain: Some("day"),
            ..Default::default()
        },
        now,
    )
    .unwrap();
    let revenue = answer::revenue(range, &rows(&all), "EUR");
    assert_eq!(
        revenue["revenue"],
        json!({"total": 118.0, "series": [118.0, 0.0]})
    );
    assert_eq!(revenue["averageOrderValue"]["total"], json!(59.0));
    assert_eq!(revenue["averageOrderValue"]["series"], json!([59.0, null]));
    let carts = answer::carts(range, &rows(&all), 60);
    assert_eq!(carts["started"]["series"], json!([2.0, 2.0]));
    assert_eq!(carts["abandonmentRate"]["total"], json!(0.5));
    let pipeline = vec![
        Row {
            hour: at("2026-11-02T10:00:00Z"),
            metric: "accepted".into(),
            dim: String::new(),
            value: 14.0,
        },
        Row {
            hour: at("2026-11-02T10:00:00Z"),
            metric: "rejected.invalid_type".into(),
            dim: String::new(),
            value: 2.0,
        },
    ];
    let overview = answer::overview(range, &rows(&all), &pipeline, 3);
    assert_eq!(overview["events"]["total"], json!(14.0));
    assert_eq!(overview["events"]["byType"]["track"]["total"], json!(12.0));
    assert_eq!(overview["profilesCreated"]["total"], json!(2.0));
    assert_eq!(overview["pipeline"]["accepted"]["total"], json!(14.0));
    assert_eq!(
        overview["pipeline"]["rejected"]["byReason"],
        json!({"invalid_type": 2.0})
    );
    let campaigns = answer::campaigns(range, &rows(&all), 10);
    assert_eq!(
        campaigns["campaigns"][0],
        json!({"source": "google", "medium": "cpc", "campaign": "spring", "visits": 2.0, "orders": 2.0, "revenue": 118.0})
    );
    assert_eq!(campaigns["referrers"][1]["referrer"], json!("(direct)"));
    let products = answer::products(range, &rows(&all), 10);
    assert_eq!(
        products["products"][0],
        json!({"product": "stove", "views": 2.0, "added": 4.0, "ordered": 4.0})
    );
    let names = answer::event_names(range, &rows(&all));
    assert_eq!(
        names["events"][0],
        json!({"name": "Order Completed", "count": 4.0})
    );
}

#[test]
fn differences_of_several_profiles_sum_per_key_and_cancel_out() {
    use super::rollup::accumulate;
    let key = |m: &str| (0, m.to_owned(), String::new());
    let mut moved = Rollup::new();
    accumulate(
        &mut moved,
        Rollup::from([(key("events"), 3.0), (key("orders"), 1.0)]),
    );
    accumulate(
        &mut moved,
        Rollup::from([(key("events"), 2.0), (key("orders"), -1.0)]),
    );
    // One write for `events`, none for `orders`, which came to nothing.
    assert_eq!(moved, Rollup::from([(key("events"), 5.0)]));
}

#[test]
fn a_rollup_rows_dimensions_keep_no_zero_and_no_negative_zero() {
    use super::rollup::accumulate;
    use std::collections::BTreeMap;
    let mut dims = BTreeMap::from([("tent".to_owned(), 3.0), ("lamp".to_owned(), 1.0)]);
    accumulate(
        &mut dims,
        [
            ("lamp".to_owned(), -1.0),
            ("stove".to_owned(), -0.0),
            ("tent".to_owned(), 2.0),
        ],
    );
    // What a stored row holds after a fold: `lamp` came to nothing, `stove` never was.
    assert_eq!(dims, BTreeMap::from([("tent".to_owned(), 5.0)]));
    assert_eq!(serde_json::to_string(&dims).unwrap(), r#"{"tent":5.0}"#);
}
